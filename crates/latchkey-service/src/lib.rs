//! Every use case of Latchkey and every rule about it, once: the HTTP edge
//! (`latchkey-server`) and the command line (`latchkey`) call these services and never
//! the store.
//!
//! A service takes domain types, the tenant the caller resolved, and an explicit [`Actor`];
//! it enforces the rules, writes each change together with its audit event in one
//! transaction, and sets off what follows (back-channel logout deliveries, revocations on
//! this node, cache invalidation on every node through the store's change feed). It knows
//! nothing of HTTP.

use std::sync::Arc;

use latchkey_config::Config;
use latchkey_core::Clock;
use latchkey_core::crypto::{MasterKey, TokenHasher};
use latchkey_core::domain::TenantId;
use latchkey_store::Store;

mod error;

pub mod access;
pub mod access_claims;
pub mod account_retention;
pub mod admin;
pub mod api_keys;
pub mod apply;
pub mod audit;
pub mod authorization;
pub mod cache;
pub mod client_keys;
pub mod clients;
pub mod consents;
pub mod data_export;
pub mod data_keys;
pub mod email_sign_in;
pub mod email_templates;
pub mod email_verification;
pub mod erasure;
pub mod factors;
pub mod failed_sign_ins;
pub mod federation;
pub mod forward_auth;
pub mod foundation;
pub mod grants;
pub mod invitations;
pub mod jobs;
pub mod keys;
pub mod mail;
pub mod message_limits;
mod one_time_tokens;
pub mod outbound;
pub mod outbox;
pub mod passkey_sign_in;
pub mod passkeys;
pub mod password_sign_in;
pub mod passwords;
pub mod phone_verification;
pub mod recovery;
pub mod resources;
pub mod retention;
pub mod revocations;
pub mod scopes;
pub mod security_notices;
pub mod sessions;
pub mod sign_in;
pub mod sign_up;
pub mod sms;
pub mod sms_second_factor;
pub mod system;
pub mod token_verification;
pub mod tokens;
pub mod user_import;
pub mod users;
pub mod verified_tokens;

#[cfg(feature = "testing")]
pub mod testing;

pub use error::{ServiceError, ServiceResult};
pub use foundation::{Foundation, StartupError};
/// What the services take and return.
pub use latchkey_core::records;
pub use latchkey_core::records::Actor;

use crate::cache::Caches;
use crate::keys::KeyService;
use crate::passwords::PasswordHasher;
use crate::revocations::Revocations;

/// The services of one Latchkey process (a server node, or one CLI command), over one store.
pub struct Latchkey {
    store: Arc<dyn Store>,
    pub config: Arc<Config>,
    /// `server.public_url` without trailing slash: the issuer, byte for byte.
    pub issuer: Arc<str>,
    pub clock: Clock,
    pub master_key: MasterKey,
    pub token_hasher: TokenHasher,
    pub audit_keys: Arc<latchkey_core::crypto::AuditKeys>,
    pub keys: Arc<KeyService>,
    pub caches: Arc<Caches>,
    pub revocations: Arc<Revocations>,
    /// Access tokens whose signature this node already checked.
    pub verified_tokens: verified_tokens::VerifiedTokens,
    pub passwords: PasswordHasher,
    /// Wakes the back-channel logout sender when a session ends on this node.
    pub backchannel: Arc<tokio::sync::Notify>,
    /// The forward-auth rules in force on this node.
    pub forward_auth_rules: Arc<forward_auth::rules::RulesInForce>,
    /// When this node last confirmed each forward-auth session in the database.
    pub forward_auth_sessions: forward_auth::ConfirmedSessions,
    /// The mail relay's circuit on this node.
    pub mail_breaker: outbound::breaker::Breakers,
    /// The SMS API's circuit on this node.
    pub sms_breaker: outbound::breaker::Breakers,
    /// The email templates, once loaded ([`outbox::Outbox::templates`]).
    email_templates: std::sync::OnceLock<email_templates::EmailTemplates>,
    /// Held by the `apply` run under way in this process ([`apply::Apply`]).
    apply_runs: tokio::sync::Mutex<()>,
    /// The fingerprint of the consent page's text ([`consents::Consents::use_page_text`]).
    consent_page_text: std::sync::OnceLock<String>,
    /// Failed sign-ins tallied on this node until they are reported ([`failed_sign_ins`]).
    pub(crate) failed_sign_ins: Arc<failed_sign_ins::FailureTally>,
}

