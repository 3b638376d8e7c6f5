//! Limits on sending people messages (verification and recovery links, codes): per account,
//! per address or number, and per client IP, counted in the database so that every node
//! shares them. A message is **reserved before it is queued**: one statement counts it
//! against each key (the same atomic counters as sign-in attempts), and a message whose
//! count passes a limit is refused and given back, so refused requests never use up
//! anyone's budget. A sent message stays counted for the window.
//!
//! If the counters cannot be reached the message is refused (fail closed): an unbounded
//! sender is what these limits exist to prevent.

use std::net::IpAddr;
use std::time::Duration;

use latchkey_core::domain::{SubjectId, TenantId};
use latchkey_store::StoreTx;

use crate::{Latchkey, ServiceError};

/// The window every message limit counts in.
pub const WINDOW: Duration = Duration::from_secs(3_600);
/// Messages of one purpose per account per hour.
pub const PER_ACCOUNT: i64 = 5;
/// Messages of one purpose per address or number per hour.
pub const PER_RECIPIENT: i64 = 5;
/// Messages of any purpose asked for from one IP (an IPv4 address or IPv6 /64) per hour.
pub const PER_IP: i64 = 20;
const DAY: Duration = Duration::from_secs(86_400);

/// What a message is counted against.
pub enum Counted<'a> {
    Account(&'a SubjectId),
    /// An address or number, counted by its keyed hash (never in clear).
    Recipient(&'a str),
    Ip(IpAddr),
}

/// Why a message was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Limited {
    /// A limit is reached: try again later.
    TooMany,
    /// The counters cannot be reached.
    Unavailable,
}

impl From<Limited> for ServiceError {
    fn from(l: Limited) -> Self {
        match l {
            Limited::TooMany => {
                ServiceError::Invalid("too many messages were sent for this recently; try again in an hour".into())
            }
            Limited::Unavailable => ServiceError::Unavailable("the message limits cannot be reached".into()),
        }
    }
}

pub struct MessageLimits<'a>(pub(crate) &'a Latchkey);

