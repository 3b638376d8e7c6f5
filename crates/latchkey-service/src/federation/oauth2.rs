//! A plain OAuth 2 provider: the code flow with PKCE, then its UserInfo URL; the account is
//! the configured `subject_field`, the address `email_field`, verified only where
//! `email_verified_field` says so.

use serde_json::Value;

use super::upstream::{
    ClientAuth, FederationError, PendingFlow, Upstream, UpstreamAccount, Upstreams, subject_of, truthy,
};
use crate::outbound::Request;

pub(super) async fn finish(
    upstreams: &Upstreams,
    upstream: &Upstream,
    flow: &PendingFlow,
    code: &str,
    redirect_uri: &str,
) -> Result<UpstreamAccount, FederationError> {
    let config = &upstream.config;
    let url = |u: &Option<url::Url>| u.as_ref().map(|u| u.to_string()).unwrap_or_default();
    let answer =
        upstreams.redeem(upstream, &url(&config.token_url), (flow, code, redirect_uri), ClientAuth::Basic).await?;
    let token = answer.get("access_token").and_then(Value::as_str).unwrap_or_default();
    let request = Request::get(url(&config.userinfo_url))
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "application/json");
    let Value::Object(claims) = upstreams.get_json(request).await? else {
        return Err(FederationError::InvalidResponse("the UserInfo answer is not a JSON object".into()));
    };
    let subject = subject_of(claims.get(config.subject_field.as_deref().unwrap_or("sub")))?;
    let email = claims.get(&config.email_field).and_then(Value::as_str).map(str::to_owned);
    let verified = config.email_verified_field.as_ref().is_some_and(|f| truthy(claims.get(f)));
    Ok(UpstreamAccount {
        provider: upstream.id.clone(),
        subject,
        email_verified: email.is_some() && verified,
        email,
        hosted_domain: None,
        username_hint: claims.get("preferred_username").and_then(Value::as_str).map(str::to_owned),
        claims,
        authenticated_at: None,
    })
}
