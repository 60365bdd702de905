//! `cargo bench --bench docker` (needs an engine: DOCKER_HOST, or `eval "$(fixtures/engine/dockerd.sh up)"`):
//! real workload clusters from our docker stack (fixtures/cluster-stacks/docker/scs) in kind,
//! measured in one run on one machine:
//! - one cluster (1 control plane + 1 worker), per phase: stack usable (install + release
//!   usable), cluster Ready (create + Cluster Available), addons Ready (ClusterAddon), delete;
//! - two such clusters at once (two scenarios of one run), the same phases, and the ratio of the
//!   clusters' wall time to one cluster's (goal ≤ 1.5×);
//! - peak memory during each run: of the engine's containers (kind and workload nodes, `docker
//!   stats`), and of the machine (MemTotal − MemAvailable above what was in use before the run;
//!   anything else running on the machine shows in it too).
//!
//! Each run creates and deletes its own kind management cluster; its time is shown apart.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use scs_e2e::report::json;

/// The phases, each a run of consecutive steps (by step name in the suite below).
const PHASES: &[(&str, &[&str])] = &[
    ("stack usable", &["install", "release usable"]),
    ("cluster Ready", &["create", "cluster ready"]),
    ("addons Ready", &["addons ready"]),
    ("delete", &["delete"]),
];

fn scenario(name: &str) -> String {
    format!(
        r#"  - name: {name}
    steps:
      - name: install
        installClusterStack: {{provider: docker, name: scs, kubernetesVersion: "1.33", versions: [v1], source: "${{STACK_SOURCE}}"}}
      - name: release usable
        timeout: 5m
        waitClusterStackRelease: {{provider: docker, name: scs, kubernetesVersion: "1.33", version: v1}}
      - name: create
        createCluster: {{name: "${{NAMESPACE}}", stack: {{provider: docker, name: scs, kubernetesVersion: "1.33", version: v1}}, controlPlaneReplicas: 1, workers: 1}}
      - name: cluster ready
        timeout: 15m
        waitCluster: {{name: "${{NAMESPACE}}", addons: skip}}
      - name: addons ready
        timeout: 10m
        waitCluster: {{name: "${{NAMESPACE}}", addons: ready}}
      - name: delete
        timeout: 10m
        deleteCluster: {{name: "${{NAMESPACE}}"}}
"#
    )
}

fn suite(dir: &Path, scenarios: &[&str]) -> PathBuf {
    let stack = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/cluster-stacks/docker/scs");
    let mut text = format!(
        "apiVersion: scs-e2e/v1alpha1\nkind: Suite\nname: bench-docker\nenvironments: [kind]\nvars:\n  STACK_SOURCE: {}\nscenarios:\n",
        stack.canonicalize().expect("the docker stack").display()
    );
    for s in scenarios {
        text.push_str(&scenario(s));
    }
    let path = dir.join(format!("bench-docker-{}.yaml", scenarios.len()));
    std::fs::File::create(&path).unwrap().write_all(text.as_bytes()).unwrap();
    path
}

/// The memory the engine's containers use now (docker stats: usage without page cache), bytes.
fn containers() -> u64 {
    let out = Command::new("docker")
        .args(["stats", "--no-stream", "--format", "{{.MemUsage}}"])
        .output()
        .expect("docker");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split('/').next())
        .map(|v| {
            let v = v.trim();
            let split = v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len());
            let (n, unit) = v.split_at(split);
            let n: f64 = n.parse().unwrap_or(0.0);
            let m = match unit {
                "KiB" => 1024.0,
                "MiB" => 1024.0 * 1024.0,
                "GiB" => 1024.0 * 1024.0 * 1024.0,
                _ => 1.0,
            };
            (n * m) as u64
        })
        .sum()
}

