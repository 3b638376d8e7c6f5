/// Users per multi-row statement of an import: 14 values a row stays far below SQLite's
/// 32,766 and PostgreSQL's 65,535 parameters, and a statement per 500 users makes 100,000
/// users a few hundred statements where one per user made 200,000 round trips.
pub(crate) const IMPORT_CHUNK: usize = 500;

macro_rules! impl_user_import {
    ($store:ty, $db:ty) => {
        impl $store {
            /// `UserStore::import_users`: collisions are looked for and the users written in
            /// one transaction (on SQLite under the write lock, so nothing can slip between).
            async fn import_users_at_once(&self, tenant: &TenantId, users: &[NewUser], actor: &Actor)
                -> StoreResult<ImportOutcome> {
                let mut tx = self.begin_write().await?;
                let conflicts = self.import_conflicts(&mut tx, tenant, users).await?;
                if !conflicts.is_empty() {
                    tx.rollback().await?;
                    return Ok(ImportOutcome::Conflicts(conflicts));
                }
                let now = self.now();
                let sealed = users
                    .iter()
                    .map(|u| self.seal_user_columns(tenant, &u.sub, u.email.as_ref(), u.name.as_ref().map(|n| n.as_str()), &u.profile))
                    .collect::<StoreResult<Vec<_>>>()?;
                let details: Vec<String> = users
                    .iter()
                    .map(|u| serde_json::json!({"username": u.username.as_str(), "imported": true}).to_string())
                    .collect();
                let chunk = $crate::shared::import::IMPORT_CHUNK;
                for (start, part) in (0..users.len()).step_by(chunk).map(|s| (s, &users[s..(s + chunk).min(users.len())])) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO users (tenant_id, sub, username, email, email_verified, name, profile, password_hash, locked, created_at, updated_at, email_index, sealed_gen, last_active_at) ",
                    );
                    insert.push_values(part.iter().enumerate(), |mut row, (i, u)| {
                        row.push_bind(tenant.as_str())
                            .push_bind(u.sub.as_str())
                            .push_bind(u.username.as_str())
                            .push_bind(sealed[start + i].email.clone())
                            .push_bind(u.email_verified)
                            .push_bind(sealed[start + i].name.clone())
                            .push_bind(sealed[start + i].profile.clone())
                            .push_bind(u.password_hash.as_deref())
                            .push_bind(false)
                            .push_bind(now)
                            .push_bind(now)
                            .push_bind(sealed[start + i].email_index.clone())
                            .push_bind(sealed[start + i].generation)
                            // Unused counts from the import, as from any account's creation.
                            .push_bind(now);
                    });
                    insert.build().execute(&mut *tx).await.map_err(|e| StoreError::from_write(e, Self::user_conflict))?;
                    // Every user's creation is on record, as `user create` records it.
                    let who = actor.as_string();
                    let mut entries = Vec::with_capacity(part.len());
                    for (i, u) in part.iter().enumerate() {
                        let details = serde_json::from_str(details[start + i].as_str())
                            .map_err(|e| StoreError::Invalid(format!("audit details: {e}")))?;
                        let sealed = $crate::shared::audit::SealedPart { actor: who.clone(), target: u.sub.to_string(), details };
                        entries.push(("user.created", sealed));
                    }
                    self.append_audit_entries(&mut *tx, tenant, now, &entries).await?;
                }
                tx.commit().await?;
                if users.len() >= 1_000 {
                    self.refresh_user_statistics().await?;
                }
                Ok(ImportOutcome::Imported(u64::try_from(users.len()).unwrap_or(u64::MAX)))
            }

            /// The users of an import that collide with stored users or clients, looked up
            /// by key a chunk at a time.
            async fn import_conflicts(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                users: &[NewUser],
            ) -> StoreResult<Vec<ImportConflict>> {
                let subs: Vec<&str> = users.iter().map(|u| u.sub.as_str()).collect();
                let names: Vec<&str> = users.iter().map(|u| u.username.as_str()).collect();
                // Verified addresses are unique by their blind index (the address is sealed).
                let indexes: Vec<Option<String>> = users
                    .iter()
                    .map(|u| u.email.as_ref().filter(|_| u.email_verified).map(|e| self.email_index(tenant.as_str(), e)).transpose())
                    .collect::<StoreResult<_>>()?;
                let emails: Vec<&str> = indexes.iter().flatten().map(String::as_str).collect();
                let mut conflicts = Vec::new();
                for (field, taken_by, select, values) in [
                    ("sub", "user", "SELECT sub FROM users WHERE tenant_id = ", &subs),
                    ("sub", "client", "SELECT client_id FROM clients WHERE tenant_id = ", &subs),
                    ("username", "user", "SELECT username FROM users WHERE tenant_id = ", &names),
                    ("email_index", "user", "SELECT email_index FROM users WHERE email_verified AND tenant_id = ", &emails),
                ] {
                    let column = select.split_whitespace().nth(1).unwrap_or("sub");
                    let mut taken = std::collections::HashSet::new();
                    for part in values.chunks($crate::shared::import::IMPORT_CHUNK) {
                        let mut query = sqlx::QueryBuilder::<$db>::new(select);
                        query.push_bind(tenant.as_str()).push(format_args!(" AND {column} IN ("));
                        let mut list = query.separated(", ");
                        for value in part {
                            list.push_bind(*value);
                        }
                        query.push(")");
                        let found: Vec<String> = query.build_query_scalar().fetch_all(&mut *conn).await?;
                        taken.extend(found);
                    }
                    for (index, u) in users.iter().enumerate() {
                        let value = match field {
                            "sub" => Some(u.sub.as_str()),
                            "username" => Some(u.username.as_str()),
                            _ => indexes[index].as_deref(),
                        };
                        if value.is_some_and(|v| taken.contains(v)) {
                            let field = if field == "email_index" { "email" } else { field };
                            conflicts.push(ImportConflict { index, field, taken_by });
                        }
                    }
                }
                conflicts.sort_by_key(|c| c.index);
                Ok(conflicts)
            }
        }
    };
}
