//! Sending one email through the configured SMTP relay (`[mail]`), with `lettre` on rustls
//! and aws-lc-rs: TLS from the first byte, or STARTTLS required, or plain text to a relay on
//! this machine only (the config refuses anything else). The outbox ([`crate::outbox`])
//! decides when; this module only speaks SMTP.

use latchkey_config::{MailConfig, MailTls};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// One email, as queued (sealed in the outbox).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Why an email did not go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// It never will (an address the relay refuses for good, a message that cannot be built).
    #[error("{0}")]
    Permanent(String),
    /// It may later (the relay is down, busy, or answered 4xx).
    #[error("{0}")]
    Transient(String),
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// The transport for `[mail]`; the password is resolved from its secret reference.
    pub fn new(config: &MailConfig, password: Option<String>) -> Result<Self, String> {
        let from: Mailbox = config.from.parse().map_err(|e| format!("mail.from: {e}"))?;
        let builder = match config.tls {
            MailTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host),
            MailTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host),
            MailTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)),
        }
        .map_err(|e| format!("mail.host: {e}"))?;
        let mut builder = builder.port(config.port()).timeout(Some(config.timeout));
        if let (Some(user), Some(password)) = (&config.username, password) {
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Self { transport: builder.build(), from })
    }

    pub async fn send(&self, email: &Email) -> Result<(), MailError> {
        let to: Mailbox = email.to.parse().map_err(|e| MailError::Permanent(format!("recipient: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .multipart(MultiPart::alternative_plain_html(email.text.clone(), email.html.clone()))
            .map_err(|e| MailError::Permanent(format!("message: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(MailError::Permanent(e.to_string())),
            Err(e) => Err(MailError::Transient(e.to_string())),
        }
    }
}
