//! How a person proved who they are: the factors of a sign-in, and what they are worth as
//! `amr` (RFC 8176) and `acr` values.
//!
//! Only what the server can honestly know is claimed: a WebAuthn user-verification flag says
//! that the authenticator verified *someone*, not whether by PIN or fingerprint, so `pin` and
//! `fpt` are never claimed.

use serde::{Deserialize, Serialize};

/// One factor a sign-in used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Factor {
    Password,
    /// A TOTP code from an authenticator app.
    Totp,
    /// A single-use recovery code.
    RecoveryCode,
    /// A code texted to the account's verified phone (`login.sms_second_factor`).
    Sms,
    /// A single-use link emailed to the account's verified address (`login.email_link`).
    EmailLink,
    /// A sign-in at an upstream identity provider (`[federation]`): what it took there is
    /// not known here.
    Federated,
    /// A passkey; `synced` is its backup-eligible flag, `user_verified` its UV flag.
    Passkey {
        synced: bool,
        user_verified: bool,
    },
}

/// The authentication context classes Latchkey issues, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AuthLevel {
    /// A sign-in at an upstream identity provider, and nothing here: whatever the upstream
    /// asked for is not known, so it counts for less than a factor of Latchkey's own.
    Federated,
    /// One knowledge factor: a password, or a recovery code.
    SingleFactor,
    /// Two independent factors, or a user-verified passkey.
    MultiFactor,
    /// A passkey: bound to this site's origin, so it cannot be phished.
    PhishingResistant,
}

impl AuthLevel {
    /// Every level; new ones are added at the end (a forward-auth cookie names a level by
    /// its position here).
    pub const ALL: [AuthLevel; 4] =
        [AuthLevel::SingleFactor, AuthLevel::MultiFactor, AuthLevel::PhishingResistant, AuthLevel::Federated];

    /// The `acr` value (published in discovery as `acr_values_supported`).
    pub fn acr(self) -> &'static str {
        match self {
            AuthLevel::Federated => "urn:latchkey:acr:federated",
            AuthLevel::SingleFactor => "urn:latchkey:acr:password",
            AuthLevel::MultiFactor => "urn:latchkey:acr:mfa",
            AuthLevel::PhishingResistant => "urn:latchkey:acr:phishing-resistant",
        }
    }

    /// The level an `acr` value names; `None` for values Latchkey does not issue.
    pub fn from_acr(acr: &str) -> Option<AuthLevel> {
        Self::ALL.into_iter().find(|l| l.acr() == acr)
    }

    /// The weakest level that satisfies a request for any of `acr_values` (OIDC Core
    /// §3.1.2.1: the values are in order of preference, any one of them will do); `None`
    /// when none is known.
    pub fn weakest_of<'a>(acr_values: impl IntoIterator<Item = &'a str>) -> Option<AuthLevel> {
        acr_values.into_iter().filter_map(Self::from_acr).min()
    }

    /// Whether a session at `self` satisfies a requirement of `required`.
    pub fn satisfies(self, required: AuthLevel) -> bool {
        self >= required
    }
}

/// The factors of one sign-in, in the order they were used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Factors(Vec<Factor>);

impl Factors {
    pub fn new(first: Factor) -> Self {
        Self(vec![first])
    }

    pub fn with(mut self, next: Factor) -> Self {
        if !self.0.contains(&next) {
            self.0.push(next);
        }
        self
    }

    pub fn as_slice(&self) -> &[Factor] {
        &self.0
    }

    fn passkey(&self) -> Option<(bool, bool)> {
        self.0.iter().find_map(|f| match f {
            Factor::Passkey { synced, user_verified } => Some((*synced, *user_verified)),
            _ => None,
        })
    }

    /// Two independent factors: something known (password) plus something held (TOTP
    /// device, passkey), or a passkey whose authenticator verified the user.
    pub fn is_multi_factor(&self) -> bool {
        // An upstream sign-in stands where a password would: the first of two.
        let knows = self.0.contains(&Factor::Password) || self.0.contains(&Factor::Federated);
        let holds = self.0.iter().any(|f| matches!(f, Factor::Totp | Factor::Sms | Factor::Passkey { .. }));
        let verified_passkey = self.passkey().is_some_and(|(_, uv)| uv);
        (knows && holds) || verified_passkey
    }

    /// The `amr` values (RFC 8176) of this sign-in.
    pub fn amr(&self) -> Vec<String> {
        let mut amr: Vec<&str> = Vec::new();
        for f in &self.0 {
            let method = match f {
                Factor::Password => "pwd",
                // A one-time secret, delivered by email (RFC 8176 has no closer value).
                Factor::Totp | Factor::RecoveryCode | Factor::EmailLink => "otp",
                Factor::Sms => "sms",
                // Not in the RFC 8176 registry; the common convention for a federated sign-in.
                Factor::Federated => "fed",
                Factor::Passkey { synced: false, .. } => "hwk",
                Factor::Passkey { synced: true, .. } => "swk",
            };
            if !amr.contains(&method) {
                amr.push(method);
            }
        }
        if self.passkey().is_some() {
            // Every WebAuthn assertion carries the user-presence flag.
            amr.push("user");
        }
        if self.is_multi_factor() {
            amr.push("mfa");
        }
        amr.into_iter().map(str::to_owned).collect()
    }

