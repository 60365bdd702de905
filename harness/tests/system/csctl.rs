//! The real csctl (v0.0.5, built on demand) as a test peer: it builds, runs, and makes the release
//! of the committed docker snapshot that fixtures/cluster-stacks/upstream is documented with.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

fn upstream(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/cluster-stacks/upstream")
        .join(name)
}

#[test]
fn csctl_is_built_on_demand_and_makes_a_hash_release_offline() {
    let csctl = common::csctl();
    let v = Command::new(&csctl).arg("version").output().unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).contains("csctl version: v0.0.5"), "{v:?}");
    assert!(Command::new(&csctl).args(["create", "--help"]).output().unwrap().status.success());

    // csctl writes ./.release and ./.tmp: its working directory is a scratch one.
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(&csctl)
        .args(["create", "--mode", "hash"])
        .arg(upstream("docker-scs"))
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // The dirhash of the committed snapshot: if this moved, the snapshot's files did (a re-run of
    // make-standins.sh stamps new archives), and the figures quoted for it are stale.
    let dir = cwd.path().join(".release/docker-scs-1-30-v0-sha-bxgrjmf");
    let hashes = std::fs::read_to_string(dir.join("hashes.json")).unwrap();
    assert!(
        hashes.contains(r#""clusterStack": "bxgrjmfrm2yilnndtg7nktiae9pbvgqa5x00mpwewk""#),
        "{hashes}"
    );
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "clusteraddon.yaml",
            "docker-scs-1-30-cluster-addon-v0-sha.bxgrjmf.tgz",
            "docker-scs-1-30-cluster-class-v0-sha.bxgrjmf.tgz",
            "hashes.json",
            "metadata.yaml",
        ]
    );
    assert!(!cwd.path().join(".tmp").exists(), "csctl removes its scratch directory");
}
