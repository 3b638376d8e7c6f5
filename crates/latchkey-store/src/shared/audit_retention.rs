//! The audit log's retention: trimming the oldest entries behind a signed base, and the
//! other periods of `[retention]`.

/// At most this many audit entries go in one trim (one transaction); the cleanup job runs
/// again five minutes later.
pub(crate) const TRIM_BATCH: i64 = 10_000;

macro_rules! impl_audit_retention {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::RetentionStore for $store {
            async fn inactive_accounts(
                &self,
                before: UnixTime,
                after: Option<&$crate::InactiveAccount>,
                limit: u32,
            ) -> StoreResult<Vec<$crate::InactiveAccount>> {
                self.inactive_accounts_page(before, after, limit).await
            }

            async fn account_activity(&self, tenant: &TenantId, sub: &SubjectId)
                -> StoreResult<Option<(UnixTime, Option<UnixTime>)>> {
                let row: Option<(i64, Option<i64>)> = sqlx::query_as(
                    "SELECT last_active_at, inactivity_notice_at FROM users WHERE tenant_id = $1 AND sub = $2",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .fetch_optional(self.pool())
                .await?;
                Ok(row.map(|(at, notice)| (UnixTime::from_secs(at), notice.map(UnixTime::from_secs))))
            }

            async fn record_account_use(&self, tenant: &TenantId, sub: &SubjectId, at: UnixTime) -> StoreResult<()> {
                self.record_account_use_at(tenant, sub, at).await
            }

            async fn unverified_sign_ups(
                &self,
                before: UnixTime,
                after: Option<&$crate::UnverifiedSignUp>,
                limit: u32,
            ) -> StoreResult<Vec<$crate::UnverifiedSignUp>> {
                self.unverified_sign_ups_page(before, after, limit).await
            }

            async fn trim_audit_chains(&self, older_than: UnixTime, dry_run: bool) -> StoreResult<u64> {
                let tenants: Vec<String> = sqlx::query_scalar("SELECT tenant_id FROM audit_chains ORDER BY tenant_id")
                    .fetch_all(self.pool())
                    .await?;
                let mut removed = 0;
                for raw in tenants {
                    let tenant = TenantId::parse(&raw).map_err(|e| StoreError::Corrupt(format!("tenant id: {e}")))?;
                    removed += self.trim_audit_chain(&tenant, older_than, dry_run).await?;
                }
                Ok(removed)
            }

            async fn delete_used_invitations(&self, before: UnixTime, dry_run: bool) -> StoreResult<u64> {
                let condition = "(used_at IS NOT NULL AND used_at <= $1) OR (used_at IS NULL AND expires_at <= $1)";
                if dry_run {
                    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM invitations WHERE {condition}")))
                        .bind(before.secs())
                        .fetch_one(self.pool())
                        .await?;
                    return Ok(u64::try_from(n).unwrap_or(0));
                }
                let done = sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM invitations WHERE {condition}")))
                    .bind(before.secs())
                    .execute(self.pool())
                    .await?;
                Ok(done.rows_affected())
            }

            async fn count_expired(&self, kind: $crate::cleanup::Expired, cutoffs: &$crate::cleanup::Cutoffs) -> StoreResult<u64> {
                let (table, column, also) = kind.expiry();
                let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table} WHERE {column} <= $1{also}")))
                    .bind(cutoffs.cutoff(kind))
                    .fetch_one(self.pool())
                    .await?;
                Ok(u64::try_from(n).unwrap_or(0))
            }
        }

        impl $store {
            /// Deletes the oldest entries of a tenant's chain, up to the first entry written
            /// at or after `older_than` (at most a batch), and moves the chain's base to the
            /// last one deleted, signed, so what is kept still verifies.
            async fn trim_audit_chain(&self, tenant: &TenantId, older_than: UnixTime, dry_run: bool) -> StoreResult<u64> {
                let keys = self.audit_keys()?;
                let mut tx = self.begin_write().await?;
                // The chain's one writer, as when sealing.
                let row: Option<(i64, i64)> =
                    sqlx::query_as("UPDATE audit_chains SET seq = seq WHERE tenant_id = $1 RETURNING seq, base_seq")
                        .bind(tenant.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some((head, base)) = row else { return Ok(0) };
                // Entries are kept from the first one that is young enough on, so an entry
                // chained late with an old time never takes younger ones with it.
                let young: Option<i64> = sqlx::query_scalar(
                    "SELECT seq FROM audit_log WHERE tenant_id = $1 AND seq > $2 AND at >= $3 ORDER BY seq LIMIT 1",
                )
                .bind(tenant.as_str())
                .bind(base)
                .bind(older_than.secs())
                .fetch_optional(&mut *tx)
                .await?;
                let cut = young.map_or(head, |y| y - 1).min(base + $crate::shared::audit_retention::TRIM_BATCH);
                if cut <= base {
                    tx.rollback().await?;
                    return Ok(0);
                }
                let removed = u64::try_from(cut - base).unwrap_or(0);
                if dry_run {
                    tx.rollback().await?;
                    return Ok(removed);
                }
                let mac: String = sqlx::query_scalar("SELECT mac FROM audit_log WHERE tenant_id = $1 AND seq = $2")
                    .bind(tenant.as_str())
                    .bind(cut)
                    .fetch_optional(&mut *tx)
                    .await?
                    .flatten()
                    .ok_or_else(|| StoreError::Corrupt(format!("audit entry {cut} is missing: run `latchkey audit verify`")))?;
                let now = self.now();
                let statement = latchkey_core::crypto::CheckpointStatement { tenant: tenant.to_string(), seq: cut, mac: mac.clone(), at: now };
                sqlx::query(
                    "UPDATE audit_chains SET base_seq = $2, base_mac = $3, base_at = $4, base_signature = $5 WHERE tenant_id = $1",
                )
                .bind(tenant.as_str())
                .bind(cut)
                .bind(&mac)
                .bind(now)
                .bind(keys.sign_retention_base(&statement))
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM audit_log WHERE tenant_id = $1 AND seq <= $2 AND seq > 0")
                    .bind(tenant.as_str())
                    .bind(cut)
                    .execute(&mut *tx)
                    .await?;
                let details = serde_json::json!({"up_to": cut, "removed": removed, "older_than": older_than.secs()});
                audit!(self, tx, tenant, Actor::System, "audit.trimmed", $crate::shared::audit::CHECKPOINT_TARGET, details);
                tx.commit().await?;
                Ok(removed)
            }
        }
    };
}
