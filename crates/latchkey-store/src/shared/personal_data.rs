//! Personal data at rest (migration 0027): the columns that hold it are sealed under the
//! data key of a generation (`latchkey_core::crypto::PersonalDataKeys`), each value bound
//! to its table, column and row; a verified email is kept unique and found through its
//! blind index. `sealed_gen` says which generation a row is sealed under, NULL that it was
//! written in clear before the migration. One job (`reseal_personal_data`) seals those rows
//! and, after `latchkey keys rotate-data-key`, re-seals the rest under the new generation,
//! a batch per transaction, so the server keeps serving while it runs.

/// A table with sealed columns: its key columns (the tenant first) and the sealed ones.
pub(crate) struct SealedTable {
    pub(crate) table: &'static str,
    pub(crate) keys: &'static [&'static str],
    pub(crate) fields: &'static [&'static str],
    /// The order rows are sealed in: users oldest first, so of two verified addresses
    /// that turn out the same once normalised, the older account keeps it verified.
    pub(crate) order: &'static str,
}

/// Every table that holds personal data sealed, in the order the job visits them.
pub(crate) const SEALED_TABLES: &[SealedTable] = &[
    SealedTable {
        table: "users",
        keys: &["tenant_id", "sub"],
        fields: &["email", "name", "profile"],
        order: "created_at, sub",
    },
    SealedTable {
        table: "federated_identities",
        keys: &["tenant_id", "provider_id", "subject"],
        fields: &["email"],
        order: "provider_id, subject",
    },
    SealedTable {
        table: "one_time_tokens",
        keys: &["tenant_id", "token_hash"],
        fields: &["detail"],
        order: "token_hash",
    },
    SealedTable {
        table: "authorization_requests",
        keys: &["tenant_id", "id_hash"],
        fields: &["request"],
        order: "id_hash",
    },
    SealedTable {
        table: "auth_ceremonies",
        keys: &["tenant_id", "id_hash", "purpose"],
        fields: &["state"],
        order: "id_hash, purpose",
    },
    SealedTable {
        table: "admin_idempotency",
        keys: &["tenant_id", "caller", "idem_key"],
        fields: &["body"],
        order: "caller, idem_key",
    },
];

/// Where a sealed value is kept, bound into its ciphertext as associated data: a value
/// copied into another row or column does not open there.
pub(crate) fn place(table: &str, field: &str, key: &[&str]) -> String {
    let mut out = format!("{table}.{field}");
    for part in key {
        out.push('\u{1f}');
        out.push_str(part);
    }
    out
}

/// The meta rows the generation is kept in: the one new values use, when it began, and
/// the newest one every row is known to be sealed under.
pub(crate) const GENERATION: &str = "data_key_generation";
pub(crate) const GENERATION_STARTED: &str = "data_key_generation_started_at";
pub(crate) const SEALED_THROUGH: &str = "data_key_sealed_through";

/// How long after a new generation began a node may still seal under the one before (each
/// node reads the generation again every `latchkey_service` data-key interval): a pass
/// that finds nothing left counts as the last one only once this has passed.
pub(crate) const GENERATION_SETTLES: i64 = 60;

