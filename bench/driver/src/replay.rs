//! One request shape (what a wrk script sends), replayed by each worker on its own
//! keep-alive connection. A response counts only with the expected status and, when asked,
//! a body containing the expected text (e.g. `"active":true` from introspection).
//!
//! The request is serialised once and written as bytes, and the response is read with a
//! minimal HTTP/1.1 parser, as wrk does: at tens of thousands of requests per second on the
//! server's own cores, a general-purpose client would take a large share of the CPU the
//! server is measured with.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;

use reqwest::Method;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::pace::Worker;

#[derive(Clone, Debug)]
pub struct Shape {
    pub method: Method,
    pub url: url::Url,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub expect_status: u16,
    pub expect_body: Option<String>,
}

impl Shape {
    fn address(&self) -> Result<SocketAddr, String> {
        let host = self.url.host_str().ok_or("the URL has no host")?;
        let port = self.url.port_or_known_default().ok_or("the URL has no port")?;
        let ip =
            host.trim_matches(['[', ']']).parse().map_err(|_| format!("replay needs an IP address, not {host}"))?;
        Ok(SocketAddr::new(ip, port))
    }

    fn request_bytes(&self) -> Vec<u8> {
        let target = &self.url[url::Position::BeforePath..url::Position::AfterQuery];
        let host = &self.url[url::Position::BeforeHost..url::Position::AfterPort];
        let mut out = format!("{} {target} HTTP/1.1\r\nHost: {host}\r\n", self.method);
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        let body = self.body.as_deref().unwrap_or("");
        if self.body.is_some() {
            out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        out.push_str("\r\n");
        out.push_str(body);
        out.into_bytes()
    }
}

/// Parses `Name: value`.
pub fn header(raw: &str) -> Result<(String, String), String> {
    let (name, value) = raw.split_once(':').ok_or_else(|| format!("a header is `Name: value`, not `{raw}`"))?;
    Ok((name.trim().to_owned(), value.trim().to_owned()))
}

/// The serialised requests one run sends: one, or one per body of `--bodies`.
pub struct Requests(Vec<Vec<u8>>);

impl Requests {
    /// `bodies` empty: the shape's own request; else the shape with each body in turn.
    pub fn new(shape: &Shape, bodies: &[String]) -> Arc<Self> {
        if bodies.is_empty() {
            return Arc::new(Self(vec![shape.request_bytes()]));
        }
        let with = |body: &String| Shape { body: Some(body.clone()), ..shape.clone() }.request_bytes();
        Arc::new(Self(bodies.iter().map(with).collect()))
    }
}

pub struct Replay {
    address: SocketAddr,
    requests: Arc<Requests>,
    /// This connection's own share of the requests, sent in turn.
    share: Range<usize>,
    next: usize,
    shape: Shape,
    stream: Option<TcpStream>,
    buffer: Vec<u8>,
}

impl Replay {
    /// Connection `index` of `connections`: with several requests, each connection cycles
    /// through its own slice of them, so a request comes back only after every other one
    /// has been sent (introspection of tokens the server has not seen recently).
    pub fn new(shape: &Shape, requests: &Arc<Requests>, index: usize, connections: usize) -> Result<Self, String> {
        let n = requests.0.len();
        let share = if n < connections {
            0..n
        } else {
            let connections = connections.max(1);
            index * n / connections..(index + 1) * n / connections
        };
        Ok(Self {
            address: shape.address()?,
            requests: requests.clone(),
            next: share.start,
            share,
            shape: shape.clone(),
            stream: None,
            buffer: Vec::with_capacity(16 * 1024),
        })
    }

    /// The request to send now; moves on to the next in this connection's share.
    fn take_next(&mut self) -> usize {
        let index = self.next;
        self.next = if index + 1 >= self.share.end { self.share.start } else { index + 1 };
        index
    }

