//! `client create|list|show|update|rotate-secret|delete`.

use std::time::Duration;

use clap::{Args, Subcommand};
use latchkey_core::crypto::random;
use latchkey_core::domain::{
    ClientId, ClientKind, ClientSessionPolicy, GrantType, RedirectUri, ScopeName, SigningAlg, TenantId,
    TokenEndpointAuthMethod,
};
use latchkey_core::records::{Actor, Client, ClientPatch, NewClient};
use latchkey_service::outbound::{Policy, Purpose};

use super::client_opt_ins::OptIns;
use super::client_sessions::SessionSettings;
use super::{CliError, Context, output};

/// The purpose every client secret hash is bound to.

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Register a client. A confidential client's secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// The client id (default: random).
        #[arg(long)]
        id: Option<String>,
        #[arg(long = "type", default_value = "confidential", value_parser = parse_kind)]
        kind: ClientKind,
        #[command(flatten)]
        settings: Settings,
    },
    List,
    Show {
        id: String,
    },
    /// Change settings; a list option given replaces the whole list.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        settings: Settings,
    },
    /// Issue a new secret; the old one keeps working for the grace period.
    RotateSecret {
        id: String,
        #[arg(long, default_value = "24h", value_parser = latchkey_core::duration::parse)]
        grace: Duration,
    },
    Delete {
        id: String,
    },
}

#[derive(Args)]
pub struct Settings {
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    post_logout_redirect_uris: Vec<String>,
    #[arg(long = "grant-type", value_parser = parse_grant)]
    grant_types: Vec<GrantType>,
    #[arg(long = "scope")]
    scopes: Vec<String>,
    #[arg(long = "auth-method", value_parser = parse_auth)]
    auth_method: Option<TokenEndpointAuthMethod>,
    #[arg(long = "id-token-alg", value_parser = parse_alg)]
    id_token_alg: Option<SigningAlg>,
    /// Skip the consent page for this client (your own apps).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    first_party: Option<bool>,
    /// A client of the admin API: it may be given admin scopes (`--scope admin:users:read`);
    /// a person's token still carries only the admin rights their roles give them.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    admin_client: Option<bool>,
    /// private_key_jwt: a file holding the client's public keys (a JWK set).
    #[arg(long, value_name = "PATH", conflicts_with = "jwks_uri")]
    jwks_file: Option<std::path::PathBuf>,
    /// private_key_jwt: where Latchkey fetches the client's public keys (https; a private
    /// address only where outbound.allow opens it for jwks_uri).
    #[arg(long, value_name = "URI")]
    jwks_uri: Option<String>,
    /// Confidential clients only: allow authorization requests without PKCE.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    allow_insecure_no_pkce: Option<bool>,
    /// private_key_jwt only: also accept assertions addressed to the token endpoint URL, not
    /// only to the issuer (older client libraries; weaker). `=false` turns it off again.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    allow_legacy_assertion_audience: Option<bool>,
    /// This client's access token lifetime (e.g. 10m), instead of tokens.access_token_lifetime.
    #[arg(long, value_parser = latchkey_core::duration::parse)]
    access_token_lifetime: Option<Duration>,
    #[command(flatten)]
    sessions: SessionSettings,
    #[command(flatten)]
    access: super::client_access::AccessSettings,
    #[command(flatten)]
    opt_ins: OptIns,
}

/// Reads and checks the key settings: a JWK set whose keys are public and asymmetric, or
/// a URI the outbound guard would fetch.
fn key_settings(settings: &Settings, outbound: &Policy) -> Result<(Option<String>, Option<String>), CliError> {
    let jwks = match &settings.jwks_file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| usage(format!("--jwks-file {}: {e}", path.display())))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| usage(format!("--jwks-file {}: not JSON: {e}", path.display())))?;
            let keys =
                v["keys"].as_array().ok_or_else(|| usage("--jwks-file: expected a JWK set {\"keys\": [...]}"))?;
            if keys.is_empty() {
                return Err(usage("--jwks-file: the key set is empty"));
            }
            for k in keys {
                if k.get("d").is_some() || k.get("k").is_some() {
                    return Err(usage(
                        "--jwks-file: register public keys only (found private or symmetric key material)",
                    ));
                }
                serde_json::from_value::<jsonwebtoken::jwk::Jwk>(k.clone())
                    .map_err(|e| usage(format!("--jwks-file: a key is not a valid JWK: {e}")))?;
            }
            Some(v.to_string())
        }
        None => None,
    };
    let uri = match &settings.jwks_uri {
        Some(u) => {
            outbound.check_url(Purpose::JwksUri, u).map_err(|e| usage(format!("--jwks-uri: {e}")))?;
            Some(u.clone())
        }
        None => None,
    };
    Ok((jwks, uri))
}

