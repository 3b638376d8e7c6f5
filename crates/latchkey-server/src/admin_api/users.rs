//! `/users`: accounts, their state and their sessions. The API never returns a password
//! hash, a recovery code or an authenticator secret.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use latchkey_core::domain::{AdminScope, DisplayName, Email, GroupName, NewPassword, RoleName, SubjectId, Username};
use latchkey_core::records::{NewUser, SessionSelector, User, UserPatch, UserQuery};
use latchkey_service::users::{PasswordChange, StateChange};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::idempotency::{Created, idempotent_create};
use super::problem::{Kind, Problem, ProblemBody, invalid};
use super::request::{decode_cursor, encode_cursor, if_match, json, no_store, nullable, page_size, query};
use super::schema;
use crate::state::AppState;

/// A user as the admin API shows them.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub sub: String,
    pub username: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    /// Profile claims (OpenID Connect standard claims beyond name and email).
    #[schema(value_type = Object)]
    pub profile: serde_json::Value,
    pub has_password: bool,
    pub locked: bool,
    pub service_account: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            sub: u.sub.to_string(),
            username: u.username.to_string(),
            email: u.email.as_ref().map(ToString::to_string),
            email_verified: u.email_verified,
            name: u.name.as_ref().map(|n| n.as_str().to_owned()),
            profile: serde_json::to_value(&u.profile).unwrap_or_default(),
            has_password: u.has_password,
            locked: u.locked,
            service_account: u.service_account,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// One page of users, by username.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    pub items: Vec<UserView>,
    /// Give it as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserState {
    Active,
    Locked,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserKind {
    Person,
    ServiceAccount,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Usernames that begin with this (`%` and `_` match themselves).
    #[param(max_length = 64)]
    username_prefix: Option<String>,
    /// Exactly this email address.
    #[param(value_type = Option<schema::EmailText>)]
    email: Option<String>,
    #[param(inline)]
    state: Option<UserState>,
    #[param(inline)]
    kind: Option<UserKind>,
    /// Holders of this role, directly or through a group.
    #[param(pattern = "^[a-z0-9][a-z0-9._:-]{0,63}$")]
    role: Option<String>,
    /// Members of this group.
    #[param(pattern = "^[a-z0-9][a-z0-9._:-]{0,63}$")]
    group: Option<String>,
    /// 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// Only a `next_cursor` this API gave out (opaque).
    cursor: Option<String>,
}

impl ListParams {
    fn into_query(self, limit: u32) -> Result<UserQuery, Problem> {
        let prefix = match self.username_prefix {
            Some(p) if p.chars().count() > 64 => return Err(invalid("username_prefix is at most 64 characters")),
            Some(p) => Some(p.trim().to_lowercase()).filter(|p| !p.is_empty()),
            None => None,
        };
        let after = match self.cursor {
            Some(c) => Some(
                Username::parse(&decode_cursor(&c)?).map_err(|_| invalid("the cursor is not one this API gave out"))?,
            ),
            None => None,
        };
        Ok(UserQuery {
            username_prefix: prefix,
            email: self.email.as_deref().map(email).transpose()?,
            locked: self.state.map(|s| matches!(s, UserState::Locked)),
            service_account: self.kind.map(|k| matches!(k, UserKind::ServiceAccount)),
            role: self.role.as_deref().map(RoleName::parse).transpose().map_err(invalid)?,
            group: self.group.as_deref().map(GroupName::parse).transpose().map_err(invalid)?,
            after,
            // One more than asked, to know whether another page follows.
            limit: limit + 1,
        })
    }
}

