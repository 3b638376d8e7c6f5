//! Planning the clients of a document: each judged by the client rules on the client the
//! run would leave, the document's scopes and roles counting as existing.

use latchkey_core::crypto::random;
use latchkey_core::domain::{
    ClientAccessPolicy, ClientId, ClientKind, GrantType, RedirectUri, RoleRequirement, ScopeName,
};
use latchkey_core::records::{Client, ClientPatch, NewClient};

use super::document::{ClientEntry, Document, SecretRef};
use std::time::Duration;

use super::plan::{At, Plan, Planner, Secret, Work, diff};
use super::{Action, FieldChange, NewSecret, ObjectKind};
use crate::ServiceResult;
use crate::clients::{self, preview};

/// How long a client's secret replaced from the document keeps working beside the new one
/// unless the document says otherwise (as a rotation through the admin API).
const SECRET_OVERLAP: Duration = Duration::from_secs(86_400);

/// Settings compared by value that are not the client's own (when it was made, the
/// secret's state).
const NOT_COMPARED: [&str; 3] = ["created_at", "updated_at", "previous_secret_expires_at"];

/// What a document wants of one client: its settings, the secret from its reference (with
/// how long the stored one keeps working), and whether its required roles are set after it.
struct Wanted {
    new: NewClient,
    secret: Option<(String, Duration)>,
    deferred: bool,
}

