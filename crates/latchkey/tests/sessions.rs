//! `latchkey session …`, the session and logout settings of `latchkey client …`, and the
//! user commands that end sessions (lock, delete, set-password).

mod support;

use latchkey_core::Clock;
use latchkey_core::crypto::TokenHash;
use latchkey_core::domain::{ClientId, SubjectId, TenantId};
use latchkey_core::records::{Actor, BrowserSession};
use latchkey_service::Latchkey;
use serde_json::Value;
use support::Workspace;

const PASSWORD: &str = "correct horse battery staple 4711";

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

/// Opens the relying party's back-channel endpoint on 127.0.0.1:9 (http), as an operator
/// opens an internal destination for the outbound guard.
const ALLOW_RP: &str =
    r#"[{ cidr = "127.0.0.1/32", for = ["backchannel_logout"], ports = [9], allow_insecure_http = true }]"#;

/// A workspace with ada and a client that wants back-channel logout.
fn setup() -> (Workspace, String) {
    let mut ws = Workspace::new();
    ws.set_env("LATCHKEY_OUTBOUND__ALLOW", ALLOW_RP);
    let ada =
        ws.run_stdin(&["user", "create", "--username", "ada", "--password-stdin", "--json"], &format!("{PASSWORD}\n"));
    let sub = ada.success().json()["sub"].as_str().unwrap_or_default().to_owned();
    ws.run(&[
        "client",
        "create",
        "--name",
        "Notes",
        "--id",
        "notes",
        "--redirect-uri",
        "https://notes.example.com/cb",
        "--frontchannel-logout-uri",
        "https://notes.example.com/front-logout",
        "--backchannel-logout-uri",
        "http://127.0.0.1:9/back-logout",
        "--session-refresh-tokens",
        "--default-max-age",
        "1h",
    ])
    .success();
    (ws, sub)
}

/// A signed-in browser session of `sub` that signed into `notes`.
async fn sign_in(services: &Latchkey, sub: &str, sid: &str) {
    let now = Clock::system().now();
    let session = BrowserSession {
        id_hash: TokenHash::from_stored(format!("hash-of-{sid}")),
        sid: sid.to_owned(),
        sub: SubjectId::parse(sub).unwrap_or_else(|e| panic!("{e}")),
        auth_time: now,
        amr: vec!["pwd".into()],
        acr: "urn:latchkey:acr:password".into(),
        created_at: now,
        expires_at: now.plus(std::time::Duration::from_secs(3_600)),
        last_active_at: now,
        remember: false,
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0".into()),
        ip: None,
    };
    let notes = ClientId::parse("notes").unwrap_or_else(|e| panic!("{e}"));
    services.sessions().create(&tenant(), &session, &Actor::Cli).await.unwrap_or_else(|e| panic!("{e}"));
    services.sessions().record_client(&tenant(), sid, &notes, true, now).await.unwrap_or_else(|e| panic!("{e}"));
}

fn sids(list: &Value) -> Vec<String> {
    let mut v: Vec<String> =
        list.as_array().into_iter().flatten().filter_map(|s| s["sid"].as_str().map(str::to_owned)).collect();
    v.sort();
    v
}

#[test]
fn client_logout_settings_are_stored_shown_and_checked() {
    let (ws, _) = setup();
    let shown = ws.run(&["client", "show", "notes", "--json"]).success().json();
    let policy = &shown["session_policy"];
    assert_eq!(policy["frontchannel_logout_uri"], "https://notes.example.com/front-logout", "{shown:#}");
    assert_eq!(policy["backchannel_logout_uri"], "http://127.0.0.1:9/back-logout");
    assert_eq!(policy["default_max_age"], 3_600);
    assert_eq!(policy["session_refresh_tokens"], true);
    ws.run(&["client", "show", "notes"]).success().stdout_names(&[
        "front-channel:",
        "back-channel:",
        "default max_age: 3600s",
    ]);

    // Bad input: named, nothing changed; exit status 2 for a malformed URI, 1 for one that
    // breaks a rule.
    let other_host = ws.run(&["client", "update", "notes", "--frontchannel-logout-uri", "https://evil.example/fc"]);
    other_host.expect_code(1).stderr_names(&["https://evil.example/fc", "redirect URIs"]);
    let plain_http = ws.run(&["client", "update", "notes", "--backchannel-logout-uri", "http://rp.example/bc"]);
    plain_http.expect_code(2).stderr_names(&["http://rp.example/bc", "https"]);
    let fragment = ws.run(&["client", "update", "notes", "--backchannel-logout-uri", "https://rp.example/bc#x"]);
    fragment.expect_code(2).stderr_names(&["fragment"]);
    ws.run(&["client", "update", "notes", "--default-max-age", "soon"]).expect_code(2);
    let unchanged = ws.run(&["client", "show", "notes", "--json"]).success().json();
    assert_eq!(unchanged["session_policy"], shown["session_policy"]);

    // "" removes a URI; 0s removes the default max_age.
    ws.run(&["client", "update", "notes", "--backchannel-logout-uri", "", "--default-max-age", "0s"]).success();
    let updated = ws.run(&["client", "show", "notes", "--json"]).success().json();
    assert!(updated["session_policy"].get("backchannel_logout_uri").is_none(), "{updated:#}");
    assert!(updated["session_policy"].get("default_max_age").is_none(), "{updated:#}");
    assert_eq!(updated["session_policy"]["frontchannel_logout_uri"], "https://notes.example.com/front-logout");
}

