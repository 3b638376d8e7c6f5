//! `resource list|create|delete`: APIs access tokens can be issued for (RFC 8707).

use clap::Subcommand;
use latchkey_core::domain::ScopeName;
use latchkey_core::records::{Actor, ResourceServer};

use super::{CliError, Context, output};

#[derive(Subcommand)]
pub enum ResourceCommand {
    List,
    /// Register an API (or change it). Its identifier is the `aud` of tokens for it.
    Create {
        /// An absolute URI without fragment, e.g. https://api.example.com
        identifier: String,
        #[arg(long)]
        name: String,
        /// A scope this API accepts (repeatable); each must exist (`latchkey scope create`).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// The client this API authenticates as to introspect tokens issued for it.
        #[arg(long)]
        introspection_client: Option<String>,
    },
    Delete {
        identifier: String,
    },
}

fn usage(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

pub async fn run(ctx: Context, command: ResourceCommand) -> Result<(), CliError> {
    let tenant = ctx.tenant();
    match command {
        ResourceCommand::List => {
            let f = ctx.open().await?;
            let list = f.resources().list(&tenant).await;
            f.system().close().await;
            let list = list?;
            output::print(&ctx, &list, || {
                let rows =
                    list.iter().map(|r| vec![r.identifier.clone(), r.name.clone(), r.scopes.join(" ")]).collect();
                output::table(&["RESOURCE", "NAME", "SCOPES"], rows)
            })
        }
        ResourceCommand::Create { identifier, name, scopes, introspection_client } => {
            let introspection_client = introspection_client
                .as_deref()
                .map(latchkey_core::domain::ClientId::parse)
                .transpose()
                .map_err(usage)?;
            let names: Vec<ScopeName> =
                scopes.iter().map(|s| ScopeName::parse(s).map_err(usage)).collect::<Result<_, _>>()?;
            let f = ctx.open().await?;
            let result = async {
                let server = ResourceServer {
                    identifier: identifier.clone(),
                    name: name.trim().to_owned(),
                    scopes: names.iter().map(ToString::to_string).collect(),
                    client_id: introspection_client,
                };
                f.resources().put(&tenant, &server, &Actor::Cli).await?;
                Ok::<_, CliError>(server)
            }
            .await;
            f.system().close().await;
            let server = result?;
            output::print(&ctx, &server, || format!("Saved resource {}.", server.identifier))
        }
        ResourceCommand::Delete { identifier } => {
            let f = ctx.open().await?;
            let result = f.resources().delete(&tenant, &identifier, &Actor::Cli).await;
            f.system().close().await;
            result?;
            output::print(&ctx, &serde_json::json!({"deleted": identifier}), || {
                format!("Deleted resource {identifier}.")
            })
        }
    }
}