#[utoipa::path(get, path = "/users", tag = "users", params(ListParams),
    description = "Users by username, one page at a time. Needs `admin:users:read`.",
    responses((status = 200, body = UserPage), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, caller: Caller, uri: Uri) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::UsersRead)?;
    let params: ListParams = query(&uri)?;
    let limit = page_size(params.limit)?;
    let q = params.into_query(limit)?;
    let tenant = state.services.request_tenant();
    let mut users = state.services.users().search(&tenant, &q).await?;
    let more = users.len() > limit as usize;
    users.truncate(limit as usize);
    let next_cursor = more.then(|| users.last().map(|u| encode_cursor(u.username.as_str()))).flatten();
    let read = serde_json::json!({"count": users.len()});
    state.services.admin().record_read(&tenant, admin, "#users", "list", read).await?;
    let page = UserPage { items: users.iter().map(UserView::from).collect(), next_cursor };
    Ok(no_store(axum::Json(page).into_response()))
}

/// A new user, without a password: set one (`PUT /users/{sub}/password`), or let them
/// recover the account by email. With mail configured, an unverified address is sent a
/// verification link.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    /// Letters, digits and `. _ - @` (Unicode letters too; kept lowercase).
    #[schema(value_type = schema::UsernameText)]
    pub username: String,
    pub email: Option<EmailBody>,
    /// A display name (any characters but control characters, at most 200).
    #[schema(value_type = Option<schema::DisplayNameText>)]
    pub name: Option<String>,
    /// A service account never signs in: it holds roles and API keys for a program.
    #[serde(default)]
    pub service_account: bool,
}

/// An email address and whether the operator vouches that it is the user's.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailBody {
    #[schema(value_type = schema::EmailText)]
    pub address: String,
    /// Not verified unless said (with mail configured, a verification link goes out).
    #[serde(default)]
    pub verified: bool,
}

impl EmailBody {
    fn parse(self) -> Result<(Email, bool), Problem> {
        Ok((email(&self.address)?, self.verified))
    }
}

// The admin API's own shapes (see `schema`), then the domain's rules.
fn username(raw: &str) -> Result<Username, Problem> {
    if !schema::is_username(raw) {
        return Err(invalid("a username is 1 to 64 ASCII letters, digits or . _ @ -"));
    }
    Username::parse(raw).map_err(invalid)
}

fn display_name(raw: &str) -> Result<DisplayName, Problem> {
    if !schema::is_display_name(raw) {
        return Err(invalid("a name is 1 to 200 characters without control characters or spaces at either end"));
    }
    DisplayName::parse(raw).map_err(invalid)
}

fn email(raw: &str) -> Result<Email, Problem> {
    if !schema::is_email(raw) {
        return Err(invalid("an email address is ASCII: name@example.com"));
    }
    Email::parse(raw).map_err(invalid)
}

impl NewUserBody {
    fn parse(self) -> Result<NewUser, Problem> {
        let email = self.email.map(EmailBody::parse).transpose()?;
        Ok(NewUser {
            sub: SubjectId::generate(),
            username: username(&self.username)?,
            email_verified: email.as_ref().is_some_and(|(_, verified)| *verified),
            email: email.map(|(address, _)| address),
            name: self.name.as_deref().map(display_name).transpose()?,
            profile: Default::default(),
            password_hash: None,
            service_account: self.service_account,
        })
    }
}

#[utoipa::path(post, path = "/users", tag = "users", request_body = NewUserBody,
    description = "Creates a user. Send `Idempotency-Key` to make a retry safe. Needs `admin:users:write`.",
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes a retried create return the first response (kept 24 hours)")),
    responses((status = 201, body = UserView, headers(("Location" = String), ("ETag" = String))),
        (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::UsersWrite)?.clone();
    let new = json::<NewUserBody>(&headers, &body)?.parse()?;
    idempotent_create(&state, &admin, &headers, "POST /users", &body, async {
        let tenant = state.services.request_tenant();
        let user = state.services.users().create(&tenant, new, &admin.actor).await?;
        verification_link(&state, &user, &admin.actor).await;
        Ok(Created {
            location: format!("{}/users/{}", super::base(&state), user.sub),
            body: serde_json::to_string(&UserView::from(&user)).unwrap_or_default(),
            etag: Some(user.etag()),
            replay_body: None,
        })
    })
    .await
}

