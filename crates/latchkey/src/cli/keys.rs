//! `keys list`, `keys rotate`, `keys retire`, `keys rotate-data-key`.

use clap::Subcommand;
use latchkey_core::domain::SigningAlg;
use latchkey_core::records::Actor;

use super::{CliError, Context, output};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Every signing key with its state and dates.
    List,
    /// Promote each algorithm's next key to active and publish a new next key.
    Rotate {
        /// Rotate only this algorithm (RS256, ES256, EdDSA).
        #[arg(long, value_parser = parse_alg)]
        alg: Option<SigningAlg>,
        /// Rotate even if the next key has not been published for the JWKS cache lifetime
        /// plus clock skew (after a key compromise; some verifiers may briefly fail).
        #[arg(long)]
        force: bool,
    },
    /// Stop publishing a retired key at once (after a compromise: the tokens it signed stop
    /// verifying). Rotate the active key first (`keys rotate --alg ALG --force`).
    Retire {
        /// The key's id (`kid`), as `keys list` shows it.
        kid: String,
    },
    /// Begin a new data-key generation for personal data at rest and re-encrypt every
    /// sealed value under it, in batches (the server keeps serving).
    RotateDataKey,
}

fn parse_alg(raw: &str) -> Result<SigningAlg, String> {
    SigningAlg::parse_jose(raw).map_err(|e| e.reason)
}

pub async fn run(ctx: Context, command: KeysCommand) -> Result<(), CliError> {
    let f = ctx.open().await?;
    let keys = f.keys.clone();
    keys.ensure_keys().await.map_err(|e| CliError::Failed(e.to_string()))?;
    let result = match command {
        KeysCommand::List => {
            let list = keys.list().await.map_err(|e| CliError::Failed(e.to_string()))?;
            output::print(&ctx, &list, || {
                let rows = list
                    .iter()
                    .map(|k| {
                        vec![
                            k.kid.clone(),
                            k.alg.to_string(),
                            k.state.as_str().to_owned(),
                            k.created_at.clone(),
                            k.activated_at.clone().unwrap_or_default(),
                            k.publish_until.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                output::table(&["KID", "ALG", "STATE", "CREATED", "ACTIVATED", "PUBLISHED UNTIL"], rows)
            })
        }
        KeysCommand::Rotate { alg, force } => {
            let algs: Vec<SigningAlg> = match alg {
                Some(a) if !keys.algorithms().contains(&a) => {
                    return Err(CliError::Usage(format!("{a} is not in keys.algorithms")));
                }
                Some(a) => vec![a],
                None => keys.algorithms().to_vec(),
            };
            let mut rotated = Vec::new();
            for a in algs {
                let kid = keys.rotate(a, force, &Actor::Cli).await.map_err(|e| CliError::Failed(e.to_string()))?;
                rotated.push(serde_json::json!({"alg": a, "active": kid}));
            }
            output::print(&ctx, &rotated, || {
                rotated
                    .iter()
                    .map(|r| {
                        format!(
                            "{}: now signing with {}\n",
                            r["alg"].as_str().unwrap_or(""),
                            r["active"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
        }
        KeysCommand::Retire { kid } => {
            let was = keys.retire(&kid, &Actor::Cli).await.map_err(|e| CliError::Failed(e.to_string()))?;
            let json = serde_json::json!({"kid": kid, "was_published": was});
            output::print(&ctx, &json, || match was {
                true => format!("{kid} is no longer published: tokens it signed stop verifying.\n"),
                false => format!("{kid} was no longer published: nothing changed.\n"),
            })
        }
        KeysCommand::RotateDataKey => {
            let outcome = f.data_keys().rotate(&Actor::Cli).await?;
            output::print(&ctx, &outcome, || {
                let mut text =
                    format!("personal data is now sealed under data-key generation {}\n", outcome.generation);
                for (table, n) in &outcome.sealed {
                    text.push_str(&format!("  {table}: {n} re-encrypted\n"));
                }
                for (table, n) in &outcome.unreadable {
                    text.push_str(&format!(
                        "  {table}: {n} do not open (another master key, or altered): left as they are\n"
                    ));
                }
                text.push_str(&format!("{} left under an older key\n", outcome.remaining));
                text
            })
        }
    };
    f.system().close().await;
    result
}
