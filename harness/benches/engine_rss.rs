//! `cargo bench --bench engine_rss`: the engine runs 200 trivial scenarios at once against a lab
//! (each one a watch-based assert); prints the harness's peak RSS (goal: under 40 MB).
//! The lab's processes are children with their own memory and are not counted.

use std::path::PathBuf;

use scs_e2e::config::Settings;
use scs_e2e::engine::{self, RunOptions};
use scs_e2e::env::kubeconfig::KubeconfigEnv;
use scs_e2e::env::lab::build::{self, Assets};
use scs_e2e::env::lab::{Lab, LabOptions};
use scs_e2e::suite::loader::load_suite_str;
use scs_e2e::suite::plan::{Filters, build_plan};

fn vm(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` probes bench binaries; nothing to list here.
    }
    let assets = Assets::locate(None, None);
    build::install(&assets, &build::ConsoleProgress::new()).expect("lab binaries");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-rss-{}", std::process::id()));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let lab = rt.block_on(Lab::start(LabOptions::new(dir, assets))).expect("lab");
    let mut suite = String::from("apiVersion: scs-e2e/v1alpha1\nkind: Suite\nname: rss\nscenarios:\n");
    for i in 0..200 {
        suite.push_str(&format!(
            "  - name: s{i}\n    namespace: default\n    steps:\n      - assert: {{resource: {{apiVersion: v1, kind: Namespace, name: default}}, matches: {{status: {{phase: Active}}}}}}\n"
        ));
    }
    let plan = build_plan(
        vec![load_suite_str(&suite, "rss.yaml", PathBuf::from(".")).unwrap()],
        &Settings::default(),
        &Filters::default(),
    )
    .unwrap();
    let before = vm("VmHWM:");
    let out = tempfile::tempdir().unwrap();
    let mut opts = RunOptions::new(out.path().to_path_buf());
    opts.parallel = 200;
    let t0 = std::time::Instant::now();
    let report = rt.block_on(async {
        let mut env = KubeconfigEnv::new(lab.kubeconfig());
        engine::run(&plan, &mut env, &opts, Default::default(), &scs_e2e::report::console::Silent).await
    });
    let wall = t0.elapsed();
    assert_eq!(
        report.exit(),
        scs_e2e::error::Exit::Passed,
        "{}",
        scs_e2e::report::console::summary_text(&report)
    );
    let peak = vm("VmHWM:");
    println!("engine: 200 concurrent scenarios in {:.2}s", wall.as_secs_f64());
    println!(
        "peak RSS: {:.1} MB (before the run: {:.1} MB; goal < 40 MB)",
        peak as f64 / 1024.0,
        before as f64 / 1024.0
    );
    rt.block_on(lab.stop()).unwrap();
}
