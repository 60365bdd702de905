//! `scs-e2e check`: the SCS compliance check of a cluster, upstream's command line and reports.

use super::*;

/// Arguments of `scs-e2e check`: the spec, the cluster, the subject and the checks' inputs.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// The spec (default: the built-in scs-compatible-kaas.yaml).
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// The spec as upstream's scs-compliance-check.py takes it: a file, or
    /// `scs-compatible-kaas[.yaml]` for the built-in copy (also a path to a file of that name
    /// that is not there, like `Tests/scs-compatible-kaas.yaml` outside a standards checkout).
    #[arg(value_name = "SPEC_YAML", conflicts_with = "spec")]
    pub spec_yaml: Option<PathBuf>,
    /// The cluster to check.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<String>,
    /// Name of the subject under test (a KaaS offer, a cluster).
    #[arg(short = 's', long)]
    pub subject: String,
    /// A spec variable, key=value (repeatable).
    #[arg(short = 'a', long = "assign")]
    pub assign: Vec<String>,
    /// Only testcases whose id matches this regular expression (also selects manual and informational ones).
    #[arg(short = 't', long = "tests")]
    pub tests: Option<String>,
    /// Only these sections, like light,heavy.
    #[arg(short = 'S', long = "sections", value_delimiter = ',')]
    pub sections: Vec<String>,
    /// Which versions are in force (default: today, UTC), YYYY-MM-DD.
    #[arg(short = 'd', long, visible_alias = "date")]
    pub reference_date: Option<chrono::NaiveDate>,
    /// Check this spec version whatever the timeline says.
    #[arg(short = 'V', long = "force-version", visible_alias = "version")]
    pub force_version: Option<String>,
    /// Only CRITICAL lines count towards the exit code (not ERRORs and FAILs).
    #[arg(short = 'C', long)]
    pub critical_only: bool,
    /// Debug logs, as -v (upstream's --debug).
    #[arg(long)]
    pub debug: bool,
    /// The compliance report (YAML, upstream shape; default: reports/<subject>-compliance.yaml).
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// JUnit file (default: reports/junit_scs-compliance.xml).
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// How long the storage check waits for its pod and volume.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub storage_timeout: Duration,
    /// How long `sonobuoy run --wait` may take (conformance takes hours).
    #[arg(long, default_value = "6h", value_parser = parse_duration)]
    pub sonobuoy_timeout: Duration,
    /// Where `version-policy-check` gets its EOL, release and CVE data.
    #[command(flatten, next_help_heading = "version-policy-check inputs")]
    pub version_policy: crate::checks::request::VersionPolicySources,
    /// How long downloaded EOL data, releases and CVE records are reused (0s: always download).
    #[arg(long, default_value = "6h", value_parser = parse_duration)]
    pub cache_ttl: Duration,
    /// Signing the compliance report and sending it to the SCS compliance monitor.
    #[command(flatten, next_help_heading = "Upload to the compliance monitor")]
    pub upload: crate::checks::upload::UploadArgs,
}

/// The exit code of `check --upload` when the monitor did not take the report.
pub const UPLOAD_FAILED: i32 = 125;

pub(super) fn parse_duration(s: &str) -> Result<Duration, crate::error::Invalid> {
    crate::format::duration::HumanDuration::parse(s).map(|d| d.0)
}

/// What `scs-e2e check --help` ends with: its exit code is upstream's, not `run`'s.
pub const CHECK_HELP: &str = "Exit code: as upstream's scs-compliance-check.py, a count, not a category like `run`'s:
  CRITICAL lines + ERROR lines + FAIL results (with -C: CRITICAL lines only), capped at 127.
  0 means all selected testcases passed; 2 can mean one ERROR and one FAIL.
  Bad arguments or spec: 2 as well, with the error on stderr and nothing checked.
  With --upload: 125 when the monitor did not take the report (it stays on disk; send it again
  with `scs-e2e report upload`); a report the monitor has already (409) counts as taken.

Upstream's command line works unchanged: scs-e2e check [-s SUBJECT] [-d DATE] [-V VERSION] [-C]
[-o OUTPUT] [-a KEY=VALUE]... [-t REGEX] [-S SECTIONS] [-v|-q] [--debug] SPEC_YAML";

/// The spec `SPEC_YAML` names: the file, or the built-in copy for `scs-compatible-kaas`, its
/// `.yaml` name, or a path to that name where no file is (scripts written for a standards checkout).
fn spec_path(given: &Path) -> Option<&Path> {
    let name = given.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let builtin = matches!(name, "scs-compatible-kaas" | "scs-compatible-kaas.yaml") && !given.exists();
    (!builtin).then_some(given)
}

