//! `invite create|list|revoke`: sign-up links for `registration.mode = "invite"`.

use std::time::Duration;

use clap::Subcommand;
use latchkey_core::records::Actor;

use super::{CliError, Context, output};

#[derive(Subcommand)]
pub enum InviteCommand {
    /// Make a single-use sign-up link and print it (the link is shown only now).
    Create {
        /// A note for yourself (who the link is for); shown by `invite list`.
        #[arg(long)]
        note: Option<String>,
        /// How long the link works (default: registration.invitation_lifetime).
        #[arg(long, value_name = "DURATION", value_parser = latchkey_core::duration::parse)]
        expires_in: Option<Duration>,
    },
    /// List invitations: used, unused and expired.
    List,
    /// Delete an unused invitation, so its link stops working.
    Revoke { id: String },
}

pub async fn run(ctx: Context, command: InviteCommand) -> Result<(), CliError> {
    let tenant = ctx.tenant();
    let f = ctx.open().await?;
    let now = f.clock.now();
    let result = match command {
        InviteCommand::Create { note, expires_in } => {
            if expires_in.is_some_and(|d| d.is_zero()) {
                return Err(CliError::Usage("--expires-in must be more than 0s".into()));
            }
            let created = f.invitations().create(&tenant, note.as_deref(), expires_in, &Actor::Cli).await?;
            let (id, token, expires_at) = (created.id, created.token, created.expires_at);
            let link = format!("{}/signup?invite={token}", ctx.config.issuer());
            let warning = match ctx.config.registration.mode {
                latchkey_config::RegistrationMode::Invite => "",
                _ => "\nNote: registration.mode is not \"invite\"; the link works only once it is.",
            };
            output::print(
                &ctx,
                &serde_json::json!({"id": id, "link": link, "expires_at": expires_at.to_rfc3339()}),
                || format!("Invitation {id}, valid until {}:\n{link}{warning}", expires_at.to_rfc3339()),
            )
        }
        InviteCommand::List => {
            let list = f.invitations().list(&tenant).await?;
            let json: Vec<serde_json::Value> = list
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "id": i.id, "note": i.note, "created_at": i.created_at.to_rfc3339(),
                        "expires_at": i.expires_at.to_rfc3339(), "used_at": i.used_at.map(|t| t.to_rfc3339()),
                        "used_by": i.used_by.as_ref().map(ToString::to_string),
                    })
                })
                .collect();
            output::print(&ctx, &json, || {
                let rows = list
                    .iter()
                    .map(|i| {
                        let state = match (&i.used_by, i.expires_at <= now) {
                            (Some(sub), _) => format!("used by {sub}"),
                            (None, true) => "expired".into(),
                            (None, false) => "unused".into(),
                        };
                        vec![i.id.clone(), state, i.expires_at.to_rfc3339(), i.note.clone().unwrap_or_default()]
                    })
                    .collect();
                output::table(&["ID", "STATE", "EXPIRES", "NOTE"], rows)
            })
        }
        InviteCommand::Revoke { id } => {
            f.invitations().revoke(&tenant, &id, &Actor::Cli).await?;
            output::print(&ctx, &serde_json::json!({"revoked": id}), || format!("Revoked invitation {id}."))
        }
    };
    f.system().close().await;
    result
}
