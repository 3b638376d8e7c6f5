//! Prometheus metrics: requests by route template (never the raw path, which would let
//! anyone create unbounded label values) and status, and latency histograms.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide recorder (installed once; several servers in one test process share it).
pub fn handle() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("latchkey_http_request_duration_seconds".into()),
                    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
                )
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            metrics::describe_counter!(
                "latchkey_http_requests_total",
                "HTTP requests by method, route template and status"
            );
            metrics::describe_histogram!(
                "latchkey_http_request_duration_seconds",
                "HTTP request latency by route template"
            );
            metrics::describe_counter!("latchkey_key_rotations_total", "Signing key rotations, by algorithm");
            metrics::describe_counter!(
                "latchkey_connections_refused_total",
                "Connections closed as soon as accepted because a cap (total or per IP) was reached"
            );
            metrics::describe_counter!(
                "latchkey_connections_timed_out_total",
                "Connections closed by a timeout, by phase (headers, first_request, tls_handshake, idle)"
            );
            metrics::describe_counter!(
                "latchkey_authorization_requests_refused_total",
                "Authorization requests refused because their network has too many waiting"
            );
            latchkey_service::audit::describe_metrics();
            latchkey_service::retention::describe_metrics();
            latchkey_service::account_retention::describe_metrics();
            Some(handle)
        })
        .clone()
}

/// How often the histograms take in the samples recorded since the last time.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The recorder holds every histogram sample (one per request) until upkeep folds it into
/// the buckets; it runs upkeep only when `/metrics` is scraped. Without this task a server
/// that nobody scraped grew with every request it served (about 20 MiB in twelve seconds
/// of the JWKS benchmark).
pub fn spawn_upkeep(handle: PrometheusHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    })
}

pub async fn track(request: Request, next: Next) -> Response {
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("latchkey_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("latchkey_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The method as a label: a client may send any token as a method (`FOO4711`), and each
/// would become a new time series kept for the life of the process; all but the standard
/// methods count as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}
