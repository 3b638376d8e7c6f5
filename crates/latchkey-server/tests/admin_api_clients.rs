//! Clients through the admin API: every setting, the rules they meet together (the client
//! service's, the same as the CLI's), secrets shown once and rotated with a grace period,
//! logout URIs, and the admin scopes no caller hands out or takes over.

mod support;

use latchkey_core::domain::{SigningAlg, TenantId};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::admin::{call, machine_client, machine_token};
use support::{TestServer, all_backends, ok};

const CLIENTS: &str = "admin:clients:read admin:clients:write";

async fn ready(server: &TestServer, scopes: &str) -> String {
    machine_client(server, "ops").await;
    machine_token(server, "ops", scopes).await
}

async fn etag(server: &TestServer, token: &str, path: &str) -> String {
    let url = server.url(&format!("/admin/api/v1{path}"));
    let response = ok(server.http.get(url).bearer_auth(token).send().await, "get");
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

async fn patch(server: &TestServer, token: &str, path: &str, tag: Option<&str>, body: Value) -> (StatusCode, Value) {
    let url = server.url(&format!("/admin/api/v1{path}"));
    let mut request = server.http.patch(url).bearer_auth(token).json(&body);
    if let Some(tag) = tag {
        request = request.header("if-match", tag);
    }
    let response = ok(request.send().await, "patch");
    (response.status(), response.json().await.unwrap_or_default())
}

/// The status of a client-credentials token request with this id and secret.
async fn token_status(server: &TestServer, id: &str, secret: &str) -> StatusCode {
    let form = [("grant_type", "client_credentials")];
    let request = server.http.post(server.url("/token")).basic_auth(id, Some(secret)).form(&form);
    ok(request.send().await, "token").status()
}

async fn client_ids(server: &TestServer, token: &str) -> Vec<String> {
    let (status, list) = call(server, token, "GET", "/clients", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["items"].as_array().into_iter().flatten().filter_map(|c| c["client_id"].as_str().map(String::from)).collect()
}

#[tokio::test]
async fn a_client_is_registered_shown_changed_and_deleted() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        let token = ready(&server, CLIENTS).await;
        let body = json!({
            "client_id": "shop", "name": "Shop",
            "redirect_uris": ["https://shop.example/cb"],
            "post_logout_redirect_uris": ["https://shop.example/bye"],
            "scopes": ["openid", "email"],
            "session": {"backchannel_logout_uri": "https://shop.example/bc", "require_mfa": true},
            "access": {"release_roles": true, "required_roles": null},
            "access_token_lifetime": 600
        });
        let url = server.url("/admin/api/v1/clients");
        let response = ok(server.http.post(&url).bearer_auth(&token).json(&body).send().await, "create");
        assert_eq!(response.status(), StatusCode::CREATED, "{b}");
        let location = response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert!(location.ends_with("/admin/api/v1/clients/shop"), "{b}: {location}");
        let created: Value = ok(response.json().await, "json");
        let secret = created["client_secret"].as_str().unwrap_or_default().to_owned();
        assert!(secret.len() >= 32, "{b}: a confidential client gets a secret: {created}");
        assert_eq!(created["client"]["token_endpoint_auth_method"], "client_secret_basic", "{b}");

        let (status, shown) = call(&server, &token, "GET", "/clients/shop", None).await;
        assert_eq!(status, StatusCode::OK, "{b}");
        assert!(!shown.to_string().contains(&secret), "{b}: the secret is never shown again");
        assert_eq!(shown["has_secret"], true, "{b}");
        assert_eq!(shown["session"]["backchannel_logout_uri"], "https://shop.example/bc", "{b}");
        assert_eq!(shown["session"]["require_mfa"], true, "{b}");
        assert_eq!(shown["access"]["release_roles"], true, "{b}");
        assert_eq!(shown["access_token_lifetime"], 600, "{b}");

        // A change needs the ETag it is based on: 428 without, 412 when stale.
        let change = json!({"post_logout_redirect_uris": ["https://shop.example/bye", "https://shop.example/out"],
            "session": {"backchannel_logout_uri": null, "frontchannel_logout_uri": "https://shop.example/fc"},
            "access_token_lifetime": null});
        assert_eq!(
            patch(&server, &token, "/clients/shop", None, change.clone()).await.0,
            StatusCode::PRECONDITION_REQUIRED
        );
        let stale = "\"0123456789abcdef0123456789abcdef\"";
        let (status, _) = patch(&server, &token, "/clients/shop", Some(stale), change.clone()).await;
        assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{b}");
        let tag = etag(&server, &token, "/clients/shop").await;
        let (status, changed) = patch(&server, &token, "/clients/shop", Some(&tag), change.clone()).await;
        assert_eq!(status, StatusCode::OK, "{b}: {changed}");
        assert_eq!(changed["post_logout_redirect_uris"].as_array().map(Vec::len), Some(2), "{b}");
        assert_eq!(changed["session"]["backchannel_logout_uri"], Value::Null, "{b}: null removes");
        assert_eq!(changed["session"]["frontchannel_logout_uri"], "https://shop.example/fc", "{b}");
        assert_eq!(changed["session"]["require_mfa"], true, "{b}: what was not named stays");
        assert_eq!(changed["access_token_lifetime"], Value::Null, "{b}");
        assert_eq!(changed["scopes"], json!(["openid", "email"]), "{b}");
        let (status, _) = patch(&server, &token, "/clients/shop", Some(&tag), change).await;
        assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{b}: the tag it was based on is gone");

        // Every change is audited with the admin API caller as actor.
        let (status, _) = call(&server, &token, "DELETE", "/clients/shop", None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{b}");
        assert_eq!(call(&server, &token, "GET", "/clients/shop", None).await.0, StatusCode::NOT_FOUND, "{b}");
        let events = ok(server.state().services.audit().recent(&TenantId::default_tenant(), 50).await, "audit");
        for action in ["client.created", "client.updated", "client.deleted"] {
            let event = events.iter().find(|e| e.action == action && e.target == "shop");
            assert!(event.is_some_and(|e| e.actor == "admin-api:ops"), "{b}: {action}");
        }
    }
}

#[tokio::test]
async fn settings_that_do_not_fit_together_are_refused_and_nothing_is_stored() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |c| c.keys.algorithms = vec![SigningAlg::Rs256]).await;
        let token = ready(&server, &support::admin::ADMIN_SCOPES.join(" ")).await;
        let before = client_ids(&server, &token).await;
        let web = |extra: Value| {
            let mut body = json!({"client_id": "bad", "name": "Bad", "redirect_uris": ["https://app.example/cb"]});
            for (k, v) in extra.as_object().into_iter().flatten() {
                body[k] = v.clone();
            }
            body
        };
        let private_key = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}]});
        let refused: &[(Value, &str)] = &[
            (web(json!({"kind": "public", "grant_types": ["client_credentials"]})), "client_credentials"),
            (json!({"client_id": "bad", "name": "Bad"}), "redirect URI"),
            (web(json!({"redirect_uris": ["http://app.example/cb"]})), "https"),
            (web(json!({"redirect_uris": ["http://localhost:3000/cb"]})), "allow_insecure_redirect_uris"),
            (web(json!({"redirect_uris": ["https://app.example/cb", "https://app.example/cb"]})), "twice"),
            (web(json!({"scopes": ["no-such-scope"]})), "does not exist"),
            (web(json!({"scopes": ["admin:users:read"]})), "admin client"),
            (web(json!({"token_endpoint_auth_method": "private_key_jwt"})), "public keys"),
            (web(json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": private_key})), "public keys only"),
            (web(json!({"kind": "public", "token_endpoint_auth_method": "client_secret_basic"})), "cannot use"),
            (web(json!({"allow_legacy_assertion_audience": true})), "private_key_jwt"),
            (web(json!({"kind": "public", "allow_insecure_no_pkce": true})), "confidential clients only"),
            (web(json!({"session": {"frontchannel_logout_uri": "https://elsewhere.example/fc"}})), "redirect URIs"),
            (web(json!({"session": {"backchannel_logout_uri": "https://10.0.0.1/bc"}})), "backchannel_logout_uri"),
            (web(json!({"session": {"backchannel_logout_uri": "http://rp.example/bc"}})), "https"),
            (web(json!({"id_token_signed_response_alg": "ES256"})), "keys.algorithms"),
            (web(json!({"access": {"required_roles": {"roles": ["no-such-role"]}}})), "no-such-role"),
            (web(json!({"access_token_lifetime": 0})), "access_token_lifetime"),
            (web(json!({"refresh_reuse_grace": 301})), "refresh_reuse_grace"),
            (web(json!({"name": " "})), "name"),
            (web(json!({"colour": "red"})), "colour"),
            (web(json!({"client_id": "has space"})), "client_id"),
            (web(json!({"grant_types": ["authorization_code", "authorization_code"]})), "twice"),
            (web(json!({"redirect_uris": ["https://app.example/a b"]})), "visible ASCII"),
            (web(json!({"redirect_uris": ["https://app.example/#top"]})), "fragment"),
            (web(json!({"jwks_uri": "https://keys.example/ jwks"})), "jwks_uri"),
        ];
        for (body, named) in refused {
            let (status, problem) = call(&server, &token, "POST", "/clients", Some(body.clone())).await;
            assert!(status.is_client_error(), "{b}: {body} was taken: {problem}");
            let detail = problem["detail"].as_str().unwrap_or_default();
            assert!(detail.contains(named), "{b}: {body}: the refusal names `{named}`: {detail}");
        }
        assert_eq!(client_ids(&server, &token).await, before, "{b}: nothing stored");

        // A change is judged on the client it would leave: the grant stays, its URIs cannot go.
        let (status, _) = call(&server, &token, "POST", "/clients", Some(web(json!({})))).await;
        assert_eq!(status, StatusCode::CREATED, "{b}");
        let tag = etag(&server, &token, "/clients/bad").await;
        let (status, problem) = patch(&server, &token, "/clients/bad", Some(&tag), json!({"redirect_uris": []})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}: {problem}");
        let dev = json!({"redirect_uris": ["http://localhost:3000/cb"], "allow_insecure_redirect_uris": true});
        let (status, _) = patch(&server, &token, "/clients/bad", Some(&tag), dev).await;
        assert_eq!(status, StatusCode::OK, "{b}: the development switch and its URI in one change");
        let tag = etag(&server, &token, "/clients/bad").await;
        let off = json!({"allow_insecure_redirect_uris": false});
        let (status, problem) = patch(&server, &token, "/clients/bad", Some(&tag), off).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{b}: a URI only the switch allowed would stay: {problem}"
        );
        let (_, shown) = call(&server, &token, "GET", "/clients/bad", None).await;
        assert_eq!(shown["allow_insecure_redirect_uris"], true, "{b}: the refused change left nothing");
    }
}

