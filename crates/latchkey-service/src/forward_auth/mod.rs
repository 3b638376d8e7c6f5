//! Forward-auth: a reverse proxy (nginx `auth_request`, Caddy `forward_auth`, Traefik
//! `ForwardAuth`) asks whether a request to an app behind it may pass, and for whom.
//!
//! The protected-path rules ([`rules`]) pick the policy; the caller is a browser with the
//! forward-auth cookie ([`cookie`]), an access token for `forward_auth.audience`, or an API
//! key. A decision in steady state reads only memory: the rules, the cookie's MAC, the
//! revocation set (an ended session is refused by every node within its poll), the user,
//! access and API-key caches, and this node's note of when it last confirmed the session
//! in the database (at most once a minute, which also keeps the session from idling out
//! while its apps are in use).

pub mod cookie;
pub mod identity;
pub mod rules;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use latchkey_core::access_rules::{ForwardedRequest, NormalHost, Policy, Rule, RuleRequest};
use latchkey_core::domain::{AuthLevel, GroupName, PresentedApiKey, RoleName, ScopeName, SubjectId, TenantId};
use latchkey_core::records::{BrowserSession, User};
use url::Url;

use crate::sessions::TOUCH_EVERY;
use crate::{Latchkey, ServiceResult};
pub use cookie::CookieClaims;
pub use identity::{HEADER_BUDGET, Identity, TRUNCATED_HEADER};

/// At most this many sessions are remembered as confirmed per node (about 100 bytes each).
pub const CONFIRMED_CAPACITY: usize = 200_000;

/// What the caller presented.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    None,
    /// The forward-auth cookie's value.
    Cookie(&'a str),
    /// `Authorization: Bearer`: an API key or an access token.
    Bearer(&'a str),
    /// The password of `Authorization: Basic`: an API key.
    BasicPassword(&'a str),
    /// An `Authorization` header that is neither.
    Unreadable,
}

/// The answer to the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Pass; with the caller's identity unless the rule is `bypass`.
    Allow(Option<Identity>),
    /// Nobody (or a session not signed in strongly enough): a browser is sent to this
    /// Latchkey URL, which signs it in and returns it; any other caller gets 401.
    SignIn(String),
    /// A credential was presented and does not count: 401.
    Unauthenticated,
    /// The caller is known and not allowed, or a rule denies: 403. The reason is for logs.
    Forbidden(&'static str),
}

impl Decision {
    /// The label of `latchkey_forward_auth_decisions_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Allow(_) => "allow",
            Self::SignIn(_) => "sign_in",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden(why) => why,
        }
    }
}

/// Why a return URL after sign-in is refused (never an open redirect).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReturnRefusal {
    #[error("forward-auth is not configured here")]
    Off,
    #[error("the return address is not an http(s) URL")]
    NotUrl,
    #[error("the return address must use https")]
    NotHttps,
    #[error("the return address is not an application protected by this server")]
    NotCovered,
}

/// The caller, once identified.
enum Caller {
    Session(CookieClaims),
    Key(crate::api_keys::VerifiedApiKey),
    Token(Box<crate::access_claims::AccessClaims>),
}

/// Per node: when each session was last confirmed in the database, and whether it lived.
#[derive(Default)]
pub struct ConfirmedSessions(Mutex<HashMap<String, (i64, bool)>>);

impl ConfirmedSessions {
    fn get(&self, sid: &str, fresh_after: i64) -> Option<bool> {
        let map = self.0.lock().ok()?;
        map.get(sid).filter(|(at, _)| *at > fresh_after).map(|(_, alive)| *alive)
    }

    fn put(&self, sid: &str, at: i64, alive: bool) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= CONFIRMED_CAPACITY {
                map.clear();
            }
            map.insert(sid.to_owned(), (at, alive));
        }
    }

    pub fn len(&self) -> usize {
        self.0.lock().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub struct ForwardAuth<'a>(pub(crate) &'a Latchkey);

