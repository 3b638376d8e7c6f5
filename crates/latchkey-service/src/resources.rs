//! API resources (RFC 8707): the audiences access tokens can be issued for.

use latchkey_core::domain::TenantId;
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
