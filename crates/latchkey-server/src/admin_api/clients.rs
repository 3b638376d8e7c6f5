//! `/clients`: OAuth clients with every setting, their secrets and logout URIs. The rules a
//! client's settings meet are the client service's; here a caller may change only a client
//! whose admin scopes it holds, and never takes admin rights from the client it calls with.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_core::domain::{AdminScope, ClientId, ClientKind, GrantType, SigningAlg, TokenEndpointAuthMethod};
use latchkey_core::records::{Client, ClientPatch, NewClient};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::client_body::{self, AccessBody, ClientView, SessionBody};
use super::idempotency::{Created, idempotent_create};
use super::problem::{Kind, Problem, ProblemBody, invalid};
use super::request::{if_match, json, no_store, nullable, nullable_seconds, whole_seconds};
use super::schema;
use crate::state::AppState;

/// The settings both a new client and a change take; a field left out keeps what is there
/// (for a new client, the default), `null` removes what may be removed.
macro_rules! client_settings {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Deserialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            #[schema(value_type = Option<Vec<schema::UriText>>, max_items = 50)]
            pub redirect_uris: Option<Vec<String>>,
            #[schema(value_type = Option<Vec<schema::UriText>>, max_items = 50)]
            pub post_logout_redirect_uris: Option<Vec<String>>,
            #[schema(value_type = Option<Vec<schema::GrantTypeName>>, min_items = 1, max_items = 3)]
            pub grant_types: Option<Vec<GrantType>>,
            /// Scopes the client may ask for; each must exist.
            #[schema(value_type = Option<Vec<schema::ScopeToken>>, max_items = 100)]
            pub scopes: Option<Vec<String>>,
            #[schema(value_type = Option<schema::AuthMethodName>)]
            pub token_endpoint_auth_method: Option<TokenEndpointAuthMethod>,
            /// One of the server's `keys.algorithms`.
            #[schema(value_type = Option<schema::SigningAlgName>)]
            pub id_token_signed_response_alg: Option<SigningAlg>,
            pub first_party: Option<bool>,
            /// May be given admin scopes.
            pub admin_client: Option<bool>,
            /// `private_key_jwt`: the client's public keys (a JWK set); replaces a `jwks_uri`.
            #[serde(default, deserialize_with = "nullable")]
            #[schema(value_type = Option<Object>)]
            pub jwks: Option<Option<serde_json::Value>>,
            /// `private_key_jwt`: where the keys are fetched (https); replaces a `jwks`.
            #[serde(default, deserialize_with = "nullable")]
            #[schema(value_type = Option<schema::UriText>)]
            pub jwks_uri: Option<Option<String>>,
            pub allow_insecure_no_pkce: Option<bool>,
            pub allow_legacy_assertion_audience: Option<bool>,
            /// Development only: plain-http redirect URIs on this machine.
            pub allow_insecure_redirect_uris: Option<bool>,
            /// Seconds; `null` goes back to the server's setting.
            #[serde(default, deserialize_with = "nullable_seconds")]
            #[schema(value_type = Option<u64>, minimum = 1, maximum = 86_400)]
            pub access_token_lifetime: Option<Option<u64>>,
            /// Seconds; `null` goes back to the server's setting.
            #[serde(default, deserialize_with = "nullable_seconds")]
            #[schema(value_type = Option<u64>, minimum = 0, maximum = 300)]
            pub refresh_reuse_grace: Option<Option<u64>>,
            pub session: Option<SessionBody>,
            pub access: Option<AccessBody>,
        }
    };
}

client_settings!(
    /// A client to register.
    NewClientBody {
        /// Default: a random id.
        #[schema(value_type = Option<schema::ClientIdText>)]
        client_id: Option<String>,
        /// Shown on the consent page.
        #[schema(value_type = schema::DisplayNameText)]
        name: String,
        /// Default: `confidential`.
        #[schema(value_type = Option<schema::ClientKindName>)]
        kind: Option<ClientKind>,
    }
);

client_settings!(
    /// Changes to a client.
    ClientPatchBody {
        #[schema(value_type = Option<schema::DisplayNameText>)]
        name: Option<String>,
    }
);

fn seconds(raw: Option<Option<u64>>) -> Option<Option<i64>> {
    raw.map(|s| s.map(|s| i64::try_from(s).unwrap_or(i64::MAX)))
}

fn name(raw: &str) -> Result<String, Problem> {
    if !schema::is_display_name(raw) {
        return Err(invalid("name: 1 to 200 characters, no control characters, no space at either end"));
    }
    Ok(raw.to_owned())
}

