//! What users allowed clients, as an operator sees it, and withdrawing it for them.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use latchkey_core::domain::{AdminScope, ClientId};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::problem::{Kind, Problem, ProblemBody};
use super::request::no_store;
use super::users::{find, managed};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentView {
    pub client_id: String,
    /// The scopes the user allowed the client.
    pub scopes: Vec<String>,
    /// Claims allowed one by one beyond those scopes (OIDC Core §5.5).
    pub claims: Vec<String>,
    /// When the user last allowed something to the client.
    pub granted_at: i64,
    /// A fingerprint of what the user was shown (the consent text and the descriptions);
    /// empty for a consent recorded before versions were kept.
    pub version: String,
    /// `page` (the user chose Allow) or `first_party` (the operator's own app, not asked).
    pub how: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentHistoryView {
    pub client_id: String,
    pub scopes: Vec<String>,
    pub claims: Vec<String>,
    pub version: String,
    pub how: String,
    pub granted_at: i64,
    /// When the user (or an operator) withdrew it; null while it is in force or was
    /// replaced by a later consent to the same client.
    pub withdrawn_at: Option<i64>,
}

#[utoipa::path(get, path = "/users/{sub}/consent-history", tag = "users", params(("sub" = String, Path)),
    description = "Every consent the user gave, oldest first, with when it was withdrawn. Needs `admin:users:read`.",
    responses((status = 200, body = Vec<ConsentHistoryView>), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn consent_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(sub): Path<String>,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::UsersRead)?;
    let user = find(&state, &sub).await?;
    super::users::read(&state, admin, &user, "consent_history").await?;
    let list = state.services.consents().history(&state.services.request_tenant(), &user.sub).await?;
    let views: Vec<ConsentHistoryView> = list
        .into_iter()
        .map(|h| ConsentHistoryView {
            client_id: h.client_id.to_string(),
            scopes: h.consent.scopes,
            claims: h.consent.claims,
            version: h.consent.version,
            how: h.consent.how.as_str().to_owned(),
            granted_at: h.granted_at.secs(),
            withdrawn_at: h.withdrawn_at.map(|t| t.secs()),
        })
        .collect();
    Ok(no_store(axum::Json(views).into_response()))
}

#[utoipa::path(get, path = "/users/{sub}/consents", tag = "users", params(("sub" = String, Path)),
    description = "What the user allowed each client, by client id. Needs `admin:users:read`.",
    responses((status = 200, body = Vec<ConsentView>), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn consents(
    State(state): State<AppState>,
    caller: Caller,
    Path(sub): Path<String>,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::UsersRead)?;
    let user = find(&state, &sub).await?;
    super::users::read(&state, admin, &user, "consents").await?;
    let list = state.services.consents().list(&state.services.request_tenant(), &user.sub).await?;
    let views: Vec<ConsentView> = list
        .into_iter()
        .map(|c| ConsentView {
            client_id: c.client_id.to_string(),
            scopes: c.consent.scopes,
            claims: c.consent.claims,
            granted_at: c.granted_at.secs(),
            version: c.consent.version,
            how: c.consent.how.as_str().to_owned(),
        })
        .collect();
    Ok(no_store(axum::Json(views).into_response()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentWithdrawnView {
    /// The client's refresh token grants for the user that were revoked.
    pub grants_revoked: usize,
    /// The user's sessions the client is told of through back-channel logout.
    pub logouts_queued: usize,
}

#[utoipa::path(delete, path = "/users/{sub}/consents/{client_id}", tag = "users",
    params(("sub" = String, Path), ("client_id" = String, Path)),
    description = "Withdraws the user's consent to a client: the client's refresh and access tokens for the user stop working, \
        it gets a back-channel logout for each of the user's sessions it took part in, and the user is asked again next time. \
        Needs `admin:users:write`.",
    responses((status = 200, body = ConsentWithdrawnView), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn withdraw(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, client_id)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::UsersWrite)?;
    let user = managed(&state, admin, &sub).await?;
    let client = ClientId::parse(&client_id)
        .map_err(|_| Problem::new(Kind::NotFound, format!("no consent of this user to `{client_id}`")))?;
    let tenant = state.services.request_tenant();
    let done = state.services.consents().withdraw(&tenant, &user.sub, &client, &admin.actor).await?;
    let view = ConsentWithdrawnView { grants_revoked: done.revoked_grants.len(), logouts_queued: done.logouts_queued };
    Ok(no_store(axum::Json(view).into_response()))
}

#[utoipa::path(get, path = "/users/{sub}/export", tag = "users", params(("sub" = String, Path)),
    description = "Everything held about the user as one JSON document (GDPR Art. 15 and 20), as the user downloads it \
        from their account page: profile, factors (never secrets), sessions, consents and their history, recipients, \
        linked identities, API keys (metadata), roles and groups, retention, and the audit entries about them with other \
        people unnamed. The export is recorded. Needs `admin:users:read`.",
    responses((status = 200, body = Object), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Path(sub): Path<String>,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::UsersRead)?;
    let user = find(&state, &sub).await?;
    let document = state.services.data_export().of(&state.services.request_tenant(), &user.sub, &admin.actor).await?;
    Ok(no_store(axum::Json(document).into_response()))
}
