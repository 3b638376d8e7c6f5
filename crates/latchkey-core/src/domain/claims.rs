//! The user claims Latchkey releases (OIDC Core §5.1), the scopes that stand for them (§5.4),
//! and the `claims` request parameter (§5.5) that asks for them one by one.

use std::collections::BTreeMap;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ParseError;

/// The JSON type of a claim's value, so a `value` that no user could have is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Boolean,
    Integer,
    Object,
}

impl Kind {
    fn admits(self, v: &Value) -> bool {
        match self {
            Kind::String => v.is_string(),
            Kind::Boolean => v.is_boolean(),
            Kind::Integer => v.is_i64() || v.is_u64(),
            Kind::Object => v.is_object(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Boolean => "true or false",
            Kind::Integer => "a whole number",
            Kind::Object => "a JSON object",
        }
    }
}

/// Every claim about the user Latchkey can release, with the scope that releases it
/// (OIDC Core §5.4) and its type (§5.1).
const USER_CLAIMS: [(&str, &str, Kind); 19] = [
    ("name", "profile", Kind::String),
    ("family_name", "profile", Kind::String),
    ("given_name", "profile", Kind::String),
    ("middle_name", "profile", Kind::String),
    ("nickname", "profile", Kind::String),
    ("preferred_username", "profile", Kind::String),
    ("profile", "profile", Kind::String),
    ("picture", "profile", Kind::String),
    ("website", "profile", Kind::String),
    ("gender", "profile", Kind::String),
    ("birthdate", "profile", Kind::String),
    ("zoneinfo", "profile", Kind::String),
    ("locale", "profile", Kind::String),
    ("updated_at", "profile", Kind::Integer),
    ("email", "email", Kind::String),
    ("email_verified", "email", Kind::Boolean),
    ("phone_number", "phone", Kind::String),
    ("phone_number_verified", "phone", Kind::Boolean),
    ("address", "address", Kind::Object),
];

/// The scope that releases the user claim `name`; `None` when `name` is not a user claim.
pub fn scope_of_claim(name: &str) -> Option<&'static str> {
    USER_CLAIMS.iter().find(|(n, _, _)| *n == name).map(|(_, s, _)| *s)
}

/// The user claims `scope` releases (none for scopes that release no claims).
/// The user claims a request asks for one by one that `scopes` do not already release:
/// what consent must be asked for beyond the scopes (OIDC Core §5.5).
pub fn beyond_scopes<'a>(requested: Option<&'a ClaimsRequest>, scopes: &[String]) -> Vec<&'a str> {
    requested
        .map(|c| {
            c.user_claims()
                .into_iter()
                .filter(|n| scope_of_claim(n).is_none_or(|s| !scopes.iter().any(|g| g == s)))
                .collect()
        })
        .unwrap_or_default()
}

pub fn claims_of_scope(scope: &str) -> impl Iterator<Item = &'static str> + '_ {
    USER_CLAIMS.iter().filter(move |(_, s, _)| *s == scope).map(|(n, _, _)| *n)
}

fn kind_of(name: &str) -> Option<Kind> {
    match name {
        // The two ID token claims a request may name with a value: `sub` asks for one user
        // (§3.1.2.2), `acr` for an authentication level (§5.5.1.1).
        "sub" | "acr" => Some(Kind::String),
        _ => USER_CLAIMS.iter().find(|(n, _, _)| *n == name).map(|(_, _, k)| *k),
    }
}

/// How one claim is asked for (OIDC Core §5.5.1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClaimRequest {
    /// The client says it needs the claim; it is shown to the user, and never makes a
    /// missing claim an error (§5.5.1), except for `acr` (§5.5.1.1).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub essential: bool,
    /// `value`, or `values` in order of preference: the claim is wanted only with one of
    /// these. `None` asks for whatever the user's value is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<Value>>,
}

impl ClaimRequest {
    /// Whether the user's `value` is one the request accepts.
    pub fn admits(&self, value: &Value) -> bool {
        self.values.as_ref().is_none_or(|vs| vs.contains(value))
    }

