//! The audit log's two sides in the store.
//!
//! Writing: `audit!` (in the transaction of the change) stores the entry pseudonymised and
//! sealed under its subject's key, with no position yet. Taking the chain's lock there would
//! make every audited transaction wait on every other and deadlock those that lock rows after
//! their audit, so positions are given afterwards by the chain's one writer,
//! `seal_audit_chain`: it locks the tenant's chain row, numbers the waiting entries in the
//! order they were stored, links each to the one before it and, when one is due, appends a
//! signed checkpoint of the head.
//!
//! Reading: entries are opened with their subject's key; an entry whose key erasure deleted
//! comes back with its pseudonyms and no details.

use latchkey_core::crypto::{AuditKeys, ChainLink, CheckpointStatement};

/// The target checkpoints are recorded against.
/// Targets that are no person begin with `#`, which no subject id contains, so erasing a
/// person never touches them.
pub const CHECKPOINT_TARGET: &str = "#audit-chain";
/// The action of a checkpoint entry.
pub const CHECKPOINT_ACTION: &str = "audit.checkpoint";
/// How many waiting entries one sealing transaction numbers.
pub(crate) const SEAL_BATCH: i64 = 500;

/// The personal part of an entry, sealed.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct SealedPart {
    pub actor: String,
    pub target: String,
    pub details: serde_json::Value,
}

/// What an entry's ciphertext is bound to (its position is not known when it is sealed).
pub(crate) fn sealed_aad(tenant: &str, actor_ref: &str, target_ref: &str, action: &str, at: i64) -> Vec<u8> {
    format!("{tenant}\n{actor_ref}\n{target_ref}\n{action}\n{at}").into_bytes()
}

/// An entry ready to store: pseudonymised and sealed.
pub(crate) struct PreparedEntry {
    pub at: i64,
    pub action: String,
    pub actor_ref: String,
    pub target_ref: String,
    pub sealed: String,
    pub nonce: String,
    pub entry_mac: String,
}

impl PreparedEntry {
    fn link<'a>(&'a self, tenant: &'a str, seq: i64) -> ChainLink<'a> {
        ChainLink {
            tenant,
            seq,
            at: self.at,
            action: &self.action,
            actor_ref: &self.actor_ref,
            target_ref: &self.target_ref,
            sealed: &self.sealed,
        }
    }

    /// Whether the entry is as it was written (its write-time MAC holds).
    pub(crate) fn intact(&self, keys: &AuditKeys, tenant: &str) -> bool {
        keys.verify_entry_mac(&self.nonce, &self.link(tenant, 0), &self.entry_mac)
    }
}

/// An entry ready to store. `salt` is `None` for a subject that was erased: the entry is
/// kept (its action, time and pseudonyms) without content.
pub(crate) fn prepare_entry(
    keys: &AuditKeys,
    salt: Option<&str>,
    tenant: &str,
    at: i64,
    part: &SealedPart,
    action: &str,
) -> crate::StoreResult<PreparedEntry> {
    let actor_ref = keys.pseudonym(tenant, &part.actor);
    let target_ref = keys.pseudonym(tenant, &part.target);
    let sealed = match salt {
        Some(salt) => {
            let plain =
                serde_json::to_vec(part).map_err(|e| crate::StoreError::Invalid(format!("audit details: {e}")))?;
            keys.seal(salt, &plain, &sealed_aad(tenant, &actor_ref, &target_ref, action, at))
                .map_err(|e| crate::StoreError::Corrupt(format!("audit subject key: {e}")))?
        }
        None => String::new(),
    };
    let mut entry = PreparedEntry {
        at,
        action: action.to_owned(),
        actor_ref,
        target_ref,
        sealed,
        nonce: latchkey_core::crypto::random::identifier::<16>(),
        entry_mac: String::new(),
    };
    entry.entry_mac = keys.entry_mac(&entry.nonce, &entry.link(tenant, 0));
    Ok(entry)
}

