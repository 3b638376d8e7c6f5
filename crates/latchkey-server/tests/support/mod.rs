//! One way to start a real server for a test: its own database (SQLite file or fresh
//! PostgreSQL database), port 0, a clock the test can move.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey_config::{AllowEntry, Config, Purpose, SecretRef};
use latchkey_core::Clock;
use latchkey_server::{Foundation, RunningServer, StartupError};
use latchkey_service::testing::TestDatabase;

/// Every node of one test database shares this master key.
pub const MASTER_KEY: &str = "7ddae5519c751ebe83a87276bff1ea7c999545e7cf15ae0dd4e45aede8690bc3";

pub struct TestServer {
    pub server: RunningServer,
    /// `http://127.0.0.1:PORT` (or https): where to send requests.
    pub base: String,
    pub http: reqwest::Client,
    pub clock: Clock,
    pub db: Arc<TestDatabase>,
    pub dir: Arc<tempfile::TempDir>,
}

pub fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// The config every test server starts from: cheap Argon2, fast change polling, the
/// scheduled key job effectively off (tests run it themselves).
pub fn test_config(db: &TestDatabase, dir: &std::path::Path) -> Config {
    let mut config = ok(Config::load(None, &[], dir), "default config");
    config.server.port = 0;
    config.database.url = SecretRef::new(db.url.clone());
    config.database.change_poll_interval = Duration::from_millis(100);
    config.secrets.master_key = Some(SecretRef::new(MASTER_KEY));
    config.passwords.memory_kib = 64;
    config.passwords.iterations = 1;
    config.keys.check_interval = Duration::from_secs(3_600);
    config.server.shutdown_timeout = Duration::from_secs(5);
    config
}

/// An `outbound.allow` entry that lets the server reach a test's stand-in on 127.0.0.1 over
/// plain http, for one purpose and these ports: how tests open loopback, as an operator
/// would, never by a blanket switch.
pub fn allow_loopback(purpose: Purpose, ports: &[u16]) -> AllowEntry {
    AllowEntry {
        cidr: ok("127.0.0.1/32".parse(), "cidr"),
        purposes: vec![purpose],
        ports: ports.to_vec(),
        allow_insecure_http: true,
    }
}

impl TestServer {
    pub async fn start(db: Arc<TestDatabase>, tweak: impl FnOnce(&mut Config)) -> Self {
        ok(Self::try_start(db, Clock::system(), tweak).await, "server start")
    }

    pub async fn try_start(
        db: Arc<TestDatabase>,
        clock: Clock,
        tweak: impl FnOnce(&mut Config),
    ) -> Result<Self, StartupError> {
        let dir = Arc::new(ok(tempfile::tempdir(), "temp dir"));
        Self::start_in(db, dir, clock, tweak).await
    }

    /// Starts a node in `dir` (share it between nodes that share files).
    pub async fn start_in(
        db: Arc<TestDatabase>,
        dir: Arc<tempfile::TempDir>,
        clock: Clock,
        tweak: impl FnOnce(&mut Config),
    ) -> Result<Self, StartupError> {
        let mut config = test_config(&db, dir.path());
        tweak(&mut config);
        let foundation = Foundation::open(config, clock.clone()).await?;
        let server = latchkey_server::start(foundation).await?;
        let scheme = if server.state.config.server.tls.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://127.0.0.1:{}", server.addr.port());
        let http = ok(reqwest::Client::builder().no_proxy().build(), "http client");
        Ok(Self { server, base, http, clock, db, dir })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        ok(self.http.get(self.url(path)).send().await, path)
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self.get(path).await;
        assert!(response.status().is_success(), "GET {path}: {}", response.status());
        ok(response.json().await, path)
    }

