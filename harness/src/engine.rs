//! The run engine: environment up, scenarios concurrently (steps in order, each under its
//! timeout, with attempts), collectors, clean-up per the delete policy, environment down.
//! Cancellation stops running steps but still runs collectors and clean-up, and yields a report.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::DeletePolicy;
use crate::context::{FailureKind, StepCtx, StepFailure, StepLog};
use crate::env::Environment;
use crate::kube::Resolver;
use crate::report::console::{Event, Observer};
use crate::report::{self, Attempt, CollectedRecord, RunReport, ScenarioResult, Status, StepResult, SuiteRecord};
use crate::steps::ClusterEffect;
use crate::suite::plan::{Plan, PlannedScenario, PlannedStep};

/// Collectors and clean-up get this long each, even after cancellation.
const COLLECTOR_TIMEOUT: Duration = Duration::from_secs(120);
const LOG_TAIL_LINES: usize = 40;

/// How a run goes: concurrency, clean-up, where the reports go, and the run's id.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Scenarios run at once (default 4).
    pub parallel: usize,
    /// What to delete when a scenario ends (default: keep failures).
    pub delete: DeletePolicy,
    /// Artifacts directory: scenario directories, step logs, the HTML report.
    pub artifacts: PathBuf,
    /// JUnit file (default `<artifacts>/junit_scs-e2e.xml`).
    pub junit: PathBuf,
    /// JSON results file (default `<artifacts>/results.json`).
    pub json: PathBuf,
    /// The run's id (default: random); scenario namespaces and cluster names carry it.
    pub run_id: String,
    /// Extra key/value properties recorded in the reports (shard, delete policy, ...).
    pub properties: BTreeMap<String, String>,
    /// How long the clusters a scenario left get to go when its namespace is deleted in a cloud.
    pub teardown_timeout: Duration,
    /// Bounds of the environment's `up` and `down` (intervals `environment-up`, `environment-down`).
    pub env_timeouts: (Duration, Duration),
}

impl RunOptions {
    /// Defaults for a run writing to `artifacts`, with a fresh run id.
    pub fn new(artifacts: PathBuf) -> Self {
        RunOptions {
            parallel: 4,
            delete: DeletePolicy::Success,
            junit: artifacts.join(report::junit::FILE_NAME),
            json: artifacts.join(report::json::FILE_NAME),
            artifacts,
            run_id: crate::base::new_run_id(),
            properties: BTreeMap::new(),
            teardown_timeout: crate::config::builtin_intervals()["wait-delete"],
            env_timeouts: (
                crate::config::builtin_intervals()["environment-up"],
                crate::config::builtin_intervals()["environment-down"],
            ),
        }
    }
}

/// Everything scenarios share during a run.
struct Shared<'a> {
    resolver: Arc<Resolver>,
    kubeconfig: PathBuf,
    env: &'a dyn Environment,
    opts: &'a RunOptions,
    cancel: CancellationToken,
    obs: &'a dyn Observer,
    extra_path: Vec<PathBuf>,
    partial: Mutex<Vec<ScenarioResult>>,
    base: RunReport,
    /// One lock per name scenarios hold to themselves (`exclusive`).
    exclusive: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Shared<'_> {
    /// Waits until the scenario has every name of its `exclusive` to itself; holds them until
    /// the guards drop. In sorted order, so two scenarios never wait on each other.
    async fn hold(&self, names: &[String]) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
        let mut guards = Vec::new();
        for n in names {
            let lock = self.exclusive.lock().unwrap().entry(n.clone()).or_default().clone();
            guards.push(lock.lock_owned().await);
        }
        guards
    }
}

