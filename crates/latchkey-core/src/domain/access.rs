//! Roles, groups and entitlements (RFC 9068 §2.2.3.1 `roles`, `groups`, `entitlements`),
//! and what a client releases of them and requires of its users.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ParseError;

/// Lowercase ASCII letters and digits, then also `.`, `_`, `:`, `-` (and `/` where
/// `slash` is allowed), at most `max` bytes. Lowercase only, so `Admin` and `admin` can
/// never name two things an operator takes for one.
fn check_name(kind: &'static str, raw: &str, max: usize, slash: bool) -> Result<(), ParseError> {
    let first_ok = raw.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok = raw.bytes().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b':' | b'-') || (slash && b == b'/')
    });
    if raw.is_empty() || raw.len() > max || !first_ok || !rest_ok {
        let extra = if slash { ", `/`" } else { "" };
        return Err(ParseError::new(
            kind,
            format!(
                "`{raw}` must be 1 to {max} characters: lowercase letters and digits, then also `.`, `_`, `:`, `-`{extra}"
            ),
        ));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal, $slash:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, ParseError> {
                check_name($kind, raw, $max, $slash).map(|()| Self(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// A role's name (`editor`, `billing:admin`), unique in its tenant.
    RoleName, "role name", 64, false
);
name_type!(
    /// A group's name (`staff`), unique in its tenant.
    GroupName, "group name", 64, false
);
name_type!(
    /// One right a role confers (`reports:read`, `docs/write`).
    Entitlement, "entitlement", 128, true
);

/// A set of names a caller must hold (roles, groups, scopes): any one of them, or all of
/// them. Written as a list (any of) or as `all = [...]` in the rules file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Requirement<T> {
    AnyOf(Vec<T>),
    AllOf(Vec<T>),
}

/// The roles a client requires of its users.
pub type RoleRequirement = Requirement<RoleName>;

impl<T: Ord + Clone> Requirement<T> {
    /// Any of `items` (duplicates dropped); `None` for an empty list, which requires nothing.
    pub fn any_of(items: Vec<T>) -> Option<Self> {
        Some(Self::AnyOf(dedupe(items))).filter(|r| !r.items().is_empty())
    }

    /// All of `items` (duplicates dropped); `None` for an empty list.
    pub fn all_of(items: Vec<T>) -> Option<Self> {
        Some(Self::AllOf(dedupe(items))).filter(|r| !r.items().is_empty())
    }

    pub fn items(&self) -> &[T] {
        match self {
            Self::AnyOf(r) | Self::AllOf(r) => r,
        }
    }

    /// Whether a caller holding `held` meets the requirement.
    pub fn is_met_by<'a>(&self, held: impl IntoIterator<Item = &'a T> + Clone) -> bool
    where
        T: 'a,
    {
        let has = |item: &T| held.clone().into_iter().any(|h| h == item);
        match self {
            Self::AnyOf(r) => r.iter().any(has),
            Self::AllOf(r) => r.iter().all(has),
        }
    }
}

impl Requirement<RoleName> {
    pub fn roles(&self) -> &[RoleName] {
        self.items()
    }
}

impl<T: fmt::Display> fmt::Display for Requirement<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (how, items) = match self {
            Self::AnyOf(r) => ("any", r),
            Self::AllOf(r) => ("all", r),
        };
        let names: Vec<String> = items.iter().map(ToString::to_string).collect();
        write!(f, "{how} of [{}]", names.join(", "))
    }
}

fn dedupe<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items.dedup();
    items
}

/// Which of the access claims a client receives about its users, and which roles it
/// requires of them. Nothing is released until an operator says so.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientAccessPolicy {
    pub release_roles: bool,
    pub release_groups: bool,
    pub release_entitlements: bool,
    /// Release only the roles that belong to this client (application roles), not the
    /// tenant-wide ones. Another application's roles are never released.
    pub application_roles_only: bool,
    /// A user without these roles cannot sign in to the client, nor refresh its tokens.
    pub required_roles: Option<RoleRequirement>,
}

impl ClientAccessPolicy {
    pub fn releases_any(&self) -> bool {
        self.release_roles || self.release_groups || self.release_entitlements
    }
}

/// The access claims, named as RFC 9068 §2.2.3.1 names them.
pub const ACCESS_CLAIMS: [&str; 3] = ["roles", "groups", "entitlements"];

#[cfg(test)]
mod tests {
    use super::*;

    fn role(s: &str) -> RoleName {
        RoleName::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn names_are_lowercase_and_bounded() {
        for good in ["editor", "billing:admin", "a", "team-1.lead_x"] {
            assert!(RoleName::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "Editor", "-x", ":x", "a b", "a/b", "é", &"a".repeat(65)] {
            let e = RoleName::parse(bad).err();
            assert!(e.as_ref().is_some_and(|e| e.kind == "role name"), "{bad}: {e:?}");
        }
        assert!(Entitlement::parse("docs/write").is_ok());
        assert!(Entitlement::parse(&"a".repeat(129)).is_err());
        assert!(GroupName::parse("Staff").is_err());
    }

    #[test]
    fn requirements_are_any_of_or_all_of() {
        let any = RoleRequirement::any_of(vec![role("a"), role("b"), role("a")]);
        let all = RoleRequirement::all_of(vec![role("a"), role("b")]);
        assert_eq!(any.as_ref().map(|r| r.roles().len()), Some(2));
        let held = [role("b")];
        assert_eq!(any.as_ref().map(|r| r.is_met_by(&held)), Some(true));
        assert_eq!(all.as_ref().map(|r| r.is_met_by(&held)), Some(false));
        let both = [role("b"), role("a")];
        assert_eq!(all.as_ref().map(|r| r.is_met_by(&both)), Some(true));
        assert_eq!(RoleRequirement::any_of(vec![]), None);
        assert_eq!(all.map(|r| r.to_string()).as_deref(), Some("all of [a, b]"));
    }

    #[test]
    fn a_stored_policy_reads_back_and_an_old_one_releases_nothing() {
        let p = ClientAccessPolicy {
            release_roles: true,
            required_roles: RoleRequirement::all_of(vec![role("x")]),
            ..Default::default()
        };
        let json = serde_json::to_string(&p).unwrap_or_default();
        assert_eq!(serde_json::from_str::<ClientAccessPolicy>(&json).ok(), Some(p));
        let old: ClientAccessPolicy = serde_json::from_str("{}").unwrap_or_else(|e| panic!("{e}"));
        assert!(!old.releases_any() && old.required_roles.is_none());
    }
}