#[tokio::test]
async fn a_rotated_secret_works_beside_the_new_one_for_the_grace_period() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        let token = ready(&server, CLIENTS).await;
        let body = json!({"client_id": "batch", "name": "Batch", "grant_types": ["client_credentials"], "scopes": []});
        let (status, created) = call(&server, &token, "POST", "/clients", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{b}: {created}");
        let first = created["client_secret"].as_str().unwrap_or_default().to_owned();
        assert_eq!(token_status(&server, "batch", &first).await, StatusCode::OK, "{b}");

        let (status, rotated) =
            call(&server, &token, "POST", "/clients/batch/secret", Some(json!({"grace": 3600}))).await;
        assert_eq!(status, StatusCode::OK, "{b}: {rotated}");
        let second = rotated["client_secret"].as_str().unwrap_or_default().to_owned();
        assert!(second.len() >= 32 && second != first, "{b}");
        assert!(rotated["previous_secret_valid_until"].as_i64().unwrap_or_default() > 0, "{b}");
        assert_eq!(token_status(&server, "batch", &first).await, StatusCode::OK, "{b}: the old one, in its grace");
        assert_eq!(token_status(&server, "batch", &second).await, StatusCode::OK, "{b}: the new one");

        let (status, rotated) = call(&server, &token, "POST", "/clients/batch/secret", Some(json!({"grace": 0}))).await;
        assert_eq!(status, StatusCode::OK, "{b}");
        let third = rotated["client_secret"].as_str().unwrap_or_default().to_owned();
        assert_eq!(token_status(&server, "batch", &second).await, StatusCode::UNAUTHORIZED, "{b}: no grace");
        assert_eq!(token_status(&server, "batch", &first).await, StatusCode::UNAUTHORIZED, "{b}");
        assert_eq!(token_status(&server, "batch", &third).await, StatusCode::OK, "{b}");

        let (status, _) =
            call(&server, &token, "POST", "/clients/batch/secret", Some(json!({"grace": 2_592_001}))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}: at most 30 days of overlap");
        let public =
            json!({"client_id": "spa", "name": "SPA", "kind": "public", "redirect_uris": ["https://spa.example/cb"]});
        let (status, created) = call(&server, &token, "POST", "/clients", Some(public)).await;
        assert_eq!(status, StatusCode::CREATED, "{b}");
        assert_eq!(created["client_secret"], Value::Null, "{b}: a public client has no secret");
        let (status, _) = call(&server, &token, "POST", "/clients/spa/secret", None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}: nothing to rotate");
        assert_eq!(token_status(&server, "batch", &third).await, StatusCode::OK, "{b}: untouched");
        let events = ok(server.state().services.audit().recent(&TenantId::default_tenant(), 50).await, "audit");
        assert!(events.iter().any(|e| e.action == "client.secret_rotated" && e.actor == "admin-api:ops"), "{b}");
    }
}

