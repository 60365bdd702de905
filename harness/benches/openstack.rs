//! `cargo bench --bench openstack` (needs Debian's mariadb-server and rabbitmq-server, which
//! `.ci/run` installs): the real OpenStack services of `fixtures/openstack` and the `openstack`
//! suite on them, measured in one run on one machine:
//! 1. fixture start: `openstack.sh up` three times from the cache (virtualenv and database
//!    template; built first when missing, and that first `up` is shown apart), each followed by
//!    `down`; with `-- --cold`, first one `up` with an empty cache directory (virtualenv built,
//!    every service's migrations run: minutes);
//! 2. the `openstack` suite's `infrastructure` scenario with CAPO and ORC in the lab against the
//!    fixture (ORC imports the node image, CAPO makes network, router, security groups, load
//!    balancer and the control plane's server, the cluster is deleted, the leak check runs):
//!    the run's wall time and its steps;
//! 3. the machine's peak memory (MemTotal − MemAvailable above what was in use before; anything
//!    else running shows too) during a warm `up` and during the suite.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use scs_e2e::env::lab::build::{self, Assets};
use scs_e2e::env::lab::{Lab, LabOptions};
use scs_e2e::report::json;
use scs_e2e::testing::PeakMemory;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn tmp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-openstack-{name}-{}", std::process::id()))
}

/// `openstack.sh up STATE` owned by this process, with `cache` as SCS_E2E_CACHE_DIR when given:
/// seconds, and the clouds.yaml it exported.
fn up(state: &Path, cache: Option<&Path>) -> (f64, PathBuf) {
    let _ = std::fs::remove_dir_all(state);
    std::fs::create_dir_all(state).unwrap();
    let mut c = Command::new("sh");
    c.arg(repo().join("fixtures/openstack/openstack.sh"))
        .arg("up")
        .arg(state)
        .env("OPENSTACK_FIXTURE_OWNER", std::process::id().to_string())
        .stdin(Stdio::null());
    if let Some(d) = cache {
        c.env("SCS_E2E_CACHE_DIR", d);
    }
    let t = Instant::now();
    let out = c.output().unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(out.status.success(), "openstack.sh up: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let clouds = stdout
        .lines()
        .find_map(|l| l.strip_prefix("export OS_CLIENT_CONFIG_FILE="))
        .expect("OS_CLIENT_CONFIG_FILE in up's output")
        .trim_matches('\'')
        .to_string();
    (secs, PathBuf::from(clouds))
}

fn down(state: &Path) -> f64 {
    let t = Instant::now();
    let out = Command::new("sh")
        .arg(repo().join("fixtures/openstack/openstack.sh"))
        .arg("down")
        .arg(state)
        .output()
        .unwrap();
    assert!(out.status.success(), "down: {}", String::from_utf8_lossy(&out.stderr));
    let secs = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(state);
    secs
}

fn mib(b: u64) -> u64 {
    b / (1 << 20)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let state = tmp("state");

    // 1. Fixture start.
    if args.iter().any(|a| a == "--cold") {
        let cache = tmp("cold-cache");
        let (secs, _) = up(&state, Some(&cache));
        println!(
            "cold up (virtualenv and database template built): {secs:.1}s; down {:.1}s",
            down(&state)
        );
        let _ = std::fs::remove_dir_all(&cache);
    }
    let (first, _) = up(&state, None);
    println!("first up with the machine's cache (cold if it was empty): {first:.1}s");
    down(&state);
    let (mut ups, mut downs, mut peaks) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        let mem = PeakMemory::start();
        let (secs, _) = up(&state, None);
        peaks.push(mem.stop());
        ups.push(secs);
        downs.push(down(&state));
    }
    println!(
        "warm up: {} → median {:.1}s (goal ≤ 30 s); down median {:.1}s; peak memory during up {} MiB",
        ups.iter().map(|s| format!("{s:.1}s")).collect::<Vec<_>>().join(", "),
        median(ups.clone()),
        median(downs),
        mib(peaks.into_iter().max().unwrap())
    );

    // 2. The suite: the fixture, the lab with CAPO and ORC, the stack with its image on loopback.
    let assets = Assets::locate(None, None);
    build::install(&assets, &build::ConsoleProgress::new()).expect("lab binaries");
    for c in build::OPENSTACK {
        build::ensure(&assets, c, &build::ConsoleProgress::new()).expect("CAPO and ORC");
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (_, clouds) = up(&state, None);
    let mut lo = LabOptions::new(tmp("lab"), assets.clone());
    lo.cluster_api = true;
    lo.openstack = true;
    let lab = rt.block_on(Lab::start(lo)).unwrap();
    let work = tmp("work");
    let stack = rt.block_on(scs_e2e::testing::openstack_work_dir(&repo().join("fixtures"), &work, &lab, &clouds));
    let path = scs_e2e::process::path_with(std::slice::from_ref(&assets.bin_dir));
    let version = scs_e2e::testing::stack_hash_version(Path::new(env!("CARGO_BIN_EXE_scs-e2e")), &stack, &work.join("rel"), &path);
    let art = work.join("artifacts");
    let mem = PeakMemory::start();
    let t = Instant::now();
    let st = Command::new(env!("CARGO_BIN_EXE_scs-e2e"))
        .args(["run", "-q", "--env", "openstack", "--config", "config.yaml", "--suite"])
        .arg(repo().join("suites/openstack.yaml"))
        .args(["--focus", "openstack\\.infrastructure", "--delete", "always"])
        .arg("--var")
        .arg(format!("STACK_SOURCE={}", stack.display()))
        .args(["--var", &format!("STACK_VERSION={version}")])
        .arg("--artifacts")
        .arg(&art)
        .current_dir(&work)
        .env("PATH", &path)
        .env_remove("OS_CLOUD")
        .env_remove("OS_CLIENT_CONFIG_FILE")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    let wall = t.elapsed().as_secs_f64();
    let peak = mem.stop();
    assert!(st.success(), "the openstack suite failed: see {}", art.display());
    let r = json::read(&art.join("results.json")).unwrap();
    println!(
        "openstack.infrastructure (CAPO, ORC, real services): {wall:.1}s; peak memory above the idle fixture and lab {} MiB",
        mib(peak)
    );
    for s in &r.scenarios[0].steps {
        println!("  {:<80} {:>6.1}s", s.name, s.duration_secs);
    }
    rt.block_on(lab.stop()).unwrap();
    down(&state);
    let _ = std::fs::remove_dir_all(&work);
}
