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
    /// What a value is bound to, when not its own row: a grant's data is bound to the
    /// grant (`grants`, tenant and grant id), so the database can copy it from a refresh
    /// token to its successor.
    pub(crate) bound_to: Option<(&'static str, &'static [&'static str])>,
}

/// Every table that holds personal data sealed, in the order the job visits them.
pub(crate) const SEALED_TABLES: &[SealedTable] = &[
    SealedTable {
        table: "users",
        keys: &["tenant_id", "sub"],
        fields: &["email", "name", "profile"],
        order: "created_at, sub",
        bound_to: None,
    },
    SealedTable {
        table: "federated_identities",
        keys: &["tenant_id", "provider_id", "subject"],
        fields: &["email"],
        order: "tenant_id, provider_id, subject",
        bound_to: None,
    },
    SealedTable {
        table: "one_time_tokens",
        keys: &["tenant_id", "token_hash"],
        fields: &["detail"],
        order: "tenant_id, token_hash",
        bound_to: None,
    },
    SealedTable {
        table: "authorization_requests",
        keys: &["tenant_id", "id_hash"],
        fields: &["request"],
        order: "tenant_id, id_hash",
        bound_to: None,
    },
    SealedTable {
        table: "auth_ceremonies",
        keys: &["tenant_id", "id_hash", "purpose"],
        fields: &["state"],
        order: "tenant_id, id_hash, purpose",
        bound_to: None,
    },
    SealedTable {
        table: "admin_idempotency",
        keys: &["tenant_id", "caller", "idem_key"],
        fields: &["body"],
        order: "tenant_id, caller, idem_key",
        bound_to: None,
    },
    SealedTable {
        table: "authorization_codes",
        keys: &["tenant_id", "code_hash"],
        fields: &["grant_data"],
        order: "sealed_gen",
        bound_to: Some(("grants", &["tenant_id", "grant_id"])),
    },
    SealedTable {
        table: "refresh_tokens",
        keys: &["tenant_id", "token_hash"],
        fields: &["grant_data"],
        // Any order: served by the index on `sealed_gen` alone.
        order: "sealed_gen",
        bound_to: Some(("grants", &["tenant_id", "grant_id"])),
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
                         email_verified = $8, updated_at = $9, unverified_sign_up = unverified_sign_up AND NOT $8
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

            /// What a user granted a client (the `grant_data` of codes and refresh
            /// tokens), sealed for its grant: a refresh token's successor, copied by the
            /// database, opens as its predecessor did. It can hold a `claims` request's
            /// wanted values (an address, a number).
            pub(crate) fn seal_grant(&self, tenant: &TenantId, grant_id: &str, data: &str) -> StoreResult<(String, i64)> {
                self.seal_personal(&$crate::shared::personal_data::place("grants", "grant_data", &[tenant.as_str(), grant_id]), data)
            }

            pub(crate) fn open_grant(&self, tenant: &TenantId, grant_id: &str, generation: Option<i64>, data: String)
                -> StoreResult<String> {
                self.open_personal(generation, &$crate::shared::personal_data::place("grants", "grant_data", &[tenant.as_str(), grant_id]), data)
            }

            pub(crate) fn refresh_from(&self, tenant: &TenantId, mut row: $crate::oauth_model::RefreshRow)
                -> StoreResult<StoredRefreshToken> {
                row.grant_data = self.open_grant(tenant, &row.grant_id, row.sealed_gen, std::mem::take(&mut row.grant_data))?;
                row.try_into()
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

            /// Rows of `t` in clear (in `t.order`) or under a generation before
            /// `generation`, up to `limit`: read without the write lock, through the
            /// table's index on `sealed_gen` (the short-lived tables have none).
            async fn rows_to_reseal(&self, t: &$crate::shared::personal_data::SealedTable, generation: u32, limit: u32)
                -> StoreResult<Vec<<$db as sqlx::Database>::Row>> {
                let bound: &[&str] = t.bound_to.map_or(&[], |(_, columns)| columns);
                let mut columns: Vec<&str> = t.keys.iter().chain(t.fields.iter()).copied().collect();
                columns.push("sealed_gen");
                columns.extend(bound);
                let mut rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM {} WHERE sealed_gen IS NULL ORDER BY {} LIMIT $1",
                    columns.join(", "), t.table, t.order
                )))
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?;
                let left = i64::from(limit) - i64::try_from(rows.len()).unwrap_or(i64::MAX);
                if left > 0 {
                    rows.extend(
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "SELECT {} FROM {} WHERE sealed_gen < $1 LIMIT $2",
                            columns.join(", "), t.table
                        )))
                        .bind(i64::from(generation))
                        .bind(left)
                        .fetch_all(self.pool())
                        .await?,
                    );
                }
                Ok(rows)
            }

            /// One row opened and sealed again under `generation` (outside any lock), or
            /// `None` when a value does not open (another master key, an altered row).
            fn reseal_row(&self, t: &$crate::shared::personal_data::SealedTable, row: &<$db as sqlx::Database>::Row, generation: u32)
                -> StoreResult<Option<$crate::shared::personal_data::ResealedRow>> {
                use sqlx::Row as _;
                let keys = self.data_keys()?;
                let key: Vec<String> = (0..t.keys.len()).map(|i| row.try_get::<String, _>(i)).collect::<Result<_, _>>()?;
                let old_gen: Option<i64> = row.try_get(t.keys.len() + t.fields.len())?;
                let after = t.keys.len() + t.fields.len() + 1;
                let (place_table, place_key) = match t.bound_to {
                    Some((name, columns)) => {
                        let values = (0..columns.len()).map(|i| row.try_get::<String, _>(after + i)).collect::<Result<Vec<_>, _>>()?;
                        (name, values)
                    }
                    None => (t.table, key.clone()),
                };
                let mut out = $crate::shared::personal_data::ResealedRow { key, old_gen, ..Default::default() };
                for (i, field) in t.fields.iter().enumerate() {
                    let stored: Option<String> = row.try_get(t.keys.len() + i)?;
                    let parts: Vec<&str> = place_key.iter().map(String::as_str).collect();
                    let at = $crate::shared::personal_data::place(place_table, field, &parts);
                    let plain = match self.open_personal_opt(old_gen, &at, stored.clone()) {
                        Ok(plain) => plain,
                        Err(StoreError::Corrupt(_)) => return Ok(None),
                        Err(e) => return Err(e),
                    };
                    if t.table == "users" && *field == "email" {
                        out.email_index = plain.as_deref().map(|p| {
                            keys.blind_index(parts[0], "email", &latchkey_core::domain::normalize_email(p))
                        });
                    }
                    out.new.push(plain.map(|p| keys.seal(generation, &at, &p)));
                    out.old.push(stored);
                }
                Ok(Some(out))
            }

            /// Seals up to `limit` rows of `t` that are in clear or under a generation
            /// before `generation`, in one short write transaction.
            async fn reseal_table(&self, t: &$crate::shared::personal_data::SealedTable, generation: u32, limit: u32)
                -> StoreResult<$crate::shared::personal_data::TablePass> {
                let rows = self.rows_to_reseal(t, generation, limit).await?;
                let mut pass = $crate::shared::personal_data::TablePass { found: rows.len() as u64, ..Default::default() };
                let mut prepared = Vec::with_capacity(rows.len());
                for row in &rows {
                    match self.reseal_row(t, row, generation)? {
                        Some(r) => prepared.push(r),
                        None => pass.unreadable += 1,
                    }
                }
                if prepared.is_empty() {
                    return Ok(pass);
                }
                let mut tx = self.begin_write().await?;
                for r in prepared {
                    pass.sealed += self.write_resealed(&mut tx, t, r, generation).await?;
                }
                tx.commit().await?;
                Ok(pass)
            }

            /// Writes a re-sealed row unless it changed since it was read (a node wrote it
            /// anew: left as written). 1 when written.
            async fn write_resealed(
                &self,
                tx: &mut <$db as sqlx::Database>::Connection,
                t: &$crate::shared::personal_data::SealedTable,
                r: $crate::shared::personal_data::ResealedRow,
                generation: u32,
            ) -> StoreResult<u64> {
                let mut demoted = None;
                let mut update = sqlx::QueryBuilder::<$db>::new(format!("UPDATE {} SET sealed_gen = ", t.table));
                update.push_bind(i64::from(generation));
                for (field, value) in t.fields.iter().zip(r.new) {
                    update.push(format_args!(", {field} = ")).push_bind(value);
                }
                if t.table == "users" {
                    let tenant = TenantId::parse(&r.key[0]).map_err(|e| StoreError::Corrupt(format!("users tenant: {e}")))?;
                    if let Some(index) = &r.email_index
                        && let Some((other, other_is_newer)) = self.verified_holder(tx, &r.key[0], &r.key[1], index).await?
                    {
                        // Two verified addresses that are one once normalised (unique
                        // before as typed): the older account keeps it verified.
                        if other_is_newer {
                            let other = SubjectId::parse(&other).map_err(|e| StoreError::Corrupt(format!("users sub: {e}")))?;
                            self.demote_duplicate_email(tx, &tenant, &other).await?;
                        } else {
                            update.push(", email_verified = FALSE, updated_at = ").push_bind(self.now());
                            demoted = Some(SubjectId::parse(&r.key[1]).map_err(|e| StoreError::Corrupt(format!("users sub: {e}")))?);
                        }
                    }
                    update.push(", email_index = ").push_bind(r.email_index.clone());
                    update.push(" WHERE sealed_gen IS NOT DISTINCT FROM ").push_bind(r.old_gen);
                    for (column, value) in t.keys.iter().zip(&r.key) {
                        update.push(format_args!(" AND {column} = ")).push_bind(value.clone());
                    }
                    for (field, value) in t.fields.iter().zip(r.old) {
                        update.push(format_args!(" AND {field} IS NOT DISTINCT FROM ")).push_bind(value);
                    }
                    let written = update.build().execute(&mut *tx).await?.rows_affected();
                    if written == 1 && let Some(sub) = demoted {
                        self.record_demotion(tx, &tenant, &sub).await?;
                    }
                    return Ok(written);
                }
                update.push(" WHERE sealed_gen IS NOT DISTINCT FROM ").push_bind(r.old_gen);
                for (column, value) in t.keys.iter().zip(&r.key) {
                    update.push(format_args!(" AND {column} = ")).push_bind(value.clone());
                }
                for (field, value) in t.fields.iter().zip(r.old) {
                    update.push(format_args!(" AND {field} IS NOT DISTINCT FROM ")).push_bind(value);
                }
                Ok(update.build().execute(&mut *tx).await?.rows_affected())
            }

            /// Another verified holder of the address `index` while `sub`'s is verified
            /// too: its id, and whether its account is the newer.
            async fn verified_holder(
                &self,
                tx: &mut <$db as sqlx::Database>::Connection,
                tenant: &str,
                sub: &str,
                index: &str,
            ) -> StoreResult<Option<(String, bool)>> {
                let found: Option<(String, i32)> = sqlx::query_as(
                    "SELECT u.sub, CASE WHEN u.created_at > me.created_at OR (u.created_at = me.created_at AND u.sub > me.sub)
                                        THEN 1 ELSE 0 END
                     FROM users u JOIN users me ON me.tenant_id = u.tenant_id AND me.sub = $3
                     WHERE u.tenant_id = $1 AND u.email_index = $2 AND u.email_verified AND u.sub <> $3 AND me.email_verified
                     LIMIT 1",
                )
                .bind(tenant)
                .bind(index)
                .bind(sub)
                .fetch_optional(&mut *tx)
                .await?;
                Ok(found.map(|(other, newer)| (other, newer == 1)))
            }

            async fn demote_duplicate_email(&self, tx: &mut <$db as sqlx::Database>::Connection, tenant: &TenantId, sub: &SubjectId)
                -> StoreResult<()> {
                sqlx::query("UPDATE users SET email_verified = FALSE, updated_at = $3 WHERE tenant_id = $1 AND sub = $2")
                    .bind(tenant.as_str())
                    .bind(sub.as_str())
                    .bind(self.now())
                    .execute(&mut *tx)
                    .await?;
                self.record_demotion(tx, tenant, sub).await
            }

            /// On record, and every node told (its cached user says verified).
            async fn record_demotion(&self, tx: &mut <$db as sqlx::Database>::Connection, tenant: &TenantId, sub: &SubjectId)
                -> StoreResult<()> {
                audit!(self, tx, tenant, Actor::System, "user.contacts_unverified", sub.as_str(),
                    serde_json::json!({"email": true, "phone": false, "reason": "same_address_as_another_user"}));
                Self::user_changed(tx, tenant, sub).await?;
                Ok(())
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
                let mut found = 0;
                for t in SEALED_TABLES {
                    let pass = self.reseal_table(t, generation, batch).await?;
                    found += pass.found;
                    if pass.sealed > 0 {
                        report.sealed.insert(t.table.to_owned(), pass.sealed);
                    }
                    if pass.unreadable > 0 {
                        report.unreadable.insert(t.table.to_owned(), pass.unreadable);
                    }
                }
                // Done when nothing is left to seal (rows that do not open keep it from
                // ever being done, and are reported), no node can still be writing under
                // the generation before, and the files hold no old page in clear.
                if found == 0 {
                    let started = self.meta_number(GENERATION_STARTED).await?;
                    if self.now() - started >= GENERATION_SETTLES && self.forget_cleartext().await? {
                        let mut conn = self.pool().acquire().await?;
                        Self::put_meta_number(&mut conn, SEALED_THROUGH, i64::from(generation)).await?;
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

/// One table's part of a pass: rows found to seal, sealed, and found but unreadable.
#[derive(Debug, Default)]
pub(crate) struct TablePass {
    pub(crate) found: u64,
    pub(crate) sealed: u64,
    pub(crate) unreadable: u64,
}

/// A row read to be sealed anew: its key, generation and values as read, the values sealed
/// under the new generation, and (for users) the email's blind index.
#[derive(Debug, Default)]
pub(crate) struct ResealedRow {
    pub(crate) key: Vec<String>,
    pub(crate) old_gen: Option<i64>,
    pub(crate) old: Vec<Option<String>>,
    pub(crate) new: Vec<Option<String>>,
    pub(crate) email_index: Option<String>,
}