/// Sends a new or changed address its verification link (when mail is configured and the
/// operator did not vouch for it). The change is made: a link that cannot go now (the
/// message limits, the outbox) is logged, and the user can ask for one again.
async fn verification_link(state: &AppState, user: &User, actor: &latchkey_core::records::Actor) {
    let tenant = state.services.request_tenant();
    if let Err(e) = state.services.email_verification().after_operator_change(&tenant, user, actor).await {
        tracing::warn!(error = %e, sub = %user.sub, "admin API: the verification link was not sent");
    }
}

/// The user `sub` names, if the caller may change them: not an account holding admin
/// rights the caller lacks (403).
pub(super) async fn managed(
    state: &AppState,
    caller: &latchkey_service::admin::AdminCaller,
    sub: &str,
) -> Result<User, Problem> {
    let user = find(state, sub).await?;
    state.services.admin().may_manage(&state.services.request_tenant(), caller, &user.sub).await?;
    Ok(user)
}

/// The user `sub` names, or 404.
pub(super) async fn find(state: &AppState, sub: &str) -> Result<User, Problem> {
    let not_found = || Problem::new(Kind::NotFound, format!("no user `{sub}`"));
    let sub = SubjectId::parse(sub).map_err(|_| not_found())?;
    let tenant = state.services.request_tenant();
    state.services.users().by_sub(&tenant, &sub).await?.ok_or_else(not_found)
}

/// The user with its `ETag`.
fn shown(user: &User, status: StatusCode) -> Response {
    let mut response = (status, axum::Json(UserView::from(user))).into_response();
    if let Ok(tag) = HeaderValue::from_str(&user.etag()) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    no_store(response)
}

#[utoipa::path(get, path = "/users/{sub}", tag = "users", params(("sub" = String, Path)),
    description = "One user, with its `ETag`. Needs `admin:users:read`.",
    responses((status = 200, body = UserView, headers(("ETag" = String))),
        (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get(State(state): State<AppState>, caller: Caller, Path(sub): Path<String>) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::UsersRead)?;
    let user = find(&state, &sub).await?;
    read(&state, admin, &user, "profile").await?;
    Ok(shown(&user, StatusCode::OK))
}

/// Changes to a user; a field left out stays as it is, `null` removes it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatchBody {
    /// A user always has one: it cannot be `null`.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = schema::UsernameText)]
    pub username: Option<Option<String>>,
    /// The address (the same one with `verified: true` marks it verified), or `null` to
    /// remove it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<EmailBody>)]
    pub email: Option<Option<EmailBody>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<schema::DisplayNameText>)]
    pub name: Option<Option<String>>,
}

impl UserPatchBody {
    fn parse(self, if_match: String) -> Result<UserPatch, Problem> {
        let email = match self.email {
            Some(Some(given)) => Some(Some(given.parse()?)),
            Some(None) => Some(None),
            None => None,
        };
        Ok(UserPatch {
            username: match self.username {
                Some(None) => return Err(invalid("a user always has a username: `null` cannot remove it")),
                Some(Some(name)) => Some(username(&name)?),
                None => None,
            },
            email_verified: email.as_ref().map(|e| e.as_ref().is_some_and(|(_, verified)| *verified)),
            email: email.map(|e| e.map(|(address, _)| address)),
            name: self.name.map(|n| n.as_deref().map(display_name).transpose()).transpose()?,
            profile: None,
            if_match: Some(if_match),
        })
    }
}

