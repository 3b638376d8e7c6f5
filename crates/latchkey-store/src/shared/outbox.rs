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
                    "INSERT INTO outbox (tenant_id, id, channel, kind, sealed, next_attempt_at, expires_at, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(tenant.as_str())
                .bind(&message.id)
                .bind(message.channel.as_str())
                .bind(&message.kind)
                .bind(&message.sealed)
                .bind(message.not_before.secs())
                .bind(message.expires_at.secs())
                .bind(self.now())
                .execute(&mut *tx)
                .await?;
                audit!(self, tx, tenant, actor, "message.queued", &message.id,
                    serde_json::json!({"channel": message.channel.as_str(), "kind": message.kind}));
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::OutboxStore for $store {
            async fn claim_messages(
                &self,
                channel: latchkey_core::records::Channel,
                now: UnixTime,
                lease: std::time::Duration,
                limit: u32,
            ) -> StoreResult<Vec<latchkey_core::records::QueuedMessage>> {
                // One statement: on PostgreSQL a concurrent claimer waits for the row lock,
                // then re-checks next_attempt_at and skips the row; SQLite has one writer.
                let rows: Vec<$crate::model::OutboxRow> = sqlx::query_as(
                    "UPDATE outbox SET next_attempt_at = $3, attempts = attempts + 1
                     WHERE channel = $1 AND next_attempt_at <= $2 AND expires_at > $2 AND id IN (
                         SELECT id FROM outbox WHERE channel = $1 AND next_attempt_at <= $2 AND expires_at > $2
                         ORDER BY next_attempt_at, created_at LIMIT $4)
                     RETURNING tenant_id, id, channel, kind, sealed, attempts, expires_at",
                )
                .bind(channel.as_str())
                .bind(now.secs())
                .bind(now.plus(lease).secs())
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?;
                let mut claimed = rows.into_iter().map(TryInto::try_into).collect::<StoreResult<Vec<latchkey_core::records::QueuedMessage>>>()?;
                claimed.sort_by(|a, b| a.id.cmp(&b.id));
                Ok(claimed)
            }

            async fn finish_message(&self, tenant: &TenantId, id: &str, outcome: &latchkey_core::records::SendOutcome)
                -> StoreResult<()> {
                use latchkey_core::records::SendOutcome;
                let mut tx = self.begin_write().await?;
                match outcome {
                    SendOutcome::Retry { at, error } => {
                        sqlx::query("UPDATE outbox SET next_attempt_at = $3, last_error = $4 WHERE tenant_id = $1 AND id = $2")
                            .bind(tenant.as_str())
                            .bind(id)
                            .bind(at.secs())
                            .bind(error)
                            .execute(&mut *tx)
                            .await?;
                    }
                    SendOutcome::Sent | SendOutcome::Failed { .. } => {
                        let kind: Option<(String, String, i64)> = sqlx::query_as(
                            "DELETE FROM outbox WHERE tenant_id = $1 AND id = $2 RETURNING kind, channel, attempts",
                        )
                        .bind(tenant.as_str())
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                        let Some((kind, channel, attempts)) = kind else {
                            return Err(StoreError::NotFound(format!("queued message {id}")));
                        };
                        let (action, details) = match outcome {
                            SendOutcome::Failed { error } => ("message.failed",
                                serde_json::json!({"kind": kind, "channel": channel, "attempts": attempts, "error": error})),
                            _ => ("message.sent", serde_json::json!({"kind": kind, "channel": channel, "attempts": attempts})),
                        };
                        audit!(self, tx, tenant, &Actor::System, action, id, details);
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn drop_expired_messages(&self, now: UnixTime, limit: u32) -> StoreResult<Vec<(TenantId, String)>> {
                let mut tx = self.begin_write().await?;
                let rows: Vec<(String, String, String)> = sqlx::query_as(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE expires_at <= $1 LIMIT $2)
                     RETURNING tenant_id, id, kind",
                )
                .bind(now.secs())
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
                let mut dropped = Vec::with_capacity(rows.len());
                for (tenant_id, id, kind) in rows {
                    let tenant = TenantId::parse(&tenant_id).map_err(|e| StoreError::Corrupt(format!("outbox tenant: {e}")))?;
                    audit!(self, tx, &tenant, &Actor::System, "message.expired", &id, serde_json::json!({"kind": kind}));
                    dropped.push((tenant, kind));
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
