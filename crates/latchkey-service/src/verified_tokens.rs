//! Access tokens whose signature this node has already checked.
//!
//! A resource server introspects the same bearer token on every call it receives, and a
//! UserInfo client presents the same token again and again; checking its ES256 signature
//! each time is a third of the request's CPU. The claims of a token whose signature
//! verified are kept under the SHA-256 of the token, so a later presentation of the
//! exact same bytes skips only the signature check. What can change after the first check
//! is still checked every time by the caller: expiry against the server clock and the
//! revocation set. A token is only served from here while the key that signed it is still
//! published, so retiring a key ends its tokens here as it does for a fresh check.
//!
//! Bounded: at `CAPACITY` entries, expired ones are dropped first, and if that frees
//! nothing the whole map is cleared (the next presentations verify again). The raw token
//! is never kept, only its digest.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aws_lc_rs::digest;

use crate::access_claims::AccessClaims;

/// At most this many verified tokens are kept (a few hundred bytes each).
pub const CAPACITY: usize = 10_000;

type Digest = [u8; 32];

struct Verified {
    kid: String,
    claims: Arc<AccessClaims>,
}

#[derive(Default)]
pub struct VerifiedTokens {
    entries: RwLock<HashMap<Digest, Verified>>,
}

/// A presented token's digest: what the cache is keyed by.
pub struct Presented(Digest);

impl Presented {
    pub fn of(token: &str) -> Self {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
        Self(out)
    }
}

impl VerifiedTokens {
    /// The claims of this exact token, if its signature verified before under a key for
    /// which `published` still holds.
    pub fn get(&self, token: &Presented, published: impl FnOnce(&str) -> bool) -> Option<Arc<AccessClaims>> {
        let entries = self.entries.read().ok()?;
        let hit = entries.get(&token.0)?;
        published(&hit.kid).then(|| hit.claims.clone())
    }

    /// Remembers a token whose signature under `kid` just verified.
    pub fn insert(&self, token: Presented, kid: String, claims: Arc<AccessClaims>, now_secs: i64) {
        let Ok(mut entries) = self.entries.write() else { return };
        if entries.len() >= CAPACITY {
            entries.retain(|_, v| v.claims.exp > now_secs);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(token.0, Verified { kid, claims });
    }

    pub fn len(&self) -> usize {
        self.entries.read().map_or(0, |e| e.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(jti: &str, exp: i64) -> Arc<AccessClaims> {
        Arc::new(AccessClaims {
            iss: "https://id.example".into(),
            sub: "sub".into(),
            aud: "api".into(),
            client_id: "app".into(),
            scope: "read".into(),
            jti: jti.into(),
            iat: 0,
            exp,
            auth_time: None,
            acr: None,
            gid: None,
            sid: None,
            userinfo_claims: None,
            roles: None,
            groups: None,
            entitlements: None,
        })
    }

    #[test]
    fn a_token_is_found_by_its_exact_bytes_while_its_key_is_published() {
        let cache = VerifiedTokens::default();
        cache.insert(Presented::of("a.b.c"), "k1".into(), claims("one", 100), 0);
        let hit = cache.get(&Presented::of("a.b.c"), |kid| kid == "k1");
        assert_eq!(hit.map(|c| c.jti.clone()).as_deref(), Some("one"));
        assert!(cache.get(&Presented::of("a.b.d"), |_| true).is_none(), "another token is not a hit");
        assert!(cache.get(&Presented::of("a.b.c"), |kid| kid != "k1").is_none(), "its key was retired");
    }

    #[test]
    fn a_full_cache_drops_expired_tokens_first_and_stays_bounded() {
        let cache = VerifiedTokens::default();
        for i in 0..CAPACITY {
            // Every other token has expired by time 50.
            let exp = if i % 2 == 0 { 10 } else { 100 };
            cache.insert(Presented::of(&format!("t{i}")), "k".into(), claims(&format!("{i}"), exp), 0);
        }
        assert_eq!(cache.len(), CAPACITY);
        cache.insert(Presented::of("new"), "k".into(), claims("new", 100), 50);
        assert_eq!(cache.len(), CAPACITY / 2 + 1, "the expired half went");
        assert!(cache.get(&Presented::of("t1"), |_| true).is_some(), "live tokens stayed");
        for i in 0..CAPACITY {
            cache.insert(Presented::of(&format!("u{i}")), "k".into(), claims("u", 100), 50);
        }
        assert!(cache.len() <= CAPACITY, "never more than the capacity: {}", cache.len());
    }
}