/// Runs the plan and writes the reports (also when interrupted or when the environment fails).
pub async fn run(plan: &Plan, env: &mut dyn Environment, opts: &RunOptions, cancel: CancellationToken, obs: &dyn Observer) -> RunReport {
    let started_at = Utc::now();
    let t0 = Instant::now();
    let mut base = RunReport {
        schema: report::SCHEMA.to_string(),
        run_id: opts.run_id.clone(),
        harness_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at,
        duration_secs: 0.0,
        environment: env.name().to_string(),
        phases: Vec::new(),
        properties: opts.properties.clone(),
        suites: plan
            .suites
            .iter()
            .map(|s| SuiteRecord {
                name: s.name().to_string(),
                file: s.display_path.clone(),
                sha256: s.sha256.clone(),
                content: s.source.clone(),
            })
            .collect(),
        scenarios: Vec::new(),
        interrupted: false,
    };

    // Before the environment exists: a run killed while creating clusters still says which.
    let mut clusters = cluster_plan(plan, &opts.run_id, env.name());
    clusters.management_cluster = env.management_cluster();
    if let Err(e) = crate::base::write_atomic(
        &opts.artifacts.join(report::CLUSTER_PLAN_FILE),
        format!("{}\n", serde_json::to_string_pretty(&clusters).unwrap_or_default()).as_bytes(),
    ) {
        obs.on(Event::Note(&format!("could not write {}: {e}", report::CLUSTER_PLAN_FILE)));
    }

    let up = phase("up", obs, &cancel, opts.env_timeouts.0, env.up()).await;
    let up_ok = up.status == Status::Passed;
    base.phases.push(up);
    base.properties.extend(env.properties());

    let mut scenarios: Vec<ScenarioResult> = Vec::new();
    let client = match (up_ok, env.kubeconfig()) {
        (true, Some(kc)) => match crate::kube::client_from_kubeconfig(&kc).await {
            Ok(c) => Some((c, kc)),
            Err(e) => {
                let p = base.phases.last_mut().unwrap();
                p.status = Status::Error;
                p.message = Some(e.to_string());
                None
            }
        },
        _ => None,
    };
    match client {
        Some((client, kubeconfig)) => {
            let shared = Shared {
                resolver: Arc::new(Resolver::new(client)),
                kubeconfig,
                env: &*env,
                opts,
                cancel: cancel.clone(),
                obs,
                extra_path: env.bin_dirs(),
                partial: Mutex::new(Vec::new()),
                base: base.clone(),
                exclusive: Mutex::new(HashMap::new()),
            };
            let mut done: Vec<(usize, ScenarioResult)> = futures::stream::iter(plan.scenarios.iter().enumerate())
                .map(|(i, sc)| {
                    let shared = &shared;
                    async move {
                        let _held = shared.hold(&sc.exclusive).await;
                        (i, run_scenario(sc, shared).await)
                    }
                })
                .buffer_unordered(opts.parallel.max(1))
                .collect()
                .await;
            done.sort_by_key(|(i, _)| *i);
            scenarios = done.into_iter().map(|(_, r)| r).collect();
        }
        None => {
            let why = base.phases[0]
                .message
                .clone()
                .unwrap_or_else(|| "environment did not come up".into());
            for sc in &plan.scenarios {
                scenarios.push(skipped_scenario(sc, &format!("not run: the environment did not come up ({why})")));
            }
        }
    }

    let all_passed = up_ok && !cancel.is_cancelled() && scenarios.iter().all(|s| !s.status.is_bad());
    if !all_passed {
        let dir = opts.artifacts.join("environment").join("logs");
        match env
            .collect_logs(&dir)
            .await
            .and_then(|n| Ok(crate::redact::mask_tree(&dir).map(|()| n)?))
        {
            Ok(n) if n > 0 => obs.on(Event::Note(&format!("environment logs: {}", dir.display()))),
            Ok(_) => {}
            Err(e) => obs.on(Event::Note(&format!("could not collect environment logs: {e}"))),
        }
    }
    if opts.delete.should_delete(all_passed) {
        // Tear-down runs even after Ctrl-C: a fresh token, so only a second Ctrl-C stops it.
        let down = phase("down", obs, &CancellationToken::new(), opts.env_timeouts.1, env.down()).await;
        base.phases.push(down);
    } else {
        let hint = env.keep_hint().unwrap_or_default();
        let mut p = instant_result("down", "down", Status::Skipped);
        p.message = Some(
            format!(
                "kept (--delete {:?}){}",
                opts.delete,
                if hint.is_empty() { String::new() } else { format!(": {hint}") }
            )
            .to_lowercase(),
        );
        obs.on(Event::PhaseFinished { result: &p });
        if !hint.is_empty() {
            obs.on(Event::Note(&hint));
        }
        base.phases.push(p);
    }
    base.scenarios = scenarios;
    base.interrupted = cancel.is_cancelled();
    base.duration_secs = report::secs(t0.elapsed());
    base
}

