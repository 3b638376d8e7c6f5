//! `/roles`, `/groups` and who holds them. No caller hands out an admin right it does not
//! hold itself, through a role's entitlements or a membership.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use latchkey_core::domain::{AdminScope, ClientId, Entitlement, GroupName, RoleName, SubjectId};
use latchkey_core::records::{Group, Membership, NewRole, Role, RolePatch};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::idempotency::{Created, idempotent_create};
use super::problem::{Kind, Problem, ProblemBody, invalid};
use super::request::{etag_of, if_match, json, no_store, tagged};
use crate::state::AppState;

fn role_name(raw: &str) -> Result<RoleName, Problem> {
    RoleName::parse(raw).map_err(|_| Problem::new(Kind::NotFound, format!("no role `{raw}`")))
}

fn group_name(raw: &str) -> Result<GroupName, Problem> {
    GroupName::parse(raw).map_err(|_| Problem::new(Kind::NotFound, format!("no group `{raw}`")))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleView {
    pub name: String,
    /// The client this role belongs to; `null` for a tenant-wide role.
    pub application: Option<String>,
    pub description: String,
    pub entitlements: Vec<String>,
    /// Latchkey's own (`latchkey-admin`, `latchkey-auditor`): never changed or deleted.
    pub built_in: bool,
    pub created_at: i64,
}

impl From<&Role> for RoleView {
    fn from(r: &Role) -> Self {
        Self {
            name: r.name.to_string(),
            application: r.application.as_ref().map(ToString::to_string),
            description: r.description.clone(),
            entitlements: r.entitlements.iter().map(ToString::to_string).collect(),
            built_in: latchkey_service::admin::is_built_in_role(&r.name),
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleList {
    pub items: Vec<RoleView>,
}

#[utoipa::path(get, path = "/roles", tag = "access",
    description = "Every role, by name. Needs `admin:access:read`.",
    responses((status = 200, body = RoleList), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list_roles(State(state): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    caller.require(AdminScope::AccessRead)?;
    let roles = state.services.access().roles(&state.services.request_tenant()).await?;
    Ok(no_store(axum::Json(RoleList { items: roles.iter().map(RoleView::from).collect() }).into_response()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRoleBody {
    /// Lowercase letters and digits, then also `. _ : -`; not beginning with `latchkey-`.
    #[schema(pattern = r"^(?!latchkey-)[a-z0-9][a-z0-9._:-]{0,63}$")]
    pub name: String,
    /// A registered client's id, for an application role (which confers no admin right).
    #[schema(pattern = "^[A-Za-z0-9._~-]{1,128}$")]
    pub application: Option<String>,
    #[serde(default)]
    #[schema(pattern = r"^[^\x00-\x1f\x7f-\x9f]{0,500}$")]
    pub description: String,
    #[serde(default)]
    #[schema(value_type = Vec<super::schema::EntitlementName>, max_items = 100)]
    pub entitlements: Vec<String>,
}

/// Entitlements as given, each once.
fn entitlements(raw: &[String]) -> Result<Vec<Entitlement>, Problem> {
    if raw.len() > 100 {
        return Err(invalid("a role has at most 100 entitlements"));
    }
    let parsed: std::collections::BTreeSet<Entitlement> =
        raw.iter().map(|e| Entitlement::parse(e).map_err(invalid)).collect::<Result<_, _>>()?;
    Ok(parsed.into_iter().collect())
}

#[utoipa::path(post, path = "/roles", tag = "access", request_body = NewRoleBody,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes a retried create return the first response")),
    description = "Creates a role. Admin entitlements only on tenant-wide roles, and only those you hold. Needs `admin:access:write`.",
    responses((status = 201, body = RoleView, headers(("Location" = String))),
        (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn create_role(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::AccessWrite)?.clone();
    let given = json::<NewRoleBody>(&headers, &body)?;
    let new = NewRole {
        name: RoleName::parse(&given.name).map_err(invalid)?,
        application: given.application.as_deref().map(ClientId::parse).transpose().map_err(invalid)?,
        description: given.description,
        entitlements: entitlements(&given.entitlements)?,
    };
    admin.may_confer(new.entitlements.iter().map(Entitlement::as_str))?;
    if let Some(app) = &new.application
        && state.services.clients().get(&state.services.request_tenant(), app).await?.is_none()
    {
        return Err(Problem::new(Kind::NotFound, format!("no client `{app}` for an application role")));
    }
    idempotent_create(&state, &admin, &headers, "POST /roles", &body, async {
        let tenant = state.services.request_tenant();
        let role = state.services.access().create_role(&tenant, new, &admin.actor).await?;
        let shown = RoleView::from(&role);
        Ok(Created {
            location: format!("{}/roles/{}", super::base(&state), role.name),
            etag: Some(role.etag()),
            body: serde_json::to_string(&shown).unwrap_or_default(),
            replay_body: None,
        })
    })
    .await
}

/// The role with its `ETag` (the stored role's, which the store checks `If-Match` against).
fn shown_role(role: &Role) -> Response {
    let mut response = axum::Json(RoleView::from(role)).into_response();
    if let Ok(tag) = axum::http::HeaderValue::from_str(&role.etag()) {
        response.headers_mut().insert(axum::http::header::ETAG, tag);
    }
    no_store(response)
}

async fn find_role(state: &AppState, raw: &str) -> Result<Role, Problem> {
    let name = role_name(raw)?;
    let found = state.services.access().role(&state.services.request_tenant(), &name).await?;
    found.ok_or_else(|| Problem::new(Kind::NotFound, format!("no role `{raw}`")))
}

#[utoipa::path(get, path = "/roles/{name}", tag = "access", params(("name" = String, Path)),
    description = "One role, with its `ETag`. Needs `admin:access:read`.",
    responses((status = 200, body = RoleView, headers(("ETag" = String))),
        (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    caller.require(AdminScope::AccessRead)?;
    Ok(shown_role(&find_role(&state, &name).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolePatchBody {
    #[schema(pattern = r"^[^\x00-\x1f\x7f-\x9f]{0,500}$")]
    pub description: Option<String>,
    /// The role's entitlements from now on (left out: as they are).
    #[schema(value_type = Option<Vec<super::schema::EntitlementName>>, max_items = 100)]
    pub entitlements: Option<Vec<String>>,
}

#[utoipa::path(patch, path = "/roles/{name}", tag = "access",
    params(("name" = String, Path),
        ("If-Match" = String, Header, pattern = r#"^"[!#-~]*"$"#, description = "The ETag the change is based on")),
    request_body = RolePatchBody,
    description = "Changes a role's description and sets its entitlements, if unchanged since it was read. Needs `admin:access:write`.",
    responses((status = 200, body = RoleView, headers(("ETag" = String))),
        (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn update_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::AccessWrite)?;
    let role = find_role(&state, &name).await?;
    let tag = if_match(&headers)?;
    let given = json::<RolePatchBody>(&headers, &body)?;
    let (add_entitlements, remove_entitlements) = match given.entitlements {
        Some(wanted) => {
            let wanted = entitlements(&wanted)?;
            let add = wanted.iter().filter(|e| !role.entitlements.contains(e)).cloned().collect();
            let remove = role.entitlements.iter().filter(|e| !wanted.contains(e)).cloned().collect();
            (add, remove)
        }
        None => (Vec::new(), Vec::new()),
    };
    // The whole request is checked before whether it is stale: a malformed one is 400.
    if given.description.as_deref().is_some_and(|d| !super::schema::is_description(d)) {
        return Err(invalid("a description is at most 500 characters without control characters"));
    }
    let patch = RolePatch {
        description: given.description,
        add_entitlements,
        remove_entitlements,
        if_match: Some(tag.clone()),
    };
    admin.may_confer(patch.add_entitlements.iter().chain(&patch.remove_entitlements).map(Entitlement::as_str))?;
    latchkey_service::admin::refuse_built_in(&role.name)?;
    if role.etag() != tag {
        return Err(Problem::new(Kind::PreconditionFailed, format!("role `{name}` changed since it was read")));
    }
    let tenant = state.services.request_tenant();
    let updated = state.services.access().update_role(&tenant, &role.name, patch, &admin.actor).await?;
    Ok(shown_role(&updated))
}

#[utoipa::path(delete, path = "/roles/{name}", tag = "access", params(("name" = String, Path)),
    description = "Deletes a role and every grant of it. Needs `admin:access:write`.",
    responses((status = 204), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn delete_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::AccessWrite)?;
    let role = find_role(&state, &name).await?;
    admin.may_confer(role.entitlements.iter().map(Entitlement::as_str))?;
    let tenant = state.services.request_tenant();
    state.services.access().delete_role(&tenant, &role.name, &admin.actor).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    pub name: String,
    pub description: String,
    /// The roles every member holds through the group.
    pub roles: Vec<String>,
    /// The members' subject ids.
    pub members: Vec<String>,
    pub created_at: i64,
}

impl From<&Group> for GroupView {
    fn from(g: &Group) -> Self {
        Self {
            name: g.name.to_string(),
            description: g.description.clone(),
            roles: g.roles.iter().map(ToString::to_string).collect(),
            members: g.members.iter().map(ToString::to_string).collect(),
            created_at: g.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupList {
    pub items: Vec<GroupView>,
}

#[utoipa::path(get, path = "/groups", tag = "access",
    description = "Every group, by name. Needs `admin:access:read`.",
    responses((status = 200, body = GroupList), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list_groups(State(state): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    caller.require(AdminScope::AccessRead)?;
    let groups = state.services.access().groups(&state.services.request_tenant()).await?;
    Ok(no_store(axum::Json(GroupList { items: groups.iter().map(GroupView::from).collect() }).into_response()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroupBody {
    #[schema(pattern = "^[a-z0-9][a-z0-9._:-]{0,63}$")]
    pub name: String,
    #[serde(default)]
    #[schema(pattern = r"^[^\x00-\x1f\x7f-\x9f]{0,500}$")]
    pub description: String,
}

#[utoipa::path(post, path = "/groups", tag = "access", request_body = NewGroupBody,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes a retried create return the first response")),
    description = "Creates a group. Needs `admin:access:write`.",
    responses((status = 201, body = GroupView, headers(("Location" = String))),
        (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::AccessWrite)?.clone();
    let given = json::<NewGroupBody>(&headers, &body)?;
    let name = GroupName::parse(&given.name).map_err(invalid)?;
    idempotent_create(&state, &admin, &headers, "POST /groups", &body, async {
        let tenant = state.services.request_tenant();
        let group = state.services.access().create_group(&tenant, &name, &given.description, &admin.actor).await?;
        let shown = GroupView::from(&group);
        Ok(Created {
            location: format!("{}/groups/{}", super::base(&state), group.name),
            etag: Some(etag_of(&shown)),
            body: serde_json::to_string(&shown).unwrap_or_default(),
            replay_body: None,
        })
    })
    .await
}

async fn find_group(state: &AppState, raw: &str) -> Result<Group, Problem> {
    let name = group_name(raw)?;
    let found = state.services.access().group(&state.services.request_tenant(), &name).await?;
    found.ok_or_else(|| Problem::new(Kind::NotFound, format!("no group `{raw}`")))
}

#[utoipa::path(get, path = "/groups/{name}", tag = "access", params(("name" = String, Path)),
    description = "One group with its roles and members. Needs `admin:access:read`.",
    responses((status = 200, body = GroupView, headers(("ETag" = String))),
        (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    caller.require(AdminScope::AccessRead)?;
    Ok(tagged(StatusCode::OK, &GroupView::from(&find_group(&state, &name).await?)))
}

#[utoipa::path(delete, path = "/groups/{name}", tag = "access", params(("name" = String, Path)),
    description = "Deletes a group (its members keep their direct roles). Needs `admin:access:write`.",
    responses((status = 204), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::AccessWrite)?;
    let group = find_group(&state, &name).await?;
    let tenant = state.services.request_tenant();
    for role in &group.roles {
        let link = Membership::GroupRole { group: group.name.clone(), role: role.clone() };
        admin
            .may_confer(state.services.admin().rights_conferred_by(&tenant, &link).await?.iter().map(String::as_str))?;
    }
    state.services.access().delete_group(&tenant, &group.name, &admin.actor).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn subject(raw: &str) -> Result<SubjectId, Problem> {
    SubjectId::parse(raw).map_err(|_| Problem::new(Kind::NotFound, format!("no user `{raw}`")))
}

/// Adds (`PUT`) or removes (`DELETE`) one link.
async fn set_link(state: &AppState, caller: &Caller, link: Membership, add: bool) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::AccessWrite)?;
    let tenant = state.services.request_tenant();
    let services = &state.services;
    // Giving or taking, only rights the caller holds: nobody demotes someone worth more.
    admin.may_confer(services.admin().rights_conferred_by(&tenant, &link).await?.iter().map(String::as_str))?;
    if add {
        services.access().link(&tenant, &link, &admin.actor).await?;
    } else {
        services.access().unlink(&tenant, &link, &admin.actor).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(put, path = "/users/{sub}/roles/{role}", tag = "access", params(("sub" = String, Path), ("role" = String, Path)),
    description = "Grants a role to a user directly (nothing happens when it is held already). Only a role whose admin rights you hold. Needs `admin:access:write`.",
    responses((status = 204), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn grant_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, role)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let link = Membership::UserRole { sub: subject(&sub)?, role: role_name(&role)? };
    set_link(&state, &caller, link, true).await
}

#[utoipa::path(delete, path = "/users/{sub}/roles/{role}", tag = "access", params(("sub" = String, Path), ("role" = String, Path)),
    description = "Takes a directly granted role from a user. Never the last `latchkey-admin`, nor your own. Needs `admin:access:write`.",
    responses((status = 204), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn revoke_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((sub, role)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let link = Membership::UserRole { sub: subject(&sub)?, role: role_name(&role)? };
    set_link(&state, &caller, link, false).await
}

#[utoipa::path(put, path = "/groups/{name}/members/{sub}", tag = "access", params(("name" = String, Path), ("sub" = String, Path)),
    description = "Adds a user to a group. Only a group whose roles' admin rights you hold. Needs `admin:access:write`.",
    responses((status = 204), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, sub)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let link = Membership::GroupMember { group: group_name(&name)?, sub: subject(&sub)? };
    set_link(&state, &caller, link, true).await
}

#[utoipa::path(delete, path = "/groups/{name}/members/{sub}", tag = "access", params(("name" = String, Path), ("sub" = String, Path)),
    description = "Removes a user from a group. Needs `admin:access:write`.",
    responses((status = 204), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, sub)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let link = Membership::GroupMember { group: group_name(&name)?, sub: subject(&sub)? };
    set_link(&state, &caller, link, false).await
}

#[utoipa::path(put, path = "/groups/{name}/roles/{role}", tag = "access", params(("name" = String, Path), ("role" = String, Path)),
    description = "Gives every member of a group a role. Only a role whose admin rights you hold. Needs `admin:access:write`.",
    responses((status = 204), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn add_group_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, role)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let link = Membership::GroupRole { group: group_name(&name)?, role: role_name(&role)? };
    set_link(&state, &caller, link, true).await
}

#[utoipa::path(delete, path = "/groups/{name}/roles/{role}", tag = "access", params(("name" = String, Path), ("role" = String, Path)),
    description = "Takes a role from a group. Needs `admin:access:write`.",
    responses((status = 204), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn remove_group_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, role)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let link = Membership::GroupRole { group: group_name(&name)?, role: role_name(&role)? };
    set_link(&state, &caller, link, false).await
}
