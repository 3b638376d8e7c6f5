//! What an upstream account's claims become here: profile claims of a new account
//! (`claims`), a username, and memberships of Latchkey groups and roles (`groups_claim`,
//! `groups`).

use std::collections::BTreeSet;

use latchkey_config::{MAPPABLE_CLAIMS, ProviderConfig};
use latchkey_core::domain::{DisplayName, Email, GroupName, ProfileClaims, RoleName, SubjectId, Username};
use latchkey_core::records::Membership;
use serde_json::{Map, Value};

use crate::{ServiceError, ServiceResult};

/// The profile of a new account.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapped {
    pub name: Option<DisplayName>,
    pub profile: ProfileClaims,
}

/// Claims that hold a URL: taken only as `https://` (never `javascript:` or `data:`).
const URL_CLAIMS: [&str; 3] = ["profile", "picture", "website"];
/// The longest value taken for a claim.
const MAX_VALUE: usize = 500;

/// The upstream field a Latchkey claim comes from: the configured one, or the same name.
fn field<'a>(config: &'a ProviderConfig, claim: &'a str) -> &'a str {
    config.claims.get(claim).map_or(claim, String::as_str)
}

/// A string claim, trimmed, without control characters, at most [`MAX_VALUE`] bytes.
fn text<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    let v = claims.get(name)?.as_str()?.trim();
    (!v.is_empty() && v.len() <= MAX_VALUE && !v.chars().any(char::is_control)).then_some(v)
}

pub fn profile(config: &ProviderConfig, claims: &Map<String, Value>) -> Mapped {
    let mut mapped = Mapped::default();
    for claim in MAPPABLE_CLAIMS {
        let Some(value) = text(claims, field(config, claim)) else { continue };
        if URL_CLAIMS.contains(claim) && !value.starts_with("https://") {
            continue;
        }
        match *claim {
            "name" => mapped.name = DisplayName::parse(value).ok(),
            "preferred_username" => {}
            other => {
                let _ = mapped.profile.set(other, value);
            }
        }
    }
    mapped
}

/// What a new account's username is made from: the upstream's name for the account, or the
/// address's local part, or `user`; only the characters a username may have.
pub fn username_base(hint: Option<&str>, email: Option<&Email>) -> String {
    let local = email.map(|e| e.as_str().split('@').next().unwrap_or_default().to_owned());
    let raw = hint.map(str::to_owned).or(local).unwrap_or_default().to_lowercase();
    let cleaned: String =
        raw.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')).take(48).collect();
    if cleaned.is_empty() { "user".into() } else { cleaned }
}

/// The `attempt`-th username to try: the base, then the base with a number.
pub fn username_candidate(base: &str, attempt: u32) -> Option<Username> {
    let raw = if attempt == 0 { base.to_owned() } else { format!("{base}-{}", attempt + 1) };
    Username::parse(&raw).ok()
}

/// The groups the upstream says the person is in (`groups_claim`: a list of strings, or
/// one string).
pub fn upstream_groups(config: &ProviderConfig, claims: &Map<String, Value>) -> BTreeSet<String> {
    let Some(name) = &config.groups_claim else { return BTreeSet::new() };
    match claims.get(name) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(Value::String(one)) => BTreeSet::from([one.clone()]),
        _ => BTreeSet::new(),
    }
}

/// The memberships to grant (mapped from groups the person is in) and to withdraw (mapped
/// only from groups they are not in). A mapping that names an invalid group or role is
/// `Invalid` (check-config would have said so).
pub fn memberships(
    config: &ProviderConfig,
    sub: &SubjectId,
    upstream: &BTreeSet<String>,
) -> ServiceResult<(Vec<Membership>, Vec<Membership>)> {
    let mut grant = BTreeSet::new();
    let mut mapped = BTreeSet::new();
    for (upstream_group, to) in &config.groups {
        for g in &to.groups {
            mapped.insert(("g", g.clone()));
            if upstream.contains(upstream_group) {
                grant.insert(("g", g.clone()));
            }
        }
        for r in &to.roles {
            mapped.insert(("r", r.clone()));
            if upstream.contains(upstream_group) {
                grant.insert(("r", r.clone()));
            }
        }
    }
    let link = |(kind, name): &(&str, String)| -> ServiceResult<Membership> {
        let bad =
            |e: latchkey_core::domain::ParseError| ServiceError::Invalid(format!("federation group mapping: {e}"));
        Ok(if *kind == "g" {
            Membership::GroupMember { group: GroupName::parse(name).map_err(bad)?, sub: sub.clone() }
        } else {
            Membership::UserRole { sub: sub.clone(), role: RoleName::parse(name).map_err(bad)? }
        })
    };
    let withdraw = mapped.difference(&grant).map(link).collect::<ServiceResult<Vec<_>>>()?;
    let grant = grant.iter().map(link).collect::<ServiceResult<Vec<_>>>()?;
    Ok((grant, withdraw))
}