impl ForwardAuth<'_> {
    /// Whether forward-auth is configured (`forward_auth.rules`).
    pub fn enabled(&self) -> bool {
        self.0.config.forward_auth.rules.is_some()
    }

    /// Decides a forwarded request from `client_ip` presenting `credential`.
    pub async fn decide(
        &self,
        tenant: &TenantId,
        request: &ForwardedRequest,
        client_ip: IpAddr,
        credential: Credential<'_>,
    ) -> ServiceResult<Decision> {
        let decision = self.decide_uncounted(tenant, request, client_ip, credential).await?;
        metrics::counter!("latchkey_forward_auth_decisions_total", "decision" => decision.kind()).increment(1);
        Ok(decision)
    }

    async fn decide_uncounted(
        &self,
        tenant: &TenantId,
        request: &ForwardedRequest,
        client_ip: IpAddr,
        credential: Credential<'_>,
    ) -> ServiceResult<Decision> {
        let rules = self.0.forward_auth_rules.current();
        let asked = RuleRequest { host: &request.host, path: &request.path, method: &request.method, client_ip };
        let Some(rule) = rules.first_match(&asked) else { return Ok(Decision::Forbidden("no_rule")) };
        match rule.policy {
            Policy::Bypass => return Ok(Decision::Allow(None)),
            Policy::Deny => return Ok(Decision::Forbidden("denied")),
            Policy::OneFactor | Policy::TwoFactor | Policy::Passkey => {}
        }
        let sign_in = || Decision::SignIn(self.start_url(&request.url()));
        let caller = match self.identify(tenant, credential).await? {
            Ok(Some(caller)) => caller,
            Ok(None) => return Ok(sign_in()),
            Err(decision) => return Ok(decision),
        };
        if !strong_enough(&caller, rule.policy) {
            return Ok(match caller {
                Caller::Session(_) => sign_in(),
                _ => Decision::Forbidden("too_weak"),
            });
        }
        if let Caller::Key(key) = &caller
            && !key.allows(&request.method, request.path.as_str())
        {
            return Ok(Decision::Forbidden("key_limits"));
        }
        let user = match &caller {
            Caller::Session(c) => self.live_user(&c.sub).await?,
            Caller::Key(k) => Some(k.owner.clone()),
            Caller::Token(t) => match SubjectId::parse(&t.sub) {
                Ok(sub) => self.live_user(&sub).await?,
                Err(_) => None,
            },
        };
        let identity = match (&caller, user) {
            (_, Some(user)) => self.identity_of(&user).await?,
            // A client's own token (client credentials): no person, no roles; named so that
            // no username can look the same (usernames never hold `:`).
            (Caller::Token(t), None) if t.sub == t.client_id => {
                Identity { user: format!("client:{}", t.client_id), ..Identity::default() }
            }
            (Caller::Session(_), None) => return Ok(sign_in()),
            (_, None) => return Ok(Decision::Unauthenticated),
        };
        if !meets(rule, &caller, &identity) {
            return Ok(Decision::Forbidden("missing_rights"));
        }
        if let Caller::Key(key) = &caller {
            self.0.api_keys().record_use(&key.key).await;
        }
        Ok(Decision::Allow(Some(identity)))
    }

    /// Who presented `credential`: `Ok(None)` for nobody (or a cookie that no longer
    /// counts, which is the same to a browser), `Err` with the answer for a credential
    /// that does not count.
    async fn identify(
        &self,
        tenant: &TenantId,
        credential: Credential<'_>,
    ) -> ServiceResult<Result<Option<Caller>, Decision>> {
        Ok(match credential {
            Credential::None => Ok(None),
            Credential::Unreadable => Err(Decision::Unauthenticated),
            Credential::Cookie(value) => Ok(self.session_of(tenant, value).await?.map(Caller::Session)),
            Credential::BasicPassword(key) => self.key(key).await?,
            Credential::Bearer(token) if PresentedApiKey::looks_like(token) => self.key(token).await?,
            Credential::Bearer(token) => {
                let audience = self.0.config.forward_auth.audience.as_deref();
                match self.0.live_access_token(token).await {
                    Ok(claims) if audience.is_some_and(|a| a == claims.aud) => {
                        Ok(Some(Caller::Token(Box::new(claims))))
                    }
                    _ => Err(Decision::Unauthenticated),
                }
            }
        })
    }

    async fn key(&self, presented: &str) -> ServiceResult<Result<Option<Caller>, Decision>> {
        let key = match self.0.api_keys().verify(presented).await? {
            Ok(key) => key,
            Err(_) => return Ok(Err(Decision::Unauthenticated)),
        };
        // A key made for another resource is not for the apps behind the proxy.
        if key.key.audience.as_ref().is_some_and(|a| Some(a.as_str()) != self.0.config.forward_auth.audience.as_deref())
        {
            return Ok(Err(Decision::Unauthenticated));
        }
        Ok(Ok(Some(Caller::Key(key))))
    }

    /// The session a cookie names, if it still counts: sealed by us, for this tenant, not
    /// past its end, not ended (revocation set), and alive when last confirmed.
    async fn session_of(&self, tenant: &TenantId, value: &str) -> ServiceResult<Option<CookieClaims>> {
        let Some(claims) = CookieClaims::open(value, &self.0.token_hasher) else { return Ok(None) };
        let now = self.0.clock.now();
        if &claims.tenant != tenant || claims.expires_at <= now || self.0.revocations.is_session_ended(&claims.sid) {
            return Ok(None);
        }
        let confirmed = &self.0.forward_auth_sessions;
        let fresh_after = now.secs() - TOUCH_EVERY.as_secs() as i64;
        if let Some(alive) = confirmed.get(&claims.sid, fresh_after) {
            return Ok(alive.then_some(claims));
        }
        let idle = self.0.config.sessions.idle_timeout;
        let session = self.0.sessions().by_sid(tenant, &claims.sid, now, idle).await?;
        let alive = session.as_ref().is_some_and(|s| s.sub == claims.sub);
        if let Some(session) = session.filter(|_| alive) {
            self.0.sessions().record_activity(tenant, &session, now).await?;
        }
        confirmed.put(&claims.sid, now.secs(), alive);
        Ok(alive.then_some(claims))
    }

    async fn live_user(&self, sub: &SubjectId) -> ServiceResult<Option<Arc<User>>> {
        Ok(self.0.caches.user(sub).await?.filter(|u| !u.locked))
    }

    async fn identity_of(&self, user: &User) -> ServiceResult<Identity> {
        let held = self.0.access().held(&user.sub).await?;
        Ok(Identity {
            user: user.username.to_string(),
            // Only a verified address: an unverified one claims nothing (anyone may sign up
            // with someone else's), and apps match accounts by this header.
            email: user.email.as_ref().filter(|_| user.email_verified).map(ToString::to_string),
            name: user.name.as_ref().map(|n| n.as_str().to_owned()),
            groups: held.groups.iter().map(ToString::to_string).collect(),
            roles: held.roles.iter().filter(|r| r.application.is_none()).map(|r| r.name.to_string()).collect(),
        })
    }

    /// Latchkey's page that signs a browser in and returns it to `url`.
    pub fn start_url(&self, url: &str) -> String {
        let rd: String = url::form_urlencoded::byte_serialize(url.as_bytes()).collect();
        format!("{}/forward-auth/start?rd={rd}", self.0.issuer)
    }

    /// Checks where a browser may be returned to after sign-in: an http(s) URL (https when
    /// Latchkey itself is served over https) on a host the rules cover, inside the cookie
    /// domain (elsewhere the cookie would not be sent, and the browser would loop).
    pub fn return_target(&self, rd: &str) -> Result<Url, ReturnRefusal> {
        let domain = self.0.config.forward_auth.cookie_domain.as_deref().ok_or(ReturnRefusal::Off)?;
        let url = Url::parse(rd).map_err(|_| ReturnRefusal::NotUrl)?;
        if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() || url.password().is_some() {
            return Err(ReturnRefusal::NotUrl);
        }
        if url.scheme() == "http" && self.0.issuer.starts_with("https://") {
            return Err(ReturnRefusal::NotHttps);
        }
        let host = url.host_str().and_then(|h| NormalHost::parse(h).ok()).ok_or(ReturnRefusal::NotUrl)?;
        let inside = host.as_str() == domain || host.as_str().ends_with(&format!(".{domain}"));
        if !inside || !self.0.forward_auth_rules.current().covers_host(&host) {
            return Err(ReturnRefusal::NotCovered);
        }
        Ok(url)
    }

    /// Whether `session` is signed in strongly enough for the rule that decides a GET of
    /// `url` from `client_ip` (a rule that needs no sign-in, or none, asks nothing).
    pub fn session_suffices(&self, url: &Url, client_ip: IpAddr, session: &BrowserSession) -> Suffices {
        let request =
            ForwardedRequest::from_parts("GET", url.scheme(), url.authority(), &url[url::Position::BeforePath..]);
        let Ok(request) = request else { return Suffices::Yes };
        let rules = self.0.forward_auth_rules.current();
        let asked = RuleRequest { host: &request.host, path: &request.path, method: "GET", client_ip };
        let policy = rules.first_match(&asked).map_or(Policy::Deny, |r| r.policy);
        let claims = CookieClaims::of_session(&TenantId::default_tenant(), session);
        match policy {
            Policy::Passkey if !claims.passkey => Suffices::NeedsPasskey,
            Policy::TwoFactor if !claims.level.satisfies(AuthLevel::MultiFactor) => Suffices::NeedsTwoFactors,
            _ => Suffices::Yes,
        }
    }

    /// The forward-auth cookie's value for `session`, and how long it lasts (the session's
    /// remaining life).
    pub fn cookie_for(&self, tenant: &TenantId, session: &BrowserSession) -> (String, u64) {
        let claims = CookieClaims::of_session(tenant, session);
        let left = claims.expires_at.secs().saturating_sub(self.0.clock.now().secs()).max(0);
        (claims.seal(&self.0.token_hasher), u64::try_from(left).unwrap_or(0))
    }
}

