//! The outbox of emails and text messages: queued inside a change's transaction, claimed
//! for a lease by a sender on any node, deleted once sent, given up or expired.

macro_rules! impl_outbox_store {
    ($store:ty, $db:ty) => {
        impl $store {
            pub(crate) async fn enqueue_message_in(
                &self,
                tx: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                message: &latchkey_core::records::NewMessage,
                actor: &Actor,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO outbox (tenant_id, id, channel, kind, sealed, next_attempt_at, expires_at, created_at, recipient_hash)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(tenant.as_str())
                .bind(&message.id)
                .bind(message.channel.as_str())
                .bind(&message.kind)
                .bind(&message.sealed)
                .bind(message.not_before.secs())
                .bind(message.expires_at.secs())
                .bind(self.now())
                .bind(message.recipient_hash.as_deref())
                .execute(&mut *tx)
                .await?;
                audit!(self, tx, tenant, actor, "message.queued", &message.id,
                    serde_json::json!({"channel": message.channel.as_str(), "kind": message.kind}));
                Ok(())
            }
        }

        impl $store {
            pub(crate) async fn create_one_time_token_in(
                &self,
                tx: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                token: &latchkey_core::records::NewOneTimeToken,
            ) -> StoreResult<()> {
                Self::ensure_exists(&mut *tx, tenant, $crate::shared::AccessEnd::User(&token.sub)).await?;
                // The detail is what the token is about: the address being verified.
                let at = $crate::shared::personal_data::place("one_time_tokens", "detail", &[tenant.as_str(), token.hash.as_str()]);
                let (detail, generation) = self.seal_personal(&at, &token.detail)?;
                sqlx::query(
                    // A token of the same purpose and subject again (a known browser seen
                    // again after it was retired or expired) starts afresh; tokens are
                    // random, so nothing else ever meets an existing row.
                    "INSERT INTO one_time_tokens (tenant_id, token_hash, purpose, sub, detail, created_at, expires_at, sealed_gen)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (tenant_id, token_hash) DO UPDATE SET
                       used_at = NULL, created_at = excluded.created_at, expires_at = excluded.expires_at, detail = excluded.detail,
                       sealed_gen = excluded.sealed_gen
                     WHERE one_time_tokens.purpose = excluded.purpose AND one_time_tokens.sub = excluded.sub",
                )
                .bind(tenant.as_str())
                .bind(token.hash.as_str())
                .bind(&token.purpose)
                .bind(token.sub.as_str())
                .bind(detail)
                .bind(self.now())
                .bind(token.expires_at.secs())
                .bind(generation)
                .execute(&mut *tx)
                .await?;
                Ok(())
            }

            pub(crate) async fn consume_one_time_token_in(
                &self,
                tx: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                hash: &TokenHash,
                purpose: &str,
                now: UnixTime,
            ) -> StoreResult<Option<latchkey_core::records::OneTimeToken>> {
                let row: Option<$crate::model::OneTimeTokenRow> = sqlx::query_as(
                    "UPDATE one_time_tokens SET used_at = $4
                     WHERE tenant_id = $1 AND token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $4
                     RETURNING token_hash, purpose, sub, detail, created_at, expires_at, sealed_gen",
                )
                .bind(tenant.as_str())
                .bind(hash.as_str())
                .bind(purpose)
                .bind(now.secs())
                .fetch_optional(&mut *tx)
                .await?;
                row.map(|r| self.one_time_token_from(tenant, r)).transpose()
            }

            pub(crate) fn one_time_token_from(&self, tenant: &TenantId, row: $crate::model::OneTimeTokenRow)
                -> StoreResult<latchkey_core::records::OneTimeToken> {
                let at = $crate::shared::personal_data::place("one_time_tokens", "detail", &[tenant.as_str(), &row.token_hash]);
                let detail = self.open_personal(row.sealed_gen, &at, row.detail.clone())?;
                row.into_token(detail)
            }

            pub(crate) async fn retire_one_time_tokens_in(
                tx: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                sub: &SubjectId,
                purpose: &str,
                now: UnixTime,
            ) -> StoreResult<u64> {
                let done = sqlx::query(
                    "UPDATE one_time_tokens SET used_at = $4
                     WHERE tenant_id = $1 AND sub = $2 AND purpose = $3 AND used_at IS NULL",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .bind(purpose)
                .bind(now.secs())
                .execute(&mut *tx)
                .await?;
                Ok(done.rows_affected())
            }
        }

        #[async_trait::async_trait]
        impl $crate::OutboxStore for $store {
            async fn peek_one_time_token(&self, tenant: &TenantId, hash: &TokenHash, purpose: &str, now: UnixTime)
                -> StoreResult<Option<latchkey_core::records::OneTimeToken>> {
                let row: Option<$crate::model::OneTimeTokenRow> = sqlx::query_as(
                    "SELECT token_hash, purpose, sub, detail, created_at, expires_at, sealed_gen FROM one_time_tokens
                     WHERE tenant_id = $1 AND token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $4",
                )
                .bind(tenant.as_str())
                .bind(hash.as_str())
                .bind(purpose)
                .bind(now.secs())
                .fetch_optional(self.pool())
                .await?;
                row.map(|r| self.one_time_token_from(tenant, r)).transpose()
            }

            async fn consume_one_time_token(&self, tenant: &TenantId, hash: &TokenHash, purpose: &str, now: UnixTime)
                -> StoreResult<Option<latchkey_core::records::OneTimeToken>> {
                let mut tx = self.begin_write().await?;
                let token = self.consume_one_time_token_in(&mut tx, tenant, hash, purpose, now).await?;
                tx.commit().await?;
                Ok(token)
            }

            async fn pending_one_time_token(&self, tenant: &TenantId, sub: &SubjectId, purpose: &str, now: UnixTime)
                -> StoreResult<Option<latchkey_core::records::OneTimeToken>> {
                let row: Option<$crate::model::OneTimeTokenRow> = sqlx::query_as(
                    "SELECT token_hash, purpose, sub, detail, created_at, expires_at, sealed_gen FROM one_time_tokens
                     WHERE tenant_id = $1 AND sub = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $4
                     ORDER BY created_at DESC LIMIT 1",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .bind(purpose)
                .bind(now.secs())
                .fetch_optional(self.pool())
                .await?;
                row.map(|r| self.one_time_token_from(tenant, r)).transpose()
            }

            async fn count_one_time_tokens(&self, tenant: &TenantId, sub: &SubjectId, purpose: &str, since: UnixTime)
                -> StoreResult<u32> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM one_time_tokens WHERE tenant_id = $1 AND sub = $2 AND purpose = $3 AND created_at >= $4",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .bind(purpose)
                .bind(since.secs())
                .fetch_one(self.pool())
                .await?;
                Ok(u32::try_from(n).unwrap_or(u32::MAX))
            }

            async fn claim_messages(
                &self,
                channel: latchkey_core::records::Channel,
                now: UnixTime,
                lease: std::time::Duration,
                limit: u32,
            ) -> StoreResult<Vec<latchkey_core::records::QueuedMessage>> {
                // One statement: on PostgreSQL a concurrent claimer waits for the row lock,
                // then re-checks the outer conditions and skips the row; SQLite has one writer.
                let rows: Vec<$crate::model::OutboxRow> = sqlx::query_as(
                    "UPDATE outbox SET next_attempt_at = $3, attempts = attempts + 1
                     WHERE channel = $1 AND next_attempt_at <= $2 AND expires_at > $2 AND (tenant_id, id) IN (
                         SELECT tenant_id, id FROM outbox WHERE channel = $1 AND next_attempt_at <= $2 AND expires_at > $2
                         ORDER BY next_attempt_at, created_at LIMIT $4)
                     RETURNING tenant_id, id, channel, kind, sealed, attempts, expires_at",
                )
                .bind(channel.as_str())
                .bind(now.secs())
                .bind(now.plus(lease).secs())
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn finish_message(&self, message: &latchkey_core::records::QueuedMessage, outcome: &latchkey_core::records::SendOutcome)
                -> StoreResult<()> {
                use latchkey_core::records::SendOutcome;
                let lost = || StoreError::NotFound(format!("the claim on queued message {}", message.id));
                let (tenant, id, claim) = (&message.tenant, message.id.as_str(), i64::from(message.claim));
                let mut tx = self.begin_write().await?;
                match outcome {
                    SendOutcome::Retry { at, .. } | SendOutcome::Held { at } => {
                        let (error, undo) = match outcome {
                            SendOutcome::Retry { error, .. } => (Some(error.as_str()), 0i64),
                            _ => (None, 1),
                        };
                        let done = sqlx::query(
                            "UPDATE outbox SET next_attempt_at = $4, last_error = COALESCE($5, last_error), attempts = attempts - $6
                             WHERE tenant_id = $1 AND id = $2 AND attempts = $3",
                        )
                        .bind(tenant.as_str())
                        .bind(id)
                        .bind(claim)
                        .bind(at.secs())
                        .bind(error)
                        .bind(undo)
                        .execute(&mut *tx)
                        .await?;
                        if done.rows_affected() == 0 {
                            return Err(lost());
                        }
                    }
                    SendOutcome::Sent | SendOutcome::Failed { .. } => {
                        let kind: Option<(String, String)> = sqlx::query_as(
                            "DELETE FROM outbox WHERE tenant_id = $1 AND id = $2 AND attempts = $3 RETURNING kind, channel",
                        )
                        .bind(tenant.as_str())
                        .bind(id)
                        .bind(claim)
                        .fetch_optional(&mut *tx)
                        .await?;
                        let Some((kind, channel)) = kind else { return Err(lost()) };
                        let (action, details) = match outcome {
                            SendOutcome::Failed { error } => ("message.failed",
                                serde_json::json!({"kind": kind, "channel": channel, "attempts": claim, "error": error})),
                            _ => ("message.sent", serde_json::json!({"kind": kind, "channel": channel, "attempts": claim})),
                        };
                        audit!(self, tx, tenant, &Actor::System, action, id, details);
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn drop_expired_messages(&self, now: UnixTime, limit: u32)
                -> StoreResult<Vec<(TenantId, latchkey_core::records::Channel, String)>> {
                let mut tx = self.begin_write().await?;
                let rows: Vec<(String, String, String, String)> = sqlx::query_as(
                    "DELETE FROM outbox WHERE expires_at <= $1 AND (tenant_id, id) IN (
                         SELECT tenant_id, id FROM outbox WHERE expires_at <= $1 LIMIT $2)
                     RETURNING tenant_id, id, channel, kind",
                )
                .bind(now.secs())
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
                let mut dropped = Vec::with_capacity(rows.len());
                for (tenant_id, id, channel, kind) in rows {
                    let tenant = TenantId::parse(&tenant_id).map_err(|e| StoreError::Corrupt(format!("outbox tenant: {e}")))?;
                    let channel = latchkey_core::records::Channel::parse(&channel)
                        .ok_or_else(|| StoreError::Corrupt(format!("outbox channel `{channel}`")))?;
                    audit!(self, tx, &tenant, &Actor::System, "message.expired", &id, serde_json::json!({"kind": kind}));
                    dropped.push((tenant, channel, kind));
                }
                tx.commit().await?;
                Ok(dropped)
            }

            async fn waiting_messages(&self) -> StoreResult<Vec<(latchkey_core::records::Channel, u64)>> {
                let rows: Vec<(String, i64)> = sqlx::query_as("SELECT channel, COUNT(*) FROM outbox GROUP BY channel ORDER BY channel")
                    .fetch_all(self.pool())
                    .await?;
                rows.into_iter()
                    .map(|(c, n)| {
                        let channel = latchkey_core::records::Channel::parse(&c)
                            .ok_or_else(|| StoreError::Corrupt(format!("outbox channel `{c}`")))?;
                        Ok((channel, u64::try_from(n).unwrap_or(0)))
                    })
                    .collect()
            }
        }
    };
}
