//! The grants of the token endpoint: the authorization code (RFC 6749 §4.1.3, OAuth 2.1),
//! the refresh token (§6) and client credentials (§4.4), and the tokens each issues. The
//! edge authenticates the client, reads the form and writes the JSON; every rule about
//! what a grant yields is here.

pub mod claims;
mod client_credentials;
mod code;
mod data;
mod minting;
mod refresh;

pub use code::{CodePresentation, CodeRequest};
pub use data::GrantData;
pub use minting::{AccessTokenRequest, IdTokenRequest, IssuedAccessToken, at_hash};

use latchkey_core::domain::ScopeName;

use crate::{Latchkey, ServiceError};

pub struct Grants<'a>(pub(crate) &'a Latchkey);

/// What a grant yields, for the token response (RFC 6749 §5.1).
#[derive(Debug)]
pub struct IssuedTokens {
    pub access_token: String,
    pub expires_in: u64,
    /// The granted scope, space-separated.
    pub scope: String,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
}

/// Why a grant issued nothing. The token endpoint answers each with its RFC 6749 §5.2 code.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// `invalid_grant`: the code or refresh token is unknown, spent, expired, revoked, for
    /// another client, or its user or session is gone.
    #[error("{0}")]
    InvalidGrant(&'static str),
    /// The user does not hold a role the client requires (at the code's issue, its
    /// exchange or a refresh): `invalid_grant` at the token endpoint, the no-access page
    /// in the browser.
    #[error("the user no longer holds a role this client requires")]
    NotAdmitted,
    /// `invalid_scope`: more than the grant or the client allows.
    #[error("{0}")]
    InvalidScope(String),
    /// `invalid_target` (RFC 8707): an unknown resource, or one that does not accept a scope.
    #[error("{0}")]
    InvalidTarget(String),
    /// A token could not be signed or a stored grant is damaged: not the client's fault.
    #[error("{context}: {detail}")]
    Internal { context: &'static str, detail: String },
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl GrantError {
    fn internal(context: &'static str, detail: impl std::fmt::Display) -> Self {
        Self::Internal { context, detail: detail.to_string() }
    }
}

/// Scopes a refresh or client-credentials request asks for: a subset of `allowed`
/// (narrowing is fine, widening is `invalid_scope`). `None` means all of `allowed`.
fn narrowed_scope(requested: Option<&[ScopeName]>, allowed: &[String]) -> Result<Vec<String>, GrantError> {
    let Some(requested) = requested else { return Ok(allowed.to_vec()) };
    let mut out: Vec<String> = Vec::with_capacity(requested.len());
    for s in requested.iter().map(ScopeName::as_str) {
        if !allowed.iter().any(|a| a == s) {
            return Err(GrantError::InvalidScope(format!("scope `{s}` was not granted")));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(raw: &[&str]) -> Vec<ScopeName> {
        raw.iter().filter_map(|s| ScopeName::parse(s).ok()).collect()
    }

    #[test]
    fn a_scope_narrows_but_never_widens() {
        let allowed = ["openid".to_owned(), "email".to_owned()];
        assert_eq!(narrowed_scope(None, &allowed).ok(), Some(allowed.to_vec()));
        let narrowed = narrowed_scope(Some(&scopes(&["email", "email"])), &allowed).ok();
        assert_eq!(narrowed, Some(vec!["email".to_owned()]));
        let widened = narrowed_scope(Some(&scopes(&["email", "phone"])), &allowed);
        assert!(matches!(widened, Err(GrantError::InvalidScope(m)) if m.contains("phone")));
    }
}
