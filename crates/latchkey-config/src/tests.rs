use std::path::Path;

use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

fn err_text(r: Result<Config, ConfigError>) -> String {
    match r {
        Ok(_) => panic!("expected a config error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn no_file_is_the_zero_config_path() {
    let cwd = temp();
    let config = Config::load(None, &[], cwd.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.issuer(), "http://localhost:8080");
    assert_eq!(config.database().ok(), Some(DatabaseLocation::Sqlite(cwd.path().join("latchkey.db"))));
    assert_eq!(config.keys.algorithms, SigningAlg::ALL.to_vec());
}

#[test]
fn the_file_is_found_by_flag_then_variable_then_working_directory() {
    let dir = temp();
    let a = write(dir.path(), "a.toml", "");
    let b = write(dir.path(), "b.toml", "");
    assert_eq!(find_config_file(None, &[], dir.path()).ok().flatten(), None);
    let default = write(dir.path(), "latchkey.toml", "");
    assert_eq!(find_config_file(None, &[], dir.path()).ok().flatten(), Some(default));
    let by_var = env(&[("LATCHKEY_CONFIG", "b.toml")]);
    assert_eq!(find_config_file(None, &by_var, dir.path()).ok().flatten(), Some(b));
    assert_eq!(find_config_file(Some(&a), &by_var, dir.path()).ok().flatten(), Some(a));
    let missing = find_config_file(Some(Path::new("nope.toml")), &[], dir.path());
    assert!(matches!(missing, Err(ConfigError::Read { ref path, .. }) if path.ends_with("nope.toml")));
}

#[test]
fn unknown_keys_name_the_file_and_the_key() {
    let dir = temp();
    let file = write(dir.path(), "latchkey.toml", "[server]\nprot = 8080\n");
    let text = err_text(Config::load(Some(&file), &[], dir.path()));
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert!(text.contains("`server.prot`"), "{text}");
    assert!(text.contains("expected one of"), "{text}");

    let top = write(dir.path(), "top.toml", "[sever]\nport = 1\n");
    assert!(err_text(Config::load(Some(&top), &[], dir.path())).contains("`sever`"));
}

#[test]
fn mistyped_values_name_the_key_and_what_was_expected() {
    let dir = temp();
    let file = write(dir.path(), "latchkey.toml", "[server]\nport = \"eighty\"\n");
    let text = err_text(Config::load(Some(&file), &[], dir.path()));
    assert!(text.contains("`server.port`") && text.contains("u16"), "{text}");
    let bad_duration = write(dir.path(), "d.toml", "[keys]\nrotation_interval = \"soon\"\n");
    assert!(err_text(Config::load(Some(&bad_duration), &[], dir.path())).contains("is not a duration"));
    let syntax = write(dir.path(), "s.toml", "[server\n");
    assert!(matches!(Config::load(Some(&syntax), &[], dir.path()), Err(ConfigError::Syntax { .. })));
}

#[test]
fn environment_overrides_set_keys_and_refuse_unknown_ones() {
    let dir = temp();
    let vars = env(&[
        ("LATCHKEY_SERVER__PORT", "9090"),
        ("LATCHKEY_KEYS__ALGORITHMS", "[\"ES256\"]"),
        ("LATCHKEY_TOKENS__ACCESS_TOKEN_ALG", "ES256"),
        ("LATCHKEY_SERVER__PUBLIC_URL", "https://id.example.com"),
        ("LATCHKEY_CONFIG", ""),
        ("LATCHKEY_LOG_FORMAT", "json"),
        ("LATCHKEY_TEST_POSTGRES_URL", "postgres://x"),
        ("PATH", "/bin"),
    ]);
    let config = Config::load(None, &vars, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.server.port, 9090);
    assert_eq!(config.keys.algorithms, vec![SigningAlg::Es256]);
    assert_eq!(config.issuer(), "https://id.example.com");

    let typo = Config::load(None, &env(&[("LATCHKEY_SERVER__PROT", "1")]), dir.path());
    let text = err_text(typo);
    assert!(text.contains("environment variable LATCHKEY_SERVER__PROT") && text.contains("`server.prot`"), "{text}");
    let section = err_text(Config::load(None, &env(&[("LATCHKEY_NOPE", "1")]), dir.path()));
    assert!(text_has(&section, "LATCHKEY_NOPE"), "{section}");
    let empty_segment = err_text(Config::load(None, &env(&[("LATCHKEY_SERVER____PORT", "1")]), dir.path()));
    assert!(empty_segment.contains("LATCHKEY_<SECTION>__<KEY>"), "{empty_segment}");
}

fn text_has(text: &str, needle: &str) -> bool {
    text.contains(needle)
}

#[test]
fn relative_paths_resolve_against_the_config_files_directory() {
    let root = temp();
    let conf_dir = root.path().join("etc/latchkey");
    let elsewhere = root.path().join("somewhere/else");
    std::fs::create_dir_all(&elsewhere).unwrap_or_else(|e| panic!("{e}"));
    write(&conf_dir, "errors/404.html", "<h1>gone</h1>");
    write(&conf_dir, "tls/cert.pem", "x");
    write(&conf_dir, "tls/key.pem", "x");
    let file = write(
        &conf_dir,
        "latchkey.toml",
        "[database]\nurl = \"sqlite:data/lk.db\"\n[server.tls]\ncert = \"tls/cert.pem\"\nkey = \"tls/key.pem\"\n[web.error_pages]\n404 = \"errors/404.html\"\n",
    );
    let config = Config::load(Some(&file), &[], &elsewhere).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.database().ok(), Some(DatabaseLocation::Sqlite(conf_dir.join("data/lk.db"))));
    assert_eq!(config.web.error_pages.get("404"), Some(&conf_dir.join("errors/404.html")));
    assert_eq!(config.server.tls.as_ref().map(|t| t.cert.clone()), Some(conf_dir.join("tls/cert.pem")));

    // A path given through an override resolves against the file's directory too.
    write(&conf_dir, "errors/500.html", "<h1>oops</h1>");
    let vars =
        env(&[("LATCHKEY_WEB__ERROR_PAGES__500", "errors/500.html"), ("LATCHKEY_DATABASE__URL", "sqlite:other.db")]);
    let config = Config::load(Some(&file), &vars, &elsewhere).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.web.error_pages.get("500"), Some(&conf_dir.join("errors/500.html")));
    assert_eq!(config.database().ok(), Some(DatabaseLocation::Sqlite(conf_dir.join("other.db"))));
}

