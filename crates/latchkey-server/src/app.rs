//! The router: every route and the middleware around them. The state handlers share is
//! in [`crate::state`].

use axum::Router;
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::account;
use crate::edge;
use crate::login;
use crate::oauth;
use crate::oidc::{self, discovery};
use crate::pages::{PageError, STYLESHEET};
use crate::routes::{health, jwks};
use crate::sessions;
use crate::state::{AppState, base_path};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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
        .route("/account/sessions", get(account::sessions_page::sessions_page))
        .route("/account/apps", get(account::apps::apps_page))
        .route("/account/apps/withdraw", post(account::apps::withdraw))
        .route("/account/delete", get(account::erase::page).post(account::erase::erase))
        .route("/account/export", get(account::export::download))
        .route("/account/sessions/end", post(account::sessions_page::end_session))
        .route("/login/passkey/options", post(crate::login::passkey::options))
        .route("/login/passkey", post(crate::login::passkey::finish))
        .route("/login/second-factor", get(login::second_factor::page).post(login::second_factor::submit))
        .route("/login/second-factor/sms", post(login::second_factor::send_sms))
        .route("/login/email-link", post(login::email_link::ask))
        .route("/login/link", get(login::email_link::page).post(login::email_link::sign_in))
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
        .route("/account/recovery-codes", post(account::recovery_codes::regenerate))
        .route("/account/email", post(account::email::change))
        .route("/account/email/verify", post(account::email::resend))
        .route("/account/recovery/cancel", post(account::waiting_recovery::cancel))
        .route("/account/phone", post(account::phone::send_code))
        .route("/account/phone/confirm", post(account::phone::confirm))
        .route("/recover/code", post(crate::account_recovery::code))
        .route("/email/verify", get(crate::email_links::verify_page).post(crate::email_links::verify))
        .route("/recover", get(crate::account_recovery::page).post(crate::account_recovery::submit))
        .route("/recover/link", get(crate::account_recovery::link_page).post(crate::account_recovery::link))
        .route("/recover/session", get(crate::account_recovery::session_page))
        .route("/recover/app-code", post(crate::account_recovery::app_code))
        .route("/recover/text-code/send", post(crate::account_recovery::send_text_code))
        .route("/recover/text-code", post(crate::account_recovery::text_code))
        .route("/recover/lost", post(crate::account_recovery::lost))
        .route("/recover/passkey/options", post(crate::account_recovery::passkey_options))
        .route("/recover/passkey", post(crate::account_recovery::add_passkey))
        .route("/recover/password", post(crate::account_recovery::set_password))
        .route("/recover/cancel", get(crate::account_recovery::cancel_page).post(crate::account_recovery::cancel))
        .route("/federation/{id}/start", post(crate::federation::start))
        .route("/federation/{id}/callback", get(crate::federation::callback))
        .route("/account/federation/{id}/link", post(crate::federation::account::start_link))
        .route("/account/federation/{id}/confirm", post(crate::federation::account::confirm))
        .route("/account/federation/{id}/unlink", post(crate::federation::account::unlink))
        .route("/security/not-me", get(crate::not_me::page).post(crate::not_me::disown))
        .route("/forward-auth/start", get(crate::forward_auth::start))
        .route("/forward-auth/continue", get(crate::forward_auth::resume))
        // Only pages for people answer with a PageError; the API endpoints skip this layer.
        .layer(from_fn_with_state(state.clone(), render_error_pages));
    #[allow(unused_mut)]
    let mut routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/federation/jwks.json", get(crate::federation::jwks))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/introspect", post(oauth::introspect::introspect))
        .route("/forward-auth", any(crate::forward_auth::check))
        .route("/forward-auth/nginx", any(crate::forward_auth::check_nginx))
        .route("/static/latchkey.css", get(stylesheet))
        .route("/static/form_post.js", get(|| script(include_str!("../static/form_post.js"))))
        .route("/static/check_session.js", get(|| script(include_str!("../static/check_session.js"))))
        .route("/static/signed_out.js", get(|| script(include_str!("../static/signed_out.js"))))
        .route("/static/passkeys.js", get(|| script(include_str!("../static/passkeys.js"))))
        .nest(latchkey_core::domain::ADMIN_API_PATH, crate::admin_api::router(&state))
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
    app.fallback(crate::routes::not_found::not_found)
        .layer(CatchPanicLayer::custom(move |_panic: Box<dyn std::any::Any + Send>| {
            tracing::error!("request handler panicked");
            pages.render(StatusCode::INTERNAL_SERVER_ERROR, &format!("{} Please try again.", PageError::INTERNAL), None)
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

/// Renders a handler's [`PageError`] with the operator's error pages, keeping the headers
/// the handler set (cookies it clears, for one).
async fn render_error_pages(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    let Some(error) = response.extensions_mut().remove::<PageError>() else {
        return response;
    };
    let mut page = state.pages.render(error.status, &error.message, None);
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            page.headers_mut().append(name, value.clone());
        }
    }
    page
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
