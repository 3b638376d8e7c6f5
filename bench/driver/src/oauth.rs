//! The authorization-code flow as a browser and a client application run it: authorize →
//! (login page → consent page) → code → token with PKCE, every step checked.

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use latchkey_core::crypto::random;
use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use crate::browser::{self, Browser};

/// What the driver knows about the server, its client and its user.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The issuer, e.g. `http://127.0.0.1:8080`; endpoints are found under it.
    pub base: Url,
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    pub username: String,
    pub password: String,
}

impl Setup {
    pub fn endpoint(&self, path: &str) -> Result<Url, String> {
        let base = self.base.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}{path}")).map_err(|e| format!("bad endpoint {path}: {e}"))
    }

    fn basic_auth(&self) -> String {
        format!("Basic {}", STANDARD.encode(format!("{}:{}", self.client_id, self.client_secret)))
    }
}

/// A PKCE pair: (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    let verifier = random::token_string::<32>();
    let challenge = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
    (verifier, challenge)
}

/// One authorization request in flight: what the client keeps until the callback.
pub struct Attempt {
    pub url: Url,
    pub state: String,
    pub verifier: String,
}

pub fn authorization_request(setup: &Setup, scope: &str) -> Result<Attempt, String> {
    let (verifier, challenge) = pkce();
    let state = random::token_string::<16>();
    let mut url = setup.endpoint("/authorize")?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &setup.client_id)
        .append_pair("redirect_uri", &setup.redirect_uri)
        .append_pair("scope", scope)
        .append_pair("state", &state)
        .append_pair("nonce", &random::token_string::<16>())
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    Ok(Attempt { url, state, verifier })
}

/// The authorization response that reached the client.
pub struct Callback {
    pub code: String,
}

/// Follows the browser from the authorization request to the client's redirect URI, signing
/// in and consenting when a page asks for it (unless `may_sign_in` is false: a flow that is
/// meant to ride on a live session must not meet the login page).
pub async fn browse(
    setup: &Setup,
    browser: &mut Browser,
    attempt: &Attempt,
    may_sign_in: bool,
) -> Result<Callback, String> {
    let mut page = browser.get(attempt.url.clone()).await?;
    for _ in 0..12 {
        if let Some(next) = page.location.clone() {
            if !page.status.is_redirection() {
                return Err(format!("{} {} with a Location header", page.url.path(), page.status));
            }
            if next.as_str().starts_with(&setup.redirect_uri) {
                return callback(&next, attempt);
            }
            page = browser.get(next).await?;
            continue;
        }
        if page.status != StatusCode::OK {
            return Err(format!("{} answered {}: {}", page.url.path(), page.status, excerpt(&page.body)));
        }
        let form = browser::post_form(&page.body)
            .ok_or_else(|| format!("{} has no form to submit: {}", page.url.path(), excerpt(&page.body)))?;
        let action = page.url.join(&form.action).map_err(|e| format!("bad form action {}: {e}", form.action))?;
        let fields = if form.wants_password() {
            if !may_sign_in {
                return Err("the live session was not recognised: the login page came back".into());
            }
            let credentials = [
                ("username", setup.username.as_str()),
                ("password", setup.password.as_str()),
                ("current-password", setup.password.as_str()),
            ];
            form.submission(&credentials, None)
        } else {
            form.submission(&[], Some("allow"))
        };
        page = browser.post_form(action, &fields).await?;
        if form.wants_password() && page.status != StatusCode::SEE_OTHER {
            return Err(format!("sign-in answered {}: {}", page.status, excerpt(&page.body)));
        }
    }
    Err("too many steps on the way to the redirect URI".into())
}

fn callback(url: &Url, attempt: &Attempt) -> Result<Callback, String> {
    let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    if let Some(error) = param("error") {
        return Err(format!("authorization error {error}: {}", param("error_description").unwrap_or_default()));
    }
    if param("state").as_deref() != Some(attempt.state.as_str()) {
        return Err("the callback's state does not match".into());
    }
    let code = param("code").ok_or("the callback has no code")?;
    Ok(Callback { code })
}

