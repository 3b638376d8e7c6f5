//! Planning a run: the document judged whole against itself and the store, and the writes
//! that would make the store match it, in an order where everything exists before it is
//! named.

use std::collections::BTreeSet;

use latchkey_core::domain::{
    ClientId, Email, GroupName, ProviderId, RoleName, ScopeName, TenantId, UpstreamSubject, Username,
};
use latchkey_core::records::{
    Client, ClientPatch, Group, NewClient, NewRole, NewUser, ResourceServer, Role, RolePatch, ScopeDefinition,
    UserPatch,
};
use serde::Serialize;

use super::document::{Document, invalid};
use super::{Action, FieldChange, NewSecret, ObjectKind, Step, Summary};
use crate::admin::AdminCaller;
use crate::clients::Pending;
use crate::{Latchkey, ServiceError, ServiceResult, access, admin, resources, scopes};

/// A link between a user (by username), a group and a role, made or removed by a run.
#[derive(Debug, Clone)]
pub(super) enum Link {
    UserRole { username: Username, role: RoleName },
    GroupMember { group: GroupName, username: Username },
    GroupRole { group: GroupName, role: RoleName },
}

/// One write of a run.
#[derive(Debug, Clone)]
pub(super) enum Work {
    PutScope(ScopeName, String),
    CreateRole(NewRole),
    UpdateRole(RoleName, RolePatch),
    CreateClient(Box<NewClient>),
    UpdateClient(ClientId, Box<ClientPatch>),
    /// A client's secret from the document replaces the stored one; the old one works
    /// for the grace period.
    SetSecret(ClientId, Secret, std::time::Duration),
    /// The required roles of a client created before them (its own application roles).
    SetClientAccess(ClientId, Box<latchkey_core::domain::ClientAccessPolicy>),
    PutResource(ResourceServer),
    CreateGroup(GroupName, String),
    SetGroupDescription(GroupName, String),
    CreateUser(Box<NewUser>),
    UpdateUser(Username, Box<UserPatch>),
    Link(Link),
    Unlink(Link),
    /// Links an upstream account to a user, replacing the user's link at that provider.
    LinkIdentity(Username, ProviderId, UpstreamSubject),
    UnlinkIdentity(Username, ProviderId, UpstreamSubject),
    /// `prune`: removes an object `apply` created.
    Delete(ObjectKind, String),
    /// Remembers that `apply` created an object (so `prune` may remove it), or forgets it.
    Record(ObjectKind, String, bool),
}

/// A secret a run sets, never shown by `Debug`.
#[derive(Clone)]
pub(super) struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(secret)")
    }
}

/// The writes of a run by phase; each phase needs only what earlier ones made.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub steps: Vec<Step>,
    pub secrets: Vec<NewSecret>,
    pub scopes: Vec<Work>,
    /// Roles of clients that exist already, and tenant-wide roles.
    pub roles: Vec<Work>,
    pub clients: Vec<Work>,
    /// Roles of clients this run creates.
    pub client_roles: Vec<Work>,
    /// Required roles that name roles created after the client.
    pub client_access: Vec<Work>,
    pub resources: Vec<Work>,
    pub groups: Vec<Work>,
    pub users: Vec<Work>,
    pub links: Vec<Work>,
    pub prune: Vec<Work>,
}

impl Plan {
    pub fn summary(&self) -> Summary {
        Summary { steps: self.steps.clone(), secrets: self.secrets.clone() }
    }

    pub fn into_work(self) -> impl Iterator<Item = Work> {
        [
            self.scopes,
            self.roles,
            self.clients,
            self.client_roles,
            self.client_access,
            self.resources,
            self.groups,
            self.users,
            self.links,
            self.prune,
        ]
        .into_iter()
        .flatten()
    }

    pub(super) fn step(&mut self, kind: ObjectKind, name: impl Into<String>, action: Action) {
        self.steps.push(Step { kind, name: name.into(), action });
    }
}

