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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    /// The system under test misbehaved.
    Failed,
    /// The harness or the infrastructure could not do its part.
    Error,
    Skipped,
}

impl Status {
    pub fn is_bad(self) -> bool {
        matches!(self, Status::Failed | Status::Error)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub schema: String,
    pub run_id: String,
    pub harness_version: String,
    pub started_at: DateTime<Utc>,
    pub duration_secs: f64,
    /// `lab`, `kubeconfig`, `kind`, `openstack`.
    pub environment: String,
    /// Set-up and tear-down of the environment, as testcases of their own.
    pub phases: Vec<StepResult>,
    /// Versions and settings: environment, Kubernetes version, shard, ...
    pub properties: BTreeMap<String, String>,
    pub suites: Vec<SuiteRecord>,
    pub scenarios: Vec<ScenarioResult>,
    pub interrupted: bool,
}

/// The workload clusters a run may create, written before anything starts (`clusters.json`
/// in the artifacts), so `scs-e2e cleanup --from` finds them after a run was killed: their
/// namespaces derive from the random run id, which nothing else outside the run knows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPlan {
    pub schema: String,
    pub run_id: String,
    pub environment: String,
    /// The kind management cluster the run creates (`kind delete cluster --name` it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_cluster: Option<String>,
    pub clusters: Vec<PlannedCluster>,
}

pub const CLUSTER_PLAN_SCHEMA: &str = "scs-e2e.clusters/v1";
pub const CLUSTER_PLAN_FILE: &str = "clusters.json";

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedCluster {
    pub namespace: String,
    pub name: String,
    /// `suite.scenario`.
    pub scenario: String,
}

/// Enough to re-run a suite exactly: its content and hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SuiteRecord {
    pub name: String,
    pub file: String,
    pub sha256: String,
    pub content: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioResult {
    pub suite: String,
    pub name: String,
    pub file: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub matrix: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub status: Status,
    pub started_at: DateTime<Utc>,
    pub duration_secs: f64,
    pub steps: Vec<StepResult>,
    /// Collector outcomes (`finally`, `onFailure`): informational, never a failure of the scenario.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collected: Vec<CollectedRecord>,
    /// Relative to the artifacts directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<String>,
}

impl ScenarioResult {
    pub fn id(&self) -> String {
        format!("{}.{}", self.suite, self.name)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    pub name: String,
    pub operation: String,
    pub status: Status,
    pub started_at: DateTime<Utc>,
    pub duration_secs: f64,
    pub timeout_secs: f64,
    /// One line: why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub status: Status,
    pub started_at: DateTime<Utc>,
    pub duration_secs: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectedRecord {
    pub collector: String,
    pub path: String,
    pub ok: bool,
    pub summary: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub skipped: usize,
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
    pub json: std::path::PathBuf,
    pub junit: std::path::PathBuf,
    pub html: std::path::PathBuf,
}

impl ReportPaths {
    /// `results.json`, `junit.xml` and `report.html` in `dir`.
    pub fn in_dir(dir: &std::path::Path) -> Self {
        ReportPaths {
            json: dir.join(json::FILE_NAME),
            junit: dir.join(junit::FILE_NAME),
            html: dir.join(html::FILE_NAME),
        }
    }
}

/// Writes the JSON, JUnit and HTML reports of `r`, each atomically, the one writer of `run`
/// and `report merge`. Whatever text reached the model (phase errors, collector summaries,
/// reports being merged) is masked once more first.
pub fn write_all(r: &RunReport, paths: &ReportPaths) -> std::io::Result<()> {
    let mut r = r.clone();
    let steps = r.phases.iter_mut().chain(r.scenarios.iter_mut().flat_map(|s| s.steps.iter_mut()));
    for st in steps {
        crate::redact::apply_opt(&mut st.message);
        crate::redact::apply_opt(&mut st.details);
        crate::redact::apply_opt(&mut st.log_tail);
        for a in &mut st.attempts {
            crate::redact::apply_opt(&mut a.message);
            crate::redact::apply_opt(&mut a.details);
        }
    }
    crate::base::write_atomic(&paths.json, json::render(&r).as_bytes())?;
    crate::base::write_atomic(&paths.html, html::render(&r).as_bytes())?;
    crate::base::write_atomic(&paths.junit, junit::render(&r).as_bytes())
}

pub fn secs(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}