#[test]
fn files_that_do_not_exist_are_named() {
    let dir = temp();
    let file = write(dir.path(), "latchkey.toml", "[web.error_pages]\n404 = \"errors/404.html\"\n");
    let text = err_text(Config::load(Some(&file), &[], dir.path()));
    assert!(text.contains("`web.error_pages.404`") && text.contains("does not exist"), "{text}");
    let not_error = write(dir.path(), "b.toml", "[web.error_pages]\n200 = \"b.toml\"\n");
    assert!(err_text(Config::load(Some(&not_error), &[], dir.path())).contains("400-599"));
    let tls = write(dir.path(), "t.toml", "[server.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n");
    assert!(err_text(Config::load(Some(&tls), &[], dir.path())).contains("`server.tls.cert`"));
}

#[test]
fn rules_between_keys_are_checked() {
    let dir = temp();
    let cases = [
        ("[keys]\nrotation_interval = \"30m\"\n", "keys.rotation_interval"),
        ("[keys]\nalgorithms = []\n", "keys.algorithms"),
        ("[keys]\nrsa_bits = 1024\n", "keys.rsa_bits"),
        ("[keys]\nalgorithms = [\"HS256\"]\n", "keys.algorithms"),
        ("[keys]\nalgorithms = [\"ES256\"]\n", "tokens.access_token_alg"),
        ("[server]\npublic_url = \"ftp://x.example\"\n", "server.public_url"),
        ("[server]\npublic_url = \"https://x.example/?a=b\"\n", "server.public_url"),
        ("[passwords]\nmemory_kib = 1\n", "passwords"),
        ("[passwords]\nmax_concurrent_hashes = 0\n", "passwords.max_concurrent_hashes"),
        ("[database]\nurl = \"mysql://x\"\n", "database.url"),
        ("[database]\nmax_connections = 0\n", "database.max_connections"),
        ("[server]\ntrusted_proxies = [\"not-a-net\"]\n", "server.trusted_proxies"),
        ("[sessions]\nidle_timeout = \"0s\"\n", "sessions"),
        ("[sessions]\nremember_me_lifetime = \"1h\"\n", "sessions.remember_me_lifetime"),
        ("[logout]\nbackchannel_max_attempts = 0\n", "logout.backchannel_max_attempts"),
        ("[logout]\nbackchannel_retry_base = \"0s\"\n", "logout.backchannel_retry_base"),
        ("[logout]\nbackchannel_retry_max = \"1s\"\n", "logout.backchannel_retry_base"),
        ("[logout]\nfrontchannel_timeout = \"0s\"\n", "logout"),
    ];
    each_names_its_key(dir.path(), "c", &cases);
}

