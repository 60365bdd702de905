//! `cncf-k8s-conformance` and `kaas-networking-check`: drive the sonobuoy CLI with the spec's
//! arguments (`delete --wait`, `run --wait`, `retrieve -x`, always `delete --wait` at the end),
//! parse the e2e plugin's results and apply the okToFail list.

use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Level, Outcome, Verdict};
use crate::process::{Ended, run_streaming};

/// How `run_sonobuoy.py run ...` was asked to run, from the spec's script arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    /// `-k`: the cluster's kubeconfig (required).
    pub kubeconfig: String,
    /// `-r`: where results are retrieved to, relative to the spec's directory (default `sonobuoy_results`).
    pub result_dir: String,
    /// `-c`: the testcase id the outcome is recorded under (default `sonobuoy_executor`).
    pub check: String,
    /// `--scs-sonobuoy-config`: the okToFail file, relative to the spec's directory (else the built-in copy).
    pub config: String,
    /// `--execution-mode`: `serial` (default), `parallel` or `dry`.
    pub mode: String,
    /// Extra `sonobuoy run` arguments (`-a`), already split.
    pub args: Vec<String>,
}

impl Invocation {
    /// Parses the upstream script's command line: `run -k K --scs-sonobuoy-config C
    /// --execution-mode M -r R -c ID -a ARGS...`.
    pub fn from_script_args(argv: &[String]) -> Result<Invocation, crate::error::Invalid> {
        let mut it = argv.iter();
        if it.next().map(String::as_str) != Some("run") {
            return Err("sonobuoy script arguments must start with `run`".into());
        }
        let mut inv = Invocation {
            kubeconfig: String::new(),
            result_dir: "sonobuoy_results".into(),
            check: "sonobuoy_executor".into(),
            config: String::new(),
            mode: "serial".into(),
            args: Vec::new(),
        };
        while let Some(flag) = it.next() {
            let mut value = || it.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "-k" | "--kubeconfig" => inv.kubeconfig = value()?,
                "-r" | "--result_dir_name" => inv.result_dir = value()?,
                "-c" | "--check" => inv.check = value()?,
                "--scs-sonobuoy-config" => inv.config = value()?,
                "--execution-mode" => inv.mode = value()?,
                "-a" | "--arg" => inv.args.extend(super::args::split_args(&value()?)),
                other => return Err(format!("unknown sonobuoy script option `{other}`").into()),
            }
        }
        if inv.kubeconfig.is_empty() {
            return Err("the sonobuoy script needs -k KUBECONFIG".into());
        }
        if !["serial", "parallel", "dry"].contains(&inv.mode.as_str()) {
            return Err(format!("--execution-mode {}: use serial, parallel or dry", inv.mode).into());
        }
        Ok(inv)
    }

    fn base(&self) -> Vec<String> {
        vec!["--kubeconfig".into(), self.kubeconfig.clone()]
    }

    /// `sonobuoy --kubeconfig K run --wait ARGS [mode extras]`
    pub fn run_argv(&self) -> Vec<String> {
        let mut v = self.base();
        v.extend(["run".into(), "--wait".into()]);
        v.extend(self.args.iter().cloned());
        match self.mode.as_str() {
            "parallel" => v.push("--e2e-parallel=true".into()),
            "dry" => v.extend(["--plugin-env".into(), "e2e.E2E_DRYRUN=true".into()]),
            _ => {}
        }
        v
    }

    /// `sonobuoy --kubeconfig K delete --wait`
    pub fn delete_argv(&self) -> Vec<String> {
        let mut v = self.base();
        v.extend(["delete".into(), "--wait".into()]);
        v
    }

    /// `sonobuoy --kubeconfig K retrieve -x DIR`: the results, extracted into `dir`.
    pub fn retrieve_argv(&self, dir: &Path) -> Vec<String> {
        let mut v = self.base();
        v.extend(["retrieve".into(), "-x".into(), dir.display().to_string()]);
        v
    }
}

/// An okToFail entry of `scs-sonobuoy-config-v1.yaml`.
#[derive(Clone, Debug)]
pub struct OkToFail {
    /// Matches the names of the e2e tests that may fail.
    pub regex: Regex,
    /// Why they may fail.
    pub reason: String,
}

