//! An account at an upstream identity provider, linked to a Latchkey user.

use crate::UnixTime;
use crate::domain::{ProviderId, SubjectId, UpstreamSubject};

/// A link: signing in at `provider` as `subject` signs in as `sub`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedIdentity {
    pub provider: ProviderId,
    pub subject: UpstreamSubject,
    pub sub: SubjectId,
    /// The address the upstream gave at the last sign-in, for the owner to recognise the
    /// link by (never used to find an account).
    pub email: Option<String>,
    pub linked_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
}

#[derive(Debug, Clone)]
pub struct NewFederatedIdentity {
    pub provider: ProviderId,
    pub subject: UpstreamSubject,
    pub sub: SubjectId,
    pub email: Option<String>,
}
