//! `user consents|withdraw-consent|export`: what a user allowed clients, withdrawing it, and
//! everything held about them.

use latchkey_core::domain::{ClientId, TenantId};
use latchkey_core::records::Actor;

use super::{CliError, Context, output, users};

/// Lists what a user allowed each client.
pub async fn list(ctx: &Context, tenant: &TenantId, user: &str) -> Result<(), CliError> {
    let f = ctx.open().await?;
    let result = async {
        let u = users::find(&f, tenant, user).await?;
        Ok::<_, CliError>(f.consents().list(tenant, &u.sub).await?)
    }
    .await;
    f.system().close().await;
    let consents = result?;
    let json: Vec<serde_json::Value> = consents
        .iter()
        .map(|c| {
            serde_json::json!({
                "client_id": c.client_id.as_str(), "scopes": c.consent.scopes, "claims": c.consent.claims,
                "version": c.consent.version, "how": c.consent.how.as_str(),
                "granted_at": c.granted_at.to_rfc3339(),
            })
        })
        .collect();
    output::print(ctx, &json, || {
        if consents.is_empty() {
            return "No consents: this user has allowed no app anything.".into();
        }
        let rows = consents
            .iter()
            .map(|c| {
                let mut allowed = c.consent.scopes.join(" ");
                if !c.consent.claims.is_empty() {
                    allowed.push_str(&format!(" (claims: {})", c.consent.claims.join(", ")));
                }
                vec![c.client_id.to_string(), allowed, c.granted_at.to_rfc3339()]
            })
            .collect();
        output::table(&["CLIENT", "ALLOWED", "GRANTED"], rows)
    })
}

/// Withdraws a user's consent to a client: its tokens for the user stop working, it is told
/// through back-channel logout, and the user is asked again next time.
pub async fn withdraw(ctx: &Context, tenant: &TenantId, user: &str, client: &str) -> Result<(), CliError> {
    let client = ClientId::parse(client).map_err(|e| CliError::Usage(format!("client id `{client}`: {e}")))?;
    let f = ctx.open().await?;
    let result = async {
        let u = users::find(&f, tenant, user).await?;
        let done = f.consents().withdraw(tenant, &u.sub, &client, &Actor::Cli).await?;
        Ok::<_, CliError>((u, done))
    }
    .await;
    f.system().close().await;
    let (u, done) = result?;
    let json = serde_json::json!({
        "sub": u.sub, "client_id": client.as_str(), "grants_revoked": done.revoked_grants.len(),
        "logouts_queued": done.logouts_queued,
    });
    output::print(ctx, &json, || {
        format!(
            "Withdrew {}'s consent to {client}: {} refresh token grant(s) revoked, {} back-channel logout(s) queued; {client}'s access tokens for them stop working.",
            u.username,
            done.revoked_grants.len(),
            done.logouts_queued
        )
    })
}

/// `user export USER [--output FILE]`: the person's data as one JSON document.
pub async fn export(
    ctx: &Context,
    tenant: &TenantId,
    user: &str,
    output: Option<&std::path::Path>,
) -> Result<(), CliError> {
    use std::io::Write as _;
    // Created first, so a file that exists stops the export before anything is read.
    let file = match output {
        Some(path) => Some((
            path,
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|e| CliError::Failed(format!("cannot create {}: {e}", path.display())))?,
        )),
        None => None,
    };
    let f = ctx.open().await?;
    let result = async {
        let u = users::find(&f, tenant, user).await?;
        Ok::<_, CliError>(f.data_export().of(tenant, &u.sub, &Actor::Cli).await?)
    }
    .await;
    f.system().close().await;
    let document = match result {
        Ok(d) => d,
        Err(e) => {
            // Nothing half-written is left behind.
            if let Some((path, _)) = &file {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };
    let text = serde_json::to_string_pretty(&document).map_err(|e| CliError::Failed(format!("export: {e}")))?;
    match file {
        Some((path, mut file)) => {
            file.write_all(text.as_bytes())
                .and_then(|()| file.write_all(b"\n"))
                .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", path.display())))?;
            eprintln!("wrote the data of {user} to {}", path.display());
            Ok(())
        }
        None => {
            println!("{text}");
            Ok(())
        }
    }
}
