//! The grants of the token endpoint, through the services alone (no HTTP server), on SQLite
//! and PostgreSQL: a code is spent once and bound to its redirect URI and PKCE verifier, a
//! replay revokes what it issued, refresh tokens rotate and a reused one revokes its
//! family, a locked user's grant stops, and scopes only narrow.

mod support;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_core::domain::{ClientId, ClientKind, GrantType, ScopeName, TenantId};
use latchkey_core::records::{Actor, BrowserSession, Client};
use latchkey_service::Latchkey;
use latchkey_service::grants::{CodePresentation, CodeRequest, GrantError, IssuedTokens};
use latchkey_service::testing::{TestDatabase, sample_client, sample_user};
use latchkey_service::users::StateChange;
use support::{browser_session, ok, services};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "https://app.example/cb";

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

fn scopes(raw: &[&str]) -> Vec<ScopeName> {
    raw.iter().map(|s| ok(ScopeName::parse(s), "scope")).collect()
}

/// A confidential client that may refresh, a user signed in to a session, ready to grant.
struct Granting {
    client: Client,
    session: BrowserSession,
}

async fn granting(s: &Latchkey) -> Granting {
    let mut new = sample_client("webapp", ClientKind::Confidential, REDIRECT);
    new.allowed_scopes = scopes(&["openid", "offline_access", "reports"]);
    new.grant_types = vec![GrantType::AuthorizationCode, GrantType::RefreshToken, GrantType::ClientCredentials];
    let reports = ok(ScopeName::parse("reports"), "scope");
    ok(s.scopes().put(&tenant(), &reports, "Reports", &Actor::Cli).await, "scope");
    ok(s.clients().create(&tenant(), new, &Actor::Cli).await, "client");
    let client_id = ok(ClientId::parse("webapp"), "client id");
    let client = ok(s.caches.client(&client_id).await, "client").unwrap_or_else(|| panic!("the client exists"));
    let sub = ok(s.users().create(&tenant(), sample_user("ada"), &Actor::Cli).await, "user").sub;
    let session = browser_session(s, &sub, ("cookie", "sid-1"), "phr", 0);
    ok(s.sessions().create(&tenant(), &session, &Actor::User(session.sub.to_string())).await, "session");
    Granting { client: Client::clone(&client), session }
}

async fn code(s: &Latchkey, g: &Granting, scope: &[&str]) -> String {
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, VERIFIER.as_bytes()));
    let scope: Vec<String> = scope.iter().map(|s| (*s).to_owned()).collect();
    let request = CodeRequest {
        scope: &scope,
        redirect_uri: REDIRECT,
        code_challenge: Some(&challenge),
        nonce: Some("n-1"),
        requested_claims: None,
        audience: &s.default_audience(),
    };
    ok(s.grants().issue_code(&tenant(), &g.session, &g.client, request).await, "code")
}

async fn exchange(s: &Latchkey, g: &Granting, code: &str, verifier: &str) -> Result<IssuedTokens, GrantError> {
    let presented = CodePresentation { code, redirect_uri: Some(REDIRECT), verifier: Some(verifier) };
    s.grants().exchange_code(&tenant(), &g.client, presented).await
}

fn invalid_grant<T: std::fmt::Debug>(r: Result<T, GrantError>, why: &str) -> &'static str {
    match r {
        Err(GrantError::InvalidGrant(m)) => m,
        other => panic!("{why}: expected invalid_grant, got {other:?}"),
    }
}

async fn ready(db: &TestDatabase, dir: &std::path::Path) -> Latchkey {
    let s = services(db, dir, |_| {}).await;
    ok(s.prepare_node().await, "keys");
    s
}

#[tokio::test]
async fn a_code_is_spent_once_and_its_replay_revokes_what_it_issued() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = ready(&db, dir.path()).await;
        let g = granting(&s).await;

        let code = code(&s, &g, &["openid", "offline_access"]).await;
        let issued = ok(exchange(&s, &g, &code, VERIFIER).await, "exchange");
        assert!(issued.id_token.is_some(), "{b}: openid gives an ID token");
        assert!(issued.refresh_token.is_some(), "{b}: offline_access gives a refresh token");
        assert_eq!(issued.scope, "openid offline_access", "{b}");
        let claims = ok(s.verify_access_token(&issued.access_token), "the access token verifies");
        assert_eq!(claims.sub, g.session.sub.as_str(), "{b}");

        let again = invalid_grant(exchange(&s, &g, &code, VERIFIER).await, "replay");
        assert!(again.contains("already used"), "{b}: {again}");
        assert!(s.verify_access_token(&issued.access_token).is_err(), "{b}: the replay revoked the access token");
        let refresh = issued.refresh_token.unwrap_or_default();
        let after = invalid_grant(s.grants().refresh(&tenant(), &g.client, &refresh, None).await, "refresh");
        assert!(after.contains("revoked"), "{b}: the replay revoked the refresh token: {after}");
        s.system().close().await;
    }
}

