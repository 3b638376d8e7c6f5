//! A stand-in SMTP relay on 127.0.0.1 that keeps what it is given, and what tests read
//! from the messages (links, decoded from quoted-printable).
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use latchkey_config::{MailConfig, MailTls};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::ok;

/// An SMTP relay that keeps what it is given; while `failing`, it answers 451 (try later).
pub struct Relay {
    pub port: u16,
    pub received: Arc<Mutex<Vec<String>>>,
    pub failing: Arc<AtomicBool>,
    /// `MAIL FROM` commands seen: one per delivery attempt.
    pub attempts: Arc<AtomicUsize>,
}

impl Relay {
    pub async fn start() -> Self {
        let listener = ok(TcpListener::bind("127.0.0.1:0").await, "bind");
        let port = ok(listener.local_addr(), "addr").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let failing = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(AtomicUsize::new(0));
        let (r, f, a) = (received.clone(), failing.clone(), attempts.clone());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(session(socket, r.clone(), f.clone(), a.clone()));
            }
        });
        Self { port, received, failing, attempts }
    }

    pub fn messages(&self) -> Vec<String> {
        self.received.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

async fn session(
    socket: tokio::net::TcpStream,
    received: Arc<Mutex<Vec<String>>>,
    failing: Arc<AtomicBool>,
    attempts: Arc<AtomicUsize>,
) {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    let _ = write.write_all(b"220 relay.test ESMTP stand-in\r\n").await;
    while let Ok(Some(line)) = lines.next_line().await {
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        if verb == "MAIL" {
            attempts.fetch_add(1, Ordering::SeqCst);
        }
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 relay.test\r\n",
            "MAIL" if failing.load(Ordering::SeqCst) => b"451 4.3.0 try again later\r\n",
            "RCPT" if line.contains("refused@") => b"550 5.1.1 <refused@example.test>: Recipient address rejected\r\n",
            "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 OK\r\n",
            "DATA" => {
                let _ = write.write_all(b"354 go ahead\r\n").await;
                let mut body = String::new();
                while let Ok(Some(l)) = lines.next_line().await {
                    if l == "." {
                        break;
                    }
                    body.push_str(&l);
                    body.push('\n');
                }
                if let Ok(mut r) = received.lock() {
                    r.push(body);
                }
                b"250 queued\r\n"
            }
            "QUIT" => {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => b"502 not implemented\r\n",
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// `[mail]` for the relay on `port`: short timeouts and waits, for tests.
pub fn mail(port: u16) -> MailConfig {
    MailConfig {
        from: "Latchkey <id@example.test>".into(),
        host: "127.0.0.1".into(),
        port: Some(port),
        tls: MailTls::None,
        username: None,
        password: None,
        timeout: Duration::from_secs(1),
        retry_base: Duration::from_secs(1),
        circuit_cool_down: Duration::from_secs(4),
        templates: None,
    }
}

/// A message's body with quoted-printable undone (soft line breaks joined, `=XX` decoded).
pub fn decoded(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'=', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The token of the first link to `path` (such as `/email/verify`) in a message.
pub fn link_token(raw: &str, path: &str) -> Option<String> {
    let text = decoded(raw);
    let marker = format!("{path}?token=");
    let start = text.find(&marker)? + marker.len();
    Some(text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect())
}

/// The header `name` of a raw message.
pub fn header<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    let prefix = format!("{name}: ");
    raw.lines().find_map(|l| l.strip_prefix(prefix.as_str()))
}
