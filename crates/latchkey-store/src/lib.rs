//! Latchkey's storage: traits that speak the domain, implemented for SQLite (the embedded
//! default) and PostgreSQL (many nodes).
//!
//! Every method that changes state does so in one transaction, together with its audit
//! event and, on PostgreSQL, the change notification that tells other nodes to drop caches.

pub mod cleanup;
mod error;
mod factor_model;
mod model;
mod oauth_model;
mod session_model;
#[macro_use]
mod shared;
mod postgres;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use latchkey_core::crypto::TokenHash;
use latchkey_core::domain::{
    ApiKeyId, ClientId, Email, GroupName, ProviderId, RoleName, ScopeName, SigningAlg, SubjectId, TenantId,
    UpstreamSubject, Username,
};
use latchkey_core::{Clock, UnixTime};
use tokio::sync::mpsc;

// The records the store takes and returns live in `latchkey_core::records`.
use latchkey_core::records::*;

/// The PostgreSQL channel that carries `Change` notifications.
pub(crate) const CHANGES_CHANNEL: &str = "latchkey_changes";

pub use error::StoreError;
pub use shared::audit::{CHECKPOINT_ACTION, CHECKPOINT_TARGET};

/// How long a revoked API key stays in the revocation set: long enough for every node's key
/// cache to have been rebuilt (at least every minute) since the revocation.
pub const API_KEY_REVOCATION_SECS: i64 = 3_600;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

pub type StoreResult<T> = Result<T, StoreError>;

use latchkey_core::redact_url;

/// Accounts at upstream identity providers linked to users (`[federation]`).
#[async_trait]
pub trait FederationStore {
    /// The link of the account `subject` at `provider`, if any.
    async fn federated_identity(
        &self,
        tenant: &TenantId,
        provider: &ProviderId,
        subject: &UpstreamSubject,
    ) -> StoreResult<Option<FederatedIdentity>>;
    /// A user's links, by provider.
    async fn federated_identities(&self, tenant: &TenantId, sub: &SubjectId) -> StoreResult<Vec<FederatedIdentity>>;
    /// Every provider id that links name, with how many.
    async fn linked_providers(&self, tenant: &TenantId) -> StoreResult<Vec<(String, u64)>>;
    /// Links an upstream account to an existing user. `Conflict` when that upstream account
    /// is linked already, or the user has an account at that provider linked already.
    async fn link_identity(&self, tenant: &TenantId, identity: &NewFederatedIdentity, actor: &Actor)
    -> StoreResult<()>;
    /// Makes a user and links the upstream account to it, in one transaction.
    async fn create_federated_account(
        &self,
        tenant: &TenantId,
        user: NewUser,
        identity: &NewFederatedIdentity,
        actor: &Actor,
    ) -> StoreResult<User>;
    /// Notes a sign-in through the link, with the address the upstream gave this time.
    async fn record_identity_use(
        &self,
        tenant: &TenantId,
        provider: &ProviderId,
        subject: &UpstreamSubject,
        email: Option<&str>,
    ) -> StoreResult<()>;
}

/// What users allowed clients, and its withdrawal.
#[async_trait]
pub trait ConsentStore {
    /// What `sub` allowed each client, by client id.
    async fn consents(&self, tenant: &TenantId, sub: &SubjectId) -> StoreResult<Vec<ConsentRecord>>;
    /// Every consent `sub` gave, oldest first, each with when it was withdrawn.
    async fn consent_history(&self, tenant: &TenantId, sub: &SubjectId) -> StoreResult<Vec<ConsentHistoryEntry>>;
    /// Withdraws what `sub` allowed `client`, in one transaction: the consent goes; the
    /// client's refresh tokens for the user are revoked; every access token it got for the
    /// user until `now` is refused until `revoke_until` (a `consent` revocation); the
    /// client is taken out of the user's sessions, with a back-channel logout queued where
    /// it asked for one. `NotFound` when there is no such consent.
    async fn withdraw_consent(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        client: &ClientId,
        (now, revoke_until): (UnixTime, UnixTime),
        actor: &Actor,
    ) -> StoreResult<ConsentWithdrawn>;
}

/// Roles, groups and who holds them. Every change notifies `Change::Access`.
#[async_trait]
pub trait AccessStore {
    /// Creates a role; a taken name is `Conflict`, an unknown application `NotFound`.
    async fn create_role(&self, tenant: &TenantId, role: NewRole, actor: &Actor) -> StoreResult<Role>;
    async fn role(&self, tenant: &TenantId, name: &RoleName) -> StoreResult<Option<Role>>;
    async fn list_roles(&self, tenant: &TenantId) -> StoreResult<Vec<Role>>;
    /// Changes a role's description and entitlements; an unknown role is `NotFound`.
    async fn update_role(
        &self,
        tenant: &TenantId,
        name: &RoleName,
        patch: RolePatch,
        actor: &Actor,
    ) -> StoreResult<Role>;
    /// Deletes a role and every link to it.
    async fn delete_role(&self, tenant: &TenantId, name: &RoleName, actor: &Actor) -> StoreResult<()>;
    /// Creates a group; a taken name is `Conflict`.
    async fn create_group(
        &self,
        tenant: &TenantId,
        name: &GroupName,
        description: &str,
        actor: &Actor,
    ) -> StoreResult<Group>;
    async fn group(&self, tenant: &TenantId, name: &GroupName) -> StoreResult<Option<Group>>;
    async fn list_groups(&self, tenant: &TenantId) -> StoreResult<Vec<Group>>;
    /// Changes a group's description.
    async fn set_group_description(
        &self,
        tenant: &TenantId,
        name: &GroupName,
        description: &str,
        actor: &Actor,
    ) -> StoreResult<()>;
    /// Deletes a group, its members' membership and its roles' links to it.
    async fn delete_group(&self, tenant: &TenantId, name: &GroupName, actor: &Actor) -> StoreResult<()>;
    /// Adds (`present`) or removes a link. `false` when it was already so (nothing is
    /// recorded); an unknown user, role or group is `NotFound`.
    async fn set_membership(
        &self,
        tenant: &TenantId,
        link: &Membership,
        present: bool,
        actor: &Actor,
    ) -> StoreResult<bool>;
    /// Every role the user holds (directly and through groups) and every group the user is in.
    async fn user_access(&self, tenant: &TenantId, sub: &SubjectId) -> StoreResult<UserAccess>;
    /// The users who hold a role, directly or through a group.
    async fn role_holders(&self, tenant: &TenantId, role: &RoleName) -> StoreResult<Vec<SubjectId>>;
}

