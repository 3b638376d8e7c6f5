//! Refresh-token rotation: each worker holds one chain of single-use refresh tokens and
//! redeems the newest for the next, which must come back rotated.

use crate::browser::Browser;
use crate::oauth::{self, Setup};
use crate::pace::Worker;

pub const SCOPE: &str = "openid offline_access";

pub struct Chain {
    setup: Setup,
    browser: Browser,
    token: String,
}

impl Chain {
    /// Signs a browser in (consenting to offline access) and starts a chain.
    pub async fn start(setup: Setup) -> Result<Self, String> {
        let mut browser = Browser::new()?;
        let token = Self::fresh_token(&setup, &mut browser).await?;
        Ok(Self { setup, browser, token })
    }

    async fn fresh_token(setup: &Setup, browser: &mut Browser) -> Result<String, String> {
        let tokens = oauth::sign_in_and_get_tokens(setup, browser, SCOPE).await?;
        oauth::string_field(&tokens, "refresh_token")
    }
}

impl Worker for Chain {
    async fn run(&mut self) -> Result<(), String> {
        let form = [("grant_type", "refresh_token"), ("refresh_token", self.token.as_str())];
        match oauth::token_request(&self.setup, &self.browser.http, &form, &["access_token", "refresh_token"]).await {
            Ok(json) => {
                let next = oauth::string_field(&json, "refresh_token")?;
                if next == self.token {
                    return Err("the refresh token was not rotated".into());
                }
                self.token = next;
                Ok(())
            }
            Err(e) => {
                // A broken chain is an error; start a new one so the run goes on.
                if let Ok(t) = Self::fresh_token(&self.setup, &mut self.browser).await {
                    self.token = t;
                }
                Err(e)
            }
        }
    }
}
