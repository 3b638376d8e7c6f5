//! The admin API's conventions: problem documents for bad input, cursor pages that hold
//! each user once while users are created, ETag and If-Match, Idempotency-Key, and an
//! audit event for every write naming the admin and the client.

mod support;

use std::collections::HashSet;

use latchkey_core::domain::{DisplayName, Email, ProfileClaims, SubjectId, TenantId, Username};
use latchkey_core::records::{Actor, AuditQuery, ImportOutcome, NewUser};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::admin::{call, machine_client, machine_token};
use support::{TestServer, all_backends, ok};

const ALL_USERS: &str = "admin:users:read admin:users:write admin:audit:read";

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

fn new_user(name: &str) -> NewUser {
    NewUser {
        sub: SubjectId::generate(),
        username: ok(Username::parse(name), "username"),
        email: Some(ok(Email::parse(&format!("{name}@example.com")), "email")),
        email_verified: true,
        name: Some(ok(DisplayName::parse("Someone"), "name")),
        profile: ProfileClaims::default(),
        password_hash: None,
        service_account: false,
    }
}

async fn ready(server: &TestServer) -> String {
    machine_client(server, "ops").await;
    machine_token(server, "ops", ALL_USERS).await
}

/// A raw request, for headers the `call` helper does not send.
async fn send(server: &TestServer, token: &str, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    server.http.request(method, server.url(&format!("/admin/api/v1{path}"))).bearer_auth(token)
}

