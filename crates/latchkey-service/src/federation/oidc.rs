//! OpenID Connect providers (`oidc`, `google`): discovery, the provider's keys, and the ID
//! token checked as OpenID Connect Core §3.1.3.7 says — signature against the provider's
//! JWKS (fetched again when an unknown key id appears, so rotation works), `iss` exactly,
//! `aud`, `azp`, `exp`, `iat`, `nonce` — with jsonwebtoken on aws-lc-rs (the crate Latchkey
//! signs and checks its own tokens with) instead of a second JOSE stack.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use latchkey_config::{GOOGLE_ISSUER, ProviderKind};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::upstream::{
    Callback, ClientAuth, FederationError, PendingFlow, Upstream, UpstreamAccount, Upstreams, subject_of, truthy,
};
use crate::outbound::Request;

/// Discovery documents and key sets are kept this long.
const KEEP_FOR: Duration = Duration::from_secs(3_600);
/// How far the provider's clock may be from ours.
const LEEWAY: u64 = 60;
/// An ID token older than this (by `iat`) is refused: it was not made for this sign-in.
const MAX_AGE: i64 = 600;

/// What discovery says (OpenID Connect Discovery §3), the parts Latchkey uses.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Option<Vec<String>>,
    /// The claims the provider says it issues (to know whether `auth_time` can be asked for).
    #[serde(default)]
    pub claims_supported: Option<Vec<String>>,
    /// RFC 9207: the provider puts `iss` in its authorization answers.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

#[derive(Default)]
pub(super) struct OidcState {
    metadata: RwLock<Option<(Instant, Metadata)>>,
    keys: RwLock<Option<(Instant, JwkSet)>>,
}

fn discovery_url(upstream: &Upstream) -> String {
    match (&upstream.config.discovery_url, upstream.config.oidc_issuer()) {
        (Some(url), _) => url.to_string(),
        (None, Some(issuer)) => format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/')),
        (None, None) => String::new(),
    }
}

/// The discovery document, if one was fetched.
pub(super) fn cached_metadata(upstream: &Upstream) -> Option<Metadata> {
    let state = upstream.oidc.as_ref()?;
    state.metadata.read().ok()?.as_ref().map(|(_, m)| m.clone())
}

/// The provider's discovery document, fetched when first needed and kept for an hour.
pub(super) async fn metadata(upstreams: &Upstreams, upstream: &Upstream) -> Result<Metadata, FederationError> {
    let state = upstream.oidc.as_ref().ok_or(FederationError::UnknownProvider)?;
    if let Ok(kept) = state.metadata.read()
        && let Some((at, m)) = kept.as_ref()
        && at.elapsed() < KEEP_FOR
    {
        return Ok(m.clone());
    }
    let doc = upstreams.get_json(Request::get(discovery_url(upstream))).await?;
    let m: Metadata = serde_json::from_value(doc)
        .map_err(|e| FederationError::InvalidResponse(format!("the discovery document: {e}")))?;
    // Discovery §4.3: the issuer in the document is exactly the one configured (a templated
    // Entra ID issuer is checked per token instead).
    let configured = upstream.config.oidc_issuer().unwrap_or_default();
    if !configured.contains("{tenantid}") && m.issuer != configured {
        return Err(FederationError::InvalidResponse(format!(
            "the discovery document names the issuer {:?}, not {configured:?}",
            m.issuer.chars().take(200).collect::<String>()
        )));
    }
    if let Ok(mut kept) = state.metadata.write() {
        *kept = Some((Instant::now(), m.clone()));
    }
    Ok(m)
}

/// The provider's key set; `refresh` fetches it again (an ID token names a key id the kept
/// set does not have: the provider rotated). Every ID token comes from a code redeemed at the
/// provider's own token endpoint, so nobody can make Latchkey fetch at will.
async fn keys(
    upstreams: &Upstreams,
    upstream: &Upstream,
    m: &Metadata,
    refresh: bool,
) -> Result<JwkSet, FederationError> {
    let state = upstream.oidc.as_ref().ok_or(FederationError::UnknownProvider)?;
    if let Ok(kept) = state.keys.read()
        && let Some((at, set)) = kept.as_ref()
        && at.elapsed() < KEEP_FOR
        && !refresh
    {
        return Ok(set.clone());
    }
    let doc = upstreams.get_json(Request::get(&m.jwks_uri)).await?;
    let set: JwkSet = serde_json::from_value(doc)
        .map_err(|_| FederationError::InvalidResponse("the key set is not a JWK set".into()))?;
    if let Ok(mut kept) = state.keys.write() {
        *kept = Some((Instant::now(), set.clone()));
    }
    Ok(set)
}

