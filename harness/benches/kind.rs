//! `cargo bench --bench kind` (needs an engine: DOCKER_HOST, or `eval "$(fixtures/engine/dockerd.sh up)"`):
//! in one run, on one machine,
//! - `images build` with everything present (the cache check a run pays) and, with
//!   `-- --rebuild`, every image built again from a warm Go cache (`--force`);
//! - the quickstart suite in kind (offline images, cluster creation and deletion included;
//!   goal ≤ 3 min once the images exist) against the same suite in the lab, as a ratio.
//!
//! A fully cold image build (empty Go and image caches) is measured by `.ci/run` on a fresh
//! machine and reported in the README.

use std::process::{Command, Stdio};
use std::time::Instant;

fn scs_e2e(args: &[&str]) -> f64 {
    let t = Instant::now();
    let st = Command::new(env!("CARGO_BIN_EXE_scs-e2e"))
        .args(args)
        .env("SCS_E2E_KIND_IMAGES", "offline")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("scs-e2e");
    assert!(st.success(), "scs-e2e {args:?} failed");
    t.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list" || a == "--test") {
        return;
    }
    assert!(
        std::env::var_os("DOCKER_HOST").is_some() || std::path::Path::new("/var/run/docker.sock").exists(),
        "needs a container engine: eval \"$(fixtures/engine/dockerd.sh up)\""
    );
    // Brings everything to present first (a cold build on a new machine).
    let first = scs_e2e(&["images", "build"]);
    println!("images build (to present):        {first:.1}s");
    let present = scs_e2e(&["images", "build"]);
    println!("images build (all present):       {present:.1}s");
    if args.iter().any(|a| a == "--rebuild") {
        let rebuild = scs_e2e(&["images", "build", "--force"]);
        println!("images build --force (warm Go):   {rebuild:.1}s");
    }
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-kind-{}", std::process::id()));
    let art = |n: &str| dir.join(n).display().to_string();
    let lab = scs_e2e(&["run", "-q", "--env", "lab", "--suite", "quickstart", "--artifacts", &art("lab")]);
    let kind = scs_e2e(&[
        "run",
        "-q",
        "--env",
        "kind",
        "--suite",
        "quickstart",
        "--delete",
        "always",
        "--artifacts",
        &art("kind"),
    ]);
    println!("quickstart in the lab:            {lab:.1}s");
    println!("quickstart in kind (with cluster): {kind:.1}s (goal ≤ 180 s)");
    println!("kind / lab:                       {:.1}x", kind / lab);
    let _ = std::fs::remove_dir_all(&dir);
}