#[utoipa::path(patch, path = "/users/{sub}", tag = "users", params(("sub" = String, Path),
        ("If-Match" = String, Header, pattern = r#"^"[!#-~]*"$"#, description = "The ETag the change is based on")),
    request_body = UserPatchBody,
    description = "Changes a user, if unchanged since it was read (`If-Match`). Needs `admin:users:write`.",
    responses((status = 200, body = UserView, headers(("ETag" = String))),
        (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(sub): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::UsersWrite)?;
    let user = managed(&state, admin, &sub).await?;
    let tag = if_match(&headers)?;
    let patch = json::<UserPatchBody>(&headers, &body)?.parse(tag)?;
    let tenant = state.services.request_tenant();
    let updated = state.services.users().update(&tenant, &user.sub, patch, &admin.actor).await?;
    if updated.email != user.email {
        verification_link(&state, &updated, &admin.actor).await;
    }
    Ok(shown(&updated, StatusCode::OK))
}

/// What an erasure removed, when and by whom; none of the erased data.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureReceiptView {
    /// The receipt's id: the audit log records the erasure as `user.erased` on `#erasure:ID`.
    pub id: String,
    /// The keyed pseudonym the audit log knows the person by.
    pub subject_ref: String,
    /// Seconds since the epoch.
    pub erased_at: i64,
    /// Who erased the person (`admin-api:CLIENT…`, `cli`, or `self` for the person).
    pub by: String,
    /// How many records of each kind went (`passkeys`, `sessions`, `consents`, …).
    pub removed: std::collections::BTreeMap<String, u64>,
}

impl From<latchkey_core::records::ErasureReceipt> for ErasureReceiptView {
    fn from(r: latchkey_core::records::ErasureReceipt) -> Self {
        Self { id: r.id, subject_ref: r.subject_ref, erased_at: r.erased_at.secs(), by: r.by, removed: r.removed }
    }
}

#[utoipa::path(delete, path = "/users/{sub}", tag = "users", params(("sub" = String, Path)),
    description = "Erases a user (GDPR Art. 17): the account and everything tied to it in one transaction (sessions, with \
        back-channel logout; refresh tokens, and every client that got an access token refuses it; consents and their \
        history; factors; linked identities; API keys; invitations it used; queued messages; throttle entries), and the key \
        their audit entries are sealed under. Answers with the receipt. Never yourself, nor the last `latchkey-admin`. \
        Needs `admin:users:write`.",
    responses((status = 200, body = ErasureReceiptView), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(sub): Path<String>,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::UsersWrite)?;
    let user = managed(&state, admin, &sub).await?;
    let tenant = state.services.request_tenant();
    let receipt = state.services.erasure().erase(&tenant, &user.sub, &admin.actor).await?;
    Ok(no_store(axum::Json(ErasureReceiptView::from(receipt)).into_response()))
}