/// Writes the run's reports where its options say (see [`report::write_all`]).
pub fn write_reports(r: &RunReport, opts: &RunOptions) -> std::io::Result<()> {
    report::write_all(
        r,
        &report::ReportPaths {
            json: opts.json.clone(),
            junit: opts.junit.clone(),
            // In the artifacts directory: its links to step logs are relative to it.
            html: opts.artifacts.join(report::html::FILE_NAME),
        },
    )
}

async fn phase(
    name: &str,
    obs: &dyn Observer,
    cancel: &CancellationToken,
    limit: Duration,
    fut: impl std::future::Future<Output = anyhow::Result<()>>,
) -> StepResult {
    obs.on(Event::PhaseStarted { name });
    let started_at = Utc::now();
    let t0 = Instant::now();
    let res = tokio::select! {
        r = tokio::time::timeout(limit, fut) => match r {
            Ok(r) => r.map_err(|e| format!("{e:#}")),
            Err(_) => Err(format!(
                "the environment's {name} did not finish within {} (interval `environment-{name}`; raise it in the config file's `intervals` if this environment needs longer)",
                crate::format::duration::HumanDuration(limit)
            )),
        },
        _ = cancel.cancelled() => Err("interrupted".to_string()),
    };
    let mut r = instant_result(name, name, if res.is_ok() { Status::Passed } else { Status::Error });
    r.timeout_secs = limit.as_secs_f64();
    r.started_at = started_at;
    r.duration_secs = report::secs(t0.elapsed());
    if let Err(e) = res {
        let mut lines = e.lines();
        r.message = lines.next().map(str::to_string);
        let rest: Vec<&str> = lines.collect();
        if !rest.is_empty() {
            r.details = Some(rest.join("\n"));
        }
    }
    obs.on(Event::PhaseFinished { result: &r });
    r
}

fn instant_result(name: &str, op: &str, status: Status) -> StepResult {
    StepResult {
        name: name.to_string(),
        operation: op.to_string(),
        status,
        started_at: Utc::now(),
        duration_secs: 0.0,
        timeout_secs: 0.0,
        message: None,
        details: None,
        log_tail: None,
        log: None,
        attempts: Vec::new(),
    }
}

fn skipped_scenario(sc: &PlannedScenario, why: &str) -> ScenarioResult {
    ScenarioResult {
        suite: sc.suite.clone(),
        name: sc.name.clone(),
        file: sc.suite_file.clone(),
        matrix: sc.matrix.clone(),
        namespace: None,
        status: Status::Skipped,
        started_at: Utc::now(),
        duration_secs: 0.0,
        steps: sc
            .steps
            .iter()
            .map(|s| {
                let mut r = instant_result(&s.name, s.operation, Status::Skipped);
                r.timeout_secs = s.timeout.as_secs_f64();
                r.message = Some(why.to_string());
                r
            })
            .collect(),
        collected: Vec::new(),
        artifacts: None,
    }
}

