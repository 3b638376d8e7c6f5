//! Starting and stopping the server: bind, load keys, start background work, serve (HTTP,
//! or HTTPS with certificates reloaded when their files change), shut down gracefully.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum_server::tls_rustls::RustlsConfig;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::router;
use crate::pages::ErrorPages;
use crate::state::AppState;
use crate::templates::Templates;
use crate::{connections, edge};
use latchkey_config::TlsConfig;
use latchkey_service::Latchkey;
use latchkey_service::foundation::{Foundation, StartupError};

pub struct RunningServer {
    pub addr: SocketAddr,
    pub issuer: String,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    serving: JoinHandle<std::io::Result<()>>,
    background: Vec<JoinHandle<()>>,
    shutdown_timeout: Duration,
    signals: Signals,
}

/// Starts serving. With `server.port = 0` the OS picks a port; without `public_url` the
/// issuer is `http://localhost:{port}` for the port actually bound.
pub async fn start(foundation: Foundation) -> Result<RunningServer, StartupError> {
    // One crypto provider for the whole binary; a second install (tests) is harmless.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = foundation.config.clone();
    let requested = SocketAddr::new(config.server.host, config.server.port);
    let listener = std::net::TcpListener::bind(requested)
        .map_err(|e| StartupError::Bind { addr: requested.to_string(), reason: e.to_string() })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| StartupError::Bind { addr: requested.to_string(), reason: e.to_string() })?;
    let addr =
        listener.local_addr().map_err(|e| StartupError::Bind { addr: requested.to_string(), reason: e.to_string() })?;

    let mut config = (*config).clone();
    if config.server.public_url.is_none() {
        let scheme = if config.server.tls.is_some() { "https" } else { "http" };
        config.server.public_url = url::Url::parse(&format!("{scheme}://localhost:{}", addr.port())).ok();
    }
    let config = Arc::new(config);
    let issuer = config.issuer();

    let services = Arc::new(Latchkey::new(foundation, config.clone()));
    services.consents().use_page_text(crate::oauth::claims::consent_page_fingerprint());
    // The change listener's own connection (PostgreSQL) opens while the keys, origins and
    // revocations load over the pool's: each new connection costs tens of milliseconds.
    let changes = services.prepare_node().await?;
    let mut background = services.spawn_background(changes);
    background.push(latchkey_service::failed_sign_ins::spawn_reporter(Arc::downgrade(&services)));
    if services.account_retention().enabled() {
        background.extend(latchkey_service::jobs::spawn_account_retention(Arc::downgrade(&services)));
    }
    background.extend(latchkey_service::forward_auth::rules::spawn_watcher(services.clone()));
    let metrics = edge::metrics::handle();
    if let Some(handle) = &metrics {
        background.push(edge::metrics::spawn_upkeep(handle.clone()));
    }

    let metrics_token = match &config.metrics.token {
        Some(r) => Some(Arc::new(
            r.resolve(config.base_dir())
                .map_err(|e| {
                    StartupError::Config(latchkey_config::ConfigError::invalid(&config.source, "metrics.token", e))
                })?
                .expose()
                .to_owned(),
        )),
        None => None,
    };
    let outbound = Arc::new(latchkey_service::outbound::Outbound::new(&config.outbound).map_err(StartupError::Tls)?);
    latchkey_service::outbound::warn_about_refused_destinations(&services, outbound.policy()).await;
    background.extend(
        latchkey_service::outbox::spawn_senders(services.clone(), outbound.clone())
            .map_err(|e| StartupError::Config(latchkey_config::ConfigError::invalid(&config.source, "mail/sms", e)))?,
    );
    let upstreams =
        Arc::new(latchkey_service::federation::Upstreams::new(&config, outbound.clone()).map_err(|e| {
            StartupError::Config(latchkey_config::ConfigError::invalid(&config.source, "federation", e))
        })?);
    upstreams.warm_up();
    let pages = ErrorPages::load(&config.web, &crate::state::base_path(&issuer)).map_err(StartupError::ErrorPages)?;
    let state = AppState::new(crate::state::Shared {
        issuer: Arc::from(issuer.as_str()),
        https: issuer.starts_with("https://"),
        passwords: services.passwords.clone(),
        metrics,
        metrics_token,
        pages: Arc::new(pages),
        templates: Arc::new(Templates::load().map_err(StartupError::ErrorPages)?),
        token_hasher: services.token_hasher.clone(),
        revocations: services.revocations.clone(),
        client_keys: Arc::new(latchkey_service::client_keys::ClientKeyCache::new(outbound.clone())),
        upstreams: upstreams.clone(),
        outbound,
        client_auth_throttle: Arc::default(),
        backchannel: services.backchannel.clone(),
        passkeys: Arc::new(latchkey_service::passkeys::Passkeys::new(&config, &issuer)),
        master_key: services.master_key.clone(),
        config: config.clone(),
        clock: services.clock.clone(),
        keys: services.keys.clone(),
        caches: services.caches.clone(),
        services,
    });
    crate::opt_ins::warn_at_start(&state).await?;
    background.push(crate::sessions::backchannel::spawn(state.clone()));
    let app = router(state.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown_timeout = config.server.shutdown_timeout;
    let rustls = match &config.server.tls {
        None => None,
        Some(tls) => {
            let rustls = RustlsConfig::from_pem_file(&tls.cert, &tls.key).await.map_err(|e| {
                StartupError::Tls(format!("cannot load {} / {}: {e}", tls.cert.display(), tls.key.display()))
            })?;
            background.push(spawn_certificate_reloader(rustls.clone(), tls.clone()));
            Some(rustls)
        }
    };
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| StartupError::Bind { addr: addr.to_string(), reason: e.to_string() })?;
    let serving = tokio::spawn(connections::serve(
        listener,
        rustls,
        app,
        config.server.limits.clone(),
        config.server.trusted_proxies.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    // Listened to before anyone learns the server is up: a SIGTERM sent the moment the
    // banner is out must stop it gracefully, not kill it (the default action).
    let signals = Signals::listen();
    tracing::info!(%addr, %issuer, "serving");
    Ok(RunningServer { addr, issuer, state, stop: Some(stop), serving, background, shutdown_timeout, signals })
}

impl RunningServer {
    /// Stops accepting connections, lets in-flight requests finish (up to
    /// `server.shutdown_timeout`), then stops background work.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(self.shutdown_timeout, &mut self.serving).await.is_err() {
            tracing::warn!("in-flight requests did not finish within server.shutdown_timeout");
            self.serving.abort();
        }
        for task in &self.background {
            task.abort();
        }
        self.state.services.system().close().await;
    }

    /// Runs until SIGTERM or SIGINT, then shuts down gracefully.
    pub async fn run_until_signal(mut self) {
        self.signals.received().await;
        tracing::info!("shutting down: finishing in-flight requests");
        self.shutdown().await;
    }
}

/// SIGTERM and SIGINT, each listened to from when [`Signals::listen`] ran.
struct Signals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self { terminate: signal(SignalKind::terminate()).ok(), interrupt: signal(SignalKind::interrupt()).ok() }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Waits for either.
    async fn received(&mut self) {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! { _ = next(&mut self.terminate) => {}, _ = next(&mut self.interrupt) => {} }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn modified(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reloads the certificate and key when either file changes. A bad new pair is logged and
/// the old one kept, so a half-written renewal never takes HTTPS down.
fn spawn_certificate_reloader(rustls: RustlsConfig, tls: TlsConfig) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = (modified(&tls.cert), modified(&tls.key));
        let mut tick = tokio::time::interval(tls.reload_interval);
        loop {
            tick.tick().await;
            let now = (modified(&tls.cert), modified(&tls.key));
            if now == seen {
                continue;
            }
            match rustls.reload_from_pem_file(&tls.cert, &tls.key).await {
                Ok(()) => {
                    seen = now;
                    tracing::info!(cert = %tls.cert.display(), "reloaded TLS certificate");
                }
                Err(e) => {
                    tracing::error!(error = %e, "new TLS certificate does not load; keeping the old one")
                }
            }
        }
    })
}
