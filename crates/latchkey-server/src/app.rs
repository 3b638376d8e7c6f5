//! The application: shared state and the router with its middleware.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use latchkey_core::Clock;
use latchkey_service::Latchkey;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::account;
use crate::edge;
use crate::login;
use crate::oauth;
use crate::oidc::{self, discovery};
use crate::pages::{ErrorPages, STYLESHEET};
use crate::routes::{health, jwks};
use crate::sessions;
use crate::templates::Templates;
use latchkey_config::Config;
use latchkey_core::crypto::TokenHasher;
use latchkey_service::cache::Caches;
use latchkey_service::keys::KeyService;
use latchkey_service::passwords::PasswordHasher;
use latchkey_service::revocations::Revocations;

/// What every request handler shares. Cloned for every request and every middleware that
/// takes state, so it is one reference count, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    /// Every use case and rule; the only way to the store.
    pub services: Arc<Latchkey>,
    /// The services' own configuration, clock, keys, caches and hashers, at hand for the
    /// edge (the same objects, not copies).
    pub config: Arc<Config>,
    /// `server.public_url` without trailing slash: the issuer, byte for byte.
    pub issuer: Arc<str>,
    pub https: bool,
    pub clock: Clock,
    pub keys: Arc<KeyService>,
    pub caches: Arc<Caches>,
    pub pages: Arc<ErrorPages>,
    pub passwords: PasswordHasher,
    pub metrics: Option<PrometheusHandle>,
    pub metrics_token: Option<Arc<String>>,
    pub token_hasher: TokenHasher,
    pub revocations: Arc<Revocations>,
    /// Access tokens whose signature this node already checked.
    pub verified_tokens: crate::oauth::verified_tokens::VerifiedTokens,
    pub templates: Arc<Templates>,
    pub client_keys: Arc<crate::oauth::client_keys::ClientKeyCache>,
    /// Every request Latchkey sends goes through this guard.
    pub outbound: Arc<latchkey_service::outbound::Outbound>,
    pub client_auth_throttle: Arc<crate::oauth::client_auth::ClientAuthThrottle>,
    /// Wakes the back-channel logout sender when a session ends on this node.
    pub backchannel: Arc<tokio::sync::Notify>,
    /// The WebAuthn relying party.
    pub passkeys: Arc<crate::passkeys::Passkeys>,
    /// Seals secrets kept at rest (TOTP secrets).
    pub master_key: latchkey_core::crypto::MasterKey,
}