pub(super) async fn check(args: CheckArgs) -> Result<i32, Fatal> {
    use crate::checks::{render, request, runner, spec::Spec};
    let path = match (&args.spec, &args.spec_yaml) {
        (Some(p), _) => Some(p.as_path()),
        (None, Some(p)) => spec_path(p),
        (None, None) => None,
    };
    let crate::checks::spec::Loaded { spec, dir } = Spec::load(path, Path::new(".")).map_err(Fatal::usage)?;
    let mut given = std::collections::BTreeMap::new();
    for a in &args.assign {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| Fatal::usage(anyhow::anyhow!("-a {a}: write key=value")))?;
        if given.insert(k.to_string(), v.to_string()).is_some() {
            return Err(Fatal::usage(anyhow::anyhow!(
                "-a {k}=...: `{k}` is assigned twice; give each variable once"
            )));
        }
    }
    let kubeconfig = args
        .kubeconfig
        .as_deref()
        .map(crate::env::kubeconfig::first_kubeconfig)
        .or_else(|| given.get("kubeconfig").map(PathBuf::from));
    if let Some(k) = &kubeconfig {
        crate::env::kubeconfig::check_kubeconfig(k).map_err(Fatal::usage)?;
        given.entry("kubeconfig".into()).or_insert_with(|| k.display().to_string());
    }
    let out_dir = PathBuf::from("reports");
    if spec.variables.iter().any(|v| v.name == "subject_root") {
        given
            .entry("subject_root".into())
            .or_insert_with(|| out_dir.join(&args.subject).display().to_string());
    }
    let assignment = spec.assignment(&given).map_err(|e| Fatal::usage(anyhow::anyhow!(e)))?;
    // Checked before anything runs: a missing password must not cost an hour of conformance.
    let upload = args.upload.resolve(&args.subject).map_err(|e| Fatal::usage(anyhow::anyhow!(e)))?;
    let tests = args
        .tests
        .as_deref()
        .map(|t| regex::Regex::new(t).map_err(|e| Fatal::usage(anyhow::anyhow!("-t `{t}` is not a valid regular expression: {e}"))))
        .transpose()?;
    if let Some(v) = &args.force_version
        && !spec.versions.iter().any(|x| &x.version == v)
    {
        return Err(Fatal::usage(anyhow::anyhow!(
            "-V {v}: the spec has versions {}",
            spec.versions.iter().map(|x| x.version.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    let req = request::Request {
        spec,
        spec_dir: dir,
        subject: args.subject.clone(),
        assignment,
        tests,
        sections: (!args.sections.is_empty()).then(|| args.sections.clone()),
        reference_date: args.reference_date.unwrap_or_else(|| chrono::Utc::now().date_naive()),
        forced_version: args.force_version.clone(),
        kubeconfig,
        argv: std::env::args().collect(),
        storage_timeout: args.storage_timeout,
        sonobuoy_timeout: args.sonobuoy_timeout,
        cancel: {
            // Ctrl-C interrupts a long sonobuoy run, which then still cleans up.
            let c = tokio_util::sync::CancellationToken::new();
            let on_int = c.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("interrupted: stopping the running check (sonobuoy cleans up first)");
                    on_int.cancel();
                }
            });
            c
        },
        version_policy: {
            let mut vp = request::VersionPolicyInputs::cached();
            vp.sources = args.version_policy.resolve(Path::new("."));
            vp.options = args.version_policy.options(vp.options);
            vp.options.ttl = args.cache_ttl;
            vp
        },
        run_id: crate::base::new_run_id(),
        tool_dirs: vec![crate::env::lab::build::Assets::locate(None, None).bin_dir],
    };
    let report = runner::run(&req).await;
    let yaml_path = args
        .output
        .clone()
        .unwrap_or_else(|| out_dir.join(format!("{}-compliance.yaml", crate::base::slug(&args.subject))));
    let junit_path = args.junit.clone().unwrap_or_else(|| out_dir.join("junit_scs-compliance.xml"));
    crate::redact::write_atomic(&yaml_path, &render::yaml(&report))?;
    crate::redact::write_atomic(&junit_path, &render::junit(&req, &report))?;
    print!("{}", render::summary(&req, &report));
    eprintln!("reports: {} {}", yaml_path.display(), junit_path.display());
    let code = crate::checks::compliance::exit_code(&report, args.critical_only);
    match upload {
        Some(u) => {
            // The bytes on disk are the bytes signed: the file can be sent again as it is.
            let bytes = std::fs::read(&yaml_path)?;
            Ok(if send(&u, &bytes, &report.run.uuid).await {
                code
            } else {
                UPLOAD_FAILED
            })
        }
        None => Ok(code),
    }
}

/// Uploads and says what came of it; whether the monitor has the report now.
pub(super) async fn send(u: &crate::checks::upload::Upload, bytes: &[u8], run_uuid: &str) -> bool {
    use crate::checks::upload::{Uploaded, upload};
    let say = |l: &str| eprintln!("{}", crate::redact::apply(l));
    match upload(u, bytes, &say).await {
        Ok(Uploaded::Stored) => {
            eprintln!("uploaded: the monitor stored report {run_uuid} (account {})", u.user);
            true
        }
        Ok(Uploaded::AlreadyThere) => {
            eprintln!("already uploaded: the monitor has report {run_uuid} (409)");
            true
        }
        Err(e) => {
            eprintln!("{}", crate::redact::apply(&format!("upload failed: {e}")));
            false
        }
    }
}
