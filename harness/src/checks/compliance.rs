//! The compliance report: the shape of upstream's YAML report, which the SCS compliance monitor
//! ingests, and what it adds up to (results per testcase, upstream's exit code).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{Level, Outcome, Verdict};

/// The compliance report, in the shape the SCS compliance monitor ingests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub spec: SpecRef,
    pub checked_at: String,
    pub reference_date: NaiveDate,
    pub subject: String,
    pub run: Run,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpecRef {
    pub uuid: String,
    pub name: String,
    pub url: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub uuid: String,
    pub argv: Vec<String>,
    pub assignment: BTreeMap<String, String>,
    pub sections: Option<Vec<String>>,
    pub forced_version: Option<String>,
    pub forced_tests: Option<String>,
    pub invocations: BTreeMap<String, Invocation>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    pub id: String,
    pub cmd: String,
    pub results: BTreeMap<String, i8>,
    pub rc: i32,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
    pub info: usize,
    pub warning: usize,
    pub error: usize,
    pub critical: usize,
    /// Every e2e test of a Sonobuoy run (name, passed|failed|failed_ok|skipped), for JUnit only:
    /// the compliance YAML keeps the upstream shape.
    #[serde(skip)]
    pub e2e: Vec<(String, String)>,
}

impl Invocation {
    pub fn new(id: &str, cmd: String) -> Self {
        Invocation {
            id: id.into(),
            cmd,
            results: BTreeMap::new(),
            rc: 0,
            stdout: vec![],
            stderr: vec![],
            info: 0,
            warning: 0,
            error: 0,
            critical: 0,
            e2e: vec![],
        }
    }

    /// Adds a native check's outcome as an upstream script would have printed it.
    pub fn record(&mut self, testcase: &str, o: &Outcome) {
        for (level, msg) in &o.messages {
            self.stderr.push(format!("{}: {msg}", level_word(*level)));
            match level {
                Level::Info => self.info += 1,
                Level::Warning => self.warning += 1,
                Level::Error => self.error += 1,
                Level::Critical => self.critical += 1,
                Level::Debug => {}
            }
        }
        self.stdout.push(format!("{testcase}: {}", verdict_word(o.verdict)));
        self.results.insert(testcase.into(), o.verdict.score());
    }
}

fn level_word(l: Level) -> &'static str {
    match l {
        Level::Debug => "DEBUG",
        Level::Info => "INFO",
        Level::Warning => "WARNING",
        Level::Error => "ERROR",
        Level::Critical => "CRITICAL",
    }
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::Abort => "ABORT",
    }
}

/// All results of a report by testcase id (the latest invocation wins).
pub fn results(r: &Report) -> BTreeMap<String, i8> {
    r.run.invocations.values().flat_map(|i| i.results.clone()).collect()
}

/// Upstream's exit code: criticals + errors + FAIL results, capped at 127.
pub fn exit_code(r: &Report) -> i32 {
    let n: usize = r
        .run
        .invocations
        .values()
        .map(|i| i.critical + i.error + i.results.values().filter(|v| **v == -1).count())
        .sum();
    n.min(127) as i32
}
