//! What the service tests share: services over a fresh test database, as the CLI opens them.

use latchkey_config::{Config, SecretRef};
use latchkey_core::Clock;
use latchkey_service::testing::TestDatabase;
use latchkey_service::{Foundation, Latchkey};

const MASTER_KEY: &str = "7ddae5519c751ebe83a87276bff1ea7c999545e7cf15ae0dd4e45aede8690bc3";

pub fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// The services over `db`, with cheap Argon2 and `configure` applied to the defaults.
pub async fn services(db: &TestDatabase, dir: &std::path::Path, configure: impl FnOnce(&mut Config)) -> Latchkey {
    let mut config = ok(Config::load(None, &[], dir), "default config");
    config.database.url = SecretRef::new(db.url.clone());
    config.secrets.master_key = Some(SecretRef::new(MASTER_KEY));
    config.passwords.memory_kib = 64;
    config.passwords.iterations = 1;
    configure(&mut config);
    let foundation = ok(Foundation::open(config, Clock::system()).await, "open");
    let config = foundation.config.clone();
    Latchkey::new(foundation, config)
}

/// A browser session of `sub` that signed in `signed_in_ago` seconds ago at `acr`, with an
/// hour left: its cookie secret is `cookie`, its public id `sid` (not stored: create it).
#[allow(dead_code)]
pub fn browser_session(
    s: &Latchkey,
    sub: &latchkey_core::domain::SubjectId,
    (cookie, sid): (&str, &str),
    acr: &str,
    signed_in_ago: u64,
) -> latchkey_core::records::BrowserSession {
    let now = s.clock.now();
    let auth_time = latchkey_core::UnixTime::from_secs(now.secs() - i64::try_from(signed_in_ago).unwrap_or(0));
    latchkey_core::records::BrowserSession {
        id_hash: s.token_hasher.hash("session", cookie),
        sid: sid.to_owned(),
        sub: sub.clone(),
        auth_time,
        amr: vec!["pwd".into()],
        acr: acr.to_owned(),
        created_at: auth_time,
        expires_at: now.plus(std::time::Duration::from_secs(3_600)),
        last_active_at: now,
        remember: false,
        user_agent: None,
        ip: None,
    }
}

/// `[mail]` for a relay nobody listens on: tests read the outbox instead ([`sent`]).
#[allow(dead_code)]
pub fn mail() -> latchkey_config::MailConfig {
    latchkey_config::MailConfig {
        from: "id@example.test".into(),
        host: "127.0.0.1".into(),
        port: Some(2525),
        tls: latchkey_config::MailTls::None,
        username: None,
        password: None,
        timeout: std::time::Duration::from_secs(5),
        retry_base: std::time::Duration::from_secs(30),
        circuit_cool_down: std::time::Duration::from_secs(30),
        templates: None,
    }
}

/// The emails waiting in the outbox, opened, with their kinds (and sent, so each is read
/// once).
#[allow(dead_code)]
pub async fn sent(s: &Latchkey) -> Vec<(String, latchkey_service::mail::Email)> {
    let store = latchkey_service::testing::store_of(s);
    let lease = std::time::Duration::from_secs(600);
    let claimed =
        ok(store.claim_messages(latchkey_core::records::Channel::Email, s.clock.now(), lease, 50).await, "claim");
    let mut out = Vec::new();
    for m in claimed {
        let aad = format!("outbox|{}|{}", m.tenant.as_str(), m.id);
        let plain = ok(s.master_key.open(&m.sealed, aad.as_bytes()), "open");
        // Delivered: gone from the outbox, so a clock moved past its lease never finds it again.
        ok(store.finish_message(&m, &latchkey_core::records::SendOutcome::Sent).await, "finish");
        out.push((m.kind.clone(), ok(serde_json::from_slice(&plain), "email")));
    }
    out
}

