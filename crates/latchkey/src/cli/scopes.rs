//! `scope list|create|delete`.

use clap::Subcommand;
use latchkey_core::domain::ScopeName;
use latchkey_core::records::Actor;

use super::{CliError, Context, output};

#[derive(Subcommand)]
pub enum ScopeCommand {
    List,
    /// Create a custom scope, or change its description.
    Create {
        name: String,
        #[arg(long)]
        description: String,
    },
    /// Delete a custom scope (built-in scopes stay).
    Delete {
        name: String,
    },
}

pub async fn run(ctx: Context, command: ScopeCommand) -> Result<(), CliError> {
    let tenant = ctx.tenant();
    let parse = |raw: &str| ScopeName::parse(raw).map_err(|e| CliError::Usage(e.to_string()));
    let f = ctx.open().await?;
    let result = match command {
        ScopeCommand::List => {
            let list = f.scopes().list(&tenant).await?;
            output::print(&ctx, &list, || {
                let rows = list
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.to_string(),
                            if s.built_in { "built-in" } else { "custom" }.into(),
                            s.description.clone(),
                        ]
                    })
                    .collect();
                output::table(&["SCOPE", "KIND", "DESCRIPTION"], rows)
            })
        }
        ScopeCommand::Create { name, description } => {
            let name = parse(&name)?;
            if description.trim().is_empty() {
                return Err(CliError::Usage(
                    "--description must not be empty: people read it on the consent page".into(),
                ));
            }
            f.scopes().put(&tenant, &name, description.trim(), &Actor::Cli).await?;
            output::print(&ctx, &serde_json::json!({"scope": name, "description": description.trim()}), || {
                format!("Saved scope {name}.")
            })
        }
        ScopeCommand::Delete { name } => {
            let name = parse(&name)?;
            f.scopes().delete(&tenant, &name, &Actor::Cli).await?;
            output::print(&ctx, &serde_json::json!({"deleted": name}), || format!("Deleted scope {name}."))
        }
    };
    f.system().close().await;
    result
}
