macro_rules! impl_api_key_store {
    ($store:ty, $db:ty) => {
        impl $store {
            fn api_key_change(tenant: &TenantId, id: &ApiKeyId) -> Change {
                Change::ApiKey { tenant: tenant.to_string(), key_id: id.as_str().to_owned() }
            }

            async fn fetch_api_key(
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                id: &ApiKeyId,
            ) -> StoreResult<Option<ApiKey>> {
                let row: Option<$crate::model::ApiKeyRow> =
                    sqlx::query_as("SELECT * FROM api_keys WHERE tenant_id = $1 AND key_id = $2")
                        .bind(tenant.as_str())
                        .bind(id.as_str())
                        .fetch_optional(&mut *conn)
                        .await?;
                row.map(TryInto::try_into).transpose()
            }
        }

        #[async_trait::async_trait]
        impl $crate::ApiKeyStore for $store {
            async fn create_api_key(&self, tenant: &TenantId, key: NewApiKey, max_live_per_owner: u32, actor: &Actor) -> StoreResult<ApiKey> {
                let mut tx = self.begin_write().await?;
                // The owner's lock keeps two creations from both passing the count.
                Self::lock_principal_id(&mut tx, tenant, key.owner.as_str()).await?;
                Self::ensure_exists(&mut tx, tenant, AccessEnd::User(&key.owner)).await?;
                let live: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM api_keys WHERE tenant_id = $1 AND owner_sub = $2 AND revoked_at IS NULL",
                )
                .bind(tenant.as_str())
                .bind(key.owner.as_str())
                .fetch_one(&mut *tx)
                .await?;
                if live >= i64::from(max_live_per_owner) {
                    return Err(StoreError::Invalid(format!(
                        "this owner has {live} live API keys, the most one may have; revoke one first"
                    )));
                }
                sqlx::query(
                    "INSERT INTO api_keys (tenant_id, key_id, owner_sub, name, secret_hash, scopes, routes, methods, audience, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(tenant.as_str())
                .bind(key.id.as_str())
                .bind(key.owner.as_str())
                .bind(&key.name)
                .bind(key.secret_hash.as_str())
                .bind(to_json_list(key.scopes.iter().map(|s| s.as_str())))
                .bind(to_json_list(key.routes.iter().map(|r| r.as_str())))
                .bind(to_json_list(key.methods.iter()))
                .bind(key.audience.as_deref())
                .bind(self.now())
                .bind(key.expires_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::from_write(e, |_| format!("a live API key named `{}` exists already for this owner", key.name)))?;
                let details = serde_json::json!({"key_id": key.id.to_string(), "name": key.name, "scopes": key.scopes});
                audit!(self, tx, tenant, actor, "api_key.created", key.owner.as_str(), details);
                Self::notify(&mut tx, &Self::api_key_change(tenant, &key.id)).await?;
                let created = Self::fetch_api_key(&mut tx, tenant, &key.id).await?;
                tx.commit().await?;
                created.ok_or_else(|| StoreError::NotFound(format!("API key {}", key.id)))
            }

            async fn api_key(&self, tenant: &TenantId, id: &ApiKeyId) -> StoreResult<Option<ApiKey>> {
                let mut conn = self.pool().acquire().await?;
                Self::fetch_api_key(&mut conn, tenant, id).await
            }

            async fn list_api_keys(&self, tenant: &TenantId, owner: Option<&SubjectId>) -> StoreResult<Vec<ApiKey>> {
                let rows: Vec<$crate::model::ApiKeyRow> = sqlx::query_as(
                    "SELECT * FROM api_keys WHERE tenant_id = $1 AND ($2 IS NULL OR owner_sub = $2) AND revoked_at IS NULL
                     ORDER BY owner_sub, created_at, key_id",
                )
                .bind(tenant.as_str())
                .bind(owner.map(|o| o.as_str()))
                .fetch_all(self.pool())
                .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn revoke_api_key(&self, tenant: &TenantId, id: &ApiKeyId, actor: &Actor) -> StoreResult<ApiKey> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("UPDATE api_keys SET revoked_at = $3 WHERE tenant_id = $1 AND key_id = $2 AND revoked_at IS NULL")
                    .bind(tenant.as_str())
                    .bind(id.as_str())
                    .bind(self.now())
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("live API key {id}")));
                }
                let key = Self::fetch_api_key(&mut tx, tenant, id).await?.ok_or_else(|| StoreError::NotFound(format!("API key {id}")))?;
                audit!(self, tx, tenant, actor, "api_key.revoked", key.owner.as_str(), serde_json::json!({"key_id": id.to_string()}));
                // Every node refuses it within the revocation poll, as a revoked token; the
                // entry need outlive only the nodes' key caches (rebuilt every minute).
                sqlx::query("INSERT INTO revocations (tenant_id, kind, value, expires_at) VALUES ($1, 'api_key', $2, $3)")
                    .bind(tenant.as_str())
                    .bind(id.as_str())
                    .bind(self.now() + $crate::API_KEY_REVOCATION_SECS)
                    .execute(&mut *tx)
                    .await?;
                Self::notify(&mut tx, &Self::api_key_change(tenant, id)).await?;
                tx.commit().await?;
                Ok(key)
            }

            async fn rotate_api_key(
                &self,
                tenant: &TenantId,
                id: &ApiKeyId,
                new_hash: &TokenHash,
                previous_valid_until: UnixTime,
                actor: &Actor,
            ) -> StoreResult<ApiKey> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE api_keys SET previous_secret_hash = secret_hash, previous_valid_until = $4, secret_hash = $3
                     WHERE tenant_id = $1 AND key_id = $2 AND revoked_at IS NULL",
                )
                .bind(tenant.as_str())
                .bind(id.as_str())
                .bind(new_hash.as_str())
                .bind(previous_valid_until.secs())
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("live API key {id}")));
                }
                let key = Self::fetch_api_key(&mut tx, tenant, id).await?.ok_or_else(|| StoreError::NotFound(format!("API key {id}")))?;
                let details = serde_json::json!({"key_id": id.to_string(), "previous_valid_until": previous_valid_until.secs()});
                audit!(self, tx, tenant, actor, "api_key.rotated", key.owner.as_str(), details);
                Self::notify(&mut tx, &Self::api_key_change(tenant, id)).await?;
                tx.commit().await?;
                Ok(key)
            }

            async fn record_api_key_use(&self, tenant: &TenantId, id: &ApiKeyId, at: UnixTime) -> StoreResult<()> {
                // Not a change any cache depends on: no notification.
                sqlx::query("UPDATE api_keys SET last_used_at = $3 WHERE tenant_id = $1 AND key_id = $2")
                    .bind(tenant.as_str())
                    .bind(id.as_str())
                    .bind(at.secs())
                    .execute(self.pool())
                    .await?;
                Ok(())
            }
        }
    };
}
