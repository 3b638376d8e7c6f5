//! `api-key create|list|revoke|rotate` and `service-account create|list|delete`.

use std::time::Duration;

use clap::Subcommand;
use latchkey_core::domain::{
    ApiKeyId, ProfileClaims, READ_ONLY_METHODS, RoutePattern, ScopeName, SubjectId, Username, parse_method,
};
use latchkey_core::records::{Actor, ApiKey, NewUser};
use latchkey_service::Latchkey;
use latchkey_service::api_keys::{ApiKeySpec, IssuedApiKey};
use latchkey_service::users::StateChange;

use super::{CliError, Context, output, users};

#[derive(Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key for a user or service account; the key is printed once.
    Create {
        /// The owner: a username or subject id (a person or a service account).
        #[arg(long)]
        owner: String,
        #[arg(long)]
        name: String,
        /// A right the key carries (repeatable): one of the owner's entitlements, or for a
        /// person openid, profile, email.
        #[arg(long = "scope", value_name = "SCOPE", required = true)]
        scopes: Vec<String>,
        /// A path it may be used for (repeatable): `/api/reports` or `/api/reports/*`.
        #[arg(long = "route", value_name = "PATTERN")]
        routes: Vec<String>,
        /// An HTTP method it may be used with (repeatable; default any).
        #[arg(long = "method", value_name = "METHOD", conflicts_with = "read_only")]
        methods: Vec<String>,
        /// Only GET, HEAD and OPTIONS.
        #[arg(long)]
        read_only: bool,
        /// When it stops working (e.g. 90d; default never).
        #[arg(long, value_parser = latchkey_core::duration::parse)]
        expires_in: Option<Duration>,
        /// The resource (RFC 8707 identifier, from `latchkey resource create`) it is for.
        #[arg(long, value_name = "URI")]
        audience: Option<String>,
    },
    /// List live keys (never their secrets).
    List {
        #[arg(long)]
        owner: Option<String>,
    },
    Revoke {
        /// The key id (`lk_` and 12 characters, as `list` shows it).
        id: String,
    },
    /// Give a key a new secret; the old one keeps working for --grace.
    Rotate {
        id: String,
        #[arg(long, default_value = "24h", value_parser = latchkey_core::duration::parse)]
        grace: Duration,
    },
}

#[derive(Subcommand)]
pub enum ServiceAccountCommand {
    /// Create an account for a program: it never signs in, it holds roles and API keys.
    Create {
        name: String,
    },
    List,
    /// Delete a service account and its API keys.
    Delete {
        name: String,
    },
}

fn usage(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

fn key_id(raw: &str) -> Result<ApiKeyId, CliError> {
    ApiKeyId::parse(raw).map_err(usage)
}

fn when(secs: Option<i64>) -> String {
    secs.and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok()).map_or_else(
        || "-".to_owned(),
        |t| format!("{:04}-{:02}-{:02} {:02}:{:02}", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute()),
    )
}

fn print_issued(ctx: &Context, issued: &IssuedApiKey, verb: &str) -> Result<(), CliError> {
    let json = serde_json::json!({"key": issued.key, "secret": issued.secret});
    output::print(ctx, &json, || {
        format!(
            "{verb} API key {} ({}).\nkey:     {}\nThe key is shown only now; store it safely.",
            issued.key.id, issued.key.name, issued.secret
        )
    })
}

async fn owner_names(f: &Latchkey, ctx: &Context, keys: &[ApiKey]) -> Result<Vec<String>, CliError> {
    let mut names = Vec::new();
    for k in keys {
        let user = f.users().by_sub(&ctx.tenant(), &k.owner).await?;
        names.push(user.map_or_else(|| k.owner.to_string(), |u| u.username.to_string()));
    }
    Ok(names)
}

