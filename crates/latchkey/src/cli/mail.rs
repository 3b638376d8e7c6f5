//! `mail test`: queue a test email, which the running server sends through `[mail]`.

use clap::Subcommand;
use latchkey_core::records::Actor;

use super::{CliError, Context, output};

#[derive(Subcommand)]
pub enum MailCommand {
    /// Queue a test email to ADDRESS; the running server sends it (the outbox), within
    /// seconds when the relay answers.
    Test {
        #[arg(long, value_name = "ADDRESS")]
        to: String,
    },
}

pub async fn run(ctx: Context, command: MailCommand) -> Result<(), CliError> {
    let MailCommand::Test { to } = command;
    if ctx.config.mail.is_none() {
        return Err(CliError::Usage("mail is not configured: add a [mail] section to latchkey.toml".into()));
    }
    let tenant = ctx.tenant();
    let services = ctx.open().await?;
    services.outbox().queue_test_email(&tenant, &to, &Actor::Cli).await?;
    output::print(&ctx, &serde_json::json!({"queued": true, "to": to}), || {
        format!("Queued a test email to {to}. The running server sends it; `latchkey serve` logs a failure.")
    })
}