#[tokio::test]
async fn bad_input_gets_a_problem_document_and_changes_nothing() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        let token = ready(&server).await;
        let post = |body: &'static str, kind: &'static str| {
            let request = server.http.post(server.url("/admin/api/v1/users")).bearer_auth(&token);
            request.header("content-type", kind).body(body)
        };
        for (body, kind, status) in [
            ("{not json", "application/json", StatusCode::BAD_REQUEST),
            (r#"{"username": "ada", "admin": true}"#, "application/json", StatusCode::BAD_REQUEST),
            (r#"{"username": "ada"}"#, "text/plain", StatusCode::BAD_REQUEST),
            (r#"{"username": "no spaces allowed"}"#, "application/json", StatusCode::BAD_REQUEST),
            (
                r#"{"username": "ada", "email": {"address": "not-an-address"}}"#,
                "application/json",
                StatusCode::BAD_REQUEST,
            ),
            (r#"{"username": "ada", "email": "ada@example.com"}"#, "application/json", StatusCode::BAD_REQUEST),
            (r#"{"username": "ada", "email_verified": true}"#, "application/json", StatusCode::BAD_REQUEST),
        ] {
            let response = ok(post(body, kind).send().await, "post");
            assert_eq!(response.status(), status, "{b}: {body} as {kind}");
            let problem: Value = ok(response.json().await, "problem");
            assert!(problem["type"].as_str().is_some_and(|t| t.starts_with("urn:latchkey:problem:")), "{b}");
            assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()), "{b}");
        }
        let long = "a".repeat(65);
        for query in ["limit=0", "limit=201", "limit=x", "cursor=%%%", "state=asleep", "unknown=1"] {
            assert_eq!(
                call(&server, &token, "GET", &format!("/users?{query}"), None).await.0,
                StatusCode::BAD_REQUEST,
                "{b}: {query}"
            );
        }
        let (status, _) = call(&server, &token, "GET", &format!("/users?username_prefix={long}"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{b}");
        assert_eq!(call(&server, &token, "GET", "/users/nobody", None).await.0, StatusCode::NOT_FOUND, "{b}");
        assert_eq!(call(&server, &token, "GET", "/users/bad%20sub", None).await.0, StatusCode::NOT_FOUND, "{b}");
        assert_eq!(call(&server, &token, "GET", "/nothing-here", None).await.0, StatusCode::NOT_FOUND, "{b}");
        assert_eq!(call(&server, &token, "PUT", "/users", None).await.0, StatusCode::METHOD_NOT_ALLOWED, "{b}");
        let users = ok(server.state().services.users().list(&tenant()).await, "list");
        assert!(users.is_empty(), "{b}: nothing was stored: {users:?}");

        // A taken username is a conflict; a too-short password breaks a rule.
        let ada = call(&server, &token, "POST", "/users", Some(json!({"username": "ada"}))).await;
        assert_eq!(ada.0, StatusCode::CREATED, "{b}");
        assert_eq!(
            call(&server, &token, "POST", "/users", Some(json!({"username": "ada"}))).await.0,
            StatusCode::CONFLICT,
            "{b}"
        );
        let path = format!("/users/{}/password", ada.1["sub"].as_str().unwrap_or_default());
        let (status, problem) = call(&server, &token, "PUT", &path, Some(json!({"password": "short"}))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}: {problem}");
    }
}

#[tokio::test]
async fn prefix_search_takes_wildcards_literally_and_filters_combine() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        let token = ready(&server).await;
        for name in ["ab", "a_b", "abc", "b"] {
            ok(server.state().services.users().create(&tenant(), new_user(name), &Actor::Cli).await, "user");
        }
        let names = |v: &Value| -> Vec<String> {
            v["items"]
                .as_array()
                .map(|a| a.iter().filter_map(|u| u["username"].as_str().map(str::to_owned)).collect())
                .unwrap_or_default()
        };
        assert_eq!(names(&call(&server, &token, "GET", "/users?username_prefix=a_", None).await.1), ["a_b"], "{b}");
        let none: [&str; 0] = [];
        assert_eq!(names(&call(&server, &token, "GET", "/users?username_prefix=a%25", None).await.1), none, "{b}");
        assert_eq!(
            names(&call(&server, &token, "GET", "/users?username_prefix=AB", None).await.1),
            ["ab", "abc"],
            "{b}"
        );
        let by_email = call(&server, &token, "GET", "/users?email=abc@example.com", None).await.1;
        assert_eq!(names(&by_email), ["abc"], "{b}");
        let abc = ok(server.state().services.users().find(&tenant(), "abc").await, "abc");
        ok(
            server
                .state()
                .services
                .users()
                .change_state(&tenant(), &abc.sub, latchkey_service::users::StateChange::Lock, &Actor::Cli)
                .await,
            "lock",
        );
        let locked = call(&server, &token, "GET", "/users?state=locked", None).await.1;
        assert_eq!(names(&locked), ["abc"], "{b}");
        let active_a = call(&server, &token, "GET", "/users?state=active&username_prefix=a", None).await.1;
        assert_eq!(names(&active_a), ["a_b", "ab"], "{b}");
    }
}

#[tokio::test]
async fn pages_hold_each_user_once_while_users_are_created() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        let token = ready(&server).await;
        let seeded: Vec<NewUser> = (0..10_000).map(|i| new_user(&format!("user{i:05}"))).collect();
        let expected: HashSet<String> = seeded.iter().map(|u| u.sub.to_string()).collect();
        let imported = ok(server.state().services.users().import(&tenant(), &seeded, &Actor::Cli).await, "import");
        assert_eq!(imported, ImportOutcome::Imported(10_000), "{b}");

        let mut seen: Vec<String> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &cursor {
                Some(c) => format!("/users?limit=200&cursor={c}"),
                None => "/users?limit=200".into(),
            };
            let (status, page) = call(&server, &token, "GET", &path, None).await;
            assert_eq!(status, StatusCode::OK, "{b}: {page}");
            pages += 1;
            for u in page["items"].as_array().into_iter().flatten() {
                seen.push(u["sub"].as_str().unwrap_or_default().to_owned());
            }
            // Users made during the walk, before and after where it is.
            let fresh = [format!("aaa{pages:03}"), format!("zzz{pages:03}"), format!("user{pages:05}x")];
            for name in fresh {
                ok(server.state().services.users().create(&tenant(), new_user(&name), &Actor::Cli).await, "user");
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
            assert!(pages < 200, "{b}: the walk ends");
        }
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "{b}: nobody twice");
        assert!(expected.iter().all(|s| unique.contains(s)), "{b}: everyone who was there at the start");
    }
}

