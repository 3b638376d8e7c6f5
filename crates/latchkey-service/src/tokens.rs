//! Grants and what carries them: parked authorization requests, authorization codes,
//! refresh tokens and revocations.

use std::time::Duration;

use latchkey_core::UnixTime;
use latchkey_core::crypto::TokenHash;
use latchkey_core::domain::{ClientId, TenantId};
use latchkey_core::records::{
    Actor, Client, CodeRedemption, NewCode, NewRefreshToken, PendingAuthorization, RefreshRotation, Revocation,
    StoredRefreshToken,
};

use crate::{Latchkey, pass_through};

/// The purposes the one-time values of the code flow are hashed under.
pub const CODE_PURPOSE: &str = "authorization_code";
pub const REFRESH_PURPOSE: &str = "refresh_token";

pub struct Tokens<'a>(pub(crate) &'a Latchkey);

impl Tokens<'_> {
    pass_through! {
        /// Parks a request unless `max_per_ip` are parked for its address already (atomic across nodes).
        fn park_request(tenant: &TenantId, id_hash: &TokenHash, pending: &PendingAuthorization, max_per_ip: u32) -> bool
            => put_authorization_request;
        fn parked_request(tenant: &TenantId, id_hash: &TokenHash, now: UnixTime) -> Option<PendingAuthorization>
            => authorization_request;
        fn drop_parked_request(tenant: &TenantId, id_hash: &TokenHash) -> () => delete_authorization_request;
        fn update_parked_request(tenant: &TenantId, id_hash: &TokenHash, request: &str) -> bool
            => update_authorization_request;
        fn insert_code(tenant: &TenantId, code: &NewCode) -> () => insert_code;
        /// Spends a code atomically: of concurrent redemptions, on any node, one wins.
        fn redeem_code(tenant: &TenantId, code_hash: &TokenHash, client: &ClientId, now: UnixTime) -> CodeRedemption
            => redeem_code;
        fn insert_refresh_token(tenant: &TenantId, token: &NewRefreshToken) -> () => insert_refresh_token;
        fn refresh_token(tenant: &TenantId, hash: &TokenHash) -> Option<StoredRefreshToken> => refresh_token;
        /// Rotates `old` to `new` atomically; reuse of a rotated token revokes its family.
        fn rotate_refresh_token(tenant: &TenantId, old: &TokenHash, new: NewRefreshToken, now: UnixTime, grace: Duration)
            -> RefreshRotation => rotate_refresh_token;
        /// Revokes a grant: its refresh tokens, and its access tokens through the revocation set.
        fn revoke_grant(tenant: &TenantId, grant_id: &str, until: UnixTime, now: UnixTime, actor: &Actor) -> ()
            => revoke_grant;
        fn revoke_access_token(tenant: &TenantId, jti: &str, until: UnixTime, actor: &Actor) -> () => revoke_access_token;
        /// Revocations recorded after `seq`, oldest first, still in force at `now`.
        fn revocations_after(seq: i64, now: UnixTime) -> Vec<Revocation> => revocations_after;
    }

    /// The access token lifetime for `client`: its own, or the configured default.
    pub fn access_token_lifetime(&self, client: &Client) -> Duration {
        access_token_lifetime(&self.0.config, client)
    }

    /// The longest lifetime any access token may have now: how long a revocation must be kept.
    pub async fn longest_access_token_lifetime(&self) -> Duration {
        let default = self.0.config.tokens.access_token_lifetime;
        match self.0.store().list_clients(&TenantId::default_tenant()).await {
            Ok(clients) => clients
                .iter()
                .filter_map(|c| c.access_token_lifetime.and_then(|s| u64::try_from(s).ok()))
                .map(Duration::from_secs)
                .fold(default, std::cmp::max),
            // Unknown: keep the revocation for a day, longer than any sensible access token.
            Err(_) => default.max(Duration::from_secs(86_400)),
        }
    }
}

/// The access token lifetime for `client`: its own, or the configured default.
pub fn access_token_lifetime(config: &latchkey_config::Config, client: &Client) -> Duration {
    client
        .access_token_lifetime
        .and_then(|s| u64::try_from(s).ok())
        .map_or(config.tokens.access_token_lifetime, Duration::from_secs)
}
