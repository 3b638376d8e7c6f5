//! The emails Latchkey sends, each as a subject, a text part and an HTML part rendered from
//! templates (minijinja; the HTML autoescaped). Every template is built in; an operator
//! replaces any of them with a file of the same name in `mail.templates` (relative to the
//! config file). Every template is rendered once with sample values when the server starts,
//! in strict mode, so a broken or misspelt override stops the start-up and names the file
//! instead of failing the first real message.

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior, Value, context};

use crate::mail::Email;

/// The messages, and the values each one's templates may use (besides `site`, the server's
/// public URL, which every template has).
pub const MESSAGES: &[(&str, &[&str])] = &[
    ("test", &[]),
    ("verify_email", &["account", "address", "link", "minutes"]),
    ("recovery_link", &["account", "link", "minutes"]),
    ("recovery_pending", &["account", "ready_at", "hours", "cancel_link"]),
    ("recovery_completed", &["account", "passkey", "added"]),
    ("security_notice", &["account", "what", "when", "link", "days"]),
    ("sign_in_link", &["account", "link", "minutes"]),
    ("inactive_account", &["account", "since", "unused_days", "action", "on", "link"]),
];

fn built_in(name: &str) -> Option<&'static str> {
    Some(match name {
        "layout.html" => include_str!("../templates/email/layout.html"),
        "test.subject.txt" => include_str!("../templates/email/test.subject.txt"),
        "test.txt" => include_str!("../templates/email/test.txt"),
        "test.html" => include_str!("../templates/email/test.html"),
        "verify_email.subject.txt" => include_str!("../templates/email/verify_email.subject.txt"),
        "verify_email.txt" => include_str!("../templates/email/verify_email.txt"),
        "verify_email.html" => include_str!("../templates/email/verify_email.html"),
        "sign_in_link.subject.txt" => include_str!("../templates/email/sign_in_link.subject.txt"),
        "sign_in_link.txt" => include_str!("../templates/email/sign_in_link.txt"),
        "sign_in_link.html" => include_str!("../templates/email/sign_in_link.html"),
        "security_notice.subject.txt" => include_str!("../templates/email/security_notice.subject.txt"),
        "security_notice.txt" => include_str!("../templates/email/security_notice.txt"),
        "security_notice.html" => include_str!("../templates/email/security_notice.html"),
        "recovery_link.subject.txt" => include_str!("../templates/email/recovery_link.subject.txt"),
        "recovery_link.txt" => include_str!("../templates/email/recovery_link.txt"),
        "recovery_link.html" => include_str!("../templates/email/recovery_link.html"),
        "recovery_pending.subject.txt" => include_str!("../templates/email/recovery_pending.subject.txt"),
        "recovery_pending.txt" => include_str!("../templates/email/recovery_pending.txt"),
        "recovery_pending.html" => include_str!("../templates/email/recovery_pending.html"),
        "recovery_completed.subject.txt" => include_str!("../templates/email/recovery_completed.subject.txt"),
        "recovery_completed.txt" => include_str!("../templates/email/recovery_completed.txt"),
        "recovery_completed.html" => include_str!("../templates/email/recovery_completed.html"),
        "inactive_account.subject.txt" => include_str!("../templates/email/inactive_account.subject.txt"),
        "inactive_account.txt" => include_str!("../templates/email/inactive_account.txt"),
        "inactive_account.html" => include_str!("../templates/email/inactive_account.html"),
        _ => return None,
    })
}

pub struct EmailTemplates {
    env: Environment<'static>,
    site: String,
}

