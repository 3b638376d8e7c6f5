//! Command-line interface. Non-interactive, `--json` for scripts, safe to use while the
//! server runs (it talks to the same database; servers pick changes up by themselves).

mod api_keys;
mod apply;
mod audit_log;
mod client_access;
mod client_opt_ins;
mod client_sessions;
mod clients;
mod groups;
mod invites;
mod keys;
mod mail;
mod output;
mod resources;
mod retention;
mod roles;
mod scopes;
mod serve;
mod sessions;
mod user_access;
mod user_consents;
mod user_identities;
mod users;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use latchkey_config::{Config, ConfigError, LogFormat, find_config_file};
use latchkey_core::Clock;
use latchkey_core::domain::TenantId;
use latchkey_service::ServiceError;
use latchkey_service::{Foundation, Latchkey, StartupError};

#[derive(Parser)]
#[command(name = "latchkey", version, about = "Latchkey identity and access server")]
pub struct Cli {
    /// Config file (default: $LATCHKEY_CONFIG, then ./latchkey.toml, else built-in defaults).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Log format (overrides log.format).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Validate the configuration and print it with secrets hidden.
    CheckConfig,
    /// Signing keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Users.
    #[command(subcommand)]
    User(users::UserCommand),
    /// OAuth clients.
    #[command(subcommand)]
    Client(Box<clients::ClientCommand>),
    /// Roles: names with entitlements, tenant-wide or one client's own.
    #[command(subcommand)]
    Role(roles::RoleCommand),
    /// Groups: users who share roles.
    #[command(subcommand)]
    Group(groups::GroupCommand),
    /// API keys for users and service accounts.
    #[command(subcommand)]
    ApiKey(api_keys::ApiKeyCommand),
    /// Accounts for programs: they hold roles and API keys and never sign in.
    #[command(subcommand)]
    ServiceAccount(api_keys::ServiceAccountCommand),
    /// Scopes clients may request.
    #[command(subcommand)]
    Scope(scopes::ScopeCommand),
    /// APIs (resource servers) access tokens can be issued for.
    #[command(subcommand)]
    Resource(resources::ResourceCommand),
    /// Single sign-on sessions of a user: list, end, and their back-channel logouts.
    #[command(subcommand)]
    Session(sessions::SessionCommand),
    /// Sign-up invitations (registration.mode = "invite").
    #[command(subcommand)]
    Invite(invites::InviteCommand),
    /// Email through the [mail] relay.
    #[command(subcommand)]
    Mail(mail::MailCommand),
    /// Make scopes, resources, roles, groups, clients and listed users match a TOML or JSON file.
    Apply(apply::ApplyArgs),
    /// The tamper-evident audit log: verify, list, export, checkpoint.
    #[command(subcommand)]
    Audit(audit_log::AuditCommand),
    /// Delete what has expired or is past its [retention] period (--dry-run: count it).
    Retention(retention::RetentionArgs),
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) | CliError::Usage(_) => 2,
            CliError::Failed(_) => 1,
        }
    }
}

impl From<ServiceError> for CliError {
    fn from(e: ServiceError) -> Self {
        CliError::Failed(e.to_string())
    }
}

impl From<StartupError> for CliError {
    fn from(e: StartupError) -> Self {
        match e {
            StartupError::Config(c) => CliError::Config(c),
            other => CliError::Failed(other.to_string()),
        }
    }
}

/// What every command gets: the loaded config and how to print.
pub struct Context {
    pub config: Config,
    pub json: bool,
    /// The audit chain's writer of the services the command opened: `run` chains what
    /// the command recorded before the process ends.
    chain_writer: std::sync::Arc<std::sync::Mutex<Option<latchkey_service::audit::ChainWriter>>>,
}

impl Context {
    /// Opens the database (migrating it) and the master key, and the services over them:
    /// a command goes through the same rules as a page.
    pub async fn open(&self) -> Result<Latchkey, CliError> {
        let foundation = self.foundation().await?;
        let config = foundation.config.clone();
        let services = Latchkey::new(foundation, config);
        if let Ok(mut writer) = self.chain_writer.lock() {
            writer.get_or_insert_with(|| services.audit().chain_writer());
        }
        Ok(services)
    }

    /// The tenant a command acts on, resolved once per invocation. There is one tenant,
    /// `default`; a `--tenant` option will choose among several here.
    pub fn tenant(&self) -> TenantId {
        TenantId::default_tenant()
    }

    /// Opens the database (migrating it) and the master key, for `serve`.
    pub async fn foundation(&self) -> Result<Foundation, CliError> {
        Ok(Foundation::open(self.config.clone(), Clock::system()).await?)
    }
}

fn load_config(explicit: Option<&std::path::Path>) -> Result<Config, CliError> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let cwd =
        std::env::current_dir().map_err(|e| CliError::Failed(format!("cannot read the working directory: {e}")))?;
    let file = find_config_file(explicit, &env, &cwd)?;
    Ok(Config::load(file.as_deref(), &env, &cwd)?)
}

fn init_logging(config: &Config, format: Option<LogFormatArg>, serving: bool) -> Result<(), CliError> {
    let level = if serving { config.log.level.as_str() } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| CliError::Usage(format!("log.level `{level}` is not a valid filter: {e}")))?;
    let json = match format {
        Some(LogFormatArg::Json) => true,
        Some(LogFormatArg::Text) => false,
        None => std::env::var("LATCHKEY_LOG_FORMAT").map_or(config.log.format == LogFormat::Json, |v| v == "json"),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result =
        if json { builder.json().flatten_event(true).with_current_span(true).try_init() } else { builder.try_init() };
    result.map_err(|e| CliError::Failed(format!("cannot set up logging: {e}")))
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let config = load_config(cli.config.as_deref())?;
    init_logging(&config, cli.log_format, matches!(cli.command, Command::Serve))?;
    let chain_writer = std::sync::Arc::default();
    let ctx = Context { config, json: cli.json, chain_writer: std::sync::Arc::clone(&chain_writer) };
    let result = run_command(ctx, cli.command).await;
    // What the command recorded gets its place in the chain now, not when a server next
    // runs (a failed command may have recorded something too).
    let writer = chain_writer.lock().ok().and_then(|mut w| w.take());
    if let Some(writer) = writer
        && let Err(e) = writer.seal().await
    {
        eprintln!("warning: the audit log's new entries were not chained yet (a server will): {e}");
    }
    result
}

async fn run_command(ctx: Context, command: Command) -> Result<(), CliError> {
    match command {
        Command::Serve => serve::serve(ctx).await,
        Command::Migrate => serve::migrate(ctx).await,
        Command::CheckConfig => serve::check_config(ctx).await,
        Command::Keys(c) => keys::run(ctx, c).await,
        Command::User(c) => users::run(ctx, c).await,
        Command::Client(c) => clients::run(ctx, *c).await,
        Command::Scope(c) => scopes::run(ctx, c).await,
        Command::Apply(a) => apply::run(ctx, a).await,
        Command::Role(c) => roles::run(ctx, c).await,
        Command::Group(c) => groups::run(ctx, c).await,
        Command::Resource(c) => resources::run(ctx, c).await,
        Command::Session(c) => sessions::run(ctx, c).await,
        Command::Invite(c) => invites::run(ctx, c).await,
        Command::Mail(c) => mail::run(ctx, c).await,
        Command::ApiKey(c) => api_keys::run(ctx, c).await,
        Command::ServiceAccount(c) => api_keys::run_service_accounts(ctx, c).await,
        Command::Audit(c) => audit_log::run(ctx, c).await,
        Command::Retention(a) => retention::run(ctx, a).await,
    }
}
