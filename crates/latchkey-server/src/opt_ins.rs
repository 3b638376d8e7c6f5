//! Start-up warnings for settings that weaken a secure default: every such convenience is
//! opt-in, named as such, and said out loud each time the server starts, so that a switch
//! turned on for a laptop does not go unnoticed in production. Data stored before a rule
//! existed is named here too, so it can be fixed.

use latchkey_core::domain::TenantId;
use latchkey_core::records::Client;
use latchkey_service::ServiceError;

use crate::state::AppState;

/// Logs one warning per weakened default: the server-wide refresh-token reuse grace, and
/// the clients that have a per-client convenience; then the client ids that are also a
/// user's `sub`.
pub async fn warn_at_start(state: &AppState) -> Result<(), ServiceError> {
    // At start-up, before any request: the one tenant there is.
    let tenant = TenantId::default_tenant();
    let grace = state.config.tokens.refresh_reuse_grace;
    if !grace.is_zero() {
        tracing::warn!(
            refresh_reuse_grace = %latchkey_core::duration::format(grace),
            "tokens.refresh_reuse_grace is set: a rotated refresh token replayed within it does not revoke its family \
             (RFC 9700 §4.14.2 revokes on any reuse)"
        );
    }
    let clients = state.services.clients().list(&tenant).await?;
    warn_for(
        &clients,
        |c| c.allow_insecure_redirect_uris.then(String::new),
        |ids| {
            tracing::warn!(
                clients = %ids,
                "clients allow plain-http redirect URIs on this machine (allow_insecure_redirect_uris): for development \
                 only; turn it off with `latchkey client update ID --allow-insecure-redirect-uris false`"
            );
        },
    );
    warn_for(
        &clients,
        |c| c.refresh_reuse_grace.filter(|s| *s > 0).map(|s| format!("={s}s")),
        |ids| {
            tracing::warn!(
                clients = %ids,
                "clients have a refresh-token reuse grace: a rotated token replayed within it does not revoke its family"
            );
        },
    );
    warn_for(
        &clients,
        |c| c.allow_legacy_assertion_audience.then(String::new),
        |ids| {
            tracing::warn!(
                clients = %ids,
                "clients accept private_key_jwt assertions addressed to the token endpoint URL \
                 (allow_legacy_assertion_audience), which the 2025 audience-injection attacks (CVE-2025-27370/27371) \
                 exploit; turn it off with `latchkey client update ID --allow-legacy-assertion-audience=false` once the \
                 client sends the issuer as aud"
            );
        },
    );
    warn_for(
        &clients,
        |c| c.allow_insecure_no_pkce.then(String::new),
        |ids| {
            tracing::warn!(
                clients = %ids,
                "clients may omit PKCE (allow_insecure_no_pkce), so a stolen authorization code can be redeemed \
                 (RFC 9700 §2.1.1); turn it off with `latchkey client update ID --allow-insecure-no-pkce false`"
            );
        },
    );
    for id in state.services.clients().ids_shared_with_users(&tenant).await? {
        tracing::warn!(
            client_id = %id,
            "client id is also a user's sub (stored before such ids were refused); tokens tell the two apart by \
             their grant, but resource servers that read only `sub` cannot (RFC 9068 §5): re-register the client \
             under another id and delete this one"
        );
    }
    Ok(())
}

/// Calls `warn` once with the comma-separated ids (each followed by what `setting` says of
/// it) of the clients for which `setting` is `Some`, if there are any.
fn warn_for(clients: &[Client], setting: impl Fn(&Client) -> Option<String>, warn: impl Fn(&str)) {
    let ids: Vec<String> =
        clients.iter().filter_map(|c| setting(c).map(|detail| format!("{}{detail}", c.client_id))).collect();
    if !ids.is_empty() {
        warn(&ids.join(","));
    }
}
