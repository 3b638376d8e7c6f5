//! The signed-out page and Front-Channel Logout 1.0: each client the ended session signed
//! into that registered a `frontchannel_logout_uri` is loaded in a hidden iframe with `iss`
//! and `sid`; an external script waits for them (at most `logout.frontchannel_timeout`)
//! and then follows the `post_logout_redirect_uri`, if there is one.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::records::SessionsEnded;
use url::Url;

use crate::edge::headers::{DEFAULT_CSP, set_csp};
use crate::state::AppState;

/// The front-channel logout URLs for what ended, with `iss` and `sid` (§2: sent whether or
/// not the client asked for them, which the specification allows).
pub async fn frontchannel_urls(state: &AppState, ended: &SessionsEnded) -> Vec<Url> {
    let mut urls = Vec::new();
    for session in &ended.sessions {
        for id in &session.clients {
            let Ok(Some(client)) = state.caches.client(id).await else { continue };
            let Some(uri) = &client.session_policy.frontchannel_logout_uri else { continue };
            let Ok(mut url) = Url::parse(uri.as_str()) else { continue };
            url.query_pairs_mut().append_pair("iss", &state.issuer).append_pair("sid", &session.sid);
            urls.push(url);
        }
    }
    urls
}

/// The response once sessions have ended in this browser: straight to `next` when no
/// client wants a front-channel notice, else the page that sends them first.
pub async fn respond(
    state: &AppState,
    ended: &SessionsEnded,
    next: Option<Url>,
    cookies: Vec<HeaderValue>,
) -> Response {
    let frames = frontchannel_urls(state, ended).await;
    let mut response = if frames.is_empty() {
        match &next {
            Some(url) => Redirect::to(url.as_str()).into_response(),
            None => page(state, &[], None),
        }
    } else {
        page(state, &frames, next.as_ref())
    };
    crate::sessions::set_cookies(&mut response, cookies);
    response
}

fn page(state: &AppState, frames: &[Url], next: Option<&Url>) -> Response {
    let base = crate::state::base_path(&state.issuer);
    let timeout_ms = state.config.logout.frontchannel_timeout.as_millis();
    let mut response = state.templates.render(
        StatusCode::OK,
        "signed_out.html",
        minijinja::context! {
            title => "Signed out", base,
            frames => frames.iter().map(Url::as_str).collect::<Vec<_>>(),
            next => next.map(Url::as_str), timeout_ms,
        },
    );
    if !frames.is_empty() {
        let mut origins: Vec<String> = frames.iter().map(|u| u.origin().ascii_serialization()).collect();
        origins.sort();
        origins.dedup();
        set_csp(&mut response, &format!("{DEFAULT_CSP}; frame-src {}", origins.join(" ")));
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
