//! `user grant|revoke|access`: the roles a user holds.

use latchkey_core::domain::TenantId;
use latchkey_core::records::{Actor, Membership, UserAccess};

use super::roles::role_name;
use super::{CliError, Context, output, users};

/// Gives a user a role directly.
pub async fn grant(ctx: &Context, tenant: &TenantId, user: &str, role: &str) -> Result<(), CliError> {
    let role = role_name(role)?;
    let f = ctx.open().await?;
    let result = async {
        let u = users::find(&f, tenant, user).await?;
        let link = Membership::UserRole { sub: u.sub.clone(), role: role.clone() };
        Ok::<_, CliError>((f.access().link(tenant, &link, &Actor::Cli).await?, u))
    }
    .await;
    f.system().close().await;
    let (added, u) = result?;
    let json = serde_json::json!({"sub": u.sub, "role": role, "added": added});
    output::print(ctx, &json, || match added {
        true => format!("Granted role {role} to {}.", u.username),
        false => format!("{} already held role {role}.", u.username),
    })
}

/// Takes a directly granted role from a user (a role through a group stays).
pub async fn revoke(ctx: &Context, tenant: &TenantId, user: &str, role: &str) -> Result<(), CliError> {
    let role = role_name(role)?;
    let f = ctx.open().await?;
    let result = async {
        let u = users::find(&f, tenant, user).await?;
        let link = Membership::UserRole { sub: u.sub.clone(), role: role.clone() };
        f.access().unlink(tenant, &link, &Actor::Cli).await?;
        // Say so when the user still holds the role through a group.
        let still = f.access().user_access(tenant, &u.sub).await?;
        Ok::<_, CliError>((u, still))
    }
    .await;
    f.system().close().await;
    let (u, still) = result?;
    let via: Vec<String> = still
        .roles
        .iter()
        .filter(|r| r.name == role)
        .flat_map(|r| r.via_groups.iter().map(ToString::to_string))
        .collect();
    let json = serde_json::json!({"sub": u.sub, "revoked": role, "still_held_via_groups": via});
    output::print(ctx, &json, || {
        let mut out = format!("Revoked role {role} from {}.", u.username);
        if !via.is_empty() {
            out += &format!(" They still hold it through group {}.", via.join(", "));
        }
        out
    })
}

/// What a user holds: roles (and where from), groups, entitlements.
pub async fn show(ctx: &Context, tenant: &TenantId, user: &str) -> Result<(), CliError> {
    let f = ctx.open().await?;
    let result = async {
        let u = users::find(&f, tenant, user).await?;
        Ok::<_, CliError>(f.access().user_access(tenant, &u.sub).await?)
    }
    .await;
    f.system().close().await;
    let access = result?;
    output::print(ctx, &access, || describe(&access))
}

fn describe(a: &UserAccess) -> String {
    let mut rows = Vec::new();
    for r in &a.roles {
        let mut from: Vec<String> = r.via_groups.iter().map(|g| format!("group {g}")).collect();
        if r.direct {
            from.insert(0, "direct".into());
        }
        let ents: Vec<String> = r.entitlements.iter().map(ToString::to_string).collect();
        rows.push(vec![
            r.name.to_string(),
            r.application.as_ref().map_or("-".into(), ToString::to_string),
            from.join(", "),
            if ents.is_empty() { "-".into() } else { ents.join(",") },
        ]);
    }
    let groups: Vec<String> = a.groups.iter().map(ToString::to_string).collect();
    format!(
        "{}\ngroups: {}",
        output::table(&["ROLE", "APPLICATION", "FROM", "ENTITLEMENTS"], rows),
        if groups.is_empty() { "-".into() } else { groups.join(" ") }
    )
}
