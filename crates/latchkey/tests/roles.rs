//! `latchkey role …`, `latchkey group …`, `latchkey user grant|revoke|access` and the access
//! options of `latchkey client …`.

mod support;

use serde_json::json;
use support::Workspace;

fn with_users(ws: &Workspace) {
    for name in ["ada", "bob"] {
        ws.run(&["user", "create", "--username", name, "--no-password"]).success();
    }
}

#[test]
fn roles_and_groups_are_created_granted_shown_and_revoked() {
    let ws = Workspace::new();
    with_users(&ws);
    let created =
        ws.run(&["role", "create", "editor", "--entitlement", "docs:write", "--entitlement", "docs:read", "--json"]);
    assert_eq!(created.success().json()["entitlements"], json!(["docs:read", "docs:write"]));
    ws.run(&["client", "create", "--name", "Wiki", "--id", "wiki", "--redirect-uri", "https://wiki.example/cb"])
        .success();
    ws.run(&["role", "create", "wiki-admin", "--application", "wiki", "--entitlement", "wiki:admin"]).success();
    ws.run(&["group", "create", "staff", "--description", "Everyone"]).success();
    ws.run(&["group", "add-member", "staff", "ada"]).success().stdout_names(&["Added ada to group staff"]);
    ws.run(&["group", "add-member", "staff", "ada"]).success().stdout_names(&["already"]);
    ws.run(&["group", "add-role", "staff", "wiki-admin"]).success();
    ws.run(&["user", "grant", "ada", "editor"]).success().stdout_names(&["Granted role editor to ada"]);
    ws.run(&["group", "add-role", "staff", "editor"]).success();

    let access = ws.run(&["user", "access", "ada", "--json"]);
    let access = access.success().json();
    assert_eq!(access["groups"], json!(["staff"]));
    assert_eq!(access["roles"][0]["name"], "editor");
    assert_eq!(access["roles"][0]["direct"], true);
    assert_eq!(access["roles"][0]["via_groups"], json!(["staff"]));
    assert_eq!(access["roles"][1]["application"], "wiki");
    ws.run(&["user", "access", "ada"]).success().stdout_names(&["editor", "direct, group staff", "wiki:admin"]);
    ws.run(&["role", "show", "editor"]).success().stdout_names(&["docs:read docs:write", "held by:        ada"]);
    ws.run(&["role", "list"]).success().stdout_names(&["editor", "wiki-admin", "wiki"]);
    ws.run(&["group", "show", "staff"]).success().stdout_names(&["editor wiki-admin", "members:        ada"]);
    ws.run(&["group", "list"]).success().stdout_names(&["staff", "Everyone"]);

    // Revoking the direct grant says the role is still held through the group.
    ws.run(&["user", "revoke", "ada", "editor"]).success().stdout_names(&["still hold it through group staff"]);
    ws.run(&["user", "revoke", "ada", "editor"]).expect_code(1).stderr_names(&["editor", "not found"]);
    ws.run(&["group", "remove-role", "staff", "editor"]).success();
    ws.run(&["group", "remove-member", "staff", "ada"]).success();
    let after = ws.run(&["user", "access", "ada", "--json"]);
    assert_eq!(after.success().json(), json!({"roles": [], "groups": []}));
    ws.run(&["role", "update", "editor", "--add-entitlement", "docs:delete", "--remove-entitlement", "docs:read"])
        .success()
        .stdout_names(&["docs:delete docs:write"]);
    ws.run(&["group", "delete", "staff"]).success();
    ws.run(&["role", "delete", "editor"]).success();
    ws.run(&["role", "show", "editor"]).expect_code(1).stderr_names(&["no role `editor`"]);
}

