//! The authorization-code flow with a live session: each worker is one browser that signed
//! in once through the login page; every operation is authorize → code → token with PKCE,
//! which must ride on that session (meeting the login page again is an error) and must
//! return an access token and an ID token.

use crate::browser::Browser;
use crate::oauth::{self, Setup};
use crate::pace::Worker;

pub const SCOPE: &str = "openid";

pub struct SessionFlow {
    setup: Setup,
    browser: Browser,
}

impl SessionFlow {
    /// A new browser, signed in.
    pub async fn sign_in(setup: Setup) -> Result<Self, String> {
        let mut browser = Browser::new()?;
        oauth::sign_in_and_get_tokens(&setup, &mut browser, SCOPE).await?;
        Ok(Self { setup, browser })
    }
}

impl Worker for SessionFlow {
    async fn run(&mut self) -> Result<(), String> {
        let attempt = oauth::authorization_request(&self.setup, SCOPE)?;
        let cb = match oauth::browse(&self.setup, &mut self.browser, &attempt, false).await {
            Ok(cb) => cb,
            Err(e) => {
                // Sign in again so one lost session does not fail every later flow.
                self.browser.clear_cookies();
                let _ = oauth::sign_in_and_get_tokens(&self.setup, &mut self.browser, SCOPE).await;
                return Err(e);
            }
        };
        oauth::exchange_code(
            &self.setup,
            &self.browser.http,
            &cb.code,
            &attempt.verifier,
            &["access_token", "id_token"],
        )
        .await
        .map(drop)
    }
}
