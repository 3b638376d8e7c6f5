//! OAuth 2.1 authorization server: one file per protocol operation.

pub mod authorization_response;
pub mod authorize;
pub mod claims;
pub mod client_auth;
pub mod client_auth_limits;
pub mod introspect;
pub mod params;
pub mod parked;
pub mod revoke;
pub mod token;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error in the RFC 6749 §5.2 format, for the token, revocation and introspection
/// endpoints.
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// `WWW-Authenticate` for failed HTTP Basic client authentication (RFC 6749 §5.2).
    pub basic_challenge: bool,
    /// `Retry-After` seconds, for a throttled caller.
    pub retry_after: Option<u64>,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            basic_challenge: false,
            retry_after: None,
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new("invalid_grant", description)
    }

    pub fn invalid_client(description: impl Into<String>, basic: bool) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: description.into(),
            basic_challenge: basic,
            retry_after: None,
        }
    }

    pub fn throttled(retry_after: u64) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            error: "invalid_client",
            description: "too many failed client authentications from this address; try again later".into(),
            basic_challenge: false,
            retry_after: Some(retry_after),
        }
    }

    pub fn server_error(context: &str, e: impl std::fmt::Display) -> Self {
        // Details go to the log with the request id, never to the client.
        tracing::error!(error = %e, "{context}");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "server_error",
            description: "internal error".into(),
            basic_challenge: false,
            retry_after: None,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.error, "error_description": self.description});
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(v) = self.retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            headers.insert(header::RETRY_AFTER, v);
        }
        if self.basic_challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"latchkey\", charset=\"UTF-8\""),
            );
        }
        response
    }
}

impl From<latchkey_service::ServiceError> for OAuthError {
    fn from(e: latchkey_service::ServiceError) -> Self {
        OAuthError::server_error("store error", e)
    }
}
