//! `latchkey user import FILE`: users from another system, one JSON object per line
//! (JSON Lines), with the password hashes that system stored (Argon2id or bcrypt, verified
//! on first sign-in and then replaced: `latchkey_core::crypto::password`).
//!
//! All or nothing: every line is checked first, then every user is stored in one
//! transaction (`UserStore::import_users`). Every problem is reported with its line number,
//! and no message ever repeats a password hash, not even one put in the wrong field: values
//! are never echoed except usernames and subject ids, which parse only when they are plain.

use std::collections::HashMap;

use crate::ServiceError;
use latchkey_core::crypto::{PasswordHash, password};
use latchkey_core::domain::{DisplayName, Email, ProfileClaims, SubjectId, TenantId, Username};
use latchkey_core::records::{Actor, ImportOutcome, NewUser};
use serde_json::{Map, Value};

/// Fields a line may have.
const FIELDS: [&str; 7] = ["username", "email", "email_verified", "name", "claims", "password_hash", "sub"];

/// Claims the server sets itself (RFC 7519 §4.1; OIDC Core §2, §3.1.3.6, §5.1; RFC 9068 §2.2;
/// OIDC Back-Channel Logout §2.4), or that have a field of their own on the line: an import
/// cannot set them.
const REGISTERED_CLAIMS: [&str; 26] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "azp",
    "at_hash",
    "c_hash",
    "s_hash",
    "sid",
    "events",
    "client_id",
    "scope",
    "cnf",
    "act",
    "name",
    "email",
    "email_verified",
    "preferred_username",
    "updated_at",
];

/// A problem with one line (numbered from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    pub line: usize,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{} line(s) have problems; no user was imported", .0.len())]
    Lines(Vec<LineProblem>),
    #[error("the file has no users")]
    Empty,
    #[error("{0}")]
    Service(#[from] ServiceError),
}

/// The users of a file, each with its line number.
struct Parsed {
    users: Vec<NewUser>,
    lines: Vec<usize>,
}

/// Checks every line of `text` and stores all its users, or none. Returns how many.
pub async fn import(
    services: &crate::Latchkey,
    tenant: &TenantId,
    text: &str,
    actor: &Actor,
) -> Result<u64, ImportError> {
    let parsed = parse(text)?;
    if parsed.users.is_empty() {
        return Err(ImportError::Empty);
    }
    match services.users().import(tenant, &parsed.users, actor).await? {
        ImportOutcome::Imported(n) => Ok(n),
        ImportOutcome::Conflicts(conflicts) => Err(ImportError::Lines(
            conflicts
                .into_iter()
                .map(|c| {
                    let u = &parsed.users[c.index];
                    let message = match (c.field, c.taken_by) {
                        ("sub", "client") => format!("sub `{}` is the id of a client", u.sub),
                        ("sub", _) => format!("sub `{}` belongs to an existing user", u.sub),
                        ("username", _) => format!("username `{}` belongs to an existing user", u.username),
                        _ => "the verified email address belongs to an existing user".to_owned(),
                    };
                    LineProblem { line: parsed.lines[c.index], message }
                })
                .collect(),
        )),
    }
}

/// Every line parsed, and the file's own duplicates found; every problem reported.
fn parse(text: &str) -> Result<Parsed, ImportError> {
    let mut parsed = Parsed { users: Vec::new(), lines: Vec::new() };
    let mut problems = Vec::new();
    let mut seen: HashMap<(&'static str, String), usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let user = match parse_line(raw) {
            Ok(user) => user,
            Err(message) => {
                problems.push(LineProblem { line, message });
                continue;
            }
        };
        let mut keys = vec![("username", user.username.to_string()), ("sub", user.sub.to_string())];
        if let (Some(email), true) = (&user.email, user.email_verified) {
            // As the store keeps verified addresses unique: normalised.
            keys.push(("verified email", email.normalized()));
        }
        let mut duplicate = None;
        for (field, value) in keys {
            let shown = if field == "verified email" { String::new() } else { format!(" `{value}`") };
            if let Some(first) = seen.get(&(field, value.clone())) {
                duplicate.get_or_insert_with(|| format!("{field}{shown} is also on line {first}"));
            } else {
                seen.insert((field, value), line);
            }
        }
        match duplicate {
            Some(message) => problems.push(LineProblem { line, message }),
            None => {
                parsed.users.push(user);
                parsed.lines.push(line);
            }
        }
    }
    if problems.is_empty() { Ok(parsed) } else { Err(ImportError::Lines(problems)) }
}

