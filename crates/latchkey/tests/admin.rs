//! The CLI's side of the admin API: admin clients, the built-in admin roles, and the
//! first administrator.

mod support;

use support::Workspace;

#[test]
fn only_an_admin_client_gets_admin_scopes() {
    let ws = Workspace::new();
    let base = ["client", "create", "--name", "Ops", "--grant-type", "client_credentials"];
    ws.run(&[&base[..], &["--id", "plain", "--scope", "admin:users:read"]].concat())
        .expect_code(1)
        .stderr_names(&["admin client", "--admin-client"]);
    ws.run(&[&base[..], &["--id", "odd", "--admin-client", "--scope", "admin:everything"]].concat())
        .expect_code(1)
        .stderr_names(&["admin:everything", "not an admin scope"]);
    let made =
        ws.run(&[&base[..], &["--id", "ops", "--admin-client", "--scope", "admin:users:read", "--json"]].concat());
    let json = made.success().json();
    assert_eq!(json["client"]["admin_client"], true, "{json}");
    ws.run(&["client", "show", "ops"]).success().stdout_names(&["admin client"]);
    // An admin client keeps its flag while it has admin scopes.
    ws.run(&["client", "update", "ops", "--admin-client", "false"]).expect_code(1).stderr_names(&["admin:users:read"]);
    ws.run(&["scope", "create", "admin:mine", "--description", "x"]).expect_code(1).stderr_names(&["admin:"]);
    ws.run(&["scope", "list"]).success().stdout_names(&["admin:users:read", "admin:audit:read"]);
}

#[test]
fn the_first_administrator_is_made_from_the_cli_and_never_removed_last() {
    let ws = Workspace::new();
    ws.run(&["user", "create", "--username", "ada", "--no-password"]).success();
    ws.run(&["role", "list"]).success().stdout_names(&["latchkey-admin", "latchkey-auditor"]);
    ws.run(&["user", "grant", "ada", "latchkey-admin"]).success();
    ws.run(&["user", "lock", "ada"]).expect_code(1).stderr_names(&["last active holder", "latchkey-admin"]);
    ws.run(&["user", "revoke", "ada", "latchkey-admin"]).expect_code(1).stderr_names(&["latchkey-admin"]);
    ws.run(&["role", "delete", "latchkey-admin"]).expect_code(1).stderr_names(&["latchkey-"]);
    ws.run(&["role", "create", "latchkey-root"]).expect_code(1).stderr_names(&["latchkey-"]);
    ws.run(&["user", "create", "--username", "grace", "--no-password"]).success();
    ws.run(&["user", "grant", "grace", "latchkey-admin"]).success();
    ws.run(&["user", "revoke", "ada", "latchkey-admin"]).success();
    ws.run(&["user", "show", "ada", "--json"]).success();
}

