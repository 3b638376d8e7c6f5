//! Server-rendered pages (minijinja, autoescaped). No inline script anywhere.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::Environment;
use serde::Serialize;

/// The consent page's template: part of the version of every consent given on it.
pub const CONSENT_PAGE: &str = include_str!("../templates/consent.html");

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub fn load() -> Result<Self, String> {
        let mut env = Environment::new();
        for (name, source) in [
            ("layout.html", include_str!("../templates/layout.html")),
            ("login.html", include_str!("../templates/login.html")),
            ("consent.html", CONSENT_PAGE),
            ("form_post.html", include_str!("../templates/form_post.html")),
            ("message.html", include_str!("../templates/message.html")),
            ("logout_confirm.html", include_str!("../templates/logout_confirm.html")),
            ("signed_out.html", include_str!("../templates/signed_out.html")),
            ("check_session.html", include_str!("../templates/check_session.html")),
            ("account_sessions.html", include_str!("../templates/account_sessions.html")),
            ("account_apps.html", include_str!("../templates/account_apps.html")),
            ("account_delete.html", include_str!("../templates/account_delete.html")),
            ("account_deleted.html", include_str!("../templates/account_deleted.html")),
            ("select_account.html", include_str!("../templates/select_account.html")),
            ("second_factor.html", include_str!("../templates/second_factor.html")),
            ("recovery_login.html", include_str!("../templates/recovery_login.html")),
            ("signup.html", include_str!("../templates/signup.html")),
            ("recovery_codes.html", include_str!("../templates/recovery_codes.html")),
            ("totp_setup.html", include_str!("../templates/totp_setup.html")),
            ("security.html", include_str!("../templates/security.html")),
            ("confirm_link.html", include_str!("../templates/confirm_link.html")),
            ("recover.html", include_str!("../templates/recover.html")),
            ("recover_session.html", include_str!("../templates/recover_session.html")),
        ] {
            env.add_template(name, source).map_err(|e| format!("template {name}: {e}"))?;
        }
        Ok(Self { env })
    }

    pub fn render<S: Serialize>(&self, status: StatusCode, name: &str, ctx: S) -> Response {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(error = %e, template = name, "cannot render page");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_parses_and_none_has_inline_script() {
        let t = super::Templates::load();
        assert!(t.is_ok(), "{:?}", t.err());
        for src in [include_str!("../templates/layout.html"), include_str!("../templates/form_post.html")] {
            assert!(!src.contains("<script>"), "inline script");
        }
    }
}