#[test]
fn a_client_releases_access_claims_and_requires_roles_that_exist() {
    let ws = Workspace::new();
    ws.run(&["role", "create", "editor"]).success();
    let base = ["client", "create", "--name", "Wiki", "--id", "wiki", "--redirect-uri", "https://wiki.example/cb"];
    let typo = [&base[..], &["--require-role", "editr"]].concat();
    ws.run(&typo).expect_code(1).stderr_names(&["role `editr`"]);
    ws.run(&["client", "show", "wiki"]).expect_code(1);
    let args = [&base[..], &["--release-claims", "roles,entitlements", "--require-role", "editor", "--json"]].concat();
    let created = ws.run(&args);
    let policy = created.success().json()["client"]["access_policy"].clone();
    assert_eq!(policy["release_roles"], true);
    assert_eq!(policy["release_groups"], false);
    assert_eq!(policy["required_roles"], json!({"any_of": ["editor"]}));
    ws.run(&["client", "show", "wiki"])
        .success()
        .stdout_names(&["access claims:  roles, entitlements", "any of [editor]"]);
    ws.run(&["role", "delete", "editor"]).expect_code(1).stderr_names(&["required by client `wiki`"]);
    ws.run(&["role", "create", "reviewer"]).success();
    let all =
        ["client", "update", "wiki", "--require-role", "editor", "--require-role", "reviewer", "--require-all-roles"];
    ws.run(&all).success().stdout_names(&["all of [editor, reviewer]"]);
    let none = ["client", "update", "wiki", "--no-required-roles", "--release-claims", "none", "--json"];
    let cleared = ws.run(&none);
    let policy = cleared.success().json()["access_policy"].clone();
    assert_eq!(policy["required_roles"], json!(null));
    assert_eq!(policy["release_roles"], false);
    ws.run(&["role", "delete", "editor"]).success();
}

#[test]
fn bad_names_and_unknown_ends_are_named() {
    let ws = Workspace::new();
    with_users(&ws);
    ws.run(&["role", "create", "Editor"]).expect_code(2).stderr_names(&["role name", "lowercase"]);
    ws.run(&["role", "create", "x", "--entitlement", "a b"]).expect_code(2).stderr_names(&["entitlement"]);
    ws.run(&["role", "list"]).success().never_shows("x ");
    ws.run(&["role", "create", "x", "--application", "nosuch"]).expect_code(1).stderr_names(&["client `nosuch`"]);
    ws.run(&["role", "create", "editor"]).success();
    ws.run(&["role", "create", "editor"]).expect_code(1).stderr_names(&["exists already"]);
    ws.run(&["user", "grant", "nobody", "editor"]).expect_code(1).stderr_names(&["no user `nobody`"]);
    ws.run(&["user", "grant", "ada", "nosuch"]).expect_code(1).stderr_names(&["role `nosuch`"]);
    ws.run(&["group", "add-member", "nosuch", "ada"]).expect_code(1).stderr_names(&["group `nosuch`"]);
    let long = "d".repeat(501);
    ws.run(&["group", "create", "staff", "--description", &long]).expect_code(1).stderr_names(&["500 characters"]);
    let wrong = ["client", "create", "--name", "W", "--id", "w", "--redirect-uri", "https://w.example/cb"];
    let wrong = [&wrong[..], &["--release-claims", "roles,emails"]].concat();
    ws.run(&wrong).expect_code(2).stderr_names(&["--release-claims", "emails"]);
    let mixed = ["client", "create", "--name", "W", "--id", "w", "--redirect-uri", "https://w.example/cb"];
    let mixed = [&mixed[..], &["--release-claims", "none,roles"]].concat();
    ws.run(&mixed).expect_code(2).stderr_names(&["none"]);
}

