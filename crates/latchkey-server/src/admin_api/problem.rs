//! Errors of the admin API as `application/problem+json` (RFC 9457), each with a stable
//! `type`: the one place a refusal or failure becomes a response.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_service::ServiceError;
use latchkey_service::admin::AdminRefusal;
use serde::Serialize;
use utoipa::ToSchema;

/// The kinds of problem; `type` is `urn:latchkey:problem:{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Unauthenticated,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    /// The request is malformed: a body, query or header that does not parse.
    InvalidRequest,
    /// The request parses but breaks a rule.
    Invalid,
    Conflict,
    PreconditionFailed,
    PreconditionRequired,
    IdempotencyKeyReused,
    IdempotencyKeyInUse,
    Unavailable,
}

impl Kind {
    fn parts(self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Kind::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated", "Authentication required"),
            Kind::Forbidden => (StatusCode::FORBIDDEN, "forbidden", "Not allowed"),
            Kind::NotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Kind::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed"),
            Kind::InvalidRequest => (StatusCode::BAD_REQUEST, "invalid-request", "Malformed request"),
            Kind::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, "invalid", "The request breaks a rule"),
            Kind::Conflict => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Kind::PreconditionFailed => {
                (StatusCode::PRECONDITION_FAILED, "precondition-failed", "Changed since it was read")
            }
            Kind::PreconditionRequired => {
                (StatusCode::PRECONDITION_REQUIRED, "precondition-required", "If-Match is required")
            }
            Kind::IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency-Key was used for another request",
            ),
            Kind::IdempotencyKeyInUse => {
                (StatusCode::CONFLICT, "idempotency-key-in-use", "A request with this Idempotency-Key is running")
            }
            Kind::Unavailable => (StatusCode::INTERNAL_SERVER_ERROR, "unavailable", "The server failed"),
        }
    }
}

/// RFC 9457 problem details.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProblemBody {
    /// `urn:latchkey:problem:{kind}`, stable for each kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

#[derive(Debug)]
pub struct Problem {
    kind: Kind,
    detail: String,
    /// `WWW-Authenticate` for a 401 or a 403 for lack of scope (RFC 6750 §3).
    challenge: Option<String>,
}

impl Problem {
    pub fn new(kind: Kind, detail: impl Into<String>) -> Self {
        Self { kind, detail: detail.into(), challenge: None }
    }

    pub fn with_challenge(mut self, error: &str, detail: &str) -> Self {
        let detail = detail.replace('"', "'");
        self.challenge =
            Some(format!("Bearer realm=\"latchkey-admin\", error=\"{error}\", error_description=\"{detail}\""));
        self
    }

    pub fn unauthenticated(detail: &str) -> Self {
        Self::new(Kind::Unauthenticated, detail).with_challenge("invalid_token", detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let (status, kind, title) = self.kind.parts();
        let body = ProblemBody {
            kind: format!("urn:latchkey:problem:{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: self.detail,
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        } else if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"latchkey-admin\""));
        }
        response
    }
}

/// A request that does not parse (400), saying why.
pub fn invalid(why: impl std::fmt::Display) -> Problem {
    Problem::new(Kind::InvalidRequest, why.to_string())
}

impl From<ServiceError> for Problem {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(m) => Problem::new(Kind::NotFound, format!("{m} not found")),
            ServiceError::Conflict(m) => Problem::new(Kind::Conflict, m),
            ServiceError::Invalid(m) => Problem::new(Kind::Invalid, m),
            ServiceError::Forbidden(m) => Problem::new(Kind::Forbidden, m),
            ServiceError::Stale(m) => Problem::new(Kind::PreconditionFailed, m),
            ServiceError::Unavailable(cause) => {
                tracing::error!(error = %cause, "admin API: a service failed");
                Problem::new(Kind::Unavailable, "the server failed; try again")
            }
        }
    }
}

impl From<AdminRefusal> for Problem {
    fn from(r: AdminRefusal) -> Self {
        match r {
            AdminRefusal::Unauthenticated(m) => Problem::unauthenticated(m),
            AdminRefusal::WeakSignIn => {
                let mut problem = Problem::new(Kind::Unauthenticated, r.to_string())
                    .with_challenge("insufficient_user_authentication", &r.to_string());
                // RFC 9470 §3: the levels that would do.
                if let Some(c) = &mut problem.challenge {
                    c.push_str(", acr_values=\"urn:latchkey:acr:phishing-resistant urn:latchkey:acr:mfa\"");
                }
                problem
            }
            AdminRefusal::NoRights(m) => Problem::new(Kind::Forbidden, m),
        }
    }
}