fn excerpt(body: &str) -> String {
    body.chars().take(200).collect::<String>().replace('\n', " ")
}

/// POSTs to the token endpoint as the confidential client; the response must be a 200 JSON
/// object with each of `expect` present and a string.
pub async fn token_request(
    setup: &Setup,
    http: &reqwest::Client,
    form: &[(&str, &str)],
    expect: &[&str],
) -> Result<Value, String> {
    let response = http
        .post(setup.endpoint("/token")?)
        .header("authorization", setup.basic_auth())
        .form(form)
        .send()
        .await
        .map_err(|e| format!("POST /token: {e}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| format!("POST /token: {e}"))?;
    if status != StatusCode::OK {
        return Err(format!("POST /token answered {status}: {}", String::from_utf8_lossy(&body)));
    }
    let json: Value = serde_json::from_slice(&body).map_err(|e| format!("POST /token: not JSON: {e}"))?;
    for field in expect {
        if !json.get(field).is_some_and(Value::is_string) {
            return Err(format!("POST /token: the response has no {field}"));
        }
    }
    Ok(json)
}

pub async fn exchange_code(
    setup: &Setup,
    http: &reqwest::Client,
    code: &str,
    verifier: &str,
    expect: &[&str],
) -> Result<Value, String> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", setup.redirect_uri.as_str()),
        ("code_verifier", verifier),
    ];
    token_request(setup, http, &form, expect).await
}

/// Signs this browser in (through the login page) and completes one flow; returns the tokens.
pub async fn sign_in_and_get_tokens(setup: &Setup, browser: &mut Browser, scope: &str) -> Result<Value, String> {
    let attempt = authorization_request(setup, scope)?;
    let cb = browse(setup, browser, &attempt, true).await?;
    let mut expect = vec!["access_token"];
    if scope.split(' ').any(|s| s == "openid") {
        expect.push("id_token");
    }
    if scope.split(' ').any(|s| s == "offline_access") {
        expect.push("refresh_token");
    }
    exchange_code(setup, &browser.http, &cb.code, &attempt.verifier, &expect).await
}

pub fn string_field(json: &Value, name: &str) -> Result<String, String> {
    json.get(name).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| format!("no {name} in the response"))
}

/// `count` client-credentials access tokens from `base`'s token endpoint, eight requests at
/// a time; `basic` is the base64 of `client_id:client_secret`.
pub async fn mint_client_credentials(base: &Url, basic: &str, count: usize) -> Result<Value, String> {
    const AT_ONCE: usize = 8;
    let url = Url::parse(&format!("{}/token", base.as_str().trim_end_matches('/'))).map_err(|e| e.to_string())?;
    let http = reqwest::Client::builder().no_proxy().build().map_err(|e| format!("HTTP client: {e}"))?;
    let mut tasks = tokio::task::JoinSet::new();
    for part in 0..AT_ONCE {
        let (http, url, authorization) = (http.clone(), url.clone(), format!("Basic {basic}"));
        let n = count / AT_ONCE + usize::from(part < count % AT_ONCE);
        tasks.spawn(async move {
            let mut tokens = Vec::with_capacity(n);
            for _ in 0..n {
                let response = http
                    .post(url.clone())
                    .header("authorization", &authorization)
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                    .map_err(|e| format!("POST /token: {e}"))?;
                let status = response.status();
                let json: Value = response.json().await.map_err(|e| format!("POST /token: {e}"))?;
                if status != StatusCode::OK {
                    return Err(format!("POST /token answered {status}: {json}"));
                }
                tokens.push(Value::String(string_field(&json, "access_token")?));
            }
            Ok::<_, String>(tokens)
        });
    }
    let mut all = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined.map_err(|e| format!("minting: {e}"))??);
    }
    Ok(Value::Array(all))
}
