//! Roles, groups and who holds them, as the store keeps them.

use serde::Serialize;

use crate::domain::{ClientId, Entitlement, GroupName, RoleName, SubjectId};

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
