//! Roles, groups and who holds them, as the store keeps them.

use serde::Serialize;

use crate::crypto::TokenHash;
use crate::domain::{ApiKeyId, ClientId, Entitlement, GroupName, RoleName, RoutePattern, ScopeName, SubjectId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Role {
    pub name: RoleName,
    /// The client this role belongs to (an application role), or `None` for a tenant-wide one.
    pub application: Option<ClientId>,
    pub description: String,
    pub entitlements: Vec<Entitlement>,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewRole {
    pub name: RoleName,
    pub application: Option<ClientId>,
    pub description: String,
    pub entitlements: Vec<Entitlement>,
}

/// Changes to a role; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct RolePatch {
    pub description: Option<String>,
    pub add_entitlements: Vec<Entitlement>,
    pub remove_entitlements: Vec<Entitlement>,
    /// Change only a role whose [`Role::etag`] is this (else `Stale`), checked in the
    /// change's transaction.
    pub if_match: Option<String>,
}

impl Role {
    /// The entity tag of the role as stored (RFC 9110 §8.8.3).
    pub fn etag(&self) -> String {
        super::entity_tag(self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    pub name: GroupName,
    pub description: String,
    /// The roles every member holds through the group.
    pub roles: Vec<RoleName>,
    pub members: Vec<SubjectId>,
    pub created_at: i64,
}

/// One link between a user, a group and a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// The user holds the role directly.
    UserRole { sub: SubjectId, role: RoleName },
    /// The user belongs to the group.
    GroupMember { group: GroupName, sub: SubjectId },
    /// Members of the group hold the role.
    GroupRole { group: GroupName, role: RoleName },
}

/// A role a user holds, directly or through a group, with what it confers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldRole {
    pub name: RoleName,
    pub application: Option<ClientId>,
    pub entitlements: Vec<Entitlement>,
    /// Held directly (`user grant`), not only through a group.
    pub direct: bool,
    /// The groups it comes through.
    pub via_groups: Vec<GroupName>,
}

/// Everything a user holds: roles (each once), and the groups the user belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UserAccess {
    pub roles: Vec<HeldRole>,
    pub groups: Vec<GroupName>,
}

impl UserAccess {
    pub fn role_names(&self) -> impl Iterator<Item = &RoleName> + Clone {
        self.roles.iter().map(|r| &r.name)
    }
}

/// An API key as stored: the secret only as a keyed hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: ApiKeyId,
    /// The user or service account whose rights the key carries (at most theirs).
    pub owner: SubjectId,
    pub name: String,
    #[serde(skip)]
    pub secret_hash: TokenHash,
    /// After a rotation, the old secret until `previous_valid_until`.
    #[serde(skip)]
    pub previous_secret_hash: Option<TokenHash>,
    pub previous_valid_until: Option<i64>,
    pub scopes: Vec<ScopeName>,
    /// Paths it may be used for; empty: any.
    pub routes: Vec<RoutePattern>,
    /// HTTP methods it may be used with; empty: any.
    pub methods: Vec<String>,
    /// The resource (RFC 8707 identifier) it is for; `None`: any.
    pub audience: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: ApiKeyId,
    pub owner: SubjectId,
    pub name: String,
    pub secret_hash: TokenHash,
    pub scopes: Vec<ScopeName>,
    pub routes: Vec<RoutePattern>,
    pub methods: Vec<String>,
    pub audience: Option<String>,
    pub expires_at: Option<i64>,
}