#[test]
fn public_url_is_the_issuer_without_a_trailing_slash() {
    let dir = temp();
    let file = write(dir.path(), "latchkey.toml", "[server]\npublic_url = \"https://id.example.com/auth/\"\n");
    let config = Config::load(Some(&file), &[], dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.issuer(), "https://id.example.com/auth");
}

#[test]
fn the_printed_config_hides_literal_secrets() {
    let dir = temp();
    let file = write(
        dir.path(),
        "latchkey.toml",
        "[metrics]\ntoken = \"hunter2\"\n[secrets]\nmaster_key = \"env:LK_MASTER\"\n",
    );
    let config = Config::load(Some(&file), &[], dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let printed = toml::to_string(&config).unwrap_or_default();
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("<hidden>") && printed.contains("env:LK_MASTER"), "{printed}");
}

#[test]
fn server_limits_default_to_the_documented_values_and_refuse_unusable_ones() {
    let dir = temp();
    let limits = Config::load(None, &[], dir.path()).unwrap_or_else(|e| panic!("{e}")).server.limits;
    assert_eq!(limits.header_timeout, Duration::from_secs(10));
    assert_eq!(limits.body_timeout, Duration::from_secs(30));
    assert_eq!(limits.idle_timeout, Duration::from_secs(60));
    assert_eq!(limits.request_timeout, Duration::from_secs(60));
    assert_eq!((limits.max_connections, limits.max_connections_per_ip), (1_024, 64));
    assert_eq!((limits.http2_max_concurrent_streams, limits.max_header_size), (100, 16_384));

    let by_env = env(&[("LATCHKEY_SERVER__LIMITS__MAX_CONNECTIONS_PER_IP", "8")]);
    let config = Config::load(None, &by_env, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.server.limits.max_connections_per_ip, 8);

    let cases = [
        ("[server.limits]\nheader_timeout = \"0s\"\n", "server.limits.header_timeout"),
        ("[server.limits]\nidle_timeout = \"0s\"\n", "server.limits.idle_timeout"),
        ("[server.limits]\nmax_connections = 0\n", "server.limits.max_connections"),
        ("[server.limits]\nmax_connections_per_ip = 0\n", "server.limits.max_connections_per_ip"),
        ("[server.limits]\nhttp2_max_concurrent_streams = 0\n", "server.limits.http2_max_concurrent_streams"),
        // hyper cannot read HTTP/1.1 with a smaller buffer.
        ("[server.limits]\nmax_header_size = 4096\n", "server.limits.max_header_size"),
        ("[server.limits]\nheaders_timeout = \"1s\"\n", "server.limits.headers_timeout"),
        ("[sessions]\nmax_authorization_requests_per_ip = 0\n", "sessions.max_authorization_requests_per_ip"),
    ];
    each_names_its_key(dir.path(), "l", &cases);
}

