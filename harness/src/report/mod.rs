//! The results model: one `RunReport` per run, the source of truth every writer renders.

pub mod console;
pub mod html;
pub mod json;
pub mod junit;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Version of the `results.json` format; bump on incompatible changes.
pub const SCHEMA: &str = "scs-e2e.results/v1";

/// Outcome of a step, phase, attempt or scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It did what it should.
    Passed,
    /// The system under test misbehaved.
    Failed,
    /// The harness or the infrastructure could not do its part.
    Error,
    /// Not run, e.g. after an earlier failure or an interrupt.
    Skipped,
}

impl Status {
    /// Whether it counts against the run: Failed or Error.
    pub fn is_bad(self) -> bool {
        matches!(self, Status::Failed | Status::Error)
    }
}

/// One run's results (`results.json`), from which every report is written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// Format version, [`SCHEMA`].
    pub schema: String,
    /// The run's random id; the namespaces it creates derive from it.
    pub run_id: String,
    /// The scs-e2e version that ran.
    pub harness_version: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// How long it took, in seconds.
    pub duration_secs: f64,
    /// `lab`, `kubeconfig`, `kind`, `openstack`.
    pub environment: String,
    /// Set-up and tear-down of the environment, as testcases of their own.
    pub phases: Vec<StepResult>,
    /// Versions and settings: environment, Kubernetes version, shard, ...
    pub properties: BTreeMap<String, String>,
    /// The suites of the plan, with their content.
    pub suites: Vec<SuiteRecord>,
    /// The scenarios' results, in plan order.
    pub scenarios: Vec<ScenarioResult>,
    /// The run was interrupted (Ctrl-C); also set in the partial `results.json` written while it runs.
    pub interrupted: bool,
}

/// The workload clusters a run may create, written before anything starts (`clusters.json`
/// in the artifacts), so `scs-e2e cleanup --from` finds them after a run was killed: their
/// namespaces derive from the random run id, which nothing else outside the run knows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPlan {
    /// Format version, [`CLUSTER_PLAN_SCHEMA`].
    pub schema: String,
    /// The run that plans these clusters.
    pub run_id: String,
    /// The environment: `lab`, `kubeconfig`, `kind`, `openstack`.
    pub environment: String,
    /// The kind management cluster the run creates (`kind delete cluster --name` it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_cluster: Option<String>,
    /// The Clusters the plan's `createCluster` steps will create.
    pub clusters: Vec<PlannedCluster>,
}

/// Version of the `clusters.json` format.
pub const CLUSTER_PLAN_SCHEMA: &str = "scs-e2e.clusters/v1";
/// File name of the cluster plan, in the artifacts directory.
pub const CLUSTER_PLAN_FILE: &str = "clusters.json";

/// A Cluster the run may create, and where.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedCluster {
    /// The scenario's namespace.
    pub namespace: String,
    /// The Cluster's name, with the variables known before the run substituted.
    pub name: String,
    /// `suite.scenario`.
    pub scenario: String,
}

/// Enough to re-run a suite exactly: its content and hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SuiteRecord {
    /// The suite's name.
    pub name: String,
    /// Its file as reports show it: relative to the repository (or as given).
    pub file: String,
    /// SHA-256 of its content, in hex.
    pub sha256: String,
    /// The suite's YAML, verbatim.
    pub content: String,
}

/// The result of one scenario (of one matrix combination): its steps and collectors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioResult {
    /// The suite's name.
    pub suite: String,
    /// The scenario's name within the suite.
    pub name: String,
    /// The suite file, as reports show it (JUnit `file`).
    pub file: String,
    /// The matrix values of this expansion; empty without a matrix.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub matrix: BTreeMap<String, String>,
    /// The namespace it ran in; None if it did not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its overall status, from its steps.
    pub status: Status,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How long it took, in seconds.
    pub duration_secs: f64,
    /// Its steps in order, with the teardown deletions and leak checks the harness adds.
    pub steps: Vec<StepResult>,
    /// Collector outcomes (`finally`, `onFailure`): informational, never a failure of the scenario.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collected: Vec<CollectedRecord>,
    /// Relative to the artifacts directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<String>,
}

impl ScenarioResult {
    /// `suite.scenario`: its id in JUnit and on the console.
    pub fn id(&self) -> String {
        format!("{}.{}", self.suite, self.name)
    }
}

