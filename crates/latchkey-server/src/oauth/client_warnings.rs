//! What the operator is told at start-up about registered clients: every convenience that
//! weakens a default is logged while a client has it (a rule that never bends), and data
//! stored before a rule existed is named so it can be fixed.

use latchkey_core::domain::TenantId;
use latchkey_store::Store;

/// Logs a warning for each client allowed the legacy assertion audience, and for each
/// client id that is also a user's `sub`. A store error is logged too: a warning must not
/// stop the server.
pub async fn warn_at_start(store: &dyn Store) {
    let tenant = TenantId::default_tenant();
    match store.list_clients(&tenant).await {
        Ok(clients) => {
            for c in clients.iter().filter(|c| c.allow_legacy_assertion_audience) {
                tracing::warn!(
                    client_id = %c.client_id,
                    "client accepts private_key_jwt assertions addressed to the token endpoint URL \
                     (allow_legacy_assertion_audience), which the 2025 audience-injection attacks \
                     (CVE-2025-27370/27371) exploit; turn it off with `latchkey client update {} \
                     --allow-legacy-assertion-audience=false` once the client sends the issuer as aud",
                    c.client_id
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot list clients to check their settings"),
    }
    match store.client_ids_shared_with_users(&tenant).await {
        Ok(ids) => {
            for id in ids {
                tracing::warn!(
                    client_id = %id,
                    "client id is also a user's sub (stored before such ids were refused); tokens tell \
                     the two apart by their grant, but resource servers that read only `sub` cannot \
                     (RFC 9068 §5): re-register the client under another id and delete this one"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot check client ids against user subs"),
    }
}
