//! The `scs-e2e` command line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{DeletePolicy, Settings};
use crate::engine::{self, RunOptions};
use crate::env::Environment;
use crate::env::lab::{self, LabOptions, build};
use crate::error::{Exit, Fatal, InputError};
use crate::report::console::{Console, Verbosity};
use crate::suite::loader::{self, LoadedSuite};
use crate::suite::plan::{Filters, Plan, build_plan};

const EXIT_CODES: &str = "Exit codes:
  0    all tests passed
  1    at least one test failed
  2    usage, suite or config error (nothing was touched)
  3    infrastructure error: the environment could not come up
  130  interrupted (SIGINT/SIGTERM); reports are still written

Settings: flags > environment (SCS_E2E_*, KUBECONFIG) > --config file > defaults.";

#[derive(Parser, Debug)]
#[command(name = "scs-e2e", version, about = "End-to-end conformance and testing harness for SCS Cluster Stacks", after_help = EXIT_CODES)]
pub struct Cli {
    /// Only failures and the summary.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Step starts and debug logs too.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run suites (default: the quickstart suite in the lab).
    #[command(after_help = EXIT_CODES)]
    Run(RunArgs),
    /// List the scenarios and steps a run would execute, after filters.
    List {
        #[command(flatten)]
        select: Select,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Check suite and config files without running anything.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the suite format (or of the config file).
    Schema {
        #[arg(long)]
        config: bool,
    },
    /// Run the SCS KaaS standard checks (scs-compatible-kaas) against a cluster.
    Check(CheckArgs),
    /// The local lab: a real control plane from Go modules, no Docker.
    Lab {
        #[command(subcommand)]
        command: LabCmd,
    },
    /// Container images built from source for `--env kind` (kind node image, management
    /// controllers), so nothing is ever pulled: air-gapped sites, machines without a registry.
    Images {
        #[command(subcommand)]
        command: ImagesCmd,
    },
    /// Work with results.json files.
    Report {
        #[command(subcommand)]
        command: ReportCmd,
    },
    /// Re-run a report's failed scenarios with the suite content it recorded, keeping the
    /// environment (`--delete never`) so you can look at it.
    Reproduce(ReproduceArgs),
    /// List (and with --yes delete) the OpenStack resources a workload cluster left behind.
    #[command(after_help = crate::env::openstack::cleanup::CLEANUP_HELP)]
    Cleanup(crate::env::openstack::cleanup::CleanupArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ReproduceArgs {
    /// The run's results.json.
    pub results: PathBuf,
    /// Only this scenario (`name` or `suite.scenario`; repeatable; any outcome). Default: every
    /// failed or errored scenario.
    #[arg(long = "scenario")]
    pub scenarios: Vec<String>,
    #[command(flatten)]
    pub run: RunArgs,
}

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
    #[command(flatten, next_help_heading = "version-policy-check inputs")]
    pub version_policy: crate::checks::request::VersionPolicySources,
    /// How long downloaded EOL data, releases and CVE records are reused (0s: always download).
    #[arg(long, default_value = "6h", value_parser = parse_duration)]
    pub cache_ttl: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::format::duration::HumanDuration::parse(s).map(|d| d.0)
}

#[derive(Subcommand, Debug)]
pub enum LabCmd {
    /// Build the lab's binaries (cached; skipped when present).
    Install(LabAssetArgs),
    /// Start a lab that keeps running; prints how to reach it.
    Up {
        #[command(flatten)]
        assets: LabAssetArgs,
        #[arg(long, env = "SCS_E2E_LAB_DIR")]
        dir: Option<PathBuf>,
        /// Fixed API server port (default: a free one).
        #[arg(long)]
        apiserver_port: Option<u16>,
        /// Also run Cluster API (core, kubeadm, in-memory provider) and the Cluster Stack
        /// Operator in local mode; release assets go to `<dir>/releases`.
        #[arg(long)]
        cluster_api: bool,
    },
    /// Stop a lab and remove its data.
    Down {
        #[arg(long, env = "SCS_E2E_LAB_DIR")]
        dir: Option<PathBuf>,
    },
    /// Show whether a lab's processes run and its API server is ready.
    Status {
        #[arg(long, env = "SCS_E2E_LAB_DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Args, Debug, Clone, Default)]
pub struct LabAssetArgs {
    /// Use prebuilt binaries from this directory (KUBEBUILDER_ASSETS layout) instead of building.
    #[arg(long, env = "SCS_E2E_LAB_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Cache for built binaries (default: $XDG_CACHE_HOME/scs-e2e/lab).
    #[arg(long, env = "SCS_E2E_LAB_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ImagesCmd {
    /// Build the images (cached, keyed on their pins; present ones are reused). Needs a
    /// container engine (DOCKER_HOST is honoured), Go and debootstrap.
    Build {
        /// Only these images (and what they need); default: all.
        names: Vec<String>,
        /// Build again even when present.
        #[arg(long)]
        force: bool,
    },
    /// What exists and what would be built.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReportCmd {
    /// Merge the results.json of several shards into one results.json and JUnit file.
    Merge {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output directory.
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// Which scenarios: shared by `run` and `list`.
#[derive(Args, Debug, Clone, Default)]
pub struct Select {
    /// Suite name (from suites/ or built in) or file; repeatable. Default: quickstart.
    #[arg(long = "suite", env = "SCS_E2E_SUITE", value_delimiter = ',')]
    pub suites: Vec<String>,
    /// Config file.
    #[arg(long, env = "SCS_E2E_CONFIG")]
    pub config: Option<PathBuf>,
    /// Only scenarios whose `suite.scenario` matches this regular expression.
    #[arg(long, env = "SCS_E2E_FOCUS")]
    pub focus: Option<String>,
    /// Leave out scenarios whose `suite.scenario` matches this regular expression.
    #[arg(long, env = "SCS_E2E_SKIP")]
    pub skip: Option<String>,
    /// Run shard I of N (stable round-robin over sorted scenario names), like 2/4.
    #[arg(long, env = "SCS_E2E_SHARD")]
    pub shard: Option<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    #[command(flatten)]
    pub select: Select,
    /// Where the cluster comes from (default: lab).
    #[arg(long, env = "SCS_E2E_ENV", value_parser = env_names())]
    pub env: Option<String>,
    /// Kubeconfig for --env kubeconfig.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<String>,
    /// Scenarios at once (default 4).
    #[arg(long, env = "SCS_E2E_PARALLEL")]
    pub parallel: Option<usize>,
    /// What to delete afterwards: always, success (keep failures; default) or never.
    #[arg(long, value_enum, env = "SCS_E2E_DELETE")]
    pub delete: Option<DeletePolicy>,
    /// Artifacts directory (default: reports).
    #[arg(long, env = "SCS_E2E_ARTIFACTS")]
    pub artifacts: Option<PathBuf>,
    /// JUnit file (default: <artifacts>/junit_scs-e2e.xml).
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// JSON results (default: <artifacts>/results.json).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Print the expanded plan and touch nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Name this run (default: random), e.g. with the CI build's id: scenario namespaces, the
    /// kind cluster and the reports carry it. 1 to 40 of a-z, 0-9 and -.
    #[arg(long, env = "SCS_E2E_RUN_ID")]
    pub run_id: Option<String>,
    #[command(flatten)]
    pub lab: LabAssetArgs,
    /// --env openstack: the clouds.yaml entry (default OS_CLOUD, or the file's only cloud).
    #[arg(long)]
    pub cloud: Option<String>,
    /// --env openstack: use this management cluster instead of creating one with kind.
    #[arg(long)]
    pub management_kubeconfig: Option<PathBuf>,
}

/// A run id ends up in namespace and kind cluster names, so it must fit a DNS label.
fn valid_run_id(id: &str) -> anyhow::Result<String> {
    let ok = (1..=40).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-');
    if ok {
        Ok(id.to_string())
    } else {
        Err(anyhow::anyhow!(
            "--run-id `{id}`: use 1 to 40 characters of a-z, 0-9 and - (not first or last), e.g. the CI build id in lower case"
        ))
    }
}

pub fn main() -> i32 {
    crate::redact::add_from_env();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => Exit::Usage as i32,
            };
        }
    };
    init_tracing(cli.verbose);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(f) => {
            eprintln!("error: {:#}", f.error);
            f.exit as i32
        }
    }
}

fn init_tracing(verbose: bool) {
    let default = if verbose { "scs_e2e=debug,kube=warn" } else { "scs_e2e=warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SCS_E2E_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn verbosity(cli: &Cli) -> Verbosity {
    if cli.quiet {
        Verbosity::Quiet
    } else if cli.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    }
}

async fn dispatch(cli: Cli) -> Result<i32, Fatal> {
    let v = verbosity(&cli);
    if let Cmd::Check(args) = cli.command {
        return check(args).await;
    }
    dispatch_exit(cli.command, v).await.map(|e| e as i32)
}

async fn dispatch_exit(command: Cmd, v: Verbosity) -> Result<Exit, Fatal> {
    match command {
        Cmd::Run(args) => run(args, v).await,
        Cmd::Reproduce(args) => reproduce(args, v).await,
        Cmd::Cleanup(args) => crate::env::openstack::cleanup::run(args).await,
        Cmd::List { select, json } => {
            let (_, plan) = plan_from(&select)?;
            print_plan(&plan, json, false);
            Ok(Exit::Passed)
        }
        Cmd::Validate { files } => validate(&files),
        Cmd::Schema { config } => {
            let schema = if config {
                schemars::schema_for!(crate::config::ConfigFile)
            } else {
                crate::suite::model::suite_schema()
            };
            println!("{}", serde_json::to_string_pretty(&schema).expect("schema serializes"));
            Ok(Exit::Passed)
        }
        Cmd::Lab { command } => lab_cmd(command).await,
        Cmd::Images { command } => images_cmd(command).await,
        Cmd::Check(_) => unreachable!("handled in dispatch"),
        Cmd::Report {
            command: ReportCmd::Merge { files, output },
        } => {
            let reports = files
                .iter()
                .map(|f| crate::report::json::read(f))
                .collect::<anyhow::Result<Vec<_>>>()
                .map_err(Fatal::usage)?;
            let merged = crate::report::json::merge(reports).map_err(Fatal::usage)?;
            crate::base::write_atomic(
                &output.join(crate::report::json::FILE_NAME),
                crate::report::json::render(&merged).as_bytes(),
            )?;
            crate::base::write_atomic(
                &output.join(crate::report::junit::FILE_NAME),
                crate::report::junit::render(&merged).as_bytes(),
            )?;
            crate::base::write_atomic(
                &output.join(crate::report::html::FILE_NAME),
                crate::report::html::render(&merged).as_bytes(),
            )?;
            eprintln!("{}", crate::report::console::summary_text(&merged));
            Ok(merged.exit())
        }
    }
}

/// Loads the config and suites and builds the plan; every problem is a usage error.
pub fn plan_from(select: &Select) -> Result<(Settings, Plan), Fatal> {
    let settings = Settings::from_file(select.config.as_deref()).map_err(Fatal::usage)?;
    let filters = Filters::parse(select.focus.as_deref(), select.skip.as_deref(), select.shard.as_deref()).map_err(Fatal::usage)?;
    let mut names = select.suites.clone();
    if names.is_empty() {
        names = settings.file.as_ref().map(|f| f.suites.clone()).unwrap_or_default();
    }
    if names.is_empty() {
        names.push("quickstart".into());
    }
    let suites: Vec<LoadedSuite> = names
        .iter()
        .map(|n| loader::find_suite(n))
        .collect::<Result<_, InputError>>()
        .map_err(Fatal::usage)?;
    let plan = build_plan(suites, &settings, &filters).map_err(Fatal::usage)?;
    Ok((settings, plan))
}

fn print_plan(plan: &Plan, json: bool, dry_run: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(&plan.scenarios).expect("plan serializes"));
        return;
    }
    for sc in &plan.scenarios {
        let matrix: Vec<String> = sc.matrix.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{}{}  ({})",
            sc.id(),
            if matrix.is_empty() {
                String::new()
            } else {
                format!(" [{}]", matrix.join(", "))
            },
            sc.suite_file
        );
        for (i, st) in sc.steps.iter().enumerate() {
            let attempts = if st.attempts > 1 {
                format!(", {} attempts", st.attempts)
            } else {
                String::new()
            };
            println!(
                "  {:>2}. {:<8} {}  (timeout {} from {}{attempts})",
                i + 1,
                st.operation,
                st.name,
                humantime::format_duration(st.timeout),
                st.timeout_from
            );
        }
        if dry_run {
            for c in &sc.on_failure {
                println!("      on failure: collect {}", c.label());
            }
            for c in &sc.finally {
                println!("      finally: collect {}", c.label());
            }
        }
    }
    let (n, steps) = (plan.scenarios.len(), plan.scenarios.iter().map(|s| s.steps.len()).sum::<usize>());
    println!(
        "{n} scenario{}, {steps} step{}",
        if n == 1 { "" } else { "s" },
        if steps == 1 { "" } else { "s" }
    );
}

