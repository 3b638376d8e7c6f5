//! `/audit-events`: the audit log, newest first, by actor, subject, action and time, and as
//! JSON Lines; `/audit-chain`: its head and the check of the whole chain.

use axum::extract::State;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use latchkey_core::domain::AdminScope;
use latchkey_core::records::AuditQuery;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::problem::{Kind, Problem, ProblemBody};
use super::request::{decode_cursor, encode_cursor, page_size, query};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventView {
    /// The event's position in the log.
    pub id: i64,
    /// Seconds since the epoch.
    pub at: i64,
    /// `cli`, `system`, `user:SUB`, `client:ID`, `admin-api:CLIENT[:user:SUB]`.
    pub actor: String,
    pub action: String,
    /// What it happened to (a user's subject id, a client id, …).
    pub target: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// Its place in the tamper-evident chain; null for the second or so before the
    /// chain's writer numbers it.
    pub seq: Option<i64>,
    /// Its subject was erased: `actor` and `target` are pseudonyms and `details` is empty.
    pub erased: bool,
}

fn view(id: i64, e: latchkey_core::records::AuditEvent) -> AuditEventView {
    AuditEventView {
        id,
        at: e.at.secs(),
        actor: e.actor,
        action: e.action,
        target: e.target,
        details: e.details,
        seq: e.seq,
        erased: e.erased,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEventView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    #[param(max_length = 300)]
    actor: Option<String>,
    /// The subject of the event (the audit log's `target`).
    #[param(max_length = 300)]
    subject: Option<String>,
    #[param(max_length = 100)]
    action: Option<String>,
    /// Events at or after this time (seconds since the epoch).
    since: Option<i64>,
    /// Events before this time.
    until: Option<i64>,
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    cursor: Option<String>,
}

fn bounded(value: Option<String>, name: &str, max: usize) -> Result<Option<String>, Problem> {
    match value {
        Some(v) if v.chars().count() > max => {
            Err(Problem::new(Kind::InvalidRequest, format!("{name} is at most {max} characters")))
        }
        other => Ok(other),
    }
}

#[utoipa::path(get, path = "/audit-events", tag = "audit", params(AuditParams),
    description = "The audit log, newest first. Needs `admin:audit:read`.",
    responses((status = 200, body = AuditPage), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn events(State(state): State<AppState>, caller: Caller, uri: Uri) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::AuditRead)?;
    let p: AuditParams = query(&uri)?;
    let limit = page_size(p.limit)?;
    let before_id = match p.cursor {
        Some(c) => Some(
            decode_cursor(&c)?
                .parse::<i64>()
                .map_err(|_| Problem::new(Kind::InvalidRequest, "the cursor is not one this API gave out"))?,
        ),
        None => None,
    };
    let q = AuditQuery {
        actor: bounded(p.actor, "actor", 300)?,
        target: bounded(p.subject, "subject", 300)?,
        action: bounded(p.action, "action", 100)?,
        since: p.since,
        until: p.until,
        before_id,
        limit: limit + 1,
        ..AuditQuery::default()
    };
    let tenant = state.services.request_tenant();
    let mut events = state.services.audit().query(&tenant, &q).await?;
    // Reading the log is reading personal data: on record (after the read, so a page does
    // not show its own reading), about the subject searched for.
    let about = q.target.clone().unwrap_or_else(|| "#audit-log".to_owned());
    state.services.admin().record_read(&tenant, admin, &about, "audit_events", serde_json::json!({})).await?;
    let more = events.len() > limit as usize;
    events.truncate(limit as usize);
    let next_cursor = more.then(|| events.last().map(|(id, _)| encode_cursor(&id.to_string()))).flatten();
    let items = events.into_iter().map(|(id, e)| view(id, e)).collect();
    let mut response = axum::Json(AuditPage { items, next_cursor }).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    #[param(max_length = 300)]
    actor: Option<String>,
    /// The subject of the event (the audit log's `target`).
    #[param(max_length = 300)]
    subject: Option<String>,
    #[param(max_length = 100)]
    action: Option<String>,
    /// Events at or after this time (seconds since the epoch).
    since: Option<i64>,
    /// Events before this time.
    until: Option<i64>,
}

/// An export holds at most this many events; a longer one is refused, to be narrowed by time.
const MAX_EXPORT: u64 = 200_000;

