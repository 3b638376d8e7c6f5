//! Scopes: the built-in OpenID Connect scopes and the custom ones an operator defines.

use latchkey_core::domain::{AdminScope, ScopeName, TenantId};
use latchkey_core::records::{Actor, ScopeDefinition};

use crate::{Latchkey, ServiceError, ServiceResult, pass_through};

pub struct Scopes<'a>(pub(crate) &'a Latchkey);

impl Scopes<'_> {
    pass_through! {
        fn list(tenant: &TenantId) -> Vec<ScopeDefinition> => list_scopes;
    }

    /// Creates a custom scope or changes its description. The `admin:` names are Latchkey's.
    pub async fn put(
        &self,
        tenant: &TenantId,
        name: &ScopeName,
        description: &str,
        actor: &Actor,
    ) -> ServiceResult<()> {
        check(name, description)?;
        Ok(self.0.store().put_scope(tenant, name, description, actor).await?)
    }

    /// Deletes a custom scope; a built-in scope is `Invalid`, an unknown one `NotFound`.
    pub async fn delete(&self, tenant: &TenantId, name: &ScopeName, actor: &Actor) -> ServiceResult<()> {
        let mut tx = self.0.store().transaction().await?;
        match tx.scope_is_built_in(tenant, name).await? {
            None => return Err(ServiceError::NotFound(format!("scope `{name}`"))),
            Some(true) => {
                return Err(ServiceError::Forbidden(format!("`{name}` is a built-in scope and cannot be deleted")));
            }
            Some(false) => {}
        }
        tx.delete_scope(tenant, name, actor).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// A custom scope as it may be saved: not an `admin:` name, a description people can read
/// on the consent page.
pub(crate) fn check(name: &ScopeName, description: &str) -> ServiceResult<()> {
    if AdminScope::is_admin_name(name.as_str()) {
        return Err(ServiceError::Forbidden(format!("`{name}`: scopes beginning with `admin:` are the admin API's")));
    }
    if description.trim().is_empty() || description.chars().count() > 500 || description.chars().any(char::is_control) {
        return Err(ServiceError::Invalid("a scope's description is 1 to 500 characters on one line".into()));
    }
    Ok(())
}
