//! API keys of any owner (`admin:users:*`) and Latchkey's signing keys (`admin:keys`). A key's
//! secret is shown once, in the answer that made it; no caller gives a key an admin right
//! it does not hold itself.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use latchkey_core::domain::{AdminScope, ApiKeyId, RoutePattern, ScopeName, SigningAlg, SubjectId, parse_method};
use latchkey_core::records::ApiKey;
use latchkey_service::admin::AdminCaller;
use latchkey_service::api_keys::ApiKeySpec;
use latchkey_service::keys::KeyServiceError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::idempotency::{Created, idempotent_create};
use super::problem::{Kind, Problem, ProblemBody, invalid};
use super::request::{json, no_store, query};
use crate::state::AppState;

/// An API key, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    /// `lk_` and 12 characters: the key's public part.
    pub id: String,
    pub owner: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub routes: Vec<String>,
    pub methods: Vec<String>,
    pub audience: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    /// Until when the secret from before the last rotation still works.
    pub previous_valid_until: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl From<&ApiKey> for ApiKeyView {
    fn from(k: &ApiKey) -> Self {
        Self {
            id: k.id.to_string(),
            owner: k.owner.to_string(),
            name: k.name.clone(),
            scopes: k.scopes.iter().map(ToString::to_string).collect(),
            routes: k.routes.iter().map(|r| r.as_str().to_owned()).collect(),
            methods: k.methods.clone(),
            audience: k.audience.clone(),
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            previous_valid_until: k.previous_valid_until,
            revoked_at: k.revoked_at,
        }
    }
}

/// A key just made or rotated, with its secret: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedKeyView {
    pub key: ApiKeyView,
    /// The whole key; `null` when a create is answered again for its `Idempotency-Key` (the
    /// secret is never kept).
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub items: Vec<ApiKeyView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ApiKeyParams {
    /// Only this owner's keys (a subject id).
    #[param(pattern = "^[A-Za-z0-9._~:+-]{1,255}$")]
    owner: Option<String>,
}