    /// The requested values that are strings (all of them for `sub` and `acr`).
    pub fn string_values(&self) -> impl Iterator<Item = &str> {
        self.values.iter().flatten().filter_map(Value::as_str)
    }

    /// §5.5.1: `null` asks in the default manner; an object may say `essential`, `value`
    /// and `values`; members not understood are ignored. The values' type is checked when
    /// the claim's type is known (`kind`).
    fn parse(v: &Value, kind: Option<Kind>, claim: &str) -> Result<Self, String> {
        let o = match v {
            Value::Null => return Ok(Self::default()),
            Value::Object(o) => o,
            _ => return Err("each requested claim must be null or a JSON object".into()),
        };
        let essential = match o.get("essential") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err("`essential` must be true or false".into()),
        };
        let values = match o.get("values") {
            None => None,
            Some(Value::Array(a)) if !a.is_empty() => Some(a.clone()),
            Some(_) => return Err("`values` must be a non-empty JSON array".into()),
        };
        let values = match (o.get("value"), values) {
            (None, vs) => vs,
            (Some(one), None) => Some(vec![one.clone()]),
            // Both: the one value, which must then be among the choices.
            (Some(one), Some(vs)) if vs.contains(one) => Some(vec![one.clone()]),
            (Some(_), Some(_)) => return Err("`value` is not one of `values`".into()),
        };
        if let (Some(kind), Some(vs)) = (kind, &values)
            && !vs.iter().all(|v| kind.admits(v))
        {
            return Err(format!("values of `{claim}` must be {}", kind.name()));
        }
        Ok(Self { essential, values })
    }
}

/// The `claims` request parameter (OIDC Core §5.5), kept to what Latchkey understands: the
/// user claims, and `sub` and `acr` in the ID token. Never larger than the parameter it
/// came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClaimsRequest {
    /// Claims asked of UserInfo.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub userinfo: BTreeMap<String, ClaimRequest>,
    /// Claims asked of the ID token.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub id_token: BTreeMap<String, ClaimRequest>,
}

impl ClaimsRequest {
    /// Parses the parameter strictly: JSON with no member named twice (a duplicate is read
    /// differently by different parsers), an object whose `userinfo` and `id_token` are
    /// objects of claim requests (§5.5.1). Other top-level members, and claims Latchkey does
    /// not know, are ignored (§5.5).
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let err = |reason: String| ParseError::new("claims parameter", reason);
        let value = serde_json::from_str::<Strict>(raw).map_err(|e| err(format!("not valid JSON ({e})")))?.0;
        let Value::Object(top) = value else { return Err(err("must be a JSON object".into())) };
        let mut out = Self::default();
        for (member, target) in [("userinfo", &mut out.userinfo), ("id_token", &mut out.id_token)] {
            let requests = match top.get(member) {
                None => continue,
                Some(Value::Object(o)) => o,
                Some(_) => return Err(err(format!("`{member}` must be a JSON object"))),
            };
            for (name, request) in requests {
                // `sub` and `acr` mean something only in the ID token; at UserInfo `sub`
                // is always released (§5.3.2) and `acr` never is.
                let kind = kind_of(name).filter(|_| member == "id_token" || scope_of_claim(name).is_some());
                let parsed = ClaimRequest::parse(request, kind, name).map_err(err)?;
                if kind.is_some() {
                    target.insert(name.clone(), parsed);
                }
            }
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.userinfo.is_empty() && self.id_token.is_empty()
    }

