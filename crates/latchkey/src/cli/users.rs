//! `user create|import|list|show|update|verify-email|set-password|lock|unlock|delete`.

use std::io::{BufRead as _, IsTerminal as _};

use clap::Subcommand;
use latchkey_core::domain::{DisplayName, Email, NewPassword, ProfileClaims, SubjectId, TenantId, Username};
use latchkey_core::records::{Actor, NewUser, User, UserPatch};
use latchkey_service::user_import::ImportError;
use latchkey_service::users::{PasswordChange, StateChange};
use latchkey_service::{Latchkey, ServiceError};

use super::{CliError, Context, output};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user. The password comes from a prompt, from stdin with --password-stdin,
    /// or is left unset with --no-password (never from the command line).
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: Option<String>,
        /// Display name (the `name` claim).
        #[arg(long)]
        name: Option<String>,
        /// Mark the email address as verified.
        #[arg(long)]
        email_verified: bool,
        /// A standard profile claim, e.g. --claim given_name=Ada (repeatable).
        #[arg(long = "claim", value_name = "NAME=VALUE")]
        claims: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long, conflicts_with = "no_password")]
        password_stdin: bool,
        /// Create the user without a password.
        #[arg(long)]
        no_password: bool,
    },
    /// Import users from another system: a JSON Lines file, one user per line with
    /// `username`, `email`, `email_verified`, `name`, `claims`, `password_hash` (Argon2id or
    /// bcrypt) and optionally `sub`. All or nothing; every bad or duplicate line is reported.
    Import {
        file: std::path::PathBuf,
    },
    List,
    /// Show one user (by username or subject id).
    Show {
        user: String,
    },
    Update {
        user: String,
        #[arg(long)]
        username: Option<String>,
        #[arg(long, conflicts_with = "no_email")]
        email: Option<String>,
        #[arg(long)]
        no_email: bool,
        #[arg(long, value_name = "true|false")]
        email_verified: Option<bool>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long = "claim", value_name = "NAME=VALUE")]
        claims: Vec<String>,
    },
    /// Send the user a link to verify their email address (needs `[mail]`). `create` and
    /// `update` send one by themselves for an address not marked verified.
    VerifyEmail {
        /// Username or subject id.
        user: String,
    },
    /// Set the password (prompt, or --password-stdin).
    SetPassword {
        user: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove every passkey, the authenticator app and the recovery codes of a user who lost
    /// them all, and end their sessions; then give them a way in (`set-password`).
    ResetFactors {
        /// Username or subject id.
        user: String,
    },
    Lock {
        user: String,
    },
    Unlock {
        user: String,
    },
    Delete {
        user: String,
    },
    /// Give a user a role directly.
    Grant {
        /// Username or subject id.
        user: String,
        role: String,
    },
    /// Take a directly granted role from a user (roles through groups stay).
    Revoke {
        user: String,
        role: String,
    },
    /// Show the roles (direct and through groups), groups and entitlements a user holds.
    Access {
        user: String,
    },
    /// Show the user's linked accounts at upstream identity providers (`[federation]`).
    Identities {
        user: String,
    },
    /// Unlink the user's account at an upstream identity provider.
    Unlink {
        user: String,
        /// The provider's id (`[federation.providers.ID]`).
        provider: String,
    },
    /// Show what the user allowed each client (their consents).
    Consents {
        user: String,
    },
    /// Withdraw the user's consent to a client: its refresh and access tokens for the user
    /// stop working, it gets a back-channel logout, and the user is asked again next time.
    WithdrawConsent {
        user: String,
        client: String,
    },
    /// Everything held about the user as one JSON document (GDPR Art. 15/20), as they
    /// download it from their account page. The export is recorded.
    Export {
        user: String,
        /// Write to this file (created, never overwritten) instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<std::path::PathBuf>,
    },
}

