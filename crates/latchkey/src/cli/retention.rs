//! `retention [--dry-run]`: delete (or count) what has expired and what is past its
//! `[retention]` period, and apply the accounts' rules (notice, disable or delete unused
//! accounts; delete never verified sign-ups), as the server's jobs do every five minutes.

use super::{CliError, Context, output};

#[derive(clap::Args)]
pub struct RetentionArgs {
    /// Only count what would be deleted.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(ctx: Context, args: RetentionArgs) -> Result<(), CliError> {
    let f = ctx.open().await?;
    let result = f.retention().run(args.dry_run).await;
    f.system().close().await;
    let report = result?;
    let accounts_on = f.account_retention().enabled();
    output::print(&ctx, &report, || {
        let rows = report.removed.iter().map(|(kind, n)| vec![kind.clone(), n.to_string()]).collect();
        let head = if report.dry_run { "WOULD DELETE" } else { "DELETED" };
        let mut out = output::table(&["KIND", head], rows);
        if accounts_on {
            let a = &report.accounts;
            let rows = [
                ("inactive: owner told", a.noticed),
                ("inactive: disabled", a.disabled),
                ("inactive: deleted", a.deleted),
                ("unverified sign-up: deleted", a.unverified_deleted),
                ("left by the admin rules", a.refused),
                ("failed (see the log)", a.failed),
            ];
            let rows = rows.into_iter().map(|(what, n)| vec![what.to_owned(), n.to_string()]).collect();
            let head = if report.dry_run { "WOULD BE" } else { "DONE" };
            out.push_str("\n\n");
            out.push_str(&output::table(&["ACCOUNTS", head], rows));
        }
        out
    })
}