impl Shared {
    /// `aud` of access tokens when no resource is named: `tokens.default_audience`, else
    /// the issuer (whose UserInfo endpoint accepts them).
    pub fn default_audience(&self) -> String {
        self.config.tokens.default_audience.clone().unwrap_or_else(|| self.issuer.to_string())
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The path under which everything is served: the path of `server.public_url`.
pub fn base_path(issuer: &str) -> String {
    url::Url::parse(issuer).map(|u| u.path().trim_end_matches('/').to_owned()).unwrap_or_default()
}

pub fn router(state: AppState) -> Router {
    let cors = edge::cors::layer(&state);
    let browser_facing = Router::new()
        .route("/.well-known/openid-configuration", get(discovery::openid_configuration))
        .route("/.well-known/oauth-authorization-server", get(discovery::openid_configuration))
        .route("/jwks.json", get(jwks::jwks))
        .route("/token", post(oauth::token::token))
        .route("/revoke", post(oauth::revoke::revoke))
        .route("/userinfo", get(oidc::userinfo::userinfo).post(oidc::userinfo::userinfo))
        .layer(cors);
    let pages = Router::new()
        .route("/authorize", get(oauth::authorize::authorize_get).post(oauth::authorize::authorize_post))
        .route("/authorize/resume", get(oauth::authorize::resume))
        .route("/login", get(login::login_page).post(login::login_submit))
        .route("/login/done", get(login::signed_in))
        .route("/consent", get(login::consent_page).post(login::consent_submit))
        .route("/logout", get(oidc::end_session::end_session_get).post(oidc::end_session::end_session_post))
        .route("/logout/confirm", post(oidc::end_session::confirm))
        .route("/select-account", get(login::select_account::page).post(login::select_account::choose))
        .route("/session/check", get(sessions::check::check_session_iframe))
        .route("/account/sessions", get(sessions::account::sessions_page))
        .route("/account/sessions/end", post(sessions::account::end_session))
        .route("/login/passkey/options", post(crate::passkeys::sign_in::options))
        .route("/login/passkey", post(crate::passkeys::sign_in::finish))
        .route("/login/second-factor", get(login::second_factor::page).post(login::second_factor::submit))
        .route("/login/recovery", get(login::recovery::page).post(login::recovery::submit))
        .route("/signup", get(crate::signup::page).post(crate::signup::finish))
        .route("/signup/options", post(crate::signup::options))
        .route("/account/security", get(account::security_page))
        .route("/account/passkeys/options", post(account::passkeys::options))
        .route("/account/passkeys", post(account::passkeys::add))
        .route("/account/passkeys/rename", post(account::passkeys::rename))
        .route("/account/passkeys/remove", post(account::passkeys::remove))
        .route("/account/password", post(account::password::set))
        .route("/account/password/remove", post(account::password::remove))
        .route("/account/totp", get(account::totp::page))
        .route("/account/totp/start", post(account::totp::start))
        .route("/account/totp/confirm", post(account::totp::confirm))
        .route("/account/totp/remove", post(account::totp::remove))
        .route("/account/recovery-codes", post(account::recovery_codes::regenerate));
    #[allow(unused_mut)]
    let mut routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/introspect", post(oauth::introspect::introspect))
        .route("/static/latchkey.css", get(stylesheet))
        .route("/static/form_post.js", get(|| script(include_str!("../static/form_post.js"))))
        .route("/static/check_session.js", get(|| script(include_str!("../static/check_session.js"))))
        .route("/static/signed_out.js", get(|| script(include_str!("../static/signed_out.js"))))
        .route("/static/passkeys.js", get(|| script(include_str!("../static/passkeys.js"))))
        .merge(pages)
        .merge(browser_facing);
    #[cfg(feature = "test-clock")]
    {
        routes = routes.route("/__test/clock/advance", axum::routing::post(crate::routes::test_clock::advance));
    }
    let base = base_path(&state.issuer);
    let mut app = if base.is_empty() { routes } else { Router::new().nest(&base, routes) };
    if !base.is_empty() {
        // RFC 8414 §3.1: for an issuer with a path, the well-known segment is inserted
        // before the path; OIDC Discovery appends it (served by the nested routes above).
        app =
            app.route(&format!("/.well-known/oauth-authorization-server{base}"), get(discovery::openid_configuration));
    }
    let pages = state.pages.clone();
    app.fallback(crate::pages::not_found)
        .layer(CatchPanicLayer::custom(move |_panic: Box<dyn std::any::Any + Send>| {
            tracing::error!("request handler panicked");
            pages.render(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on our side. Please try again.", None)
        }))
        .layer(from_fn_with_state(state.clone(), edge::headers::security_headers))
        .layer(from_fn(edge::metrics::track))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &axum::http::Request<_>| {
                    let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                    // The path only: query strings can carry codes and tokens.
                    tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path())
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(from_fn(drop_unsafe_request_id))
        .with_state(state)
}

/// A request id from outside (a proxy's) is kept for correlation only when it is short and
/// plain; anything else is replaced, so nobody can write arbitrary text into the logs.
async fn drop_unsafe_request_id(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let safe = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    });
    if !safe {
        request.headers_mut().remove(REQUEST_ID);
    }
    next.run(request).await
}

async fn script(source: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript"), (header::CACHE_CONTROL, "public, max-age=3600")], source)
}

async fn stylesheet() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css"), (header::CACHE_CONTROL, "public, max-age=3600")], STYLESHEET)
}
