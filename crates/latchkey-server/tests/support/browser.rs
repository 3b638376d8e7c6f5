//! A browser for tests: keeps cookies, does not follow redirects (each step is checked),
//! and reads the hidden fields of Latchkey's forms.
#![allow(dead_code)]

use std::net::SocketAddr;

use reqwest::StatusCode;
use reqwest::header::LOCATION;

use super::ok;

pub struct Browser {
    pub http: reqwest::Client,
}

/// Reads `name="NAME" value="VALUE"` from a page.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].replace("&#x2f;", "/").replace("&amp;", "&"))
}

impl Browser {
    /// `localhost` resolves to the server's address, as the issuer names localhost.
    pub fn new(addr: SocketAddr) -> Self {
        let http = ok(
            reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .resolve("localhost", addr)
                .no_proxy()
                .build(),
            "browser",
        );
        Self { http }
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        ok(self.http.get(url).send().await, url)
    }

    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        ok(self.http.post(url).form(form).send().await, url)
    }

    /// The Location of a 303 (or any redirect), absolute against `base`.
    pub fn location(response: &reqwest::Response, base: &str) -> String {
        assert!(response.status().is_redirection(), "expected a redirect, got {}", response.status());
        let loc = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        if loc.starts_with('/') { format!("{base}{loc}") } else { loc }
    }

    /// Signs in on the login page at `login_url` and returns where Latchkey sends the browser.
    pub async fn sign_in(&self, login_url: &str, base: &str, username: &str, password: &str) -> reqwest::Response {
        let page = self.get(login_url).await;
        assert_eq!(page.status(), StatusCode::OK, "login page");
        let html = ok(page.text().await, "login html");
        assert!(
            html.contains("autocomplete=\"username webauthn\"") && html.contains("autocomplete=\"current-password\"")
        );
        let csrf = hidden_field(&html, "csrf").unwrap_or_default();
        let req = hidden_field(&html, "req");
        let mut form = vec![("csrf", csrf.as_str()), ("username", username), ("password", password)];
        if let Some(r) = &req {
            form.push(("req", r.as_str()));
        }
        self.post_form(&format!("{base}/login"), &form).await
    }

    /// Answers the consent page at `consent_url` with `decision` (allow or deny).
    pub async fn consent(&self, consent_url: &str, base: &str, decision: &str) -> reqwest::Response {
        let page = self.get(consent_url).await;
        assert_eq!(page.status(), StatusCode::OK, "consent page");
        let html = ok(page.text().await, "consent html");
        let csrf = hidden_field(&html, "csrf").unwrap_or_default();
        let req = hidden_field(&html, "req").unwrap_or_default();
        self.post_form(&format!("{base}/consent"), &[("csrf", &csrf), ("req", &req), ("decision", decision)]).await
    }
}
