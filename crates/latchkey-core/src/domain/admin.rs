//! The admin API's audience, its scopes and the built-in admin roles.
//!
//! An admin right is an admin scope. A person's token carries the scopes their client asked
//! for; what they may do is those scopes intersected with the entitlements of the roles they
//! hold, checked at each request. A client-credentials token or a service account's API key
//! is worth its scopes (narrowed, for a key, to what its owner still holds).

use std::fmt;

/// The admin API's path under the issuer; `{issuer}{ADMIN_API_PATH}` is its audience, a
/// built-in API resource (RFC 8707).
pub const ADMIN_API_PATH: &str = "/admin/api/v1";

/// The built-in role that holds every admin scope.
pub const ADMIN_ROLE: &str = "latchkey-admin";
/// The built-in role that holds every read-only admin scope.
pub const AUDITOR_ROLE: &str = "latchkey-auditor";
/// Role names that begin with this are Latchkey's own: nobody creates, changes or deletes them.
pub const BUILT_IN_ROLE_PREFIX: &str = "latchkey-";

/// One admin right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AdminScope {
    /// The server summary.
    ServerRead,
    UsersRead,
    UsersWrite,
    ClientsRead,
    ClientsWrite,
    /// Scopes, API resources, roles, groups and memberships.
    AccessRead,
    AccessWrite,
    /// Signing keys: list, rotate, retire.
    Keys,
    AuditRead,
}

impl AdminScope {
    pub const ALL: [AdminScope; 9] = [
        AdminScope::ServerRead,
        AdminScope::UsersRead,
        AdminScope::UsersWrite,
        AdminScope::ClientsRead,
        AdminScope::ClientsWrite,
        AdminScope::AccessRead,
        AdminScope::AccessWrite,
        AdminScope::Keys,
        AdminScope::AuditRead,
    ];

    /// Every admin scope begins with this; no other scope may.
    pub const PREFIX: &'static str = "admin:";

    pub fn as_str(self) -> &'static str {
        match self {
            AdminScope::ServerRead => "admin:server:read",
            AdminScope::UsersRead => "admin:users:read",
            AdminScope::UsersWrite => "admin:users:write",
            AdminScope::ClientsRead => "admin:clients:read",
            AdminScope::ClientsWrite => "admin:clients:write",
            AdminScope::AccessRead => "admin:access:read",
            AdminScope::AccessWrite => "admin:access:write",
            AdminScope::Keys => "admin:keys",
            AdminScope::AuditRead => "admin:audit:read",
        }
    }

    pub fn parse(raw: &str) -> Option<AdminScope> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Whether `raw` is in the admin namespace (an admin scope, or a name that pretends to be one).
    pub fn is_admin_name(raw: &str) -> bool {
        raw.starts_with(Self::PREFIX)
    }

    /// Whether the scope only reads (the auditor's rights).
    pub fn read_only(self) -> bool {
        matches!(
            self,
            AdminScope::ServerRead
                | AdminScope::UsersRead
                | AdminScope::ClientsRead
                | AdminScope::AccessRead
                | AdminScope::AuditRead
        )
    }

    /// What the scope allows, for the scope list and the OpenAPI document.
    pub fn description(self) -> &'static str {
        match self {
            AdminScope::ServerRead => "Admin API: read the server summary",
            AdminScope::UsersRead => "Admin API: read users, their sessions, passkeys and linked accounts",
            AdminScope::UsersWrite => "Admin API: create, change, lock and delete users; end their sessions",
            AdminScope::ClientsRead => "Admin API: read OAuth clients",
            AdminScope::ClientsWrite => "Admin API: create, change and delete OAuth clients",
            AdminScope::AccessRead => "Admin API: read scopes, API resources, roles and groups",
            AdminScope::AccessWrite => "Admin API: change scopes, API resources, roles, groups and memberships",
            AdminScope::Keys => "Admin API: list, rotate and retire signing keys",
            AdminScope::AuditRead => "Admin API: read the audit log",
        }
    }

    /// The scopes a built-in role holds (`None` for any other role).
    pub fn of_built_in_role(role: &str) -> Option<Vec<AdminScope>> {
        match role {
            ADMIN_ROLE => Some(Self::ALL.to_vec()),
            AUDITOR_ROLE => Some(Self::ALL.into_iter().filter(|s| s.read_only()).collect()),
            _ => None,
        }
    }
}

impl fmt::Display for AdminScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_parses_back_and_is_in_the_namespace() {
        for s in AdminScope::ALL {
            assert_eq!(AdminScope::parse(s.as_str()), Some(s));
            assert!(AdminScope::is_admin_name(s.as_str()));
        }
        assert_eq!(AdminScope::parse("admin:all"), None);
        assert!(AdminScope::is_admin_name("admin:all"));
        assert!(!AdminScope::is_admin_name("reports:read"));
    }

    #[test]
    fn the_auditor_only_reads_and_the_admin_holds_everything() {
        let auditor = AdminScope::of_built_in_role(AUDITOR_ROLE).unwrap();
        assert!(auditor.contains(&AdminScope::AuditRead));
        assert!(!auditor.contains(&AdminScope::UsersWrite));
        assert!(!auditor.contains(&AdminScope::Keys));
        assert_eq!(AdminScope::of_built_in_role(ADMIN_ROLE).unwrap().len(), AdminScope::ALL.len());
        assert_eq!(AdminScope::of_built_in_role("editor"), None);
    }
}
