//! A `test-clock` build lets a test move the server clock over HTTP; no other build can.
#![cfg(feature = "test-clock")]

mod support;

use support::{TestServer, ok, sqlite};

#[tokio::test]
async fn the_test_clock_endpoint_moves_the_server_clock() {
    let server = TestServer::start(sqlite().await, |_| {}).await;
    let before = server.clock.now().secs();
    let response =
        ok(server.http.post(server.url("/__test/clock/advance")).form(&[("seconds", "3600")]).send().await, "advance");
    assert!(response.status().is_success(), "{}", response.status());
    let body: serde_json::Value = ok(response.json().await, "json");
    let now = body["now"].as_i64().unwrap_or_default();
    assert!(now >= before + 3600 && now <= before + 3605, "{before} -> {now}");
    assert!(server.clock.now().secs() >= before + 3600, "the server's own clock moved");

    let bad =
        ok(server.http.post(server.url("/__test/clock/advance")).form(&[("seconds", "soon")]).send().await, "bad");
    assert!(bad.status().is_client_error(), "{}", bad.status());
    server.stop().await;
}