impl NewClientBody {
    fn parse(self, default_alg: SigningAlg) -> Result<NewClient, Problem> {
        let kind = self.kind.unwrap_or(ClientKind::Confidential);
        let (jwks, jwks_uri) = client_body::keys(self.jwks, self.jwks_uri)?.unwrap_or_default();
        let scopes = self.scopes.unwrap_or_else(|| ["openid", "profile", "email"].map(String::from).to_vec());
        Ok(NewClient {
            client_id: match &self.client_id {
                Some(raw) => ClientId::parse(raw).map_err(|e| invalid(format!("client_id: {e}")))?,
                None => ClientId::generate(),
            },
            name: name(&self.name)?,
            kind,
            secret_hash: None,
            redirect_uris: client_body::redirect_uris("redirect_uris", &self.redirect_uris.unwrap_or_default())?,
            post_logout_redirect_uris: client_body::redirect_uris(
                "post_logout_redirect_uris",
                &self.post_logout_redirect_uris.unwrap_or_default(),
            )?,
            grant_types: self
                .grant_types
                .unwrap_or_else(|| vec![GrantType::AuthorizationCode, GrantType::RefreshToken]),
            allowed_scopes: client_body::scopes(&scopes)?,
            token_endpoint_auth_method: self.token_endpoint_auth_method.unwrap_or_else(|| kind.default_auth_method()),
            id_token_signed_response_alg: self.id_token_signed_response_alg.unwrap_or(default_alg),
            first_party: self.first_party.unwrap_or(false),
            jwks,
            jwks_uri,
            allow_insecure_no_pkce: self.allow_insecure_no_pkce.unwrap_or(false),
            allow_legacy_assertion_audience: self.allow_legacy_assertion_audience.unwrap_or(false),
            access_token_lifetime: seconds(self.access_token_lifetime).flatten(),
            session_policy: self.session.unwrap_or_default().apply(&Default::default())?,
            access_policy: self.access.unwrap_or_default().apply(&Default::default())?,
            allow_insecure_redirect_uris: self.allow_insecure_redirect_uris.unwrap_or(false),
            refresh_reuse_grace: seconds(self.refresh_reuse_grace).flatten(),
            admin_client: self.admin_client.unwrap_or(false),
        })
    }
}

