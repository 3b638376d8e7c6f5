//! `session list|revoke|deliveries --user …`: a user's single sign-on sessions. Ending one
//! here reaches the user's applications by back-channel logout (queued in the database and
//! sent by the running server; there is no browser to do the front channel).

use clap::Subcommand;
use latchkey_core::records::{Actor, SessionSelector};

use super::users::find;
use super::{CliError, Context, output};

#[derive(Subcommand)]
pub enum SessionCommand {
    /// The user's live sessions.
    List {
        /// Username or subject id.
        #[arg(long)]
        user: String,
    },
    /// End one session (--sid) or all of them (--all); their applications hear of it by
    /// back-channel logout, and the refresh tokens that end with a session are revoked.
    Revoke {
        #[arg(long)]
        user: String,
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        sid: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// The back-channel logout tokens queued and sent for the user's sessions.
    Deliveries {
        #[arg(long)]
        user: String,
    },
}

pub async fn run(ctx: Context, command: SessionCommand) -> Result<(), CliError> {
    let tenant = ctx.tenant();
    let f = ctx.open().await?;
    let result = async {
        match command {
            SessionCommand::List { user } => {
                let u = find(&f, &tenant, &user).await?;
                let idle = f.config.sessions.idle_timeout;
                let list = f.sessions().of_user(&tenant, &u.sub, f.clock.now(), idle).await?;
                let value: Vec<serde_json::Value> = list
                    .iter()
                    .map(|i| {
                        let s = &i.session;
                        serde_json::json!({
                            "sid": s.sid, "sub": s.sub, "created_at": s.created_at.to_rfc3339(),
                            "last_active_at": s.last_active_at.to_rfc3339(), "expires_at": s.expires_at.to_rfc3339(),
                            "auth_time": s.auth_time.secs(), "amr": s.amr, "acr": s.acr, "remember": s.remember,
                            "user_agent": s.user_agent, "ip": s.ip, "clients": i.clients,
                        })
                    })
                    .collect();
                output::print(&ctx, &value, || {
                    let rows = list
                        .iter()
                        .map(|i| {
                            let s = &i.session;
                            vec![
                                s.sid.clone(),
                                s.created_at.to_rfc3339(),
                                s.last_active_at.to_rfc3339(),
                                latchkey_server::account::sessions_page::describe_user_agent(s.user_agent.as_deref()),
                                if i.clients.is_empty() {
                                    "-".into()
                                } else {
                                    i.clients.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(" ")
                                },
                            ]
                        })
                        .collect();
                    output::table(&["SID", "SIGNED IN", "LAST ACTIVE", "DEVICE", "CLIENTS"], rows)
                })
            }
            SessionCommand::Revoke { user, sid, all } => {
                let u = find(&f, &tenant, &user).await?;
                let which = match (sid, all) {
                    (Some(sid), false) => {
                        let idle = f.config.sessions.idle_timeout;
                        let owned = f.sessions().by_sid(&tenant, &sid, f.clock.now(), idle).await?;
                        if owned.is_none_or(|s| s.sub != u.sub) {
                            return Err(CliError::Failed(format!("{} has no live session `{sid}`", u.username)));
                        }
                        SessionSelector::Sid(sid)
                    }
                    _ => SessionSelector::User { sub: u.sub.clone(), except_sid: None },
                };
                let ended = f.sessions().end(&tenant, &which, "revoked_by_admin", false, &Actor::Cli).await?;
                let sids: Vec<&str> = ended.sessions.iter().map(|s| s.sid.as_str()).collect();
                let value = serde_json::json!({"ended": sids, "revoked_grants": ended.revoked_grants.len()});
                output::print(&ctx, &value, || format!("Ended {} session(s) of {}.", sids.len(), u.username))
            }
            SessionCommand::Deliveries { user } => {
                let u = find(&f, &tenant, &user).await?;
                let list = f.sessions().logout_deliveries(&tenant, &u.sub).await?;
                let value: Vec<serde_json::Value> = list
                    .iter()
                    .map(|d| {
                        serde_json::json!({"jti": d.jti, "client_id": d.client_id, "sid": d.sid, "status": d.status,
                            "attempts": d.attempts, "last_error": d.last_error})
                    })
                    .collect();
                output::print(&ctx, &value, || {
                    let rows = list
                        .iter()
                        .map(|d| {
                            vec![
                                d.client_id.to_string(),
                                d.sid.clone(),
                                d.status.clone(),
                                d.attempts.to_string(),
                                d.last_error.clone().unwrap_or_default(),
                            ]
                        })
                        .collect();
                    output::table(&["CLIENT", "SID", "STATUS", "ATTEMPTS", "LAST ERROR"], rows)
                })
            }
        }
    }
    .await;
    f.system().close().await;
    result
}
