//! `latchkey api-key …` and `latchkey service-account …`.

mod support;

use support::Workspace;

fn with_reporter(ws: &Workspace) {
    ws.run(&["user", "create", "--username", "ada", "--no-password"]).success();
    ws.run(&["role", "create", "reporter", "--entitlement", "reports:read", "--entitlement", "reports:write"])
        .success();
    ws.run(&["user", "grant", "ada", "reporter"]).success();
}

#[test]
fn a_key_is_shown_once_listed_without_its_secret_rotated_and_revoked() {
    let ws = Workspace::new();
    with_reporter(&ws);
    let args = ["api-key", "create", "--owner", "ada", "--name", "ci", "--scope", "reports:read", "--read-only"];
    let created = ws.run(&[&args[..], &["--expires-in", "30d", "--route", "/api/reports/*", "--json"]].concat());
    let json = created.success().json();
    let secret = json["secret"].as_str().unwrap_or_default().to_owned();
    let id = json["key"]["id"].as_str().unwrap_or_default().to_owned();
    assert!(secret.starts_with("lk_") && secret.len() == 65, "{secret}");
    assert!(secret.starts_with(&format!("{id}_")), "{id} {secret}");
    assert_eq!(json["key"]["methods"], serde_json::json!(["GET", "HEAD", "OPTIONS"]));
    assert!(json["key"].get("secret_hash").is_none(), "{json}");
    let listed = ws.run(&["api-key", "list"]);
    listed.success().stdout_names(&[&id, "ada", "ci", "reports:read"]).never_shows(&secret[16..]);
    ws.run(&["api-key", "list", "--owner", "ada", "--json"]).success().never_shows(&secret[16..]);

    let rotated = ws.run(&["api-key", "rotate", &id, "--grace", "1h", "--json"]);
    let new_secret = rotated.success().json()["secret"].as_str().unwrap_or_default().to_owned();
    assert!(new_secret.starts_with(&format!("{id}_")) && new_secret != secret);
    ws.run(&["api-key", "rotate", &id, "--grace", "8d"]).expect_code(1).stderr_names(&["7 days"]);
    ws.run(&["api-key", "revoke", &id]).success().stdout_names(&["Revoked"]);
    ws.run(&["api-key", "revoke", &id]).expect_code(1).stderr_names(&["not found"]);
    ws.run(&["api-key", "list"]).success().never_shows(&id);
}

#[test]
fn a_key_carries_only_rights_its_owner_holds_and_bad_input_is_named() {
    let ws = Workspace::new();
    with_reporter(&ws);
    let base = ["api-key", "create", "--owner", "ada", "--name", "k"];
    ws.run(&[&base[..], &["--scope", "admin:all"]].concat())
        .expect_code(1)
        .stderr_names(&["does not hold `admin:all`"]);
    ws.run(&[&base[..], &["--scope", "a b"]].concat()).expect_code(2).stderr_names(&["scope"]);
    ws.run(&[&base[..], &["--scope", "openid", "--route", "api"]].concat()).expect_code(2).stderr_names(&["route"]);
    ws.run(&[&base[..], &["--scope", "openid", "--method", "TRACE"]].concat()).expect_code(2).stderr_names(&["TRACE"]);
    ws.run(&[&base[..], &["--scope", "openid", "--audience", "https://x.example"]].concat())
        .expect_code(1)
        .stderr_names(&["resource"]);
    ws.run(&["api-key", "create", "--owner", "nobody", "--name", "k", "--scope", "openid"])
        .expect_code(1)
        .stderr_names(&["no user `nobody`"]);
    ws.run(&["api-key", "revoke", "lk_short"]).expect_code(2).stderr_names(&["API key id"]);
    ws.run(&["api-key", "list", "--json"]).success();
    assert_eq!(ws.run(&["api-key", "list", "--json"]).json(), serde_json::json!([]), "nothing stored");
}

#[test]
fn service_accounts_hold_roles_and_keys_and_never_a_password() {
    let ws = Workspace::new();
    ws.run(&["user", "create", "--username", "ada", "--no-password"]).success();
    ws.run(&["service-account", "create", "backup-bot"]).success().stdout_names(&["backup-bot"]);
    ws.run(&["service-account", "list"]).success().stdout_names(&["backup-bot"]).never_shows("ada");
    ws.run(&["role", "create", "backup", "--entitlement", "backup:run"]).success();
    ws.run(&["user", "grant", "backup-bot", "backup"]).success();
    let created = ws.run(&["api-key", "create", "--owner", "backup-bot", "--name", "n", "--scope", "backup:run"]);
    created.success().stdout_names(&["shown only now"]);
    let refused = ws.run(&["api-key", "create", "--owner", "backup-bot", "--name", "o", "--scope", "openid"]);
    refused.expect_code(1).stderr_names(&["does not hold `openid`"]);
    ws.run_stdin(&["user", "set-password", "backup-bot", "--password-stdin"], "long enough password\n")
        .expect_code(1)
        .stderr_names(&["never signs in"]);
    ws.run(&["service-account", "delete", "ada"]).expect_code(1).stderr_names(&["not a service account"]);
    ws.run(&["service-account", "delete", "backup-bot"]).success();
    assert_eq!(ws.run(&["api-key", "list", "--json"]).json(), serde_json::json!([]), "its keys went with it");
}
