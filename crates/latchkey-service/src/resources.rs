//! API resources (RFC 8707): the audiences access tokens can be issued for.

use latchkey_core::domain::{ScopeName, TenantId};
use latchkey_core::records::{Actor, ResourceServer};

use crate::{Latchkey, pass_through};

pub struct Resources<'a>(pub(crate) &'a Latchkey);

impl Resources<'_> {
    pass_through! {
        fn list(tenant: &TenantId) -> Vec<ResourceServer> => list_resource_servers;
        /// Registers an API or changes its name and scopes.
        fn put(tenant: &TenantId, server: &ResourceServer, actor: &Actor) -> () => put_resource_server;
        fn delete(tenant: &TenantId, identifier: &str, actor: &Actor) -> () => delete_resource_server;
    }
}

impl Resources<'_> {
    /// RFC 8707: the `resource` must be a registered resource server, and every requested
    /// scope that is not an OpenID scope must be one it accepts. Returns the audience, or
    /// why the target is invalid (`invalid_target`).
    pub async fn audience_for(&self, tenant: &TenantId, resource: &str, scopes: &[String]) -> Result<String, String> {
        let servers = self.list(tenant).await.map_err(|e| {
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
