//! Forward-auth as a reverse proxy sees it: the rules file decides, a browser is sent to
//! sign in and comes back with the forward-auth cookie, API keys pass with their limits,
//! and everything that must not pass does not (untrusted peers, encoded-path tricks,
//! foreign return addresses, ended sessions, revoked keys, lost roles).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use latchkey_core::domain::{ApiKeyId, Entitlement, RoleName, ScopeName, SubjectId, TenantId};
use latchkey_core::records::{Actor, Membership, NewRole, SessionSelector};
use latchkey_service::api_keys::ApiKeySpec;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE, WWW_AUTHENTICATE};
use support::browser::hidden_field;
use support::flow::PASSWORD;
use support::{TestServer, all_backends, eventually, ok, sqlite};

const RULES: &str = r#"
[[rule]]
hosts = ["app.latchkey.test"]
paths = ["/public/*"]
policy = "bypass"

[[rule]]
hosts = ["app.latchkey.test"]
paths = ["/admin/*"]
policy = "one_factor"
roles = ["admin"]

[[rule]]
hosts = ["app.latchkey.test"]
paths = ["/secure/*"]
policy = "passkey"

[[rule]]
hosts = ["app.latchkey.test"]
paths = ["/reports/*"]
policy = "one_factor"
scopes = ["reports:read"]

[[rule]]
hosts = ["app.latchkey.test"]
paths = ["/blocked/*"]
policy = "deny"

[[rule]]
hosts = ["app.latchkey.test"]
policy = "one_factor"
"#;

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

fn free_port() -> u16 {
    let listener = ok(std::net::TcpListener::bind("127.0.0.1:0"), "bind");
    ok(listener.local_addr(), "addr").port()
}

/// A server at `http://auth.latchkey.test:PORT` with the rules above (or `rules`), whose
/// only trusted proxy is `proxies`; the role `admin` exists.
async fn start_with(
    db: std::sync::Arc<latchkey_service::testing::TestDatabase>,
    rules: &str,
    proxies: &str,
) -> TestServer {
    let dir = std::sync::Arc::new(ok(tempfile::tempdir(), "dir"));
    let path = dir.path().join("rules.toml");
    ok(std::fs::write(&path, rules), "rules file");
    let port = free_port();
    // The roles the rules name must exist before the server reads them.
    let seeded = TestServer::start(db.clone(), |_| {}).await;
    let admin = NewRole {
        name: ok(RoleName::parse("admin"), "role"),
        application: None,
        description: String::new(),
        entitlements: vec![ok(Entitlement::parse("reports:read"), "entitlement")],
    };
    let created = seeded.state().services.access().create_role(&tenant(), admin, &Actor::Cli).await;
    if let Err(e) = created {
        assert!(e.to_string().contains("exists"), "create role: {e}");
    }
    seeded.stop().await;
    let proxies = proxies.to_owned();
    ok(
        TestServer::start_in(db, dir, latchkey_core::Clock::system(), move |c| {
            c.server.port = port;
            c.server.public_url = url::Url::parse(&format!("http://auth.latchkey.test:{port}")).ok();
            c.server.trusted_proxies = vec![ok(proxies.parse(), "net")];
            c.forward_auth.rules = Some(path);
            c.forward_auth.cookie_domain = Some("latchkey.test".into());
            c.forward_auth.audience = Some("https://apps.latchkey.test".into());
        })
        .await,
        "server start",
    )
}

async fn start(db: std::sync::Arc<latchkey_service::testing::TestDatabase>) -> TestServer {
    start_with(db, RULES, "127.0.0.1/32").await
}

/// A browser whose `auth.latchkey.test` is the server.
fn browser(server: &TestServer) -> reqwest::Client {
    let addr: SocketAddr = ok(server.base.trim_start_matches("http://").parse(), "addr");
    ok(
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .resolve("auth.latchkey.test", addr)
            .no_proxy()
            .build(),
        "browser",
    )
}

