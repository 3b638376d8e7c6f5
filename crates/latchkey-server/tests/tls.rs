//! HTTPS served directly with rustls, and a renewed certificate picked up without restart.

mod support;

use std::time::Duration;

use support::{TestServer, eventually, ok, sqlite};

fn self_signed(dir: &std::path::Path, name: &str) -> reqwest::Certificate {
    let ck = ok(rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]), "cert");
    let cert_pem = ck.cert.pem();
    ok(std::fs::write(dir.join(format!("{name}.crt")), &cert_pem), "write cert");
    ok(std::fs::write(dir.join(format!("{name}.key")), ck.signing_key.serialize_pem()), "write key");
    ok(reqwest::Certificate::from_pem(cert_pem.as_bytes()), "parse cert")
}

fn client_trusting(cert: reqwest::Certificate, port: u16) -> reqwest::Client {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    ok(reqwest::Client::builder().tls_certs_only([cert]).resolve("localhost", addr).no_proxy().build(), "client")
}

#[tokio::test]
async fn https_is_served_and_a_renewed_certificate_is_picked_up() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let certs = ok(tempfile::tempdir(), "dir");
    let first = self_signed(certs.path(), "first");
    let second = self_signed(certs.path(), "second");
    std::fs::copy(certs.path().join("first.crt"), certs.path().join("tls.crt")).unwrap_or_default();
    std::fs::copy(certs.path().join("first.key"), certs.path().join("tls.key")).unwrap_or_default();
    let (cert, key) = (certs.path().join("tls.crt"), certs.path().join("tls.key"));
    let server = TestServer::start(sqlite().await, move |c| {
        c.server.tls =
            Some(latchkey_server::config::TlsConfig { cert, key, reload_interval: Duration::from_millis(100) });
    })
    .await;
    let port = server.server.addr.port();
    assert_eq!(server.server.issuer, format!("https://localhost:{port}"));
    let url = format!("https://localhost:{port}/.well-known/openid-configuration");

    let trusts_first = client_trusting(first, port);
    let response = ok(trusts_first.get(&url).send().await, "https request");
    let doc: serde_json::Value = ok(response.json().await, "json");
    assert_eq!(doc["issuer"], server.server.issuer);
    let hsts = ok(trusts_first.get(&url).send().await, "get");
    assert!(hsts.headers().contains_key("strict-transport-security"), "HSTS over https");

    let trusts_second = client_trusting(second, port);
    assert!(trusts_second.get(&url).send().await.is_err(), "the second certificate is not served yet");
    std::fs::copy(certs.path().join("second.key"), certs.path().join("tls.key")).unwrap_or_default();
    std::fs::copy(certs.path().join("second.crt"), certs.path().join("tls.crt")).unwrap_or_default();
    eventually(Duration::from_secs(5), "the renewed certificate is served", || async {
        trusts_second.get(&url).send().await.is_ok_and(|r| r.status().is_success())
    })
    .await;
    server.stop().await;
}
