//! Scopes: the built-in OpenID Connect scopes and the custom ones an operator defines.

use latchkey_core::domain::{ScopeName, TenantId};
use latchkey_core::records::{Actor, ScopeDefinition};

use crate::{Latchkey, pass_through};

pub struct Scopes<'a>(pub(crate) &'a Latchkey);

impl Scopes<'_> {
    pass_through! {
        fn list(tenant: &TenantId) -> Vec<ScopeDefinition> => list_scopes;
        /// Creates a custom scope or changes its description.
        fn put(tenant: &TenantId, name: &ScopeName, description: &str, actor: &Actor) -> () => put_scope;
        /// Deletes a custom scope; a built-in scope is `Invalid`.
        fn delete(tenant: &TenantId, name: &ScopeName, actor: &Actor) -> () => delete_scope;
    }
}
