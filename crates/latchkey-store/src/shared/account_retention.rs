//! The retention of accounts (`[retention] inactive_accounts`, `unverified_sign_ups`):
//! which accounts are unused or were never verified, and, in each step's transaction, the
//! check that the rule still holds with the user's row held.

/// SQL: the user `u` has no session used, no refresh token issued and no API key used at or
/// after the parameter `$since`.
macro_rules! unused_since {
    ($since:literal) => {
        concat!(
            "NOT EXISTS (SELECT 1 FROM browser_sessions s WHERE s.sub = u.sub AND s.tenant_id = u.tenant_id AND s.last_active_at >= ",
            $since,
            ") AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.sub = u.sub AND r.tenant_id = u.tenant_id AND r.created_at >= ",
            $since,
            ") AND NOT EXISTS (SELECT 1 FROM api_keys k WHERE k.tenant_id = u.tenant_id AND k.owner_sub = u.sub AND k.last_used_at >= ",
            $since,
            ")"
        )
    };
}

macro_rules! impl_account_retention {
    ($store:ty, $db:ty) => {
        impl $store {
            pub(crate) async fn inactive_accounts_page(
                &self,
                before: UnixTime,
                after: Option<&$crate::InactiveAccount>,
                limit: u32,
            ) -> StoreResult<Vec<$crate::InactiveAccount>> {
                let (after_at, after_tenant, after_sub) = match after {
                    Some(a) => (a.last_sign_in.secs(), a.tenant.as_str(), a.sub.as_str()),
                    None => (i64::MIN, "", ""),
                };
                // The last sign-in narrows through its index; sessions used and tokens
                // refreshed since are read per account, through theirs.
                type Row = (String, String, i64, Option<i64>, Option<i64>, Option<i64>, Option<i64>);
                let rows: Vec<Row> = sqlx::query_as(
                    "SELECT u.tenant_id, u.sub, u.last_active_at, u.inactivity_notice_at,
                        (SELECT MAX(s.last_active_at) FROM browser_sessions s WHERE s.sub = u.sub AND s.tenant_id = u.tenant_id),
                        (SELECT MAX(r.created_at) FROM refresh_tokens r WHERE r.sub = u.sub AND r.tenant_id = u.tenant_id),
                        (SELECT MAX(k.last_used_at) FROM api_keys k WHERE k.tenant_id = u.tenant_id AND k.owner_sub = u.sub)
                     FROM users u
                     WHERE u.last_active_at < $1 AND NOT u.locked AND NOT u.service_account
                       AND (u.last_active_at, u.tenant_id, u.sub) > ($2, $3, $4)
                     ORDER BY u.last_active_at, u.tenant_id, u.sub
                     LIMIT $5",
                )
                .bind(before.secs())
                .bind(after_at)
                .bind(after_tenant)
                .bind(after_sub)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?;
                rows.into_iter()
                    .map(|(tenant, sub, signed_in, notice, session, refresh, api_key)| {
                        let last_use = [session, refresh, api_key].into_iter().flatten().fold(signed_in, i64::max);
                        Ok($crate::InactiveAccount {
                            tenant: TenantId::parse(&tenant).map_err(|e| StoreError::Corrupt(format!("tenant id: {e}")))?,
                            sub: SubjectId::parse(&sub).map_err(|e| StoreError::Corrupt(format!("subject id: {e}")))?,
                            last_sign_in: UnixTime::from_secs(signed_in),
                            last_use: UnixTime::from_secs(last_use),
                            notice_at: notice.map(UnixTime::from_secs),
                        })
                    })
                    .collect()
            }

            pub(crate) async fn record_account_use_at(&self, tenant: &TenantId, sub: &SubjectId, at: UnixTime) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "UPDATE users SET last_active_at = $3,
                        inactivity_notice_at = CASE WHEN inactivity_notice_at <= $3 THEN NULL ELSE inactivity_notice_at END
                     WHERE tenant_id = $1 AND sub = $2 AND (last_active_at < $3 OR inactivity_notice_at <= $3)",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .bind(at.secs())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            pub(crate) async fn unverified_sign_ups_page(
                &self,
                before: UnixTime,
                after: Option<&$crate::UnverifiedSignUp>,
                limit: u32,
            ) -> StoreResult<Vec<$crate::UnverifiedSignUp>> {
                let (after_at, after_tenant, after_sub) = match after {
                    Some(a) => (a.created_at.secs(), a.tenant.as_str(), a.sub.as_str()),
                    None => (i64::MIN, "", ""),
                };
                // Unused for as long, too: an account in use keeps its unverified address.
                let rows: Vec<(String, String, i64)> = sqlx::query_as(concat!(
                    "SELECT u.tenant_id, u.sub, u.created_at FROM users u
                     WHERE u.unverified_sign_up AND u.created_at < $1 AND NOT u.email_verified AND u.email IS NOT NULL
                       AND u.last_active_at < $1 AND ",
                    unused_since!("$1"),
                    " AND (u.created_at, u.tenant_id, u.sub) > ($2, $3, $4)
                     ORDER BY u.created_at, u.tenant_id, u.sub
                     LIMIT $5",
                ))
                .bind(before.secs())
                .bind(after_at)
                .bind(after_tenant)
                .bind(after_sub)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?;
                rows.into_iter()
                    .map(|(tenant, sub, created_at)| {
                        Ok($crate::UnverifiedSignUp {
                            tenant: TenantId::parse(&tenant).map_err(|e| StoreError::Corrupt(format!("tenant id: {e}")))?,
                            sub: SubjectId::parse(&sub).map_err(|e| StoreError::Corrupt(format!("subject id: {e}")))?,
                            created_at: UnixTime::from_secs(created_at),
                        })
                    })
                    .collect()
            }

            /// A no-op update: it takes the row's lock (PostgreSQL; SQLite's write lock is
            /// held already) and matches only while the rule holds.
            pub(crate) async fn account_retention_applies_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                sub: &SubjectId,
                rule: $crate::AccountRetention,
            ) -> StoreResult<bool> {
                let done = match rule {
                    $crate::AccountRetention::Inactive { notice_at } => sqlx::query(concat!(
                        "UPDATE users AS u SET inactivity_notice_at = inactivity_notice_at
                         WHERE u.tenant_id = $1 AND u.sub = $2 AND u.inactivity_notice_at = $3 AND u.last_active_at < $3
                           AND NOT u.locked AND NOT u.service_account AND ",
                        unused_since!("$3"),
                    ))
                    .bind(tenant.as_str())
                    .bind(sub.as_str())
                    .bind(notice_at.secs())
                    .execute(&mut *conn)
                    .await?,
                    $crate::AccountRetention::UnverifiedSignUp { created_before } => sqlx::query(concat!(
                        "UPDATE users AS u SET unverified_sign_up = unverified_sign_up
                         WHERE u.tenant_id = $1 AND u.sub = $2 AND u.unverified_sign_up AND u.created_at < $3
                           AND NOT u.email_verified AND u.email IS NOT NULL AND u.last_active_at < $3 AND ",
                        unused_since!("$3"),
                    ))
                    .bind(tenant.as_str())
                    .bind(sub.as_str())
                    .bind(created_before.secs())
                    .execute(&mut *conn)
                    .await?,
                };
                Ok(done.rows_affected() == 1)
            }

            pub(crate) async fn record_inactivity_notice_in(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                sub: &SubjectId,
                last_sign_in: UnixTime,
                at: UnixTime,
                details: serde_json::Value,
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE users SET inactivity_notice_at = $4
                     WHERE tenant_id = $1 AND sub = $2 AND last_active_at = $3 AND inactivity_notice_at IS NULL
                       AND NOT locked AND NOT service_account",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .bind(last_sign_in.secs())
                .bind(at.secs())
                .execute(&mut *conn)
                .await?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                let tx = conn;
                audit!(self, tx, tenant, Actor::System, "user.inactivity_notice", sub.as_str(), details);
                Ok(true)
            }
        }
    };
}
