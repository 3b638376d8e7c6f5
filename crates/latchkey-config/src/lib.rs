//! `latchkey.toml`: one typed `Config` with every default in one place.
//!
//! Unknown keys are errors (a typo must never be silently ignored), every relative path is
//! resolved against the directory of the config file, and any key can be overridden by an
//! environment variable `LATCHKEY_<SECTION>__<KEY>`.

mod federation;
mod forward_auth;
mod limits;
mod load;
mod mail;
mod outbound;
mod privacy;
mod recovery;
mod retention;
mod secret;
mod signin;
mod sms;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use latchkey_core::crypto::PasswordPolicy;
use latchkey_core::domain::SigningAlg;
use latchkey_core::duration::serde_human;
use serde::{Deserialize, Serialize};
use url::Url;

pub use federation::{
    FederationConfig, GOOGLE_ISSUER, GroupMapping, MAPPABLE_CLAIMS, NewAccounts, ProviderConfig, ProviderKind,
};
pub use forward_auth::{ForwardAuthConfig, IdentityHeaders};
pub use limits::ServerLimits;
pub use load::{ConfigError, ConfigSource, find_config_file};
pub use mail::{MailConfig, MailTls};
pub use outbound::{AllowEntry, OutboundConfig, Purpose};
pub use privacy::{IpRecording, PrivacyConfig, UserAgentRecording};
pub use recovery::RecoveryConfig;
pub use retention::{InactiveAccountAction, RetentionConfig};
pub use secret::{Secret, SecretError, SecretRef};
pub use signin::{EmailAtSignUp, Identifier, PasskeysConfig, RegistrationConfig, RegistrationMode};
pub use sms::{SmsConfig, SmsDailyLimits, e164};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub secrets: SecretsConfig,
    pub keys: KeysConfig,
    pub tokens: TokensConfig,
    pub passwords: PasswordsConfig,
    pub sessions: SessionsConfig,
    pub privacy: PrivacyConfig,
    pub retention: RetentionConfig,
    pub logout: LogoutConfig,
    pub login: LoginConfig,
    pub passkeys: PasskeysConfig,
    pub registration: RegistrationConfig,
    pub clients: ClientsConfig,
    pub outbound: OutboundConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub web: WebConfig,
    pub forward_auth: ForwardAuthConfig,
    /// The SMTP relay; without it nothing that needs mail is offered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail: Option<MailConfig>,
    pub recovery: RecoveryConfig,
    /// Text messages through Twilio; without it nothing that needs a phone is offered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms: Option<SmsConfig>,
    /// Upstream identity providers (`[federation.providers.ID]`).
    pub federation: FederationConfig,
    /// Where this config came from; relative paths were resolved against `source.base_dir`.
    #[serde(skip)]
    pub source: ConfigSource,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub host: IpAddr,
    pub port: u16,
    /// The issuer and base of every URL Latchkey publishes. Default `http://localhost:{port}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<Url>,
    /// Peers whose `X-Forwarded-For` is believed. Anyone else's is ignored.
    pub trusted_proxies: Vec<IpNet>,
    /// Serve HTTPS directly from these files (PEM), reloaded when they change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// How long a shutdown waits for in-flight requests.
    #[serde(with = "serde_human")]
    pub shutdown_timeout: Duration,
    /// Timeouts and connection caps of the listener (HTTP and HTTPS alike).
    pub limits: ServerLimits,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// How often the files are checked for changes.
    #[serde(with = "serde_human", default = "TlsConfig::default_reload_interval")]
    pub reload_interval: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite:PATH` (relative to the config file) or `postgres://…`.
    pub url: SecretRef,
    pub max_connections: u32,
    /// SQLite: how often the file is checked for changes made by the CLI (cache bound).
    #[serde(with = "serde_human")]
    pub change_poll_interval: Duration,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// The master key (64 hex characters) as a secret reference. Unset with SQLite: a file
    /// `latchkey.master-key` beside the database, created on first start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_key: Option<SecretRef>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// Algorithms to keep signing keys for.
    pub algorithms: Vec<SigningAlg>,
    /// The active key of each algorithm is replaced by its next key this often.
    #[serde(with = "serde_human")]
    pub rotation_interval: Duration,
    /// `Cache-Control: max-age` of the JWKS document.
    #[serde(with = "serde_human")]
    pub jwks_cache_lifetime: Duration,
    /// Clock difference tolerated between Latchkey and the parties checking its tokens.
    #[serde(with = "serde_human")]
    pub clock_skew: Duration,
    pub rsa_bits: u32,
    /// How often the rotation job checks whether a key is due.
    #[serde(with = "serde_human")]
    pub check_interval: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokensConfig {
    #[serde(with = "serde_human")]
    pub access_token_lifetime: Duration,
    #[serde(with = "serde_human")]
    pub id_token_lifetime: Duration,
    #[serde(with = "serde_human")]
    pub refresh_token_lifetime: Duration,
    /// Authorization codes are single use and short-lived (RFC 9700 §4.5).
    #[serde(with = "serde_human")]
    pub authorization_code_lifetime: Duration,
    /// A rotated refresh token presented again within this time is taken for a concurrent
    /// duplicate (refused, family kept); later, for a stolen copy (family revoked). Default
    /// 0: every reuse revokes (RFC 9700 §4.14.2, as Ory Hydra and Auth0 do), since a window
    /// lets a thief who rotated first keep the live token. A client may have its own.
    #[serde(with = "serde_human")]
    pub refresh_reuse_grace: Duration,
    /// Algorithm of access tokens (JWT, RFC 9068).
    pub access_token_alg: SigningAlg,
    /// `aud` of access tokens when no `resource` is requested. Default: the issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_audience: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// How long a sign-in lasts before the browser must sign in again (absolute).
    #[serde(with = "serde_human")]
    pub lifetime: Duration,
    /// A session unused this long ends.
    #[serde(with = "serde_human")]
    pub idle_timeout: Duration,
    /// The absolute lifetime when the user ticks "keep me signed in"; `0s` hides the choice.
    #[serde(with = "serde_human")]
    pub remember_me_lifetime: Duration,
    /// A password change or reset ends the user's other sessions.
    pub end_other_sessions_on_password_change: bool,
    /// How long an authorization request may wait for sign-in and consent.
    #[serde(with = "serde_human")]
    pub authorization_request_lifetime: Duration,
    /// Authorization requests waiting for sign-in and consent at once per client IP (per
    /// IPv4 address, per IPv6 /64), counted in the database, so across every node.
    pub max_authorization_requests_per_ip: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogoutConfig {
    /// How long the signed-out page waits for the front-channel logout iframes.
    #[serde(with = "serde_human")]
    pub frontchannel_timeout: Duration,
    /// How long one back-channel logout POST may take.
    #[serde(with = "serde_human")]
    pub backchannel_timeout: Duration,
    /// Attempts per back-channel logout token before it is given up.
    pub backchannel_max_attempts: u32,
    /// The wait before the first retry; each later one doubles it, up to `backchannel_retry_max`.
    #[serde(with = "serde_human")]
    pub backchannel_retry_base: Duration,
    #[serde(with = "serde_human")]
    pub backchannel_retry_max: Duration,
    /// How often each node looks for deliveries queued by others (the CLI, other nodes).
    #[serde(with = "serde_human")]
    pub backchannel_poll_interval: Duration,
}

impl Default for LogoutConfig {
    fn default() -> Self {
        Self {
            frontchannel_timeout: Duration::from_secs(5),
            backchannel_timeout: Duration::from_secs(5),
            backchannel_max_attempts: 8,
            backchannel_retry_base: Duration::from_secs(2),
            backchannel_retry_max: Duration::from_secs(3_600),
            backchannel_poll_interval: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientsConfig {
    /// Removed: `outbound.allow` opens destinations now, per purpose and port. Kept only so
    /// that a config still setting it gets an error that says so.
    #[serde(skip_serializing)]
    pub allow_insecure_jwks_uri: Option<toml::Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginConfig {
    /// Failed sign-ins per account within `failure_window` before it is throttled.
    pub max_failures_per_account: u32,
    /// Failed sign-ins per client IP within `failure_window` before it is throttled.
    pub max_failures_per_ip: u32,
    #[serde(with = "serde_human")]
    pub failure_window: Duration,
    /// Let people sign in with a password (and set one). Off: passkeys only.
    pub passwords: bool,
    /// Every sign-in needs two factors or a user-verified passkey (clients may ask for it
    /// alone with `require_mfa`).
    pub require_mfa: bool,
    /// Every sign-in needs a passkey.
    pub require_passkey: bool,
    /// A code texted to the verified phone is the second step of a password sign-in, for
    /// accounts with no passkey and no authenticator app. Needs `[sms]`; weaker than both.
    pub sms_second_factor: bool,
    /// Offer sign-in by a link emailed to the verified address, to accounts without a
    /// passkey; the link signs in only the browser that asked for it. Needs `[mail]`.
    pub email_link: bool,
    /// Tell the owner of a sign-in from a browser the account has not signed in from
    /// before (a security notice, with its "this wasn't me" link).
    pub notify_new_device: bool,
    /// Changing a sign-in method (passkeys, password, authenticator app, recovery codes)
    /// or ending other sessions needs a sign-in at most this old.
    #[serde(with = "serde_human")]
    pub recent_authentication: Duration,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            lifetime: Duration::from_secs(12 * 3_600),
            idle_timeout: Duration::from_secs(2 * 3_600),
            remember_me_lifetime: Duration::ZERO,
            end_other_sessions_on_password_change: true,
            authorization_request_lifetime: Duration::from_secs(600),
            max_authorization_requests_per_ip: 100,
        }
    }
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            max_failures_per_account: 5,
            max_failures_per_ip: 50,
            failure_window: Duration::from_secs(900),
            passwords: true,
            require_mfa: false,
            require_passkey: false,
            sms_second_factor: false,
            email_link: false,
            notify_new_device: false,
            recent_authentication: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordsConfig {
    /// Argon2id memory per hash, in KiB.
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashes computed at once; further ones wait (a bound on memory and CPU).
    pub max_concurrent_hashes: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Client networks that may read `/metrics` without a token.
    pub allowed_networks: Vec<IpNet>,
    /// A bearer token that also grants access, from anywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `latchkey=debug,sqlx=warn`.
    pub level: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// HTML pages that replace the built-in error pages, by status: `404 = "errors/404.html"`.
    pub error_pages: BTreeMap<String, PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8080,
            public_url: None,
            trusted_proxies: Vec::new(),
            tls: None,
            shutdown_timeout: Duration::from_secs(30),
            limits: ServerLimits::default(),
        }
    }
}

impl TlsConfig {
    fn default_reload_interval() -> Duration {
        Duration::from_secs(10)
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: SecretRef::new("sqlite:latchkey.db"),
            max_connections: 10,
            change_poll_interval: Duration::from_secs(1),
        }
    }
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            algorithms: SigningAlg::ALL.to_vec(),
            rotation_interval: Duration::from_secs(90 * 86_400),
            jwks_cache_lifetime: Duration::from_secs(3_600),
            clock_skew: Duration::from_secs(60),
            rsa_bits: 2048,
            check_interval: Duration::from_secs(60),
        }
    }
}

