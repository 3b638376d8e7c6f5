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
        c.server.tls = Some(latchkey_config::TlsConfig { cert, key, reload_interval: Duration::from_millis(100) });
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

/// A server on HTTPS with a fresh self-signed certificate for `localhost`, its limits set
/// by `tweak`; with the certificate as reqwest and as rustls take it.
async fn https_server(
    tweak: impl FnOnce(&mut latchkey_config::ServerLimits),
) -> (TestServer, reqwest::Certificate, rustls::pki_types::CertificateDer<'static>, tempfile::TempDir) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let certs = ok(tempfile::tempdir(), "dir");
    let ck = ok(rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]), "cert");
    let (cert, key) = (certs.path().join("tls.crt"), certs.path().join("tls.key"));
    ok(std::fs::write(&cert, ck.cert.pem()), "write cert");
    ok(std::fs::write(&key, ck.signing_key.serialize_pem()), "write key");
    let server = TestServer::start(sqlite().await, move |c| {
        c.server.tls = Some(latchkey_config::TlsConfig { cert, key, reload_interval: Duration::from_secs(60) });
        tweak(&mut c.server.limits);
    })
    .await;
    let pem = ok(reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()), "parse cert");
    (server, pem, ck.cert.der().clone(), certs)
}

const SHORT: Duration = Duration::from_secs(1);
/// Added to every timeout before a test gives up: the machine may be busy.
const MARGIN: Duration = Duration::from_secs(3);

/// Over TLS, sends `request` and reads until the server closes the connection or `bound`
/// passes: what came back, and whether it was closed.
async fn tls_exchange(
    addr: std::net::SocketAddr,
    cert: rustls::pki_types::CertificateDer<'static>,
    request: &'static [u8],
    bound: Duration,
) -> (String, bool) {
    use std::io::{Read, Write};
    let exchange = tokio::task::spawn_blocking(move || -> Result<(String, bool), String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).map_err(|e| e.to_string())?;
        let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
        let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).map_err(|e| e.to_string())?;
        let socket = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, socket);
        tls.write_all(request).map_err(|e| e.to_string())?;
        tls.flush().map_err(|e| e.to_string())?;
        let started = std::time::Instant::now();
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let Some(left) = bound.checked_sub(started.elapsed()).filter(|l| !l.is_zero()) else {
                return Ok((String::from_utf8_lossy(&received).into_owned(), false));
            };
            tls.sock.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
            match tls.read(&mut buf) {
                Ok(0) => return Ok((String::from_utf8_lossy(&received).into_owned(), true)),
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return Ok((String::from_utf8_lossy(&received).into_owned(), false));
                }
                // Closed without close_notify, or reset.
                Err(_) => return Ok((String::from_utf8_lossy(&received).into_owned(), true)),
            }
        }
    });
    ok(ok(exchange.await, "exchange task"), "exchange")
}

#[tokio::test]
async fn a_tls_handshake_that_never_comes_is_closed_after_the_header_timeout() {
    use tokio::io::AsyncReadExt;
    let (server, _, _, _certs) = https_server(|l| l.header_timeout = SHORT).await;
    let mut silent = ok(tokio::net::TcpStream::connect(server.server.addr).await, "connect");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(SHORT + MARGIN, silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "still open after the header timeout: {read:?}");
    server.stop().await;
}

#[tokio::test]
async fn https_half_sent_headers_are_closed_after_the_header_timeout() {
    let (server, _, der, _certs) = https_server(|l| l.header_timeout = SHORT).await;
    let (_, closed) =
        tls_exchange(server.server.addr, der, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n", SHORT + MARGIN).await;
    assert!(closed, "half-sent headers over TLS: still open after the header timeout");
    server.stop().await;
}

#[tokio::test]
async fn an_idle_https_connection_is_closed_after_the_idle_timeout() {
    let (server, _, der, _certs) = https_server(|l| {
        l.header_timeout = Duration::from_secs(60);
        l.idle_timeout = SHORT;
    })
    .await;
    let (answer, closed) =
        tls_exchange(server.server.addr, der, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", SHORT + MARGIN)
            .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "an idle kept-alive HTTPS connection: still open after the idle timeout");
    server.stop().await;
}

#[tokio::test]
async fn https_keeps_room_for_another_address_while_one_floods_it() {
    // Fewer places in all than the flood, so only the per-IP cap keeps one for others.
    let (server, cert, _, _certs) = https_server(|l| l.max_connections = 256).await;
    let mut flood = Vec::new();
    for _ in 0..500 {
        // Connections that never start their handshake.
        flood.push(ok(tokio::net::TcpStream::connect(server.server.addr).await, "connect"));
    }
    let port = server.server.addr.port();
    let client = ok(
        reqwest::Client::builder()
            .tls_certs_only([cert])
            .resolve("localhost", std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
            .timeout(Duration::from_secs(1))
            .no_proxy()
            .build(),
        "client",
    );
    let started = std::time::Instant::now();
    let response = client.get(format!("https://localhost:{port}/healthz")).send().await;
    let took = started.elapsed();
    assert!(response.as_ref().is_ok_and(|r| r.status().is_success()), "{response:?}");
    assert!(took < Duration::from_secs(1), "answered in {took:?}");
    drop(flood);
    server.stop().await;
}