/// The Clusters the plan's `createCluster` steps will create, with the names as far as they are
/// known before the run (suite, matrix and harness variables substituted).
pub fn cluster_plan(plan: &Plan, run_id: &str, environment: &str) -> report::ClusterPlan {
    let mut clusters = Vec::new();
    for sc in &plan.scenarios {
        let namespace = sc.namespace.clone().unwrap_or_else(|| namespace_for(sc, run_id));
        let vars = scenario_vars(sc, &namespace, run_id);
        for st in &sc.steps {
            if let ClusterEffect::Creates(name) = st.op.operation().cluster_effect() {
                clusters.push(report::PlannedCluster {
                    namespace: namespace.clone(),
                    name: crate::format::subst::substitute_known(name, &vars),
                    scenario: sc.id(),
                });
            }
        }
    }
    clusters.sort();
    clusters.dedup();
    report::ClusterPlan {
        schema: report::CLUSTER_PLAN_SCHEMA.to_string(),
        run_id: run_id.to_string(),
        environment: environment.to_string(),
        management_cluster: None,
        clusters,
    }
}

/// A scenario's own variables: the suite's and the matrix's, NAMESPACE, SCENARIO and RUN_ID.
fn scenario_vars(sc: &PlannedScenario, namespace: &str, run_id: &str) -> BTreeMap<String, String> {
    let mut vars = sc.vars.clone();
    vars.insert("NAMESPACE".into(), namespace.to_string());
    vars.insert("SCENARIO".into(), sc.id());
    vars.insert("RUN_ID".into(), run_id.to_string());
    vars
}

/// `e2e-<scenario>-<hash>`: readable, unique per run, a valid DNS label.
pub fn namespace_for(sc: &PlannedScenario, run_id: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(format!("{run_id}/{}", sc.id()).as_bytes());
    let s: String = crate::base::slug(&sc.name).replace(['.', '_'], "-").chars().take(48).collect();
    format!("e2e-{}-{:02x}{:02x}{:02x}", s.trim_end_matches('-'), h[0], h[1], h[2])
}

fn scenario_status(steps: &[StepResult]) -> Status {
    if steps.iter().any(|s| s.status == Status::Failed) {
        Status::Failed
    } else if steps.iter().any(|s| s.status == Status::Error) {
        Status::Error
    } else if steps.iter().all(|s| s.status == Status::Skipped) {
        Status::Skipped
    } else {
        Status::Passed
    }
}

