//! `/scopes`, `/resources` and `/invitations`: what clients may ask for, the APIs tokens
//! are issued for, and sign-up invitations (their link shown once).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use latchkey_core::domain::{AdminScope, ClientId, ScopeName};
use latchkey_core::records::ResourceServer;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::idempotency::{Created, idempotent_create};
use super::problem::{Kind, Problem, ProblemBody, invalid};
use super::request::{json, no_store, query, whole_seconds};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct ScopeView {
    pub name: String,
    pub description: String,
    /// OpenID Connect's and the admin API's: never deleted.
    pub built_in: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScopeList {
    pub items: Vec<ScopeView>,
}

#[utoipa::path(get, path = "/scopes", tag = "catalog",
    description = "Every scope clients may be allowed. Needs `admin:access:read`.",
    responses((status = 200, body = ScopeList), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn scopes(State(state): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    caller.require(AdminScope::AccessRead)?;
    let list = state.services.scopes().list(&state.services.request_tenant()).await?;
    let items = list
        .into_iter()
        .map(|s| ScopeView { name: s.name.to_string(), description: s.description, built_in: s.built_in })
        .collect();
    Ok(no_store(axum::Json(ScopeList { items }).into_response()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeBody {
    /// What people read on the consent page: 1 to 500 characters on one line.
    #[schema(value_type = super::schema::ScopeDescriptionText)]
    pub description: String,
}

#[utoipa::path(put, path = "/scopes/{name}", tag = "catalog",
    params(("name" = String, Path, pattern = r"^(?!admin:)[!#-\[\]-~]{1,128}$")),
    request_body = ScopeBody,
    description = "Creates a custom scope or changes a scope's description. Names beginning with `admin:` are Latchkey's. Needs `admin:access:write`.",
    responses((status = 200, body = ScopeView), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn put_scope(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::AccessWrite)?;
    let name = ScopeName::parse(&name).map_err(invalid)?;
    let given = json::<ScopeBody>(&headers, &body)?;
    if !super::schema::is_text(&given.description, 500) {
        return Err(invalid("a description is 1 to 500 characters without control characters or spaces at either end"));
    }
    let tenant = state.services.request_tenant();
    let scopes = state.services.scopes();
    scopes.put(&tenant, &name, &given.description, &admin.actor).await?;
    let saved = scopes.list(&tenant).await?.into_iter().find(|s| s.name == name);
    let saved = saved.ok_or_else(|| Problem::new(Kind::NotFound, format!("no scope `{name}`")))?;
    let shown = ScopeView { name: saved.name.to_string(), description: saved.description, built_in: saved.built_in };
    Ok(no_store(axum::Json(shown).into_response()))
}

#[utoipa::path(delete, path = "/scopes/{name}", tag = "catalog", params(("name" = String, Path)),
    description = "Deletes a custom scope. Needs `admin:access:write`.",
    responses((status = 204), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn delete_scope(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::AccessWrite)?;
    let name = ScopeName::parse(&name).map_err(|_| Problem::new(Kind::NotFound, format!("no scope `{name}`")))?;
    state.services.scopes().delete(&state.services.request_tenant(), &name, &admin.actor).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// An API access tokens can be issued for (RFC 8707).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceView {
    /// An absolute URI without a fragment: the tokens' `aud`.
    #[schema(value_type = super::schema::ResourceIdentifierText)]
    pub identifier: String,
    #[schema(value_type = super::schema::DisplayNameText)]
    pub name: String,
    /// The scopes it accepts (each must exist).
    #[serde(default)]
    #[schema(value_type = Vec<super::schema::ScopeToken>, max_items = 100)]
    pub scopes: Vec<String>,
    /// The client it introspects tokens as.
    #[schema(pattern = "^[A-Za-z0-9._~-]{1,128}$")]
    pub client_id: Option<String>,
}

impl From<ResourceServer> for ResourceView {
    fn from(r: ResourceServer) -> Self {
        Self { identifier: r.identifier, name: r.name, scopes: r.scopes, client_id: r.client_id.map(|c| c.to_string()) }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceList {
    pub items: Vec<ResourceView>,
}

#[utoipa::path(get, path = "/resources", tag = "catalog",
    description = "The registered API resources. Needs `admin:access:read`.",
    responses((status = 200, body = ResourceList), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn resources(State(state): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    caller.require(AdminScope::AccessRead)?;
    let list = state.services.resources().list(&state.services.request_tenant()).await?;
    let items = list.into_iter().map(ResourceView::from).collect();
    Ok(no_store(axum::Json(ResourceList { items }).into_response()))
}

#[utoipa::path(put, path = "/resources", tag = "catalog", request_body = ResourceView,
    description = "Registers an API resource, or replaces the one with the same identifier. Needs `admin:access:write`.",
    responses((status = 200, body = ResourceView), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn put_resource(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::AccessWrite)?;
    let given = json::<ResourceView>(&headers, &body)?;
    if !super::schema::is_resource_identifier(&given.identifier) {
        return Err(invalid("through the admin API, an identifier is an https URL of a host and a short path"));
    }
    if given.scopes.len() > 100 {
        return Err(invalid("a resource accepts at most 100 scopes"));
    }
    if !super::schema::is_display_name(&given.name) {
        return Err(invalid("a name is 1 to 200 characters without control characters or spaces at either end"));
    }
    let scopes: Vec<ScopeName> =
        given.scopes.iter().map(|s| ScopeName::parse(s).map_err(invalid)).collect::<Result<_, _>>()?;
    let server = ResourceServer {
        identifier: given.identifier,
        name: given.name,
        scopes: scopes.iter().map(ToString::to_string).collect(),
        client_id: given.client_id.as_deref().map(ClientId::parse).transpose().map_err(invalid)?,
    };
    state.services.resources().put(&state.services.request_tenant(), &server, &admin.actor).await?;
    Ok(no_store(axum::Json(ResourceView::from(server)).into_response()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ResourceParams {
    /// The resource's identifier.
    identifier: String,
}

#[utoipa::path(delete, path = "/resources", tag = "catalog", params(ResourceParams),
    description = "Deletes an API resource. Needs `admin:access:write`.",
    responses((status = 204), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn delete_resource(State(state): State<AppState>, caller: Caller, uri: Uri) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::AccessWrite)?;
    let params: ResourceParams = query(&uri)?;
    let tenant = state.services.request_tenant();
    state.services.resources().delete(&tenant, &params.identifier, &admin.actor).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    pub id: String,
    pub note: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// Who signed up with it.
    pub used_by: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationList {
    pub items: Vec<InvitationView>,
}

#[utoipa::path(get, path = "/invitations", tag = "catalog",
    description = "Sign-up invitations, used or not (never their links). Needs `admin:users:read`.",
    responses((status = 200, body = InvitationList), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn invitations(State(state): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    caller.require(AdminScope::UsersRead)?;
    let list = state.services.invitations().list(&state.services.request_tenant()).await?;
    let items = list
        .into_iter()
        .map(|i| InvitationView {
            id: i.id,
            note: i.note,
            created_at: i.created_at.secs(),
            expires_at: i.expires_at.secs(),
            used_at: i.used_at.map(|t| t.secs()),
            used_by: i.used_by.map(|s| s.to_string()),
        })
        .collect();
    Ok(no_store(axum::Json(InvitationList { items }).into_response()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvitationBody {
    /// For whom (shown in the list).
    #[schema(pattern = r"^[^\x00-\x1f\x7f-\x9f]{0,200}$")]
    pub note: Option<String>,
    /// How long the link works, in seconds (default `registration.invitation_lifetime`).
    #[serde(default, deserialize_with = "whole_seconds")]
    #[schema(value_type = Option<u64>, minimum = 60, maximum = 31_536_000)]
    pub lifetime_seconds: Option<u64>,
}

/// A new invitation with its sign-up link: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedInvitationView {
    pub id: String,
    /// `null` when a create is answered again for its `Idempotency-Key` (never kept).
    pub link: Option<String>,
    pub expires_at: i64,
}

#[utoipa::path(post, path = "/invitations", tag = "catalog", request_body = NewInvitationBody,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes a retried create return the first response")),
    description = "Creates a sign-up invitation; the answer holds its link, shown only here. Needs `admin:users:write`.",
    responses((status = 201, body = CreatedInvitationView, headers(("Location" = String))),
        (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn create_invitation(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::UsersWrite)?.clone();
    let given = json::<NewInvitationBody>(&headers, &body)?;
    let note = given.note;
    if note.as_deref().is_some_and(|n| n.chars().count() > 200 || n.chars().any(char::is_control)) {
        return Err(invalid("a note is at most 200 characters on one line"));
    }
    let lifetime = match given.lifetime_seconds {
        Some(s) if !(60..=31_536_000).contains(&s) => return Err(invalid("lifetime_seconds is 60 to 31536000")),
        other => other.map(Duration::from_secs),
    };
    idempotent_create(&state, &admin, &headers, "POST /invitations", &body, async {
        let tenant = state.services.request_tenant();
        let made = state.services.invitations().create(&tenant, note.as_deref(), lifetime, &admin.actor).await?;
        let link = format!("{}/signup?invite={}", state.issuer, made.token);
        let shown = CreatedInvitationView { id: made.id.clone(), link: Some(link), expires_at: made.expires_at.secs() };
        let without = CreatedInvitationView { id: made.id.clone(), link: None, expires_at: made.expires_at.secs() };
        Ok(Created {
            location: format!("{}/invitations", super::base(&state)),
            etag: None,
            body: serde_json::to_string(&shown).unwrap_or_default(),
            replay_body: Some(serde_json::to_string(&without).unwrap_or_default()),
        })
    })
    .await
}

#[utoipa::path(delete, path = "/invitations/{id}", tag = "catalog", params(("id" = String, Path)),
    description = "Revokes an unused invitation. Needs `admin:users:write`.",
    responses((status = 204), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn revoke_invitation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::UsersWrite)?;
    state.services.invitations().revoke(&state.services.request_tenant(), &id, &admin.actor).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
