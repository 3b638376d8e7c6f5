//! Sign-in through upstream identity providers (`[federation]`), and the rules about the
//! accounts it reaches.
//!
//! An upstream account is linked by its provider's stable key (`upstream::UpstreamAccount`'s
//! `subject`), never by an email address: a first sign-in whose address matches an account
//! here does not get into it (the "nOAuth" takeover), the owner proves the account first and
//! then links. An address that changes upstream never moves a link. A new account is made
//! only where the provider's `new_accounts` allows it.

mod github;
pub mod mapping;
mod oauth2;
mod oidc;
pub mod upstream;

use latchkey_config::{NewAccounts, ProviderConfig, ProviderKind};
use latchkey_core::domain::{Email, ProviderId, SubjectId, TenantId, UpstreamSubject};
use latchkey_core::records::{FederatedIdentity, NewFederatedIdentity, NewUser, User};

pub use upstream::{Callback, FederationError, PendingFlow, UpstreamAccount, Upstreams};

use crate::security_notices::Change;
use crate::{Actor, Latchkey, ServiceError, ServiceResult};

/// What became of making an account.
enum Made {
    Account(User),
    LinkedMeanwhile(User),
    AddressTaken(SubjectId),
}

/// Where a sign-in through an upstream leads.
#[derive(Debug)]
pub enum SignIn {
    /// The upstream account is linked: sign in as its user.
    Linked(User),
    /// A new account was made for it, and linked.
    Created(User),
    /// An account here (`sub`) has the address the provider vouches for: its owner must
    /// sign in to it and link the upstream account from there; no other account may.
    ProveAccount(SubjectId),
    /// An account here has the address, which the provider does not say is verified.
    UnverifiedMatch,
    /// Not linked, and the provider makes no account for it (the reason, for the page).
    NoAccount(String),
}

pub struct Federation<'a>(pub(crate) &'a Latchkey);