    async fn exchange(&mut self) -> Result<Response, String> {
        let index = self.take_next();
        let stream = match &mut self.stream {
            Some(s) => s,
            None => {
                let s = TcpStream::connect(self.address).await.map_err(|e| format!("connect: {e}"))?;
                s.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
                self.stream.insert(s)
            }
        };
        stream.write_all(&self.requests.0[index]).await.map_err(|e| format!("write: {e}"))?;
        self.buffer.clear();
        read_response(stream, &mut self.buffer).await
    }
}

struct Response {
    status: u16,
    body: std::ops::Range<usize>,
    close: bool,
}

/// Reads one response into `buf`: the head, then a `Content-Length` or chunked body.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Response, String> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        fill(stream, buf).await?;
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "the response head is not UTF-8")?;
    let status = head.get(9..12).and_then(|s| s.parse().ok()).ok_or("no status line")?;
    let mut length = None;
    let (mut chunked, mut close) = (false, false);
    for line in head.lines().skip(1) {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| "bad Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    if let Some(n) = length {
        while buf.len() < head_end + n {
            fill(stream, buf).await?;
        }
        return Ok(Response { status, body: head_end..head_end + n, close });
    }
    if !chunked {
        return Err("the response has neither Content-Length nor chunked encoding".into());
    }
    // Chunked: de-chunk in place after the head.
    let (mut read, mut write) = (head_end, head_end);
    loop {
        let line_end = loop {
            if let Some(i) = find(&buf[read..], b"\r\n") {
                break read + i;
            }
            fill(stream, buf).await?;
        };
        let size_text = std::str::from_utf8(&buf[read..line_end]).map_err(|_| "bad chunk size")?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "bad chunk size")?;
        let data = line_end + 2;
        while buf.len() < data + size + 2 {
            fill(stream, buf).await?;
        }
        if size == 0 {
            return Ok(Response { status, body: head_end..write, close });
        }
        buf.copy_within(data..data + size, write);
        write += size;
        read = data + size + 2;
    }
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
    if n == 0 {
        return Err("the server closed the connection".into());
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Worker for Replay {
    async fn run(&mut self) -> Result<(), String> {
        let path = self.shape.url.path().to_owned();
        let response = match self.exchange().await {
            Ok(r) => r,
            Err(e) => {
                self.stream = None;
                return Err(format!("{path}: {e}"));
            }
        };
        if response.close {
            self.stream = None;
        }
        if response.status != self.shape.expect_status {
            return Err(format!("{path} answered {}", response.status));
        }
        if let Some(needle) = &self.shape.expect_body
            && find(&self.buffer[response.body], needle.as_bytes()).is_none()
        {
            return Err(format!("{path}: the response lacks {needle}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_serialised_once_as_wrk_would_send_it() {
        let shape = Shape {
            method: Method::POST,
            url: url::Url::parse("http://127.0.0.1:8080/token?x=1").unwrap_or_else(|e| panic!("{e}")),
            headers: vec![("Authorization".into(), "Basic YTpi".into())],
            body: Some("grant_type=client_credentials".into()),
            expect_status: 200,
            expect_body: None,
        };
        let text = String::from_utf8(shape.request_bytes()).unwrap_or_default();
        assert_eq!(
            text,
            "POST /token?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: Basic YTpi\r\n\
             Content-Length: 29\r\n\r\ngrant_type=client_credentials"
        );
        assert_eq!(shape.address().ok(), "127.0.0.1:8080".parse().ok());
    }

    #[test]
    fn with_several_bodies_each_connection_cycles_through_its_own_share() {
        let shape = Shape {
            method: Method::POST,
            url: url::Url::parse("http://127.0.0.1:8080/introspect").unwrap_or_else(|e| panic!("{e}")),
            headers: vec![],
            body: None,
            expect_status: 200,
            expect_body: None,
        };
        let bodies: Vec<String> = (0..10).map(|i| format!("token={i}")).collect();
        let requests = Requests::new(&shape, &bodies);
        let sent = |index| {
            let mut replay = Replay::new(&shape, &requests, index, 3).unwrap_or_else(|e| panic!("{e}"));
            (0..5)
                .map(|_| {
                    let index = replay.take_next();
                    let text = String::from_utf8_lossy(&replay.requests.0[index]).into_owned();
                    text.rsplit("\r\n\r\n").next().unwrap_or_default().to_owned()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(sent(0), ["token=0", "token=1", "token=2", "token=0", "token=1"]);
        assert_eq!(sent(2), ["token=6", "token=7", "token=8", "token=9", "token=6"]);
    }
}
