//! `audit verify`, `audit list`, `audit export`, `audit checkpoint`: the tamper-evident log.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Subcommand;
use latchkey_core::records::{Actor, AuditEvent, AuditQuery};

use super::{CliError, Context, output};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the whole chain: every entry's MAC, the positions, the head and the signed
    /// checkpoints. Exits 1 and names each place when something was changed, deleted,
    /// inserted or cut off.
    Verify {
        /// A position the chain was seen at before (the latchkey_audit_chain_head metric,
        /// an earlier run): a chain that now ends before it was cut off.
        #[arg(long, value_name = "SEQ")]
        expect_seq: Option<i64>,
    },
    /// The newest events, newest first.
    List {
        #[command(flatten)]
        filter: Filter,
        /// How many (at most 200).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Every event (or those the filters select) as JSON Lines, oldest first. The export
    /// is itself recorded.
    Export {
        #[command(flatten)]
        filter: Filter,
        /// Write to this file (created, never overwritten) instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Write a signed checkpoint of every chain's head now, and print it with the public
    /// key that verifies it (keep both outside this database).
    Checkpoint,
}

#[derive(clap::Args)]
pub struct Filter {
    /// Only events by this actor (`cli`, `system`, `user:SUB`, `admin-api:CLIENT`, …).
    #[arg(long)]
    actor: Option<String>,
    /// Only events about this subject (a user's subject id, a client id, …).
    #[arg(long)]
    subject: Option<String>,
    /// Only this action (`user.created`, `session.started`, …).
    #[arg(long)]
    action: Option<String>,
    /// Only events at or after this time (seconds since the epoch).
    #[arg(long)]
    since: Option<i64>,
    /// Only events before this time.
    #[arg(long)]
    until: Option<i64>,
}

impl Filter {
    fn query(self, limit: u32) -> AuditQuery {
        AuditQuery {
            actor: self.actor,
            target: self.subject,
            action: self.action,
            since: self.since,
            until: self.until,
            limit,
            ..AuditQuery::default()
        }
    }
}

#[derive(serde::Serialize)]
struct EventLine<'a> {
    id: i64,
    seq: Option<i64>,
    at: i64,
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    details: &'a serde_json::Value,
    erased: bool,
}

fn line((id, e): &(i64, AuditEvent)) -> EventLine<'_> {
    EventLine {
        id: *id,
        seq: e.seq,
        at: e.at.secs(),
        actor: &e.actor,
        action: &e.action,
        target: &e.target,
        details: &e.details,
        erased: e.erased,
    }
}

pub async fn run(ctx: Context, command: AuditCommand) -> Result<(), CliError> {
    let s = ctx.open().await?;
    let tenant = ctx.tenant();
    match command {
        AuditCommand::Verify { expect_seq } => {
            // Chain what waits first, so entries just written are checked too.
            s.audit().seal(false).await?;
            let v = s.audit().verify(&tenant, expect_seq).await?;
            output::print(&ctx, &v, || {
                let mut text = format!(
                    "tenant {}: {} entries checked ({} to {}), head {}\n",
                    v.tenant,
                    v.entries,
                    v.first_seq,
                    v.last_seq,
                    v.head_mac.as_deref().unwrap_or("-")
                );
                if let Some((seq, at)) = v.newest_checkpoint {
                    text.push_str(&format!("newest checkpoint: entry {seq}, at {at}\n"));
                }
                for w in &v.warnings {
                    text.push_str(&format!("warning: {w}\n"));
                }
                for p in &v.problems {
                    text.push_str(&format!("TAMPERED: {p}\n"));
                }
                if v.intact() {
                    text.push_str("the chain is intact\n");
                }
                text
            })?;
            if v.intact() {
                Ok(())
            } else {
                Err(CliError::Failed(format!("the audit chain of tenant {} does not verify", v.tenant)))
            }
        }
        AuditCommand::List { filter, limit } => {
            if !(1..=200).contains(&limit) {
                return Err(CliError::Usage("--limit must be between 1 and 200".into()));
            }
            let events = s.audit().query(&tenant, &filter.query(limit)).await?;
            let lines: Vec<EventLine<'_>> = events.iter().map(line).collect();
            output::print(&ctx, &lines, || {
                let rows = lines
                    .iter()
                    .map(|l| {
                        vec![
                            l.seq.map_or_else(|| "…".to_owned(), |s| s.to_string()),
                            l.at.to_string(),
                            l.actor.to_owned(),
                            l.action.to_owned(),
                            l.target.to_owned(),
                            if l.erased { "(erased)".to_owned() } else { l.details.to_string() },
                        ]
                    })
                    .collect();
                output::table(&["SEQ", "AT", "ACTOR", "ACTION", "SUBJECT", "DETAILS"], rows)
            })
        }
        AuditCommand::Export { filter, output: path } => {
            let mut out: Box<dyn std::io::Write> = match &path {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(p)
                        .map_err(|e| CliError::Failed(format!("cannot create {}: {e}", p.display())))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let written = s
                .audit()
                .export(&tenant, &filter.query(500), &Actor::Cli, |event| {
                    serde_json::to_writer(&mut out, &line(event))
                        .map_err(|e| CliError::Failed(format!("cannot write the export: {e}")))?;
                    out.write_all(b"\n").map_err(|e| CliError::Failed(format!("cannot write the export: {e}")))
                })
                .await?;
            out.flush().map_err(|e| CliError::Failed(format!("cannot write the export: {e}")))?;
            if let Some(p) = path {
                eprintln!("wrote {written} events to {}", p.display());
            }
            Ok(())
        }
        AuditCommand::Checkpoint => {
            s.audit().seal(true).await?;
            let head = s.audit().head(&tenant).await?;
            let public_key = s.audit().checkpoint_public_key();
            let value = serde_json::json!({
                "tenant": tenant.as_str(),
                "seq": head.as_ref().map(|h| h.seq),
                "mac": head.as_ref().map(|h| h.mac.clone()),
                "checkpoint_at": head.as_ref().map(|h| h.checkpoint_at),
                "public_key": public_key,
            });
            output::print(&ctx, &value, || {
                format!(
                    "tenant {}: checkpoint written at entry {} (head {})\ncheckpoint public key (Ed25519): {public_key}\n",
                    tenant,
                    value["seq"],
                    value["mac"].as_str().unwrap_or("-"),
                )
            })
        }
    }
}
