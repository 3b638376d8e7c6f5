//! `group create|list|show|delete|add-member|remove-member|add-role|remove-role`.

use clap::Subcommand;
use latchkey_core::domain::GroupName;
use latchkey_core::records::{Actor, Group, Membership};
use latchkey_service::Latchkey;

use super::roles::role_name;
use super::{CliError, Context, output, users};

#[derive(Subcommand)]
pub enum GroupCommand {
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    List,
    /// Show a group, its roles and its members.
    Show {
        name: String,
    },
    /// Delete a group; its members lose the roles it gave them.
    Delete {
        name: String,
    },
    /// Add a user (username or subject id) to a group.
    AddMember {
        group: String,
        user: String,
    },
    RemoveMember {
        group: String,
        user: String,
    },
    /// Give every member of a group a role.
    AddRole {
        group: String,
        role: String,
    },
    RemoveRole {
        group: String,
        role: String,
    },
}

fn group_name(raw: &str) -> Result<GroupName, CliError> {
    GroupName::parse(raw).map_err(|e| CliError::Usage(e.to_string()))
}

async fn describe(f: &Latchkey, tenant: &latchkey_core::domain::TenantId, g: &Group) -> Result<String, CliError> {
    let mut members = Vec::new();
    for sub in &g.members {
        let name = f.users().by_sub(tenant, sub).await?.map_or_else(|| sub.to_string(), |u| u.username.to_string());
        members.push(name);
    }
    let list = |v: Vec<String>| if v.is_empty() { "-".to_owned() } else { v.join(" ") };
    let mut out = format!("group:          {}\n", g.name);
    out += &format!("description:    {}\n", if g.description.is_empty() { "-" } else { &g.description });
    out += &format!("roles:          {}\n", list(g.roles.iter().map(ToString::to_string).collect()));
    out += &format!("members:        {}\n", list(members));
    Ok(out)
}

pub async fn run(ctx: Context, command: GroupCommand) -> Result<(), CliError> {
    let tenant = ctx.tenant();
    let f = ctx.open().await?;
    let actor = Actor::Cli;
    let result = async {
        let access = f.access();
        match command {
            GroupCommand::Create { name, description } => {
                let group = access.create_group(&tenant, &group_name(&name)?, description.trim(), &actor).await?;
                output::print(&ctx, &group, || format!("Created group {}.", group.name))
            }
            GroupCommand::List => {
                let groups = access.groups(&tenant).await?;
                output::print(&ctx, &groups, || {
                    let rows = groups
                        .iter()
                        .map(|g| {
                            let roles: Vec<String> = g.roles.iter().map(ToString::to_string).collect();
                            vec![
                                g.name.to_string(),
                                if roles.is_empty() { "-".into() } else { roles.join(",") },
                                g.members.len().to_string(),
                                g.description.clone(),
                            ]
                        })
                        .collect();
                    output::table(&["GROUP", "ROLES", "MEMBERS", "DESCRIPTION"], rows)
                })
            }
            GroupCommand::Show { name } => {
                let name = group_name(&name)?;
                let group = access
                    .group(&tenant, &name)
                    .await?
                    .ok_or_else(|| CliError::Failed(format!("no group `{name}`")))?;
                let text = describe(&f, &tenant, &group).await?;
                output::print(&ctx, &group, || text)
            }
            GroupCommand::Delete { name } => {
                let name = group_name(&name)?;
                access.delete_group(&tenant, &name, &actor).await?;
                output::print(&ctx, &serde_json::json!({"deleted": name}), || format!("Deleted group {name}."))
            }
            GroupCommand::AddMember { group, user } => {
                let group = group_name(&group)?;
                let u = users::find(&f, &tenant, &user).await?;
                let link = Membership::GroupMember { group: group.clone(), sub: u.sub.clone() };
                let added = access.link(&tenant, &link, &actor).await?;
                let json = serde_json::json!({"group": group, "member": u.sub, "added": added});
                output::print(&ctx, &json, || match added {
                    true => format!("Added {} to group {group}.", u.username),
                    false => format!("{} was already in group {group}.", u.username),
                })
            }
            GroupCommand::RemoveMember { group, user } => {
                let group = group_name(&group)?;
                let u = users::find(&f, &tenant, &user).await?;
                access
                    .unlink(&tenant, &Membership::GroupMember { group: group.clone(), sub: u.sub.clone() }, &actor)
                    .await?;
                let json = serde_json::json!({"group": group, "removed_member": u.sub});
                output::print(&ctx, &json, || format!("Removed {} from group {group}.", u.username))
            }
            GroupCommand::AddRole { group, role } => {
                let (group, role) = (group_name(&group)?, role_name(&role)?);
                let link = Membership::GroupRole { group: group.clone(), role: role.clone() };
                let added = access.link(&tenant, &link, &actor).await?;
                let json = serde_json::json!({"group": group, "role": role, "added": added});
                output::print(&ctx, &json, || match added {
                    true => format!("Group {group} now gives role {role}."),
                    false => format!("Group {group} already gave role {role}."),
                })
            }
            GroupCommand::RemoveRole { group, role } => {
                let (group, role) = (group_name(&group)?, role_name(&role)?);
                access
                    .unlink(&tenant, &Membership::GroupRole { group: group.clone(), role: role.clone() }, &actor)
                    .await?;
                let json = serde_json::json!({"group": group, "removed_role": role});
                output::print(&ctx, &json, || format!("Group {group} no longer gives role {role}."))
            }
        }
    }
    .await;
    f.system().close().await;
    result
}
