//! The `latchkey` binary as people and scripts use it: zero-config start, configuration
//! checks, and the user, client, key and scope commands, each in a fresh temp directory.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Workspace, eventually, get_json, http, jwks_keys, jwks_kids, key_in_state, try_get_json};

const ALGS: [&str; 3] = ["RS256", "ES256", "EdDSA"];
const PORT_ZERO: (&str, &str) = ("LATCHKEY_SERVER__PORT", "0");

/// The `(kid, state)` pairs of a `keys list --json` output, sorted.
fn key_states(list: &Value) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = list
        .as_array()
        .map(|keys| {
            keys.iter()
                .map(|k| {
                    (
                        k["alg"].as_str().unwrap_or_default().to_owned(),
                        k["kid"].as_str().unwrap_or_default().to_owned(),
                        k["state"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn array_len(value: &Value) -> usize {
    value.as_array().map_or_else(|| panic!("expected a JSON array, got {value:#}"), Vec::len)
}

// ---------------------------------------------------------------------------------------
// 1, 2: serve

#[tokio::test]
async fn serve_in_an_empty_directory_creates_its_data_announces_itself_and_keeps_its_keys_across_restarts() {
    let ws = Workspace::new();
    assert!(ws.entries().is_empty(), "the temp dir starts empty");

    let mut server = ws.serve(&[PORT_ZERO]);
    let port = server.listening.rsplit(':').next().unwrap_or_default().to_owned();
    assert!(port.parse::<u16>().is_ok_and(|p| p != 0), "listening address {:?} has no real port", server.listening);
    assert_eq!(
        server.issuer,
        format!("http://localhost:{port}"),
        "without public_url the issuer is http://localhost:PORT of the bound port"
    );

    let db = ws.path("latchkey.db");
    let data =
        server.wait_for_line(Duration::from_secs(10), "the data location", |l| l.trim_start().starts_with("data:"));
    assert!(data.contains(&db.display().to_string()), "the data line names {}: {data:?}", db.display());
    let admin = server.wait_for_line(Duration::from_secs(10), "the command that creates the first admin", |l| {
        l.contains("latchkey user create")
    });
    assert!(admin.contains("--username"), "the first-admin hint is a complete command: {admin:?}");

    assert!(db.is_file(), "latchkey.db exists; dir holds {:?}", ws.entries());
    let key_file = ws.path("latchkey.master-key");
    let meta = std::fs::metadata(&key_file)
        .unwrap_or_else(|e| panic!("latchkey.master-key exists ({e}); dir holds {:?}", ws.entries()));
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "the master key file is readable by its owner only");
    }

    let client = http();
    let discovery = get_json(&client, &server.url("/.well-known/openid-configuration")).await;
    assert_eq!(discovery["issuer"], Value::from(server.issuer.clone()), "discovery issuer equals the printed issuer");
    assert_eq!(discovery["jwks_uri"], Value::from(format!("{}/jwks.json", server.issuer)));

    let jwks = get_json(&client, &server.url("/jwks.json")).await;
    let keys = jwks_keys(&jwks);
    for alg in ALGS {
        let n = keys.iter().filter(|(a, _)| a == alg).count();
        assert_eq!(n, 2, "{alg}: an active and a next key are published; JWKS {jwks:#}");
    }
    assert_eq!(keys.len(), 6, "nothing but the three algorithms' keys: {jwks:#}");
    // The published keys are exactly each algorithm's active and next key.
    let list = ws.run(&["keys", "list", "--json"]).success().json();
    let mut expected: Vec<String> =
        ALGS.iter().flat_map(|alg| [key_in_state(&list, alg, "active"), key_in_state(&list, alg, "next")]).collect();
    expected.sort();
    let first_kids = jwks_kids(&jwks);
    assert_eq!(first_kids, expected, "the JWKS publishes the active and next keys");

    let status = server.terminate();
    assert!(status.success(), "SIGTERM stops the server with success, got {status}");

    let again = ws.serve(&[PORT_ZERO]);
    let jwks = get_json(&client, &again.url("/jwks.json")).await;
    assert_eq!(
        jwks_kids(&jwks),
        first_kids,
        "a restart reuses the keys it created (same master key file, same database)"
    );
}

#[tokio::test]
async fn sigterm_shuts_the_server_down_gracefully_with_exit_status_zero() {
    let ws = Workspace::new();
    let mut server = ws.serve(&[PORT_ZERO]);
    let client = http();
    // It really serves before it is asked to stop.
    let health = client.get(server.url("/healthz")).send().await.unwrap_or_else(|e| panic!("GET /healthz: {e}"));
    assert!(health.status().is_success(), "/healthz answers {}", health.status());

    let status = server.terminate();
    let stderr = server.stderr();
    // `code()` is None when a signal killed the process: SIGTERM must be handled, not fatal.
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM: {status}\nstderr:\n{stderr}");
    assert!(stderr.contains("shutting down"), "the server logs that it shuts down:\n{stderr}");
    let after = client.get(server.url("/healthz")).send().await;
    assert!(after.is_err(), "nothing listens on {} after the exit: {after:?}", server.listening);
}

// ---------------------------------------------------------------------------------------
// 3: check-config and path resolution

#[test]
fn check_config_prints_the_effective_config_with_literal_secrets_hidden() {
    let ws = Workspace::new();
    ws.write("latchkey.toml", "[server]\nport = 9191\n\n[metrics]\ntoken = \"hunter2\"\n");

    let text = ws.run(&["check-config"]);
    text.success().never_shows("hunter2").stdout_names(&[
        "Configuration is valid",
        &ws.path("latchkey.toml").display().to_string(),
        "port = 9191",
        "<hidden>",
        "rsa_bits = 2048",
    ]);
    assert!(text.stdout.contains("http://localhost:9191"), "the issuer follows the port:\n{}", text.transcript());

    let json = ws.run(&["check-config", "--json"]);
    json.success().never_shows("hunter2");
    let v = json.json();
    assert_eq!(v["config"]["metrics"]["token"], "<hidden>");
    assert_eq!(v["config"]["server"]["port"], 9191);
    assert_eq!(v["config"]["keys"]["rsa_bits"], 2048, "defaults are filled in");
    assert_eq!(v["issuer"], "http://localhost:9191");
    assert_eq!(v["source"], Value::from(ws.path("latchkey.toml").display().to_string()));
}

#[test]
fn check_config_rejects_an_unknown_key_naming_the_file_and_the_key() {
    let ws = Workspace::new();
    let file = ws.write("latchkey.toml", "[server]\nprot = 1\n");
    ws.run(&["check-config"]).expect_code(2).stderr_names(&[
        "latchkey: error:",
        &file.display().to_string(),
        "server.prot",
    ]);
}

#[test]
fn check_config_rejects_an_unknown_key_from_the_environment_naming_the_variable() {
    let ws = Workspace::new();
    ws.run_env(&["check-config"], &[("LATCHKEY_SERVER__PROT", "1")]).expect_code(2).stderr_names(&[
        "latchkey: error:",
        "environment variable LATCHKEY_SERVER__PROT",
        "server.prot",
    ]);
}

#[test]
fn check_config_rejects_malformed_toml_naming_the_file() {
    let ws = Workspace::new();
    let file = ws.write("latchkey.toml", "[server\nport = \n");
    ws.run(&["check-config"]).expect_code(2).stderr_names(&["latchkey: error:", &file.display().to_string(), "TOML"]);
}

#[test]
fn a_config_file_named_with_dash_dash_config_must_exist() {
    let ws = Workspace::new();
    ws.run(&["check-config", "--config", "missing.toml"])
        .expect_code(2)
        .stderr_names(&["latchkey: error:", "missing.toml"]);
    assert!(ws.entries().is_empty(), "nothing is written: {:?}", ws.entries());
}

#[test]
fn error_page_paths_resolve_against_the_config_files_directory_not_the_working_directory() {
    let ws = Workspace::new();
    let config = ws.write("a/latchkey.toml", "[web.error_pages]\n404 = \"errors/404.html\"\n");
    let cwd = ws.subdir("b");
    let config_arg = config.display().to_string();
    // A decoy in the working directory must not satisfy the check.
    ws.write("b/errors/404.html", "<h1>decoy</h1>");

    ws.run_in(&cwd, &["check-config", "--config", &config_arg])
        .expect_code(2)
        .stderr_names(&["web.error_pages.404", &ws.path("a/errors/404.html").display().to_string()]);

    let page = ws.write("a/errors/404.html", "<h1>Not here</h1>");
    ws.run_in(&cwd, &["check-config", "--config", &config_arg]).success().stdout_names(&[&page.display().to_string()]);
}

#[test]
fn a_relative_sqlite_url_resolves_against_the_config_files_directory() {
    let ws = Workspace::new();
    ws.write("a/latchkey.toml", "[database]\nurl = \"sqlite:data/lk.db\"\n");
    let cwd = ws.subdir("b");
    let out = ws.run_in(&cwd, &["migrate", "--config", "../a/latchkey.toml", "--json"]);
    out.success();
    assert!(
        ws.path("a/data/lk.db").is_file(),
        "the database is created beside the config file: a/data holds {:?}",
        support::entries(&ws.path("a/data"))
    );
    assert!(ws.path("a/data/latchkey.master-key").is_file(), "the master key file sits beside the database");
    assert!(
        !ws.path("b/data").exists(),
        "nothing is created under the working directory: b holds {:?}",
        support::entries(&cwd)
    );
    assert_eq!(out.json()["migrated"], true);
}

// ---------------------------------------------------------------------------------------
// 4: users

#[test]
fn an_operator_manages_a_user_from_creation_to_deletion_without_the_password_ever_showing() {
    let ws = Workspace::new();
    let password = "correct horse battery staple 4711";
    let second = "another long passphrase 0815";
    let mut outputs = Vec::new();

    let created = ws.run_stdin(
        &[
            "user",
            "create",
            "--username",
            "Ada",
            "--email",
            "ada@example.com",
            "--name",
            "Ada Lovelace",
            "--password-stdin",
        ],
        &format!("{password}\n"),
    );
    created.success();
    outputs.push(created);

    let list = ws.run(&["user", "list", "--json"]);
    let users = list.success().json();
    let ada: Vec<&Value> =
        users.as_array().map(|a| a.iter().filter(|u| u["username"] == "ada").collect()).unwrap_or_default();
    assert_eq!(ada.len(), 1, "the username is stored lowercase: {users:#}");
    assert_eq!(ada[0]["has_password"], true, "{users:#}");
    assert_eq!(ada[0]["email"], "ada@example.com");
    outputs.push(list);

    let duplicate = ws.run(&["user", "create", "--username", "ADA", "--no-password"]);
    duplicate.expect_code(1).stderr_names(&["latchkey: error:", "taken"]);
    outputs.push(duplicate);

    let show = ws.run(&["user", "show", "ada", "--json"]);
    let u = show.success().json();
    assert_eq!(u["username"], "ada");
    assert_eq!(u["name"], "Ada Lovelace");
    assert_eq!(u["locked"], false);
    let sub = u["sub"].as_str().unwrap_or_default().to_owned();
    assert_eq!(sub.len(), 32, "a subject id: {u:#}");
    outputs.push(show);

    let update = ws.run(&["user", "update", "ada", "--email", "new@example.com"]);
    update.success();
    outputs.push(update);
    let show = ws.run(&["user", "show", &sub, "--json"]);
    assert_eq!(
        show.success().json()["email"],
        "new@example.com",
        "the user is found by subject id too, with the new email"
    );
    outputs.push(show);

    let lock = ws.run(&["user", "lock", "ada"]);
    lock.success();
    outputs.push(lock);
    let show = ws.run(&["user", "show", "ada", "--json"]);
    assert_eq!(show.success().json()["locked"], true);
    outputs.push(show);
    let human = ws.run(&["user", "show", "ada"]);
    human.success().stdout_names(&["locked:", "true", "new@example.com"]);
    outputs.push(human);

    let set = ws.run_stdin(&["user", "set-password", "ada", "--password-stdin"], &format!("{second}\n"));
    set.success();
    outputs.push(set);

    let delete = ws.run(&["user", "delete", "ada"]);
    delete.success();
    outputs.push(delete);
    let gone = ws.run(&["user", "show", "ada"]);
    gone.expect_code(1).stderr_names(&["latchkey: error:", "ada"]);
    outputs.push(gone);

    for out in &outputs {
        out.never_shows(password).never_shows(second);
    }
}

#[test]
fn a_user_create_with_bad_input_fails_with_usage_errors_and_writes_nothing() {
    let ws = Workspace::new();
    ws.run(&["user", "create", "--username", "x", "--email", "not-an-email", "--no-password"])
        .expect_code(2)
        .stderr_names(&["latchkey: error:"]);
    assert!(ws.entries().is_empty(), "a failed command creates no database: {:?}", ws.entries());

    // stdin is not a terminal here, so there is nobody to prompt.
    ws.run(&["user", "create", "--username", "x"])
        .expect_code(2)
        .stderr_names(&["latchkey: error:", "--password-stdin"]);
    assert!(ws.entries().is_empty(), "a failed command creates no database: {:?}", ws.entries());
}

#[test]
fn passwords_follow_the_pages_rule_at_the_command_line() {
    let ws = Workspace::new();
    // 600 characters but 1,200 bytes: the rule counts bytes at the top, as the hasher does.
    let accents = "é".repeat(600);
    for (args, password, rule) in [
        (&["user", "create", "--username", "ada", "--password-stdin"][..], accents.as_str(), "1024 bytes"),
        (&["user", "create", "--username", "ada", "--password-stdin"][..], "short", "at least 8 characters"),
        (&["user", "set-password", "ada", "--password-stdin"][..], accents.as_str(), "1024 bytes"),
    ] {
        let out = ws.run_stdin(args, &format!("{password}\n"));
        out.expect_code(2).stderr_names(&["latchkey: error:", rule]).never_shows(password);
        assert!(ws.entries().is_empty(), "refused before the database is opened: {:?}", ws.entries());
    }
    ws.run_stdin(&["user", "create", "--username", "ada", "--password-stdin"], &format!("{}\n", "é".repeat(512)))
        .success();
}

// ---------------------------------------------------------------------------------------
// 5: clients

#[test]
fn an_operator_registers_rotates_updates_and_deletes_clients() {
    let ws = Workspace::new();

    // A confidential client may not redirect over plain http.
    ws.run(&["client", "create", "--name", "My app", "--redirect-uri", "http://app.example.com/cb"])
        .expect_code(2)
        .stderr_names(&["latchkey: error:", "http://app.example.com/cb"]);
    assert_eq!(
        ws.run(&["client", "list", "--json"]).success().json(),
        serde_json::json!([]),
        "the failed create stored nothing"
    );

    let created =
        ws.run(&["client", "create", "--name", "My app", "--redirect-uri", "https://app.example.com/cb", "--json"]);
    let v = created.success().json();
    let secret =
        v["client_secret"].as_str().unwrap_or_else(|| panic!("a confidential client gets a secret: {v:#}")).to_owned();
    assert_eq!(secret.len(), 43, "32 random bytes, base64url without padding: {secret:?}");
    assert!(secret.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{secret:?}");
    let id = v["client"]["client_id"].as_str().unwrap_or_else(|| panic!("no client_id in {v:#}")).to_owned();
    assert_eq!(v["client"]["kind"], "confidential");
    assert_eq!(v["client"]["first_party"], false);

    for args in [
        vec!["client", "show", id.as_str()],
        vec!["client", "show", id.as_str(), "--json"],
        vec!["client", "list", "--json"],
        vec!["client", "list"],
    ] {
        ws.run(&args).success().never_shows(&secret);
    }
    ws.run(&["client", "show", &id]).success().stdout_names(&["My app", "https://app.example.com/cb"]);

    let public = ws.run(&[
        "client",
        "create",
        "--name",
        "CLI tool",
        "--type",
        "public",
        "--redirect-uri",
        "http://127.0.0.1:8123/cb",
        "--json",
    ]);
    let p = public.success().json();
    assert_eq!(p["client_secret"], Value::Null, "a public client has no secret: {p:#}");
    assert_eq!(p["client"]["kind"], "public");
    assert_eq!(p["client"]["token_endpoint_auth_method"], "none");
    assert!(!public.stdout.contains("The secret is shown only now"));

    ws.run(&["client", "create", "--name", "Service", "--type", "public", "--grant-type", "client_credentials"])
        .expect_code(1)
        .stderr_names(&["latchkey: error:", "client_credentials"]);
    ws.run(&["client", "create", "--name", "Nope", "--redirect-uri", "https://nope.example.com/cb", "--scope", "nope"])
        .expect_code(1)
        .stderr_names(&["latchkey: error:", "nope"]);
    assert_eq!(
        array_len(&ws.run(&["client", "list", "--json"]).success().json()),
        2,
        "rejected clients are not stored"
    );

    let rotated = ws.run(&["client", "rotate-secret", &id, "--json"]);
    let r = rotated.success().json();
    let new_secret = r["client_secret"].as_str().unwrap_or_else(|| panic!("a new secret: {r:#}")).to_owned();
    assert_eq!(new_secret.len(), 43);
    assert_ne!(new_secret, secret, "rotation issues a different secret");
    assert!(r["previous_secret_valid_until"].is_string(), "the old secret's grace period is stated: {r:#}");
    ws.run(&["client", "show", &id, "--json"]).success().never_shows(&secret).never_shows(&new_secret);

    let updated = ws.run(&["client", "update", &id, "--first-party", "--json"]);
    assert_eq!(updated.success().json()["first_party"], true);
    assert_eq!(
        ws.run(&["client", "show", &id, "--json"]).success().json()["first_party"],
        true,
        "the change is stored"
    );

    ws.run(&["client", "delete", &id]).success();
    ws.run(&["client", "show", &id]).expect_code(1).stderr_names(&["latchkey: error:", &id]);
    assert_eq!(array_len(&ws.run(&["client", "list", "--json"]).success().json()), 1, "only the public client is left");
}

#[test]
fn a_client_created_with_a_users_subject_id_is_refused_with_a_clear_message() {
    let ws = Workspace::new();
    ws.run(&["user", "create", "--username", "bob", "--no-password"]).success();
    let sub =
        ws.run(&["user", "show", "bob", "--json"]).success().json()["sub"].as_str().unwrap_or_default().to_owned();
    assert_eq!(sub.len(), 32);
    // RFC 9068 §5: a client-credentials token's sub is the client id; it must not name bob.
    ws.run(&["client", "create", "--name", "Impostor", "--id", &sub, "--grant-type", "client_credentials"])
        .expect_code(1)
        .stderr_names(&["latchkey: error:", &sub, "sub", "choose another client id"]);
    assert_eq!(ws.run(&["client", "list", "--json"]).success().json(), serde_json::json!([]), "nothing stored");
}

#[test]
fn the_legacy_assertion_audience_is_opt_in_shown_and_can_be_turned_off() {
    let ws = Workspace::new();
    // RFC 7517 Appendix A.1's public EC key.
    let jwks = ws.write(
        "keys.json",
        r#"{"keys":[{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","use":"sig","kid":"1"}]}"#,
    );
    let jwks = jwks.to_string_lossy().into_owned();
    let machine = ["--grant-type", "client_credentials", "--auth-method", "private_key_jwt", "--jwks-file", &jwks];
    let plain =
        ws.run(&[&["client", "create", "--name", "Plain", "--id", "plain", "--json"][..], &machine[..]].concat());
    assert_eq!(plain.success().json()["client"]["allow_legacy_assertion_audience"], false, "off by default");

    let old = ws.run(
        &[
            &[
                "client",
                "create",
                "--name",
                "Old lib",
                "--id",
                "old-lib",
                "--allow-legacy-assertion-audience",
                "--json",
            ][..],
            &machine[..],
        ]
        .concat(),
    );
    assert_eq!(old.success().json()["client"]["allow_legacy_assertion_audience"], true);
    ws.run(&["client", "show", "old-lib"])
        .success()
        .stdout_names(&["allow_legacy_assertion_audience", "token endpoint"]);
    ws.run(&["client", "list"]).success().stdout_names(&["OPT-INS", "legacy-assertion-audience"]);
    assert!(!ws.run(&["client", "show", "plain"]).success().stdout.contains("allow_legacy_assertion_audience"));

    // While a client has it, every start says so.
    let mut server = ws.serve(&[PORT_ZERO]);
    assert!(server.terminate().success());
    let logs = server.stderr();
    assert!(logs.contains("allow_legacy_assertion_audience") && logs.contains("old-lib"), "start-up warning:\n{logs}");
    let warned: Vec<&str> = logs.lines().filter(|l| l.contains("allow_legacy_assertion_audience")).collect();
    assert!(warned.len() == 1 && !warned[0].contains("plain"), "only the client that has it:\n{logs}");

    let off = ws.run(&["client", "update", "old-lib", "--allow-legacy-assertion-audience=false", "--json"]);
    assert_eq!(off.success().json()["allow_legacy_assertion_audience"], false);
    assert!(!ws.run(&["client", "list"]).success().stdout.contains("legacy-assertion-audience"), "turned off");
    let mut server = ws.serve(&[PORT_ZERO]);
    assert!(server.terminate().success());
    let logs = server.stderr();
    assert!(!logs.contains("allow_legacy_assertion_audience"), "no warning once it is off:\n{logs}");

    // Only a client that signs assertions can have it.
    ws.run(&[
        "client",
        "create",
        "--name",
        "Web",
        "--redirect-uri",
        "https://app.example.com/cb",
        "--allow-legacy-assertion-audience",
    ])
    .expect_code(1)
    .stderr_names(&["latchkey: error:", "allow_legacy_assertion_audience", "private_key_jwt"]);
    assert_eq!(
        array_len(&ws.run(&["client", "list", "--json"]).success().json()),
        2,
        "the refused client is not stored"
    );
}

// ---------------------------------------------------------------------------------------
// 6: keys

#[test]
fn keys_are_listed_per_algorithm_and_rotate_only_when_safe_or_forced() {
    let ws = Workspace::new();
    let list = ws.run(&["keys", "list", "--json"]).success().json();
    for alg in ALGS {
        key_in_state(&list, alg, "active");
        key_in_state(&list, alg, "next");
    }
    assert_eq!(array_len(&list), 6, "one active and one next key per algorithm: {list:#}");

    let refused = ws.run(&["keys", "rotate"]);
    refused.expect_code(1).stderr_names(&["latchkey: error:", "--force"]);
    let unchanged = ws.run(&["keys", "list", "--json"]).success().json();
    assert_eq!(key_states(&unchanged), key_states(&list), "a refused rotation changes nothing");

    let old_active = key_in_state(&list, "ES256", "active");
    let old_next = key_in_state(&list, "ES256", "next");
    let rotated = ws.run(&["keys", "rotate", "--alg", "ES256", "--force", "--json"]).success().json();
    assert_eq!(rotated, serde_json::json!([{"alg": "ES256", "active": old_next}]), "the next key now signs");

    let after = ws.run(&["keys", "list", "--json"]).success().json();
    let state_of = |kid: &str| {
        after
            .as_array()
            .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
            .map(|k| k["state"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_else(|| panic!("key {kid} is gone from {after:#}"))
    };
    assert_eq!(state_of(&old_active), "retired", "the old ES256 active key is retired (and still listed)");
    assert_eq!(state_of(&old_next), "active");
    let new_next = key_in_state(&after, "ES256", "next");
    assert!(new_next != old_active && new_next != old_next, "a fresh next key is published");
    for alg in ["RS256", "EdDSA"] {
        let before: Vec<_> = key_states(&list).into_iter().filter(|(a, ..)| a == alg).collect();
        let now: Vec<_> = key_states(&after).into_iter().filter(|(a, ..)| a == alg).collect();
        assert_eq!(now, before, "{alg} keys are untouched by an ES256 rotation");
    }

    ws.run(&["keys", "rotate", "--alg", "HS256"]).expect_code(2).stderr_names(&["HS256"]);

    // Retiring: only a retired key, which stops being published at once.
    ws.run(&["keys", "retire", &old_next]).expect_code(1).stderr_names(&["active", "rotate first"]);
    ws.run(&["keys", "retire", "no-such-kid"]).expect_code(1).stderr_names(&["no-such-kid"]);
    let retired = ws.run(&["keys", "retire", &old_active, "--json"]).success().json();
    assert_eq!(retired["was_published"], true, "{retired:#}");
    let listed = ws.run(&["keys", "list", "--json"]).success().json();
    let old = listed.as_array().and_then(|keys| keys.iter().find(|k| k["kid"] == old_active.as_str()).cloned());
    assert_eq!(old.map(|k| k["published"].clone()), Some(serde_json::json!(false)), "{listed:#}");
    ws.run(&["keys", "retire", &old_active]).success().stdout_names(&["nothing changed"]);
}

// ---------------------------------------------------------------------------------------
// 7: scopes

#[test]
fn custom_scopes_can_be_created_and_built_in_scopes_cannot_be_deleted() {
    let ws = Workspace::new();
    ws.run(&["scope", "create", "invoices:read", "--description", "Read invoices"]).success();

    let list = ws.run(&["scope", "list", "--json"]).success().json();
    let found = list.as_array().and_then(|a| a.iter().find(|s| s["name"] == "invoices:read")).cloned();
    let scope = found.unwrap_or_else(|| panic!("invoices:read is listed: {list:#}"));
    assert_eq!(scope["description"], "Read invoices");
    assert_eq!(scope["built_in"], false);

    ws.run(&["scope", "delete", "openid"]).expect_code(1).stderr_names(&["latchkey: error:", "openid"]);
    let list = ws.run(&["scope", "list", "--json"]).success().json();
    assert!(
        list.as_array().is_some_and(|a| a.iter().any(|s| s["name"] == "openid" && s["built_in"] == true)),
        "openid stays: {list:#}"
    );

    ws.run(&["scope", "delete", "invoices:read"]).success();
    let list = ws.run(&["scope", "list", "--json"]).success().json();
    assert!(
        list.as_array().is_some_and(|a| !a.iter().any(|s| s["name"] == "invoices:read")),
        "a custom scope can be deleted: {list:#}"
    );
}

// ---------------------------------------------------------------------------------------
// 8: a running server sees CLI changes

#[tokio::test]
async fn a_server_on_sqlite_publishes_a_key_rotated_by_the_cli_without_a_restart() {
    let ws = Workspace::new();
    let server = ws.serve(&[PORT_ZERO]);
    let client = http();
    let before = jwks_keys(&get_json(&client, &server.url("/jwks.json")).await);
    let old_active = key_in_state(&ws.run(&["keys", "list", "--json"]).success().json(), "EdDSA", "active");

    ws.run(&["keys", "rotate", "--alg", "EdDSA", "--force"]).success();
    // database.change_poll_interval (default 1 s), plus a margin for a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(1) + Duration::from_secs(2);

    let url = server.url("/jwks.json");
    let (client_ref, url, before_ref) = (&client, url.as_str(), &before);
    let (jwks, new_kid) = eventually(
        "a new EdDSA key in the running server's JWKS",
        deadline,
        "1 s poll interval + 2 s margin",
        move || {
            let (client, before) = (client_ref, before_ref);
            async move {
                let jwks = try_get_json(client, url).await?;
                let fresh: Vec<String> = jwks_keys(&jwks)
                    .into_iter()
                    .filter(|k| k.0 == "EdDSA" && !before.contains(k))
                    .map(|(_, kid)| kid)
                    .collect();
                match fresh.as_slice() {
                    [kid] => Ok((jwks.clone(), kid.clone())),
                    _ => Err(format!("EdDSA keys not seen before: {fresh:?}; JWKS keys {:?}", jwks_keys(&jwks))),
                }
            }
        },
    )
    .await;

    let list = ws.run(&["keys", "list", "--json"]).success().json();
    assert_eq!(new_kid, key_in_state(&list, "EdDSA", "next"), "the key that appeared is the new next key");
    assert_eq!(key_in_state(&list, "EdDSA", "retired"), old_active);
    assert!(jwks_kids(&jwks).contains(&old_active), "the retired key stays published until its tokens expire");
}

#[test]
fn a_client_cannot_ask_for_id_tokens_signed_with_an_algorithm_latchkey_has_no_key_for() {
    let ws = Workspace::new();
    ws.run_env(
        &["client", "create", "--name", "x", "--redirect-uri", "https://a.example/cb", "--id-token-alg", "ES256"],
        &[("LATCHKEY_KEYS__ALGORITHMS", "[\"RS256\"]")],
    )
    .expect_code(1)
    .stderr_names(&["id_token_signed_response_alg ES256", "keys.algorithms"]);
    let clients = ws.run_env(&["client", "list", "--json"], &[("LATCHKEY_KEYS__ALGORITHMS", "[\"RS256\"]")]);
    assert_eq!(clients.success().json(), serde_json::json!([]), "nothing stored");
}
