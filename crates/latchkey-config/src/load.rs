//! Finding, reading, overriding and checking the configuration.

use std::fmt;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::Config;

/// Where a configuration came from.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// The file, or `None` on the zero-config path.
    pub file: Option<PathBuf>,
    /// Relative paths resolve against this: the file's directory, else the working directory.
    pub base_dir: PathBuf,
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(p) => write!(f, "{}", p.display()),
            None => f.write_str("built-in defaults"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: not valid TOML: {reason}")]
    Syntax { path: String, reason: String },
    #[error("{origin}: key `{key}`: {reason}")]
    Invalid { origin: String, key: String, reason: String },
}

impl ConfigError {
    pub fn invalid(source: &ConfigSource, key: &str, reason: impl fmt::Display) -> Self {
        ConfigError::Invalid { origin: source.to_string(), key: key.to_owned(), reason: reason.to_string() }
    }
}

/// Environment variables that start with `LATCHKEY_` but are not config keys.
const RESERVED_ENV: &[&str] = &["LATCHKEY_CONFIG", "LATCHKEY_LOG_FORMAT"];
const RESERVED_ENV_PREFIXES: &[&str] = &["LATCHKEY_TEST_"];

/// The config file to use: `--config`, then `LATCHKEY_CONFIG`, then `./latchkey.toml`;
/// `None` is the zero-config path. An explicitly named file must exist.
pub fn find_config_file(
    explicit: Option<&Path>,
    env: &[(String, String)],
    cwd: &Path,
) -> Result<Option<PathBuf>, ConfigError> {
    let named = explicit
        .map(Path::to_path_buf)
        .or_else(|| env.iter().find(|(k, v)| k == "LATCHKEY_CONFIG" && !v.is_empty()).map(|(_, v)| PathBuf::from(v)));
    if let Some(path) = named {
        let path = cwd.join(path);
        if !path.is_file() {
            return Err(ConfigError::Read { path: path.display().to_string(), reason: "no such file".into() });
        }
        return Ok(Some(path));
    }
    let default = cwd.join("latchkey.toml");
    Ok(default.is_file().then_some(default))
}

struct EnvOverride {
    var: String,
    path: Vec<String>,
}

/// Keys that were replaced: refused with what replaces them (a generic "unknown field"
/// would leave the operator guessing).
const REPLACED: &[(&str, &str, &str)] = &[(
    "sessions",
    "record_ip",
    "replaced by `privacy.ip` (\"off\", \"truncated\" or \"full\"): `record_ip = true` was `privacy.ip = \"full\"`",
)];

fn refuse_replaced_keys(table: &Table, overrides: &[EnvOverride], source: &ConfigSource) -> Result<(), ConfigError> {
    for (section, key, reason) in REPLACED {
        if table.get(*section).and_then(Value::as_table).is_some_and(|t| t.contains_key(*key)) {
            let origin = overrides
                .iter()
                .find(|o| o.path.len() == 2 && o.path[0] == *section && o.path[1] == *key)
                .map_or_else(|| source.to_string(), |o| format!("environment variable {}", o.var));
            return Err(ConfigError::Invalid { origin, key: format!("{section}.{key}"), reason: (*reason).to_owned() });
        }
    }
    Ok(())
}