/// API keys. Every change but a recorded use notifies `Change::ApiKey`.
#[async_trait]
pub trait ApiKeyStore {
    /// Stores a key; an unknown owner is `NotFound`, a live key of the same name `Conflict`,
    /// an owner with `max_live_per_owner` live keys `Invalid`.
    async fn create_api_key(
        &self,
        tenant: &TenantId,
        key: NewApiKey,
        max_live_per_owner: u32,
        actor: &Actor,
    ) -> StoreResult<ApiKey>;
    /// A key by id, revoked or not.
    async fn api_key(&self, tenant: &TenantId, id: &ApiKeyId) -> StoreResult<Option<ApiKey>>;
    /// The keys not revoked, of one owner or of all.
    async fn list_api_keys(&self, tenant: &TenantId, owner: Option<&SubjectId>) -> StoreResult<Vec<ApiKey>>;
    /// Revokes a live key (`NotFound` otherwise).
    async fn revoke_api_key(&self, tenant: &TenantId, id: &ApiKeyId, actor: &Actor) -> StoreResult<ApiKey>;
    /// Replaces a live key's secret; the old one stays valid until `previous_valid_until`.
    async fn rotate_api_key(
        &self,
        tenant: &TenantId,
        id: &ApiKeyId,
        new_hash: &TokenHash,
        previous_valid_until: UnixTime,
        actor: &Actor,
    ) -> StoreResult<ApiKey>;
    async fn record_api_key_use(&self, tenant: &TenantId, id: &ApiKeyId, at: UnixTime) -> StoreResult<()>;
}

/// The outbox of emails and text messages. Messages are queued inside the transaction of
/// the change that causes them ([`StoreTx::enqueue_message`]); a sender on any node claims
/// due ones for a lease, so no other node sends them meanwhile, and reports each outcome.
#[async_trait]
pub trait OutboxStore {
    /// Claims up to `limit` due, unexpired messages of `channel` (the longest due first):
    /// they are not due again for `lease`.
    async fn claim_messages(
        &self,
        channel: Channel,
        now: UnixTime,
        lease: std::time::Duration,
        limit: u32,
    ) -> StoreResult<Vec<QueuedMessage>>;
    /// What became of the claimed `message`: sent and given-up messages are deleted (and the
    /// audit log says which, with the error); a retry waits until its time; a held one too,
    /// its claim not counted. `NotFound` when the claim was lost (its lease ran out and
    /// another sender took the message, or it expired): nothing is changed.
    async fn finish_message(&self, message: &QueuedMessage, outcome: &SendOutcome) -> StoreResult<()>;
    /// Deletes up to `limit` messages past their expiry, unsent; returns each one's tenant,
    /// channel and kind.
    async fn drop_expired_messages(&self, now: UnixTime, limit: u32) -> StoreResult<Vec<(TenantId, Channel, String)>>;
    /// How many messages wait, per channel.
    async fn waiting_messages(&self) -> StoreResult<Vec<(Channel, u64)>>;
    /// The unused, unexpired token with this hash and purpose, without using it (what a
    /// confirmation page shows before its POST consumes it).
    async fn peek_one_time_token(
        &self,
        tenant: &TenantId,
        hash: &TokenHash,
        purpose: &str,
        now: UnixTime,
    ) -> StoreResult<Option<OneTimeToken>>;
    /// Uses the token: one statement sets `used_at` only if it is unused and unexpired, so of
    /// two parallel consumptions exactly one gets it. `None` for anything else.
    async fn consume_one_time_token(
        &self,
        tenant: &TenantId,
        hash: &TokenHash,
        purpose: &str,
        now: UnixTime,
    ) -> StoreResult<Option<OneTimeToken>>;
    /// How many tokens of `purpose` were made for `sub` since `since` (for resend limits).
    async fn count_one_time_tokens(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        purpose: &str,
        since: UnixTime,
    ) -> StoreResult<u32>;
    /// The newest unused, unexpired token of `purpose` for `sub` (what a page says is
    /// pending, such as an address waiting for its link).
    async fn pending_one_time_token(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        purpose: &str,
        now: UnixTime,
    ) -> StoreResult<Option<OneTimeToken>>;
}

#[async_trait]
pub trait UserStore {
    /// Creates a user; a taken username or email, or a `sub` that is a client's id, is
    /// `StoreError::Conflict`.
    async fn create_user(&self, tenant: &TenantId, user: NewUser, actor: &Actor) -> StoreResult<User>;
    /// Creates many users (`user import`) in one transaction: all of them, or none when one
    /// would collide with a stored user (same sub, username, or verified email) or a client
    /// (a sub equal to a client id: RFC 9068 §5, a token's `sub` must tell a person from a
    /// client). Collisions within `users` are the caller's to find; the database refuses
    /// them as `Conflict`.
    async fn import_users(&self, tenant: &TenantId, users: &[NewUser], actor: &Actor) -> StoreResult<ImportOutcome>;
    async fn user_by_sub(&self, tenant: &TenantId, sub: &SubjectId) -> StoreResult<Option<User>>;
    async fn user_by_username(&self, tenant: &TenantId, username: &Username) -> StoreResult<Option<User>>;
    async fn user_by_email(&self, tenant: &TenantId, email: &Email) -> StoreResult<Option<User>>;
    async fn list_users(&self, tenant: &TenantId) -> StoreResult<Vec<User>>;
    async fn update_user(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        patch: UserPatch,
        actor: &Actor,
    ) -> StoreResult<User>;
    /// Sets (or with `None`, removes) the password hash.
    async fn set_password_hash(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        hash: Option<String>,
        actor: &Actor,
    ) -> StoreResult<()>;
    /// Replaces the password hash `old` by `new` (the same password, hashed at today's
    /// parameters) if `old` is still the stored one: a password changed meanwhile is kept.
    /// Returns whether it was replaced.
    async fn upgrade_password_hash(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        old: &str,
        new: &str,
    ) -> StoreResult<bool>;
    async fn set_user_locked(&self, tenant: &TenantId, sub: &SubjectId, locked: bool, actor: &Actor)
    -> StoreResult<()>;
    async fn delete_user(&self, tenant: &TenantId, sub: &SubjectId, actor: &Actor) -> StoreResult<()>;
}

