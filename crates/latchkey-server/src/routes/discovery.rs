//! OpenID Connect Discovery 1.0 and RFC 8414 metadata. The issuer comes from configuration,
//! never from the Host header. Only what Latchkey serves is advertised; the protocol
//! endpoints join this document as they are built.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;

use crate::app::AppState;

#[derive(Serialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub jwks_uri: String,
    pub scopes_supported: Vec<String>,
    pub subject_types_supported: Vec<&'static str>,
    pub id_token_signing_alg_values_supported: Vec<&'static str>,
    pub claims_supported: Vec<&'static str>,
}

pub async fn openid_configuration(State(state): State<AppState>) -> impl IntoResponse {
    let issuer = state.issuer.to_string();
    let scopes = match state.store.list_scopes(&latchkey_core::domain::TenantId::default_tenant()).await {
        Ok(list) => list.into_iter().map(|s| s.name.to_string()).collect(),
        Err(e) => {
            tracing::error!(error = %e, "cannot list scopes for discovery");
            latchkey_core::domain::ScopeName::BUILT_IN.iter().map(|s| (*s).to_owned()).collect()
        }
    };
    let doc = ProviderMetadata {
        jwks_uri: format!("{issuer}/jwks.json"),
        issuer,
        scopes_supported: scopes,
        subject_types_supported: vec!["public"],
        id_token_signing_alg_values_supported: state.keys.algorithms().iter().map(|a| a.as_str()).collect(),
        claims_supported: vec![
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "name",
            "given_name",
            "family_name",
            "middle_name",
            "nickname",
            "preferred_username",
            "profile",
            "picture",
            "website",
            "gender",
            "birthdate",
            "zoneinfo",
            "locale",
            "updated_at",
            "email",
            "email_verified",
            "phone_number",
            "phone_number_verified",
            "address",
        ],
    };
    ([(header::CACHE_CONTROL, "public, max-age=300")], axum::Json(doc))
}
