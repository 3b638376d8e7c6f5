//! Why a recovery step was refused, and how the errors beneath turn into it.

use crate::ServiceError;
use crate::message_limits::Limited;

/// Why a recovery step was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum RecoveryRefusal {
    /// The link is unknown, used or expired; the session is over or was used; the account
    /// is locked or no longer has the address.
    Gone,
    /// A code was wrong (counted).
    WrongCode,
    /// Too many attempts or messages lately.
    TooMany,
    /// The step does not fit the session (a passkey before the second factor, a code where
    /// none is asked for, completing before the delay is over).
    NotNow,
    /// The recovery was cancelled (from the link sent to the address, the security page, or
    /// a sign-in during the delay).
    Cancelled,
    /// The new password breaks a rule (what it says).
    Password(String),
    Unavailable(String),
}

impl From<ServiceError> for RecoveryRefusal {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(_) => RecoveryRefusal::Gone,
            other => RecoveryRefusal::Unavailable(other.to_string()),
        }
    }
}

impl From<latchkey_store::StoreError> for RecoveryRefusal {
    fn from(e: latchkey_store::StoreError) -> Self {
        ServiceError::from(e).into()
    }
}

impl From<Limited> for RecoveryRefusal {
    fn from(l: Limited) -> Self {
        match l {
            Limited::TooMany => RecoveryRefusal::TooMany,
            Limited::Unavailable => RecoveryRefusal::Unavailable("the message limits cannot be reached".into()),
        }
    }
}
