//! Forward-auth for reverse proxies: `/forward-auth` (Caddy `forward_auth`, Traefik
//! `ForwardAuth`) and `/forward-auth/nginx` (nginx `auth_request`, which takes only 2xx,
//! 401 and 403, so a browser's redirect travels as a 401 with `Location`); and the pages a
//! browser is sent to: `/forward-auth/start?rd=…` signs it in and sets the forward-auth
//! cookie, `/forward-auth/continue` finishes after the sign-in page. The decisions are the
//! service's ([`latchkey_service::forward_auth`]); this module only reads the request and
//! writes the answer.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use latchkey_core::access_rules::{ForwardedRequest, RequestRefusal};
use latchkey_core::domain::TenantId;
use latchkey_service::forward_auth::{Credential, Decision, ReturnRefusal, Suffices};
use serde::{Deserialize, Serialize};

use crate::browser::ceremony::{self, Purpose};
use crate::browser::cookies;
use crate::edge::client_ip;
use crate::edge::{ClientIp, Tenant};
use crate::pages::PageError;
use crate::sessions;
use crate::state::AppState;

/// The forward-auth cookie (`__Secure-` prefixed under HTTPS).
pub const COOKIE: &str = "latchkey-forward-auth";

/// How a browser that must sign in is sent there.
#[derive(Clone, Copy)]
enum Flavor {
    /// 302 with `Location` (Caddy, Traefik).
    Redirect,
    /// 401 with `Location`: nginx's `auth_request` turns any other status into a 500.
    Nginx,
}

pub async fn check(State(state): State<AppState>, Tenant(tenant): Tenant, request: Request) -> Response {
    decide(&state, &tenant, request, Flavor::Redirect).await
}

pub async fn check_nginx(State(state): State<AppState>, Tenant(tenant): Tenant, request: Request) -> Response {
    decide(&state, &tenant, request, Flavor::Nginx).await
}

fn plain(status: StatusCode, message: &str) -> Response {
    let mut response = (status, message.to_owned()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn decide(state: &AppState, tenant: &TenantId, request: Request, flavor: Flavor) -> Response {
    let services = state.services.forward_auth();
    if !services.enabled() {
        return plain(StatusCode::NOT_FOUND, "forward-auth is not configured (forward_auth.rules)");
    }
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_canonical());
    let trusted = &state.config.server.trusted_proxies;
    let Some(peer) = peer.filter(|ip| trusted.iter().any(|net| net.contains(ip))) else {
        return plain(StatusCode::FORBIDDEN, "forward-auth answers only the proxies in server.trusted_proxies");
    };
    let headers = request.headers();
    let forwarded = match original_request(headers, flavor) {
        Ok(r) => r,
        Err(e) => return plain(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let client = client_ip::resolve(peer, headers, trusted);
    let basic = basic_password(headers);
    let credential = credential(state, headers, basic.as_deref());
    let decision = match services.decide(tenant, &forwarded, client, credential).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "forward-auth cannot decide");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "forward-auth cannot decide now");
        }
    };
    answer(state, decision, is_browser(&forwarded, headers, credential), flavor)
}

/// The request the proxy asks about, from the headers that endpoint's proxy sets and no
/// others: Caddy and Traefik pass the client's own headers through to us, so a client's
/// `X-Original-URL` must never count at `/forward-auth` (it would name another request
/// than the one the upstream gets); nginx's recipe sets `X-Original-URL` and
/// `X-Original-Method` itself.
fn original_request(headers: &HeaderMap, flavor: Flavor) -> Result<ForwardedRequest, RequestRefusal> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Flavor::Nginx = flavor {
        let (Some(url), Some(method)) = (get("x-original-url"), get("x-original-method")) else {
            return Err(RequestRefusal::Path("is missing: send X-Original-URL and X-Original-Method"));
        };
        return ForwardedRequest::from_original_url(url, method);
    }
    let (Some(method), Some(proto), Some(host), Some(uri)) =
        (get("x-forwarded-method"), get("x-forwarded-proto"), get("x-forwarded-host"), get("x-forwarded-uri"))
    else {
        return Err(RequestRefusal::Path("is missing: send X-Forwarded-Method, -Proto, -Host and -Uri"));
    };
    ForwardedRequest::from_parts(method, proto, host, uri)
}