#[tokio::test]
async fn no_caller_hands_out_or_takes_over_admin_scopes_through_a_client() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        let all = ready(&server, &support::admin::ADMIN_SCOPES.join(" ")).await;
        // An admin client holding admin:keys, made by a caller who holds it.
        let keys = json!({"client_id": "keeper", "name": "Keeper", "grant_types": ["client_credentials"],
            "admin_client": true, "scopes": ["admin:keys"]});
        let (status, _) = call(&server, &all, "POST", "/clients", Some(keys.clone())).await;
        assert_eq!(status, StatusCode::CREATED, "{b}");

        let narrow = machine_token(&server, "ops", CLIENTS).await;
        let copy = json!({"client_id": "copy", "name": "Copy", "grant_types": ["client_credentials"],
            "admin_client": true, "scopes": ["admin:keys"]});
        let (status, problem) = call(&server, &narrow, "POST", "/clients", Some(copy)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}: {problem}");
        let tag = etag(&server, &narrow, "/clients/keeper").await;
        let (status, _) = patch(&server, &narrow, "/clients/keeper", Some(&tag), json!({"name": "Mine"})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}: a client holding rights the caller lacks");
        let (status, _) = call(&server, &narrow, "POST", "/clients/keeper/secret", None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}: its secret would be the caller's way to them");
        assert_eq!(call(&server, &narrow, "DELETE", "/clients/keeper", None).await.0, StatusCode::FORBIDDEN, "{b}");
        let (status, _) = call(&server, &narrow, "GET", "/clients/keeper", None).await;
        assert_eq!(status, StatusCode::OK, "{b}: reading it is fine");

        // An existing client is never given admin rights through the API, by anyone:
        // whoever managed it before could know its secret.
        let plain = json!({"client_id": "plain", "name": "Plain", "grant_types": ["client_credentials"], "scopes": []});
        assert_eq!(call(&server, &narrow, "POST", "/clients", Some(plain)).await.0, StatusCode::CREATED, "{b}");
        let tag = etag(&server, &all, "/clients/plain").await;
        let widen = json!({"admin_client": true, "scopes": ["admin:keys"]});
        let (status, problem) = patch(&server, &narrow, "/clients/plain", Some(&tag), widen.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}: {problem}");
        let (status, problem) = patch(&server, &all, "/clients/plain", Some(&tag), widen).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}: {problem}");
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("new admin client")), "{b}: {problem}");
        let tag = etag(&server, &all, "/clients/keeper").await;
        let more = json!({"scopes": ["admin:keys", "admin:clients:read"]});
        let (status, _) = patch(&server, &all, "/clients/keeper", Some(&tag), more).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}: nor an admin client more of them");
        let (status, fewer) = patch(&server, &all, "/clients/keeper", Some(&tag), json!({"scopes": []})).await;
        assert_eq!(status, StatusCode::OK, "{b}: narrowing is fine: {fewer}");
        let (_, shown) = call(&server, &all, "GET", "/clients/plain", None).await;
        assert_eq!(shown["admin_client"], false, "{b}: the refused change left nothing");

        // The client the caller calls with is neither deleted nor stripped of admin scopes.
        let (status, problem) = call(&server, &all, "DELETE", "/clients/ops", None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}: {problem}");
        let tag = etag(&server, &all, "/clients/ops").await;
        let (status, _) = patch(&server, &all, "/clients/ops", Some(&tag), json!({"admin_client": false})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let narrowed = json!({"scopes": ["admin:clients:read"]});
        let (status, problem) = patch(&server, &all, "/clients/ops", Some(&tag), narrowed).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}: {problem}");
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("calling with")), "{b}: {problem}");
        let (status, _) = patch(&server, &all, "/clients/ops", Some(&tag), json!({"name": "Operations"})).await;
        assert_eq!(status, StatusCode::OK, "{b}: other changes are fine");
    }
}