/// The token of the link to `path` in a message's text.
#[allow(dead_code)]
pub fn link_token(message: &latchkey_service::mail::Email, path: &str) -> String {
    let marker = format!("{path}?token=");
    let start = message.text.find(&marker).map(|i| i + marker.len());
    let start = start.unwrap_or_else(|| panic!("no {path} link in {}", message.text));
    message.text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

/// `[sms]` for a Twilio stand-in nobody runs: tests read the outbox instead ([`texts`]).
/// Texts may go to +44 numbers only.
#[allow(dead_code)]
pub fn sms() -> latchkey_config::SmsConfig {
    latchkey_config::SmsConfig {
        base_url: "http://127.0.0.1:9".into(),
        account_sid: format!("AC{}", "0".repeat(32)),
        api_key_sid: None,
        auth_token: latchkey_config::SecretRef::new("token"),
        from: Some("+15005550006".into()),
        messaging_service_sid: None,
        allowed_countries: vec!["+44".into()],
        daily_limits: latchkey_config::SmsDailyLimits::default(),
        timeout: std::time::Duration::from_secs(5),
        retry_base: std::time::Duration::from_secs(30),
        circuit_cool_down: std::time::Duration::from_secs(30),
    }
}

/// The text messages waiting in the outbox, opened, with their kinds (and sent).
#[allow(dead_code)]
pub async fn texts(s: &Latchkey) -> Vec<(String, latchkey_service::sms::TextMessage)> {
    let store = latchkey_service::testing::store_of(s);
    let lease = std::time::Duration::from_secs(600);
    let claimed =
        ok(store.claim_messages(latchkey_core::records::Channel::Sms, s.clock.now(), lease, 50).await, "claim");
    let mut out = Vec::new();
    for m in claimed {
        let aad = format!("outbox|{}|{}", m.tenant.as_str(), m.id);
        let plain = ok(s.master_key.open(&m.sealed, aad.as_bytes()), "open");
        ok(store.finish_message(&m, &latchkey_core::records::SendOutcome::Sent).await, "finish");
        out.push((m.kind.clone(), ok(serde_json::from_slice(&plain), "text")));
    }
    out
}

/// The 6-digit code at the start of a text.
#[allow(dead_code)]
pub fn code_in(text: &latchkey_service::sms::TextMessage) -> String {
    text.body.chars().take(6).collect()
}

/// A user an operator made in the default tenant: `name`, the address `name@example.test`
/// (verified or not) or none, no password, no passkey.
#[allow(dead_code)]
pub async fn account(s: &Latchkey, name: &str, address: Address) -> latchkey_core::records::User {
    use latchkey_core::domain::{Email, ProfileClaims, SubjectId, TenantId, Username};
    use latchkey_core::records::{Actor, NewUser};
    let (email, email_verified) = match address {
        Address::None => (None, false),
        Address::Unverified => (Some(format!("{name}@example.test")), false),
        Address::Verified => (Some(format!("{name}@example.test")), true),
    };
    let new = NewUser {
        sub: SubjectId::generate(),
        username: ok(Username::parse(name), "username"),
        email: email.map(|e| ok(Email::parse(&e), "email")),
        email_verified,
        name: None,
        profile: ProfileClaims::default(),
        password_hash: None,
        service_account: false,
    };
    ok(s.users().create(&TenantId::default_tenant(), new, &Actor::Cli).await, "user")
}

/// The address [`account`] gives.
#[allow(dead_code)]
#[derive(Clone, Copy)]
pub enum Address {
    None,
    Unverified,
    Verified,
}

/// The texts queued so far, waiting up to 4 s for the first (recoveries send in the
/// background).
#[allow(dead_code)]
pub async fn texts_when_sent(s: &Latchkey) -> Vec<(String, latchkey_service::sms::TextMessage)> {
    let mut got = Vec::new();
    for _ in 0..200 {
        got.extend(texts(s).await);
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    got
}

/// The token of the recovery link emailed (in the background), waiting up to 4 s for it.
#[allow(dead_code)]
pub async fn recovery_link_when_sent(s: &Latchkey) -> String {
    let path = latchkey_service::recovery::LINK_PATH;
    for _ in 0..200 {
        if let Some((_, m)) = sent(s).await.into_iter().find(|(kind, _)| kind == "recovery_link") {
            return link_token(&m, path);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no recovery link was sent")
}