/// What a session still needs for the application it is returning to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suffices {
    Yes,
    NeedsTwoFactors,
    NeedsPasskey,
}

/// API keys and access tokens count as one factor: a key is one secret, and a token does
/// not say how its user signed in.
fn strong_enough(caller: &Caller, policy: Policy) -> bool {
    match (caller, policy) {
        (_, Policy::OneFactor) => true,
        (Caller::Session(c), Policy::TwoFactor) => c.level.satisfies(AuthLevel::MultiFactor),
        (Caller::Session(c), Policy::Passkey) => c.passkey,
        _ => false,
    }
}

/// The rule's roles, groups and scopes. A browser session has no scopes: a rule that needs
/// scopes is for tokens and keys.
fn meets(rule: &Rule, caller: &Caller, identity: &Identity) -> bool {
    let roles: Vec<RoleName> = identity.roles.iter().filter_map(|r| RoleName::parse(r).ok()).collect();
    let groups: Vec<GroupName> = identity.groups.iter().filter_map(|g| GroupName::parse(g).ok()).collect();
    let scopes: Vec<ScopeName> = match caller {
        Caller::Session(_) => Vec::new(),
        Caller::Key(k) => k.scopes.clone(),
        Caller::Token(t) => t.scope.split(' ').filter_map(|s| ScopeName::parse(s).ok()).collect(),
    };
    rule.roles.as_ref().is_none_or(|r| r.is_met_by(&roles))
        && rule.groups.as_ref().is_none_or(|g| g.is_met_by(&groups))
        && rule.scopes.as_ref().is_none_or(|s| s.is_met_by(&scopes))
}
