//! A stand-in OpenID Connect provider for the federation tests, on 127.0.0.1: discovery,
//! JWKS, an authorization endpoint that "signs in" whoever the test chose and redirects at
//! once, a token endpoint that checks the client's Basic credentials, the code (once), the
//! redirect URI and PKCE, and a UserInfo endpoint. A test makes it misbehave in one way at a
//! time ([`Tamper`]) to see Latchkey refuse.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use latchkey_core::crypto::SigningKeyPair;
use latchkey_core::domain::SigningAlg;
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "latchkey-at-upstream";
pub const CLIENT_SECRET: &str = "upstream-secret-0123456789";

/// One way the next ID token (or answer) is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    None,
    WrongIssuer,
    WrongAudience,
    /// Signed by a key the JWKS does not have, under the published key id.
    BadSignature,
    Expired,
    WrongNonce,
    /// Issued an hour ago.
    OldIat,
    /// Another party's `azp`.
    OtherAzp,
    /// Two audiences and no `azp`.
    ExtraAudience,
    /// The authorization answer leaves out `iss`, which discovery promises.
    NoIssInAnswer,
    /// The authorization answer names another issuer.
    OtherIssInAnswer,
    /// The token endpoint answers an `error`.
    TokenError,
    /// `alg: none`, no signature.
    AlgNone,
    /// HS256 keyed with the client secret (the classic algorithm confusion).
    Hs256,
    /// The person was signed in an hour ago (an old session, not a new sign-in).
    StaleAuthTime,
}

struct Code {
    redirect_uri: String,
    challenge: String,
    nonce: String,
    claims: Value,
}

pub struct Inner {
    pub issuer: String,
    key: SigningKeyPair,
    rogue: SigningKeyPair,
    /// The claims of whoever signs in next (`sub` at least).
    pub account: Value,
    pub tamper: Tamper,
    codes: HashMap<String, Code>,
    tokens: HashMap<String, Value>,
    /// Requests that were not what a provider takes (asserted empty by the tests).
    pub problems: Vec<String>,
    /// Where the client's public keys are, for `private_key_jwt` (its registered `jwks_uri`).
    pub client_jwks_uri: Option<String>,
    /// Client assertions accepted.
    pub assertions: usize,
}

#[derive(Clone)]
pub struct Upstream {
    pub inner: Arc<Mutex<Inner>>,
    pub port: u16,
}

fn key() -> SigningKeyPair {
    SigningKeyPair::generate(SigningAlg::Es256, 2048).unwrap_or_else(|e| panic!("key: {e}")).0
}

impl Upstream {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
        let addr: SocketAddr = listener.local_addr().unwrap_or_else(|e| panic!("addr: {e}"));
        let rogue = key();
        let inner = Arc::new(Mutex::new(Inner {
            issuer: format!("http://127.0.0.1:{}", addr.port()),
            key: key(),
            rogue,
            account: json!({"sub": "upstream-1"}),
            tamper: Tamper::None,
            codes: HashMap::new(),
            tokens: HashMap::new(),
            problems: Vec::new(),
            client_jwks_uri: None,
            assertions: 0,
        }));
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { inner, port: addr.port() }
    }

    pub fn issuer(&self) -> String {
        self.lock().issuer.clone()
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Who signs in next.
    pub fn sign_in_as(&self, account: Value) {
        self.lock().account = account;
    }

    pub fn tamper(&self, tamper: Tamper) {
        self.lock().tamper = tamper;
    }

    /// Replaces the signing key (a rotation: the JWKS then has only the new one).
    pub fn rotate(&self) {
        self.lock().key = key();
    }

    pub fn problems(&self) -> Vec<String> {
        self.lock().problems.clone()
    }
}

type Shared = State<Arc<Mutex<Inner>>>;

fn lock(s: &Arc<Mutex<Inner>>) -> std::sync::MutexGuard<'_, Inner> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn discovery(State(s): Shared) -> Json<Value> {
    let issuer = lock(&s).issuer.clone();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
    }))
}

async fn jwks(State(s): Shared) -> Json<Value> {
    Json(json!({"keys": [lock(&s).key.public_jwk()]}))
}

fn random() -> String {
    latchkey_core::crypto::random::token_string::<16>()
}

async fn authorize(State(s): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut inner = lock(&s);
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("client_id") != CLIENT_ID || get("response_type") != "code" || get("code_challenge_method") != "S256" {
        inner.problems.push(format!("authorize: {q:?}"));
        return (StatusCode::BAD_REQUEST, "bad request").into_response();
    }
    if !get("scope").split(' ').any(|s| s == "openid") || get("nonce").is_empty() || get("state").is_empty() {
        inner.problems.push(format!("authorize without openid, nonce or state: {q:?}"));
    }
    let code = random();
    let claims = inner.account.clone();
    inner.codes.insert(
        code.clone(),
        Code { redirect_uri: get("redirect_uri"), challenge: get("code_challenge"), nonce: get("nonce"), claims },
    );
    let mut to = url::Url::parse(&get("redirect_uri")).unwrap_or_else(|e| panic!("redirect_uri: {e}"));
    to.query_pairs_mut().append_pair("code", &code).append_pair("state", &get("state"));
    match inner.tamper {
        Tamper::NoIssInAnswer => {}
        Tamper::OtherIssInAnswer => {
            to.query_pairs_mut().append_pair("iss", "https://attacker.example");
        }
        _ => {
            to.query_pairs_mut().append_pair("iss", &inner.issuer);
        }
    }
    Redirect::to(to.as_str()).into_response()
}