impl Latchkey {
    /// The services over an opened foundation, with `config` (the foundation's, possibly
    /// completed by the server with the address it bound).
    pub fn new(foundation: Foundation, config: Arc<Config>) -> Self {
        let Foundation { store, master_key, token_hasher, audit_keys, clock, .. } = foundation;
        let keys = Arc::new(KeyService::new(
            store.clone(),
            master_key.clone(),
            clock.clone(),
            config.keys.clone(),
            config.tokens.clone(),
        ));
        Self {
            caches: Arc::new(Caches::new(store.clone())),
            revocations: Arc::new(Revocations::default()),
            verified_tokens: Default::default(),
            passwords: PasswordHasher::new(config.passwords.policy(), config.passwords.max_concurrent_hashes),
            backchannel: Arc::default(),
            forward_auth_rules: Arc::default(),
            forward_auth_sessions: Default::default(),
            email_templates: std::sync::OnceLock::new(),
            apply_runs: tokio::sync::Mutex::new(()),
            consent_page_text: std::sync::OnceLock::new(),
            failed_sign_ins: Arc::default(),
            sms_breaker: outbound::breaker::Breakers::new(
                outbox::BREAKER_FAILURES,
                config.sms.as_ref().map_or(std::time::Duration::from_secs(30), |m| m.circuit_cool_down),
            ),
            mail_breaker: outbound::breaker::Breakers::new(
                outbox::BREAKER_FAILURES,
                config.mail.as_ref().map_or(std::time::Duration::from_secs(30), |m| m.circuit_cool_down),
            ),
            issuer: Arc::from(config.issuer().as_str()),
            store,
            config,
            clock,
            master_key,
            token_hasher,
            audit_keys,
            keys,
        }
    }

    pub fn users(&self) -> users::Users<'_> {
        users::Users(self)
    }
    pub fn clients(&self) -> clients::Clients<'_> {
        clients::Clients(self)
    }
    pub fn api_keys(&self) -> api_keys::ApiKeys<'_> {
        api_keys::ApiKeys(self)
    }
    pub fn outbox(&self) -> outbox::Outbox<'_> {
        outbox::Outbox(self)
    }
    pub fn email_verification(&self) -> email_verification::EmailVerification<'_> {
        email_verification::EmailVerification(self)
    }
    pub fn phone_verification(&self) -> phone_verification::PhoneVerification<'_> {
        phone_verification::PhoneVerification(self)
    }
    pub fn recovery(&self) -> recovery::Recovery<'_> {
        recovery::Recovery(self)
    }

    pub fn security_notices(&self) -> security_notices::SecurityNotices<'_> {
        security_notices::SecurityNotices(self)
    }

    pub fn email_sign_in(&self) -> email_sign_in::EmailSignIn<'_> {
        email_sign_in::EmailSignIn(self)
    }

    pub fn federation(&self) -> federation::Federation<'_> {
        federation::Federation(self)
    }

    pub fn sms_second_factor(&self) -> sms_second_factor::SmsSecondFactor<'_> {
        sms_second_factor::SmsSecondFactor(self)
    }
    pub fn message_limits(&self) -> message_limits::MessageLimits<'_> {
        message_limits::MessageLimits(self)
    }
    pub fn forward_auth(&self) -> forward_auth::ForwardAuth<'_> {
        forward_auth::ForwardAuth(self)
    }
    pub fn admin(&self) -> admin::Admin<'_> {
        admin::Admin(self)
    }
    pub fn access(&self) -> access::Access<'_> {
        access::Access(self)
    }
    pub fn apply(&self) -> apply::Apply<'_> {
        apply::Apply(self)
    }

    pub fn scopes(&self) -> scopes::Scopes<'_> {
        scopes::Scopes(self)
    }
    pub fn resources(&self) -> resources::Resources<'_> {
        resources::Resources(self)
    }
    pub fn sessions(&self) -> sessions::Sessions<'_> {
        sessions::Sessions(self)
    }
    pub fn grants(&self) -> grants::Grants<'_> {
        grants::Grants(self)
    }
    pub fn tokens(&self) -> tokens::Tokens<'_> {
        tokens::Tokens(self)
    }
    pub fn factors(&self) -> factors::Factors<'_> {
        factors::Factors(self)
    }
    pub fn invitations(&self) -> invitations::Invitations<'_> {
        invitations::Invitations(self)
    }
    pub fn sign_up(&self) -> sign_up::SignUp<'_> {
        sign_up::SignUp(self)
    }
    pub fn sign_in(&self) -> sign_in::SignIn<'_> {
        sign_in::SignIn(self)
    }
    pub fn data_export(&self) -> data_export::DataExport<'_> {
        data_export::DataExport(self)
    }
    pub fn data_keys(&self) -> data_keys::DataKeys<'_> {
        data_keys::DataKeys(self)
    }
    pub fn account_retention(&self) -> account_retention::AccountRetention<'_> {
        account_retention::AccountRetention(self)
    }
    pub fn retention(&self) -> retention::Retention<'_> {
        retention::Retention(self)
    }
    pub fn erasure(&self) -> erasure::Erasure<'_> {
        erasure::Erasure(self)
    }
    pub fn failed_sign_ins(&self) -> failed_sign_ins::FailedSignIns<'_> {
        failed_sign_ins::FailedSignIns(self)
    }
    pub fn consents(&self) -> consents::Consents<'_> {
        consents::Consents(self)
    }
    pub fn authorization(&self) -> authorization::Authorization<'_> {
        authorization::Authorization(self)
    }
    pub fn audit(&self) -> audit::Audit<'_> {
        audit::Audit(self)
    }
    pub fn system(&self) -> system::System<'_> {
        system::System(self)
    }

    /// The tenant an HTTP request belongs to. There is one tenant, `default`, whose issuer
    /// is the public URL; when tenants get their own issuers, this is the one place that
    /// tells them apart.
    pub fn request_tenant(&self) -> TenantId {
        TenantId::default_tenant()
    }

    /// `aud` of access tokens when no resource is named: `tokens.default_audience`, else
    /// the issuer (whose UserInfo endpoint accepts them).
    /// The admin API's audience, a built-in API resource: `{issuer}/admin/api/v1`.
    pub fn admin_audience(&self) -> String {
        format!("{}{}", self.issuer, latchkey_core::domain::ADMIN_API_PATH)
    }

    pub fn default_audience(&self) -> String {
        self.config.tokens.default_audience.clone().unwrap_or_else(|| self.issuer.to_string())
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }
}