/// The result of one step or environment phase: a JUnit testcase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    /// The step's name (phases: `up`, `down`).
    pub name: String,
    /// The operation it ran, like `createCluster` (phases: `up`, `down`).
    pub operation: String,
    /// Its status: that of the last attempt.
    pub status: Status,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How long it took, in seconds, all attempts included.
    pub duration_secs: f64,
    /// Its timeout per attempt, in seconds; 0 for phases.
    pub timeout_secs: f64,
    /// One line: why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// More about the failure (several lines), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// The last lines of the step's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_tail: Option<String>,
    /// The step's full log, relative to the artifacts directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// Every attempt, in order (the last one decided the status).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
}

impl StepResult {
    /// Passed, but only after a failed attempt.
    pub fn is_flaky(&self) -> bool {
        self.status == Status::Passed && self.attempts.len() > 1
    }
}

/// One attempt of a step that was tried more than once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// How the attempt ended.
    pub status: Status,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How long it took, in seconds.
    pub duration_secs: f64,
    /// One line: why it failed; None if it passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// More about the failure, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// What one collector did after a scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectedRecord {
    /// `on-failure/<label>` or `finally/<label>`.
    pub collector: String,
    /// Where its output went, relative to the artifacts directory.
    pub path: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// What it collected, or why it failed.
    pub summary: String,
}

/// Testcases (phases and steps) by status; see [`RunReport::summary`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Passed, flaky ones included.
    pub passed: usize,
    /// Failed: the system under test misbehaved.
    pub failed: usize,
    /// Errors: the harness or the infrastructure could not do its part.
    pub errors: usize,
    /// Not run.
    pub skipped: usize,
    /// Passed only after a failed attempt.
    pub flaky: usize,
}

impl RunReport {
    /// Counts over testcases: environment phases and steps.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for st in self.phases.iter().chain(self.scenarios.iter().flat_map(|sc| &sc.steps)) {
            match st.status {
                Status::Passed => s.passed += 1,
                Status::Failed => s.failed += 1,
                Status::Error => s.errors += 1,
                Status::Skipped => s.skipped += 1,
            }
            if st.is_flaky() {
                s.flaky += 1;
            }
        }
        s
    }

    /// Whether the environment did not come up (its `up` phase failed).
    pub fn environment_failed(&self) -> bool {
        self.phases.iter().any(|p| p.operation == "up" && p.status.is_bad())
    }

    /// The process exit code this report stands for.
    pub fn exit(&self) -> crate::error::Exit {
        use crate::error::Exit;
        if self.interrupted {
            Exit::Interrupted
        } else if self.environment_failed() {
            Exit::Infra
        } else if self.scenarios.iter().any(|s| s.status.is_bad()) {
            Exit::Failures
        } else {
            Exit::Passed
        }
    }
}

/// Where a run's three report files go.
pub struct ReportPaths {
    /// The results model, `results.json`.
    pub json: std::path::PathBuf,
    /// The JUnit XML.
    pub junit: std::path::PathBuf,
    /// The HTML report.
    pub html: std::path::PathBuf,
}

impl ReportPaths {
    /// `results.json`, `junit_scs-e2e.xml` and `report.html` in `dir`.
    pub fn in_dir(dir: &std::path::Path) -> Self {
        ReportPaths {
            json: dir.join(json::FILE_NAME),
            junit: dir.join(junit::FILE_NAME),
            html: dir.join(html::FILE_NAME),
        }
    }
}

/// Writes the JSON, JUnit and HTML reports of `r`, each atomically, the one writer of `run`
/// and `report merge`. Every string of the model (messages, details, log tails, the recorded
/// suite content, properties, reports being merged) is masked before any renderer sees it, and
/// the rendered text once more.
pub fn write_all(r: &RunReport, paths: &ReportPaths) -> std::io::Result<()> {
    let r = crate::redact::masked(r)?;
    crate::redact::write_atomic(&paths.json, &json::render(&r))?;
    crate::redact::write_atomic(&paths.html, &html::render(&r))?;
    crate::redact::write_atomic(&paths.junit, &junit::render(&r))
}

/// Seconds of a duration, rounded to milliseconds, as the reports give them.
pub fn secs(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}
