//! Printing results for people (aligned text) or scripts (`--json`).

use std::io::Write as _;

use serde::Serialize;

use super::{CliError, Context};

pub fn print<T: Serialize>(ctx: &Context, value: &T, human: impl FnOnce() -> String) -> Result<(), CliError> {
    let text = if ctx.json {
        serde_json::to_string_pretty(value).map_err(|e| CliError::Failed(format!("cannot encode JSON: {e}")))?
    } else {
        human().trim_end().to_owned()
    };
    if text.is_empty() {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        // The reader went away (`latchkey user list | head`): nothing left to say.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::Failed(format!("cannot write to standard output: {e}"))),
        Ok(()) => Ok(()),
    }
}

/// Rows as columns padded to the widest cell.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![line(header.iter().map(|h| (*h).to_owned()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}