fn usage(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

fn apply_claims(profile: &mut ProfileClaims, claims: &[String]) -> Result<(), CliError> {
    for claim in claims {
        let (name, value) =
            claim.split_once('=').ok_or_else(|| usage(format!("--claim `{claim}`: write NAME=VALUE")))?;
        profile.set(name.trim(), value).map_err(usage)?;
    }
    Ok(())
}

/// Reads a password from stdin (`--password-stdin`) or a no-echo prompt on a terminal.
fn read_password(from_stdin: bool) -> Result<NewPassword, CliError> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::Failed(format!("cannot read stdin: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")
            .map_err(|e| CliError::Failed(format!("cannot read the password: {e}")))?;
        let again = rpassword::prompt_password("Repeat password: ")
            .map_err(|e| CliError::Failed(format!("cannot read the password: {e}")))?;
        if first != again {
            return Err(usage("the passwords do not match"));
        }
        first
    } else {
        return Err(usage("no terminal to ask for a password: pass --password-stdin (or --no-password)"));
    };
    // The same rule as the security page's (at least 8 characters, at most 1024 bytes).
    NewPassword::parse(password).map_err(usage)
}

pub(super) async fn find(f: &Latchkey, tenant: &TenantId, user: &str) -> Result<User, CliError> {
    f.users().find(tenant, user).await.map_err(|e| match e {
        ServiceError::NotFound(_) => CliError::Failed(format!("no user `{user}` (give a username or subject id)")),
        other => other.into(),
    })
}

fn describe(u: &User) -> String {
    let mut out = format!("sub:            {}\nusername:       {}\n", u.sub, u.username);
    out += &format!("email:          {}\n", u.email.as_ref().map_or("-", |e| e.as_str()));
    out += &format!("email verified: {}\n", u.email_verified);
    out += &format!("name:           {}\n", u.name.as_ref().map_or("-", |n| n.as_str()));
    out += &format!("password:       {}\n", if u.has_password { "set" } else { "none" });
    out += &format!("locked:         {}\n", u.locked);
    if u.service_account {
        out += "kind:           service account (never signs in; holds roles and API keys)\n";
    }
    if let Ok(claims) = serde_json::to_string(&u.profile)
        && claims != "{\"phone_number_verified\":false}"
    {
        out += &format!("claims:         {claims}\n");
    }
    out
}

/// What became of the verification link for an address an operator set: the user was
/// stored either way, so a link that could not be sent is a note, not a failure.
fn link_note(user: &User, sent: &Result<bool, ServiceError>) -> String {
    let address = user.email.as_ref().map_or("", |e| e.as_str());
    match sent {
        Ok(true) => format!("\nA link to verify {address} was sent."),
        Ok(false) => String::new(),
        Err(e) => format!("\nNo link to verify {address} was sent: {e}. Send one with `latchkey user verify-email`."),
    }
}

