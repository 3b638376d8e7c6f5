/// The columns `SessionRow` reads.
macro_rules! session_columns {
    () => {
        "id_hash, sid, sub, auth_time, amr, acr, created_at, expires_at, last_active_at, remember, user_agent, ip"
    };
}

macro_rules! impl_session_store {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn fetch_session(&self, tenant: &TenantId, by_sid: bool, key: &str, now: UnixTime, idle: std::time::Duration)
                -> StoreResult<Option<BrowserSession>> {
                let sql = if by_sid {
                    concat!("SELECT ", session_columns!(), " FROM browser_sessions
                     WHERE tenant_id = $1 AND sid = $2 AND expires_at > $3 AND last_active_at > $4")
                } else {
                    concat!("SELECT ", session_columns!(), " FROM browser_sessions
                     WHERE tenant_id = $1 AND id_hash = $2 AND expires_at > $3 AND last_active_at > $4")
                };
                let row: Option<$crate::session_model::SessionRow> = sqlx::query_as(sql)
                    .bind(tenant.as_str())
                    .bind(key)
                    .bind(now.secs())
                    .bind(now.minus(idle).secs())
                    .fetch_optional(self.pool())
                    .await?;
                row.map(TryInto::try_into).transpose()
            }

            /// Ends one session inside `tx`: forgets its clients, queues their back-channel
            /// logouts, revokes the refresh tokens that end with it. Returns its clients and
            /// the grants revoked.
            /// Queues a back-channel logout token for `client_id` about the session `sid`.
            pub(crate) async fn queue_logout(
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                client_id: &str,
                sub: &str,
                sid: &str,
                now: UnixTime,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO logout_deliveries (tenant_id, jti, client_id, sub, sid, status, attempts, next_attempt_at, created_at)
                     VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6)",
                )
                .bind(tenant.as_str())
                .bind(latchkey_core::crypto::random::token_string::<16>())
                .bind(client_id)
                .bind(sub)
                .bind(sid)
                .bind(now.secs())
                .execute(&mut *conn)
                .await?;
                Ok(())
            }

            async fn end_one_session(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                sid: &str,
                sub: &str,
                how: &SessionEnd,
            ) -> StoreResult<(Vec<String>, Vec<String>)> {
                let clients: Vec<(String, bool)> = sqlx::query_as(
                    "DELETE FROM session_clients WHERE tenant_id = $1 AND sid = $2 RETURNING client_id, backchannel",
                )
                .bind(tenant.as_str())
                .bind(sid)
                .fetch_all(&mut *conn)
                .await?;
                for (client_id, _) in clients.iter().filter(|(_, backchannel)| *backchannel) {
                    Self::queue_logout(&mut *conn, tenant, client_id, sub, sid, how.now).await?;
                }
                let grants: Vec<String> = sqlx::query_scalar(
                    "UPDATE refresh_tokens SET revoked_at = $3
                     WHERE tenant_id = $1 AND sid = $2 AND ends_with_session AND revoked_at IS NULL RETURNING grant_id",
                )
                .bind(tenant.as_str())
                .bind(sid)
                .bind(how.now.secs())
                .fetch_all(&mut *conn)
                .await?;
                Ok((clients.into_iter().map(|(c, _)| c).collect(), grants))
            }

            /// A sign-in is use: the account's inactivity starts again, and a notice that it
            /// would be disabled or deleted no longer holds. First in the transaction, so that
            /// it waits for an account retention step that holds the user's row. Kept to the
            /// hour: the rules count days, and sign-ins of one account do not queue on its row.
            async fn signed_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                sub: &latchkey_core::domain::SubjectId,
                at: UnixTime,
            ) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE users SET last_active_at = $3, inactivity_notice_at = NULL
                     WHERE tenant_id = $1 AND sub = $2 AND (last_active_at <= $3 - 3600 OR inactivity_notice_at IS NOT NULL)",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .bind(at.secs())
                .execute(&mut *conn)
                .await?;
                // Read after any retention step that held the row has committed: a session is
                // not started for an account that step has just disabled or erased.
                let locked: Option<bool> = sqlx::query_scalar("SELECT locked FROM users WHERE tenant_id = $1 AND sub = $2")
                    .bind(tenant.as_str())
                    .bind(sub.as_str())
                    .fetch_optional(&mut *conn)
                    .await?;
                match locked {
                    Some(false) => Ok(()),
                    Some(true) => Err(StoreError::Invalid(format!("user {sub} is locked"))),
                    None => Err(StoreError::NotFound(format!("user {sub}"))),
                }
            }
        }

        #[async_trait::async_trait]
        impl $crate::SessionStore for $store {
            async fn create_browser_session(&self, tenant: &TenantId, s: &BrowserSession, actor: &Actor) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                Self::signed_in(&mut tx, tenant, &s.sub, s.created_at).await?;
                sqlx::query(
                    "INSERT INTO browser_sessions (tenant_id, id_hash, sid, sub, auth_time, amr, acr, created_at, expires_at,
                        last_active_at, remember, user_agent, ip)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(tenant.as_str())
                .bind(s.id_hash.as_str())
                .bind(&s.sid)
                .bind(s.sub.as_str())
                .bind(s.auth_time.secs())
                .bind(serde_json::Value::from(s.amr.clone()).to_string())
                .bind(&s.acr)
                .bind(s.created_at.secs())
                .bind(s.expires_at.secs())
                .bind(s.last_active_at.secs())
                .bind(s.remember)
                .bind(s.user_agent.as_deref())
                .bind(s.ip.as_deref())
                .execute(&mut *tx)
                .await?;
                audit!(self, tx, tenant, actor, "session.started", s.sub.as_str(),
                    serde_json::json!({"sid": s.sid, "amr": s.amr, "acr": s.acr, "remember": s.remember}));
                tx.commit().await?;
                Ok(())
            }

            async fn reauthenticate_browser_session(&self, tenant: &TenantId, old_id_hash: &TokenHash, s: &BrowserSession, actor: &Actor)
                -> StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                Self::signed_in(&mut tx, tenant, &s.sub, s.last_active_at).await?;
                let done = sqlx::query(
                    "UPDATE browser_sessions SET id_hash = $3, auth_time = $4, amr = $5, acr = $6, expires_at = $7,
                        last_active_at = $8, remember = $9, user_agent = $10, ip = $11
                     WHERE tenant_id = $1 AND id_hash = $2 AND sub = $12 AND sid = $13",
                )
                .bind(tenant.as_str())
                .bind(old_id_hash.as_str())
                .bind(s.id_hash.as_str())
                .bind(s.auth_time.secs())
                .bind(serde_json::Value::from(s.amr.clone()).to_string())
                .bind(&s.acr)
                .bind(s.expires_at.secs())
                .bind(s.last_active_at.secs())
                .bind(s.remember)
                .bind(s.user_agent.as_deref())
                .bind(s.ip.as_deref())
                .bind(s.sub.as_str())
                .bind(&s.sid)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                audit!(self, tx, tenant, actor, "session.reauthenticated", s.sub.as_str(),
                    serde_json::json!({"sid": s.sid, "amr": s.amr, "acr": s.acr}));
                tx.commit().await?;
                Ok(true)
            }

            async fn browser_session(&self, tenant: &TenantId, id_hash: &TokenHash, now: UnixTime, idle: std::time::Duration)
                -> StoreResult<Option<BrowserSession>> {
                self.fetch_session(tenant, false, id_hash.as_str(), now, idle).await
            }

            async fn browser_session_by_sid(&self, tenant: &TenantId, sid: &str, now: UnixTime, idle: std::time::Duration)
                -> StoreResult<Option<BrowserSession>> {
                self.fetch_session(tenant, true, sid, now, idle).await
            }

            async fn touch_browser_session(&self, tenant: &TenantId, sid: &str, now: UnixTime) -> StoreResult<()> {
                sqlx::query("UPDATE browser_sessions SET last_active_at = $3 WHERE tenant_id = $1 AND sid = $2 AND last_active_at < $3")
                    .bind(tenant.as_str())
                    .bind(sid)
                    .bind(now.secs())
                    .execute(self.pool())
                    .await?;
                Ok(())
            }

            async fn record_session_client(&self, tenant: &TenantId, sid: &str, client: &ClientId, backchannel: bool, now: UnixTime)
                -> StoreResult<()> {
                sqlx::query($crate::session_model::RECORD_SESSION_CLIENT)
                .bind(tenant.as_str())
                .bind(sid)
                .bind(client.as_str())
                .bind(backchannel)
                .bind(now.secs())
                .execute(self.pool())
                .await?;
                Ok(())
            }

            async fn user_sessions(&self, tenant: &TenantId, sub: &SubjectId, now: UnixTime, idle: std::time::Duration)
                -> StoreResult<Vec<SessionInfo>> {
                let rows: Vec<$crate::session_model::SessionRow> = sqlx::query_as(concat!(
                    "SELECT ", session_columns!(), " FROM browser_sessions
                     WHERE tenant_id = $1 AND sub = $2 AND expires_at > $3 AND last_active_at > $4
                     ORDER BY created_at DESC, sid"
                ))
                    .bind(tenant.as_str())
                    .bind(sub.as_str())
                    .bind(now.secs())
                    .bind(now.minus(idle).secs())
                    .fetch_all(self.pool())
                    .await?;
                let clients: Vec<(String, String)> = sqlx::query_as(
                    "SELECT c.sid, c.client_id FROM session_clients c JOIN browser_sessions s
                       ON s.tenant_id = c.tenant_id AND s.sid = c.sid
                     WHERE c.tenant_id = $1 AND s.sub = $2 ORDER BY c.first_at, c.client_id",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .fetch_all(self.pool())
                .await?;
                rows.into_iter()
                    .map(|row| {
                        let session: BrowserSession = row.try_into()?;
                        let mine = clients
                            .iter()
                            .filter(|(sid, _)| *sid == session.sid)
                            .map(|(_, c)| ClientId::parse(c).map_err(|e| StoreError::Corrupt(format!("session client: {e}"))))
                            .collect::<StoreResult<Vec<_>>>()?;
                        Ok(SessionInfo { session, clients: mine })
                    })
                    .collect()
            }

            async fn end_browser_sessions(&self, tenant: &TenantId, which: &SessionSelector, how: &SessionEnd, actor: &Actor) -> StoreResult<SessionsEnded> {
                let mut tx = self.begin_write().await?;
                let out = self.end_browser_sessions_in(&mut tx, tenant, which, how, actor).await?;
                tx.commit().await?;
                Ok(out)
            }

            async fn claim_logout_deliveries(&self, now: UnixTime, lease: std::time::Duration, limit: u32)
                -> StoreResult<Vec<LogoutDelivery>> {
                // One statement: on PostgreSQL a concurrent claimer waits for the row lock,
                // then re-checks next_attempt_at and skips the row; SQLite has one writer.
                let rows: Vec<$crate::session_model::DeliveryRow> = sqlx::query_as(
                    "UPDATE logout_deliveries SET next_attempt_at = $2
                     WHERE status = 'pending' AND next_attempt_at <= $1 AND jti IN (
                         SELECT jti FROM logout_deliveries WHERE status = 'pending' AND next_attempt_at <= $1
                         ORDER BY next_attempt_at LIMIT $3)
                     RETURNING tenant_id, jti, client_id, sub, sid, attempts",
                )
                .bind(now.secs())
                .bind(now.plus(lease).secs())
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn finish_logout_delivery(&self, tenant: &TenantId, jti: &str, outcome: &DeliveryOutcome, now: UnixTime)
                -> StoreResult<()> {
                let (status, next, error, finished) = match outcome {
                    DeliveryOutcome::Delivered => ("delivered", now, None, Some(now.secs())),
                    DeliveryOutcome::Retry { at, error } => ("pending", *at, Some(error.as_str()), None),
                    DeliveryOutcome::Failed { error } => ("failed", now, Some(error.as_str()), Some(now.secs())),
                };
                sqlx::query(
                    "UPDATE logout_deliveries SET status = $3, attempts = attempts + 1, next_attempt_at = $4, last_error = $5,
                        finished_at = $6
                     WHERE tenant_id = $1 AND jti = $2 AND status = 'pending'",
                )
                .bind(tenant.as_str())
                .bind(jti)
                .bind(status)
                .bind(next.secs())
                .bind(error)
                .bind(finished)
                .execute(self.pool())
                .await?;
                Ok(())
            }

            async fn logout_deliveries(&self, tenant: &TenantId, sub: &SubjectId) -> StoreResult<Vec<DeliveryRecord>> {
                let rows: Vec<(String, String, String, String, i64, Option<String>)> = sqlx::query_as(
                    "SELECT jti, client_id, sid, status, attempts, last_error FROM logout_deliveries
                     WHERE tenant_id = $1 AND sub = $2 ORDER BY created_at DESC, jti",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .fetch_all(self.pool())
                .await?;
                rows.into_iter()
                    .map(|(jti, client_id, sid, status, attempts, last_error)| {
                        let client_id = ClientId::parse(&client_id)
                            .map_err(|e| StoreError::Corrupt(format!("delivery client: {e}")))?;
                        Ok(DeliveryRecord { jti, client_id, sid, status, attempts, last_error })
                    })
                    .collect()
            }
        }

        impl $store {
            pub(crate) async fn end_browser_sessions_in(&self, tx: &mut <$db as sqlx::Database>::Connection, tenant: &TenantId, which: &SessionSelector, how: &SessionEnd, actor: &Actor) -> StoreResult<SessionsEnded> {
                let ended: Vec<(String, String, i64)> = match which {
                    SessionSelector::IdHash(hash) => {
                        sqlx::query_as("DELETE FROM browser_sessions WHERE tenant_id = $1 AND id_hash = $2 RETURNING sid, sub, expires_at")
                            .bind(tenant.as_str())
                            .bind(hash.as_str())
                            .fetch_all(&mut *tx)
                            .await?
                    }
                    SessionSelector::Sid(sid) => {
                        sqlx::query_as("DELETE FROM browser_sessions WHERE tenant_id = $1 AND sid = $2 RETURNING sid, sub, expires_at")
                            .bind(tenant.as_str())
                            .bind(sid)
                            .fetch_all(&mut *tx)
                            .await?
                    }
                    // A sid is never empty, so "" excludes nothing.
                    SessionSelector::User { sub, except_sid } => {
                        sqlx::query_as("DELETE FROM browser_sessions WHERE tenant_id = $1 AND sub = $2 AND sid <> $3 RETURNING sid, sub, expires_at")
                            .bind(tenant.as_str())
                            .bind(sub.as_str())
                            .bind(except_sid.as_deref().unwrap_or(""))
                            .fetch_all(&mut *tx)
                            .await?
                    }
                };
                let mut result = SessionsEnded::default();
                for (sid, sub, expires_at) in ended {
                    // Forward-auth cookies name the session: every node refuses them once the
                    // revocation poll brings this (their own life ends with the session's).
                    sqlx::query("INSERT INTO revocations (tenant_id, kind, value, expires_at) VALUES ($1, 'session', $2, $3)")
                        .bind(tenant.as_str())
                        .bind(&sid)
                        .bind(expires_at)
                        .execute(&mut *tx)
                        .await?;
                    let (clients, grants) = self.end_one_session(&mut *tx, tenant, &sid, &sub, how).await?;
                    audit!(self, tx, tenant, actor, "session.ended", &sub,
                        serde_json::json!({"sid": sid, "reason": how.reason, "clients": clients}));
                    result.revoked_grants.extend(grants);
                    let sub = SubjectId::parse(&sub).map_err(|e| StoreError::Corrupt(format!("session sub: {e}")))?;
                    let clients = clients
                        .iter()
                        .map(|c| ClientId::parse(c).map_err(|e| StoreError::Corrupt(format!("session client: {e}"))))
                        .collect::<StoreResult<Vec<_>>>()?;
                    result.sessions.push(EndedSession { sid, sub, clients });
                }
                if let (true, SessionSelector::User { sub, .. }) = (how.revoke_all_refresh_tokens, which) {
                    let grants: Vec<String> = sqlx::query_scalar(
                        "UPDATE refresh_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND sub = $2 AND revoked_at IS NULL RETURNING grant_id",
                    )
                    .bind(tenant.as_str())
                    .bind(sub.as_str())
                    .bind(how.now.secs())
                    .fetch_all(&mut *tx)
                    .await?;
                    result.revoked_grants.extend(grants);
                }
                result.revoked_grants.sort();
                result.revoked_grants.dedup();
                for grant in &result.revoked_grants {
                    sqlx::query("INSERT INTO revocations (tenant_id, kind, value, expires_at) VALUES ($1, 'grant', $2, $3)")
                        .bind(tenant.as_str())
                        .bind(grant)
                        .bind(how.revoke_until.secs())
                        .execute(&mut *tx)
                        .await?;
                }
                if !result.revoked_grants.is_empty() {
                    audit!(self, tx, tenant, actor, "grant.revoked", "sessions",
                        serde_json::json!({"grants": result.revoked_grants.len(), "reason": how.reason}));
                }
                Ok(result)
            }
        }
    };
}
