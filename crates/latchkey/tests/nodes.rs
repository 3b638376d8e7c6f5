//! Several `latchkey serve` processes on one PostgreSQL database. These run only in builds
//! made with `LATCHKEY_TEST_POSTGRES_URL` set to a database whose role may create databases
//! (CI sets it); without it they are reported as ignored.

mod support;

use std::time::{Duration, Instant};

use latchkey_service::testing::TestDatabase;
use support::{Server, Workspace, eventually, get_json, http, jwks_keys, key_in_state, try_get_json};

/// Two different master keys (64 hex characters). They start with a letter, so the
/// environment override reads them as strings, never as TOML numbers.
const MASTER_KEY: &str = "c0ffee00112233445566778899aabbccddeeff00112233445566778899aabbcc";
const OTHER_MASTER_KEY: &str = "deadbeef00112233445566778899aabbccddeeff00112233445566778899aabb";

/// A workspace whose commands all use `db`.
fn workspace_on(db: &TestDatabase) -> Workspace {
    let mut ws = Workspace::new();
    ws.set_env("LATCHKEY_DATABASE__URL", &db.url);
    ws
}

/// The password in `postgres://user:password@host/db`, if there is one.
fn url_password(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let userinfo = &rest[..rest.rfind('@')?];
    userinfo.split_once(':').map(|(_, p)| p).filter(|p| !p.is_empty())
}

/// Starts two servers at the same time (they race to migrate and create the first keys).
fn start_two_nodes(ws: &Workspace, env: &[(&str, &str)]) -> (Server, Server) {
    std::thread::scope(|s| {
        let a = s.spawn(|| ws.serve(env));
        let b = s.spawn(|| ws.serve(env));
        match (a.join(), b.join()) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(panic), _) | (_, Err(panic)) => std::panic::resume_unwind(panic),
        }
    })
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "PostgreSQL only: set LATCHKEY_TEST_POSTGRES_URL")]
async fn two_nodes_on_one_postgres_database_publish_the_same_keys_and_both_see_a_cli_rotation() {
    let db = TestDatabase::postgres_only().await;
    let mut ws = workspace_on(&db);
    ws.set_env("LATCHKEY_SECRETS__MASTER_KEY", MASTER_KEY);
    let (mut a, mut b) = start_two_nodes(&ws, &[("LATCHKEY_SERVER__PORT", "0")]);
    assert_ne!(a.listening, b.listening, "the nodes listen on different ports");

    let client = http();
    let jwks_a = jwks_keys(&get_json(&client, &a.url("/jwks.json")).await);
    let jwks_b = jwks_keys(&get_json(&client, &b.url("/jwks.json")).await);
    assert_eq!(jwks_a.len(), 6, "an active and a next key for each of three algorithms: {jwks_a:?}");
    assert_eq!(jwks_a, jwks_b, "both nodes publish the same keys (one node's bootstrap won, the other kept its keys)");
    assert!(
        ws.entries().is_empty(),
        "with PostgreSQL and secrets.master_key, nothing is written locally: {:?}",
        ws.entries()
    );
    for node in [&mut a, &mut b] {
        let data =
            node.wait_for_line(Duration::from_secs(10), "the data location", |l| l.trim_start().starts_with("data:"));
        assert!(data.contains("(postgres)"), "the data line names the backend: {:?}", node.stdout);
        if let Some(password) = url_password(&db.url) {
            let shown = format!(":{password}@");
            assert!(
                !node.stdout.iter().any(|l| l.contains(&shown)),
                "the database password is not printed: {:?}",
                node.stdout
            );
        }
    }

    ws.run(&["keys", "rotate", "--alg", "RS256", "--force"]).success();
    // PostgreSQL notifies every node at commit; the bound is 1 s, plus a margin.
    let deadline = Instant::now() + Duration::from_secs(1) + Duration::from_secs(2);
    let list = ws.run(&["keys", "list", "--json"]).success().json();
    let new_next = key_in_state(&list, "RS256", "next");
    assert!(!jwks_a.iter().any(|(_, kid)| *kid == new_next), "the new next key {new_next} is new");

    for (name, node) in [("node A", &a), ("node B", &b)] {
        let url = node.url("/jwks.json");
        let (client, url, kid) = (&client, url.as_str(), new_next.as_str());
        eventually(
            &format!("{name} publishing the new RS256 next key {kid}"),
            deadline,
            "1 s + 2 s margin",
            move || async move {
                let keys = jwks_keys(&try_get_json(client, url).await?);
                if keys.iter().any(|(alg, k)| alg == "RS256" && k == kid) {
                    Ok(())
                } else {
                    Err(format!("{name} publishes {keys:?}"))
                }
            },
        )
        .await;
    }
    let after_a = jwks_keys(&get_json(&client, &a.url("/jwks.json")).await);
    let after_b = jwks_keys(&get_json(&client, &b.url("/jwks.json")).await);
    assert_eq!(after_a, after_b, "both nodes publish the same keys after the rotation");
    drop((a, b));
    drop(db);
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "PostgreSQL only: set LATCHKEY_TEST_POSTGRES_URL")]
async fn serve_on_postgres_refuses_to_start_without_a_master_key_or_with_the_wrong_one() {
    let db = TestDatabase::postgres_only().await;
    let ws = workspace_on(&db);

    let without = ws.run_env(&["serve"], &[("LATCHKEY_SERVER__PORT", "0")]);
    assert_ne!(without.code(), Some(0), "serve without a master key must fail\n{}", without.transcript());
    without.stderr_names(&["latchkey: error:", "secrets.master_key"]);
    assert!(ws.entries().is_empty(), "no key file is invented for PostgreSQL: {:?}", ws.entries());

    // The first start with a key binds the database to it.
    ws.run_env(&["migrate"], &[("LATCHKEY_SECRETS__MASTER_KEY", MASTER_KEY)]).success();

    let wrong =
        ws.run_env(&["serve"], &[("LATCHKEY_SERVER__PORT", "0"), ("LATCHKEY_SECRETS__MASTER_KEY", OTHER_MASTER_KEY)]);
    assert_ne!(wrong.code(), Some(0), "serve with another master key must fail\n{}", wrong.transcript());
    wrong
        .stderr_names(&["latchkey: error:", "master key does not match"])
        .never_shows(OTHER_MASTER_KEY)
        .never_shows(MASTER_KEY);
    assert!(!wrong.stdout.contains("Latchkey is running"), "it never announced itself:\n{}", wrong.transcript());

    // The refusal changed nothing: the right key still opens the database.
    ws.run_env(&["migrate"], &[("LATCHKEY_SECRETS__MASTER_KEY", MASTER_KEY)]).success();
    drop(db);
}
