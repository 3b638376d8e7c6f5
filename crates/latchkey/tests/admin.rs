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
