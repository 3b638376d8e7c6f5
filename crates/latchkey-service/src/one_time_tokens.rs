//! Single-use tokens sent to people inside links (and, later, as codes): random, stored only
//! as a keyed hash bound to their purpose, short-lived, and used up by the one statement that
//! consumes them. A link's token is never used by opening the link: the page it opens only
//! looks ([`peek`]); the page's POST uses it, so mail scanners that fetch links cannot.

use std::time::Duration;

use latchkey_core::crypto::TokenHash;
use latchkey_core::domain::{SubjectId, TenantId};
use latchkey_core::records::{NewOneTimeToken, OneTimeToken};

use crate::{Latchkey, ServiceResult};

/// A token made for a message: the token itself (for the link) and what to store.
pub(crate) struct Minted {
    pub token: String,
    pub stored: NewOneTimeToken,
}

pub(crate) fn mint(services: &Latchkey, purpose: &str, sub: &SubjectId, detail: &str, lifetime: Duration) -> Minted {
    let token = latchkey_core::crypto::random::token_string::<32>();
    let stored = NewOneTimeToken {
        hash: services.token_hasher.hash(purpose, &token),
        purpose: purpose.to_owned(),
        sub: sub.clone(),
        detail: detail.to_owned(),
        expires_at: services.clock.now().plus(lifetime),
    };
    Minted { token, stored }
}

/// The stored form of a token given back in a link; `None` for anything that cannot be one
/// of ours (so nothing malformed reaches the database).
pub(crate) fn hash_given(services: &Latchkey, purpose: &str, given: &str) -> Option<TokenHash> {
    let plausible =
        (16..=128).contains(&given.len()) && given.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plausible.then(|| services.token_hasher.hash(purpose, given))
}

/// The unused, unexpired token `given` for `purpose`, without using it.
pub(crate) async fn peek(
    services: &Latchkey,
    tenant: &TenantId,
    purpose: &str,
    given: &str,
) -> ServiceResult<Option<OneTimeToken>> {
    let Some(hash) = hash_given(services, purpose, given) else { return Ok(None) };
    Ok(services.store().peek_one_time_token(tenant, &hash, purpose, services.clock.now()).await?)
}

/// A link's path and query under the public URL, with the token.
pub(crate) fn link(services: &Latchkey, path: &str, token: &str) -> String {
    format!("{}{path}?token={token}", services.issuer)
}

/// The purpose of every token sent to a person, named once here, below every module that
/// mints them, so that "this wasn't me" ([`crate::security_notices`]) can retire them all.
pub mod purpose {
    pub const EMAIL_VERIFICATION: &str = "email_verification";
    pub const PHONE_VERIFICATION: &str = "phone_verification";
    pub const SIGN_IN_CODE: &str = "sign_in_code";
    pub const SIGN_IN_LINK: &str = "sign_in_link";
    pub const RECOVERY_LINK: &str = "recovery_link";
    pub const RECOVERY_CODE: &str = "recovery_code";
    pub const RECOVERY_DELAYED: &str = "recovery_delayed";
    pub const RECOVERY_CANCEL: &str = "recovery_cancel";
    pub const RECOVERY_SESSION: &str = "recovery_session";
    pub const NOT_ME: &str = "not_me";
    /// Not sent: a browser the account signed in from (for new-device notices).
    pub const KNOWN_DEVICE: &str = "known_device";
    pub const ALL: [&str; 11] = [
        EMAIL_VERIFICATION,
        PHONE_VERIFICATION,
        SIGN_IN_CODE,
        SIGN_IN_LINK,
        RECOVERY_LINK,
        RECOVERY_CODE,
        RECOVERY_DELAYED,
        RECOVERY_CANCEL,
        RECOVERY_SESSION,
        NOT_ME,
        KNOWN_DEVICE,
    ];
}