#[utoipa::path(post, path = "/users/{sub}/lock", tag = "users", params(("sub" = String, Path)),
    description = "Locks a user: they are signed out everywhere and their refresh tokens revoked. Needs `admin:users:write`.",
    responses((status = 200, body = UserView, headers(("ETag" = String))),
        (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn lock(State(state): State<AppState>, caller: Caller, Path(sub): Path<String>) -> Result<Response, Problem> {
    let user = change_state(&state, &caller, &sub, StateChange::Lock).await?;
    Ok(shown(&user, StatusCode::OK))
}

#[utoipa::path(post, path = "/users/{sub}/unlock", tag = "users", params(("sub" = String, Path)),
    description = "Unlocks a user. Needs `admin:users:write`.",
    responses((status = 200, body = UserView, headers(("ETag" = String))),
        (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn unlock(
    State(state): State<AppState>,
    caller: Caller,
    Path(sub): Path<String>,
) -> Result<Response, Problem> {
    let user = change_state(&state, &caller, &sub, StateChange::Unlock).await?;
    Ok(shown(&user, StatusCode::OK))
}

/// Locks or unlocks; returns the user as they are after.
async fn change_state(state: &AppState, caller: &Caller, sub: &str, change: StateChange) -> Result<User, Problem> {
    let admin = caller.require(AdminScope::UsersWrite)?;
    let user = managed(state, admin, sub).await?;
    let tenant = state.services.request_tenant();
    let users = state.services.users();
    users.change_state(&tenant, &user.sub, change, &admin.actor).await?;
    users.by_sub(&tenant, &user.sub).await?.ok_or_else(|| Problem::new(Kind::NotFound, format!("no user `{sub}`")))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    /// The new password: 8 to 256 characters through the admin API (and at most 1024 bytes
    /// as UTF-8).
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
}

#[utoipa::path(put, path = "/users/{sub}/password", tag = "users", params(("sub" = String, Path)),
    request_body = PasswordBody,
    description = "Sets a user's password (an operator's reset). With `sessions.end_other_sessions_on_password_change` (on by default) every session of theirs ends and their refresh tokens are revoked. Needs `admin:users:write`.",
    responses((status = 204), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn set_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(sub): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::UsersWrite)?;
    let user = managed(&state, admin, &sub).await?;
    let given = json::<PasswordBody>(&headers, &body)?;
    if given.password.chars().count() > 256 {
        return Err(Problem::new(Kind::Invalid, "through the admin API, a password is at most 256 characters"));
    }
    let password = NewPassword::parse(given.password).map_err(|e| Problem::new(Kind::Invalid, e.to_string()))?;
    let tenant = state.services.request_tenant();
    let users = state.services.users();
    users.set_password(&tenant, &user.sub, password, PasswordChange::ByOperator, &admin.actor).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A live browser session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub sid: String,
    pub auth_time: i64,
    pub acr: String,
    pub amr: Vec<String>,
    pub created_at: i64,
    pub last_active_at: i64,
    pub expires_at: i64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// The clients it signed into.
    pub clients: Vec<String>,
}

#[utoipa::path(get, path = "/users/{sub}/sessions", tag = "users", params(("sub" = String, Path)),
    description = "A user's live sessions, newest first. Needs `admin:users:read`.",
    responses((status = 200, body = Vec<SessionView>), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn sessions(
    State(state): State<AppState>,
    caller: Caller,
    Path(sub): Path<String>,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::UsersRead)?;
    let user = find(&state, &sub).await?;
    read(&state, admin, &user, "sessions").await?;
    let tenant = state.services.request_tenant();
    let idle = state.config.sessions.idle_timeout;
    let list = state.services.sessions().of_user(&tenant, &user.sub, state.clock.now(), idle).await?;
    let views: Vec<SessionView> = list
        .into_iter()
        .map(|i| SessionView {
            sid: i.session.sid,
            auth_time: i.session.auth_time.secs(),
            acr: i.session.acr,
            amr: i.session.amr,
            created_at: i.session.created_at.secs(),
            last_active_at: i.session.last_active_at.secs(),
            expires_at: i.session.expires_at.secs(),
            user_agent: i.session.user_agent,
            ip: i.session.ip,
            clients: i.clients.iter().map(ToString::to_string).collect(),
        })
        .collect();
    Ok(no_store(axum::Json(views).into_response()))
}

#[utoipa::path(delete, path = "/users/{sub}/sessions", tag = "users", params(("sub" = String, Path)),
    description = "Ends every session of a user (back-channel logout to their clients). Needs `admin:users:write`.",
    responses((status = 204), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn end_sessions(
    State(state): State<AppState>,
    caller: Caller,
    Path(sub): Path<String>,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::UsersWrite)?;
    let user = managed(&state, admin, &sub).await?;
    let tenant = state.services.request_tenant();
    let which = SessionSelector::User { sub: user.sub.clone(), except_sid: None };
    state.services.sessions().end(&tenant, &which, "revoked_by_admin", false, &admin.actor).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Records that the caller read `what` of `user` (every read of a person's data is on the
/// audit log).
pub(super) async fn read(
    state: &AppState,
    admin: &latchkey_service::admin::AdminCaller,
    user: &latchkey_core::records::User,
    what: &str,
) -> Result<(), Problem> {
    let tenant = state.services.request_tenant();
    Ok(state.services.admin().record_read(&tenant, admin, user.sub.as_str(), what, serde_json::json!({})).await?)
}
