//! The listener: accepts connections (plain or TLS), caps them in all and per client IP,
//! and serves each with HTTP/1.1 or HTTP/2 under the timeouts of `[server.limits]`.
//!
//! axum's `serve` sets no timeout and no cap, and axum-server's accept loop has no place
//! to refuse a connection by its peer, so the loop is driven here with hyper-util's
//! `auto::Builder`, using what hyper and tower-http provide for each limit:
//! - headers: hyper's HTTP/1.1 `header_read_timeout`; the TLS handshake: axum-server's
//!   `RustlsAcceptor::handshake_timeout`; HTTP/2 header size: `max_header_list_size`;
//! - body: tower-http's `RequestBodyDeadline` (one deadline for the whole body, which a
//!   client sending a byte at a time cannot stretch); whole request: tower-http's `Timeout`;
//! - HTTP/2 streams: `max_concurrent_streams`.
//!
//! What none of them offers is done here: the caps (`caps`), and one timer per connection
//! (`activity`) that closes a connection that starts no request within `header_timeout`
//! (hyper-util's protocol detection waits for the first bytes without a timeout) or that
//! has had no request in progress for `idle_timeout` (hyper has no idle timeout).

mod activity;
mod caps;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use hyper::body::Incoming;
use hyper::service::Service as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use ipnet::IpNet;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower_http::timeout::{RequestBodyDeadline, Timeout};

use activity::{Activity, Due};
use caps::{Caps, Slot};
use latchkey_config::ServerLimits;

/// Everything a connection needs, shared by all of them.
struct Listener {
    app: Router,
    limits: ServerLimits,
    trusted_proxies: Vec<IpNet>,
    builder: auto::Builder<TokioExecutor>,
    tls: Option<RustlsAcceptor>,
    caps: Arc<Caps>,
}

/// Serves `app` on `tcp` (TLS from `tls` when given) until `stop` resolves, then lets every
/// connection finish its requests (the caller bounds that wait by aborting the task).
pub async fn serve(
    tcp: TcpListener,
    tls: Option<RustlsConfig>,
    app: Router,
    limits: ServerLimits,
    trusted_proxies: Vec<IpNet>,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let listener = Arc::new(Listener {
        builder: http_builder(&limits),
        tls: tls.map(|config| RustlsAcceptor::new(config).handshake_timeout(limits.header_timeout)),
        caps: Caps::new(limits.max_connections, limits.max_connections_per_ip),
        app,
        limits,
        trusted_proxies,
    });
    let (closing, closing_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            // Reap finished connections, so the set holds only open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = tcp.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        accept_failed(e).await;
                        continue;
                    }
                };
                if let Some(slot) = listener.admit(peer) {
                    connections.spawn(listener.clone().connection(stream, peer, slot, closing_rx.clone()));
                }
            }
        }
    }
    let _ = closing.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// The HTTP/1.1 and HTTP/2 settings of `[server.limits]`.
fn http_builder(limits: &ServerLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // The request line and headers must fit the read buffer: that bounds them.
        .max_buf_size(limits.max_header_size as usize);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_header_list_size(limits.max_header_size);
    builder
}

/// Errors such as EMFILE: the listener still works; wait a little rather than spin.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted};
    if matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted) {
        return;
    }
    tracing::error!(error = %e, "cannot accept a connection");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

impl Listener {
    /// A place for a new connection, or `None` (and it is closed) when a cap is reached.
    fn admit(&self, peer: SocketAddr) -> Option<Slot> {
        let ip = peer.ip().to_canonical();
        let proxy = self.trusted_proxies.iter().any(|net| net.contains(&ip));
        match self.caps.admit(ip, proxy) {
            Ok(slot) => Some(slot),
            Err(refused) => {
                metrics::counter!("latchkey_connections_refused_total", "limit" => refused.label()).increment(1);
                tracing::debug!(%ip, limit = refused.label(), "connection refused: too many open connections");
                None
            }
        }
    }

    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        slot: Slot,
        closing: watch::Receiver<bool>,
    ) {
        // Responses are written whole: send them without waiting for earlier ACKs.
        let _ = stream.set_nodelay(true);
        match &self.tls {
            None => self.serve_http(TokioIo::new(stream), peer, closing).await,
            Some(acceptor) => match acceptor.accept(stream, ()).await {
                Ok((tls, _)) => self.serve_http(TokioIo::new(tls), peer, closing).await,
                Err(e) => {
                    if e.kind() == std::io::ErrorKind::TimedOut {
                        timed_out("tls_handshake");
                    }
                    tracing::debug!(error = %e, "TLS handshake failed");
                }
            },
        }
        drop(slot);
    }

    async fn serve_http<I>(&self, io: I, peer: SocketAddr, mut closing: watch::Receiver<bool>)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let limits = &self.limits;
        let activity = Activity::new();
        let app = TowerToHyperService::new(Timeout::with_status_code(
            RequestBodyDeadline::new(self.app.clone(), limits.body_timeout),
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ));
        let tracked = activity.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            // What `into_make_service_with_connect_info` would give the handlers.
            request.extensions_mut().insert(ConnectInfo(peer));
            let busy = tracked.begin();
            let response = app.call(request);
            async move {
                let response = response.await;
                drop(busy);
                response
            }
        });
        let connection = self.builder.serve_connection(io, service);
        tokio::pin!(connection);
        let closed = loop {
            let next_check = match activity.due(tokio::time::Instant::now(), limits.header_timeout, limits.idle_timeout)
            {
                Due::CheckAt(at) => at,
                due => {
                    timed_out(if due == Due::Idle { "idle" } else { "first_request" });
                    connection.as_mut().graceful_shutdown();
                    // Nothing is in progress: a peer that does not let go (an HTTP/2 client
                    // that never answers the GOAWAY's ping) gets as long as for headers.
                    tokio::select! {
                        _ = connection.as_mut() => {}
                        () = tokio::time::sleep(limits.header_timeout) => {}
                        _ = closing.changed() => {}
                    }
                    return;
                }
            };
            tokio::select! {
                result = connection.as_mut() => break result,
                _ = closing.changed() => {
                    // Server shutdown: finish what is in progress, accept nothing new.
                    connection.as_mut().graceful_shutdown();
                    break connection.as_mut().await;
                }
                () = tokio::time::sleep_until(next_check) => {}
            }
        };
        if let Err(e) = closed {
            if e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout) {
                timed_out("headers");
            }
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

fn timed_out(phase: &'static str) {
    metrics::counter!("latchkey_connections_timed_out_total", "phase" => phase).increment(1);
}
