//! The rules a client's settings meet together. They are checked on the client a change
//! would leave, before anything is stored, whichever door the change came through (the
//! CLI, the admin API, `apply`): each door only translates its input into a `NewClient` or
//! a `ClientPatch`.

use latchkey_core::domain::{
    AdminScope, ClientKind, GrantType, RedirectUriError, ScopeName, TenantId, TokenEndpointAuthMethod,
};
use latchkey_core::records::Client;

use super::Clients;
use crate::outbound::{Policy, Purpose};
use crate::{ServiceError, ServiceResult};

/// Redirect URIs (and post-logout ones) a client may register.
pub const MAX_REDIRECT_URIS: usize = 50;
/// The longest client name, in characters.
pub const MAX_NAME: usize = 200;
/// The longest per-client access token lifetime: a day.
pub const MAX_ACCESS_TOKEN_LIFETIME: i64 = 86_400;
/// The longest per-client refresh token reuse grace (as `tokens.refresh_reuse_grace`).
pub const MAX_REFRESH_REUSE_GRACE: i64 = latchkey_config::MAX_REFRESH_REUSE_GRACE.as_secs() as i64;
/// The longest `default_max_age`: a year.
pub const MAX_DEFAULT_MAX_AGE: u64 = 31_536_000;
/// The most public keys a client registers, and the size of their JWK set.
const MAX_JWKS_KEYS: usize = 20;
const MAX_JWKS_BYTES: usize = 32 * 1024;

/// Scopes and roles that count as existing though not stored yet: an `apply` document
/// creates them before the client that names them.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub scopes: std::collections::BTreeSet<ScopeName>,
    pub roles: std::collections::BTreeSet<latchkey_core::domain::RoleName>,
}

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(message.into())
}

/// Whether a setting differs from what was stored (always, for a new client).
fn changed<T: PartialEq>(before: Option<&Client>, now: &Client, field: impl Fn(&Client) -> &T) -> bool {
    before.is_none_or(|b| field(b) != field(now))
}

/// The first item a list holds more than once.
fn first_repeated<T: PartialEq>(list: &[T]) -> Option<&T> {
    list.iter().enumerate().find(|(i, item)| list[..*i].contains(item)).map(|(_, item)| item)
}

fn check_name(name: &str) -> ServiceResult<()> {
    if name.trim().is_empty() {
        return Err(invalid("a client needs a name: people see it on the consent page"));
    }
    if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(invalid(format!("a client name is at most {MAX_NAME} characters, without control characters")));
    }
    Ok(())
}

/// How the client authenticates: a method its kind can use, with what the method needs.
fn check_authentication(c: &Client) -> ServiceResult<()> {
    let auth = c.token_endpoint_auth_method;
    if !auth.fits(c.kind) {
        return Err(invalid(format!("a {} client cannot use the `{auth}` authentication method", c.kind)));
    }
    if auth == TokenEndpointAuthMethod::PrivateKeyJwt && c.jwks.is_none() && c.jwks_uri.is_none() {
        return Err(invalid("private_key_jwt needs the client's public keys: register a JWK set (jwks) or a jwks_uri"));
    }
    if c.jwks.is_some() && c.jwks_uri.is_some() {
        return Err(invalid("register the client's public keys once: a JWK set (jwks) or a jwks_uri, not both"));
    }
    if auth.uses_secret() && c.secret_hash.is_none() {
        return Err(invalid(format!(
            "client `{}` has no secret, so it cannot use `{auth}`; register a confidential client with a secret instead",
            c.client_id
        )));
    }
    if c.allow_legacy_assertion_audience && auth != TokenEndpointAuthMethod::PrivateKeyJwt {
        return Err(invalid(format!(
            "allow_legacy_assertion_audience is for private_key_jwt clients only; this one uses `{auth}`"
        )));
    }
    if c.allow_insecure_no_pkce && c.kind == ClientKind::Public {
        return Err(invalid(
            "allow_insecure_no_pkce is for confidential clients only: public clients always need PKCE",
        ));
    }
    Ok(())
}

fn check_grants(c: &Client, before: Option<&Client>) -> ServiceResult<()> {
    if c.grant_types.is_empty() {
        return Err(invalid("a client needs at least one grant type"));
    }
    if let Some(twice) = first_repeated(&c.grant_types).filter(|_| changed(before, c, |c| &c.grant_types)) {
        return Err(invalid(format!("grant_types: `{twice}` is listed twice")));
    }
    if c.grant_types.contains(&GrantType::ClientCredentials) && c.kind == ClientKind::Public {
        return Err(invalid(
            "client_credentials is only for confidential clients (a public client cannot keep a secret)",
        ));
    }
    if c.grant_types.contains(&GrantType::AuthorizationCode) && c.redirect_uris.is_empty() {
        return Err(invalid("the authorization_code grant needs at least one redirect URI (redirect_uris)"));
    }
    Ok(())
}

