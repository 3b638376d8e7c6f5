//! Erasing a person (GDPR Art. 17): everything tied to their account, in the caller's
//! transaction, and the key their audit entries are sealed under.

macro_rules! impl_erasure {
    ($store:ty, $db:ty) => {
        impl $store {
            pub(crate) async fn erase_user_in(
                &self,
                tx: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                sub: &SubjectId,
                erasure: &latchkey_core::records::ErasureRequest,
                actor: &Actor,
            ) -> StoreResult<(latchkey_core::records::ErasureReceipt, Vec<String>)> {
                let (t, s) = (tenant.as_str(), sub.as_str());
                let mut removed = std::collections::BTreeMap::new();
                // The clients that may hold tokens for the person: each gets a revocation
                // that refuses every access token issued to them for the person until now.
                let clients: Vec<String> = sqlx::query_scalar(
                    "SELECT client_id FROM refresh_tokens WHERE tenant_id = $1 AND sub = $2
                     UNION SELECT client_id FROM consents WHERE tenant_id = $1 AND sub = $2
                     UNION SELECT c.client_id FROM session_clients c JOIN browser_sessions b
                       ON b.tenant_id = c.tenant_id AND b.sid = c.sid WHERE c.tenant_id = $1 AND b.sub = $2",
                )
                .bind(t)
                .bind(s)
                .fetch_all(&mut *tx)
                .await?;
                let mut clients = clients;
                clients.extend(erasure.session_clients.iter().cloned());
                clients.sort();
                clients.dedup();
                for client in &clients {
                    sqlx::query(
                        "INSERT INTO revocations (tenant_id, kind, value, expires_at, issued_before) VALUES ($1, 'consent', $2, $3, $4)",
                    )
                    .bind(t)
                    .bind(format!("{client} {s}"))
                    .bind(erasure.revoke_until.secs())
                    .bind(erasure.at.secs())
                    .execute(&mut *tx)
                    .await?;
                }
                removed.insert("clients_told_to_refuse_tokens", u64::try_from(clients.len()).unwrap_or(u64::MAX));
                for (kind, sql) in [
                    // Consents before refresh tokens, in the order a withdrawal takes them.
                    ("consents", "DELETE FROM consents WHERE tenant_id = $1 AND sub = $2"),
                    ("consent_history", "DELETE FROM consent_history WHERE tenant_id = $1 AND sub = $2"),
                    ("refresh_tokens", "DELETE FROM refresh_tokens WHERE tenant_id = $1 AND sub = $2"),
                    ("sessions", "DELETE FROM browser_sessions WHERE tenant_id = $1 AND sub = $2"),
                    ("invitations_used", "DELETE FROM invitations WHERE tenant_id = $1 AND used_by = $2"),
                    // Logouts still to deliver stay (the clients must hear of the end); those
                    // delivered or given up go.
                    ("finished_logout_deliveries", "DELETE FROM logout_deliveries WHERE tenant_id = $1 AND sub = $2 AND status <> 'pending'"),
                ] {
                    let done = sqlx::query(sql).bind(t).bind(s).execute(&mut *tx).await?;
                    removed.insert(kind, done.rows_affected());
                }
                // Throttle counters name the account by its subject id in a few fixed forms
                // (`KIND:sub:SUB`, `SUB:IP`, `sent:SUB:IP`), and a recipient by its hash
                // (`…:to:HASH`): matched exactly, never as a substring of another key.
                let escaped = s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                // Message limits wrap a key as `message:PURPOSE:key:K`, with K the subject id,
                // `SUB:IPHASH` or `sent:SUB:IPHASH` (the hash is 64 hex digits: matched by
                // length, so `42` never takes `42:abc`'s).
                let ip_hash = "_".repeat(64);
                let mut patterns = vec![
                    format!("%:sub:{escaped}"),
                    format!("%:key:{escaped}"),
                    format!("%:key:{escaped}:{ip_hash}"),
                    format!("%:key:sent:{escaped}:{ip_hash}"),
                ];
                patterns.extend(erasure.recipient_hashes.iter().map(|h| format!("%:to:{h}")));
                let mut throttle = 0;
                for pattern in &patterns {
                    let done = sqlx::query("DELETE FROM login_failures WHERE tenant_id = $1 AND throttle_key LIKE $2 ESCAPE '\\'")
                        .bind(t)
                        .bind(pattern)
                        .execute(&mut *tx)
                        .await?;
                    throttle += done.rows_affected();
                }
                removed.insert("throttle_entries", throttle);
                let mut messages = 0;
                for hash in &erasure.recipient_hashes {
                    let done = sqlx::query("DELETE FROM outbox WHERE tenant_id = $1 AND recipient_hash = $2")
                        .bind(t)
                        .bind(hash)
                        .execute(&mut *tx)
                        .await?;
                    messages += done.rows_affected();
                }
                removed.insert("pending_messages", messages);
                for (kind, table) in [
                    ("passkeys", "passkeys"),
                    ("authenticator_apps", "totp_factors"),
                    ("recovery_codes", "recovery_codes"),
                    ("linked_identities", "federated_identities"),
                    ("api_keys", "api_keys"),
                    ("single_use_links_and_codes", "one_time_tokens"),
                ] {
                    let column = if table == "api_keys" { "owner_sub" } else { "sub" };
                    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT COUNT(*) FROM {table} WHERE tenant_id = $1 AND {column} = $2"
                    )))
                    .bind(t)
                    .bind(s)
                    .fetch_one(&mut *tx)
                    .await?;
                    removed.insert(kind, u64::try_from(n).unwrap_or(0));
                }
                // The account; its factors, roles, groups, API keys, links and single-use
                // tokens go with it (deleted here or by their foreign keys).
                self.delete_user_in(&mut *tx, tenant, sub, actor).await?;
                removed.insert("account", 1);
                // Their audit entries stay in the chain and can no longer be opened; the row
                // stays without its salt, so later entries about them are kept without content
                // rather than under a new key.
                let keys = self.audit_keys()?;
                let done = sqlx::query(
                    "INSERT INTO audit_subject_keys (tenant_id, subject_ref, salt, erased_at) VALUES ($1, $2, NULL, $3)
                     ON CONFLICT (tenant_id, subject_ref) DO UPDATE SET salt = NULL, erased_at = excluded.erased_at",
                )
                .bind(t)
                .bind(keys.pseudonym(t, s))
                .bind(erasure.at.secs())
                .execute(&mut *tx)
                .await?;
                removed.insert("audit_entry_keys", done.rows_affected());
                // A person erasing themselves is named as such: their id is erased data.
                let by = match actor {
                    Actor::User(who) if who == s => "self".to_owned(),
                    other => other.as_string(),
                };
                let receipt = latchkey_core::records::ErasureReceipt {
                    id: erasure.receipt_id.clone(),
                    subject_ref: keys.pseudonym(t, s),
                    erased_at: erasure.at,
                    by: by.clone(),
                    removed: removed.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                };
                let details = serde_json::json!({
                    "subject_ref": receipt.subject_ref,
                    "erased_at": receipt.erased_at.secs(),
                    "removed": receipt.removed,
                });
                let part = $crate::shared::audit::SealedPart { actor: by, target: format!("#erasure:{}", receipt.id), details };
                self.append_audit_entries(&mut *tx, tenant, self.now(), &[("user.erased", part)]).await?;
                Ok((receipt, clients))
            }
        }
    };
}
