//! Report writers against golden files, the JUnit re-read with quick-junit's reader, and shard merges.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use scs_e2e::report::{Attempt, RunReport, SCHEMA, ScenarioResult, Status, StepResult, SuiteRecord, json, junit};

fn at(secs: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000 + secs, 0).unwrap()
}

fn step(name: &str, op: &str, status: Status, t: i64) -> StepResult {
    StepResult {
        name: name.into(),
        operation: op.into(),
        status,
        started_at: at(t),
        duration_secs: 1.5,
        timeout_secs: 300.0,
        message: None,
        details: None,
        log_tail: None,
        log: None,
        attempts: vec![],
    }
}

fn sample(run_id: &str, scenario_names: &[&str]) -> RunReport {
    let mut scenarios = Vec::new();
    for (i, name) in scenario_names.iter().enumerate() {
        let t = 10 * i as i64;
        let mut flaky = step("apply manifests", "apply", Status::Passed, t);
        flaky.attempts = vec![
            Attempt {
                status: Status::Failed,
                started_at: at(t),
                duration_secs: 0.5,
                message: Some("conflict".into()),
                details: None,
            },
            Attempt {
                status: Status::Passed,
                started_at: at(t + 1),
                duration_secs: 1.0,
                message: None,
                details: None,
            },
        ];
        let mut failed = step("wait Widget/demo Ready", "wait", Status::Failed, t + 2);
        failed.message = Some("timed out after 5m: Widget/demo: Ready=False (Pending): not yet".into());
        failed.details = Some("last observed state follows".into());
        failed.log = Some(format!("quickstart/{name}/steps/02-wait.log"));
        failed.log_tail = Some("watching Widget/demo\nReady=False".into());
        let mut skipped = step("delete", "delete", Status::Skipped, t + 4);
        skipped.message = Some("skipped: step `wait Widget/demo Ready` did not pass".into());
        scenarios.push(ScenarioResult {
            suite: "quickstart".into(),
            name: name.to_string(),
            file: "suites/quickstart.yaml".into(),
            matrix: BTreeMap::from([("k8s".into(), "1.33".into())]),
            namespace: Some(format!("e2e-{name}-abc123")),
            status: Status::Failed,
            started_at: at(t),
            duration_secs: 4.5,
            steps: vec![flaky, failed, skipped],
            collected: vec![],
            artifacts: Some(format!("quickstart/{name}")),
        });
    }
    RunReport {
        schema: SCHEMA.into(),
        run_id: run_id.into(),
        harness_version: "0.1.0".into(),
        started_at: at(0),
        duration_secs: 12.25,
        environment: "lab".into(),
        phases: vec![step("up", "up", Status::Passed, 0), step("down", "down", Status::Passed, 12)],
        properties: BTreeMap::from([("kubernetes_version".into(), "v1.33.13".into())]),
        suites: vec![SuiteRecord {
            name: "quickstart".into(),
            file: "suites/quickstart.yaml".into(),
            sha256: "00ff".into(),
            content: "kind: Suite\n".into(),
        }],
        scenarios,
        interrupted: false,
    }
}

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{name} differs from the golden file (UPDATE_GOLDEN=1 rewrites it after review):\n{actual}"
    );
}

#[test]
fn junit_matches_the_golden_file() {
    golden("junit_scs-e2e.xml", &junit::render(&sample("r1", &["lifecycle"])));
}

#[test]
fn json_matches_the_golden_file_and_round_trips() {
    let r = sample("r1", &["lifecycle"]);
    let text = json::render(&r);
    golden("results.json", &text);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("results.json");
    std::fs::write(&p, &text).unwrap();
    assert_eq!(json::read(&p).unwrap(), r);
}

