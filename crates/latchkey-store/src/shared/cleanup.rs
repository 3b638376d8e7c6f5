macro_rules! impl_cleanup_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::CleanupStore for $store {
            async fn delete_expired_batch(
                &self,
                kind: $crate::cleanup::Expired,
                cutoffs: &$crate::cleanup::Cutoffs,
                limit: u32,
            ) -> StoreResult<u64> {
                use $crate::cleanup::Expired;
                let (table, column, also) = kind.expiry();
                let condition = format!("{column} <= $1{also}");
                let cutoff = cutoffs.cutoff(kind);
                if matches!(kind, Expired::EndedSessions | Expired::IdleSessions) {
                    return self.delete_session_batch(&condition, column, cutoff, limit).await;
                }
                // One statement is one transaction; the table and condition are constants.
                let done = sqlx::query(sqlx::AssertSqlSafe(Self::batch_delete_sql(table, &condition, column)))
                    .bind(cutoff)
                    .bind(i64::from(limit))
                    .execute(self.pool())
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}
