//! OpenID Connect Discovery 1.0 and RFC 8414 metadata, as one typed document. The issuer
//! comes from configuration, never from the Host header; only what Latchkey serves is
//! advertised, and a test fetches every advertised URL.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_core::domain::ScopeName;
use serde::Serialize;

use crate::state::AppState;
use latchkey_core::domain::AuthLevel;

#[derive(Serialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub userinfo_endpoint: String,
    pub jwks_uri: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub end_session_endpoint: String,
    pub check_session_iframe: String,
    pub frontchannel_logout_supported: bool,
    pub frontchannel_logout_session_supported: bool,
    pub backchannel_logout_supported: bool,
    pub backchannel_logout_session_supported: bool,
    pub scopes_supported: Vec<String>,
    pub response_types_supported: [&'static str; 1],
    pub response_modes_supported: [&'static str; 2],
    pub grant_types_supported: [&'static str; 3],
    pub subject_types_supported: [&'static str; 1],
    pub id_token_signing_alg_values_supported: Vec<&'static str>,
    pub token_endpoint_auth_methods_supported: [&'static str; 4],
    pub token_endpoint_auth_signing_alg_values_supported: [&'static str; 9],
    pub revocation_endpoint_auth_methods_supported: [&'static str; 4],
    pub introspection_endpoint_auth_methods_supported: [&'static str; 3],
    pub code_challenge_methods_supported: [&'static str; 1],
    pub claims_supported: Vec<&'static str>,
    pub claims_parameter_supported: bool,
    pub request_parameter_supported: bool,
    pub request_uri_parameter_supported: bool,
    pub authorization_response_iss_parameter_supported: bool,
    pub acr_values_supported: Vec<&'static str>,
    pub prompt_values_supported: [&'static str; 4],
    pub claim_types_supported: [&'static str; 1],
}

/// Served from the serialised document the caches keep; built again only when the scope
/// list changes.
pub async fn openid_configuration(State(state): State<AppState>) -> Response {
    let body = match state.caches.scopes().await {
        Ok(scopes) => state
            .caches
            .discovery_document(&scopes, |list| render(&state, list.iter().map(|s| s.name.to_string()).collect())),
        Err(e) => {
            tracing::error!(error = %e, "cannot list scopes for discovery");
            render(&state, ScopeName::BUILT_IN.iter().map(|s| (*s).to_owned()).collect())
        }
    };
    match body {
        Ok(body) => {
            ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "public, max-age=300")], body)
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot serialise the discovery document");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn render(state: &AppState, scopes: Vec<String>) -> Result<Bytes, serde_json::Error> {
    let issuer = state.issuer.to_string();
    let url = |path: &str| format!("{issuer}{path}");
    let doc = ProviderMetadata {
        authorization_endpoint: url("/authorize"),
        token_endpoint: url("/token"),
        userinfo_endpoint: url("/userinfo"),
        jwks_uri: url("/jwks.json"),
        revocation_endpoint: url("/revoke"),
        introspection_endpoint: url("/introspect"),
        end_session_endpoint: url("/logout"),
        check_session_iframe: url("/session/check"),
        frontchannel_logout_supported: true,
        frontchannel_logout_session_supported: true,
        backchannel_logout_supported: true,
        backchannel_logout_session_supported: true,
        scopes_supported: scopes,
        response_types_supported: ["code"],
        response_modes_supported: ["query", "form_post"],
        grant_types_supported: ["authorization_code", "refresh_token", "client_credentials"],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: state.keys.algorithms().iter().map(|a| a.as_str()).collect(),
        token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        token_endpoint_auth_signing_alg_values_supported: [
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
        ],
        revocation_endpoint_auth_methods_supported: [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ],
        introspection_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        code_challenge_methods_supported: ["S256"],
        claims_supported: crate::oauth::claims::SUPPORTED.to_vec(),
        claims_parameter_supported: true,
        request_parameter_supported: false,
        request_uri_parameter_supported: false,
        authorization_response_iss_parameter_supported: true,
        acr_values_supported: AuthLevel::ALL
            .iter()
            .filter(|l| **l != AuthLevel::Federated || !state.config.federation.providers.is_empty())
            .map(|l| l.acr())
            .collect(),
        prompt_values_supported: ["none", "login", "consent", "select_account"],
        claim_types_supported: ["normal"],
        issuer,
    };
    serde_json::to_vec(&doc).map(Bytes::from)
}
