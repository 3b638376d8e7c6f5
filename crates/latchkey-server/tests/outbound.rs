//! The outbound guard, as the server uses it and on its own: refused destinations are never
//! contacted (back-channel logout, `jwks_uri`), 127.0.0.1 is reachable only where
//! `outbound.allow` opens it for that purpose and port, redirects are not followed, a body
//! is cut off while it is read, and a failing destination's circuit opens.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use latchkey_config::{AllowEntry, OutboundConfig, Purpose};
use latchkey_core::domain::{ClientId, ClientSessionPolicy, LogoutUri, TenantId};
use latchkey_core::records::{Actor, SessionSelector};
use latchkey_service::client_keys::ClientKeyError;
use latchkey_service::outbound::{Outbound, OutboundError, Refusal, Request};
use support::browser::Browser;
use support::flow::{PASSWORD, Rp, secret_of};
use support::{ClientSpec, TestServer, all_backends, allow_loopback, eventually, ok, sqlite};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const JWKS: &str = r#"{"keys":[]}"#;
const SETTLE: Duration = Duration::from_secs(10);

/// A stand-in on 127.0.0.1 that counts the connections it accepts, so a test can tell that
/// nothing was attempted.
struct Stub {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Stub {
    async fn start(app: axum::Router) -> Self {
        let listener = ok(tokio::net::TcpListener::bind("127.0.0.1:0").await, "bind");
        let addr = ok(listener.local_addr(), "addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let listener = listener.tap_io(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, connections, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn jwks_app() -> axum::Router {
    axum::Router::new().route("/jwks", get(|| async { ([(header::CONTENT_TYPE, "application/json")], JWKS) }))
}

fn guard(allow: Vec<AllowEntry>) -> Outbound {
    ok(Outbound::new(&OutboundConfig { allow, ..OutboundConfig::default() }), "outbound")
}

fn refusal(result: Result<latchkey_service::outbound::Response, OutboundError>) -> Refusal {
    match result {
        Err(OutboundError::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn metrics(server: &TestServer) -> String {
    ok(ok(server.http.get(server.url("/metrics")).send().await, "metrics").text().await, "metrics text")
}

#[tokio::test]
async fn a_back_channel_logout_to_a_refused_address_is_never_attempted() {
    for db in all_backends().await {
        let b = db.backend;
        let received = Arc::new(AtomicUsize::new(0));
        let seen = received.clone();
        let rp = Stub::start(axum::Router::new().route(
            "/bc/{client}",
            post(move || {
                seen.fetch_add(1, Ordering::SeqCst);
                async { StatusCode::OK }
            }),
        ))
        .await;
        // 127.0.0.1 on the relying party's port is open, but for jwks_uri fetches only.
        let port = rp.addr.port();
        let server = TestServer::start(db, |c| {
            c.logout.backchannel_poll_interval = Duration::from_millis(100);
            c.outbound.allow = vec![allow_loopback(Purpose::JwksUri, &[port])];
        })
        .await;
        let sub = server.create_user("ada", PASSWORD).await;
        let uris = [("probe", rp.url("/bc/probe")), ("intranet", "https://10.0.0.1/bc".to_owned())];
        for (id, uri) in &uris {
            let session_policy = ClientSessionPolicy {
                backchannel_logout_uri: Some(ok(LogoutUri::parse(uri), "uri")),
                ..ClientSessionPolicy::default()
            };
            let callback = format!("https://{id}.example/cb");
            let spec = ClientSpec {
                id,
                redirect_uris: &[&callback],
                first_party: true,
                session_policy,
                ..ClientSpec::default()
            };
            server.create_client(spec).await;
        }
        let browser = Browser::new(server.server.addr);
        for (id, _) in &uris {
            let (secret, callback) = (secret_of(id), format!("https://{id}.example/cb"));
            Rp { id, secret: &secret, callback: &callback }.sign_in(&server, &browser, "ada", "openid").await;
        }
        let tenant = TenantId::default_tenant();
        let which = SessionSelector::User { sub: sub.clone(), except_sid: None };
        ok(server.state().services.sessions().end(&tenant, &which, "test", false, &Actor::Cli).await, "end");

        let deliveries =
            || async { ok(server.state().services.sessions().logout_deliveries(&tenant, &sub).await, "deliveries") };
        eventually(SETTLE, "both deliveries given up", || async {
            let d = deliveries().await;
            d.len() == 2 && d.iter().all(|d| d.status == "failed")
        })
        .await;
        for d in deliveries().await {
            let error = d.last_error.clone().unwrap_or_default();
            assert_eq!(d.attempts, 1, "{b}: given up at once, never retried: {d:?}");
            assert!(error.starts_with("not sent:") && error.contains("outbound.allow"), "{b}: {error}");
            let names = if d.client_id.as_str() == "intranet" { "10.0.0.0/8" } else { "backchannel_logout" };
            assert!(error.contains(names), "{b}: {error}");
        }
        assert_eq!(rp.connections(), 0, "{b}: the relying party was never contacted");
        assert_eq!(received.load(Ordering::SeqCst), 0, "{b}");
        let text = metrics(&server).await;
        assert!(
            text.contains(
                r#"latchkey_outbound_refused_total{purpose="backchannel_logout",reason="special_purpose_address"}"#
            ),
            "{b}: {text}"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn a_jwks_uri_on_nat64_loopback_is_refused_without_a_connection_attempt() {
    let stub = Stub::start(jwks_app()).await;
    let port = stub.addr.port();
    let server = TestServer::start(sqlite().await, |_| {}).await;
    // 64:ff9b::7f00:1 is 127.0.0.1 through a NAT64 translator; ::ffff:127.0.0.1 is
    // 127.0.0.1 itself (and would reach the stub if it were tried).
    for (id, uri) in [
        ("nat64", format!("https://[64:ff9b::7f00:1]:{port}/jwks")),
        ("mapped", format!("https://[::ffff:127.0.0.1]:{port}/jwks")),
        ("six-to-four", format!("https://[2002:7f00:1::1]:{port}/jwks")),
    ] {
        server.create_client(ClientSpec { id, jwks_uri: Some(&uri), ..ClientSpec::default() }).await;
        let client = ok(server.state().caches.client(&ok(ClientId::parse(id), "id")).await, "client");
        let client = client.unwrap_or_else(|| panic!("{id}"));
        match server.state().client_keys.keys(&client, false).await {
            Err(ClientKeyError::Refused(why)) => {
                assert!(why.contains("embeds 127.0.0.1") && why.contains("outbound.allow"), "{id}: {why}")
            }
            other => panic!("{id}: expected a refusal before any connection, got {other:?}"),
        }
    }
    assert_eq!(stub.connections(), 0, "nothing was attempted");
    let text = metrics(&server).await;
    assert!(text.contains(r#"latchkey_outbound_refused_total{purpose="jwks_uri",reason="special_purpose_address"}"#));
    server.stop().await;
}

/// Answers any request with a chunked body that never ends; `closed` is set once writing
/// fails, that is once the reader hung up.
async fn endless_chunked_body() -> (SocketAddr, Arc<AtomicBool>, tokio::task::JoinHandle<()>) {
    let listener = ok(tokio::net::TcpListener::bind("127.0.0.1:0").await, "bind");
    let addr = ok(listener.local_addr(), "addr");
    let closed = Arc::new(AtomicBool::new(false));
    let flag = closed.clone();
    let task = tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else { return };
        let mut request = [0u8; 4096];
        let _ = socket.read(&mut request).await;
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        let chunk = format!("4000\r\n{}\r\n", " ".repeat(0x4000));
        let mut result = socket.write_all(head.as_bytes()).await;
        while result.is_ok() {
            result = socket.write_all(chunk.as_bytes()).await;
        }
        flag.store(true, Ordering::SeqCst);
    });
    (addr, closed, task)
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_cut_off_while_it_is_read() {
    let (addr, closed, task) = endless_chunked_body().await;
    let server = TestServer::start(sqlite().await, |c| {
        c.outbound.allow = vec![allow_loopback(Purpose::JwksUri, &[addr.port()])];
        // Far longer than the test waits: reading the body whole first would end in this
        // timeout, not in "too large".
        c.outbound.timeout = Duration::from_secs(120);
    })
    .await;
    let uri = format!("http://{addr}/jwks");
    server.create_client(ClientSpec { id: "endless", jwks_uri: Some(&uri), ..ClientSpec::default() }).await;
    let client = ok(server.state().caches.client(&ok(ClientId::parse("endless"), "id")).await, "client");
    let client = client.unwrap_or_else(|| panic!("client"));
    let fetched = tokio::time::timeout(Duration::from_secs(60), server.state().client_keys.keys(&client, false)).await;
    match fetched {
        Ok(Err(ClientKeyError::Fetch(why))) => assert!(why.contains("too large"), "{why}"),
        other => panic!("expected the body to be cut off at the limit, got {other:?}"),
    }
    eventually(SETTLE, "the connection is closed", || async { closed.load(Ordering::SeqCst) }).await;
    task.abort();
    server.stop().await;
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let followed = Arc::new(AtomicUsize::new(0));
    let counter = followed.clone();
    let stub = Stub::start(
        axum::Router::new()
            .route(
                "/jwks",
                get(|| async {
                    let mut headers = HeaderMap::new();
                    headers.insert(header::LOCATION, header::HeaderValue::from_static("/moved"));
                    (StatusCode::FOUND, headers)
                }),
            )
            .route(
                "/moved",
                get(move || {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async { JWKS }
                }),
            ),
    )
    .await;
    let outbound = guard(vec![allow_loopback(Purpose::JwksUri, &[stub.addr.port()])]);
    let response = ok(outbound.send(Purpose::JwksUri, Request::get(stub.url("/jwks"))).await, "send");
    assert_eq!(response.status(), 302, "the redirect is the answer");

    let server = TestServer::start(sqlite().await, |c| {
        c.outbound.allow = vec![allow_loopback(Purpose::JwksUri, &[stub.addr.port()])];
    })
    .await;
    let uri = stub.url("/jwks");
    server.create_client(ClientSpec { id: "moving", jwks_uri: Some(&uri), ..ClientSpec::default() }).await;
    let client = ok(server.state().caches.client(&ok(ClientId::parse("moving"), "id")).await, "client");
    let keys = server.state().client_keys.keys(&client.unwrap_or_else(|| panic!("client")), false).await;
    assert!(matches!(&keys, Err(ClientKeyError::Fetch(why)) if why.contains("302")), "{keys:?}");
    assert_eq!(followed.load(Ordering::SeqCst), 0, "the redirect target was never fetched");
    server.stop().await;
}

async fn fetch(outbound: &Outbound, url: String) -> Result<latchkey_service::outbound::Response, OutboundError> {
    outbound.send(Purpose::JwksUri, Request::get(url)).await
}

#[tokio::test]
async fn fetches_to_127_0_0_1_work_only_when_allowed_for_that_purpose_and_port() {
    let stub = Stub::start(jwks_app()).await;
    let port = stub.addr.port();
    let entry = |purpose, port, http| AllowEntry { allow_insecure_http: http, ..allow_loopback(purpose, &[port]) };

    // Nothing allowed; allowed for logout deliveries; on another port; without http.
    for (allow, expected) in [
        (vec![], "insecure_scheme"),
        (vec![entry(Purpose::BackchannelLogout, port, true)], "insecure_scheme"),
        (vec![entry(Purpose::JwksUri, port.wrapping_add(1).max(1), true)], "insecure_scheme"),
        (vec![entry(Purpose::JwksUri, port, false)], "insecure_scheme"),
    ] {
        let outbound = guard(allow.clone());
        assert_eq!(refusal(fetch(&outbound, stub.url("/jwks")).await).reason(), expected, "{allow:?}");
    }
    // https to 127.0.0.1, or to a name that resolves to it, is a special-purpose address.
    let strict = guard(vec![]);
    let by_name = refusal(fetch(&strict, format!("https://localhost:{port}/jwks")).await);
    assert!(by_name.to_string().starts_with("localhost resolves to"), "{by_name}");
    assert_eq!(
        refusal(fetch(&strict, format!("https://127.0.0.1:{port}/jwks")).await).reason(),
        "special_purpose_address"
    );
    assert_eq!(stub.connections(), 0, "no refused request reached the stand-in");

    // Allowed for jwks_uri on this port, http included: by address and by name (resolved,
    // checked, and the connection pinned to the checked address).
    let open = guard(vec![entry(Purpose::JwksUri, port, true)]);
    for url in [stub.url("/jwks"), format!("http://localhost:{port}/jwks")] {
        let response = ok(fetch(&open, url.clone()).await, &url);
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(ok(response.body(1024).await, "body"), JWKS.as_bytes(), "{url}");
    }
    // The same entry does not open it for logout deliveries.
    let post = open.send(Purpose::BackchannelLogout, Request::post_form(stub.url("/jwks"), &[("a", "b")])).await;
    assert_eq!(refusal(post).reason(), "insecure_scheme");
    assert_eq!(stub.connections(), 2, "only the two allowed fetches connected");
}

#[tokio::test]
async fn a_destination_that_keeps_failing_is_not_contacted_while_its_circuit_is_open() {
    let failing =
        Stub::start(axum::Router::new().route("/jwks", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))).await;
    let healthy = Stub::start(jwks_app()).await;
    let ports = [failing.addr.port(), healthy.addr.port()];
    let outbound = ok(
        Outbound::new(&OutboundConfig {
            allow: vec![allow_loopback(Purpose::JwksUri, &ports)],
            circuit_breaker_failures: 2,
            circuit_breaker_cool_down: Duration::from_secs(600),
            ..OutboundConfig::default()
        }),
        "outbound",
    );
    for _ in 0..2 {
        let response = ok(outbound.send(Purpose::JwksUri, Request::get(failing.url("/jwks"))).await, "send");
        assert_eq!(response.status(), 503);
    }
    let third = outbound.send(Purpose::JwksUri, Request::get(failing.url("/jwks"))).await;
    assert!(
        matches!(&third, Err(OutboundError::CircuitOpen { retry_after, .. }) if *retry_after > Duration::ZERO),
        "{third:?}"
    );
    assert_eq!(failing.connections(), 2, "the third request was not sent");
    let other = ok(outbound.send(Purpose::JwksUri, Request::get(healthy.url("/jwks"))).await, "healthy");
    assert_eq!(other.status(), 200, "a circuit is per destination");
}