impl EmailTemplates {
    /// The templates, with the overrides in `dir` (already resolved against the config
    /// file's directory), checked by rendering each message once.
    pub fn load(dir: Option<&Path>, site: &str) -> Result<Self, String> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let dir: Option<PathBuf> = dir.map(Path::to_path_buf);
        if let Some(dir) = &dir
            && !dir.is_dir()
        {
            return Err(format!("mail.templates: {} is not a directory", dir.display()));
        }
        env.set_loader(move |name| {
            if let Some(dir) = &dir
                && !name.contains(['/', '\\'])
            {
                let path = dir.join(name);
                match std::fs::read_to_string(&path) {
                    Ok(source) => return Ok(Some(source)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(minijinja::Error::new(
                            minijinja::ErrorKind::InvalidOperation,
                            format!("cannot read {}: {e}", path.display()),
                        ));
                    }
                }
            }
            Ok(built_in(name).map(str::to_owned))
        });
        let templates = Self { env, site: site.to_owned() };
        for (message, fields) in MESSAGES {
            let sample: Vec<(&str, Value)> =
                fields.iter().map(|f| (*f, Value::from(format!("sample {f} <&>")))).collect();
            templates.render(message, "sample@example.com", Value::from_iter(sample))?;
        }
        Ok(templates)
    }

    /// The email `message` to `to`, with `values` (a map) and `site`.
    pub fn render(&self, message: &str, to: &str, values: Value) -> Result<Email, String> {
        let ctx = context! { site => self.site.as_str(), ..values };
        let part = |suffix: &str| {
            let name = format!("{message}.{suffix}");
            self.env
                .get_template(&name)
                .and_then(|t| t.render(&ctx))
                .map_err(|e| format!("email template {name}: {e:#}"))
        };
        // One line, whatever the template holds: a header never carries a line break.
        let subject = part("subject.txt")?.split_whitespace().collect::<Vec<_>>().join(" ");
        if subject.is_empty() {
            return Err(format!("email template {message}.subject.txt: the subject is empty"));
        }
        Ok(Email { to: to.to_owned(), subject, text: part("txt")?, html: part("html")? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_message_renders_with_its_values_and_escapes_html() {
        let t = EmailTemplates::load(None, "https://id.example.com").unwrap_or_else(|e| panic!("{e}"));
        let email = t
            .render(
                "verify_email",
                "ada@example.com",
                context! { account => "<Ada>", address => "ada@example.com", link => "https://x/?a=1&b=2", minutes => 60 },
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(email.subject, "Confirm your email address");
        assert!(email.text.contains("your account <Ada> at"), "{}", email.text);
        assert!(email.text.contains("https://x/?a=1&b=2"), "text is not escaped");
        assert!(email.html.contains("your account <strong>&lt;Ada&gt;</strong>"), "{}", email.html);
        // minijinja's HTML escaping writes `/` as `&#x2f;` too; mail readers decode it.
        assert!(email.html.contains("https:&#x2f;&#x2f;x&#x2f;?a=1&amp;b=2"), "{}", email.html);
        assert!(email.html.contains("https:&#x2f;&#x2f;id.example.com"), "the layout names the site");
    }

    #[test]
    fn an_override_replaces_a_template_and_a_broken_one_stops_the_load() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("verify_email.subject.txt"), "Bitte bestätigen\n\nSie")
            .unwrap_or_else(|e| panic!("{e}"));
        let t = EmailTemplates::load(Some(dir.path()), "https://id.example.com").unwrap_or_else(|e| panic!("{e}"));
        let values = context! { account => "a", address => "a@example.com", link => "l", minutes => 1 };
        let email = t.render("verify_email", "a@example.com", values).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(email.subject, "Bitte bestätigen Sie", "one line");
        assert!(email.text.contains("your account a at"), "the other parts stay built in");

        std::fs::write(dir.path().join("verify_email.txt"), "Hi {{ acount }}").unwrap_or_else(|e| panic!("{e}"));
        let e = EmailTemplates::load(Some(dir.path()), "https://id.example.com").err().unwrap_or_default();
        assert!(e.contains("verify_email.txt") && e.contains("acount"), "{e}");

        std::fs::write(dir.path().join("verify_email.txt"), "{% if %}").unwrap_or_else(|e| panic!("{e}"));
        let e = EmailTemplates::load(Some(dir.path()), "https://id.example.com").err().unwrap_or_default();
        assert!(e.contains("verify_email.txt"), "{e}");

        let e = EmailTemplates::load(Some(&dir.path().join("missing")), "x").err().unwrap_or_default();
        assert!(e.contains("not a directory"), "{e}");
    }
}