    /// The user claims asked for, in either place, each once.
    pub fn user_claims(&self) -> Vec<&str> {
        let mut names: Vec<&str> =
            self.userinfo.keys().chain(self.id_token.keys()).map(String::as_str).filter(|n| is_user_claim(n)).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Whether `name` is asked for as essential in either place.
    pub fn is_essential(&self, name: &str) -> bool {
        [&self.userinfo, &self.id_token].iter().any(|m| m.get(name).is_some_and(|r| r.essential))
    }

    /// Keeps the user claims for which `keep` holds; `sub` and `acr` stay.
    pub fn retain_user_claims(&mut self, keep: impl Fn(&str) -> bool) {
        let keep = |name: &String, _: &mut ClaimRequest| !is_user_claim(name) || keep(name);
        self.userinfo.retain(keep);
        self.id_token.retain(keep);
    }

    /// The `acr` request of the ID token (§5.5.1.1).
    pub fn acr(&self) -> Option<&ClaimRequest> {
        self.id_token.get("acr")
    }

    /// The users the request accepts (§3.1.2.2: a `sub` with a value names the user the
    /// ID token must be about); `None` when any user will do.
    pub fn subjects(&self) -> Option<Vec<&str>> {
        self.id_token.get("sub").and_then(|r| r.values.as_ref()).map(|vs| vs.iter().filter_map(Value::as_str).collect())
    }
}

fn is_user_claim(name: &str) -> bool {
    scope_of_claim(name).is_some()
}

/// A JSON value read with every object's member names checked for duplicates, which
/// `serde_json::Value` would silently resolve to the last one. Written by hand: serde_json
/// has no option for it.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Strict(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if members.contains_key(&name) {
                return Err(de::Error::custom("a member name appears twice in one object"));
            }
            let Strict(v) = map.next_value()?;
            members.insert(name, v);
        }
        Ok(Strict(Value::Object(members)))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(raw: &str) -> ClaimsRequest {
        ClaimsRequest::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn the_spec_example_parses_to_the_claims_latchkey_knows() {
        // OIDC Core §5.5, the example request (unknown claims left out by the parser).
        let raw = r#"{
            "userinfo": {
                "given_name": {"essential": true},
                "nickname": null,
                "email": {"essential": true},
                "email_verified": {"essential": true},
                "picture": null,
                "http://example.info/claims/groups": null
            },
            "id_token": {
                "auth_time": {"essential": true},
                "acr": {"values": ["urn:mace:incommon:iap:silver"]}
            }
        }"#;
        let c = parse(raw);
        let names: Vec<&String> = c.userinfo.keys().collect();
        assert_eq!(names, ["email", "email_verified", "given_name", "nickname", "picture"]);
        assert!(c.userinfo["email"].essential && !c.userinfo["nickname"].essential);
        assert_eq!(c.id_token.keys().collect::<Vec<_>>(), ["acr"], "auth_time is always in the ID token");
        assert_eq!(c.acr().map(|a| a.string_values().collect::<Vec<_>>()), Some(vec!["urn:mace:incommon:iap:silver"]));
        assert_eq!(c.user_claims(), ["email", "email_verified", "given_name", "nickname", "picture"]);
    }

    #[test]
    fn malformed_parameters_are_refused() {
        for raw in [
            "",
            "not json",
            "[1,2]",
            "\"x\"",
            "null",
            r#"{"userinfo":{"name":null}} trailing"#,
            r#"{"userinfo":[]}"#,
            r#"{"id_token":"name"}"#,
            r#"{"userinfo":{"name":true}}"#,
            r#"{"userinfo":{"name":{"essential":"yes"}}}"#,
            r#"{"userinfo":{"name":{"values":[]}}}"#,
            r#"{"userinfo":{"name":{"values":"Ada"}}}"#,
            r#"{"userinfo":{"name":{"value":"Ada","values":["Bob"]}}}"#,
            r#"{"userinfo":{"email_verified":{"value":"yes"}}}"#,
            r#"{"userinfo":{"updated_at":{"value":1.5}}}"#,
            r#"{"id_token":{"sub":{"value":42}}}"#,
            r#"{"id_token":{"acr":{"values":[1]}}}"#,
            // Unknown claims are ignored, but must still have the shape of a request.
            r#"{"userinfo":{"x-unknown":5}}"#,
            // A member named twice, at any depth.
            r#"{"userinfo":{"name":null},"userinfo":{"email":null}}"#,
            r#"{"userinfo":{"name":null,"name":{"essential":true}}}"#,
            r#"{"id_token":{"acr":{"essential":true,"essential":false}}}"#,
        ] {
            assert!(ClaimsRequest::parse(raw).is_err(), "{raw} was accepted");
        }
        // Nesting deeper than serde_json's recursion limit is refused, not a stack overflow.
        let deep = format!(r#"{{"userinfo":{{"name":{{"values":[{}1{}]}}}}}}"#, "[".repeat(10_000), "]".repeat(10_000));
        assert!(ClaimsRequest::parse(&deep).is_err());
    }

    #[test]
    fn unknown_names_and_members_are_ignored() {
        let c =
            parse(r#"{"userinfo":{"x-unknown":{"value":5},"name":{"lang":"de"}},"other":1,"id_token":{"nonce":null}}"#);
        assert_eq!(c.userinfo.keys().collect::<Vec<_>>(), ["name"]);
        assert_eq!(c.userinfo["name"], ClaimRequest::default());
        assert!(c.id_token.is_empty());
        assert!(
            parse(r#"{"userinfo":{"sub":{"value":"x"},"acr":null}}"#).is_empty(),
            "sub/acr mean nothing at UserInfo"
        );
    }

    #[test]
    fn value_and_values_narrow_what_is_admitted() {
        let c = parse(
            r#"{"userinfo":{"email":{"value":"a@x"},"name":{"values":["A","B"]},"locale":{"value":"de","values":["fr","de"]}}}"#,
        );
        assert!(c.userinfo["email"].admits(&json!("a@x")) && !c.userinfo["email"].admits(&json!("b@x")));
        assert!(c.userinfo["name"].admits(&json!("B")) && !c.userinfo["name"].admits(&json!("C")));
        assert_eq!(c.userinfo["locale"].values, Some(vec![json!("de")]));
        assert!(parse(r#"{"userinfo":{"email":null}}"#).userinfo["email"].admits(&json!("anything")));
    }

    #[test]
    fn sub_values_name_the_users_the_id_token_may_be_about() {
        assert_eq!(parse(r#"{"id_token":{"sub":{"value":"u1"}}}"#).subjects(), Some(vec!["u1"]));
        assert_eq!(parse(r#"{"id_token":{"sub":{"values":["u1","u2"]}}}"#).subjects(), Some(vec!["u1", "u2"]));
        assert_eq!(parse(r#"{"id_token":{"sub":{"essential":true}}}"#).subjects(), None);
    }

    #[test]
    fn user_claims_can_be_narrowed_and_keep_sub_and_acr() {
        let mut c =
            parse(r#"{"userinfo":{"name":null,"phone_number":null},"id_token":{"email":null,"acr":null,"sub":null}}"#);
        c.retain_user_claims(|n| scope_of_claim(n) != Some("phone"));
        assert_eq!(c.user_claims(), ["email", "name"]);
        c.retain_user_claims(|_| false);
        assert!(c.userinfo.is_empty());
        assert_eq!(c.id_token.keys().collect::<Vec<_>>(), ["acr", "sub"]);
    }

    #[test]
    fn the_stored_form_reads_back_the_same() {
        let c = parse(r#"{"userinfo":{"name":{"essential":true}},"id_token":{"email":{"values":["a@x"]}}}"#);
        let stored = serde_json::to_string(&c).unwrap_or_default();
        assert_eq!(stored, r#"{"userinfo":{"name":{"essential":true}},"id_token":{"email":{"values":["a@x"]}}}"#);
        assert_eq!(serde_json::from_str::<ClaimsRequest>(&stored).ok(), Some(c));
    }

    #[test]
    fn every_scope_names_its_claims() {
        assert_eq!(claims_of_scope("email").collect::<Vec<_>>(), ["email", "email_verified"]);
        assert_eq!(claims_of_scope("profile").count(), 14);
        assert_eq!(claims_of_scope("openid").count(), 0);
        assert_eq!(scope_of_claim("address"), Some("address"));
        assert_eq!(scope_of_claim("sub"), None);
    }
}
