//! Cookies: parsing the request's, and writing ours with the flags every cookie of ours carries
//! (`HttpOnly`, `SameSite`, and `Secure` with a `__Host-` name under HTTPS).

use axum::http::{HeaderMap, HeaderValue, header};

pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Our cookie names: `__Host-` prefixed under HTTPS, so no subdomain can set or shadow them.
pub fn name(https: bool, base: &str) -> String {
    if https { format!("__Host-{base}") } else { base.to_owned() }
}

/// A `Set-Cookie` value. `SameSite=Lax` on the session: it must reach us on the top-level
/// navigation from a relying party on another site (the authorization request), and must
/// not on cross-site subrequests or POSTs (CSRF). `max_age` None is a browser-session cookie.
pub fn set(https: bool, base: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let mut cookie = format!("{}={value}; Path=/; HttpOnly; SameSite=Lax", name(https, base));
    if https {
        cookie.push_str("; Secure");
    }
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("invalid=1; Max-Age=0"))
}

/// A cookie for a parent domain (the forward-auth cookie): `__Secure-` prefixed under HTTPS
/// (`__Host-` forbids a `Domain`), so no plain-HTTP page can set or overwrite it.
pub fn set_on_domain(https: bool, base: &str, value: &str, domain: &str, max_age: u64) -> HeaderValue {
    let name = domain_cookie_name(https, base);
    let secure = if https { "; Secure" } else { "" };
    let cookie = format!("{name}={value}; Domain={domain}; Path=/; HttpOnly; SameSite=Lax{secure}; Max-Age={max_age}");
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("invalid=1; Max-Age=0"))
}

/// The name a parent-domain cookie has (see [`set_on_domain`]).
pub fn domain_cookie_name(https: bool, base: &str) -> String {
    if https { format!("__Secure-{base}") } else { base.to_owned() }
}

pub fn clear(https: bool, base: &str) -> HeaderValue {
    set(https, base, "", Some(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name_and_secured_under_https() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; latchkey-session=abc; b=2"));
        assert_eq!(get(&h, "latchkey-session"), Some("abc"));
        assert_eq!(get(&h, "missing"), None);
        let secure = set(true, "latchkey-session", "v", None);
        assert_eq!(
            secure.to_str().unwrap_or_default(),
            "__Host-latchkey-session=v; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(clear(false, "x").to_str().unwrap_or_default().ends_with("Max-Age=0"));
    }
}
