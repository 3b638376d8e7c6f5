macro_rules! impl_oauth_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::OAuthStore for $store {
            async fn put_authorization_request(
                &self,
                tenant: &TenantId,
                id_hash: &TokenHash,
                p: &PendingAuthorization,
                max_per_ip: u32,
            ) -> StoreResult<bool> {
                // The request holds what the app sent about the person (`login_hint`).
                let at = $crate::shared::personal_data::place("authorization_requests", "request", &[tenant.as_str(), id_hash.as_str()]);
                let sealed = self.seal_personal(&at, &p.request)?;
                self.park_authorization_request(tenant, id_hash, p, sealed, max_per_ip, self.now()).await
            }

            async fn authorization_request(&self, tenant: &TenantId, id_hash: &TokenHash, now: UnixTime) -> StoreResult<Option<PendingAuthorization>> {
                let row: Option<(String, String, i64, String, Option<i64>)> = sqlx::query_as(
                    "SELECT binding_hash, request, expires_at, COALESCE(ip_key, ''), sealed_gen FROM authorization_requests
                     WHERE tenant_id = $1 AND id_hash = $2 AND expires_at > $3",
                )
                .bind(tenant.as_str())
                .bind(id_hash.as_str())
                .bind(now.secs())
                .fetch_optional(self.pool())
                .await?;
                let at = $crate::shared::personal_data::place("authorization_requests", "request", &[tenant.as_str(), id_hash.as_str()]);
                row.map(|(b, request, e, ip_key, generation)| {
                    Ok(PendingAuthorization {
                        binding_hash: TokenHash::from_stored(b),
                        request: self.open_personal(generation, &at, request)?,
                        expires_at: UnixTime::from_secs(e),
                        ip_key,
                    })
                })
                .transpose()
            }

            async fn delete_authorization_request(&self, tenant: &TenantId, id_hash: &TokenHash) -> StoreResult<()> {
                sqlx::query("DELETE FROM authorization_requests WHERE tenant_id = $1 AND id_hash = $2")
                    .bind(tenant.as_str())
                    .bind(id_hash.as_str())
                    .execute(self.pool())
                    .await?;
                Ok(())
            }

            async fn update_authorization_request(&self, tenant: &TenantId, id_hash: &TokenHash, request: &str) -> StoreResult<bool> {
                let at = $crate::shared::personal_data::place("authorization_requests", "request", &[tenant.as_str(), id_hash.as_str()]);
                let (request, generation) = self.seal_personal(&at, request)?;
                let done = sqlx::query("UPDATE authorization_requests SET request = $3, sealed_gen = $4 WHERE tenant_id = $1 AND id_hash = $2")
                    .bind(tenant.as_str())
                    .bind(id_hash.as_str())
                    .bind(request)
                    .bind(generation)
                    .execute(self.pool())
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_code(&self, tenant: &TenantId, c: &NewCode) -> StoreResult<()> {
                // The backend's one atomic step: the code and, with a session, the session's
                // record of the client.
                self.insert_code_and_session_client(tenant, c, UnixTime::from_secs(self.now())).await
            }

            async fn redeem_code(
                &self,
                tenant: &TenantId,
                code_hash: &TokenHash,
                client: &ClientId,
                now: UnixTime,
            ) -> StoreResult<CodeRedemption> {
                // The conditional update is the whole guarantee: a second redemption, on any
                // node, finds consumed_at set and updates nothing. It spends the code only for
                // the client it was issued to (RFC 6749 §4.1.3): another client that presents
                // it cannot burn it before the real exchange.
                let spent: Option<(String, String, String, i64, i64, Option<i64>)> = sqlx::query_as(
                    "UPDATE authorization_codes SET consumed_at = $3
                     WHERE tenant_id = $1 AND code_hash = $2 AND consumed_at IS NULL AND client_id = $4
                     RETURNING grant_id, client_id, grant_data, created_at, expires_at, sealed_gen",
                )
                .bind(tenant.as_str())
                .bind(code_hash.as_str())
                .bind(now.secs())
                .bind(client.as_str())
                .fetch_optional(self.pool())
                .await?;
                if let Some((grant_id, client_id, grant_data, issued_at, expires_at, generation)) = spent {
                    let grant_data = self.open_grant(tenant, &grant_id, generation, grant_data)?;
                    return Ok(CodeRedemption::Redeemed {
                        grant_id,
                        client_id,
                        grant_data,
                        issued_at: UnixTime::from_secs(issued_at),
                        expires_at: UnixTime::from_secs(expires_at),
                    });
                }
                let found: Option<(String, String)> = sqlx::query_as(
                    "SELECT grant_id, client_id FROM authorization_codes WHERE tenant_id = $1 AND code_hash = $2",
                )
                .bind(tenant.as_str())
                .bind(code_hash.as_str())
                .fetch_optional(self.pool())
                .await?;
                Ok(match found {
                    Some((_, client_id)) if client_id != client.as_str() => CodeRedemption::IssuedToAnotherClient,
                    Some((grant_id, client_id)) => CodeRedemption::Replayed { grant_id, client_id },
                    None => CodeRedemption::Unknown,
                })
            }

            async fn insert_refresh_token(&self, tenant: &TenantId, t: &NewRefreshToken) -> StoreResult<()> {
                // One statement is atomic by itself; a transaction around it would hold
                // SQLite's write lock across three hand-offs instead of one.
                let mut conn = self.pool().acquire().await?;
                self.insert_refresh(&mut conn, tenant, t, self.now()).await
            }

            async fn refresh_token(&self, tenant: &TenantId, hash: &TokenHash) -> StoreResult<Option<StoredRefreshToken>> {
                let row: Option<$crate::oauth_model::RefreshRow> = sqlx::query_as(
                    "SELECT family_id, grant_id, client_id, sub, grant_data, created_at, expires_at, rotated_at, revoked_at, sid, ends_with_session, sealed_gen
                     FROM refresh_tokens WHERE tenant_id = $1 AND token_hash = $2",
                )
                .bind(tenant.as_str())
                .bind(hash.as_str())
                .fetch_optional(self.pool())
                .await?;
                row.map(|r| self.refresh_from(tenant, r)).transpose()
            }

            async fn rotate_refresh_token(
                &self,
                tenant: &TenantId,
                old: &TokenHash,
                new: NewRefreshToken,
                now: UnixTime,
                grace: std::time::Duration,
            ) -> StoreResult<RefreshRotation> {
                // The usual case, a live token, is the backend's one atomic step (`rotate_live`):
                // marked rotated and its successor stored, or nothing.
                if let Some(row) = self.rotate_live(tenant, old, &new, now).await? {
                    return Ok(RefreshRotation::Rotated(self.refresh_from(tenant, row)?));
                }
                let mut tx = self.begin_write().await?;
                let row: Option<$crate::oauth_model::RefreshRow> = sqlx::query_as(
                    "SELECT family_id, grant_id, client_id, sub, grant_data, created_at, expires_at, rotated_at, revoked_at, sid, ends_with_session, sealed_gen
                     FROM refresh_tokens WHERE tenant_id = $1 AND token_hash = $2",
                )
                .bind(tenant.as_str())
                .bind(old.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let Some(found) = row.map(|r| self.refresh_from(tenant, r)).transpose()? else {
                    return Ok(RefreshRotation::Unknown);
                };
                if found.revoked_at.is_some() {
                    return Ok(RefreshRotation::Revoked);
                }
                if found.rotated_at.is_none() && found.grant_id != new.grant_id {
                    return Err(StoreError::Invalid(format!(
                        "a refresh token's successor is of its grant `{}`, not `{}`",
                        found.grant_id, new.grant_id
                    )));
                }
                match found.rotated_at {
                    Some(at) if now.since(at) < grace => Ok(RefreshRotation::ConcurrentUse),
                    Some(_) => {
                        // RFC 9700 §4.14.2: a rotated token used again means one copy is stolen.
                        sqlx::query(
                            "UPDATE refresh_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND family_id = $2 AND revoked_at IS NULL",
                        )
                        .bind(tenant.as_str())
                        .bind(&found.family_id)
                        .bind(now.secs())
                        .execute(&mut *tx)
                        .await?;
                        audit!(self, tx, tenant, Actor::System, "refresh_token.reuse_detected", &found.family_id,
                            serde_json::json!({"client_id": found.client_id.as_str(), "sub": found.sub.as_str()}));
                        tx.commit().await?;
                        Ok(RefreshRotation::Reused { family_id: found.family_id, grant_id: found.grant_id })
                    }
                    None => Ok(RefreshRotation::Expired),
                }
            }

            async fn revoke_refresh_family(&self, tenant: &TenantId, family_id: &str, now: UnixTime, actor: &Actor) -> StoreResult<u64> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND family_id = $2 AND revoked_at IS NULL",
                )
                .bind(tenant.as_str())
                .bind(family_id)
                .bind(now.secs())
                .execute(&mut *tx)
                .await?;
                audit!(self, tx, tenant, actor, "refresh_token.revoked", family_id, serde_json::json!({"count": done.rows_affected()}));
                tx.commit().await?;
                Ok(done.rows_affected())
            }

            async fn revoke_grant(&self, tenant: &TenantId, grant_id: &str, until: UnixTime, now: UnixTime, actor: &Actor) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query("UPDATE refresh_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND grant_id = $2 AND revoked_at IS NULL")
                    .bind(tenant.as_str())
                    .bind(grant_id)
                    .bind(now.secs())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("INSERT INTO revocations (tenant_id, kind, value, expires_at) VALUES ($1, 'grant', $2, $3)")
                    .bind(tenant.as_str())
                    .bind(grant_id)
                    .bind(until.secs())
                    .execute(&mut *tx)
                    .await?;
                audit!(self, tx, tenant, actor, "grant.revoked", grant_id, serde_json::json!({}));
                tx.commit().await?;
                Ok(())
            }

            async fn revoke_access_token(&self, tenant: &TenantId, jti: &str, until: UnixTime, actor: &Actor) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query("INSERT INTO revocations (tenant_id, kind, value, expires_at) VALUES ($1, 'jti', $2, $3)")
                    .bind(tenant.as_str())
                    .bind(jti)
                    .bind(until.secs())
                    .execute(&mut *tx)
                    .await?;
                audit!(self, tx, tenant, actor, "access_token.revoked", jti, serde_json::json!({}));
                tx.commit().await?;
                Ok(())
            }

            async fn revocations_after(&self, seq: i64, now: UnixTime) -> StoreResult<Vec<Revocation>> {
                let rows: Vec<(i64, String, String, i64, Option<i64>)> = sqlx::query_as(
                    "SELECT seq, kind, value, expires_at, issued_before FROM revocations WHERE seq > $1 AND expires_at > $2 ORDER BY seq",
                )
                .bind(seq)
                .bind(now.secs())
                .fetch_all(self.pool())
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(seq, kind, value, e, before)| Revocation {
                        seq,
                        kind,
                        value,
                        expires_at: UnixTime::from_secs(e),
                        issued_before: before.map(UnixTime::from_secs),
                    })
                    .collect())
            }

            async fn consent(&self, tenant: &TenantId, sub: &SubjectId, client: &ClientId) -> StoreResult<Option<Consent>> {
                let row: Option<(String, String, String, String)> = sqlx::query_as(
                    "SELECT scopes, claims, version, how FROM consents WHERE tenant_id = $1 AND sub = $2 AND client_id = $3",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .bind(client.as_str())
                .fetch_optional(self.pool())
                .await?;
                row.map(|(scopes, claims, version, how)| $crate::shared::consents::consent_of(&scopes, &claims, version, &how))
                    .transpose()
            }

            async fn save_consent(&self, tenant: &TenantId, sub: &SubjectId, client: &ClientId, consent: &Consent, actor: &Actor) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                let (scopes, claims) = (to_json_list(consent.scopes.iter()), to_json_list(consent.claims.iter()));
                let now = self.now();
                sqlx::query(
                    "INSERT INTO consents (tenant_id, sub, client_id, scopes, claims, granted_at, version, how) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (tenant_id, sub, client_id) DO UPDATE SET scopes = excluded.scopes, claims = excluded.claims,
                       granted_at = excluded.granted_at, version = excluded.version, how = excluded.how",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .bind(client.as_str())
                .bind(&scopes)
                .bind(&claims)
                .bind(now)
                .bind(&consent.version)
                .bind(consent.how.as_str())
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO consent_history (tenant_id, sub, client_id, scopes, claims, version, how, granted_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .bind(client.as_str())
                .bind(&scopes)
                .bind(&claims)
                .bind(&consent.version)
                .bind(consent.how.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                audit!(self, tx, tenant, actor, "consent.given", sub.as_str(), serde_json::json!({
                    "client_id": client.as_str(), "scopes": consent.scopes, "claims": consent.claims,
                    "version": consent.version, "how": consent.how.as_str(),
                }));
                tx.commit().await?;
                Ok(())
            }

            async fn reserve_attempts(&self, tenant: &TenantId, keys: &[&str], now: UnixTime, window: std::time::Duration)
                -> StoreResult<Vec<ReservedAttempt>> {
                Self::reserve_attempts_with(self.pool(), tenant, keys, now, window).await
            }

            async fn release_attempts(&self, tenant: &TenantId, reserved: &[(&str, ReservedAttempt)]) -> StoreResult<()> {
                // One statement per counter, each its own commit: a release never holds two row
                // locks at once, so it cannot wait in a cycle with a reservation.
                for (key, attempt) in reserved {
                    sqlx::query(
                        "UPDATE login_failures SET failures = failures - 1
                         WHERE tenant_id = $1 AND throttle_key = $2 AND window_start = $3 AND failures > 0",
                    )
                    .bind(tenant.as_str())
                    .bind(*key)
                    .bind(attempt.window_start.secs())
                    .execute(self.pool())
                    .await?;
                }
                Ok(())
            }

            async fn record_login_failure(&self, tenant: &TenantId, key: &str, now: UnixTime, window: std::time::Duration) -> StoreResult<i64> {
                let window_start_min = now.minus(window).secs();
                // A counter whose window has passed starts again at 1.
                let failures: i64 = sqlx::query_scalar(
                    "INSERT INTO login_failures (tenant_id, throttle_key, failures, window_start) VALUES ($1, $2, 1, $3)
                     ON CONFLICT (tenant_id, throttle_key) DO UPDATE SET
                       failures = CASE WHEN login_failures.window_start < $4 THEN 1 ELSE login_failures.failures + 1 END,
                       window_start = CASE WHEN login_failures.window_start < $4 THEN $3 ELSE login_failures.window_start END
                     RETURNING failures",
                )
                .bind(tenant.as_str())
                .bind(key)
                .bind(now.secs())
                .bind(window_start_min)
                .fetch_one(self.pool())
                .await?;
                Ok(failures)
            }

            async fn login_failures(&self, tenant: &TenantId, keys: &[&str], now: UnixTime, window: std::time::Duration)
                -> StoreResult<Vec<i64>> {
                if keys.is_empty() {
                    return Ok(Vec::new());
                }
                // Only placeholder numbers go into the text; the keys are bound.
                let placeholders: Vec<String> = (0..keys.len()).map(|i| format!("${}", i + 3)).collect();
                let sql = format!(
                    "SELECT throttle_key, failures FROM login_failures
                     WHERE tenant_id = $1 AND window_start >= $2 AND throttle_key IN ({})",
                    placeholders.join(", ")
                );
                let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant.as_str()).bind(now.minus(window).secs());
                for key in keys {
                    query = query.bind(*key);
                }
                let rows: Vec<(String, i64)> = query.fetch_all(self.pool()).await?;
                Ok(keys
                    .iter()
                    .map(|k| rows.iter().find(|(key, _)| key == k).map_or(0, |(_, n)| *n))
                    .collect())
            }

            async fn clear_login_failures(&self, tenant: &TenantId, key: &str) -> StoreResult<()> {
                sqlx::query("DELETE FROM login_failures WHERE tenant_id = $1 AND throttle_key = $2")
                    .bind(tenant.as_str())
                    .bind(key)
                    .execute(self.pool())
                    .await?;
                Ok(())
            }
        }

        impl $store {
            /// Counts an attempt against each of `keys`, through `executor` (the pool, or a
            /// transaction's connection so that the count commits with its change).
            pub(crate) async fn reserve_attempts_with<'c, E>(executor: E, tenant: &TenantId, keys: &[&str], now: UnixTime, window: std::time::Duration)
                -> StoreResult<Vec<ReservedAttempt>>
            where
                E: sqlx::Executor<'c, Database = $db>,
            {
                // Sorted, so every statement that locks several counters (PostgreSQL row locks)
                // takes them in one order and two attempts never wait on each other in a cycle.
                let mut sorted: Vec<&str> = keys.to_vec();
                sorted.sort_unstable();
                sorted.dedup();
                if sorted.is_empty() {
                    return Ok(Vec::new());
                }
                // Only placeholder numbers go into the text; the keys are bound. One multi-row
                // upsert: one round trip, and atomic for every key (PostgreSQL locks each row
                // it updates until the end of the statement; SQLite has one writer).
                let rows: Vec<String> = (0..sorted.len()).map(|i| format!("($1, ${}, 1, $2)", i + 4)).collect();
                let sql = format!(
                    "INSERT INTO login_failures (tenant_id, throttle_key, failures, window_start) VALUES {}
                     ON CONFLICT (tenant_id, throttle_key) DO UPDATE SET
                       failures = CASE WHEN login_failures.window_start < $3 THEN 1 ELSE login_failures.failures + 1 END,
                       window_start = CASE WHEN login_failures.window_start < $3 THEN $2 ELSE login_failures.window_start END
                     RETURNING throttle_key, failures, window_start",
                    rows.join(", ")
                );
                let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(tenant.as_str())
                    .bind(now.secs())
                    .bind(now.minus(window).secs());
                for key in &sorted {
                    query = query.bind(*key);
                }
                let counted: Vec<(String, i64, i64)> = query.fetch_all(executor).await?;
                keys.iter()
                    .map(|k| {
                        counted
                            .iter()
                            .find(|(key, _, _)| key == k)
                            .map(|(_, count, start)| ReservedAttempt { count: *count, window_start: UnixTime::from_secs(*start) })
                            .ok_or_else(|| StoreError::Corrupt("no counter came back for an attempt key".into()))
                    })
                    .collect()
            }

            async fn insert_code_row(&self, conn: &mut <$db as sqlx::Database>::Connection, tenant: &TenantId, c: &NewCode, now: i64)
                -> StoreResult<()> {
                let (grant_data, generation) = self.seal_grant(tenant, &c.grant_id, &c.grant_data)?;
                sqlx::query(
                    "INSERT INTO authorization_codes (tenant_id, code_hash, grant_id, client_id, grant_data, created_at, expires_at, sealed_gen)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(tenant.as_str())
                .bind(c.code_hash.as_str())
                .bind(&c.grant_id)
                .bind(c.client_id.as_str())
                .bind(grant_data)
                .bind(now)
                .bind(c.expires_at.secs())
                .bind(generation)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }

            async fn insert_refresh(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                t: &NewRefreshToken,
                now: i64,
            ) -> StoreResult<()> {
                let (grant_data, generation) = self.seal_grant(tenant, &t.grant_id, &t.grant_data)?;
                sqlx::query(
                    "INSERT INTO refresh_tokens (tenant_id, token_hash, family_id, grant_id, client_id, sub, grant_data, created_at,
                        expires_at, sid, ends_with_session, sealed_gen)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(tenant.as_str())
                .bind(t.token_hash.as_str())
                .bind(&t.family_id)
                .bind(&t.grant_id)
                .bind(t.client_id.as_str())
                .bind(&t.sub)
                .bind(grant_data)
                .bind(now)
                .bind(t.expires_at.secs())
                .bind(t.sid.as_deref())
                .bind(t.ends_with_session)
                .bind(generation)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }
        }
    };
}