async fn run_scenario(sc: &PlannedScenario, sh: &Shared<'_>) -> ScenarioResult {
    let id = sc.id();
    let started_at = Utc::now();
    let t0 = Instant::now();
    sh.obs.on(Event::ScenarioStarted {
        id: &id,
        steps: sc.steps.len(),
    });
    let rel_dir = PathBuf::from(crate::base::slug(&sc.suite)).join(crate::base::slug(&sc.name));
    let dir = sh.opts.artifacts.join(&rel_dir);
    let _ = std::fs::create_dir_all(&dir);
    let namespace = sc.namespace.clone().unwrap_or_else(|| namespace_for(sc, &sh.opts.run_id));
    let mut vars = sh.env.step_vars();
    vars.extend(scenario_vars(sc, &namespace, &sh.opts.run_id));
    vars.insert("ARTIFACTS".into(), dir.display().to_string());
    vars.insert("KUBECONFIG".into(), sh.kubeconfig.display().to_string());
    let outputs = crate::context::StepOutputs::default();
    let cloud = sh.env.cluster_cloud();
    let ctx_for = |deadline: Instant, cancel: CancellationToken| StepCtx {
        resolver: sh.resolver.clone(),
        namespace: namespace.clone(),
        kubeconfig: sh.kubeconfig.clone(),
        base_dir: sc.suite_dir.clone(),
        artifacts: dir.clone(),
        // Earlier steps' outputs, but never over the harness's own variables.
        vars: outputs.snapshot().into_iter().chain(vars.clone()).collect(),
        extra_path: sh.extra_path.clone(),
        log: StepLog::default(),
        deadline,
        cancel,
        outputs: outputs.clone(),
        cloud: cloud.clone(),
        run_id: sh.opts.run_id.clone(),
    };

    let owns_namespace = sc.namespace.is_none();
    let mut setup_error = if owns_namespace {
        create_namespace(sh, &namespace, &id)
            .await
            .err()
            .map(|e| format!("namespace {namespace} could not be created: {e}"))
    } else {
        None
    };
    if let (None, Some(c)) = (&setup_error, &cloud) {
        // The cloud's credentials go where the scenario's clusters will be: CAPO's identityRef
        // and ClusterResourceSets are namespace-local.
        if let Err(e) = c.prepare_namespace(&namespace).await {
            setup_error = Some(format!(
                "namespace {namespace}: the {} credentials could not be put in: {e:#}",
                c.kind()
            ));
        }
    }

    let mut steps = Vec::with_capacity(sc.steps.len());
    let mut stop: Option<String> = setup_error;
    for (i, step) in sc.steps.iter().enumerate() {
        let result = if let Some(why) = &stop {
            let mut r = instant_result(
                &step.name,
                step.operation,
                if i == 0 && steps.is_empty() && why.starts_with("namespace") {
                    Status::Error
                } else {
                    Status::Skipped
                },
            );
            r.timeout_secs = step.timeout.as_secs_f64();
            r.message = Some(if r.status == Status::Error {
                why.clone()
            } else {
                format!("skipped: {why}")
            });
            r
        } else if sh.cancel.is_cancelled() {
            let mut r = instant_result(&step.name, step.operation, Status::Skipped);
            r.message = Some("skipped: interrupted".into());
            r
        } else {
            sh.obs.on(Event::StepStarted {
                id: &id,
                index: i,
                steps: sc.steps.len(),
                name: &step.name,
                timeout: step.timeout,
            });
            run_step(step, i, &dir, &rel_dir, &ctx_for, &sh.cancel).await
        };
        if result.status != Status::Skipped {
            sh.obs.on(Event::StepFinished { id: &id, result: &result });
        }
        if result.status.is_bad() && stop.is_none() {
            stop = Some(if sh.cancel.is_cancelled() {
                "interrupted".into()
            } else {
                format!("step `{}` did not pass", step.name)
            });
        }
        let deleted = match (step.op.operation().cluster_effect(), &cloud) {
            (ClusterEffect::Deletes(name), Some(c)) if result.status == Status::Passed => Some((name, c)),
            _ => None,
        };
        steps.push(result);
        // The Cluster is gone, so its provider says it deleted everything: the cloud is asked.
        if let Some((name, c)) = deleted {
            let name = ctx_for(Instant::now(), CancellationToken::new()).substitute(name);
            let leak = c.leak_check(&namespace, &name).await;
            sh.obs.on(Event::StepFinished { id: &id, result: &leak });
            steps.push(leak);
        }
    }
    let mut status = scenario_status(&steps);

    // Collectors: on failure first, then finally; they run after Ctrl-C too, under their own timeout.
    let mut collected = Vec::new();
    let phases: [(&str, &Vec<crate::collect::Collector>, bool); 2] =
        [("on-failure", &sc.on_failure, status.is_bad()), ("finally", &sc.finally, true)];
    for (phase_name, collectors, wanted) in phases {
        if !wanted {
            continue;
        }
        for (i, c) in collectors.iter().enumerate() {
            let cdir = crate::collect::collector_dir(&dir, phase_name, i, c);
            let ctx = ctx_for(Instant::now() + COLLECTOR_TIMEOUT, CancellationToken::new());
            let res = tokio::time::timeout(COLLECTOR_TIMEOUT, c.collect(&ctx, sh.env, &cdir)).await;
            let (ok, summary) = match res {
                Ok(Ok(s)) => (true, s),
                Ok(Err(e)) => (false, format!("{e:#}")),
                Err(_) => (false, "timed out".into()),
            };
            let rel = cdir.strip_prefix(&sh.opts.artifacts).unwrap_or(&cdir).display().to_string();
            collected.push(CollectedRecord {
                collector: format!("{phase_name}/{}", c.label()),
                path: rel,
                ok,
                summary,
            });
        }
    }

    if owns_namespace && sh.opts.delete.should_delete(status == Status::Passed && !sh.cancel.is_cancelled()) {
        // The namespace would take the clusters with it, but then nobody would ask the cloud what
        // they left behind: each goes first, like a deleteCluster step, and is checked. An
        // interrupted run does not wait (its clusters.json names them for `cleanup --from`).
        if let Some(c) = cloud.as_ref().filter(|_| !sh.cancel.is_cancelled()) {
            for name in clusters_left(sh, &namespace).await {
                let step = PlannedStep {
                    name: format!("teardown: delete cluster {name}"),
                    operation: "deleteCluster",
                    timeout: sh.opts.teardown_timeout,
                    timeout_from: "wait-delete".into(),
                    attempts: 1,
                    op: crate::steps::Op::delete_cluster(name.clone()),
                };
                sh.obs.on(Event::StepStarted {
                    id: &id,
                    index: steps.len(),
                    steps: steps.len() + 1,
                    name: &step.name,
                    timeout: step.timeout,
                });
                let r = run_step(&step, steps.len(), &dir, &rel_dir, &ctx_for, &sh.cancel).await;
                sh.obs.on(Event::StepFinished { id: &id, result: &r });
                let passed = r.status == Status::Passed;
                steps.push(r);
                if passed {
                    let leak = c.leak_check(&namespace, &name).await;
                    sh.obs.on(Event::StepFinished { id: &id, result: &leak });
                    steps.push(leak);
                }
            }
            status = scenario_status(&steps);
        }
        let api: Api<Namespace> = Api::all(sh.resolver.client().clone());
        let deleting = api.delete(&namespace, &DeleteParams::background()).await;
        // What the scenario holds to itself can go with its namespace (a finalizer of an object
        // in it deletes a cloud resource): the next holder starts once the namespace is gone.
        let pending = deleting.ok().and_then(|d| d.left()).and_then(|ns| ns.metadata.uid);
        if let Some(uid) = pending.filter(|_| !sc.exclusive.is_empty()) {
            let gone = kube::runtime::wait::await_condition(api, &namespace, kube::runtime::wait::conditions::is_deleted(&uid));
            if tokio::time::timeout(sh.opts.teardown_timeout, gone).await.is_err() {
                sh.obs.on(Event::Note(&format!(
                    "namespace {namespace} still there after {}: the next scenario needing {} starts anyway",
                    crate::format::duration::HumanDuration(sh.opts.teardown_timeout),
                    sc.exclusive.join(", ")
                )));
            }
        }
    }

    let result = ScenarioResult {
        suite: sc.suite.clone(),
        name: sc.name.clone(),
        file: sc.suite_file.clone(),
        matrix: sc.matrix.clone(),
        namespace: Some(namespace),
        status,
        started_at,
        duration_secs: report::secs(t0.elapsed()),
        steps,
        collected,
        artifacts: Some(rel_dir.display().to_string()),
    };
    sh.obs.on(Event::ScenarioFinished { result: &result });
    write_partial(sh, &result);
    result
}