#[test]
fn junit_reads_back_with_quick_junit() {
    let xml = junit::render(&sample("r1", &["lifecycle"]));
    let back = quick_junit::Report::deserialize_from_str(&xml).expect("valid JUnit");
    assert_eq!(back.name.as_ref().map(|n| n.as_str()), Some("scs-e2e"));
    let names: Vec<&str> = back.test_suites.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["environment", "quickstart.lifecycle"]);
    let ts = &back.test_suites[1];
    assert_eq!((ts.tests, ts.failures, ts.errors, ts.skipped), (3, 1, 0, 1));
    for tc in &ts.test_cases {
        assert_eq!(tc.classname.as_ref().unwrap().as_str(), "quickstart.lifecycle");
        assert_eq!(
            tc.extra.get(&quick_junit::XmlString::new("file")).unwrap().as_str(),
            "suites/quickstart.yaml"
        );
    }
    match &ts.test_cases[0].status {
        quick_junit::TestCaseStatus::Success { flaky_runs } => assert_eq!(flaky_runs.len(), 1, "the failed attempt is a flaky run"),
        other => panic!("{other:?}"),
    }
    match &ts.test_cases[1].status {
        quick_junit::TestCaseStatus::NonSuccess { message, description, .. } => {
            assert!(message.as_ref().unwrap().as_str().starts_with("timed out after 5m"));
            assert!(
                description
                    .as_ref()
                    .unwrap()
                    .as_str()
                    .contains("log: quickstart/lifecycle/steps/02-wait.log")
            );
        }
        other => panic!("{other:?}"),
    }
    let props: Vec<(&str, &str)> = ts.properties.iter().map(|p| (p.name.as_str(), p.value.as_str())).collect();
    for want in [
        ("environment", "lab"),
        ("run_id", "r1"),
        ("harness_version", "0.1.0"),
        ("kubernetes_version", "v1.33.13"),
        ("matrix.k8s", "1.33"),
    ] {
        assert!(props.contains(&want), "{want:?} in {props:?}");
    }
}

#[test]
fn merging_shards_keeps_every_testcase_once() {
    let a = sample("a", &["s1", "s3"]);
    let b = sample("b", &["s2"]);
    let m = json::merge(vec![a.clone(), b.clone()]).unwrap();
    let ids: Vec<String> = m.scenarios.iter().map(|s| s.id()).collect();
    assert_eq!(ids, ["quickstart.s1", "quickstart.s2", "quickstart.s3"]);
    let steps = |r: &RunReport| r.scenarios.iter().map(|s| s.steps.len()).sum::<usize>();
    assert_eq!(steps(&m), steps(&a) + steps(&b));
    let xml = junit::render(&m);
    let back = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    assert_eq!(back.tests, (steps(&a) + steps(&b) + m.phases.len()) as usize);
    let phases: Vec<&str> = m.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        phases,
        ["up (a)", "down (a)", "up (b)", "down (b)"],
        "each shard's environment stays apart"
    );
    let e = json::merge(vec![a.clone(), a]).unwrap_err().to_string();
    assert!(e.contains("scenario quickstart.s1 is in two reports"), "{e}");
}

#[test]
fn reading_another_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.json");
    std::fs::write(&p, r#"{"schema": "scs-e2e.results/v0"}"#).unwrap();
    let e = json::read(&p).unwrap_err().to_string();
    assert!(
        e.contains("schema is `scs-e2e.results/v0`, this scs-e2e reads `scs-e2e.results/v1`"),
        "{e}"
    );
}

#[test]
fn reports_are_written_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("deep/results.json");
    scs_e2e::base::write_atomic(&p, b"first").unwrap();
    scs_e2e::base::write_atomic(&p, b"second").unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "second");
    let leftovers: Vec<_> = std::fs::read_dir(p.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "results.json")
        .collect();
    assert!(leftovers.is_empty(), "no temp files left: {leftovers:?}");
}