fn validate(files: &[PathBuf]) -> Result<Exit, Fatal> {
    let settings = Settings::default();
    let mut bad = 0;
    for f in files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let kind = serde_saphyr::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string))
            .unwrap_or_default();
        let res: Result<String, InputError> = if kind == "Config" {
            crate::config::load_config(f).map(|_| "config".to_string())
        } else {
            loader::load_suite_file(f).and_then(|ls| {
                loader::validate(&ls, &settings)?;
                let n = crate::suite::plan::expand_suite(&ls, &settings)?.len();
                Ok(format!("suite {} ({n} scenarios)", ls.name()))
            })
        };
        match res {
            Ok(what) => println!("ok: {} ({what})", f.display()),
            Err(e) => {
                bad += 1;
                eprintln!("error: {e}");
            }
        }
    }
    Ok(if bad > 0 { Exit::Usage } else { Exit::Passed })
}

async fn run(args: RunArgs, v: Verbosity) -> Result<Exit, Fatal> {
    let (settings, plan) = plan_from(&args.select)?;
    run_plan(args, settings, plan, v).await
}

/// `reproduce`: the scenarios to re-run, their suites as recorded, and a plan of just those.
async fn reproduce(args: ReproduceArgs, v: Verbosity) -> Result<Exit, Fatal> {
    use sha2::Digest;
    let report = crate::report::json::read(&args.results).map_err(Fatal::usage)?;
    let ids: Vec<String> = if args.scenarios.is_empty() {
        report
            .scenarios
            .iter()
            .filter(|s| matches!(s.status, crate::report::Status::Failed | crate::report::Status::Error))
            .map(|s| format!("{}.{}", s.suite, s.name))
            .collect()
    } else {
        let mut ids = Vec::new();
        for want in &args.scenarios {
            let found: Vec<String> = report
                .scenarios
                .iter()
                .filter(|s| s.name == *want || format!("{}.{}", s.suite, s.name) == *want)
                .map(|s| format!("{}.{}", s.suite, s.name))
                .collect();
            if found.is_empty() {
                let known: Vec<String> = report.scenarios.iter().map(|s| format!("{}.{}", s.suite, s.name)).collect();
                return Err(Fatal::usage(anyhow::anyhow!(
                    "{}: no scenario `{want}` (it has {})",
                    args.results.display(),
                    known.join(", ")
                )));
            }
            ids.extend(found);
        }
        ids
    };
    if ids.is_empty() {
        eprintln!("{}: nothing failed, nothing to reproduce", args.results.display());
        return Ok(Exit::Passed);
    }
    let mut suites = Vec::new();
    for rec in report
        .suites
        .iter()
        .filter(|r| ids.iter().any(|id| id.starts_with(&format!("{}.", r.name))))
    {
        let path = PathBuf::from(&rec.file);
        let dir = path
            .parent()
            .filter(|d| d.is_dir())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| std::env::current_dir().unwrap_or_default());
        let now = std::fs::read(&path).ok().map(|b| format!("{:x}", sha2::Sha256::digest(&b)));
        if now.as_deref() != Some(rec.sha256.as_str()) {
            eprintln!(
                "suite {}: {} {} since the run; using the content the report recorded",
                rec.name,
                rec.file,
                if now.is_some() { "changed" } else { "is gone" }
            );
        }
        suites.push(loader::load_suite_str(&rec.content, &rec.file, dir).map_err(Fatal::usage)?);
    }
    let settings = Settings::from_file(args.run.select.config.as_deref()).map_err(Fatal::usage)?;
    let focus = format!("^({})$", ids.iter().map(|i| regex::escape(i)).collect::<Vec<_>>().join("|"));
    let filters = Filters::parse(Some(&focus), None, None).map_err(Fatal::usage)?;
    let plan = build_plan(suites, &settings, &filters).map_err(Fatal::usage)?;
    eprintln!(
        "reproducing {} scenario(s) of run {}: {}",
        plan.scenarios.len(),
        report.run_id,
        ids.join(", ")
    );
    let mut run = args.run;
    if run.env.is_none() {
        run.env = crate::env::find(&report.environment).map(|r| r.name.to_string());
    }
    run.delete = run.delete.or(Some(DeletePolicy::Never));
    if run.artifacts.is_none() {
        run.artifacts = Some(args.results.parent().unwrap_or(Path::new(".")).join("reproduce"));
    }
    run_plan(run, settings, plan, v).await
}

