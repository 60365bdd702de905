//! `scs-e2e report`: merge the reports of shards.

use super::*;

/// `scs-e2e report` subcommands.
#[derive(Subcommand, Debug)]
pub enum ReportCmd {
    /// Merge the results.json of several shards into one results.json and JUnit file.
    Merge {
        /// The shards' results.json files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output directory.
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// Merges the `results.json` of shards into one set of reports in `output`.
pub(super) fn merge(files: &[PathBuf], output: &Path) -> Result<Exit, Fatal> {
    let reports = files
        .iter()
        .map(|f| crate::report::json::read(f))
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(Fatal::usage)?;
    let merged = crate::report::json::merge(reports).map_err(Fatal::usage)?;
    crate::report::write_all(&merged, &crate::report::ReportPaths::in_dir(output))?;
    eprintln!("{}", crate::report::console::summary_text(&merged));
    Ok(merged.exit())
}
