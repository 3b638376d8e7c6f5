//! Signing in with a passkey: the browser's answer checked against the stored credential
//! and its owner, and the use recorded. A signature counter that did not grow refuses the
//! sign-in (two authenticators may hold the key).

use latchkey_core::domain::{Factor, TenantId};
use latchkey_core::records::{PasskeyUse, StoredPasskey, User};

use crate::factors::Factors;
use crate::passkeys::{DiscoverableAuthentication, PasskeyError, Passkeys, Uuid};

impl Factors<'_> {
    /// Checks the browser's answer to `challenge` with the relying party `rp` and records
    /// the use. Returns the user (not locked) and the factor the passkey proved.
    pub async fn sign_in_with_passkey(
        &self,
        rp: &Passkeys,
        tenant: &TenantId,
        response: &str,
        challenge: DiscoverableAuthentication,
    ) -> Result<(User, Factor), PasskeyError> {
        let services = self.0;
        let stored_error = |e: crate::ServiceError| PasskeyError::Stored(e.to_string());
        let (credential, id, handle) = Passkeys::identify(response)?;
        let stored = self
            .passkey(tenant, &id)
            .await
            .map_err(stored_error)?
            .ok_or_else(|| PasskeyError::Rejected("unknown credential".into()))?;
        let user = services
            .users()
            .by_sub(tenant, &stored.sub)
            .await
            .map_err(stored_error)?
            .filter(|u| !u.locked)
            .ok_or_else(|| PasskeyError::Rejected("no such user, or locked".into()))?;
        if let Some(handle) = handle {
            // The user handle the authenticator holds must be this user's.
            let given = Uuid::from_slice(&handle).map(|u| u.to_string()).unwrap_or_default();
            let owner = services.users().by_webauthn_id(tenant, &given).await.ok().flatten().map(|u| u.sub);
            if owner.as_ref() != Some(&user.sub) {
                return Err(PasskeyError::Rejected("user handle does not match the credential".into()));
            }
        }
        let (updated, result) = match rp.finish_sign_in(&credential, challenge, &stored) {
            Err(PasskeyError::PossibleClone) => {
                possible_clone(&stored);
                return Err(PasskeyError::PossibleClone);
            }
            other => other?,
        };
        let used = PasskeyUse {
            credential_id: id,
            credential: updated,
            sign_count: result.counter(),
            backup_state: result.backup_state(),
            at: services.clock.now(),
        };
        if !self.record_passkey_use(tenant, used).await.map_err(stored_error)? {
            possible_clone(&stored);
            return Err(PasskeyError::PossibleClone);
        }
        Ok((user, Factor::Passkey { synced: result.backup_eligible(), user_verified: result.user_verified() }))
    }
}

/// A signature counter that did not grow: two authenticators may hold this key.
fn possible_clone(stored: &StoredPasskey) {
    tracing::warn!(
        sub = %stored.sub, credential_id = %stored.credential_id, stored_count = stored.sign_count,
        "passkey sign-in refused: the signature counter did not grow (possible cloned authenticator)"
    );
    metrics::counter!("latchkey_passkey_counter_regressions_total").increment(1);
}
