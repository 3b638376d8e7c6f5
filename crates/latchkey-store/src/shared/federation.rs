macro_rules! impl_federation_store {
    ($store:ty, $db:ty) => {
        impl $store {
            fn identity_from_row(
                &self,
                tenant: &TenantId,
                row: (String, String, String, Option<String>, i64, Option<i64>, Option<i64>),
            ) -> StoreResult<latchkey_core::records::FederatedIdentity> {
                use latchkey_core::domain::{ProviderId, UpstreamSubject};
                let (provider, subject, sub, email, linked_at, last_used_at, generation) = row;
                let at = $crate::shared::personal_data::place("federated_identities", "email", &[tenant.as_str(), &provider, &subject]);
                let email = self.open_personal_opt(generation, &at, email)?;
                let bad = |e: latchkey_core::domain::ParseError| StoreError::Invalid(format!("stored identity: {e}"));
                Ok(latchkey_core::records::FederatedIdentity {
                    provider: ProviderId::parse(&provider).map_err(bad)?,
                    subject: UpstreamSubject::parse(&subject).map_err(bad)?,
                    sub: SubjectId::parse(&sub).map_err(bad)?,
                    email,
                    linked_at: UnixTime::from_secs(linked_at),
                    last_used_at: last_used_at.map(UnixTime::from_secs),
                })
            }

            async fn insert_identity(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                identity: &latchkey_core::records::NewFederatedIdentity,
                actor: &Actor,
            ) -> StoreResult<()> {
                let at = $crate::shared::personal_data::place(
                    "federated_identities", "email", &[tenant.as_str(), identity.provider.as_str(), identity.subject.as_str()],
                );
                let keys = self.data_keys()?;
                let generation = keys.active();
                let email = identity.email.as_deref().map(|e| keys.seal(generation, &at, e));
                let generation = i64::from(generation);
                sqlx::query(
                    "INSERT INTO federated_identities (tenant_id, provider_id, subject, sub, email, linked_at, last_used_at, sealed_gen)
                     VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
                )
                .bind(tenant.as_str())
                .bind(identity.provider.as_str())
                .bind(identity.subject.as_str())
                .bind(identity.sub.as_str())
                .bind(email)
                .bind(self.now())
                .bind(generation)
                .execute(&mut *conn)
                .await
                .map_err(|e| {
                    StoreError::from_write(e, |_| {
                        format!(
                            "this {} account is linked already (to this or another account), or this account has one linked already",
                            identity.provider
                        )
                    })
                })?;
                audit!(self, conn, tenant, actor, "identity.linked", identity.sub.as_str(),
                    serde_json::json!({"provider": identity.provider.as_str(), "subject": identity.subject.as_str()}));
                Self::user_changed(conn, tenant, &identity.sub).await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::FederationStore for $store {
            async fn federated_identity(
                &self,
                tenant: &TenantId,
                provider: &latchkey_core::domain::ProviderId,
                subject: &latchkey_core::domain::UpstreamSubject,
            ) -> StoreResult<Option<latchkey_core::records::FederatedIdentity>> {
                let row: Option<(String, String, String, Option<String>, i64, Option<i64>, Option<i64>)> = sqlx::query_as(
                    "SELECT provider_id, subject, sub, email, linked_at, last_used_at, sealed_gen FROM federated_identities
                     WHERE tenant_id = $1 AND provider_id = $2 AND subject = $3",
                )
                .bind(tenant.as_str())
                .bind(provider.as_str())
                .bind(subject.as_str())
                .fetch_optional(self.pool())
                .await?;
                row.map(|r| self.identity_from_row(tenant, r)).transpose()
            }

            async fn federated_identities(
                &self,
                tenant: &TenantId,
                sub: &SubjectId,
            ) -> StoreResult<Vec<latchkey_core::records::FederatedIdentity>> {
                let rows: Vec<(String, String, String, Option<String>, i64, Option<i64>, Option<i64>)> = sqlx::query_as(
                    "SELECT provider_id, subject, sub, email, linked_at, last_used_at, sealed_gen FROM federated_identities
                     WHERE tenant_id = $1 AND sub = $2 ORDER BY provider_id",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .fetch_all(self.pool())
                .await?;
                rows.into_iter().map(|r| self.identity_from_row(tenant, r)).collect()
            }

            async fn linked_providers(&self, tenant: &TenantId) -> StoreResult<Vec<(String, u64)>> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT provider_id, COUNT(*) FROM federated_identities WHERE tenant_id = $1
                     GROUP BY provider_id ORDER BY provider_id",
                )
                .bind(tenant.as_str())
                .fetch_all(self.pool())
                .await?;
                Ok(rows.into_iter().map(|(p, n)| (p, u64::try_from(n).unwrap_or(0))).collect())
            }

            async fn link_identity(
                &self,
                tenant: &TenantId,
                identity: &latchkey_core::records::NewFederatedIdentity,
                actor: &Actor,
            ) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                Self::lock_principal_id(&mut tx, tenant, identity.sub.as_str()).await?;
                let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM users WHERE tenant_id = $1 AND sub = $2")
                    .bind(tenant.as_str())
                    .bind(identity.sub.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_none() {
                    return Err(StoreError::NotFound(format!("user {}", identity.sub)));
                }
                self.insert_identity(&mut tx, tenant, identity, actor).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn create_federated_account(
                &self,
                tenant: &TenantId,
                user: NewUser,
                identity: &latchkey_core::records::NewFederatedIdentity,
                actor: &Actor,
            ) -> StoreResult<User> {
                let mut tx = self.begin_write().await?;
                self.insert_user(&mut tx, tenant, &user, None).await.map_err(|e| match e {
                    StoreError::Database(e) => StoreError::from_write(e, |_| "the username or email address is taken".into()),
                    other => other,
                })?;
                audit!(self, tx, tenant, actor, "user.created", user.sub.as_str(),
                    serde_json::json!({"username": user.username.as_str(), "provider": identity.provider.as_str()}));
                self.insert_identity(&mut tx, tenant, identity, actor).await?;
                let created = self.fetch_user(&mut tx, tenant, &user.sub).await?;
                tx.commit().await?;
                Ok(created)
            }

            async fn record_identity_use(
                &self,
                tenant: &TenantId,
                provider: &latchkey_core::domain::ProviderId,
                subject: &latchkey_core::domain::UpstreamSubject,
                email: Option<&str>,
            ) -> StoreResult<()> {
                let at = $crate::shared::personal_data::place("federated_identities", "email", &[tenant.as_str(), provider.as_str(), subject.as_str()]);
                let keys = self.data_keys()?;
                let generation = keys.active();
                let email = email.map(|e| keys.seal(generation, &at, e));
                sqlx::query(
                    "UPDATE federated_identities SET last_used_at = $4, email = $5, sealed_gen = $6
                     WHERE tenant_id = $1 AND provider_id = $2 AND subject = $3",
                )
                .bind(tenant.as_str())
                .bind(provider.as_str())
                .bind(subject.as_str())
                .bind(self.now())
                .bind(email)
                .bind(i64::from(generation))
                .execute(self.pool())
                .await?;
                Ok(())
            }
        }
    };
}
