//! A scripted browser: one keep-alive connection, a cookie jar it can throw away, redirects
//! followed by hand (each step is checked), and HTML forms read generically: every hidden
//! input, checked box and the chosen submit button goes back as a browser would send it.

use std::collections::BTreeMap;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use url::Url;

pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

pub struct Browser {
    pub http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

pub struct Page {
    pub status: StatusCode,
    pub url: Url,
    pub location: Option<Url>,
    pub body: String,
}

impl Browser {
    pub fn new() -> Result<Self, String> {
        Ok(Self { http: http_client()?, cookies: BTreeMap::new() })
    }

    /// Forgets every cookie: the next request comes from a new browser (on the same connection).
    pub fn clear_cookies(&mut self) {
        self.cookies.clear();
    }

    pub fn has_cookie(&self, name: &str) -> bool {
        self.cookies.contains_key(name)
    }

    pub async fn get(&mut self, url: Url) -> Result<Page, String> {
        self.send(Method::GET, url, None).await
    }

    pub async fn post_form(&mut self, url: Url, fields: &[(String, String)]) -> Result<Page, String> {
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        self.send(Method::POST, url, Some(body)).await
    }

    async fn send(&mut self, method: Method, url: Url, form: Option<String>) -> Result<Page, String> {
        let mut request = self.http.request(method.clone(), url.clone());
        if !self.cookies.is_empty() {
            let header: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            request = request.header(COOKIE, header.join("; "));
        }
        if let Some(body) = form {
            request = request.header("content-type", "application/x-www-form-urlencoded").body(body);
        }
        let response = request.send().await.map_err(|e| format!("{method} {}: {e}", url.path()))?;
        for value in response.headers().get_all(SET_COOKIE) {
            if let Ok(v) = value.to_str() {
                self.store_cookie(v);
            }
        }
        let status = response.status();
        let location = match response.headers().get(LOCATION).and_then(|v| v.to_str().ok()) {
            Some(l) => Some(url.join(l).map_err(|e| format!("{method} {}: bad Location {l}: {e}", url.path()))?),
            None => None,
        };
        let body = response.text().await.map_err(|e| format!("{method} {}: reading the body: {e}", url.path()))?;
        Ok(Page { status, url, location, body })
    }

    fn store_cookie(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else { return };
        let expired = parts.any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
        if expired || value.is_empty() {
            self.cookies.remove(name);
        } else {
            self.cookies.insert(name.to_owned(), value.to_owned());
        }
    }
}

/// One input of a form, as the page declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub kind: String,
    pub name: String,
    pub value: String,
    pub checked: bool,
    pub autocomplete: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    pub action: String,
    pub fields: Vec<Field>,
    /// Submit buttons that carry a value: (name, value).
    pub buttons: Vec<(String, String)>,
    /// It has a submit control, so a browser without script can send it (a passkey form,
    /// whose button only runs the page's script, has none).
    pub submittable: bool,
}

impl Form {
    /// Whether this is a sign-in form (it asks for a password).
    pub fn wants_password(&self) -> bool {
        self.fields.iter().any(|f| f.kind == "password")
    }

    /// The fields a browser sends: hidden inputs and checked boxes as they are, the text
    /// fields from `fill` by name or autocomplete hint, and the chosen button.
    pub fn submission(&self, fill: &[(&str, &str)], button: Option<&str>) -> Vec<(String, String)> {
        let lookup = |f: &Field| {
            fill.iter().find(|(k, _)| *k == f.name || (!f.autocomplete.is_empty() && *k == f.autocomplete)).map(|p| p.1)
        };
        let mut out = Vec::new();
        for f in &self.fields {
            match f.kind.as_str() {
                "checkbox" | "radio" => {
                    if f.checked {
                        out.push((f.name.clone(), if f.value.is_empty() { "on".into() } else { f.value.clone() }));
                    }
                }
                "submit" | "button" | "image" | "reset" | "file" => {}
                "hidden" => out.push((f.name.clone(), f.value.clone())),
                _ => out.push((f.name.clone(), lookup(f).map_or_else(|| f.value.clone(), str::to_owned))),
            }
        }
        if let Some(wanted) = button
            && let Some((name, value)) = self.buttons.iter().find(|(_, v)| v == wanted)
        {
            out.push((name.clone(), value.clone()));
        }
        out
    }
}

/// The first `<form method="post">` of a page that a browser without script can submit.
pub fn post_form(html: &str) -> Option<Form> {
    let mut rest = html;
    while let Some(at) = find_tag(rest, "form") {
        let (attrs, after) = tag_attributes(&rest[at..])?;
        let end = after.find("</form").unwrap_or(after.len());
        let inner = &after[..end];
        rest = &after[end..];
        let form = Form { action: attr(&attrs, "action").unwrap_or_default(), ..controls(inner) };
        if attr(&attrs, "method").is_some_and(|m| m.eq_ignore_ascii_case("post")) && form.submittable {
            return Some(form);
        }
    }
    None
}

