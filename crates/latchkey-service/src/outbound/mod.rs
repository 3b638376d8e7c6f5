//! The one way Latchkey sends a request to another server (a client's `jwks_uri`, a
//! back-channel logout delivery; upstream identity providers and the SMS API later).
//!
//! Every request goes through the same guard, so a registered URL cannot make Latchkey
//! reach what it should not (SSRF): https only; no loopback, private or other
//! special-purpose address (`addresses`) unless `outbound.allow` opens it for this purpose
//! and port (`policy`); the name resolved once and the connection pinned to the addresses
//! that passed, so a second DNS answer cannot point it elsewhere (DNS rebinding); redirects
//! never followed; proxy variables ignored; a deadline on the whole request; the body
//! counted while it is read; and a circuit breaker per destination (`breaker`).

mod addresses;
pub mod breaker;
mod policy;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey_core::domain::TenantId;
use url::Host;

pub use addresses::{SpecialRange, embedded_ipv4, special_range};
pub use breaker::{Breakers, Transition};
pub use policy::{Policy, Refusal, Scheme, Target};

use latchkey_config::OutboundConfig;
pub use latchkey_config::Purpose;

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// Not sent: the destination is not one Latchkey may reach.
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    /// Not sent: the destination failed too often lately.
    #[error("not sent: {destination} failed repeatedly; its circuit is open for {}s more", retry_after.as_secs().max(1))]
    CircuitOpen { destination: String, retry_after: Duration },
    /// Sent, or tried to, and it did not work (name resolution, connection, TLS, timeout).
    #[error("{0}")]
    Failed(String),
    #[error("the response body is larger than {0} bytes")]
    TooLarge(usize),
}

/// A request to send. Build it with [`Request::get`] or [`Request::post_form`].
#[derive(Debug, Clone)]
pub struct Request {
    url: String,
    form: Option<Vec<(String, String)>>,
    headers: Vec<(&'static str, String)>,
    timeout: Option<Duration>,
}

impl Request {
    pub fn get(url: impl Into<String>) -> Self {
        Self { url: url.into(), form: None, headers: Vec::new(), timeout: None }
    }