fn credential<'a>(state: &AppState, headers: &'a HeaderMap, basic: Option<&'a str>) -> Credential<'a> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let Ok(value) = value.to_str() else { return Credential::Unreadable };
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        return match (scheme.to_ascii_lowercase().as_str(), basic) {
            ("bearer", _) if !rest.trim().is_empty() => Credential::Bearer(rest.trim()),
            ("basic", Some(password)) => Credential::BasicPassword(password),
            _ => Credential::Unreadable,
        };
    }
    match cookies::get(headers, &cookies::domain_cookie_name(state.https, COOKIE)) {
        Some(v) => Credential::Cookie(v),
        None => Credential::None,
    }
}

/// The password of `Authorization: Basic` credentials (git-style tools send an API key so).
fn basic_password(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || encoded.len() > 1024 {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    decoded.split_once(':').map(|(_, password)| password.to_owned()).filter(|p| !p.is_empty())
}

/// A browser: a GET or HEAD that accepts HTML and carries no `Authorization`.
fn is_browser(request: &ForwardedRequest, headers: &HeaderMap, credential: Credential<'_>) -> bool {
    let accepts_html = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/html"));
    matches!(request.method.as_str(), "GET" | "HEAD")
        && accepts_html
        && matches!(credential, Credential::None | Credential::Cookie(_))
}

fn answer(state: &AppState, decision: Decision, browser: bool, flavor: Flavor) -> Response {
    let challenge = |error: Option<&str>| {
        let mut response = plain(StatusCode::UNAUTHORIZED, "sign-in required");
        let bearer = match error {
            Some(e) => format!("Bearer realm=\"latchkey\", error=\"{e}\""),
            None => "Bearer realm=\"latchkey\"".to_owned(),
        };
        let h = response.headers_mut();
        h.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&bearer).unwrap_or(HeaderValue::from_static("Bearer")),
        );
        h.append(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"latchkey\""));
        response
    };
    match decision {
        Decision::Allow(identity) => {
            let mut response = plain(StatusCode::OK, "");
            if let Some(identity) = identity {
                for (name, value) in identity.headers(&state.config.forward_auth.headers) {
                    if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::from_bytes(value.as_bytes())) {
                        response.headers_mut().insert(n, v);
                    }
                }
            }
            response
        }
        Decision::SignIn(url) if browser => {
            let status = match flavor {
                Flavor::Redirect => StatusCode::FOUND,
                Flavor::Nginx => StatusCode::UNAUTHORIZED,
            };
            let mut response = plain(status, "sign-in required");
            if let Ok(location) = HeaderValue::from_str(&url) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Decision::SignIn(_) => challenge(None),
        Decision::Unauthenticated => challenge(Some("invalid_token")),
        Decision::Forbidden(_) => plain(StatusCode::FORBIDDEN, "forbidden"),
    }
}

#[derive(Deserialize)]
pub struct StartQuery {
    rd: Option<String>,
}

/// What waits in this browser's ceremony while it signs in.
#[derive(Serialize, Deserialize)]
struct Waiting {
    rd: String,
}

fn refused(e: &ReturnRefusal) -> Response {
    let status = if matches!(e, ReturnRefusal::Off) { StatusCode::NOT_FOUND } else { StatusCode::BAD_REQUEST };
    PageError::new(status, format!("Cannot continue: {e}. Go back to the application and try again.")).into_response()
}