#[tokio::test]
async fn a_code_is_bound_to_its_verifier_and_redirect_uri() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = ready(&db, dir.path()).await;
        let g = granting(&s).await;

        let wrong = "x".repeat(43);
        let m = invalid_grant(exchange(&s, &g, &code(&s, &g, &["openid"]).await, &wrong).await, "wrong verifier");
        assert!(m.contains("code_verifier"), "{b}: {m}");

        let code = code(&s, &g, &["openid"]).await;
        let elsewhere =
            CodePresentation { code: &code, redirect_uri: Some("https://evil.example/cb"), verifier: Some(VERIFIER) };
        let m = invalid_grant(s.grants().exchange_code(&tenant(), &g.client, elsewhere).await, "redirect");
        assert!(m.contains("redirect_uri"), "{b}: {m}");

        let m = invalid_grant(exchange(&s, &g, "no-such-code", VERIFIER).await, "unknown code");
        assert!(m.contains("invalid"), "{b}: {m}");
        // Without openid nor offline_access: an access token alone.
        let c = code_without_openid(&s, &g).await;
        let issued = ok(exchange(&s, &g, &c, VERIFIER).await, "exchange");
        assert!(issued.id_token.is_none() && issued.refresh_token.is_none(), "{b}");
        s.system().close().await;
    }
}

async fn code_without_openid(s: &Latchkey, g: &Granting) -> String {
    code(s, g, &["reports"]).await
}

#[tokio::test]
async fn refresh_tokens_rotate_narrow_and_a_reused_one_revokes_its_family() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = ready(&db, dir.path()).await;
        let g = granting(&s).await;
        let issued = ok(exchange(&s, &g, &code(&s, &g, &["openid", "offline_access"]).await, VERIFIER).await, "code");
        let first = issued.refresh_token.unwrap_or_default();

        let wider = s.grants().refresh(&tenant(), &g.client, &first, Some(&scopes(&["openid", "reports"]))).await;
        assert!(matches!(wider, Err(GrantError::InvalidScope(_))), "{b}: scopes never widen: {wider:?}");
        let narrow = scopes(&["openid"]);
        let rotated = ok(s.grants().refresh(&tenant(), &g.client, &first, Some(&narrow)).await, "refresh");
        assert_eq!(rotated.scope, "openid", "{b}: narrowed");
        let second = rotated.refresh_token.unwrap_or_default();
        assert_ne!(second, first, "{b}: rotated");

        let m = invalid_grant(s.grants().refresh(&tenant(), &g.client, &first, None).await, "reuse");
        assert!(m.contains("already used"), "{b}: {m}");
        let m = invalid_grant(s.grants().refresh(&tenant(), &g.client, &second, None).await, "family");
        assert!(m.contains("revoked"), "{b}: the reuse revoked the whole family: {m}");
        assert!(s.verify_access_token(&rotated.access_token).is_err(), "{b}: and its access tokens");
        s.system().close().await;
    }
}

#[tokio::test]
async fn a_locked_user_cannot_refresh() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = ready(&db, dir.path()).await;
        let g = granting(&s).await;
        let issued = ok(exchange(&s, &g, &code(&s, &g, &["openid", "offline_access"]).await, VERIFIER).await, "code");
        ok(s.users().change_state(&tenant(), &g.session.sub, StateChange::Lock, &Actor::Cli).await, "lock");
        let refresh = issued.refresh_token.unwrap_or_default();
        let m = invalid_grant(s.grants().refresh(&tenant(), &g.client, &refresh, None).await, "locked");
        assert!(!m.is_empty(), "{b}");
        s.system().close().await;
    }
}

#[tokio::test]
async fn client_credentials_never_carry_user_scopes_and_name_only_registered_resources() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = ready(&db, dir.path()).await;
        let g = granting(&s).await;

        let issued = ok(s.grants().client_credentials(&tenant(), &g.client, None, None).await, "cc");
        assert_eq!(issued.scope, "reports", "{b}: openid and offline_access need a user");
        assert!(issued.refresh_token.is_none() && issued.id_token.is_none(), "{b}");
        let user_scope = s.grants().client_credentials(&tenant(), &g.client, Some(&scopes(&["openid"])), None).await;
        assert!(matches!(user_scope, Err(GrantError::InvalidScope(_))), "{b}: {user_scope:?}");
        let target = s.grants().client_credentials(&tenant(), &g.client, None, Some("https://api.example")).await;
        assert!(matches!(target, Err(GrantError::InvalidTarget(_))), "{b}: unregistered resource: {target:?}");
        s.system().close().await;
    }
}