    /// A POST of `application/x-www-form-urlencoded` fields.
    pub fn post_form(url: impl Into<String>, fields: &[(&str, &str)]) -> Self {
        let form = fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Self { url: url.into(), form: Some(form), headers: Vec::new(), timeout: None }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The deadline for the whole request, instead of `outbound.timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// An answer. Its body is read only through [`Response::body`], which bounds it.
#[derive(Debug)]
pub struct Response {
    inner: reqwest::Response,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.inner.status().as_u16()
    }

    /// The body, at most `max` bytes: counted while it arrives, so a chunked body without a
    /// `Content-Length` is cut off at the limit instead of being read whole first.
    pub async fn body(mut self, max: usize) -> Result<Vec<u8>, OutboundError> {
        if self.inner.content_length().is_some_and(|n| n > max as u64) {
            return Err(OutboundError::TooLarge(max));
        }
        let mut body = Vec::new();
        while let Some(chunk) =
            self.inner.chunk().await.map_err(|e| OutboundError::Failed(format!("reading the answer: {e}")))?
        {
            if body.len() + chunk.len() > max {
                return Err(OutboundError::TooLarge(max));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// The guarded client, one per server (`AppState::outbound`).
pub struct Outbound {
    policy: Policy,
    config: OutboundConfig,
    tls: Arc<rustls::ClientConfig>,
    breakers: Breakers,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound").field("policy", &self.policy).finish_non_exhaustive()
    }
}

/// Hands the connector the addresses the guard checked, whatever name it asks for: the
/// connection goes to one of them or nowhere.
struct Pinned(Vec<SocketAddr>);

impl reqwest::dns::Resolve for Pinned {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let addrs = self.0.clone();
        Box::pin(async move { Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs) })
    }
}

impl Outbound {
    /// The guard for `config`. TLS trusts the platform's certificate store (as before), and
    /// is set up once: each request builds its own connection pinned to checked addresses.
    pub fn new(config: &OutboundConfig) -> Result<Self, String> {
        use rustls_platform_verifier::BuilderVerifierExt as _;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("outbound TLS: {e}"))?
            .with_platform_verifier()
            .map_err(|e| format!("outbound TLS: cannot use the platform's certificate store: {e}"))?
            .with_no_client_auth();
        describe_metrics();
        Ok(Self {
            policy: Policy::new(&config.allow),
            config: config.clone(),
            tls: Arc::new(tls),
            breakers: Breakers::new(config.circuit_breaker_failures, config.circuit_breaker_cool_down),
        })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Sends `request` for `purpose`, or refuses to. An answer of any status is `Ok`; the
    /// caller decides what it means. A 5xx answer counts as a failure for the breaker.
    pub async fn send(&self, purpose: Purpose, request: Request) -> Result<Response, OutboundError> {
        let target = self.policy.check_url(purpose, &request.url).map_err(|r| refused(purpose, r))?;
        let destination = target.destination();
        if let Err(retry_after) = self.breakers.admit(&destination, Instant::now()) {
            metrics::counter!("latchkey_outbound_circuit_rejected_total", "purpose" => purpose.as_str()).increment(1);
            return Err(OutboundError::CircuitOpen { destination, retry_after });
        }
        let timeout = request.timeout.unwrap_or(self.config.timeout);
        let started = Instant::now();
        let addrs = match self.resolve(purpose, &target).await {
            Ok(addrs) => addrs,
            Err(e @ OutboundError::Failed(_)) => {
                self.record(purpose, &destination, false);
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let left = timeout.saturating_sub(started.elapsed());
        let result = self.connect_and_send(&target, addrs, request, left).await;
        let succeeded = result.as_ref().is_ok_and(|r| r.status() < 500);
        self.record(purpose, &destination, succeeded);
        result
    }

    /// The addresses to connect to: the IP literal, or every address the name resolves to
    /// that passes the policy. A name with no such address is refused.
    async fn resolve(&self, purpose: Purpose, target: &Target) -> Result<Vec<SocketAddr>, OutboundError> {
        let name = match &target.host {
            Host::Ipv4(v4) => return Ok(vec![SocketAddr::new(IpAddr::V4(*v4), target.port)]),
            Host::Ipv6(v6) => return Ok(vec![SocketAddr::new(IpAddr::V6(*v6), target.port)]),
            Host::Domain(name) => name.as_str(),
        };
        let lookup = tokio::net::lookup_host((name, target.port));
        let resolved: Vec<SocketAddr> = tokio::time::timeout(self.config.connect_timeout, lookup)
            .await
            .map_err(|_| OutboundError::Failed(format!("resolving {name} timed out")))?
            .map_err(|e| OutboundError::Failed(format!("cannot resolve {name}: {e}")))?
            .collect();
        let mut passed = Vec::new();
        let mut first_refusal = None;
        for addr in resolved {
            match self.policy.check_address(purpose, target, addr.ip()) {
                Ok(()) => passed.push(addr),
                Err(refusal) => {
                    tracing::debug!(%name, ip = %addr.ip(), %refusal, "outbound: address skipped");
                    first_refusal.get_or_insert(refusal);
                }
            }
        }
        match (passed.is_empty(), first_refusal) {
            (false, _) => Ok(passed),
            (true, Some(refusal)) => Err(refused(purpose, refusal)),
            (true, None) => Err(OutboundError::Failed(format!("{name} has no address"))),
        }
    }

    async fn connect_and_send(
        &self,
        target: &Target,
        addrs: Vec<SocketAddr>,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, OutboundError> {
        let fail = |e: reqwest::Error| OutboundError::Failed(describe(&e));
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*self.tls).clone())
            .dns_resolver(Arc::new(Pinned(addrs)))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.config.connect_timeout)
            .timeout(timeout)
            .pool_max_idle_per_host(0)
            .user_agent(concat!("Latchkey/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(fail)?;
        let mut builder = match &request.form {
            Some(form) => http.post(target.url.clone()).form(form),
            None => http.get(target.url.clone()),
        };
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        let inner = builder.send().await.map_err(fail)?;
        Ok(Response { inner })
    }

    fn record(&self, purpose: Purpose, destination: &str, succeeded: bool) {
        match self.breakers.record(destination, succeeded, Instant::now()) {
            Transition::Opened => {
                tracing::warn!(
                    %destination,
                    purpose = purpose.as_str(),
                    cool_down = ?self.config.circuit_breaker_cool_down,
                    "outbound: circuit opened after repeated failures; requests fail at once until the cool-down ends"
                );
                metrics::counter!("latchkey_outbound_circuits_opened_total", "purpose" => purpose.as_str())
                    .increment(1);
            }
            Transition::Closed => {
                tracing::info!(%destination, "outbound: circuit closed, the destination answers again")
            }
            Transition::None => {}
        }
        metrics::gauge!("latchkey_outbound_open_circuits").set(self.breakers.open_count() as f64);
    }
}

fn refused(purpose: Purpose, refusal: Refusal) -> OutboundError {
    metrics::counter!("latchkey_outbound_refused_total", "purpose" => purpose.as_str(), "reason" => refusal.reason())
        .increment(1);
    tracing::warn!(purpose = purpose.as_str(), %refusal, "outbound request refused");
    OutboundError::Refused(refusal)
}

/// reqwest's own message hides the cause ("error sending request"); say what happened.
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() { "timed out".to_owned() } else { e.to_string() };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

fn describe_metrics() {
    metrics::describe_counter!(
        "latchkey_outbound_refused_total",
        "Outbound requests refused by the guard before any connection, by purpose and reason"
    );
    metrics::describe_counter!(
        "latchkey_outbound_circuit_rejected_total",
        "Outbound requests not sent because their destination's circuit was open, by purpose"
    );
    metrics::describe_counter!(
        "latchkey_outbound_circuits_opened_total",
        "Times a destination's circuit opened after repeated failures, by purpose"
    );
    metrics::describe_gauge!("latchkey_outbound_open_circuits", "Destinations whose circuit is open now");
}

/// Logs a warning at start-up for every stored client URL the guard would refuse (they were
/// registered under older rules, or `outbound.allow` changed since), and for every entry
/// that allows plain http (a weakened default is named at start-up).
pub async fn warn_about_refused_destinations(services: &crate::Latchkey, policy: &Policy) {
    let config = &services.config.outbound;
    for entry in config.allow.iter().filter(|e| e.allow_insecure_http) {
        tracing::warn!(
            cidr = %entry.cidr,
            ports = ?entry.ports,
            "outbound.allow lets requests to this network go over plain http (allow_insecure_http)"
        );
    }
    let clients = match services.clients().list(&TenantId::default_tenant()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot list clients to check their outbound URLs");
            return;
        }
    };
    for client in clients {
        let uris = [
            (Purpose::JwksUri, client.jwks_uri.clone()),
            (Purpose::BackchannelLogout, client.session_policy.backchannel_logout_uri.map(|u| u.to_string())),
        ];
        for (purpose, uri) in uris {
            let Some(uri) = uri else { continue };
            if let Err(refusal) = policy.check_url(purpose, &uri) {
                tracing::warn!(
                    client_id = %client.client_id,
                    purpose = purpose.as_str(),
                    %uri,
                    %refusal,
                    "a client's URL will be refused by the outbound guard; change it with `latchkey client update` or open the destination in outbound.allow"
                );
            }
        }
    }
}