/// Every redirect URI, and every post-logout one, is one this client may register; a
/// refusal the development switch would lift names it.
/// One of a client's URI lists, read from a client.
type UriList = fn(&Client) -> &Vec<latchkey_core::domain::RedirectUri>;

fn check_redirects(c: &Client, before: Option<&Client>) -> ServiceResult<()> {
    let lists: [(&Vec<_>, &str, UriList); 2] = [
        (&c.redirect_uris, "redirect_uris", |c| &c.redirect_uris),
        (&c.post_logout_redirect_uris, "post_logout_redirect_uris", |c| &c.post_logout_redirect_uris),
    ];
    for (list, name, field) in lists {
        if !changed(before, c, field) {
            // Still judged against the kind and the development switch (which may change).
            for uri in list.iter() {
                uri.check_for(c.kind, c.allow_insecure_redirect_uris).map_err(|e| refused_uri(name, e))?;
            }
            continue;
        }
        if list.len() > MAX_REDIRECT_URIS {
            return Err(invalid(format!("{name}: a client registers at most {MAX_REDIRECT_URIS}")));
        }
        if let Some(twice) = first_repeated(list) {
            return Err(invalid(format!("{name}: `{twice}` is listed twice")));
        }
        for uri in list.iter() {
            uri.check_for(c.kind, c.allow_insecure_redirect_uris).map_err(|e| refused_uri(name, e))?;
        }
    }
    Ok(())
}

fn refused_uri(name: &str, e: RedirectUriError) -> ServiceError {
    match e {
        RedirectUriError::DevelopmentOnly(_) => invalid(format!(
            "{name}: {e}: allow insecure redirect URIs (`allow_insecure_redirect_uris`, `--allow-insecure-redirect-uris` on the CLI; for development on this machine only) to register it, or replace it in the change that turns that off"
        )),
        e => invalid(format!("{name}: {e}")),
    }
}

/// A registered JWK set: a `keys` array of public asymmetric keys, each a valid JWK.
pub fn check_jwks(text: &str) -> ServiceResult<()> {
    if text.len() > MAX_JWKS_BYTES {
        return Err(invalid(format!("jwks: the key set is larger than {MAX_JWKS_BYTES} bytes")));
    }
    let set: serde_json::Value = serde_json::from_str(text).map_err(|e| invalid(format!("jwks: not JSON: {e}")))?;
    let keys = set["keys"].as_array().ok_or_else(|| invalid("jwks: expected a JWK set {\"keys\": [...]}"))?;
    if keys.is_empty() || keys.len() > MAX_JWKS_KEYS {
        return Err(invalid(format!("jwks: a key set holds 1 to {MAX_JWKS_KEYS} keys")));
    }
    for k in keys {
        if ["d", "k", "p", "q", "dp", "dq", "qi", "oth"].iter().any(|private| k.get(private).is_some()) {
            return Err(invalid("jwks: register public keys only (found private or symmetric key material)"));
        }
        serde_json::from_value::<jsonwebtoken::jwk::Jwk>(k.clone())
            .map_err(|e| invalid(format!("jwks: a key is not a valid JWK: {e}")))?;
    }
    Ok(())
}

/// Admin scopes go to admin clients only, and only the admin scopes Latchkey defines.
pub(super) fn check_admin_scopes(scopes: &[ScopeName], admin_client: bool) -> ServiceResult<()> {
    for s in scopes.iter().filter(|s| AdminScope::is_admin_name(s.as_str())) {
        if AdminScope::parse(s.as_str()).is_none() {
            return Err(invalid(format!("`{s}` is not an admin scope")));
        }
        if !admin_client {
            return Err(invalid(format!(
                "`{s}` is an admin scope: only an admin client (`--admin-client`, `admin_client`) may be given admin scopes"
            )));
        }
    }
    Ok(())
}

