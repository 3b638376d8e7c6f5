//! `latchkey user identities|unlink` and `check-config`'s warning about links to removed
//! sign-in providers.

mod support;

use latchkey_core::domain::{ProviderId, SubjectId, TenantId, UpstreamSubject, Username};
use latchkey_core::records::{Actor, NewFederatedIdentity};
use support::Workspace;

const PROVIDER: &str = "[federation.providers.corp]\nkind = \"oidc\"\nname = \"Corp SSO\"\nissuer = \"https://sso.corp.example\"\nclient_id = \"latchkey\"\nclient_secret = \"s3cret-value\"\n";

async fn link(ws: &Workspace, user: &str, provider: &str, subject: &str) -> SubjectId {
    let services = ws.services().await;
    let tenant = TenantId::default_tenant();
    let username = Username::parse(user).unwrap_or_else(|e| panic!("{e}"));
    let found = services.users().by_username(&tenant, &username).await.unwrap_or_else(|e| panic!("{e}"));
    let sub = found.unwrap_or_else(|| panic!("no {user}")).sub;
    let identity = NewFederatedIdentity {
        provider: ProviderId::parse(provider).unwrap_or_else(|e| panic!("{e}")),
        subject: UpstreamSubject::parse(subject).unwrap_or_else(|e| panic!("{e}")),
        sub: sub.clone(),
        email: Some(format!("{user}@corp.example")),
    };
    let store = latchkey_service::testing::store_of(&services);
    store.link_identity(&tenant, &identity, &Actor::Cli).await.unwrap_or_else(|e| panic!("{e}"));
    sub
}

#[tokio::test]
async fn identities_are_listed_and_unlinked_but_never_the_last_way_in() {
    let ws = Workspace::new();
    ws.write("latchkey.toml", PROVIDER);
    ws.run(&["user", "create", "--username", "ada", "--no-password"]).success();
    ws.run_stdin(&["user", "create", "--username", "cy", "--password-stdin"], "correct horse battery\n").success();
    link(&ws, "ada", "corp", "corp-ada").await;
    link(&ws, "cy", "corp", "corp-cy").await;
    let listed = ws.run(&["user", "identities", "ada", "--json"]).success().json();
    assert_eq!(listed[0]["provider"], "corp");
    assert_eq!(listed[0]["subject"], "corp-ada");
    assert_eq!(listed[0]["email"], "ada@corp.example");
    ws.run(&["user", "identities", "ada"]).success().stdout_names(&["corp", "corp-ada", "ada@corp.example"]);
    ws.run(&["user", "identities", "cy"]).success().stdout_names(&["corp-cy"]);
    // Ada has nothing else: her link stays.
    ws.run(&["user", "unlink", "ada", "corp"]).expect_code(1).stderr_names(&["last way in"]);
    ws.run(&["user", "unlink", "ada", "Not A Provider"]).expect_code(2).stderr_names(&["provider id"]);
    // Cy has a password.
    ws.run(&["user", "unlink", "cy", "corp"]).success().stdout_names(&["Unlinked corp from cy"]);
    ws.run(&["user", "unlink", "cy", "corp"]).expect_code(1).stderr_names(&["not found"]);
    ws.run(&["user", "identities", "cy"]).success().stdout_names(&["No linked sign-in providers."]);
}

#[tokio::test]
async fn check_config_warns_about_links_to_removed_providers_and_checks_credentials() {
    let ws = Workspace::new();
    ws.write("latchkey.toml", PROVIDER);
    ws.run(&["user", "create", "--username", "ada", "--no-password"]).success();
    link(&ws, "ada", "corp", "corp-ada").await;
    let fine = ws.run(&["check-config"]);
    fine.success();
    assert!(!fine.stderr.contains("warning"), "{}", fine.stderr);
    assert!(!fine.stdout.contains("s3cret-value"), "the secret is never printed: {}", fine.stdout);
    ws.write("latchkey.toml", "");
    ws.run(&["check-config"]).success().stderr_names(&["1 user(s)", "`corp`", "latchkey user unlink USER corp"]);
    ws.write(
        "latchkey.toml",
        &PROVIDER.replace("client_secret = \"s3cret-value\"", "client_secret = \"env:NOT_SET_ANYWHERE\""),
    );
    ws.run(&["check-config"])
        .expect_code(2)
        .stderr_names(&["federation.providers.corp.client_secret", "NOT_SET_ANYWHERE"]);
    ws.write(
        "latchkey.toml",
        &PROVIDER.replace("client_secret = \"s3cret-value\"", "private_key = \"file:missing.pem\""),
    );
    ws.run(&["check-config"]).expect_code(2).stderr_names(&["federation.providers.corp.private_key"]);
    ws.write("key.pem", "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n");
    ws.write("latchkey.toml", &PROVIDER.replace("client_secret = \"s3cret-value\"", "private_key = \"file:key.pem\""));
    ws.run(&["check-config"]).expect_code(2).stderr_names(&["PKCS#8"]);
}
