//! Refresh-token rows.

use latchkey_core::UnixTime;
use latchkey_core::domain::{ClientId, SubjectId};
use latchkey_core::records::*;

use crate::StoreError;

#[derive(sqlx::FromRow)]
pub(crate) struct RefreshRow {
    pub(crate) family_id: String,
    pub(crate) grant_id: String,
    client_id: String,
    sub: String,
    /// Sealed (or in clear, for a row written before sealing: `sealed_gen` NULL); the
    /// store opens it (`refresh_from`) before the row becomes a token.
    pub(crate) grant_data: String,
    created_at: i64,
    expires_at: i64,
    rotated_at: Option<i64>,
    revoked_at: Option<i64>,
    pub(crate) sid: Option<String>,
    ends_with_session: bool,
    pub(crate) sealed_gen: Option<i64>,
}

impl TryFrom<RefreshRow> for StoredRefreshToken {
    type Error = StoreError;
    fn try_from(r: RefreshRow) -> Result<Self, StoreError> {
        Ok(StoredRefreshToken {
            family_id: r.family_id,
            grant_id: r.grant_id,
            client_id: ClientId::parse(&r.client_id)
                .map_err(|e| StoreError::Corrupt(format!("refresh token client: {e}")))?,
            sub: SubjectId::parse(&r.sub).map_err(|e| StoreError::Corrupt(format!("refresh token sub: {e}")))?,
            grant_data: r.grant_data,
            created_at: UnixTime::from_secs(r.created_at),
            expires_at: UnixTime::from_secs(r.expires_at),
            rotated_at: r.rotated_at.map(UnixTime::from_secs),
            revoked_at: r.revoked_at.map(UnixTime::from_secs),
            sid: r.sid,
            ends_with_session: r.ends_with_session,
        })
    }
}