/// Reads the okToFail list strictly, like upstream: only `okToFail`, entries with `regex` and `reason`.
pub fn load_ok_to_fail(text: &str, file: &str) -> Result<Vec<OkToFail>, crate::error::Invalid> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Config {
        #[serde(default)]
        ok_to_fail: Vec<Entry>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        regex: String,
        reason: String,
    }
    let cfg: Config = serde_saphyr::from_str(text).map_err(|e| crate::error::InputError::from_yaml(&e, file, text).to_string())?;
    cfg.ok_to_fail
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            if e.regex.trim().is_empty() || e.reason.trim().is_empty() {
                return Err(crate::error::Invalid(format!(
                    "{file}: okToFail[{i}] needs a non-empty regex and reason"
                )));
            }
            let regex = Regex::new(&e.regex).map_err(|err| format!("{file}: okToFail[{i}].regex: {err}"))?;
            Ok(OkToFail { regex, reason: e.reason })
        })
        .collect()
}

/// What became of one e2e test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestStatus {
    /// It passed.
    Passed,
    /// It failed, and is not on the okToFail list.
    Failed,
    /// Failed, but on the okToFail list.
    FailedOk,
    /// It did not run (no status in the results).
    Skipped,
}

/// One e2e test from Sonobuoy's results.
#[derive(Clone, Debug, PartialEq)]
pub struct TestResult {
    /// The test's full name.
    pub name: String,
    /// What became of it.
    pub status: TestStatus,
    /// For FailedOk: why that is acceptable.
    pub reason: Option<String>,
}

/// Parses `plugins/e2e/sonobuoy_results.yaml`: items (files) → items (suites) → items (tests);
/// a test without a status was skipped.
pub fn parse_results(text: &str, ok: &[OkToFail]) -> Result<Vec<TestResult>, crate::error::Invalid> {
    #[derive(Deserialize)]
    struct Node {
        #[serde(default)]
        name: String,
        #[serde(default)]
        status: Option<String>,
        #[serde(default)]
        items: Vec<Node>,
    }
    let root: Node = serde_saphyr::from_str(text).map_err(|e| format!("sonobuoy_results.yaml: {}", e.without_snippet()))?;
    let mut out = Vec::new();
    for file in &root.items {
        for suite in &file.items {
            for t in &suite.items {
                let status = match t.status.as_deref().unwrap_or("skipped") {
                    "passed" => TestStatus::Passed,
                    "failed" => TestStatus::Failed,
                    _ => TestStatus::Skipped,
                };
                let reason = (status == TestStatus::Failed)
                    .then(|| ok.iter().find(|o| o.regex.is_match(&t.name)).map(|o| o.reason.clone()))
                    .flatten();
                let status = if reason.is_some() { TestStatus::FailedOk } else { status };
                out.push(TestResult {
                    name: t.name.clone(),
                    status,
                    reason,
                });
            }
        }
    }
    Ok(out)
}

/// PASS unless a test failed that is not ok to fail.
pub fn verdict(tests: &[TestResult]) -> Outcome {
    let count = |s: TestStatus| tests.iter().filter(|t| t.status == s).count();
    let summary = format!(
        "sonobuoy reports {} passed, {} failed, {} failed_ok, {} skipped",
        count(TestStatus::Passed),
        count(TestStatus::Failed),
        count(TestStatus::FailedOk),
        count(TestStatus::Skipped)
    );
    let failed: Vec<&TestResult> = tests.iter().filter(|t| t.status == TestStatus::Failed).collect();
    if failed.is_empty() {
        return Outcome::new(Verdict::Pass).with(Level::Info, summary);
    }
    let mut o = Outcome::new(Verdict::Fail);
    for t in failed {
        o = o.with(Level::Error, format!("FAILED: {}", t.name));
    }
    o.with(Level::Error, summary)
}

/// Finds sonobuoy: PATH (with `extra` first), then `~/.local/bin` like upstream.
pub fn find_binary(extra: &[PathBuf]) -> Option<PathBuf> {
    crate::process::which("sonobuoy", extra).or_else(|| {
        let p = PathBuf::from(std::env::var_os("HOME")?).join(".local/bin/sonobuoy");
        p.is_file().then_some(p)
    })
}

