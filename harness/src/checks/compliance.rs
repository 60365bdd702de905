//! The compliance report: the shape of upstream's YAML report, which the SCS compliance monitor
//! ingests, and what it adds up to (results per testcase, upstream's exit code).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{Level, Outcome, Verdict};

/// The compliance report, in the shape the SCS compliance monitor ingests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Which spec was checked.
    pub spec: SpecRef,
    /// When the check ran: UTC, `YYYY-MM-DD HH:MM:SS`.
    pub checked_at: String,
    /// The date that decides which spec versions are in force (default: today).
    pub reference_date: NaiveDate,
    /// Name of the subject under test (a KaaS offer, a cluster).
    pub subject: String,
    /// How the check was invoked and what each invocation found.
    pub run: Run,
}

/// The spec a report was checked against, as the spec file names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpecRef {
    /// The spec's `uuid`.
    pub uuid: String,
    /// The spec's `name`, like `SCS-compatible KaaS`.
    pub name: String,
    /// The spec's `url`: where the spec file is published.
    pub url: String,
}

/// One check run: its command line, variables, selection and invocations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// A UUID-shaped id of this run (derived from the run id and the clock).
    pub uuid: String,
    /// The scs-e2e command line that ran the check (`scs-e2e runChecks` for a suite step).
    pub argv: Vec<String>,
    /// Spec variables and their values (`-a key=value`, defaults filled in).
    pub assignment: BTreeMap<String, String>,
    /// The sections asked for (`-S`); None: all.
    pub sections: Option<Vec<String>>,
    /// The spec version forced with `-V`; None: the versions in force at the reference date.
    pub forced_version: Option<String>,
    /// The `-t` regular expression that narrowed the testcases; None: no filter.
    pub forced_tests: Option<String>,
    /// Every invocation (native check, Sonobuoy or script), keyed by a UUID-shaped id.
    pub invocations: BTreeMap<String, Invocation>,
}

/// One invocation of a native check or a spec script: its results and output, as upstream records them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    /// The testcase id (native checks, Sonobuoy) or the script's executable.
    pub id: String,
    /// The command as shown in the report: `scs-e2e native <id>`, `sonobuoy ...` or the script's command line.
    pub cmd: String,
    /// Testcase id → score: 1 PASS, -1 FAIL, 0 ABORT.
    pub results: BTreeMap<String, i8>,
    /// Exit code: the script's (-1 if killed by a signal), 2 for bad args, 126 if it cannot run,
    /// 127 if it is missing; 0 for native checks.
    pub rc: i32,
    /// Output lines, `<testcase>: PASS|FAIL|ABORT`.
    pub stdout: Vec<String>,
    /// Message lines, `LEVEL: message`.
    pub stderr: Vec<String>,
    /// Number of INFO messages.
    pub info: usize,
    /// Number of WARNING messages.
    pub warning: usize,
    /// Number of ERROR messages (they count towards the exit code).
    pub error: usize,
    /// Number of CRITICAL messages (they count towards the exit code).
    pub critical: usize,
    /// Every e2e test of a Sonobuoy run (name, passed|failed|failed_ok|skipped), for JUnit only:
    /// the compliance YAML keeps the upstream shape.
    #[serde(skip)]
    pub e2e: Vec<(String, String)>,
    /// When it started and how long it ran, for JUnit's `timestamp` and `time`; not in the
    /// upstream YAML.
    #[serde(skip)]
    pub timing: Option<(chrono::DateTime<chrono::Utc>, std::time::Duration)>,
}

impl Invocation {
    /// An empty invocation (no results, rc 0) of testcase or script `id`, run as `cmd`.
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
            timing: None,
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

/// Upstream's exit code: criticals + errors + FAIL results (criticals only with `-C`,
/// `critical_only`), capped at 127.
pub fn exit_code(r: &Report, critical_only: bool) -> i32 {
    let n: usize = r
        .run
        .invocations
        .values()
        .map(|i| {
            let errors = i.error + i.results.values().filter(|v| **v == -1).count();
            i.critical + if critical_only { 0 } else { errors }
        })
        .sum();
    n.min(127) as i32
}
