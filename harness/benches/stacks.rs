//! `cargo bench --bench stacks`: the Cluster Stacks lifecycle against real Cluster API and CSO
//! in the lab.
//!
//! 1. The quickstart suite's wall time with a per-step breakdown.
//! 2. Detection latency: a condition flips (we patch it at T0) and a watching `wait` step ends
//!    (T1); 20 flips, median and worst (goal: median under 0.2 s). Every cluster-stack wait uses
//!    the same watch machinery.
//! 3. Four clusters in parallel (four scenarios, `--parallel 4`) versus one (goal: at most 1.5×).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use scs_e2e::config::Settings;
use scs_e2e::engine::{self, RunOptions};
use scs_e2e::env::lab::build::{self, Assets};
use scs_e2e::env::lab::{Lab, LabEnv, LabOptions};
use scs_e2e::report::{RunReport, Status};
use scs_e2e::suite::loader::load_suite_str;
use scs_e2e::suite::plan::{Filters, build_plan};

fn tmp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-stacks-{name}-{}", std::process::id()))
}

fn run_suite(rt: &tokio::runtime::Runtime, assets: &Assets, name: &str, text: &str, parallel: usize) -> RunReport {
    let suite = load_suite_str(text, &format!("{name}.yaml"), PathBuf::from(env!("CARGO_MANIFEST_DIR"))).unwrap();
    let plan = build_plan(vec![suite], &Settings::default(), &Filters::default()).unwrap();
    let mut opts = RunOptions::new(tmp(&format!("{name}-artifacts")));
    opts.parallel = parallel;
    let mut lo = LabOptions::new(tmp(name), assets.clone());
    lo.cluster_api = true;
    let mut env = LabEnv::new(lo, false);
    let report = rt.block_on(engine::run(
        &plan,
        &mut env,
        &opts,
        Default::default(),
        &scs_e2e::report::console::Silent,
    ));
    for sc in &report.scenarios {
        assert_eq!(
            sc.status,
            Status::Passed,
            "{name}: {}",
            scs_e2e::report::console::summary_text(&report)
        );
    }
    report
}

/// From the first scenario's start to the last one's end: the clusters' part, without the lab.
fn scenarios_wall(r: &RunReport) -> f64 {
    let start = r.scenarios.iter().map(|s| s.started_at).min().unwrap();
    let end = r
        .scenarios
        .iter()
        .map(|s| s.started_at + chrono::Duration::milliseconds((s.duration_secs * 1000.0) as i64))
        .max()
        .unwrap();
    (end - start).num_milliseconds() as f64 / 1000.0
}

const CLUSTERS: &str = r#"apiVersion: scs-e2e/v1alpha1
kind: Suite
name: clusters
scenarios:
  - name: cluster-${n}
    matrix: {n: [N]}
    steps:
      - installClusterStack: {provider: inmemory, name: scs, kubernetesVersion: "1.33", versions: [v1], source: "builtin:inmemory/scs"}
      - waitClusterStackRelease: {provider: inmemory, name: scs, kubernetesVersion: "1.33", version: v1}
      - createCluster: {name: "c${n}", stack: {provider: inmemory, name: scs, kubernetesVersion: "1.33", version: v1}}
      - waitCluster: {name: "c${n}", addons: created}
      - deleteCluster: {name: "c${n}"}
"#;

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let assets = Assets::locate(None, None);
    build::install(&assets, &build::ConsoleProgress::new()).expect("lab binaries");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();

    // 1. Quickstart.
    let quickstart = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../suites/quickstart.yaml")).unwrap();
    let r = run_suite(&rt, &assets, "quickstart", &quickstart, 4);
    println!("quickstart: {:.1}s in all", r.duration_secs);
    for p in &r.phases {
        println!("  {:<48} {:>6.2}s", format!("environment {}", p.name), p.duration_secs);
    }
    for s in &r.scenarios[0].steps {
        println!("  {:<48} {:>6.2}s", s.name, s.duration_secs);
    }

    // 2. Detection latency.
    let mut lo = LabOptions::new(tmp("latency"), assets.clone());
    lo.cluster_api = false;
    let lab = rt.block_on(Lab::start(lo)).unwrap();
    let mut lat = rt.block_on(detection_latency(&lab, 20));
    rt.block_on(lab.stop()).unwrap();
    lat.sort_by(f64::total_cmp);
    println!(
        "detection latency (condition flip -> wait step done), {} flips: median {:.3}s, worst {:.3}s (goal: median < 0.2 s)",
        lat.len(),
        lat[lat.len() / 2],
        lat[lat.len() - 1]
    );

    // 3. One cluster versus four in parallel.
    let one = scenarios_wall(&run_suite(&rt, &assets, "one", &CLUSTERS.replace("[N]", "[1]"), 4));
    let four = scenarios_wall(&run_suite(&rt, &assets, "four", &CLUSTERS.replace("[N]", "[1, 2, 3, 4]"), 4));
    println!(
        "clusters: one {one:.1}s, four in parallel {four:.1}s: {:.2}x (goal: at most 1.5x)",
        four / one
    );
}

/// Flips a condition on a custom resource while the real `wait` step watches it.
async fn detection_latency(lab: &Lab, n: usize) -> Vec<f64> {
    use kube::api::{Api, DynamicObject, Patch, PatchParams};
    let client = scs_e2e::kube::client_from_kubeconfig(&lab.kubeconfig()).await.unwrap();
    let crd: serde_json::Value = serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "flips.bench.scs.community"},
        "spec": {"group": "bench.scs.community", "scope": "Namespaced",
                 "names": {"plural": "flips", "singular": "flip", "kind": "Flip"},
                 "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    let ctx = scs_e2e::context::StepCtx {
        resolver: std::sync::Arc::new(scs_e2e::kube::Resolver::new(client.clone())),
        namespace: "default".into(),
        kubeconfig: lab.kubeconfig(),
        base_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        artifacts: std::env::temp_dir(),
        vars: Default::default(),
        extra_path: vec![],
        log: Default::default(),
        deadline: tokio::time::Instant::now() + Duration::from_secs(120),
        cancel: Default::default(),
        outputs: Default::default(),
        cloud: None,
        run_id: scs_e2e::base::new_run_id(),
    };
    let step = |y: &str| -> scs_e2e::suite::model::Step { serde_saphyr::from_str(y).unwrap() };
    let apply = step(&format!("apply: {{manifest: {crd}}}"));
    apply.op.operation().run(&ctx).await.unwrap();
    let ar = ctx.resolver.resolve("bench.scs.community/v1", "Flip").await.unwrap().0;
    let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
    let mut out = Vec::new();
    for i in 0..n {
        let name = format!("f{i}");
        let obj = serde_json::json!({"apiVersion": "bench.scs.community/v1", "kind": "Flip", "metadata": {"name": name}});
        api.patch(&name, &PatchParams::apply("bench"), &Patch::Apply(&obj)).await.unwrap();
        let wait = step(&format!(
            "wait: {{resource: {{apiVersion: bench.scs.community/v1, kind: Flip, name: {name}}}, condition: Ready}}"
        ));
        let flip = async {
            // Let the watch establish (a step always starts before the condition it awaits).
            tokio::time::sleep(Duration::from_millis(300)).await;
            let status = serde_json::json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Bench", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
            let t0 = Instant::now();
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .unwrap();
            t0
        };
        let (r, t0) = tokio::join!(wait.op.operation().run(&ctx), flip);
        let done = Instant::now();
        r.unwrap();
        out.push((done - t0).as_secs_f64());
    }
    out
}
