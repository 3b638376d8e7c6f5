//! `prompt=select_account` (OIDC Core §3.1.2.1). A browser has one session, so "selecting"
//! is: continue as the signed-in account, or sign out and sign in as another.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::records::Actor;
use serde::Deserialize;

use super::consent::ConsentQuery;
use super::expired;
use crate::browser::csrf;
use crate::edge::Tenant;
use crate::oauth::parked::{load_pending, replace_pending};
use crate::pages::PageError;
use crate::sessions;
use crate::state::AppState;

pub async fn page(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Query(q): Query<ConsentQuery>,
) -> Response {
    let Some((_, client)) = load_pending(&state, &tenant, &headers, &q.req).await else { return expired() };
    let Some(session) = sessions::current(&state, &tenant, &headers).await else {
        return Redirect::to(&format!("{}/login?req={}", state.base(), q.req)).into_response();
    };
    let user = state.caches.user(&session.sub).await.ok().flatten();
    let (csrf, set_cookie) = csrf::token(&state, &headers);
    let mut response = state.templates.render(
        StatusCode::OK,
        "select_account.html",
        minijinja::context! {
            title => "Choose an account", base => state.base(), csrf, req => q.req, client_name => client.name,
            username => user.as_ref().map(|u| u.username.to_string()),
            name => user.as_ref().and_then(|u| u.name.as_ref().map(|n| n.as_str().to_owned())),
        },
    );
    if let Some(c) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

#[derive(Deserialize)]
pub struct ChoiceForm {
    csrf: Option<String>,
    req: Option<String>,
    choice: Option<String>,
}

pub async fn choose(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<ChoiceForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let Some(req) = form.req else { return expired() };
    let Some((mut request, _)) = load_pending(&state, &tenant, &headers, &req).await else { return expired() };
    let Some(session) = sessions::current(&state, &tenant, &headers).await else {
        return Redirect::to(&format!("{}/login?req={req}", state.base())).into_response();
    };
    request.account_chosen = true;
    let (next, cookies) = match form.choice.as_deref() {
        Some("continue") => (format!("{}/authorize/resume?req={req}", state.base()), Vec::new()),
        Some("switch") => {
            // Signing out here reaches the session's clients by the back channel only: the
            // browser is in the middle of another client's request.
            let actor = Actor::User(session.sub.to_string());
            let (_, cookies) = sessions::end_this_browser(&state, &tenant, &headers, "switched_account", &actor).await;
            request.login_pending = true;
            request.replaced_login = Some(session.id_hash.as_str().to_owned());
            (format!("{}/login?req={req}", state.base()), cookies)
        }
        _ => {
            return PageError::new(StatusCode::BAD_REQUEST, "Choose to continue or to use another account.")
                .into_response();
        }
    };
    if !replace_pending(&state, &tenant, &req, &request).await {
        return expired();
    }
    let mut response = Redirect::to(&next).into_response();
    sessions::set_cookies(&mut response, cookies);
    response
}
