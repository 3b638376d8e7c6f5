//! API resources (RFC 8707): the audiences access tokens can be issued for.

use latchkey_core::domain::{AdminScope, ScopeName, TenantId};
use latchkey_core::records::{Actor, ResourceServer};

use std::sync::Arc;

use crate::{Latchkey, ServiceError, ServiceResult, pass_through};

pub struct Resources<'a>(pub(crate) &'a Latchkey);

impl Resources<'_> {
    pass_through! {
        fn list(tenant: &TenantId) -> Vec<ResourceServer> => list_resource_servers;
    }

    /// Registers an API or changes its name and scopes. The admin API is built in, and admin
    /// scopes are its alone.
    pub async fn put(&self, tenant: &TenantId, server: &ResourceServer, actor: &Actor) -> ServiceResult<()> {
        check_shape(server, &self.0.admin_audience())?;
        let defined = self.0.scopes().list(tenant).await?;
        if let Some(missing) = server.scopes.iter().find(|n| !defined.iter().any(|d| d.name.as_str() == n.as_str())) {
            return Err(ServiceError::NotFound(format!("scope `{missing}` (create it with `latchkey scope create`)")));
        }
        if let Some(c) = &server.client_id
            && self.0.clients().get(tenant, c).await?.is_none()
        {
            return Err(ServiceError::NotFound(format!("client `{c}`")));
        }
        self.0.store().put_resource_server(tenant, server, actor).await?;
        self.0.caches.forget_resources();
        Ok(())
    }

    pub async fn delete(&self, tenant: &TenantId, identifier: &str, actor: &Actor) -> ServiceResult<()> {
        self.0.store().delete_resource_server(tenant, identifier, actor).await?;
        self.0.caches.forget_resources();
        Ok(())
    }

    /// Every registered resource server, as this node caches them (dropped on every change).
    pub async fn cached(&self, tenant: &TenantId) -> ServiceResult<Arc<Vec<ResourceServer>>> {
        self.0.caches.resources(tenant).await
    }
}

impl Resources<'_> {
    /// The audience of a token for `resource`, or without one, the default audience; a
    /// request for admin scopes without a resource is for the admin API.
    pub async fn target(&self, tenant: &TenantId, resource: Option<&str>, scopes: &[String]) -> Result<String, String> {
        match resource {
            Some(resource) => self.audience_for(tenant, resource, scopes).await,
            None if scopes.iter().any(|s| AdminScope::is_admin_name(s)) => {
                self.audience_for(tenant, &self.0.admin_audience(), scopes).await
            }
            None => Ok(self.0.default_audience()),
        }
    }

    /// RFC 8707: the `resource` must be a registered resource server, and every requested
    /// scope that is not an OpenID scope must be one it accepts. Returns the audience, or
    /// why the target is invalid (`invalid_target`).
    pub async fn audience_for(&self, tenant: &TenantId, resource: &str, scopes: &[String]) -> Result<String, String> {
        if resource == self.0.admin_audience() {
            if let Some(s) =
                scopes.iter().find(|s| !ScopeName::BUILT_IN.contains(&s.as_str()) && AdminScope::parse(s).is_none())
            {
                return Err(format!("the admin API does not accept the `{s}` scope"));
            }
            return Ok(resource.to_owned());
        }
        if let Some(s) = scopes.iter().find(|s| AdminScope::is_admin_name(s)) {
            return Err(format!("`{s}` is a scope of the admin API alone (resource {})", self.0.admin_audience()));
        }
        let servers = self.cached(tenant).await.map_err(|e| {
            tracing::error!(error = %e, "cannot list resource servers");
            "resource servers are unavailable".to_owned()
        })?;
        let server = servers
            .iter()
            .find(|s| s.identifier == resource)
            .ok_or_else(|| format!("`{resource}` is not a registered resource"))?;
        if let Some(s) =
            scopes.iter().find(|s| !ScopeName::BUILT_IN.contains(&s.as_str()) && !server.scopes.contains(s))
        {
            return Err(format!("`{resource}` does not accept the `{s}` scope"));
        }
        Ok(server.identifier.clone())
    }
}

/// A resource as it may be registered, apart from what it refers to: an absolute URI
/// without a fragment (RFC 8707 §2), not the admin API, no admin scopes, a readable name.
pub(crate) fn check_shape(server: &ResourceServer, admin_audience: &str) -> ServiceResult<()> {
    if server.identifier == admin_audience {
        return Err(ServiceError::Invalid(format!("`{}` is the built-in admin API", server.identifier)));
    }
    if let Some(s) = server.scopes.iter().find(|s| AdminScope::is_admin_name(s)) {
        return Err(ServiceError::Forbidden(format!("`{s}`: scopes beginning with `admin:` are the admin API's")));
    }
    // RFC 8707 §2: an absolute URI without a fragment.
    let uri = url::Url::parse(&server.identifier)
        .map_err(|_| ServiceError::Invalid(format!("`{}` is not an absolute URI", server.identifier)))?;
    if uri.fragment().is_some() {
        return Err(ServiceError::Invalid("a resource identifier must not have a fragment".into()));
    }
    if server.name.trim().is_empty() || server.name.chars().count() > 200 || server.name.chars().any(char::is_control) {
        return Err(ServiceError::Invalid("a resource's name is 1 to 200 characters on one line".into()));
    }
    Ok(())
}