#[test]
fn check_config_checks_the_forward_auth_rules_against_the_roles_that_exist() {
    let ws = Workspace::new();
    ws.write(
        "latchkey.toml",
        "[server]\npublic_url = \"https://auth.example.com\"\n[forward_auth]\nrules = \"rules.toml\"\ncookie_domain = \"example.com\"\n",
    );
    let rules = ws.write(
        "rules.toml",
        "[[rule]]\nhosts = [\"app.example.com\"]\npaths = [\"/public/*\"]\npolicy = \"bypass\"\n\n[[rule]]\nhosts = [\"app.example.com\"]\npolicy = \"one_factor\"\nroles = { all = [\"editor\", \"staff\"] }\n",
    );
    ws.run(&["check-config"]).expect_code(2).stderr_names(&[
        "forward_auth.rules",
        &format!("{} line 6", rules.display()),
        "role `editor` does not exist",
    ]);
    ws.run(&["role", "create", "editor"]).success();
    ws.run(&["role", "create", "staff"]).success();
    ws.run(&["check-config"]).success().stdout_names(&["Configuration is valid", "cookie_domain = \"example.com\""]);
    ws.write("rules.toml", "[[rule]]\nhosts = [\"app.example.com\"]\npaths = [\"/a/*/b\"]\npolicy = \"deny\"\n");
    ws.run(&["check-config"]).expect_code(2).stderr_names(&["line 1", "route", "`/a/*/b`"]);
}

#[test]
fn a_role_or_group_the_forward_auth_rules_name_is_not_deleted() {
    let ws = Workspace::new();
    ws.write(
        "latchkey.toml",
        "[server]\npublic_url = \"https://auth.example.com\"\n[forward_auth]\nrules = \"rules.toml\"\ncookie_domain = \"example.com\"\n",
    );
    ws.write("rules.toml", "");
    ws.run(&["role", "create", "editor"]).success();
    ws.run(&["group", "create", "staff"]).success();
    ws.write(
        "rules.toml",
        "[[rule]]\nhosts = [\"app.example.com\"]\npolicy = \"one_factor\"\nroles = [\"editor\"]\ngroups = [\"staff\"]\n",
    );
    ws.run(&["role", "delete", "editor"]).expect_code(1).stderr_names(&["forward-auth rules (line 1)", "editor"]);
    ws.run(&["group", "delete", "staff"]).expect_code(1).stderr_names(&["forward-auth rules (line 1)", "staff"]);
    ws.write("rules.toml", "");
    ws.run(&["role", "delete", "editor"]).success();
    ws.run(&["group", "delete", "staff"]).success();
}

const SHOP: &str = r#"
[[scopes]]
name = "orders:read"
description = "Read your orders"

[[roles]]
name = "shop-admin"
application = "shop"

[[clients]]
client_id = "shop"
name = "Shop"
redirect_uris = ["https://shop.example/cb"]
scopes = ["openid", "orders:read"]
access = { required_roles = { roles = ["shop-admin"] } }

[[clients]]
client_id = "batch"
name = "Batch"
grant_types = ["client_credentials"]
scopes = ["orders:read"]
secret = "env:BATCH_SECRET"

[[users]]
username = "ada"
roles = ["shop-admin"]
"#;

