//! `cargo bench --bench plan_and_junit`: load + expand a 1,000-scenario suite, and render JUnit
//! for 10,000 testcases (goal: each under 100 ms).

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use scs_e2e::config::Settings;
use scs_e2e::report::{RunReport, SCHEMA, ScenarioResult, Status, StepResult};
use scs_e2e::suite::loader::load_suite_str;
use scs_e2e::suite::plan::{Filters, build_plan};

/// 500 plain scenarios and 125 matrix scenarios × 4 combinations: 1,000 in all, 5 steps each.
fn big_suite() -> String {
    let steps = "    steps:\n      - apply: {manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: \"c-${v}\"}}}\n      - assert: {resource: {apiVersion: v1, kind: ConfigMap, name: \"c-${v}\"}, matches: {metadata: {name: \"c-${v}\"}}}\n      - wait: {resource: {apiVersion: v1, kind: ConfigMap, name: c}, condition: Ready}\n      - {timeout: wait-cluster, command: {argv: [echo, \"${v}\"]}}\n      - delete: {resource: {apiVersion: v1, kind: ConfigMap, name: c}}\n";
    let mut s = String::from("apiVersion: scs-e2e/v1alpha1\nkind: Suite\nname: big\nvars: {v: plain}\nscenarios:\n");
    for i in 0..500 {
        s.push_str(&format!("  - name: plain-{i}\n{steps}"));
    }
    for i in 0..125 {
        s.push_str(&format!(
            "  - name: m{i}-${{v}}-${{k}}\n    matrix: {{v: [a, b], k: [\"1.32\", \"1.33\"]}}\n{steps}"
        ));
    }
    s
}

fn big_report() -> RunReport {
    let now = Utc::now();
    let scenarios = (0..1000)
        .map(|i| ScenarioResult {
            suite: "big".into(),
            name: format!("scenario-{i}"),
            file: "suites/big.yaml".into(),
            matrix: BTreeMap::new(),
            namespace: None,
            status: Status::Passed,
            started_at: now,
            duration_secs: 1.0,
            steps: (0..10)
                .map(|j| StepResult {
                    name: format!("step {j}"),
                    operation: "wait".into(),
                    status: if j == 9 && i % 10 == 0 { Status::Failed } else { Status::Passed },
                    started_at: now,
                    duration_secs: 0.1,
                    timeout_secs: 300.0,
                    message: (j == 9 && i % 10 == 0).then(|| "timed out after 5m: Widget/x: Ready=False".to_string()),
                    details: None,
                    log_tail: Some("line one\nline two\n".into()),
                    log: None,
                    attempts: vec![],
                })
                .collect(),
            collected: vec![],
            artifacts: None,
        })
        .collect();
    RunReport {
        schema: SCHEMA.into(),
        run_id: "bench".into(),
        harness_version: "0".into(),
        started_at: now,
        duration_secs: 1.0,
        environment: "lab".into(),
        phases: vec![],
        properties: BTreeMap::new(),
        suites: vec![],
        scenarios,
        interrupted: false,
    }
}

fn benches(c: &mut Criterion) {
    let text = big_suite();
    let settings = Settings::default();
    let n = build_plan(
        vec![load_suite_str(&text, "big.yaml", PathBuf::from(".")).unwrap()],
        &settings,
        &Filters::default(),
    )
    .unwrap()
    .scenarios
    .len();
    assert_eq!(n, 1000);
    c.bench_function("load+expand 1000 scenarios", |b| {
        b.iter(|| {
            let ls = load_suite_str(&text, "big.yaml", PathBuf::from(".")).unwrap();
            build_plan(vec![ls], &settings, &Filters::default()).unwrap()
        })
    });
    let report = big_report();
    assert_eq!(report.summary().passed + report.summary().failed, 10_000);
    c.bench_function("render JUnit 10000 testcases", |b| {
        b.iter(|| scs_e2e::report::junit::render(&report))
    });
}

criterion_group! {
    name = group;
    config = Criterion::default().sample_size(20);
    targets = benches
}
criterion_main!(group);