/// What the proxy asks: `method` of `uri` on app.latchkey.test, with extra headers.
async fn ask(
    server: &TestServer,
    endpoint: &str,
    method: &str,
    uri: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    // The proxy: it never follows a redirect, it hands it to the browser.
    let proxy = ok(reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().build(), "proxy");
    let mut request = proxy
        .get(server.url(endpoint))
        .header("X-Forwarded-Method", method)
        .header("X-Forwarded-Proto", "http")
        .header("X-Forwarded-Host", "app.latchkey.test:8080")
        .header("X-Forwarded-Uri", uri);
    for (k, v) in extra {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap_or_else(|e| panic!("forward-auth {uri}: {e:?}"))
}

const HTML: (&str, &str) = ("Accept", "text/html,application/xhtml+xml");

fn location(headers: &HeaderMap) -> String {
    headers.get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Signs `username` in the way a browser does, from the proxy's redirect to the app;
/// returns the forward-auth cookie (`name=value`) and the Set-Cookie line it came in.
async fn sign_in_through(
    server: &TestServer,
    browser: &reqwest::Client,
    username: &str,
    uri: &str,
) -> (String, String) {
    let first = ask(server, "/forward-auth", "GET", uri, &[HTML]).await;
    assert_eq!(first.status(), StatusCode::FOUND, "an anonymous browser is redirected");
    let start = location(first.headers());
    assert!(start.starts_with(&format!("{}/forward-auth/start?rd=", server.state().issuer)), "{start}");
    let to_login = ok(browser.get(&start).send().await, "start");
    assert_eq!(to_login.status(), StatusCode::SEE_OTHER);
    let login = location(to_login.headers());
    assert!(login.ends_with("/login?return_to=forward-auth"), "{login}");
    let login = if login.starts_with('/') { format!("{}{login}", server.state().issuer) } else { login };
    let page = ok(ok(browser.get(&login).send().await, "login").text().await, "html");
    let csrf = hidden_field(&page, "csrf").unwrap_or_default();
    assert_eq!(hidden_field(&page, "return_to").as_deref(), Some("forward-auth"));
    let form = [("csrf", csrf.as_str()), ("username", username), ("password", PASSWORD), ("return_to", "forward-auth")];
    let signed = ok(browser.post(format!("{}/login", server.state().issuer)).form(&form).send().await, "sign in");
    let next = location(signed.headers());
    assert!(next.ends_with("/forward-auth/continue"), "{next}");
    let next = if next.starts_with('/') { format!("{}{next}", server.state().issuer) } else { next };
    let back = ok(browser.get(&next).send().await, "continue");
    // A page that sends the browser on: a redirect would be blocked by `form-action`.
    assert_eq!(back.status(), StatusCode::OK);
    let target = format!("http://app.latchkey.test:8080{uri}");
    assert_eq!(header(back.headers(), "refresh"), Some(format!("0; url={target}")), "back where it asked");
    let set = back
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("latchkey-forward-auth="))
        .unwrap_or_else(|| panic!("no forward-auth cookie"))
        .to_owned();
    let pair = set.split(';').next().unwrap_or_default().to_owned();
    (pair, set)
}

async fn grant(server: &TestServer, sub: &SubjectId, role: &str) {
    let link = Membership::UserRole { sub: sub.clone(), role: ok(RoleName::parse(role), "role") };
    ok(server.state().services.access().link(&tenant(), &link, &Actor::Cli).await, "grant");
}

#[tokio::test]
async fn a_browser_signs_in_returns_with_the_cookie_and_loses_it_at_sign_out() {
    for db in all_backends().await {
        let b = db.backend;
        let server = start(db.clone()).await;
        let ada = server.create_user("ada", PASSWORD).await;
        let browser = browser(&server);

        let bypass = ask(&server, "/forward-auth", "GET", "/public/app.css", &[]).await;
        assert_eq!(bypass.status(), StatusCode::OK, "{b}: bypass");
        assert!(header(bypass.headers(), "Remote-User").is_none(), "{b}: no identity on bypass");

        let original =
            [HTML, ("X-Original-URL", "http://app.latchkey.test:8080/page?x=1"), ("X-Original-Method", "GET")];
        let nginx = ask(&server, "/forward-auth/nginx", "GET", "/page?x=1", &original).await;
        assert_eq!(nginx.status(), StatusCode::UNAUTHORIZED, "{b}: nginx gets 401 with Location");
        assert!(location(nginx.headers()).contains("rd=http%3A%2F%2Fapp.latchkey.test%3A8080%2Fpage%3Fx%3D1"));
        let api = ask(&server, "/forward-auth", "GET", "/page", &[]).await;
        assert_eq!(api.status(), StatusCode::UNAUTHORIZED, "{b}: an API caller");
        assert!(location(api.headers()).is_empty(), "{b}: no redirect for API callers");
        let challenges: Vec<_> =
            api.headers().get_all(WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok()).collect();
        assert!(
            challenges.iter().any(|c| c.starts_with("Bearer")) && challenges.iter().any(|c| c.starts_with("Basic"))
        );

        let (cookie, set) = sign_in_through(&server, &browser, "ada", "/page?x=1").await;
        for attribute in ["Domain=latchkey.test", "Path=/", "HttpOnly", "SameSite=Lax"] {
            assert!(set.contains(attribute), "{b}: {set} lacks {attribute}");
        }
        let allowed = ask(&server, "/forward-auth", "GET", "/page", &[("Cookie", &cookie)]).await;
        assert_eq!(allowed.status(), StatusCode::OK, "{b}");
        assert_eq!(header(allowed.headers(), "Remote-User").as_deref(), Some("ada"));
        assert_eq!(header(allowed.headers(), "Remote-Email").as_deref(), Some("ada@example.com"));
        assert_eq!(header(allowed.headers(), "Remote-Name").as_deref(), Some("Test User"));
        assert_eq!(header(allowed.headers(), "Remote-Roles"), None, "no roles, no header");

        // The single-sign-on cookie stays on Latchkey's host; the forward-auth cookie is
        // worth nothing at Latchkey's own pages.
        let account =
            ok(server.http.get(server.url("/account/sessions")).header("Cookie", &cookie).send().await, "account");
        assert!(account.url().path().starts_with("/login") || account.status().is_redirection(), "{b}");

        let admin = ask(&server, "/forward-auth", "GET", "/admin/users", &[("Cookie", &cookie)]).await;
        assert_eq!(admin.status(), StatusCode::FORBIDDEN, "{b}: a known user without the role");
        grant(&server, &ada, "admin").await;
        eventually(Duration::from_secs(2), "the granted role counts", || async {
            ask(&server, "/forward-auth", "GET", "/admin/users", &[("Cookie", &cookie)]).await.status()
                == StatusCode::OK
        })
        .await;
        let scoped = ask(&server, "/forward-auth", "GET", "/reports/q1", &[("Cookie", &cookie)]).await;
        assert_eq!(scoped.status(), StatusCode::FORBIDDEN, "{b}: a session holds no scopes");
        let denied = ask(&server, "/forward-auth", "GET", "/blocked/x", &[("Cookie", &cookie)]).await;
        assert_eq!(denied.status(), StatusCode::FORBIDDEN, "{b}: deny");

        // Signing out ends the session; its forward-auth cookie stops counting.
        let ended = server
            .state()
            .services
            .sessions()
            .end(&tenant(), &SessionSelector::User { sub: ada.clone(), except_sid: None }, "test", false, &Actor::Cli)
            .await;
        assert_eq!(ok(ended, "end").sessions.len(), 1, "{b}");
        let after = ask(&server, "/forward-auth", "GET", "/page", &[("Cookie", &cookie), HTML]).await;
        assert_eq!(after.status(), StatusCode::FOUND, "{b}: sent to sign in again");
        server.stop().await;
    }
}

#[tokio::test]
async fn an_ended_session_is_refused_by_another_node_within_a_second() {
    for db in all_backends().await {
        let b = db.backend;
        let one = start(db.clone()).await;
        let two = start(db.clone()).await;
        let ada = one.create_user("ada", PASSWORD).await;
        let (cookie, _) = sign_in_through(&one, &browser(&one), "ada", "/page").await;
        let on_two = ask(&two, "/forward-auth", "GET", "/page", &[("Cookie", &cookie)]).await;
        assert_eq!(on_two.status(), StatusCode::OK, "{b}: the cookie counts on every node");
        let which = SessionSelector::User { sub: ada, except_sid: None };
        ok(one.state().services.sessions().end(&tenant(), &which, "test", false, &Actor::Cli).await, "end");
        eventually(Duration::from_millis(1_500), "the other node refuses the cookie", || async {
            ask(&two, "/forward-auth", "GET", "/page", &[("Cookie", &cookie)]).await.status()
                == StatusCode::UNAUTHORIZED
        })
        .await;
        one.stop().await;
        two.stop().await;
    }
}

#[tokio::test]
async fn api_keys_pass_with_their_owner_and_their_limits() {
    for db in all_backends().await {
        let b = db.backend;
        let server = start(db.clone()).await;
        let ada = server.create_user("ada", PASSWORD).await;
        grant(&server, &ada, "admin").await;
        let keys = server.state().services.api_keys();
        let scopes = vec![ok(ScopeName::parse("reports:read"), "scope")];
        let full = ApiKeySpec { name: "full".into(), scopes: scopes.clone(), ..ApiKeySpec::default() };
        let full = ok(keys.create(&tenant(), &ada, full, &Actor::Cli).await, "key");
        let read_only = ApiKeySpec {
            name: "ro".into(),
            scopes: scopes.clone(),
            methods: vec!["GET".into(), "HEAD".into(), "OPTIONS".into()],
            ..ApiKeySpec::default()
        };
        let read_only = ok(keys.create(&tenant(), &ada, read_only, &Actor::Cli).await, "key");

        let bearer = format!("Bearer {}", full.secret);
        let allowed = ask(&server, "/forward-auth", "POST", "/reports/q1", &[("Authorization", &bearer)]).await;
        assert_eq!(allowed.status(), StatusCode::OK, "{b}");
        assert_eq!(header(allowed.headers(), "Remote-User").as_deref(), Some("ada"));
        assert_eq!(header(allowed.headers(), "Remote-Roles").as_deref(), Some("admin"));
        use base64::Engine as _;
        let basic =
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("git:{}", full.secret)));
        let by_basic = ask(&server, "/forward-auth", "GET", "/reports/q1", &[("Authorization", &basic)]).await;
        assert_eq!(by_basic.status(), StatusCode::OK, "{b}: the key as an HTTP Basic password");

        let ro = format!("Bearer {}", read_only.secret);
        assert_eq!(
            ask(&server, "/forward-auth", "GET", "/reports/q1", &[("Authorization", &ro)]).await.status(),
            StatusCode::OK
        );
        let post = ask(&server, "/forward-auth", "POST", "/reports/q1", &[("Authorization", &ro)]).await;
        assert_eq!(post.status(), StatusCode::FORBIDDEN, "{b}: a read-only key is refused a POST");
        let secure = ask(&server, "/forward-auth", "GET", "/secure/x", &[("Authorization", &bearer), HTML]).await;
        assert_eq!(secure.status(), StatusCode::FORBIDDEN, "{b}: a key is one factor, never a passkey");

        let mut typo = full.secret.clone();
        let last = typo.pop().map_or('a', |c| if c == 'a' { 'b' } else { 'a' });
        typo.push(last);
        let wrong =
            ask(&server, "/forward-auth", "GET", "/page", &[("Authorization", &format!("Bearer {typo}")), HTML]).await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{b}: a mistyped key, even from a browser");
        let junk = ask(&server, "/forward-auth", "GET", "/page", &[("Authorization", "Negotiate abc")]).await;
        assert_eq!(junk.status(), StatusCode::UNAUTHORIZED);

        let id = ok(ApiKeyId::parse(full.key.id.as_str()), "id");
        ok(keys.revoke(&tenant(), &id, &Actor::Cli).await, "revoke");
        eventually(Duration::from_secs(1), "a revoked key is refused", || async {
            ask(&server, "/forward-auth", "GET", "/page", &[("Authorization", &bearer)]).await.status()
                == StatusCode::UNAUTHORIZED
        })
        .await;
        server.stop().await;
    }
}