#[tokio::test]
async fn audit_verify_names_a_changed_entry_and_export_writes_json_lines() {
    use sqlx::Connection as _;
    let ws = Workspace::new();
    let made = ws.run(&["user", "create", "--username", "adelheid", "--no-password", "--json"]).success().json();
    let sub = made["sub"].as_str().unwrap_or_default().to_owned();
    assert!(!sub.is_empty(), "{made:#}");
    // Chained when the command ended (`list` does not run the chain's writer first).
    let listed = ws.run(&["audit", "list", "--action", "user.created", "--json"]).success().json();
    assert!(listed[0]["seq"].as_i64().is_some(), "{listed:#}");
    ws.run(&["client", "create", "--id", "app", "--name", "App", "--redirect-uri", "https://app.example/cb"]).success();
    let listed = ws.run(&["audit", "list", "--action", "client.created", "--json"]).success().json();
    assert!(listed[0]["seq"].as_i64().is_some(), "a command that closes its store chains first: {listed:#}");

    let verified = ws.run(&["audit", "verify", "--json"]).success().json();
    assert_eq!(verified["problems"], serde_json::json!([]), "{verified:#}");
    assert!(verified["entries"].as_u64().unwrap_or(0) >= 2, "the user and a checkpoint: {verified:#}");
    ws.run(&["audit", "verify"]).success().stdout_names(&["the chain is intact"]);

    // The command's entry was chained when it ended, and reads back in clear.
    let listed = ws.run(&["audit", "list", "--action", "user.created", "--json"]).success().json();
    assert_eq!(listed[0]["target"], sub.as_str(), "{listed:#}");
    assert_eq!(listed[0]["actor"], "cli", "{listed:#}");
    let by_subject = ws.run(&["audit", "list", "--subject", &sub, "--json"]).success().json();
    assert_eq!(by_subject.as_array().map(Vec::len), Some(1), "{by_subject:#}");
    ws.run(&["audit", "list", "--limit", "0"]).expect_code(2).stderr_names(&["--limit"]);

    let file = ws.path("audit.jsonl");
    ws.run(&["audit", "export", "--output", "audit.jsonl"]).success().stderr_names(&["wrote"]);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("export: {e}"));
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("`{l}`: {e}"))).collect();
    assert!(lines.iter().any(|l| l["action"] == "user.created" && l["target"] == sub.as_str()), "{text}");
    let ids: Vec<i64> = lines.iter().filter_map(|l| l["id"].as_i64()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest first: {ids:?}");
    ws.run(&["audit", "export", "--output", "audit.jsonl"]).expect_code(1).stderr_names(&["audit.jsonl"]);
    let exports = ws.run(&["audit", "list", "--action", "audit.exported", "--json"]).success().json();
    assert_eq!(
        exports.as_array().map(Vec::len),
        Some(1),
        "the export is recorded, the refused one read nothing: {exports:#}"
    );

    // Changed in the database by someone without the master key.
    let url = format!("sqlite:{}", ws.path("latchkey.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap_or_else(|e| panic!("connect: {e}"));
    sqlx::query("UPDATE audit_log SET at = at + 60 WHERE seq = 1")
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("tamper: {e}"));
    conn.close().await.unwrap_or_else(|e| panic!("close: {e}"));
    ws.run(&["audit", "verify"]).expect_code(1).stdout_names(&["TAMPERED: entry 1 was changed"]);
    let checkpoint = ws.run(&["audit", "checkpoint", "--json"]).success().json();
    assert!(checkpoint["public_key"].as_str().is_some_and(|k| k.len() == 43), "{checkpoint:#}");
}

#[test]
fn user_export_writes_one_json_document_and_never_overwrites() {
    let ws = Workspace::new();
    ws.run(&["user", "create", "--username", "adelheid", "--email", "adelheid@example.org", "--no-password"]).success();
    ws.run(&["user", "export", "adelheid", "--output", "data.json"]).success().stderr_names(&["data.json"]);
    let text = std::fs::read_to_string(ws.path("data.json")).unwrap_or_else(|e| panic!("export: {e}"));
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("json: {e}"));
    assert_eq!(doc["profile"]["username"], "adelheid", "{doc:#}");
    assert_eq!(doc["profile"]["email"]["address"], "adelheid@example.org", "{doc:#}");
    assert_eq!(doc["format"], "latchkey-personal-data-v1");
    ws.run(&["user", "export", "adelheid", "--output", "data.json"]).expect_code(1).stderr_names(&["data.json"]);
    ws.run(&["user", "export", "nobody", "--output", "none.json"]).expect_code(1).stderr_names(&["nobody"]);
    assert!(!ws.path("none.json").exists(), "nothing half-written is left");
    let stdout = ws.run(&["user", "export", "adelheid"]).success().json();
    assert_eq!(stdout["profile"]["username"], "adelheid");
    let exports = ws.run(&["audit", "list", "--action", "user.exported", "--json"]).success().json();
    assert_eq!(exports.as_array().map(Vec::len), Some(2), "each export is recorded: {exports:#}");
}

#[test]
fn retention_counts_then_deletes_what_is_past_its_time() {
    let ws = Workspace::new();
    ws.run(&["user", "create", "--username", "ada", "--no-password"]).success();
    let dry = ws.run(&["retention", "--dry-run", "--json"]).success().json();
    assert_eq!(dry["dry_run"], true, "{dry:#}");
    for kind in ["audit_entries", "used_invitations", "refresh_tokens", "ended_sessions"] {
        assert!(dry["removed"][kind].is_u64(), "{kind} in {dry:#}");
    }
    assert_eq!(dry["removed"]["audit_entries"], 0, "nothing is a year old: {dry:#}");
    let done = ws.run(&["retention", "--json"]).success().json();
    assert_eq!(done["dry_run"], false, "{done:#}");
    ws.run(&["retention", "--dry-run", "--older"]).expect_code(2);
}