/// The longest refresh-token reuse grace, server-wide or per client: enough for tabs that
/// refresh at once, short of a window a thief could live in.
pub const MAX_REFRESH_REUSE_GRACE: Duration = Duration::from_secs(300);

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            access_token_lifetime: Duration::from_secs(300),
            id_token_lifetime: Duration::from_secs(3_600),
            refresh_token_lifetime: Duration::from_secs(30 * 86_400),
            authorization_code_lifetime: Duration::from_secs(60),
            refresh_reuse_grace: Duration::ZERO,
            access_token_alg: SigningAlg::Rs256,
            default_audience: None,
        }
    }
}

impl Default for PasswordsConfig {
    fn default() -> Self {
        let p = PasswordPolicy::default();
        Self {
            memory_kib: p.memory_kib,
            iterations: p.iterations,
            parallelism: p.parallelism,
            max_concurrent_hashes: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        let loopback = ["127.0.0.0/8", "::1/128"].iter().filter_map(|n| n.parse().ok()).collect();
        Self { allowed_networks: loopback, token: None }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: "info".into() }
    }
}

impl PasswordsConfig {
    pub fn policy(&self) -> PasswordPolicy {
        PasswordPolicy { memory_kib: self.memory_kib, iterations: self.iterations, parallelism: self.parallelism }
    }
}

