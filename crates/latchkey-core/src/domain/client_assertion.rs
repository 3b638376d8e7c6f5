//! The claims of a `private_key_jwt` client assertion (RFC 7523 §3, OIDC Core §9), read
//! after its signature verified: what the server keeps of them (`jti`, `exp`), or the rule
//! they broke.
//!
//! The audience follows draft-ietf-oauth-rfc7523bis, written after the 2025
//! audience-injection attacks (CVE-2025-27370/27371): a client tricked into signing an
//! assertion for an attacker's endpoint (its token endpoint URL, say, under a malicious
//! discovery document) must not hand the attacker an assertion this server accepts. So the
//! issuer identifier is the audience, as its only value; the token endpoint URL only for a
//! client registered for it by name (`allow_legacy_assertion_audience`).

use serde_json::Value;

/// The longest an assertion may live: `exp` at most this far ahead (plus clock skew).
pub const MAX_LIFETIME_SECS: i64 = 600;
/// The longest `jti` kept for replay detection.
pub const MAX_JTI_BYTES: usize = 256;

/// What an assertion must say to authenticate this client at this server now.
#[derive(Debug, Clone, Copy)]
pub struct AssertionExpectations<'a> {
    /// `iss` and `sub` (RFC 7523 §3 items 1 and 2).
    pub client_id: &'a str,
    /// The issuer identifier: the audience (draft-ietf-oauth-rfc7523bis).
    pub issuer: &'a str,
    /// The token endpoint URL, accepted as the audience too, for a client that is allowed
    /// the legacy audience; `None` for every other client.
    pub legacy_audience: Option<&'a str>,
    /// The server's time and the clock skew it tolerates, in seconds.
    pub now: i64,
    pub skew: i64,
}

/// The claims of an assertion that met every rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAssertionClaims {
    /// Accepted once (RFC 7523 §3 item 7): the caller records it until `exp`.
    pub jti: String,
    pub exp: i64,
}

/// Why an assertion's claims were refused. Logged, never sent to the client (which gets
/// `invalid_client`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionClaimsError {
    #[error("the `{0}` claim is missing or not of its type")]
    Missing(&'static str),
    #[error("iss is not the client id")]
    Issuer,
    #[error("sub is not the client id")]
    Subject,
    #[error("aud is not the issuer identifier as its only value")]
    Audience,
    #[error("exp has passed")]
    Expired,
    #[error("exp is more than {MAX_LIFETIME_SECS} s ahead")]
    TooLong,
    #[error("nbf or iat lies in the future")]
    NotYetValid,
    #[error("jti is longer than {MAX_JTI_BYTES} bytes")]
    JtiTooLong,
}

impl ClientAssertionClaims {
    /// Checks the claims of a verified assertion: `iss`, `sub`, `aud`, `exp` and `jti` are
    /// required (RFC 7523 §3, OIDC Core §9); `nbf` and `iat`, when present, must not lie in
    /// the future.
    pub fn parse(claims: &Value, expect: &AssertionExpectations<'_>) -> Result<Self, AssertionClaimsError> {
        use AssertionClaimsError as E;
        let text = |name: &'static str| claims.get(name).and_then(Value::as_str).ok_or(E::Missing(name));
        if text("iss")? != expect.client_id {
            return Err(E::Issuer);
        }
        if text("sub")? != expect.client_id {
            return Err(E::Subject);
        }
        let aud = match claims.get("aud") {
            None | Some(Value::Null) => return Err(E::Missing("aud")),
            Some(Value::String(s)) => s.as_str(),
            // A one-element array is still one value; two values are refused even when one
            // of them is right, as is anything that is not a string.
            Some(Value::Array(values)) if values.len() == 1 => values[0].as_str().ok_or(E::Audience)?,
            Some(_) => return Err(E::Audience),
        };
        // Simple string comparison (RFC 7523 §3, RFC 3986 §6.2.1): no normalising.
        if aud != expect.issuer && expect.legacy_audience != Some(aud) {
            return Err(E::Audience);
        }
        let exp = claims.get("exp").and_then(numeric_date).ok_or(E::Missing("exp"))?;
        if exp <= expect.now - expect.skew {
            return Err(E::Expired);
        }
        if exp > expect.now + MAX_LIFETIME_SECS + expect.skew {
            return Err(E::TooLong);
        }
        for name in ["nbf", "iat"] {
            match claims.get(name) {
                None => {}
                Some(v) => match numeric_date(v) {
                    Some(t) if t > expect.now + expect.skew => return Err(E::NotYetValid),
                    Some(_) => {}
                    None => return Err(E::Missing(name)),
                },
            }
        }
        let jti = text("jti")?;
        if jti.is_empty() {
            return Err(E::Missing("jti"));
        }
        if jti.len() > MAX_JTI_BYTES {
            return Err(E::JtiTooLong);
        }
        Ok(Self { jti: jti.to_owned(), exp })
    }
}

