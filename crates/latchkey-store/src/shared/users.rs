macro_rules! impl_user_store {
    ($store:ty, $db:ty) => {
        impl $store {
            fn user_conflict(msg: &str) -> String {
                if msg.contains("email") {
                    "that email address belongs to another user".into()
                } else {
                    "that username is taken".into()
                }
            }

            /// Inserts a user row (a taken username or verified email is a `Conflict`).
            async fn insert_user(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                user: &NewUser,
                webauthn_user_id: Option<&str>,
            ) -> StoreResult<()> {
                // RFC 9068 §5: the mirror image of `ensure_no_user_has_sub` for clients.
                Self::lock_principal_id(&mut *conn, tenant, user.sub.as_str()).await?;
                let client: Option<i32> =
                    sqlx::query_scalar("SELECT 1 FROM clients WHERE tenant_id = $1 AND client_id = $2")
                        .bind(tenant.as_str())
                        .bind(user.sub.as_str())
                        .fetch_optional(&mut *conn)
                        .await?;
                if client.is_some() {
                    return Err(StoreError::Conflict(format!(
                        "subject id `{}` is the id of a client; a token's sub must name one party (RFC 9068 §5), \
                         so choose another subject id",
                        user.sub
                    )));
                }
                let sealed = self.seal_user_columns(
                    tenant, &user.sub, user.email.as_ref(), user.name.as_ref().map(|n| n.as_str()), &user.profile,
                )?;
                sqlx::query(
                    "INSERT INTO users (tenant_id, sub, username, email, email_verified, name, profile, password_hash, locked, created_at, updated_at, webauthn_user_id, service_account, email_index, sealed_gen, last_active_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, FALSE, $9, $9, $10, $11, $12, $13, $9)",
                )
                .bind(tenant.as_str())
                .bind(user.sub.as_str())
                .bind(user.username.as_str())
                .bind(sealed.email)
                .bind(user.email_verified)
                .bind(sealed.name)
                .bind(sealed.profile)
                .bind(user.password_hash.as_deref())
                .bind(self.now())
                .bind(webauthn_user_id)
                .bind(user.service_account)
                .bind(sealed.email_index)
                .bind(sealed.generation)
                .execute(&mut *conn)
                .await
                .map_err(|e| StoreError::from_write(e, Self::user_conflict))?;
                Ok(())
            }

            async fn fetch_user(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                sub: &SubjectId,
            ) -> StoreResult<User> {
                let row: Option<$crate::model::UserRow> =
                    sqlx::query_as("SELECT * FROM users WHERE tenant_id = $1 AND sub = $2")
                        .bind(tenant.as_str())
                        .bind(sub.as_str())
                        .fetch_optional(&mut *conn)
                        .await?;
                self.user_from(row.ok_or_else(|| StoreError::NotFound(format!("user {sub}")))?)
            }
        }

        #[async_trait::async_trait]
        impl $crate::UserStore for $store {
            async fn create_user(&self, tenant: &TenantId, user: NewUser, actor: &Actor) -> StoreResult<User> {
                let mut tx = self.begin_write().await?;
                self.insert_user(&mut tx, tenant, &user, None).await?;
                audit!(self, tx, tenant, actor, "user.created", user.sub.as_str(),
                    serde_json::json!({"username": user.username.as_str()}));
                let created = self.fetch_user(&mut tx, tenant, &user.sub).await?;
                tx.commit().await?;
                Ok(created)
            }

            async fn import_users(&self, tenant: &TenantId, users: &[NewUser], actor: &Actor) -> StoreResult<ImportOutcome> {
                self.import_users_at_once(tenant, users, actor).await
            }

            async fn user_by_sub(&self, tenant: &TenantId, sub: &SubjectId) -> StoreResult<Option<User>> {
                let row: Option<$crate::model::UserRow> =
                    sqlx::query_as("SELECT * FROM users WHERE tenant_id = $1 AND sub = $2")
                        .bind(tenant.as_str())
                        .bind(sub.as_str())
                        .fetch_optional(self.pool())
                        .await?;
                row.map(|r| self.user_from(r)).transpose()
            }

            async fn user_by_username(&self, tenant: &TenantId, username: &Username) -> StoreResult<Option<User>> {
                let row: Option<$crate::model::UserRow> =
                    sqlx::query_as("SELECT * FROM users WHERE tenant_id = $1 AND username = $2")
                        .bind(tenant.as_str())
                        .bind(username.as_str())
                        .fetch_optional(self.pool())
                        .await?;
                row.map(|r| self.user_from(r)).transpose()
            }

            async fn user_by_email(&self, tenant: &TenantId, email: &Email) -> StoreResult<Option<User>> {
                // By the blind index of the normalised address; a row not sealed yet (written
                // before migration 0027, until the job reaches it) by the address in clear.
                let row: Option<$crate::model::UserRow> =
                    sqlx::query_as(
                        "SELECT * FROM users WHERE tenant_id = $1 AND email_index = $2
                         UNION ALL
                         SELECT * FROM users WHERE tenant_id = $1 AND sealed_gen IS NULL AND email = $3
                         ORDER BY email_verified DESC, created_at, sub LIMIT 1",
                    )
                        .bind(tenant.as_str())
                        .bind(self.email_index(tenant.as_str(), email)?)
                        .bind(email.as_str())
                        .fetch_optional(self.pool())
                        .await?;
                row.map(|r| self.user_from(r)).transpose()
            }

            async fn list_users(&self, tenant: &TenantId) -> StoreResult<Vec<User>> {
                let rows: Vec<$crate::model::UserRow> =
                    sqlx::query_as("SELECT * FROM users WHERE tenant_id = $1 ORDER BY username")
                        .bind(tenant.as_str())
                        .fetch_all(self.pool())
                        .await?;
                rows.into_iter().map(|r| self.user_from(r)).collect()
            }

            async fn update_user(&self, tenant: &TenantId, sub: &SubjectId, patch: UserPatch, actor: &Actor) -> StoreResult<User> {
                let mut tx = self.begin_write().await?;
                // Read, changed and written whole (the sealed columns are rewritten
                // together): a concurrent change waits, and If-Match sees it.
                Self::lock_principal_id(&mut tx, tenant, sub.as_str()).await?;
                let mut user = self.fetch_user(&mut tx, tenant, sub).await?;
                if patch.if_match.as_ref().is_some_and(|tag| *tag != user.etag()) {
                    return Err(StoreError::Stale(format!("user {sub} changed since it was read; read it again")));
                }
                let mut changed = Vec::new();
                if let Some(v) = patch.username {
                    if v != user.username {
                        Self::forget_applied_in(&mut tx, tenant, "user", user.username.as_str()).await?;
                    }
                    user.username = v;
                    changed.push("username");
                }
                if let Some(v) = patch.email {
                    // A new address is unproven until verified again.
                    if v != user.email { user.email_verified = false; }
                    user.email = v;
                    changed.push("email");
                }
                if let Some(v) = patch.email_verified { user.email_verified = v; changed.push("email_verified"); }
                if let Some(v) = patch.name { user.name = v; changed.push("name"); }
                if let Some(v) = patch.profile { user.profile = v; changed.push("profile"); }
                sqlx::query("UPDATE users SET username = $3 WHERE tenant_id = $1 AND sub = $2")
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .bind(user.username.as_str())
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::from_write(e, Self::user_conflict))?;
                self.write_user_columns(&mut tx, &user).await?;
                audit!(self, tx, tenant, actor, "user.updated", sub.as_str(), serde_json::json!({"fields": changed}));
                Self::notify(&mut tx, &Change::User { tenant: tenant.to_string(), sub: sub.to_string() }).await?;
                let updated = self.fetch_user(&mut tx, tenant, sub).await?;
                tx.commit().await?;
                Ok(updated)
            }

            async fn set_password_hash(&self, tenant: &TenantId, sub: &SubjectId, hash: Option<String>, actor: &Actor) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                let out = self.set_password_hash_in(&mut tx, tenant, sub, hash, actor).await?;
                tx.commit().await?;
                Ok(out)
            }

            async fn upgrade_password_hash(&self, tenant: &TenantId, sub: &SubjectId, old: &str, new: &str) -> StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE users SET password_hash = $4 WHERE tenant_id = $1 AND sub = $2 AND password_hash = $3",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .bind(old)
                .bind(new)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                // The password is the same: no session ends, and `updated_at` (a profile
                // change, for clients) stays. The audit log says the hash was renewed.
                let actor = Actor::User(sub.to_string());
                audit!(self, tx, tenant, actor, "user.password_rehashed", sub.as_str(), serde_json::json!({}));
                Self::notify(&mut tx, &Change::User { tenant: tenant.to_string(), sub: sub.to_string() }).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn set_user_locked(&self, tenant: &TenantId, sub: &SubjectId, locked: bool, actor: &Actor) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                let out = self.set_user_locked_in(&mut tx, tenant, sub, locked, actor).await?;
                tx.commit().await?;
                Ok(out)
            }

            async fn delete_user(&self, tenant: &TenantId, sub: &SubjectId, actor: &Actor) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                let out = self.delete_user_in(&mut tx, tenant, sub, actor).await?;
                tx.commit().await?;
                Ok(out)
            }
        }

        impl $store {
            pub(crate) async fn set_password_hash_in(&self, tx: &mut <$db as sqlx::Database>::Connection, tenant: &TenantId, sub: &SubjectId, hash: Option<String>, actor: &Actor) -> StoreResult<()> {
                let done = sqlx::query(
                    "UPDATE users SET password_hash = $3, updated_at = $4, password_changed_at = CASE WHEN $3 IS NULL THEN NULL ELSE $4 END
                     WHERE tenant_id = $1 AND sub = $2",
                )
                    .bind(tenant.as_str())
                    .bind(sub.as_str())
                    .bind(hash.as_deref())
                    .bind(self.now())
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("user {sub}")));
                }
                let action = if hash.is_some() { "user.password_set" } else { "user.password_removed" };
                audit!(self, tx, tenant, actor, action, sub.as_str(), serde_json::json!({}));
                Self::notify(tx, &Change::User { tenant: tenant.to_string(), sub: sub.to_string() }).await?;
                Ok(())
            }

            pub(crate) async fn set_user_locked_in(&self, tx: &mut <$db as sqlx::Database>::Connection, tenant: &TenantId, sub: &SubjectId, locked: bool, actor: &Actor) -> StoreResult<()> {
                // An unlock counts as use: an account disabled for being unused starts again
                // with a full period before the next notice.
                let done = sqlx::query(
                    "UPDATE users SET locked = $3, updated_at = $4,
                        last_active_at = CASE WHEN $3 THEN last_active_at ELSE $4 END,
                        inactivity_notice_at = CASE WHEN $3 THEN inactivity_notice_at ELSE NULL END
                     WHERE tenant_id = $1 AND sub = $2",
                )
                    .bind(tenant.as_str())
                    .bind(sub.as_str())
                    .bind(locked)
                    .bind(self.now())
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("user {sub}")));
                }
                let action = if locked { "user.locked" } else { "user.unlocked" };
                audit!(self, tx, tenant, actor, action, sub.as_str(), serde_json::json!({}));
                Self::notify(tx, &Change::User { tenant: tenant.to_string(), sub: sub.to_string() }).await?;
                Ok(())
            }

            pub(crate) async fn delete_user_in(&self, tx: &mut <$db as sqlx::Database>::Connection, tenant: &TenantId, sub: &SubjectId, actor: &Actor) -> StoreResult<()> {
                let username: Option<String> = sqlx::query_scalar("SELECT username FROM users WHERE tenant_id = $1 AND sub = $2")
                    .bind(tenant.as_str())
                    .bind(sub.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(username) = username {
                    Self::forget_applied_in(tx, tenant, "user", &username).await?;
                }
                for sql in [
                    "DELETE FROM passkeys WHERE tenant_id = $1 AND sub = $2",
                    "DELETE FROM totp_factors WHERE tenant_id = $1 AND sub = $2",
                    "DELETE FROM recovery_codes WHERE tenant_id = $1 AND sub = $2",
                ] {
                    sqlx::query(sql)
                        .bind(tenant.as_str())
                        .bind(sub.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                let done = sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND sub = $2")
                    .bind(tenant.as_str())
                    .bind(sub.as_str())
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("user {sub}")));
                }
                audit!(self, tx, tenant, actor, "user.deleted", sub.as_str(), serde_json::json!({}));
                Self::notify(tx, &Change::User { tenant: tenant.to_string(), sub: sub.to_string() }).await?;
                Ok(())
            }
        }
    };
}
