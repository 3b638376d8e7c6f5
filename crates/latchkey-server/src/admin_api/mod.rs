//! The admin REST API, `/admin/api/v1`: everything an operator does, for scripts and for
//! the admin console. Each handler authenticates its caller ([`auth::Caller`]), asks for the
//! one admin right it needs, parses the request into domain types and calls a service;
//! errors are RFC 9457 problems ([`problem`]). The OpenAPI 3.1 document is generated from
//! these handlers and served at `/admin/api/v1/openapi.json`.

mod apply;
mod audit;
mod auth;
mod catalog;
mod client_body;
mod clients;
mod consents;
mod idempotency;
mod keys;
mod problem;
mod request;
mod roles;
mod schema;
mod server;
mod user_factors;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use latchkey_core::domain::{ADMIN_API_PATH, AdminScope};
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Latchkey admin API",
        description = "Administers a Latchkey identity server. Every call needs a Bearer access token issued by \
this server for the audience `{issuer}/admin/api/v1` with admin scopes, or a service account's admin-scoped API key. \
Errors are `application/problem+json` (RFC 9457).",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    tags(
        (name = "server", description = "The server itself"),
        (name = "users", description = "Accounts, their state and sessions"),
        (name = "clients", description = "OAuth clients, their secrets and logout URIs"),
        (name = "access", description = "Roles, groups and who holds them"),
        (name = "api-keys", description = "API keys of users and service accounts"),
        (name = "catalog", description = "Scopes, API resources and sign-up invitations"),
        (name = "signing-keys", description = "The keys Latchkey signs tokens with"),
        (name = "audit", description = "The audit log"),
        (name = "apply", description = "Declarative configuration: make the server match a document"),
    )
)]
struct ApiDoc;

/// `{issuer}/admin/api/v1`, where the API's paths start.
fn base(state: &AppState) -> String {
    format!("{}{ADMIN_API_PATH}", state.issuer)
}

/// The admin API's routes (to nest under `/admin/api/v1`) with its OpenAPI document.
pub fn router(state: &AppState) -> Router<AppState> {
    let (router, mut api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(server::summary))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::get, users::update, users::delete))
        .routes(routes!(users::lock))
        .routes(routes!(users::unlock))
        .routes(routes!(users::set_password))
        .routes(routes!(users::sessions, users::end_sessions))
        .routes(routes!(user_factors::passkeys))
        .routes(routes!(user_factors::remove_passkey))
        .routes(routes!(user_factors::identities))
        .routes(routes!(user_factors::unlink))
        .routes(routes!(user_factors::reset_factors))
        .routes(routes!(consents::consents))
        .routes(routes!(consents::consent_history))
        .routes(routes!(consents::export))
        .routes(routes!(consents::withdraw))
        .routes(routes!(clients::list, clients::create))
        .routes(routes!(clients::get, clients::update, clients::delete))
        .routes(routes!(clients::rotate_secret))
        .routes(routes!(roles::list_roles, roles::create_role))
        .routes(routes!(roles::get_role, roles::update_role, roles::delete_role))
        .routes(routes!(roles::list_groups, roles::create_group))
        .routes(routes!(roles::get_group, roles::delete_group))
        .routes(routes!(roles::grant_role, roles::revoke_role))
        .routes(routes!(roles::add_member, roles::remove_member))
        .routes(routes!(roles::add_group_role, roles::remove_group_role))
        .routes(routes!(keys::list))
        .routes(routes!(keys::create))
        .routes(routes!(keys::revoke))
        .routes(routes!(keys::rotate))
        .routes(routes!(keys::signing_keys))
        .routes(routes!(keys::rotate_signing_key))
        .routes(routes!(keys::retire_signing_key))
        .routes(routes!(catalog::scopes))
        .routes(routes!(catalog::put_scope, catalog::delete_scope))
        .routes(routes!(catalog::resources, catalog::put_resource, catalog::delete_resource))
        .routes(routes!(catalog::invitations, catalog::create_invitation))
        .routes(routes!(catalog::revoke_invitation))
        .routes(routes!(audit::events))
        .routes(routes!(audit::export))
        .routes(routes!(audit::chain_head))
        .routes(routes!(audit::verify_chain))
        .routes(routes!(apply::apply))
        .split_for_parts();
    api.servers = Some(vec![utoipa::openapi::Server::new(base(state))]);
    let scopes: Vec<String> = AdminScope::ALL.iter().map(|s| format!("`{s}`: {}", s.description())).collect();
    let scheme = Http::builder()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some(format!(
            "An access token for the admin API, or an API key. Admin scopes:\n\n- {}",
            scopes.join("\n- ")
        )))
        .build();
    api.components.get_or_insert_with(Default::default).add_security_scheme("bearer", SecurityScheme::Http(scheme));
    let document: Arc<str> = Arc::from(api.to_pretty_json().unwrap_or_default());
    router
        .route("/openapi.json", get(move || openapi(document.clone())))
        .fallback(|| async { problem::Problem::new(problem::Kind::NotFound, "no such operation in the admin API") })
        .method_not_allowed_fallback(|| async {
            problem::Problem::new(problem::Kind::MethodNotAllowed, "the operation does not take this method")
        })
}

async fn openapi(document: Arc<str>) -> Response {
    let mut response = document.to_string().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