/// Where in the document an object is, for errors: `clients[2] (shop)`.
#[derive(Debug, Clone)]
pub(super) struct At(pub String);

impl At {
    pub fn new(list: &str, index: usize, name: &str) -> Self {
        At(format!("{list}[{index}] ({name})"))
    }

    /// `e` said of this object; a failure of the database stays what it is.
    pub fn error(&self, e: ServiceError) -> ServiceError {
        match e {
            ServiceError::Unavailable(m) => ServiceError::Unavailable(m),
            ServiceError::NotFound(m) => invalid(format!("{}: {m} does not exist", self.0)),
            ServiceError::Forbidden(m) => ServiceError::Forbidden(format!("{}: {m}", self.0)),
            ServiceError::Conflict(m) | ServiceError::Invalid(m) | ServiceError::Stale(m) => {
                invalid(format!("{}: {m}", self.0))
            }
        }
    }

    pub fn refuse(&self, message: impl std::fmt::Display) -> ServiceError {
        invalid(format!("{}: {message}", self.0))
    }

    pub fn field(&self, field: &str) -> At {
        At(format!("{}.{field}", self.0))
    }
}

/// The settings that differ between two versions of an object, by their serialized form.
pub(super) fn diff<T: Serialize>(before: &T, after: &T, skip: &[&str]) -> Vec<FieldChange> {
    let (Ok(serde_json::Value::Object(b)), Ok(serde_json::Value::Object(a))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return Vec::new();
    };
    a.iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .filter_map(|(k, after)| {
            let before = b.get(k).cloned().unwrap_or(serde_json::Value::Null);
            (&before != after).then(|| FieldChange { field: k.clone(), before, after: after.clone() })
        })
        .collect()
}

fn change(field: &str, before: impl Serialize, after: impl Serialize) -> FieldChange {
    FieldChange {
        field: field.to_owned(),
        before: serde_json::to_value(before).unwrap_or_default(),
        after: serde_json::to_value(after).unwrap_or_default(),
    }
}

fn action(changes: Vec<FieldChange>) -> Action {
    if changes.is_empty() { Action::Unchanged } else { Action::Update { changes } }
}

/// The first name a list holds twice.
fn repeated<'a, T: Ord + 'a>(names: impl IntoIterator<Item = &'a T>) -> Option<&'a T> {
    let mut seen = BTreeSet::new();
    names.into_iter().find(|n| !seen.insert(*n))
}

/// Whether the document lists an object.
pub(super) fn listed(doc: &Document, kind: ObjectKind, name: &str) -> bool {
    match kind {
        ObjectKind::Scope => doc.scopes.iter().any(|s| s.name.as_str() == name),
        ObjectKind::Role => doc.roles.iter().any(|r| r.name.as_str() == name),
        ObjectKind::Client => doc.clients.iter().any(|c| c.client_id == name),
        ObjectKind::Resource => doc.resources.iter().any(|r| r.identifier == name),
        ObjectKind::Group => doc.groups.iter().any(|g| g.name.as_str() == name),
        ObjectKind::User => doc.users.iter().any(|u| u.username == name),
    }
}

/// What the store holds now, read once for the plan.
pub(super) struct Planner<'a> {
    pub services: &'a Latchkey,
    pub tenant: &'a TenantId,
    pub scopes: Vec<ScopeDefinition>,
    pub resources: Vec<ResourceServer>,
    pub roles: Vec<Role>,
    pub groups: Vec<Group>,
    pub clients: Vec<Client>,
    pub applied: Vec<(ObjectKind, String)>,
    /// What `prune` removes in this run: never counted as existing.
    pub pruning: BTreeSet<(ObjectKind, String)>,
    /// The admin API caller, whose guards a client change meets too.
    pub caller: Option<&'a AdminCaller>,
}