async fn run_plan(args: RunArgs, settings: Settings, plan: Plan, v: Verbosity) -> Result<Exit, Fatal> {
    let file = settings.file.clone();
    let f = file.as_ref();
    let registration = match (&args.env, f.and_then(|c| c.env.as_ref())) {
        (Some(name), _) => crate::env::find(name).ok_or_else(|| Fatal::usage(anyhow::anyhow!(crate::env::unknown(name))))?,
        (None, Some(name)) => crate::env::find(&name.value).ok_or_else(|| {
            let message = format!("env: {}", crate::env::unknown(&name.value));
            match &settings.config_file {
                Some(file) => Fatal::usage(crate::config::error_at(file, name, message)),
                None => Fatal::usage(anyhow::anyhow!(message)),
            }
        })?,
        (None, None) => &crate::env::ENVIRONMENTS[0],
    };
    let env_name = registration.name;
    let parallel = args.parallel.or(f.and_then(|c| c.parallel)).unwrap_or(4);
    if parallel == 0 {
        return Err(Fatal::usage(anyhow::anyhow!("--parallel must be at least 1")));
    }
    let delete = args.delete.or(f.and_then(|c| c.delete)).unwrap_or(DeletePolicy::Success);
    let artifacts = args
        .artifacts
        .clone()
        .or(f.and_then(|c| c.artifacts.clone()))
        .unwrap_or_else(|| PathBuf::from("reports"));
    for s in &plan.suites {
        if !s.suite.environments.is_empty() && !s.suite.environments.iter().any(|e| e == env_name) {
            return Err(Fatal::usage(anyhow::anyhow!(
                "suite {} runs in {} only, not in --env {}",
                s.name(),
                s.suite.environments.join(", "),
                env_name
            )));
        }
    }
    let mut opts = RunOptions::new(artifacts.clone());
    opts.parallel = parallel;
    opts.delete = delete;
    if let Some(id) = &args.run_id {
        opts.run_id = valid_run_id(id).map_err(Fatal::usage)?;
    }
    if let Some(t) = settings.intervals.get("wait-delete") {
        opts.teardown_timeout = *t;
    }
    if let Some(j) = &args.junit {
        opts.junit = j.clone();
    }
    if let Some(j) = &args.json {
        opts.json = j.clone();
    }
    if let Some(s) = &args.select.shard {
        opts.properties.insert("shard".into(), s.clone());
    }
    opts.properties.insert("delete_policy".into(), format!("{delete:?}").to_lowercase());

    // Resolve the environment before touching anything, so bad input still exits 2 untouched.
    let request = crate::env::EnvRequest {
        run_id: &opts.run_id,
        delete,
        progress: v != Verbosity::Quiet,
        plan: crate::env::PlanNeeds {
            cluster_api: plan.uses_cluster_stacks(),
            local_stacks: plan.uses_local_stacks(),
            only_inmemory_stacks: plan.only_inmemory_stacks(),
        },
        file: f,
        kubeconfig: args.kubeconfig.as_deref(),
        management_kubeconfig: args.management_kubeconfig.as_deref(),
        cloud: args.cloud.as_deref(),
        lab_bin_dir: args.lab.bin_dir.as_deref(),
        lab_cache_dir: args.lab.cache_dir.as_deref(),
    };
    let mut env: Box<dyn Environment> = (registration.create)(&request).map_err(Fatal::usage)?;

    if args.dry_run {
        println!(
            "plan (dry run: nothing is touched) — env {}, parallel {parallel}, delete {delete:?}",
            env_name
        );
        print_plan(&plan, false, true);
        return Ok(Exit::Passed);
    }

    let cancel = CancellationToken::new();
    spawn_signal_handler(cancel.clone());
    let console = Console::new(v);
    let report = engine::run(&plan, env.as_mut(), &opts, cancel, &console).await;
    engine::write_reports(&report, &opts)?;
    drop(env);
    eprintln!("{}", crate::report::console::summary_text(&report));
    eprintln!(
        "reports: {} {} {}",
        opts.junit.display(),
        opts.json.display(),
        opts.artifacts.join(crate::report::html::FILE_NAME).display()
    );
    Ok(report.exit())
}