/// Asymmetric algorithms only: `none` and the HMAC ones (keyed with the client secret) are
/// never accepted.
const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

fn alg_name(alg: Algorithm) -> String {
    format!("{alg:?}")
}

/// The issuers an ID token of `upstream` may carry: the configured one; Google's with and
/// without `https://`; an Entra ID template filled with the token's own `tid`, which must be
/// allowed.
fn accepted_issuers(upstream: &Upstream, claims: &Map<String, Value>) -> Result<Vec<String>, FederationError> {
    let configured = upstream.config.oidc_issuer().unwrap_or_default().to_owned();
    if configured.contains("{tenantid}") {
        let tid = claims.get("tid").and_then(Value::as_str).unwrap_or_default();
        if !upstream.config.allowed_tenants.iter().any(|t| t == tid) {
            return Err(FederationError::NotAllowed("accounts of this organisation (tenant) are not let in".into()));
        }
        return Ok(vec![configured.replace("{tenantid}", tid)]);
    }
    if configured == GOOGLE_ISSUER {
        return Ok(vec![GOOGLE_ISSUER.to_owned(), "accounts.google.com".to_owned()]);
    }
    Ok(vec![configured])
}

/// Whether the provider is Google (by kind or by issuer), which takes `max_age` but not
/// `prompt=login`.
pub(super) fn is_google(upstream: &Upstream) -> bool {
    upstream.config.kind == ProviderKind::Google
        || upstream.config.oidc_issuer().is_some_and(|i| i.trim_end_matches('/') == GOOGLE_ISSUER)
}

/// Checks `id_token` for `flow` and returns its claims.
pub(super) async fn verify_id_token(
    upstreams: &Upstreams,
    upstream: &Upstream,
    m: &Metadata,
    id_token: &str,
    flow: &PendingFlow,
    now: i64,
) -> Result<Map<String, Value>, FederationError> {
    let bad = |why: &str| FederationError::InvalidIdToken(why.to_owned());
    let header = jsonwebtoken::decode_header(id_token).map_err(|_| bad("not a signed JWT"))?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(bad("it is not signed with an asymmetric algorithm Latchkey accepts"));
    }
    if let Some(allowed) = &m.id_token_signing_alg_values_supported
        && !allowed.iter().any(|a| *a == alg_name(header.alg))
    {
        return Err(bad("it is signed with an algorithm the provider does not publish"));
    }
    // The claims are read unverified only to choose the issuer template (Entra ID's `tid`);
    // nothing is believed before the signature is checked below.
    let unverified = unverified_claims(id_token).ok_or_else(|| bad("its claims are not JSON"))?;
    let issuers = accepted_issuers(upstream, &unverified)?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&issuers);
    validation.set_audience(&[&upstream.config.client_id]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    validation.leeway = LEEWAY;
    let mut last = bad("no key of the provider matches its key id");
    for refresh in [false, true] {
        let set = keys(upstreams, upstream, m, refresh).await?;
        let candidates = set.keys.iter().filter(|k| header.kid.is_none() || k.common.key_id == header.kid);
        for jwk in candidates {
            let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
            match jsonwebtoken::decode::<Map<String, Value>>(id_token, &key, &validation) {
                Ok(data) => return check_claims(data.claims, upstream, flow, now),
                Err(e) => last = id_token_error(&e),
            }
        }
        if !matches!(last, FederationError::InvalidIdToken(ref w) if w.starts_with("no key")) {
            break;
        }
    }
    Err(last)
}