#[utoipa::path(get, path = "/api-keys", tag = "api-keys", params(ApiKeyParams),
    description = "Live API keys, of everyone or of one owner. Needs `admin:users:read`.",
    responses((status = 200, body = ApiKeyList), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, caller: Caller, uri: Uri) -> Result<Response, Problem> {
    caller.require(AdminScope::UsersRead)?;
    let params: ApiKeyParams = query(&uri)?;
    let owner = params.owner.as_deref().map(SubjectId::parse).transpose().map_err(invalid)?;
    let keys = state.services.api_keys().list(&state.services.request_tenant(), owner.as_ref()).await?;
    Ok(no_store(axum::Json(ApiKeyList { items: keys.iter().map(ApiKeyView::from).collect() }).into_response()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKeyBody {
    /// 1 to 64 characters on one line.
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}[A-Za-z0-9._-]?$")]
    pub name: String,
    /// At most the owner's rights (their tenant-wide roles' entitlements; for a person also
    /// `openid`, `profile`, `email`), and no admin right you do not hold.
    #[schema(value_type = Vec<super::schema::ScopeToken>, min_items = 1, max_items = 32)]
    pub scopes: Vec<String>,
    /// Paths it may be used for (`/api/reports/*`); none: any.
    #[serde(default)]
    #[schema(value_type = Vec<super::schema::RouteText>, max_items = 32)]
    pub routes: Vec<String>,
    /// HTTP methods it may be used with; none: any.
    #[serde(default)]
    #[schema(value_type = Vec<super::schema::MethodName>)]
    pub methods: Vec<String>,
    /// It stops working this many seconds from now (none: never).
    #[serde(default, deserialize_with = "super::request::whole_seconds")]
    #[schema(minimum = 60, maximum = 315_360_000)]
    pub expires_in: Option<u64>,
    /// The registered API resource it is for (or the admin API's audience).
    pub audience: Option<String>,
}

#[utoipa::path(post, path = "/users/{sub}/api-keys", tag = "api-keys", params(("sub" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes a retried create return the first response")),
    request_body = NewApiKeyBody,
    description = "Makes an API key for a user or service account; the answer holds its secret, shown only here. Needs `admin:users:write`.",
    responses((status = 201, body = IssuedKeyView, headers(("Location" = String))),
        (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(sub): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::UsersWrite)?.clone();
    no_key_from_a_key(&admin)?;
    let owner = super::users::managed(&state, &admin, &sub).await?.sub;
    let given = json::<NewApiKeyBody>(&headers, &body)?;
    let spec = ApiKeySpec {
        name: given.name,
        scopes: given.scopes.iter().map(|s| ScopeName::parse(s).map_err(invalid)).collect::<Result<_, _>>()?,
        routes: given.routes.iter().map(|r| RoutePattern::parse(r).map_err(invalid)).collect::<Result<_, _>>()?,
        methods: given.methods.iter().map(|m| parse_method(m).map_err(invalid)).collect::<Result<_, _>>()?,
        expires_at: match given.expires_in {
            Some(s) if !(60..=315_360_000).contains(&s) => {
                return Err(invalid("expires_in is 60 seconds to 10 years"));
            }
            Some(s) => Some(state.clock.now().plus(Duration::from_secs(s))),
            None => None,
        },
        audience: given.audience,
    };
    admin.may_confer(spec.scopes.iter().map(ScopeName::as_str))?;
    // The secret is never kept for a replay: a retried create gets the key without it.
    idempotent_create(&state, &admin, &headers, &format!("POST /users/{owner}/api-keys"), &body, async {
        let tenant = state.services.request_tenant();
        let issued = state.services.api_keys().create(&tenant, &owner, spec, &admin.actor).await?;
        let without = IssuedKeyView { key: ApiKeyView::from(&issued.key), secret: None };
        let shown = IssuedKeyView { key: ApiKeyView::from(&issued.key), secret: Some(issued.secret) };
        Ok(Created {
            location: format!("{}/api-keys?owner={}", super::base(&state), issued.key.owner),
            etag: None,
            body: serde_json::to_string(&shown).unwrap_or_default(),
            replay_body: Some(serde_json::to_string(&without).unwrap_or_default()),
        })
    })
    .await
}

/// A key makes no keys: a leaked key, limited in time or paths, would mint itself a key
/// without those limits.
fn no_key_from_a_key(admin: &AdminCaller) -> Result<(), Problem> {
    match admin.key {
        Some(_) => Err(Problem::new(Kind::Forbidden, "an API key cannot make or rotate API keys: use a token")),
        None => Ok(()),
    }
}

fn key_id(raw: &str) -> Result<ApiKeyId, Problem> {
    ApiKeyId::parse(raw).map_err(|_| Problem::new(Kind::NotFound, format!("no API key `{raw}`")))
}

/// The live key `raw` names, if the caller may act on it: its owner is no account holding
/// admin rights the caller lacks, and it carries none (a rotation hands over its rights).
async fn managed_key(state: &AppState, admin: &AdminCaller, raw: &str) -> Result<ApiKeyId, Problem> {
    let id = key_id(raw)?;
    let tenant = state.services.request_tenant();
    let keys = state.services.api_keys().list(&tenant, None).await?;
    let key = keys
        .into_iter()
        .find(|k| k.id == id)
        .ok_or_else(|| Problem::new(Kind::NotFound, format!("no API key `{raw}`")))?;
    state.services.admin().may_manage(&tenant, admin, &key.owner).await?;
    admin.may_confer(key.scopes.iter().map(ScopeName::as_str))?;
    Ok(id)
}

#[utoipa::path(delete, path = "/api-keys/{id}", tag = "api-keys", params(("id" = String, Path)),
    description = "Revokes an API key: every node refuses it within the change bound. Needs `admin:users:write`.",
    responses((status = 200, body = ApiKeyView), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::UsersWrite)?;
    let id = managed_key(&state, admin, &id).await?;
    let key = state.services.api_keys().revoke(&state.services.request_tenant(), &id, &admin.actor).await?;
    Ok(no_store(axum::Json(ApiKeyView::from(&key)).into_response()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyBody {
    /// How long the old secret keeps working, in seconds (at most 7 days; default 0).
    #[serde(default, deserialize_with = "super::request::whole_seconds")]
    #[schema(value_type = u64, minimum = 0, maximum = 604800)]
    pub grace_seconds: Option<u64>,
}

#[utoipa::path(post, path = "/api-keys/{id}/rotate", tag = "api-keys", params(("id" = String, Path)),
    request_body = RotateKeyBody,
    description = "Gives an API key a new secret (shown only here); the old one works for the grace period. Needs `admin:users:write`.",
    responses((status = 200, body = IssuedKeyView), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::UsersWrite)?;
    no_key_from_a_key(admin)?;
    let id = managed_key(&state, admin, &id).await?;
    let given = json::<RotateKeyBody>(&headers, &body)?;
    let grace = Duration::from_secs(given.grace_seconds.unwrap_or(0));
    let issued = state.services.api_keys().rotate(&state.services.request_tenant(), &id, grace, &admin.actor).await?;
    let shown = IssuedKeyView { key: ApiKeyView::from(&issued.key), secret: Some(issued.secret) };
    Ok(no_store(axum::Json(shown).into_response()))
}

/// A signing key (never its private part).
#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeyView {
    pub kid: String,
    pub alg: String,
    /// `next`, `active` or `retired`.
    pub state: String,
    pub created_at: String,
    pub activated_at: Option<String>,
    pub retired_at: Option<String>,
    pub publish_until: Option<String>,
    /// In the JWKS now.
    pub published: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeyList {
    pub items: Vec<SigningKeyView>,
}

fn key_problem(e: KeyServiceError) -> Problem {
    match e {
        KeyServiceError::Store(e) => e.into(),
        KeyServiceError::Crypto(cause) => {
            tracing::error!(error = %cause, "admin API: signing key failure");
            Problem::new(Kind::Unavailable, "the server failed; try again")
        }
        KeyServiceError::NextKeyTooYoung { .. } => {
            Problem::new(Kind::Conflict, e.to_string().replace("--force", "`force`"))
        }
        KeyServiceError::UnknownKey(_) => Problem::new(Kind::NotFound, e.to_string()),
        KeyServiceError::NotRetired { .. } => Problem::new(Kind::Conflict, e.to_string().replace("--force", "`force`")),
        other => Problem::new(Kind::Conflict, other.to_string()),
    }
}

#[utoipa::path(get, path = "/signing-keys", tag = "signing-keys",
    description = "Latchkey's signing keys: the next, the active and the retired ones. Needs `admin:keys`.",
    responses((status = 200, body = SigningKeyList), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn signing_keys(State(state): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    caller.require(AdminScope::Keys)?;
    let keys = state.services.keys.list().await.map_err(key_problem)?;
    let items = keys
        .into_iter()
        .map(|k| SigningKeyView {
            kid: k.kid,
            alg: k.alg.to_string(),
            state: serde_json::to_value(k.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
            created_at: k.created_at,
            activated_at: k.activated_at,
            retired_at: k.retired_at,
            publish_until: k.publish_until,
            published: k.published,
        })
        .collect();
    Ok(no_store(axum::Json(SigningKeyList { items }).into_response()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSigningKeyBody {
    /// `RS256`, `ES256` or `EdDSA`.
    #[schema(pattern = "^(?:RS256|ES256|EdDSA)$")]
    pub alg: String,
    /// Rotate even if the next key was published too recently (after a key compromise).
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSigningKey {
    /// The key that signs from now on.
    pub active: String,
}

#[utoipa::path(post, path = "/signing-keys/rotate", tag = "signing-keys", request_body = RotateSigningKeyBody,
    description = "Promotes the next key of an algorithm and publishes a new next key; the old active key is retired and stays published until its tokens expire. Needs `admin:keys`.",
    responses((status = 200, body = RotatedSigningKey), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn rotate_signing_key(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::Keys)?;
    let given = json::<RotateSigningKeyBody>(&headers, &body)?;
    let alg = SigningAlg::parse(&given.alg).map_err(invalid)?;
    let active = state.services.keys.rotate(alg, given.force, &admin.actor).await.map_err(key_problem)?;
    Ok(no_store((StatusCode::OK, axum::Json(RotatedSigningKey { active })).into_response()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetiredSigningKey {
    pub kid: String,
    /// Whether the key was still published (`false`: it had been retired already).
    pub was_published: bool,
}

#[utoipa::path(post, path = "/signing-keys/{kid}/retire", tag = "signing-keys", params(("kid" = String, Path)),
    description = "Stops publishing a retired key at once (after a compromise): the tokens it signed stop verifying. The active key is rotated first. Needs `admin:keys`.",
    responses((status = 200, body = RetiredSigningKey), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn retire_signing_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(kid): Path<String>,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::Keys)?;
    let was_published = state.services.keys.retire(&kid, &admin.actor).await.map_err(key_problem)?;
    Ok(no_store(axum::Json(RetiredSigningKey { kid, was_published }).into_response()))
}
