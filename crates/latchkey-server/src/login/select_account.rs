//! `prompt=select_account` (OIDC Core §3.1.2.1). A browser has one session, so "selecting"
//! is: continue as the signed-in account, or sign out and sign in as another.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::records::Actor;
use serde::Deserialize;

use super::consent::ConsentQuery;
use super::{base, csrf, expired};
use crate::app::AppState;
use crate::oauth::authorize::{load_pending, replace_pending};
use crate::sessions;

pub async fn page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<ConsentQuery>) -> Response {
    let Some((_, client)) = load_pending(&state, &headers, &q.req).await else { return expired(&state) };
    let Some(session) = sessions::current(&state, &headers).await else {
        return Redirect::to(&format!("{}/login?req={}", base(&state), q.req)).into_response();
    };
    let user = state.caches.user(&session.sub).await.ok().flatten();
    let (csrf, set_cookie) = csrf::token(&state, &headers);
    let mut response = state.templates.render(
        StatusCode::OK,
        "select_account.html",
        minijinja::context! {
            title => "Choose an account", base => base(&state), csrf, req => q.req, client_name => client.name,
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

pub async fn choose(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<ChoiceForm>) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form(&state);
    }
    let Some(req) = form.req else { return expired(&state) };
    let Some((mut request, _)) = load_pending(&state, &headers, &req).await else { return expired(&state) };
    let Some(session) = sessions::current(&state, &headers).await else {
        return Redirect::to(&format!("{}/login?req={req}", base(&state))).into_response();
    };
    request.account_chosen = true;
    let (next, cookies) = match form.choice.as_deref() {
        Some("continue") => (format!("{}/authorize/resume?req={req}", base(&state)), Vec::new()),
        Some("switch") => {
            // Signing out here reaches the session's clients by the back channel only: the
            // browser is in the middle of another client's request.
            let actor = Actor::User(session.sub.to_string());
            let (_, cookies) = sessions::end_this_browser(&state, &headers, "switched_account", &actor).await;
            request.login_pending = true;
            request.replaced_login = Some(session.id_hash.as_str().to_owned());
            (format!("{}/login?req={req}", base(&state)), cookies)
        }
        _ => return state.pages.render(StatusCode::BAD_REQUEST, "Choose to continue or to use another account.", None),
    };
    if !replace_pending(&state, &req, &request).await {
        return expired(&state);
    }
    let mut response = Redirect::to(&next).into_response();
    sessions::set_cookies(&mut response, cookies);
    response
}