#[async_trait]
pub trait ClientStore {
    /// Creates a client; an id already in use, by a client or as a user's `sub`, is
    /// `StoreError::Conflict`.
    async fn create_client(&self, tenant: &TenantId, client: NewClient, actor: &Actor) -> StoreResult<Client>;
    async fn client(&self, tenant: &TenantId, id: &ClientId) -> StoreResult<Option<Client>>;
    async fn list_clients(&self, tenant: &TenantId) -> StoreResult<Vec<Client>>;
    async fn update_client(
        &self,
        tenant: &TenantId,
        id: &ClientId,
        patch: ClientPatch,
        actor: &Actor,
    ) -> StoreResult<Client>;
    /// Replaces the secret; the old one stays valid until `previous_valid_until`.
    async fn rotate_client_secret(
        &self,
        tenant: &TenantId,
        id: &ClientId,
        new_hash: &TokenHash,
        previous_valid_until: UnixTime,
        actor: &Actor,
    ) -> StoreResult<()>;
    async fn delete_client(&self, tenant: &TenantId, id: &ClientId, actor: &Actor) -> StoreResult<()>;
    /// Client ids that are also a user's `sub`: data stored before creation refused such
    /// collisions (RFC 9068 §5).
    async fn client_ids_shared_with_users(&self, tenant: &TenantId) -> StoreResult<Vec<ClientId>>;
}

#[async_trait]
pub trait ScopeStore {
    async fn list_scopes(&self, tenant: &TenantId) -> StoreResult<Vec<ScopeDefinition>>;
    /// Creates a custom scope or changes its description.
    async fn put_scope(&self, tenant: &TenantId, name: &ScopeName, description: &str, actor: &Actor)
    -> StoreResult<()>;
}

#[async_trait]
pub trait SigningKeyStore {
    /// Every stored key of the tenant (next, active and retired).
    async fn signing_keys(&self, tenant: &TenantId) -> StoreResult<Vec<StoredSigningKey>>;
    /// Stores a first active and next key for `alg` unless the tenant has keys for it
    /// already (another node may have won the race). Returns whether these were stored.
    async fn bootstrap_signing_keys(
        &self,
        tenant: &TenantId,
        active: NewSigningKey,
        next: NewSigningKey,
        actor: &Actor,
    ) -> StoreResult<bool>;
    /// Retires the active key of `next.alg` (published until `retired_publish_until`),
    /// promotes the next key `expected_next_kid`, and stores `new_next`. Returns `false`
    /// when the next key is no longer `expected_next_kid` (another rotation won).
    async fn rotate_signing_key(
        &self,
        tenant: &TenantId,
        expected_next_kid: &str,
        new_next: NewSigningKey,
        retired_publish_until: UnixTime,
        actor: &Actor,
    ) -> StoreResult<bool>;
    /// Stops using `alg`: its active key becomes retired (published until
    /// `publish_until`), and its next key, which never signed anything, is deleted.
    /// Returns whether anything changed.
    async fn retire_algorithm(
        &self,
        tenant: &TenantId,
        alg: SigningAlg,
        publish_until: UnixTime,
        actor: &Actor,
    ) -> StoreResult<bool>;
    /// Ends the publication of the retired key `kid` now (after a compromise: tokens it
    /// signed stop verifying). Returns the key as it is afterwards and whether this ended its
    /// publication, or `None` when there is no such key; a key that is not retired, or no
    /// longer published, is left as it is.
    async fn unpublish_signing_key(
        &self,
        tenant: &TenantId,
        kid: &str,
        now: UnixTime,
        actor: &Actor,
    ) -> StoreResult<Option<(StoredSigningKey, bool)>>;
    /// Deletes retired keys whose publication period ended before `now`.
    async fn delete_expired_signing_keys(&self, tenant: &TenantId, now: UnixTime) -> StoreResult<u64>;
}

#[async_trait]
pub trait OAuthStore {
    /// Parks a request, unless its `ip_key` already has `max_per_ip` unexpired requests
    /// parked: counting and storing are one atomic step, across nodes, so parallel requests
    /// cannot overshoot. Returns whether it was stored.
    async fn put_authorization_request(
        &self,
        tenant: &TenantId,
        id_hash: &TokenHash,
        pending: &PendingAuthorization,
        max_per_ip: u32,
    ) -> StoreResult<bool>;
    /// A pending request that has not expired at `now`.
    async fn authorization_request(
        &self,
        tenant: &TenantId,
        id_hash: &TokenHash,
        now: UnixTime,
    ) -> StoreResult<Option<PendingAuthorization>>;
    async fn delete_authorization_request(&self, tenant: &TenantId, id_hash: &TokenHash) -> StoreResult<()>;
    /// Replaces the request a pending authorization keeps; false if it is gone.
    async fn update_authorization_request(
        &self,
        tenant: &TenantId,
        id_hash: &TokenHash,
        request: &str,
    ) -> StoreResult<bool>;

    async fn insert_code(&self, tenant: &TenantId, code: &NewCode) -> StoreResult<()>;
    /// Spends a code issued to `client` atomically: of any number of concurrent
    /// redemptions, on any node, exactly one gets `Redeemed`. A code issued to another
    /// client is not spent (`IssuedToAnotherClient`).
    async fn redeem_code(
        &self,
        tenant: &TenantId,
        code_hash: &TokenHash,
        client: &ClientId,
        now: UnixTime,
    ) -> StoreResult<CodeRedemption>;

    async fn insert_refresh_token(&self, tenant: &TenantId, token: &NewRefreshToken) -> StoreResult<()>;
    async fn refresh_token(&self, tenant: &TenantId, hash: &TokenHash) -> StoreResult<Option<StoredRefreshToken>>;
    /// Rotates `old` to `new` atomically. A token rotated less than `grace` ago is reported as
    /// a concurrent use; one rotated earlier revokes its whole family.
    async fn rotate_refresh_token(
        &self,
        tenant: &TenantId,
        old: &TokenHash,
        new: NewRefreshToken,
        now: UnixTime,
        grace: std::time::Duration,
    ) -> StoreResult<RefreshRotation>;
    /// Revokes every refresh token of a family. Returns how many were live.
    async fn revoke_refresh_family(
        &self,
        tenant: &TenantId,
        family_id: &str,
        now: UnixTime,
        actor: &Actor,
    ) -> StoreResult<u64>;
    /// Revokes everything issued under a grant: its refresh tokens, and its access tokens
    /// through the revocation set until `until`.
    async fn revoke_grant(
        &self,
        tenant: &TenantId,
        grant_id: &str,
        until: UnixTime,
        now: UnixTime,
        actor: &Actor,
    ) -> StoreResult<()>;
    /// Adds one access token id to the revocation set until it would have expired anyway.
    async fn revoke_access_token(
        &self,
        tenant: &TenantId,
        jti: &str,
        until: UnixTime,
        actor: &Actor,
    ) -> StoreResult<()>;
    /// Revocations recorded after `seq`, oldest first, still in force at `now`.
    async fn revocations_after(&self, seq: i64, now: UnixTime) -> StoreResult<Vec<Revocation>>;

