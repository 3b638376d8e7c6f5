//! Sending one email through the configured SMTP relay (`[mail]`), with `lettre` on rustls
//! and aws-lc-rs: TLS from the first byte, or STARTTLS required, or plain text to a relay on
//! this machine only (the config refuses anything else). The outbox ([`crate::outbox`])
//! decides when; this module only speaks SMTP.

use std::time::Duration;

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

/// Why an email did not go. The texts are summaries (a reply code and enhanced status, a
/// kind of failure), never the relay's own words, which can repeat the recipient's address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// This message never will: the relay refused its recipient for good (5.1.x), or it
    /// cannot be built. The relay itself works.
    #[error("{0}")]
    Rejected(String),
    /// The relay is not taking mail now: down, slow, busy, refusing the login or the sender
    /// (a 5xx about the relay is its operator's to fix, and the message waits for that).
    #[error("{0}")]
    Unavailable(String),
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
}

/// Enhanced status codes (RFC 3463) that refuse the recipient, not the relay or sender.
const RECIPIENT_REFUSED: [&str; 5] = ["5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10"];

fn classify(e: &lettre::transport::smtp::Error) -> MailError {
    if e.is_timeout() {
        return MailError::Unavailable("the relay timed out".into());
    }
    if e.is_tls() {
        return MailError::Unavailable("TLS with the relay failed".into());
    }
    let Some(code) = e.status() else {
        return MailError::Unavailable("the connection to the relay failed".into());
    };
    let text = e.to_string();
    let enhanced = text.split(|c: char| c.is_whitespace() || c == ':' || c == ',').find(|w| {
        RECIPIENT_REFUSED.contains(w) || (w.len() >= 5 && w.starts_with(['4', '5']) && w.chars().nth(1) == Some('.'))
    });
    let summary = match enhanced {
        Some(status) => format!("the relay answered {code} {status}"),
        None => format!("the relay answered {code}"),
    };
    match enhanced {
        Some(status) if e.is_permanent() && RECIPIENT_REFUSED.contains(&status) => MailError::Rejected(summary),
        _ => MailError::Unavailable(summary),
    }
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
        Ok(Self { transport: builder.build(), from, timeout: config.timeout })
    }

    /// How long one delivery may take, the whole SMTP dialogue included.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `email` with a Message-ID made from `message_id` (the outbox's id), so a
    /// message sent twice (a node stopped between sending and recording it) is one message
    /// to the receiving side. The whole dialogue is bounded by the timeout: lettre's bounds
    /// only the connect.
    pub async fn send(&self, message_id: &str, email: &Email) -> Result<(), MailError> {
        let to: Mailbox =
            email.to.parse().map_err(|_| MailError::Rejected("the recipient is not an address".into()))?;
        let domain = self.from.email.domain().to_owned();
        let message = Message::builder()
            .message_id(Some(format!("<{message_id}@{domain}>")))
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .multipart(MultiPart::alternative_plain_html(email.text.clone(), email.html.clone()))
            .map_err(|_| MailError::Rejected("the message cannot be built".into()))?;
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(MailError::Unavailable("the relay timed out".into())),
        }
    }
}
