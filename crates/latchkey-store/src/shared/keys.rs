macro_rules! impl_key_store {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn insert_key(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                key: &NewSigningKey,
                state: KeyState,
            ) -> StoreResult<bool> {
                let activated_at = (state == KeyState::Active).then(|| self.now());
                let done = sqlx::query(
                    "INSERT INTO signing_keys (tenant_id, kid, alg, state, private_key, public_jwk, created_at, activated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                )
                .bind(tenant.as_str())
                .bind(&key.kid)
                .bind(key.alg.as_str())
                .bind(state.as_str())
                .bind(&key.sealed_private_key)
                .bind(&key.public_jwk)
                .bind(self.now())
                .bind(activated_at)
                .execute(&mut *conn)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }

        #[async_trait::async_trait]
        impl $crate::SigningKeyStore for $store {
            async fn signing_keys(&self, tenant: &TenantId) -> StoreResult<Vec<StoredSigningKey>> {
                let rows: Vec<$crate::model::SigningKeyRow> = sqlx::query_as(
                    "SELECT kid, alg, state, private_key, public_jwk, created_at, activated_at, retired_at, publish_until
                     FROM signing_keys WHERE tenant_id = $1 ORDER BY alg, created_at, kid",
                )
                .bind(tenant.as_str())
                .fetch_all(self.pool())
                .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn bootstrap_signing_keys(
                &self,
                tenant: &TenantId,
                active: NewSigningKey,
                next: NewSigningKey,
                actor: &Actor,
            ) -> StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                // The partial unique indexes allow one active and one next key per algorithm:
                // a node that loses the race inserts nothing and keeps the winner's keys.
                if !self.insert_key(&mut tx, tenant, &active, KeyState::Active).await?
                    || !self.insert_key(&mut tx, tenant, &next, KeyState::Next).await?
                {
                    tx.rollback().await?;
                    return Ok(false);
                }
                audit!(self, tx, tenant, actor, "keys.created", active.alg.as_str(),
                    serde_json::json!({"active": active.kid, "next": next.kid}));
                Self::notify(&mut tx, &Change::SigningKeys { tenant: tenant.to_string() }).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn rotate_signing_key(
                &self,
                tenant: &TenantId,
                expected_next_kid: &str,
                new_next: NewSigningKey,
                retired_publish_until: UnixTime,
                actor: &Actor,
            ) -> StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                let alg = new_next.alg.as_str();
                // Order matters for the one-active/one-next indexes: retire, promote, add.
                let retired: Option<String> = sqlx::query_scalar(
                    "UPDATE signing_keys SET state = 'retired', retired_at = $3, publish_until = $4
                     WHERE tenant_id = $1 AND alg = $2 AND state = 'active' RETURNING kid",
                )
                .bind(tenant.as_str())
                .bind(alg)
                .bind(self.now())
                .bind(retired_publish_until.secs())
                .fetch_optional(&mut *tx)
                .await?;
                let promoted = sqlx::query(
                    "UPDATE signing_keys SET state = 'active', activated_at = $4
                     WHERE tenant_id = $1 AND alg = $2 AND kid = $3 AND state = 'next'",
                )
                .bind(tenant.as_str())
                .bind(alg)
                .bind(expected_next_kid)
                .bind(self.now())
                .execute(&mut *tx)
                .await?;
                if promoted.rows_affected() != 1 {
                    // Another node or command rotated first; leave its result alone.
                    tx.rollback().await?;
                    return Ok(false);
                }
                if !self.insert_key(&mut tx, tenant, &new_next, KeyState::Next).await? {
                    tx.rollback().await?;
                    return Ok(false);
                }
                audit!(self, tx, tenant, actor, "keys.rotated", alg, serde_json::json!({
                    "retired": retired, "active": expected_next_kid, "next": new_next.kid,
                }));
                Self::notify(&mut tx, &Change::SigningKeys { tenant: tenant.to_string() }).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn retire_algorithm(&self, tenant: &TenantId, alg: latchkey_core::domain::SigningAlg, publish_until: UnixTime, actor: &Actor) -> StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                let retired = sqlx::query(
                    "UPDATE signing_keys SET state = 'retired', retired_at = $3, publish_until = $4
                     WHERE tenant_id = $1 AND alg = $2 AND state = 'active'",
                )
                .bind(tenant.as_str())
                .bind(alg.as_str())
                .bind(self.now())
                .bind(publish_until.secs())
                .execute(&mut *tx)
                .await?;
                let dropped = sqlx::query("DELETE FROM signing_keys WHERE tenant_id = $1 AND alg = $2 AND state = 'next'")
                    .bind(tenant.as_str())
                    .bind(alg.as_str())
                    .execute(&mut *tx)
                    .await?;
                let changed = retired.rows_affected() + dropped.rows_affected() > 0;
                if changed {
                    audit!(self, tx, tenant, actor, "keys.algorithm_retired", alg.as_str(), serde_json::json!({"publish_until": publish_until.secs()}));
                    Self::notify(&mut tx, &Change::SigningKeys { tenant: tenant.to_string() }).await?;
                }
                tx.commit().await?;
                Ok(changed)
            }

            async fn unpublish_signing_key(&self, tenant: &TenantId, kid: &str, now: UnixTime, actor: &Actor)
                -> StoreResult<Option<(StoredSigningKey, bool)>> {
                let mut tx = self.begin_write().await?;
                let until = now.minus(std::time::Duration::from_secs(1));
                let done = sqlx::query(
                    "UPDATE signing_keys SET publish_until = $3
                     WHERE tenant_id = $1 AND kid = $2 AND state = 'retired' AND publish_until > $3",
                )
                .bind(tenant.as_str())
                .bind(kid)
                .bind(until.secs())
                .execute(&mut *tx)
                .await?;
                // Read after the update, in its transaction: what the caller is told is what
                // happened, even when a rotation retired the key a moment before.
                let row: Option<$crate::model::SigningKeyRow> = sqlx::query_as(
                    "SELECT kid, alg, state, private_key, public_jwk, created_at, activated_at, retired_at, publish_until
                     FROM signing_keys WHERE tenant_id = $1 AND kid = $2",
                )
                .bind(tenant.as_str())
                .bind(kid)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(key) = row.map(StoredSigningKey::try_from).transpose()? else { return Ok(None) };
                let unpublished = done.rows_affected() == 1;
                if unpublished {
                    audit!(self, tx, tenant, actor, "keys.unpublished", kid, serde_json::json!({"alg": key.alg.as_str()}));
                    Self::notify(&mut tx, &Change::SigningKeys { tenant: tenant.to_string() }).await?;
                }
                tx.commit().await?;
                Ok(Some((key, unpublished)))
            }

            async fn delete_expired_signing_keys(&self, tenant: &TenantId, now: UnixTime) -> StoreResult<u64> {
                // In batches like every cleanup (`cleanup`), though a tenant has few keys.
                const BATCH: u32 = 100;
                let mut total = 0;
                loop {
                    let mut tx = self.begin_write().await?;
                    let sql = Self::batch_delete_sql(
                        "signing_keys",
                        "publish_until < $1 AND tenant_id = $3 AND state = 'retired'",
                        "publish_until",
                    );
                    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(now.secs())
                        .bind(i64::from(BATCH))
                        .bind(tenant.as_str())
                        .execute(&mut *tx)
                        .await?;
                    let n = done.rows_affected();
                    if n > 0 {
                        audit!(self, tx, tenant, Actor::System, "keys.expired_deleted", "signing_keys",
                            serde_json::json!({"count": n}));
                        Self::notify(&mut tx, &Change::SigningKeys { tenant: tenant.to_string() }).await?;
                    }
                    tx.commit().await?;
                    total += n;
                    if n < u64::from(BATCH) {
                        return Ok(total);
                    }
                    tokio::task::yield_now().await;
                }
            }
        }
    };
}
