//! The tenant a request belongs to: the [`Tenant`] extractor resolves it once per request,
//! at the edge, and the handler passes it down to the services. Today every request belongs
//! to the default tenant; serving several tenants changes the resolver
//! (`Latchkey::request_tenant`, which will read the request's path), not the handlers.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use latchkey_core::domain::TenantId;

use crate::state::AppState;

/// The request's tenant.
#[derive(Debug, Clone)]
pub struct Tenant(pub TenantId);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(_parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Tenant(state.services.request_tenant()))
    }
}