pub async fn run(ctx: Context, command: ApiKeyCommand) -> Result<(), CliError> {
    let tenant = ctx.tenant();
    let f = ctx.open().await?;
    let result = async {
        match command {
            ApiKeyCommand::Create { owner, name, scopes, routes, methods, read_only, expires_in, audience } => {
                let spec = ApiKeySpec {
                    name,
                    scopes: scopes.iter().map(|s| ScopeName::parse(s)).collect::<Result<_, _>>().map_err(usage)?,
                    routes: routes.iter().map(|r| RoutePattern::parse(r)).collect::<Result<_, _>>().map_err(usage)?,
                    methods: if read_only {
                        READ_ONLY_METHODS.iter().map(|m| (*m).to_owned()).collect()
                    } else {
                        methods.iter().map(|m| parse_method(m)).collect::<Result<_, _>>().map_err(usage)?
                    },
                    expires_at: expires_in.map(|d| f.clock.now().plus(d)),
                    audience,
                };
                let owner = users::find(&f, &tenant, &owner).await?;
                let issued = f.api_keys().create(&tenant, &owner.sub, spec, &Actor::Cli).await?;
                print_issued(&ctx, &issued, "Created")
            }
            ApiKeyCommand::List { owner } => {
                let owner = match owner {
                    Some(o) => Some(users::find(&f, &tenant, &o).await?.sub),
                    None => None,
                };
                let keys = f.api_keys().list(&tenant, owner.as_ref()).await?;
                let names = owner_names(&f, &ctx, &keys).await?;
                output::print(&ctx, &keys, || {
                    let rows = keys
                        .iter()
                        .zip(&names)
                        .map(|(k, owner)| {
                            let scopes: Vec<&str> = k.scopes.iter().map(ScopeName::as_str).collect();
                            vec![
                                k.id.to_string(),
                                owner.clone(),
                                k.name.clone(),
                                scopes.join(","),
                                when(Some(k.created_at)),
                                when(k.expires_at),
                                when(k.last_used_at),
                            ]
                        })
                        .collect();
                    output::table(&["KEY", "OWNER", "NAME", "SCOPES", "CREATED", "EXPIRES", "LAST USED"], rows)
                })
            }
            ApiKeyCommand::Revoke { id } => {
                let id = key_id(&id)?;
                let key = f.api_keys().revoke(&tenant, &id, &Actor::Cli).await?;
                output::print(&ctx, &serde_json::json!({"revoked": key.id}), || format!("Revoked API key {}.", key.id))
            }
            ApiKeyCommand::Rotate { id, grace } => {
                let id = key_id(&id)?;
                let issued = f.api_keys().rotate(&tenant, &id, grace, &Actor::Cli).await?;
                print_issued(&ctx, &issued, "Rotated")
            }
        }
    }
    .await;
    f.system().close().await;
    result
}

pub async fn run_service_accounts(ctx: Context, command: ServiceAccountCommand) -> Result<(), CliError> {
    let tenant = ctx.tenant();
    let f = ctx.open().await?;
    let result = async {
        match command {
            ServiceAccountCommand::Create { name } => {
                let new = NewUser {
                    sub: SubjectId::generate(),
                    username: Username::parse(&name).map_err(usage)?,
                    email: None,
                    email_verified: false,
                    name: None,
                    profile: ProfileClaims::default(),
                    password_hash: None,
                    service_account: true,
                };
                let created = f.users().create(&tenant, new, &Actor::Cli).await?;
                output::print(&ctx, &created, || {
                    format!("Created service account {} (sub {}).", created.username, created.sub)
                })
            }
            ServiceAccountCommand::List => {
                let accounts: Vec<_> =
                    f.users().list(&tenant).await?.into_iter().filter(|u| u.service_account).collect();
                output::print(&ctx, &accounts, || {
                    let rows = accounts
                        .iter()
                        .map(|u| vec![u.username.to_string(), u.sub.to_string(), when(Some(u.created_at))])
                        .collect();
                    output::table(&["NAME", "SUB", "CREATED"], rows)
                })
            }
            ServiceAccountCommand::Delete { name } => {
                let account = users::find(&f, &tenant, &name).await?;
                if !account.service_account {
                    return Err(CliError::Failed(format!(
                        "{} is a person, not a service account: use `latchkey user delete`",
                        account.username
                    )));
                }
                f.users().change_state(&tenant, &account.sub, StateChange::Delete, &Actor::Cli).await?;
                output::print(&ctx, &serde_json::json!({"deleted": account.sub}), || {
                    format!("Deleted service account {} and its API keys.", account.username)
                })
            }
        }
    }
    .await;
    f.system().close().await;
    result
}
