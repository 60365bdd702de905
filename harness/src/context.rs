//! What a running step works with, below the steps themselves: its context (cluster, namespace,
//! variables, deadline, cancellation, log, run id), how it fails, and the narrower [`Scope`] the
//! stack operations take.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::format::ResourceRef;
use crate::kube::Resolver;

/// The field manager of everything scs-e2e applies server-side.
pub const FIELD_MANAGER: &str = "scs-e2e";

/// How a step ended when it did not pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The system under test did not behave as asserted.
    Failed,
    /// The step could not do its job (API unreachable, bad manifest, ...).
    Error,
}

/// Why a step did not pass: the kind, a one-line message and optional details.
#[derive(Clone, Debug)]
pub struct StepFailure {
    /// Failed (the system misbehaved) or Error (the step could not do its job).
    pub kind: FailureKind,
    /// One line, for JUnit's `message` attribute and the console.
    pub message: String,
    /// Longer text for the reports (diffs, command output); empty when there is none.
    pub details: String,
}

impl StepFailure {
    /// A `Failed` step: the system under test did not behave as asserted. Newlines are folded.
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Failed,
            message: one_line(message.into()),
            details: String::new(),
        }
    }
    /// An `Error`: the step could not do its job. Newlines are folded into one line.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Error,
            message: one_line(message.into()),
            details: String::new(),
        }
    }
    /// Adds the longer details for the reports.
    pub fn details(mut self, d: impl Into<String>) -> Self {
        self.details = d.into();
        self
    }
}

fn one_line(s: String) -> String {
    if s.contains('\n') {
        s.split('\n')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" | ")
    } else {
        s
    }
}

impl From<kube::Error> for StepFailure {
    fn from(e: kube::Error) -> Self {
        StepFailure::error(format!("Kubernetes API: {e}"))
    }
}

impl From<crate::kube::WaitError> for StepFailure {
    fn from(e: crate::kube::WaitError) -> Self {
        StepFailure::failed(e.to_string())
    }
}

/// The step's log: lines kept in memory (the tail goes to JUnit) and written to the artifacts.
#[derive(Clone, Default)]
pub struct StepLog(Arc<Mutex<Vec<String>>>);

impl StepLog {
    /// Adds a line (secrets redacted), also logged at debug level.
    pub fn line(&self, s: impl Into<String>) {
        let s = s.into();
        let s = match crate::redact::apply(&s) {
            std::borrow::Cow::Owned(o) => o,
            std::borrow::Cow::Borrowed(_) => s,
        };
        tracing::debug!(target: "scs_e2e::step", "{s}");
        self.0.lock().unwrap().push(s);
    }
    /// All lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    /// The last `n` lines, joined by newlines.
    pub fn tail(&self, n: usize) -> String {
        let l = self.0.lock().unwrap();
        l[l.len().saturating_sub(n)..].join("\n")
    }
}

/// Everything a running step may use.
#[derive(Clone)]
pub struct StepCtx {
    /// Cluster client with kind-to-resource lookup, for the environment's cluster.
    pub resolver: Arc<Resolver>,
    /// The scenario's namespace: the default for namespaced objects.
    pub namespace: String,
    /// Kubeconfig of the environment's cluster (given to commands as KUBECONFIG).
    pub kubeconfig: PathBuf,
    /// Relative file paths in steps resolve against the suite file's directory.
    pub base_dir: PathBuf,
    /// This scenario's artifact directory.
    pub artifacts: PathBuf,
    /// `${NAME}` variables available at run time (suite vars, NAMESPACE, SCENARIO, ...).
    pub vars: BTreeMap<String, String>,
    /// Prepended to PATH for commands (the lab's binaries).
    pub extra_path: Vec<PathBuf>,
    /// This attempt's log.
    pub log: StepLog,
    /// When this attempt's timeout runs out.
    pub deadline: Instant,
    /// Cancelled when the run is interrupted.
    pub cancel: CancellationToken,
    /// Variables a step hands to the scenario's later steps (a workload cluster's kubeconfig path).
    pub outputs: StepOutputs,
    /// The cloud the workload clusters run in (OpenStack), if any.
    pub cloud: Option<Arc<dyn crate::env::ClusterCloud>>,
    /// The run's id (`--run-id`, or made at start): names derived per run use it.
    pub run_id: String,
}

/// Variables set by steps, shared by one scenario's steps.
#[derive(Clone, Default)]
pub struct StepOutputs(Arc<Mutex<BTreeMap<String, String>>>);

impl StepOutputs {
    /// Sets `name` for the scenario's later steps (overwriting an earlier value).
    pub fn set(&self, name: impl Into<String>, value: impl Into<String>) {
        self.0.lock().unwrap().insert(name.into(), value.into());
    }
    /// A copy of the variables set so far.
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        self.0.lock().unwrap().clone()
    }
}

impl StepCtx {
    /// Where and until when a stack operation of this step acts.
    pub fn scope(&self) -> Scope {
        Scope {
            resolver: self.resolver.clone(),
            namespace: self.namespace.clone(),
            deadline: self.deadline,
            cancel: self.cancel.clone(),
            log: self.log.clone(),
        }
    }

    /// The Kubernetes client of the environment's cluster.
    pub fn client(&self) -> kube::Client {
        self.resolver.client().clone()
    }

    /// `p` as is when absolute, else relative to the suite file's directory.
    pub fn resolve_path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() { p.to_path_buf() } else { self.base_dir.join(p) }
    }

    /// Substitutes `${NAME}` for known run-time variables; unknown ones are left for the shell.
    pub fn substitute(&self, s: &str) -> String {
        crate::format::subst::substitute_known(s, &self.vars)
    }

    /// The namespace of a referenced object: its `namespace` (substituted), else the scenario's.
    pub fn namespace_of(&self, r: &ResourceRef) -> String {
        r.namespace
            .as_deref()
            .map(|n| self.substitute(n))
            .unwrap_or_else(|| self.namespace.clone())
    }

    /// The API for a referenced kind (in its namespace, if namespaced).
    pub async fn api_for(&self, r: &ResourceRef) -> Result<kube::Api<kube::api::DynamicObject>, StepFailure> {
        self.resolver
            .api(&r.api_version, &r.kind, &self.namespace_of(r))
            .await
            .map_err(|e| unknown_kind(r, e))
    }
}

/// The `Error` for a kind that cannot be resolved (CRD missing or wrong apiVersion).
pub fn unknown_kind(r: &ResourceRef, e: kube::Error) -> StepFailure {
    StepFailure::error(format!(
        "cannot resolve kind {} in {}: {e}; is its CRD installed and the apiVersion right?",
        r.kind, r.api_version
    ))
}

/// What a stack operation needs of a step, and no more: the cluster, the namespace it acts in,
/// the deadline, cancellation and the log its progress goes to.
#[derive(Clone)]
pub struct Scope {
    /// Cluster client with kind-to-resource lookup.
    pub resolver: Arc<Resolver>,
    /// The namespace the operation acts in.
    pub namespace: String,
    /// When the step's timeout runs out.
    pub deadline: Instant,
    /// Cancelled when the run is interrupted.
    pub cancel: CancellationToken,
    /// The step's log, where progress goes.
    pub log: StepLog,
}

impl Scope {
    /// The Kubernetes client of the cluster.
    pub fn client(&self) -> kube::Client {
        self.resolver.client().clone()
    }
}