#[tokio::test]
async fn updates_need_the_etag_they_were_based_on() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        let token = ready(&server).await;
        let created = call(&server, &token, "POST", "/users", Some(json!({"username": "ada"}))).await.1;
        let path = format!("/users/{}", created["sub"].as_str().unwrap_or_default());
        let read = ok(send(&server, &token, reqwest::Method::GET, &path).await.send().await, "get");
        let etag = read.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert!(etag.starts_with('"') && etag.len() > 2, "{b}: {etag}");

        let patch = |tag: Option<&str>, body: Value| {
            let server = &server;
            let token = &token;
            let path = &path;
            let tag = tag.map(str::to_owned);
            async move {
                let mut request = send(server, token, reqwest::Method::PATCH, path).await.json(&body);
                if let Some(tag) = tag {
                    request = request.header("if-match", tag);
                }
                let response = ok(request.send().await, "patch");
                let tag = response.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
                (response.status(), tag, response.json::<Value>().await.unwrap_or_default())
            }
        };
        let (status, _, body) = patch(None, json!({"name": "Ada"})).await;
        assert_eq!(status, StatusCode::PRECONDITION_REQUIRED, "{b}: {body}");
        let (status, _, _) = patch(Some("\"0000\""), json!({"name": "Ada"})).await;
        assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{b}");
        let (status, _, _) = patch(Some("*"), json!({"name": "Ada"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{b}: a wildcard would defeat the check");
        let (status, _, _) = patch(Some(&etag), json!({"username": null})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{b}");

        // Two updates from the same read: one wins, the other is told.
        let (one, two) =
            tokio::join!(patch(Some(&etag), json!({"name": "Ada L"})), patch(Some(&etag), json!({"name": "Ada B"})));
        let mut statuses = [one.0, two.0];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::PRECONDITION_FAILED], "{b}");
        let winner = if one.0 == StatusCode::OK { one } else { two };
        assert_ne!(winner.1.as_deref(), Some(etag.as_str()), "{b}: a new ETag");
        let (status, _, body) = patch(
            winner.1.as_deref(),
            json!({"email": {"address": "ada@example.com", "verified": true}, "name": null}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{b}: {body}");
        assert_eq!(body["email"], "ada@example.com", "{b}");
        assert_eq!(body["email_verified"], true, "{b}: the operator vouched for it");
        assert_eq!(body["name"], Value::Null, "{b}");
    }
}

#[tokio::test]
async fn a_create_sent_twice_with_one_key_makes_one_user() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        let token = ready(&server).await;
        machine_client(&server, "other").await;
        let other = machine_token(&server, "other", ALL_USERS).await;
        let create = |token: String, key: &'static str, body: Value| {
            let server = &server;
            async move {
                let request = send(server, &token, reqwest::Method::POST, "/users").await;
                let response = ok(request.header("idempotency-key", key).json(&body).send().await, "post");
                let replayed = response.headers().contains_key("idempotency-replayed");
                let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
                (response.status(), replayed, location, response.json::<Value>().await.unwrap_or_default())
            }
        };
        let ada = json!({"username": "ada"});
        let (first, again) =
            tokio::join!(create(token.clone(), "k-1", ada.clone()), create(token.clone(), "k-1", ada.clone()));
        let statuses = [first.0, again.0];
        assert!(statuses.contains(&StatusCode::CREATED), "{b}: {statuses:?}");
        assert!(statuses.iter().all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT), "{b}: {statuses:?}");
        let replay = create(token.clone(), "k-1", ada.clone()).await;
        assert_eq!(replay.0, StatusCode::CREATED, "{b}");
        assert!(replay.1, "{b}: marked as a replay");
        let made = if first.0 == StatusCode::CREATED { &first } else { &again };
        assert_eq!(replay.3["sub"], made.3["sub"], "{b}: the same user");
        assert_eq!(replay.2, made.2, "{b}: the same Location");
        assert!(made.2.as_deref().is_some_and(|l| l.ends_with(made.3["sub"].as_str().unwrap_or("-"))), "{b}");

        let reused = create(token.clone(), "k-1", json!({"username": "grace"})).await;
        assert_eq!(reused.0, StatusCode::UNPROCESSABLE_ENTITY, "{b}: {}", reused.3);
        assert_eq!(reused.3["type"], "urn:latchkey:problem:idempotency-key-reused", "{b}");
        // Keys are per caller: another client's k-1 is its own.
        let theirs = create(other, "k-1", json!({"username": "grace"})).await;
        assert_eq!(theirs.0, StatusCode::CREATED, "{b}");
        // A create that failed leaves its key free.
        assert_eq!(create(token.clone(), "k-2", json!({"username": "ada"})).await.0, StatusCode::CONFLICT, "{b}");
        assert_eq!(create(token.clone(), "k-2", json!({"username": "alan"})).await.0, StatusCode::CREATED, "{b}");
        let users = ok(server.state().services.users().list(&tenant()).await, "list");
        assert_eq!(users.len(), 3, "{b}: ada, grace and alan, once each");
    }
}