impl<'a> Planner<'a> {
    pub async fn new(
        services: &'a Latchkey,
        tenant: &'a TenantId,
        caller: Option<&'a AdminCaller>,
    ) -> ServiceResult<Self> {
        let store = services.store();
        let applied = store
            .applied_objects(tenant)
            .await?
            .into_iter()
            .filter_map(|(kind, name)| ObjectKind::parse(&kind).map(|k| (k, name)))
            .collect();
        Ok(Planner {
            services,
            tenant,
            scopes: store.list_scopes(tenant).await?,
            resources: store.list_resource_servers(tenant).await?,
            roles: store.list_roles(tenant).await?,
            groups: store.list_groups(tenant).await?,
            clients: store.list_clients(tenant).await?,
            applied,
            pruning: BTreeSet::new(),
            caller,
        })
    }

    pub async fn plan(mut self, doc: &Document, prune: bool) -> ServiceResult<Plan> {
        let mut plan = Plan::default();
        self.check_unique(doc)?;
        if prune {
            self.pruning = self.applied.iter().filter(|(k, n)| !listed(doc, *k, n)).cloned().collect();
        }
        self.plan_scopes(doc, &mut plan)?;
        self.plan_roles(doc, &mut plan)?;
        self.plan_clients(doc, &mut plan).await?;
        self.plan_resources(doc, &mut plan)?;
        self.plan_groups(doc, &mut plan).await?;
        self.plan_users(doc, &mut plan).await?;
        if prune {
            self.plan_prune(&mut plan).await?;
        }
        Ok(plan)
    }

    /// Each object is listed once.
    fn check_unique(&self, doc: &Document) -> ServiceResult<()> {
        let twice = |list: &str, name: Option<String>| match name {
            Some(n) => Err(invalid(format!("{list}: `{n}` is listed twice"))),
            None => Ok(()),
        };
        twice("scopes", repeated(doc.scopes.iter().map(|s| &s.name)).map(ToString::to_string))?;
        twice("resources", repeated(doc.resources.iter().map(|r| &r.identifier)).cloned())?;
        twice("roles", repeated(doc.roles.iter().map(|r| &r.name)).map(ToString::to_string))?;
        twice("groups", repeated(doc.groups.iter().map(|g| &g.name)).map(ToString::to_string))?;
        twice("clients", repeated(doc.clients.iter().map(|c| &c.client_id)).cloned())?;
        twice("users", repeated(doc.users.iter().map(|u| &u.username)).cloned())
    }

    /// Scopes and roles the document makes that the store does not hold yet.
    pub fn pending(&self, doc: &Document) -> Pending {
        Pending {
            scopes: doc.scopes.iter().map(|s| s.name.clone()).collect(),
            roles: doc.roles.iter().map(|r| r.name.clone()).collect(),
        }
    }

    /// Whether this run removes an object (`prune`).
    pub fn pruned(&self, kind: ObjectKind, name: &str) -> bool {
        self.pruning.contains(&(kind, name.to_owned()))
    }

    pub fn scope_exists(&self, doc: &Document, name: &ScopeName) -> bool {
        !self.pruned(ObjectKind::Scope, name.as_str())
            && (self.scopes.iter().any(|s| &s.name == name) || doc.scopes.iter().any(|s| &s.name == name))
    }

    pub fn role_exists(&self, doc: &Document, name: &RoleName) -> bool {
        !self.pruned(ObjectKind::Role, name.as_str())
            && (self.roles.iter().any(|r| &r.name == name) || doc.roles.iter().any(|r| &r.name == name))
    }

    pub fn client_exists(&self, doc: &Document, id: &ClientId) -> bool {
        !self.pruned(ObjectKind::Client, id.as_str())
            && (self.clients.iter().any(|c| &c.client_id == id)
                || doc.clients.iter().any(|c| c.client_id == id.as_str()))
    }

    /// Whether `apply` created the user (so a document may manage it without `adopt`).
    pub fn user_applied(&self, username: &str) -> bool {
        self.applied.iter().any(|(k, n)| *k == ObjectKind::User && n == username)
    }

