//! What a user allowed a client, and when they must be asked.

use latchkey_core::domain::{AdminScope, ClaimsRequest, ClientId, SubjectId, TenantId, beyond_scopes};
use latchkey_core::records::{
    Actor, Client, Consent, ConsentHistoryEntry, ConsentHow, ConsentRecord, ConsentWithdrawn,
};

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

    /// Every consent the user gave, oldest first, with when each was withdrawn.
    pub async fn history(&self, tenant: &TenantId, sub: &SubjectId) -> ServiceResult<Vec<ConsentHistoryEntry>> {
        Ok(self.0.store().consent_history(tenant, sub).await?)
    }

    /// Sets the fingerprint of the consent page's own text (its template and the claim
    /// descriptions it shows), which the server knows: part of every consent's version.
    pub fn use_page_text(&self, fingerprint: String) {
        let _ = self.0.consent_page_text.set(fingerprint);
    }

    /// The version of what a user is shown when asked for `consent`'s scopes and claims: a
    /// fingerprint of the page's text and the scopes' descriptions as they are now. A
    /// consent given to another version is asked again.
    pub async fn shown_version(&self, consent: &Consent) -> ServiceResult<String> {
        let described = self.0.caches.scopes().await?;
        let mut scopes: Vec<&str> = consent.scopes.iter().map(String::as_str).collect();
        scopes.sort_unstable();
        scopes.dedup();
        let mut claims: Vec<&str> = consent.claims.iter().map(String::as_str).collect();
        claims.sort_unstable();
        claims.dedup();
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(b"latchkey consent v1\n");
        ctx.update(self.0.consent_page_text.get().map_or("", String::as_str).as_bytes());
        for scope in scopes {
            let description =
                described.iter().find(|d| d.name.as_str() == scope).map_or("", |d| d.description.as_str());
            ctx.update(format!("\nscope {} {scope}\n{} {description}", scope.len(), description.len()).as_bytes());
        }
        for claim in claims {
            ctx.update(format!("\nclaim {} {claim}", claim.len()).as_bytes());
        }
        Ok(base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &ctx.finish().as_ref()[..16]))
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
        let Some(given) = self.get(tenant, sub, &client.client_id).await? else { return Ok(true) };
        if !covers(&given, asked) {
            return Ok(true);
        }
        // What was shown then must be what would be shown now.
        Ok(given.version != self.shown_version(&given).await?)
    }

    /// Records, the first time a first-party client gets something (it is never asked
    /// for), what it got, as a consent given by its being first-party.
    pub async fn note_first_party(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        client: &Client,
        asked: &Asked<'_>,
    ) -> ServiceResult<()> {
        let consentable: Vec<String> = asked.scopes.iter().filter(|s| !AdminScope::is_admin_name(s)).cloned().collect();
        let asked = &Asked { scopes: &consentable, ..*asked };
        if let Some(given) = self.get(tenant, sub, &client.client_id).await?
            && covers(&given, asked)
        {
            return Ok(());
        }
        let actor = Actor::User(sub.to_string());
        self.record(tenant, sub, &client.client_id, asked, ConsentHow::FirstParty, &actor).await.map(|_| ())
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
        self.record(tenant, sub, client, asked, ConsentHow::Page, actor).await
    }

    async fn record(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        client: &ClientId,
        asked: &Asked<'_>,
        how: ConsentHow,
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
        consent.version = self.shown_version(&consent).await?;
        consent.how = how;
        self.0.store().save_consent(tenant, sub, client, &consent, actor).await?;
        Ok(consent)
    }
}

/// Whether what was given covers what is asked: every scope, and every claim asked for one
/// by one that no scope (given or asked) releases.
fn covers(given: &Consent, asked: &Asked<'_>) -> bool {
    if !asked.scopes.iter().all(|s| given.scopes.contains(s)) {
        return false;
    }
    let scopes: Vec<String> = given.scopes.iter().chain(asked.scopes).cloned().collect();
    beyond_scopes(asked.claims, &scopes).iter().all(|c| given.claims.iter().any(|g| g == c))
}