fn unverified_claims(jwt: &str) -> Option<Map<String, Value>> {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn id_token_error(e: &jsonwebtoken::errors::Error) -> FederationError {
    use jsonwebtoken::errors::ErrorKind;
    let why = match e.kind() {
        ErrorKind::InvalidSignature => "its signature does not verify",
        ErrorKind::ExpiredSignature => "it has expired",
        ErrorKind::InvalidIssuer => "it is from another issuer",
        ErrorKind::InvalidAudience => "it was issued to another client",
        ErrorKind::MissingRequiredClaim(_) => "a required claim (exp, iat, iss, aud, sub) is missing",
        ErrorKind::ImmatureSignature => "it is not valid yet",
        _ => "it cannot be read",
    };
    FederationError::InvalidIdToken(why.to_owned())
}

/// The checks after the signature, `iss`, `aud` and `exp`: `azp`, `nonce`, `iat`, `hd`.
fn check_claims(
    claims: Map<String, Value>,
    upstream: &Upstream,
    flow: &PendingFlow,
    now: i64,
) -> Result<Map<String, Value>, FederationError> {
    let bad = |why: &str| Err(FederationError::InvalidIdToken(why.to_owned()));
    let client_id = upstream.config.client_id.as_str();
    let several_audiences = matches!(claims.get("aud"), Some(Value::Array(a)) if a.len() > 1);
    match claims.get("azp").and_then(Value::as_str) {
        Some(azp) if azp != client_id => return bad("it was issued to another party (azp)"),
        None if several_audiences => return bad("it has several audiences and no azp"),
        _ => {}
    }
    let nonce = claims.get("nonce").and_then(Value::as_str).unwrap_or_default();
    if !bool::from(subtle::ConstantTimeEq::ct_eq(nonce.as_bytes(), flow.nonce.as_bytes())) {
        return bad("its nonce is not the one this sign-in sent");
    }
    let iat = claims.get("iat").and_then(Value::as_i64).unwrap_or(0);
    if iat > now + LEEWAY as i64 || iat < now - MAX_AGE {
        return bad("it was issued at a time that does not fit this sign-in (iat)");
    }
    // OIDC Core §3.1.2.1: asked with `max_age`, the provider must say when the person
    // signed in; a sign-in from before this flow is an old session, not a new sign-in.
    if let Some(since) = flow.fresh {
        let auth_time = claims.get("auth_time").and_then(Value::as_i64);
        if auth_time.is_none_or(|t| t < since - LEEWAY as i64) {
            return bad("the provider did not sign you in again (auth_time), which this sign-in needs");
        }
    }
    if !upstream.config.hosted_domains.is_empty() {
        let hd = claims.get("hd").and_then(Value::as_str).unwrap_or_default();
        if !upstream.config.hosted_domains.iter().any(|d| d.eq_ignore_ascii_case(hd)) {
            return Err(FederationError::NotAllowed(
                "this account is not in an organisation (hosted domain) that is let in".into(),
            ));
        }
    }
    Ok(claims)
}

/// Whether an authorization answer's `iss` names this provider: its discovered issuer, or
/// (Entra ID's template) the issuer of an allowed tenant.
fn issuer_is_ours(upstream: &Upstream, m: &Metadata, iss: &str) -> bool {
    let template = upstream.config.oidc_issuer().unwrap_or_default();
    iss == m.issuer
        || (template.contains("{tenantid}")
            && upstream.config.allowed_tenants.iter().any(|t| template.replace("{tenantid}", t) == iss))
}

/// The rest of the flow for an OIDC provider, after `state` and the provider were matched.
pub(super) async fn finish(
    upstreams: &Upstreams,
    upstream: &Upstream,
    flow: &PendingFlow,
    callback: &Callback,
    code: &str,
    redirect_uri: &str,
    now: i64,
) -> Result<UpstreamAccount, FederationError> {
    let m = metadata(upstreams, upstream).await?;
    // RFC 9207 §2.4: where the provider says it sends `iss`, it must be there and be its own.
    match callback.iss.as_deref() {
        Some(iss) if !issuer_is_ours(upstream, &m, iss) => return Err(FederationError::WrongProvider),
        None if m.authorization_response_iss_parameter_supported => {
            return Err(FederationError::InvalidResponse("the answer has no iss, which the provider promises".into()));
        }
        _ => {}
    }
    let auth = match &m.token_endpoint_auth_methods_supported {
        Some(methods)
            if !methods.iter().any(|x| x == "client_secret_basic")
                && methods.iter().any(|x| x == "client_secret_post") =>
        {
            ClientAuth::Post
        }
        _ => ClientAuth::Basic,
    };
    let answer = upstreams.redeem(upstream, &m.token_endpoint, (flow, code, redirect_uri), auth).await?;
    let id_token = answer
        .get("id_token")
        .and_then(Value::as_str)
        .ok_or_else(|| FederationError::InvalidResponse("the token answer has no id_token".into()))?;
    let mut claims = verify_id_token(upstreams, upstream, &m, id_token, flow, now).await?;
    if upstream.config.userinfo {
        let endpoint = m
            .userinfo_endpoint
            .as_deref()
            .ok_or_else(|| FederationError::InvalidResponse("the provider has no userinfo_endpoint".into()))?;
        let access_token = answer.get("access_token").and_then(Value::as_str).unwrap_or_default();
        let info = upstreams
            .get_json(Request::get(endpoint).header("authorization", format!("Bearer {access_token}")))
            .await?;
        let Value::Object(info) = info else {
            return Err(FederationError::InvalidResponse("the UserInfo answer is not a JSON object".into()));
        };
        // OIDC Core §5.3.2: a UserInfo answer about someone else is thrown away.
        if info.get("sub") != claims.get("sub") {
            return Err(FederationError::InvalidResponse("the UserInfo answer is about another account".into()));
        }
        // An address and whether it is verified come as a pair from one source: the ID
        // token's when it has one, else UserInfo's.
        let address_from_token = claims.contains_key("email");
        for (k, v) in info {
            // What the signed ID token says wins, and what names the account, its
            // organisation or when it signed in comes from it alone.
            let identity = matches!(k.as_str(), "iss" | "aud" | "azp" | "tid" | "oid" | "hd" | "nonce" | "auth_time");
            let address = matches!(k.as_str(), "email" | "email_verified");
            let kept_from_token = identity || (address && address_from_token);
            if !kept_from_token {
                claims.entry(k).or_insert(v);
            }
        }
    }
    account_from_claims(upstream, claims)
}

/// The account an ID token names: `sub` (for Entra ID, `tid` and `oid`: the same person has
/// a different `sub` in every app, and `oid` alone is unique only within a tenant).
fn account_from_claims(upstream: &Upstream, claims: Map<String, Value>) -> Result<UpstreamAccount, FederationError> {
    let entra = !upstream.config.allowed_tenants.is_empty()
        || upstream.config.oidc_issuer().is_some_and(|i| i.starts_with("https://login.microsoftonline.com/"));
    let subject = match (entra, claims.get("tid").and_then(Value::as_str), claims.get("oid").and_then(Value::as_str)) {
        (true, Some(tid), Some(oid)) => subject_of(Some(&Value::String(format!("{tid}:{oid}"))))?,
        (true, _, _) => return Err(FederationError::InvalidIdToken("it has no tid and oid".into())),
        (false, _, _) => subject_of(claims.get("sub"))?,
    };
    let email = claims.get("email").and_then(Value::as_str).map(str::to_owned);
    Ok(UpstreamAccount {
        provider: upstream.id.clone(),
        subject,
        // Entra ID's address is whatever the tenant typed (the "nOAuth" takeover): never
        // verified, whatever a claim says.
        email_verified: email.is_some() && !entra && truthy(claims.get("email_verified")),
        email,
        hosted_domain: claims.get("hd").and_then(Value::as_str).map(str::to_owned),
        username_hint: claims.get("preferred_username").and_then(Value::as_str).map(str::to_owned),
        authenticated_at: claims.get("auth_time").and_then(Value::as_i64).filter(|t| *t > 0),
        claims,
    })
}

#[cfg(test)]
mod tests {
    use latchkey_config::ProviderConfig;
    use latchkey_core::domain::ProviderId;
    use serde_json::json;

    use super::super::upstream::Credential;
    use super::*;

    fn upstream(kind: ProviderKind, issuer: Option<&str>, tenants: &[&str]) -> Upstream {
        let mut raw = json!({
            "kind": if kind == ProviderKind::Google { "google" } else { "oidc" },
            "name": "P", "client_id": "c", "client_secret": "s", "allowed_tenants": tenants,
        });
        if let Some(i) = issuer {
            raw["issuer"] = json!(i);
        }
        let config: ProviderConfig = serde_json::from_value(raw).unwrap_or_else(|e| panic!("{e}"));
        Upstream {
            id: ProviderId::parse("p").unwrap_or_else(|e| panic!("{e}")),
            config,
            credential: Credential::Secret("s".into()),
            oidc: Some(OidcState::default()),
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn google_tokens_may_name_either_form_of_its_issuer_and_nothing_else() {
        let google = upstream(ProviderKind::Google, None, &[]);
        let accepted = accepted_issuers(&google, &Map::new()).unwrap_or_default();
        assert_eq!(accepted, ["https://accounts.google.com", "accounts.google.com"]);
        // A Google kind pointed at another issuer (a test stand-in) takes that one only.
        let other = upstream(ProviderKind::Google, Some("https://idp.example"), &[]);
        assert_eq!(accepted_issuers(&other, &Map::new()).unwrap_or_default(), ["https://idp.example"]);
        // Google set up as a plain OIDC provider is Google all the same.
        let plain = upstream(ProviderKind::Oidc, Some("https://accounts.google.com"), &[]);
        assert_eq!(accepted_issuers(&plain, &Map::new()).unwrap_or_default(), accepted);
        let elsewhere = upstream(ProviderKind::Oidc, Some("https://idp.example"), &[]);
        assert!(is_google(&plain) && is_google(&google) && !is_google(&elsewhere));
    }

    #[test]
    fn a_tenant_template_lets_in_only_the_listed_tenants_under_their_own_issuer() {
        let entra = upstream(
            ProviderKind::Oidc,
            Some("https://login.microsoftonline.com/{tenantid}/v2.0"),
            &["11111111-1111-1111-1111-111111111111"],
        );
        let ours = claims(json!({"tid": "11111111-1111-1111-1111-111111111111"}));
        assert_eq!(
            accepted_issuers(&entra, &ours).unwrap_or_default(),
            ["https://login.microsoftonline.com/11111111-1111-1111-1111-111111111111/v2.0"]
        );
        for other in [json!({"tid": "22222222-2222-2222-2222-222222222222"}), json!({}), json!({"tid": 7})] {
            assert!(matches!(accepted_issuers(&entra, &claims(other)), Err(FederationError::NotAllowed(_))));
        }
        // The account is the tenant and the object id, never the app-specific `sub` alone.
        let account = account_from_claims(
            &entra,
            claims(json!({"sub": "s", "tid": "11111111-1111-1111-1111-111111111111", "oid": "o-1", "email": "a@b.example"})),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(account.subject.as_str(), "11111111-1111-1111-1111-111111111111:o-1");
        assert!(!account.email_verified, "Entra says nothing of verification: never verified");
        assert!(account_from_claims(&entra, claims(json!({"sub": "s"}))).is_err());
    }

    #[test]
    fn checks_after_the_signature_refuse_what_does_not_fit_this_sign_in() {
        let p = upstream(ProviderKind::Oidc, Some("https://idp.example"), &[]);
        let flow = PendingFlow {
            provider: p.id.clone(),
            state: "st".into(),
            nonce: "n-1".into(),
            verifier: "v".into(),
            fresh: None,
        };
        let now = 1_800_000_000;
        let good = json!({"sub": "a", "aud": "c", "nonce": "n-1", "iat": now});
        assert!(check_claims(claims(good.clone()), &p, &flow, now).is_ok());
        for (patch, why) in [
            (json!({"nonce": "other"}), "nonce"),
            (json!({"nonce": null}), "nonce"),
            (json!({"azp": "someone"}), "azp"),
            (json!({"aud": ["c", "d"]}), "azp"),
            (json!({"iat": now + 3_600}), "iat"),
            (json!({"iat": now - 3_600}), "iat"),
        ] {
            let mut c = good.clone();
            for (k, v) in patch.as_object().into_iter().flatten() {
                c[k] = v.clone();
            }
            let refused = check_claims(claims(c), &p, &flow, now).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(refused.contains(why), "{patch}: {refused}");
        }
        // Asked to sign in again: `auth_time` must be there and new.
        let fresh = PendingFlow { fresh: Some(now), ..flow.clone() };
        assert!(check_claims(claims(json!({"nonce": "n-1", "iat": now, "auth_time": now})), &p, &fresh, now).is_ok());
        for stale in [json!({"nonce": "n-1", "iat": now}), json!({"nonce": "n-1", "iat": now, "auth_time": now - 600})]
        {
            let refused = check_claims(claims(stale), &p, &fresh, now).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(refused.contains("auth_time"), "{refused}");
        }
        let mut hd = upstream(ProviderKind::Google, Some("https://idp.example"), &[]);
        hd.config.hosted_domains = vec!["example.com".into()];
        assert!(
            check_claims(claims(json!({"nonce": "n-1", "iat": now, "hd": "example.com"})), &hd, &flow, now).is_ok()
        );
        for other in [json!({"nonce": "n-1", "iat": now}), json!({"nonce": "n-1", "iat": now, "hd": "evil.com"})] {
            assert!(matches!(check_claims(claims(other), &hd, &flow, now), Err(FederationError::NotAllowed(_))));
        }
    }
}