    fn plan_scopes(&self, doc: &Document, plan: &mut Plan) -> ServiceResult<()> {
        for (i, e) in doc.scopes.iter().enumerate() {
            let at = At::new("scopes", i, e.name.as_str());
            scopes::check(&e.name, &e.description).map_err(|err| at.error(err))?;
            let put = Work::PutScope(e.name.clone(), e.description.clone());
            match self.scopes.iter().find(|s| s.name == e.name) {
                Some(s) if s.built_in => return Err(at.refuse("a built-in scope cannot be redefined")),
                Some(s) if s.description == e.description => {
                    plan.step(ObjectKind::Scope, e.name.as_str(), Action::Unchanged);
                }
                Some(s) => {
                    let changes = vec![change("description", &s.description, &e.description)];
                    plan.step(ObjectKind::Scope, e.name.as_str(), Action::Update { changes });
                    plan.scopes.push(put);
                }
                None => {
                    plan.step(ObjectKind::Scope, e.name.as_str(), Action::Create);
                    plan.scopes.push(put);
                    plan.scopes.push(Work::Record(ObjectKind::Scope, e.name.to_string(), true));
                }
            }
        }
        Ok(())
    }

    fn plan_roles(&self, doc: &Document, plan: &mut Plan) -> ServiceResult<()> {
        for (i, e) in doc.roles.iter().enumerate() {
            let at = At::new("roles", i, e.name.as_str());
            admin::refuse_built_in(&e.name).map_err(|err| at.error(err))?;
            access::check_description(&e.description).map_err(|err| at.error(err))?;
            admin::check_entitlements(&e.entitlements, e.application.is_some()).map_err(|err| at.error(err))?;
            if let Some(twice) = repeated(&e.entitlements) {
                return Err(at.field("entitlements").refuse(format!("`{twice}` is listed twice")));
            }
            let application = match &e.application {
                None => None,
                Some(raw) => {
                    let id = ClientId::parse(raw).map_err(|err| at.field("application").refuse(err))?;
                    if !self.client_exists(doc, &id) {
                        return Err(at.field("application").refuse(format!("client `{id}` does not exist")));
                    }
                    Some(id)
                }
            };
            let Some(current) = self.roles.iter().find(|r| r.name == e.name) else {
                plan.step(ObjectKind::Role, e.name.as_str(), Action::Create);
                let new_client = application.as_ref().is_some_and(|a| !self.clients.iter().any(|c| &c.client_id == a));
                let phase = if new_client { &mut plan.client_roles } else { &mut plan.roles };
                let new = NewRole {
                    name: e.name.clone(),
                    application,
                    description: e.description.clone(),
                    entitlements: e.entitlements.clone(),
                };
                phase.push(Work::CreateRole(new));
                phase.push(Work::Record(ObjectKind::Role, e.name.to_string(), true));
                continue;
            };
            if current.application != application {
                return Err(at.field("application").refuse(format!(
                    "the role belongs to {}; a role's application is fixed: delete the role to move it",
                    current
                        .application
                        .as_ref()
                        .map_or("no client (tenant-wide)".to_owned(), |c| format!("client `{c}`"))
                )));
            }
            let mut changes = Vec::new();
            let mut patch = RolePatch { if_match: Some(current.etag()), ..RolePatch::default() };
            if current.description != e.description {
                changes.push(change("description", &current.description, &e.description));
                patch.description = Some(e.description.clone());
            }
            patch.add_entitlements =
                e.entitlements.iter().filter(|x| !current.entitlements.contains(x)).cloned().collect();
            patch.remove_entitlements =
                current.entitlements.iter().filter(|x| !e.entitlements.contains(x)).cloned().collect();
            if !patch.add_entitlements.is_empty() || !patch.remove_entitlements.is_empty() {
                let sorted = |v: &[_]| v.iter().map(ToString::to_string).collect::<BTreeSet<_>>();
                changes.push(change("entitlements", sorted(&current.entitlements), sorted(&e.entitlements)));
            }
            if !changes.is_empty() {
                plan.roles.push(Work::UpdateRole(e.name.clone(), patch));
            }
            plan.step(ObjectKind::Role, e.name.as_str(), action(changes));
        }
        Ok(())
    }

