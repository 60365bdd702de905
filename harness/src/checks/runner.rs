//! Runs a spec's testcases (native where we have them, the spec's script otherwise) and renders
//! the SCS compliance report, the console summary and JUnit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::spec::Spec;
use super::{Level, Outcome, Verdict};

/// Testcases implemented here; the others run the spec's script.
pub const NATIVE: &[&str] = &["version-policy-check", "node-distribution-check", "default-storage-class"];

/// Scripts we replace with the native Sonobuoy driver.
const SONOBUOY_SCRIPT: &str = "run_sonobuoy.py";

/// Native testcases that are not in the spec and run only when `-t` names them.
const INFORMATIONAL: &[&str] = &["default-storage-class"];

#[derive(Clone, Debug)]
pub struct Request {
    pub spec: Spec,
    /// The spec's directory: scripts' paths are relative to it.
    pub spec_dir: PathBuf,
    pub subject: String,
    pub assignment: BTreeMap<String, String>,
    pub tests: Option<Regex>,
    pub sections: Option<Vec<String>>,
    pub reference_date: NaiveDate,
    pub forced_version: Option<String>,
    pub kubeconfig: Option<PathBuf>,
    pub argv: Vec<String>,
    pub storage_timeout: Duration,
    /// Bound for `sonobuoy run --wait` (conformance takes hours on real clusters).
    pub sonobuoy_timeout: Duration,
    /// Where `version-policy-check` reads EOL data, releases and CVEs, and how it caches them.
    pub version_policy: VersionPolicyInputs,
}

/// Where `version-policy-check` gets its data: a mirror directory and/or one file or URL per
/// input. Given as `check` flags or a `runChecks` step's `versionPolicy`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, schemars::JsonSchema, clap::Args)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VersionPolicySources {
    /// Mirror directory for air-gapped runs: k8s-eol-data.yml, releases.json (GitHub releases, one
    /// array), cve-feed.json (Kubernetes CVE feed) and cve/<CVE-ID>.json.
    #[arg(long = "version-policy-data", value_name = "DIR")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Kubernetes EOL data (file or URL; default: the SCS standards repository's).
    #[arg(long, value_name = "FILE|URL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eol_data: Option<String>,
    /// Kubernetes releases (default: the GitHub releases API; GITHUB_TOKEN is used if set).
    #[arg(long = "k8s-releases", value_name = "FILE|URL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub releases: Option<String>,
    /// The official Kubernetes CVE feed (JSON).
    #[arg(long, value_name = "FILE|URL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cve_feed: Option<String>,
    /// CVE records: a URL prefix (CVE services API) or a directory of <CVE-ID>.json.
    #[arg(long, value_name = "DIR|URL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cve_records: Option<String>,
}

impl VersionPolicySources {
    /// Relative paths are taken from `base` (the working directory, or the suite's directory).
    pub fn resolve(&self, base: &std::path::Path) -> super::version_policy::Sources {
        use super::version_policy::{Source, Sources};
        let source = |s: &str| match s.parse::<Source>() {
            Ok(Source::File(p)) if p.is_relative() => Source::File(base.join(p)),
            Ok(other) => other,
            Err(never) => match never {},
        };
        let mut out = match &self.data {
            Some(d) => match source(d) {
                Source::File(dir) => Sources::from_dir(&dir),
                Source::Url(u) => Sources {
                    eol: Source::Url(format!("{}/k8s-eol-data.yml", u.trim_end_matches('/'))),
                    releases: Source::Url(format!("{}/releases.json", u.trim_end_matches('/'))),
                    cve_feed: Source::Url(format!("{}/cve-feed.json", u.trim_end_matches('/'))),
                    cve_record_base: Source::Url(format!("{}/cve/", u.trim_end_matches('/'))),
                },
            },
            None => Sources::default(),
        };
        for (given, slot) in [
            (&self.eol_data, &mut out.eol),
            (&self.releases, &mut out.releases),
            (&self.cve_feed, &mut out.cve_feed),
            (&self.cve_records, &mut out.cve_record_base),
        ] {
            if let Some(g) = given {
                *slot = source(g);
            }
        }
        out
    }
}

