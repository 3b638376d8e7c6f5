//! `latchkey mail test` and the verification links `user create|update|verify-email` send:
//! refused without `[mail]`, naming the section; queued with it.

mod support;

use support::Workspace;

#[test]
fn a_test_email_is_queued_only_when_mail_is_configured() {
    let ws = Workspace::new();
    ws.run(&["mail", "test", "--to", "ada@example.com"]).expect_code(2).stderr_names(&["[mail]"]);
    ws.write("latchkey.toml", "[mail]\nfrom = \"id@example.com\"\nhost = \"127.0.0.1\"\nport = 2525\ntls = \"none\"\n");
    ws.run(&["mail", "test", "--to", "not an address"]).expect_code(1).stderr_names(&["not an email address"]);
    ws.run(&["mail", "test", "--to", "ada@example.com"])
        .success()
        .stdout_names(&["Queued a test email to ada@example.com"]);
}

#[test]
fn an_operator_sets_an_address_and_the_user_gets_a_link_to_verify_it() {
    let ws = Workspace::new();
    // Without mail: the user is stored, nothing is sent, verify-email names what is missing.
    ws.run(&["user", "create", "--username", "ada", "--email", "ada@example.com", "--no-password"])
        .success()
        .stdout_names(&["Created user ada"]);
    ws.run(&["user", "verify-email", "ada"]).expect_code(1).stderr_names(&["needs mail", "[mail]"]);

    ws.write("latchkey.toml", "[mail]\nfrom = \"id@example.com\"\nhost = \"127.0.0.1\"\nport = 2525\ntls = \"none\"\n");
    ws.run(&["user", "create", "--username", "bob", "--email", "bob@example.com", "--no-password"])
        .success()
        .stdout_names(&["Created user bob", "A link to verify bob@example.com was sent."]);
    ws.run(&["user", "create", "--username", "cy", "--email", "cy@example.com", "--email-verified", "--no-password"])
        .success()
        .stdout_names(&["Created user cy"]);
    ws.run(&["user", "update", "ada", "--email", "ada@new.example"])
        .success()
        .stdout_names(&["A link to verify ada@new.example was sent.", "email verified: false"]);
    ws.run(&["user", "update", "ada", "--name", "Ada"]).success();
    ws.run(&["user", "verify-email", "ada"]).success().stdout_names(&["A link to verify ada@new.example was sent"]);
    ws.run(&["user", "verify-email", "cy"]).expect_code(1).stderr_names(&["verified already"]);
    ws.run(&["user", "create", "--username", "dee", "--no-password"]).success();
    ws.run(&["user", "verify-email", "dee"]).expect_code(2).stderr_names(&["no email address", "--email"]);
    ws.run(&["user", "verify-email", "nobody"]).expect_code(1).stderr_names(&["nobody"]);
    let json = ws.run(&["--json", "user", "verify-email", "bob"]).success().json();
    assert_eq!(json["sent_to"], "bob@example.com");
}

#[test]
fn check_config_renders_the_email_templates_resolves_the_secrets_and_warns_about_localhost_links() {
    let ws = Workspace::new();
    let mail = "[mail]\nfrom = \"id@example.com\"\nhost = \"127.0.0.1\"\nport = 2525\ntls = \"none\"\n";
    ws.write("latchkey.toml", mail);
    ws.run(&["check-config"]).success().stderr_names(&["server.public_url", "links in emails"]);

    let public = "[server]\npublic_url = \"https://id.example.com\"\n";
    ws.write("mail-templates/verify_email.txt", "Confirm {{ adress }}: {{ link }}\n");
    ws.write("latchkey.toml", &format!("{public}{mail}templates = \"mail-templates\"\n"));
    ws.run(&["check-config"]).expect_code(2).stderr_names(&["mail.templates", "verify_email.txt", "adress"]);
    ws.write("mail-templates/verify_email.txt", "Confirm {{ address }} for {{ account }}: {{ link }}\n");
    let fine = ws.run(&["check-config"]);
    fine.success();
    assert!(!fine.stderr.contains("warning"), "no warning with a public_url: {}", fine.stderr);

    let sms = "[sms]\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token = \"env:LK_TEST_TWILIO_TOKEN_UNSET\"\nfrom = \"+15005550006\"\n";
    ws.write("latchkey.toml", &format!("{public}{sms}"));
    ws.run(&["check-config"]).expect_code(2).stderr_names(&["sms.auth_token", "LK_TEST_TWILIO_TOKEN_UNSET"]);
}