    fn plan_resources(&self, doc: &Document, plan: &mut Plan) -> ServiceResult<()> {
        let admin_audience = self.services.admin_audience();
        for (i, e) in doc.resources.iter().enumerate() {
            let at = At::new("resources", i, &e.identifier);
            let client_id = match &e.client_id {
                None => None,
                Some(raw) => {
                    let id = ClientId::parse(raw).map_err(|err| at.field("client_id").refuse(err))?;
                    if !self.client_exists(doc, &id) {
                        return Err(at.field("client_id").refuse(format!("client `{id}` does not exist")));
                    }
                    Some(id)
                }
            };
            if let Some(missing) = e.scopes.iter().find(|s| !self.scope_exists(doc, s)) {
                return Err(at.field("scopes").refuse(format!("scope `{missing}` does not exist")));
            }
            if let Some(twice) = repeated(&e.scopes) {
                return Err(at.field("scopes").refuse(format!("`{twice}` is listed twice")));
            }
            let server = ResourceServer {
                identifier: e.identifier.clone(),
                name: e.name.clone(),
                scopes: e.scopes.iter().map(ToString::to_string).collect(),
                client_id,
            };
            resources::check_shape(&server, &admin_audience).map_err(|err| at.error(err))?;
            match self.resources.iter().find(|r| r.identifier == e.identifier) {
                None => {
                    plan.step(ObjectKind::Resource, &e.identifier, Action::Create);
                    plan.resources.push(Work::PutResource(server));
                    plan.resources.push(Work::Record(ObjectKind::Resource, e.identifier.clone(), true));
                }
                Some(current) => {
                    let changes = diff(&ResourceShown::from(current), &ResourceShown::from(&server), &[]);
                    if !changes.is_empty() {
                        plan.resources.push(Work::PutResource(server));
                    }
                    plan.step(ObjectKind::Resource, &e.identifier, action(changes));
                }
            }
        }
        Ok(())
    }

    pub(super) async fn user_by_username(
        &self,
        username: &Username,
    ) -> ServiceResult<Option<latchkey_core::records::User>> {
        self.services.users().by_username(self.tenant, username).await
    }

    pub(super) fn parse_username(at: &At, raw: &str) -> ServiceResult<Username> {
        Username::parse(raw).map_err(|e| at.refuse(e))
    }

    pub(super) fn parse_email(at: &At, raw: &str) -> ServiceResult<Email> {
        Email::parse(raw).map_err(|e| at.refuse(e))
    }

    pub(super) fn check_role_grantable(&self, doc: &Document, at: &At, roles: &[RoleName]) -> ServiceResult<()> {
        if let Some(built_in) = roles.iter().find(|r| admin::is_built_in_role(r)) {
            return Err(at.refuse(format!(
                "`{built_in}` is a built-in admin role: grant it with `latchkey user grant`, never from a document"
            )));
        }
        if let Some(missing) = roles.iter().find(|r| !self.role_exists(doc, r)) {
            return Err(at.refuse(format!("role `{missing}` does not exist")));
        }
        match repeated(roles) {
            Some(twice) => Err(at.refuse(format!("`{twice}` is listed twice"))),
            None => Ok(()),
        }
    }
}

/// A resource as compared (its client by id).
#[derive(Serialize)]
struct ResourceShown {
    name: String,
    scopes: Vec<String>,
    client_id: Option<String>,
}

impl From<&ResourceServer> for ResourceShown {
    fn from(r: &ResourceServer) -> Self {
        ResourceShown {
            name: r.name.clone(),
            scopes: r.scopes.clone(),
            client_id: r.client_id.as_ref().map(ToString::to_string),
        }
    }
}