impl Planner<'_> {
    pub(super) async fn plan_clients(&self, doc: &Document, plan: &mut Plan) -> ServiceResult<()> {
        let pending = self.pending(doc);
        for (i, e) in doc.clients.iter().enumerate() {
            let at = At::new("clients", i, &e.client_id);
            let new = self.desired_client(e, &at)?;
            let secret = match &e.secret {
                Some(SecretRef::Resolved(s)) => Some(s.clone()),
                _ => None,
            };
            if secret.is_some() && !new.token_endpoint_auth_method.uses_secret() {
                return Err(at
                    .field("secret")
                    .refuse(format!("`{}` authenticates without a secret", new.token_endpoint_auth_method)));
            }
            let grace = e.secret_grace.map_or(SECRET_OVERLAP, Duration::from_secs);
            if grace > clients::MAX_SECRET_GRACE {
                return Err(at.field("secret_grace").refuse("at most 30 days (2592000 seconds)"));
            }
            let secret = secret.map(|s| (s, grace));
            self.check_not_pruned(&new, &at)?;
            // Required roles that are application roles of clients this run creates exist
            // only after those clients; they are set right after them.
            let deferred = new.access_policy.required_roles.as_ref().is_some_and(|r| {
                r.roles().iter().any(|role| {
                    doc.roles.iter().any(|d| {
                        &d.name == role
                            && !self.roles.iter().any(|s| &s.name == role)
                            && d.application
                                .as_ref()
                                .is_some_and(|a| !self.clients.iter().any(|c| c.client_id.as_str() == a))
                    })
                })
            });
            let current = self.clients.iter().find(|c| c.client_id == new.client_id);
            let wanted = Wanted { new, secret, deferred };
            match current {
                None => self.plan_new_client(wanted, &pending, &at, plan).await?,
                Some(current) => self.plan_client_change(current, wanted, &pending, &at, plan).await?,
            }
        }
        Ok(())
    }

    async fn plan_new_client(
        &self,
        wanted: Wanted,
        pending: &clients::Pending,
        at: &At,
        plan: &mut Plan,
    ) -> ServiceResult<()> {
        let Wanted { mut new, secret, deferred } = wanted;
        let id = new.client_id.clone();
        let secret = match secret {
            Some((s, _)) => Some(s),
            None if new.token_endpoint_auth_method.uses_secret() => {
                let made = random::token_string::<32>();
                plan.secrets.push(NewSecret { client_id: id.clone(), client_secret: made.clone() });
                Some(made)
            }
            None => None,
        };
        new.secret_hash = secret.as_deref().map(|s| clients::secret_hash(&self.services.token_hasher, s));
        let services = self.services.clients();
        services.check_with(self.tenant, &preview(self.tenant, &new), None, pending).await.map_err(|e| at.error(e))?;
        let as_sub = latchkey_core::domain::SubjectId::parse(id.as_str()).ok();
        if let Some(sub) = as_sub
            && self.services.users().by_sub(self.tenant, &sub).await?.is_some()
        {
            return Err(at.refuse("the id is a user's subject id; choose another"));
        }
        plan.step(ObjectKind::Client, id.as_str(), Action::Create);
        if deferred {
            let access = std::mem::take(&mut new.access_policy);
            new.access_policy = ClientAccessPolicy { required_roles: None, ..access.clone() };
            plan.client_access.push(Work::SetClientAccess(id.clone(), Box::new(access)));
        }
        plan.clients.push(Work::CreateClient(Box::new(new)));
        plan.clients.push(Work::Record(ObjectKind::Client, id.to_string(), true));
        Ok(())
    }

    async fn plan_client_change(
        &self,
        current: &Client,
        wanted: Wanted,
        pending: &clients::Pending,
        at: &At,
        plan: &mut Plan,
    ) -> ServiceResult<()> {
        let Wanted { new, secret, deferred } = wanted;
        if current.kind != new.kind {
            return Err(at
                .field("kind")
                .refuse(format!("the client is {}; a client's kind is fixed: register a new client", current.kind)));
        }
        let id = current.client_id.clone();
        let mut patch = full_patch(new, current.etag());
        let mut next = current.clone();
        patch.clone().apply_to(&mut next);
        if let Some(caller) = self.caller {
            caller.may_manage_client(current).map_err(|e| at.error(e))?;
            caller
                .may_widen_client(current, &patch_scopes(&patch), patch.admin_client.unwrap_or(false))
                .map_err(|e| at.error(e))?;
        }
        let new_hash = secret.as_ref().map(|(s, _)| clients::secret_hash(&self.services.token_hasher, s));
        let secret_changes = new_hash.is_some() && new_hash != current.secret_hash;
        if secret_changes {
            next.secret_hash = new_hash;
        }
        let services = self.services.clients();
        services.check_with(self.tenant, &next, Some(current), pending).await.map_err(|e| at.error(e))?;
        let mut changes = diff(current, &next, &NOT_COMPARED);
        if secret_changes {
            let word = |set: bool| serde_json::Value::from(if set { "(a secret)" } else { "(none)" });
            changes.push(FieldChange {
                field: "secret".into(),
                before: word(current.secret_hash.is_some()),
                after: serde_json::Value::from("(the secret from the reference)"),
            });
            if let Some((value, grace)) = secret {
                plan.clients.push(Work::SetSecret(id.clone(), Secret(value), grace));
            }
            // The rotation changes the client's ETag.
            patch.if_match = None;
        }
        let settings_change = changes.iter().any(|c| c.field != "secret");
        if settings_change {
            if deferred {
                let access = patch.access_policy.take().unwrap_or_default();
                patch.access_policy = Some(ClientAccessPolicy {
                    required_roles: current.access_policy.required_roles.clone(),
                    ..access.clone()
                });
                plan.client_access.push(Work::SetClientAccess(id.clone(), Box::new(access)));
            }
            plan.clients.push(Work::UpdateClient(id.clone(), Box::new(patch)));
        }
        plan.step(
            ObjectKind::Client,
            id.as_str(),
            if changes.is_empty() { Action::Unchanged } else { Action::Update { changes } },
        );
        Ok(())
    }

    /// The client an entry describes, every setting left out at its default.
    fn desired_client(&self, e: &ClientEntry, at: &At) -> ServiceResult<NewClient> {
        let client_id = ClientId::parse(&e.client_id).map_err(|err| at.field("client_id").refuse(err))?;
        let kind = e.kind.unwrap_or(ClientKind::Confidential);
        let uris = |name: &str, raw: &[String]| -> ServiceResult<Vec<RedirectUri>> {
            raw.iter().map(|u| RedirectUri::parse_any(u).map_err(|err| at.field(name).refuse(err))).collect()
        };
        let required_roles = match &e.access.required_roles {
            None => None,
            Some(r) if r.roles.is_empty() => {
                return Err(at.field("access.required_roles.roles").refuse("name at least one role"));
            }
            Some(r) if r.all => RoleRequirement::all_of(r.roles.clone()),
            Some(r) => RoleRequirement::any_of(r.roles.clone()),
        };
        let seconds = |s: Option<u64>| s.map(|s| i64::try_from(s).unwrap_or(i64::MAX));
        Ok(NewClient {
            client_id,
            name: e.name.clone(),
            kind,
            secret_hash: None,
            redirect_uris: uris("redirect_uris", &e.redirect_uris)?,
            post_logout_redirect_uris: uris("post_logout_redirect_uris", &e.post_logout_redirect_uris)?,
            grant_types: e
                .grant_types
                .clone()
                .unwrap_or_else(|| vec![GrantType::AuthorizationCode, GrantType::RefreshToken]),
            allowed_scopes: e.scopes.clone().unwrap_or_else(default_scopes),
            token_endpoint_auth_method: e.token_endpoint_auth_method.unwrap_or_else(|| kind.default_auth_method()),
            id_token_signed_response_alg: e
                .id_token_signed_response_alg
                .unwrap_or_else(|| clients::default_id_token_alg(&self.services.config)),
            first_party: e.first_party,
            jwks: e.jwks.as_ref().map(|v| v.to_string()),
            jwks_uri: e.jwks_uri.clone(),
            allow_insecure_no_pkce: e.allow_insecure_no_pkce,
            allow_legacy_assertion_audience: e.allow_legacy_assertion_audience,
            access_token_lifetime: seconds(e.access_token_lifetime),
            session_policy: e.session.clone(),
            access_policy: ClientAccessPolicy {
                release_roles: e.access.release_roles,
                release_groups: e.access.release_groups,
                release_entitlements: e.access.release_entitlements,
                application_roles_only: e.access.application_roles_only,
                required_roles,
            },
            allow_insecure_redirect_uris: e.allow_insecure_redirect_uris,
            refresh_reuse_grace: seconds(e.refresh_reuse_grace),
            admin_client: e.admin_client,
        })
    }
}

