//! What every admin API request may carry, parsed in one place: JSON bodies (unknown
//! fields refused, the bad one named), query strings, `If-Match` and `Idempotency-Key`.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, Uri, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize as _;
use serde::de::DeserializeOwned;

use super::problem::{Kind, Problem};

/// The biggest JSON body the admin API reads.
pub const MAX_BODY: usize = 64 * 1024;
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// A JSON body: `application/json`, at most [`MAX_BODY`], every field known.
pub fn json<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, Problem> {
    json_object(headers, body, MAX_BODY)?;
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        let at = if at == "." { String::new() } else { format!(" at `{at}`") };
        Problem::new(Kind::InvalidRequest, format!("the body is not valid{at}: {}", e.inner()))
    })
}

/// A body sent as `application/json`, at most `max` bytes, that is an object (serde
/// would also fill a struct from an array).
pub fn json_object<'b>(headers: &HeaderMap, body: &'b Bytes, max: usize) -> Result<&'b [u8], Problem> {
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !json_type {
        return Err(Problem::new(Kind::InvalidRequest, "send the body as application/json"));
    }
    if body.len() > max {
        return Err(Problem::new(Kind::InvalidRequest, format!("the body is larger than {max} bytes")));
    }
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Problem::new(Kind::InvalidRequest, "the body must be a JSON object"));
    }
    Ok(body)
}

/// A query string (every parameter known, by the type's `deny_unknown_fields`).
pub fn query<T: DeserializeOwned>(uri: &Uri) -> Result<T, Problem> {
    axum::extract::Query::<T>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| Problem::new(Kind::InvalidRequest, format!("the query is not valid: {}", e.body_text())))
}

/// `If-Match` (RFC 9110 §13.1.1), required on updates: 428 without it. Only one strong
/// tag is taken; `*` would defeat the check, so it is refused.
pub fn if_match(headers: &HeaderMap) -> Result<String, Problem> {
    let mut all = headers.get_all(header::IF_MATCH).iter();
    let Some(value) = all.next() else {
        return Err(Problem::new(Kind::PreconditionRequired, "send If-Match with the ETag you read"));
    };
    let value = value.to_str().map_err(|_| Problem::new(Kind::InvalidRequest, "If-Match is malformed"))?.trim();
    let strong =
        value.len() >= 2 && value.starts_with('"') && value.ends_with('"') && !value[1..value.len() - 1].contains('"');
    if all.next().is_some() || !strong {
        return Err(Problem::new(Kind::InvalidRequest, "If-Match must be one ETag, as read (a quoted strong tag)"));
    }
    Ok(value.to_owned())
}

/// `Idempotency-Key`, if sent: 1 to 255 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let mut all = headers.get_all(&IDEMPOTENCY_KEY).iter();
    let Some(value) = all.next() else { return Ok(None) };
    let bad =
        || Problem::new(Kind::InvalidRequest, "Idempotency-Key must be 1 to 255 visible ASCII characters, sent once");
    let value = value.to_str().map_err(|_| bad())?;
    if all.next().is_some() || value.is_empty() || value.len() > 255 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(value.to_owned()))
}

/// An opaque cursor: where the next page starts.
pub fn encode_cursor(position: &str) -> String {
    URL_SAFE_NO_PAD.encode(position)
}

pub fn decode_cursor(cursor: &str) -> Result<String, Problem> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| Problem::new(Kind::InvalidRequest, "the cursor is not one this API gave out"))
}

/// A page size: 1 to 200, 50 when not given.
pub fn page_size(limit: Option<u32>) -> Result<u32, Problem> {
    match limit {
        None => Ok(50),
        Some(n) if (1..=latchkey_core::records::MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => {
            Err(Problem::new(Kind::InvalidRequest, format!("limit must be 1 to {}", latchkey_core::records::MAX_PAGE)))
        }
    }
}

/// A strong entity tag of a representation (RFC 9110 §8.8.3).
pub fn etag_of<T: serde::Serialize>(shown: &T) -> String {
    let bytes = serde_json::to_vec(shown).unwrap_or_default();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
    format!("\"{}\"", hex::encode(&digest.as_ref()[..16]))
}

/// A JSON answer with its `ETag`, never cached.
pub fn tagged<T: serde::Serialize>(status: axum::http::StatusCode, shown: &T) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut response = (status, axum::Json(shown)).into_response();
    if let Ok(tag) = axum::http::HeaderValue::from_str(&etag_of(shown)) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    no_store(response)
}

/// Marks an answer `Cache-Control: no-store` (everything the admin API says is current state).
pub fn no_store(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    response
}

/// A whole number of seconds, also when written `600.0` (JSON Schema's integers include
/// such numbers).
pub fn whole_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else { return Ok(None) };
    if let Some(whole) = n.as_u64() {
        return Ok(Some(whole));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&f) => Ok(Some(f as u64)),
        _ => Err(serde::de::Error::custom(format!("`{n}` is not a whole number of seconds"))),
    }
}

/// A present field, `null` included (`Some(None)`), told apart from an absent one (`None`):
/// `null` removes what a change may remove.
pub fn nullable<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// [`whole_seconds`] that may be `null` (`Some(None)`) or absent (`None`).
pub fn nullable_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    whole_seconds(d).map(Some)
}
