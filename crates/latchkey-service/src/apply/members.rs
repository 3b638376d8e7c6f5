//! Planning groups, users and their links, and what `prune` removes. Built-in admin roles
//! are never granted, nor taken away, by a document: `latchkey user grant` does that.

use std::collections::BTreeSet;

use latchkey_core::domain::{DisplayName, RoleName, SubjectId, Username};
use latchkey_core::records::{NewUser, UserPatch};

use super::document::Document;
use super::plan::{At, Link, Plan, Planner, Work};
use super::{Action, FieldChange, ObjectKind};
use crate::{ServiceResult, access, admin};

fn names<T: ToString>(items: impl IntoIterator<Item = T>) -> BTreeSet<String> {
    items.into_iter().map(|i| i.to_string()).collect()
}

fn change(field: &str, before: &BTreeSet<String>, after: &BTreeSet<String>) -> FieldChange {
    FieldChange {
        field: field.to_owned(),
        before: serde_json::to_value(before).unwrap_or_default(),
        after: serde_json::to_value(after).unwrap_or_default(),
    }
}

/// Links to add and remove so `held` becomes `wanted`; the change, if any, for the plan.
fn relink<T: Clone + PartialEq + std::fmt::Display>(
    plan: &mut Plan,
    field: &str,
    held: &[T],
    wanted: &[T],
    link: impl Fn(T) -> Link,
) -> Option<FieldChange> {
    for item in wanted.iter().filter(|w| !held.contains(w)) {
        plan.links.push(Work::Link(link(item.clone())));
    }
    for item in held.iter().filter(|h| !wanted.contains(h)) {
        plan.links.push(Work::Unlink(link(item.clone())));
    }
    (names(held) != names(wanted)).then(|| change(field, &names(held), &names(wanted)))
}

