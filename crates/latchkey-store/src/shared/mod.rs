//! The SQL both backends share. sqlx binds `$N` parameters by number on SQLite as on
//! PostgreSQL, and the schema uses types both read the same way (TEXT, BIGINT, BOOLEAN,
//! bytes), so each statement is written once here and instantiated for each backend by
//! `impl_shared_store!`. A backend supplies `pool()`, `now()` and `notify()`.

#[macro_use]
mod access;
#[macro_use]
mod admin;
#[macro_use]
mod api_keys;
#[macro_use]
mod outbox;
#[macro_use]
mod users;
#[macro_use]
mod clients;
#[macro_use]
mod keys;
#[macro_use]
mod oauth;
#[macro_use]
mod sessions;
#[macro_use]
mod factors;
#[macro_use]
mod federation;
#[macro_use]
pub(crate) mod consents;
#[macro_use]
pub(crate) mod audit;
#[macro_use]
pub(crate) mod audit_retention;
#[macro_use]
mod account_retention;
#[macro_use]
mod erasure;
#[macro_use]
pub(crate) mod personal_data;
#[macro_use]
mod cleanup;
#[macro_use]
pub(crate) mod import;

/// Records an audit event inside the caller's transaction: every recorded change goes
/// through this one call, and is recorded exactly when the change commits. `details` must
/// never carry a secret.
macro_rules! audit {
    ($self:ident, $tx:ident, $tenant:expr, $actor:expr, $action:expr, $target:expr, $details:expr) => {{
        let (action, target): (&str, &str) = (&$action, &$target);
        $self.append_audit(&mut *$tx, $tenant, &$actor, action, target, &$details).await?
    }};
}

