//! Carrying out a plan through the services, so every write meets the same rules, audit
//! and cache invalidation as from any other door.

use latchkey_core::domain::{ClientId, GroupName, RoleName, ScopeName, SubjectId, TenantId, Username};
use latchkey_core::records::{Actor, Membership};

use super::ObjectKind;
use super::plan::{Link, Plan, Work};
use crate::users::StateChange;
use crate::{Latchkey, ServiceError, ServiceResult};

pub(super) struct Executor<'a> {
    pub services: &'a Latchkey,
    pub tenant: &'a TenantId,
    pub actor: &'a Actor,
}

impl Executor<'_> {
    pub async fn run(&self, plan: Plan) -> ServiceResult<()> {
        let generated: Vec<ClientId> = plan.secrets.iter().map(|s| s.client_id.clone()).collect();
        let deferred: Vec<ClientId> = plan
            .client_access
            .iter()
            .filter_map(|w| match w {
                Work::SetClientAccess(id, _) => Some(id.clone()),
                _ => None,
            })
            .collect();
        // Clients made with a secret the answer was to show: a run that stops shows none.
        let mut unshown = Vec::new();
        // New clients whose required roles are not set yet: they would admit anyone.
        let mut open: Vec<ClientId> = Vec::new();
        for (done, work) in plan.into_work().enumerate() {
            let what = describe(&work);
            let made = match &work {
                Work::CreateClient(c) => Some(c.client_id.clone()),
                _ => None,
            };
            let closes = match &work {
                Work::SetClientAccess(id, _) => Some(id.clone()),
                _ => None,
            };
            if let Err(e) = self.perform(work).await {
                let removed = self.remove_open(&open).await;
                unshown.retain(|id| !removed.contains(id));
                return Err(stopped(e, &what, done, &unshown, &removed));
            }
            if let Some(id) = made {
                if deferred.contains(&id) {
                    open.push(id.clone());
                }
                if generated.contains(&id) {
                    unshown.push(id);
                }
            }
            open.retain(|id| Some(id) != closes.as_ref());
        }
        Ok(())
    }

    /// Deletes the clients a stopped run created without their required roles (fail
    /// closed); those it could not delete are named in the error by the caller.
    async fn remove_open(&self, open: &[ClientId]) -> Vec<ClientId> {
        let mut removed = Vec::new();
        for id in open {
            match self.services.clients().delete(self.tenant, id, self.actor).await {
                Ok(()) => removed.push(id.clone()),
                Err(e) => {
                    tracing::error!(client = %id, error = %e, "apply: a client created without its required roles could not be removed")
                }
            }
        }
        removed
    }

    async fn perform(&self, work: Work) -> ServiceResult<()> {
        let (s, tenant, actor) = (self.services, self.tenant, self.actor);
        match work {
            Work::PutScope(name, description) => s.scopes().put(tenant, &name, &description, actor).await,
            Work::CreateRole(role) => s.access().create_role(tenant, role, actor).await.map(drop),
            Work::UpdateRole(name, patch) => s.access().update_role(tenant, &name, patch, actor).await.map(drop),
            Work::CreateClient(new) => s.clients().create(tenant, *new, actor).await.map(drop),
            Work::UpdateClient(id, patch) => s.clients().update(tenant, &id, *patch, actor).await.map(drop),
            Work::SetSecret(id, secret, grace) => {
                s.clients().replace_secret(tenant, &id, &secret.0, grace, actor).await.map(drop)
            }
            Work::SetClientAccess(id, access) => {
                let patch = latchkey_core::records::ClientPatch { access_policy: Some(*access), ..Default::default() };
                s.clients().update(tenant, &id, patch, actor).await.map(drop)
            }
            Work::PutResource(server) => s.resources().put(tenant, &server, actor).await,
            Work::CreateGroup(name, description) => {
                s.access().create_group(tenant, &name, &description, actor).await.map(drop)
            }
            Work::SetGroupDescription(name, description) => {
                s.access().set_group_description(tenant, &name, &description, actor).await
            }
            Work::CreateUser(user) => s.users().create(tenant, *user, actor).await.map(drop),
            Work::UpdateUser(username, patch) => {
                let sub = self.sub(&username).await?;
                s.users().update(tenant, &sub, *patch, actor).await.map(drop)
            }
            Work::Link(link) => s.access().link(tenant, &self.membership(&link).await?, actor).await.map(drop),
            Work::Unlink(link) => s.access().unlink(tenant, &self.membership(&link).await?, actor).await,
            Work::LinkIdentity(username, provider, subject) => {
                let sub = self.sub(&username).await?;
                s.federation().link_by_operator(tenant, &sub, (&provider, &subject), actor).await
            }
            Work::UnlinkIdentity(username, provider, subject) => {
                let sub = self.sub(&username).await?;
                // The link the plan saw, not whatever was linked since.
                if !s
                    .federation()
                    .identities(tenant, &sub)
                    .await?
                    .iter()
                    .any(|i| i.provider == provider && i.subject == subject)
                {
                    return Err(ServiceError::Stale(format!(
                        "the {provider} link of user `{username}` changed since the plan"
                    )));
                }
                s.federation().unlink(tenant, &sub, &provider, None, actor).await
            }
            Work::Delete(kind, name) => match self.delete(kind, &name).await {
                Ok(()) | Err(ServiceError::NotFound(_)) => {
                    s.store().set_applied(tenant, kind.as_str(), &name, false).await.map_err(Into::into)
                }
                Err(e) => Err(e),
            },
            Work::Record(kind, name, created) => {
                Ok(s.store().set_applied(tenant, kind.as_str(), &name, created).await?)
            }
        }
    }

    async fn sub(&self, username: &Username) -> ServiceResult<SubjectId> {
        let user = self.services.users().by_username(self.tenant, username).await?;
        user.map(|u| u.sub).ok_or_else(|| ServiceError::NotFound(format!("user `{username}`")))
    }

    async fn membership(&self, link: &Link) -> ServiceResult<Membership> {
        Ok(match link {
            Link::UserRole { username, role } => {
                Membership::UserRole { sub: self.sub(username).await?, role: role.clone() }
            }
            Link::GroupMember { group, username } => {
                Membership::GroupMember { group: group.clone(), sub: self.sub(username).await? }
            }
            Link::GroupRole { group, role } => Membership::GroupRole { group: group.clone(), role: role.clone() },
        })
    }

    async fn delete(&self, kind: ObjectKind, name: &str) -> ServiceResult<()> {
        let (s, tenant, actor) = (self.services, self.tenant, self.actor);
        let bad =
            |e: latchkey_core::domain::ParseError| ServiceError::NotFound(format!("{} `{name}` ({e})", kind.as_str()));
        match kind {
            ObjectKind::Scope => s.scopes().delete(tenant, &ScopeName::parse(name).map_err(bad)?, actor).await,
            ObjectKind::Role => s.access().delete_role(tenant, &RoleName::parse(name).map_err(bad)?, actor).await,
            ObjectKind::Client => s.clients().delete(tenant, &ClientId::parse(name).map_err(bad)?, actor).await,
            ObjectKind::Resource => s.resources().delete(tenant, name, actor).await,
            ObjectKind::Group => s.access().delete_group(tenant, &GroupName::parse(name).map_err(bad)?, actor).await,
            ObjectKind::User => {
                let sub = self.sub(&Username::parse(name).map_err(bad)?).await?;
                s.users().change_state(tenant, &sub, StateChange::Delete, actor).await.map(drop)
            }
        }
    }
}