#[test]
fn forward_auth_rules_resolve_beside_the_config_and_need_a_cookie_domain_over_us() {
    let dir = temp();
    write(dir.path(), "rules.toml", "");
    let base = "[server]\npublic_url = \"https://auth.example.com\"\n[forward_auth]\nrules = \"rules.toml\"\n";
    let file = write(dir.path(), "ok.toml", &format!("{base}cookie_domain = \"example.com\"\n"));
    let config = Config::load(Some(&file), &[], dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.forward_auth.rules.as_deref(), Some(dir.path().join("rules.toml").as_path()));
    assert_eq!(config.forward_auth.headers.user, "Remote-User");
    let cases = [
        (base.to_owned(), "forward_auth.cookie_domain"),
        (format!("{base}cookie_domain = \"other.com\"\n"), "forward_auth.cookie_domain"),
        (format!("{base}cookie_domain = \"com\"\n"), "forward_auth.cookie_domain"),
        (format!("{base}cookie_domain = \".example.com\"\n"), "forward_auth.cookie_domain"),
        (
            "[server]\npublic_url = \"https://auth.example.com\"\n[forward_auth]\nrules = \"missing.toml\"\ncookie_domain = \"example.com\"\n".to_owned(),
            "forward_auth.rules",
        ),
        (format!("{base}cookie_domain = \"example.com\"\n[forward_auth.headers]\nuser = \"Remote User\"\n"), "forward_auth.headers"),
        (format!("{base}cookie_domain = \"example.com\"\n[forward_auth.headers]\nuser = \"Remote-Roles\"\n"), "forward_auth.headers"),
    ];
    each_names_its_key(dir.path(), "f", &cases);
}

