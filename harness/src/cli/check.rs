//! `scs-e2e check`: the SCS compliance check of a cluster, upstream's command line and reports.

use super::*;

/// Arguments of `scs-e2e check`: the spec, the cluster, the subject and the checks' inputs.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// The spec (default: the built-in scs-compatible-kaas.yaml).
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// The cluster to check.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<String>,
    /// Name of the subject under test (a KaaS offer, a cluster).
    #[arg(long)]
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
    #[arg(long)]
    pub reference_date: Option<chrono::NaiveDate>,
    /// Check this spec version whatever the timeline says.
    #[arg(short = 'V', long = "force-version")]
    pub force_version: Option<String>,
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
}

pub(super) fn parse_duration(s: &str) -> Result<Duration, crate::error::Invalid> {
    crate::format::duration::HumanDuration::parse(s).map(|d| d.0)
}

pub(super) async fn check(args: CheckArgs) -> Result<i32, Fatal> {
    use crate::checks::{render, request, runner, spec::Spec};
    let crate::checks::spec::Loaded { spec, dir } = Spec::load(args.spec.as_deref(), Path::new(".")).map_err(Fatal::usage)?;
    let mut given = std::collections::BTreeMap::new();
    for a in &args.assign {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| Fatal::usage(anyhow::anyhow!("-a {a}: write key=value")))?;
        given.insert(k.to_string(), v.to_string());
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
    Ok(crate::checks::compliance::exit_code(&report))
}