pub async fn run(ctx: Context, command: UserCommand) -> Result<(), CliError> {
    let tenant = ctx.tenant();
    match command {
        UserCommand::Create { username, email, name, email_verified, claims, password_stdin, no_password } => {
            // Everything is checked before the database is touched.
            let username = Username::parse(&username).map_err(usage)?;
            let email = email.as_deref().map(Email::parse).transpose().map_err(usage)?;
            let name = name.as_deref().map(DisplayName::parse).transpose().map_err(usage)?;
            let mut profile = ProfileClaims::default();
            apply_claims(&mut profile, &claims)?;
            let password = if no_password { None } else { Some(read_password(password_stdin)?) };
            let f = ctx.open().await?;
            let password_hash = match password {
                Some(p) => Some(f.passwords.hash(p.into_string()).await.map_err(usage)?.as_str().to_owned()),
                None => None,
            };
            let new = NewUser {
                sub: SubjectId::generate(),
                username,
                email,
                email_verified,
                name,
                profile,
                password_hash,
                service_account: false,
            };
            let result = async {
                let user = f.users().create(&tenant, new, &Actor::Cli).await?;
                let sent = f.email_verification().after_operator_change(&tenant, &user, &Actor::Cli).await;
                Ok::<_, CliError>((user, sent))
            }
            .await;
            f.system().close().await;
            let (user, sent) = result?;
            output::print(&ctx, &user, || {
                format!("Created user {} (sub {}).{}", user.username, user.sub, link_note(&user, &sent))
            })
        }
        UserCommand::Import { file } => import(&ctx, &tenant, &file).await,
        UserCommand::List => {
            let f = ctx.open().await?;
            let users = f.users().list(&tenant).await;
            f.system().close().await;
            let users = users?;
            output::print(&ctx, &users, || {
                let rows = users
                    .iter()
                    .map(|u| {
                        vec![
                            u.username.to_string(),
                            u.sub.to_string(),
                            u.email.as_ref().map_or("-".into(), |e| e.to_string()),
                            if u.locked { "locked".into() } else { "active".into() },
                        ]
                    })
                    .collect();
                output::table(&["USERNAME", "SUB", "EMAIL", "STATUS"], rows)
            })
        }
        UserCommand::Show { user } => {
            let f = ctx.open().await?;
            let found = find(&f, &tenant, &user).await;
            f.system().close().await;
            let u = found?;
            output::print(&ctx, &u, || describe(&u))
        }
        UserCommand::Update { user, username, email, no_email, email_verified, name, claims } => {
            let mut patch = UserPatch {
                username: username.as_deref().map(Username::parse).transpose().map_err(usage)?,
                email: if no_email {
                    Some(None)
                } else {
                    email.as_deref().map(|e| Email::parse(e).map(Some)).transpose().map_err(usage)?
                },
                email_verified,
                name: name.as_deref().map(|n| DisplayName::parse(n).map(Some)).transpose().map_err(usage)?,
                profile: None,
                if_match: None,
            };
            let f = ctx.open().await?;
            let result = async {
                let existing = find(&f, &tenant, &user).await?;
                if !claims.is_empty() {
                    let mut profile = existing.profile.clone();
                    apply_claims(&mut profile, &claims)?;
                    patch.profile = Some(profile);
                }
                let address_changed = patch.email.is_some();
                let u = f.users().update(&tenant, &existing.sub, patch, &Actor::Cli).await?;
                let sent = if address_changed && u.email != existing.email {
                    f.email_verification().after_operator_change(&tenant, &u, &Actor::Cli).await
                } else {
                    Ok(false)
                };
                Ok::<_, CliError>((u, sent))
            }
            .await;
            f.system().close().await;
            let (u, sent) = result?;
            output::print(&ctx, &u, || {
                format!("Updated user {}.{}\n{}", u.username, link_note(&u, &sent), describe(&u))
            })
        }
        UserCommand::VerifyEmail { user } => {
            let f = ctx.open().await?;
            let result = async {
                let u = find(&f, &tenant, &user).await?;
                let address = u.email.clone().ok_or_else(|| {
                    usage(format!("user {} has no email address (give one with `user update --email`)", u.username))
                })?;
                f.email_verification().send_link(&tenant, &u, &address, None, &Actor::Cli).await?;
                Ok::<_, CliError>(address)
            }
            .await;
            f.system().close().await;
            let address = result?;
            output::print(&ctx, &serde_json::json!({"sent_to": address.as_str()}), || {
                format!("A link to verify {address} was sent; it works once, for an hour.")
            })
        }
        UserCommand::SetPassword { user, password_stdin } => {
            let password = read_password(password_stdin)?;
            let f = ctx.open().await?;
            let result = async {
                let u = find(&f, &tenant, &user).await?;
                // A reset from the CLI has no "current" session to keep: every one ends.
                let ended =
                    f.users().set_password(&tenant, &u.sub, password, PasswordChange::ByOperator, &Actor::Cli).await?;
                Ok::<_, CliError>((u, ended))
            }
            .await;
            f.system().close().await;
            let (u, ended) = result?;
            output::print(&ctx, &serde_json::json!({"sub": u.sub, "password": "set", "sessions_ended": ended}), || {
                format!("Set the password of {}; {ended} session(s) ended.", u.username)
            })
        }
        UserCommand::ResetFactors { user } => {
            let f = ctx.open().await?;
            let result = async {
                let u = find(&f, &tenant, &user).await?;
                let (passkeys, ended) = f.users().reset_sign_in_factors(&tenant, &u.sub, &Actor::Cli).await?;
                Ok::<_, CliError>((u, passkeys, ended))
            }
            .await;
            f.system().close().await;
            let (u, passkeys, ended) = result?;
            let value = serde_json::json!({"sub": u.sub, "passkeys_removed": passkeys, "sessions_ended": ended});
            output::print(&ctx, &value, || {
                let next = if u.has_password {
                    "They can sign in with their password and add a passkey on their security page."
                } else {
                    "They have no way to sign in now: give them one with `latchkey user set-password`."
                };
                format!(
                    "Removed {passkeys} passkey(s), the authenticator app and the recovery codes of {}; {ended} session(s) ended.\n{next}",
                    u.username
                )
            })
        }
        UserCommand::Lock { user } => change_state(&ctx, &tenant, &user, StateChange::Lock).await,
        UserCommand::Unlock { user } => change_state(&ctx, &tenant, &user, StateChange::Unlock).await,
        UserCommand::Delete { user } => erase(&ctx, &tenant, &user).await,
        UserCommand::Grant { user, role } => super::user_access::grant(&ctx, &tenant, &user, &role).await,
        UserCommand::Revoke { user, role } => super::user_access::revoke(&ctx, &tenant, &user, &role).await,
        UserCommand::Access { user } => super::user_access::show(&ctx, &tenant, &user).await,
        UserCommand::Identities { user } => super::user_identities::list(&ctx, &tenant, &user).await,
        UserCommand::Unlink { user, provider } => super::user_identities::unlink(&ctx, &tenant, &user, &provider).await,
        UserCommand::Consents { user } => super::user_consents::list(&ctx, &tenant, &user).await,
        UserCommand::WithdrawConsent { user, client } => {
            super::user_consents::withdraw(&ctx, &tenant, &user, &client).await
        }
        UserCommand::Export { user, output } => {
            super::user_consents::export(&ctx, &tenant, &user, output.as_deref()).await
        }
    }
}

