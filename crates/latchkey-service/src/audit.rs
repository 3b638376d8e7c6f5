//! The audit log. Every change records its event in the transaction that makes it (the
//! store's `audit!`); this is the reading side.

use latchkey_core::domain::TenantId;
use latchkey_core::records::{AuditEvent, AuditQuery};

use crate::{Latchkey, pass_through};

pub struct Audit<'a>(pub(crate) &'a Latchkey);

impl Audit<'_> {
    pass_through! {
        /// The newest events first.
        fn recent(tenant: &TenantId, limit: u32) -> Vec<AuditEvent> => recent_audit_events;
        /// One page of events, newest first, each with its position in the log.
        fn query(tenant: &TenantId, query: &AuditQuery) -> Vec<(i64, AuditEvent)> => audit_events;
    }
}