impl ClientPatchBody {
    fn parse(self, current: &Client, if_match: String) -> Result<ClientPatch, Problem> {
        let keys = client_body::keys(self.jwks, self.jwks_uri)?;
        let uris = |name, raw: Option<Vec<String>>| raw.map(|r| client_body::redirect_uris(name, &r)).transpose();
        let session = self.session.map(|s| s.apply(&current.session_policy)).transpose()?;
        let access = self.access.map(|a| a.apply(&current.access_policy)).transpose()?;
        Ok(ClientPatch {
            name: self.name.as_deref().map(name).transpose()?,
            redirect_uris: uris("redirect_uris", self.redirect_uris)?,
            post_logout_redirect_uris: uris("post_logout_redirect_uris", self.post_logout_redirect_uris)?,
            grant_types: self.grant_types,
            allowed_scopes: self.scopes.as_deref().map(client_body::scopes).transpose()?,
            token_endpoint_auth_method: self.token_endpoint_auth_method,
            id_token_signed_response_alg: self.id_token_signed_response_alg,
            first_party: self.first_party,
            jwks: keys.as_ref().map(|k| k.0.clone()),
            jwks_uri: keys.map(|k| k.1),
            allow_insecure_no_pkce: self.allow_insecure_no_pkce,
            allow_legacy_assertion_audience: self.allow_legacy_assertion_audience,
            access_token_lifetime: seconds(self.access_token_lifetime),
            session_policy: session,
            access_policy: access,
            allow_insecure_redirect_uris: self.allow_insecure_redirect_uris,
            refresh_reuse_grace: seconds(self.refresh_reuse_grace),
            admin_client: self.admin_client,
            if_match: Some(if_match),
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientList {
    pub items: Vec<ClientView>,
}

/// A client just registered, with its secret (shown only in this answer).
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredClient {
    pub client: ClientView,
    /// For a client that authenticates with a secret; `null` on a replayed create.
    pub client_secret: Option<String>,
}

/// The client `id` names, or 404.
async fn find(state: &AppState, id: &str) -> Result<Client, Problem> {
    let not_found = || Problem::new(Kind::NotFound, format!("no client `{id}`"));
    let id = ClientId::parse(id).map_err(|_| not_found())?;
    state.services.clients().get(&state.services.request_tenant(), &id).await?.ok_or_else(not_found)
}

/// The client with its `ETag`.
fn shown(client: &Client, status: StatusCode) -> Response {
    let mut response = (status, axum::Json(ClientView::from(client))).into_response();
    if let Ok(tag) = HeaderValue::from_str(&client.etag()) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    no_store(response)
}

#[utoipa::path(get, path = "/clients", tag = "clients",
    description = "Every client, by id. Needs `admin:clients:read`.",
    responses((status = 200, body = ClientList), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    caller.require(AdminScope::ClientsRead)?;
    let clients = state.services.clients().list(&state.services.request_tenant()).await?;
    Ok(no_store(axum::Json(ClientList { items: clients.iter().map(ClientView::from).collect() }).into_response()))
}

#[utoipa::path(post, path = "/clients", tag = "clients", request_body = NewClientBody,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes a retried create return the first response")),
    description = "Registers a client; its secret, if it uses one, is in this answer only. Admin scopes only for an admin client, and only those you hold. Needs `admin:clients:write`.",
    responses((status = 201, body = RegisteredClient, headers(("Location" = String), ("ETag" = String))),
        (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::ClientsWrite)?.clone();
    let default_alg = latchkey_service::clients::default_id_token_alg(&state.services.config);
    let new = json::<NewClientBody>(&headers, &body)?.parse(default_alg)?;
    admin.may_confer(new.allowed_scopes.iter().map(|s| s.as_str()))?;
    idempotent_create(&state, &admin, &headers, "POST /clients", &body, async {
        let tenant = state.services.request_tenant();
        let (client, secret) = state.services.clients().register(&tenant, new, &admin.actor).await?;
        let shown = RegisteredClient { client: ClientView::from(&client), client_secret: secret };
        let without = RegisteredClient { client: ClientView::from(&client), client_secret: None };
        Ok(Created {
            location: format!("{}/clients/{}", super::base(&state), client.client_id),
            body: serde_json::to_string(&shown).unwrap_or_default(),
            etag: Some(client.etag()),
            replay_body: Some(serde_json::to_string(&without).unwrap_or_default()),
        })
    })
    .await
}

#[utoipa::path(get, path = "/clients/{client_id}", tag = "clients", params(("client_id" = String, Path)),
    description = "One client. Needs `admin:clients:read`.",
    responses((status = 200, body = ClientView, headers(("ETag" = String))),
        (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Response, Problem> {
    caller.require(AdminScope::ClientsRead)?;
    Ok(shown(&find(&state, &id).await?, StatusCode::OK))
}

#[utoipa::path(patch, path = "/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path),
        ("If-Match" = String, Header, pattern = r#"^"[!#-~]*"$"#, description = "The ETag the change is based on")),
    request_body = ClientPatchBody,
    description = "Changes a client's settings, if unchanged since it was read; a list given replaces the list. Needs `admin:clients:write`, and every admin scope the client holds or is given.",
    responses((status = 200, body = ClientView, headers(("ETag" = String))),
        (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::ClientsWrite)?;
    let current = find(&state, &id).await?;
    let tag = if_match(&headers)?;
    let patch = json::<ClientPatchBody>(&headers, &body)?.parse(&current, tag.clone())?;
    if tag != current.etag() {
        // The rights below are judged on the client as read; the store checks it again.
        return Err(Problem::new(Kind::PreconditionFailed, format!("client `{id}` changed since it was read")));
    }
    admin.may_manage_client(&current)?;
    let scopes = patch.allowed_scopes.as_deref().unwrap_or(&current.allowed_scopes);
    let admin_client = patch.admin_client.unwrap_or(current.admin_client);
    admin.may_widen_client(&current, scopes, admin_client)?;
    admin.may_change_own_client(&current, Some((scopes, admin_client)))?;
    let tenant = state.services.request_tenant();
    let updated = state.services.clients().update(&tenant, &current.client_id, patch, &admin.actor).await?;
    Ok(shown(&updated, StatusCode::OK))
}

#[utoipa::path(delete, path = "/clients/{client_id}", tag = "clients", params(("client_id" = String, Path)),
    description = "Deletes a client with its grants and application roles (refused while another client requires one of them). Needs `admin:clients:write`.",
    responses((status = 204), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::ClientsWrite)?;
    let client = find(&state, &id).await?;
    admin.may_manage_client(&client)?;
    admin.may_change_own_client(&client, None)?;
    state.services.clients().delete(&state.services.request_tenant(), &client.client_id, &admin.actor).await?;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}

/// How long the old secret keeps working.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecretBody {
    /// Seconds (default a day, at most 30 days); 0 ends the old secret now.
    #[serde(default, deserialize_with = "whole_seconds")]
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 2_592_000)]
    pub grace: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    /// The new secret, shown only in this answer.
    pub client_secret: String,
    /// Until when the old secret still works (Unix time).
    pub previous_secret_valid_until: i64,
}

#[utoipa::path(post, path = "/clients/{client_id}/secret", tag = "clients", params(("client_id" = String, Path)),
    request_body(content = Option<RotateSecretBody>, content_type = "application/json"),
    description = "Gives the client a new secret; the old one keeps working for the grace period. Needs `admin:clients:write`, and every admin scope the client holds.",
    responses((status = 200, body = RotatedSecret), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::ClientsWrite)?;
    let client = find(&state, &id).await?;
    // The body is optional: none, or JSON `null`, is the default grace.
    let absent = matches!(body.trim_ascii(), b"" | b"null");
    let given = if absent { RotateSecretBody::default() } else { json::<RotateSecretBody>(&headers, &body)? };
    let grace = std::time::Duration::from_secs(given.grace.unwrap_or(86_400));
    admin.may_manage_client(&client)?;
    let tenant = state.services.request_tenant();
    let (secret, until) =
        state.services.clients().rotate_secret(&tenant, &client.client_id, grace, &admin.actor).await?;
    let rotated = RotatedSecret { client_secret: secret, previous_secret_valid_until: until.secs() };
    Ok(no_store(axum::Json(rotated).into_response()))
}
