//! RP-Initiated Logout 1.0: GET and POST. The `id_token_hint` is verified (signature and
//! issuer; expiry ignored). Without a hint naming this browser's session, the user is asked
//! to confirm, so a bare `<img src=…/logout>` signs nobody out.

use axum::Form;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse as _;
use axum::response::Response;
use latchkey_core::domain::ClientId;
use latchkey_core::records::{Actor, SessionsEnded};
use url::Url;

use crate::browser::csrf;
use crate::edge::Tenant;
use crate::oauth::params::Params;
use crate::pages::PageError;
use crate::sessions;
use crate::state::AppState;
use latchkey_core::domain::TenantId;

struct Logout {
    client_id: Option<String>,
    client_name: Option<String>,
    redirect: Option<String>,
    state: Option<String>,
    hint_sid: Option<String>,
    hint_sub: Option<String>,
}

pub async fn end_session_get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    run(&state, &tenant, &headers, Params::from_query(query.as_deref())).await
}

pub async fn end_session_post(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(&state, &tenant, &headers, Params::from_form(&headers, &body)).await
}

async fn parse(state: &AppState, p: &Params) -> Result<Logout, String> {
    let mut hint_sid = None;
    let mut hint_sub = None;
    let mut hint_aud = None;
    if let Some(hint) = p.get("id_token_hint") {
        let claims = state
            .services
            .verify_jwt(hint, "JWT", true)
            .map_err(|_| "The id_token_hint was not issued here.".to_owned())?;
        hint_sid = claims.get("sid").and_then(|v| v.as_str()).map(str::to_owned);
        hint_sub = claims.get("sub").and_then(|v| v.as_str()).map(str::to_owned);
        hint_aud = claims.get("aud").and_then(|v| v.as_str()).map(str::to_owned);
    }
    let client_id = match (p.get("client_id"), hint_aud) {
        (Some(c), Some(aud)) if c != aud => return Err("client_id does not match the id_token_hint.".into()),
        (Some(c), _) => Some(c.to_owned()),
        (None, aud) => aud,
    };
    let client = match &client_id {
        Some(id) => match ClientId::parse(id) {
            Ok(id) => state.caches.client(&id).await.ok().flatten(),
            Err(_) => None,
        },
        None => None,
    };
    let redirect = match p.get("post_logout_redirect_uri") {
        None => None,
        // Redirect only to a URI registered for the identified client: exact match, or a
        // native client's loopback URI on any port (RFC 8252 §7.3, as for redirect URIs).
        Some(uri) => match &client {
            Some(c) if crate::oauth::authorize::uri_matches(&c.post_logout_redirect_uris, c.kind, uri) => {
                Some(uri.to_owned())
            }
            _ => return Err("The post_logout_redirect_uri is not registered for this client.".into()),
        },
    };
    Ok(Logout {
        client_id,
        client_name: client.map(|c| c.name.clone()),
        redirect,
        state: p.get("state").map(str::to_owned),
        hint_sid,
        hint_sub,
    })
}

async fn run(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    params: Result<Params, crate::oauth::params::ParamsError>,
) -> Response {
    let params = match params {
        Ok(p) => p,
        Err(e) => return PageError::new(StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let logout = match parse(state, &params).await {
        Ok(l) => l,
        Err(message) => return PageError::new(StatusCode::BAD_REQUEST, message.to_string()).into_response(),
    };
    let session = sessions::current(state, tenant, headers).await;
    let Some(session) = session else {
        // Nobody is signed in here: nothing to end (but clear whatever cookie is left).
        let (ended, cookies) = sessions::end_this_browser(state, tenant, headers, "logout", &Actor::System).await;
        return finish(state, &logout, &ended, cookies).await;
    };
    let hint_names_this_session = logout.hint_sid.as_deref() == Some(session.sid.as_str())
        || (logout.hint_sid.is_none() && logout.hint_sub.as_deref() == Some(session.sub.as_str()));
    if hint_names_this_session {
        let actor = Actor::User(session.sub.to_string());
        let (ended, cookies) = sessions::end_this_browser(state, tenant, headers, "logout", &actor).await;
        return finish(state, &logout, &ended, cookies).await;
    }
    // Ask first: the request cannot prove it comes from this user's relying party.
    let username = state.caches.user(&session.sub).await.ok().flatten().map(|u| u.username.to_string());
    let (csrf, set_cookie) = csrf::token(state, headers);
    let mut fields: Vec<(String, String)> = Vec::new();
    if let Some(c) = &logout.client_id {
        fields.push(("client_id".into(), c.clone()));
    }
    if let Some(r) = &logout.redirect {
        fields.push(("post_logout_redirect_uri".into(), r.clone()));
    }
    if let Some(s) = &logout.state {
        fields.push(("state".into(), s.clone()));
    }
    let mut response = state.templates.render(
        StatusCode::OK,
        "logout_confirm.html",
        minijinja::context! { title => "Sign out", base => crate::state::base_path(&state.issuer), csrf, fields, client_name => logout.client_name, username },
    );
    if let Some(c) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    if let Some(source) = logout.redirect.as_deref().and_then(crate::edge::headers::redirect_source) {
        crate::edge::headers::set_csp(&mut response, &crate::edge::headers::csp_allowing_forms_to(&[source]));
    }
    response
}

#[derive(serde::Deserialize)]
pub struct ConfirmForm {
    csrf: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

pub async fn confirm(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<ConfirmForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let pairs = [
        ("client_id", form.client_id),
        ("post_logout_redirect_uri", form.post_logout_redirect_uri),
        ("state", form.state),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)));
    let params = match Params::from_pairs(pairs) {
        Ok(p) => p,
        Err(e) => return PageError::new(StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let logout = match parse(&state, &params).await {
        Ok(l) => l,
        Err(message) => return PageError::new(StatusCode::BAD_REQUEST, message.to_string()).into_response(),
    };
    let actor = match sessions::current(&state, &tenant, &headers).await {
        Some(s) => Actor::User(s.sub.to_string()),
        None => Actor::System,
    };
    let (ended, cookies) = sessions::end_this_browser(&state, &tenant, &headers, "logout", &actor).await;
    finish(&state, &logout, &ended, cookies).await
}

/// After the session ended: the front-channel notices, then the client's
/// `post_logout_redirect_uri` (with `state`) or the signed-out page.
async fn finish(
    state: &AppState,
    logout: &Logout,
    ended: &SessionsEnded,
    cookies: Vec<axum::http::HeaderValue>,
) -> Response {
    let next = match &logout.redirect {
        Some(uri) => match Url::parse(uri) {
            Ok(mut url) => {
                if let Some(s) = &logout.state {
                    url.query_pairs_mut().append_pair("state", s);
                }
                Some(url)
            }
            Err(_) => {
                return PageError::new(StatusCode::BAD_REQUEST, "The post_logout_redirect_uri is not a URL.")
                    .into_response();
            }
        },
        None => None,
    };
    sessions::signed_out::respond(state, ended, next, cookies).await
}
