//! What the admin API reads and keeps: pages of users and audit events in a stable order,
//! and the responses of creates sent with an `Idempotency-Key`.

macro_rules! impl_admin_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::AdminStore for $store {
            async fn search_users(&self, tenant: &TenantId, q: &UserQuery) -> StoreResult<Vec<User>> {
                let mut sql = sqlx::QueryBuilder::<$db>::new("");
                if let Some(email) = &q.email {
                    // Exact: the holders of the address, by its blind index (or in clear,
                    // for a row not sealed yet), found first through those indexes; the
                    // other filters and the order apply to them.
                    sql.push("WITH found AS MATERIALIZED (SELECT * FROM users WHERE tenant_id = ").push_bind(tenant.as_str());
                    sql.push(" AND email_index = ").push_bind(self.email_index(tenant.as_str(), email)?);
                    sql.push(" UNION ALL SELECT * FROM users WHERE tenant_id = ").push_bind(tenant.as_str());
                    sql.push(" AND sealed_gen IS NULL AND email = ").push_bind(email.as_str().to_owned());
                    sql.push(") SELECT * FROM found AS users WHERE tenant_id = ");
                } else {
                    sql.push("SELECT * FROM users WHERE tenant_id = ");
                }
                sql.push_bind(tenant.as_str());
                if let Some(prefix) = &q.username_prefix {
                    // The lower bound lets the username index start at the prefix; LIKE
                    // decides, with `%` and `_` escaped.
                    sql.push(" AND username >= ").push_bind(prefix.clone());
                    sql.push(" AND username LIKE ").push_bind(latchkey_core::records::like_prefix(prefix));
                    sql.push(" ESCAPE '\\'");
                }
                if let Some(locked) = q.locked {
                    sql.push(" AND locked = ").push_bind(locked);
                }
                if let Some(service) = q.service_account {
                    sql.push(" AND service_account = ").push_bind(service);
                }
                if let Some(role) = &q.role {
                    sql.push(" AND sub IN (SELECT sub FROM user_roles WHERE tenant_id = ").push_bind(tenant.as_str());
                    sql.push(" AND role = ").push_bind(role.as_str().to_owned());
                    sql.push(" UNION SELECT m.sub FROM group_members m JOIN group_roles r ON r.tenant_id = m.tenant_id AND r.group_name = m.group_name WHERE m.tenant_id = ");
                    sql.push_bind(tenant.as_str()).push(" AND r.role = ").push_bind(role.as_str().to_owned()).push(")");
                }
                if let Some(group) = &q.group {
                    sql.push(" AND sub IN (SELECT sub FROM group_members WHERE tenant_id = ").push_bind(tenant.as_str());
                    sql.push(" AND group_name = ").push_bind(group.as_str().to_owned()).push(")");
                }
                if let Some(after) = &q.after {
                    sql.push(" AND username > ").push_bind(after.as_str().to_owned());
                }
                sql.push(" ORDER BY username LIMIT ").push_bind(i64::from(q.limit.min(latchkey_core::records::MAX_PAGE + 1)));
                let rows: Vec<$crate::model::UserRow> = sql.build_query_as().fetch_all(self.pool()).await?;
                rows.into_iter().map(|r| self.user_from(r)).collect()
            }

            async fn audit_events(&self, tenant: &TenantId, q: &AuditQuery) -> StoreResult<Vec<(i64, AuditEvent)>> {
                // Actors and subjects are stored as keyed pseudonyms: a search by id looks
                // for the id's pseudonym.
                let keys = self.audit_keys()?;
                let mut sql = sqlx::QueryBuilder::<$db>::new(
                    "SELECT l.id, l.seq, l.at, l.action, l.actor_ref, l.target_ref, l.sealed, l.mac, k.salt
                     FROM audit_log l LEFT JOIN audit_subject_keys k ON k.tenant_id = l.tenant_id AND k.subject_ref = l.target_ref
                     WHERE l.tenant_id = ",
                );
                sql.push_bind(tenant.as_str());
                if let Some(actor) = &q.actor {
                    sql.push(" AND l.actor_ref = ").push_bind(keys.pseudonym(tenant.as_str(), actor));
                }
                if let Some(target) = &q.target {
                    sql.push(" AND l.target_ref = ").push_bind(keys.pseudonym(tenant.as_str(), target));
                }
                if let Some(action) = &q.action {
                    sql.push(" AND l.action = ").push_bind(action.clone());
                }
                if let Some(since) = q.since {
                    sql.push(" AND l.at >= ").push_bind(since);
                }
                if let Some(until) = q.until {
                    sql.push(" AND l.at < ").push_bind(until);
                }
                if let Some(before) = q.before_id {
                    sql.push(" AND l.id < ").push_bind(before);
                }
                if let Some(after) = q.after_id {
                    sql.push(" AND l.id > ").push_bind(after);
                }
                sql.push(if q.oldest_first { " ORDER BY l.id LIMIT " } else { " ORDER BY l.id DESC LIMIT " }).push_bind(i64::from(q.limit.min(latchkey_core::records::MAX_PAGE + 1)));
                let rows: Vec<$crate::model::AuditLogRow> = sql.build_query_as().fetch_all(self.pool()).await?;
                self.open_audit_rows(tenant, rows)
            }

            async fn claim_idempotency_key(
                &self,
                tenant: &TenantId,
                caller: &str,
                key: &str,
                request_hash: &str,
            ) -> StoreResult<IdempotentClaim> {
                let mut tx = self.begin_write().await?;
                let now = self.now();
                // A key older than a day is free again, and so is one whose create has been
                // "running" for a minute (its request was dropped or the node died).
                sqlx::query(
                    "DELETE FROM admin_idempotency WHERE tenant_id = $1 AND caller = $2 AND idem_key = $3
                     AND (created_at <= $4 OR (status IS NULL AND created_at <= $5))",
                )
                .bind(tenant.as_str())
                .bind(caller)
                .bind(key)
                .bind(now - $crate::cleanup::IDEMPOTENCY_KEYS_KEPT.as_secs().cast_signed())
                .bind(now - 60)
                .execute(&mut *tx)
                .await?;
                let inserted = sqlx::query(
                    "INSERT INTO admin_idempotency (tenant_id, caller, idem_key, request_hash, created_at, sealed_gen)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, caller, idem_key) DO NOTHING",
                )
                .bind(tenant.as_str())
                .bind(caller)
                .bind(key)
                .bind(request_hash)
                .bind(now)
                .bind(i64::from(self.data_keys()?.active()))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let claim = if inserted == 1 {
                    IdempotentClaim::Fresh
                } else {
                    let (request_hash, status, location, body, generation): (String, Option<i64>, Option<String>, Option<String>, Option<i64>) =
                        sqlx::query_as(
                            "SELECT request_hash, status, location, body, sealed_gen FROM admin_idempotency
                             WHERE tenant_id = $1 AND caller = $2 AND idem_key = $3",
                        )
                        .bind(tenant.as_str())
                        .bind(caller)
                        .bind(key)
                        .fetch_one(&mut *tx)
                        .await?;
                    // A response may name a person (a created user): it is kept sealed.
                    let at = $crate::shared::personal_data::place("admin_idempotency", "body", &[tenant.as_str(), caller, key]);
                    let body = self.open_personal_opt(generation, &at, body)?;
                    match status.and_then(|s| u16::try_from(s).ok()) {
                        None => IdempotentClaim::Running { request_hash },
                        Some(status) => {
                            IdempotentClaim::Done { request_hash, status, location, body: body.unwrap_or_default() }
                        }
                    }
                };
                tx.commit().await?;
                Ok(claim)
            }

            async fn keep_idempotent_response(
                &self,
                tenant: &TenantId,
                caller: &str,
                key: &str,
                status: u16,
                location: Option<&str>,
                body: &str,
            ) -> StoreResult<()> {
                let at = $crate::shared::personal_data::place("admin_idempotency", "body", &[tenant.as_str(), caller, key]);
                let (body, generation) = self.seal_personal(&at, body)?;
                sqlx::query(
                    "UPDATE admin_idempotency SET status = $4, location = $5, body = $6, sealed_gen = $7
                     WHERE tenant_id = $1 AND caller = $2 AND idem_key = $3",
                )
                .bind(tenant.as_str())
                .bind(caller)
                .bind(key)
                .bind(i64::from(status))
                .bind(location)
                .bind(body)
                .bind(generation)
                .execute(self.pool())
                .await?;
                Ok(())
            }

            async fn applied_objects(&self, tenant: &TenantId) -> StoreResult<Vec<(String, String)>> {
                Ok(sqlx::query_as("SELECT kind, name FROM applied_objects WHERE tenant_id = $1 ORDER BY kind, name")
                    .bind(tenant.as_str())
                    .fetch_all(self.pool())
                    .await?)
            }

            async fn set_applied(&self, tenant: &TenantId, kind: &str, name: &str, created: bool) -> StoreResult<()> {
                let query = if created {
                    sqlx::query(
                        "INSERT INTO applied_objects (tenant_id, kind, name, created_at) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (tenant_id, kind, name) DO NOTHING",
                    )
                    .bind(tenant.as_str())
                    .bind(kind)
                    .bind(name)
                    .bind(self.now())
                } else {
                    sqlx::query("DELETE FROM applied_objects WHERE tenant_id = $1 AND kind = $2 AND name = $3")
                        .bind(tenant.as_str())
                        .bind(kind)
                        .bind(name)
                };
                query.execute(self.pool()).await?;
                Ok(())
            }

            async fn release_idempotency_key(&self, tenant: &TenantId, caller: &str, key: &str) -> StoreResult<()> {
                sqlx::query("DELETE FROM admin_idempotency WHERE tenant_id = $1 AND caller = $2 AND idem_key = $3 AND status IS NULL")
                    .bind(tenant.as_str())
                    .bind(caller)
                    .bind(key)
                    .execute(self.pool())
                    .await?;
                Ok(())
            }
        }

        impl $store {
            /// Forgets that `apply` created an object, in the transaction that deletes or
            /// renames it: `prune` never removes a later object of the same name.
            pub(crate) async fn forget_applied_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                kind: &str,
                name: &str,
            ) -> StoreResult<()> {
                sqlx::query("DELETE FROM applied_objects WHERE tenant_id = $1 AND kind = $2 AND name = $3")
                    .bind(tenant.as_str())
                    .bind(kind)
                    .bind(name)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }
        }
    };
}
