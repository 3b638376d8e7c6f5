//! A browser with a software authenticator: the steps of Latchkey's passkey pages as the
//! page script does them (fetch options, ask the authenticator, post the answer).
#![allow(dead_code)]

use reqwest::StatusCode;

use super::authenticator::SoftAuthenticator;
use super::browser::{Browser, hidden_field};
use super::{TestServer, ok};

pub struct PasskeyBrowser {
    pub browser: Browser,
    pub issuer: String,
}

/// The codes on the recovery-codes page.
pub fn recovery_codes(html: &str) -> Vec<String> {
    html.split("<li><code>").skip(1).filter_map(|s| s.split("</code>").next()).map(str::to_owned).collect()
}

impl PasskeyBrowser {
    pub fn new(server: &TestServer) -> Self {
        Self { browser: Browser::new(server.server.addr), issuer: server.server.issuer.clone() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The page at `path`, and its CSRF token.
    pub async fn page(&self, path: &str) -> (StatusCode, String, String) {
        let response = self.browser.get(&self.url(path)).await;
        let status = response.status();
        let html = ok(response.text().await, "page");
        let csrf = hidden_field(&html, "csrf").unwrap_or_default();
        (status, html, csrf)
    }

    /// POSTs a form to an options endpoint; returns the status and JSON.
    pub async fn options(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, serde_json::Value) {
        let response = self.browser.post_form(&self.url(path), form).await;
        (response.status(), response.json().await.unwrap_or_default())
    }

    /// Signs up through /signup; returns the final response's status and page.
    pub async fn sign_up(&self, auth: &mut SoftAuthenticator, username: &str, email: &str) -> (StatusCode, String) {
        let (_, _, csrf) = self.page("/signup").await;
        let form = [("csrf", csrf.as_str()), ("name", "Ada Lovelace"), ("username", username), ("email", email)];
        let (status, options) = self.options("/signup/options", &form).await;
        assert_eq!(status, StatusCode::OK, "sign-up options: {options}");
        let credential = ok(auth.register(&options, &self.issuer), "register");
        let response = self
            .browser
            .post_form(&self.url("/signup"), &[("csrf", &csrf), ("credential", &credential.to_string())])
            .await;
        (response.status(), ok(response.text().await, "sign-up page"))
    }

    /// Signs in with a passkey from the login page at `login_path`; `username` for the
    /// username-first way. Returns the answer to the final POST.
    pub async fn sign_in(
        &self,
        auth: &mut SoftAuthenticator,
        login_path: &str,
        username: Option<&str>,
    ) -> reqwest::Response {
        let (status, html, csrf) = self.page(login_path).await;
        assert_eq!(status, StatusCode::OK, "login page");
        let mut form = vec![("csrf", csrf.clone())];
        if let Some(u) = username {
            form.push(("username", u.to_owned()));
        }
        if html.contains("name=\"second_factor\"") {
            form.push(("second_factor", "1".into()));
        }
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, options) = self.options("/login/passkey/options", &pairs).await;
        assert_eq!(status, StatusCode::OK, "sign-in options: {options}");
        let credential = ok(auth.authenticate(&options, &self.issuer), "authenticate");
        let mut finish = vec![("csrf", csrf), ("credential", credential.to_string())];
        if let Some(req) = hidden_field(&html, "req") {
            finish.push(("req", req));
        }
        if html.contains("name=\"second_factor\"") {
            finish.push(("second_factor", "1".into()));
        }
        let pairs: Vec<(&str, &str)> = finish.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.browser.post_form(&self.url("/login/passkey"), &pairs).await
    }

    /// Adds a passkey on the security page; returns the answer to the final POST.
    pub async fn add_passkey(&self, auth: &mut SoftAuthenticator, name: &str) -> Result<reqwest::Response, String> {
        let (_, _, csrf) = self.page("/account/security").await;
        let (status, options) = self.options("/account/passkeys/options", &[("csrf", &csrf)]).await;
        if status != StatusCode::OK {
            return Err(format!("options: {status} {options}"));
        }
        let credential = auth.register(&options, &self.issuer)?;
        let form = [("csrf", csrf.as_str()), ("credential", &credential.to_string()), ("name", name)];
        Ok(self.browser.post_form(&self.url("/account/passkeys"), &form).await)
    }

    /// POSTs a form of the security page (its CSRF token added).
    pub async fn security_post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let (_, _, csrf) = self.page("/account/security").await;
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        self.browser.post_form(&self.url(path), &form).await
    }

    pub fn location(&self, response: &reqwest::Response) -> String {
        Browser::location(response, &self.issuer)
    }
}
