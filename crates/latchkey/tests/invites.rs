//! `latchkey invite …` and the sign-in requirements of `latchkey client …`.

mod support;

use support::Workspace;

#[test]
fn invitations_are_created_listed_and_revoked() {
    let mut ws = Workspace::new();
    ws.set_env("LATCHKEY_REGISTRATION__MODE", "invite");
    let created = ws.run(&["invite", "create", "--note", "for Ada", "--expires-in", "2d", "--json"]);
    let json = created.success().json();
    let link = json["link"].as_str().unwrap_or_default().to_owned();
    let id = json["id"].as_str().unwrap_or_default().to_owned();
    assert!(link.contains("/signup?invite=") && link.len() > 60, "{link}");
    assert!(!id.is_empty());
    // The token is shown once: the list shows the id and the note, never the link.
    let listed = ws.run(&["invite", "list"]);
    listed.success().stdout_names(&[&id, "unused", "for Ada"]);
    let token = link.split("invite=").nth(1).unwrap_or_default();
    listed.never_shows(token);
    ws.run(&["invite", "revoke", &id]).success();
    ws.run(&["invite", "revoke", &id]).expect_code(1).stderr_names(&["invitation"]);
    let text = ws.run(&["invite", "create"]);
    text.success().stdout_names(&["Invitation", "/signup?invite="]);
}

#[test]
fn an_invitation_in_another_mode_says_it_will_not_work_yet_and_bad_input_is_named() {
    let ws = Workspace::new();
    ws.run(&["invite", "create"]).success().stdout_names(&["registration.mode is not \"invite\""]);
    ws.run(&["invite", "create", "--expires-in", "soon"]).expect_code(2).stderr_names(&["--expires-in"]);
    ws.run(&["invite", "create", "--expires-in", "0s"]).expect_code(2).stderr_names(&["--expires-in"]);
}

#[test]
fn clients_may_require_two_factors_or_a_passkey() {
    let ws = Workspace::new();
    let args =
        ["client", "create", "--name", "Admin", "--id", "admin", "--redirect-uri", "https://admin.example.com/cb"];
    let mut with_flag = args.to_vec();
    with_flag.push("--require-passkey");
    ws.run(&with_flag).success();
    ws.run(&["client", "show", "admin"]).success().stdout_names(&["requires a passkey"]);
    ws.run(&["client", "update", "admin", "--require-passkey=false", "--require-mfa"]).success();
    ws.run(&["client", "show", "admin"]).success().stdout_names(&["requires two factors"]);
}

#[tokio::test]
async fn an_operator_resets_the_sign_in_factors_of_a_user_who_lost_them() {
    let ws = Workspace::new();
    let ada =
        ws.run_stdin(&["user", "create", "--username", "ada", "--password-stdin", "--json"], "a long password 123\n");
    let sub = ada.success().json()["sub"].as_str().unwrap_or_default().to_owned();
    let services = ws.services().await;
    let tenant = latchkey_core::domain::TenantId::default_tenant();
    let sub = latchkey_core::domain::SubjectId::parse(&sub).unwrap_or_else(|e| panic!("{e}"));
    let passkey = latchkey_core::records::NewPasskey {
        credential_id: "lost-key".into(),
        name: "Lost phone".into(),
        credential: "{}".into(),
        sign_count: 0,
        backup_eligible: true,
        backup_state: true,
    };
    let factors = services.factors();
    factors
        .add_passkey(&tenant, &sub, passkey, &latchkey_core::records::Actor::Cli)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    factors.begin_totp(&tenant, &sub).await.unwrap_or_else(|e| panic!("{e}"));
    services.system().close().await;
    let reset = ws.run(&["user", "reset-factors", "ada"]);
    reset.success().stdout_names(&["Removed 1 passkey(s)", "password"]);
    let services = ws.services().await;
    assert!(services.factors().passkeys(&tenant, &sub).await.unwrap_or_else(|e| panic!("{e}")).is_empty());
    assert!(services.factors().totp(&tenant, &sub).await.unwrap_or_else(|e| panic!("{e}")).is_none());
    services.system().close().await;
    ws.run(&["user", "reset-factors", "nobody"]).expect_code(1).stderr_names(&["nobody"]);
}
