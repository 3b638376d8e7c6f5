//! The outbox: emails queued inside the transaction of the change that causes them, their
//! recipient and content sealed under the master key (bound to the message's id, so a sealed
//! payload cannot be moved to another row), and sent by a background sender on any node —
//! one sender per message across nodes, through the store's leased claims.
//!
//! The relay has a circuit breaker (per node): after [`BREAKER_FAILURES`] failures in a row
//! the sender stops claiming for `mail.circuit_cool_down` and messages wait in the outbox
//! instead of piling up connections and timeouts; then one message goes as the trial.
//! Failures that may pass are retried with backoff; a message the relay refuses for good is
//! given up; one whose link or code has expired is dropped unsent. Every step is audited
//! (by kind, never by recipient or content).

use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey_core::UnixTime;
use latchkey_core::domain::TenantId;
use latchkey_core::records::{Actor, Channel, NewMessage, QueuedMessage, SendOutcome};
use latchkey_store::StoreTx;

use crate::email_templates::EmailTemplates;
use crate::mail::{Email, MailError, Mailer};
use crate::sms::{SmsSender, TextMessage};
use crate::{Latchkey, ServiceError, ServiceResult};

/// Messages claimed per round, sent one after the other.
pub const BATCH: u32 = 5;

/// A claimed message is not claimed again for this long: a whole round at the relay's
/// timeout, and a margin. (A node that stops mid-round leaves its claims to wait so long.)
pub fn lease(timeout: Duration) -> Duration {
    timeout.saturating_mul(BATCH) + Duration::from_secs(5)
}
/// How often the sender looks for due messages.
pub const TICK: Duration = Duration::from_secs(1);
pub const BREAKER_FAILURES: u32 = 5;
/// The breakers' keys: the mail relay, the SMS API.
const RELAY: &str = "smtp";
const SMS_API: &str = "sms";

/// What carries one channel's messages: the SMTP relay, the SMS API.
#[async_trait::async_trait]
pub trait Carrier: Send + Sync {
    fn channel(&self) -> Channel;
    /// How long one delivery may take.
    fn timeout(&self) -> Duration;
    /// Sends one opened payload (`id` is the outbox's, stable across attempts).
    async fn send(&self, id: &str, plain: &[u8]) -> Result<(), MailError>;
}

#[async_trait::async_trait]
impl Carrier for Mailer {
    fn channel(&self) -> Channel {
        Channel::Email
    }
    fn timeout(&self) -> Duration {
        Mailer::timeout(self)
    }
    async fn send(&self, id: &str, plain: &[u8]) -> Result<(), MailError> {
        let email: Email =
            serde_json::from_slice(plain).map_err(|e| MailError::Rejected(format!("the payload: {e}")))?;
        Mailer::send(self, id, &email).await
    }
}

#[async_trait::async_trait]
impl Carrier for SmsSender {
    fn channel(&self) -> Channel {
        Channel::Sms
    }
    fn timeout(&self) -> Duration {
        SmsSender::timeout(self)
    }
    async fn send(&self, _id: &str, plain: &[u8]) -> Result<(), MailError> {
        let text: TextMessage =
            serde_json::from_slice(plain).map_err(|e| MailError::Rejected(format!("the payload: {e}")))?;
        SmsSender::send(self, &text).await.map(|_| ())
    }
}

/// The wait before retry number `attempts + 1`: `base`, doubling, at most an hour.
pub fn backoff(base: Duration, attempts: u32) -> Duration {
    base.saturating_mul(1u32 << attempts.min(16)).min(Duration::from_secs(3_600))
}

fn aad(tenant: &TenantId, id: &str) -> Vec<u8> {
    format!("outbox|{}|{id}", tenant.as_str()).into_bytes()
}

pub struct Outbox<'a>(pub(crate) &'a Latchkey);