/// The Clusters still in a namespace (none when Cluster API is not there to have any).
async fn clusters_left(sh: &Shared<'_>, namespace: &str) -> Vec<String> {
    let Ok(api) = sh.resolver.api(crate::stack::CAPI_GROUP_VERSION, "Cluster", namespace).await else {
        return Vec::new();
    };
    match api.list(&Default::default()).await {
        Ok(l) => l.items.into_iter().filter_map(|c| c.metadata.name).collect(),
        Err(_) => Vec::new(),
    }
}

/// Keeps `results.json` current after each scenario, so even a killed run leaves what it finished.
/// Marked interrupted until the run's final report replaces it.
fn write_partial(sh: &Shared<'_>, r: &ScenarioResult) {
    let mut done = sh.partial.lock().unwrap();
    done.push(r.clone());
    let mut rep = sh.base.clone();
    rep.scenarios = done.clone();
    rep.interrupted = true;
    if let Ok(rep) = crate::redact::masked(&rep) {
        let _ = crate::redact::write_atomic(&sh.opts.json, &report::json::render(&rep));
    }
}

async fn create_namespace(sh: &Shared<'_>, name: &str, id: &str) -> Result<(), kube::Error> {
    let api: Api<Namespace> = Api::all(sh.resolver.client().clone());
    let mut labels = BTreeMap::new();
    labels.insert("app.kubernetes.io/managed-by".to_string(), "scs-e2e".to_string());
    labels.insert("scs-e2e.scs.community/run-id".to_string(), sh.opts.run_id.clone());
    let mut ann = BTreeMap::new();
    ann.insert("scs-e2e.scs.community/scenario".to_string(), id.to_string());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels),
            annotations: Some(ann),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

