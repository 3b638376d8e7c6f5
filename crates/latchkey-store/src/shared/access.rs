macro_rules! impl_access_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// The people (unlocked, not service accounts) holding `latchkey-admin`, directly
            /// or through a group, after taking the lock that every change that could remove
            /// one takes first: two such changes never both count the other's admin.
            pub(crate) async fn active_admins_in(
                tx: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
            ) -> StoreResult<Vec<SubjectId>> {
                Self::lock_principal_id(&mut *tx, tenant, "role:latchkey-admin").await?;
                let subs: Vec<String> = sqlx::query_scalar(
                    "SELECT u.sub FROM users u JOIN (
                         SELECT sub FROM user_roles WHERE tenant_id = $1 AND role = 'latchkey-admin'
                         UNION
                         SELECT m.sub FROM group_members m
                           JOIN group_roles g ON g.tenant_id = m.tenant_id AND g.group_name = m.group_name
                          WHERE m.tenant_id = $1 AND g.role = 'latchkey-admin'
                     ) h ON h.sub = u.sub
                     WHERE u.tenant_id = $1 AND NOT u.locked AND NOT u.service_account
                     ORDER BY u.sub",
                )
                .bind(tenant.as_str())
                .fetch_all(&mut *tx)
                .await?;
                subs.iter().map(|s| SubjectId::parse(s).map_err(|e| StoreError::Corrupt(format!("admin sub: {e}")))).collect()
            }

            /// Adds or removes one link inside the caller's transaction; `false` when nothing changed.
            pub(crate) async fn set_membership_in(
                &self,
                tx: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                link: &Membership,
                present: bool,
                actor: &Actor,
            ) -> StoreResult<bool> {
                let (ends, table, columns, a, b, action, target) = match link {
                    Membership::UserRole { sub, role } => {
                        ([AccessEnd::User(sub), AccessEnd::Role(role)], "user_roles", ["sub", "role"], sub.as_str(), role.as_str(), "role", sub.to_string())
                    }
                    Membership::GroupMember { group, sub } => {
                        ([AccessEnd::Group(group), AccessEnd::User(sub)], "group_members", ["group_name", "sub"], group.as_str(), sub.as_str(), "member", group.to_string())
                    }
                    Membership::GroupRole { group, role } => {
                        ([AccessEnd::Group(group), AccessEnd::Role(role)], "group_roles", ["group_name", "role"], group.as_str(), role.as_str(), "role", group.to_string())
                    }
                };
                for end in ends {
                    Self::ensure_exists(&mut *tx, tenant, end).await?;
                }
                let sql = if present {
                    format!("INSERT INTO {table} (tenant_id, {}, {}) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", columns[0], columns[1])
                } else {
                    format!("DELETE FROM {table} WHERE tenant_id = $1 AND {} = $2 AND {} = $3", columns[0], columns[1])
                };
                let done = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant.as_str()).bind(a).bind(b).execute(&mut *tx).await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                let kind = match link {
                    Membership::UserRole { .. } => "user",
                    _ => "group",
                };
                let verb = if present { "added" } else { "removed" };
                let details = serde_json::json!({ action: b });
                audit!(self, tx, tenant, actor, format!("{kind}.{action}_{verb}"), target.as_str(), details);
                Self::notify(&mut *tx, &Self::access_change(tenant)).await?;
                Ok(true)
            }

            fn access_change(tenant: &TenantId) -> Change {
                Change::Access { tenant: tenant.to_string() }
            }

            async fn exists(
                conn: &mut <$db as sqlx::Database>::Connection,
                sql: &'static str,
                tenant: &TenantId,
                key: &str,
            ) -> StoreResult<bool> {
                let found: Option<i32> =
                    sqlx::query_scalar(sql).bind(tenant.as_str()).bind(key).fetch_optional(&mut *conn).await?;
                Ok(found.is_some())
            }

            /// Fails with `NotFound` naming what is missing.
            async fn ensure_exists(
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                what: AccessEnd<'_>,
            ) -> StoreResult<()> {
                let (sql, key, missing) = match what {
                    AccessEnd::Role(r) => ("SELECT 1 FROM roles WHERE tenant_id = $1 AND name = $2", r.as_str(), format!("role `{r}`")),
                    AccessEnd::Group(g) => ("SELECT 1 FROM user_groups WHERE tenant_id = $1 AND name = $2", g.as_str(), format!("group `{g}`")),
                    AccessEnd::User(s) => ("SELECT 1 FROM users WHERE tenant_id = $1 AND sub = $2", s.as_str(), format!("user {s}")),
                    AccessEnd::Client(c) => ("SELECT 1 FROM clients WHERE tenant_id = $1 AND client_id = $2", c.as_str(), format!("client `{c}`")),
                };
                if Self::exists(&mut *conn, sql, tenant, key).await? { Ok(()) } else { Err(StoreError::NotFound(missing)) }
            }

            async fn fetch_roles(
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                only: Option<&RoleName>,
            ) -> StoreResult<Vec<Role>> {
                let rows: Vec<(String, Option<String>, String, i64)> = sqlx::query_as(
                    "SELECT name, application, description, created_at FROM roles
                     WHERE tenant_id = $1 AND ($2 IS NULL OR name = $2) ORDER BY name",
                )
                .bind(tenant.as_str())
                .bind(only.map(|r| r.as_str()))
                .fetch_all(&mut *conn)
                .await?;
                let granted: Vec<(String, String)> = sqlx::query_as(
                    "SELECT role, entitlement FROM role_entitlements
                     WHERE tenant_id = $1 AND ($2 IS NULL OR role = $2) ORDER BY role, entitlement",
                )
                .bind(tenant.as_str())
                .bind(only.map(|r| r.as_str()))
                .fetch_all(&mut *conn)
                .await?;
                rows.into_iter()
                    .map(|(name, application, description, created_at)| {
                        let entitlements = granted
                            .iter()
                            .filter(|(role, _)| *role == name)
                            .map(|(_, e)| Entitlement::parse(e).map_err(|e| corrupt("entitlement", e)))
                            .collect::<StoreResult<Vec<_>>>()?;
                        Ok(Role {
                            name: RoleName::parse(&name).map_err(|e| corrupt("role name", e))?,
                            application: application
                                .map(|a| ClientId::parse(&a).map_err(|e| corrupt("role application", e)))
                                .transpose()?,
                            description,
                            entitlements,
                            created_at,
                        })
                    })
                    .collect()
            }

            async fn fetch_groups(
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                only: Option<&GroupName>,
            ) -> StoreResult<Vec<Group>> {
                let rows: Vec<(String, String, i64)> = sqlx::query_as(
                    "SELECT name, description, created_at FROM user_groups
                     WHERE tenant_id = $1 AND ($2 IS NULL OR name = $2) ORDER BY name",
                )
                .bind(tenant.as_str())
                .bind(only.map(|g| g.as_str()))
                .fetch_all(&mut *conn)
                .await?;
                let links: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT group_name, 'role', role FROM group_roles WHERE tenant_id = $1 AND ($2 IS NULL OR group_name = $2)
                     UNION ALL
                     SELECT group_name, 'member', sub FROM group_members WHERE tenant_id = $1 AND ($2 IS NULL OR group_name = $2)
                     ORDER BY 1, 2, 3",
                )
                .bind(tenant.as_str())
                .bind(only.map(|g| g.as_str()))
                .fetch_all(&mut *conn)
                .await?;
                rows.into_iter()
                    .map(|(name, description, created_at)| {
                        let name = name.as_str();
                        let of = |kind: &'static str| links.iter().filter(move |(g, k, _)| g == name && k == kind).map(|(_, _, v)| v);
                        Ok(Group {
                            roles: of("role").map(|r| RoleName::parse(r).map_err(|e| corrupt("role name", e))).collect::<StoreResult<_>>()?,
                            members: of("member").map(|s| SubjectId::parse(s).map_err(|e| corrupt("member", e))).collect::<StoreResult<_>>()?,
                            name: GroupName::parse(name).map_err(|e| corrupt("group name", e))?,
                            description,
                            created_at,
                        })
                    })
                    .collect()
            }

            async fn set_entitlements(
                conn: &mut <$db as sqlx::Database>::Connection,
                tenant: &TenantId,
                role: &RoleName,
                add: &[Entitlement],
                remove: &[Entitlement],
            ) -> StoreResult<()> {
                for e in remove {
                    sqlx::query("DELETE FROM role_entitlements WHERE tenant_id = $1 AND role = $2 AND entitlement = $3")
                        .bind(tenant.as_str())
                        .bind(role.as_str())
                        .bind(e.as_str())
                        .execute(&mut *conn)
                        .await?;
                }
                for e in add {
                    sqlx::query(
                        "INSERT INTO role_entitlements (tenant_id, role, entitlement) VALUES ($1, $2, $3)
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(tenant.as_str())
                    .bind(role.as_str())
                    .bind(e.as_str())
                    .execute(&mut *conn)
                    .await?;
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::AccessStore for $store {
            async fn create_role(&self, tenant: &TenantId, role: NewRole, actor: &Actor) -> StoreResult<Role> {
                let mut tx = self.begin_write().await?;
                if let Some(app) = &role.application {
                    Self::ensure_exists(&mut tx, tenant, AccessEnd::Client(app)).await?;
                }
                sqlx::query(
                    "INSERT INTO roles (tenant_id, name, application, description, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(tenant.as_str())
                .bind(role.name.as_str())
                .bind(role.application.as_ref().map(|a| a.as_str()))
                .bind(&role.description)
                .bind(self.now())
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::from_write(e, |_| format!("a role named `{}` exists already", role.name)))?;
                Self::set_entitlements(&mut tx, tenant, &role.name, &role.entitlements, &[]).await?;
                let details = serde_json::json!({
                    "application": role.application.as_ref().map(|a| a.as_str()),
                    "entitlements": role.entitlements,
                });
                audit!(self, tx, tenant, actor, "role.created", role.name.as_str(), details);
                Self::notify(&mut tx, &Self::access_change(tenant)).await?;
                let created = Self::fetch_roles(&mut tx, tenant, Some(&role.name)).await?.pop();
                tx.commit().await?;
                created.ok_or_else(|| StoreError::NotFound(format!("role `{}`", role.name)))
            }

            async fn role(&self, tenant: &TenantId, name: &RoleName) -> StoreResult<Option<Role>> {
                let mut conn = self.pool().acquire().await?;
                Ok(Self::fetch_roles(&mut conn, tenant, Some(name)).await?.pop())
            }

            async fn list_roles(&self, tenant: &TenantId) -> StoreResult<Vec<Role>> {
                let mut conn = self.pool().acquire().await?;
                Self::fetch_roles(&mut conn, tenant, None).await
            }

            async fn update_role(&self, tenant: &TenantId, name: &RoleName, patch: RolePatch, actor: &Actor) -> StoreResult<Role> {
                let mut tx = self.begin_write().await?;
                Self::ensure_exists(&mut tx, tenant, AccessEnd::Role(name)).await?;
                // Every change of a role takes its lock, so one based on a read (If-Match)
                // is compared and made with no other change between.
                Self::lock_principal_id(&mut tx, tenant, &format!("role:{name}")).await?;
                if let Some(tag) = &patch.if_match {
                    let current = Self::fetch_roles(&mut tx, tenant, Some(name)).await?.pop();
                    if current.is_none_or(|r| r.etag() != *tag) {
                        return Err(StoreError::Stale(format!("role {name} changed since it was read; read it again")));
                    }
                }
                if let Some(d) = &patch.description {
                    sqlx::query("UPDATE roles SET description = $3 WHERE tenant_id = $1 AND name = $2")
                        .bind(tenant.as_str())
                        .bind(name.as_str())
                        .bind(d)
                        .execute(&mut *tx)
                        .await?;
                }
                Self::set_entitlements(&mut tx, tenant, name, &patch.add_entitlements, &patch.remove_entitlements).await?;
                let details = serde_json::json!({
                    "description": patch.description.is_some(),
                    "added": patch.add_entitlements,
                    "removed": patch.remove_entitlements,
                });
                audit!(self, tx, tenant, actor, "role.updated", name.as_str(), details);
                Self::notify(&mut tx, &Self::access_change(tenant)).await?;
                let updated = Self::fetch_roles(&mut tx, tenant, Some(name)).await?.pop();
                tx.commit().await?;
                updated.ok_or_else(|| StoreError::NotFound(format!("role `{name}`")))
            }

            async fn delete_role(&self, tenant: &TenantId, name: &RoleName, actor: &Actor) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                Self::lock_principal_id(&mut tx, tenant, &format!("role:{name}")).await?;
                Self::forget_applied_in(&mut tx, tenant, "role", name.as_str()).await?;
                let done = sqlx::query("DELETE FROM roles WHERE tenant_id = $1 AND name = $2")
                    .bind(tenant.as_str())
                    .bind(name.as_str())
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("role `{name}`")));
                }
                audit!(self, tx, tenant, actor, "role.deleted", name.as_str(), serde_json::json!({}));
                Self::notify(&mut tx, &Self::access_change(tenant)).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn create_group(&self, tenant: &TenantId, name: &GroupName, description: &str, actor: &Actor) -> StoreResult<Group> {
                let mut tx = self.begin_write().await?;
                sqlx::query("INSERT INTO user_groups (tenant_id, name, description, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(tenant.as_str())
                    .bind(name.as_str())
                    .bind(description)
                    .bind(self.now())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| StoreError::from_write(e, |_| format!("a group named `{name}` exists already")))?;
                audit!(self, tx, tenant, actor, "group.created", name.as_str(), serde_json::json!({}));
                Self::notify(&mut tx, &Self::access_change(tenant)).await?;
                let created = Self::fetch_groups(&mut tx, tenant, Some(name)).await?.pop();
                tx.commit().await?;
                created.ok_or_else(|| StoreError::NotFound(format!("group `{name}`")))
            }

            async fn group(&self, tenant: &TenantId, name: &GroupName) -> StoreResult<Option<Group>> {
                let mut conn = self.pool().acquire().await?;
                Ok(Self::fetch_groups(&mut conn, tenant, Some(name)).await?.pop())
            }

            async fn list_groups(&self, tenant: &TenantId) -> StoreResult<Vec<Group>> {
                let mut conn = self.pool().acquire().await?;
                Self::fetch_groups(&mut conn, tenant, None).await
            }

            async fn set_group_description(&self, tenant: &TenantId, name: &GroupName, description: &str, actor: &Actor) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("UPDATE user_groups SET description = $3 WHERE tenant_id = $1 AND name = $2")
                    .bind(tenant.as_str())
                    .bind(name.as_str())
                    .bind(description)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("group `{name}`")));
                }
                audit!(self, tx, tenant, actor, "group.changed", name.as_str(), serde_json::json!({"description": description}));
                Self::notify(&mut tx, &Self::access_change(tenant)).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn delete_group(&self, tenant: &TenantId, name: &GroupName, actor: &Actor) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                Self::forget_applied_in(&mut tx, tenant, "group", name.as_str()).await?;
                let done = sqlx::query("DELETE FROM user_groups WHERE tenant_id = $1 AND name = $2")
                    .bind(tenant.as_str())
                    .bind(name.as_str())
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("group `{name}`")));
                }
                audit!(self, tx, tenant, actor, "group.deleted", name.as_str(), serde_json::json!({}));
                Self::notify(&mut tx, &Self::access_change(tenant)).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn set_membership(&self, tenant: &TenantId, link: &Membership, present: bool, actor: &Actor) -> StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                let changed = self.set_membership_in(&mut tx, tenant, link, present, actor).await?;
                tx.commit().await?;
                Ok(changed)
            }

            async fn user_access(&self, tenant: &TenantId, sub: &SubjectId) -> StoreResult<UserAccess> {
                let mut conn = self.pool().acquire().await?;
                // Every role the user holds with the group it comes through ('' when direct).
                let held: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
                    "WITH held (role, via) AS (
                         SELECT role, '' FROM user_roles WHERE tenant_id = $1 AND sub = $2
                         UNION ALL
                         SELECT gr.role, gr.group_name FROM group_members gm
                           JOIN group_roles gr ON gr.tenant_id = gm.tenant_id AND gr.group_name = gm.group_name
                          WHERE gm.tenant_id = $1 AND gm.sub = $2
                     )
                     SELECT held.role, held.via, r.application, e.entitlement FROM held
                       JOIN roles r ON r.tenant_id = $1 AND r.name = held.role
                       LEFT JOIN role_entitlements e ON e.tenant_id = $1 AND e.role = held.role
                      ORDER BY held.role, held.via, e.entitlement",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .fetch_all(&mut *conn)
                .await?;
                let groups: Vec<String> = sqlx::query_scalar(
                    "SELECT group_name FROM group_members WHERE tenant_id = $1 AND sub = $2 ORDER BY group_name",
                )
                .bind(tenant.as_str())
                .bind(sub.as_str())
                .fetch_all(&mut *conn)
                .await?;
                let mut access = UserAccess {
                    roles: Vec::new(),
                    groups: groups.iter().map(|g| GroupName::parse(g).map_err(|e| corrupt("group name", e))).collect::<StoreResult<_>>()?,
                };
                for (role, via, application, entitlement) in held {
                    let name = RoleName::parse(&role).map_err(|e| corrupt("role name", e))?;
                    if access.roles.last().is_none_or(|r| r.name != name) {
                        access.roles.push(HeldRole {
                            name,
                            application: application
                                .map(|a| ClientId::parse(&a).map_err(|e| corrupt("role application", e)))
                                .transpose()?,
                            entitlements: Vec::new(),
                            direct: false,
                            via_groups: Vec::new(),
                        });
                    }
                    let Some(r) = access.roles.last_mut() else { continue };
                    if via.is_empty() {
                        r.direct = true;
                    } else {
                        let g = GroupName::parse(&via).map_err(|e| corrupt("group name", e))?;
                        if !r.via_groups.contains(&g) {
                            r.via_groups.push(g);
                        }
                    }
                    if let Some(e) = entitlement {
                        let e = Entitlement::parse(&e).map_err(|e| corrupt("entitlement", e))?;
                        if !r.entitlements.contains(&e) {
                            r.entitlements.push(e);
                        }
                    }
                }
                for r in &mut access.roles {
                    r.entitlements.sort();
                }
                Ok(access)
            }

            async fn role_holders(&self, tenant: &TenantId, role: &RoleName) -> StoreResult<Vec<SubjectId>> {
                let subs: Vec<String> = sqlx::query_scalar(
                    "SELECT sub FROM user_roles WHERE tenant_id = $1 AND role = $2
                     UNION
                     SELECT gm.sub FROM group_roles gr
                       JOIN group_members gm ON gm.tenant_id = gr.tenant_id AND gm.group_name = gr.group_name
                      WHERE gr.tenant_id = $1 AND gr.role = $2
                     ORDER BY 1",
                )
                .bind(tenant.as_str())
                .bind(role.as_str())
                .fetch_all(self.pool())
                .await?;
                subs.iter().map(|s| SubjectId::parse(s).map_err(|e| corrupt("role holder", e))).collect()
            }
        }
    };
}