impl Federation<'_> {
    fn provider(&self, id: &ProviderId) -> ServiceResult<&ProviderConfig> {
        self.0
            .config
            .federation
            .providers
            .get(id.as_str())
            .ok_or_else(|| ServiceError::NotFound(format!("sign-in provider {id}")))
    }

    /// Counts a start of a flow from `ip` (every start can make Latchkey redeem a code at
    /// the provider when its answer comes back): at most `federation.max_starts_per_ip` per
    /// 10 minutes, so nobody can make Latchkey hammer a provider on their behalf.
    pub async fn admit_start(
        &self,
        tenant: &TenantId,
        ip: std::net::IpAddr,
    ) -> Result<(), crate::message_limits::Limited> {
        let key = format!("ip:{}", self.0.throttle_ip(ip));
        let window = std::time::Duration::from_secs(600);
        let limit = i64::from(self.0.config.federation.max_starts_per_ip);
        self.0.message_limits().reserve_keyed_within(tenant, "federation_start", &[(&key, limit)], window).await
    }

    /// The display name of a provider, or its id when it is no longer configured.
    pub fn display_name(&self, id: &ProviderId) -> String {
        self.provider(id).map_or_else(|_| id.to_string(), |p| p.name.clone())
    }

    /// Where a sign-in through `account` leads, making or updating what the rules say.
    pub async fn sign_in(&self, tenant: &TenantId, account: &UpstreamAccount) -> ServiceResult<SignIn> {
        let config = self.provider(&account.provider)?;
        let store = self.0.store();
        if let Some(link) = store.federated_identity(tenant, &account.provider, &account.subject).await? {
            let user = store
                .user_by_sub(tenant, &link.sub)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("user {}", link.sub)))?;
            if user.locked {
                return Err(ServiceError::Invalid("this account is locked".into()));
            }
            store.record_identity_use(tenant, &account.provider, &account.subject, account.email.as_deref()).await?;
            self.sync_groups(tenant, config, &user.sub, account).await?;
            return Ok(SignIn::Linked(user));
        }
        let email = account.email.as_deref().and_then(|e| Email::parse(e).ok());
        if let Some(email) = &email
            && let Some(holder) = self.holder_of(tenant, email).await?
        {
            return Ok(if account.email_verified { SignIn::ProveAccount(holder) } else { SignIn::UnverifiedMatch });
        }
        if let Err(reason) = may_make_account(config, account, email.as_ref()) {
            return Ok(SignIn::NoAccount(reason));
        }
        let user = match self.make_account(tenant, config, account, email.as_ref()).await? {
            Made::Account(user) => user,
            // The same upstream account signed in twice at once: the other made the account.
            Made::LinkedMeanwhile(user) => return Ok(SignIn::Linked(user)),
            // Another account took the address meanwhile: the same rule as above.
            Made::AddressTaken(holder) => {
                return Ok(if account.email_verified { SignIn::ProveAccount(holder) } else { SignIn::UnverifiedMatch });
            }
        };
        self.sync_groups(tenant, config, &user.sub, account).await?;
        Ok(SignIn::Created(user))
    }

    /// The account that has `email`, as given or with its local part in lower case
    /// (`Ada@x` and `ada@x` are one mailbox at every provider that matters here).
    async fn holder_of(&self, tenant: &TenantId, email: &Email) -> ServiceResult<Option<SubjectId>> {
        let store = self.0.store();
        if let Some(user) = store.user_by_email(tenant, email).await? {
            return Ok(Some(user.sub));
        }
        let lower = Email::parse(&email.as_str().to_lowercase()).ok().filter(|l| l != email);
        match lower {
            Some(lower) => Ok(store.user_by_email(tenant, &lower).await?.map(|u| u.sub)),
            None => Ok(None),
        }
    }

    /// The user's linked accounts that still sign in: at providers configured now.
    pub fn usable_links(&self, methods: &latchkey_core::records::SignInMethods) -> usize {
        methods.linked_providers.iter().filter(|p| self.0.config.federation.providers.contains_key(p.as_str())).count()
    }

    /// A new account linked to `account`, or why not after all (a sign-in at the same time
    /// linked the upstream account, or another account took the address).
    async fn make_account(
        &self,
        tenant: &TenantId,
        config: &ProviderConfig,
        account: &UpstreamAccount,
        email: Option<&Email>,
    ) -> ServiceResult<Made> {
        let mapped = mapping::profile(config, &account.claims);
        let store = self.0.store();
        let base = mapping::username_base(account.username_hint.as_deref(), email);
        let actor = Actor::System;
        for attempt in 0..20 {
            let Some(username) = mapping::username_candidate(&base, attempt) else { break };
            if store.user_by_username(tenant, &username).await?.is_some() {
                continue;
            }
            let sub = SubjectId::generate();
            let user = NewUser {
                sub: sub.clone(),
                username,
                email: email.cloned().filter(|_| account.email_verified),
                email_verified: account.email_verified && email.is_some(),
                name: mapped.name.clone(),
                profile: mapped.profile.clone(),
                password_hash: None,
                service_account: false,
            };
            let identity = NewFederatedIdentity {
                provider: account.provider.clone(),
                subject: account.subject.clone(),
                sub,
                email: account.email.clone(),
            };
            match store.create_federated_account(tenant, user, &identity, &actor).await {
                Ok(user) => return Ok(Made::Account(user)),
                Err(latchkey_store::StoreError::Conflict(_)) => {
                    if let Some(link) = store.federated_identity(tenant, &account.provider, &account.subject).await?
                        && let Some(user) = store.user_by_sub(tenant, &link.sub).await?
                    {
                        return Ok(Made::LinkedMeanwhile(user));
                    }
                    if let Some(email) = email
                        && let Some(holder) = self.holder_of(tenant, email).await?
                    {
                        return Ok(Made::AddressTaken(holder));
                    }
                    // Someone took the name in between: the next name.
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflict("no free username for the new account".into()))
    }

    /// Puts the user in the Latchkey groups and roles their upstream groups map to, and out
    /// of the mapped ones they are no longer in upstream. Groups and roles the mapping does
    /// not name are left alone.
    async fn sync_groups(
        &self,
        tenant: &TenantId,
        config: &ProviderConfig,
        sub: &SubjectId,
        account: &UpstreamAccount,
    ) -> ServiceResult<()> {
        if config.groups.is_empty() {
            return Ok(());
        }
        let upstream_groups = mapping::upstream_groups(config, &account.claims);
        let (grant, withdraw) = mapping::memberships(config, sub, &upstream_groups)?;
        let actor = Actor::System;
        let access = self.0.access();
        for link in &withdraw {
            match access.unlink(tenant, link, &actor).await {
                Ok(()) | Err(ServiceError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        for link in &grant {
            match access.link(tenant, link, &actor).await {
                Ok(_) => {}
                Err(ServiceError::NotFound(what)) => {
                    tracing::warn!(provider = %account.provider, %what, "a mapped group or role does not exist; skipped");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Links `account` to the user `sub`, who proved the account in this browser, in one
    /// transaction with the block check and the owner's notice. `Conflict` when the upstream
    /// account is linked already (to anyone), or the user has an account at that provider
    /// linked already.
    pub async fn link(&self, tenant: &TenantId, sub: &SubjectId, account: &UpstreamAccount) -> ServiceResult<()> {
        let config = self.provider(&account.provider)?;
        let actor = Actor::User(sub.to_string());
        let notices = self.0.security_notices();
        let identity = NewFederatedIdentity {
            provider: account.provider.clone(),
            subject: account.subject.clone(),
            sub: sub.clone(),
            email: account.email.clone(),
        };
        let mut tx = self.0.store().transaction().await?;
        tx.lock_user(tenant, sub).await?;
        let user = notices.may_change_in(tx.as_mut(), tenant, sub, &actor).await?;
        tx.link_identity(tenant, &identity, &actor).await.map_err(|e| match e {
            latchkey_store::StoreError::Conflict(_) => ServiceError::Conflict(format!(
                "this {} account is linked already, to this or another account; or this account has a {} account linked: unlink it first",
                config.name, config.name
            )),
            other => other.into(),
        })?;
        notices.tell(tx.as_mut(), tenant, &user, &Change::ProviderLinked(config.name.clone()), &actor).await?;
        tx.commit().await?;
        self.sync_groups(tenant, config, sub, account).await
    }

    /// Unlinks the user's account at `provider`, unless it is their last way in. Like
    /// removing a passkey, it ends the user's other sessions (all of them from the CLI):
    /// whoever signed in through the provider is out.
    pub async fn unlink(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        provider: &ProviderId,
        current_sid: Option<&str>,
        actor: &Actor,
    ) -> ServiceResult<()> {
        let name = self.display_name(provider);
        let notices = self.0.security_notices();
        let sessions = self.0.sessions();
        let how = sessions.ending("credentials_changed", false).await;
        let mut tx = self.0.store().transaction().await?;
        let methods = tx.sign_in_methods(tenant, sub).await?;
        let user = notices.may_change_in(tx.as_mut(), tenant, sub, actor).await?;
        if !methods.linked_providers.iter().any(|p| p == provider.as_str()) {
            return Err(ServiceError::NotFound(format!("a linked {name} account")));
        }
        let mut after = methods.clone();
        after.linked_providers.retain(|p| p != provider.as_str());
        if !self.has_way_in(&after) {
            return Err(ServiceError::Invalid(format!(
                "sign-in with {name} is this account's last way in: add a passkey or a password first"
            )));
        }
        tx.unlink_identity(tenant, sub, provider, actor).await?;
        if matches!(actor, Actor::User(_)) {
            notices.tell(tx.as_mut(), tenant, &user, &Change::ProviderUnlinked(name), actor).await?;
        }
        let ended = sessions.end_in(tx.as_mut(), tenant, sub, current_sid.map(str::to_owned), &how, actor).await?;
        tx.commit().await?;
        sessions.ended(&ended, &how);
        Ok(())
    }

    /// Whether `provider` is configured now (`[federation.providers]`).
    pub fn is_configured(&self, provider: &ProviderId) -> bool {
        self.provider(provider).is_ok()
    }

    /// Whether a user whose ways in would be `methods` could still sign in.
    pub fn has_way_in(&self, methods: &latchkey_core::records::SignInMethods) -> bool {
        methods.passkeys > 0 || (methods.password && self.0.config.login.passwords) || self.usable_links(methods) > 0
    }

    /// Links the account `subject` at `provider` to the user `sub` on an operator's word
    /// (`apply`), in one transaction, replacing the user's link at that provider when it
    /// names another account (which ends the user's sessions, as unlinking does). The
    /// provider must be configured. An upstream account linked to another user is
    /// `Conflict`: it is unlinked there first, never moved silently.
    pub async fn link_by_operator(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        (provider, subject): (&ProviderId, &UpstreamSubject),
        actor: &Actor,
    ) -> ServiceResult<()> {
        let config = self.provider(provider)?;
        let sessions = self.0.sessions();
        let how = sessions.ending("credentials_changed", false).await;
        let mut tx = self.0.store().transaction().await?;
        tx.lock_user(tenant, sub).await?;
        let methods = tx.sign_in_methods(tenant, sub).await?;
        let user = self.0.security_notices().may_change_in(tx.as_mut(), tenant, sub, actor).await?;
        if user.service_account {
            return Err(ServiceError::Invalid("a service account never signs in: it links no account".into()));
        }
        let replacing = methods.linked_providers.iter().any(|p| p == provider.as_str());
        if replacing {
            tx.unlink_identity(tenant, sub, provider, actor).await?;
        }
        let identity = NewFederatedIdentity {
            provider: provider.clone(),
            subject: subject.clone(),
            sub: sub.clone(),
            email: None,
        };
        tx.link_identity(tenant, &identity, actor).await.map_err(|e| match e {
            latchkey_store::StoreError::Conflict(_) => ServiceError::Conflict(format!(
                "this {} account is linked to another account: unlink it there first",
                config.name
            )),
            other => other.into(),
        })?;
        let ended = match replacing {
            true => Some(sessions.end_in(tx.as_mut(), tenant, sub, None, &how, actor).await?),
            false => None,
        };
        tx.commit().await?;
        if let Some(ended) = ended {
            sessions.ended(&ended, &how);
        }
        Ok(())
    }

    /// The user's linked upstream accounts.
    pub async fn identities(&self, tenant: &TenantId, sub: &SubjectId) -> ServiceResult<Vec<FederatedIdentity>> {
        Ok(self.0.store().federated_identities(tenant, sub).await?)
    }
}

/// Providers that stored links name but `config` no longer has, with how many links each
/// (for `check-config`). Reads the database as it is: nothing is migrated or created.
pub async fn orphaned_links(config: &latchkey_config::Config, tenant: &TenantId) -> Result<Vec<(String, u64)>, String> {
    let location = config.database().map_err(|e| e.to_string())?;
    let store = latchkey_store::open(&location.store_url(), 1, latchkey_core::Clock::system())
        .await
        .map_err(|e| e.to_string())?;
    let linked = store.linked_providers(tenant).await;
    store.close().await;
    let linked = linked.map_err(|e| e.to_string())?;
    Ok(linked.into_iter().filter(|(p, _)| !config.federation.providers.contains_key(p)).collect())
}

/// Whether the provider's `new_accounts` lets `account` have a new account: `Err` says why not.
fn may_make_account(config: &ProviderConfig, account: &UpstreamAccount, email: Option<&Email>) -> Result<(), String> {
    match config.new_accounts {
        NewAccounts::Off => Err(format!(
            "No account here is linked to this {} account, and accounts are not made through it. Sign in another way and link it from your security page, or ask the people who run this server.",
            config.name
        )),
        NewAccounts::On => Ok(()),
        NewAccounts::ListedDomains => {
            let domain = email
                .filter(|_| account.email_verified)
                .map(|e| e.as_str().rsplit('@').next().unwrap_or_default().to_ascii_lowercase());
            let Some(domain) = domain.filter(|d| config.account_domains.iter().any(|a| a.eq_ignore_ascii_case(d)))
            else {
                return Err(format!(
                    "Accounts are made through {} only for verified addresses of listed domains.",
                    config.name
                ));
            };
            // Google vouches for a domain only through `hd`: a Gmail account may carry a
            // verified address of any domain (whatever `kind` names Google's issuer).
            let google = config.kind == ProviderKind::Google
                || config.oidc_issuer().is_some_and(|i| i.trim_end_matches('/') == latchkey_config::GOOGLE_ISSUER);
            if google && !account.hosted_domain.as_deref().is_some_and(|hd| hd.eq_ignore_ascii_case(&domain)) {
                return Err(format!(
                    "Accounts are made through {} only for accounts of the organisation that owns the address.",
                    config.name
                ));
            }
            Ok(())
        }
    }
}
