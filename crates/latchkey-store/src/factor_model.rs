//! Passkey rows.

use latchkey_core::UnixTime;
use latchkey_core::domain::SubjectId;
use latchkey_core::records::*;

pub(crate) fn time(secs: i64) -> UnixTime {
    UnixTime::from_secs(secs)
}

#[derive(sqlx::FromRow)]
pub(crate) struct PasskeyRow {
    pub credential_id: String,
    pub sub: String,
    pub name: String,
    pub credential: String,
    pub sign_count: i64,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl TryFrom<PasskeyRow> for StoredPasskey {
    type Error = crate::StoreError;
    fn try_from(r: PasskeyRow) -> Result<Self, Self::Error> {
        Ok(StoredPasskey {
            credential_id: r.credential_id,
            sub: SubjectId::parse(&r.sub).map_err(|e| crate::StoreError::Corrupt(e.to_string()))?,
            name: r.name,
            credential: r.credential,
            sign_count: u32::try_from(r.sign_count).unwrap_or(u32::MAX),
            backup_eligible: r.backup_eligible,
            backup_state: r.backup_state,
            created_at: time(r.created_at),
            last_used_at: r.last_used_at.map(time),
        })
    }
}