#[tokio::test]
async fn every_write_is_audited_with_the_client_that_made_it() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        let token = ready(&server).await;
        let created = call(&server, &token, "POST", "/users", Some(json!({"username": "ada"}))).await.1;
        let sub = created["sub"].as_str().unwrap_or_default().to_owned();
        let path = format!("/users/{sub}");
        call(&server, &token, "POST", &format!("{path}/lock"), None).await;
        call(&server, &token, "POST", &format!("{path}/unlock"), None).await;
        call(&server, &token, "PUT", &format!("{path}/password"), Some(json!({"password": "a long new password"})))
            .await;
        call(&server, &token, "DELETE", &format!("{path}/sessions"), None).await;
        let (status, receipt) = call(&server, &token, "DELETE", &path, None).await;
        assert_eq!(status, StatusCode::OK, "{b}: {receipt}");
        assert_eq!((receipt["by"].as_str(), receipt["removed"]["account"].as_u64()), (Some("admin-api:ops"), Some(1)));
        assert!(!receipt.to_string().contains("ada"), "{b}: the receipt holds none of the erased data: {receipt}");

        let q = AuditQuery { actor: Some("admin-api:ops".into()), limit: 100, ..AuditQuery::default() };
        let events = ok(server.state().services.audit().query(&tenant(), &q).await, "audit");
        let actions: HashSet<&str> = events.iter().map(|(_, e)| e.action.as_str()).collect();
        for action in ["user.created", "user.locked", "user.unlocked", "user.password_set", "user.deleted"] {
            assert!(actions.contains(action), "{b}: {action} in {actions:?}");
        }
        // And the API reads them back, newest first, a page at a time.
        let (status, page) = call(&server, &token, "GET", &format!("/audit-events?subject={sub}&limit=2"), None).await;
        assert_eq!(status, StatusCode::OK, "{b}: {page}");
        let items = page["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(items.len(), 2, "{b}");
        assert!(items[0]["id"].as_i64() > items[1]["id"].as_i64(), "{b}: newest first");
        assert_eq!(items[0]["action"], "user.deleted", "{b}");
        let next = page["next_cursor"].as_str().unwrap_or_default();
        let (_, older) =
            call(&server, &token, "GET", &format!("/audit-events?subject={sub}&limit=2&cursor={next}"), None).await;
        let older_first = older["items"][0]["id"].as_i64().unwrap_or(i64::MAX);
        assert!(older_first < items[1]["id"].as_i64().unwrap_or(0), "{b}: the next page is older");
    }
}