impl Clients<'_> {
    /// Checks `c`, the client a change would leave (`before` it, `None` for a new one).
    /// What depends on the server's configuration or on other records (outbound policy,
    /// signing algorithms, scopes, roles) is checked where it changed, so a client stored
    /// under another configuration can still be changed in other ways.
    /// Limits added after clients were stored (name, counts, duplicates, lifetimes) are
    /// judged where they changed too, so such a client can still be changed otherwise.
    pub(super) async fn check(&self, tenant: &TenantId, c: &Client, before: Option<&Client>) -> ServiceResult<()> {
        self.check_with(tenant, c, before, &Pending::default()).await
    }

    /// [`Self::check`], where the scopes and roles `pending` names count as existing (an
    /// `apply` document that creates them before the client).
    pub(crate) async fn check_with(
        &self,
        tenant: &TenantId,
        c: &Client,
        before: Option<&Client>,
        pending: &Pending,
    ) -> ServiceResult<()> {
        if changed(before, c, |c| &c.name) {
            check_name(&c.name)?;
        }
        check_authentication(c)?;
        check_grants(c, before)?;
        check_redirects(c, before)?;
        c.session_policy.check_against(&c.redirect_uris, c.kind).map_err(|e| invalid(e.to_string()))?;
        if let Some(s) = c.access_token_lifetime
            && changed(before, c, |c| &c.access_token_lifetime)
            && !(1..=MAX_ACCESS_TOKEN_LIFETIME).contains(&s)
        {
            return Err(invalid(format!("access_token_lifetime: 1 second to {MAX_ACCESS_TOKEN_LIFETIME} seconds")));
        }
        if let Some(s) = c.refresh_reuse_grace
            && changed(before, c, |c| &c.refresh_reuse_grace)
            && !(0..=MAX_REFRESH_REUSE_GRACE).contains(&s)
        {
            return Err(invalid(format!(
                "refresh_reuse_grace: 0 to {MAX_REFRESH_REUSE_GRACE} seconds; a longer window is one a thief could use"
            )));
        }
        if let Some(s) = c.session_policy.default_max_age
            && changed(before, c, |c| &c.session_policy.default_max_age)
            && !(1..=MAX_DEFAULT_MAX_AGE).contains(&s)
        {
            return Err(invalid(format!(
                "session.default_max_age: 1 second to {MAX_DEFAULT_MAX_AGE} seconds (a year)"
            )));
        }
        if let Some(twice) = first_repeated(&c.allowed_scopes).filter(|_| changed(before, c, |c| &c.allowed_scopes)) {
            return Err(invalid(format!("scopes: `{twice}` is listed twice")));
        }
        check_admin_scopes(&c.allowed_scopes, c.admin_client)?;
        self.check_references(tenant, c, before, pending).await
    }

    /// The settings that are judged against configuration and other records.
    async fn check_references(
        &self,
        tenant: &TenantId,
        c: &Client,
        before: Option<&Client>,
        pending: &Pending,
    ) -> ServiceResult<()> {
        let config = &self.0.config;
        let alg = c.id_token_signed_response_alg;
        if changed(before, c, |c| &c.id_token_signed_response_alg) && !config.keys.algorithms.contains(&alg) {
            return Err(invalid(format!(
                "id_token_signed_response_alg {alg} is not in keys.algorithms, so no key could sign its ID tokens"
            )));
        }
        let outbound = Policy::new(&config.outbound.allow);
        if let Some(uri) = c.jwks_uri.as_deref().filter(|_| changed(before, c, |c| &c.jwks_uri)) {
            outbound.check_url(Purpose::JwksUri, uri).map_err(|e| invalid(format!("jwks_uri: {e}")))?;
        }
        if let Some(set) = c.jwks.as_deref().filter(|_| changed(before, c, |c| &c.jwks)) {
            check_jwks(set)?;
        }
        let back = &c.session_policy.backchannel_logout_uri;
        if let Some(uri) = back.as_ref().filter(|_| changed(before, c, |c| &c.session_policy.backchannel_logout_uri)) {
            // A host name is judged again when the logout token is sent.
            outbound
                .check_url(Purpose::BackchannelLogout, uri.as_str())
                .map_err(|e| invalid(format!("backchannel_logout_uri: {e}")))?;
        }
        if changed(before, c, |c| &c.allowed_scopes) {
            let defined = self.0.scopes().list(tenant).await?;
            let exists = |s: &ScopeName| pending.scopes.contains(s) || defined.iter().any(|d| &d.name == s);
            if let Some(unknown) = c.allowed_scopes.iter().find(|s| !exists(s)) {
                return Err(invalid(format!(
                    "scope `{unknown}` does not exist; create it first (`latchkey scope create {unknown} --description ...`)"
                )));
            }
        }
        if let Some(required) =
            c.access_policy.required_roles.as_ref().filter(|_| changed(before, c, |c| &c.access_policy))
        {
            for role in required.roles().iter().filter(|r| !pending.roles.contains(*r)) {
                if self.0.access().role(tenant, role).await?.is_none() {
                    return Err(ServiceError::NotFound(format!("role `{role}`")));
                }
            }
        }
        Ok(())
    }
}
