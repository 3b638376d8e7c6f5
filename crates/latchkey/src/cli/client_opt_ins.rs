//! `latchkey client create|update` options that weaken a secure default for one client:
//! each off unless set, named as such, and logged by the server at start-up.

use std::time::Duration;

use clap::Args;
use latchkey_config::MAX_REFRESH_REUSE_GRACE;
use latchkey_core::records::Client;

#[derive(Args, Default)]
pub struct OptIns {
    /// Development only: also allow plain-http redirect URIs on this machine
    /// (http://localhost[:port]/…, http://127.0.0.1[:port]/…, http://[::1][:port]/…),
    /// matched exactly, port included. `false` turns it off again.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    allow_insecure_redirect_uris: Option<bool>,
    /// A rotated refresh token presented again within this time (e.g. 5s, at most 5m) is
    /// refused without revoking its family, instead of tokens.refresh_reuse_grace
    /// (default 0s: any reuse revokes). For a browser app that refreshes from several tabs;
    /// a thief who rotates first keeps the live token if the real client comes back within
    /// it. `default` goes back to tokens.refresh_reuse_grace.
    #[arg(long, value_name = "DURATION|default", value_parser = parse_grace)]
    refresh_reuse_grace: Option<Grace>,
}

/// A per-client grace in whole seconds, or `None` for the server-wide setting.
#[derive(Clone, Copy)]
pub struct Grace(Option<i64>);

fn parse_grace(raw: &str) -> Result<Grace, String> {
    if raw == "default" {
        return Ok(Grace(None));
    }
    let d = latchkey_core::duration::parse(raw)?;
    if d.subsec_nanos() != 0 {
        return Err(format!("`{raw}` is not a whole number of seconds"));
    }
    if d > MAX_REFRESH_REUSE_GRACE {
        return Err(format!("`{raw}` is longer than 5m: a longer window is one a thief could use"));
    }
    i64::try_from(d.as_secs()).map(|s| Grace(Some(s))).map_err(|e| e.to_string())
}

impl OptIns {
    /// Whether the client may register development redirect URIs once these options apply.
    pub fn insecure_redirects(&self, current: bool) -> bool {
        self.allow_insecure_redirect_uris.unwrap_or(current)
    }

    /// The change to store: `None` leaves the setting as it is.
    pub fn insecure_redirects_change(&self) -> Option<bool> {
        self.allow_insecure_redirect_uris
    }

    /// The client's grace at creation: `None` is the server-wide one.
    pub fn grace(&self) -> Option<i64> {
        self.refresh_reuse_grace.and_then(|g| g.0)
    }

    /// The change to store: `None` leaves it, `Some(None)` goes back to the server-wide one.
    pub fn grace_change(&self) -> Option<Option<i64>> {
        self.refresh_reuse_grace.map(|g| g.0)
    }
}

/// The lines `client show` adds for these settings.
pub fn describe(c: &Client) -> String {
    let mut out = String::new();
    if c.allow_insecure_redirect_uris {
        out += "redirects:      plain http on this machine allowed (allow_insecure_redirect_uris; development only)\n";
    }
    if let Some(s) = c.refresh_reuse_grace {
        let grace = latchkey_core::duration::format(Duration::from_secs(s.unsigned_abs()));
        out += &format!("reuse grace:    {grace} (refresh tokens; instead of tokens.refresh_reuse_grace)\n");
    }
    out
}

/// Every setting that weakens a default for this client, for `client list`.
pub fn summary(c: &Client) -> String {
    let mut on = Vec::new();
    if c.allow_insecure_no_pkce {
        on.push("no-pkce".to_owned());
    }
    if c.allow_legacy_assertion_audience {
        on.push("legacy-assertion-audience".to_owned());
    }
    if c.allow_insecure_redirect_uris {
        on.push("insecure-redirect-uris".to_owned());
    }
    if let Some(s) = c.refresh_reuse_grace {
        on.push(format!("reuse-grace={}", latchkey_core::duration::format(Duration::from_secs(s.unsigned_abs()))));
    }
    if on.is_empty() { "-".to_owned() } else { on.join(",") }
}
