//! `/audit-events`: the audit log, newest first, by actor, subject, action and time.

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
    caller.require(AdminScope::AuditRead)?;
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
    let more = events.len() > limit as usize;
    events.truncate(limit as usize);
    let next_cursor = more.then(|| events.last().map(|(id, _)| encode_cursor(&id.to_string()))).flatten();
    let items = events
        .into_iter()
        .map(|(id, e)| AuditEventView {
            id,
            at: e.at.secs(),
            actor: e.actor,
            action: e.action,
            target: e.target,
            details: e.details,
        })
        .collect();
    let mut response = axum::Json(AuditPage { items, next_cursor }).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