#[test]
fn apply_makes_the_database_match_a_file_once_prints_the_plan_and_prunes() {
    let ws = Workspace::new();
    let secret = ("BATCH_SECRET", "a-long-secret-from-the-environment-1234");
    ws.write("latchkey.apply.toml", SHOP);
    let plan = ws.run_env(&["apply", "latchkey.apply.toml", "--dry-run"], &[secret]);
    plan.success().stdout_names(&[
        "+ scope orders:read",
        "+ client shop",
        "+ user ada",
        "Nothing was changed (--dry-run)",
    ]);
    ws.run(&["client", "show", "shop"]).expect_code(1);

    let done = ws.run_env(&["apply", "latchkey.apply.toml"], &[secret]);
    done.success().stdout_names(&["Changed 5 object(s)", "Secret of client shop:"]);
    ws.run(&["client", "show", "shop"]).success().stdout_names(&["any of [shop-admin]"]);
    ws.run(&["user", "access", "ada"]).success().stdout_names(&["shop-admin"]);
    ws.run_env(&["apply", "latchkey.apply.toml"], &[secret])
        .success()
        .stdout_names(&["Nothing to change: 5 object(s)"]);

    // One changed setting is the plan, shown before and after.
    ws.write("latchkey.apply.toml", &SHOP.replace("https://shop.example/cb", "https://shop.example/callback"));
    let changed = ws.run_env(&["apply", "latchkey.apply.toml", "--dry-run"], &[secret]);
    changed.success().stdout_names(&[
        "~ client shop",
        "redirect_uris: [\"https://shop.example/cb\"] -> [\"https://shop.example/callback\"]",
        "Would change 1 object(s)",
    ]);

    // The same document as JSON; without the users it once listed, --prune removes them.
    let as_json = json!({
        "scopes": [{"name": "orders:read", "description": "Read your orders"}],
        "clients": [{"client_id": "batch", "name": "Batch", "grant_types": ["client_credentials"], "scopes": ["orders:read"], "secret": "env:BATCH_SECRET"}]
    });
    ws.write("apply.json", &as_json.to_string());
    let pruned = ws.run_env(&["apply", "apply.json", "--prune", "--json"], &[secret]).success().json();
    let deleted: Vec<String> = pruned["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["action"] == "delete")
        .map(|s| format!("{} {}", s["kind"].as_str().unwrap_or(""), s["name"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(deleted, ["user ada", "client shop", "role shop-admin"]);
    ws.run(&["user", "show", "ada"]).expect_code(1);
    ws.run(&["client", "show", "batch"]).success();
}

#[test]
fn apply_refuses_a_bad_file_naming_the_file_and_where_and_writes_nothing() {
    let ws = Workspace::new();
    ws.write("unknown.toml", "[[scopes]]\nname = \"a\"\ndescription = \"A\"\ncolour = \"red\"\n");
    ws.run(&["apply", "unknown.toml"]).expect_code(2).stderr_names(&[
        "unknown.toml",
        "scopes[0].colour",
        "unknown field",
    ]);
    ws.write(
        "dangling.toml",
        "[[scopes]]\nname = \"a\"\ndescription = \"A\"\n[[groups]]\nname = \"g\"\nmembers = [\"nobody\"]\n",
    );
    ws.run(&["apply", "dangling.toml"]).expect_code(1).stderr_names(&[
        "dangling.toml",
        "groups[0] (g).members",
        "nobody",
    ]);
    ws.write("clear.toml", "[[clients]]\nclient_id = \"x\"\nname = \"X\"\nsecret = \"hunter2-in-clear\"\n");
    ws.run(&["apply", "clear.toml"]).expect_code(2).stderr_names(&["clients[0].secret", "env:NAME"]);
    ws.write("unset.toml", "[[clients]]\nclient_id = \"x\"\nname = \"X\"\ngrant_types = [\"client_credentials\"]\nscopes = []\nsecret = \"env:LATCHKEY_TEST_UNSET_SECRET\"\n");
    ws.run(&["apply", "unset.toml"]).expect_code(2).stderr_names(&["LATCHKEY_TEST_UNSET_SECRET", "not set"]);
    let secret_file = ws.write("secret.txt", "a-long-secret-in-a-file-0123456789abcdef\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o644));
    }
    let by_file = format!(
        "[[clients]]\nclient_id = \"x\"\nname = \"X\"\ngrant_types = [\"client_credentials\"]\nscopes = []\nsecret = \"file:{}\"\n",
        secret_file.display()
    );
    ws.write("by-file.toml", &by_file);
    ws.run(&["apply", "by-file.toml"]).expect_code(2).stderr_names(&["readable by other users", "chmod 600"]);
    let scopes = ws.run(&["scope", "list", "--json"]).success().json();
    let names: Vec<&str> = scopes.as_array().into_iter().flatten().filter_map(|s| s["name"].as_str()).collect();
    assert!(names.contains(&"openid") && !names.contains(&"a"), "nothing of a refused file is stored: {names:?}");
    assert_eq!(ws.run(&["client", "list", "--json"]).success().json(), json!([]));
}
