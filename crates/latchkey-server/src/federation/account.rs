//! Upstream accounts on the security page: link (from a recent sign-in, to the session that
//! started it), confirm a link waiting since a first sign-in matched this account's address,
//! and unlink (never the last way in).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use latchkey_core::domain::{ProviderId, SubjectId, TenantId};
use latchkey_core::records::Actor;
use latchkey_service::federation::UpstreamAccount;
use serde::{Deserialize, Serialize};

use super::{FLOW_LIFETIME, Intent, go_upstream, provider_of, unknown_provider};
use crate::account_forms::{back, recent_form, refused};
use crate::browser::ceremony::{self, Purpose};
use crate::edge::{ClientIp, Tenant};
use crate::pages::PageError;
use crate::sessions;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// An upstream account waiting to be linked to the one account whose address it gave:
/// only that account may confirm it.
#[derive(Serialize, Deserialize)]
struct Waiting {
    account: UpstreamAccount,
    sub: SubjectId,
}

/// A first sign-in whose address (verified upstream) is an account's here: the upstream
/// account waits in this browser until its owner signs in to the account and confirms.
pub(crate) async fn prove_first(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    account: UpstreamAccount,
    holder: SubjectId,
) -> Response {
    let name = state.services.federation().display_name(&account.provider);
    let until = state.clock.now().plus(FLOW_LIFETIME);
    let waiting = Waiting { account, sub: holder };
    let cookie = match ceremony::put_until(state, tenant, headers, Purpose::FederationLink, &waiting, until).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot keep the upstream account to link");
            return PageError::internal().into_response();
        }
    };
    let mut page = state.templates.render(
        StatusCode::OK,
        "message.html",
        minijinja::context! {
            title => "Link your account", base => state.base(),
            message => format!(
                "An account here has the email address your {name} account gave. To use {name} with it, sign in to that account the way you usually do, then confirm the link on your security page within {} minutes. Nothing is linked until you do.",
                FLOW_LIFETIME.as_secs() / 60
            ),
            link => format!("{}/login?return_to=security", state.base()),
            link_text => format!("Sign in to that account to link {name}"),
        },
    );
    if let Some(c) = cookie {
        page.headers_mut().append(header::SET_COOKIE, c);
    }
    page
}

/// The end of a "Link" flow: linked to the account of the session that started it, if
/// this browser is still signed in to it.
pub(crate) async fn finish_link(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    account: UpstreamAccount,
    (sub, sid): (&str, &str),
) -> Response {
    let session = sessions::current(state, tenant, headers).await;
    let Some(session) = session.filter(|s| s.sid == sid && s.sub.as_str() == sub) else {
        return PageError::new(
            StatusCode::BAD_REQUEST,
            "The sign-in that started this link has ended, so nothing was linked. Sign in and start again from your security page.",
        )
        .into_response();
    };
    link(state, tenant, &session.sub, &account).await
}

async fn link(state: &AppState, tenant: &TenantId, sub: &SubjectId, account: &UpstreamAccount) -> Response {
    match state.services.federation().link(tenant, sub, account).await {
        Ok(()) => back(state, "provider_linked"),
        Err(latchkey_service::ServiceError::Conflict(m)) => PageError::new(StatusCode::CONFLICT, m).into_response(),
        Err(e) => refused(e),
    }
}

/// `POST /account/federation/{id}/link`: goes to the provider to link an account there.
pub async fn start_link(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (session, user) = match recent_form(&state, &tenant, &headers, form.csrf.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let Some(id) = provider_of(&state, &id) else { return unknown_provider() };
    if let Err(e) =
        state.services.security_notices().may_change(&tenant, &user.sub, &Actor::User(user.sub.to_string())).await
    {
        return refused(e);
    }
    let intent = Intent::Link { sub: user.sub.to_string(), sid: session.sid };
    go_upstream(&state, &tenant, &headers, &id, intent, ip).await
}

/// `POST /account/federation/{id}/confirm`: links the upstream account that waits in this
/// browser to the account signed in now.
pub async fn confirm(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (_, user) = match recent_form(&state, &tenant, &headers, form.csrf.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let Some(id) = provider_of(&state, &id) else { return unknown_provider() };
    let waiting = ceremony::peek::<Waiting>(&state, &tenant, &headers, Purpose::FederationLink).await;
    let Some(waiting) = waiting.filter(|w| w.account.provider == id && w.sub == user.sub) else {
        return PageError::new(
            StatusCode::BAD_REQUEST,
            "No account of that provider waits to be linked to this account in this browser (it expired, was linked already, or gave another account's address).",
        )
        .into_response();
    };
    // Taken out before linking: of two confirmations at once, one links.
    let taken = ceremony::take::<Waiting>(&state, &tenant, &headers, Purpose::FederationLink).await;
    match taken.filter(|w| w.account.provider == waiting.account.provider && w.sub == user.sub) {
        Some(w) => link(&state, &tenant, &user.sub, &w.account).await,
        None => PageError::new(StatusCode::BAD_REQUEST, "That link was confirmed already.").into_response(),
    }
}

/// `POST /account/federation/{id}/unlink`.
pub async fn unlink(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (session, user) = match recent_form(&state, &tenant, &headers, form.csrf.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    // A provider no longer configured can still be unlinked.
    let Ok(id) = ProviderId::parse(&id) else { return unknown_provider() };
    let actor = Actor::User(user.sub.to_string());
    match state.services.federation().unlink(&tenant, &user.sub, &id, Some(&session.sid), &actor).await {
        Ok(()) => back(&state, "provider_unlinked"),
        Err(latchkey_service::ServiceError::NotFound(_)) => PageError::new(
            StatusCode::NOT_FOUND,
            "No account at that provider is linked to yours (it was unlinked already).",
        )
        .into_response(),
        Err(e) => refused(e),
    }
}

/// The security page's "Sign-in providers": each configured provider (linked or not), each
/// linked one no longer configured, and the upstream account waiting for confirmation.
pub(crate) async fn security_rows(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    sub: &SubjectId,
) -> Result<(Vec<minijinja::Value>, Option<minijinja::Value>), latchkey_service::ServiceError> {
    let linked = state.services.federation().identities(tenant, sub).await?;
    let mut rows = Vec::new();
    for p in state.upstreams.list() {
        let link = linked.iter().find(|l| l.provider == p.id);
        rows.push(minijinja::context! {
            id => p.id.as_str(), name => &p.config.name, linked => link.is_some(),
            email => link.and_then(|l| l.email.as_deref()),
            last_used => link.and_then(|l| l.last_used_at).map(|t| t.to_rfc3339()),
        });
    }
    for l in linked.iter().filter(|l| state.upstreams.get(&l.provider).is_none()) {
        rows.push(minijinja::context! {
            id => l.provider.as_str(), name => l.provider.as_str(), linked => true, email => l.email.as_deref(),
            last_used => l.last_used_at.map(|t| t.to_rfc3339()), gone => true,
        });
    }
    let waiting = ceremony::peek::<Waiting>(state, tenant, headers, Purpose::FederationLink).await;
    let waiting = waiting.filter(|w| w.sub == *sub && state.upstreams.get(&w.account.provider).is_some()).map(|w| {
        minijinja::context! {
            id => w.account.provider.as_str(), name => state.services.federation().display_name(&w.account.provider),
            email => w.account.email,
        }
    });
    Ok((rows, waiting))
}