fn error(status: StatusCode, code: &str) -> Response {
    (status, Json(json!({"error": code}))).into_response()
}

/// Checks a `private_key_jwt` assertion against the client's published keys.
async fn assertion_ok(s: &Arc<Mutex<Inner>>, form: &HashMap<String, String>) -> Result<(), String> {
    let (jwks_uri, issuer) = {
        let inner = lock(s);
        (inner.client_jwks_uri.clone().ok_or("no jwks_uri registered")?, inner.issuer.clone())
    };
    if form.get("client_assertion_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        || form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
    {
        return Err(format!("assertion type or client_id: {form:?}"));
    }
    let jwks: jsonwebtoken::jwk::JwkSet =
        reqwest::get(&jwks_uri).await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
    let assertion = form.get("client_assertion").cloned().unwrap_or_default();
    let header = jsonwebtoken::decode_header(&assertion).map_err(|e| e.to_string())?;
    let jwk = jwks.find(header.kid.as_deref().unwrap_or_default()).ok_or("no key with the assertion's kid")?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&[issuer]);
    v.set_issuer(&[CLIENT_ID]);
    v.sub = Some(CLIENT_ID.into());
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Value>(&assertion, &key, &v).map_err(|e| e.to_string())?;
    if data.claims["jti"].as_str().is_none_or(str::is_empty) {
        return Err("no jti".into());
    }
    Ok(())
}

async fn token(State(s): Shared, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    let asserted = if form.contains_key("client_assertion") { Some(assertion_ok(&s, &form).await) } else { None };
    let mut inner = lock(&s);
    let basic = format!("Basic {}", STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}")));
    match asserted {
        Some(Ok(())) => inner.assertions += 1,
        Some(Err(e)) => {
            inner.problems.push(format!("token: bad client assertion: {e}"));
            return error(StatusCode::UNAUTHORIZED, "invalid_client");
        }
        None if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) => {
            inner.problems.push("token: not client_secret_basic with the right credentials".into());
            return error(StatusCode::UNAUTHORIZED, "invalid_client");
        }
        None => {}
    }
    if form.contains_key("client_secret") {
        inner.problems.push("token: a client_secret in the body as well".into());
    }
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let Some(code) = inner.codes.remove(&get("code")) else { return error(StatusCode::BAD_REQUEST, "invalid_grant") };
    let challenge =
        URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, get("code_verifier").as_bytes()));
    if get("grant_type") != "authorization_code"
        || get("redirect_uri") != code.redirect_uri
        || challenge != code.challenge
    {
        inner.problems.push(format!("token: grant, redirect_uri or PKCE wrong: {form:?}"));
        return error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    if inner.tamper == Tamper::TokenError {
        return error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let mut claims = code.claims.clone();
    let extra = json!({
        "iss": inner.issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 300, "nonce": code.nonce, "auth_time": now,
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        claims[k] = v.clone();
    }
    match inner.tamper {
        Tamper::WrongIssuer => claims["iss"] = json!("https://attacker.example"),
        Tamper::WrongAudience => claims["aud"] = json!("someone-else"),
        Tamper::Expired => claims["exp"] = json!(now - 3_600),
        Tamper::WrongNonce => claims["nonce"] = json!("not-the-nonce"),
        Tamper::OldIat => claims["iat"] = json!(now - 3_600),
        Tamper::OtherAzp => claims["azp"] = json!("someone-else"),
        Tamper::ExtraAudience => claims["aud"] = json!([CLIENT_ID, "someone-else"]),
        Tamper::StaleAuthTime => claims["auth_time"] = json!(now - 3_600),
        _ => {}
    }
    let id_token = if inner.tamper == Tamper::AlgNone {
        let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        format!("{head}.{body}.")
    } else if inner.tamper == Tamper::Hs256 {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(inner.key.kid().to_owned());
        let key = jsonwebtoken::EncodingKey::from_secret(CLIENT_SECRET.as_bytes());
        jsonwebtoken::encode(&header, &claims, &key).unwrap_or_else(|e| panic!("hs256: {e}"))
    } else if inner.tamper == Tamper::BadSignature {
        // The rogue key's signature under the real key's id.
        let real = inner.key.sign_jwt("JWT", &claims).unwrap_or_else(|e| panic!("sign: {e}"));
        let forged = inner.rogue.sign_jwt("JWT", &claims).unwrap_or_else(|e| panic!("sign: {e}"));
        let (head, _) = real.rsplit_once('.').unwrap_or_default();
        let (_, signature) = forged.rsplit_once('.').unwrap_or_default();
        let head = head.split('.').next().unwrap_or_default();
        let body = real.split('.').nth(1).unwrap_or_default();
        format!("{head}.{body}.{signature}")
    } else {
        inner.key.sign_jwt("JWT", &claims).unwrap_or_else(|e| panic!("sign: {e}"))
    };
    let access_token = random();
    inner.tokens.insert(access_token.clone(), code.claims);
    Json(json!({"access_token": access_token, "token_type": "Bearer", "expires_in": 300, "id_token": id_token}))
        .into_response()
}

async fn userinfo(State(s): Shared, headers: HeaderMap) -> Response {
    let inner = lock(&s);
    let token = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match token.and_then(|t| inner.tokens.get(t)) {
        Some(claims) => Json(claims.clone()).into_response(),
        None => error(StatusCode::UNAUTHORIZED, "invalid_token"),
    }
}
