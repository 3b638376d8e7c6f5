//! What the admin API asks of the store: pages of users and audit events, and the
//! responses kept for `Idempotency-Key`.

use crate::domain::{Email, GroupName, RoleName, Username};

/// The most one page holds.
pub const MAX_PAGE: u32 = 200;

/// A page of users, ordered by username; every filter given must hold.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    /// Usernames that begin with this (lowercase; `%` and `_` are plain characters).
    pub username_prefix: Option<String>,
    /// The user with exactly this address.
    pub email: Option<Email>,
    pub locked: Option<bool>,
    pub service_account: Option<bool>,
    /// Who holds the role, directly or through a group.
    pub role: Option<RoleName>,
    pub group: Option<GroupName>,
    /// Only users whose username sorts after this one (the cursor).
    pub after: Option<Username>,
    pub limit: u32,
}

/// A page of audit events, newest first (oldest first with `oldest_first`); every filter
/// given must hold.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub target: Option<String>,
    pub action: Option<String>,
    /// Events at or after this time (seconds).
    pub since: Option<i64>,
    /// Events before this time (seconds).
    pub until: Option<i64>,
    /// Only events older than this one (the cursor: an event's position in the log).
    pub before_id: Option<i64>,
    /// Only events newer than this one (the cursor of an oldest-first read).
    pub after_id: Option<i64>,
    pub oldest_first: bool,
    pub limit: u32,
}

/// What an earlier create with the same `Idempotency-Key` left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotentClaim {
    /// The key is new: the create goes ahead, and its response is kept.
    Fresh,
    /// A create with this key is still running.
    Running { request_hash: String },
    /// A create with this key finished: its response, to send again.
    Done { request_hash: String, status: u16, location: Option<String>, body: String },
}

/// Escapes a prefix for `LIKE … ESCAPE '\'`, so `%` and `_` match themselves.
pub fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod tests {
    use super::like_prefix;

    #[test]
    fn like_wildcards_match_themselves() {
        assert_eq!(like_prefix("a_b%c\\"), "a\\_b\\%c\\\\%");
        assert_eq!(like_prefix(""), "%");
    }
}