/// Runs the whole check. `timeout` bounds `run --wait`, `cancel` interrupts it (Ctrl-C, the
/// run's end); clean-up always follows, bounded but not interruptible.
/// Returns the outcome and every e2e test (for JUnit).
pub async fn run(
    inv: &Invocation,
    ok_text: &str,
    work_dir: &Path,
    bin: Option<PathBuf>,
    timeout: Duration,
    cancel: &CancellationToken,
) -> (Outcome, Vec<TestResult>) {
    let Some(bin) = bin else {
        let fix = "sonobuoy is not on PATH: `scs-e2e lab install` builds it into the lab's bin directory (or install it from https://sonobuoy.io), then put it on PATH";
        return (Outcome::new(Verdict::Abort).with(Level::Critical, fix), Vec::new());
    };
    let ok = match load_ok_to_fail(ok_text, &inv.config) {
        Ok(o) => o,
        Err(e) => return (Outcome::new(Verdict::Abort).with(Level::Critical, e), Vec::new()),
    };
    let step = |argv: Vec<String>, limit: Duration, cancel: CancellationToken| {
        let bin = bin.clone();
        async move {
            let out = run_streaming(duct::cmd(&bin, &argv), |_| {}, Instant::now() + limit, &cancel).await;
            (argv, out)
        }
    };
    let result = async {
        let (argv, out) = step(inv.delete_argv(), Duration::from_secs(600), cancel.clone()).await;
        check(&argv, out)?;
        let (argv, out) = step(inv.run_argv(), timeout, cancel.clone()).await;
        check(&argv, out)?;
        let dir = work_dir.join(&inv.result_dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let (argv, out) = step(inv.retrieve_argv(&dir), Duration::from_secs(600), cancel.clone()).await;
        check(&argv, out)?;
        let path = dir.join("plugins/e2e/sonobuoy_results.yaml");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        parse_results(&text, &ok)
    }
    .await;
    // Always clean up, as upstream does; after an interruption too (a fresh token).
    let (argv, out) = step(inv.delete_argv(), Duration::from_secs(600), CancellationToken::new()).await;
    let cleanup = check(&argv, out).err();
    let (mut outcome, tests) = match result {
        Ok(tests) => (verdict(&tests), tests),
        Err(e) => (Outcome::new(Verdict::Abort).with(Level::Critical, e), Vec::new()),
    };
    if let Some(e) = cleanup {
        outcome = outcome.with(Level::Warning, format!("clean-up: {e}"));
    }
    (outcome, tests)
}

fn check(argv: &[String], out: std::io::Result<crate::process::Outcome>) -> Result<(), crate::error::Invalid> {
    let shown = format!("sonobuoy {}", argv.iter().skip(2).cloned().collect::<Vec<_>>().join(" "));
    let out = out.map_err(|e| format!("{shown}: {e}"))?;
    let tail = out
        .output
        .lines()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join(" | ");
    match out.ended {
        // sonobuoy logs errors at level=error but may still exit 0.
        Ended::Exited(0) if !out.output.contains("level=error") => Ok(()),
        Ended::Exited(c) => Err(format!("{shown} failed (exit {c}): {tail}").into()),
        Ended::Signalled(s) => Err(format!("{shown} was killed by signal {s}").into()),
        Ended::TimedOut => Err(format!("{shown} did not finish in time and was stopped: {tail}").into()),
        Ended::Cancelled => Err(format!("{shown} was interrupted").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = include_str!("../../../fixtures/scs-standards/scs-sonobuoy-config-v1.yaml");
    const RESULTS: &str = include_str!("../../../fixtures/sonobuoy/sonobuoy_results.yaml");

    fn spec_args(id: &str, mode: &str) -> Vec<String> {
        let spec =
            super::super::spec::Spec::parse(include_str!("../../../fixtures/scs-standards/scs-compatible-kaas.yaml"), "k.yaml").unwrap();
        let script = spec.script_of(id).unwrap();
        let a = std::collections::BTreeMap::from([
            ("kubeconfig".to_string(), "/k".to_string()),
            ("subject_root".to_string(), "/s".to_string()),
            ("execution_mode".to_string(), mode.to_string()),
        ]);
        super::super::args::split_args(&spec.format_args(script.args.as_deref().unwrap(), &a).unwrap())
    }

    #[test]
    fn argv_from_the_spec_for_each_execution_mode() {
        let inv = Invocation::from_script_args(&spec_args("cncf-k8s-conformance", "parallel")).unwrap();
        assert_eq!(inv.check, "cncf-k8s-conformance");
        assert_eq!(inv.result_dir, "/s/sono-results-e2e");
        assert_eq!(inv.config, "kaas/scs-sonobuoy-config-v1.yaml");
        assert_eq!(
            inv.run_argv(),
            [
                "--kubeconfig",
                "/k",
                "run",
                "--wait",
                "--mode=certified-conformance",
                "--plugin-env",
                "e2e.E2E_EXTRA_ARGS=--ginkgo.flake-attempts=2",
                "--e2e-parallel=true"
            ]
        );
        let dry = Invocation::from_script_args(&spec_args("kaas-networking-check", "dry")).unwrap();
        assert_eq!(
            dry.run_argv(),
            [
                "--kubeconfig",
                "/k",
                "run",
                "--wait",
                "--e2e-focus",
                "NetworkPolicy",
                "--plugin-env",
                "e2e.E2E_EXTRA_ARGS=--ginkgo.flake-attempts=2",
                "--plugin-env",
                "e2e.E2E_DRYRUN=true"
            ]
        );
        let serial = Invocation::from_script_args(&spec_args("kaas-networking-check", "serial")).unwrap();
        assert!(!serial.run_argv().iter().any(|a| a.contains("parallel") || a.contains("DRYRUN")));
        assert_eq!(serial.delete_argv(), ["--kubeconfig", "/k", "delete", "--wait"]);
        assert_eq!(
            serial.retrieve_argv(Path::new("/r")),
            ["--kubeconfig", "/k", "retrieve", "-x", "/r"]
        );
        assert!(
            Invocation::from_script_args(&["run".into(), "--bogus".into()])
                .unwrap_err()
                .contains("unknown sonobuoy script option")
        );
    }

    #[test]
    fn results_with_ok_to_fail() {
        let ok = load_ok_to_fail(OK, "scs-sonobuoy-config-v1.yaml").unwrap();
        assert_eq!(ok.len(), 9);
        let tests = parse_results(RESULTS, &ok).unwrap();
        let count = |s| tests.iter().filter(|t| t.status == s).count();
        assert_eq!(
            (
                count(TestStatus::Passed),
                count(TestStatus::Failed),
                count(TestStatus::FailedOk),
                count(TestStatus::Skipped)
            ),
            (2, 1, 1, 2)
        );
        let failed_ok = tests.iter().find(|t| t.status == TestStatus::FailedOk).unwrap();
        assert!(failed_ok.reason.as_deref().unwrap().contains("SCTPConnectivity is optional"));
        let o = verdict(&tests);
        assert_eq!(o.verdict, Verdict::Fail);
        assert!(
            o.messages[0]
                .1
                .starts_with("FAILED: [sig-network] Services should serve endpoints on same port"),
            "{:?}",
            o.messages
        );
        assert_eq!(
            o.messages.last().unwrap().1,
            "sonobuoy reports 2 passed, 1 failed, 1 failed_ok, 2 skipped"
        );
        let passing: Vec<TestResult> = tests.into_iter().filter(|t| t.status != TestStatus::Failed).collect();
        assert_eq!(verdict(&passing).verdict, Verdict::Pass);
    }

    #[test]
    fn a_bad_ok_to_fail_config_is_rejected() {
        assert!(
            load_ok_to_fail("okToFail:\n- regex: x\n", "c.yaml")
                .unwrap_err()
                .contains("missing field `reason`")
        );
        assert!(
            load_ok_to_fail("okToFial: []\n", "c.yaml")
                .unwrap_err()
                .contains("unknown field `okToFial`")
        );
        assert!(
            load_ok_to_fail("okToFail:\n- {regex: '(', reason: r}\n", "c.yaml")
                .unwrap_err()
                .contains("okToFail[0].regex")
        );
    }

    #[tokio::test]
    async fn no_binary_is_an_abort_with_the_fix() {
        let inv = Invocation::from_script_args(&spec_args("cncf-k8s-conformance", "serial")).unwrap();
        let (o, tests) = run(&inv, OK, Path::new("/tmp"), None, Duration::from_secs(1), &CancellationToken::new()).await;
        assert_eq!(o.verdict, Verdict::Abort);
        assert!(o.messages[0].1.contains("`scs-e2e lab install` builds it"), "{:?}", o.messages);
        assert!(tests.is_empty());
    }
}