struct Measured {
    /// The whole `scs-e2e run` (kind management cluster included).
    run: f64,
    /// From the first scenario step's start to the last one's end.
    clusters: f64,
    /// Per phase, the slowest scenario's time.
    phases: Vec<(&'static str, f64)>,
    /// Peak memory in use on the machine above the baseline, bytes (other work shows too).
    peak: u64,
    /// Peak memory of the engine's containers (the kind and workload nodes), bytes.
    peak_containers: u64,
}

fn run(dir: &Path, scenarios: &[&str]) -> Measured {
    let suite = suite(dir, scenarios);
    let art = dir.join(format!("out-{}", scenarios.len()));
    let baseline = scs_e2e::testing::memory_in_use();
    let peak = Arc::new(AtomicU64::new(baseline));
    let peak_containers = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, peak_containers, stop) = (peak.clone(), peak_containers.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                peak.fetch_max(scs_e2e::testing::memory_in_use(), Ordering::SeqCst);
                // One `docker stats` takes about two seconds: that is the sampling interval.
                peak_containers.fetch_max(containers(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let t = Instant::now();
    let st = Command::new(env!("CARGO_BIN_EXE_scs-e2e"))
        .args(["run", "-q", "--env", "kind", "--delete", "always", "--suite"])
        .arg(&suite)
        .arg("--artifacts")
        .arg(&art)
        .env("SCS_E2E_KIND_IMAGES", "offline")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("scs-e2e");
    let elapsed = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    sampler.join().unwrap();
    assert!(
        st.success(),
        "scs-e2e run --suite {} failed: see {}",
        suite.display(),
        art.display()
    );
    let report = json::read(&art.join("results.json")).unwrap();
    let scs: Vec<_> = report.scenarios.iter().filter(|s| s.suite == "bench-docker").collect();
    assert_eq!(scs.len(), scenarios.len());
    let end = |s: &scs_e2e::report::StepResult| s.started_at + chrono::Duration::milliseconds((s.duration_secs * 1000.0) as i64);
    let steps = || scs.iter().flat_map(|s| s.steps.iter());
    let first = steps().map(|s| s.started_at).min().unwrap();
    let last = steps().map(end).max().unwrap();
    let phases = PHASES
        .iter()
        .map(|(phase, names)| {
            let slowest = scs
                .iter()
                .map(|s| {
                    s.steps
                        .iter()
                        .filter(|st| names.contains(&st.name.as_str()))
                        .map(|st| st.duration_secs)
                        .sum::<f64>()
                })
                .fold(0.0, f64::max);
            (*phase, slowest)
        })
        .collect();
    Measured {
        run: elapsed,
        clusters: (last - first).num_milliseconds() as f64 / 1000.0,
        phases,
        peak: peak.load(Ordering::SeqCst).saturating_sub(baseline),
        peak_containers: peak_containers.load(Ordering::SeqCst),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list" || a == "--test") {
        return;
    }
    assert!(
        std::env::var_os("DOCKER_HOST").is_some() || Path::new("/var/run/docker.sock").exists(),
        "needs a container engine: eval \"$(fixtures/engine/dockerd.sh up)\""
    );
    let st = Command::new(env!("CARGO_BIN_EXE_scs-e2e"))
        .args(["images", "build", "-q"])
        .status()
        .unwrap();
    assert!(st.success(), "scs-e2e images build failed");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-docker-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let one = run(&dir, &["one"]);
    let two = run(&dir, &["one", "two"]);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!("docker stack in kind: one cluster, then two at once (1 control plane + 1 worker each)");
    println!("{:<16} {:>10} {:>14}", "phase", "one", "two at once");
    for ((phase, a), (_, b)) in one.phases.iter().zip(&two.phases) {
        println!("{phase:<16} {a:>9.1}s {b:>13.1}s");
    }
    println!("{:<16} {:>9.1}s {:>13.1}s", "clusters (wall)", one.clusters, two.clusters);
    println!("{:<16} {:>9.1}s {:>13.1}s", "whole run", one.run, two.run);
    println!(
        "{:<16} {:>8.0}MiB {:>12.0}MiB",
        "peak, containers",
        mib(one.peak_containers),
        mib(two.peak_containers)
    );
    println!("{:<16} {:>8.0}MiB {:>12.0}MiB", "peak, machine", mib(one.peak), mib(two.peak));
    println!("two at once / one: {:.2}x (goal ≤ 1.5x)", two.clusters / one.clusters);
    let _ = std::fs::remove_dir_all(&dir);
}
