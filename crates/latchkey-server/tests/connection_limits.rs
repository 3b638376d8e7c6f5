//! Slow and greedy clients, over real sockets against a running server: every connection
//! that stalls is closed within its configured timeout (short here, so the tests stay
//! quick), and one address cannot take the connections everyone else needs.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use support::{TestServer, eventually, ok, sqlite};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Added to every timeout before a test gives up: the machine may be busy.
const MARGIN: Duration = Duration::from_secs(3);
const SHORT: Duration = Duration::from_secs(1);
const LONG: Duration = Duration::from_secs(60);

/// A server whose timeouts are long except those `tweak` shortens.
async fn server(tweak: impl FnOnce(&mut latchkey_config::ServerLimits)) -> TestServer {
    TestServer::start(sqlite().await, |c| {
        let limits = &mut c.server.limits;
        limits.header_timeout = LONG;
        limits.body_timeout = LONG;
        limits.idle_timeout = LONG;
        limits.request_timeout = LONG;
        tweak(limits);
    })
    .await
}

/// A connection to `server` from `from` (any address of 127/8 is on the loopback interface).
async fn connect_from(server: &TestServer, from: [u8; 4]) -> TcpStream {
    let socket = ok(TcpSocket::new_v4(), "socket");
    ok(socket.bind(SocketAddr::from((from, 0))), "bind");
    ok(socket.connect(server.server.addr).await, "connect")
}

