//! Session and logout-delivery rows, and the SQL both backends share for sessions.

use latchkey_core::UnixTime;
use latchkey_core::crypto::TokenHash;
use latchkey_core::domain::{ClientId, SubjectId, TenantId};
use latchkey_core::records::*;

use crate::StoreError;

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    id_hash: String,
    sid: String,
    sub: String,
    auth_time: i64,
    amr: String,
    acr: String,
    created_at: i64,
    expires_at: i64,
    last_active_at: i64,
    remember: bool,
    user_agent: Option<String>,
    ip: Option<String>,
}

impl TryFrom<SessionRow> for BrowserSession {
    type Error = StoreError;
    fn try_from(r: SessionRow) -> Result<Self, StoreError> {
        Ok(BrowserSession {
            id_hash: TokenHash::from_stored(r.id_hash),
            sid: r.sid,
            sub: SubjectId::parse(&r.sub).map_err(|e| StoreError::Corrupt(format!("session sub: {e}")))?,
            auth_time: UnixTime::from_secs(r.auth_time),
            amr: serde_json::from_str(&r.amr).map_err(|e| StoreError::Corrupt(format!("session amr: {e}")))?,
            acr: r.acr,
            created_at: UnixTime::from_secs(r.created_at),
            expires_at: UnixTime::from_secs(r.expires_at),
            last_active_at: UnixTime::from_secs(r.last_active_at),
            remember: r.remember,
            user_agent: r.user_agent,
            ip: r.ip,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    tenant_id: String,
    jti: String,
    client_id: String,
    sub: String,
    sid: String,
    attempts: i64,
}

impl TryFrom<DeliveryRow> for LogoutDelivery {
    type Error = StoreError;
    fn try_from(r: DeliveryRow) -> Result<Self, StoreError> {
        Ok(LogoutDelivery {
            tenant: TenantId::parse(&r.tenant_id).map_err(|e| StoreError::Corrupt(format!("delivery tenant: {e}")))?,
            jti: r.jti,
            client_id: ClientId::parse(&r.client_id)
                .map_err(|e| StoreError::Corrupt(format!("delivery client: {e}")))?,
            sub: SubjectId::parse(&r.sub).map_err(|e| StoreError::Corrupt(format!("delivery sub: {e}")))?,
            sid: r.sid,
            attempts: r.attempts,
        })
    }
}

/// Records that a session signed into a client ($1 tenant, $2 sid, $3 client id,
/// $4 back-channel, $5 now); again later, only the time and the back-channel flag change.
/// A macro so that a backend can put it in a larger statement with `concat!`.
macro_rules! record_session_client_sql {
    () => {
        "INSERT INTO session_clients (tenant_id, sid, client_id, backchannel, first_at, last_at)
         VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT (tenant_id, sid, client_id) DO UPDATE SET backchannel = excluded.backchannel, last_at = excluded.last_at"
    };
}
pub(crate) use record_session_client_sql;

pub(crate) const RECORD_SESSION_CLIENT: &str = record_session_client_sql!();