#[test]
fn the_html_report_is_self_contained_and_shows_every_outcome() {
    let mut r = sample("run-html", &["lifecycle", "upgrade"]);
    r.scenarios[1].steps[1].message = Some("<script>alert(1)</script> & more".into());
    let h = scs_e2e::report::html::render(&r);
    // No network: nothing is loaded from anywhere, and there is no script at all.
    for needle in ["<script", "src=", "@import", "url(", "<link"] {
        assert!(!h.contains(needle), "{needle} in the HTML report");
    }
    assert!(h.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"));
    for sc in ["quickstart.lifecycle", "quickstart.upgrade"] {
        assert!(
            h.contains(&format!("<td id=\"{sc}\">{sc}</td><td class=\"failed\">failed</td>")),
            "{sc}"
        );
    }
    // The matrix: a flaky pass, a failure linking its log, a skip.
    assert!(h.contains("<td class=\"cell passed flaky\""));
    assert!(h.contains("<a href=\"quickstart/lifecycle/steps/02-wait.log\">2</a>"));
    assert!(h.contains("<td class=\"cell skipped\""));
    assert!(h.contains("<h2>Failures</h2>") && h.contains("timed out after 5m: Widget/demo: Ready=False (Pending): not yet"));
    assert!(h.contains("<th>kubernetes_version</th><td>v1.33.13</td>"));
    assert_eq!(h.matches("<div class=\"bar\">").count(), 2, "one timeline row per scenario");
    golden("report.html", &h);
}

/// A Chromium to render with: `SCS_E2E_CHROMIUM`, else the first of the usual names on PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SCS_E2E_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
        .iter()
        .flat_map(|n| std::env::split_paths(&path).map(move |d| d.join(n)))
        .find(|p| p.is_file())
}

/// Runs headless Chromium on `page` with networking cut off: every host name resolves to
/// nothing and any proxied request goes to a closed loopback port.
fn headless(browser: &Path, profile: &Path, page: &Path, args: &[&str]) -> std::process::Output {
    // coreutils' timeout bounds a browser that hangs instead of hanging the test run.
    let out = std::process::Command::new("timeout")
        .arg("120")
        .arg(browser)
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=127.0.0.1:9",
            "--window-size=1280,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "{} failed ({}): {}",
        browser.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn the_html_report_renders_in_a_headless_browser_without_network() {
    let Some(browser) = chromium() else {
        // .ci/run installs Chromium, so in CI a missing browser is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but no chromium is installed (.ci/run installs it)"
        );
        println!(
            "SKIPPED the_html_report_renders_in_a_headless_browser_without_network: no chromium, chromium-browser or google-chrome on PATH (apt-get install chromium, or set SCS_E2E_CHROMIUM)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let r = sample("run-browser", &["lifecycle", "upgrade-1-33-to-1-34"]);
    std::fs::write(&page, scs_e2e::report::html::render(&r)).unwrap();
    let profile = dir.path().join("profile");

    // Kept in the target directory so a person can look at it.
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-html-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    headless(&browser, &profile, &page, &[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let (w, h) = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    );
    assert_eq!((w, h), (1280, 1000), "the window size");
    // A blank page of this size compresses to a few kilobytes; tables, colours and text do not.
    assert!(png.len() > 20_000, "the screenshot is nearly empty: {} bytes", png.len());
    println!("screenshot: {}", shot.display());

    // The DOM as the browser built it: every scenario and section is there.
    let dom = String::from_utf8(headless(&browser, &profile, &page, &["--dump-dom"]).stdout).unwrap();
    for want in [
        "quickstart.lifecycle",
        "quickstart.upgrade-1-33-to-1-34",
        "<h2>Timeline</h2>",
        "<h2>Failures</h2>",
        "timed out after 5m",
        "v1.33.13",
    ] {
        assert!(dom.contains(want), "`{want}` is not in the rendered DOM:\n{dom}");
    }
    assert_eq!(dom.matches("class=\"bar\"").count(), 2, "one timeline row per scenario");
}