fn parse_kind(raw: &str) -> Result<ClientKind, String> {
    ClientKind::parse(raw).map_err(|e| e.reason)
}
fn parse_grant(raw: &str) -> Result<GrantType, String> {
    GrantType::parse(raw).map_err(|e| e.reason)
}
fn parse_auth(raw: &str) -> Result<TokenEndpointAuthMethod, String> {
    TokenEndpointAuthMethod::parse(raw).map_err(|e| e.reason)
}
fn parse_alg(raw: &str) -> Result<SigningAlg, String> {
    SigningAlg::parse_jose(raw).map_err(|e| e.reason)
}

fn usage(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

/// A client's ID token algorithm must be one Latchkey keeps keys for.
fn check_alg(ctx: &Context, alg: Option<SigningAlg>) -> Result<(), CliError> {
    match alg {
        Some(a) if !ctx.config.keys.algorithms.contains(&a) => {
            Err(usage(format!("--id-token-alg {a} is not in keys.algorithms, so no key could sign its ID tokens")))
        }
        _ => Ok(()),
    }
}

/// Latchkey POSTs logout tokens to a back-channel logout URI: one the outbound guard would
/// refuse is refused here, when it is set. (A host name is judged again when it is used.)
fn check_backchannel_uri(
    outbound: &Policy,
    new: &ClientSessionPolicy,
    current: &ClientSessionPolicy,
) -> Result<(), CliError> {
    match &new.backchannel_logout_uri {
        Some(uri) if current.backchannel_logout_uri.as_ref() != Some(uri) => outbound
            .check_url(Purpose::BackchannelLogout, uri.as_str())
            .map(|_| ())
            .map_err(|e| usage(format!("--backchannel-logout-uri: {e}"))),
        _ => Ok(()),
    }
}

fn uris(raw: &[String], kind: ClientKind, insecure: bool) -> Result<Vec<RedirectUri>, CliError> {
    super::client_opt_ins::redirect_uris(raw.iter().map(String::as_str), kind, insecure)
}

/// The rules a client's settings must meet together, checked before anything is stored.
fn check(
    kind: ClientKind,
    redirects: &[RedirectUri],
    grants: &[GrantType],
    auth: TokenEndpointAuthMethod,
    has_keys: bool,
) -> Result<(), CliError> {
    if !auth.fits(kind) {
        return Err(usage(format!("a {kind} client cannot use the `{auth}` authentication method")));
    }
    if auth == TokenEndpointAuthMethod::PrivateKeyJwt && !has_keys {
        return Err(usage("private_key_jwt needs the client's public keys: give --jwks-file or --jwks-uri"));
    }
    if grants.is_empty() {
        return Err(usage("a client needs at least one grant type"));
    }
    if grants.contains(&GrantType::ClientCredentials) && kind == ClientKind::Public {
        return Err(usage(
            "client_credentials is only for confidential clients (a public client cannot keep a secret)",
        ));
    }
    if grants.contains(&GrantType::AuthorizationCode) && redirects.is_empty() {
        return Err(usage("the authorization_code grant needs at least one --redirect-uri"));
    }
    Ok(())
}

/// The legacy assertion audience only means something for a client that signs assertions.
fn check_legacy_audience(allow: Option<bool>, auth: TokenEndpointAuthMethod) -> Result<(), CliError> {
    if allow == Some(true) && auth != TokenEndpointAuthMethod::PrivateKeyJwt {
        return Err(usage(format!(
            "--allow-legacy-assertion-audience is for private_key_jwt clients only; this one uses `{auth}`"
        )));
    }
    Ok(())
}

async fn known_scopes(
    f: &latchkey_service::Latchkey,
    tenant: &TenantId,
    raw: &[String],
) -> Result<Vec<ScopeName>, CliError> {
    let names: Vec<ScopeName> = raw.iter().map(|s| ScopeName::parse(s).map_err(usage)).collect::<Result<_, _>>()?;
    let defined = f.scopes().list(tenant).await?;
    for name in &names {
        if !defined.iter().any(|d| &d.name == name) {
            return Err(usage(format!(
                "scope `{name}` does not exist; create it with `latchkey scope create {name} --description ...`"
            )));
        }
    }
    Ok(names)
}

fn describe(c: &Client) -> String {
    let join = |v: Vec<String>| if v.is_empty() { "-".to_owned() } else { v.join(" ") };
    let mut out = format!("client_id:      {}\nname:           {}\ntype:           {}\n", c.client_id, c.name, c.kind);
    out += &format!("redirect uris:  {}\n", join(c.redirect_uris.iter().map(ToString::to_string).collect()));
    out +=
        &format!("logout uris:    {}\n", join(c.post_logout_redirect_uris.iter().map(ToString::to_string).collect()));
    out += &format!("grant types:    {}\n", join(c.grant_types.iter().map(ToString::to_string).collect()));
    out += &format!("scopes:         {}\n", join(c.allowed_scopes.iter().map(ToString::to_string).collect()));
    out += &format!("auth method:    {}\n", c.token_endpoint_auth_method);
    out += &format!("id token alg:   {}\n", c.id_token_signed_response_alg);
    out += &format!("first party:    {}\n", c.first_party);
    if c.admin_client {
        out += "admin client:   yes (may be given admin scopes)\n";
    }
    if let Some(uri) = &c.jwks_uri {
        out += &format!("jwks uri:       {uri}\n");
    }
    if c.jwks.is_some() {
        out += "jwks:           registered\n";
    }
    if c.allow_insecure_no_pkce {
        out += "pkce:           optional (allow_insecure_no_pkce)\n";
    }
    if c.allow_legacy_assertion_audience {
        out += "assertion aud:  issuer or token endpoint URL (allow_legacy_assertion_audience)\n";
    }
    if let Some(s) = c.access_token_lifetime {
        out += &format!("access tokens:  {s}s\n");
    }
    out += &super::client_opt_ins::describe(c);
    out += &super::client_access::describe(&c.access_policy);
    out + &super::client_sessions::describe(&c.session_policy)
}

pub async fn run(ctx: Context, command: ClientCommand) -> Result<(), CliError> {
    let tenant = ctx.tenant();
    match command {
        ClientCommand::Create { name, id, kind, settings } => {
            let client_id = match id {
                Some(raw) => ClientId::parse(&raw).map_err(usage)?,
                None => ClientId::generate(),
            };
            if name.trim().is_empty() {
                return Err(usage("--name must not be empty: people see it on the consent page"));
            }
            let insecure = settings.opt_ins.insecure_redirects(false);
            let redirect_uris = uris(&settings.redirect_uris, kind, insecure)?;
            let post_logout_redirect_uris = uris(&settings.post_logout_redirect_uris, kind, insecure)?;
            let grant_types = if settings.grant_types.is_empty() {
                vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
            } else {
                settings.grant_types.clone()
            };
            let auth = settings.auth_method.unwrap_or_else(|| kind.default_auth_method());
            check_alg(&ctx, settings.id_token_alg)?;
            let outbound = Policy::new(&ctx.config.outbound.allow);
            let (jwks, jwks_uri) = key_settings(&settings, &outbound)?;
            check(kind, &redirect_uris, &grant_types, auth, jwks.is_some() || jwks_uri.is_some())?;
            check_legacy_audience(settings.allow_legacy_assertion_audience, auth)?;
            if settings.allow_insecure_no_pkce == Some(true) && kind == ClientKind::Public {
                return Err(usage(
                    "--allow-insecure-no-pkce is for confidential clients only: public clients always need PKCE",
                ));
            }
            let session_policy = settings.sessions.apply(&ClientSessionPolicy::default(), &redirect_uris, kind)?;
            check_backchannel_uri(&outbound, &session_policy, &ClientSessionPolicy::default())?;
            let access_policy = settings.access.apply(&Default::default())?;
            let scope_names = if settings.scopes.is_empty() {
                vec!["openid".to_owned(), "profile".to_owned(), "email".to_owned()]
            } else {
                settings.scopes.clone()
            };
            let f = ctx.open().await?;
            let result = async {
                let allowed_scopes = known_scopes(&f, &tenant, &scope_names).await?;
                let secret = auth.uses_secret().then(random::token_string::<32>);
                let new = NewClient {
                    client_id,
                    name: name.trim().to_owned(),
                    kind,
                    secret_hash: secret.as_ref().map(|s| latchkey_service::clients::secret_hash(&f.token_hasher, s)),
                    redirect_uris,
                    post_logout_redirect_uris,
                    grant_types,
                    allowed_scopes,
                    token_endpoint_auth_method: auth,
                    id_token_signed_response_alg: settings.id_token_alg.unwrap_or(SigningAlg::Rs256),
                    first_party: settings.first_party.unwrap_or(false),
                    jwks,
                    jwks_uri,
                    allow_insecure_no_pkce: settings.allow_insecure_no_pkce.unwrap_or(false),
                    allow_legacy_assertion_audience: settings.allow_legacy_assertion_audience.unwrap_or(false),
                    access_token_lifetime: settings.access_token_lifetime.and_then(|d| i64::try_from(d.as_secs()).ok()),
                    session_policy,
                    access_policy,
                    allow_insecure_redirect_uris: insecure,
                    refresh_reuse_grace: settings.opt_ins.grace(),
                    admin_client: settings.admin_client.unwrap_or(false),
                };
                Ok::<_, CliError>((f.clients().create(&tenant, new, &Actor::Cli).await?, secret))
            }
            .await;
            f.system().close().await;
            let (client, secret) = result?;
            let value = serde_json::json!({"client": client, "client_secret": secret});
            output::print(&ctx, &value, || {
                let mut out = format!("Created client {}.\n{}", client.client_id, describe(&client));
                if let Some(s) = &secret {
                    out += &format!("client_secret:  {s}\nThe secret is shown only now; store it safely.\n");
                }
                out
            })
        }
        ClientCommand::List => {
            let f = ctx.open().await?;
            let list = f.clients().list(&tenant).await;
            f.system().close().await;
            let list = list?;
            output::print(&ctx, &list, || {
                let rows = list
                    .iter()
                    .map(|c| {
                        vec![
                            c.client_id.to_string(),
                            c.kind.to_string(),
                            c.name.clone(),
                            c.redirect_uris.len().to_string(),
                            super::client_opt_ins::summary(c),
                        ]
                    })
                    .collect();
                output::table(&["CLIENT ID", "TYPE", "NAME", "REDIRECT URIS", "OPT-INS"], rows)
            })
        }
        ClientCommand::Show { id } => {
            let id = ClientId::parse(&id).map_err(usage)?;
            let f = ctx.open().await?;
            let found = f.clients().get(&tenant, &id).await;
            f.system().close().await;
            let client = found?.ok_or_else(|| CliError::Failed(format!("no client `{id}`")))?;
            output::print(&ctx, &client, || describe(&client))
        }
        ClientCommand::Update { id, name, settings } => {
            let id = ClientId::parse(&id).map_err(usage)?;
            if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
                return Err(usage("--name must not be empty"));
            }
            check_alg(&ctx, settings.id_token_alg)?;
            let f = ctx.open().await?;
            let result = async {
                let current = f
                    .clients()
                    .get(&tenant, &id)
                    .await?
                    .ok_or_else(|| CliError::Failed(format!("no client `{id}`")))?;
                let kind = current.kind;
                let insecure = settings.opt_ins.insecure_redirects(current.allow_insecure_redirect_uris);
                let redirect = (!settings.redirect_uris.is_empty())
                    .then(|| uris(&settings.redirect_uris, kind, insecure))
                    .transpose()?;
                let logout = (!settings.post_logout_redirect_uris.is_empty())
                    .then(|| uris(&settings.post_logout_redirect_uris, kind, insecure))
                    .transpose()?;
                for kept in [(&redirect, &current.redirect_uris), (&logout, &current.post_logout_redirect_uris)] {
                    super::client_opt_ins::check_kept(kept.0.as_deref().unwrap_or(kept.1), kind, insecure)?;
                }
                let grants = (!settings.grant_types.is_empty()).then(|| settings.grant_types.clone());
                let outbound = Policy::new(&ctx.config.outbound.allow);
                let (jwks, jwks_uri) = key_settings(&settings, &outbound)?;
                let new_keys = jwks.is_some() || jwks_uri.is_some();
                let has_keys = new_keys || current.jwks.is_some() || current.jwks_uri.is_some();
                check(
                    kind,
                    redirect.as_deref().unwrap_or(&current.redirect_uris),
                    grants.as_deref().unwrap_or(&current.grant_types),
                    settings.auth_method.unwrap_or(current.token_endpoint_auth_method),
                    has_keys,
                )?;
                if settings.allow_insecure_no_pkce == Some(true) && kind == ClientKind::Public {
                    return Err(usage("--allow-insecure-no-pkce is for confidential clients only"));
                }
                check_legacy_audience(
                    settings.allow_legacy_assertion_audience,
                    settings.auth_method.unwrap_or(current.token_endpoint_auth_method),
                )?;
                if settings.auth_method.is_some_and(|m| m.uses_secret()) && current.secret_hash.is_none() {
                    return Err(usage("this client has no secret; create a confidential client instead"));
                }
                let policy = settings.sessions.apply(
                    &current.session_policy,
                    redirect.as_deref().unwrap_or(&current.redirect_uris),
                    kind,
                )?;
                check_backchannel_uri(&outbound, &policy, &current.session_policy)?;
                let access = settings.access.apply(&current.access_policy)?;
                let scopes = if settings.scopes.is_empty() {
                    None
                } else {
                    Some(known_scopes(&f, &tenant, &settings.scopes).await?)
                };
                let patch = ClientPatch {
                    name: name.map(|n| n.trim().to_owned()),
                    redirect_uris: redirect,
                    post_logout_redirect_uris: logout,
                    grant_types: grants,
                    allowed_scopes: scopes,
                    token_endpoint_auth_method: settings.auth_method,
                    id_token_signed_response_alg: settings.id_token_alg,
                    first_party: settings.first_party,
                    // New keys replace the old ones (a file clears a URI and the other way round).
                    jwks: new_keys.then(|| jwks.clone()),
                    jwks_uri: new_keys.then(|| jwks_uri.clone()),
                    allow_insecure_no_pkce: settings.allow_insecure_no_pkce,
                    allow_legacy_assertion_audience: settings.allow_legacy_assertion_audience,
                    access_token_lifetime: settings.access_token_lifetime.map(|d| i64::try_from(d.as_secs()).ok()),
                    session_policy: (policy != current.session_policy).then_some(policy),
                    access_policy: (access != current.access_policy).then_some(access),
                    allow_insecure_redirect_uris: settings.opt_ins.insecure_redirects_change(),
                    refresh_reuse_grace: settings.opt_ins.grace_change(),
                    admin_client: settings.admin_client,
                };
                Ok::<_, CliError>(f.clients().update(&tenant, &id, patch, &Actor::Cli).await?)
            }
            .await;
            f.system().close().await;
            let client = result?;
            output::print(&ctx, &client, || format!("Updated client {}.\n{}", client.client_id, describe(&client)))
        }
        ClientCommand::RotateSecret { id, grace } => {
            let id = ClientId::parse(&id).map_err(usage)?;
            let f = ctx.open().await?;
            let secret = random::token_string::<32>();
            let until = f.clock.now().plus(grace);
            let result = f.clients().rotate_secret(&tenant, &id, &secret, until, &Actor::Cli).await;
            f.system().close().await;
            result?;
            let value = serde_json::json!({"client_id": id, "client_secret": secret, "previous_secret_valid_until": until.to_rfc3339()});
            output::print(&ctx, &value, || {
                format!(
                    "New secret for {id}: {secret}\nThe old secret keeps working until {until}. The new one is shown only now."
                )
            })
        }
        ClientCommand::Delete { id } => {
            let id = ClientId::parse(&id).map_err(usage)?;
            let f = ctx.open().await?;
            let result = f.clients().delete(&tenant, &id, &Actor::Cli).await;
            f.system().close().await;
            result?;
            output::print(&ctx, &serde_json::json!({"deleted": id}), || format!("Deleted client {id}."))
        }
    }
}