#[utoipa::path(get, path = "/audit-events/export", tag = "audit", params(ExportParams),
    description = "Every event the filters select, oldest first, as JSON Lines (one event per line, as `/audit-events` \
        shows it), at most 200,000: narrow a longer log with `since` and `until`. The export is itself recorded. \
        Needs `admin:audit:read`.",
    responses((status = 200, content_type = "application/jsonl", body = String),
        (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn export(State(state): State<AppState>, caller: Caller, uri: Uri) -> Result<Response, Problem> {
    let admin = caller.require(AdminScope::AuditRead)?;
    let p: ExportParams = query(&uri)?;
    let q = AuditQuery {
        actor: bounded(p.actor, "actor", 300)?,
        target: bounded(p.subject, "subject", 300)?,
        action: bounded(p.action, "action", 100)?,
        since: p.since,
        until: p.until,
        ..AuditQuery::default()
    };
    let tenant = state.services.request_tenant();
    let mut body = Vec::new();
    let mut count = 0u64;
    state
        .services
        .audit()
        .export(&tenant, &q, &admin.actor, |(id, e)| {
            count += 1;
            if count > MAX_EXPORT {
                return Err(Problem::new(
                    Kind::Invalid,
                    format!("the export holds more than {MAX_EXPORT} events: narrow it with since and until"),
                ));
            }
            serde_json::to_writer(&mut body, &view(*id, e.clone()))
                .map_err(|e| Problem::new(Kind::Unavailable, format!("cannot write the export: {e}")))?;
            body.push(b'\n');
            Ok(())
        })
        .await?;
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/jsonl"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChainHeadView {
    /// The newest chained entry's position (0: none yet) and MAC.
    pub seq: i64,
    pub mac: Option<String>,
    /// When the newest signed checkpoint was written (seconds since the epoch).
    pub checkpoint_at: Option<i64>,
    /// The Ed25519 key (base64url) checkpoint signatures verify with.
    pub checkpoint_public_key: String,
}

#[utoipa::path(get, path = "/audit-chain", tag = "audit",
    description = "The head of the tamper-evident audit chain: record it outside Latchkey, so a later shorter chain \
        shows. Needs `admin:audit:read`.",
    responses((status = 200, body = ChainHeadView), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn chain_head(State(state): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    caller.require(AdminScope::AuditRead)?;
    let tenant = state.services.request_tenant();
    let audit = state.services.audit();
    let head = audit.head(&tenant).await?;
    let view = ChainHeadView {
        seq: head.as_ref().map_or(0, |h| h.seq),
        mac: head.as_ref().map(|h| h.mac.clone()),
        checkpoint_at: head.as_ref().map(|h| h.checkpoint_at).filter(|at| *at > 0),
        checkpoint_public_key: audit.checkpoint_public_key(),
    };
    let mut response = axum::Json(view).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VerifyParams {
    /// A position the chain was seen at before: a chain that now ends before it was cut off.
    #[param(minimum = 0)]
    expect_seq: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerificationView {
    /// No problem found.
    pub intact: bool,
    pub entries: u64,
    pub first_seq: i64,
    pub last_seq: i64,
    pub head_mac: Option<String>,
    /// Entries written but not yet chained.
    pub waiting: u64,
    /// What was found, each with where (`kind`) and a sentence (`detail`): `changed`,
    /// `missing`, `tail_cut`, `beyond_head`, `head_changed`, `bad_checkpoint`, `bad_base`,
    /// `shorter_than_seen`, `duplicate`, `unaccounted`, `below_base`, `refused`,
    /// `head_missing`.
    #[schema(value_type = Vec<Object>)]
    pub problems: Vec<serde_json::Value>,
    pub warnings: Vec<String>,
}

#[utoipa::path(get, path = "/audit-chain/verification", tag = "audit", params(VerifyParams),
    description = "Walks the whole audit chain and reports every changed, deleted, inserted or cut-off entry. \
        Needs `admin:audit:read`.",
    responses((status = 200, body = VerificationView), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn verify_chain(State(state): State<AppState>, caller: Caller, uri: Uri) -> Result<Response, Problem> {
    caller.require(AdminScope::AuditRead)?;
    let p: VerifyParams = query(&uri)?;
    if p.expect_seq.is_some_and(|s| s < 0) {
        return Err(Problem::new(Kind::InvalidRequest, "expect_seq is a position: 0 or more"));
    }
    let tenant = state.services.request_tenant();
    let v = state.services.audit().verify(&tenant, p.expect_seq).await?;
    let problems = v
        .problems
        .iter()
        .map(|problem| {
            let mut value = serde_json::to_value(problem).unwrap_or_default();
            if let Some(map) = value.as_object_mut() {
                map.insert("detail".into(), serde_json::Value::String(problem.to_string()));
            }
            value
        })
        .collect();
    let view = VerificationView {
        intact: v.intact(),
        entries: v.entries,
        first_seq: v.first_seq,
        last_seq: v.last_seq,
        head_mac: v.head_mac,
        waiting: v.waiting,
        problems,
        warnings: v.warnings,
    };
    let mut response = axum::Json(view).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