async fn change_state(ctx: &Context, tenant: &TenantId, user: &str, change: StateChange) -> Result<(), CliError> {
    let f = ctx.open().await?;
    let result = async {
        let u = find(&f, tenant, user).await?;
        // A locked or deleted user is signed out everywhere, with every refresh token.
        let ended = f.users().change_state(tenant, &u.sub, change, &Actor::Cli).await?;
        Ok::<_, CliError>((u, ended))
    }
    .await;
    f.system().close().await;
    let (u, ended) = result?;
    let (word, status) = match change {
        StateChange::Lock => ("Locked", "locked"),
        StateChange::Unlock => ("Unlocked", "active"),
        StateChange::Delete => ("Erased", "erased"),
    };
    let value = serde_json::json!({"sub": u.sub, "username": u.username, "status": status, "sessions_ended": ended});
    output::print(ctx, &value, || format!("{word} user {}; {ended} session(s) ended.", u.username))
}

/// `user delete USER`: erases the user and everything tied to the account, and prints the
/// receipt (what kinds of data went, when, by whom; none of the data).
async fn erase(ctx: &Context, tenant: &TenantId, user: &str) -> Result<(), CliError> {
    let f = ctx.open().await?;
    let result = async {
        let u = find(&f, tenant, user).await?;
        Ok::<_, CliError>(f.erasure().erase(tenant, &u.sub, &Actor::Cli).await?)
    }
    .await;
    f.system().close().await;
    let receipt = result?;
    output::print(ctx, &receipt, || {
        let removed: Vec<String> =
            receipt.removed.iter().filter(|(_, n)| **n > 0).map(|(kind, n)| format!("{kind}: {n}")).collect();
        format!(
            "Erased {user} (receipt {}, known to the audit log as {}). Removed: {}.\n",
            receipt.id,
            receipt.subject_ref,
            removed.join(", ")
        )
    })
}

/// `user import FILE`: the problems go to standard error, one line each, as `FILE:LINE: …`.
async fn import(ctx: &Context, tenant: &TenantId, file: &std::path::Path) -> Result<(), CliError> {
    let text =
        std::fs::read_to_string(file).map_err(|e| CliError::Failed(format!("cannot read {}: {e}", file.display())))?;
    let f = ctx.open().await?;
    let result = latchkey_service::user_import::import(&f, tenant, &text, &Actor::Cli).await;
    f.system().close().await;
    match result {
        Ok(n) => output::print(ctx, &serde_json::json!({"imported": n}), || {
            format!("Imported {n} user(s) from {}.", file.display())
        }),
        Err(ImportError::Lines(problems)) => {
            for p in &problems {
                eprintln!("{}:{}: {}", file.display(), p.line, p.message);
            }
            Err(CliError::Failed(format!(
                "{} line(s) of {} have problems; no user was imported",
                problems.len(),
                file.display()
            )))
        }
        Err(e) => Err(CliError::Failed(format!("{}: {e}; no user was imported", file.display()))),
    }
}