/// Where the database lives, after path resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseLocation {
    /// The URL `latchkey_store::open` takes.
    pub fn store_url(&self) -> String {
        match self {
            DatabaseLocation::Sqlite(p) => format!("sqlite:{}", p.display()),
            DatabaseLocation::Postgres(url) => url.clone(),
        }
    }
}

impl Config {
    /// The issuer: `server.public_url` without a trailing slash, or `http(s)://localhost:{port}`
    /// (https when `server.tls` is set).
    /// Never taken from a request's Host header.
    pub fn issuer(&self) -> String {
        match &self.server.public_url {
            Some(url) => url.as_str().trim_end_matches('/').to_owned(),
            None => {
                let scheme = if self.server.tls.is_some() { "https" } else { "http" };
                format!("{scheme}://localhost:{}", self.server.port)
            }
        }
    }

    pub fn base_dir(&self) -> &Path {
        &self.source.base_dir
    }

    pub fn database(&self) -> Result<DatabaseLocation, ConfigError> {
        let raw = self
            .database
            .url
            .resolve(self.base_dir())
            .map_err(|e| ConfigError::invalid(&self.source, "database.url", e))?;
        let raw = raw.expose();
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(DatabaseLocation::Postgres(raw.to_owned()));
        }
        match raw.strip_prefix("sqlite:") {
            Some(path) => {
                let path = path.strip_prefix("//").unwrap_or(path);
                Ok(DatabaseLocation::Sqlite(self.base_dir().join(path)))
            }
            None => Err(ConfigError::invalid(&self.source, "database.url", "expected `sqlite:PATH` or `postgres://…`")),
        }
    }
}

#[cfg(test)]
mod tests;