#[tokio::test]
async fn sessions_are_listed_and_revoked_with_their_logouts_queued() {
    let (ws, sub) = setup();
    let services = ws.services().await;
    sign_in(&services, &sub, "sid-laptop-0000000001").await;
    sign_in(&services, &sub, "sid-phone-00000000002").await;

    let list = ws.run(&["session", "list", "--user", "ada", "--json"]).success().json();
    assert_eq!(sids(&list), ["sid-laptop-0000000001", "sid-phone-00000000002"], "{list:#}");
    assert_eq!(list[0]["clients"], serde_json::json!(["notes"]));
    ws.run(&["session", "list", "--user", "ada"]).success().stdout_names(&["Firefox on Linux", "notes"]);

    // Bad input: no such user, someone else's or no session, neither --sid nor --all.
    ws.run(&["session", "list", "--user", "nobody"]).expect_code(1).stderr_names(&["nobody"]);
    ws.run(&["session", "revoke", "--user", "ada", "--sid", "not-a-session"])
        .expect_code(1)
        .stderr_names(&["not-a-session"]);
    ws.run(&["session", "revoke", "--user", "ada"]).expect_code(2);

    let revoked = ws.run(&["session", "revoke", "--user", "ada", "--sid", "sid-phone-00000000002", "--json"]);
    assert_eq!(revoked.success().json()["ended"], serde_json::json!(["sid-phone-00000000002"]));
    let list = ws.run(&["session", "list", "--user", "ada", "--json"]).success().json();
    assert_eq!(sids(&list), ["sid-laptop-0000000001"]);
    let queued = ws.run(&["session", "deliveries", "--user", "ada", "--json"]).success().json();
    assert_eq!(queued.as_array().map(Vec::len), Some(1), "{queued:#}");
    assert_eq!(queued[0]["client_id"], "notes");
    assert_eq!(queued[0]["sid"], "sid-phone-00000000002");
    assert_eq!(queued[0]["status"], "pending", "the running server sends it");

    // Locking the user ends what is left.
    let locked = ws.run(&["user", "lock", "ada", "--json"]).success().json();
    assert_eq!(locked["sessions_ended"], 1, "{locked:#}");
    let list = ws.run(&["session", "list", "--user", "ada", "--json"]).success().json();
    assert_eq!(sids(&list), Vec::<String>::new());
    let queued = ws.run(&["session", "deliveries", "--user", "ada", "--json"]).success().json();
    assert_eq!(queued.as_array().map(Vec::len), Some(2));
    services.system().close().await;
}

#[tokio::test]
async fn a_password_reset_and_a_deletion_end_the_users_sessions() {
    let (ws, sub) = setup();
    let services = ws.services().await;
    sign_in(&services, &sub, "sid-before-reset-00001").await;
    let reset =
        ws.run_stdin(&["user", "set-password", "ada", "--password-stdin", "--json"], "a new long passphrase 42\n");
    assert_eq!(reset.success().json()["sessions_ended"], 1);
    let sub_id = SubjectId::parse(&sub).unwrap_or_else(|e| panic!("{e}"));
    let live = services
        .sessions()
        .of_user(&tenant(), &sub_id, Clock::system().now(), std::time::Duration::from_secs(3_600))
        .await;
    assert_eq!(live.map(|l| l.len()).ok(), Some(0));

    sign_in(&services, &sub, "sid-before-delete-0001").await;
    let deleted = ws.run(&["user", "delete", "ada", "--json"]).success().json();
    assert_eq!(deleted["removed"]["sessions"], 1, "erased, with its session: {deleted:#}");
    assert_eq!(deleted["by"], "cli", "{deleted:#}");
    assert!(deleted["subject_ref"].as_str().is_some_and(|r| r.starts_with("p_")), "{deleted:#}");
    let sid = services
        .sessions()
        .by_sid(&tenant(), "sid-before-delete-0001", Clock::system().now(), std::time::Duration::from_secs(3_600))
        .await;
    assert_eq!(sid.ok().flatten(), None);
    services.system().close().await;
}

