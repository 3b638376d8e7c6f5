//! The consent page: what a client asks for, and the user's answer.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::records::Actor;
use serde::Deserialize;

use super::{allow_form_redirect, expired};
use crate::browser::csrf;
use crate::edge::Tenant;
use crate::oauth::authorization_response;
use crate::oauth::parked::{self, load_pending};
use crate::pages::PageError;
use crate::sessions;
use crate::state::AppState;
use latchkey_service::consents::Asked;

#[derive(Deserialize)]
pub struct ConsentQuery {
    pub(crate) req: String,
}

pub async fn consent_page(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Query(q): Query<ConsentQuery>,
) -> Response {
    let Some((request, client)) = load_pending(&state, &tenant, &headers, &q.req).await else { return expired() };
    let Some(session) = sessions::current(&state, &tenant, &headers).await else {
        return Redirect::to(&format!("{}/login?req={}", state.base(), q.req)).into_response();
    };
    let described = state.caches.scopes().await.unwrap_or_default();
    // Admin scopes are never put to the user: their admin roles decide what they may do.
    let scopes: Vec<minijinja::Value> = request
        .scope
        .iter()
        .filter(|s| !latchkey_core::domain::AdminScope::is_admin_name(s))
        .map(|s| {
            let description =
                described.iter().find(|d| d.name.as_str() == s).map_or(s.clone(), |d| d.description.clone());
            minijinja::context! { name => s, description }
        })
        .collect();
    // Claims asked for one by one that no requested scope releases (OIDC Core §5.5); the
    // client marks some essential, which the user should know (§5.5.1).
    let claims: Vec<minijinja::Value> = crate::oauth::claims::beyond_scopes(request.claims.as_ref(), &request.scope)
        .into_iter()
        .map(|name| {
            let essential = request.claims.as_ref().is_some_and(|c| c.is_essential(name));
            minijinja::context! { name, description => crate::oauth::claims::describe(name), essential }
        })
        .collect();
    let username =
        state.caches.user(&session.sub).await.ok().flatten().map(|u| u.username.to_string()).unwrap_or_default();
    let (csrf, set_cookie) = csrf::token(&state, &headers);
    let mut response = state.templates.render(
        StatusCode::OK,
        "consent.html",
        minijinja::context! { title => "Allow access", base => state.base(), csrf, req => q.req, client_name => client.name, scopes, claims, username },
    );
    if let Some(c) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    allow_form_redirect(&mut response, Some(&request.redirect_uri));
    response
}

#[derive(Deserialize)]
pub struct ConsentForm {
    csrf: Option<String>,
    req: Option<String>,
    decision: Option<String>,
}

pub async fn consent_submit(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<ConsentForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let Some(req) = form.req.clone() else { return expired() };
    let Some((request, client)) = load_pending(&state, &tenant, &headers, &req).await else { return expired() };
    let Some(session) = sessions::current(&state, &tenant, &headers).await else {
        return Redirect::to(&format!("{}/login?req={req}", state.base())).into_response();
    };
    match form.decision.as_deref() {
        Some("allow") => {
            let actor = Actor::User(session.sub.to_string());
            let asked = Asked { scopes: &request.scope, claims: request.claims.as_ref(), prompt_consent: false };
            if let Err(e) =
                state.services.consents().grant(&tenant, &session.sub, &client.client_id, &asked, &actor).await
            {
                tracing::error!(error = %e, "cannot save consent");
                return PageError::internal().into_response();
            }
            authorization_response::issue_code(&state, &tenant, &session, &request, &client, Some(req)).await
        }
        Some("deny") => {
            parked::forget_pending(&state, &tenant, &req).await;
            authorization_response::deny(&state, &request, "access_denied", "the user denied the request")
        }
        _ => PageError::new(StatusCode::BAD_REQUEST, "Choose Allow or Deny.").into_response(),
    }
}