    pub async fn jwks_kids(&self) -> Vec<String> {
        let jwks = self.get_json("/jwks.json").await;
        let mut kids: Vec<String> = jwks["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k["kid"].as_str().map(str::to_owned))
            .collect();
        kids.sort();
        kids
    }

    pub async fn stop(self) {
        self.server.shutdown().await;
    }
}

/// Polls `check` until it holds or `bound` passes; the bound is the documented one plus
/// a margin, never a fixed sleep.
pub async fn eventually<F, Fut>(bound: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + bound;
    loop {
        if check().await {
            return;
        }
        if Instant::now() > deadline {
            panic!("{what}: not true within {bound:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn sqlite() -> Arc<TestDatabase> {
    Arc::new(TestDatabase::sqlite().await)
}

pub async fn all_backends() -> Vec<Arc<TestDatabase>> {
    TestDatabase::all().await.into_iter().map(Arc::new).collect()
}

pub mod admin;
pub mod authenticator;
pub mod browser;
pub mod flow;
pub mod passkey;
pub mod rp;
pub mod smtp;
pub mod upstream;

use latchkey_core::domain::{
    ClientAccessPolicy, ClientId, ClientKind, ClientSessionPolicy, DisplayName, Email, GrantType, ProfileClaims,
    RedirectUri, ScopeName, SigningAlg, SubjectId, TenantId, TokenEndpointAuthMethod, Username,
};
use latchkey_core::records::{Actor, NewClient, NewUser};

pub struct ClientSpec<'a> {
    pub id: &'a str,
    pub kind: ClientKind,
    pub auth: TokenEndpointAuthMethod,
    pub redirect_uris: &'a [&'a str],
    pub grants: &'a [GrantType],
    pub scopes: &'a [&'a str],
    pub first_party: bool,
    pub id_token_alg: SigningAlg,
    pub post_logout: &'a [&'a str],
    pub jwks: Option<&'a str>,
    pub jwks_uri: Option<&'a str>,
    pub allow_insecure_no_pkce: bool,
    pub allow_legacy_assertion_audience: bool,
    pub session_policy: ClientSessionPolicy,
    pub access_policy: ClientAccessPolicy,
    pub allow_insecure_redirect_uris: bool,
    pub refresh_reuse_grace: Option<i64>,
    pub admin_client: bool,
}

impl Default for ClientSpec<'_> {
    fn default() -> Self {
        Self {
            id: "webapp",
            kind: ClientKind::Confidential,
            auth: TokenEndpointAuthMethod::ClientSecretBasic,
            redirect_uris: &["https://app.example.com/callback"],
            grants: &[GrantType::AuthorizationCode, GrantType::RefreshToken],
            scopes: &["openid", "profile", "email", "offline_access"],
            first_party: false,
            id_token_alg: SigningAlg::Rs256,
            post_logout: &["https://app.example.com/signed-out"],
            jwks: None,
            jwks_uri: None,
            allow_insecure_no_pkce: false,
            allow_legacy_assertion_audience: false,
            session_policy: ClientSessionPolicy::default(),
            access_policy: ClientAccessPolicy::default(),
            allow_insecure_redirect_uris: false,
            refresh_reuse_grace: None,
            admin_client: false,
        }
    }
}

impl TestServer {
    pub fn state(&self) -> &latchkey_server::state::AppState {
        &self.server.state
    }

    /// A user with a password (hashed with the test server's cheap parameters).
    pub async fn create_user(&self, username: &str, password: &str) -> SubjectId {
        let hash = ok(self.state().passwords.hash(password.to_owned()).await, "hash");
        let user = NewUser {
            sub: SubjectId::generate(),
            username: ok(Username::parse(username), "username"),
            email: Some(ok(Email::parse(&format!("{username}@example.com")), "email")),
            email_verified: true,
            name: Some(ok(DisplayName::parse("Test User"), "name")),
            profile: ProfileClaims { given_name: Some("Test".into()), ..ProfileClaims::default() },
            password_hash: Some(hash.as_str().to_owned()),
            service_account: false,
        };
        ok(self.state().services.users().create(&TenantId::default_tenant(), user, &Actor::Cli).await, "create user")
            .sub
    }

