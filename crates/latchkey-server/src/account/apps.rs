//! "Apps with access": what the user allowed each application on the consent page, and a
//! way to take it back. Withdrawing stops the app's tokens for the user and signs them out
//! of it (back-channel logout); the app asks again next time. It only takes access away, so
//! it needs no recent sign-in.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::domain::ClientId;
use latchkey_core::records::{Actor, ConsentRecord};
use latchkey_service::ServiceError;
use serde::Deserialize;

use crate::browser::csrf;
use crate::edge::Tenant;
use crate::pages::PageError;
use crate::sessions;
use crate::state::AppState;

fn sign_in_first(state: &AppState) -> Response {
    Redirect::to(&format!("{}/login?return_to=apps", state.base())).into_response()
}

fn back(state: &AppState, query: &str) -> Response {
    Redirect::to(&format!("{}/account/apps?{query}", state.base())).into_response()
}

#[derive(Deserialize)]
pub struct AppsQuery {
    done: Option<String>,
    error: Option<String>,
}

/// One consent as the page shows it: the app's name, what it may see, since when.
async fn view(
    state: &AppState,
    consent: &ConsentRecord,
    described: &[latchkey_core::records::ScopeDefinition],
) -> minijinja::Value {
    let client = state.caches.client(&consent.client_id).await.ok().flatten();
    let name = client.map_or_else(|| consent.client_id.to_string(), |c| c.name.clone());
    let scopes: Vec<minijinja::Value> = consent
        .consent
        .scopes
        .iter()
        .map(|s| {
            let description =
                described.iter().find(|d| d.name.as_str() == s).map_or(s.clone(), |d| d.description.clone());
            minijinja::context! { name => s, description }
        })
        .collect();
    let claims: Vec<minijinja::Value> = consent
        .consent
        .claims
        .iter()
        .map(|c| minijinja::context! { name => c, description => crate::oauth::claims::describe(c) })
        .collect();
    minijinja::context! {
        client_id => consent.client_id.as_str(), name, scopes, claims, granted => consent.granted_at.to_rfc3339(),
    }
}

pub async fn apps_page(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Query(q): Query<AppsQuery>,
) -> Response {
    let Some(session) = sessions::current(&state, &tenant, &headers).await else { return sign_in_first(&state) };
    let consents = match state.services.consents().list(&tenant, &session.sub).await {
        Ok(list) => list,
        Err(e) => {
            tracing::error!(error = %e, "cannot list consents");
            return PageError::internal().into_response();
        }
    };
    let described = state.caches.scopes().await.unwrap_or_default();
    let mut apps = Vec::new();
    for consent in &consents {
        apps.push(view(&state, consent, &described).await);
    }
    let user = state.caches.user(&session.sub).await.ok().flatten();
    let username = user.map(|u| state.services.users().known_as(&u)).unwrap_or_default();
    let done = q.done.as_deref().filter(|d| *d == "withdrawn").map(|_| "Access removed. The app signed you out.");
    let error = q.error.as_deref().filter(|e| *e == "not_found").map(|_| "That app has no access to remove.");
    let (csrf, set_cookie) = csrf::token(&state, &headers);
    let mut response = state.templates.render(
        StatusCode::OK,
        "account_apps.html",
        minijinja::context! { title => "Apps with access", base => state.base(), csrf, username, apps, done, error },
    );
    if let Some(c) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize)]
pub struct WithdrawForm {
    csrf: Option<String>,
    client_id: Option<String>,
}

pub async fn withdraw(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<WithdrawForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let Some(session) = sessions::current(&state, &tenant, &headers).await else { return sign_in_first(&state) };
    let Some(client) = form.client_id.as_deref().and_then(|raw| ClientId::parse(raw).ok()) else {
        return back(&state, "error=not_found");
    };
    let actor = Actor::User(session.sub.to_string());
    match state.services.consents().withdraw(&tenant, &session.sub, &client, &actor).await {
        Ok(_) => back(&state, "done=withdrawn"),
        Err(ServiceError::NotFound(_)) => back(&state, "error=not_found"),
        Err(e) => {
            tracing::error!(error = %e, "cannot withdraw a consent");
            PageError::internal().into_response()
        }
    }
}
