//! The tenant a request belongs to: resolved once, by [`resolve`] at the edge, and handed to
//! handlers with the [`Tenant`] extractor, which pass it down to the services. Today every
//! request belongs to the default tenant; serving several tenants changes the resolver
//! (`Latchkey::request_tenant`), not the handlers.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use latchkey_core::domain::TenantId;

use crate::state::AppState;

/// The request's tenant.
#[derive(Debug, Clone)]
pub struct Tenant(pub TenantId);

/// Resolves the tenant of every request before any handler runs.
pub async fn resolve(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let tenant = state.services.request_tenant();
    request.extensions_mut().insert(Tenant(tenant));
    next.run(request).await
}

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    /// Only a route outside the resolver's layer can miss its tenant: a bug, not a request
    /// to answer.
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Tenant>().cloned().ok_or_else(|| {
            tracing::error!(path = %parts.uri.path(), "a request reached a handler without a tenant");
            StatusCode::INTERNAL_SERVER_ERROR
        })
    }
}
