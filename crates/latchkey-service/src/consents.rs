//! What a user allowed a client.

use latchkey_core::domain::{ClientId, SubjectId, TenantId};
use latchkey_core::records::{Actor, Consent};

use crate::{Latchkey, pass_through};

pub struct Consents<'a>(pub(crate) &'a Latchkey);

impl Consents<'_> {
    pass_through! {
        fn get(tenant: &TenantId, sub: &SubjectId, client: &ClientId) -> Option<Consent> => consent;
        /// Replaces what `sub` allowed `client` (the caller merges with the earlier consent).
        fn save(tenant: &TenantId, sub: &SubjectId, client: &ClientId, consent: &Consent, actor: &Actor) -> () => save_consent;
    }
}