impl Planner<'_> {
    /// The username of each member, by subject id.
    async fn usernames(&self, subs: &[SubjectId]) -> ServiceResult<BTreeSet<Username>> {
        let mut out = BTreeSet::new();
        for sub in subs {
            if let Some(u) = self.services.users().by_sub(self.tenant, sub).await? {
                out.insert(u.username);
            }
        }
        Ok(out)
    }

    /// A user a group may list: one of the document's, or one `apply` created. Any other
    /// account (someone may have signed up under the name) is listed with `adopt = true`.
    async fn check_member(&self, doc: &Document, at: &At, username: &Username) -> ServiceResult<()> {
        if doc.users.iter().any(|u| u.username == username.as_str()) {
            return Ok(());
        }
        if self.pruned(ObjectKind::User, username.as_str()) || self.user_by_username(username).await?.is_none() {
            return Err(at.refuse(format!("user `{username}` does not exist")));
        }
        if !self.user_applied(username.as_str()) {
            return Err(at.refuse(format!(
                "user `{username}` was not created by apply: list it under [[users]] with `adopt = true` once you know the account is the person you mean"
            )));
        }
        Ok(())
    }

    pub(super) async fn plan_groups(&self, doc: &Document, plan: &mut Plan) -> ServiceResult<()> {
        for (i, e) in doc.groups.iter().enumerate() {
            let at = At::new("groups", i, e.name.as_str());
            access::check_description(&e.description).map_err(|err| at.error(err))?;
            if let Some(roles) = &e.roles {
                self.check_role_grantable(doc, &at.field("roles"), roles)?;
            }
            let mut members = Vec::new();
            for raw in e.members.iter().flatten() {
                let username = Self::parse_username(&at.field("members"), raw)?;
                self.check_member(doc, &at.field("members"), &username).await?;
                if members.contains(&username) {
                    return Err(at.field("members").refuse(format!("`{username}` is listed twice")));
                }
                members.push(username);
            }
            let current = self.groups.iter().find(|g| g.name == e.name);
            if let Some(admin_role) = current.and_then(|g| g.roles.iter().find(|r| admin::is_built_in_role(r)))
                && e.members.is_some()
            {
                return Err(at.field("members").refuse(format!(
                    "the group confers the built-in role `{admin_role}`: its members are managed with `latchkey group`, never from a document"
                )));
            }
            let mut changes = Vec::new();
            match current {
                None => {
                    plan.groups.push(Work::CreateGroup(e.name.clone(), e.description.clone()));
                    plan.groups.push(Work::Record(ObjectKind::Group, e.name.to_string(), true));
                }
                Some(g) if g.description != e.description => {
                    changes.push(FieldChange {
                        field: "description".into(),
                        before: g.description.clone().into(),
                        after: e.description.clone().into(),
                    });
                    plan.groups.push(Work::SetGroupDescription(e.name.clone(), e.description.clone()));
                }
                Some(_) => {}
            }
            if let Some(roles) = &e.roles {
                // Built-in admin roles a group confers stay: they are not the document's.
                let held: Vec<RoleName> = current
                    .map(|g| g.roles.iter().filter(|r| !admin::is_built_in_role(r)).cloned().collect())
                    .unwrap_or_default();
                let group = &e.name;
                let link = |role| Link::GroupRole { group: group.clone(), role };
                changes.extend(relink(plan, "roles", &held, roles, link).filter(|_| current.is_some()));
            }
            if e.members.is_some() {
                let held: Vec<Username> = match current {
                    Some(g) => self.usernames(&g.members).await?.into_iter().collect(),
                    None => Vec::new(),
                };
                let group = &e.name;
                let link = |username| Link::GroupMember { group: group.clone(), username };
                changes.extend(relink(plan, "members", &held, &members, link).filter(|_| current.is_some()));
            }
            let action = match (current, changes.is_empty()) {
                (None, _) => Action::Create,
                (Some(_), true) => Action::Unchanged,
                (Some(_), false) => Action::Update { changes },
            };
            plan.step(ObjectKind::Group, e.name.as_str(), action);
        }
        Ok(())
    }

    /// An address is listed once, and is not another user's verified address (an
    /// unverified one proves nothing: anyone may type it at sign-up).
    async fn check_address(
        &self,
        at: &At,
        address: &latchkey_core::domain::Email,
        username: &Username,
        seen: &mut BTreeSet<String>,
    ) -> ServiceResult<()> {
        // Compared as the store keeps addresses unique: normalised (NFC, lowercase).
        if !seen.insert(address.normalized()) {
            return Err(at.refuse(format!("`{address}` is another listed user's too")));
        }
        let owner = self.services.users().by_email(self.tenant, address).await?;
        if owner.is_some_and(|o| &o.username != username && o.email_verified) {
            return Err(at.refuse(format!("`{address}` is another user's")));
        }
        Ok(())
    }

    pub(super) async fn plan_users(&self, doc: &Document, plan: &mut Plan) -> ServiceResult<()> {
        let mut emails = BTreeSet::new();
        let mut accounts = BTreeSet::new();
        for (i, e) in doc.users.iter().enumerate() {
            let at = At::new("users", i, &e.username);
            let username = Self::parse_username(&at.field("username"), &e.username)?;
            let email = e.email.as_deref().map(|raw| Self::parse_email(&at.field("email"), raw)).transpose()?;
            let name = match &e.name {
                Some(raw) => Some(DisplayName::parse(raw).map_err(|err| at.field("name").refuse(err))?),
                None => None,
            };
            if let Some(roles) = &e.roles {
                self.check_role_grantable(doc, &at.field("roles"), roles)?;
            }
            let current = self.user_by_username(&username).await?;
            if let Some(address) = &email {
                self.check_address(&at.field("email"), address, &username, &mut emails).await?;
            }
            let Some(current) = current else {
                plan.step(ObjectKind::User, username.as_str(), Action::Create);
                plan.users.push(Work::CreateUser(Box::new(NewUser {
                    sub: SubjectId::generate(),
                    username: username.clone(),
                    email,
                    email_verified: e.email_verified.unwrap_or(false),
                    name,
                    profile: Default::default(),
                    password_hash: None,
                    service_account: e.service_account,
                })));
                plan.users.push(Work::Record(ObjectKind::User, username.to_string(), true));
                relink(plan, "roles", &[], e.roles.as_deref().unwrap_or_default(), |role| Link::UserRole {
                    username: username.clone(),
                    role,
                });
                self.plan_identities(doc, &at, e, (&username, None), &mut accounts, plan).await?;
                continue;
            };
            if !e.adopt && !self.user_applied(username.as_str()) {
                return Err(at.refuse(
                    "a user of that name exists and was not created by apply (anyone may have signed up under it): set `adopt = true` once you know the account is the person you mean",
                ));
            }
            if current.service_account != e.service_account {
                return Err(at.field("service_account").refuse("fixed once the user exists"));
            }
            let (mut changes, patch) = profile_changes(&current, e, email, name);
            if !changes.is_empty() {
                plan.users.push(Work::UpdateUser(username.clone(), Box::new(patch)));
            }
            if let Some(roles) = &e.roles {
                let held: Vec<RoleName> = self
                    .services
                    .access()
                    .user_access(self.tenant, &current.sub)
                    .await?
                    .roles
                    .into_iter()
                    .filter(|r| r.direct && !admin::is_built_in_role(&r.name))
                    .map(|r| r.name)
                    .collect();
                let link = |role| Link::UserRole { username: username.clone(), role };
                changes.extend(relink(plan, "roles", &held, roles, link));
            }
            changes.extend(self.plan_identities(doc, &at, e, (&username, Some(&current)), &mut accounts, plan).await?);
            let action = if changes.is_empty() { Action::Unchanged } else { Action::Update { changes } };
            plan.step(ObjectKind::User, username.as_str(), action);
        }
        Ok(())
    }

    /// What `apply` created that the document no longer lists, newest kinds first (users
    /// before the groups they are in, clients before their roles).
    pub(super) async fn plan_prune(&self, plan: &mut Plan) -> ServiceResult<()> {
        let mut gone: Vec<&(ObjectKind, String)> = self.pruning.iter().collect();
        // Users before the groups they are in, clients before their roles; a client that
        // requires roles before the clients whose roles they may be.
        let requires = |name: &str| {
            self.clients.iter().any(|c| c.client_id.as_str() == name && c.access_policy.required_roles.is_some())
        };
        gone.sort_by(|a, b| {
            b.0.cmp(&a.0).then_with(|| requires(&b.1).cmp(&requires(&a.1))).then_with(|| a.1.cmp(&b.1))
        });
        for (kind, name) in gone {
            if !self.exists(*kind, name).await? {
                plan.prune.push(Work::Record(*kind, name.clone(), false));
                continue;
            }
            let at = super::plan::At(format!("prune {} `{name}`", kind.as_str()));
            if let (Some(caller), ObjectKind::Client) = (self.caller, kind)
                && let Some(c) = self.clients.iter().find(|c| c.client_id.as_str() == name)
            {
                caller.may_manage_client(c).map_err(|e| at.error(e))?;
            }
            if let (Some(person), ObjectKind::User) = (self.caller.and_then(|c| c.person.as_ref()), kind) {
                let user = self.user_by_username(&Self::parse_username(&at, name)?).await?;
                if user.is_some_and(|u| &u.sub == person) {
                    return Err(at.refuse("that is the person making this call"));
                }
            }
            plan.step(*kind, name.clone(), Action::Delete);
            plan.prune.push(Work::Delete(*kind, name.clone()));
        }
        Ok(())
    }

    async fn exists(&self, kind: ObjectKind, name: &str) -> ServiceResult<bool> {
        Ok(match kind {
            ObjectKind::Scope => self.scopes.iter().any(|s| s.name.as_str() == name && !s.built_in),
            ObjectKind::Role => self.roles.iter().any(|r| r.name.as_str() == name),
            ObjectKind::Client => self.clients.iter().any(|c| c.client_id.as_str() == name),
            ObjectKind::Resource => self.resources.iter().any(|r| r.identifier == name),
            ObjectKind::Group => self.groups.iter().any(|g| g.name.as_str() == name),
            ObjectKind::User => match Username::parse(name) {
                Ok(u) => self.user_by_username(&u).await?.is_some(),
                Err(_) => false,
            },
        })
    }
}

