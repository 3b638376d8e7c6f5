//! GitHub and GitHub Enterprise: OAuth 2 with the REST API. The token endpoint answers JSON
//! only when asked with `Accept: application/json`, and reports errors as HTTP 200 with an
//! `error` field; the API refuses requests without `User-Agent` (the outbound guard sends
//! `Latchkey/VERSION`); `/user/emails` needs the `user:email` scope and only a verified,
//! primary address counts. The account is its numeric `id`: a `login` can be renamed and
//! then registered by someone else.

use latchkey_config::ProviderConfig;
use serde_json::{Map, Value};

use super::upstream::{ClientAuth, FederationError, PendingFlow, Upstream, UpstreamAccount, Upstreams, subject_of};
use crate::outbound::Request;

const WEB: &str = "https://github.com";
const API: &str = "https://api.github.com";

fn web(config: &ProviderConfig) -> String {
    config.base_url.as_ref().map_or(WEB.to_owned(), |u| u.as_str().trim_end_matches('/').to_owned())
}

/// The API base: configured, or `{base_url}/api/v3` for GitHub Enterprise (never
/// api.github.com for an Enterprise server: its tokens must not go to GitHub.com).
fn api(config: &ProviderConfig) -> String {
    match (&config.api_url, &config.base_url) {
        (Some(api), _) => api.as_str().trim_end_matches('/').to_owned(),
        (None, Some(base)) if base.host_str() == Some("github.com") => API.to_owned(),
        (None, Some(base)) => format!("{}/api/v3", base.as_str().trim_end_matches('/')),
        (None, None) => API.to_owned(),
    }
}

pub(super) fn authorize_url(config: &ProviderConfig) -> String {
    format!("{}/login/oauth/authorize", web(config))
}

fn api_request(url: String, token: &str) -> Request {
    Request::get(url)
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
}

pub(super) async fn finish(
    upstreams: &Upstreams,
    upstream: &Upstream,
    flow: &PendingFlow,
    code: &str,
    redirect_uri: &str,
) -> Result<UpstreamAccount, FederationError> {
    let token_url = format!("{}/login/oauth/access_token", web(&upstream.config));
    let answer = upstreams.redeem(upstream, &token_url, (flow, code, redirect_uri), ClientAuth::Post).await?;
    let token = answer.get("access_token").and_then(Value::as_str).unwrap_or_default();
    let base = api(&upstream.config);
    let Value::Object(user) = upstreams.get_json(api_request(format!("{base}/user"), token)).await? else {
        return Err(FederationError::InvalidResponse("GitHub's /user answer is not an object".into()));
    };
    let subject = subject_of(user.get("id").filter(|v| v.is_u64()))?;
    let emails = upstreams.get_json(api_request(format!("{base}/user/emails"), token)).await?;
    let primary = emails.as_array().into_iter().flatten().find(|e| {
        e.get("primary").and_then(Value::as_bool) == Some(true)
            && e.get("verified").and_then(Value::as_bool) == Some(true)
    });
    let email = primary.and_then(|e| e.get("email")).and_then(Value::as_str).map(str::to_owned);
    let mut claims = Map::new();
    for (from, to) in [
        ("name", "name"),
        ("login", "preferred_username"),
        ("avatar_url", "picture"),
        ("html_url", "profile"),
        ("blog", "website"),
    ] {
        if let Some(v) = user.get(from).filter(|v| v.as_str().is_some_and(|s| !s.is_empty())) {
            claims.insert(to.to_owned(), v.clone());
        }
    }
    // The raw fields too, for a claim mapping that names GitHub's own.
    for (k, v) in &user {
        claims.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Ok(UpstreamAccount {
        provider: upstream.id.clone(),
        subject,
        email_verified: email.is_some(),
        email,
        hosted_domain: None,
        username_hint: user.get("login").and_then(Value::as_str).map(str::to_owned),
        claims,
        authenticated_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base: Option<&str>, api: Option<&str>) -> ProviderConfig {
        let mut raw = serde_json::json!({"kind": "github", "name": "G", "client_id": "c", "client_secret": "s"});
        if let Some(b) = base {
            raw["base_url"] = b.into();
        }
        if let Some(a) = api {
            raw["api_url"] = a.into();
        }
        serde_json::from_value(raw).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn enterprise_tokens_go_to_the_enterprise_api_and_github_com_to_api_github_com() {
        assert_eq!(api(&config(None, None)), "https://api.github.com");
        assert_eq!(api(&config(Some("https://github.com"), None)), "https://api.github.com");
        assert_eq!(api(&config(Some("https://git.corp.example/"), None)), "https://git.corp.example/api/v3");
        let both = config(Some("https://git.corp.example"), Some("https://api.git.corp.example"));
        assert_eq!(api(&both), "https://api.git.corp.example");
        let enterprise = config(Some("https://git.corp.example"), None);
        assert_eq!(authorize_url(&enterprise), "https://git.corp.example/login/oauth/authorize");
    }
}
