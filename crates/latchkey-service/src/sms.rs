//! Sending one text message through Twilio's Messages API (`[sms]`): `POST
//! {base}/2010-04-01/Accounts/{AccountSid}/Messages.json` with the form fields `To`, `From`
//! (or `MessagingServiceSid`) and `Body`, HTTP Basic as `AccountSid:AuthToken` (or an API
//! key `SK…:secret`), answered 201 with JSON holding `sid` and `status`. Through the outbound
//! guard, like every request Latchkey makes. The outbox ([`crate::outbox`]) decides when;
//! this module only speaks the API. Hand-written: Twilio's own Rust crates are not
//! maintained, and the call is one form POST.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use latchkey_config::SmsConfig;

use crate::mail::MailError as DeliveryError;
use crate::outbound::{Outbound, OutboundError, Purpose, Request};

/// One text message, as queued (sealed in the outbox).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TextMessage {
    pub to: String,
    pub body: String,
}

pub struct SmsSender {
    url: String,
    authorization: String,
    sender: (&'static str, String),
    timeout: Duration,
    outbound: Arc<Outbound>,
}

/// Twilio errors answered with 400 that are about the account or the sender, not the
/// message: 20003 authentication, 21212 an invalid `From`, 21408 the destination region not
/// enabled in Geo Permissions, 21606 a `From` that cannot send SMS, 21608 a trial account
/// texting an unverified number. The operator fixes those; the message waits for it.
const ACCOUNT_ERRORS: &[i64] = &[20003, 21212, 21408, 21606, 21608];

/// Twilio's answer when it refuses a message: its error `code` and `message`.
#[derive(serde::Deserialize)]
struct TwilioError {
    code: Option<i64>,
}

#[derive(serde::Deserialize)]
struct TwilioMessage {
    sid: String,
}

impl SmsSender {
    /// The sender for `[sms]`, with the resolved auth token (or API key secret).
    pub fn new(config: &SmsConfig, secret: &str, outbound: Arc<Outbound>) -> Self {
        let user = config.api_key_sid.as_deref().unwrap_or(&config.account_sid);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
        let sender = match (&config.from, &config.messaging_service_sid) {
            (_, Some(mg)) => ("MessagingServiceSid", mg.clone()),
            (from, None) => ("From", from.clone().unwrap_or_default()),
        };
        Self {
            url: format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                config.base_url.trim_end_matches('/'),
                config.account_sid
            ),
            authorization: format!("Basic {basic}"),
            sender,
            timeout: config.timeout,
            outbound,
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `message`; returns Twilio's message sid. A 400 refuses it for good (an invalid
    /// or unreachable number: Twilio's error code is kept, never the number); every other
    /// failure is for later.
    pub async fn send(&self, message: &TextMessage) -> Result<String, DeliveryError> {
        let fields =
            [("To", message.to.as_str()), (self.sender.0, self.sender.1.as_str()), ("Body", message.body.as_str())];
        let request = Request::post_form(self.url.clone(), &fields)
            .header("authorization", self.authorization.clone())
            .header("accept", "application/json")
            .timeout(self.timeout);
        let response = match self.outbound.send(Purpose::Sms, request).await {
            Ok(r) => r,
            Err(OutboundError::Refused(r)) => {
                return Err(DeliveryError::Unavailable(format!("sms.base_url is not reachable: {r}")));
            }
            Err(e @ OutboundError::CircuitOpen { .. }) => return Err(DeliveryError::Unavailable(e.to_string())),
            Err(e) => return Err(DeliveryError::Unavailable(format!("the SMS API: {e}"))),
        };
        let status = response.status();
        let body = response.body(64 * 1024).await.unwrap_or_default();
        match status {
            200..=299 => match serde_json::from_slice::<TwilioMessage>(&body) {
                Ok(m) => Ok(m.sid),
                Err(_) => {
                    Err(DeliveryError::Unavailable(format!("the SMS API answered {status} without a message sid")))
                }
            },
            // A message Twilio refuses (21211 not a valid number, 21610 the number opted
            // out, …) never will go; anything else (bad credentials 401, a wrong account
            // 404, 429, 5xx) is about the account or the API, the operator's to fix, and
            // the message waits.
            400 => {
                let code = serde_json::from_slice::<TwilioError>(&body).ok().and_then(|e| e.code);
                match code {
                    Some(code) if ACCOUNT_ERRORS.contains(&code) => Err(DeliveryError::Unavailable(format!(
                        "the SMS API refused the message for a reason of the account or the sender ({status}, error {code}): see the Twilio console"
                    ))),
                    Some(code) => Err(DeliveryError::Rejected(format!(
                        "the SMS API refused the message ({status}, error {code})"
                    ))),
                    None => Err(DeliveryError::Rejected(format!("the SMS API refused the message ({status})"))),
                }
            }
            _ => Err(DeliveryError::Unavailable(format!("the SMS API answered {status}"))),
        }
    }
}
