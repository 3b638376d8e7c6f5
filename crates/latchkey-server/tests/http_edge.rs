//! What every client of the HTTP edge sees: discovery, JWKS, headers, errors, metrics,
//! client IP rules and CORS.

mod support;

use std::time::Duration;

use latchkey_core::domain::{ClientKind, GrantType, TenantId};
use latchkey_core::records::{Actor, NewClient};
use latchkey_service::testing::sample_client;
use reqwest::StatusCode;
use support::{TestServer, all_backends, eventually, ok, sqlite};

#[tokio::test]
async fn discovery_and_jwks_answer_with_the_configured_issuer_on_every_backend() {
    for db in all_backends().await {
        let server = TestServer::start(db.clone(), |_| {}).await;
        let doc = server.get_json("/.well-known/openid-configuration").await;
        let issuer = server.server.issuer.clone();
        assert!(issuer.starts_with("http://localhost:"), "{}: {issuer}", db.backend);
        assert_eq!(doc["issuer"], issuer, "{}", db.backend);
        assert_eq!(doc["jwks_uri"], format!("{issuer}/jwks.json"));
        // RFC 8414 metadata is the same document.
        assert_eq!(server.get_json("/.well-known/oauth-authorization-server").await["issuer"], issuer);

        let response = server.get("/jwks.json").await;
        assert_eq!(response.headers()["content-type"], "application/jwk-set+json");
        assert_eq!(response.headers()["cache-control"], "public, max-age=3600");
        let jwks: serde_json::Value = ok(response.json().await, "jwks");
        for alg in ["RS256", "ES256", "EdDSA"] {
            let n = jwks["keys"].as_array().map_or(0, |k| k.iter().filter(|k| k["alg"] == alg).count());
            assert_eq!(n, 2, "{}: {alg} has an active and a next key", db.backend);
        }
        // Every advertised URL answers.
        for key in ["jwks_uri"] {
            let url = doc[key].as_str().unwrap_or_default().replace(&issuer, &server.base);
            let status = ok(server.http.get(url).send().await, key).status();
            assert_eq!(status, StatusCode::OK, "{key}");
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn the_issuer_never_comes_from_the_host_header() {
    let server = TestServer::start(sqlite().await, |c| {
        c.server.public_url = url::Url::parse("https://id.example.com").ok();
    })
    .await;
    let doc: serde_json::Value = ok(
        ok(
            server
                .http
                .get(server.url("/.well-known/openid-configuration"))
                .header("host", "evil.example")
                .send()
                .await,
            "get",
        )
        .json()
        .await,
        "json",
    );
    assert_eq!(doc["issuer"], "https://id.example.com");
    server.stop().await;
}

#[tokio::test]
async fn a_public_url_with_a_path_serves_both_well_known_forms() {
    let server = TestServer::start(sqlite().await, |c| {
        c.server.public_url = url::Url::parse("http://localhost:1/auth/").ok();
    })
    .await;
    let appended = server.get_json("/auth/.well-known/openid-configuration").await;
    assert_eq!(appended["issuer"], "http://localhost:1/auth");
    let inserted = server.get_json("/.well-known/oauth-authorization-server/auth").await;
    assert_eq!(inserted["issuer"], "http://localhost:1/auth");
    assert_eq!(server.get("/auth/jwks.json").await.status(), StatusCode::OK);
    assert_eq!(server.get("/jwks.json").await.status(), StatusCode::NOT_FOUND, "nothing outside the base path");
    server.stop().await;
}

#[tokio::test]
async fn every_response_carries_security_headers_and_a_request_id() {
    let server = TestServer::start(sqlite().await, |_| {}).await;
    let response = server.get("/healthz").await;
    let h = response.headers();
    let csp = h["content-security-policy"].to_str().unwrap_or_default();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(h.get("strict-transport-security").is_none(), "no HSTS on plain http");
    let id = h["x-request-id"].to_str().unwrap_or_default().to_owned();
    assert_eq!(id.len(), 36, "a generated UUID: {id}");

    let kept = ok(server.http.get(server.url("/healthz")).header("x-request-id", "proxy-123").send().await, "get");
    assert_eq!(kept.headers()["x-request-id"], "proxy-123", "a plain id from a proxy is kept");
    let evil = ok(server.http.get(server.url("/healthz")).header("x-request-id", "a b\"injected").send().await, "get");
    assert_ne!(evil.headers()["x-request-id"], "a b\"injected", "an unsafe id is replaced");
    server.stop().await;

    let https = TestServer::start(sqlite().await, |c| {
        c.server.public_url = url::Url::parse("https://id.example.com").ok();
    })
    .await;
    let response = https.get("/healthz").await;
    assert!(response.headers()["strict-transport-security"].to_str().unwrap_or_default().starts_with("max-age="));
    https.stop().await;
}

#[tokio::test]
async fn unknown_paths_get_an_html_page_or_json_by_what_the_client_accepts() {
    let dir = ok(tempfile::tempdir(), "dir");
    std::fs::write(dir.path().join("404.html"), "<h1>Our own 404</h1>").unwrap_or_default();
    let page = dir.path().join("404.html");
    let server = TestServer::start(sqlite().await, |_| {}).await;
    let html = ok(server.http.get(server.url("/no/such/page")).header("accept", "text/html").send().await, "get");
    assert_eq!(html.status(), StatusCode::NOT_FOUND);
    assert!(html.headers()["content-type"].to_str().unwrap_or_default().starts_with("text/html"));
    let body = ok(html.text().await, "body");
    assert!(body.contains("Not Found") && body.contains("Latchkey"), "{body}");
    assert!(!body.contains("<script"), "no inline script");

    let json =
        ok(server.http.get(server.url("/no/such/page")).header("accept", "application/json").send().await, "get");
    assert_eq!(json.status(), StatusCode::NOT_FOUND);
    let v: serde_json::Value = ok(json.json().await, "json");
    assert_eq!(v["error"], "not_found");
    server.stop().await;

    let custom = TestServer::start(sqlite().await, move |c| {
        c.web.error_pages.insert("404".into(), page);
    })
    .await;
    let body = ok(custom.get("/nope").await.text().await, "body");
    assert_eq!(body, "<h1>Our own 404</h1>");
    custom.stop().await;
}

/// A page handler answers with a `PageError`; the edge renders it with Latchkey's error page
/// (security headers included) or the operator's page for that status.
#[tokio::test]
async fn a_page_error_is_rendered_with_the_error_page_for_its_status() {
    let server = TestServer::start(sqlite().await, |_| {}).await;
    let response = server.get("/consent?req=no-such-request").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers()["content-type"].to_str().unwrap_or_default().starts_with("text/html"));
    assert!(response.headers().contains_key("content-security-policy"), "security headers on error pages too");
    let body = ok(response.text().await, "body");
    assert!(body.contains("This sign-in request has expired or belongs to another browser"), "{body}");
    assert!(body.contains("Latchkey"), "in Latchkey's own page: {body}");
    server.stop().await;

    let dir = ok(tempfile::tempdir(), "dir");
    let page = dir.path().join("400.html");
    ok(std::fs::write(&page, "<h1>Our own 400</h1>"), "write page");
    let custom = TestServer::start(sqlite().await, move |c| {
        c.web.error_pages.insert("400".into(), page);
    })
    .await;
    let response = custom.get("/consent?req=no-such-request").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(ok(response.text().await, "body"), "<h1>Our own 400</h1>");
    // An API endpoint keeps its own error format.
    let token = ok(custom.http.post(custom.url("/token")).form(&[("grant_type", "nope")]).send().await, "token");
    assert_eq!(token.status(), StatusCode::BAD_REQUEST);
    let v: serde_json::Value = ok(token.json().await, "json");
    assert!(v["error"].is_string(), "OAuth error JSON: {v}");
    custom.stop().await;
}

#[tokio::test]
async fn readiness_follows_the_database() {
    let server = TestServer::start(sqlite().await, |_| {}).await;
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK);
    let body: serde_json::Value = ok(ready.json().await, "json");
    assert_eq!(body["mail"], "off", "no [mail]");
    assert_eq!(server.get("/healthz").await.status(), StatusCode::OK);
    server.server.state.services.system().close().await;
    let not_ready = server.get("/readyz").await;
    assert_eq!(not_ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = ok(not_ready.json().await, "json");
    assert_eq!(body["database"], "unreachable");
    assert_eq!(server.get("/healthz").await.status(), StatusCode::OK, "alive even when not ready");
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_for_allowed_clients_only() {
    let server = TestServer::start(sqlite().await, |_| {}).await;
    server.get("/jwks.json").await;
    server.get("/no-such-path-4711").await;
    let odd_method = ok(reqwest::Method::from_bytes(b"FOO4711"), "method");
    ok(server.http.request(odd_method, server.url("/jwks.json")).send().await, "odd method");
    let metrics = ok(server.get("/metrics").await.text().await, "metrics");
    assert!(!metrics.contains("FOO4711"), "a client's made-up method never becomes a label");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    assert!(metrics.contains("latchkey_http_requests_total{"), "{metrics}");
    assert!(metrics.contains("route=\"/jwks.json\""), "{metrics}");
    assert!(metrics.contains("route=\"unmatched\""), "unknown paths are one label");
    assert!(!metrics.contains("no-such-path-4711"), "raw paths never become labels");
    assert!(metrics.contains("latchkey_http_request_duration_seconds_bucket"), "latency histogram");
    server.stop().await;

    let closed = TestServer::start(sqlite().await, |c| {
        c.metrics.allowed_networks = vec![ok("10.0.0.0/8".parse(), "net")];
        c.metrics.token = Some(latchkey_config::SecretRef::new("metrics-token-123"));
    })
    .await;
    assert_eq!(closed.get("/metrics").await.status(), StatusCode::FORBIDDEN);
    // A forwarded header from a peer that is not a trusted proxy is ignored.
    let spoofed = ok(closed.http.get(closed.url("/metrics")).header("x-forwarded-for", "10.1.2.3").send().await, "get");
    assert_eq!(spoofed.status(), StatusCode::FORBIDDEN);
    let wrong = ok(closed.http.get(closed.url("/metrics")).bearer_auth("nope").send().await, "get");
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let with_token = ok(closed.http.get(closed.url("/metrics")).bearer_auth("metrics-token-123").send().await, "get");
    assert_eq!(with_token.status(), StatusCode::OK);
    closed.stop().await;

    let proxied = TestServer::start(sqlite().await, |c| {
        c.metrics.allowed_networks = vec![ok("10.0.0.0/8".parse(), "net")];
        c.server.trusted_proxies = vec![ok("127.0.0.1/32".parse(), "net")];
    })
    .await;
    let via_proxy =
        ok(proxied.http.get(proxied.url("/metrics")).header("x-forwarded-for", "10.1.2.3").send().await, "get");
    assert_eq!(via_proxy.status(), StatusCode::OK, "the trusted proxy's client address counts");
    let outsider = ok(
        proxied.http.get(proxied.url("/metrics")).header("x-forwarded-for", "10.1.2.3, 203.0.113.5").send().await,
        "get",
    );
    assert_eq!(outsider.status(), StatusCode::FORBIDDEN, "the right-most untrusted address is the client");
    proxied.stop().await;
}

#[tokio::test]
async fn cors_allows_the_web_origins_of_registered_clients_only() {
    let server = TestServer::start(sqlite().await, |_| {}).await;
    let preflight = |origin: &'static str| {
        server
            .http
            .request(reqwest::Method::OPTIONS, server.url("/jwks.json"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
    };
    let before = ok(preflight("https://app.example.com").await, "preflight");
    assert!(before.headers().get("access-control-allow-origin").is_none(), "no client yet");

    let client = NewClient {
        grant_types: vec![GrantType::AuthorizationCode],
        allowed_scopes: vec![],
        ..sample_client("spa", ClientKind::Public, "https://app.example.com/cb")
    };
    ok(server.server.state.services.clients().create(&TenantId::default_tenant(), client, &Actor::Cli).await, "create");
    // The change reaches the cache through the change listener (SQLite: polling).
    eventually(Duration::from_secs(3), "the new client's origin is allowed", || async {
        preflight("https://app.example.com")
            .await
            .ok()
            .and_then(|r| r.headers().get("access-control-allow-origin").cloned())
            .is_some_and(|v| v == "https://app.example.com")
    })
    .await;
    let allowed = ok(preflight("https://app.example.com").await, "preflight");
    assert!(allowed.headers().get("access-control-allow-credentials").is_none(), "no credentials");
    let other = ok(preflight("https://evil.example").await, "preflight");
    assert!(other.headers().get("access-control-allow-origin").is_none());
    server.stop().await;
}

#[tokio::test]
async fn a_scope_created_or_deleted_while_serving_shows_in_discovery() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        let scopes = || async {
            let doc = server.get_json("/.well-known/openid-configuration").await;
            doc["scopes_supported"].as_array().cloned().unwrap_or_default()
        };
        let name = ok(latchkey_core::domain::ScopeName::parse("reports:read"), "scope");
        assert!(!scopes().await.contains(&"reports:read".into()), "{b}");
        server.create_scope("reports:read", "Read reports").await;
        // Discovery reads scopes from a cache that the change listener clears.
        eventually(Duration::from_secs(5), "the new scope is advertised", || async {
            scopes().await.contains(&"reports:read".into())
        })
        .await;
        let scopes_service = server.server.state.services.scopes();
        ok(scopes_service.delete(&TenantId::default_tenant(), &name, &Actor::Cli).await, "delete");
        eventually(Duration::from_secs(5), "the deleted scope is gone", || async {
            !scopes().await.contains(&"reports:read".into())
        })
        .await;
        server.stop().await;
    }
}
