//! Signing in with a password: the account a typed name means, the check within the
//! attempt limits, and the hash renewed at today's parameters once the password is right.
//!
//! No user enumeration: an unknown account, one without a password, a wrong password and a
//! locked account get one answer, after the same work (a dummy Argon2 verification when
//! there is no hash to check).

use std::net::IpAddr;

use latchkey_config::Identifier;
use latchkey_core::crypto::PasswordHash;
use latchkey_core::domain::{Email, TenantId, TypedPassword, Username};
use latchkey_core::records::User;

use crate::sign_in::{Account, Admission, Guess, SignIn};

/// Why a password sign-in is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum PasswordRefusal {
    /// No such account, no password, a wrong one, or a locked account: one answer for all.
    Wrong,
    /// The account's or the address's limit is reached.
    Throttled,
    /// The attempt counters cannot be reached.
    Unavailable,
}

impl SignIn<'_> {
    /// The account a name typed at sign-in means: a verified email address (an unverified
    /// one names nobody), else a username unless accounts are identified by email only.
    pub async fn account_named(&self, tenant: &TenantId, typed: &str) -> Option<User> {
        let services = self.0;
        let typed = typed.trim();
        if typed.contains('@')
            && let Ok(email) = Email::parse(typed)
            && let Ok(Some(u)) = services.users().by_email(tenant, &email).await
            && u.email_verified
        {
            return Some(u);
        }
        if services.config.registration.identifier == Identifier::Email {
            return None;
        }
        match Username::parse(typed) {
            Ok(u) => services.users().by_username(tenant, &u).await.ok().flatten(),
            Err(_) => None,
        }
    }

    /// Checks a typed name and password within the attempt limits: the attempt is
    /// reserved before the hash is verified. Returns the user when right; a hash made with
    /// other parameters than today's is then replaced.
    pub async fn with_password(
        &self,
        tenant: &TenantId,
        typed: &str,
        password: TypedPassword,
        ip: IpAddr,
    ) -> Result<User, PasswordRefusal> {
        let services = self.0;
        let user = self.account_named(tenant, typed).await;
        let account = user.as_ref().map_or(Account::Unknown(typed), |u| Account::Known(&u.sub));
        let attempt = match self.reserve(tenant, Guess::Password, account, ip).await {
            Admission::Allowed(attempt) => attempt,
            Admission::Refused => {
                metrics::counter!("latchkey_logins_total", "outcome" => "throttled").increment(1);
                return Err(PasswordRefusal::Throttled);
            }
            Admission::Unavailable => return Err(PasswordRefusal::Unavailable),
        };
        let stored = user.as_ref().and_then(|u| u.password_hash.clone()).map(PasswordHash::from_stored);
        let matches = services.passwords.verify_or_pretend(password.clone().into_string(), stored.clone()).await;
        match (user, stored) {
            (Some(u), Some(stored)) if matches.unwrap_or(false) && !u.locked => {
                self.succeeded(tenant, attempt).await;
                self.upgrade_hash(tenant, &u, &stored, password).await;
                Ok(u)
            }
            _ => {
                attempt.failed();
                metrics::counter!("latchkey_logins_total", "outcome" => "failed").increment(1);
                Err(PasswordRefusal::Wrong)
            }
        }
    }

    /// After a right password: a hash made with other parameters than today's (weaker
    /// ones from an older configuration, or another system's) is replaced by one at
    /// today's, the only time the password is at hand. A failure is logged and the sign-in
    /// goes on: the old hash still works.
    async fn upgrade_hash(&self, tenant: &TenantId, user: &User, stored: &PasswordHash, password: TypedPassword) {
        let services = self.0;
        if !services.passwords.policy().needs_rehash(stored) {
            return;
        }
        let upgraded = match services.passwords.hash(password.into_string()).await {
            Ok(new) => services.users().upgrade_password_hash(tenant, &user.sub, stored.as_str(), new.as_str()).await,
            Err(e) => {
                tracing::warn!(error = %e, sub = %user.sub, "cannot rehash a password at today's parameters");
                return;
            }
        };
        match upgraded {
            Ok(true) => {
                tracing::info!(sub = %user.sub, "password rehashed at today's parameters");
                metrics::counter!("latchkey_password_rehashes_total").increment(1);
            }
            // The password was changed meanwhile: the new one stands.
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, sub = %user.sub, "cannot store a rehashed password"),
        }
    }
}