async fn run_step(
    step: &PlannedStep,
    index: usize,
    dir: &Path,
    rel_dir: &Path,
    ctx_for: &(dyn Fn(Instant, CancellationToken) -> StepCtx + Sync),
    cancel: &CancellationToken,
) -> StepResult {
    let started_at = Utc::now();
    let t0 = Instant::now();
    let mut attempts = Vec::new();
    let mut log_text = String::new();
    let mut last_tail = String::new();
    let op = step.op.operation();
    for a in 1..=step.attempts {
        let a_started = Utc::now();
        let at0 = Instant::now();
        let deadline = at0 + step.timeout;
        let ctx = ctx_for(deadline, cancel.child_token());
        // Operations watch their own deadline and say what they last saw; the outer guard only
        // catches one that does not.
        let res: Result<(), StepFailure> = tokio::select! {
            r = tokio::time::timeout_at(deadline + Duration::from_secs(2), op.run(&ctx)) => match r {
                Ok(r) => r,
                Err(_) => Err(StepFailure::failed(format!("timed out after {}", humantime::format_duration(step.timeout)))),
            },
            _ = cancel.cancelled() => Err(StepFailure::error("interrupted")),
        };
        let status = match &res {
            Ok(()) => Status::Passed,
            Err(f) if f.kind == FailureKind::Failed => Status::Failed,
            Err(_) => Status::Error,
        };
        if step.attempts > 1 {
            log_text.push_str(&format!("--- attempt {a}/{} ---\n", step.attempts));
        }
        for l in ctx.log.lines() {
            log_text.push_str(&l);
            log_text.push('\n');
        }
        if let Err(f) = &res {
            log_text.push_str(&format!(
                "{}: {}\n",
                if status == Status::Failed { "FAILED" } else { "ERROR" },
                f.message
            ));
        }
        last_tail = ctx.log.tail(LOG_TAIL_LINES);
        attempts.push(Attempt {
            status,
            started_at: a_started,
            duration_secs: report::secs(at0.elapsed()),
            message: res.as_ref().err().map(|f| crate::redact::apply(&f.message).into_owned()),
            details: res
                .as_ref()
                .err()
                .map(|f| crate::redact::apply(&f.details).into_owned())
                .filter(|d| !d.is_empty()),
        });
        if status == Status::Passed || cancel.is_cancelled() {
            break;
        }
    }
    let file = format!("{:02}-{}.log", index + 1, crate::base::slug(&step.name));
    let log_path = dir.join("steps").join(&file);
    let _ = crate::redact::write(&log_path, &log_text);
    let last = attempts.last().expect("at least one attempt");
    StepResult {
        name: step.name.clone(),
        operation: step.operation.to_string(),
        status: last.status,
        started_at,
        duration_secs: report::secs(t0.elapsed()),
        timeout_secs: step.timeout.as_secs_f64(),
        message: last.message.clone(),
        details: last.details.clone(),
        log_tail: Some(last_tail).filter(|t| !t.is_empty()),
        log: Some(rel_dir.join("steps").join(file).display().to_string()),
        attempts: if attempts.len() > 1 { attempts } else { Vec::new() },
    }
}