/// Service methods that only hand a call to the store, where the use case has no rule of
/// its own beyond what the store's types and transaction already guarantee.
macro_rules! pass_through {
    ($( $(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty => $store_fn:ident; )*) => {
        $(
            $(#[$doc])*
            pub async fn $name(&self, $($arg: $ty),*) -> $crate::ServiceResult<$ret> {
                Ok(self.0.store().$store_fn($($arg),*).await?)
            }
        )*
    };
}
pub(crate) use pass_through;

impl Latchkey {
    /// Readies this process to serve: signing keys exist and are loaded, the web-origin
    /// cache and the revocation set are filled. Returns the change feed that keeps them
    /// current (opened meanwhile: on PostgreSQL its connection costs tens of milliseconds).
    pub async fn prepare_node(&self) -> Result<tokio::sync::mpsc::Receiver<records::Change>, StartupError> {
        let system = self.system();
        let (changes, loaded) = tokio::join!(system.watch_changes(), async {
            self.keys.ensure_keys().await.map_err(|e| StartupError::Keys(e.to_string()))?;
            self.keys.reload().await.map_err(|e| StartupError::Keys(e.to_string()))?;
            self.caches.rebuild_web_origins().await?;
            self.revocations.refresh(self.store(), self.clock.now()).await?;
            self.load_access_rules().await?;
            Ok::<_, StartupError>(())
        });
        loaded?;
        Ok(changes?)
    }

    /// The work a server node does in the background: cache invalidation from `changes`,
    /// key rotation and cleanup (one node at a time), and polling the revocation set.
    pub fn spawn_background(
        &self,
        changes: tokio::sync::mpsc::Receiver<records::Change>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            cache::spawn_change_listener(self.caches.clone(), self.keys.clone(), changes),
            jobs::spawn_key_schedule(self.store.clone(), self.keys.clone(), self.config.keys.check_interval),
            jobs::spawn_cleanup(
                self.store.clone(),
                self.clock.clone(),
                jobs::CLEANUP_INTERVAL,
                self.config.sessions.idle_timeout,
                self.config.retention.clone(),
            ),
            revocations::spawn_poller(self.revocations.clone(), self.store.clone(), self.clock.clone()),
            jobs::spawn_audit_sealer(self.store.clone()),
            jobs::spawn_personal_data_sealer(self.store.clone()),
        ]
    }
}