    /// What `sub` allowed `client`, if anything.
    async fn consent(&self, tenant: &TenantId, sub: &SubjectId, client: &ClientId) -> StoreResult<Option<Consent>>;
    /// Replaces what `sub` allowed `client` (the caller merges with the earlier consent).
    async fn save_consent(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        client: &ClientId,
        consent: &Consent,
        actor: &Actor,
    ) -> StoreResult<()>;

    /// Reserves one attempt against each of `keys` before the answer is checked, in one
    /// statement that increments every counter and returns its new count: of any number of
    /// concurrent attempts, on any node, each sees a different count, so no more than the
    /// limit get past the caller's comparison. A counter whose window (`window` long) has
    /// passed starts again at 1. The reservations come back in the order of `keys`;
    /// duplicate keys are counted once.
    async fn reserve_attempts(
        &self,
        tenant: &TenantId,
        keys: &[&str],
        now: UnixTime,
        window: std::time::Duration,
    ) -> StoreResult<Vec<ReservedAttempt>>;
    /// Gives back attempts reserved by [`Self::reserve_attempts`] (the answer was right):
    /// each counter goes down by one, unless its window has started again since.
    async fn release_attempts(&self, tenant: &TenantId, reserved: &[(&str, ReservedAttempt)]) -> StoreResult<()>;

    /// Counts a failed sign-in against `key` and returns the failures within the window
    /// that started at most `window` ago.
    async fn record_login_failure(
        &self,
        tenant: &TenantId,
        key: &str,
        now: UnixTime,
        window: std::time::Duration,
    ) -> StoreResult<i64>;
    /// The failures counted against each of `keys` within the window, in the order of
    /// `keys` (0 for a key without failures), read in one statement.
    async fn login_failures(
        &self,
        tenant: &TenantId,
        keys: &[&str],
        now: UnixTime,
        window: std::time::Duration,
    ) -> StoreResult<Vec<i64>>;
    async fn clear_login_failures(&self, tenant: &TenantId, key: &str) -> StoreResult<()>;
}

/// Single sign-on sessions and the back-channel logout queue.
#[async_trait]
pub trait SessionStore {
    async fn create_browser_session(
        &self,
        tenant: &TenantId,
        session: &BrowserSession,
        actor: &Actor,
    ) -> StoreResult<()>;
    /// The same user signed in again in this browser: the session takes the new cookie
    /// hash and authentication (`auth_time`, `amr`, `acr`, lifetime) and keeps its `sid`
    /// and clients. False if the session under `old_id_hash` is gone or not `session.sub`'s.
    async fn reauthenticate_browser_session(
        &self,
        tenant: &TenantId,
        old_id_hash: &TokenHash,
        session: &BrowserSession,
        actor: &Actor,
    ) -> StoreResult<bool>;
    /// The session whose cookie hashes to `id_hash`, if it is live at `now`: neither past
    /// its absolute end nor idle for `idle` or longer.
    async fn browser_session(
        &self,
        tenant: &TenantId,
        id_hash: &TokenHash,
        now: UnixTime,
        idle: Duration,
    ) -> StoreResult<Option<BrowserSession>>;
    /// The live session with the public id `sid`.
    async fn browser_session_by_sid(
        &self,
        tenant: &TenantId,
        sid: &str,
        now: UnixTime,
        idle: Duration,
    ) -> StoreResult<Option<BrowserSession>>;
    /// Marks the session as used at `now`.
    async fn touch_browser_session(&self, tenant: &TenantId, sid: &str, now: UnixTime) -> StoreResult<()>;
    /// Records that the session signed into `client` (`backchannel`: the client wants
    /// back-channel logout).
    async fn record_session_client(
        &self,
        tenant: &TenantId,
        sid: &str,
        client: &ClientId,
        backchannel: bool,
        now: UnixTime,
    ) -> StoreResult<()>;
    /// A user's live sessions with their clients, newest first.
    async fn user_sessions(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        now: UnixTime,
        idle: Duration,
    ) -> StoreResult<Vec<SessionInfo>>;
    /// Ends sessions in one transaction: deletes them, queues a back-channel logout for
    /// each client that wants one, and revokes the refresh tokens that end with them.
    async fn end_browser_sessions(
        &self,
        tenant: &TenantId,
        which: &SessionSelector,
        how: &SessionEnd,
        actor: &Actor,
    ) -> StoreResult<SessionsEnded>;
    /// Claims up to `limit` deliveries that are due: they are not due again for `lease`,
    /// so another node does not send them meanwhile.
    async fn claim_logout_deliveries(
        &self,
        now: UnixTime,
        lease: Duration,
        limit: u32,
    ) -> StoreResult<Vec<LogoutDelivery>>;
    async fn finish_logout_delivery(
        &self,
        tenant: &TenantId,
        jti: &str,
        outcome: &DeliveryOutcome,
        now: UnixTime,
    ) -> StoreResult<()>;
    /// The deliveries queued for the sessions of a user, newest first.
    async fn logout_deliveries(&self, tenant: &TenantId, sub: &SubjectId) -> StoreResult<Vec<DeliveryRecord>>;
}