#[tokio::test]
async fn concurrent_changes_from_one_read_are_one_success_and_one_conflict() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        let token = ready(&server, CLIENTS).await;
        let body = json!({"client_id": "race", "name": "Race", "redirect_uris": ["https://race.example/cb"]});
        assert_eq!(call(&server, &token, "POST", "/clients", Some(body)).await.0, StatusCode::CREATED, "{b}");
        let tag = etag(&server, &token, "/clients/race").await;
        let one = patch(&server, &token, "/clients/race", Some(&tag), json!({"name": "One"}));
        let two = patch(&server, &token, "/clients/race", Some(&tag), json!({"name": "Two"}));
        let (one, two) = tokio::join!(one, two);
        let mut statuses = [one.0, two.0];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::PRECONDITION_FAILED], "{b}: {} {}", one.1, two.1);
    }
}

#[tokio::test]
async fn a_client_registered_again_under_an_old_id_does_not_inherit_its_tokens() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        let all = ready(&server, &support::admin::ADMIN_SCOPES.join(" ")).await;
        let body = json!({"client_id": "reader", "name": "Reader", "grant_types": ["client_credentials"],
            "admin_client": true, "scopes": ["admin:server:read"]});
        let token_of = |created: &Value| {
            let secret = created["client_secret"].as_str().unwrap_or_default().to_owned();
            let form = [("grant_type", "client_credentials"), ("scope", "admin:server:read")];
            let request = server.http.post(server.url("/token")).basic_auth("reader", Some(secret)).form(&form);
            async move {
                let answer: Value = ok(ok(request.send().await, "token").json().await, "json");
                answer["access_token"].as_str().unwrap_or_default().to_owned()
            }
        };
        let (status, first) = call(&server, &all, "POST", "/clients", Some(body.clone())).await;
        assert_eq!(status, StatusCode::CREATED, "{b}: {first}");
        let old = token_of(&first).await;
        assert_eq!(call(&server, &old, "GET", "/server", None).await.0, StatusCode::OK, "{b}");

        assert_eq!(call(&server, &all, "DELETE", "/clients/reader", None).await.0, StatusCode::NO_CONTENT, "{b}");
        assert_eq!(call(&server, &old, "GET", "/server", None).await.0, StatusCode::UNAUTHORIZED, "{b}: gone");
        // Past the clock skew allowed between nodes.
        server.clock.advance(std::time::Duration::from_secs(62));
        let (status, second) = call(&server, &all, "POST", "/clients", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{b}: {second}");
        let (status, _) = call(&server, &old, "GET", "/server", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{b}: the old client's token is not the new one's");
        let new = token_of(&second).await;
        assert_eq!(call(&server, &new, "GET", "/server", None).await.0, StatusCode::OK, "{b}");
    }
}