#[tokio::test]
async fn the_audit_chain_is_exported_and_verified_over_the_api() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        let token = ready(&server).await;
        let created = call(&server, &token, "POST", "/users", Some(json!({"username": "ada"}))).await.1;
        let sub = created["sub"].as_str().unwrap_or_default().to_owned();
        ok(server.state().services.audit().seal(true).await, "seal");

        let (status, head) = call(&server, &token, "GET", "/audit-chain", None).await;
        assert_eq!(status, StatusCode::OK, "{b}: {head}");
        let seq = head["seq"].as_i64().unwrap_or(0);
        assert!(seq >= 2 && head["checkpoint_at"].as_i64().is_some(), "{b}: {head}");
        assert_eq!(head["checkpoint_public_key"].as_str().map(str::len), Some(43), "{b}: {head}");

        let (status, v) = call(&server, &token, "GET", "/audit-chain/verification", None).await;
        assert_eq!(status, StatusCode::OK, "{b}: {v}");
        assert_eq!((v["intact"].as_bool(), v["last_seq"].as_i64()), (Some(true), Some(seq)), "{b}: {v}");
        // Seen longer before than it is now: reported as cut off.
        let (_, v) =
            call(&server, &token, "GET", &format!("/audit-chain/verification?expect_seq={}", seq + 5), None).await;
        assert_eq!(v["intact"], false, "{b}: {v}");
        assert_eq!(v["problems"][0]["kind"], "shorter_than_seen", "{b}: {v}");
        for bad in ["expect_seq=-1", "expect_seq=abc", "other=1"] {
            let (status, _) = call(&server, &token, "GET", &format!("/audit-chain/verification?{bad}"), None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{b}: {bad}");
        }

        let url = server.url(&format!("/admin/api/v1/audit-events/export?subject={sub}"));
        let response = ok(server.http.get(url).bearer_auth(&token).send().await, "export");
        assert_eq!(response.status(), StatusCode::OK, "{b}");
        let kind = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert_eq!(kind, "application/jsonl", "{b}");
        let text = ok(response.text().await, "body");
        let lines: Vec<serde_json::Value> =
            text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{b}: `{l}`: {e}"))).collect();
        assert_eq!(lines.len(), 1, "{b}: only the events about ada: {text}");
        assert_eq!(
            (lines[0]["action"].as_str(), lines[0]["target"].as_str()),
            (Some("user.created"), Some(sub.as_str()))
        );
        for bad in ["since=yesterday", "limit=5", &format!("subject={}", "x".repeat(301))] {
            let (status, _) = call(&server, &token, "GET", &format!("/audit-events/export?{bad}"), None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{b}: {bad}");
        }
        // Every read of a person's data is recorded, with who read what.
        call(&server, &token, "GET", &format!("/users/{sub}"), None).await;
        call(&server, &token, "GET", &format!("/users/{sub}/sessions"), None).await;
        call(&server, &token, "GET", "/users/nobody", None).await;
        let q = AuditQuery {
            action: Some("admin.read".into()),
            target: Some(sub.clone()),
            limit: 10,
            ..AuditQuery::default()
        };
        let reads = ok(server.state().services.audit().query(&tenant(), &q).await, "audit");
        let what: Vec<&str> = reads.iter().filter_map(|(_, e)| e.details["what"].as_str()).collect();
        assert_eq!(what, ["sessions", "profile"], "{b}: newest first, and nothing for an unknown user: {reads:?}");
        assert!(reads.iter().all(|(_, e)| e.actor == "admin-api:ops"), "{b}");
        // The export was recorded, with the client that made it.
        let q = AuditQuery { action: Some("audit.exported".into()), limit: 10, ..AuditQuery::default() };
        let events = ok(server.state().services.audit().query(&tenant(), &q).await, "audit");
        assert_eq!(events.len(), 1, "{b}: {events:?}");
        assert_eq!(events[0].1.actor, "admin-api:ops", "{b}");
    }
}
