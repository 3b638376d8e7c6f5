//! `serve`, `migrate`, `check-config`.

use std::io::Write as _;

use latchkey_config::SecretRef;

use super::{CliError, Context, output};

pub async fn serve(ctx: Context) -> Result<(), CliError> {
    let foundation = ctx.foundation().await?;
    let created_key = foundation.created_master_key_file.clone();
    let running = latchkey_server::start(foundation).await?;
    let location = running.state.services.system().location();
    let backend = running.state.services.system().backend();
    if let Some(path) = created_key {
        tracing::warn!(
            path = %path.display(),
            "created a new master key file beside the database; back it up apart from the database, \
             or set secrets.master_key (e.g. \"env:LK_MASTER_KEY\") for production"
        );
    }
    let banner = format!(
        "Latchkey is running.\n  issuer:    {issuer}\n  listening: {addr}\n  data:      {location} ({backend})\n  \
         discovery: {issuer}/.well-known/openid-configuration\nCreate the first user with:\n  \
         latchkey user create --username admin --email admin@example.com\n",
        issuer = running.issuer,
        addr = running.addr,
    );
    // Written, not println!: a closed stdout must not take the server down.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    drop(out);
    running.run_until_signal().await;
    Ok(())
}

pub async fn migrate(ctx: Context) -> Result<(), CliError> {
    let services = ctx.open().await?;
    let location = services.system().location();
    services.system().close().await;
    output::print(&ctx, &serde_json::json!({"migrated": true, "database": location}), || {
        format!("Database {location} is up to date.")
    })
}

/// Checks the configuration: every key, every secret reference, the email templates, and the
/// forward-auth rules file (against the roles and groups in the database, which it opens
/// for that). Warns when messages would carry links to a default `localhost` address.
pub async fn check_config(ctx: Context) -> Result<(), CliError> {
    let c = &ctx.config;
    // Secret references must resolve too; their values are never printed.
    let mut refs: Vec<(&str, &SecretRef)> = vec![("database.url", &c.database.url)];
    refs.extend(c.secrets.master_key.as_ref().map(|r| ("secrets.master_key", r)));
    refs.extend(c.metrics.token.as_ref().map(|r| ("metrics.token", r)));
    refs.extend(c.mail.as_ref().and_then(|m| m.password.as_ref()).map(|r| ("mail.password", r)));
    refs.extend(c.sms.as_ref().map(|m| ("sms.auth_token", &m.auth_token)));
    for (key, reference) in refs {
        reference.resolve(c.base_dir()).map_err(|e| CliError::Usage(format!("{}: key `{key}`: {e}", c.source)))?;
    }
    // Each provider's secret resolves, or its private key reads as one.
    latchkey_service::federation::Upstreams::check_credentials(c)
        .map_err(|e| CliError::Usage(format!("{}: {e}", c.source)))?;
    tracing_subscriber::EnvFilter::try_new(&c.log.level).map_err(|e| {
        CliError::Usage(format!("{}: key `log.level`: `{}` is not a valid filter: {e}", c.source, c.log.level))
    })?;
    if let Some(reference) = &c.secrets.master_key {
        let secret = reference
            .resolve(c.base_dir())
            .map_err(|e| CliError::Usage(format!("{}: key `secrets.master_key`: {e}", c.source)))?;
        latchkey_core::crypto::MasterKey::parse(secret.expose())
            .map_err(|e| CliError::Usage(format!("{}: key `secrets.master_key`: {e}", c.source)))?;
    }
    if let Some(mail) = &c.mail {
        // Every email template, the operator's overrides included, renders.
        let dir = mail.templates.as_ref().map(|d| c.base_dir().join(d));
        latchkey_service::email_templates::EmailTemplates::load(dir.as_deref(), &c.issuer())
            .map_err(|e| CliError::Usage(format!("{}: key `mail.templates`: {e}", c.source)))?;
    }
    if (c.mail.is_some() || c.sms.is_some()) && c.server.public_url.is_none() {
        eprintln!(
            "warning: {}: links in emails and texts point at {} (server.public_url is not set): \
             set it to the address people reach Latchkey at",
            c.source,
            c.issuer()
        );
    }
    if let Some(path) = &c.forward_auth.rules {
        let services = ctx.open().await?;
        let checked = services.read_access_rules(path).await;
        services.system().close().await;
        checked.map_err(|e| CliError::Usage(format!("{}: key `forward_auth.rules`: {e}", c.source)))?;
    }
    warn_about_orphaned_links(&ctx).await?;
    let toml = toml::to_string_pretty(c).map_err(|e| CliError::Failed(format!("cannot print the config: {e}")))?;
    let value = serde_json::json!({
        "source": c.source.to_string(),
        "issuer": c.issuer(),
        "config": c,
    });
    output::print(&ctx, &value, || {
        format!("# Configuration is valid.\n# source: {}\n# issuer: {}\n\n{toml}", c.source, c.issuer())
    })
}

/// Links to upstream accounts whose provider is no longer configured sign nobody in: said
/// as a warning, with how many (an existing database only, read as it is: checking never
/// creates, migrates or fails on it).
async fn warn_about_orphaned_links(ctx: &Context) -> Result<(), CliError> {
    let c = &ctx.config;
    let exists = match c.database() {
        Ok(latchkey_config::DatabaseLocation::Sqlite(path)) => path.exists(),
        Ok(latchkey_config::DatabaseLocation::Postgres(_)) => true,
        Err(_) => false,
    };
    if !exists {
        return Ok(());
    }
    let orphaned = match latchkey_service::federation::orphaned_links(c, &ctx.tenant()).await {
        Ok(found) => found,
        Err(e) => {
            eprintln!("warning: {}: cannot check the database for links to removed sign-in providers: {e}", c.source);
            return Ok(());
        }
    };
    for (provider, count) in orphaned {
        eprintln!(
            "warning: {}: {count} user(s) have an account at sign-in provider `{provider}` linked, which \
             [federation.providers] no longer has: they cannot sign in through it (add it back with the same id, \
             or unlink with `latchkey user unlink USER {provider}`)",
            c.source
        );
    }
    Ok(())
}
