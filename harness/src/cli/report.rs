//! `scs-e2e report`: merge the reports of shards; upload a compliance report.

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
    /// Sign a compliance report made earlier (`check -o`) and send it to the SCS compliance
    /// monitor. Exit 0: stored, or there already (409); 2: bad input; 3: not taken.
    Upload {
        /// The compliance report (YAML), sent byte for byte as it is.
        report: PathBuf,
        /// Key, monitor and account.
        #[command(flatten)]
        upload: crate::checks::upload::UploadArgs,
    },
}

/// `report upload`: the report file signed and sent as it is.
pub(super) async fn upload(report: &Path, args: &crate::checks::upload::UploadArgs) -> Result<Exit, Fatal> {
    if args.sign.is_none() || args.upload.is_none() {
        return Err(Fatal::usage(anyhow::anyhow!(
            "give the key (--sign KEYFILE) and the monitor (--upload URL)"
        )));
    }
    let bytes = std::fs::read(report).map_err(|e| Fatal::usage(anyhow::anyhow!("{}: {e}", report.display())))?;
    let text = String::from_utf8_lossy(&bytes);
    let parsed: crate::checks::compliance::Report = serde_saphyr::from_str(&text)
        .map_err(|e| Fatal::usage(anyhow::anyhow!(InputError::from_yaml(&e, &report.display().to_string(), &text))))?;
    let u = args
        .resolve(&parsed.subject)
        .map_err(|e| Fatal::usage(anyhow::anyhow!(e)))?
        .expect("--sign and --upload are given");
    Ok(if super::check::send(&u, &bytes, &parsed.run.uuid).await {
        Exit::Passed
    } else {
        Exit::Infra
    })
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
