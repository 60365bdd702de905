//! `cargo bench --bench lab_up`: cold `lab up` (fresh directory, certificates, etcd, API server,
//! controller manager) to ready, and `lab down`, five times (goal: under 5 s to ready).

use std::path::PathBuf;
use std::time::Instant;

use scs_e2e::env::lab::build::{self, Assets};
use scs_e2e::env::lab::{Lab, LabOptions};

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let assets = Assets::locate(None, None);
    let t0 = Instant::now();
    let built = build::install(&assets, &build::ConsoleProgress::new()).expect("lab binaries");
    if !built.is_empty() {
        println!("built {} in {:.0}s", built.join(", "), t0.elapsed().as_secs_f64());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (mut up, mut down) = (Vec::new(), Vec::new());
    for i in 0..5 {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-lab-{}-{i}", std::process::id()));
        let t = Instant::now();
        let lab = rt.block_on(Lab::start(LabOptions::new(dir, assets.clone()))).expect("lab up");
        up.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        rt.block_on(lab.stop()).unwrap();
        down.push(t.elapsed().as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "lab up to ready: median {:.2}s, min {:.2}s, max {:.2}s (goal < 5 s)",
        median(&mut up.clone()),
        up.iter().cloned().fold(f64::MAX, f64::min),
        up.iter().cloned().fold(0.0, f64::max)
    );
    println!("lab down:        median {:.2}s", median(&mut down));
}