/// Opens an entry's sealed part; `None` when its subject was erased (no salt, or no
/// content) or it does not open (altered: `audit verify` names it), so one such entry never
/// hides the others.
pub(crate) fn open_entry(keys: &AuditKeys, tenant: &str, row: &crate::model::AuditLogRow) -> Option<SealedPart> {
    let salt = row.salt.as_deref().filter(|_| !row.sealed.is_empty())?;
    let aad = sealed_aad(tenant, &row.actor_ref, &row.target_ref, &row.action, row.at);
    let opened = keys.open(salt, &row.sealed, &aad).ok().and_then(|plain| serde_json::from_slice(&plain).ok());
    if opened.is_none() {
        tracing::warn!(
            entry = row.id,
            "an audit entry does not open with its subject's key (run `latchkey audit verify`)"
        );
    }
    opened
}

/// The statement a checkpoint entry signs and its signature, as its details hold them.
pub(crate) fn checkpoint_details(keys: &AuditKeys, statement: &CheckpointStatement) -> serde_json::Value {
    serde_json::json!({
        "seq": statement.seq,
        "mac": statement.mac,
        "at": statement.at,
        "signature": keys.sign_checkpoint(statement),
        "public_key": keys.checkpoint_public_key(),
    })
}

/// The MAC of a waiting entry that is given position `seq`.
pub(crate) fn link(keys: &AuditKeys, tenant: &str, prev: &str, seq: i64, e: &PreparedEntry) -> String {
    keys.link(prev, &e.link(tenant, seq))
}