#[tokio::test]
async fn retention_deletes_a_sign_up_never_verified_and_says_what_it_did_to_accounts() {
    use sqlx::Connection as _;
    let mut ws = Workspace::new();
    ws.write("latchkey.toml", "[mail]\nfrom = \"id@example.test\"\nhost = \"127.0.0.1\"\ntls = \"none\"\n");
    ws.set_env("LATCHKEY_RETENTION__UNVERIFIED_SIGN_UPS", "7d");
    for name in ["ada", "bob"] {
        let address = format!("{name}@example.org");
        ws.run(&["user", "create", "--username", name, "--email", &address, "--no-password"]).success();
    }
    // Ada signed up eight days ago and never verified her address (made here by hand: a
    // sign-up needs a browser, and this clock cannot move); bob was made by an operator.
    let url = format!("sqlite:{}", ws.path("latchkey.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap_or_else(|e| panic!("connect: {e}"));
    sqlx::query(
        "UPDATE users SET unverified_sign_up = TRUE, created_at = created_at - 8 * 86400,
            last_active_at = last_active_at - 8 * 86400 WHERE username = 'ada'",
    )
    .execute(&mut conn)
    .await
    .unwrap_or_else(|e| panic!("update: {e}"));
    conn.close().await.unwrap_or_else(|e| panic!("close: {e}"));

    let dry = ws.run(&["retention", "--dry-run"]).success().stdout.clone();
    assert!(dry.contains("ACCOUNTS") && dry.contains("WOULD BE"), "{dry}");
    assert!(dry.lines().any(|l| l.starts_with("unverified sign-up: deleted") && l.ends_with(" 1")), "{dry}");
    ws.run(&["user", "show", "ada"]).success();
    let done = ws.run(&["retention", "--json"]).success().json();
    assert_eq!(done["accounts"]["unverified_deleted"], 1, "{done:#}");
    assert_eq!(done["accounts"]["noticed"], 0, "{done:#}");
    ws.run(&["user", "show", "ada"]).expect_code(1);
    ws.run(&["user", "show", "bob"]).success();
    let erased = ws.run(&["audit", "list", "--action", "user.erased", "--json"]).success().json();
    assert_eq!(erased.as_array().map(Vec::len), Some(1), "{erased:#}");
}

#[tokio::test]
async fn rotate_data_key_reseals_personal_data_that_is_never_stored_in_clear() {
    use sqlx::Connection as _;
    let ws = Workspace::new();
    let address = "Hedwig.Kiesler@Example.org";
    ws.run(&[
        "user",
        "create",
        "--username",
        "hedy",
        "--email",
        address,
        "--name",
        "Hedwig Kiesler",
        "--claim",
        "phone_number=+15550100777",
        "--no-password",
    ])
    .success();
    let url = format!("sqlite:{}", ws.path("latchkey.db").display());
    let stored = || async {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap_or_else(|e| panic!("connect: {e}"));
        let row: (String, String, String, i64) = sqlx::query_as(
            "SELECT email || ' ' || name, profile, email_index, sealed_gen FROM users WHERE username = 'hedy'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("row: {e}"));
        conn.close().await.unwrap_or_else(|e| panic!("close: {e}"));
        row
    };
    let before = stored().await;
    for clear in ["Hedwig", "Kiesler", "kiesler", "Example.org", "example.org", "5550100777"] {
        assert!(!format!("{before:?}").contains(clear), "`{clear}` is stored in clear: {before:?}");
    }
    assert_eq!(before.3, 1, "sealed under the first generation");

    let rotated = ws.run(&["keys", "rotate-data-key", "--json"]).success().json();
    assert_eq!(rotated["generation"], 2, "{rotated:#}");
    assert_eq!(rotated["sealed"]["users"], 1, "{rotated:#}");
    assert_eq!(rotated["remaining"], 0, "{rotated:#}");
    let after = stored().await;
    assert_eq!(after.3, 2, "re-sealed under the new generation");
    assert_ne!(after.0, before.0, "the ciphertext changed");
    assert_eq!(after.2, before.2, "the blind index did not: searches still find her");

    let shown = ws.run(&["user", "show", "hedy", "--json"]).success().json();
    assert_eq!(shown["email"], "Hedwig.Kiesler@example.org", "{shown:#}");
    assert_eq!(shown["name"], "Hedwig Kiesler", "{shown:#}");
    ws.run(&["keys", "rotate-data-key"]).success().stdout_names(&["generation 3", "users: 1 re-encrypted", "0 left"]);
    let audit = ws.run(&["audit", "list", "--action", "keys.data_key_rotated", "--json"]).success().json();
    assert_eq!(audit.as_array().map(Vec::len), Some(2), "{audit:#}");
}
