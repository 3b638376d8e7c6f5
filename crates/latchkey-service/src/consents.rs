//! What a user allowed a client, and when they must be asked.

use latchkey_core::domain::{AdminScope, ClaimsRequest, ClientId, SubjectId, TenantId, beyond_scopes};
use latchkey_core::records::{Actor, Client, Consent, ConsentRecord, ConsentWithdrawn};

use crate::{Latchkey, ServiceResult, pass_through};

pub struct Consents<'a>(pub(crate) &'a Latchkey);

/// What an authorization request asks the user to allow.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub scopes: &'a [String],
    /// The `claims` parameter (OIDC Core §5.5): claims asked for one by one.
    pub claims: Option<&'a ClaimsRequest>,
    /// `prompt=consent`: the client wants the user asked again.
    pub prompt_consent: bool,
}

impl Consents<'_> {
    pass_through! {
        fn get(tenant: &TenantId, sub: &SubjectId, client: &ClientId) -> Option<Consent> => consent;
    }

    /// What the user allowed each client, by client id.
    pub async fn list(&self, tenant: &TenantId, sub: &SubjectId) -> ServiceResult<Vec<ConsentRecord>> {
        Ok(self.0.store().consents(tenant, sub).await?)
    }

    /// Withdraws what the user allowed `client`: the consent goes, the client's refresh
    /// tokens for the user are revoked and its access tokens for the user refused (on this
    /// node at once, on the others at their next revocation poll), and the client is told
    /// through back-channel logout of every session of the user it took part in. The next
    /// authorization request asks the user again. `NotFound` when there is no such consent.
    pub async fn withdraw(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        client: &ClientId,
        actor: &Actor,
    ) -> ServiceResult<ConsentWithdrawn> {
        let now = self.0.clock.now();
        // Kept while an access token or a code from before could still be presented.
        let code = self.0.config.tokens.authorization_code_lifetime;
        let until = now.plus(self.0.tokens().longest_access_token_lifetime().await.max(code));
        let done = self.0.store().withdraw_consent(tenant, sub, client, (now, until), actor).await?;
        let revocations = &self.0.revocations;
        revocations.add_local_withdrawal(client.as_str(), sub.as_str(), now, until);
        for grant in &done.revoked_grants {
            revocations.add_local("grant", grant, until);
        }
        if done.logouts_queued > 0 {
            self.0.backchannel.notify_one();
        }
        Ok(done)
    }

    /// Whether the user must be asked before `client` gets what is asked: always with
    /// `prompt=consent`, and for `offline_access` (OIDC Core §11); never otherwise for a
    /// first-party client; else when a scope, or a claim asked for one by one that no
    /// scope allowed now or before releases (OIDC Core §5.5), was not allowed before.
    pub async fn needed(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        client: &Client,
        asked: &Asked<'_>,
    ) -> ServiceResult<bool> {
        let offline = asked.scopes.iter().any(|s| s == "offline_access");
        // Admin scopes are never consented to: an admin client was registered by an
        // operator, and what its user may do comes from their admin roles.
        let consentable: Vec<String> = asked.scopes.iter().filter(|s| !AdminScope::is_admin_name(s)).cloned().collect();
        let asked = &Asked { scopes: &consentable, ..*asked };
        if client.first_party && !asked.prompt_consent && !offline {
            return Ok(false);
        }
        if asked.prompt_consent {
            return Ok(true);
        }
        let given = self.get(tenant, sub, &client.client_id).await?.unwrap_or_default();
        if !asked.scopes.iter().all(|s| given.scopes.contains(s)) {
            return Ok(true);
        }
        let scopes: Vec<String> = given.scopes.iter().chain(asked.scopes).cloned().collect();
        let beyond = beyond_scopes(asked.claims, &scopes);
        Ok(!beyond.iter().all(|c| given.claims.iter().any(|g| g == c)))
    }

    /// Records that the user allowed what is asked. Consent accumulates: allowing fewer
    /// scopes or claims now does not withdraw earlier ones.
    pub async fn grant(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        client: &ClientId,
        asked: &Asked<'_>,
        actor: &Actor,
    ) -> ServiceResult<Consent> {
        let mut consent = self.get(tenant, sub, client).await?.unwrap_or_default();
        let claims = beyond_scopes(asked.claims, asked.scopes);
        for (given, now) in [
            (&mut consent.scopes, asked.scopes.iter().map(String::as_str).collect::<Vec<_>>()),
            (&mut consent.claims, claims),
        ] {
            for a in now {
                if !given.iter().any(|g| g == a) {
                    given.push(a.to_owned());
                }
            }
        }
        self.0.store().save_consent(tenant, sub, client, &consent, actor).await?;
        Ok(consent)
    }
}
