//! SCS KaaS standard checks (scs-compatible-kaas) as a library: the spec (`spec`), a request and
//! its selection (`request`), the runner (`runner`) with the native testcases (`native` registry,
//! one module each) and Sonobuoy, the compliance model (`compliance`) and its renderers (`render`).

pub mod args;
pub mod compliance;
pub mod native;
pub mod node_distribution;
pub mod render;
pub mod request;
pub mod runner;
pub mod sonobuoy;
pub mod spec;
pub mod storage_class;
pub mod upload;
pub mod version_policy;

use serde::{Deserialize, Serialize};

/// A testcase result, with the numbers the SCS compliance report uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// The testcase passed (score 1).
    Pass,
    /// The subject does not meet the testcase's requirements (score -1).
    Fail,
    /// The testcase could not decide, e.g. the cluster or an input was unreachable (score 0).
    Abort,
}

impl Verdict {
    /// `results{<testcase>: 1|-1|0}` in the compliance YAML.
    pub fn score(self) -> i8 {
        match self {
            Verdict::Pass => 1,
            Verdict::Fail => -1,
            Verdict::Abort => 0,
        }
    }
}

/// Severity of a message a check emits (`LEVEL: message` upstream).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    /// Diagnostics; printed, but not counted in the compliance report.
    Debug,
    /// Informational; counted as `info` in the compliance report.
    Info,
    /// Worth attention but not a failure; counted as `warning` (not in the exit code).
    Warning,
    /// A requirement is not met; counted as `error` and in upstream's exit code.
    Error,
    /// The check could not do its job; counted as `critical` and in upstream's exit code.
    Critical,
}

/// What one native testcase found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// PASS, FAIL or ABORT.
    pub verdict: Verdict,
    /// What the check reports, in order; upstream prints them as `LEVEL: message` on stderr.
    pub messages: Vec<(Level, String)>,
}

impl Outcome {
    /// An outcome with this verdict and no messages yet.
    pub fn new(verdict: Verdict) -> Self {
        Outcome {
            verdict,
            messages: Vec::new(),
        }
    }
    /// Adds a message at `level` (builder style).
    pub fn with(mut self, level: Level, msg: impl Into<String>) -> Self {
        self.messages.push((level, msg.into()));
        self
    }
}
