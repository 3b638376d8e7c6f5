/// The columns `PasskeyRow` reads.
macro_rules! passkey_columns {
    () => {
        "credential_id, sub, name, credential, sign_count, backup_eligible, backup_state, created_at, last_used_at"
    };
}

macro_rules! impl_factor_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Confirms an enrolment with the step of a correct code, inside `tx`.
            pub(crate) async fn confirm_totp_in(&self, tx: &mut <$db as sqlx::Database>::Connection, tenant: &TenantId, sub: &SubjectId, step: u64, actor: &Actor) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE totp_factors SET confirmed = TRUE, last_used_step = $3, created_at = $4
                     WHERE tenant_id = $1 AND sub = $2 AND NOT confirmed AND last_used_step < $3",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .bind(i64::try_from(step).unwrap_or(i64::MAX))
                .bind(self.now())
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                audit!(self, tx, tenant, actor, "totp.enrolled", sub.as_str(), serde_json::json!({}));
                Self::user_changed(tx, tenant, sub).await?;
                Ok(true)
            }

            async fn insert_passkey(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                sub: &SubjectId,
                passkey: &NewPasskey,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO passkeys (tenant_id, credential_id, sub, name, credential, sign_count, backup_eligible, backup_state, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(tenant.as_str())
                .bind(&passkey.credential_id)
                .bind(sub.as_str())
                .bind(&passkey.name)
                .bind(&passkey.credential)
                .bind(i64::from(passkey.sign_count))
                .bind(passkey.backup_eligible)
                .bind(passkey.backup_state)
                .bind(self.now())
                .execute(&mut *conn)
                .await
                .map_err(|e| StoreError::from_write(e, |_| "that passkey is already registered".into()))?;
                Ok(())
            }

            async fn insert_recovery_codes(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                sub: &SubjectId,
                hashes: &[TokenHash],
            ) -> StoreResult<()> {
                sqlx::query("DELETE FROM recovery_codes WHERE tenant_id = $1 AND sub = $2")
                    .bind(tenant.as_str())
                    .bind(sub.as_str())
                    .execute(&mut *conn)
                    .await?;
                for hash in hashes {
                    sqlx::query("INSERT INTO recovery_codes (tenant_id, sub, code_hash, created_at) VALUES ($1, $2, $3, $4)")
                        .bind(tenant.as_str())
                        .bind(sub.as_str())
                        .bind(hash.as_str())
                        .bind(self.now())
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            }

            /// How many ways to sign in the user has: a password counts one, each passkey one.
            async fn sign_in_methods(
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                sub: &SubjectId,
            ) -> StoreResult<(bool, i64)> {
                let password: Option<bool> = sqlx::query_scalar(
                    "SELECT password_hash IS NOT NULL FROM users WHERE tenant_id = $1 AND sub = $2",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .fetch_optional(&mut *conn)
                .await?;
                let Some(password) = password else { return Err(StoreError::NotFound(format!("user {sub}"))) };
                let passkeys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM passkeys WHERE tenant_id = $1 AND sub = $2")
                    .bind(tenant.as_str())
                    .bind(sub.as_str())
                    .fetch_one(&mut *conn)
                    .await?;
                Ok((password, passkeys))
            }

            async fn user_changed(
                tx: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                sub: &SubjectId,
            ) -> StoreResult<()> {
                Ok(Self::notify(tx, &Change::User { tenant: tenant.to_string(), sub: sub.to_string() }).await?)
            }
        }

        #[async_trait::async_trait]
        impl $crate::FactorStore for $store {
            async fn create_account(&self, tenant: &TenantId, account: NewAccount, actor: &Actor) -> StoreResult<User> {
                let mut tx = self.begin_write().await?;
                let now = self.now();
                if let Some(invitation) = &account.invitation {
                    let used = sqlx::query(
                        "UPDATE invitations SET used_at = $3, used_by = $4
                         WHERE tenant_id = $1 AND token_hash = $2 AND used_at IS NULL AND expires_at > $3",
                    )
                    .bind(tenant.as_str())
                    .bind(invitation.as_str())
                    .bind(now)
                    .bind(account.user.sub.as_str())
                    .execute(&mut *tx)
                    .await?;
                    if used.rows_affected() != 1 {
                        return Err(StoreError::Invalid("the invitation has been used, has expired or does not exist".into()));
                    }
                }
                let user = &account.user;
                self.insert_user(&mut tx, tenant, user, Some(&account.webauthn_user_id)).await?;
                self.insert_passkey(&mut tx, tenant, &user.sub, &account.passkey).await?;
                self.insert_recovery_codes(&mut tx, tenant, &user.sub, &account.recovery_code_hashes).await?;
                if user.email.is_some() && !user.email_verified {
                    // Until the address is verified, `[retention] unverified_sign_ups` may delete it.
                    sqlx::query("UPDATE users SET unverified_sign_up = TRUE WHERE tenant_id = $1 AND sub = $2")
                        .bind(tenant.as_str())
                        .bind(user.sub.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                audit!(self, tx, tenant, actor, "user.signed_up", user.sub.as_str(),
                    serde_json::json!({"username": user.username.as_str(), "invited": account.invitation.is_some()}));
                let created = self.fetch_user(&mut tx, tenant, &user.sub).await?;
                tx.commit().await?;
                Ok(created)
            }

            async fn webauthn_user_id(&self, tenant: &TenantId, sub: &SubjectId, candidate: &str) -> StoreResult<String> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "UPDATE users SET webauthn_user_id = $3 WHERE tenant_id = $1 AND sub = $2 AND webauthn_user_id IS NULL",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .bind(candidate)
                .execute(&mut *tx)
                .await?;
                let id: Option<Option<String>> =
                    sqlx::query_scalar("SELECT webauthn_user_id FROM users WHERE tenant_id = $1 AND sub = $2")
                        .bind(tenant.as_str())
                        .bind(sub.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                tx.commit().await?;
                id.flatten().ok_or_else(|| StoreError::NotFound(format!("user {sub}")))
            }

            async fn user_by_webauthn_id(&self, tenant: &TenantId, id: &str) -> StoreResult<Option<User>> {
                let row: Option<$crate::model::UserRow> =
                    sqlx::query_as("SELECT * FROM users WHERE tenant_id = $1 AND webauthn_user_id = $2")
                        .bind(tenant.as_str())
                        .bind(id)
                        .fetch_optional(self.pool())
                        .await?;
                row.map(|r| self.user_from(r)).transpose()
            }

            async fn passkeys(&self, tenant: &TenantId, sub: &SubjectId) -> StoreResult<Vec<StoredPasskey>> {
                let rows: Vec<$crate::factor_model::PasskeyRow> = sqlx::query_as(concat!(
                    "SELECT ", passkey_columns!(), " FROM passkeys WHERE tenant_id = $1 AND sub = $2 ORDER BY created_at, credential_id"
                ))
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .fetch_all(self.pool())
                .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn passkey(&self, tenant: &TenantId, credential_id: &str) -> StoreResult<Option<StoredPasskey>> {
                let row: Option<$crate::factor_model::PasskeyRow> = sqlx::query_as(concat!(
                    "SELECT ", passkey_columns!(), " FROM passkeys WHERE tenant_id = $1 AND credential_id = $2"
                ))
                .bind(tenant.as_str())
                .bind(credential_id)
                .fetch_optional(self.pool())
                .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn add_passkey(&self, tenant: &TenantId, sub: &SubjectId, passkey: NewPasskey, actor: &Actor) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                Self::sign_in_methods(&mut tx, tenant, sub).await?;
                self.insert_passkey(&mut tx, tenant, sub, &passkey).await?;
                audit!(self, tx, tenant, actor, "passkey.added", sub.as_str(),
                    serde_json::json!({"credential_id": passkey.credential_id, "name": passkey.name}));
                Self::user_changed(&mut tx, tenant, sub).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn record_passkey_use(&self, tenant: &TenantId, used: PasskeyUse) -> StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                // A counter only grows; 0 means the authenticator keeps none. Checked here
                // too, so two nodes finishing sign-ins at once cannot both accept one value.
                let done = sqlx::query(
                    "UPDATE passkeys SET credential = $3, sign_count = $4, backup_state = $5, last_used_at = $6
                     WHERE tenant_id = $1 AND credential_id = $2 AND ($4 = 0 OR sign_count < $4)",
                )
                .bind(tenant.as_str())
                .bind(&used.credential_id)
                .bind(&used.credential)
                .bind(i64::from(used.sign_count))
                .bind(used.backup_state)
                .bind(used.at.secs())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn rename_passkey(&self, tenant: &TenantId, sub: &SubjectId, credential_id: &str, name: &str, actor: &Actor)
                -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("UPDATE passkeys SET name = $4 WHERE tenant_id = $1 AND sub = $2 AND credential_id = $3")
                    .bind(tenant.as_str())
                    .bind(sub.as_str())
                    .bind(credential_id)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("passkey".into()));
                }
                audit!(self, tx, tenant, actor, "passkey.renamed", sub.as_str(),
                    serde_json::json!({"credential_id": credential_id, "name": name}));
                tx.commit().await?;
                Ok(())
            }

            async fn start_totp(&self, tenant: &TenantId, sub: &SubjectId, secret_sealed: &str) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                let confirmed: Option<bool> =
                    sqlx::query_scalar("SELECT confirmed FROM totp_factors WHERE tenant_id = $1 AND sub = $2")
                        .bind(tenant.as_str())
                        .bind(sub.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                if confirmed == Some(true) {
                    return Err(StoreError::Conflict("an authenticator app is already set up; remove it first".into()));
                }
                sqlx::query("DELETE FROM totp_factors WHERE tenant_id = $1 AND sub = $2")
                    .bind(tenant.as_str())
                    .bind(sub.as_str())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO totp_factors (tenant_id, sub, secret_sealed, confirmed, last_used_step, created_at)
                     VALUES ($1, $2, $3, FALSE, 0, $4)",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .bind(secret_sealed)
                .bind(self.now())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn totp(&self, tenant: &TenantId, sub: &SubjectId) -> StoreResult<Option<TotpFactor>> {
                let row: Option<(String, bool, i64, i64)> = sqlx::query_as(
                    "SELECT secret_sealed, confirmed, last_used_step, created_at FROM totp_factors WHERE tenant_id = $1 AND sub = $2",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .fetch_optional(self.pool())
                .await?;
                Ok(row.map(|(secret_sealed, confirmed, step, created_at)| TotpFactor {
                    secret_sealed,
                    confirmed,
                    last_used_step: u64::try_from(step).unwrap_or(0),
                    created_at: UnixTime::from_secs(created_at),
                }))
            }

            async fn confirm_totp(&self, tenant: &TenantId, sub: &SubjectId, step: u64, actor: &Actor) -> StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                let done = self.confirm_totp_in(&mut tx, tenant, sub, step, actor).await?;
                tx.commit().await?;
                Ok(done)
            }

            async fn use_totp_step(&self, tenant: &TenantId, sub: &SubjectId, step: u64) -> StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE totp_factors SET last_used_step = $3 WHERE tenant_id = $1 AND sub = $2 AND confirmed AND last_used_step < $3",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .bind(i64::try_from(step).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn replace_recovery_codes(&self, tenant: &TenantId, sub: &SubjectId, hashes: &[TokenHash], actor: &Actor)
                -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                Self::sign_in_methods(&mut tx, tenant, sub).await?;
                self.insert_recovery_codes(&mut tx, tenant, sub, hashes).await?;
                audit!(self, tx, tenant, actor, "recovery_codes.regenerated", sub.as_str(), serde_json::json!({"count": hashes.len()}));
                tx.commit().await?;
                Ok(())
            }

            async fn use_recovery_code(&self, tenant: &TenantId, sub: &SubjectId, hash: &TokenHash, actor: &Actor)
                -> StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE recovery_codes SET used_at = $4 WHERE tenant_id = $1 AND sub = $2 AND code_hash = $3 AND used_at IS NULL",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .bind(hash.as_str())
                .bind(self.now())
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                audit!(self, tx, tenant, actor, "recovery_code.used", sub.as_str(), serde_json::json!({}));
                tx.commit().await?;
                Ok(true)
            }

            async fn recovery_codes_left(&self, tenant: &TenantId, sub: &SubjectId) -> StoreResult<u32> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM recovery_codes WHERE tenant_id = $1 AND sub = $2 AND used_at IS NULL",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .fetch_one(self.pool())
                .await?;
                Ok(u32::try_from(n).unwrap_or(0))
            }

            async fn put_ceremony(&self, tenant: &TenantId, id_hash: &TokenHash, purpose: &str, state: &str, expires_at: UnixTime)
                -> StoreResult<()> {
                // A ceremony may hold what a person typed (a sign-up's address and name).
                let at = $crate::shared::personal_data::place("auth_ceremonies", "state", &[tenant.as_str(), id_hash.as_str(), purpose]);
                let (state, generation) = self.seal_personal(&at, state)?;
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO auth_ceremonies (tenant_id, id_hash, purpose, state, expires_at, sealed_gen) VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (tenant_id, id_hash, purpose) DO UPDATE SET state = excluded.state, expires_at = excluded.expires_at,
                         sealed_gen = excluded.sealed_gen",
                )
                .bind(tenant.as_str())
                .bind(id_hash.as_str())
                .bind(purpose)
                .bind(state)
                .bind(expires_at.secs())
                .bind(generation)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn peek_ceremony(&self, tenant: &TenantId, id_hash: &TokenHash, purpose: &str, now: UnixTime)
                -> StoreResult<Option<String>> {
                let row: Option<(String, Option<i64>)> = sqlx::query_as(
                    "SELECT state, sealed_gen FROM auth_ceremonies WHERE tenant_id = $1 AND id_hash = $2 AND purpose = $3 AND expires_at > $4",
                )
                .bind(tenant.as_str())
                .bind(id_hash.as_str())
                .bind(purpose)
                .bind(now.secs())
                .fetch_optional(self.pool())
                .await?;
                let at = $crate::shared::personal_data::place("auth_ceremonies", "state", &[tenant.as_str(), id_hash.as_str(), purpose]);
                row.map(|(state, generation)| self.open_personal(generation, &at, state)).transpose()
            }

            async fn take_ceremony(&self, tenant: &TenantId, id_hash: &TokenHash, purpose: &str, now: UnixTime)
                -> StoreResult<Option<String>> {
                let mut tx = self.begin_write().await?;
                let row: Option<(String, i64, Option<i64>)> = sqlx::query_as(
                    "DELETE FROM auth_ceremonies WHERE tenant_id = $1 AND id_hash = $2 AND purpose = $3
                     RETURNING state, expires_at, sealed_gen",
                )
                .bind(tenant.as_str())
                .bind(id_hash.as_str())
                .bind(purpose)
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                let at = $crate::shared::personal_data::place("auth_ceremonies", "state", &[tenant.as_str(), id_hash.as_str(), purpose]);
                row.filter(|(_, expires_at, _)| *expires_at > now.secs())
                    .map(|(state, _, generation)| self.open_personal(generation, &at, state))
                    .transpose()
            }

            async fn create_invitation(&self, tenant: &TenantId, token_hash: &TokenHash, id: &str, note: Option<&str>,
                expires_at: UnixTime, actor: &Actor) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO invitations (tenant_id, token_hash, id, note, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(tenant.as_str())
                .bind(token_hash.as_str())
                .bind(id)
                .bind(note)
                .bind(self.now())
                .bind(expires_at.secs())
                .execute(&mut *tx)
                .await?;
                audit!(self, tx, tenant, actor, "invitation.created", id, serde_json::json!({"note": note}));
                tx.commit().await?;
                Ok(())
            }

            async fn invitations(&self, tenant: &TenantId) -> StoreResult<Vec<Invitation>> {
                let rows: Vec<(String, Option<String>, i64, i64, Option<i64>, Option<String>)> = sqlx::query_as(
                    "SELECT id, note, created_at, expires_at, used_at, used_by FROM invitations WHERE tenant_id = $1 ORDER BY created_at, id",
                )
                .bind(tenant.as_str())
                .fetch_all(self.pool())
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, note, created_at, expires_at, used_at, used_by)| Invitation {
                        id,
                        note,
                        created_at: UnixTime::from_secs(created_at),
                        expires_at: UnixTime::from_secs(expires_at),
                        used_at: used_at.map(UnixTime::from_secs),
                        used_by: used_by.and_then(|s| SubjectId::parse(&s).ok()),
                    })
                    .collect())
            }

            async fn invitation_usable(&self, tenant: &TenantId, token_hash: &TokenHash, now: UnixTime) -> StoreResult<bool> {
                let found: Option<i64> = sqlx::query_scalar(
                    "SELECT expires_at FROM invitations WHERE tenant_id = $1 AND token_hash = $2 AND used_at IS NULL AND expires_at > $3",
                )
                .bind(tenant.as_str())
                .bind(token_hash.as_str())
                .bind(now.secs())
                .fetch_optional(self.pool())
                .await?;
                Ok(found.is_some())
            }

            async fn reset_sign_in_factors(&self, tenant: &TenantId, sub: &SubjectId, actor: &Actor) -> StoreResult<u64> {
                let mut tx = self.begin_write().await?;
                Self::sign_in_methods(&mut tx, tenant, sub).await?;
                let passkeys = sqlx::query("DELETE FROM passkeys WHERE tenant_id = $1 AND sub = $2")
                    .bind(tenant.as_str())
                    .bind(sub.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                for sql in [
                    "DELETE FROM totp_factors WHERE tenant_id = $1 AND sub = $2",
                    "DELETE FROM recovery_codes WHERE tenant_id = $1 AND sub = $2",
                ] {
                    sqlx::query(sql).bind(tenant.as_str()).bind(sub.as_str()).execute(&mut *tx).await?;
                }
                audit!(self, tx, tenant, actor, "user.sign_in_factors_reset", sub.as_str(), serde_json::json!({"passkeys": passkeys}));
                Self::user_changed(&mut tx, tenant, sub).await?;
                tx.commit().await?;
                Ok(passkeys)
            }

            async fn revoke_invitation(&self, tenant: &TenantId, id: &str, actor: &Actor) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("DELETE FROM invitations WHERE tenant_id = $1 AND id = $2 AND used_at IS NULL")
                    .bind(tenant.as_str())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("unused invitation `{id}`")));
                }
                audit!(self, tx, tenant, actor, "invitation.revoked", id, serde_json::json!({}));
                tx.commit().await?;
                Ok(())
            }
        }
    };
}
