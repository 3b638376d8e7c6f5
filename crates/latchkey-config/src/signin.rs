//! The sign-in sections of `latchkey.toml`: `[passkeys]` and `[registration]`.

use std::time::Duration;

use latchkey_core::duration::serde_human;
use serde::{Deserialize, Serialize};
use url::Url;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasskeysConfig {
    /// The WebAuthn relying-party id: a domain, the host of `server.public_url` or a parent
    /// of it. Passkeys are bound to it: changing it later makes every passkey unusable.
    pub rp_id: Option<String>,
    /// The name authenticators show next to the passkey.
    pub rp_name: String,
    /// Origins besides `server.public_url`'s that may use the passkeys (e.g. a second host
    /// name of the same site). Each must be on `rp_id` or a subdomain of it.
    pub extra_origins: Vec<Url>,
    /// How long a WebAuthn challenge stays valid.
    #[serde(with = "serde_human")]
    pub challenge_lifetime: Duration,
}

impl Default for PasskeysConfig {
    fn default() -> Self {
        Self {
            rp_id: None,
            rp_name: "Latchkey".into(),
            extra_origins: Vec::new(),
            challenge_lifetime: Duration::from_secs(300),
        }
    }
}

/// Who may create an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationMode {
    /// Only the CLI creates accounts.
    #[default]
    Closed,
    /// Anyone may sign up.
    Open,
    /// Sign-up needs an invitation link (`latchkey invite create`).
    Invite,
}

/// Whether sign-up asks for an email address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailAtSignUp {
    #[default]
    Optional,
    Required,
}

/// What people type to say who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Identifier {
    /// A username (public, chosen at sign-up).
    #[default]
    Username,
    /// An email address; the username is generated and never shown.
    Email,
    /// Either.
    Both,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationConfig {
    pub mode: RegistrationMode,
    pub email: EmailAtSignUp,
    pub identifier: Identifier,
    /// How long an invitation link made by `latchkey invite create` stays valid by default.
    #[serde(with = "serde_human")]
    pub invitation_lifetime: Duration,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self {
            mode: RegistrationMode::Closed,
            email: EmailAtSignUp::Optional,
            identifier: Identifier::Username,
            invitation_lifetime: Duration::from_secs(7 * 24 * 3_600),
        }
    }
}
