//! Sign-in through upstream identity providers: the button's POST sends the browser to the
//! provider, and `/federation/{id}/callback` brings it back. `state`, `nonce` and the PKCE
//! verifier wait in this browser's ceremony state and are taken out once, so a callback
//! replayed, opened in another browser, or delivered to another provider's address finds
//! nothing to finish. [`latchkey_service::federation`] keeps the rules about accounts.

pub mod account;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Redirect, Response};
use latchkey_core::domain::{Factor, Factors, ProviderId, TenantId};
use latchkey_service::federation::{Callback, FederationError, PendingFlow, SignIn, UpstreamAccount};
use serde::{Deserialize, Serialize};

use crate::browser::ceremony::{self, Purpose};
use crate::browser::csrf;
use crate::completion::{self as complete, ReturnTo};
use crate::edge::{ClientIp, Tenant};
use crate::pages::PageError;
use crate::state::AppState;

/// How long a flow may take at the provider, and a proven account may wait to be linked.
const FLOW_LIFETIME: std::time::Duration = std::time::Duration::from_secs(600);

/// What a flow started in this browser is for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Intent {
    /// A sign-in, for an authorization request or an account page.
    SignIn { req: Option<String>, return_to: Option<ReturnTo> },
    /// Linking to the account of the session `sid` (the security page's "Link").
    Link { sub: String, sid: String },
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Started {
    pub flow: PendingFlow,
    pub intent: Intent,
}

#[derive(Deserialize)]
pub struct StartForm {
    csrf: Option<String>,
    req: Option<String>,
    return_to: Option<String>,
}

fn provider_of(state: &AppState, raw: &str) -> Option<ProviderId> {
    ProviderId::parse(raw).ok().filter(|id| state.upstreams.get(id).is_some())
}

fn unknown_provider() -> Response {
    PageError::new(StatusCode::NOT_FOUND, "There is no such sign-in provider here.").into_response()
}