#[tokio::test]
async fn defaults_follow_the_server_and_limits_added_later_bind_only_what_changes() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |c| {
            c.keys.algorithms = vec![SigningAlg::Es256];
            c.tokens.access_token_alg = SigningAlg::Es256;
        })
        .await;
        let token = ready(&server, CLIENTS).await;
        let body = json!({"client_id": "es", "name": "ES", "grant_types": ["client_credentials"], "scopes": []});
        let (status, created) = call(&server, &token, "POST", "/clients", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{b}: {created}");
        assert_eq!(created["client"]["id_token_signed_response_alg"], "ES256", "{b}: a key the server has");

        // A client stored before today's limits (a two-day token lifetime) can still be
        // changed in other ways; the limit binds a change of the lifetime itself.
        let mut old = latchkey_service::testing::sample_client(
            "legacy",
            latchkey_core::domain::ClientKind::Confidential,
            "https://legacy.example/cb",
        );
        old.id_token_signed_response_alg = SigningAlg::Es256;
        old.access_token_lifetime = Some(172_800);
        let store = latchkey_service::testing::store_of(&server.state().services);
        ok(store.create_client(&TenantId::default_tenant(), old, &latchkey_core::records::Actor::Cli).await, "stored");
        let tag = etag(&server, &token, "/clients/legacy").await;
        let (status, renamed) = patch(&server, &token, "/clients/legacy", Some(&tag), json!({"name": "Legacy"})).await;
        assert_eq!(status, StatusCode::OK, "{b}: {renamed}");
        let tag = etag(&server, &token, "/clients/legacy").await;
        let longer = json!({"access_token_lifetime": 172_801});
        let (status, _) = patch(&server, &token, "/clients/legacy", Some(&tag), longer).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let (status, _) =
            patch(&server, &token, "/clients/legacy", Some(&tag), json!({"access_token_lifetime": null})).await;
        assert_eq!(status, StatusCode::OK, "{b}: back to the server's lifetime");
    }
}