/// `--env` takes the registered environments' names (listed with their help in `--help`).
fn env_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        crate::env::ENVIRONMENTS
            .iter()
            .map(|r| clap::builder::PossibleValue::new(r.name).help(r.about)),
    )
}

fn tool_dirs(k: &crate::config::KindConfig, args: &RunArgs) -> Vec<PathBuf> {
    let assets = build::Assets::locate(args.lab.bin_dir.clone(), args.lab.cache_dir.clone());
    crate::env::kind::tool_dirs(k.bin_dir.as_deref(), &assets.bin_dir)
}

async fn images_cmd(cmd: ImagesCmd) -> Result<Exit, Fatal> {
    use crate::env::images;
    let dirs = tool_dirs(&Default::default(), &RunArgs::default());
    let cache = images::Cache::locate();
    match cmd {
        ImagesCmd::Build { names, force } => {
            let recipes = images::closure(&names).map_err(Fatal::usage)?;
            let engine = images::Engine::find(&dirs).map_err(Fatal::infra)?;
            crate::env::kind::check_engine(&engine.docker).map_err(Fatal::infra)?;
            let t0 = std::time::Instant::now();
            let built = tokio::task::spawn_blocking(move || images::ensure_shown(&engine, &cache, &recipes, force, true))
                .await
                .map_err(|e| Fatal::infra(anyhow::anyhow!(e)))?
                .map_err(Fatal::infra)?;
            if built.is_empty() {
                eprintln!("images present");
            } else {
                eprintln!("built {} in {:.0}s", built.join(", "), t0.elapsed().as_secs_f64());
            }
        }
        ImagesCmd::List { json } => {
            let engine = images::Engine::find(&dirs)
                .ok()
                .filter(|e| e.run(&["info", "--format", "{{.ServerVersion}}"]).is_ok());
            let rows = images::list(engine.as_ref(), &cache);
            if json {
                println!("{}", serde_json::to_string_pretty(&rows).expect("serializes"));
            } else {
                println!("{:<34} {:<34} {:<12} TAG", "IMAGE", "STATE", "KEY");
                for r in &rows {
                    println!("{:<34} {:<34} {:<12} {}", r["name"], r["state"], r["key"], r["tag"]);
                }
            }
        }
    }
    Ok(Exit::Passed)
}

