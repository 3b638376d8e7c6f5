macro_rules! impl_client_store {
    ($store:ty, $db:ty) => {
        fn policy_json(p: &latchkey_core::domain::ClientSessionPolicy) -> StoreResult<String> {
            serde_json::to_string(p).map_err(|e| StoreError::Invalid(format!("client session policy: {e}")))
        }

        fn access_policy_json(p: &latchkey_core::domain::ClientAccessPolicy) -> StoreResult<String> {
            serde_json::to_string(p).map_err(|e| StoreError::Invalid(format!("client access policy: {e}")))
        }

        impl $store {
            async fn fetch_client(
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                id: &ClientId,
            ) -> StoreResult<Client> {
                let row: Option<$crate::model::ClientRow> =
                    sqlx::query_as("SELECT * FROM clients WHERE tenant_id = $1 AND client_id = $2")
                        .bind(tenant.as_str())
                        .bind(id.as_str())
                        .fetch_optional(&mut *conn)
                        .await?;
                row.ok_or_else(|| StoreError::NotFound(format!("client `{id}`")))?.try_into()
            }

            /// RFC 9068 §5: a client-credentials token's `sub` is the client id, so a client
            /// id that equals a user's `sub` would let a resource server take the client for
            /// that person. Checked inside the creating transaction, under the id's lock
            /// (`lock_principal_id`), like its mirror image in `insert_user`.
            async fn ensure_no_user_has_sub(
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                id: &ClientId,
            ) -> StoreResult<()> {
                Self::lock_principal_id(&mut *conn, tenant, id.as_str()).await?;
                let taken: Option<i32> = sqlx::query_scalar("SELECT 1 FROM users WHERE tenant_id = $1 AND sub = $2")
                    .bind(tenant.as_str())
                    .bind(id.as_str())
                    .fetch_optional(&mut *conn)
                    .await?;
                match taken {
                    Some(_) => Err(StoreError::Conflict(format!(
                        "client id `{id}` is the subject id (sub) of a user; a token's sub must name one party \
                         (RFC 9068 §5), so choose another client id"
                    ))),
                    None => Ok(()),
                }
            }

            fn client_change(tenant: &TenantId, id: &ClientId) -> Change {
                Change::Client { tenant: tenant.to_string(), client_id: id.to_string() }
            }
        }

        #[async_trait::async_trait]
        impl $crate::ClientStore for $store {
            async fn create_client(&self, tenant: &TenantId, c: NewClient, actor: &Actor) -> StoreResult<Client> {
                let mut tx = self.begin_write().await?;
                Self::ensure_no_user_has_sub(&mut tx, tenant, &c.client_id).await?;
                sqlx::query(
                    "INSERT INTO clients (tenant_id, client_id, name, kind, secret_hash, redirect_uris, post_logout_redirect_uris,
                        grant_types, allowed_scopes, auth_method, id_token_alg, first_party, created_at, updated_at,
                        jwks, jwks_uri, allow_insecure_no_pkce, access_token_lifetime, session_policy,
                        allow_insecure_redirect_uris, refresh_reuse_grace, allow_legacy_assertion_audience, access_policy, admin_client)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)",
                )
                .bind(tenant.as_str())
                .bind(c.client_id.as_str())
                .bind(&c.name)
                .bind(c.kind.as_str())
                .bind(c.secret_hash.as_ref().map(|h| h.as_str()))
                .bind(to_json_list(c.redirect_uris.iter().map(|u| u.as_str())))
                .bind(to_json_list(c.post_logout_redirect_uris.iter().map(|u| u.as_str())))
                .bind(to_json_list(c.grant_types.iter().map(|g| g.as_str())))
                .bind(to_json_list(c.allowed_scopes.iter().map(|s| s.as_str())))
                .bind(c.token_endpoint_auth_method.as_str())
                .bind(c.id_token_signed_response_alg.as_str())
                .bind(c.first_party)
                .bind(self.now())
                .bind(c.jwks.as_deref())
                .bind(c.jwks_uri.as_deref())
                .bind(c.allow_insecure_no_pkce)
                .bind(c.access_token_lifetime)
                .bind(policy_json(&c.session_policy)?)
                .bind(c.allow_insecure_redirect_uris)
                .bind(c.refresh_reuse_grace)
                .bind(c.allow_legacy_assertion_audience)
                .bind(access_policy_json(&c.access_policy)?)
                .bind(c.admin_client)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::from_write(e, |_| format!("a client with id `{}` exists already", c.client_id)))?;
                audit!(self, tx, tenant, actor, "client.created", c.client_id.as_str(), serde_json::json!({"name": c.name}));
                Self::notify(&mut tx, &Self::client_change(tenant, &c.client_id)).await?;
                let created = Self::fetch_client(&mut tx, tenant, &c.client_id).await?;
                tx.commit().await?;
                Ok(created)
            }

            async fn client(&self, tenant: &TenantId, id: &ClientId) -> StoreResult<Option<Client>> {
                let row: Option<$crate::model::ClientRow> =
                    sqlx::query_as("SELECT * FROM clients WHERE tenant_id = $1 AND client_id = $2")
                        .bind(tenant.as_str())
                        .bind(id.as_str())
                        .fetch_optional(self.pool())
                        .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn list_clients(&self, tenant: &TenantId) -> StoreResult<Vec<Client>> {
                let rows: Vec<$crate::model::ClientRow> =
                    sqlx::query_as("SELECT * FROM clients WHERE tenant_id = $1 ORDER BY client_id")
                        .bind(tenant.as_str())
                        .fetch_all(self.pool())
                        .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn update_client(&self, tenant: &TenantId, id: &ClientId, p: ClientPatch, actor: &Actor) -> StoreResult<Client> {
                let mut tx = self.begin_write().await?;
                if p.if_match.is_some() {
                    // The check and the change are one: a concurrent change waits or is seen.
                    Self::lock_principal_id(&mut tx, tenant, id.as_str()).await?;
                }
                let mut c = Self::fetch_client(&mut tx, tenant, id).await?;
                if p.if_match.as_ref().is_some_and(|tag| *tag != c.etag()) {
                    return Err(StoreError::Stale(format!("client {id} changed since it was read; read it again")));
                }
                let changed = p.apply_to(&mut c);
                sqlx::query(
                    "UPDATE clients SET name = $3, redirect_uris = $4, post_logout_redirect_uris = $5, grant_types = $6,
                        allowed_scopes = $7, auth_method = $8, id_token_alg = $9, first_party = $10, updated_at = $11,
                        jwks = $12, jwks_uri = $13, allow_insecure_no_pkce = $14, access_token_lifetime = $15,
                        session_policy = $16, allow_insecure_redirect_uris = $17, refresh_reuse_grace = $18,
                        allow_legacy_assertion_audience = $19, access_policy = $20, admin_client = $21
                     WHERE tenant_id = $1 AND client_id = $2",
                )
                .bind(tenant.as_str())
                .bind(id.as_str())
                .bind(&c.name)
                .bind(to_json_list(c.redirect_uris.iter().map(|u| u.as_str())))
                .bind(to_json_list(c.post_logout_redirect_uris.iter().map(|u| u.as_str())))
                .bind(to_json_list(c.grant_types.iter().map(|g| g.as_str())))
                .bind(to_json_list(c.allowed_scopes.iter().map(|s| s.as_str())))
                .bind(c.token_endpoint_auth_method.as_str())
                .bind(c.id_token_signed_response_alg.as_str())
                .bind(c.first_party)
                .bind(self.now())
                .bind(c.jwks.as_deref())
                .bind(c.jwks_uri.as_deref())
                .bind(c.allow_insecure_no_pkce)
                .bind(c.access_token_lifetime)
                .bind(policy_json(&c.session_policy)?)
                .bind(c.allow_insecure_redirect_uris)
                .bind(c.refresh_reuse_grace)
                .bind(c.allow_legacy_assertion_audience)
                .bind(access_policy_json(&c.access_policy)?)
                .bind(c.admin_client)
                .execute(&mut *tx)
                .await?;
                // Sessions already signed into this client follow its back-channel setting.
                sqlx::query("UPDATE session_clients SET backchannel = $3 WHERE tenant_id = $1 AND client_id = $2")
                    .bind(tenant.as_str())
                    .bind(id.as_str())
                    .bind(c.session_policy.backchannel_logout_uri.is_some())
                    .execute(&mut *tx)
                    .await?;
                audit!(self, tx, tenant, actor, "client.updated", id.as_str(), serde_json::json!({"fields": changed}));
                Self::notify(&mut tx, &Self::client_change(tenant, id)).await?;
                let updated = Self::fetch_client(&mut tx, tenant, id).await?;
                tx.commit().await?;
                Ok(updated)
            }

            async fn rotate_client_secret(
                &self,
                tenant: &TenantId,
                id: &ClientId,
                new_hash: &TokenHash,
                previous_valid_until: UnixTime,
                actor: &Actor,
            ) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE clients SET previous_secret_hash = secret_hash, previous_secret_expires_at = $3,
                        secret_hash = $4, updated_at = $5
                     WHERE tenant_id = $1 AND client_id = $2 AND secret_hash IS NOT NULL",
                )
                .bind(tenant.as_str())
                .bind(id.as_str())
                .bind(previous_valid_until.secs())
                .bind(new_hash.as_str())
                .bind(self.now())
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    // Distinguish "no such client" from "this client has no secret".
                    Self::fetch_client(&mut tx, tenant, id).await?;
                    return Err(StoreError::Invalid(format!("client `{id}` does not authenticate with a secret")));
                }
                audit!(self, tx, tenant, actor, "client.secret_rotated", id.as_str(),
                    serde_json::json!({"previous_valid_until": previous_valid_until.secs()}));
                Self::notify(&mut tx, &Self::client_change(tenant, id)).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn client_ids_shared_with_users(&self, tenant: &TenantId) -> StoreResult<Vec<ClientId>> {
                let ids: Vec<String> = sqlx::query_scalar(
                    "SELECT c.client_id FROM clients c JOIN users u ON u.tenant_id = c.tenant_id AND u.sub = c.client_id
                     WHERE c.tenant_id = $1 ORDER BY c.client_id",
                )
                .bind(tenant.as_str())
                .fetch_all(self.pool())
                .await?;
                ids.iter().map(|id| ClientId::parse(id).map_err(|e| StoreError::Corrupt(format!("client id: {e}")))).collect()
            }

            async fn delete_client(&self, tenant: &TenantId, id: &ClientId, actor: &Actor) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                // Its application roles go with it (a foreign key): say so in the audit log.
                let roles: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM roles WHERE tenant_id = $1 AND application = $2 ORDER BY name")
                        .bind(tenant.as_str())
                        .bind(id.as_str())
                        .fetch_all(&mut *tx)
                        .await?;
                for role in &roles {
                    Self::forget_applied_in(&mut tx, tenant, "role", role).await?;
                }
                Self::forget_applied_in(&mut tx, tenant, "client", id.as_str()).await?;
                let done = sqlx::query("DELETE FROM clients WHERE tenant_id = $1 AND client_id = $2")
                    .bind(tenant.as_str())
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("client `{id}`")));
                }
                // Its grants go with it: refresh tokens, pending codes, consents, session
                // memberships and queued logout tokens. Access tokens die at introspection
                // because the client no longer exists.
                for sql in [
                    "DELETE FROM refresh_tokens WHERE tenant_id = $1 AND client_id = $2",
                    "DELETE FROM authorization_codes WHERE tenant_id = $1 AND client_id = $2",
                    "DELETE FROM consents WHERE tenant_id = $1 AND client_id = $2",
                    "DELETE FROM session_clients WHERE tenant_id = $1 AND client_id = $2",
                    "DELETE FROM logout_deliveries WHERE tenant_id = $1 AND client_id = $2",
                ] {
                    sqlx::query(sql).bind(tenant.as_str()).bind(id.as_str()).execute(&mut *tx).await?;
                }
                audit!(self, tx, tenant, actor, "client.deleted", id.as_str(), serde_json::json!({}));
                for role in &roles {
                    audit!(self, tx, tenant, actor, "role.deleted", role.as_str(), serde_json::json!({"with_client": id.as_str()}));
                }
                Self::notify(&mut tx, &Self::client_change(tenant, id)).await?;
                if !roles.is_empty() {
                    Self::notify(&mut tx, &Change::Access { tenant: tenant.to_string() }).await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    };
}
