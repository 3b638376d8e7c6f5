//! A person's data, as one JSON document (GDPR Art. 15 and 20): everything held about them —
//! profile and claims, email and phone state, passkeys (names, dates, synced; never key
//! material), factors (what and since when; never secrets), sessions, consents and their
//! history, linked identities, API keys (metadata), roles and groups, the recipients (which
//! apps get which claims), how long each kind is kept, and the audit entries about them,
//! with other people (administrators) left unnamed (Art. 15(4)). The export is recorded.

use latchkey_core::domain::{SubjectId, TenantId, claims_of_scope};
use latchkey_core::records::{Actor, AuditEvent, AuditQuery, ConsentRecord};
use serde_json::{Value, json};

use crate::{Latchkey, ServiceError, ServiceResult};

/// The most audit entries an export holds (the newest); the document says when more exist.
pub const MAX_AUDIT_ENTRIES: usize = 10_000;

pub struct DataExport<'a>(pub(crate) &'a Latchkey);

fn time(t: latchkey_core::UnixTime) -> String {
    t.to_rfc3339()
}

impl DataExport<'_> {
    /// The document for `sub`, requested by `actor` (the person, or an operator).
    pub async fn of(&self, tenant: &TenantId, sub: &SubjectId, actor: &Actor) -> ServiceResult<Value> {
        let s = self.0;
        let user = s.users().by_sub(tenant, sub).await?.ok_or_else(|| ServiceError::NotFound(format!("user {sub}")))?;
        s.audit().record(tenant, actor, "user.exported", sub.as_str(), json!({})).await?;
        let activity = s.store().account_activity(tenant, sub).await?;
        let consents = s.consents().list(tenant, sub).await?;
        let document = json!({
            "format": "latchkey-personal-data-v1",
            "generated_at": time(s.clock.now()),
            "profile": {
                "sub": user.sub.as_str(),
                "username": user.username.as_str(),
                "name": user.name.as_ref().map(|n| n.as_str()),
                "email": {"address": user.email.as_ref().map(|e| e.as_str()), "verified": user.email_verified},
                "phone": {
                    "number": user.profile.phone_number,
                    "verified": user.profile.phone_number_verified,
                },
                "claims": user.profile,
                "created_at": user.created_at,
                "updated_at": user.updated_at,
                "locked": user.locked,
                "service_account": user.service_account,
            },
            "last_sign_in_at": activity.map(|(at, _)| time(at)),
            "told_unused_at": activity.and_then(|(_, notice)| notice.map(time)),
            "sign_in": self.factors(tenant, sub, user.has_password, user.password_changed_at).await?,
            "sessions": self.sessions(tenant, sub).await?,
            "consents": consents.iter().map(consent).collect::<Vec<_>>(),
            "consent_history": s.consents().history(tenant, sub).await?.iter().map(|h| json!({
                "app": h.client_id.as_str(),
                "scopes": h.consent.scopes,
                "claims": h.consent.claims,
                "version": h.consent.version,
                "how": h.consent.how.as_str(),
                "given_at": time(h.granted_at),
                "withdrawn_at": h.withdrawn_at.map(time),
            })).collect::<Vec<_>>(),
            "recipients": self.recipients(&consents).await,
            "linked_identities": s.federation().identities(tenant, sub).await?.iter().map(|i| json!({
                "provider": i.provider.as_str(),
                "subject": i.subject.as_str(),
                "email": i.email,
                "linked_at": time(i.linked_at),
                "last_used_at": i.last_used_at.map(time),
            })).collect::<Vec<_>>(),
            "api_keys": s.api_keys().list(tenant, Some(sub)).await?,
            "access": self.access(sub).await?,
            "retention": self.retention(),
            "audit_entries": self.audit_entries(tenant, sub).await?,
        });
        Ok(document)
    }

    async fn factors(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        has_password: bool,
        password_changed_at: Option<latchkey_core::UnixTime>,
    ) -> ServiceResult<Value> {
        let factors = self.0.factors();
        let passkeys: Vec<Value> = factors
            .passkeys(tenant, sub)
            .await?
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "created_at": time(p.created_at),
                    "last_used_at": p.last_used_at.map(time),
                    "synced": p.backup_eligible,
                    "backed_up": p.backup_state,
                })
            })
            .collect();
        let totp = factors.totp(tenant, sub).await?.filter(|t| t.confirmed);
        Ok(json!({
            "password": {"set": has_password, "changed_at": password_changed_at.map(time)},
            "passkeys": passkeys,
            "authenticator_app": totp.map(|t| json!({"since": time(t.created_at)})),
            "recovery_codes_left": factors.recovery_codes_left(tenant, sub).await?,
        }))
    }

    async fn sessions(&self, tenant: &TenantId, sub: &SubjectId) -> ServiceResult<Vec<Value>> {
        let (now, idle) = (self.0.clock.now(), self.0.config.sessions.idle_timeout);
        Ok(self
            .0
            .sessions()
            .of_user(tenant, sub, now, idle)
            .await?
            .iter()
            .map(|i| {
                let s = &i.session;
                json!({
                    "signed_in_at": time(s.auth_time),
                    "created_at": time(s.created_at),
                    "last_active_at": time(s.last_active_at),
                    "expires_at": time(s.expires_at),
                    "methods": s.amr,
                    "level": s.acr,
                    "device": s.user_agent,
                    "ip": s.ip,
                    "apps": i.clients.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                })
            })
            .collect())
    }

    /// Which app receives which claims about the person: what its consent's scopes release
    /// and the claims allowed one by one.
    async fn recipients(&self, consents: &[ConsentRecord]) -> Vec<Value> {
        let mut out = Vec::new();
        for c in consents {
            let name = self.0.caches.client(&c.client_id).await.ok().flatten().map(|client| client.name.clone());
            let mut claims: Vec<&str> = c.consent.scopes.iter().flat_map(|s| claims_of_scope(s)).collect();
            claims.extend(c.consent.claims.iter().map(String::as_str));
            claims.push("sub");
            claims.sort_unstable();
            claims.dedup();
            out.push(json!({"app": c.client_id.as_str(), "app_name": name, "claims": claims}));
        }
        out
    }

    async fn access(&self, sub: &SubjectId) -> ServiceResult<Value> {
        let held = self.0.access().held(sub).await?;
        Ok(json!({
            "roles": held.roles.iter().map(|r| json!({
                "name": r.name.as_str(),
                "app": r.application.as_ref().map(|a| a.as_str()),
                "direct": r.direct,
            })).collect::<Vec<_>>(),
            "groups": held.groups.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        }))
    }

    /// How long each kind of data is kept, as this server is configured.
    fn retention(&self) -> Value {
        let c = &self.0.config;
        let secs = |d: std::time::Duration| d.as_secs();
        json!({
            "account": "until the account is deleted",
            "sessions_seconds": {"lifetime": secs(c.sessions.lifetime), "remembered": secs(c.sessions.remember_me_lifetime), "idle": secs(c.sessions.idle_timeout)},
            "sign_in_failure_counters_seconds": secs(c.login.failure_window),
            "consents": "until withdrawn or the account is deleted; their history until the account is deleted",
            "audit_entries_seconds": secs(c.retention.audit_log),
            "audit_entries": "0 seconds means kept without end; once the account is deleted their personal data can no longer be read",
            "unused_account_seconds": secs(c.retention.inactive_accounts),
            "unused_account": match c.retention.inactive_accounts() {
                None => "kept however long it goes unused".to_owned(),
                Some(_) => format!(
                    "after this long unused, you are told by email; {} days later, still unused, it is {}",
                    c.retention.inactive_accounts_grace.as_secs() / 86_400,
                    match c.retention.inactive_accounts_action {
                        latchkey_config::InactiveAccountAction::Disable => "disabled",
                        latchkey_config::InactiveAccountAction::Delete => "deleted",
                    }
                ),
            },
            "unverified_sign_up_seconds": secs(c.retention.unverified_sign_ups),
        })
    }

    /// The audit entries about the person (or made by them), newest first, each actor named
    /// only as "you", "an administrator" or "the system".
    async fn audit_entries(&self, tenant: &TenantId, sub: &SubjectId) -> ServiceResult<Value> {
        let me = Actor::User(sub.to_string()).as_string();
        let mut entries: Vec<(i64, AuditEvent)> = Vec::new();
        let mut truncated = false;
        for q in [
            AuditQuery { target: Some(sub.to_string()), ..AuditQuery::default() },
            AuditQuery { actor: Some(me.clone()), ..AuditQuery::default() },
        ] {
            let mut page = AuditQuery { limit: latchkey_core::records::MAX_PAGE, ..q };
            loop {
                let got = self.0.audit().query(tenant, &page).await?;
                let last = got.last().map(|(id, _)| *id);
                let full = got.len() == page.limit as usize;
                entries.extend(got);
                if entries.len() >= 2 * MAX_AUDIT_ENTRIES {
                    truncated = true;
                    break;
                }
                match last {
                    Some(id) if full => page.before_id = Some(id),
                    _ => break,
                }
            }
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.0));
        entries.dedup_by_key(|(id, _)| *id);
        truncated |= entries.len() > MAX_AUDIT_ENTRIES;
        entries.truncate(MAX_AUDIT_ENTRIES);
        let items: Vec<Value> = entries
            .iter()
            .map(|(_, e)| {
                let by = match e.actor.as_str() {
                    a if a == me => "you",
                    "system" => "the system",
                    a if a.starts_with("client:") => "an app",
                    _ => "an administrator",
                };
                let about = if e.target == sub.as_str() { "you".to_owned() } else { e.target.clone() };
                json!({"at": time(e.at), "action": e.action, "by": by, "about": about, "details": e.details})
            })
            .collect();
        Ok(json!({"entries": items, "truncated": truncated}))
    }
}

fn consent(c: &ConsentRecord) -> Value {
    json!({
        "app": c.client_id.as_str(),
        "scopes": c.consent.scopes,
        "claims": c.consent.claims,
        "version": c.consent.version,
        "how": c.consent.how.as_str(),
        "given_at": time(c.granted_at),
    })
}
