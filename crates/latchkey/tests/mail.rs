//! `latchkey mail test`: refused without `[mail]`, naming the section; queued with it.

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