#[tokio::test]
async fn apply_makes_the_server_match_a_document_once_and_refuses_what_it_must() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        let token = ready(&server, &support::admin::ADMIN_SCOPES.join(" ")).await;
        let doc = json!({
            "scopes": [{"name": "orders:read", "description": "Read your orders"}],
            "roles": [{"name": "shop-admin", "application": "shop"}],
            "clients": [{
                "client_id": "shop", "name": "Shop",
                "redirect_uris": ["https://shop.example/cb"],
                "scopes": ["openid", "orders:read"],
                "access": {"required_roles": {"roles": ["shop-admin"]}}
            }],
            "groups": [{"name": "staff", "roles": ["shop-admin"]}]
        });
        let (status, planned) = call(&server, &token, "POST", "/apply?dry_run=true", Some(doc.clone())).await;
        assert_eq!(status, StatusCode::OK, "{b}: {planned}");
        assert_eq!(planned["changed"], true, "{b}");
        assert_eq!(planned["steps"].as_array().map(Vec::len), Some(4), "{b}: {planned}");
        assert_eq!(planned["secrets"], json!([]), "{b}");
        assert_eq!(call(&server, &token, "GET", "/clients/shop", None).await.0, StatusCode::NOT_FOUND, "{b}: dry run");

        let (status, done) = call(&server, &token, "POST", "/apply", Some(doc.clone())).await;
        assert_eq!(status, StatusCode::OK, "{b}: {done}");
        let secret = done["secrets"][0]["client_secret"].as_str().unwrap_or_default().to_owned();
        assert_eq!(done["secrets"][0]["client_id"], "shop", "{b}: {done}");
        let (status, shop) = call(&server, &token, "GET", "/clients/shop", None).await;
        assert_eq!(
            (status, shop["access"]["required_roles"]["roles"].clone()),
            (StatusCode::OK, json!(["shop-admin"])),
            "{b}"
        );
        // The secret in the answer is the shop's.
        let form =
            [("grant_type", "authorization_code"), ("code", "none"), ("redirect_uri", "https://shop.example/cb")];
        let response = ok(
            server.http.post(server.url("/token")).basic_auth("shop", Some(&secret)).form(&form).send().await,
            "token",
        );
        let answer: Value = response.json().await.unwrap_or_default();
        assert_eq!(
            answer["error"], "invalid_grant",
            "{b}: the client authenticated, the code is what is wrong: {answer}"
        );

        let (status, again) = call(&server, &token, "POST", "/apply", Some(doc.clone())).await;
        assert_eq!(
            (status, again["changed"].clone(), again["secrets"].clone()),
            (StatusCode::OK, json!(false), json!([])),
            "{b}: {again}"
        );

        // A secret reference is for the CLI; a malformed document is 400; a broken rule 422.
        let mut with_reference = doc.clone();
        with_reference["clients"][0]["secret"] = json!("env:HOME");
        let (status, problem) = call(&server, &token, "POST", "/apply", Some(with_reference)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}: {problem}");
        assert!(problem["detail"].as_str().unwrap_or_default().contains("clients[0].secret"), "{b}: {problem}");
        let (status, problem) = call(&server, &token, "POST", "/apply", Some(json!({"clients": [{"bogus": 1}]}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{b}: {problem}");
        assert!(problem["detail"].as_str().unwrap_or_default().contains("clients[0]"), "{b}: {problem}");
        let dangling = json!({"scopes": [{"name": "kept:out", "description": "K"}], "groups": [{"name": "g", "roles": ["ghost"]}]});
        let (status, problem) = call(&server, &token, "POST", "/apply", Some(dangling)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}: {problem}");
        assert!(problem["detail"].as_str().unwrap_or_default().contains("groups[0] (g).roles"), "{b}: {problem}");
        let plain_http = json!({"resources": [{"identifier": "http://api.example", "name": "A"}]});
        let (status, problem) = call(&server, &token, "POST", "/apply", Some(plain_http)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{b}: as PUT /resources: {problem}");
        let (_, scopes) = call(&server, &token, "GET", "/scopes", None).await;
        assert!(!scopes.to_string().contains("kept:out"), "{b}: nothing of a refused document is stored");

        // The client the call comes with is never changed through apply.
        let own = json!({"clients": [{"client_id": "ops", "name": "Ops", "grant_types": ["client_credentials"], "scopes": []}]});
        let (status, problem) = call(&server, &token, "POST", "/apply", Some(own)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}: {problem}");
        let (_, ops) = call(&server, &token, "GET", "/clients/ops", None).await;
        assert_eq!(ops["admin_client"], true, "{b}: {ops}");

        // An existing client is never widened to admin rights through the API, apply or not.
        let plain =
            json!({"client_id": "reports", "name": "Reports", "grant_types": ["client_credentials"], "scopes": []});
        assert_eq!(call(&server, &token, "POST", "/clients", Some(plain)).await.0, StatusCode::CREATED, "{b}");
        let widen = json!({"clients": [{"client_id": "reports", "name": "Reports", "grant_types": ["client_credentials"],
            "admin_client": true, "scopes": ["admin:users:write"]}]});
        let (status, problem) = call(&server, &token, "POST", "/apply", Some(widen)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}: {problem}");
        let (_, reports) = call(&server, &token, "GET", "/clients/reports", None).await;
        assert_eq!(reports["admin_client"], false, "{b}");

        // Pruning removes what apply made.
        let (status, pruned) = call(&server, &token, "POST", "/apply?prune=true", Some(json!({}))).await;
        assert_eq!(status, StatusCode::OK, "{b}: {pruned}");
        assert_eq!(call(&server, &token, "GET", "/clients/shop", None).await.0, StatusCode::NOT_FOUND, "{b}");
        assert_eq!(call(&server, &token, "GET", "/clients/ops", None).await.0, StatusCode::OK, "{b}");
    }
}

#[tokio::test]
async fn apply_links_a_users_upstream_account_and_names_a_provider_it_does_not_know() {
    let corp = "kind = \"oidc\"\nname = \"Corp SSO\"\nissuer = \"https://sso.corp.example\"\nclient_id = \"latchkey\"\nclient_secret = \"s3cret-value\"\n";
    let corp: latchkey_config::ProviderConfig = ok(toml::from_str(corp), "provider");
    let server = TestServer::start(support::sqlite().await, |c| {
        c.federation.providers.insert("corp".into(), corp);
    })
    .await;
    let token = ready(&server, &support::admin::ADMIN_SCOPES.join(" ")).await;
    let doc = |provider: &str| json!({"users": [{"username": "grace", "identities": [{"provider": provider, "subject": "00u-grace"}]}]});
    let (status, refused) = call(&server, &token, "POST", "/apply", Some(doc("nowhere"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(
        refused["detail"].as_str().unwrap_or_default().contains("users[0] (grace).identities[0].provider"),
        "{refused}"
    );
    let (status, done) = call(&server, &token, "POST", "/apply", Some(doc("corp"))).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let (_, users) = call(&server, &token, "GET", "/users?username_prefix=grace", None).await;
    let sub = users["items"][0]["sub"].as_str().unwrap_or_default().to_owned();
    let (status, linked) = call(&server, &token, "GET", &format!("/users/{sub}/identities"), None).await;
    assert_eq!(status, StatusCode::OK, "{linked}");
    assert_eq!((linked[0]["provider"].as_str(), linked[0]["subject"].as_str()), (Some("corp"), Some("00u-grace")));
    server.stop().await;
}
