//! The outbox: messages (emails, text messages) written in the same transaction as the
//! change that causes them, and sent later by whichever node claims them. What a message
//! says and to whom is sealed under the master key before it reaches the store.

use crate::UnixTime;
use crate::domain::TenantId;

/// How a message leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "email" => Some(Self::Email),
            "sms" => Some(Self::Sms),
            _ => None,
        }
    }
}

/// A message to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Random, unique: what the sealed payload is bound to.
    pub id: String,
    pub channel: Channel,
    /// What the message is (`email_verification`, `recovery_link`, …): for the audit log
    /// and metrics, never personal data.
    pub kind: String,
    /// The recipient and content, sealed.
    pub sealed: Vec<u8>,
    /// A keyed hash of the recipient, so erasing them can drop what waits for them.
    pub recipient_hash: Option<String>,
    /// Not sent before this (now, usually).
    pub not_before: UnixTime,
    /// Dropped unsent after this: the link or code inside has expired.
    pub expires_at: UnixTime,
}

/// A queued message a sender claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub tenant: TenantId,
    pub id: String,
    pub channel: Channel,
    pub kind: String,
    pub sealed: Vec<u8>,
    /// Attempts before this one.
    pub attempts: u32,
    /// This claim's mark: finishing the message checks it, so a sender whose lease ran out
    /// (and the message went to another) cannot finish it.
    pub claim: u32,
    pub expires_at: UnixTime,
}

/// What became of an attempt to send a claimed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Handed to the provider: the message is deleted.
    Sent,
    /// Try again at this time (a timeout, the relay down or refusing for now).
    Retry { at: UnixTime, error: String },
    /// Not tried (the circuit opened meanwhile): due again at this time, the claim not
    /// counted as an attempt.
    Held { at: UnixTime },
    /// Never going to work (an address or number the provider refuses): deleted.
    Failed { error: String },
}

/// A single-use token to store (only its hash), inside the transaction that sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOneTimeToken {
    pub hash: crate::crypto::TokenHash,
    /// What it is for (`email_verification`, `recovery_link`, …): a token is only ever
    /// looked up for its own purpose.
    pub purpose: String,
    pub sub: crate::domain::SubjectId,
    /// What it is about (the address being verified), or empty.
    pub detail: String,
    pub expires_at: UnixTime,
}

/// A stored single-use token, as a lookup or a consumption returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeToken {
    pub purpose: String,
    pub sub: crate::domain::SubjectId,
    pub detail: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}