/// The page for a flow that did not work: what went wrong, nothing linked or made.
pub(crate) fn failed(state: &AppState, id: &ProviderId, e: &FederationError) -> Response {
    let name = state.services.federation().display_name(id);
    let status = match e {
        FederationError::Unreachable(_) => StatusCode::BAD_GATEWAY,
        FederationError::NotAllowed(_) => StatusCode::FORBIDDEN,
        FederationError::UnknownProvider => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    let shown = if status == StatusCode::BAD_GATEWAY {
        // The guard's detail (addresses, names) is for the operator's log, not the page.
        tracing::warn!(provider = %id, error = %e, "an upstream identity provider failed");
        "the provider cannot be reached right now".to_owned()
    } else {
        tracing::info!(provider = %id, error = %e, "a sign-in through an upstream identity provider was refused");
        e.to_string()
    };
    PageError::new(
        status,
        format!("Sign-in through {name} failed: {shown}. Nothing was changed; start again from the sign-in page."),
    )
    .into_response()
}

/// Sends the browser to the provider with a fresh flow kept for it.
pub(crate) async fn go_upstream(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    id: &ProviderId,
    intent: Intent,
    ip: std::net::IpAddr,
) -> Response {
    // Signed in here already, this is a sign-in again: the provider must do one too.
    let fresh = match &intent {
        Intent::SignIn { .. } => {
            crate::sessions::current(state, tenant, headers).await.map(|_| state.clock.now().secs())
        }
        // Linking, too, is a sign-in at the provider that must be the person's own now, not
        // whoever's session a shared browser still holds there.
        Intent::Link { .. } => Some(state.clock.now().secs()),
    };
    let (url, flow) = match state.upstreams.begin(id, fresh).await {
        Ok(started) => started,
        Err(e) => return failed(state, id, &e),
    };
    // Counted once the provider is known to answer: an outage uses nobody's allowance.
    match state.services.federation().admit_start(tenant, ip).await {
        Ok(()) => {}
        Err(latchkey_service::message_limits::Limited::TooMany) => {
            return PageError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many sign-ins through other providers were started from here. Try again in a few minutes.",
            )
            .into_response();
        }
        Err(latchkey_service::message_limits::Limited::Unavailable) => {
            return PageError::new(StatusCode::SERVICE_UNAVAILABLE, crate::attempt_limits::UNAVAILABLE).into_response();
        }
    }
    let until = state.clock.now().plus(FLOW_LIFETIME);
    let cookie = match ceremony::put_until(
        state,
        tenant,
        headers,
        Purpose::Federation,
        &Started { flow, intent },
        until,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot keep the upstream sign-in");
            return PageError::internal().into_response();
        }
    };
    let mut response = Redirect::to(&url).into_response();
    if let Some(c) = cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /federation/jwks.json`: the public keys of the providers Latchkey authenticates to
/// with `private_key_jwt` (the `jwks_uri` to register at them).
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = axum::Json(state.upstreams.public_jwks()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

/// `POST /federation/{id}/start`: the sign-in page's "Sign in with …".
pub async fn start(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<StartForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let Some(id) = provider_of(&state, &id) else { return unknown_provider() };
    let req =
        form.req.filter(|r| r.len() <= 64 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    let intent = Intent::SignIn { req, return_to: ReturnTo::parse(form.return_to.as_deref()) };
    go_upstream(&state, &tenant, &headers, &id, intent, ip).await
}

/// `GET /federation/{id}/callback`: the provider's answer.
pub async fn callback(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(answer): Query<Callback>,
) -> Response {
    let Some(id) = provider_of(&state, &id) else { return unknown_provider() };
    // Taken out before anything is checked: whatever happens, this flow is over.
    let Some(started) = ceremony::take::<Started>(&state, &tenant, &headers, Purpose::Federation).await else {
        return failed(&state, &id, &FederationError::StateMismatch);
    };
    let account = match state.upstreams.finish(&id, &started.flow, &answer, state.clock.now().secs()).await {
        Ok(a) => a,
        Err(e) => return failed(&state, &id, &e),
    };
    match started.intent {
        Intent::SignIn { req, return_to } => {
            signed_in_upstream(&state, &tenant, &headers, ip, account, req, return_to).await
        }
        Intent::Link { sub, sid } => account::finish_link(&state, &tenant, &headers, account, (&sub, &sid)).await,
    }
}

async fn signed_in_upstream(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    ip: std::net::IpAddr,
    account: UpstreamAccount,
    req: Option<String>,
    return_to: Option<ReturnTo>,
) -> Response {
    let name = state.services.federation().display_name(&account.provider);
    let outcome = match state.services.federation().sign_in(tenant, &account).await {
        Ok(o) => o,
        Err(latchkey_service::ServiceError::Invalid(m)) => {
            return PageError::new(StatusCode::FORBIDDEN, format!("Sign-in through {name} failed: {m}."))
                .into_response();
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot finish an upstream sign-in");
            return PageError::internal().into_response();
        }
    };
    let user = match outcome {
        SignIn::Linked(user) | SignIn::Created(user) => user,
        SignIn::ProveAccount(holder) => return account::prove_first(state, tenant, headers, account, holder).await,
        SignIn::UnverifiedMatch => {
            return PageError::new(
                StatusCode::CONFLICT,
                format!(
                    "Sign-in through {name} failed: an account here uses the address {name} gave, which {name} says is not verified, so it cannot be matched. If the account is yours, sign in to it and link {name} from your security page."
                ),
            )
            .into_response();
        }
        SignIn::NoAccount(reason) => return PageError::new(StatusCode::FORBIDDEN, reason).into_response(),
    };
    let done = complete::SignedIn {
        user: &user,
        factors: Factors::new(Factor::Federated),
        remember: false,
        req,
        return_to,
        ip,
    };
    let authenticated_at = account.authenticated_at.map(latchkey_core::UnixTime::from_secs);
    complete::complete_at(state, tenant, headers, done, authenticated_at).await
}
