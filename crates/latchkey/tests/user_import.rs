//! `latchkey user import FILE`: users from another system with their password hashes, all
//! or nothing, every problem reported by line, no hash ever printed.

mod support;

use serde_json::Value;
use support::Workspace;

fn bcrypt(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap_or_else(|e| panic!("{e}"))
}

/// An Argon2id hash as another system stores it (cheap parameters, within the bounds).
const ARGON2ID: &str = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$XwRlQDLXmaWKqR3ExnwRAIeLc8dnBaRW4HvfxVg5Jqk";

fn usernames(ws: &Workspace) -> Vec<String> {
    let list = ws.run(&["user", "list", "--json"]);
    let users: Value = list.success().json();
    users
        .as_array()
        .map(|a| a.iter().map(|u| u["username"].as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn users_are_imported_with_their_hashes_and_subject_ids_without_the_hashes_showing() {
    let ws = Workspace::new();
    let ada = bcrypt("ada's password");
    let file = ws.write(
        "users.jsonl",
        &[
            format!(
                r#"{{"username": "ada", "email": "ada@example.com", "email_verified": true, "name": "Ada Lovelace", "claims": {{"given_name": "Ada"}}, "password_hash": "{ada}", "sub": "auth0|5f7c8ec7"}}"#
            ),
            String::new(),
            format!(r#"{{"username": "bob", "password_hash": "{ARGON2ID}"}}"#),
            r#"{"username": "cy"}"#.to_owned(),
        ]
        .join("\n"),
    );
    let out = ws.run(&["user", "import", &file.display().to_string(), "--json"]);
    assert_eq!(out.success().json()["imported"], 3);
    out.never_shows(&ada[7..]).never_shows(&ARGON2ID[30..]);
    assert_eq!(usernames(&ws), ["ada", "bob", "cy"]);

    let shown = ws.run(&["user", "show", "auth0|5f7c8ec7", "--json"]);
    let u = shown.success().json();
    assert_eq!((u["username"].as_str(), u["has_password"].as_bool()), (Some("ada"), Some(true)), "{u:#}");
    assert_eq!(u["email_verified"], true);
    shown.never_shows(&ada[7..]);
}

#[test]
fn a_file_with_bad_duplicate_costly_or_claim_setting_lines_imports_nobody_and_names_every_line() {
    let ws = Workspace::new();
    ws.run(&["client", "create", "--name", "web", "--id", "web-app", "--redirect-uri", "https://app.example.com/cb"])
        .success();
    ws.run(&["user", "create", "--username", "existing", "--no-password"]).success();
    let good = bcrypt("pw");
    let costly = format!("$2b$15{}", &good[6..]);
    let file = ws.write(
        "users.jsonl",
        &[
            format!(r#"{{"username": "ada", "password_hash": "{good}"}}"#),
            format!(r#"{{"username": "ada", "password_hash": "{good}"}}"#),
            format!(r#"{{"username": "bob", "password_hash": "{costly}"}}"#),
            r#"{"username": "cy", "claims": {"sub": "someone-else"}}"#.to_owned(),
            format!(r#"{{"username": "di", "email_verified": "{good}"}}"#),
            r#"{"username": "ed", "sub": "web-app"}"#.to_owned(),
            r#"{"username": "existing"}"#.to_owned(),
            format!(r#"{{"username": "fay", "password_hash": "{good}""#),
            format!(r#"{{"username": "gus", "password_hash": "$argon2i$v=19$m=64,t=1,p=1{}"}}"#, &ARGON2ID[27..]),
            r#"{"username": "hal", "email": "Hal@example.org", "email_verified": true}"#.to_owned(),
            r#"{"username": "ian", "email": "hal@EXAMPLE.org", "email_verified": true}"#.to_owned(),
        ]
        .join("\n"),
    );
    let path = file.display().to_string();
    let out = ws.run(&["user", "import", &path]);
    out.expect_code(1).stderr_names(&[
        "latchkey: error:",
        "no user was imported",
        &format!("{path}:2: username `ada` is also on line 1"),
        &format!("{path}:3: password_hash: the password hash costs too much to verify: bcrypt cost 15"),
        &format!("{path}:4: `claims` cannot set `sub`"),
        &format!("{path}:5: `email_verified` must be true or false"),
        &format!("{path}:8: not valid JSON"),
        &format!("{path}:9: password_hash: the password hash is of an unsupported kind"),
        &format!("{path}:11: verified email is also on line 10"),
    ]);
    out.never_shows(&good[7..]);
    assert_eq!(usernames(&ws), ["existing"], "nothing was imported");

    // Once the file's own lines are right, what collides with stored data is reported.
    let file = ws.write(
        "users.jsonl",
        &[
            format!(r#"{{"username": "ada", "password_hash": "{good}"}}"#),
            r#"{"username": "ed", "sub": "web-app"}"#.to_owned(),
            r#"{"username": "existing"}"#.to_owned(),
        ]
        .join("\n"),
    );
    let out = ws.run(&["user", "import", &file.display().to_string()]);
    out.expect_code(1).stderr_names(&[
        &format!("{path}:2: sub `web-app` is the id of a client"),
        &format!("{path}:3: username `existing` belongs to an existing user"),
    ]);
    out.never_shows(&good[7..]);
    assert_eq!(usernames(&ws), ["existing"], "nothing was imported");
}