/// First SIGINT/SIGTERM: cancel (steps stop, collectors and clean-up run, reports are written).
/// Second: exit at once with 130.
fn spawn_signal_handler(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
            return;
        };
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        eprintln!("interrupted: stopping steps, collecting, cleaning up and writing reports (interrupt again to exit now)");
        cancel.cancel();
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        eprintln!("interrupted twice: exiting now");
        std::process::exit(Exit::Interrupted as i32);
    });
}

async fn lab_cmd(cmd: LabCmd) -> Result<Exit, Fatal> {
    match cmd {
        LabCmd::Install(a) => {
            let assets = build::Assets::locate(a.bin_dir, a.cache_dir);
            let t0 = std::time::Instant::now();
            let built = tokio::task::spawn_blocking(move || build::install(&assets, &build::ConsoleProgress::new()).map(|b| (b, assets)))
                .await
                .map_err(|e| Fatal::infra(anyhow::anyhow!(e)))?
                .map_err(Fatal::infra)?;
            if built.0.is_empty() {
                eprintln!("lab binaries present in {}", built.1.bin_dir.display());
            } else {
                eprintln!(
                    "built {} in {:.0}s into {}",
                    built.0.join(", "),
                    t0.elapsed().as_secs_f64(),
                    built.1.bin_dir.display()
                );
            }
            println!("{}", built.1.bin_dir.display());
            Ok(Exit::Passed)
        }
        LabCmd::Up {
            assets,
            dir,
            apiserver_port,
            cluster_api,
        } => {
            let assets = build::Assets::locate(assets.bin_dir, assets.cache_dir);
            let a2 = assets.clone();
            tokio::task::spawn_blocking(move || build::install(&a2, &build::ConsoleProgress::new()))
                .await
                .map_err(|e| Fatal::infra(anyhow::anyhow!(e)))?
                .map_err(Fatal::infra)?;
            let dir = dir.unwrap_or_else(lab::default_dir);
            let mut opts = LabOptions::new(dir.clone(), assets);
            opts.apiserver_port = apiserver_port;
            opts.detached = true;
            opts.cluster_api = cluster_api;
            let t0 = std::time::Instant::now();
            let lab = lab::Lab::start(opts).await.map_err(|e| match e {
                lab::LabError::Running { .. }
                | lab::LabError::Stale { .. }
                | lab::LabError::PortInUse { .. }
                | lab::LabError::FixedPortInUse { .. } => Fatal::usage(e),
                other => Fatal::infra(other),
            })?;
            let kc = lab.kubeconfig();
            let st = lab.detach();
            eprintln!(
                "lab ready in {:.1}s: Kubernetes {} at https://127.0.0.1:{}",
                t0.elapsed().as_secs_f64(),
                st.kubernetes_version,
                st.ports.apiserver
            );
            eprintln!("stop it with: scs-e2e lab down --dir {}", dir.display());
            println!("export KUBECONFIG={}", kc.display());
            Ok(Exit::Passed)
        }
        LabCmd::Down { dir } => {
            let dir = dir.unwrap_or_else(lab::default_dir);
            let n = tokio::task::spawn_blocking(move || lab::down_dir(&dir))
                .await
                .map_err(|e| Fatal::infra(anyhow::anyhow!(e)))?
                .map_err(|e| match e {
                    lab::LabError::NoLab { .. } => Fatal::usage(e),
                    other => Fatal::infra(other),
                })?;
            eprintln!("lab stopped ({n} processes) and removed");
            Ok(Exit::Passed)
        }
        LabCmd::Status { dir } => {
            let dir = dir.unwrap_or_else(lab::default_dir);
            let (state, procs, ready) = lab::status_dir(&dir).await.map_err(Fatal::usage)?;
            println!("lab {} (Kubernetes {})", dir.display(), state.kubernetes_version);
            for (name, alive) in &procs {
                println!(
                    "  {name:<26} {} (pid {})",
                    if *alive { "running" } else { "NOT RUNNING" },
                    state.pids[name]
                );
            }
            match &ready {
                Ok(()) => println!("  api server https://127.0.0.1:{} ready", state.ports.apiserver),
                Err(e) => println!("  api server https://127.0.0.1:{} NOT READY: {e}", state.ports.apiserver),
            }
            println!("  export KUBECONFIG={}", state.kubeconfig.display());
            Ok(if ready.is_ok() && procs.values().all(|a| *a) {
                Exit::Passed
            } else {
                Exit::Infra
            })
        }
    }
}

async fn check(args: CheckArgs) -> Result<i32, Fatal> {
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
    crate::base::write_atomic(&yaml_path, render::yaml(&report).as_bytes())?;
    crate::base::write_atomic(&junit_path, render::junit(&req, &report).as_bytes())?;
    print!("{}", render::summary(&req, &report));
    eprintln!("reports: {} {}", yaml_path.display(), junit_path.display());
    Ok(crate::checks::compliance::exit_code(&report))
}
