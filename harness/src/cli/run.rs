//! `scs-e2e run`, `reproduce`, `list` and `validate`: from suites to a plan, the environment,
//! the engine and the reports.

use super::*;

/// Arguments of `scs-e2e reproduce`: a results.json, which scenarios, and the usual run options.
#[derive(Args, Debug, Clone)]
pub struct ReproduceArgs {
    /// The run's results.json.
    pub results: PathBuf,
    /// Only this scenario (`name` or `suite.scenario`; repeatable; any outcome). Default: every
    /// failed or errored scenario.
    #[arg(long = "scenario")]
    pub scenarios: Vec<String>,
    /// Run commands the report recorded although the local suite file no longer has them
    /// (without it, such commands are listed and nothing runs).
    #[arg(long)]
    pub yes: bool,
    /// The usual `run` options (environment, parallelism, reports, ...).
    #[command(flatten)]
    pub run: RunArgs,
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
    /// A suite variable, NAME=VALUE (repeatable): over SCS_E2E_VAR_<NAME>, the config file's
    /// `vars` and the suites' own.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
}

/// Arguments of `scs-e2e run`: which scenarios, where, and where the reports go.
#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// Which suites and scenarios.
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
    /// Where the lab's binaries come from (`--env lab`; `--env kind` finds its tools there too).
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
pub(super) fn valid_run_id(id: &str) -> anyhow::Result<String> {
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

/// Loads the config and suites and builds the plan; every problem is a usage error.
pub fn plan_from(select: &Select) -> Result<(Settings, Plan), Fatal> {
    let mut settings = Settings::from_file(select.config.as_deref()).map_err(Fatal::usage)?;
    settings.add_vars(&select.vars, std::env::vars()).map_err(Fatal::usage)?;
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

pub(super) fn print_plan(plan: &Plan, json: bool, dry_run: bool) {
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
        if !sc.vars.is_empty() {
            let vars: Vec<String> = sc
                .vars
                .iter()
                .map(|(k, v)| format!("{k}={v} ({})", sc.var_sources.get(k).map(String::as_str).unwrap_or("suite")))
                .collect();
            println!("  vars: {}", crate::redact::apply(&vars.join(", ")));
        }
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

pub(super) fn validate(files: &[PathBuf]) -> Result<Exit, Fatal> {
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

pub(super) async fn run(args: RunArgs, v: Verbosity) -> Result<Exit, Fatal> {
    let (settings, plan) = plan_from(&args.select)?;
    run_plan(args, settings, plan, v).await
}

/// `reproduce`: the scenarios to re-run, their suites as recorded, and a plan of just those.
pub(super) async fn reproduce(args: ReproduceArgs, v: Verbosity) -> Result<Exit, Fatal> {
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
    let mut unknown_commands = Vec::new();
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
            // A results.json can come from anywhere: what it would run that the local suite
            // does not have is shown first, and runs only with --yes.
            let local = std::fs::read_to_string(&path).map(|t| recorded_commands(&t)).unwrap_or_default();
            for c in recorded_commands(&rec.content) {
                if !local.contains(&c) {
                    unknown_commands.push(format!("{}: {c}", rec.name));
                }
            }
        }
        suites.push(loader::load_suite_str(&rec.content, &rec.file, dir).map_err(Fatal::usage)?);
    }
    if !unknown_commands.is_empty() && !args.yes {
        return Err(Fatal::usage(anyhow::anyhow!(
            "{} records commands the local suite files do not have; read them, then run again with --yes to run them:\n  {}",
            args.results.display(),
            unknown_commands.join("\n  ")
        )));
    }
    let mut settings = Settings::from_file(args.run.select.config.as_deref()).map_err(Fatal::usage)?;
    // The recorded suites may use variables the first run was given from outside: give them again.
    settings.add_vars(&args.run.select.vars, std::env::vars()).map_err(Fatal::usage)?;
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

/// The commands a suite's text would run: every `script`, and every `argv` (joined by spaces).
fn recorded_commands(text: &str) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        use serde_json::Value;
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("script", Value::String(s)) => out.push(s.trim().to_string()),
                        ("argv", Value::Array(a)) => out.push(
                            a.iter()
                                .map(|s| s.as_str().map(str::to_string).unwrap_or_else(|| s.to_string()))
                                .collect::<Vec<_>>()
                                .join(" "),
                        ),
                        _ => walk(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_saphyr::from_str::<serde_json::Value>(text) {
        walk(&v, &mut out);
    }
    out
}

pub(super) async fn run_plan(args: RunArgs, settings: Settings, plan: Plan, v: Verbosity) -> Result<Exit, Fatal> {
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
    for (name, slot) in [
        ("environment-up", &mut opts.env_timeouts.0),
        ("environment-down", &mut opts.env_timeouts.1),
    ] {
        if let Some(t) = settings.intervals.get(name) {
            *slot = *t;
        }
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

    // A stack source that is missing or lacks a version fails here, not minutes into the run.
    plan.check_stack_sources().map_err(|e| Fatal::usage(anyhow::anyhow!(e)))?;
    // Resolve the environment before touching anything, so bad input still exits 2 untouched.
    let request = crate::env::EnvRequest {
        run_id: &opts.run_id,
        delete,
        progress: v != Verbosity::Quiet,
        plan: crate::env::PlanNeeds {
            cluster_api: plan.uses_cluster_stacks(),
            local_stacks: plan.uses_local_stacks(),
            only_inmemory_stacks: plan.only_inmemory_stacks(),
            stack_providers: plan.stack_providers(),
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
pub(super) fn env_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        crate::env::ENVIRONMENTS
            .iter()
            .map(|r| clap::builder::PossibleValue::new(r.name).help(r.about)),
    )
}

/// First SIGINT/SIGTERM: cancel (steps stop, collectors and clean-up run, reports are written).
/// Second: exit at once with 130.
pub(super) fn spawn_signal_handler(cancel: CancellationToken) {
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
        crate::process::exit_now(Exit::Interrupted as i32);
    });
}
