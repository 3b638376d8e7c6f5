//! `retention [--dry-run]`: delete (or count) what has expired and what is past its
//! `[retention]` period, as the server's cleanup job does every five minutes.

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
    output::print(&ctx, &report, || {
        let rows = report.removed.iter().map(|(kind, n)| vec![kind.clone(), n.to_string()]).collect();
        let head = if report.dry_run { "WOULD DELETE" } else { "DELETED" };
        output::table(&["KIND", head], rows)
    })
}