#[test]
fn mail_is_plain_only_to_this_machine_and_names_its_mistakes() {
    let dir = temp();
    let ok_file = write(
        dir.path(),
        "mail.toml",
        "[mail]\nfrom = \"Latchkey <id@example.com>\"\nhost = \"smtp.example.com\"\ntls = \"starttls\"\nusername = \"id\"\npassword = \"env:LK_SMTP\"\n",
    );
    let config = Config::load(Some(&ok_file), &[], dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let mail = config.mail.unwrap_or_else(|| panic!("no [mail]"));
    assert_eq!((mail.port(), mail.timeout.as_secs()), (587, 15));
    let local = "[mail]\nfrom = \"id@example.com\"\nhost = \"127.0.0.1\"\ntls = \"none\"\n";
    let file = write(dir.path(), "local.toml", local);
    assert_eq!(Config::load(Some(&file), &[], dir.path()).map(|c| c.mail.map(|m| m.port())).ok(), Some(Some(25)));
    let cases = [
        ("[mail]\nfrom = \"id@example.com\"\nhost = \"smtp.example.com\"\ntls = \"none\"\n", "mail.tls"),
        ("[mail]\nfrom = \"nobody\"\nhost = \"127.0.0.1\"\ntls = \"none\"\n", "mail.from"),
        (
            "[mail]\nfrom = \"id@example.com\"\nhost = \"127.0.0.1\"\ntls = \"none\"\nusername = \"u\"\n",
            "mail.password",
        ),
        ("[mail]\nfrom = \"id@example.com\"\nhost = \"127.0.0.1\"\ntls = \"ssl\"\n", "mail.tls"),
        ("[mail]\nfrom = \"id@example.com\"\nhost = \"127.0.0.1\"\ntls = \"none\"\ntimeout = \"0s\"\n", "mail.timeout"),
        (
            "[mail]\nfrom = \"id@example.com\"\nhost = \"127.0.0.1\"\ntls = \"none\"\nretry_base = \"500000000000y\"\n",
            "mail.retry_base",
        ),
        (
            "[mail]\nfrom = \"id@example.com\"\nhost = \"127.0.0.1\"\ntls = \"none\"\ncircuit_cool_down = \"300ms\"\n",
            "mail.circuit_cool_down",
        ),
    ];
    each_names_its_key(dir.path(), "m", &cases);
}

#[test]
fn sms_and_recovery_name_their_mistakes_and_no_country_is_allowed_until_listed() {
    let dir = temp();
    let base = "[sms]\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token = \"env:TWILIO\"\n";
    let good = format!("{base}from = \"+15005550006\"\nallowed_countries = [\"+44\", \"+1242\"]\n");
    let file = write(dir.path(), "sms.toml", &good);
    let config = Config::load(Some(&file), &[], dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let sms = config.sms.unwrap_or_else(|| panic!("no [sms]"));
    assert_eq!(sms.base_url, "https://api.twilio.com");
    assert!(sms.allows("+447700900123") && sms.allows("+12425550100"));
    assert!(!sms.allows("+12025550100") && !sms.allows("+33123456789"));
    assert!(!config.recovery.sms && config.recovery.email, "recovery by text is off by default");
    let none = write(dir.path(), "none.toml", &format!("{base}from = \"+15005550006\"\n"));
    let listed = Config::load(Some(&none), &[], dir.path()).map(|c| c.sms.map(|s| s.allows("+447700900123")));
    assert_eq!(listed.ok(), Some(Some(false)), "no country until listed");
    let us = write(dir.path(), "us.toml", &format!("{base}from = \"+15005550006\"\nallowed_countries = [\"+1\"]\n"));
    let us = Config::load(Some(&us), &[], dir.path()).unwrap_or_else(|e| panic!("{e}")).sms;
    let us = us.unwrap_or_else(|| panic!("no [sms]"));
    assert!(us.allows("+12025550100") && us.allows("+14165550100"), "+1 is the United States and Canada");
    for elsewhere in ["+12425550100", "+18765550100", "+18095550100", "+16715550100", "+19005550100"] {
        assert!(!us.allows(elsewhere), "+1 alone must not admit {elsewhere}");
    }
    let cases = [
        (base.to_owned(), "sms.from"),
        (
            format!("{base}from = \"+15005550006\"\nmessaging_service_sid = \"MG0123456789abcdef0123456789abcdef\"\n"),
            "sms.from",
        ),
        (format!("{base}from = \"5550006\"\n"), "sms.from"),
        (format!("{base}messaging_service_sid = \"MGnope\"\n"), "sms.messaging_service_sid"),
        (
            "[sms]\naccount_sid = \"ACshort\"\nauth_token = \"x\"\nfrom = \"+15005550006\"\n".to_owned(),
            "sms.account_sid",
        ),
        (
            format!("{base}from = \"+15005550006\"\napi_key_sid = \"AC0123456789abcdef0123456789abcdef\"\n"),
            "sms.api_key_sid",
        ),
        (format!("{base}from = \"+15005550006\"\nallowed_countries = [\"44\"]\n"), "sms.allowed_countries"),
        (format!("{base}from = \"+15005550006\"\nallowed_countries = [\"+0\"]\n"), "sms.allowed_countries"),
        (format!("{base}from = \"+15005550006\"\nbase_url = \"ftp://x\"\n"), "sms.base_url"),
        (format!("{base}from = \"+15005550006\"\nbase_url = \"https://u:p@api.twilio.com\"\n"), "sms.base_url"),
        (format!("{base}from = \"+15005550006\"\nbase_url = \"https://api.twilio.com/#x\"\n"), "sms.base_url"),
        (format!("{base}from = \"+15005550006\"\n[sms.daily_limits]\ntotal = 0\n"), "sms.daily_limits"),
        (format!("{base}from = \"+15005550006\"\ntimeout = \"2h\"\n"), "sms.timeout"),
        ("[recovery]\ndelay = \"10s\"\n".to_owned(), "recovery.delay"),
        ("[login]\nemail_link = true\n".to_owned(), "login.email_link"),
        ("[login]\nsms_second_factor = true\n".to_owned(), "login.sms_second_factor"),
        ("[recovery]\ndelay = \"31d\"\n".to_owned(), "recovery.delay"),
    ];
    each_names_its_key(dir.path(), "s", &cases);
}

/// Loads each config text and checks that the error names its key.
fn each_names_its_key<T: AsRef<str>>(dir: &Path, prefix: &str, cases: &[(T, &str)]) {
    for (i, (text, key)) in cases.iter().enumerate() {
        let text = text.as_ref();
        let file = write(dir, &format!("{prefix}{i}.toml"), text);
        let message = err_text(Config::load(Some(&file), &[], dir));
        assert!(message.contains(&format!("`{key}")), "{text:?} should name {key}: {message}");
    }
}

#[test]
fn the_replaced_record_ip_names_privacy_ip_and_privacy_ip_takes_three_values() {
    let dir = temp();
    let old = write(dir.path(), "old.toml", "[sessions]\nrecord_ip = true\n");
    let text = err_text(Config::load(Some(&old), &[], dir.path()));
    assert!(text.contains("`sessions.record_ip`") && text.contains("privacy.ip = \"full\""), "{text}");
    let from_env = err_text(Config::load(None, &env(&[("LATCHKEY_SESSIONS__RECORD_IP", "true")]), dir.path()));
    assert!(from_env.contains("LATCHKEY_SESSIONS__RECORD_IP") && from_env.contains("privacy.ip"), "{from_env}");

    let default = Config::load(None, &[], dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(default.privacy.ip, crate::IpRecording::Off, "off unless the operator turns it on");
    let truncated = write(dir.path(), "t.toml", "[privacy]\nip = \"truncated\"\n");
    let config = Config::load(Some(&truncated), &[], dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.privacy.ip, crate::IpRecording::Truncated);
    let bad = write(dir.path(), "b.toml", "[privacy]\nip = \"partial\"\n");
    let text = err_text(Config::load(Some(&bad), &[], dir.path()));
    assert!(text.contains("`privacy.ip`") && text.contains("truncated"), "{text}");
}

#[test]
fn the_account_retention_rules_are_off_by_default_and_checked_when_on() {
    let dir = temp();
    let defaults = Config::load(None, &[], dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(defaults.retention.inactive_accounts(), None);
    assert_eq!(defaults.retention.unverified_sign_ups(), None);
    assert_eq!(defaults.retention.inactive_accounts_action, InactiveAccountAction::Disable);

    let mail = "[mail]\nfrom = \"id@example.com\"\nhost = \"127.0.0.1\"\ntls = \"none\"\n";
    let on = format!(
        "{mail}[retention]\ninactive_accounts = \"730d\"\ninactive_accounts_grace = \"14d\"\n\
         inactive_accounts_action = \"delete\"\nunverified_sign_ups = \"7d\"\n"
    );
    let file = write(dir.path(), "on.toml", &on);
    let config = Config::load(Some(&file), &[], dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.retention.inactive_accounts(), Some(std::time::Duration::from_secs(730 * 86_400)));
    assert_eq!(config.retention.inactive_accounts_grace, std::time::Duration::from_secs(14 * 86_400));
    assert_eq!(config.retention.inactive_accounts_action, InactiveAccountAction::Delete);
    assert_eq!(config.retention.unverified_sign_ups(), Some(std::time::Duration::from_secs(7 * 86_400)));

    for (text, key, why) in [
        ("[retention]\ninactive_accounts = \"730d\"\n", "retention.inactive_accounts", "[mail]"),
        (&format!("{mail}[retention]\ninactive_accounts = \"30s\"\n"), "retention.inactive_accounts", "at least 1d"),
        (
            &format!("{mail}[retention]\ninactive_accounts = \"30d\"\ninactive_accounts_grace = \"1h\"\n"),
            "retention.inactive_accounts_grace",
            "at least 1d",
        ),
        ("[retention]\nunverified_sign_ups = \"10m\"\n", "retention.unverified_sign_ups", "at least 1d"),
        ("[retention]\nunverified_sign_ups = \"7d\"\n", "retention.unverified_sign_ups", "[mail]"),
        ("[retention]\ninactive_accounts_action = \"erase\"\n", "inactive_accounts_action", "disable"),
    ] {
        let file = write(dir.path(), "bad.toml", text);
        let message = err_text(Config::load(Some(&file), &[], dir.path()));
        assert!(message.contains(key) && message.contains(why), "{text}: {message}");
    }
}