macro_rules! impl_audit_log {
    ($store:ty, $db:ty) => {
        impl $store {
            fn audit_keys(&self) -> StoreResult<&latchkey_core::crypto::AuditKeys> {
                self.audit_keys
                    .get()
                    .map(|k| k.as_ref())
                    .ok_or_else(|| StoreError::Invalid("the audit log's keys are not loaded (use_audit_keys)".into()))
            }

            /// The salts of `refs`, creating those a subject does not have yet.
            async fn audit_salts(
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                refs: &[&str],
            ) -> StoreResult<std::collections::HashMap<String, Option<String>>> {
                let mut found = std::collections::HashMap::new();
                for chunk in refs.chunks(500) {
                    let mut select = sqlx::QueryBuilder::<$db>::new(
                        "SELECT subject_ref, salt FROM audit_subject_keys WHERE tenant_id = ",
                    );
                    select.push_bind(tenant.as_str()).push(" AND subject_ref IN (");
                    let mut list = select.separated(", ");
                    for r in chunk {
                        list.push_bind(*r);
                    }
                    select.push(")");
                    let rows: Vec<(String, Option<String>)> = select.build_query_as().fetch_all(&mut *conn).await?;
                    found.extend(rows);
                    let missing: Vec<&str> = chunk.iter().copied().filter(|r| !found.contains_key(*r)).collect();
                    if missing.is_empty() {
                        continue;
                    }
                    // Another transaction may create the same subject's salt at once: the
                    // primary key keeps one, and the read below returns the one kept.
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO audit_subject_keys (tenant_id, subject_ref, salt) ",
                    );
                    insert.push_values(missing.iter(), |mut row, r| {
                        row.push_bind(tenant.as_str()).push_bind(*r).push_bind(latchkey_core::crypto::AuditKeys::new_subject_salt());
                    });
                    insert.push(" ON CONFLICT (tenant_id, subject_ref) DO NOTHING");
                    insert.build().execute(&mut *conn).await?;
                    let mut again = sqlx::QueryBuilder::<$db>::new(
                        "SELECT subject_ref, salt FROM audit_subject_keys WHERE tenant_id = ",
                    );
                    again.push_bind(tenant.as_str()).push(" AND subject_ref IN (");
                    let mut list = again.separated(", ");
                    for r in &missing {
                        list.push_bind(*r);
                    }
                    again.push(")");
                    let rows: Vec<(String, Option<String>)> = again.build_query_as().fetch_all(&mut *conn).await?;
                    found.extend(rows);
                }
                Ok(found)
            }

            /// Records entries in the caller's transaction, waiting for the sealer.
            pub(crate) async fn append_audit_entries(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                at: i64,
                entries: &[(&str, $crate::shared::audit::SealedPart)],
            ) -> StoreResult<()> {
                let keys = self.audit_keys()?;
                let refs: Vec<String> = entries.iter().map(|(_, p)| keys.pseudonym(tenant.as_str(), &p.target)).collect();
                let mut distinct: Vec<&str> = refs.iter().map(String::as_str).collect();
                distinct.sort_unstable();
                distinct.dedup();
                let salts = Self::audit_salts(&mut *conn, tenant, &distinct).await?;
                let mut prepared = Vec::with_capacity(entries.len());
                for ((action, part), target_ref) in entries.iter().zip(&refs) {
                    let salt = salts
                        .get(target_ref)
                        .ok_or_else(|| StoreError::Corrupt("an audit subject's salt vanished after insert".into()))?;
                    prepared.push($crate::shared::audit::prepare_entry(keys, salt.as_deref(), tenant.as_str(), at, part, action)?);
                }
                for chunk in prepared.chunks(1000) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO audit_log (tenant_id, at, action, actor_ref, target_ref, sealed, nonce, entry_mac) ",
                    );
                    insert.push_values(chunk, |mut row, e| {
                        row.push_bind(tenant.as_str())
                            .push_bind(e.at)
                            .push_bind(e.action.as_str())
                            .push_bind(e.actor_ref.as_str())
                            .push_bind(e.target_ref.as_str())
                            .push_bind(e.sealed.as_str())
                            .push_bind(e.nonce.as_str())
                            .push_bind(e.entry_mac.as_str());
                    });
                    insert.build().execute(&mut *conn).await?;
                }
                Ok(())
            }

            pub(crate) async fn append_audit(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                actor: &Actor,
                action: &str,
                target: &str,
                details: &serde_json::Value,
            ) -> StoreResult<()> {
                let part = $crate::shared::audit::SealedPart {
                    actor: actor.as_string(),
                    target: target.to_owned(),
                    details: details.clone(),
                };
                self.append_audit_entries(conn, tenant, self.now(), &[(action, part)]).await
            }

            fn open_audit_rows(&self, tenant: &TenantId, rows: Vec<$crate::model::AuditLogRow>) -> StoreResult<Vec<(i64, AuditEvent)>> {
                let keys = self.audit_keys()?;
                rows.into_iter()
                    .map(|row| {
                        let opened = $crate::shared::audit::open_entry(keys, tenant.as_str(), &row);
                        Ok((row.id, row.into_event(opened)?))
                    })
                    .collect()
            }

            /// Numbers up to one batch of a tenant's waiting entries and, when one is due (or
            /// `force`), appends a checkpoint. Returns how many entries it chained and
            /// whether more wait.
            async fn seal_audit_batch(
                &self,
                tenant: &TenantId,
                checkpoint_every: i64,
                force_checkpoint: bool,
            ) -> StoreResult<(u64, bool, Option<(i64, i64)>)> {
                let keys = self.audit_keys()?;
                let now = self.now();
                let mut tx = self.begin_write().await?;
                let has_row: Option<i64> = sqlx::query_scalar("SELECT seq FROM audit_chains WHERE tenant_id = $1")
                    .bind(tenant.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                if has_row.is_none() {
                    // A chain whose row is gone is not started again over its entries.
                    let chained: Option<i64> =
                        sqlx::query_scalar("SELECT MAX(seq) FROM audit_log WHERE tenant_id = $1 AND seq IS NOT NULL")
                            .bind(tenant.as_str())
                            .fetch_one(&mut *tx)
                            .await?;
                    let again: Option<i64> = sqlx::query_scalar("SELECT seq FROM audit_chains WHERE tenant_id = $1")
                        .bind(tenant.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                    // Another writer may have started the chain and chained entries between
                    // the two reads: then its row is there now.
                    if chained.is_some() && again.is_none() {
                        return Err(StoreError::Corrupt(format!(
                            "the audit chain of tenant {tenant} has entries but its head row is gone: run `latchkey audit verify`"
                        )));
                    }
                    sqlx::query(
                        "INSERT INTO audit_chains (tenant_id, seq, mac) VALUES ($1, 0, $2) ON CONFLICT (tenant_id) DO NOTHING",
                    )
                    .bind(tenant.as_str())
                    .bind(keys.genesis(tenant.as_str()))
                    .execute(&mut *tx)
                    .await?;
                }
                // The chain's one writer: this row stays locked until the commit.
                let (mut seq, mut mac, checkpoint_at): (i64, String, i64) = sqlx::query_as(
                    "UPDATE audit_chains SET seq = seq WHERE tenant_id = $1 RETURNING seq, mac, checkpoint_at",
                )
                .bind(tenant.as_str())
                .fetch_one(&mut *tx)
                .await?;
                let waiting: Vec<(i64, i64, String, String, String, String, String, String)> = sqlx::query_as(
                    "SELECT id, at, action, actor_ref, target_ref, sealed, nonce, entry_mac FROM audit_log
                     WHERE tenant_id = $1 AND seq IS NULL ORDER BY id LIMIT $2",
                )
                .bind(tenant.as_str())
                .bind($crate::shared::audit::SEAL_BATCH)
                .fetch_all(&mut *tx)
                .await?;
                let more = i64::try_from(waiting.len()).is_ok_and(|n| n == $crate::shared::audit::SEAL_BATCH);
                let chained = waiting.len() as u64;
                let mut numbered = Vec::with_capacity(waiting.len());
                for (id, at, action, actor_ref, target_ref, sealed, nonce, entry_mac) in waiting {
                    let entry =
                        $crate::shared::audit::PreparedEntry { at, action, actor_ref, target_ref, sealed, nonce, entry_mac };
                    if !entry.intact(keys, tenant.as_str()) {
                        // Forged or altered while it waited: kept out of the chain, at a
                        // negative position that `audit verify` names.
                        tracing::error!(entry = id, "a waiting audit entry fails its MAC: not chained");
                        sqlx::query("UPDATE audit_log SET seq = $2 WHERE id = $1").bind(id).bind(-id).execute(&mut *tx).await?;
                        continue;
                    }
                    seq += 1;
                    mac = $crate::shared::audit::link(keys, tenant.as_str(), &mac, seq, &entry);
                    numbered.push((id, seq, mac.clone()));
                }
                for chunk in numbered.chunks(300) {
                    // A VALUES list names its columns column1, column2, … on both backends.
                    let mut update = sqlx::QueryBuilder::<$db>::new(
                        "UPDATE audit_log SET seq = v.column2, mac = v.column3 FROM (",
                    );
                    update.push_values(chunk, |mut row, (id, seq, mac)| {
                        row.push_bind(*id).push_bind(*seq).push_bind(mac.as_str());
                    });
                    update.push(") AS v WHERE audit_log.id = v.column1");
                    update.build().execute(&mut *tx).await?;
                }
                let due = force_checkpoint || (!more && now - checkpoint_at >= checkpoint_every);
                let mut new_checkpoint_at = checkpoint_at;
                if due {
                    let statement =
                        latchkey_core::crypto::CheckpointStatement { tenant: tenant.to_string(), seq, mac: mac.clone(), at: now };
                    let part = $crate::shared::audit::SealedPart {
                        actor: Actor::System.as_string(),
                        target: $crate::shared::audit::CHECKPOINT_TARGET.to_owned(),
                        details: $crate::shared::audit::checkpoint_details(keys, &statement),
                    };
                    let target_ref = keys.pseudonym(tenant.as_str(), &part.target);
                    let salts = Self::audit_salts(&mut *tx, tenant, &[target_ref.as_str()]).await?;
                    let salt = salts
                        .get(&target_ref)
                        .ok_or_else(|| StoreError::Corrupt("the checkpoint's salt vanished after insert".into()))?;
                    let entry = $crate::shared::audit::prepare_entry(
                        keys,
                        salt.as_deref(),
                        tenant.as_str(),
                        now,
                        &part,
                        $crate::shared::audit::CHECKPOINT_ACTION,
                    )?;
                    seq += 1;
                    mac = $crate::shared::audit::link(keys, tenant.as_str(), &mac, seq, &entry);
                    sqlx::query(
                        "INSERT INTO audit_log (tenant_id, seq, at, action, actor_ref, target_ref, sealed, nonce, entry_mac, mac)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    )
                    .bind(tenant.as_str())
                    .bind(seq)
                    .bind(entry.at)
                    .bind(&entry.action)
                    .bind(&entry.actor_ref)
                    .bind(&entry.target_ref)
                    .bind(&entry.sealed)
                    .bind(&entry.nonce)
                    .bind(&entry.entry_mac)
                    .bind(&mac)
                    .execute(&mut *tx)
                    .await?;
                    new_checkpoint_at = now;
                }
                if chained > 0 || due {
                    sqlx::query("UPDATE audit_chains SET seq = $2, mac = $3, checkpoint_at = $4 WHERE tenant_id = $1")
                        .bind(tenant.as_str())
                        .bind(seq)
                        .bind(&mac)
                        .bind(new_checkpoint_at)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok((chained, more, Some((seq, new_checkpoint_at))))
                } else {
                    tx.rollback().await?;
                    Ok((chained, more, None))
                }
            }
        }

        #[async_trait::async_trait]
        impl $crate::AuditChainStore for $store {
            fn use_audit_keys(&self, keys: std::sync::Arc<latchkey_core::crypto::AuditKeys>) {
                // Set once, at start: a second call (same master key) keeps the first.
                let _ = self.audit_keys.set(keys);
            }

            async fn seal_audit_chain(&self, checkpoint_every: std::time::Duration, force_checkpoint: bool) -> StoreResult<$crate::SealReport> {
                let every = i64::try_from(checkpoint_every.as_secs()).unwrap_or(i64::MAX);
                let tenants: Vec<String> = sqlx::query_scalar(
                    "SELECT t.id FROM tenants t WHERE EXISTS (SELECT 1 FROM audit_log l WHERE l.tenant_id = t.id AND l.seq IS NULL)
                     OR NOT EXISTS (SELECT 1 FROM audit_chains c WHERE c.tenant_id = t.id AND c.checkpoint_at > $1)
                     ORDER BY t.id",
                )
                .bind(if force_checkpoint { i64::MAX } else { self.now() - every })
                .fetch_all(self.pool())
                .await?;
                let mut report = $crate::SealReport::default();
                for raw in tenants {
                    let tenant = TenantId::parse(&raw).map_err(|e| StoreError::Corrupt(format!("tenant id: {e}")))?;
                    let mut first = true;
                    let mut head = None;
                    loop {
                        let (chained, more, written) = self.seal_audit_batch(&tenant, every, force_checkpoint && first).await?;
                        first = false;
                        report.chained += chained;
                        head = written.or(head);
                        if !more {
                            break;
                        }
                    }
                    if let Some((seq, checkpoint_at)) = head {
                        report.heads.push((tenant, seq, checkpoint_at));
                    }
                }
                Ok(report)
            }

            async fn audit_chain_head(&self, tenant: &TenantId) -> StoreResult<Option<$crate::ChainHead>> {
                let row: Option<(i64, String, i64, i64, Option<String>, Option<i64>, Option<String>)> = sqlx::query_as(
                    "SELECT seq, mac, checkpoint_at, base_seq, base_mac, base_at, base_signature FROM audit_chains WHERE tenant_id = $1",
                )
                .bind(tenant.as_str())
                .fetch_optional(self.pool())
                .await?;
                Ok(row.map(|(seq, mac, checkpoint_at, base_seq, base_mac, base_at, base_signature)| $crate::ChainHead {
                    seq,
                    mac,
                    checkpoint_at,
                    base_seq,
                    base_mac,
                    base_at,
                    base_signature,
                }))
            }

            async fn audit_chain_page(&self, tenant: &TenantId, after_seq: i64, limit: u32) -> StoreResult<Vec<$crate::ChainEntry>> {
                let rows: Vec<$crate::model::AuditLogRow> = sqlx::query_as(
                    "SELECT l.id, l.seq, l.at, l.action, l.actor_ref, l.target_ref, l.sealed, l.mac, k.salt
                     FROM audit_log l LEFT JOIN audit_subject_keys k ON k.tenant_id = l.tenant_id AND k.subject_ref = l.target_ref
                     WHERE l.tenant_id = $1 AND l.seq > $2 ORDER BY l.seq LIMIT $3",
                )
                .bind(tenant.as_str())
                .bind(after_seq)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?;
                let keys = self.audit_keys()?;
                rows.into_iter()
                    .map(|row| {
                        // A checkpoint's details are read to check its signature; an entry
                        // that no longer opens is reported by the verifier, not here.
                        let opened = if row.action == $crate::shared::audit::CHECKPOINT_ACTION {
                            $crate::shared::audit::open_entry(keys, tenant.as_str(), &row)
                        } else {
                            None
                        };
                        row.into_chain_entry(opened.map(|p| p.details))
                    })
                    .collect()
            }

            async fn audit_chain_counts(&self, tenant: &TenantId, after: i64, upto: i64) -> StoreResult<$crate::ChainCounts> {
                let (in_range, below): (i64, i64) = sqlx::query_as(
                    "SELECT COALESCE(SUM(CASE WHEN seq > $2 AND seq <= $3 THEN 1 ELSE 0 END), 0),
                            COALESCE(SUM(CASE WHEN seq >= 0 AND seq <= $2 THEN 1 ELSE 0 END), 0)
                     FROM audit_log WHERE tenant_id = $1 AND seq IS NOT NULL",
                )
                .bind(tenant.as_str())
                .bind(after)
                .bind(upto)
                .fetch_one(self.pool())
                .await?;
                let refused_ids: Vec<i64> =
                    sqlx::query_scalar("SELECT id FROM audit_log WHERE tenant_id = $1 AND seq < 0 ORDER BY id LIMIT 100")
                        .bind(tenant.as_str())
                        .fetch_all(self.pool())
                        .await?;
                Ok($crate::ChainCounts {
                    in_range: u64::try_from(in_range).unwrap_or(0),
                    at_or_below_base: u64::try_from(below).unwrap_or(0),
                    refused_ids,
                })
            }

            async fn unsealed_audit_entries(&self, tenant: &TenantId) -> StoreResult<(u64, Option<UnixTime>)> {
                let (n, oldest): (i64, Option<i64>) =
                    sqlx::query_as("SELECT COUNT(*), MIN(at) FROM audit_log WHERE tenant_id = $1 AND seq IS NULL")
                        .bind(tenant.as_str())
                        .fetch_one(self.pool())
                        .await?;
                Ok((u64::try_from(n).unwrap_or(0), oldest.map(UnixTime::from_secs)))
            }

            async fn adopt_legacy_audit_events(&self, batch: u32) -> StoreResult<u64> {
                let mut tx = self.begin_write().await?;
                let rows: Vec<(i64, String, i64, String, String, String, String)> = sqlx::query_as(
                    "SELECT id, tenant_id, at, actor, action, target, details FROM audit_events ORDER BY id LIMIT $1",
                )
                .bind(i64::from(batch))
                .fetch_all(&mut *tx)
                .await?;
                let Some(last) = rows.last().map(|r| r.0) else {
                    tx.rollback().await?;
                    return Ok(0);
                };
                let n = rows.len() as u64;
                for (_, tenant, at, actor, action, target, details) in rows {
                    let tenant = TenantId::parse(&tenant).map_err(|e| StoreError::Corrupt(format!("tenant id: {e}")))?;
                    let details = serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details));
                    let part = $crate::shared::audit::SealedPart { actor, target, details };
                    self.append_audit_entries(&mut *tx, &tenant, at, &[(action.as_str(), part)]).await?;
                }
                sqlx::query("DELETE FROM audit_events WHERE id <= $1").bind(last).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(n)
            }
        }
    };
}
