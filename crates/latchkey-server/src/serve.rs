//! Starting and stopping the server: bind, load keys, start background work, serve (HTTP,
//! or HTTPS with certificates reloaded when their files change), shut down gracefully.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum_server::tls_rustls::RustlsConfig;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::{AppState, router};
use crate::cache::{Caches, spawn_change_listener};
use crate::config::TlsConfig;
use crate::keys::KeyService;
use crate::oauth::revocations::Revocations;
use crate::pages::ErrorPages;
use crate::passwords::PasswordHasher;
use crate::startup::{Foundation, StartupError};
use crate::templates::Templates;
use crate::{edge, jobs};

pub struct RunningServer {
    pub addr: SocketAddr,
    pub issuer: String,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    serving: JoinHandle<std::io::Result<()>>,
    background: Vec<JoinHandle<()>>,
    shutdown_timeout: Duration,
}

/// Starts serving. With `server.port = 0` the OS picks a port; without `public_url` the
/// issuer is `http://localhost:{port}` for the port actually bound.
pub async fn start(foundation: Foundation) -> Result<RunningServer, StartupError> {
    // One crypto provider for the whole binary; a second install (tests) is harmless.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let Foundation { config, store, master_key, clock, token_hasher, .. } = foundation;
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

    let keys = Arc::new(KeyService::new(
        store.clone(),
        master_key.clone(),
        clock.clone(),
        config.keys.clone(),
        config.tokens.clone(),
    ));
    let caches = Arc::new(Caches::new(store.clone()));
    let revocations = Arc::new(Revocations::default());
    // The change listener's own connection (PostgreSQL) opens while the keys, origins and
    // revocations load over the pool's: each new connection costs tens of milliseconds.
    let (changes, loaded) = tokio::join!(store.watch_changes(config.database.change_poll_interval), async {
        keys.ensure_keys().await.map_err(|e| StartupError::Keys(e.to_string()))?;
        keys.reload().await.map_err(|e| StartupError::Keys(e.to_string()))?;
        caches.rebuild_web_origins().await?;
        revocations.refresh(store.as_ref(), clock.now()).await?;
        Ok::<_, StartupError>(())
    });
    loaded?;
    let changes = changes?;
    let mut background = vec![
        spawn_change_listener(caches.clone(), keys.clone(), changes),
        jobs::spawn_key_schedule(store.clone(), keys.clone(), config.keys.check_interval),
        jobs::spawn_cleanup(store.clone(), clock.clone(), jobs::CLEANUP_INTERVAL, config.sessions.idle_timeout),
        crate::oauth::revocations::spawn_poller(revocations.clone(), store.clone(), clock.clone()),
    ];
    let metrics = edge::metrics::handle();
    if let Some(handle) = &metrics {
        background.push(edge::metrics::spawn_upkeep(handle.clone()));
    }

    let metrics_token = match &config.metrics.token {
        Some(r) => Some(Arc::new(
            r.resolve(config.base_dir())
                .map_err(|e| {
                    StartupError::Config(crate::config::ConfigError::invalid(&config.source, "metrics.token", e))
                })?
                .expose()
                .to_owned(),
        )),
        None => None,
    };
    let pages = ErrorPages::load(&config.web, &crate::app::base_path(&issuer)).map_err(StartupError::ErrorPages)?;
    let state = AppState::new(crate::app::Shared {
        issuer: Arc::from(issuer.as_str()),
        https: issuer.starts_with("https://"),
        passwords: PasswordHasher::new(config.passwords.policy(), config.passwords.max_concurrent_hashes),
        metrics,
        metrics_token,
        pages: Arc::new(pages),
        templates: Arc::new(Templates::load().map_err(StartupError::ErrorPages)?),
        token_hasher,
        revocations,
        client_keys: Arc::default(),
        client_auth_throttle: Arc::default(),
        verified_tokens: Default::default(),
        backchannel: Arc::default(),
        passkeys: Arc::new(crate::passkeys::Passkeys::new(
            &config,
            &issuer,
            &master_key.derive("latchkey webauthn fake credentials v1"),
        )),
        master_key: master_key.clone(),
        config: config.clone(),
        store,
        clock,
        keys,
        caches,
    });
    background.push(crate::sessions::backchannel::spawn(state.clone()));
    crate::oauth::client_warnings::warn_at_start(state.store.as_ref()).await;
    let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown_timeout = config.server.shutdown_timeout;
    let serving = match &config.server.tls {
        None => {
            let listener = tokio::net::TcpListener::from_std(listener)
                .map_err(|e| StartupError::Bind { addr: addr.to_string(), reason: e.to_string() })?;
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
            })
        }
        Some(tls) => {
            let rustls = RustlsConfig::from_pem_file(&tls.cert, &tls.key).await.map_err(|e| {
                StartupError::Tls(format!("cannot load {} / {}: {e}", tls.cert.display(), tls.key.display()))
            })?;
            background.push(spawn_certificate_reloader(rustls.clone(), tls.clone()));
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                let _ = stopped.await;
                stopper.graceful_shutdown(Some(shutdown_timeout));
            });
            tokio::spawn(async move { axum_server::from_tcp_rustls(listener, rustls)?.handle(handle).serve(app).await })
        }
    };
    tracing::info!(%addr, %issuer, "serving");
    Ok(RunningServer { addr, issuer, state, stop: Some(stop), serving, background, shutdown_timeout })
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
        self.state.store.close().await;
    }

    /// Runs until SIGTERM or SIGINT, then shuts down gracefully.
    pub async fn run_until_signal(self) {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        self.shutdown().await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
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
