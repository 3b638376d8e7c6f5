//! The forward-auth cookie: what a browser shows the proxies of the apps behind Latchkey.
//!
//! It is not the single-sign-on cookie (which stays host-only on Latchkey and is never sent
//! to an app): it names a live session, how it was signed in and until when, under an HMAC
//! of the server's key, so a decision needs no database lookup to read it. It is worth
//! nothing at Latchkey's own pages, and ends with its session: every node refuses it once
//! the revocation poll brings the session's end.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_core::UnixTime;
use latchkey_core::crypto::{TokenHash, TokenHasher};
use latchkey_core::domain::{AuthLevel, SubjectId, TenantId};
use latchkey_core::records::BrowserSession;

const PURPOSE: &str = "forward_auth_cookie";
const VERSION: &str = "v1";

/// What a valid cookie says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieClaims {
    pub tenant: TenantId,
    pub sid: String,
    pub sub: SubjectId,
    pub level: AuthLevel,
    /// The sign-in used a passkey.
    pub passkey: bool,
    pub expires_at: UnixTime,
}

impl CookieClaims {
    pub fn of_session(tenant: &TenantId, session: &BrowserSession) -> Self {
        Self {
            tenant: tenant.clone(),
            sid: session.sid.clone(),
            sub: session.sub.clone(),
            level: AuthLevel::from_acr(&session.acr).unwrap_or(AuthLevel::SingleFactor),
            passkey: session.amr.iter().any(|m| m == "hwk" || m == "swk"),
            expires_at: session.expires_at,
        }
    }

    fn payload(&self) -> String {
        let level = AuthLevel::ALL.iter().position(|l| *l == self.level).unwrap_or(0);
        // The subject last: it may hold `|` (imported ids such as `auth0|…`), and is read
        // as the rest of the payload.
        format!(
            "{}|{}|{level}|{}|{}|{}",
            self.tenant.as_str(),
            self.sid,
            u8::from(self.passkey),
            self.expires_at.secs(),
            self.sub.as_str()
        )
    }

    /// The cookie's value.
    pub fn seal(&self, hasher: &TokenHasher) -> String {
        let payload = self.payload();
        let mac = hasher.hash(PURPOSE, &payload);
        format!("{VERSION}.{}.{}", URL_SAFE_NO_PAD.encode(payload.as_bytes()), mac.as_str())
    }

    /// The claims of a cookie whose MAC is ours; `None` for anything else. Expiry is the
    /// caller's to check.
    pub fn open(value: &str, hasher: &TokenHasher) -> Option<Self> {
        if value.len() > 1024 {
            return None;
        }
        let mut parts = value.split('.');
        let (version, body, mac) = (parts.next()?, parts.next()?, parts.next()?);
        if version != VERSION || parts.next().is_some() {
            return None;
        }
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        if !hasher.verify(PURPOSE, &payload, &TokenHash::from_stored(mac.to_owned())) {
            return None;
        }
        let mut f = payload.splitn(6, '|');
        Some(Self {
            tenant: TenantId::parse(f.next()?).ok()?,
            sid: f.next()?.to_owned(),
            level: *AuthLevel::ALL.get(f.next()?.parse::<usize>().ok()?)?,
            passkey: f.next()? == "1",
            expires_at: UnixTime::from_secs(f.next()?.parse().ok()?),
            sub: SubjectId::parse(f.next()?).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> CookieClaims {
        CookieClaims {
            tenant: TenantId::default_tenant(),
            sid: "sid-1".into(),
            sub: SubjectId::parse("auth0|sub-1").unwrap_or_else(|e| panic!("{e}")),
            level: AuthLevel::MultiFactor,
            passkey: true,
            expires_at: UnixTime::from_secs(1_000),
        }
    }

    #[test]
    fn a_sealed_cookie_opens_only_with_the_same_key_and_untouched() {
        let key = TokenHasher::new(b"k");
        let value = claims().seal(&key);
        assert_eq!(CookieClaims::open(&value, &key), Some(claims()));
        assert_eq!(CookieClaims::open(&value, &TokenHasher::new(b"other")), None);
        // Another session, same MAC: refused.
        let mut forged = claims();
        forged.sid = "sid-2".into();
        let (_, mac) = value.rsplit_once('.').unwrap_or_default();
        let body = URL_SAFE_NO_PAD.encode(forged.payload().as_bytes());
        assert_eq!(CookieClaims::open(&format!("v1.{body}.{mac}"), &key), None);
        for junk in ["", "v1", "v1.a.b", "v2.x.y", &format!("{value}.x"), &"a".repeat(2000)] {
            assert_eq!(CookieClaims::open(junk, &key), None, "{junk}");
        }
    }
}
