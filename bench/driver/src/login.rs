//! Password sign-in as a new browser each time: GET the login page (CSRF cookie and token),
//! POST the form with the credentials, and expect the 303 that sets a session cookie.

use reqwest::StatusCode;

use crate::browser::{self, Browser};
use crate::oauth::Setup;
use crate::pace::Worker;

const SESSION_COOKIE: &str = "latchkey-session";

pub struct SignIn {
    setup: Setup,
    browser: Browser,
}

impl SignIn {
    pub fn new(setup: &Setup) -> Result<Self, String> {
        Ok(Self { setup: setup.clone(), browser: Browser::new()? })
    }
}

impl Worker for SignIn {
    async fn run(&mut self) -> Result<(), String> {
        self.browser.clear_cookies();
        let page = self.browser.get(self.setup.endpoint("/login")?).await?;
        if page.status != StatusCode::OK {
            return Err(format!("GET /login answered {}", page.status));
        }
        let form = browser::post_form(&page.body).ok_or("the login page has no form")?;
        if !form.wants_password() {
            return Err("the login form asks for no password".into());
        }
        let action = page.url.join(&form.action).map_err(|e| format!("bad form action: {e}"))?;
        let credentials = [
            ("username", self.setup.username.as_str()),
            ("password", self.setup.password.as_str()),
            ("current-password", self.setup.password.as_str()),
        ];
        let done = self.browser.post_form(action, &form.submission(&credentials, None)).await?;
        if done.status != StatusCode::SEE_OTHER || !self.browser.has_cookie(SESSION_COOKIE) {
            return Err(format!("POST /login answered {} without a session", done.status));
        }
        Ok(())
    }
}