impl Config {
    /// Loads the configuration: the file (if any), then `LATCHKEY_*` overrides from `env`,
    /// then checks it. `cwd` is the base for relative paths when there is no file.
    pub fn load(file: Option<&Path>, env: &[(String, String)], cwd: &Path) -> Result<Config, ConfigError> {
        let (mut table, source) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::Read { path: path.display().to_string(), reason: e.to_string() })?;
                let table: Table = toml::from_str(&text)
                    .map_err(|e| ConfigError::Syntax { path: path.display().to_string(), reason: e.to_string() })?;
                let base_dir = path.parent().map_or_else(|| cwd.to_path_buf(), Path::to_path_buf);
                (table, ConfigSource { file: Some(path.to_path_buf()), base_dir })
            }
            None => (Table::new(), ConfigSource { file: None, base_dir: cwd.to_path_buf() }),
        };
        let overrides = apply_env(&mut table, env)?;
        refuse_replaced_keys(&table, &overrides, &source)?;
        let mut config: Config = serde_path_to_error::deserialize(Value::Table(table)).map_err(|e| {
            // The path already ends with an unknown field's name; toml adds "in `section`"
            // on a second line, which the key says better.
            let key = e.path().to_string();
            let reason = e.inner().to_string().lines().next().unwrap_or_default().trim().to_owned();
            let origin = overrides
                .iter()
                .find(|o| o.path.join(".") == key)
                .map_or_else(|| source.to_string(), |o| format!("environment variable {}", o.var));
            ConfigError::Invalid { origin, key, reason }
        })?;
        config.source = source;
        config.resolve_paths();
        config.check()?;
        Ok(config)
    }

    fn resolve_paths(&mut self) {
        let base = self.source.base_dir.clone();
        if let Some(tls) = &mut self.server.tls {
            tls.cert = base.join(&tls.cert);
            tls.key = base.join(&tls.key);
        }
        for path in self.web.error_pages.values_mut() {
            *path = base.join(&*path);
        }
        if let Some(rules) = &mut self.forward_auth.rules {
            *rules = base.join(&*rules);
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        let s = &self.source;
        if let Some(url) = &self.server.public_url {
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(ConfigError::invalid(
                    s,
                    "server.public_url",
                    "must be an http:// or https:// URL with a host",
                ));
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err(ConfigError::invalid(
                    s,
                    "server.public_url",
                    "must not have a query or fragment (it is the issuer)",
                ));
            }
        }
        if let Some(tls) = &self.server.tls {
            for (key, path) in [("server.tls.cert", &tls.cert), ("server.tls.key", &tls.key)] {
                if !path.is_file() {
                    return Err(ConfigError::invalid(s, key, format!("file {} does not exist", path.display())));
                }
            }
        }
        self.server.limits.check(s)?;
        self.database()?;
        if self.database.max_connections == 0 {
            return Err(ConfigError::invalid(s, "database.max_connections", "must be at least 1"));
        }
        let k = &self.keys;
        if k.algorithms.is_empty() {
            return Err(ConfigError::invalid(s, "keys.algorithms", "name at least one of RS256, ES256, EdDSA"));
        }
        if ![2048, 3072, 4096].contains(&k.rsa_bits) {
            return Err(ConfigError::invalid(s, "keys.rsa_bits", "must be 2048, 3072 or 4096"));
        }
        if k.rotation_interval <= k.jwks_cache_lifetime + k.clock_skew {
            return Err(ConfigError::invalid(
                s,
                "keys.rotation_interval",
                "must be longer than keys.jwks_cache_lifetime + keys.clock_skew, so a next key is published that long before it signs",
            ));
        }
        if !k.algorithms.contains(&self.tokens.access_token_alg) {
            return Err(ConfigError::invalid(s, "tokens.access_token_alg", "must be one of keys.algorithms"));
        }
        if self.tokens.authorization_code_lifetime.is_zero() || self.tokens.authorization_code_lifetime.as_secs() > 600
        {
            return Err(ConfigError::invalid(s, "tokens.authorization_code_lifetime", "must be between 1s and 10m"));
        }
        if self.tokens.refresh_reuse_grace > super::MAX_REFRESH_REUSE_GRACE {
            return Err(ConfigError::invalid(s, "tokens.refresh_reuse_grace", "must be at most 5m"));
        }
        if self.login.max_failures_per_account == 0 || self.login.max_failures_per_ip == 0 {
            return Err(ConfigError::invalid(s, "login", "failure limits must be at least 1"));
        }
        self.check_sign_in(s)?;
        let public_host = url::Url::parse(&self.issuer()).ok().and_then(|u| u.host_str().map(str::to_owned));
        self.forward_auth.check(s, public_host.as_deref())?;
        if let Some(mail) = &self.mail {
            mail.check(s)?;
        }
        self.recovery.check(s)?;
        self.federation.check(s)?;
        if let Some(sms) = &self.sms {
            sms.check(s)?;
        }
        let sessions = &self.sessions;
        if sessions.lifetime.is_zero() || sessions.idle_timeout.is_zero() {
            return Err(ConfigError::invalid(s, "sessions", "lifetime and idle_timeout must be more than 0s"));
        }
        if sessions.max_authorization_requests_per_ip == 0 {
            return Err(ConfigError::invalid(s, "sessions.max_authorization_requests_per_ip", "must be at least 1"));
        }
        if !sessions.remember_me_lifetime.is_zero() && sessions.remember_me_lifetime < sessions.lifetime {
            return Err(ConfigError::invalid(
                s,
                "sessions.remember_me_lifetime",
                "must be 0s (no \"keep me signed in\") or at least sessions.lifetime",
            ));
        }
        let logout = &self.logout;
        if logout.backchannel_max_attempts == 0 {
            return Err(ConfigError::invalid(s, "logout.backchannel_max_attempts", "must be at least 1"));
        }
        if logout.backchannel_retry_base.is_zero() || logout.backchannel_retry_max < logout.backchannel_retry_base {
            return Err(ConfigError::invalid(
                s,
                "logout.backchannel_retry_base",
                "must be more than 0s and at most logout.backchannel_retry_max",
            ));
        }
        if logout.backchannel_timeout.is_zero()
            || logout.backchannel_poll_interval.is_zero()
            || logout.frontchannel_timeout.is_zero()
        {
            return Err(ConfigError::invalid(s, "logout", "timeouts and the poll interval must be more than 0s"));
        }
        if k.check_interval.is_zero() {
            return Err(ConfigError::invalid(s, "keys.check_interval", "must be more than 0s"));
        }
        if self.clients.allow_insecure_jwks_uri.is_some() {
            return Err(ConfigError::invalid(
                s,
                "clients.allow_insecure_jwks_uri",
                "was removed: list the jwks_uri destinations in outbound.allow instead, e.g. \
                 allow = [{ cidr = \"127.0.0.1/32\", for = [\"jwks_uri\"], ports = [8443] }]",
            ));
        }
        self.outbound.check(s)?;
        self.passwords.policy().validate().map_err(|e| ConfigError::invalid(s, "passwords", e))?;
        if self.passwords.max_concurrent_hashes == 0 {
            return Err(ConfigError::invalid(s, "passwords.max_concurrent_hashes", "must be at least 1"));
        }
        for (status, path) in &self.web.error_pages {
            let key = format!("web.error_pages.{status}");
            let code: u16 = status.parse().unwrap_or(0);
            if !(400..=599).contains(&code) {
                return Err(ConfigError::invalid(s, &key, "only HTTP error statuses (400-599) have error pages"));
            }
            if !path.is_file() {
                return Err(ConfigError::invalid(s, &key, format!("file {} does not exist", path.display())));
            }
        }
        Ok(())
    }
}