fn controls(html: &str) -> Form {
    let mut form = Form { action: String::new(), fields: Vec::new(), buttons: Vec::new(), submittable: false };
    let mut rest = html;
    loop {
        let input = find_tag(rest, "input");
        let button = find_tag(rest, "button");
        let (at, is_input) = match (input, button) {
            (Some(i), Some(b)) if b < i => (b, false),
            (Some(i), _) => (i, true),
            (None, Some(b)) => (b, false),
            (None, None) => break,
        };
        let Some((attrs, after)) = tag_attributes(&rest[at..]) else { break };
        rest = after;
        let default_kind = if is_input { "text" } else { "submit" };
        let submits = attr(&attrs, "type").unwrap_or_else(|| default_kind.into()).to_ascii_lowercase();
        form.submittable |= matches!(submits.as_str(), "submit" | "image");
        let Some(name) = attr(&attrs, "name") else { continue };
        let value = attr(&attrs, "value").unwrap_or_default();
        let kind = attr(&attrs, "type").unwrap_or_else(|| if is_input { "text".into() } else { "submit".into() });
        if is_input {
            form.fields.push(Field {
                kind: kind.to_ascii_lowercase(),
                name,
                value,
                checked: attrs.iter().any(|(k, _)| k == "checked"),
                autocomplete: attr(&attrs, "autocomplete").unwrap_or_default(),
            });
        } else if kind.eq_ignore_ascii_case("submit") {
            form.buttons.push((name, value));
        }
    }
    form
}

/// Offset of the next `<tag` (followed by whitespace, `>` or `/`), case-insensitively.
fn find_tag(html: &str, tag: &str) -> Option<usize> {
    let lower = html.to_ascii_lowercase();
    let needle = format!("<{tag}");
    let mut from = 0;
    while let Some(i) = lower[from..].find(&needle) {
        let at = from + i;
        match lower.as_bytes().get(at + needle.len()) {
            Some(b' ' | b'\t' | b'\n' | b'\r' | b'>' | b'/') => return Some(at),
            _ => from = at + needle.len(),
        }
    }
    None
}

type Attributes = Vec<(String, String)>;

/// The attributes of the tag that `html` starts with, and the text after the tag.
fn tag_attributes(html: &str) -> Option<(Attributes, &str)> {
    let bytes = html.as_bytes();
    let mut i = html.find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')?;
    let mut attrs = Vec::new();
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        match bytes.get(i) {
            None => return None,
            Some(b'>') => return Some((attrs, &html[i + 1..])),
            Some(_) => {}
        }
        let name_start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() && !matches!(bytes[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let name = html[name_start..i].to_ascii_lowercase();
        let mut value = String::new();
        if bytes.get(i) == Some(&b'=') {
            i += 1;
            match bytes.get(i) {
                Some(&q @ (b'"' | b'\'')) => {
                    let close = html[i + 1..].find(q as char)? + i + 1;
                    value = decode_entities(&html[i + 1..close]);
                    i = close + 1;
                }
                _ => {
                    let start = i;
                    while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                        i += 1;
                    }
                    value = decode_entities(&html[start..i]);
                }
            }
        }
        attrs.push((name, value));
    }
}

fn attr(attrs: &Attributes, name: &str) -> Option<String> {
    attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(semi) = rest.find(';').filter(|&i| i <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGIN: &str = r#"<html><body><form method="get" action="/search"><input name="q"></form>
<form method="post" action="/login/passkey"><input type="hidden" name="credential" value="">
  <button type="button" id="passkey-button">Sign in with a passkey</button></form>
<form method="post" action="/login">
  <input type="hidden" name="csrf" value="a&amp;b&#x2f;c">
  <input type="hidden" name="req" value='r1'>
  <input id="username" name="username" type="text" autocomplete="username" value="" required autofocus>
  <input id="password" name="password" type="password" autocomplete="current-password" required>
  <input type="checkbox" name="remember" value="yes" checked>
  <input type="checkbox" name="newsletter">
  <button type="submit">Sign in</button>
</form></body></html>"#;

    #[test]
    fn every_hidden_input_and_checked_box_goes_back_with_the_credentials() {
        let form = post_form(LOGIN).unwrap_or_else(|| panic!("no form"));
        assert_eq!(form.action, "/login");
        assert!(form.wants_password());
        let sent = form.submission(&[("username", "bench"), ("current-password", "pw")], None);
        let pairs: Vec<(&str, &str)> = sent.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [("csrf", "a&b/c"), ("req", "r1"), ("username", "bench"), ("password", "pw"), ("remember", "yes")]
        );
    }

    #[test]
    fn the_chosen_button_is_sent() {
        let html = r#"<form method="post" action="/consent" class="actions">
  <input type="hidden" name="csrf" value="x"><input type="hidden" name="req" value="y">
  <button type="submit" name="decision" value="allow">Allow</button>
  <button type="submit" name="decision" value="deny" class="secondary">Deny</button></form>"#;
        let form = post_form(html).unwrap_or_else(|| panic!("no form"));
        assert!(!form.wants_password());
        let sent = form.submission(&[], Some("allow"));
        assert_eq!(sent.last(), Some(&("decision".to_owned(), "allow".to_owned())));
        assert_eq!(sent.len(), 3);
    }
}