#[async_trait]
pub trait FactorStore {
    /// Creates a user with their first passkey and recovery codes, using up `invitation`
    /// if given; all or nothing.
    async fn create_account(&self, tenant: &TenantId, account: NewAccount, actor: &Actor) -> StoreResult<User>;
    /// The user's WebAuthn user handle, set to `candidate` if they have none yet.
    async fn webauthn_user_id(&self, tenant: &TenantId, sub: &SubjectId, candidate: &str) -> StoreResult<String>;
    async fn user_by_webauthn_id(&self, tenant: &TenantId, id: &str) -> StoreResult<Option<User>>;
    async fn passkeys(&self, tenant: &TenantId, sub: &SubjectId) -> StoreResult<Vec<StoredPasskey>>;
    async fn passkey(&self, tenant: &TenantId, credential_id: &str) -> StoreResult<Option<StoredPasskey>>;
    async fn add_passkey(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        passkey: NewPasskey,
        actor: &Actor,
    ) -> StoreResult<()>;
    /// Records a sign-in with a passkey. `false` when the counter did not grow (a possible
    /// cloned authenticator, or a concurrent use of the same value): nothing is changed.
    async fn record_passkey_use(&self, tenant: &TenantId, used: PasskeyUse) -> StoreResult<bool>;
    async fn rename_passkey(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        credential_id: &str,
        name: &str,
        actor: &Actor,
    ) -> StoreResult<()>;
    /// Starts (or restarts) an unconfirmed TOTP enrolment; `Conflict` if one is confirmed.
    async fn start_totp(&self, tenant: &TenantId, sub: &SubjectId, secret_sealed: &str) -> StoreResult<()>;
    async fn totp(&self, tenant: &TenantId, sub: &SubjectId) -> StoreResult<Option<TotpFactor>>;
    /// Confirms the enrolment with the step of a correct code; `false` if there is nothing
    /// to confirm or the step was used.
    async fn confirm_totp(&self, tenant: &TenantId, sub: &SubjectId, step: u64, actor: &Actor) -> StoreResult<bool>;
    /// Uses a step of a confirmed factor; `false` if it (or a later one) was used already.
    async fn use_totp_step(&self, tenant: &TenantId, sub: &SubjectId, step: u64) -> StoreResult<bool>;
    /// Replaces every recovery code of the user (the old ones stop working).
    async fn replace_recovery_codes(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        hashes: &[TokenHash],
        actor: &Actor,
    ) -> StoreResult<()>;
    /// Uses up one recovery code; `false` if it is not an unused code of this user.
    async fn use_recovery_code(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        hash: &TokenHash,
        actor: &Actor,
    ) -> StoreResult<bool>;
    async fn recovery_codes_left(&self, tenant: &TenantId, sub: &SubjectId) -> StoreResult<u32>;
    /// Keeps the state of a ceremony (a WebAuthn challenge, a half-finished sign-in).
    async fn put_ceremony(
        &self,
        tenant: &TenantId,
        id_hash: &TokenHash,
        purpose: &str,
        state: &str,
        expires_at: UnixTime,
    ) -> StoreResult<()>;
    /// A ceremony's state, left in place; `None` if absent or expired.
    async fn peek_ceremony(
        &self,
        tenant: &TenantId,
        id_hash: &TokenHash,
        purpose: &str,
        now: UnixTime,
    ) -> StoreResult<Option<String>>;
    /// Takes a ceremony's state out (single use); `None` if absent or expired.
    async fn take_ceremony(
        &self,
        tenant: &TenantId,
        id_hash: &TokenHash,
        purpose: &str,
        now: UnixTime,
    ) -> StoreResult<Option<String>>;
    async fn create_invitation(
        &self,
        tenant: &TenantId,
        token_hash: &TokenHash,
        id: &str,
        note: Option<&str>,
        expires_at: UnixTime,
        actor: &Actor,
    ) -> StoreResult<()>;
    async fn invitations(&self, tenant: &TenantId) -> StoreResult<Vec<Invitation>>;
    async fn invitation_usable(&self, tenant: &TenantId, token_hash: &TokenHash, now: UnixTime) -> StoreResult<bool>;
    /// Removes every passkey, the authenticator app and the recovery codes of a user (an
    /// operator's last resort for someone who lost them all). Returns how many passkeys went.
    async fn reset_sign_in_factors(&self, tenant: &TenantId, sub: &SubjectId, actor: &Actor) -> StoreResult<u64>;
    /// Deletes an unused invitation.
    async fn revoke_invitation(&self, tenant: &TenantId, id: &str, actor: &Actor) -> StoreResult<()>;
}

#[async_trait]
pub trait ResourceStore {
    async fn list_resource_servers(&self, tenant: &TenantId) -> StoreResult<Vec<ResourceServer>>;
    /// Registers an API or changes its name and scopes.
    async fn put_resource_server(&self, tenant: &TenantId, server: &ResourceServer, actor: &Actor) -> StoreResult<()>;
    async fn delete_resource_server(&self, tenant: &TenantId, identifier: &str, actor: &Actor) -> StoreResult<()>;
    /// Records a client assertion id; `false` when it was seen before (a replay).
    async fn remember_assertion_jti(
        &self,
        tenant: &TenantId,
        client: &ClientId,
        jti: &str,
        expires_at: UnixTime,
    ) -> StoreResult<bool>;
}

/// Removal of expired rows; `cleanup::delete_expired` drives it batch by batch.
#[async_trait]
pub trait CleanupStore {
    /// Deletes at most `limit` rows of `kind` that have expired at `cutoffs`, found through
    /// an index on their expiry, in one short transaction; sessions go with their lists of
    /// clients. Returns how many rows of `kind` went (PostgreSQL skips rows locked by others).
    async fn delete_expired_batch(
        &self,
        kind: cleanup::Expired,
        cutoffs: &cleanup::Cutoffs,
        limit: u32,
    ) -> StoreResult<u64>;
}

/// What the admin API reads and keeps.
#[async_trait]
pub trait AdminStore {
    /// One page of users by username (at most [`MAX_PAGE`] + 1: one more tells whether another page follows).
    async fn search_users(&self, tenant: &TenantId, query: &UserQuery) -> StoreResult<Vec<User>>;
    /// One page of audit events, newest first, each with its position in the log.
    async fn audit_events(&self, tenant: &TenantId, query: &AuditQuery) -> StoreResult<Vec<(i64, AuditEvent)>>;
    /// Claims `key` for one create by `caller` (a key older than a day is free again), or
    /// says what an earlier create with it left.
    async fn claim_idempotency_key(
        &self,
        tenant: &TenantId,
        caller: &str,
        key: &str,
        request_hash: &str,
    ) -> StoreResult<IdempotentClaim>;
    /// Keeps the response of the create that claimed `key`.
    async fn keep_idempotent_response(
        &self,
        tenant: &TenantId,
        caller: &str,
        key: &str,
        status: u16,
        location: Option<&str>,
        body: &str,
    ) -> StoreResult<()>;
    /// Frees a key whose create failed, so it can be tried again.
    async fn release_idempotency_key(&self, tenant: &TenantId, caller: &str, key: &str) -> StoreResult<()>;
    /// The objects `latchkey apply` created (kind, name), which `--prune` may remove.
    async fn applied_objects(&self, tenant: &TenantId) -> StoreResult<Vec<(String, String)>>;
    /// Records (`created`) or forgets an object `apply` created.
    async fn set_applied(&self, tenant: &TenantId, kind: &str, name: &str, created: bool) -> StoreResult<()>;
}

#[async_trait]
pub trait AuditStore {
    /// The newest events first.
    async fn recent_audit_events(&self, tenant: &TenantId, limit: u32) -> StoreResult<Vec<AuditEvent>>;
}

/// What one run of the audit chain's writer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealReport {
    /// Entries given their position and MAC.
    pub chained: u64,
    /// The chains it wrote to: tenant, head position and newest checkpoint's time.
    pub heads: Vec<(TenantId, i64, i64)>,
}

/// A tenant's chain as its row records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// The newest entry's position (0: none yet) and MAC.
    pub seq: i64,
    pub mac: String,
    /// When the newest checkpoint was written.
    pub checkpoint_at: i64,
    /// Entries up to `base_seq` were removed by retention; the oldest kept one follows
    /// `base_mac`, which a checkpoint signature (`base_signature`, made at `base_at`) vouches for.
    pub base_seq: i64,
    pub base_mac: Option<String>,
    pub base_at: Option<i64>,
    pub base_signature: Option<String>,
}