#[cfg(test)]
mod tests {
    use latchkey_config::{GroupMapping, NewAccounts, ProviderKind, SecretRef};
    use serde_json::json;

    use super::*;

    fn provider() -> ProviderConfig {
        ProviderConfig {
            kind: ProviderKind::Oidc,
            name: "Corp".into(),
            issuer: Some("https://sso.example".into()),
            discovery_url: None,
            client_id: "c".into(),
            client_secret: Some(SecretRef::new("s")),
            private_key: None,
            private_key_alg: "ES256".into(),
            scopes: None,
            userinfo: false,
            new_accounts: NewAccounts::On,
            account_domains: vec![],
            hosted_domains: vec![],
            allowed_tenants: vec![],
            base_url: None,
            api_url: None,
            authorization_url: None,
            token_url: None,
            userinfo_url: None,
            subject_field: None,
            email_field: "email".into(),
            email_verified_field: None,
            claims: Default::default(),
            groups_claim: Some("groups".into()),
            groups: Default::default(),
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn claims_are_mapped_by_name_or_by_the_configured_field() {
        let mut config = provider();
        config.claims.insert("given_name".into(), "firstName".into());
        let m = profile(
            &config,
            &claims(json!({
                "name": " Ada Lovelace ", "firstName": "Ada", "given_name": "ignored", "family_name": "Lovelace",
                "picture": "javascript:alert(1)", "website": "https://ada.example", "locale": "en\u{7}",
                "nickname": "x".repeat(501)
            })),
        );
        assert_eq!(m.name.as_ref().map(|n| n.as_str()), Some("Ada Lovelace"));
        assert_eq!(m.profile.given_name.as_deref(), Some("Ada"), "the configured field wins");
        assert_eq!(m.profile.family_name.as_deref(), Some("Lovelace"));
        assert_eq!(m.profile.picture, None, "only https URLs");
        assert_eq!(m.profile.website.as_deref(), Some("https://ada.example"));
        assert_eq!(m.profile.locale, None, "no control characters");
        assert_eq!(m.profile.nickname, None, "too long");
    }

    #[test]
    fn usernames_come_from_the_hint_or_the_address_and_stay_valid() {
        let email = Email::parse("Ada.L@example.com").ok();
        assert_eq!(username_base(Some("Octo Cat!"), email.as_ref()), "octocat");
        assert_eq!(username_base(None, email.as_ref()), "ada.l");
        assert_eq!(username_base(Some("☃"), None), "user");
        assert_eq!(username_candidate("ada", 0).map(|u| u.as_str().to_owned()).as_deref(), Some("ada"));
        assert_eq!(username_candidate("ada", 1).map(|u| u.as_str().to_owned()).as_deref(), Some("ada-2"));
    }

    #[test]
    fn groups_grant_what_is_mapped_and_withdraw_what_no_longer_is() {
        let mut config = provider();
        config
            .groups
            .insert("eng".into(), GroupMapping { groups: vec!["engineering".into()], roles: vec!["deployer".into()] });
        config
            .groups
            .insert("ops".into(), GroupMapping { groups: vec!["operations".into()], roles: vec!["deployer".into()] });
        let sub = SubjectId::generate();
        let upstream = upstream_groups(&config, &claims(json!({"groups": ["eng", "unmapped"]})));
        let (grant, withdraw) = memberships(&config, &sub, &upstream).unwrap_or_else(|e| panic!("{e}"));
        let names = |m: &[Membership]| {
            m.iter()
                .map(|l| match l {
                    Membership::GroupMember { group, .. } => format!("group:{group}"),
                    Membership::UserRole { role, .. } => format!("role:{role}"),
                    Membership::GroupRole { .. } => "group-role".into(),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&grant), ["group:engineering", "role:deployer"]);
        assert_eq!(names(&withdraw), ["group:operations"], "deployer stays: eng still maps to it");
        let none = upstream_groups(&config, &claims(json!({"groups": 7})));
        let (grant, withdraw) = memberships(&config, &sub, &none).unwrap_or_else(|e| panic!("{e}"));
        assert!(grant.is_empty());
        assert_eq!(names(&withdraw), ["group:engineering", "group:operations", "role:deployer"]);
        config.groups.insert("bad".into(), GroupMapping { groups: vec!["Not Valid".into()], roles: vec![] });
        assert!(memberships(&config, &sub, &none).is_err());
    }
}
