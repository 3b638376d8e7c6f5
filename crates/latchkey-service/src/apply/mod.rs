//! Declarative configuration: `latchkey apply FILE` and `POST /admin/api/v1/apply` make a
//! tenant's scopes, API resources, roles, groups, clients and listed users match a
//! [`Document`]. The whole document is judged against itself and the store before the
//! first write (every rule of every object, every reference), so a bad document changes
//! nothing; a second run with the same document plans nothing. `prune` removes what the
//! document no longer lists, only among the objects `apply` created.

mod clients;
mod document;
mod execute;
mod identities;
mod members;
mod plan;

use latchkey_core::domain::{AdminScope, ClientId, TenantId};
use latchkey_core::records::Actor;
use serde::Serialize;

pub use document::{
    AccessEntry, ClientEntry, Document, Format, GroupEntry, MAX_DOCUMENT, MAX_PER_KIND, RequiredRolesEntry,
    ResourceEntry, RoleEntry, ScopeEntry, SecretRef, UserEntry,
};

use crate::admin::AdminCaller;
use crate::{Latchkey, ServiceError, ServiceResult};

pub struct Apply<'a>(pub(crate) &'a Latchkey);

/// The kinds of object a document lists, in the order they are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Scope,
    Role,
    Client,
    Resource,
    Group,
    User,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 6] = [
        ObjectKind::Scope,
        ObjectKind::Role,
        ObjectKind::Client,
        ObjectKind::Resource,
        ObjectKind::Group,
        ObjectKind::User,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Scope => "scope",
            ObjectKind::Role => "role",
            ObjectKind::Client => "client",
            ObjectKind::Resource => "resource",
            ObjectKind::Group => "group",
            ObjectKind::User => "user",
        }
    }

    fn parse(raw: &str) -> Option<ObjectKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

/// One setting a run changes: its value before and after (secrets never shown).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

/// What a run does to one object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Action {
    Create,
    Update {
        changes: Vec<FieldChange>,
    },
    Unchanged,
    /// `prune`: created by `apply` and no longer in the document.
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub kind: ObjectKind,
    pub name: String,
    #[serde(flatten)]
    pub action: Action,
}

/// What a run would do, or did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub steps: Vec<Step>,
    /// Secrets made for new clients, each shown only here.
    pub secrets: Vec<NewSecret>,
}

impl Summary {
    /// Whether the run changes anything.
    pub fn changes_anything(&self) -> bool {
        self.steps.iter().any(|s| s.action != Action::Unchanged)
    }
}

/// `Debug` shows the client, never the secret.
#[derive(Clone, Serialize)]
pub struct NewSecret {
    pub client_id: ClientId,
    pub client_secret: String,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSecret").field("client_id", &self.client_id).field("client_secret", &"(secret)").finish()
    }
}

/// How a run goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Plan only; change nothing.
    pub dry_run: bool,
    /// Remove the objects `apply` created that the document no longer lists.
    pub prune: bool,
}

impl Apply<'_> {
    /// Makes the tenant match `doc` (secret references resolved by the caller). A document
    /// that breaks a rule anywhere is refused whole, naming where, and nothing is written.
    /// A write that fails on the way (another change came between) stops the run; the
    /// error says what was done, and running again finishes it.
    pub async fn run(
        &self,
        tenant: &TenantId,
        doc: &Document,
        options: Options,
        actor: &Actor,
    ) -> ServiceResult<Summary> {
        self.run_guarded(tenant, doc, options, actor, None).await
    }

    /// [`Self::run`] for an admin API caller: it needs every admin right (a document can
    /// touch every kind of object and confer any role), gives no secret references, and
    /// never changes or removes the client it calls with.
    pub async fn run_as_admin(
        &self,
        tenant: &TenantId,
        doc: &Document,
        options: Options,
        caller: &AdminCaller,
    ) -> ServiceResult<Summary> {
        if let Some(missing) = AdminScope::ALL.into_iter().find(|s| !caller.may(*s)) {
            return Err(ServiceError::Forbidden(format!(
                "apply can change every kind of object, so it needs every admin right; this caller lacks `{missing}`"
            )));
        }
        doc.refuse_secret_references()?;
        self.run_guarded(tenant, doc, options, &caller.actor, Some(caller)).await
    }

    async fn run_guarded(
        &self,
        tenant: &TenantId,
        doc: &Document,
        options: Options,
        actor: &Actor,
        caller: Option<&AdminCaller>,
    ) -> ServiceResult<Summary> {
        if doc.clients.iter().any(|c| c.secret.as_ref().is_some_and(|s| !matches!(s, SecretRef::Resolved(_)))) {
            return Err(ServiceError::Invalid("the document's secret references were not read".into()));
        }
        // A dry run writes nothing, so it waits for nobody.
        if options.dry_run {
            return self.plan_and_run(tenant, doc, options, actor, caller).await;
        }
        // One run at a time: in this process, and on PostgreSQL across nodes and the CLI,
        // so no run writes by a plan another run made stale.
        let busy = || ServiceError::Conflict("another `apply` run is under way: run again once it has finished".into());
        let _here = self.0.apply_runs.try_lock().map_err(|_| busy())?;
        let everywhere = self.0.store().try_job_lock(&format!("apply:{tenant}")).await?.ok_or_else(busy)?;
        let result = self.plan_and_run(tenant, doc, options, actor, caller).await;
        everywhere.release().await;
        result
    }

    async fn plan_and_run(
        &self,
        tenant: &TenantId,
        doc: &Document,
        options: Options,
        actor: &Actor,
        caller: Option<&AdminCaller>,
    ) -> ServiceResult<Summary> {
        let plan = plan::Planner::new(self.0, tenant, caller).await?.plan(doc, options.prune).await?;
        let summary = plan.summary();
        if let Some(own) = summary.steps.iter().find(|s| {
            s.kind == ObjectKind::Client
                && !matches!(s.action, Action::Unchanged | Action::Create)
                && ClientId::parse(&s.name).is_ok_and(|id| caller.is_some_and(|c| c.is_calling_client(&id)))
        }) {
            return Err(ServiceError::Invalid(format!(
                "client `{}` is the one this call comes with; change it from the CLI or with another admin client",
                own.name
            )));
        }
        if options.dry_run {
            return Ok(Summary { secrets: Vec::new(), ..summary });
        }
        execute::Executor { services: self.0, tenant, actor }.run(plan).await?;
        Ok(summary)
    }
}
