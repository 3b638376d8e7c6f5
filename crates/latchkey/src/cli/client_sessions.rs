//! `latchkey client create|update` options for sessions and logout (the client's
//! `ClientSessionPolicy`).

use std::time::Duration;

use clap::Args;
use latchkey_core::domain::{ClientSessionPolicy, LogoutUri, SessionPolicyChange};

use super::CliError;

#[derive(Args, Default)]
pub struct SessionSettings {
    /// Front-Channel Logout: loaded in a hidden iframe, with `iss` and `sid`, when a session
    /// this client signed into ends in the browser. Scheme, host and port of a redirect URI.
    /// `""` removes it.
    #[arg(long, value_name = "URI")]
    frontchannel_logout_uri: Option<String>,
    /// The client needs `iss` and `sid` on its front-channel logout URI (always sent).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    frontchannel_logout_session_required: Option<bool>,
    /// Back-Channel Logout: receives a logout token by POST when a session it signed into
    /// ends, wherever it ends (browser, account page, CLI). `""` removes it.
    #[arg(long, value_name = "URI")]
    backchannel_logout_uri: Option<String>,
    /// The client needs `sid` in logout tokens (always sent).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    backchannel_logout_session_required: Option<bool>,
    /// Logout revokes this client's offline_access refresh tokens too (by default they
    /// survive logout). Applies to tokens issued from now on.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    logout_revokes_offline_tokens: Option<bool>,
    /// Require a sign-in no older than this (e.g. 1h) when a request has no max_age; 0s removes it.
    #[arg(long, value_name = "DURATION", value_parser = latchkey_core::duration::parse)]
    default_max_age: Option<Duration>,
    /// Issue refresh tokens without offline_access, bound to the session (they end with it).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    session_refresh_tokens: Option<bool>,
    /// Sign-ins for this client need two factors or a user-verified passkey (step-up if not).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    require_mfa: Option<bool>,
    /// Sign-ins for this client need a passkey (phishing-resistant), e.g. for admin tools.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    require_passkey: Option<bool>,
}

fn logout_uri(flag: &str, raw: &Option<String>) -> Result<Option<Option<LogoutUri>>, CliError> {
    match raw.as_deref() {
        None => Ok(None),
        Some("") => Ok(Some(None)),
        Some(u) => LogoutUri::parse(u).map(|u| Some(Some(u))).map_err(|e| CliError::Usage(format!("--{flag}: {e}"))),
    }
}

impl SessionSettings {
    /// `current` with these options applied (the client service checks the result against
    /// the client's redirect URIs).
    pub fn apply(&self, current: &ClientSessionPolicy) -> Result<ClientSessionPolicy, CliError> {
        let change = SessionPolicyChange {
            frontchannel_logout_uri: logout_uri("frontchannel-logout-uri", &self.frontchannel_logout_uri)?,
            frontchannel_logout_session_required: self.frontchannel_logout_session_required,
            backchannel_logout_uri: logout_uri("backchannel-logout-uri", &self.backchannel_logout_uri)?,
            backchannel_logout_session_required: self.backchannel_logout_session_required,
            logout_revokes_offline_tokens: self.logout_revokes_offline_tokens,
            default_max_age: self.default_max_age.map(|d| (!d.is_zero()).then_some(d.as_secs())),
            session_refresh_tokens: self.session_refresh_tokens,
            require_mfa: self.require_mfa,
            require_passkey: self.require_passkey,
        };
        Ok(change.applied_to(current))
    }
}

/// Lines for `client show`.
pub fn describe(p: &ClientSessionPolicy) -> String {
    let mut out = String::new();
    if let Some(u) = &p.frontchannel_logout_uri {
        out += &format!("front-channel:  {u}\n");
    }
    if let Some(u) = &p.backchannel_logout_uri {
        out += &format!("back-channel:   {u}\n");
    }
    if p.logout_revokes_offline_tokens {
        out += "logout:         revokes offline_access refresh tokens\n";
    }
    if let Some(s) = p.default_max_age {
        out += &format!("default max_age: {s}s\n");
    }
    if p.require_passkey {
        out += "sign-in:        requires a passkey\n";
    } else if p.require_mfa {
        out += "sign-in:        requires two factors\n";
    }
    if p.session_refresh_tokens {
        out += "refresh tokens: also without offline_access, bound to the session\n";
    }
    out
}
