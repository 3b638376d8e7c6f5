use latchkey_store::StoreError;

/// Why a service refused or failed. Each door maps it to its own format (OAuth error JSON,
/// an HTML page, a CLI message) in one place.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Something that must be unique is taken (a username, an email, a client id).
    #[error("{0}")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    /// The request breaks a rule (e.g. deleting a built-in scope, removing the last way to
    /// sign in).
    #[error("{0}")]
    Invalid(String),
    /// The caller may not do this (an admin right it does not hold).
    #[error("{0}")]
    Forbidden(String),
    /// The thing changed since the caller read it (`If-Match` no longer matches).
    #[error("{0}")]
    Stale(String),
    /// The database failed or holds damaged data: not the caller's fault.
    #[error("{0}")]
    Unavailable(String),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ServiceError::Conflict(m),
            StoreError::NotFound(m) => ServiceError::NotFound(m),
            StoreError::Invalid(m) => ServiceError::Invalid(m),
            StoreError::Stale(m) => ServiceError::Stale(m),
            other => ServiceError::Unavailable(other.to_string()),
        }
    }
}
