//! Erasing a person (GDPR Art. 17): what the store is asked to do and the receipt it gives.

use std::collections::BTreeMap;

use crate::UnixTime;

/// How an erasure is carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureRequest {
    /// The receipt's id (random): the audit log records the erasure under it.
    pub receipt_id: String,
    pub at: UnixTime,
    /// Until when the clients that got tokens for the person refuse those issued before
    /// `at` (the longest an access token or a code could still be presented).
    pub revoke_until: UnixTime,
    /// Keyed hashes of the person's email address and phone number: messages still queued
    /// for them are dropped.
    pub recipient_hashes: Vec<String>,
    /// The clients of the sessions ended just before (their lists are gone by then): told
    /// to refuse the person's tokens too.
    pub session_clients: Vec<String>,
}

/// What was erased, when and by whom, and none of the erased data: the person is named only
/// by their keyed pseudonym.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ErasureReceipt {
    pub id: String,
    /// The keyed pseudonym the audit log knows the person by.
    pub subject_ref: String,
    #[serde(serialize_with = "crate::records::erasure::secs")]
    pub erased_at: UnixTime,
    /// Who erased it: `user:SUB` (the person), `admin-api:CLIENT…` or `cli`.
    pub by: String,
    /// How many of each kind of record went.
    pub removed: BTreeMap<String, u64>,
}

pub(crate) fn secs<S: serde::Serializer>(t: &UnixTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(t.secs())
}
