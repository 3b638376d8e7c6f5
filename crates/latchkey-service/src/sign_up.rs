//! Creating an account with a passkey and no password (`registration.mode` = `open`, or
//! `invite` with a link from `latchkey invite create`): who may sign up, what the account
//! is called, how many accounts one address may create, and the account itself with its
//! first passkey, recovery codes and the use of the invitation in one transaction.
//!
//! An address given at sign-up is unverified; with mail configured, a link to verify it
//! is sent at once.
//!
//! What sign-up may reveal: a taken username is reported (usernames are public). An email
//! address is never reported as taken: an unverified address claims nothing.

use std::net::IpAddr;

use latchkey_config::{EmailAtSignUp, Identifier, RegistrationMode};
use latchkey_core::crypto::TokenHash;
use latchkey_core::domain::{Email, SubjectId, TenantId, Username};
use latchkey_core::records::{Actor, NewAccount, User};

use crate::{Latchkey, ServiceResult};

/// Why a sign-up is refused. Each door says it in its own words.
#[derive(Debug, PartialEq, Eq)]
pub enum SignUpRefusal {
    /// `registration.mode = "closed"`.
    Closed,
    /// `registration.mode = "invite"` and no invitation came with the request.
    InvitationNeeded,
    /// The invitation has been used, has expired or does not exist.
    InvitationUnusable,
    /// This address created as many accounts as `login.max_failures_per_ip` within the
    /// failure window.
    TooManyFromHere,
    /// Accounts are identified by email (or an email is required) and none was given.
    EmailRequired,
    EmailMalformed,
    /// Not a username (1–64 letters, digits, dots, dashes or underscores, no `@`).
    UsernameMalformed,
    UsernameTaken,
}

pub struct SignUp<'a>(pub(crate) &'a Latchkey);

impl SignUp<'_> {
    /// Whether a request may sign up, with the invitation link's token if it has one.
    /// Returns the invitation's hash when one is needed (it is used up with the account).
    pub async fn admission(&self, tenant: &TenantId, invite: Option<&str>) -> Result<Option<TokenHash>, SignUpRefusal> {
        let services = self.0;
        match services.config.registration.mode {
            RegistrationMode::Closed => Err(SignUpRefusal::Closed),
            RegistrationMode::Open => Ok(None),
            RegistrationMode::Invite => {
                let Some(token) = invite.filter(|t| !t.is_empty() && t.len() <= 64) else {
                    return Err(SignUpRefusal::InvitationNeeded);
                };
                let hash = services.invitations().hash(token);
                match services.invitations().usable(tenant, &hash, services.clock.now()).await {
                    Ok(true) => Ok(Some(hash)),
                    _ => Err(SignUpRefusal::InvitationUnusable),
                }
            }
        }
    }

    /// Whether sign-up asks for an email address.
    pub fn email_required(&self) -> bool {
        let registration = &self.0.config.registration;
        registration.identifier == Identifier::Email || registration.email == EmailAtSignUp::Required
    }

    /// Whether sign-up asks for a username (not when accounts are known by email alone).
    pub fn asks_username(&self) -> bool {
        self.0.config.registration.identifier != Identifier::Email
    }

    /// Whether `ip` may start another sign-up: each account created counts against its
    /// address like a failed sign-in, within the same window and limit.
    pub async fn allowed_from(&self, tenant: &TenantId, ip: IpAddr) -> Result<(), SignUpRefusal> {
        let services = self.0;
        let (now, window) = (services.clock.now(), services.config.login.failure_window);
        let key = ip_key(services, ip);
        let recent = services.sign_in().failures(tenant, &[key.as_str()], now, window).await.ok();
        let recent = recent.and_then(|counts| counts.first().copied()).unwrap_or(0);
        if recent >= i64::from(services.config.login.max_failures_per_ip) {
            return Err(SignUpRefusal::TooManyFromHere);
        }
        Ok(())
    }

    /// What the new account is called: the username typed (or one made up when accounts
    /// are known by email alone) and the email address, if given or required. A taken
    /// username is refused here, and again when the account is created.
    pub async fn identity(
        &self,
        tenant: &TenantId,
        username: Option<&str>,
        email: Option<&str>,
    ) -> Result<(Username, Option<Email>), SignUpRefusal> {
        let email = match email.map(str::trim).filter(|e| !e.is_empty()) {
            None if self.email_required() => return Err(SignUpRefusal::EmailRequired),
            None => None,
            Some(raw) => Some(Email::parse(raw).map_err(|_| SignUpRefusal::EmailMalformed)?),
        };
        let username = if self.asks_username() {
            match Username::parse(username.unwrap_or_default()) {
                Ok(u) if !u.as_str().contains('@') => u,
                _ => return Err(SignUpRefusal::UsernameMalformed),
            }
        } else {
            // Never shown and never typed: the address is how this user is known.
            Username::parse(&format!("user-{}", &SubjectId::generate().as_str()[..16]))
                .map_err(|_| SignUpRefusal::UsernameMalformed)?
        };
        if matches!(self.0.users().by_username(tenant, &username).await, Ok(Some(_))) {
            return Err(SignUpRefusal::UsernameTaken);
        }
        Ok((username, email))
    }

    /// Creates the account with its first passkey, fresh recovery codes and the use of its
    /// invitation, all or nothing, and counts it against `ip`. Returns the user and the
    /// recovery codes, to show once.
    pub async fn create(
        &self,
        tenant: &TenantId,
        account: NewAccountRequest,
        ip: IpAddr,
    ) -> ServiceResult<(User, Vec<String>)> {
        let services = self.0;
        let (codes, hashes) = services.factors().generate_recovery_codes();
        let new = NewAccount {
            user: account.user,
            webauthn_user_id: account.webauthn_user_id,
            passkey: account.passkey,
            recovery_code_hashes: hashes,
            invitation: account.invitation,
        };
        let created = services.factors().create_account(tenant, new, &Actor::System).await?;
        let (now, window) = (services.clock.now(), services.config.login.failure_window);
        if let Err(e) = services.sign_in().record_failure(tenant, &ip_key(services, ip), now, window).await {
            tracing::warn!(error = %e, "cannot count a sign-up against its address");
        }
        metrics::counter!("latchkey_signups_total").increment(1);
        // The link to prove the address goes in its own transaction: the account does not
        // depend on it, and a link that is lost can be sent again from the security page.
        if let Some(address) = created.email.clone().filter(|_| !created.email_verified)
            && services.outbox().mail_enabled()
        {
            let actor = Actor::User(created.sub.to_string());
            if let Err(e) = services.email_verification().send_link(tenant, &created, &address, Some(ip), &actor).await
            {
                tracing::warn!(error = %e, "cannot send the new account's verification link");
            }
        }
        Ok((created, codes))
    }
}

/// An account to create: the user, their WebAuthn user handle and first passkey, and the
/// invitation it uses up (if sign-up needs one).
pub struct NewAccountRequest {
    pub user: latchkey_core::records::NewUser,
    pub webauthn_user_id: String,
    pub passkey: latchkey_core::records::NewPasskey,
    pub invitation: Option<TokenHash>,
}

/// Per IP (an IPv4 address or an IPv6 /64), hashed.
fn ip_key(services: &Latchkey, ip: IpAddr) -> String {
    format!("signup-ip:{}", services.throttle_ip(ip))
}
