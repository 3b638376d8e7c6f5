//! `client create|list|show|update|rotate-secret|delete`.

use std::time::Duration;

use clap::{Args, Subcommand};
use latchkey_core::domain::{
    ClientId, ClientKind, ClientSessionPolicy, GrantType, RedirectUri, ScopeName, SigningAlg, TokenEndpointAuthMethod,
};
use latchkey_core::records::{Actor, Client, ClientPatch, NewClient};

use super::client_opt_ins::OptIns;
use super::client_sessions::SessionSettings;
use super::{CliError, Context, output};

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

/// The key settings as given: the text of a JWK set file, or a URI (both judged by the
/// client service).
fn key_settings(settings: &Settings) -> Result<(Option<String>, Option<String>), CliError> {
    let jwks = match &settings.jwks_file {
        Some(path) => {
            Some(std::fs::read_to_string(path).map_err(|e| usage(format!("--jwks-file {}: {e}", path.display())))?)
        }
        None => None,
    };
    Ok((jwks, settings.jwks_uri.clone()))
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

/// Redirect URIs in a form some client could register; whether this one may is the
/// client service's rule.
fn uris(flag: &str, raw: &[String]) -> Result<Vec<RedirectUri>, CliError> {
    raw.iter().map(|u| RedirectUri::parse_any(u).map_err(|e| usage(format!("{flag}: {e}")))).collect()
}

fn scope_names(raw: &[String]) -> Result<Vec<ScopeName>, CliError> {
    raw.iter().map(|s| ScopeName::parse(s).map_err(usage)).collect()
}

fn seconds(d: Duration) -> Option<i64> {
    i64::try_from(d.as_secs()).ok()
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
            let redirect_uris = uris("--redirect-uri", &settings.redirect_uris)?;
            let post_logout_redirect_uris = uris("--post-logout-redirect-uri", &settings.post_logout_redirect_uris)?;
            let grant_types = if settings.grant_types.is_empty() {
                vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
            } else {
                settings.grant_types.clone()
            };
            let (jwks, jwks_uri) = key_settings(&settings)?;
            let scopes = if settings.scopes.is_empty() {
                ["openid", "profile", "email"].map(String::from).to_vec()
            } else {
                settings.scopes.clone()
            };
            let new = NewClient {
                client_id,
                name: name.trim().to_owned(),
                kind,
                secret_hash: None,
                redirect_uris,
                post_logout_redirect_uris,
                grant_types,
                allowed_scopes: scope_names(&scopes)?,
                token_endpoint_auth_method: settings.auth_method.unwrap_or_else(|| kind.default_auth_method()),
                id_token_signed_response_alg: settings
                    .id_token_alg
                    .unwrap_or_else(|| latchkey_service::clients::default_id_token_alg(&ctx.config)),
                first_party: settings.first_party.unwrap_or(false),
                jwks,
                jwks_uri,
                allow_insecure_no_pkce: settings.allow_insecure_no_pkce.unwrap_or(false),
                allow_legacy_assertion_audience: settings.allow_legacy_assertion_audience.unwrap_or(false),
                access_token_lifetime: settings.access_token_lifetime.and_then(seconds),
                session_policy: settings.sessions.apply(&ClientSessionPolicy::default())?,
                access_policy: settings.access.apply(&Default::default())?,
                allow_insecure_redirect_uris: settings.opt_ins.insecure_redirects(false),
                refresh_reuse_grace: settings.opt_ins.grace(),
                admin_client: settings.admin_client.unwrap_or(false),
            };
            let f = ctx.open().await?;
            let result = f.clients().register(&tenant, new, &Actor::Cli).await;
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
            let redirect = (!settings.redirect_uris.is_empty())
                .then(|| uris("--redirect-uri", &settings.redirect_uris))
                .transpose()?;
            let logout = (!settings.post_logout_redirect_uris.is_empty())
                .then(|| uris("--post-logout-redirect-uri", &settings.post_logout_redirect_uris))
                .transpose()?;
            let scopes = (!settings.scopes.is_empty()).then(|| scope_names(&settings.scopes)).transpose()?;
            let (jwks, jwks_uri) = key_settings(&settings)?;
            let f = ctx.open().await?;
            let result = async {
                let current = f
                    .clients()
                    .get(&tenant, &id)
                    .await?
                    .ok_or_else(|| CliError::Failed(format!("no client `{id}`")))?;
                let session = settings.sessions.apply(&current.session_policy)?;
                let access = settings.access.apply(&current.access_policy)?;
                // New keys replace the old ones (a file clears a URI and the other way round).
                let new_keys = jwks.is_some() || jwks_uri.is_some();
                let patch = ClientPatch {
                    name: name.map(|n| n.trim().to_owned()),
                    redirect_uris: redirect,
                    post_logout_redirect_uris: logout,
                    grant_types: (!settings.grant_types.is_empty()).then(|| settings.grant_types.clone()),
                    allowed_scopes: scopes,
                    token_endpoint_auth_method: settings.auth_method,
                    id_token_signed_response_alg: settings.id_token_alg,
                    first_party: settings.first_party,
                    jwks: new_keys.then_some(jwks),
                    jwks_uri: new_keys.then_some(jwks_uri),
                    allow_insecure_no_pkce: settings.allow_insecure_no_pkce,
                    allow_legacy_assertion_audience: settings.allow_legacy_assertion_audience,
                    access_token_lifetime: settings.access_token_lifetime.map(seconds),
                    session_policy: (session != current.session_policy).then_some(session.clone()),
                    access_policy: (access != current.access_policy).then_some(access.clone()),
                    allow_insecure_redirect_uris: settings.opt_ins.insecure_redirects_change(),
                    refresh_reuse_grace: settings.opt_ins.grace_change(),
                    admin_client: settings.admin_client,
                    // Session and access settings merged into what was read are stored only if
                    // the client is still as read; any other change is judged on the client as
                    // it is when it is made.
                    if_match: (session != current.session_policy || access != current.access_policy)
                        .then(|| current.etag()),
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
            let result = f.clients().rotate_secret(&tenant, &id, grace, &Actor::Cli).await;
            f.system().close().await;
            let (secret, until) = result?;
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