/// What a listed user's entry changes of the stored user: an address, whether it is
/// verified, a name (each only where the entry gives it).
fn profile_changes(
    current: &latchkey_core::records::User,
    e: &super::document::UserEntry,
    email: Option<latchkey_core::domain::Email>,
    name: Option<DisplayName>,
) -> (Vec<FieldChange>, UserPatch) {
    let mut changes = Vec::new();
    let mut patch = UserPatch { if_match: Some(current.etag()), ..UserPatch::default() };
    // A new address is unverified unless the document says otherwise (the store resets the
    // flag with the address).
    let email_changes = email.is_some() && email != current.email;
    let verified_after = match e.email_verified {
        Some(v) => v,
        None if email_changes => false,
        None => current.email_verified,
    };
    if email_changes {
        changes.push(FieldChange { field: "email".into(), before: shown(&current.email), after: shown(&email) });
        patch.email = Some(email);
        patch.email_verified = e.email_verified;
    }
    if verified_after != current.email_verified {
        changes.push(FieldChange {
            field: "email_verified".into(),
            before: current.email_verified.into(),
            after: verified_after.into(),
        });
        patch.email_verified = e.email_verified.or(Some(verified_after));
    }
    if name.is_some() && name != current.name {
        changes.push(FieldChange { field: "name".into(), before: shown(&current.name), after: shown(&name) });
        patch.name = Some(name);
    }
    (changes, patch)
}

/// A value shown in a plan (an absent one as `null`).
fn shown<T: serde::Serialize>(value: &Option<T>) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}
