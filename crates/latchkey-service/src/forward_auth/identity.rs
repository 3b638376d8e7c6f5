//! Who an allowed request is for, as the identity headers the proxy copies to the app.

use latchkey_config::IdentityHeaders;

/// The identity headers' total size (names, values, `: ` and line ends) stays under this.
pub const HEADER_BUDGET: usize = 4096;
/// Names the headers that were cut to stay under the budget.
pub const TRUNCATED_HEADER: &str = "Remote-Truncated";

/// The caller of an allowed request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The username (`client:` and the client's id for a client-credentials token).
    pub user: String,
    /// Only a verified address.
    pub email: Option<String>,
    pub name: Option<String>,
    pub groups: Vec<String>,
    /// Tenant-wide roles only: an application's own roles are for its tokens.
    pub roles: Vec<String>,
}

fn size(name: &str, value: &str) -> usize {
    name.len() + value.len() + 4
}

impl Identity {
    /// The headers for the app, under [`HEADER_BUDGET`]: user, email and name first; then
    /// roles and groups, whole entries only, as many as fit. When entries are left out,
    /// [`TRUNCATED_HEADER`] names the headers that lost some (an app must then not take
    /// the list as complete; a missing role only ever refuses more). Headers with nothing
    /// to say (no email, no roles) are left out.
    pub fn headers(&self, names: &IdentityHeaders) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut used = size(TRUNCATED_HEADER, &format!("{},{}", names.roles, names.groups));
        for (name, value) in
            [(&names.user, Some(&self.user)), (&names.email, self.email.as_ref()), (&names.name, self.name.as_ref())]
        {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                let v: String = v.chars().filter(|c| !c.is_control()).take(512).collect();
                used += size(name, &v);
                out.push((name.clone(), v));
            }
        }
        let mut cut: Vec<&str> = Vec::new();
        for (name, list) in [(&names.roles, &self.roles), (&names.groups, &self.groups)] {
            let mut value = String::new();
            for entry in list {
                let extra = entry.len() + usize::from(!value.is_empty());
                if used + size(name, &value) + extra > HEADER_BUDGET {
                    cut.push(name);
                    break;
                }
                if !value.is_empty() {
                    value.push(',');
                }
                value.push_str(entry);
            }
            if !value.is_empty() {
                used += size(name, &value);
                out.push((name.clone(), value));
            }
        }
        if !cut.is_empty() {
            out.push((TRUNCATED_HEADER.to_owned(), cut.join(",")));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_carry_the_identity_and_stay_under_the_budget() {
        let names = IdentityHeaders::default();
        let ada = Identity {
            user: "ada".into(),
            email: Some("ada@example.com".into()),
            name: Some("Ada Lovelace".into()),
            groups: vec!["staff".into()],
            roles: vec!["editor".into(), "admin".into()],
        };
        let h = ada.headers(&names);
        let get = |h: &[(String, String)], n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(get(&h, "Remote-User").as_deref(), Some("ada"));
        assert_eq!(get(&h, "Remote-Roles").as_deref(), Some("editor,admin"));
        assert_eq!(get(&h, "Remote-Groups").as_deref(), Some("staff"));
        assert_eq!(get(&h, TRUNCATED_HEADER), None);

        let many = Identity { roles: (0..500).map(|i| format!("role-{i:03}")).collect(), ..ada.clone() };
        let h = many.headers(&names);
        let total: usize = h.iter().map(|(k, v)| size(k, v)).sum();
        assert!(total <= HEADER_BUDGET, "{total} bytes");
        assert_eq!(get(&h, TRUNCATED_HEADER).as_deref(), Some("Remote-Roles,Remote-Groups"));
        let roles = get(&h, "Remote-Roles").unwrap_or_default();
        assert!(roles.split(',').all(|r| r.len() == 8), "whole entries only: {roles}");
        assert_eq!(get(&h, "Remote-Groups"), None, "nothing left for groups");
        let nobody = Identity { user: "bot".into(), ..Identity::default() }.headers(&names);
        assert_eq!(nobody, vec![("Remote-User".to_owned(), "bot".to_owned())], "empty lists are left out");
    }
}