/// One chained entry as stored, for verification: what the MAC covers, the MAC, and (for a
/// checkpoint) its opened details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainEntry {
    pub id: i64,
    pub seq: i64,
    pub at: i64,
    pub action: String,
    pub actor_ref: String,
    pub target_ref: String,
    pub sealed: String,
    pub mac: String,
    pub checkpoint: Option<serde_json::Value>,
}

/// Data kept for a configured time ([retention]), and counting what the cleanup would delete.
#[async_trait]
pub trait RetentionStore {
    /// Deletes (or with `dry_run` counts) the audit entries written before `older_than`, a
    /// batch per tenant, moving each chain's signed base past them.
    async fn trim_audit_chains(&self, older_than: UnixTime, dry_run: bool) -> StoreResult<u64>;
    /// Deletes (or counts) invitations used, or expired unused, at or before `before`.
    async fn delete_used_invitations(&self, before: UnixTime, dry_run: bool) -> StoreResult<u64>;
    /// How many rows of `kind` the cleanup would delete at `cutoffs`.
    async fn count_expired(&self, kind: cleanup::Expired, cutoffs: &cleanup::Cutoffs) -> StoreResult<u64>;
    /// Accounts (neither service accounts nor locked) that nobody signed in to since
    /// `before`, in the order of that last sign-in, the page after `after`.
    async fn inactive_accounts(
        &self,
        before: UnixTime,
        after: Option<&InactiveAccount>,
        limit: u32,
    ) -> StoreResult<Vec<InactiveAccount>>;
    /// A use found in the account's sessions or tokens, at `at`: its inactivity starts
    /// again from there, and a notice given before it no longer holds.
    async fn record_account_use(&self, tenant: &TenantId, sub: &SubjectId, at: UnixTime) -> StoreResult<()>;
    /// When someone last signed in to the account, and when its owner was told it would be
    /// disabled or deleted for lack of use (`None`: no such user).
    async fn account_activity(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
    ) -> StoreResult<Option<(UnixTime, Option<UnixTime>)>>;
    /// Accounts created by sign-up before `before` whose address was never verified, the
    /// page after `after`.
    async fn unverified_sign_ups(
        &self,
        before: UnixTime,
        after: Option<&UnverifiedSignUp>,
        limit: u32,
    ) -> StoreResult<Vec<UnverifiedSignUp>>;
}

/// An account [`RetentionStore::inactive_accounts`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InactiveAccount {
    pub tenant: TenantId,
    pub sub: SubjectId,
    /// When someone last signed in to it.
    pub last_sign_in: UnixTime,
    /// Its latest use of any kind: that sign-in, a session of its used since, a token of
    /// its refreshed, an API key of its used.
    pub last_use: UnixTime,
    /// When its owner was told it would be disabled or deleted.
    pub notice_at: Option<UnixTime>,
}

/// An account [`RetentionStore::unverified_sign_ups`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedSignUp {
    pub tenant: TenantId,
    pub sub: SubjectId,
    pub created_at: UnixTime,
}

/// Which retention rule a step on an account carries out: checked again, with the user's
/// row held, in the step's transaction ([`StoreTx::account_retention_applies`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountRetention {
    /// Not used since its owner was told at `notice_at`.
    Inactive { notice_at: UnixTime },
    /// Created before `created_before` by sign-up, its address never verified.
    UnverifiedSignUp { created_before: UnixTime },
}

/// See [`AuditChainStore::audit_chain_counts`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainCounts {
    pub in_range: u64,
    pub at_or_below_base: u64,
    pub refused_ids: Vec<i64>,
}

/// What one pass of [`PersonalDataStore::reseal_personal_data`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// The generation rows were sealed under.
    pub generation: u32,
    /// Rows sealed, by table (tables with none are left out).
    pub sealed: std::collections::BTreeMap<String, u64>,
    /// Rows that do not open (sealed under another master key, or altered), by table:
    /// left as they are, and reported.
    pub unreadable: std::collections::BTreeMap<String, u64>,
    /// Every row is sealed under `generation`, and no node can still be writing under
    /// an older one.
    pub done: bool,
}

/// Personal data at rest: the keys its columns are sealed with, their generation, and the
/// job that seals rows written in clear or under an older generation.
#[async_trait]
pub trait PersonalDataStore {
    /// The keys (derived from the master key) personal data is sealed and indexed with.
    /// Until they are set, reading or writing a user fails.
    fn use_personal_data_keys(&self, keys: Arc<latchkey_core::crypto::PersonalDataKeys>);
    /// Reads the generation new values are sealed under (another process may have begun
    /// one) and makes it this store's.
    async fn load_data_key_generation(&self) -> StoreResult<u32>;
    /// Begins a new generation (`latchkey keys rotate-data-key`); audited as
    /// `keys.data_key_rotated`. Rows are re-sealed by `reseal_personal_data`.
    async fn start_data_key_generation(&self, actor: &Actor) -> StoreResult<u32>;
    /// Seals up to `batch` rows of each table that are in clear or under an older
    /// generation, a transaction per table.
    async fn reseal_personal_data(&self, batch: u32) -> StoreResult<ResealReport>;
    /// How many rows are still in clear or under an older generation.
    async fn personal_data_to_reseal(&self) -> StoreResult<u64>;
}

/// The audit log's chain: its keys, its one writer and what verification reads.
#[async_trait]
pub trait AuditChainStore {
    /// The keys (derived from the master key) entries are pseudonymised, sealed and chained
    /// with. Until they are set, every audited write fails.
    fn use_audit_keys(&self, keys: Arc<latchkey_core::crypto::AuditKeys>);
    /// Gives every waiting entry its position and MAC, tenant by tenant, and appends a
    /// signed checkpoint of the head to each chain whose newest is `checkpoint_every` old
    /// (to every chain with `force_checkpoint`).
    async fn seal_audit_chain(&self, checkpoint_every: Duration, force_checkpoint: bool) -> StoreResult<SealReport>;
    async fn audit_chain_head(&self, tenant: &TenantId) -> StoreResult<Option<ChainHead>>;
    /// Chained entries after position `after_seq`, oldest first.
    async fn audit_chain_page(&self, tenant: &TenantId, after_seq: i64, limit: u32) -> StoreResult<Vec<ChainEntry>>;
    /// What is stored beside the chain a verification walks: chained entries with a position
    /// in `(after, upto]`, entries at or below `after` (a trimmed chain has none), and the
    /// ids of entries the writer refused (their write-time MAC failed: negative positions).
    async fn audit_chain_counts(&self, tenant: &TenantId, after: i64, upto: i64) -> StoreResult<ChainCounts>;
    /// How many entries wait for the chain's writer, and when the oldest was written.
    async fn unsealed_audit_entries(&self, tenant: &TenantId) -> StoreResult<(u64, Option<UnixTime>)>;
    /// Moves up to `batch` entries of the log before the chain (`audit_events`) into the
    /// chain, oldest first; 0 when none are left.
    async fn adopt_legacy_audit_events(&self, batch: u32) -> StoreResult<u64>;
}