/// A JWT NumericDate (RFC 7519 §2): seconds, possibly fractional.
fn numeric_date(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().filter(|f| f.is_finite() && f.abs() < 1e15).map(|f| f.floor() as i64))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://id.example.com";
    const TOKEN_ENDPOINT: &str = "https://id.example.com/token";
    const NOW: i64 = 1_700_000_000;

    fn expect(legacy: bool) -> AssertionExpectations<'static> {
        AssertionExpectations {
            client_id: "app",
            issuer: ISSUER,
            legacy_audience: legacy.then_some(TOKEN_ENDPOINT),
            now: NOW,
            skew: 60,
        }
    }

    fn claims(aud: Value) -> Value {
        json!({"iss": "app", "sub": "app", "aud": aud, "exp": NOW + 120, "jti": "j1", "iat": NOW})
    }

    fn without(name: &str) -> Value {
        let mut c = claims(json!(ISSUER));
        c.as_object_mut().map(|o| o.remove(name));
        c
    }

    #[test]
    fn the_issuer_is_the_audience_as_a_string_or_a_one_element_array() {
        let ok = ClientAssertionClaims { jti: "j1".into(), exp: NOW + 120 };
        assert_eq!(ClientAssertionClaims::parse(&claims(json!(ISSUER)), &expect(false)), Ok(ok.clone()));
        assert_eq!(ClientAssertionClaims::parse(&claims(json!([ISSUER])), &expect(false)), Ok(ok));
    }

    #[test]
    fn any_other_audience_is_refused() {
        for aud in [
            json!(TOKEN_ENDPOINT),
            json!([ISSUER, TOKEN_ENDPOINT]),
            json!([TOKEN_ENDPOINT, ISSUER]),
            json!([]),
            json!(format!("{ISSUER}/")),
            json!("https://attacker.example"),
            json!(42),
            json!({"iss": ISSUER}),
            json!([42]),
            json!(true),
        ] {
            let got = ClientAssertionClaims::parse(&claims(aud.clone()), &expect(false));
            assert_eq!(got, Err(AssertionClaimsError::Audience), "{aud}");
        }
        assert_eq!(
            ClientAssertionClaims::parse(&claims(Value::Null), &expect(false)),
            Err(AssertionClaimsError::Missing("aud"))
        );
    }

    #[test]
    fn the_legacy_audience_admits_the_token_endpoint_url_and_nothing_else() {
        for aud in [json!(TOKEN_ENDPOINT), json!([TOKEN_ENDPOINT]), json!(ISSUER)] {
            assert!(ClientAssertionClaims::parse(&claims(aud.clone()), &expect(true)).is_ok(), "{aud}");
        }
        for aud in [
            json!([ISSUER, TOKEN_ENDPOINT]),
            json!("https://id.example.com/introspect"),
            json!("https://id.example.com/token/"),
            json!("https://attacker.example/token"),
        ] {
            let got = ClientAssertionClaims::parse(&claims(aud.clone()), &expect(true));
            assert_eq!(got, Err(AssertionClaimsError::Audience), "{aud}");
        }
    }

    #[test]
    fn iss_sub_aud_exp_and_jti_are_required() {
        for name in ["iss", "sub", "aud", "exp", "jti"] {
            let got = ClientAssertionClaims::parse(&without(name), &expect(false));
            assert_eq!(got, Err(AssertionClaimsError::Missing(name)), "{name}");
        }
        let mut empty_jti = claims(json!(ISSUER));
        empty_jti["jti"] = json!("");
        assert_eq!(ClientAssertionClaims::parse(&empty_jti, &expect(false)), Err(AssertionClaimsError::Missing("jti")));
        let mut long_jti = claims(json!(ISSUER));
        long_jti["jti"] = json!("j".repeat(MAX_JTI_BYTES + 1));
        assert_eq!(ClientAssertionClaims::parse(&long_jti, &expect(false)), Err(AssertionClaimsError::JtiTooLong));
        let mut numeric_jti = claims(json!(ISSUER));
        numeric_jti["jti"] = json!(7);
        assert_eq!(
            ClientAssertionClaims::parse(&numeric_jti, &expect(false)),
            Err(AssertionClaimsError::Missing("jti"))
        );
    }

    #[test]
    fn iss_and_sub_name_the_client() {
        let mut c = claims(json!(ISSUER));
        c["sub"] = json!("other");
        assert_eq!(ClientAssertionClaims::parse(&c, &expect(false)), Err(AssertionClaimsError::Subject));
        c["iss"] = json!("other");
        assert_eq!(ClientAssertionClaims::parse(&c, &expect(false)), Err(AssertionClaimsError::Issuer));
    }

    #[test]
    fn exp_is_bounded_and_nbf_and_iat_are_not_in_the_future() {
        let at = |name: &str, t: Value| {
            let mut c = claims(json!(ISSUER));
            c[name] = t;
            ClientAssertionClaims::parse(&c, &expect(false))
        };
        assert_eq!(at("exp", json!(NOW - 61)), Err(AssertionClaimsError::Expired));
        assert_eq!(at("exp", json!(NOW + 3600)), Err(AssertionClaimsError::TooLong));
        assert!(at("exp", json!(NOW as f64 + 30.5)).is_ok(), "a fractional NumericDate");
        assert_eq!(at("exp", json!("soon")), Err(AssertionClaimsError::Missing("exp")));
        assert_eq!(at("nbf", json!(NOW + 3600)), Err(AssertionClaimsError::NotYetValid));
        assert_eq!(at("iat", json!(NOW + 3600)), Err(AssertionClaimsError::NotYetValid));
        assert_eq!(at("iat", json!("now")), Err(AssertionClaimsError::Missing("iat")));
        assert!(at("nbf", json!(NOW - 10)).is_ok());
    }
}
