//! The shapes of strings the admin API takes, for the OpenAPI document: each pattern is a
//! subset of what the matching domain type's `parse` accepts, so a value the document
//! allows is never refused as malformed.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

macro_rules! string_schema {
    ($(#[$doc:meta])* $name:ident, $pattern:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new().schema_type(Type::String).pattern(Some($pattern)).into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

macro_rules! enum_schema {
    ($(#[$doc:meta])* $name:ident, $values:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let values: Vec<&str> = $values.iter().map(|v| v.as_str()).collect();
                ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values)).into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

enum_schema!(
    /// An OAuth grant type Latchkey supports.
    GrantTypeName,
    latchkey_core::domain::GrantType::ALL
);
enum_schema!(
    /// How a client authenticates at the token endpoint.
    AuthMethodName,
    latchkey_core::domain::TokenEndpointAuthMethod::ALL
);
enum_schema!(
    /// A JWS algorithm for ID tokens.
    SigningAlgName,
    latchkey_core::domain::SigningAlg::ALL
);
enum_schema!(
    /// A client type (RFC 6749 §2.1).
    ClientKindName,
    latchkey_core::domain::ClientKind::ALL
);
/// An absolute URI as the admin API takes it: a scheme, then visible ASCII.
pub const URI: &str = r"^[A-Za-z][A-Za-z0-9+.-]{0,31}:[!-~]{1,1960}$";

string_schema!(
    /// An absolute URI (at most 2,000 characters).
    UriText,
    URI
);
string_schema!(
    /// A client id.
    ClientIdText,
    "^[A-Za-z0-9._~-]{1,128}$"
);

/// Admin entitlements as Latchkey defines them; others anything outside `admin:`.
pub const ENTITLEMENT: &str = r"^(?:admin:(?:server:read|users:read|users:write|clients:read|clients:write|access:read|access:write|keys|audit:read)|(?!admin:)[a-z0-9][a-z0-9._:/-]{0,127})$";

string_schema!(
    /// One right a role confers: an admin scope, or any other (`reports:read`, `docs/write`).
    EntitlementName,
    ENTITLEMENT
);
string_schema!(
    /// A scope token (RFC 6749 §3.3).
    ScopeToken,
    r"^[!#-\[\]-~]{1,128}$"
);
string_schema!(
    /// A path an API key may be used for: segments, and `/*` at the end for everything below.
    RouteText,
    r"^(?:/[A-Za-z0-9_-]{1,32}){1,6}(?:/\*)?$"
);
string_schema!(
    /// An HTTP method.
    MethodName,
    "^(?:GET|HEAD|OPTIONS|POST|PUT|PATCH|DELETE)$"
);

/// Usernames through the admin API: ASCII letters, digits and `. _ @ -`, 1 to 64, exactly
/// as the document's pattern says (the CLI also takes Unicode letters).
pub const USERNAME: &str = "^[A-Za-z0-9._@-]{1,64}$";
/// A display name: 1 to 200 characters, no control characters, no space at either end.
pub const DISPLAY_NAME: &str = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\x00-\x1f\x7f-\x9f]{0,198}[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$";
/// An email address as the admin API takes it: an ASCII local part of at most 64 characters
/// without spaces, `<`, `>` or `@`, and an ASCII domain of at most 253.
pub const EMAIL: &str = r"^[!-;=?A-~]{1,64}@(?=.{1,253}$)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*$";

string_schema!(
    /// A username as the admin API takes it.
    UsernameText,
    USERNAME
);
string_schema!(
    /// A display name.
    DisplayNameText,
    DISPLAY_NAME
);
string_schema!(
    /// An email address as the admin API takes it.
    EmailText,
    EMAIL
);

/// Whether `raw` is a role's or group's description as the document's pattern says: at most
/// 500 characters, no control characters.
pub fn is_description(raw: &str) -> bool {
    raw.chars().count() <= 500 && !raw.chars().any(char::is_control)
}

/// A scope's description: like a display name, up to 500 characters.
pub const SCOPE_DESCRIPTION: &str = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\x00-\x1f\x7f-\x9f]{0,498}[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$";
/// An API resource's identifier as the admin API takes it: an https URL of a host (letters
/// first in each label, never an IDNA `xn--` label) and a short path.
pub const RESOURCE_IDENTIFIER: &str =
    r"^https://(?!xn--)[a-z][a-z0-9-]{0,62}(?:\.(?!xn--)[a-z][a-z0-9-]{0,62}){0,3}(?:/[A-Za-z0-9_~-]{1,32}){0,4}$";

string_schema!(
    /// A scope's description.
    ScopeDescriptionText,
    SCOPE_DESCRIPTION
);
string_schema!(
    /// An API resource's identifier.
    ResourceIdentifierText,
    RESOURCE_IDENTIFIER
);

/// Whether `raw` is text of 1 to `max` characters without control characters or spaces at
/// either end ([`DISPLAY_NAME`], [`SCOPE_DESCRIPTION`]).
pub fn is_text(raw: &str, max: usize) -> bool {
    let end_ok = |c: Option<char>| c.is_some_and(|c| !c.is_control() && !c.is_whitespace());
    (1..=max).contains(&raw.chars().count())
        && !raw.chars().any(char::is_control)
        && end_ok(raw.chars().next())
        && end_ok(raw.chars().last())
}

/// Whether `raw` matches [`RESOURCE_IDENTIFIER`].
pub fn is_resource_identifier(raw: &str) -> bool {
    let Some(rest) = raw.strip_prefix("https://") else { return false };
    let (host, path) = rest.split_once('/').map_or((rest, None), |(h, p)| (h, Some(p)));
    let labels: Vec<&str> = host.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.as_bytes()[0].is_ascii_lowercase()
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with("xn--")
    };
    let segments: Vec<&str> = path.map(|p| p.split('/').collect()).unwrap_or_default();
    let segment_ok = |s: &&str| {
        (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'~' | b'-'))
    };
    (1..=4).contains(&labels.len())
        && labels.iter().all(label_ok)
        && segments.len() <= 4
        && segments.iter().all(segment_ok)
}

/// Whether `raw` matches [`USERNAME`].
pub fn is_username(raw: &str) -> bool {
    (1..=64).contains(&raw.len())
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
}

/// Whether `raw` matches [`DISPLAY_NAME`].
pub fn is_uri_text(raw: &str) -> bool {
    let Some((scheme, rest)) = raw.split_once(':') else { return false };
    let mut letters = scheme.bytes();
    letters.next().is_some_and(|b| b.is_ascii_alphabetic())
        && scheme.len() <= 32
        && letters.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-'))
        && (1..=1960).contains(&rest.len())
        && rest.bytes().all(|b| b.is_ascii_graphic())
}

pub fn is_display_name(raw: &str) -> bool {
    is_text(raw, 200)
}

/// Whether `raw` matches [`EMAIL`].
pub fn is_email(raw: &str) -> bool {
    let Some((local, domain)) = raw.split_once('@') else { return false };
    let local_ok = (1..=64).contains(&local.len())
        && local.bytes().all(|b| (b'!'..=b'~').contains(&b) && !matches!(b, b'<' | b'>' | b'@'));
    let domain_ok = (1..=253).contains(&domain.len())
        && domain.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checks_hold_what_the_patterns_say() {
        assert!(is_username("Ada.L@x-1") && !is_username("ädа") && !is_username(" ada") && !is_username(""));
        assert!(!is_username(&"a".repeat(65)));
        assert!(is_uri_text("https://a.example/cb?x=1") && is_uri_text("com.example.app:/cb"));
        assert!(!is_uri_text("https://a.example/a b") && !is_uri_text("https://ä.example/") && !is_uri_text("/cb"));
        assert!(
            !is_uri_text("1http://a")
                && !is_uri_text("https:")
                && !is_uri_text(&format!("https://{}", "a".repeat(1960)))
        );
        assert!(is_display_name("José Ñúñez") && is_display_name("a"));
        assert!(!is_display_name(" Ada") && !is_display_name("Ada\u{a0}") && !is_display_name("A\u{85}b"));
        assert!(!is_display_name(&"a".repeat(201)) && !is_display_name(""));
        assert!(is_email("a+b@mail.example.com") && is_email("x@localhost"));
        assert!(!is_email("a b@x.y") && !is_email("a@b@c") && !is_email("a@x..y") && !is_email("ä@x.y"));
        assert!(!is_email(&format!("{}@x", "a".repeat(65))) && !is_email(&format!("a@{}", "b".repeat(254))));
        assert!(is_resource_identifier("https://api.example.com/v1") && is_resource_identifier("https://a"));
        assert!(!is_resource_identifier("https://xn--a.example") && !is_resource_identifier("https://1.2.3.4"));
        assert!(!is_resource_identifier("http://api.example") && !is_resource_identifier("https://a/"));
        assert!(!is_resource_identifier("https://a/b/c/d/e/f") && !is_resource_identifier("https://A.example"));
    }
}
