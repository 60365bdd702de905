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
pub mod version_policy;

use serde::{Deserialize, Serialize};

/// A testcase result, with the numbers the SCS compliance report uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Fail,
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
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

/// What one native testcase found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub verdict: Verdict,
    pub messages: Vec<(Level, String)>,
}

impl Outcome {
    pub fn new(verdict: Verdict) -> Self {
        Outcome {
            verdict,
            messages: Vec::new(),
        }
    }
    pub fn with(mut self, level: Level, msg: impl Into<String>) -> Self {
        self.messages.push((level, msg.into()));
        self
    }
}
