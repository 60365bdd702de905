//! Running a check request: native testcases in-process (see [`super::native`]), Sonobuoy
//! through our driver, other testcases through the spec's scripts, into one compliance report.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;

use super::args::split_args;
use super::compliance::{Invocation, Report, Run, SpecRef};
use super::request::Request;
use super::{Level, Outcome, Verdict, native};

/// Scripts we replace with the native Sonobuoy driver.
const SONOBUOY_SCRIPT: &str = "run_sonobuoy.py";

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
        let started = (Utc::now(), std::time::Instant::now());
        let timed = |mut inv: Invocation| {
            inv.timing = Some((started.0, started.1.elapsed()));
            inv
        };
        if let Some(check) = native::find(&sel.id) {
            let outcome = match &client {
                Err(e) => Outcome::new(Verdict::Abort).with(Level::Critical, e.clone()),
                Ok(c) => (check.run)(c, req).await,
            };
            let mut inv = Invocation::new(&sel.id, format!("scs-e2e native {}", sel.id));
            inv.record(&sel.id, &outcome);
            invocations.insert(uuid_like(&sel.id), timed(inv));
        } else if let Some(i) = req.spec.scripts.iter().position(|s| s.testcases.iter().any(|t| t.id == sel.id)) {
            let script = &req.spec.scripts[i];
            // One invocation per script, like upstream: it reports all its testcases at once.
            if scripts_done.insert(i) {
                let inv = if script.executable.as_deref().is_some_and(|e| e.ends_with(SONOBUOY_SCRIPT)) {
                    run_sonobuoy(req, script, &sel.id).await
                } else {
                    run_script(req, script).await
                };
                invocations.insert(uuid_like(&format!("script-{i}")), timed(inv));
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
            uuid: uuid_like(&format!("run-{}", req.run_id)),
            argv: req.argv.clone(),
            assignment: req.assignment.clone(),
            sections: req.sections.clone(),
            forced_version: req.forced_version.clone(),
            forced_tests: req.tests.as_ref().map(|r| r.as_str().to_string()),
            invocations,
        },
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
    let bin = sonobuoy::find_binary(&req.tool_dirs);
    let (outcome, tests) = sonobuoy::run(&si, &ok_text, &req.spec_dir, bin, req.sonobuoy_timeout, &req.cancel).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::compliance::{exit_code, results};
    use crate::checks::render::{junit, summary};
    use std::path::PathBuf;
    use std::time::Duration;

    use chrono::NaiveDate;
    use regex::Regex;

    use crate::checks::request::{VersionPolicyInputs, VersionPolicySources};
    use crate::checks::spec::Spec;

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
            cancel: Default::default(),
            version_policy: VersionPolicyInputs::default(),
            run_id: "test".into(),
            tool_dirs: Vec::new(),
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
        // Concurrency: the default, a given one, and the bounds.
        let base = crate::checks::version_policy::Options::default();
        assert_eq!(VersionPolicySources::default().options(base.clone()).concurrency, 24);
        let five = VersionPolicySources {
            concurrency: Some(5),
            ..Default::default()
        };
        assert_eq!(five.options(base).concurrency, 5);
        assert!(five.validate().is_ok());
        for bad in [0, 65] {
            let s = VersionPolicySources {
                concurrency: Some(bad),
                ..Default::default()
            };
            assert!(s.validate().unwrap_err().to_string().contains("1 to 64"), "{bad}");
        }
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
        assert_eq!(exit_code(&rep, false), 1);
        let s = summary(&r, &rep);
        assert!(s.contains("- main: ABORT (0 passed, 1 missing)"), "{s}");
        assert!(s.contains("  - probe: A probe.\n    > https://example.com/probe"), "{s}");
        let yaml = serde_saphyr::to_string(&rep).unwrap();
        let back: Report = serde_saphyr::from_str(&yaml).unwrap();
        // Timing is for JUnit only: the YAML keeps upstream's shape.
        let mut upstream_shape = rep.clone();
        for inv in upstream_shape.run.invocations.values_mut() {
            assert!(inv.timing.is_some(), "every invocation is timed");
            inv.timing = None;
        }
        assert_eq!(back, upstream_shape);
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

    /// A report of `invocations` (made on `checked_at`), the rest placeholders.
    fn report_of(checked_at: &str, invocations: BTreeMap<String, Invocation>) -> Report {
        Report {
            spec: SpecRef {
                uuid: "u".into(),
                name: "n".into(),
                url: "u".into(),
            },
            checked_at: checked_at.into(),
            reference_date: NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
            subject: "s".into(),
            run: Run {
                uuid: "u".into(),
                argv: vec![],
                assignment: BTreeMap::new(),
                sections: None,
                forced_version: None,
                forced_tests: None,
                invocations,
            },
        }
    }

    #[test]
    fn junit_testcases_carry_the_timestamp_and_time_of_their_invocation() {
        use chrono::TimeZone as _;
        let r = request(None);
        let t1 = Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap();
        let t2 = Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 2).unwrap();
        let inv = |id: &str, score: i8, at, secs: f64| {
            let mut i = Invocation::new(id, id.into());
            i.results.insert(id.into(), score);
            i.timing = Some((at, std::time::Duration::from_secs_f64(secs)));
            i
        };
        let rep = report_of(
            "2026-11-30 10:10:02",
            BTreeMap::from([
                ("1".into(), inv("version-policy-check", 1, t1, 1.5)),
                ("2".into(), inv("cncf-k8s-conformance", -1, t2, 600.0)),
            ]),
        );
        let j = quick_junit::Report::deserialize_from_str(&junit(&r, &rep)).unwrap();
        let suite = &j.test_suites[0];
        assert_eq!(suite.timestamp, Some(t1.fixed_offset()), "the first invocation's start");
        assert_eq!(suite.time, Some(std::time::Duration::from_secs_f64(601.5)));
        let case = |id: &str| suite.test_cases.iter().find(|c| c.name.as_str() == id).unwrap();
        let at = |id: &str| (case(id).timestamp, case(id).time);
        assert_eq!(
            at("version-policy-check"),
            (Some(t1.fixed_offset()), Some(std::time::Duration::from_millis(1500)))
        );
        assert_eq!(
            at("cncf-k8s-conformance"),
            (Some(t2.fixed_offset()), Some(std::time::Duration::from_secs(600)))
        );
        let checked = Utc.with_ymd_and_hms(2026, 11, 30, 10, 10, 2).unwrap();
        assert_eq!(
            at("kaas-networking-check"),
            (Some(checked.fixed_offset()), Some(std::time::Duration::ZERO)),
            "not run: the report's time, 0 s"
        );
    }

    #[test]
    fn junit_lists_the_e2e_tests_sonobuoy_ran_and_counts_the_skipped_ones() {
        let r = request(None);
        let mut inv = Invocation::new("cncf-k8s-conformance", "sonobuoy".into());
        inv.results.insert("cncf-k8s-conformance".into(), -1);
        inv.e2e = [
            ("[sig-apps] RC lifecycle", "passed"),
            ("[sig-network] basic endpoint", "failed"),
            ("[sig-x] known", "failed_ok"),
        ]
        .into_iter()
        .chain(std::iter::repeat_n(("[sig-y] not focused", "skipped"), 5))
        .map(|(n, s)| (n.to_string(), s.to_string()))
        .collect();
        let rep = report_of("2026-11-30 10:10:02", BTreeMap::from([("1".into(), inv)]));
        let j = quick_junit::Report::deserialize_from_str(&junit(&r, &rep)).unwrap();
        let e2e = j
            .test_suites
            .iter()
            .find(|s| s.name.as_str() == "sonobuoy.cncf-k8s-conformance")
            .unwrap();
        let status = |name: &str| {
            let c = e2e.test_cases.iter().find(|c| c.name.as_str() == name).unwrap();
            matches!(c.status, quick_junit::TestCaseStatus::Success { .. })
        };
        assert_eq!(e2e.test_cases.len(), 3, "skipped specs are not listed");
        assert!(
            status("[sig-apps] RC lifecycle") && status("[sig-x] known"),
            "passed and okToFail pass"
        );
        assert!(!status("[sig-network] basic endpoint"));
        assert_eq!(
            e2e.system_out.as_ref().map(|s| s.as_str()),
            Some("5 e2e tests not selected (skipped) are not listed")
        );
    }

    #[test]
    fn exit_code_counts_criticals_errors_and_failures_capped() {
        let mut inv = Invocation::new("x", "x".into());
        inv.critical = 100;
        inv.error = 100;
        inv.results.insert("a".into(), -1);
        let r = report_of("t", BTreeMap::from([("i".into(), inv)]));
        assert_eq!(exit_code(&r, false), 127);
        assert_eq!(exit_code(&r, true), 100, "-C: criticals only");
        // One ERROR line and one FAIL: 2, as upstream counts them; with -C, 0.
        let mut r = r;
        let inv = r.run.invocations.get_mut("i").unwrap();
        (inv.critical, inv.error) = (0, 1);
        assert_eq!((exit_code(&r, false), exit_code(&r, true)), (2, 0));
    }
}
