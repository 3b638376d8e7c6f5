//! `apply FILE [--dry-run] [--prune]`: makes scopes, resources, roles, groups, clients and
//! listed users match a TOML or JSON document. The CLI reads the file and the secret
//! references in it (`env:NAME`, `file:PATH`); the rules and the plan are the apply
//! service's.

use std::path::{Path, PathBuf};

use clap::Args;
use latchkey_core::records::Actor;
use latchkey_service::apply::{Action, Document, Format, MAX_DOCUMENT, Options, SecretRef, Summary};

use super::{CliError, Context, output};

#[derive(Args)]
pub struct ApplyArgs {
    /// The document: TOML, or JSON when the name ends in `.json`.
    file: PathBuf,
    /// Print what would change, as a diff, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also remove what `apply` created earlier and the document no longer lists.
    #[arg(long)]
    prune: bool,
}

pub async fn run(ctx: Context, args: ApplyArgs) -> Result<(), CliError> {
    let mut doc = read(&args.file)?;
    let base = args.file.parent().map(Path::to_path_buf).unwrap_or_default();
    doc.resolve_secrets(|r| read_secret(&base, r))
        .map_err(|e| CliError::Usage(format!("{}: {e}", args.file.display())))?;
    let f = ctx.open().await?;
    let options = Options { dry_run: args.dry_run, prune: args.prune };
    let summary = f.apply().run(&ctx.tenant(), &doc, options, &Actor::Cli).await.map_err(|e| match e {
        latchkey_service::ServiceError::Invalid(m) => CliError::Failed(format!("{}: {m}", args.file.display())),
        other => other.into(),
    })?;
    output::print(&ctx, &summary, || render(&summary, args.dry_run))
}

fn read(path: &Path) -> Result<Document, CliError> {
    use std::io::Read as _;
    let named = |m: String| CliError::Usage(format!("{}: {m}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| named(format!("cannot read it: {e}")))?;
    let mut text = String::new();
    file.take(MAX_DOCUMENT as u64 + 1).read_to_string(&mut text).map_err(|e| named(format!("cannot read it: {e}")))?;
    if text.len() > MAX_DOCUMENT {
        return Err(named(format!("larger than {} MiB", MAX_DOCUMENT / (1024 * 1024))));
    }
    let format =
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) { Format::Json } else { Format::Toml };
    Document::parse(&text, format).map_err(|e| named(e.to_string()))
}

/// The largest secret file read.
const MAX_SECRET_FILE: u64 = 4096;

/// Reads a secret reference: an environment variable, or a regular file (a relative path
/// from the document's directory) that only its owner may read, opened once and checked
/// as opened.
fn read_secret(base: &Path, r: &SecretRef) -> Result<String, String> {
    use std::io::Read as _;
    match r {
        SecretRef::Env(name) => {
            std::env::var(name).map_err(|_| format!("the environment variable `{name}` is not set"))
        }
        SecretRef::File(path) => {
            let path = base.join(path);
            let shown = path.display();
            let file = std::fs::File::open(&path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
            let meta = file.metadata().map_err(|e| format!("cannot read `{shown}`: {e}"))?;
            if !meta.is_file() || meta.len() > MAX_SECRET_FILE {
                return Err(format!("`{shown}` is not a regular file of at most {MAX_SECRET_FILE} bytes"));
            }
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if meta.permissions().mode() & 0o077 != 0 {
                    return Err(format!("`{shown}` is readable by other users; `chmod 600 {shown}` first"));
                }
            }
            let mut text = String::new();
            file.take(MAX_SECRET_FILE).read_to_string(&mut text).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
            Ok(text)
        }
        SecretRef::Resolved(s) => Ok(s.clone()),
    }
}

/// The plan as a diff: `+` created, `~` changed (with each setting before and after),
/// `-` removed; unchanged objects are counted.
fn render(summary: &Summary, dry_run: bool) -> String {
    let mut out = String::new();
    let unchanged = summary.steps.iter().filter(|s| s.action == Action::Unchanged).count();
    for step in &summary.steps {
        let (kind, name) = (step.kind.as_str(), &step.name);
        match &step.action {
            Action::Create => out.push_str(&format!("+ {kind} {name}\n")),
            Action::Delete => out.push_str(&format!("- {kind} {name}\n")),
            Action::Unchanged => {}
            Action::Update { changes } => {
                out.push_str(&format!("~ {kind} {name}\n"));
                for c in changes {
                    out.push_str(&format!("    {}: {} -> {}\n", c.field, c.before, c.after));
                }
            }
        }
    }
    if !summary.changes_anything() {
        return format!("Nothing to change: {unchanged} object(s) already match.");
    }
    let verb = if dry_run { "Would change" } else { "Changed" };
    let changed = summary.steps.len() - unchanged;
    out.push_str(&format!("{verb} {changed} object(s); {unchanged} already matched."));
    if dry_run {
        out.push_str(" Nothing was changed (--dry-run).");
    }
    for s in &summary.secrets {
        out.push_str(&format!("\nSecret of client {}: {}\n  (shown once; store it now)", s.client_id, s.client_secret));
    }
    out
}