/// A line's user, or what is wrong with it (never quoting a value that could be a hash).
fn parse_line(raw: &str) -> Result<NewUser, String> {
    // serde_json's syntax errors name a position, never the text.
    let value: Value = serde_json::from_str(raw).map_err(|e| format!("not valid JSON ({e})"))?;
    let Value::Object(mut fields) = value else { return Err("a line must be one JSON object".into()) };
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!("unknown field {}; a line may have {}", quoted_name(unknown), FIELDS.join(", ")));
    }
    let username = match fields.remove("username") {
        Some(Value::String(s)) => Username::parse(&s).map_err(|e| format!("username: {}", e.reason))?,
        Some(_) => return Err("`username` must be a string".into()),
        None => return Err("`username` is missing".into()),
    };
    let email = text(&mut fields, "email")?
        .map(|s| Email::parse(&s))
        .transpose()
        .map_err(|e| format!("email: {}", e.reason))?;
    let email_verified = match fields.remove("email_verified") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err("`email_verified` must be true or false".into()),
    };
    if email_verified && email.is_none() {
        return Err("`email_verified` is true but there is no `email`".into());
    }
    let name = text(&mut fields, "name")?
        .map(|s| DisplayName::parse(&s))
        .transpose()
        .map_err(|e| format!("name: {}", e.reason))?;
    let profile = match fields.remove("claims") {
        None | Some(Value::Null) => ProfileClaims::default(),
        Some(Value::Object(claims)) => profile_claims(claims)?,
        Some(_) => return Err("`claims` must be an object".into()),
    };
    let password_hash = match text(&mut fields, "password_hash")? {
        Some(hash) => {
            let hash = PasswordHash::from_stored(hash);
            // The bounds are checked here so a bad hash is refused now, not at sign-in.
            password::inspect(&hash).map_err(|e| format!("password_hash: {e}"))?;
            Some(hash.as_str().to_owned())
        }
        None => None,
    };
    let sub = match text(&mut fields, "sub")? {
        Some(s) => SubjectId::parse(&s).map_err(|e| format!("sub: {}", e.reason))?,
        None => SubjectId::generate(),
    };
    Ok(NewUser { sub, username, email, email_verified, name, profile, password_hash, service_account: false })
}

/// An optional string field (`null` is absent).
fn text(fields: &mut Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match fields.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("`{name}` must be a string")),
    }
}

/// The standard profile claims of `claims`; registered claims and others are refused.
fn profile_claims(claims: Map<String, Value>) -> Result<ProfileClaims, String> {
    for key in claims.keys() {
        if REGISTERED_CLAIMS.contains(&key.as_str()) {
            return Err(format!("`claims` cannot set `{key}`: the server sets that claim itself"));
        }
        if !ProfileClaims::NAMES.contains(&key.as_str()) {
            return Err(format!("`claims` has {}, which is not a standard profile claim", quoted_name(key)));
        }
    }
    // One claim at a time, so the message names the claim without quoting its value.
    for (key, value) in &claims {
        let one = Value::Object(Map::from_iter([(key.clone(), value.clone())]));
        if serde_json::from_value::<ProfileClaims>(one).is_err() {
            return Err(format!("`claims.{key}` has a value of the wrong type"));
        }
    }
    serde_json::from_value(Value::Object(claims)).map_err(|_| "`claims` cannot be read".to_owned())
}

/// A field name for a message: quoted when it looks like a name, else not repeated (it
/// could be anything, a hash pasted as a key included).
fn quoted_name(name: &str) -> String {
    if !name.is_empty() && name.len() <= 40 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        format!("`{name}`")
    } else {
        "a field whose name is not a plain word".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<LineProblem> {
        match parse(text) {
            Err(ImportError::Lines(p)) => p,
            Ok(p) => panic!("expected problems, parsed {} users", p.users.len()),
            Err(e) => panic!("{e}"),
        }
    }

    const HASH: &str = "$2b$04$EGdrhbKUv8Oc9vGiXX0HQOxSg445d458Muh7DAHskb6QbtCvdxcie";

    #[test]
    fn every_bad_and_duplicate_line_is_reported_without_any_hash() {
        let text = [
            format!(r#"{{"username": "ada", "email": "ada@example.com", "email_verified": true, "password_hash": "{HASH}"}}"#),
            format!(r#"{{"username": "bob", "email_verified": "{HASH}"}}"#),
            String::new(),
            r#"{"username": "ada"}"#.to_owned(),
            r#"{"username": "cy", "claims": {"sub": "x"}}"#.to_owned(),
            format!(r#"{{"username": "di", "password_hash": "$2b$15{}"}}"#, &HASH[6..]),
            format!(r#"{{"username": "ed", "{HASH}": 1}}"#),
            format!("{{\"username\": \"fay\", \"password_hash\": \"{HASH}\" oops"),
            r#"{"username": "gus", "email": "ada@example.com", "email_verified": true}"#.to_owned(),
            r#"{"username": "hal", "claims": {"given_name": 7}}"#.to_owned(),
        ]
        .join("\n");
        let found = problems(&text);
        let lines: Vec<usize> = found.iter().map(|p| p.line).collect();
        assert_eq!(lines, [2, 4, 5, 6, 7, 8, 9, 10], "{found:?}");
        for p in &found {
            assert!(!p.message.contains(&HASH[7..30]), "line {} repeats the hash: {}", p.line, p.message);
        }
        assert!(found[1].message.contains("also on line 1"), "{found:?}");
        assert!(found[2].message.contains("`sub`"), "{found:?}");
        assert!(found[3].message.contains("bcrypt cost 15"), "{found:?}");
        assert!(found[6].message.contains("verified email is also on line 1"), "{found:?}");
    }

    #[test]
    fn a_good_line_keeps_its_sub_claims_and_hash() {
        let line = format!(
            r#"{{"username": "ada", "email": "ada@example.com", "email_verified": true, "name": "Ada",
                "claims": {{"given_name": "Ada", "locale": "en"}}, "password_hash": "{HASH}", "sub": "auth0|42"}}"#
        )
        .replace('\n', " ");
        let parsed = parse(&line).unwrap_or_else(|e| panic!("{e}"));
        let u = &parsed.users[0];
        assert_eq!((u.sub.as_str(), u.username.as_str()), ("auth0|42", "ada"));
        assert_eq!(u.profile.given_name.as_deref(), Some("Ada"));
        assert_eq!(u.password_hash.as_deref(), Some(HASH));
    }
}