/// The scopes a client gets when it names none (as `client create` and `POST /clients`).
fn default_scopes() -> Vec<ScopeName> {
    ["openid", "profile", "email"].iter().filter_map(|s| ScopeName::parse(s).ok()).collect()
}

/// A change that sets every setting to what `new` says, on the client as read (`etag`).
fn full_patch(new: NewClient, etag: String) -> ClientPatch {
    ClientPatch {
        name: Some(new.name),
        redirect_uris: Some(new.redirect_uris),
        post_logout_redirect_uris: Some(new.post_logout_redirect_uris),
        grant_types: Some(new.grant_types),
        allowed_scopes: Some(new.allowed_scopes),
        token_endpoint_auth_method: Some(new.token_endpoint_auth_method),
        id_token_signed_response_alg: Some(new.id_token_signed_response_alg),
        first_party: Some(new.first_party),
        jwks: Some(new.jwks),
        jwks_uri: Some(new.jwks_uri),
        allow_insecure_no_pkce: Some(new.allow_insecure_no_pkce),
        allow_legacy_assertion_audience: Some(new.allow_legacy_assertion_audience),
        access_token_lifetime: Some(new.access_token_lifetime),
        session_policy: Some(new.session_policy),
        access_policy: Some(new.access_policy),
        allow_insecure_redirect_uris: Some(new.allow_insecure_redirect_uris),
        refresh_reuse_grace: Some(new.refresh_reuse_grace),
        admin_client: Some(new.admin_client),
        if_match: Some(etag),
    }
}

fn patch_scopes(patch: &ClientPatch) -> Vec<ScopeName> {
    patch.allowed_scopes.clone().unwrap_or_default()
}

impl Planner<'_> {
    /// A listed client names no scope or role this run prunes.
    fn check_not_pruned(&self, new: &NewClient, at: &At) -> ServiceResult<()> {
        if let Some(s) = new.allowed_scopes.iter().find(|s| self.pruned(ObjectKind::Scope, s.as_str())) {
            return Err(at.field("scopes").refuse(format!("scope `{s}` is pruned by this run")));
        }
        let required = new.access_policy.required_roles.as_ref().map(|r| r.roles().to_vec()).unwrap_or_default();
        if let Some(r) = required.iter().find(|r| self.pruned(ObjectKind::Role, r.as_str())) {
            return Err(at.field("access.required_roles").refuse(format!("role `{r}` is pruned by this run")));
        }
        Ok(())
    }
}