impl Outbox<'_> {
    /// Whether mail is configured (`[mail]`): without it nothing that needs mail is offered.
    pub fn mail_enabled(&self) -> bool {
        self.0.config.mail.is_some()
    }

    /// Whether the relay's circuit is open on this node: messages are waiting, not failing.
    pub fn mail_delayed(&self) -> bool {
        self.0.mail_breaker.admit_check(RELAY, Instant::now())
    }

    /// Whether SMS is configured (`[sms]`).
    pub fn sms_enabled(&self) -> bool {
        self.0.config.sms.is_some()
    }

    /// Whether the SMS API's circuit is open on this node.
    pub fn sms_delayed(&self) -> bool {
        self.0.sms_breaker.admit_check(SMS_API, Instant::now())
    }

    /// Queues a text message inside `tx`, sealed like an email.
    pub async fn queue_text(
        &self,
        tx: &mut dyn StoreTx,
        tenant: &TenantId,
        kind: &str,
        text: &TextMessage,
        expires_at: UnixTime,
        actor: &Actor,
    ) -> ServiceResult<()> {
        if !self.sms_enabled() {
            return Err(ServiceError::Invalid("SMS is not configured here ([sms] in latchkey.toml)".into()));
        }
        let id = latchkey_core::crypto::random::token_string::<16>();
        let plain = serde_json::to_vec(text).map_err(|e| ServiceError::Unavailable(format!("text: {e}")))?;
        let message = NewMessage {
            sealed: self.0.master_key.seal(&plain, &aad(tenant, &id)),
            recipient_hash: Some(self.recipient_hash(&text.to)),
            id,
            channel: Channel::Sms,
            kind: kind.to_owned(),
            not_before: self.0.clock.now(),
            expires_at,
        };
        Ok(tx.enqueue_message(tenant, &message, actor).await?)
    }

    /// Queues `email` inside `tx`, to be sent once it commits and dropped unsent after
    /// `expires_at`. `kind` names what it is (`test`, `email_verification`, …).
    pub async fn queue_email(
        &self,
        tx: &mut dyn StoreTx,
        tenant: &TenantId,
        kind: &str,
        email: &Email,
        expires_at: UnixTime,
        actor: &Actor,
    ) -> ServiceResult<()> {
        if !self.mail_enabled() {
            return Err(ServiceError::Invalid("mail is not configured here ([mail] in latchkey.toml)".into()));
        }
        let id = latchkey_core::crypto::random::token_string::<16>();
        let plain = serde_json::to_vec(email).map_err(|e| ServiceError::Unavailable(format!("email: {e}")))?;
        let message = NewMessage {
            sealed: self.0.master_key.seal(&plain, &aad(tenant, &id)),
            recipient_hash: Some(self.recipient_hash(&email.to)),
            id,
            channel: Channel::Email,
            kind: kind.to_owned(),
            not_before: self.0.clock.now(),
            expires_at,
        };
        Ok(tx.enqueue_message(tenant, &message, actor).await?)
    }

    /// The keyed hash a queued message names its recipient (an address or a number) by.
    pub(crate) fn recipient_hash(&self, to: &str) -> String {
        self.0.token_hasher.hash("message_recipient", &to.trim().to_lowercase()).as_str().to_owned()
    }

    /// The email templates (built in, with the operator's overrides), loaded and checked
    /// on first use; a server loads them at start-up ([`spawn_sender`]).
    pub fn templates(&self) -> ServiceResult<&EmailTemplates> {
        if let Some(t) = self.0.email_templates.get() {
            return Ok(t);
        }
        let dir =
            self.0.config.mail.as_ref().and_then(|m| m.templates.as_ref()).map(|d| self.0.config.base_dir().join(d));
        let loaded = EmailTemplates::load(dir.as_deref(), &self.0.issuer).map_err(ServiceError::Unavailable)?;
        Ok(self.0.email_templates.get_or_init(|| loaded))
    }

    /// The email `message` to `to`, rendered from its templates with `values`.
    pub fn render(&self, message: &str, to: &str, values: minijinja::Value) -> ServiceResult<Email> {
        self.templates()?.render(message, to, values).map_err(ServiceError::Unavailable)
    }

    /// Queues a test email to `to` (`latchkey mail test`), valid for an hour.
    pub async fn queue_test_email(&self, tenant: &TenantId, to: &str, actor: &Actor) -> ServiceResult<()> {
        let address: lettre::message::Mailbox =
            to.parse().map_err(|e| ServiceError::Invalid(format!("`{to}` is not an email address: {e}")))?;
        let email = self.render("test", &address.to_string(), minijinja::Value::from(()))?;
        let mut tx = self.0.store().transaction().await?;
        let expires = self.0.clock.now().plus(Duration::from_secs(3_600));
        self.queue_email(tx.as_mut(), tenant, "test", &email, expires, actor).await?;
        tx.commit().await?;
        Ok(())
    }

    fn breaker(&self, channel: Channel) -> (&crate::outbound::breaker::Breakers, &'static str) {
        match channel {
            Channel::Email => (&self.0.mail_breaker, RELAY),
            Channel::Sms => (&self.0.sms_breaker, SMS_API),
        }
    }

    /// One round of a sender: drops expired messages, then claims and sends due messages of
    /// the carrier's channel, unless its circuit is open. Returns how many it sent.
    pub async fn deliver_due(&self, carrier: &dyn Carrier) -> ServiceResult<usize> {
        let channel = carrier.channel();
        let (breaker, key) = self.breaker(channel);
        let store = self.0.store();
        let now = self.0.clock.now();
        for (_, channel, kind) in store.drop_expired_messages(now, 1_000).await? {
            metrics::counter!("latchkey_messages_total", "channel" => channel.as_str(), "outcome" => "expired", "kind" => kind)
                .increment(1);
        }
        if breaker.admit_check(key, Instant::now()) {
            return Ok(0);
        }
        let lease = lease(carrier.timeout());
        let started = Instant::now();
        let claimed = store.claim_messages(channel, now, lease, BATCH).await?;
        let mut sent = 0;
        for message in claimed {
            // Never send past the lease: another node may take the message after it.
            let outcome = if started.elapsed() + carrier.timeout() + Duration::from_secs(1) > lease {
                SendOutcome::Held { at: self.0.clock.now() }
            } else {
                self.deliver(carrier, &message).await
            };
            let label = match &outcome {
                SendOutcome::Sent => "sent",
                SendOutcome::Retry { .. } => "retried",
                SendOutcome::Held { .. } => "held",
                SendOutcome::Failed { .. } => "failed",
            };
            sent += usize::from(label == "sent");
            metrics::counter!("latchkey_messages_total", "channel" => channel.as_str(), "outcome" => label, "kind" => message.kind.clone())
                .increment(1);
            match store.finish_message(&message, &outcome).await {
                Ok(()) => {}
                Err(latchkey_store::StoreError::NotFound(what)) => {
                    tracing::warn!(message = %message.id, "{what} was lost (its lease ran out); the other sender has it");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(sent)
    }

    async fn deliver(&self, carrier: &dyn Carrier, message: &QueuedMessage) -> SendOutcome {
        let at = |wait: Duration| self.0.clock.now().plus(wait);
        let channel = carrier.channel();
        let (breaker, key) = self.breaker(channel);
        if let Err(open_for) = breaker.admit(key, Instant::now()) {
            return SendOutcome::Held { at: at(open_for) };
        }
        let plain = match self.0.master_key.open(&message.sealed, &aad(&message.tenant, &message.id)) {
            Ok(plain) => plain,
            Err(e) => return SendOutcome::Failed { error: format!("the sealed message cannot be opened: {e}") },
        };
        let result = carrier.send(&message.id, &plain).await;
        // A recipient refused for good says the carrier works.
        let works = !matches!(result, Err(MailError::Unavailable(_)));
        if breaker.record(key, works, Instant::now()) == crate::outbound::breaker::Transition::Opened {
            tracing::warn!(
                channel = channel.as_str(),
                "the {key} carrier failed {BREAKER_FAILURES} times in a row: messages wait in the outbox"
            );
        }
        metrics::gauge!("latchkey_outbox_circuit_open", "channel" => channel.as_str())
            .set(if breaker.open_count() > 0 { 1.0 } else { 0.0 });
        match result {
            Ok(()) => SendOutcome::Sent,
            Err(MailError::Rejected(error)) => SendOutcome::Failed { error },
            Err(MailError::Unavailable(error)) => {
                let base = match channel {
                    Channel::Email => self.0.config.mail.as_ref().map(|m| m.retry_base),
                    Channel::Sms => self.0.config.sms.as_ref().map(|m| m.retry_base),
                };
                let base = base.unwrap_or(Duration::from_secs(30));
                SendOutcome::Retry { at: at(backoff(base, message.attempts)), error }
            }
        }
    }
}

/// The senders of a server node, one per configured channel (`[mail]`, `[sms]`). A carrier
/// that cannot be set up (a secret reference that does not resolve, a broken template) is
/// an error at start-up.
pub fn spawn_senders(
    services: Arc<Latchkey>,
    outbound: Arc<crate::outbound::Outbound>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, String> {
    let mut carriers: Vec<Box<dyn Carrier>> = Vec::new();
    if let Some(config) = services.config.mail.clone() {
        let password = match &config.password {
            Some(r) => Some(
                r.resolve(services.config.base_dir()).map_err(|e| format!("mail.password: {e}"))?.expose().to_owned(),
            ),
            None => None,
        };
        carriers.push(Box::new(Mailer::new(&config, password)?));
        services.outbox().templates().map_err(|e| e.to_string())?;
    }
    if let Some(config) = services.config.sms.clone() {
        let secret =
            config.auth_token.resolve(services.config.base_dir()).map_err(|e| format!("sms.auth_token: {e}"))?;
        carriers.push(Box::new(SmsSender::new(&config, secret.expose(), outbound)));
    }
    Ok(carriers
        .into_iter()
        .map(|carrier| {
            let services = services.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(TICK);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(e) = services.outbox().deliver_due(carrier.as_ref()).await {
                        tracing::warn!(error = %e, "the outbox sender cannot reach the database");
                    }
                }
            })
        })
        .collect())
}
