//! Who calls: the [`Caller`] extractor authenticates the request's bearer credential (an
//! access token for the admin API, or a service account's API key) through the admin
//! service, and each handler asks it for the one right it needs. No header is trusted and
//! no address is exempt.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use latchkey_core::domain::AdminScope;
use latchkey_service::admin::AdminCaller;

use super::problem::{Kind, Problem};
use crate::edge::authorization::{AuthorizationError, bearer};
use crate::state::AppState;

/// An authenticated caller of the admin API.
pub struct Caller(pub AdminCaller);

impl Caller {
    /// The caller holds `scope` now, or the request is refused (403, RFC 6750 §3.1).
    pub fn require(&self, scope: AdminScope) -> Result<&AdminCaller, Problem> {
        if self.0.may(scope) {
            return Ok(&self.0);
        }
        let detail = format!("this needs the `{scope}` admin right");
        Err(Problem::new(Kind::Forbidden, detail.clone()).with_challenge("insufficient_scope", &detail))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = match bearer(&parts.headers) {
            Ok(Some(token)) => token,
            Ok(None) | Err(AuthorizationError::OtherScheme) => {
                return Err(Problem::new(Kind::Unauthenticated, "send an access token or API key as a Bearer token"));
            }
            Err(e) => {
                return Err(
                    Problem::new(Kind::InvalidRequest, e.to_string()).with_challenge("invalid_request", &e.to_string())
                );
            }
        };
        let tenant = state.services.request_tenant();
        // The whole path (nesting strips the prefix), for keys limited to routes.
        let path = parts.extensions.get::<axum::extract::OriginalUri>().map_or(parts.uri.path(), |u| u.0.path());
        let caller = state
            .services
            .admin()
            .caller(&tenant, token, parts.method.as_str(), path)
            .await
            .map_err(Problem::from)?
            .map_err(Problem::from)?;
        Ok(Caller(caller))
    }
}