/// One end of a role, group or membership link, for a `NotFound` that names it.
pub(crate) enum AccessEnd<'a> {
    Role(&'a latchkey_core::domain::RoleName),
    Group(&'a latchkey_core::domain::GroupName),
    User(&'a latchkey_core::domain::SubjectId),
    Client(&'a latchkey_core::domain::ClientId),
}

/// A write transaction of one backend with the store that opened it.
pub(crate) struct WriteTx<S, DB: sqlx::Database> {
    pub(crate) store: S,
    pub(crate) tx: sqlx::Transaction<'static, DB>,
}

macro_rules! impl_shared_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::StoreTx for $crate::shared::WriteTx<$store, $db> {
            async fn account_retention_applies(&mut self, tenant: &TenantId, sub: &SubjectId, rule: $crate::AccountRetention)
                -> StoreResult<bool> {
                <$store>::account_retention_applies_in(&mut self.tx, tenant, sub, rule).await
            }
            async fn record_inactivity_notice(
                &mut self,
                tenant: &TenantId,
                sub: &SubjectId,
                last_sign_in: UnixTime,
                at: UnixTime,
                details: serde_json::Value,
            ) -> StoreResult<bool> {
                self.store.record_inactivity_notice_in(&mut self.tx, tenant, sub, last_sign_in, at, details).await
            }
            async fn set_password_hash(&mut self, tenant: &TenantId, sub: &SubjectId, hash: Option<String>, actor: &Actor) -> StoreResult<()> {
                self.store.set_password_hash_in(&mut self.tx, tenant, sub, hash, actor).await
            }
            async fn set_user_locked(&mut self, tenant: &TenantId, sub: &SubjectId, locked: bool, actor: &Actor) -> StoreResult<()> {
                self.store.set_user_locked_in(&mut self.tx, tenant, sub, locked, actor).await
            }
            async fn erase_user(
                &mut self,
                tenant: &TenantId,
                sub: &SubjectId,
                erasure: &latchkey_core::records::ErasureRequest,
                actor: &Actor,
            ) -> StoreResult<(latchkey_core::records::ErasureReceipt, Vec<String>)> {
                self.store.erase_user_in(&mut self.tx, tenant, sub, erasure, actor).await
            }
            async fn delete_user(&mut self, tenant: &TenantId, sub: &SubjectId, actor: &Actor) -> StoreResult<()> {
                self.store.delete_user_in(&mut self.tx, tenant, sub, actor).await
            }
            async fn end_browser_sessions(&mut self, tenant: &TenantId, which: &SessionSelector, how: &SessionEnd, actor: &Actor)
                -> StoreResult<SessionsEnded> {
                self.store.end_browser_sessions_in(&mut self.tx, tenant, which, how, actor).await
            }
            async fn sign_in_methods(&mut self, tenant: &TenantId, sub: &SubjectId) -> StoreResult<SignInMethods> {
                <$store>::lock_principal_id(&mut self.tx, tenant, sub.as_str()).await?;
                let (password, passkeys) = <$store>::sign_in_methods(&mut self.tx, tenant, sub).await?;
                let linked_providers: Vec<String> = sqlx::query_scalar(
                    "SELECT provider_id FROM federated_identities WHERE tenant_id = $1 AND sub = $2 ORDER BY provider_id",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .fetch_all(&mut *self.tx)
                .await?;
                Ok(SignInMethods { password, passkeys: u32::try_from(passkeys).unwrap_or(u32::MAX), linked_providers })
            }
            async fn link_identity(&mut self, tenant: &TenantId, identity: &latchkey_core::records::NewFederatedIdentity, actor: &Actor)
                -> StoreResult<()> {
                self.store.insert_identity(&mut self.tx, tenant, identity, actor).await
            }
            async fn unlink_identity(&mut self, tenant: &TenantId, sub: &SubjectId, provider: &ProviderId, actor: &Actor)
                -> StoreResult<()> {
                let (store, tx): (_, &mut <$db as sqlx::Database>::Connection) = (&self.store, &mut self.tx);
                let subject: Option<String> = sqlx::query_scalar(
                    "DELETE FROM federated_identities WHERE tenant_id = $1 AND sub = $2 AND provider_id = $3 RETURNING subject",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .bind(provider.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let Some(subject) = subject else {
                    return Err(StoreError::NotFound(format!("a linked {provider} account")));
                };
                audit!(store, tx, tenant, actor, "identity.unlinked", sub.as_str(),
                    serde_json::json!({"provider": provider.as_str(), "subject": subject}));
                <$store>::user_changed(tx, tenant, sub).await?;
                Ok(())
            }
            async fn delete_passkey(&mut self, tenant: &TenantId, sub: &SubjectId, credential_id: &str, actor: &Actor)
                -> StoreResult<()> {
                let (store, tx): (_, &mut <$db as sqlx::Database>::Connection) = (&self.store, &mut self.tx);
                let done = sqlx::query("DELETE FROM passkeys WHERE tenant_id = $1 AND sub = $2 AND credential_id = $3")
                    .bind(tenant.as_str())
                    .bind(sub.as_str())
                    .bind(credential_id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("passkey".into()));
                }
                audit!(store, tx, tenant, actor, "passkey.removed", sub.as_str(), serde_json::json!({"credential_id": credential_id}));
                <$store>::user_changed(tx, tenant, sub).await?;
                Ok(())
            }
            async fn remove_totp(&mut self, tenant: &TenantId, sub: &SubjectId, actor: &Actor) -> StoreResult<()> {
                let (store, tx): (_, &mut <$db as sqlx::Database>::Connection) = (&self.store, &mut self.tx);
                let done = sqlx::query("DELETE FROM totp_factors WHERE tenant_id = $1 AND sub = $2")
                    .bind(tenant.as_str())
                    .bind(sub.as_str())
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("authenticator app".into()));
                }
                audit!(store, tx, tenant, actor, "totp.removed", sub.as_str(), serde_json::json!({}));
                <$store>::user_changed(tx, tenant, sub).await?;
                Ok(())
            }
            async fn scope_is_built_in(&mut self, tenant: &TenantId, name: &ScopeName) -> StoreResult<Option<bool>> {
                Ok(sqlx::query_scalar("SELECT built_in FROM scopes WHERE tenant_id = $1 AND name = $2")
                    .bind(tenant.as_str())
                    .bind(name.as_str())
                    .fetch_optional(&mut *self.tx)
                    .await?)
            }
            async fn delete_scope(&mut self, tenant: &TenantId, name: &ScopeName, actor: &Actor) -> StoreResult<()> {
                let (store, tx): (_, &mut <$db as sqlx::Database>::Connection) = (&self.store, &mut self.tx);
                <$store>::forget_applied_in(tx, tenant, "scope", name.as_str()).await?;
                let done = sqlx::query("DELETE FROM scopes WHERE tenant_id = $1 AND name = $2")
                    .bind(tenant.as_str())
                    .bind(name.as_str())
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("scope `{name}`")));
                }
                audit!(store, tx, tenant, actor, "scope.deleted", name.as_str(), serde_json::json!({}));
                <$store>::notify(tx, &Change::Scopes { tenant: tenant.to_string() }).await?;
                Ok(())
            }
            async fn enqueue_message(&mut self, tenant: &TenantId, message: &latchkey_core::records::NewMessage, actor: &Actor)
                -> StoreResult<()> {
                self.store.enqueue_message_in(&mut self.tx, tenant, message, actor).await
            }
            async fn create_one_time_token(&mut self, tenant: &TenantId, token: &latchkey_core::records::NewOneTimeToken)
                -> StoreResult<()> {
                self.store.create_one_time_token_in(&mut self.tx, tenant, token).await
            }
            async fn consume_one_time_token(&mut self, tenant: &TenantId, hash: &TokenHash, purpose: &str, now: UnixTime)
                -> StoreResult<Option<latchkey_core::records::OneTimeToken>> {
                self.store.consume_one_time_token_in(&mut self.tx, tenant, hash, purpose, now).await
            }
            async fn consume_pending_one_time_token(&mut self, tenant: &TenantId, sub: &SubjectId, purpose: &str, now: UnixTime)
                -> StoreResult<Option<latchkey_core::records::OneTimeToken>> {
                let row: Option<$crate::model::OneTimeTokenRow> = sqlx::query_as(
                    "UPDATE one_time_tokens SET used_at = $4
                     WHERE tenant_id = $1 AND used_at IS NULL AND token_hash = (
                         SELECT token_hash FROM one_time_tokens
                         WHERE tenant_id = $1 AND sub = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $4
                         ORDER BY created_at DESC LIMIT 1)
                     RETURNING token_hash, purpose, sub, detail, created_at, expires_at, sealed_gen",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .bind(purpose)
                .bind(now.secs())
                .fetch_optional(&mut *self.tx)
                .await?;
                row.map(|r| self.store.one_time_token_from(tenant, r)).transpose()
            }
            async fn retire_one_time_tokens(&mut self, tenant: &TenantId, sub: &SubjectId, purpose: &str, now: UnixTime)
                -> StoreResult<u64> {
                <$store>::retire_one_time_tokens_in(&mut self.tx, tenant, sub, purpose, now).await
            }
            async fn add_passkey(&mut self, tenant: &TenantId, sub: &SubjectId, passkey: &NewPasskey, actor: &Actor)
                -> StoreResult<()> {
                let (store, tx): (_, &mut <$db as sqlx::Database>::Connection) = (&self.store, &mut self.tx);
                store.insert_passkey(&mut *tx, tenant, sub, passkey).await?;
                audit!(store, tx, tenant, actor, "passkey.added", sub.as_str(),
                    serde_json::json!({"credential_id": passkey.credential_id, "name": passkey.name}));
                <$store>::user_changed(tx, tenant, sub).await?;
                Ok(())
            }
            async fn replace_recovery_codes(&mut self, tenant: &TenantId, sub: &SubjectId, hashes: &[TokenHash], actor: &Actor)
                -> StoreResult<()> {
                let (store, tx): (_, &mut <$db as sqlx::Database>::Connection) = (&self.store, &mut self.tx);
                store.insert_recovery_codes(&mut *tx, tenant, sub, hashes).await?;
                audit!(store, tx, tenant, actor, "recovery_codes.regenerated", sub.as_str(),
                    serde_json::json!({"count": hashes.len()}));
                Ok(())
            }
            async fn audit(&mut self, tenant: &TenantId, actor: &Actor, action: &str, target: &str, details: serde_json::Value)
                -> StoreResult<()> {
                let (store, tx): (_, &mut <$db as sqlx::Database>::Connection) = (&self.store, &mut self.tx);
                audit!(store, tx, tenant, actor, action, target, details);
                Ok(())
            }
            async fn active_admins(&mut self, tenant: &TenantId) -> StoreResult<Vec<SubjectId>> {
                <$store>::active_admins_in(&mut self.tx, tenant).await
            }
            async fn set_membership(&mut self, tenant: &TenantId, link: &latchkey_core::records::Membership, present: bool, actor: &Actor)
                -> StoreResult<bool> {
                let (store, tx): (_, &mut <$db as sqlx::Database>::Connection) = (&self.store, &mut self.tx);
                store.set_membership_in(tx, tenant, link, present, actor).await
            }
            async fn lock_user(&mut self, tenant: &TenantId, sub: &SubjectId) -> StoreResult<()> {
                Ok(<$store>::lock_principal_id(&mut self.tx, tenant, sub.as_str()).await?)
            }
            async fn user(&mut self, tenant: &TenantId, sub: &SubjectId) -> StoreResult<User> {
                self.store.fetch_user(&mut self.tx, tenant, sub).await
            }
            async fn verify_phone(&mut self, tenant: &TenantId, sub: &SubjectId, number: &str, actor: &Actor)
                -> StoreResult<()> {
                let (store, tx): (_, &mut <$db as sqlx::Database>::Connection) = (&self.store, &mut self.tx);
                // Read and written whole: a concurrent change to the same user waits.
                <$store>::lock_principal_id(&mut *tx, tenant, sub.as_str()).await?;
                let mut user = store.fetch_user(&mut *tx, tenant, sub).await?;
                user.profile.phone_number = Some(number.to_owned());
                user.profile.phone_number_verified = true;
                store.write_user_columns(&mut *tx, &user).await?;
                audit!(store, tx, tenant, actor, "user.phone_verified", sub.as_str(), serde_json::json!({}));
                <$store>::user_changed(tx, tenant, sub).await?;
                Ok(())
            }
            async fn reserve_attempts(&mut self, tenant: &TenantId, keys: &[&str], now: UnixTime, window: std::time::Duration)
                -> StoreResult<Vec<ReservedAttempt>> {
                <$store>::reserve_attempts_with(&mut *self.tx, tenant, keys, now, window).await
            }
            async fn confirm_totp(&mut self, tenant: &TenantId, sub: &SubjectId, step: u64, actor: &Actor) -> StoreResult<bool> {
                self.store.confirm_totp_in(&mut self.tx, tenant, sub, step, actor).await
            }
            async fn unverify_contacts(&mut self, tenant: &TenantId, sub: &SubjectId, email: bool, phone: bool, actor: &Actor)
                -> StoreResult<()> {
                let (store, tx): (_, &mut <$db as sqlx::Database>::Connection) = (&self.store, &mut self.tx);
                // Read and written whole: a concurrent change to the same user waits.
                <$store>::lock_principal_id(&mut *tx, tenant, sub.as_str()).await?;
                let mut user = store.fetch_user(&mut *tx, tenant, sub).await?;
                if phone {
                    user.profile.phone_number_verified = false;
                }
                if email {
                    user.email_verified = false;
                }
                store.write_user_columns(&mut *tx, &user).await?;
                audit!(store, tx, tenant, actor, "user.contacts_unverified", sub.as_str(), serde_json::json!({"email": email, "phone": phone}));
                <$store>::user_changed(tx, tenant, sub).await?;
                Ok(())
            }
            async fn block_changes(&mut self, tenant: &TenantId, sub: &SubjectId, since: Option<UnixTime>, actor: &Actor)
                -> StoreResult<()> {
                let (store, tx): (_, &mut <$db as sqlx::Database>::Connection) = (&self.store, &mut self.tx);
                let done = sqlx::query("UPDATE users SET changes_blocked_at = $3, updated_at = $4 WHERE tenant_id = $1 AND sub = $2")
                    .bind(tenant.as_str())
                    .bind(sub.as_str())
                    .bind(since.map(UnixTime::secs))
                    .bind(store.now())
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("user {sub}")));
                }
                let action = if since.is_some() { "user.changes_blocked" } else { "user.changes_unblocked" };
                audit!(store, tx, tenant, actor, action, sub.as_str(), serde_json::json!({}));
                <$store>::user_changed(tx, tenant, sub).await?;
                Ok(())
            }
            async fn verify_email(&mut self, tenant: &TenantId, sub: &SubjectId, email: &Email, actor: &Actor)
                -> StoreResult<()> {
                let (store, tx): (_, &mut <$db as sqlx::Database>::Connection) = (&self.store, &mut self.tx);
                // Read and written whole: a concurrent change to the same user waits.
                <$store>::lock_principal_id(&mut *tx, tenant, sub.as_str()).await?;
                let mut user = store.fetch_user(&mut *tx, tenant, sub).await?;
                user.email = Some(email.clone());
                user.email_verified = true;
                store.write_user_columns(&mut *tx, &user).await?;
                audit!(store, tx, tenant, actor, "user.email_verified", sub.as_str(), serde_json::json!({}));
                <$store>::user_changed(tx, tenant, sub).await?;
                Ok(())
            }
            async fn commit(self: Box<Self>) -> StoreResult<()> {
                self.tx.commit().await?;
                Ok(())
            }
        }

        impl_access_store!($store, $db);
        impl_api_key_store!($store, $db);
        impl_outbox_store!($store, $db);
        impl_user_store!($store, $db);
        impl_admin_store!($store, $db);
        impl_client_store!($store, $db);
        impl_key_store!($store, $db);
        impl_oauth_store!($store, $db);
        impl_session_store!($store, $db);
        impl_factor_store!($store, $db);
        impl_federation_store!($store, $db);
        impl_consent_store!($store, $db);
        impl_cleanup_store!($store, $db);
        impl_audit_log!($store, $db);
        impl_audit_retention!($store, $db);
        impl_account_retention!($store, $db);
        impl_erasure!($store, $db);
        impl_user_import!($store, $db);
        impl_personal_data!($store, $db);

        #[async_trait::async_trait]
        impl $crate::ScopeStore for $store {
            async fn list_scopes(&self, tenant: &TenantId) -> StoreResult<Vec<ScopeDefinition>> {
                let rows: Vec<$crate::model::ScopeRow> = sqlx::query_as(
                    "SELECT name, description, built_in FROM scopes WHERE tenant_id = $1 ORDER BY name",
                )
                .bind(tenant.as_str())
                .fetch_all(self.pool())
                .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn put_scope(&self, tenant: &TenantId, name: &ScopeName, description: &str, actor: &Actor) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO scopes (tenant_id, name, description, built_in, created_at) VALUES ($1, $2, $3, FALSE, $4)
                     ON CONFLICT (tenant_id, name) DO UPDATE SET description = excluded.description",
                )
                .bind(tenant.as_str())
                .bind(name.as_str())
                .bind(description)
                .bind(self.now())
                .execute(&mut *tx)
                .await?;
                audit!(self, tx, tenant, actor, "scope.saved", name.as_str(), serde_json::json!({"description": description}));
                Self::notify(&mut tx, &Change::Scopes { tenant: tenant.to_string() }).await?;
                tx.commit().await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::ResourceStore for $store {
            async fn list_resource_servers(&self, tenant: &TenantId) -> StoreResult<Vec<ResourceServer>> {
                let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
                    "SELECT identifier, name, scopes, client_id FROM resource_servers WHERE tenant_id = $1 ORDER BY identifier",
                )
                .bind(tenant.as_str())
                .fetch_all(self.pool())
                .await?;
                rows.into_iter()
                    .map(|(identifier, name, scopes, client_id)| {
                        let scopes = serde_json::from_str(&scopes).map_err(|e| StoreError::Corrupt(format!("resource scopes: {e}")))?;
                        let client_id = client_id
                            .map(|c| ClientId::parse(&c))
                            .transpose()
                            .map_err(|e| StoreError::Corrupt(format!("resource client: {e}")))?;
                        Ok(ResourceServer { identifier, name, scopes, client_id })
                    })
                    .collect()
            }

            async fn put_resource_server(&self, tenant: &TenantId, server: &ResourceServer, actor: &Actor) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO resource_servers (tenant_id, identifier, name, scopes, created_at, client_id) VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (tenant_id, identifier) DO UPDATE SET name = excluded.name, scopes = excluded.scopes, client_id = excluded.client_id",
                )
                .bind(tenant.as_str())
                .bind(&server.identifier)
                .bind(&server.name)
                .bind(to_json_list(server.scopes.iter()))
                .bind(self.now())
                .bind(server.client_id.as_ref().map(ClientId::as_str))
                .execute(&mut *tx)
                .await?;
                audit!(self, tx, tenant, actor, "resource_server.saved", &server.identifier, serde_json::json!({"scopes": server.scopes}));
                Self::notify(&mut tx, &Change::Resources { tenant: tenant.to_string() }).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn delete_resource_server(&self, tenant: &TenantId, identifier: &str, actor: &Actor) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                Self::forget_applied_in(&mut tx, tenant, "resource", identifier).await?;
                let done = sqlx::query("DELETE FROM resource_servers WHERE tenant_id = $1 AND identifier = $2")
                    .bind(tenant.as_str())
                    .bind(identifier)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("resource server `{identifier}`")));
                }
                audit!(self, tx, tenant, actor, "resource_server.deleted", identifier, serde_json::json!({}));
                Self::notify(&mut tx, &Change::Resources { tenant: tenant.to_string() }).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn remember_assertion_jti(&self, tenant: &TenantId, client: &ClientId, jti: &str, expires_at: UnixTime) -> StoreResult<bool> {
                // The primary key makes this atomic across nodes: one insert wins.
                let done = sqlx::query(
                    "INSERT INTO assertion_jtis (tenant_id, client_id, jti, expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(tenant.as_str())
                .bind(client.as_str())
                .bind(jti)
                .bind(expires_at.secs())
                .execute(self.pool())
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }

        #[async_trait::async_trait]
        impl $crate::AuditStore for $store {
            async fn recent_audit_events(&self, tenant: &TenantId, limit: u32) -> StoreResult<Vec<AuditEvent>> {
                let rows: Vec<$crate::model::AuditLogRow> = sqlx::query_as(
                    "SELECT l.id, l.seq, l.at, l.action, l.actor_ref, l.target_ref, l.sealed, l.mac, k.salt
                     FROM audit_log l LEFT JOIN audit_subject_keys k ON k.tenant_id = l.tenant_id AND k.subject_ref = l.target_ref
                     WHERE l.tenant_id = $1 ORDER BY l.id DESC LIMIT $2",
                )
                .bind(tenant.as_str())
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?;
                Ok(self.open_audit_rows(tenant, rows)?.into_iter().map(|(_, e)| e).collect())
            }
        }

        impl $store {
            async fn shared_meta(&self, name: &str) -> StoreResult<Option<String>> {
                Ok(sqlx::query_scalar("SELECT value FROM meta WHERE name = $1")
                    .bind(name)
                    .fetch_optional(self.pool())
                    .await?)
            }

            async fn shared_put_meta_if_absent(&self, name: &str, value: &str) -> StoreResult<String> {
                sqlx::query("INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                    .bind(name)
                    .bind(value)
                    .execute(self.pool())
                    .await?;
                self.shared_meta(name)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("meta value `{name}` vanished after insert")))
            }

            async fn shared_holds_sealed_data(&self) -> StoreResult<bool> {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys").fetch_one(self.pool()).await?;
                Ok(n > 0)
            }
        }
    };
}