/// A scheduled job's claim to run on this node only. `release` gives it up at once;
/// dropping it gives it up too, but only when the connection is next cleaned up.
pub struct JobLock {
    held: Option<sqlx::Transaction<'static, sqlx::Postgres>>,
}

impl JobLock {
    pub async fn release(mut self) {
        if let Some(tx) = self.held.take()
            && let Err(e) = tx.rollback().await
        {
            tracing::warn!(error = %e, "releasing a job lock failed; it ends with its connection");
        }
    }
}

/// A write transaction the service composes from several changes: they commit together, or
/// (dropped without `commit`) none of them does. Each method records its audit event and
/// change notification inside the transaction, as the single-change methods do.
#[async_trait]
pub trait StoreTx: Send {
    /// Holds the user's row for the rest of the transaction and says whether `rule` still
    /// applies to it: a sign-in or a verification meanwhile waits for this transaction, or
    /// wins and the step is left.
    async fn account_retention_applies(
        &mut self,
        tenant: &TenantId,
        sub: &SubjectId,
        rule: AccountRetention,
    ) -> StoreResult<bool>;
    /// Records that the owner of an account unused since `last_sign_in` was told at `at`
    /// (`emailed`: whether a message went; an account without a verified address gets
    /// none), unless someone signed in meanwhile. Audited as `user.inactivity_notice`.
    async fn record_inactivity_notice(
        &mut self,
        tenant: &TenantId,
        sub: &SubjectId,
        last_sign_in: UnixTime,
        at: UnixTime,
        details: serde_json::Value,
    ) -> StoreResult<bool>;
    async fn set_password_hash(
        &mut self,
        tenant: &TenantId,
        sub: &SubjectId,
        hash: Option<String>,
        actor: &Actor,
    ) -> StoreResult<()>;
    async fn set_user_locked(
        &mut self,
        tenant: &TenantId,
        sub: &SubjectId,
        locked: bool,
        actor: &Actor,
    ) -> StoreResult<()>;
    async fn delete_user(&mut self, tenant: &TenantId, sub: &SubjectId, actor: &Actor) -> StoreResult<()>;
    /// Erases the person and everything tied to their account (see `shared::erasure`), and
    /// deletes the key their audit entries are sealed under. Returns the receipt and the
    /// clients told to refuse the person's tokens. `NotFound` when there is no such user.
    async fn erase_user(
        &mut self,
        tenant: &TenantId,
        sub: &SubjectId,
        erasure: &ErasureRequest,
        actor: &Actor,
    ) -> StoreResult<(ErasureReceipt, Vec<String>)>;
    async fn end_browser_sessions(
        &mut self,
        tenant: &TenantId,
        which: &SessionSelector,
        how: &SessionEnd,
        actor: &Actor,
    ) -> StoreResult<SessionsEnded>;
    /// How the user can sign in now (`NotFound` without the user). Until the transaction
    /// ends, another transaction that reads them waits, so a rule checked on them holds
    /// when the change commits.
    async fn sign_in_methods(&mut self, tenant: &TenantId, sub: &SubjectId) -> StoreResult<SignInMethods>;
    /// Links an upstream account to the user (locked by `sign_in_methods` or `lock_user`);
    /// `Conflict` as [`FederationStore::link_identity`] says.
    async fn link_identity(
        &mut self,
        tenant: &TenantId,
        identity: &NewFederatedIdentity,
        actor: &Actor,
    ) -> StoreResult<()>;
    /// Removes the user's link at `provider`; `NotFound` when there is none.
    async fn unlink_identity(
        &mut self,
        tenant: &TenantId,
        sub: &SubjectId,
        provider: &ProviderId,
        actor: &Actor,
    ) -> StoreResult<()>;
    /// Deletes one of the user's passkeys (`NotFound` if they have none by that id).
    async fn delete_passkey(
        &mut self,
        tenant: &TenantId,
        sub: &SubjectId,
        credential_id: &str,
        actor: &Actor,
    ) -> StoreResult<()>;
    /// Removes the user's authenticator app (`NotFound` if they have none).
    async fn remove_totp(&mut self, tenant: &TenantId, sub: &SubjectId, actor: &Actor) -> StoreResult<()>;
    /// Whether the scope is built in; `None` if the tenant has no such scope.
    async fn scope_is_built_in(&mut self, tenant: &TenantId, name: &ScopeName) -> StoreResult<Option<bool>>;
    /// Deletes a scope (`NotFound` if there is none by that name).
    async fn delete_scope(&mut self, tenant: &TenantId, name: &ScopeName, actor: &Actor) -> StoreResult<()>;
    /// Queues a message, to be sent once this transaction commits (never if it does not).
    async fn enqueue_message(&mut self, tenant: &TenantId, message: &NewMessage, actor: &Actor) -> StoreResult<()>;
    /// Stores a single-use token (the message that carries it is queued in the same
    /// transaction); an unknown subject is `NotFound`.
    async fn create_one_time_token(&mut self, tenant: &TenantId, token: &NewOneTimeToken) -> StoreResult<()>;
    /// Uses the token inside this transaction (what it does commits with it, or neither
    /// happens): like [`OutboxStore::consume_one_time_token`].
    async fn consume_one_time_token(
        &mut self,
        tenant: &TenantId,
        hash: &TokenHash,
        purpose: &str,
        now: UnixTime,
    ) -> StoreResult<Option<OneTimeToken>>;
    /// Uses the newest unused, unexpired token of `purpose` for `sub` (a state found by its
    /// subject rather than a token the user holds, such as a waiting recovery).
    async fn consume_pending_one_time_token(
        &mut self,
        tenant: &TenantId,
        sub: &SubjectId,
        purpose: &str,
        now: UnixTime,
    ) -> StoreResult<Option<OneTimeToken>>;
    /// Marks every unused token of `purpose` for `sub` as used (a newer one replaces them);
    /// returns how many.
    async fn retire_one_time_tokens(
        &mut self,
        tenant: &TenantId,
        sub: &SubjectId,
        purpose: &str,
        now: UnixTime,
    ) -> StoreResult<u64>;
    /// Adds a passkey (`Conflict` if that credential is registered already).
    async fn add_passkey(
        &mut self,
        tenant: &TenantId,
        sub: &SubjectId,
        passkey: &NewPasskey,
        actor: &Actor,
    ) -> StoreResult<()>;
    /// Replaces the user's recovery codes by these.
    async fn replace_recovery_codes(
        &mut self,
        tenant: &TenantId,
        sub: &SubjectId,
        hashes: &[TokenHash],
        actor: &Actor,
    ) -> StoreResult<()>;
    /// Writes an audit event for a step that changes nothing else stored (or more than one
    /// thing), with the transaction.
    async fn audit(
        &mut self,
        tenant: &TenantId,
        actor: &Actor,
        action: &str,
        target: &str,
        details: serde_json::Value,
    ) -> StoreResult<()>;
    /// Until this transaction ends, every other transaction that locks (or changes the sign-in
    /// methods of) this user waits: so that of two parallel replacements one comes last.
    /// The people holding `latchkey-admin` (unlocked, not service accounts), after taking a
    /// lock every change that could remove one takes: count before and after the change,
    /// in its transaction, and the last administrator cannot be removed by two at once.
    async fn active_admins(&mut self, tenant: &TenantId) -> StoreResult<Vec<SubjectId>>;
    /// Adds or removes one link (`false`: nothing changed), with its audit event.
    async fn set_membership(
        &mut self,
        tenant: &TenantId,
        link: &Membership,
        present: bool,
        actor: &Actor,
    ) -> StoreResult<bool>;
    async fn lock_user(&mut self, tenant: &TenantId, sub: &SubjectId) -> StoreResult<()>;
    /// The user as this transaction sees them (`NotFound` without them).
    async fn user(&mut self, tenant: &TenantId, sub: &SubjectId) -> StoreResult<User>;
    /// Makes `number` the user's phone number (the `phone_number` claim), verified (the
    /// `phone_number_verified` claim). Audited as `user.phone_verified`.
    async fn verify_phone(
        &mut self,
        tenant: &TenantId,
        sub: &SubjectId,
        number: &str,
        actor: &Actor,
    ) -> StoreResult<()>;
    /// Makes `email` the user's address, verified: `Conflict` if another user has verified
    /// it. Audited as `user.email_verified`.
    async fn verify_email(
        &mut self,
        tenant: &TenantId,
        sub: &SubjectId,
        email: &Email,
        actor: &Actor,
    ) -> StoreResult<()>;
    /// Counts an attempt (or a message) against each of `keys`, committed with this
    /// transaction: as [`OAuthStore::reserve_attempts`]. On SQLite a transaction holds the
    /// one write lock, so counting from outside it would wait for it.
    async fn reserve_attempts(
        &mut self,
        tenant: &TenantId,
        keys: &[&str],
        now: UnixTime,
        window: std::time::Duration,
    ) -> StoreResult<Vec<ReservedAttempt>>;
    /// Confirms the user's authenticator app enrolment with the step of a correct code;
    /// `false` if none waits or the step was used. Audited as `totp.enrolled`.
    async fn confirm_totp(&mut self, tenant: &TenantId, sub: &SubjectId, step: u64, actor: &Actor)
    -> StoreResult<bool>;
    /// Marks the account's email address and/or phone number unverified (a change its owner
    /// disowned). Audited as `user.contacts_unverified`.
    async fn unverify_contacts(
        &mut self,
        tenant: &TenantId,
        sub: &SubjectId,
        email: bool,
        phone: bool,
        actor: &Actor,
    ) -> StoreResult<()>;
    /// Blocks changes to the account from `since` (its owner disowned a change), or lifts
    /// the block (`None`: they recovered it). Audited as `user.changes_blocked` or
    /// `user.changes_unblocked`.
    async fn block_changes(
        &mut self,
        tenant: &TenantId,
        sub: &SubjectId,
        since: Option<UnixTime>,
        actor: &Actor,
    ) -> StoreResult<()>;
    async fn commit(self: Box<Self>) -> StoreResult<()>;
}