/// `/forward-auth/start?rd=URL`: a browser signed in well enough gets the cookie and goes
/// back to `rd`; any other goes to the sign-in page first.
pub async fn start(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    method: Method,
    Query(q): Query<StartQuery>,
) -> Response {
    let services = state.services.forward_auth();
    let url = match services.return_target(q.rd.as_deref().unwrap_or_default()) {
        Ok(u) => u,
        Err(e) => return refused(&e),
    };
    let session = sessions::current(&state, &tenant, &headers).await;
    let step_up = match &session {
        Some(s) => match services.session_suffices(&url, ip, s) {
            Suffices::Yes => return return_with_cookie(&state, &tenant, s, url.as_str()),
            Suffices::NeedsPasskey => "&step_up=passkey",
            Suffices::NeedsTwoFactors => "&step_up=mfa",
        },
        None => "",
    };
    if method == Method::HEAD {
        return StatusCode::OK.into_response();
    }
    let waiting = Waiting { rd: url.to_string() };
    match ceremony::put(&state, &tenant, &headers, Purpose::ForwardAuth, &waiting).await {
        Ok(cookie) => {
            let login = format!("{}/login?return_to=forward-auth{step_up}", state.base());
            let mut response = Redirect::to(&login).into_response();
            if let Some(c) = cookie {
                response.headers_mut().append(header::SET_COOKIE, c);
            }
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot keep the forward-auth return address");
            PageError::internal().into_response()
        }
    }
}

/// `/forward-auth/continue`: where the sign-in page sends a browser that came from
/// [`start`]. It never sends it to sign in again: a sign-in that still falls short gets a
/// page that says what the application needs.
pub async fn resume(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> Response {
    let expired = || {
        PageError::new(
            StatusCode::BAD_REQUEST,
            "This sign-in has expired or belongs to another browser. Go back to the application and try again.",
        )
        .into_response()
    };
    let Some(waiting) = ceremony::take::<Waiting>(&state, &tenant, &headers, Purpose::ForwardAuth).await else {
        return expired();
    };
    let services = state.services.forward_auth();
    let url = match services.return_target(&waiting.rd) {
        Ok(u) => u,
        Err(e) => return refused(&e),
    };
    let Some(session) = sessions::current(&state, &tenant, &headers).await else { return expired() };
    let needs = match services.session_suffices(&url, ip, &session) {
        Suffices::Yes => return continue_with_cookie(&state, &tenant, &session, url.as_str()),
        Suffices::NeedsPasskey => "a passkey",
        Suffices::NeedsTwoFactors => "two factors (a passkey, or a password and an authenticator app)",
    };
    PageError::new(
        StatusCode::FORBIDDEN,
        format!("This application asks you to sign in with {needs}. Add one on your account's security page, then try again."),
    )
    .into_response()
}

/// After a sign-in form: the browser came here through the form's redirects, and browsers
/// check `form-action` against every redirect of that chain, so a redirect to the app (on
/// another origin) would be blocked. A page that sends it on (`Refresh`, and a link) is a
/// new navigation, outside the chain.
fn continue_with_cookie(
    state: &AppState,
    tenant: &TenantId,
    session: &latchkey_core::records::BrowserSession,
    rd: &str,
) -> Response {
    let response = return_with_cookie(state, tenant, session, rd);
    if !response.status().is_redirection() {
        return response;
    }
    let cookie = response.headers().get(header::SET_COOKIE).cloned();
    let mut page = state.templates.render(
        StatusCode::OK,
        "message.html",
        minijinja::context! {
            title => "Signed in", base => state.base(),
            message => "You are signed in. Taking you back to the application…",
            link => rd, link_text => "Continue to the application",
        },
    );
    let headers = page.headers_mut();
    if let Ok(refresh) = HeaderValue::from_str(&format!("0; url={rd}")) {
        headers.insert(HeaderName::from_static("refresh"), refresh);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(c) = cookie {
        headers.append(header::SET_COOKIE, c);
    }
    page
}

fn return_with_cookie(
    state: &AppState,
    tenant: &TenantId,
    session: &latchkey_core::records::BrowserSession,
    rd: &str,
) -> Response {
    let Some(domain) = state.config.forward_auth.cookie_domain.as_deref() else {
        return refused(&ReturnRefusal::Off);
    };
    let (value, max_age) = state.services.forward_auth().cookie_for(tenant, session);
    let mut response = Redirect::to(rd).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, cookies::set_on_domain(state.https, COOKIE, &value, domain, max_age));
    response
}
