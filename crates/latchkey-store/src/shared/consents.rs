/// A consent from its stored columns.
pub(crate) fn consent_of(
    scopes: &str,
    claims: &str,
    version: String,
    how: &str,
) -> crate::StoreResult<latchkey_core::records::Consent> {
    let list = |raw: &str, what: &str| {
        serde_json::from_str::<Vec<String>>(raw).map_err(|e| crate::StoreError::Corrupt(format!("consent {what}: {e}")))
    };
    Ok(latchkey_core::records::Consent {
        scopes: list(scopes, "scopes")?,
        claims: list(claims, "claims")?,
        version,
        how: latchkey_core::records::ConsentHow::parse(how)
            .ok_or_else(|| crate::StoreError::Corrupt(format!("consent given by `{how}`")))?,
    })
}

macro_rules! impl_consent_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::ConsentStore for $store {
            async fn consents(&self, tenant: &TenantId, sub: &SubjectId) -> StoreResult<Vec<ConsentRecord>> {
                let rows: Vec<(String, String, String, String, String, i64)> = sqlx::query_as(
                    "SELECT client_id, scopes, claims, version, how, granted_at FROM consents
                     WHERE tenant_id = $1 AND sub = $2 ORDER BY client_id",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .fetch_all(self.pool())
                .await?;
                rows.into_iter()
                    .map(|(client, scopes, claims, version, how, at)| {
                        Ok(ConsentRecord {
                            client_id: ClientId::parse(&client)
                                .map_err(|e| StoreError::Corrupt(format!("consent client: {e}")))?,
                            consent: $crate::shared::consents::consent_of(&scopes, &claims, version, &how)?,
                            granted_at: UnixTime::from_secs(at),
                        })
                    })
                    .collect()
            }

            async fn consent_history(&self, tenant: &TenantId, sub: &SubjectId) -> StoreResult<Vec<ConsentHistoryEntry>> {
                let rows: Vec<(String, String, String, String, String, i64, Option<i64>)> = sqlx::query_as(
                    "SELECT client_id, scopes, claims, version, how, granted_at, withdrawn_at FROM consent_history
                     WHERE tenant_id = $1 AND sub = $2 ORDER BY id",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .fetch_all(self.pool())
                .await?;
                rows.into_iter()
                    .map(|(client, scopes, claims, version, how, at, withdrawn)| {
                        Ok(ConsentHistoryEntry {
                            client_id: ClientId::parse(&client)
                                .map_err(|e| StoreError::Corrupt(format!("consent client: {e}")))?,
                            consent: $crate::shared::consents::consent_of(&scopes, &claims, version, &how)?,
                            granted_at: UnixTime::from_secs(at),
                            withdrawn_at: withdrawn.map(UnixTime::from_secs),
                        })
                    })
                    .collect()
            }

            async fn withdraw_consent(
                &self,
                tenant: &TenantId,
                sub: &SubjectId,
                client: &ClientId,
                (now, revoke_until): (UnixTime, UnixTime),
                actor: &Actor,
            ) -> StoreResult<ConsentWithdrawn> {
                let mut tx = self.begin_write().await?;
                // The person's lock first, as erasure takes it: the two never wait on each
                // other's rows in opposite orders.
                Self::lock_principal_id(&mut tx, tenant, sub.as_str()).await?;
                let scopes: Option<String> = sqlx::query_scalar(
                    "DELETE FROM consents WHERE tenant_id = $1 AND sub = $2 AND client_id = $3 RETURNING scopes",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .bind(client.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let Some(scopes) = scopes else {
                    return Err(StoreError::NotFound(format!("a consent of this user to `{client}`")));
                };
                sqlx::query(
                    "UPDATE consent_history SET withdrawn_at = $4
                     WHERE tenant_id = $1 AND sub = $2 AND client_id = $3 AND withdrawn_at IS NULL",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .bind(client.as_str())
                .bind(now.secs())
                .execute(&mut *tx)
                .await?;
                // Twice: the second statement takes a new snapshot (PostgreSQL, read
                // committed). A rotation that held one of these rows made the first wait, and
                // its successor token, committed meanwhile, is visible only to the second. A
                // rotation that starts later finds its token revoked and fails.
                let mut grants: Vec<String> = Vec::new();
                for _ in 0..2 {
                    let revoked: Vec<String> = sqlx::query_scalar(
                        "UPDATE refresh_tokens SET revoked_at = $4
                         WHERE tenant_id = $1 AND sub = $2 AND client_id = $3 AND revoked_at IS NULL RETURNING grant_id",
                    )
                    .bind(tenant.as_str())
                    .bind(sub.as_str())
                    .bind(client.as_str())
                    .bind(now.secs())
                    .fetch_all(&mut *tx)
                    .await?;
                    grants.extend(revoked);
                }
                grants.sort();
                grants.dedup();
                for grant in &grants {
                    sqlx::query("INSERT INTO revocations (tenant_id, kind, value, expires_at) VALUES ($1, 'grant', $2, $3)")
                        .bind(tenant.as_str())
                        .bind(grant)
                        .bind(revoke_until.secs())
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query(
                    "INSERT INTO revocations (tenant_id, kind, value, expires_at, issued_before) VALUES ($1, 'consent', $2, $3, $4)",
                )
                .bind(tenant.as_str())
                .bind(format!("{client} {sub}"))
                .bind(revoke_until.secs())
                .bind(now.secs())
                .execute(&mut *tx)
                .await?;
                let sessions: Vec<(String, bool)> = sqlx::query_as(
                    "DELETE FROM session_clients WHERE tenant_id = $1 AND client_id = $2
                       AND sid IN (SELECT sid FROM browser_sessions WHERE tenant_id = $1 AND sub = $3)
                     RETURNING sid, backchannel",
                )
                .bind(tenant.as_str())
                .bind(client.as_str())
                .bind(sub.as_str())
                .fetch_all(&mut *tx)
                .await?;
                let mut logouts_queued = 0;
                for (sid, _) in sessions.iter().filter(|(_, backchannel)| *backchannel) {
                    Self::queue_logout(&mut *tx, tenant, client.as_str(), sub.as_str(), sid, now).await?;
                    logouts_queued += 1;
                }
                let scopes: serde_json::Value = serde_json::from_str(&scopes).unwrap_or_default();
                audit!(self, tx, tenant, actor, "consent.withdrawn", sub.as_str(), serde_json::json!({
                    "client_id": client.as_str(),
                    "scopes": scopes,
                    "refresh_tokens_revoked": grants.len(),
                    "sessions": sessions.len(),
                }));
                tx.commit().await?;
                Ok(ConsentWithdrawn { revoked_grants: grants, logouts_queued })
            }
        }
    };
}