    /// The authentication context class this sign-in reached.
    pub fn level(&self) -> AuthLevel {
        if self.passkey().is_some() && self.is_multi_factor() {
            AuthLevel::PhishingResistant
        } else if self.is_multi_factor() {
            AuthLevel::MultiFactor
        } else if self.0.contains(&Factor::Federated) {
            AuthLevel::Federated
        } else {
            AuthLevel::SingleFactor
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_alone_is_single_factor() {
        let f = Factors::new(Factor::Password);
        assert_eq!(f.amr(), ["pwd"]);
        assert_eq!(f.level(), AuthLevel::SingleFactor);
    }

    #[test]
    fn a_password_and_totp_is_multi_factor() {
        let f = Factors::new(Factor::Password).with(Factor::Totp);
        assert_eq!(f.amr(), ["pwd", "otp", "mfa"]);
        assert_eq!(f.level(), AuthLevel::MultiFactor);
    }

    #[test]
    fn a_password_and_a_texted_code_is_multi_factor_and_says_sms() {
        let f = Factors::new(Factor::Password).with(Factor::Sms);
        assert_eq!(f.amr(), ["pwd", "sms", "mfa"]);
        assert_eq!(f.level(), AuthLevel::MultiFactor);
        assert_eq!(Factors::new(Factor::Sms).level(), AuthLevel::SingleFactor);
    }

    #[test]
    fn an_emailed_link_alone_is_one_factor() {
        let f = Factors::new(Factor::EmailLink);
        assert_eq!(f.amr(), ["otp"]);
        assert_eq!(f.level(), AuthLevel::SingleFactor);
    }

    #[test]
    fn a_recovery_code_alone_is_one_factor_and_with_a_password_still_only_knowledge() {
        assert_eq!(Factors::new(Factor::RecoveryCode).amr(), ["otp"]);
        assert_eq!(Factors::new(Factor::RecoveryCode).level(), AuthLevel::SingleFactor);
        let both = Factors::new(Factor::Password).with(Factor::RecoveryCode);
        assert_eq!(both.amr(), ["pwd", "otp"]);
        assert_eq!(both.level(), AuthLevel::SingleFactor);
    }

    #[test]
    fn passkeys_say_device_bound_or_synced_and_never_pin_or_fingerprint() {
        let fed = Factors::new(Factor::Federated);
        assert_eq!(fed.amr(), ["fed"]);
        assert_eq!(fed.level(), AuthLevel::Federated);
        assert!(!AuthLevel::Federated.satisfies(AuthLevel::SingleFactor), "asks for a local step up");
        let stepped = fed.clone().with(Factor::Totp);
        assert_eq!(stepped.amr(), ["fed", "otp", "mfa"]);
        assert_eq!(stepped.level(), AuthLevel::MultiFactor);
        let with_passkey = fed.with(Factor::Passkey { synced: false, user_verified: true });
        assert_eq!(with_passkey.level(), AuthLevel::PhishingResistant);
        assert_eq!(AuthLevel::from_acr("urn:latchkey:acr:federated"), Some(AuthLevel::Federated));
        let bound = Factors::new(Factor::Passkey { synced: false, user_verified: true });
        assert_eq!(bound.amr(), ["hwk", "user", "mfa"]);
        assert_eq!(bound.level(), AuthLevel::PhishingResistant);
        let synced = Factors::new(Factor::Passkey { synced: true, user_verified: true });
        assert_eq!(synced.amr(), ["swk", "user", "mfa"]);
        let presence_only = Factors::new(Factor::Passkey { synced: false, user_verified: false });
        assert_eq!(presence_only.amr(), ["hwk", "user"]);
        assert_eq!(presence_only.level(), AuthLevel::SingleFactor);
        assert!(!bound.amr().iter().any(|m| m == "pin" || m == "fpt"));
    }

    #[test]
    fn a_password_then_a_passkey_is_phishing_resistant() {
        let f = Factors::new(Factor::Password).with(Factor::Passkey { synced: true, user_verified: false });
        assert_eq!(f.amr(), ["pwd", "swk", "user", "mfa"]);
        assert_eq!(f.level(), AuthLevel::PhishingResistant);
    }

    #[test]
    fn acr_values_map_to_levels_and_order() {
        for level in AuthLevel::ALL {
            assert_eq!(AuthLevel::from_acr(level.acr()), Some(level));
        }
        assert_eq!(AuthLevel::from_acr("urn:other"), None);
        assert_eq!(
            AuthLevel::weakest_of(["urn:latchkey:acr:phishing-resistant", "urn:latchkey:acr:mfa"]),
            Some(AuthLevel::MultiFactor)
        );
        assert_eq!(AuthLevel::weakest_of(["urn:other"]), None);
        assert!(AuthLevel::PhishingResistant.satisfies(AuthLevel::MultiFactor));
        assert!(!AuthLevel::SingleFactor.satisfies(AuthLevel::MultiFactor));
    }
}