#[tokio::test]
async fn what_must_not_pass_does_not() {
    let db = sqlite().await;
    let server = start(db.clone()).await;
    server.create_user("ada", PASSWORD).await;
    let (cookie, _) = sign_in_through(&server, &browser(&server), "ada", "/page").await;
    // Encoded-path tricks: refused, or decided by the rule of the path they really name.
    for uri in [
        "/admin%2Fusers",
        "/public/..%2Fadmin",
        "/public;x=1/../admin",
        "/public/%252e%252e/admin",
        "/..",
        "/a%00",
        "/admin%3F",
        "/public/#/../admin",
        "/public/%23/../admin",
    ] {
        let r = ask(&server, "/forward-auth", "GET", uri, &[("Cookie", &cookie)]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{uri}");
    }
    for uri in [
        "/public/../admin/users",
        "/public/%2e%2e/admin/users",
        "//admin/users",
        "/public/./../admin/x",
        "/ADMIN/users",
        "/Admin",
    ] {
        let r = ask(&server, "/forward-auth", "GET", uri, &[("Cookie", &cookie)]).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{uri} is decided as /admin");
    }
    // Methods are case-sensitive: `get` is not `GET` to the upstream.
    let lower = ask(&server, "/forward-auth", "get", "/page", &[("Cookie", &cookie)]).await;
    assert_eq!(lower.status(), StatusCode::BAD_REQUEST);
    // A client's own X-Original-URL never counts at /forward-auth (Caddy and Traefik pass
    // the client's headers through): the X-Forwarded-* request is the one decided.
    let forged = [
        ("Cookie", cookie.as_str()),
        ("X-Original-URL", "http://app.latchkey.test:8080/public/x"),
        ("X-Original-Method", "GET"),
    ];
    let r = ask(&server, "/forward-auth", "GET", "/admin/users", &forged).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "decided as /admin/users");
    // nginx's endpoint reads only X-Original-URL and X-Original-Method.
    let r = ask(&server, "/forward-auth/nginx", "GET", "/public/x", &[]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "X-Forwarded-* alone does not count at /forward-auth/nginx");
    // No rule for the host: denied, even signed in.
    let other = ok(
        server
            .http
            .get(server.url("/forward-auth/nginx"))
            .header("X-Original-Method", "GET")
            .header("X-Original-URL", "http://other.latchkey.test/")
            .header("Cookie", &cookie)
            .send()
            .await,
        "other",
    );
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    // Missing or malformed forwarded headers.
    let bare = ok(server.http.get(server.url("/forward-auth")).send().await, "bare");
    assert_eq!(bare.status(), StatusCode::BAD_REQUEST);
    let bad_host = ok(
        server
            .http
            .get(server.url("/forward-auth/nginx"))
            .header("X-Original-Method", "GET")
            .header("X-Original-URL", "http://evil.test@app.latchkey.test/")
            .send()
            .await,
        "bad host",
    );
    assert_eq!(bad_host.status(), StatusCode::BAD_REQUEST);

    // Return addresses: only hosts the rules cover, inside the cookie domain.
    let browser = browser(&server);
    for rd in [
        "https://evil.example/",
        "http://other.latchkey.test/",
        "javascript:alert(1)",
        "//evil.example/",
        "http://user@app.latchkey.test/",
    ] {
        let encoded: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
        let r =
            ok(browser.get(format!("{}/forward-auth/start?rd={encoded}", server.state().issuer)).send().await, "start");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{rd}");
        assert!(location(r.headers()).is_empty(), "{rd}: never redirected");
    }
    server.stop().await;

    // A peer that is not a trusted proxy learns nothing.
    let untrusted = start_with(db, RULES, "10.0.0.0/8").await;
    let r = ask(&untrusted, "/forward-auth", "GET", "/public/x", &[]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    untrusted.stop().await;
}

#[tokio::test]
async fn a_passkey_rule_sends_a_password_session_to_sign_in_again() {
    let server = start(sqlite().await).await;
    server.create_user("ada", PASSWORD).await;
    let browser = browser(&server);
    let (cookie, _) = sign_in_through(&server, &browser, "ada", "/page").await;
    let secure = ask(&server, "/forward-auth", "GET", "/secure/vault", &[("Cookie", &cookie), HTML]).await;
    assert_eq!(secure.status(), StatusCode::FOUND, "a password-only session signs in again");
    let start = location(secure.headers());
    let step_up = ok(browser.get(&start).send().await, "start");
    assert_eq!(step_up.status(), StatusCode::SEE_OTHER);
    assert!(location(step_up.headers()).ends_with("/login?return_to=forward-auth&step_up=passkey"));
    let xhr = ask(&server, "/forward-auth", "GET", "/secure/vault", &[("Cookie", &cookie)]).await;
    assert_eq!(xhr.status(), StatusCode::UNAUTHORIZED, "a script gets 401, not a redirect");
    server.stop().await;
}

#[tokio::test]
async fn rules_are_read_again_when_the_file_changes_and_a_bad_file_changes_nothing() {
    let server = start(sqlite().await).await;
    let path = server.dir.path().join("rules.toml");
    assert_eq!(ask(&server, "/forward-auth", "GET", "/open/x", &[]).await.status(), StatusCode::UNAUTHORIZED);
    let opened =
        format!("[[rule]]\nhosts = [\"app.latchkey.test\"]\npaths = [\"/open/*\"]\npolicy = \"bypass\"\n{RULES}");
    ok(std::fs::write(&path, opened), "write");
    eventually(Duration::from_secs(5), "the new rule is in force", || async {
        ask(&server, "/forward-auth", "GET", "/open/x", &[]).await.status() == StatusCode::OK
    })
    .await;
    ok(
        std::fs::write(
            &path,
            "[[rule]]\nhosts = [\"app.latchkey.test\"]\npolicy = \"one_factor\"\nroles = [\"no-such-role\"]\n",
        ),
        "write",
    );
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        ask(&server, "/forward-auth", "GET", "/open/x", &[]).await.status(),
        StatusCode::OK,
        "the previous rules stay"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_rules_file_naming_an_unknown_role_stops_the_start_naming_its_line() {
    let db = sqlite().await;
    let dir = std::sync::Arc::new(ok(tempfile::tempdir(), "dir"));
    let path = dir.path().join("rules.toml");
    ok(
        std::fs::write(
            &path,
            "[[rule]]\nhosts = [\"a.latchkey.test\"]\npolicy = \"deny\"\n\n[[rule]]\nhosts = [\"a.latchkey.test\"]\npolicy = \"one_factor\"\nroles = [\"editr\"]\n",
        ),
        "write",
    );
    let started = TestServer::start_in(db, dir, latchkey_core::Clock::system(), |c| {
        c.server.public_url = url::Url::parse("http://auth.latchkey.test").ok();
        c.forward_auth.rules = Some(path);
        c.forward_auth.cookie_domain = Some("latchkey.test".into());
    })
    .await;
    let err = started.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("rules.toml line 5") && err.contains("role `editr` does not exist"), "{err}");
}

#[tokio::test]
async fn access_tokens_pass_only_for_the_forward_auth_audience() {
    use latchkey_core::domain::GrantType;
    use latchkey_core::records::ResourceServer;
    use support::ClientSpec;
    use support::flow::secret_of;

    let server = start(sqlite().await).await;
    server.create_scope("reports:read", "Read reports").await;
    let apps = ResourceServer {
        identifier: "https://apps.latchkey.test".into(),
        name: "Apps behind the proxy".into(),
        scopes: vec!["reports:read".into()],
        client_id: None,
    };
    ok(server.state().services.resources().put(&tenant(), &apps, &Actor::Cli).await, "resource");
    let spec = ClientSpec {
        id: "robot",
        grants: &[GrantType::ClientCredentials],
        scopes: &["reports:read"],
        ..ClientSpec::default()
    };
    server.create_client(spec).await;
    let token = |resource: Option<&'static str>| {
        let server = &server;
        async move {
            let mut form = vec![("grant_type", "client_credentials"), ("scope", "reports:read")];
            form.extend(resource.map(|r| ("resource", r)));
            let response =
                server.http.post(server.url("/token")).basic_auth("robot", Some(secret_of("robot"))).form(&form);
            let body: serde_json::Value = ok(ok(response.send().await, "token").json().await, "json");
            body["access_token"].as_str().unwrap_or_else(|| panic!("no token: {body}")).to_owned()
        }
    };
    let for_apps = format!("Bearer {}", token(Some("https://apps.latchkey.test")).await);
    let allowed = ask(&server, "/forward-auth", "GET", "/reports/q1", &[("Authorization", &for_apps)]).await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(header(allowed.headers(), "Remote-User").as_deref(), Some("client:robot"), "a client's own token");
    let secure = ask(&server, "/forward-auth", "GET", "/secure/x", &[("Authorization", &for_apps)]).await;
    assert_eq!(secure.status(), StatusCode::FORBIDDEN, "a token is one factor");
    let elsewhere = format!("Bearer {}", token(None).await);
    let refused = ask(&server, "/forward-auth", "GET", "/reports/q1", &[("Authorization", &elsewhere)]).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "a token for another audience");
    server.stop().await;
}
