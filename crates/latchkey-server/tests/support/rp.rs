//! A relying party's back-channel logout endpoint on 127.0.0.1: records every logout token
//! it receives, and can be told to fail the first N requests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};

use super::ok;

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<(String, String)>>,
    fail_first: AtomicUsize,
}

pub struct RelyingParty {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    Path(client): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> StatusCode {
    let token = form.get("logout_token").cloned().unwrap_or_default();
    if let Ok(mut r) = shared.received.lock() {
        r.push((client, token));
    }
    let failed = shared.fail_first.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    if failed.is_ok() { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }
}

impl RelyingParty {
    /// Serves `POST /bc/{client}`; the first `fail_first` requests get a 500.
    pub async fn start(fail_first: usize) -> Self {
        let shared = Arc::new(Shared { fail_first: AtomicUsize::new(fail_first), ..Shared::default() });
        let app = axum::Router::new().route("/bc/{client}", post(receive)).with_state(shared.clone());
        let listener = ok(tokio::net::TcpListener::bind("127.0.0.1:0").await, "bind rp");
        let addr = ok(listener.local_addr(), "rp addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, shared }
    }

    pub fn backchannel_uri(&self, client: &str) -> String {
        format!("http://{}/bc/{client}", self.addr)
    }

    /// Every (client, logout_token) received so far, in order.
    pub fn received(&self) -> Vec<(String, String)> {
        self.shared.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// Verifies a logout token the way Back-Channel Logout 1.0 §2.6 tells a relying party to:
/// signature with a key from the issuer's JWKS, `typ`, `iss`, `aud`, `iat`, `exp`, `jti`,
/// the logout event, `sid`/`sub`, and no `nonce`. Returns the claims.
pub fn verify_logout_token(token: &str, jwks: &JwkSet, issuer: &str, client_id: &str) -> serde_json::Value {
    let header = ok(decode_header(token), "logout token header");
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"), "typ");
    let kid = header.kid.clone().unwrap_or_default();
    let jwk = jwks.find(&kid).unwrap_or_else(|| panic!("logout token key {kid} is not in the JWKS"));
    let key = ok(DecodingKey::from_jwk(jwk), "decoding key");
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[client_id]);
    validation.set_required_spec_claims(&["iss", "aud", "exp", "iat"]);
    validation.leeway = 0;
    let claims = ok(decode::<serde_json::Value>(token, &key, &validation), "logout token verifies").claims;
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()), "jti: {claims}");
    let events = claims["events"].as_object().unwrap_or_else(|| panic!("events: {claims}"));
    assert_eq!(events.len(), 1, "exactly the logout event: {claims}");
    assert_eq!(events.get("http://schemas.openid.net/event/backchannel-logout"), Some(&serde_json::json!({})));
    assert!(claims.get("nonce").is_none(), "a logout token never has a nonce: {claims}");
    assert!(claims["sid"].is_string() || claims["sub"].is_string(), "sid and/or sub: {claims}");
    claims
}