fn describe(work: &Work) -> String {
    match work {
        Work::PutScope(name, _) => format!("saving scope `{name}`"),
        Work::CreateRole(role) => format!("creating role `{}`", role.name),
        Work::UpdateRole(name, _) => format!("changing role `{name}`"),
        Work::CreateClient(c) => format!("creating client `{}`", c.client_id),
        Work::UpdateClient(id, _) => format!("changing client `{id}`"),
        Work::SetSecret(id, _, _) => format!("replacing the secret of client `{id}`"),
        Work::SetClientAccess(id, _) => format!("setting the required roles of client `{id}`"),
        Work::PutResource(r) => format!("saving resource `{}`", r.identifier),
        Work::CreateGroup(name, _) => format!("creating group `{name}`"),
        Work::SetGroupDescription(name, _) => format!("changing group `{name}`"),
        Work::CreateUser(u) => format!("creating user `{}`", u.username),
        Work::UpdateUser(name, _) => format!("changing user `{name}`"),
        Work::Link(link) => format!("adding {}", describe_link(link)),
        Work::Unlink(link) => format!("removing {}", describe_link(link)),
        Work::LinkIdentity(username, provider, subject) => {
            format!("linking the {provider} account `{subject}` to user `{username}`")
        }
        Work::UnlinkIdentity(username, provider, subject) => {
            format!("unlinking the {provider} account `{subject}` from user `{username}`")
        }
        Work::Delete(kind, name) => format!("removing {} `{name}`", kind.as_str()),
        Work::Record(kind, name, _) => format!("recording {} `{name}`", kind.as_str()),
    }
}

fn describe_link(link: &Link) -> String {
    match link {
        Link::UserRole { username, role } => format!("role `{role}` of user `{username}`"),
        Link::GroupMember { group, username } => format!("user `{username}` to group `{group}`"),
        Link::GroupRole { group, role } => format!("role `{role}` of group `{group}`"),
    }
}

/// A write refused on the way: what failed, how many writes were done before it, and
/// what the operator must do about clients it made.
fn stopped(e: ServiceError, what: &str, done: usize, unshown: &[ClientId], removed: &[ClientId]) -> ServiceError {
    let mut after: String = unshown
        .iter()
        .map(|id| format!("; client `{id}` was created with a secret that was not shown: rotate it (`latchkey client rotate-secret {id}`)"))
        .collect();
    for id in removed {
        after.push_str(&format!("; client `{id}` was removed again: its required roles could not be set"));
    }
    let say = |m: String| {
        format!(
            "{what}: {m}; {done} earlier change(s) of this run were made — run `apply` again once this is resolved{after}"
        )
    };
    match e {
        // Another change came between the plan and this write.
        ServiceError::Conflict(m) | ServiceError::Stale(m) => ServiceError::Conflict(say(m)),
        ServiceError::NotFound(m) => ServiceError::Conflict(say(format!("{m} not found"))),
        ServiceError::Invalid(m) => ServiceError::Invalid(say(m)),
        ServiceError::Forbidden(m) => ServiceError::Forbidden(say(m)),
        ServiceError::Unavailable(m) => ServiceError::Unavailable(say(m)),
    }
}
