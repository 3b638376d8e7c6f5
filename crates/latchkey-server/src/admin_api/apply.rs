//! `POST /apply`: the document `latchkey apply` takes, as JSON, for automation. It takes no
//! secret references (the server never reads its own files or environment for a caller);
//! secrets made for new clients are in the answer, once.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use latchkey_core::domain::AdminScope;
use latchkey_service::ServiceError;
use latchkey_service::apply::{Document, Format, Options, Summary};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::problem::{Kind, Problem, ProblemBody, invalid};
use super::request::{json_object, no_store, query};
use super::schema;
use crate::state::AppState;

/// The largest document the API reads.
pub const MAX_DOCUMENT_BODY: usize = 1024 * 1024;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ApplyQuery {
    /// Plan only: answer what would change, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Also remove what `apply` created earlier and the document no longer lists.
    #[serde(default)]
    pub prune: bool,
}

/// One object of the run and what it does to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    #[schema(value_type = String, pattern = "^(scope|role|client|resource|group|user)$")]
    pub kind: String,
    pub name: String,
    #[schema(value_type = String, pattern = "^(create|update|unchanged|delete)$")]
    pub action: String,
    /// For `update`: each setting before and after (secrets never shown).
    pub changes: Option<Vec<ChangeView>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeView {
    pub field: String,
    /// Any JSON value (`null` where there was none).
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecretView {
    pub client_id: String,
    pub client_secret: String,
}

/// What the run did (or, with `dry_run`, would do).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApplyResult {
    /// Whether anything changed (or would).
    pub changed: bool,
    pub steps: Vec<StepView>,
    /// Secrets made for new clients: shown only in this answer.
    pub secrets: Vec<SecretView>,
}

impl From<Summary> for ApplyResult {
    fn from(s: Summary) -> Self {
        let changed = s.changes_anything();
        let steps = s
            .steps
            .into_iter()
            .map(|step| {
                let (action, changes) = match step.action {
                    latchkey_service::apply::Action::Create => ("create", None),
                    latchkey_service::apply::Action::Unchanged => ("unchanged", None),
                    latchkey_service::apply::Action::Delete => ("delete", None),
                    latchkey_service::apply::Action::Update { changes } => (
                        "update",
                        Some(
                            changes
                                .into_iter()
                                .map(|c| ChangeView { field: c.field, before: c.before, after: c.after })
                                .collect(),
                        ),
                    ),
                };
                StepView { kind: step.kind.as_str().to_owned(), name: step.name, action: action.to_owned(), changes }
            })
            .collect();
        let secrets = s
            .secrets
            .into_iter()
            .map(|n| SecretView { client_id: n.client_id.to_string(), client_secret: n.client_secret })
            .collect();
        ApplyResult { changed, steps, secrets }
    }
}

/// The document `latchkey apply` takes, as JSON. Each list's entries are described in
/// `docs/admin-api.md` ("Declarative configuration"); an entry that cannot be read is a
/// malformed request (400) naming its path, one that breaks a rule is 422.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ApplyDocument {
    #[serde(default)]
    #[schema(value_type = Vec<Object>, max_items = 1000)]
    scopes: (),
    #[serde(default)]
    #[schema(value_type = Vec<Object>, max_items = 1000)]
    resources: (),
    #[serde(default)]
    #[schema(value_type = Vec<Object>, max_items = 1000)]
    roles: (),
    #[serde(default)]
    #[schema(value_type = Vec<Object>, max_items = 1000)]
    groups: (),
    /// Clients with every setting; no `secret` through the API.
    #[serde(default)]
    #[schema(value_type = Vec<Object>, max_items = 1000)]
    clients: (),
    #[serde(default)]
    #[schema(value_type = Vec<Object>, max_items = 1000)]
    users: (),
}

#[utoipa::path(post, path = "/apply", tag = "apply", params(ApplyQuery),
    request_body(content = ApplyDocument, content_type = "application/json"),
    description = "Makes scopes, API resources, roles, groups, clients and listed users match the document. The whole document is checked before the first change; a second run changes nothing. Needs every admin right.",
    responses((status = 200, body = ApplyResult),
        (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn apply(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    // A document may touch every kind of object: refused before it is read.
    for scope in AdminScope::ALL {
        caller.require(scope)?;
    }
    let options: ApplyQuery = query(&uri)?;
    let doc = document(&headers, &body)?;
    check_as_api(&doc)?;
    let summary = state
        .services
        .apply()
        .run_as_admin(
            &state.services.request_tenant(),
            &doc,
            Options { dry_run: options.dry_run, prune: options.prune },
            &caller.0,
        )
        .await?;
    Ok(no_store(axum::Json(ApplyResult::from(summary)).into_response()))
}

/// The body as a document: JSON, at most [`MAX_DOCUMENT_BODY`]; what cannot be read is a
/// malformed request (400), naming where.
fn document(headers: &HeaderMap, body: &Bytes) -> Result<Document, Problem> {
    let body = json_object(headers, body, MAX_DOCUMENT_BODY)?;
    let text =
        std::str::from_utf8(body).map_err(|_| Problem::new(Kind::InvalidRequest, "the document is not UTF-8"))?;
    Document::parse(text, Format::Json).map_err(|e| match e {
        ServiceError::Invalid(m) => Problem::new(Kind::InvalidRequest, format!("the document is not valid: {m}")),
        other => other.into(),
    })
}

/// What the API's own operations take, and the document through the API too: ASCII
/// usernames and addresses (no look-alike characters), readable names, https resource
/// identifiers, URIs of visible ASCII.
fn check_as_api(doc: &Document) -> Result<(), Problem> {
    let refuse = |at: String, what: &str| Err(invalid(format!("{at}: {what}")));
    for (i, r) in doc.resources.iter().enumerate() {
        if !schema::is_resource_identifier(&r.identifier) {
            return refuse(
                format!("resources[{i}].identifier"),
                "through the admin API, an identifier is an https URL of a host and a short path",
            );
        }
    }
    for (i, u) in doc.users.iter().enumerate() {
        if !schema::is_username(&u.username) {
            return refuse(format!("users[{i}].username"), "1 to 64 ASCII letters, digits and . _ @ -");
        }
        if u.email.as_deref().is_some_and(|e| !schema::is_email(e)) {
            return refuse(format!("users[{i}].email"), "an email address is ASCII: name@example.com");
        }
        if u.name.as_deref().is_some_and(|n| !schema::is_display_name(n)) {
            return refuse(format!("users[{i}].name"), "1 to 200 characters, no control characters");
        }
    }
    for (i, g) in doc.groups.iter().enumerate() {
        if g.members.iter().flatten().any(|m| !schema::is_username(m)) {
            return refuse(format!("groups[{i}].members"), "usernames are 1 to 64 ASCII letters, digits and . _ @ -");
        }
    }
    for (i, c) in doc.clients.iter().enumerate() {
        if !schema::is_display_name(&c.name) {
            return refuse(format!("clients[{i}].name"), "1 to 200 characters, no control characters");
        }
        let uris = c.redirect_uris.iter().chain(&c.post_logout_redirect_uris).chain(c.jwks_uri.as_ref());
        if uris.into_iter().any(|u| !schema::is_uri_text(u)) {
            return refuse(format!("clients[{i}]"), "URIs are absolute, of visible ASCII characters, at most 2,000");
        }
    }
    Ok(())
}