impl MessageLimits<'_> {
    fn key(&self, purpose: &str, counted: &Counted<'_>) -> (String, i64) {
        match counted {
            Counted::Account(sub) => (format!("message:{purpose}:sub:{sub}"), PER_ACCOUNT),
            Counted::Recipient(to) => {
                let normalised = to.trim().to_lowercase();
                let hash = self.0.token_hasher.hash("message_recipient", &normalised);
                (format!("message:{purpose}:to:{}", hash.as_str()), PER_RECIPIENT)
            }
            Counted::Ip(ip) => (format!("message:ip:{}", self.0.throttle_ip(*ip)), PER_IP),
        }
    }

    /// Counts one message of `purpose` against each of `counted`, or refuses it (and counts
    /// nothing) if any limit is reached.
    pub async fn reserve(&self, tenant: &TenantId, purpose: &str, counted: &[Counted<'_>]) -> Result<(), Limited> {
        let keys: Vec<(String, i64)> = counted.iter().map(|c| self.key(purpose, c)).collect();
        self.reserve_all(tenant, purpose, &keys, WINDOW).await
    }

    /// [`Self::reserve`] with keys and limits of the caller's own (an account from one IP,
    /// say), each under `purpose`.
    pub async fn reserve_keyed(&self, tenant: &TenantId, purpose: &str, keys: &[(&str, i64)]) -> Result<(), Limited> {
        self.reserve_keyed_within(tenant, purpose, keys, WINDOW).await
    }

    /// [`Self::reserve_keyed`] within `window` (at most a day, as long as counters are kept).
    pub async fn reserve_keyed_within(
        &self,
        tenant: &TenantId,
        purpose: &str,
        keys: &[(&str, i64)],
        window: Duration,
    ) -> Result<(), Limited> {
        let keys: Vec<(String, i64)> =
            keys.iter().map(|(k, limit)| (format!("message:{purpose}:key:{k}"), *limit)).collect();
        self.reserve_all(tenant, purpose, &keys, window).await
    }

    /// Counts a text message against `[sms].daily_limits`: the number, the account (if any),
    /// the client IP (if a person asked from the web) and all texts of the tenant, per day.
    pub async fn reserve_text(
        &self,
        tenant: &TenantId,
        number: &str,
        sub: Option<&SubjectId>,
        ip: Option<IpAddr>,
    ) -> Result<(), Limited> {
        let keys = self.text_keys(number, sub, ip)?;
        self.reserve_all(tenant, "text", &keys, DAY).await
    }

    fn text_keys(
        &self,
        number: &str,
        sub: Option<&SubjectId>,
        ip: Option<IpAddr>,
    ) -> Result<Vec<(String, i64)>, Limited> {
        let Some(sms) = &self.0.config.sms else { return Err(Limited::Unavailable) };
        let l = &sms.daily_limits;
        let number = self.0.token_hasher.hash("message_recipient", number);
        let mut keys = vec![
            ("text:all".to_owned(), i64::from(l.total)),
            (format!("text:to:{}", number.as_str()), i64::from(l.per_number)),
        ];
        keys.extend(sub.map(|s| (format!("text:sub:{s}"), i64::from(l.per_account))));
        keys.extend(ip.map(|ip| (format!("text:ip:{}", self.0.throttle_ip(ip)), i64::from(l.per_ip))));
        Ok(keys)
    }

    /// [`Self::reserve`] inside `tx`: counted with the change, since on SQLite nothing else
    /// can write while `tx` is open. A refused message still counts (its counters are past
    /// their limits already).
    pub async fn reserve_in(
        &self,
        tx: &mut dyn StoreTx,
        tenant: &TenantId,
        purpose: &str,
        counted: &[Counted<'_>],
    ) -> Result<(), Limited> {
        let keys: Vec<(String, i64)> = counted.iter().map(|c| self.key(purpose, c)).collect();
        self.reserve_all_in(tx, tenant, purpose, &keys, WINDOW).await
    }

    async fn reserve_all_in(
        &self,
        tx: &mut dyn StoreTx,
        tenant: &TenantId,
        purpose: &str,
        keys: &[(String, i64)],
        window: Duration,
    ) -> Result<(), Limited> {
        let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        let reserved = match tx.reserve_attempts(tenant, &names, self.0.clock.now(), window).await {
            Ok(r) if r.len() == names.len() => r,
            Ok(_) => return Err(unavailable("the counters answered for other keys")),
            Err(e) => return Err(unavailable(e)),
        };
        if keys.iter().zip(&reserved).all(|((_, limit), r)| r.count <= *limit) {
            return Ok(());
        }
        refused(purpose)
    }

    async fn reserve_all(
        &self,
        tenant: &TenantId,
        purpose: &str,
        keys: &[(String, i64)],
        window: Duration,
    ) -> Result<(), Limited> {
        let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        let store = self.0.store();
        let reserved = match store.reserve_attempts(tenant, &names, self.0.clock.now(), window).await {
            Ok(r) if r.len() == names.len() => r,
            Ok(_) => return Err(unavailable("the counters answered for other keys")),
            Err(e) => return Err(unavailable(e)),
        };
        if keys.iter().zip(&reserved).all(|((_, limit), r)| r.count <= *limit) {
            return Ok(());
        }
        let back: Vec<(&str, _)> = names.iter().copied().zip(reserved.iter().copied()).collect();
        if let Err(e) = store.release_attempts(tenant, &back).await {
            tracing::warn!(error = %e, "cannot give a refused message's reservation back");
        }
        refused(purpose)
    }
}

fn refused(purpose: &str) -> Result<(), Limited> {
    metrics::counter!("latchkey_messages_refused_total", "kind" => purpose.to_owned()).increment(1);
    tracing::info!(kind = purpose, "message refused: too many recently");
    Err(Limited::TooMany)
}

fn unavailable(e: impl std::fmt::Display) -> Limited {
    tracing::error!(error = %e, "cannot count a message; refusing it (fail closed)");
    Limited::Unavailable
}
