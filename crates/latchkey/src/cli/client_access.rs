//! `latchkey client create|update` options for roles: which access claims the client gets
//! and which roles it requires (the client's `ClientAccessPolicy`).

use clap::Args;
use latchkey_core::domain::{ClientAccessPolicy, RoleName, RoleRequirement};

use super::CliError;

#[derive(Args, Default)]
pub struct AccessSettings {
    /// The access claims this client gets in ID tokens, access tokens, UserInfo and
    /// introspection: a comma-separated list of roles, groups, entitlements, or `none`.
    #[arg(long, value_name = "CLAIMS")]
    release_claims: Option<String>,
    /// Release only this client's own roles (created with `role create --application`),
    /// not the tenant-wide ones. `=false` turns it off again.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    application_roles_only: Option<bool>,
    /// A role a user must hold to sign in to this client and to refresh its tokens
    /// (repeatable: any one of them, or all with --require-all-roles). Replaces the list.
    #[arg(long = "require-role", value_name = "ROLE", conflicts_with = "no_required_roles")]
    require_roles: Vec<String>,
    /// With --require-role: the user must hold every listed role, not just one.
    #[arg(long, requires = "require_roles")]
    require_all_roles: bool,
    /// Require no role any more.
    #[arg(long)]
    no_required_roles: bool,
}

impl AccessSettings {
    /// `current` with these options applied.
    pub fn apply(&self, current: &ClientAccessPolicy) -> Result<ClientAccessPolicy, CliError> {
        let mut policy = current.clone();
        if let Some(raw) = &self.release_claims {
            let (mut roles, mut groups, mut entitlements) = (false, false, false);
            for claim in raw.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                match claim {
                    "roles" => roles = true,
                    "groups" => groups = true,
                    "entitlements" => entitlements = true,
                    "none" => {}
                    other => {
                        return Err(CliError::Usage(format!(
                            "--release-claims: `{other}` is not one of roles, groups, entitlements, none"
                        )));
                    }
                }
            }
            if raw.split(',').any(|c| c.trim() == "none") && (roles || groups || entitlements) {
                return Err(CliError::Usage("--release-claims: `none` cannot be combined with a claim".into()));
            }
            (policy.release_roles, policy.release_groups, policy.release_entitlements) = (roles, groups, entitlements);
        }
        if let Some(only) = self.application_roles_only {
            policy.application_roles_only = only;
        }
        if self.no_required_roles {
            policy.required_roles = None;
        } else if !self.require_roles.is_empty() {
            let roles = self
                .require_roles
                .iter()
                .map(|r| RoleName::parse(r).map_err(|e| CliError::Usage(format!("--require-role: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
            policy.required_roles =
                if self.require_all_roles { RoleRequirement::all_of(roles) } else { RoleRequirement::any_of(roles) };
        }
        Ok(policy)
    }
}

/// The lines `client show` adds for these settings.
pub fn describe(p: &ClientAccessPolicy) -> String {
    let mut out = String::new();
    let released: Vec<&str> =
        [(p.release_roles, "roles"), (p.release_groups, "groups"), (p.release_entitlements, "entitlements")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
    if !released.is_empty() {
        let only = if p.application_roles_only { " (this client's roles only)" } else { "" };
        out += &format!("access claims:  {}{only}\n", released.join(", "));
    }
    if let Some(r) = &p.required_roles {
        out += &format!("requires:       {r}\n");
    }
    out
}