/// Reads until the server closes the connection; what it sent, and how long that took.
/// `None` if it is still open after `bound`.
async fn read_until_closed(stream: &mut TcpStream, bound: Duration) -> Option<(String, Duration)> {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = bound.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some((String::from_utf8_lossy(&received).into_owned(), started.elapsed())),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

async fn assert_closed_within(stream: &mut TcpStream, timeout: Duration, what: &str) -> String {
    match read_until_closed(stream, timeout + MARGIN).await {
        Some((sent, _)) => sent,
        None => panic!("{what}: still open {:?} after the {timeout:?} timeout", MARGIN),
    }
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let server = server(|l| l.header_timeout = SHORT).await;
    let mut silent = connect_from(&server, [127, 0, 0, 1]).await;
    assert_closed_within(&mut silent, SHORT, "a silent connection").await;
    server.stop().await;
}

#[tokio::test]
async fn a_connection_with_half_sent_headers_is_closed_after_the_header_timeout() {
    let server = server(|l| l.header_timeout = SHORT).await;
    let mut slow = connect_from(&server, [127, 0, 0, 1]).await;
    ok(slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nAccept: text/html\r\n").await, "write");
    assert_closed_within(&mut slow, SHORT, "half-sent headers").await;
    let metrics =
        ok(ok(client_from([127, 0, 0, 1]).get(server.url("/metrics")).send().await, "metrics").text().await, "text");
    assert!(metrics.contains("latchkey_connections_timed_out_total{phase="), "timeouts are counted: {metrics}");
    server.stop().await;
}

#[tokio::test]
async fn a_request_head_larger_than_the_limit_gets_431() {
    let server = server(|_| {}).await;
    let mut big = connect_from(&server, [127, 0, 0, 1]).await;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Padding: {}\r\n\r\n", "p".repeat(17 * 1024));
    // The server may stop reading before all of it arrived.
    let _ = big.write_all(request.as_bytes()).await;
    let answer = assert_closed_within(&mut big, Duration::ZERO, "an oversized head").await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_cut_off_after_the_body_timeout() {
    let server = server(|l| l.body_timeout = SHORT).await;
    let mut slow = connect_from(&server, [127, 0, 0, 1]).await;
    let request = "POST /token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nabc";
    ok(slow.write_all(request.as_bytes()).await, "write");
    let answer = assert_closed_within(&mut slow, SHORT, "a body 97 bytes short").await;
    assert!(answer.starts_with("HTTP/1.1 4"), "the request is refused before closing: {answer}");
    server.stop().await;
}

#[tokio::test]
async fn a_request_that_takes_too_long_is_answered_408_and_closed() {
    // The body may take its time; the whole request may not.
    let server = server(|l| l.request_timeout = SHORT).await;
    let mut slow = connect_from(&server, [127, 0, 0, 1]).await;
    let request = "POST /token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nabc";
    ok(slow.write_all(request.as_bytes()).await, "write");
    let answer = assert_closed_within(&mut slow, SHORT, "a request past its timeout").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = server(|l| l.idle_timeout = SHORT).await;
    let mut kept = connect_from(&server, [127, 0, 0, 1]).await;
    ok(kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await, "write");
    let mut buf = [0u8; 4096];
    let n = ok(tokio::time::timeout(MARGIN, kept.read(&mut buf)).await, "response in time");
    let response = String::from_utf8_lossy(&buf[..ok(n, "read")]).into_owned();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(!response.to_ascii_lowercase().contains("connection: close"), "the connection is kept alive: {response}");
    // The header timeout (60 s) would close it too, much later: only the idle timer can
    // close it this soon.
    assert_closed_within(&mut kept, SHORT, "an idle kept-alive connection").await;
    server.stop().await;
}

/// One HTTP/2 frame: (type, flags, stream, payload).
async fn read_frame(stream: &mut TcpStream) -> Option<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    stream.read_exact(&mut head).await.ok()?;
    let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
    let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.ok()?;
    Some((head[3], head[4], id, payload))
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap_or_else(|_| panic!("frame too long")).to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

const SETTINGS: u8 = 0x4;
const HEADERS: u8 = 0x1;
const GOAWAY: u8 = 0x7;
const PING: u8 = 0x6;

#[tokio::test]
async fn http2_caps_streams_and_header_size_and_closes_idle_connections() {
    let server = server(|l| l.idle_timeout = SHORT).await;
    let mut h2 = connect_from(&server, [127, 0, 0, 1]).await;
    // Prior knowledge (RFC 9113 §3.3): the preface, empty SETTINGS, and one GET /healthz
    // (HPACK: :method GET, :scheme http, then :path and :authority as literals).
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    let mut block = vec![0x82, 0x86, 0x44, 8];
    block.extend_from_slice(b"/healthz");
    block.extend([0x41, 9]);
    block.extend_from_slice(b"localhost");
    hello.extend(frame(HEADERS, 0x1 | 0x4, 1, &block));
    ok(h2.write_all(&hello).await, "write");

    let (kind, _, _, settings) = ok(
        tokio::time::timeout(MARGIN, read_frame(&mut h2)).await.map(|f| f.unwrap_or_else(|| panic!("no frame"))),
        "server settings",
    );
    assert_eq!(kind, SETTINGS, "the server starts with its settings");
    let setting = |id: u16| {
        settings
            .chunks(6)
            .find(|s| u16::from_be_bytes([s[0], s[1]]) == id)
            .map(|s| u32::from_be_bytes([s[2], s[3], s[4], s[5]]))
    };
    assert_eq!(setting(0x3), Some(100), "SETTINGS_MAX_CONCURRENT_STREAMS");
    assert_eq!(setting(0x6), Some(16 * 1024), "SETTINGS_MAX_HEADER_LIST_SIZE");

    // The response, then nothing more is asked: once idle, the server says GOAWAY (with a
    // PING, answered as a client would) and ends the connection.
    let started = Instant::now();
    let (mut answered, mut goaway, mut ended) = (false, false, false);
    while let Ok(next) =
        tokio::time::timeout((SHORT + MARGIN).saturating_sub(started.elapsed()), read_frame(&mut h2)).await
    {
        let Some((kind, flags, stream, payload)) = next else {
            ended = true;
            break;
        };
        answered |= kind == HEADERS && stream == 1 && payload.first() == Some(&0x88); // :status 200
        goaway |= kind == GOAWAY;
        if kind == PING && flags & 0x1 == 0 {
            let _ = h2.write_all(&frame(PING, 0x1, 0, &payload)).await;
        }
    }
    assert!(answered, "the request was answered 200");
    assert!(goaway, "an idle HTTP/2 connection gets a GOAWAY");
    assert!(ended, "and is closed within the idle timeout");
    server.stop().await;
}

/// Opens `count` connections from `from` that each send half a request line and stall.
async fn slow_connections(server: &TestServer, from: [u8; 4], count: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        let mut s = connect_from(server, from).await;
        // A refused connection may already be closed: a failed write is fine.
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: local").await;
        streams.push(s);
    }
    streams
}

/// How many of `streams` the server has closed (without waiting).
fn closed(streams: &[TcpStream]) -> usize {
    let mut buf = [0u8; 64];
    streams
        .iter()
        .filter(|s| match s.try_read(&mut buf) {
            Ok(n) => n == 0,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        })
        .count()
}

fn client_from(from: [u8; 4]) -> reqwest::Client {
    ok(
        reqwest::Client::builder().local_address(IpAddr::from(from)).timeout(Duration::from_secs(1)).no_proxy().build(),
        "client",
    )
}

#[tokio::test]
async fn five_hundred_slow_connections_from_one_address_leave_room_for_another() {
    // Fewer places in all than the flood, so only the per-IP cap keeps one for others.
    let server = server(|l| l.max_connections = 256).await;
    let flood = slow_connections(&server, [127, 0, 0, 1], 500).await;
    let started = Instant::now();
    let response = client_from([127, 0, 0, 2]).get(server.url("/healthz")).send().await;
    let took = started.elapsed();
    assert!(response.as_ref().is_ok_and(|r| r.status().is_success()), "{response:?}");
    assert!(took < Duration::from_secs(1), "answered in {took:?}");

    eventually(MARGIN, "all but 64 of the flood are closed", || async { closed(&flood) == 500 - 64 }).await;
    let metrics =
        ok(ok(client_from([127, 0, 0, 2]).get(server.url("/metrics")).send().await, "metrics").text().await, "text");
    let refused: f64 = metrics
        .lines()
        .find(|l| l.starts_with("latchkey_connections_refused_total{limit=\"per_ip\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(refused >= 436.0, "refusals are counted: {refused}");
    drop(flood);
    server.stop().await;
}

#[tokio::test]
async fn the_total_cap_closes_new_connections_from_every_address() {
    let server = server(|l| l.max_connections = 8).await;
    let held = slow_connections(&server, [127, 0, 0, 1], 8).await;
    let mut late = connect_from(&server, [127, 0, 0, 3]).await;
    assert_closed_within(&mut late, Duration::ZERO, "a connection beyond the total").await;
    drop(held);
    eventually(MARGIN, "the places are given back", || async {
        client_from([127, 0, 0, 3]).get(server.url("/healthz")).send().await.is_ok()
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn a_trusted_proxy_is_capped_only_by_the_total() {
    let server = TestServer::start(sqlite().await, |c| {
        c.server.limits.max_connections_per_ip = 4;
        c.server.trusted_proxies = vec![ok("127.0.0.1/32".parse(), "net")];
    })
    .await;
    let held = slow_connections(&server, [127, 0, 0, 1], 10).await;
    let response = client_from([127, 0, 0, 1]).get(server.url("/healthz")).send().await;
    assert!(response.is_ok_and(|r| r.status().is_success()), "the proxy's eleventh connection is served");
    assert_eq!(closed(&held), 0, "none of the proxy's connections was refused");
    let other = slow_connections(&server, [127, 0, 0, 4], 5).await;
    eventually(MARGIN, "anyone else is capped per IP", || async { closed(&other) == 1 }).await;
    drop((held, other));
    server.stop().await;
}
