//! Start-up warnings for settings that weaken a secure default: every such convenience is
//! opt-in, named as such, and said out loud each time the server starts, so that a switch
//! turned on for a laptop does not go unnoticed in production.

use latchkey_core::domain::TenantId;
use latchkey_store::StoreError;

use crate::app::AppState;

/// Logs one warning per weakened default: the server-wide refresh-token reuse grace, and
/// the clients that allow plain-http redirect URIs or have their own reuse grace.
pub async fn warn_at_start(state: &AppState) -> Result<(), StoreError> {
    let grace = state.config.tokens.refresh_reuse_grace;
    if !grace.is_zero() {
        tracing::warn!(
            refresh_reuse_grace = %latchkey_core::duration::format(grace),
            "tokens.refresh_reuse_grace is set: a rotated refresh token replayed within it does not revoke its family \
             (RFC 9700 §4.14.2 revokes on any reuse)"
        );
    }
    let clients = state.store.list_clients(&TenantId::default_tenant()).await?;
    let development: Vec<&str> =
        clients.iter().filter(|c| c.allow_insecure_redirect_uris).map(|c| c.client_id.as_str()).collect();
    if !development.is_empty() {
        tracing::warn!(
            clients = %development.join(","),
            "clients allow plain-http redirect URIs on this machine (allow_insecure_redirect_uris): for development \
             only; turn it off with `latchkey client update ID --allow-insecure-redirect-uris false`"
        );
    }
    let graced: Vec<String> = clients
        .iter()
        .filter_map(|c| c.refresh_reuse_grace.filter(|s| *s > 0).map(|s| format!("{}={s}s", c.client_id)))
        .collect();
    if !graced.is_empty() {
        tracing::warn!(
            clients = %graced.join(","),
            "clients have a refresh-token reuse grace: a rotated token replayed within it does not revoke its family"
        );
    }
    Ok(())
}