/// Inputs of `version-policy-check`; `now` pins the clock (reproducible runs, tests).
#[derive(Clone, Debug, Default)]
pub struct VersionPolicyInputs {
    pub sources: super::version_policy::Sources,
    pub options: super::version_policy::Options,
    pub now: Option<chrono::DateTime<Utc>>,
}

impl VersionPolicyInputs {
    /// The defaults (the upstream URLs), cached under the user's cache directory for a few hours
    /// so that repeated runs neither hammer GitHub's rate limit nor need the network.
    pub fn cached() -> Self {
        VersionPolicyInputs {
            options: super::version_policy::Options {
                cache_dir: Some(crate::base::cache_root().join("version-policy")),
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

/// One row of work: a testcase and the versions/targets that ask for it.
#[derive(Clone, Debug)]
pub struct Selected {
    pub id: String,
    pub manual: bool,
}

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
    fn new(id: &str, cmd: String) -> Self {
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

    fn record(&mut self, testcase: &str, o: &Outcome) {
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

impl Request {
    /// The testcases to run: every target of the versions in force (or the forced one), narrowed
    /// by `-t` and `-S`; manual testcases only when `-t` names them and we implement them.
    pub fn select(&self) -> Vec<Selected> {
        let versions: Vec<String> = match &self.forced_version {
            Some(v) => vec![v.clone()],
            None => self
                .spec
                .versions_in_force(self.reference_date)
                .into_iter()
                .map(|(v, _)| v)
                .collect(),
        };
        let mut ids: BTreeSet<String> = versions.iter().flat_map(|v| self.spec.targets(v).into_values().flatten()).collect();
        if let Some(re) = &self.tests {
            ids.extend(
                self.spec
                    .testcases()
                    .map(|t| t.id.clone())
                    .chain(INFORMATIONAL.iter().map(|s| s.to_string()))
                    .filter(|id| re.is_match(id)),
            );
            ids.retain(|id| re.is_match(id));
        }
        if let Some(sections) = &self.sections {
            ids.retain(|id| {
                self.spec
                    .testcase(id)
                    .and_then(|t| t.section.as_ref())
                    .is_none_or(|s| sections.contains(s))
            });
        }
        ids.into_iter()
            .map(|id| {
                let manual = self.spec.script_of(&id).is_some_and(|s| s.executable.is_none())
                    && !(NATIVE.contains(&id.as_str()) && self.tests.as_ref().is_some_and(|r| r.is_match(&id)));
                Selected { id, manual }
            })
            .collect()
    }
}

/// Runs the selected testcases; native ones in-process, others through their script.
pub async fn run(req: &Request) -> Report {
    let mut invocations = BTreeMap::new();
    let client = match &req.kubeconfig {
        Some(k) => crate::kube::client_from_kubeconfig(k).await.map_err(|e| e.to_string()),
        None => Err("no kubeconfig: pass --kubeconfig or -a kubeconfig=FILE".to_string()),
    };
    let mut scripts_done: BTreeSet<usize> = BTreeSet::new();
    for sel in req.select() {
        if sel.manual {
            continue;
        }
        let native = NATIVE.contains(&sel.id.as_str());
        if native {
            let outcome = match (&client, sel.id.as_str()) {
                (Err(e), _) => Outcome::new(Verdict::Abort).with(Level::Critical, e.clone()),
                (Ok(c), "version-policy-check") => version_policy(c, &req.version_policy).await,
                (Ok(c), "node-distribution-check") => super::node_distribution::run(c).await,
                (Ok(c), _) => super::storage_class::run(c, req.storage_timeout).await,
            };
            let mut inv = Invocation::new(&sel.id, format!("scs-e2e native {}", sel.id));
            inv.record(&sel.id, &outcome);
            invocations.insert(uuid_like(&sel.id), inv);
        } else if let Some(i) = req.spec.scripts.iter().position(|s| s.testcases.iter().any(|t| t.id == sel.id)) {
            let script = &req.spec.scripts[i];
            // One invocation per script, like upstream: it reports all its testcases at once.
            if scripts_done.insert(i) {
                let inv = if script.executable.as_deref().is_some_and(|e| e.ends_with(SONOBUOY_SCRIPT)) {
                    run_sonobuoy(req, script, &sel.id).await
                } else {
                    run_script(req, script).await
                };
                invocations.insert(uuid_like(&format!("script-{i}")), inv);
            }
        }
    }
    Report {
        spec: SpecRef {
            uuid: req.spec.uuid.clone(),
            name: req.spec.name.clone(),
            url: req.spec.url.clone(),
        },
        checked_at: Utc::now().format("%Y-%m-%d %H:%M:%S").to_string(),
        reference_date: req.reference_date,
        subject: req.subject.clone(),
        run: Run {
            uuid: uuid_like(&format!("run-{}", crate::base::new_run_id())),
            argv: req.argv.clone(),
            assignment: req.assignment.clone(),
            sections: req.sections.clone(),
            forced_version: req.forced_version.clone(),
            forced_tests: req.tests.as_ref().map(|r| r.as_str().to_string()),
            invocations,
        },
    }
}

async fn version_policy(client: &kube::Client, inputs: &VersionPolicyInputs) -> Outcome {
    use super::version_policy as vp;
    match vp::cluster_version(client).await {
        Ok(v) => vp::run(&v, &inputs.sources, &inputs.options, inputs.now.unwrap_or_else(Utc::now)).await,
        Err(e) => Outcome::new(Verdict::Abort).with(Level::Critical, format!("{e:#}")),
    }
}

/// A UUID-shaped identifier derived from a name and the clock (no extra dependency for v4).
fn uuid_like(seed: &str) -> String {
    use sha2::Digest;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let h = sha2::Sha256::digest(format!("{seed}/{nanos}/{}", std::process::id()).as_bytes());
    let x: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-4{}-8{}-{}", &x[0..8], &x[8..12], &x[13..16], &x[17..20], &x[20..32])
}

/// The okToFail list named by the spec: beside the spec, else the copy built in.
const OK_TO_FAIL: &str = include_str!("../../../fixtures/scs-standards/scs-sonobuoy-config-v1.yaml");

async fn run_sonobuoy(req: &Request, script: &super::spec::Script, id: &str) -> Invocation {
    use super::sonobuoy;
    let args = req
        .spec
        .format_args(script.args.as_deref().unwrap_or(""), &req.assignment)
        .map(|a| split_args(&a));
    let parsed = args.and_then(|a| sonobuoy::Invocation::from_script_args(&a));
    let mut inv = Invocation::new(
        id,
        format!("scs-e2e native sonobuoy ({})", script.executable.as_deref().unwrap_or("")),
    );
    let si = match parsed {
        Ok(si) => si,
        Err(e) => {
            inv.record(id, &Outcome::new(Verdict::Abort).with(Level::Critical, e));
            return inv;
        }
    };
    let beside = req.spec_dir.join(&si.config);
    let ok_text = std::fs::read_to_string(&beside).unwrap_or_else(|_| OK_TO_FAIL.to_string());
    let lab_bin = crate::env::lab::build::Assets::locate(None, None).bin_dir;
    let bin = sonobuoy::find_binary(&[lab_bin]);
    let (outcome, tests) = sonobuoy::run(&si, &ok_text, &req.spec_dir, bin, req.sonobuoy_timeout).await;
    inv.cmd = format!("sonobuoy {}", si.run_argv().join(" "));
    inv.record(&si.check, &outcome);
    inv.e2e = tests
        .into_iter()
        .map(|t| {
            let s = match t.status {
                sonobuoy::TestStatus::Passed => "passed",
                sonobuoy::TestStatus::Failed => "failed",
                sonobuoy::TestStatus::FailedOk => "failed_ok",
                sonobuoy::TestStatus::Skipped => "skipped",
            };
            (t.name, s.to_string())
        })
        .collect();
    inv
}

async fn run_script(req: &Request, script: &super::spec::Script) -> Invocation {
    let exe = script.executable.clone().unwrap_or_default();
    let args = match req.spec.format_args(script.args.as_deref().unwrap_or(""), &req.assignment) {
        Ok(a) => a,
        Err(e) => {
            let mut inv = Invocation::new(&exe, exe.clone());
            inv.stderr.push(format!("CRITICAL: {e}"));
            inv.critical = 1;
            inv.rc = 2;
            return inv;
        }
    };
    let cmd = format!("{exe} {args}");
    let mut inv = Invocation::new(&exe, cmd.clone());
    let path = req.spec_dir.join(&exe);
    if !path.exists() {
        inv.stderr.push(format!(
            "CRITICAL: {} not found: scs-e2e has no native implementation of {} yet, and the script is not next to the spec",
            path.display(),
            script.testcases.iter().map(|t| t.id.as_str()).collect::<Vec<_>>().join(", ")
        ));
        inv.critical = 1;
        inv.rc = 127;
        return inv;
    }
    let argv = split_args(&args);
    let out = duct::cmd(&path, argv)
        .dir(&req.spec_dir)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run();
    match out {
        Ok(o) => {
            inv.rc = o.status.code().unwrap_or(-1);
            inv.stdout = String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect();
            inv.stderr = String::from_utf8_lossy(&o.stderr).lines().map(str::to_string).collect();
        }
        Err(e) => {
            inv.stderr.push(format!("CRITICAL: cannot run {cmd}: {e}"));
            inv.rc = 126;
        }
    }
    parse_script_output(&mut inv, script);
    inv
}

/// `<id>: PASS|FAIL|ABORT` on stdout, `LEVEL: message` on stderr, as upstream scripts print.
pub fn parse_script_output(inv: &mut Invocation, script: &super::spec::Script) {
    for line in &inv.stdout {
        if let Some((id, v)) = line.rsplit_once(": ")
            && script.testcases.iter().any(|t| t.id == id.trim())
        {
            let score = match v.trim() {
                "PASS" => 1,
                "FAIL" => -1,
                "ABORT" => 0,
                _ => continue,
            };
            inv.results.insert(id.trim().to_string(), score);
        }
    }
    let (mut i, mut w, mut e, mut c) = (0, 0, 0, 0);
    for line in &inv.stderr {
        match line.split_once(':').map(|(l, _)| l.trim()) {
            Some("INFO") => i += 1,
            Some("WARNING") => w += 1,
            Some("ERROR") => e += 1,
            Some("CRITICAL") => c += 1,
            _ => {}
        }
    }
    (inv.info, inv.warning, inv.error, inv.critical) = (i, w, e, c);
}

pub fn split_args(s: &str) -> Vec<String> {
    // Upstream args are shell-like with single or double quotes.
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for ch in s.chars() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(ch);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
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

/// `- main: PASS (3 passed)` per version and target, then FAILED / ABORTED / MISSING lists.
pub fn summary(req: &Request, r: &Report) -> String {
    let res = results(r);
    let mut out = format!(
        "{} ({}), subject {}, reference date {}\n",
        req.spec.name, req.spec.uuid, req.subject, req.reference_date
    );
    let versions: Vec<String> = match &req.forced_version {
        Some(v) => vec![v.clone()],
        None => req.spec.versions_in_force(req.reference_date).into_iter().map(|(v, _)| v).collect(),
    };
    for v in versions {
        out.push_str(&format!("{v}:\n"));
        for (target, ids) in req.spec.targets(&v) {
            let ids: Vec<&String> = ids
                .iter()
                .filter(|id| req.tests.as_ref().is_none_or(|re| re.is_match(id)))
                .collect();
            let (mut pass, mut fail, mut abort, mut missing) = (vec![], vec![], vec![], vec![]);
            for id in ids {
                match res.get(id) {
                    Some(1) => pass.push(id),
                    Some(-1) => fail.push(id),
                    Some(_) => abort.push(id),
                    None => missing.push(id),
                }
            }
            let verdict = if !fail.is_empty() {
                "FAIL"
            } else if !abort.is_empty() || !missing.is_empty() {
                "ABORT"
            } else {
                "PASS"
            };
            let mut counts = vec![format!("{} passed", pass.len())];
            for (n, what) in [(fail.len(), "failed"), (abort.len(), "aborted"), (missing.len(), "missing")] {
                if n > 0 {
                    counts.push(format!("{n} {what}"));
                }
            }
            out.push_str(&format!("- {target}: {verdict} ({})\n", counts.join(", ")));
            for (label, list) in [("FAILED", &fail), ("ABORTED", &abort), ("MISSING", &missing)] {
                if list.is_empty() {
                    continue;
                }
                out.push_str(&format!("  {label}:\n"));
                for id in list.iter() {
                    let tc = req.spec.testcase(id);
                    out.push_str(&format!(
                        "  - {id}: {}\n",
                        tc.and_then(|t| t.description.as_deref()).unwrap_or("").trim()
                    ));
                    if let Some(u) = tc.and_then(|t| t.url.as_deref()) {
                        out.push_str(&format!("    > {u}\n"));
                    }
                }
            }
        }
    }
    out
}

/// JUnit: one testcase per spec testcase (PASS pass, FAIL failure, ABORT error, missing skipped).
pub fn junit(req: &Request, r: &Report) -> String {
    use quick_junit::{NonSuccessKind, Report as JReport, TestCase, TestCaseStatus, TestSuite};
    let res = results(r);
    let mut suite = TestSuite::new(format!("scs-compliance.{}", req.subject));
    let messages: BTreeMap<&str, Vec<&String>> = r.run.invocations.values().fold(BTreeMap::new(), |mut m, inv| {
        for id in inv.results.keys() {
            m.entry(id.as_str()).or_insert_with(Vec::new).extend(inv.stderr.iter());
        }
        m
    });
    for sel in req.select() {
        let status = match res.get(&sel.id) {
            Some(1) => TestCaseStatus::success(),
            Some(v) => {
                let mut s = TestCaseStatus::non_success(if *v == -1 { NonSuccessKind::Failure } else { NonSuccessKind::Error });
                let lines = messages.get(sel.id.as_str()).cloned().unwrap_or_default();
                s.set_message(lines.first().map(|l| l.as_str()).unwrap_or(if *v == -1 { "FAIL" } else { "ABORT" }));
                s.set_description(lines.iter().map(|l| l.as_str()).collect::<Vec<_>>().join("\n"));
                s
            }
            None => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(if sel.manual {
                    "manual testcase: not run automatically"
                } else {
                    "missing: no result"
                });
                s
            }
        };
        let mut tc = TestCase::new(sel.id.as_str(), status);
        tc.set_classname(format!("scs-compliance.{}", req.subject));
        suite.add_test_case(tc);
    }
    let mut rep = JReport::new("scs-e2e");
    rep.add_test_suite(suite);
    for inv in r.run.invocations.values().filter(|i| !i.e2e.is_empty()) {
        let mut ts = TestSuite::new(format!("sonobuoy.{}", inv.id));
        for (name, status) in &inv.e2e {
            let st = match status.as_str() {
                "passed" | "failed_ok" => TestCaseStatus::success(),
                "failed" => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message("failed");
                    s
                }
                _ => TestCaseStatus::skipped(),
            };
            let mut tc = TestCase::new(name.as_str(), st);
            tc.set_classname(format!("sonobuoy.{}", inv.id));
            ts.add_test_case(tc);
        }
        rep.add_test_suite(ts);
    }
    rep.to_string().expect("JUnit serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(tests: Option<&str>) -> Request {
        let spec = Spec::parse(
            include_str!("../../../fixtures/scs-standards/scs-compatible-kaas.yaml"),
            "kaas.yaml",
        )
        .unwrap();
        Request {
            spec,
            spec_dir: PathBuf::from("/nonexistent"),
            subject: "lab".into(),
            assignment: BTreeMap::from([
                ("kubeconfig".into(), "/k".into()),
                ("subject_root".into(), "/s".into()),
                ("execution_mode".into(), "parallel".into()),
            ]),
            tests: tests.map(|t| Regex::new(t).unwrap()),
            sections: None,
            reference_date: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            forced_version: None,
            kubeconfig: None,
            argv: vec!["scs-e2e".into(), "check".into()],
            storage_timeout: Duration::from_secs(1),
            sonobuoy_timeout: Duration::from_secs(1),
            version_policy: VersionPolicyInputs::default(),
        }
    }

    #[test]
    fn version_policy_sources_resolve_mirrors_and_overrides() {
        use crate::checks::version_policy::{Source, Sources};
        let base = std::path::Path::new("/suite");
        assert_eq!(VersionPolicySources::default().resolve(base), Sources::default());
        let local = VersionPolicySources {
            data: Some("mirror".into()),
            cve_feed: Some("https://feeds.example/cve.json".into()),
            ..Default::default()
        }
        .resolve(base);
        assert_eq!(
            local,
            Sources {
                cve_feed: Source::Url("https://feeds.example/cve.json".into()),
                ..Sources::from_dir(std::path::Path::new("/suite/mirror"))
            }
        );
        let remote = VersionPolicySources {
            data: Some("https://m.example/vp/".into()),
            eol_data: Some("file:///etc/eol.yml".into()),
            ..Default::default()
        }
        .resolve(base);
        assert_eq!(remote.eol, Source::File("/etc/eol.yml".into()));
        assert_eq!(remote.releases, Source::Url("https://m.example/vp/releases.json".into()));
        assert_eq!(remote.cve_record_base, Source::Url("https://m.example/vp/cve/".into()));
    }

    #[test]
    fn selection_follows_targets_tests_and_sections() {
        let ids = |r: &Request| r.select().into_iter().map(|s| (s.id, s.manual)).collect::<Vec<_>>();
        let r = request(None);
        assert_eq!(
            ids(&r),
            [
                ("cncf-k8s-conformance".into(), false),
                ("kaas-networking-check".into(), false),
                ("version-policy-check".into(), false)
            ]
        );
        let mut light = request(None);
        light.sections = Some(vec!["light".into()]);
        assert_eq!(ids(&light), [("version-policy-check".into(), false)]);
        let asked = request(Some("node-distribution|default-storage"));
        assert_eq!(
            ids(&asked),
            [("default-storage-class".into(), false), ("node-distribution-check".into(), false)]
        );
    }

    #[test]
    fn script_output_is_parsed_like_upstream() {
        let r = request(None);
        let script = r.spec.script_of("version-policy-check").unwrap().clone();
        let mut inv = Invocation::new("x", "x".into());
        inv.stdout = vec!["noise".into(), "version-policy-check: FAIL".into(), "other-test: PASS".into()];
        inv.stderr = vec![
            "WARNING: old".into(),
            "ERROR: bad".into(),
            "CRITICAL: worse".into(),
            "INFO: fyi".into(),
            "plain".into(),
        ];
        parse_script_output(&mut inv, &script);
        assert_eq!(inv.results, BTreeMap::from([("version-policy-check".to_string(), -1)]));
        assert_eq!((inv.info, inv.warning, inv.error, inv.critical), (1, 1, 1, 1));
    }

    #[test]
    fn args_split_like_a_shell() {
        assert_eq!(
            split_args("run -c 'cncf-k8s-conformance' -a '--e2e-focus \"NetworkPolicy\"'"),
            ["run", "-c", "cncf-k8s-conformance", "-a", "--e2e-focus \"NetworkPolicy\""]
        );
    }

    #[tokio::test]
    async fn a_missing_script_aborts_with_a_critical_line_and_the_report_round_trips() {
        let text = "name: t\nuuid: u-1\nurl: https://example.com\nvariables: [kubeconfig]\nscripts:\n- executable: ./missing.py\n  args: -k {kubeconfig}\n  testcases:\n  - {id: probe, description: A probe., url: https://example.com/probe}\nmodules:\n- {id: m, name: M, targets: {main: [probe]}}\ntimeline:\n- {date: 2024-01-01, versions: {v1: effective}}\nversions:\n- {version: v1, include: [m]}\n";
        let mut r = request(None);
        r.spec = Spec::parse(text, "t.yaml").unwrap();
        r.assignment = BTreeMap::from([("kubeconfig".into(), "/k".into())]);
        let rep = run(&r).await;
        let inv = rep.run.invocations.values().next().unwrap();
        assert!(
            inv.stderr[0].starts_with("CRITICAL: /nonexistent/./missing.py not found"),
            "{:?}",
            inv.stderr
        );
        assert_eq!(inv.cmd, "./missing.py -k /k");
        assert_eq!(exit_code(&rep), 1);
        let s = summary(&r, &rep);
        assert!(s.contains("- main: ABORT (0 passed, 1 missing)"), "{s}");
        assert!(s.contains("  - probe: A probe.\n    > https://example.com/probe"), "{s}");
        let yaml = serde_saphyr::to_string(&rep).unwrap();
        let back: Report = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, rep);
        for key in [
            "spec:",
            "checked_at:",
            "reference_date:",
            "subject:",
            "run:",
            "invocations:",
            "forced_tests:",
            "critical: 1",
        ] {
            assert!(yaml.contains(key), "{key} in\n{yaml}");
        }
        let xml = junit(&r, &rep);
        let j = quick_junit::Report::deserialize_from_str(&xml).unwrap();
        assert_eq!((j.tests, j.skipped), (1, 1), "no result: skipped");
    }

    #[tokio::test]
    async fn sonobuoy_testcases_run_natively_and_abort_on_an_unusable_cluster() {
        let r = request(Some("^cncf-k8s-conformance$"));
        let rep = run(&r).await;
        assert_eq!(results(&rep), BTreeMap::from([("cncf-k8s-conformance".to_string(), 0)]));
        let inv = rep.run.invocations.values().next().unwrap();
        assert!(
            inv.cmd
                .starts_with("sonobuoy --kubeconfig /k run --wait --mode=certified-conformance"),
            "{}",
            inv.cmd
        );
        assert_eq!(inv.critical, 1, "{:?}", inv.stderr);
    }

    #[test]
    fn exit_code_counts_criticals_errors_and_failures_capped() {
        let mut inv = Invocation::new("x", "x".into());
        inv.critical = 100;
        inv.error = 100;
        inv.results.insert("a".into(), -1);
        let r = Report {
            spec: SpecRef {
                uuid: "u".into(),
                name: "n".into(),
                url: "u".into(),
            },
            checked_at: "t".into(),
            reference_date: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            subject: "s".into(),
            run: Run {
                uuid: "u".into(),
                argv: vec![],
                assignment: BTreeMap::new(),
                sections: None,
                forced_version: None,
                forced_tests: None,
                invocations: BTreeMap::from([("i".into(), inv)]),
            },
        };
        assert_eq!(exit_code(&r), 127);
    }
}
