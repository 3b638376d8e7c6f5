//! Planning the accounts at upstream identity providers linked to a listed user. A document
//! links an account on the operator's word, without the person proving it, so it is held to
//! more than a sign-in: the provider is configured; the account is nobody else's (it is
//! unlinked there first, never moved by a document); the user is no service account and
//! holds no built-in admin role (administrators link their own accounts, after proving
//! them, on their security page); and no unlink leaves the user without a way in.

use std::collections::BTreeSet;

use latchkey_core::domain::{AdminScope, RoleName, Username};
use latchkey_core::records::{SignInMethods, User};

use super::FieldChange;
use super::document::{Document, UserEntry};
use super::plan::{At, Plan, Planner, Work};
use crate::{ServiceResult, admin};

/// How a link is shown in a plan: `provider:subject`.
fn shown(provider: &impl std::fmt::Display, subject: &impl std::fmt::Display) -> String {
    format!("{provider}:{subject}")
}

impl Planner<'_> {
    /// The links of the user `username` (`current` when it exists) the entry asks for; the
    /// change, if any, for the plan. `accounts` holds the upstream accounts listed so far.
    pub(super) async fn plan_identities(
        &self,
        doc: &Document,
        at: &At,
        e: &UserEntry,
        (username, current): (&Username, Option<&User>),
        accounts: &mut BTreeSet<String>,
        plan: &mut Plan,
    ) -> ServiceResult<Option<FieldChange>> {
        let Some(wanted) = &e.identities else { return Ok(None) };
        let at = at.field("identities");
        let federation = self.services.federation();
        let mut providers = BTreeSet::new();
        for (j, w) in wanted.iter().enumerate() {
            let here = At(format!("{}[{j}]", at.0));
            if !federation.is_configured(&w.provider) {
                return Err(here
                    .field("provider")
                    .refuse(format!("no sign-in provider `{}` is configured ([federation.providers])", w.provider)));
            }
            if !providers.insert(w.provider.clone()) {
                return Err(here.refuse(format!("a user has one account at `{}`: it is listed twice", w.provider)));
            }
            if !accounts.insert(shown(&w.provider, &w.subject)) {
                return Err(here.refuse("this account is listed for another user too"));
            }
            let link = self.services.store().federated_identity(self.tenant, &w.provider, &w.subject).await?;
            if let Some(link) = link.filter(|l| current.is_none_or(|u| u.sub != l.sub)) {
                let holder = self.services.users().by_sub(self.tenant, &link.sub).await?;
                let holder = holder.map_or_else(|| link.sub.to_string(), |u| u.username.to_string());
                return Err(here.refuse(format!(
                    "this account is linked to user `{holder}`: unlink it there first (`latchkey user unlink {holder} {}`)",
                    w.provider
                )));
            }
        }
        let held = match current {
            Some(u) => federation.identities(self.tenant, &u.sub).await?,
            None => Vec::new(),
        };
        let before: BTreeSet<String> = held.iter().map(|h| shown(&h.provider, &h.subject)).collect();
        let after: BTreeSet<String> = wanted.iter().map(|w| shown(&w.provider, &w.subject)).collect();
        if before == after {
            return Ok(None);
        }
        if e.service_account {
            return Err(at.refuse("a service account never signs in: it links no account"));
        }
        if let Some(role) = self.admin_role_after(doc, e, username, current).await? {
            return Err(at.refuse(format!(
                "the user holds (or would hold) `{role}`, which confers admin rights: administrators link their own accounts on their security page"
            )));
        }
        if let Some(user) = current {
            let unlinking = held.iter().any(|h| !providers.contains(&h.provider));
            let left = wanted.iter().map(|w| w.provider.to_string()).collect();
            self.check_way_in(&at, user, left, unlinking).await?;
        }
        // Links first: a user whose link moves to another provider has a way in throughout.
        for w in wanted.iter().filter(|w| !before.contains(&shown(&w.provider, &w.subject))) {
            plan.links.push(Work::LinkIdentity(username.clone(), w.provider.clone(), w.subject.clone()));
        }
        for h in held.iter().filter(|h| !providers.contains(&h.provider)) {
            plan.links.push(Work::UnlinkIdentity(username.clone(), h.provider.clone(), h.subject.clone()));
        }
        let change = FieldChange {
            field: "identities".into(),
            before: serde_json::to_value(&before).unwrap_or_default(),
            after: serde_json::to_value(&after).unwrap_or_default(),
        };
        Ok(current.map(|_| change))
    }

    /// A role conferring admin rights (a built-in `latchkey-…` role, or a role with admin
    /// entitlements) the user holds now or would hold after the run: directly, or through a
    /// group (the document's version of each role and group counts).
    async fn admin_role_after(
        &self,
        doc: &Document,
        e: &UserEntry,
        username: &Username,
        current: Option<&User>,
    ) -> ServiceResult<Option<RoleName>> {
        let confers = |role: &RoleName| {
            let entitlements: Vec<&str> = match doc.roles.iter().find(|r| &r.name == role) {
                Some(listed) => listed.entitlements.iter().map(|x| x.as_str()).collect(),
                None => self
                    .roles
                    .iter()
                    .filter(|r| &r.name == role)
                    .flat_map(|r| r.entitlements.iter().map(|x| x.as_str()))
                    .collect(),
            };
            admin::is_built_in_role(role) || entitlements.iter().any(|x| AdminScope::is_admin_name(x))
        };
        let access = match current {
            Some(u) => Some(self.services.access().user_access(self.tenant, &u.sub).await?),
            None => None,
        };
        let mut held: Vec<RoleName> = e.roles.clone().unwrap_or_default();
        held.extend(access.iter().flat_map(|a| a.roles.iter().map(|r| r.name.clone())));
        for g in &self.groups {
            if access.as_ref().is_some_and(|a| a.groups.contains(&g.name)) {
                held.extend(g.roles.iter().cloned());
            }
        }
        for g in &doc.groups {
            let member = match &g.members {
                Some(members) => members.iter().any(|m| Username::parse(m).is_ok_and(|m| &m == username)),
                None => access.as_ref().is_some_and(|a| a.groups.contains(&g.name)),
            };
            if member {
                held.extend(g.roles.iter().flatten().cloned());
            }
        }
        Ok(held.into_iter().find(|r| confers(r)))
    }

    /// Links going (`unlinking`) leave the user a way in with only the links at `providers`
    /// (the rule every unlink meets).
    async fn check_way_in(&self, at: &At, user: &User, providers: Vec<String>, unlinking: bool) -> ServiceResult<()> {
        if !unlinking {
            return Ok(());
        }
        let passkeys = self.services.factors().passkeys(self.tenant, &user.sub).await?.len();
        let after = SignInMethods {
            password: user.has_password,
            passkeys: u32::try_from(passkeys).unwrap_or(u32::MAX),
            linked_providers: providers,
        };
        if !self.services.federation().has_way_in(&after) {
            return Err(at.refuse(
                "without the links it removes the user has no way to sign in: add a passkey or a password first",
            ));
        }
        Ok(())
    }
}
