//! `user identities|unlink`: a user's accounts at upstream identity providers.

use latchkey_core::domain::{ProviderId, TenantId};
use latchkey_core::records::Actor;

use super::{CliError, Context, output, users};

/// Lists a user's linked upstream accounts.
pub async fn list(ctx: &Context, tenant: &TenantId, user: &str) -> Result<(), CliError> {
    let f = ctx.open().await?;
    let result = async {
        let u = users::find(&f, tenant, user).await?;
        Ok::<_, CliError>(f.federation().identities(tenant, &u.sub).await?)
    }
    .await;
    f.system().close().await;
    let identities = result?;
    let json: Vec<serde_json::Value> = identities
        .iter()
        .map(|i| {
            serde_json::json!({
                "provider": i.provider.as_str(), "subject": i.subject.as_str(), "email": i.email,
                "linked_at": i.linked_at.to_rfc3339(), "last_used_at": i.last_used_at.map(|t| t.to_rfc3339()),
            })
        })
        .collect();
    output::print(ctx, &json, || {
        if identities.is_empty() {
            return "No linked sign-in providers.".into();
        }
        let rows = identities
            .iter()
            .map(|i| {
                vec![
                    i.provider.to_string(),
                    i.subject.to_string(),
                    i.email.clone().unwrap_or_else(|| "-".into()),
                    i.last_used_at.map_or("-".into(), |t| t.to_rfc3339()),
                ]
            })
            .collect();
        output::table(&["PROVIDER", "SUBJECT", "EMAIL", "LAST USED"], rows)
    })
}

/// Unlinks a user's account at a provider; not the last way in (set a password first, or
/// lock the user).
pub async fn unlink(ctx: &Context, tenant: &TenantId, user: &str, provider: &str) -> Result<(), CliError> {
    let provider = ProviderId::parse(provider).map_err(|e| CliError::Usage(e.to_string()))?;
    let f = ctx.open().await?;
    let result = async {
        let u = users::find(&f, tenant, user).await?;
        f.federation().unlink(tenant, &u.sub, &provider, None, &Actor::Cli).await?;
        Ok::<_, CliError>(u)
    }
    .await;
    f.system().close().await;
    let u = result?;
    let json = serde_json::json!({"sub": u.sub, "unlinked": provider.as_str()});
    output::print(ctx, &json, || format!("Unlinked {provider} from {}.", u.username))
}
