//! `role create|list|show|update|delete`.

use clap::Subcommand;
use latchkey_core::domain::{ClientId, Entitlement, RoleName};
use latchkey_core::records::{Actor, NewRole, Role, RolePatch};

use super::{CliError, Context, output};

#[derive(Subcommand)]
pub enum RoleCommand {
    /// Create a role: tenant-wide, or one client's own with --application.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// A right the role confers, e.g. reports:read (repeatable).
        #[arg(long = "entitlement", value_name = "ENTITLEMENT")]
        entitlements: Vec<String>,
        /// The client this role belongs to (an application role).
        #[arg(long, value_name = "CLIENT_ID")]
        application: Option<String>,
    },
    List,
    /// Show a role, its entitlements and who holds it.
    Show {
        name: String,
    },
    /// Change a role's description or entitlements.
    Update {
        name: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long = "add-entitlement", value_name = "ENTITLEMENT")]
        add: Vec<String>,
        #[arg(long = "remove-entitlement", value_name = "ENTITLEMENT")]
        remove: Vec<String>,
    },
    /// Delete a role; everyone who held it loses it.
    Delete {
        name: String,
    },
}

fn usage(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

pub(super) fn role_name(raw: &str) -> Result<RoleName, CliError> {
    RoleName::parse(raw).map_err(usage)
}

fn entitlements(raw: &[String]) -> Result<Vec<Entitlement>, CliError> {
    raw.iter().map(|e| Entitlement::parse(e).map_err(usage)).collect()
}

fn describe(r: &Role) -> String {
    let mut out = format!("role:           {}\n", r.name);
    out += &format!("application:    {}\n", r.application.as_ref().map_or("- (tenant-wide)", |a| a.as_str()));
    out += &format!("description:    {}\n", if r.description.is_empty() { "-" } else { &r.description });
    let ents: Vec<&str> = r.entitlements.iter().map(Entitlement::as_str).collect();
    out += &format!("entitlements:   {}\n", if ents.is_empty() { "-".to_owned() } else { ents.join(" ") });
    out
}

pub async fn run(ctx: Context, command: RoleCommand) -> Result<(), CliError> {
    let tenant = ctx.tenant();
    let f = ctx.open().await?;
    let actor = Actor::Cli;
    let result = async {
        match command {
            RoleCommand::Create { name, description, entitlements: ents, application } => {
                let new = NewRole {
                    name: role_name(&name)?,
                    application: application.as_deref().map(ClientId::parse).transpose().map_err(usage)?,
                    description: description.trim().to_owned(),
                    entitlements: entitlements(&ents)?,
                };
                let role = f.access().create_role(&tenant, new, &actor).await?;
                output::print(&ctx, &role, || format!("Created role {}.\n{}", role.name, describe(&role)))
            }
            RoleCommand::List => {
                let roles = f.access().roles(&tenant).await?;
                output::print(&ctx, &roles, || {
                    let rows = roles
                        .iter()
                        .map(|r| {
                            let ents: Vec<&str> = r.entitlements.iter().map(Entitlement::as_str).collect();
                            vec![
                                r.name.to_string(),
                                r.application.as_ref().map_or("-".into(), ToString::to_string),
                                if ents.is_empty() { "-".into() } else { ents.join(",") },
                                r.description.clone(),
                            ]
                        })
                        .collect();
                    output::table(&["ROLE", "APPLICATION", "ENTITLEMENTS", "DESCRIPTION"], rows)
                })
            }
            RoleCommand::Show { name } => {
                let name = role_name(&name)?;
                let role = f
                    .access()
                    .role(&tenant, &name)
                    .await?
                    .ok_or_else(|| CliError::Failed(format!("no role `{name}`")))?;
                let holders = f.access().role_holders(&tenant, &name).await?;
                let mut usernames = Vec::new();
                for sub in &holders {
                    if let Some(u) = f.users().by_sub(&tenant, sub).await? {
                        usernames.push(u.username.to_string());
                    }
                }
                let json = serde_json::json!({"role": role, "holders": holders});
                output::print(&ctx, &json, || {
                    let held = if usernames.is_empty() { "-".to_owned() } else { usernames.join(" ") };
                    format!("{}held by:        {held}", describe(&role))
                })
            }
            RoleCommand::Update { name, description, add, remove } => {
                let name = role_name(&name)?;
                let patch = RolePatch {
                    description: description.map(|d| d.trim().to_owned()),
                    add_entitlements: entitlements(&add)?,
                    remove_entitlements: entitlements(&remove)?,
                    if_match: None,
                };
                let role = f.access().update_role(&tenant, &name, patch, &actor).await?;
                output::print(&ctx, &role, || format!("Updated role {}.\n{}", role.name, describe(&role)))
            }
            RoleCommand::Delete { name } => {
                let name = role_name(&name)?;
                f.access().delete_role(&tenant, &name, &actor).await?;
                output::print(&ctx, &serde_json::json!({"deleted": name}), || format!("Deleted role {name}."))
            }
        }
    }
    .await;
    f.system().close().await;
    result
}