#[async_trait]
pub trait Store:
    UserStore
    + AdminStore
    + AccessStore
    + ApiKeyStore
    + OutboxStore
    + ClientStore
    + ScopeStore
    + SigningKeyStore
    + OAuthStore
    + SessionStore
    + FactorStore
    + ResourceStore
    + AuditStore
    + AuditChainStore
    + PersonalDataStore
    + RetentionStore
    + FederationStore
    + ConsentStore
    + CleanupStore
    + Send
    + Sync
{
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Where the data lives, for people (a file path, or the PostgreSQL URL without password).
    fn location(&self) -> String;
    /// Applies pending migrations, each in its own transaction.
    async fn migrate(&self) -> StoreResult<()>;
    /// Whether the database answers.
    async fn ping(&self) -> StoreResult<()>;
    async fn meta(&self, name: &str) -> StoreResult<Option<String>>;
    /// Stores `value` under `name` unless something is stored there already; returns the
    /// value that is stored afterwards.
    async fn put_meta_if_absent(&self, name: &str, value: &str) -> StoreResult<String>;
    /// Whether any data sealed under the master key exists (signing keys today).
    async fn holds_sealed_data(&self) -> StoreResult<bool>;
    /// A stream of changes made by anyone (other nodes, the CLI): on PostgreSQL through
    /// `LISTEN/NOTIFY`; on SQLite by polling `PRAGMA data_version` every `poll_interval`.
    async fn watch_changes(&self, poll_interval: Duration) -> StoreResult<mpsc::Receiver<Change>>;
    /// Claims the scheduled job `name` for this node, or `None` if another node holds it.
    async fn try_job_lock(&self, name: &str) -> StoreResult<Option<JobLock>>;
    /// Closes the connection pool.
    async fn close(&self);
    /// Whether `close` was called.
    fn is_closed(&self) -> bool;
    /// Starts a write transaction (on SQLite it takes the write lock at once).
    async fn transaction(&self) -> StoreResult<Box<dyn StoreTx>>;
}

/// Opens the store a database URL names: `postgres://…` / `postgresql://…` or `sqlite:PATH`.
/// Does not migrate.
pub async fn open(url: &str, max_connections: u32, clock: Clock) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(url, max_connections, clock).await?))
    } else if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        Ok(Arc::new(SqliteStore::open(std::path::Path::new(path), max_connections, clock).await?))
    } else {
        Err(StoreError::Invalid(format!(
            "database url must start with postgres://, postgresql:// or sqlite:, got `{}`",
            redact_url(url)
        )))
    }
}

impl JobLock {
    pub(crate) fn held(tx: Option<sqlx::Transaction<'static, sqlx::Postgres>>) -> Self {
        Self { held: tx }
    }
}