    /// A client; returns its secret when it has one.
    pub async fn create_client(&self, spec: ClientSpec<'_>) -> Option<String> {
        let secret = spec.auth.uses_secret().then(|| format!("secret-of-{}-0123456789abcdef", spec.id));
        let insecure = spec.allow_insecure_redirect_uris;
        let uri = |u: &&str| ok(RedirectUri::parse_for_client(u, spec.kind, insecure), "redirect uri");
        let client = NewClient {
            client_id: ok(ClientId::parse(spec.id), "client id"),
            name: format!("{} app", spec.id),
            kind: spec.kind,
            secret_hash: secret.as_ref().map(|s| self.state().token_hasher.hash("client_secret", s)),
            redirect_uris: spec.redirect_uris.iter().map(uri).collect(),
            post_logout_redirect_uris: spec.post_logout.iter().map(uri).collect(),
            grant_types: spec.grants.to_vec(),
            allowed_scopes: spec.scopes.iter().map(|s| ok(ScopeName::parse(s), "scope")).collect(),
            token_endpoint_auth_method: spec.auth,
            id_token_signed_response_alg: spec.id_token_alg,
            first_party: spec.first_party,
            jwks: spec.jwks.map(str::to_owned),
            jwks_uri: spec.jwks_uri.map(str::to_owned),
            allow_insecure_no_pkce: spec.allow_insecure_no_pkce,
            allow_legacy_assertion_audience: spec.allow_legacy_assertion_audience,
            access_token_lifetime: None,
            session_policy: spec.session_policy,
            access_policy: spec.access_policy,
            allow_insecure_redirect_uris: spec.allow_insecure_redirect_uris,
            refresh_reuse_grace: spec.refresh_reuse_grace,
            admin_client: spec.admin_client,
        };
        // Stored as given, as a fixture: tests also need clients the rules refuse today (an
        // unsafe jwks_uri stored before the outbound guard, a scope never defined).
        let store = latchkey_service::testing::store_of(&self.state().services);
        ok(store.create_client(&TenantId::default_tenant(), client, &Actor::Cli).await, "create client");
        secret
    }

    /// A scope clients may then be allowed.
    pub async fn create_scope(&self, name: &str, description: &str) {
        let scope = ok(ScopeName::parse(name), "scope");
        let put =
            self.state().services.scopes().put(&TenantId::default_tenant(), &scope, description, &Actor::Cli).await;
        ok(put, "put scope");
    }

    /// The issuer-based URL of `path` (what a browser or client library uses).
    pub fn issuer_url(&self, path: &str) -> String {
        format!("{}{path}", self.server.issuer)
    }
}

/// A user made by an operator: `name`, `name@example.com` (verified), no passkey, and the
/// password [`flow::PASSWORD`] when `password`.
#[allow(dead_code)]
pub async fn operator_made_user(server: &TestServer, name: &str, password: bool) -> latchkey_core::records::User {
    use latchkey_core::domain::{Email, NewPassword, ProfileClaims, SubjectId, TenantId, Username};
    use latchkey_core::records::{Actor, NewUser};
    let services = &server.state().services;
    let tenant = TenantId::default_tenant();
    let new = NewUser {
        sub: SubjectId::generate(),
        username: ok(Username::parse(name), "username"),
        email: Some(ok(Email::parse(&format!("{name}@example.com")), "email")),
        email_verified: true,
        name: None,
        profile: ProfileClaims::default(),
        password_hash: None,
        service_account: false,
    };
    let user = ok(services.users().create(&tenant, new, &Actor::Cli).await, "user");
    if password {
        let typed = ok(NewPassword::parse(flow::PASSWORD.into()), "password");
        let change = latchkey_service::users::PasswordChange::ByOperator;
        ok(services.users().set_password(&tenant, &user.sub, typed, change, &Actor::Cli).await, "password");
    }
    user
}