macro_rules! impl_personal_data {
    ($store:ty, $db:ty) => {
        impl $store {
            pub(crate) fn data_keys(&self) -> StoreResult<&latchkey_core::crypto::PersonalDataKeys> {
                self.data_keys.get().map(|k| k.as_ref()).ok_or_else(|| {
                    StoreError::Invalid("the personal data keys are not loaded (use_personal_data_keys)".into())
                })
            }

            /// Opens a value read from `place`: sealed under `generation`, or in clear when
            /// the row predates sealing (`None`).
            pub(crate) fn open_personal(&self, generation: Option<i64>, place: &str, stored: String) -> StoreResult<String> {
                let Some(generation) = generation else { return Ok(stored) };
                let generation = u32::try_from(generation)
                    .map_err(|_| StoreError::Corrupt(format!("{place}: data-key generation {generation}")))?;
                self.data_keys()?.open(generation, place, &stored).map_err(|_| {
                    let column = place.split('\u{1f}').next().unwrap_or(place);
                    StoreError::Corrupt(format!(
                        "a sealed value in {column} does not open: the master key differs from the one it was sealed with, or the row was altered"
                    ))
                })
            }

            pub(crate) fn open_personal_opt(&self, generation: Option<i64>, place: &str, stored: Option<String>)
                -> StoreResult<Option<String>> {
                stored.map(|s| self.open_personal(generation, place, s)).transpose()
            }

            /// The blind index of an email address within `tenant`.
            pub(crate) fn email_index(&self, tenant: &str, email: &latchkey_core::domain::Email) -> StoreResult<String> {
                Ok(self.data_keys()?.blind_index(tenant, "email", &email.normalized()))
            }

            /// A user's sealed columns, as written: email, its index, name, profile and the
            /// generation.
            pub(crate) fn seal_user_columns(
                &self,
                tenant: &TenantId,
                sub: &SubjectId,
                email: Option<&latchkey_core::domain::Email>,
                name: Option<&str>,
                profile: &latchkey_core::domain::ProfileClaims,
            ) -> StoreResult<$crate::shared::personal_data::SealedUser> {
                let keys = self.data_keys()?;
                let generation = keys.active();
                let at = |field| $crate::shared::personal_data::place("users", field, &[tenant.as_str(), sub.as_str()]);
                let profile = serde_json::to_string(profile).map_err(|e| StoreError::Invalid(format!("profile claims: {e}")))?;
                Ok($crate::shared::personal_data::SealedUser {
                    email: email.map(|e| keys.seal(generation, &at("email"), e.as_str())),
                    email_index: email.map(|e| keys.blind_index(tenant.as_str(), "email", &e.normalized())),
                    name: name.map(|n| keys.seal(generation, &at("name"), n)),
                    profile: keys.seal(generation, &at("profile"), &profile),
                    generation: i64::from(generation),
                })
            }

            /// Rewrites a user's contact details and profile: the sealed columns (all of
            /// them, so a row written in clear never ends up half sealed), the email's
            /// index and whether it is verified, in one statement (so the unique index
            /// never sees the address of one state with the flag of another).
            pub(crate) async fn write_user_columns(
                &self,
                tx: &mut <$db as sqlx::Database>::Connection,
                user: &User,
            ) -> StoreResult<()> {
                let sealed = self.seal_user_columns(
                    &user.tenant, &user.sub, user.email.as_ref(), user.name.as_ref().map(|n| n.as_str()), &user.profile,
                )?;
                let done = sqlx::query(
                    "UPDATE users SET email = $3, email_index = $4, name = $5, profile = $6, sealed_gen = $7,
                         email_verified = $8, updated_at = $9
                     WHERE tenant_id = $1 AND sub = $2",
                )
                .bind(user.tenant.as_str())
                .bind(user.sub.as_str())
                .bind(sealed.email)
                .bind(sealed.email_index)
                .bind(sealed.name)
                .bind(sealed.profile)
                .bind(sealed.generation)
                .bind(user.email_verified)
                .bind(self.now())
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::from_write(e, Self::user_conflict))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("user {}", user.sub)));
                }
                Ok(())
            }

            /// A stored user row, opened.
            pub(crate) fn user_from(&self, row: $crate::model::UserRow) -> StoreResult<User> {
                let opened = |field: &str, value: Option<String>| {
                    self.open_personal_opt(row.sealed_gen, &$crate::shared::personal_data::place("users", field, &[&row.tenant_id, &row.sub]), value)
                };
                let email = opened("email", row.email.clone())?;
                let name = opened("name", row.name.clone())?;
                let profile = opened("profile", Some(row.profile.clone()))?.unwrap_or_default();
                row.into_user(email, name, profile)
            }

            /// Seals `plain` for `place` under the active generation.
            pub(crate) fn seal_personal(&self, place: &str, plain: &str) -> StoreResult<(String, i64)> {
                let keys = self.data_keys()?;
                let generation = keys.active();
                Ok((keys.seal(generation, place, plain), i64::from(generation)))
            }

            async fn meta_number(&self, name: &str) -> StoreResult<i64> {
                let value: Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE name = $1")
                    .bind(name)
                    .fetch_optional(self.pool())
                    .await?;
                value.map_or(Ok(0), |v| v.parse().map_err(|_| StoreError::Corrupt(format!("meta value `{name}`: {v}"))))
            }

            async fn put_meta_number(conn: &mut <$db as sqlx::Database>::Connection, name: &str, value: i64) -> StoreResult<()> {
                sqlx::query("INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
                    .bind(name)
                    .bind(value.to_string())
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            /// Seals up to `limit` rows of `t` that are in clear or under a generation
            /// before `generation`; the number sealed.
            async fn reseal_table(&self, t: &$crate::shared::personal_data::SealedTable, generation: u32, limit: u32)
                -> StoreResult<u64> {
                use sqlx::Row as _;
                let keys = self.data_keys()?;
                let columns: Vec<&str> = t.keys.iter().chain(t.fields.iter()).copied().collect();
                let mut tx = self.begin_write().await?;
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {}, sealed_gen FROM {} WHERE sealed_gen IS NULL OR sealed_gen < $1 ORDER BY {} LIMIT $2",
                    columns.join(", "),
                    t.table,
                    t.order
                )))
                .bind(i64::from(generation))
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
                let mut sealed = 0;
                for row in &rows {
                    let key: Vec<String> = (0..t.keys.len()).map(|i| row.try_get::<String, _>(i)).collect::<Result<_, _>>()?;
                    let key: Vec<&str> = key.iter().map(String::as_str).collect();
                    let old_gen: Option<i64> = row.try_get(columns.len())?;
                    let mut old = Vec::new();
                    let mut new = Vec::new();
                    let mut email_index = None;
                    for (i, field) in t.fields.iter().enumerate() {
                        let stored: Option<String> = row.try_get(t.keys.len() + i)?;
                        let at = $crate::shared::personal_data::place(t.table, field, &key);
                        let plain = self.open_personal_opt(old_gen, &at, stored.clone())?;
                        if t.table == "users" && *field == "email" {
                            email_index = plain.as_deref().map(|p| {
                                keys.blind_index(key[0], "email", &latchkey_core::domain::normalize_email(p))
                            });
                        }
                        new.push(plain.map(|p| keys.seal(generation, &at, &p)));
                        old.push(stored);
                    }
                    let mut update = sqlx::QueryBuilder::<$db>::new(format!("UPDATE {} SET sealed_gen = ", t.table));
                    update.push_bind(i64::from(generation));
                    for (field, value) in t.fields.iter().zip(new) {
                        update.push(format_args!(", {field} = ")).push_bind(value);
                    }
                    if t.table == "users" {
                        if let Some(index) = &email_index
                            && self.verified_email_taken(&mut tx, key[0], key[1], index).await?
                        {
                            // Two verified addresses that differ only in case (unique before
                            // they were compared normalised): the later stays, unverified.
                            update.push(", email_verified = FALSE");
                            let actor = Actor::System;
                            let tenant = TenantId::parse(key[0]).map_err(|e| StoreError::Corrupt(format!("users tenant: {e}")))?;
                            audit!(self, tx, &tenant, actor, "user.contacts_unverified", key[1],
                                serde_json::json!({"email": true, "phone": false, "reason": "same_address_as_another_user"}));
                        }
                        update.push(", email_index = ").push_bind(email_index);
                    }
                    update.push(" WHERE sealed_gen IS NOT DISTINCT FROM ").push_bind(old_gen);
                    for (column, value) in t.keys.iter().zip(&key) {
                        update.push(format_args!(" AND {column} = ")).push_bind(value.to_string());
                    }
                    // Changed since it was read (a node wrote it anew): left as written.
                    for (field, value) in t.fields.iter().zip(old) {
                        update.push(format_args!(" AND {field} IS NOT DISTINCT FROM ")).push_bind(value);
                    }
                    sealed += update.build().execute(&mut *tx).await?.rows_affected();
                }
                tx.commit().await?;
                Ok(sealed)
            }

            async fn verified_email_taken(
                &self,
                tx: &mut <$db as sqlx::Database>::Connection,
                tenant: &str,
                sub: &str,
                index: &str,
            ) -> StoreResult<bool> {
                let taken: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM users u WHERE u.tenant_id = $1 AND u.email_index = $2 AND u.email_verified AND u.sub <> $3
                       AND EXISTS (SELECT 1 FROM users me WHERE me.tenant_id = $1 AND me.sub = $3 AND me.email_verified)",
                )
                .bind(tenant)
                .bind(index)
                .bind(sub)
                .fetch_optional(&mut *tx)
                .await?;
                Ok(taken.is_some())
            }
        }

        #[async_trait::async_trait]
        impl $crate::PersonalDataStore for $store {
            fn use_personal_data_keys(&self, keys: std::sync::Arc<latchkey_core::crypto::PersonalDataKeys>) {
                // Set once per store; a second call (the same keys) changes nothing.
                let _ = self.data_keys.set(keys);
            }

            async fn load_data_key_generation(&self) -> StoreResult<u32> {
                let generation = u32::try_from(self.meta_number($crate::shared::personal_data::GENERATION).await?.max(1))
                    .map_err(|_| StoreError::Corrupt("meta value `data_key_generation` is out of range".into()))?;
                self.data_keys()?.set_active(generation);
                Ok(generation)
            }

            async fn start_data_key_generation(&self, actor: &Actor) -> StoreResult<u32> {
                self.data_keys()?;
                let mut tx = self.begin_write().await?;
                let next: String = sqlx::query_scalar(
                    "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE name = $1 RETURNING value",
                )
                .bind($crate::shared::personal_data::GENERATION)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::Corrupt("meta value `data_key_generation` is missing".into()))?;
                let generation: u32 = next.parse().map_err(|_| StoreError::Corrupt(format!("meta value `data_key_generation`: {next}")))?;
                Self::put_meta_number(&mut tx, $crate::shared::personal_data::GENERATION_STARTED, self.now()).await?;
                let tenant = TenantId::default_tenant();
                audit!(self, tx, &tenant, actor, "keys.data_key_rotated", "#data-keys", serde_json::json!({"generation": generation}));
                tx.commit().await?;
                self.data_keys()?.set_active(generation);
                Ok(generation)
            }

            async fn reseal_personal_data(&self, batch: u32) -> StoreResult<$crate::ResealReport> {
                use $crate::shared::personal_data::{GENERATION_SETTLES, GENERATION_STARTED, SEALED_TABLES, SEALED_THROUGH};
                let generation = self.load_data_key_generation().await?;
                let through = self.meta_number(SEALED_THROUGH).await?;
                let mut report = $crate::ResealReport { generation, ..Default::default() };
                if through >= i64::from(generation) {
                    report.done = true;
                    return Ok(report);
                }
                for t in SEALED_TABLES {
                    let n = self.reseal_table(t, generation, batch).await?;
                    if n > 0 {
                        report.sealed.insert(t.table.to_owned(), n);
                    }
                }
                if report.sealed.is_empty() {
                    let started = self.meta_number(GENERATION_STARTED).await?;
                    if self.now() - started >= GENERATION_SETTLES {
                        let mut conn = self.pool().acquire().await?;
                        Self::put_meta_number(&mut conn, SEALED_THROUGH, i64::from(generation)).await?;
                        drop(conn);
                        self.forget_cleartext().await?;
                        report.done = true;
                    }
                }
                Ok(report)
            }

            async fn personal_data_to_reseal(&self) -> StoreResult<u64> {
                let generation = self.load_data_key_generation().await?;
                let mut left = 0u64;
                for t in $crate::shared::personal_data::SEALED_TABLES {
                    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT COUNT(*) FROM {} WHERE sealed_gen IS NULL OR sealed_gen < $1",
                        t.table
                    )))
                    .bind(i64::from(generation))
                    .fetch_one(self.pool())
                    .await?;
                    left += u64::try_from(n).unwrap_or(0);
                }
                Ok(left)
            }
        }
    };
}

/// A user's sealed columns, as [`impl_personal_data`] writes them.
pub(crate) struct SealedUser {
    pub(crate) email: Option<String>,
    pub(crate) email_index: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) profile: String,
    pub(crate) generation: i64,
}
