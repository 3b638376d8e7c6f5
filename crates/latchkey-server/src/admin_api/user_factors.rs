//! A user's ways in, as an operator sees them: passkeys (names and dates, never key
//! material), accounts linked at upstream providers, and the last resort of resetting
//! every factor. Removing one ends the user's sessions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use latchkey_core::domain::{AdminScope, ProviderId};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::problem::{Kind, Problem, ProblemBody};
use super::request::no_store;
use super::users::{find, managed};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyView {
    /// base64url, as browsers report it.
    pub credential_id: String,
    pub name: String,
    /// May be synced to the user's other devices.
    pub synced: bool,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

#[utoipa::path(get, path = "/users/{sub}/passkeys", tag = "users", params(("sub" = String, Path)),
    description = "A user's passkeys (never their keys). Needs `admin:users:read`.",
    responses((status = 200, body = Vec<PasskeyView>), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn passkeys(
    State(state): State<AppState>,
    caller: Caller,
    Path(sub): Path<String>,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::UsersRead)?;
    let user = find(&state, &sub).await?;
    super::users::read(&state, admin, &user, "passkeys").await?;
    let list = state.services.factors().passkeys(&state.services.request_tenant(), &user.sub).await?;
    let views: Vec<PasskeyView> = list
        .into_iter()
        .map(|p| PasskeyView {
            credential_id: p.credential_id,
            name: p.name,
            synced: p.backup_eligible,
            created_at: p.created_at.secs(),
            last_used_at: p.last_used_at.map(|t| t.secs()),
        })
        .collect();
    Ok(no_store(axum::Json(views).into_response()))
}

#[utoipa::path(delete, path = "/users/{sub}/passkeys/{credential_id}", tag = "users",
    params(("sub" = String, Path), ("credential_id" = String, Path)),
    description = "Removes a passkey, unless it is the user's last way to sign in; their sessions end. Needs `admin:users:write`.",
    responses((status = 204), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn remove_passkey(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, credential_id)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::UsersWrite)?;
    let user = managed(&state, admin, &sub).await?;
    let tenant = state.services.request_tenant();
    let factors = state.services.factors();
    if !factors.passkeys(&tenant, &user.sub).await?.iter().any(|p| p.credential_id == credential_id) {
        return Err(Problem::new(Kind::NotFound, format!("no passkey `{credential_id}` of this user")));
    }
    // No session of the user's is the operator's: every one of them ends.
    factors.remove_passkey(&tenant, &user.sub, &credential_id, "", &admin.actor).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityView {
    /// The provider's id in the configuration.
    pub provider: String,
    /// The account's stable key at the provider.
    pub subject: String,
    /// The address the provider gave at the last sign-in (never used to find an account).
    pub email: Option<String>,
    pub linked_at: i64,
    pub last_used_at: Option<i64>,
}

#[utoipa::path(get, path = "/users/{sub}/identities", tag = "users", params(("sub" = String, Path)),
    description = "A user's accounts linked at upstream identity providers. Needs `admin:users:read`.",
    responses((status = 200, body = Vec<IdentityView>), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn identities(
    State(state): State<AppState>,
    caller: Caller,
    Path(sub): Path<String>,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::UsersRead)?;
    let user = find(&state, &sub).await?;
    super::users::read(&state, admin, &user, "identities").await?;
    let list = state.services.federation().identities(&state.services.request_tenant(), &user.sub).await?;
    let views: Vec<IdentityView> = list
        .into_iter()
        .map(|i| IdentityView {
            provider: i.provider.to_string(),
            subject: i.subject.to_string(),
            email: i.email,
            linked_at: i.linked_at.secs(),
            last_used_at: i.last_used_at.map(|t| t.secs()),
        })
        .collect();
    Ok(no_store(axum::Json(views).into_response()))
}

#[utoipa::path(delete, path = "/users/{sub}/identities/{provider}", tag = "users",
    params(("sub" = String, Path), ("provider" = String, Path)),
    description = "Unlinks the user's account at a provider, unless it is their last way in; their sessions end. Needs `admin:users:write`.",
    responses((status = 204), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn unlink(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, provider)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::UsersWrite)?;
    let user = managed(&state, admin, &sub).await?;
    let provider = ProviderId::parse(&provider)
        .map_err(|_| Problem::new(Kind::NotFound, format!("no linked `{provider}` account")))?;
    let tenant = state.services.request_tenant();
    state.services.federation().unlink(&tenant, &user.sub, &provider, None, &admin.actor).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FactorsReset {
    pub passkeys_removed: u64,
    pub sessions_ended: usize,
}

#[utoipa::path(post, path = "/users/{sub}/reset-factors", tag = "users", params(("sub" = String, Path)),
    description = "The last resort for someone who lost every factor: removes their passkeys, authenticator app and recovery codes, and ends their sessions. Needs `admin:users:write`.",
    responses((status = 200, body = FactorsReset), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn reset_factors(
    State(state): State<AppState>,
    caller: Caller,
    Path(sub): Path<String>,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::UsersWrite)?;
    let user = managed(&state, admin, &sub).await?;
    let tenant = state.services.request_tenant();
    let (passkeys_removed, sessions_ended) =
        state.services.users().reset_sign_in_factors(&tenant, &user.sub, &admin.actor).await?;
    Ok(no_store(axum::Json(FactorsReset { passkeys_removed, sessions_ended }).into_response()))
}