/// Writes `LATCHKEY_<SECTION>__<KEY>=value` overrides into the table. A value is read as a
/// TOML value when it is one (numbers, booleans, arrays) and as a string otherwise.
fn apply_env(table: &mut Table, env: &[(String, String)]) -> Result<Vec<EnvOverride>, ConfigError> {
    let mut applied = Vec::new();
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix("LATCHKEY_") else {
            continue;
        };
        if RESERVED_ENV.contains(&var.as_str()) || RESERVED_ENV_PREFIXES.iter().any(|p| var.starts_with(p)) {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        let env_origin = || format!("environment variable {var}");
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::Invalid {
                origin: env_origin(),
                key: path.join("."),
                reason: "write LATCHKEY_<SECTION>__<KEY>, e.g. LATCHKEY_SERVER__PORT".into(),
            });
        }
        let value = toml::from_str::<Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| Value::String(raw.clone()));
        let (last, parents) = path.split_last().unwrap_or((&path[0], &[]));
        let mut node = &mut *table;
        for (i, segment) in parents.iter().enumerate() {
            let entry = node.entry(segment.clone()).or_insert_with(|| Value::Table(Table::new()));
            node = match entry {
                Value::Table(t) => t,
                _ => {
                    return Err(ConfigError::Invalid {
                        origin: env_origin(),
                        key: path[..=i].join("."),
                        reason: "is a value, not a section".into(),
                    });
                }
            };
        }
        node.insert(last.clone(), value);
        applied.push(EnvOverride { var: var.clone(), path });
    }
    Ok(applied)
}

impl super::Config {
    /// `[passkeys]` and `[login]` rules: the RP id covers every origin that uses it.
    fn check_sign_in(&self, s: &ConfigSource) -> Result<(), ConfigError> {
        let on_rp_id = |host: &str, rp_id: &str| host == rp_id || host.ends_with(&format!(".{rp_id}"));
        if let Some(rp_id) = &self.passkeys.rp_id {
            let issuer_host = url::Url::parse(&self.issuer()).ok().and_then(|u| u.host_str().map(str::to_owned));
            if rp_id.is_empty() || rp_id.contains(['/', ':']) {
                return Err(ConfigError::invalid(s, "passkeys.rp_id", "must be a domain name, without scheme or port"));
            }
            if !issuer_host.is_some_and(|h| on_rp_id(&h, rp_id)) {
                return Err(ConfigError::invalid(
                    s,
                    "passkeys.rp_id",
                    "must be the host of server.public_url or a parent domain of it",
                ));
            }
        }
        let rp_id = self
            .passkeys
            .rp_id
            .clone()
            .or_else(|| url::Url::parse(&self.issuer()).ok().and_then(|u| u.host_str().map(str::to_owned)));
        for origin in &self.passkeys.extra_origins {
            let fits = origin.host_str().zip(rp_id.as_deref()).is_some_and(|(h, r)| on_rp_id(h, r));
            if !fits || !matches!(origin.scheme(), "https" | "http") {
                return Err(ConfigError::invalid(
                    s,
                    "passkeys.extra_origins",
                    format!("`{origin}` must be an http(s) origin on the RP id or a subdomain of it"),
                ));
            }
        }
        self.retention.check(s, self.mail.is_some())?;
        if self.login.email_link && self.mail.is_none() {
            return Err(ConfigError::invalid(s, "login.email_link", "needs a [mail] section to send links"));
        }
        if self.login.sms_second_factor && self.sms.is_none() {
            return Err(ConfigError::invalid(s, "login.sms_second_factor", "needs an [sms] section to text codes"));
        }
        if self.passkeys.challenge_lifetime.is_zero() || self.login.recent_authentication.is_zero() {
            return Err(ConfigError::invalid(
                s,
                "passkeys.challenge_lifetime",
                "passkeys.challenge_lifetime and login.recent_authentication must be more than 0s",
            ));
        }
        Ok(())
    }
}