#[test]
fn client_urls_the_outbound_guard_would_refuse_are_refused_and_named_at_start() {
    let (ws, _) = setup();
    let shown = ws.run(&["client", "show", "notes", "--json"]).success().json();
    // A JWKS URI over http, or on an address that stands for loopback or a private network.
    let machine = ["client", "create", "--name", "Svc", "--id", "svc", "--grant-type", "client_credentials"];
    let machine = [&machine[..], &["--auth-method", "private_key_jwt", "--jwks-uri"]].concat();
    for (uri, names) in [
        ("http://keys.example/jwks", &["jwks_uri", "https", "outbound.allow"][..]),
        ("https://[64:ff9b::7f00:1]/jwks", &["embeds 127.0.0.1", "outbound.allow"][..]),
        ("https://169.254.169.254/latest/meta-data", &["169.254.0.0/16", "jwks_uri"][..]),
    ] {
        ws.run(&[&machine[..], &[uri]].concat()).expect_code(1).stderr_names(names);
    }
    // 127.0.0.1:9 is open for logout deliveries, not for fetching keys.
    ws.run(&[&machine[..], &["http://127.0.0.1:9/jwks"]].concat()).expect_code(1).stderr_names(&["jwks_uri"]);
    ws.run(&["client", "show", "svc"]).expect_code(1);
    let private = ws.run(&["client", "update", "notes", "--backchannel-logout-uri", "https://10.0.0.1/bc"]);
    private.expect_code(1).stderr_names(&["backchannel_logout_uri", "10.0.0.0/8", "outbound.allow"]);
    assert_eq!(ws.run(&["client", "show", "notes", "--json"]).success().json(), shown, "nothing changed");

    // Opened in outbound.allow: accepted.
    let intranet = r#"[{ cidr = "10.0.0.0/8", for = ["backchannel_logout"], ports = [443] }]"#;
    ws.run_env(
        &["client", "update", "notes", "--backchannel-logout-uri", "https://10.0.0.1/bc"],
        &[("LATCHKEY_OUTBOUND__ALLOW", intranet)],
    )
    .success();

    // A server started without that entry names the stored URI it will refuse.
    let mut server = ws.serve(&[("LATCHKEY_SERVER__PORT", "0"), ("LATCHKEY_OUTBOUND__ALLOW", "[]")]);
    server.terminate();
    let stderr = server.stderr();
    assert!(
        stderr.contains("outbound guard") && stderr.contains("notes") && stderr.contains("https://10.0.0.1/bc"),
        "{stderr}"
    );
}

#[tokio::test]
async fn consents_are_listed_and_withdrawn_with_the_clients_logouts_queued() {
    let (ws, sub) = setup();
    let services = ws.services().await;
    sign_in(&services, &sub, "sid-laptop-0000000001").await;
    let sub_id = SubjectId::parse(&sub).unwrap_or_else(|e| panic!("{e}"));
    let notes = ClientId::parse("notes").unwrap_or_else(|e| panic!("{e}"));
    let scopes = ["openid".to_owned(), "email".to_owned()];
    let asked = latchkey_service::consents::Asked { scopes: &scopes, claims: None, prompt_consent: false };
    services.consents().grant(&tenant(), &sub_id, &notes, &asked, &Actor::Cli).await.unwrap_or_else(|e| panic!("{e}"));

    let list = ws.run(&["user", "consents", "ada", "--json"]).success().json();
    assert_eq!(list[0]["client_id"], "notes", "{list:#}");
    assert_eq!(list[0]["scopes"], serde_json::json!(["openid", "email"]));
    ws.run(&["user", "consents", "ada"]).success().stdout_names(&["notes", "openid email"]);

    // Bad input: no such user, a malformed client id, a client the user never allowed.
    ws.run(&["user", "consents", "nobody"]).expect_code(1).stderr_names(&["nobody"]);
    ws.run(&["user", "withdraw-consent", "ada", "not a client"]).expect_code(2).stderr_names(&["not a client"]);
    ws.run(&["user", "withdraw-consent", "ada", "webapp"]).expect_code(1).stderr_names(&["webapp"]);

    let withdrawn = ws.run(&["user", "withdraw-consent", "ada", "notes", "--json"]).success().json();
    assert_eq!(withdrawn["logouts_queued"], 1, "{withdrawn:#}");
    let queued = ws.run(&["session", "deliveries", "--user", "ada", "--json"]).success().json();
    assert_eq!(queued.as_array().map(Vec::len), Some(1), "{queued:#}");
    assert_eq!(queued[0]["client_id"], "notes");
    assert_eq!(queued[0]["sid"], "sid-laptop-0000000001");
    // The session itself goes on; only notes left it.
    let list = ws.run(&["session", "list", "--user", "ada", "--json"]).success().json();
    assert_eq!(sids(&list), ["sid-laptop-0000000001"]);
    assert_eq!(list[0]["clients"], serde_json::json!([]), "{list:#}");
    ws.run(&["user", "consents", "ada"]).success().stdout_names(&["No consents"]);
    ws.run(&["user", "withdraw-consent", "ada", "notes"]).expect_code(1).stderr_names(&["notes"]);
}
