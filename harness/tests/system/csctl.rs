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

fn inmemory_1_33() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/cluster-stacks/inmemory/scs/1-33")
}

/// Everything a release directory holds, for comparison: each file's bytes, except archives,
/// which are their entry names and types (csctl stamps times, modes and owners of the moment).
fn release_contents(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in names {
        let p = dir.join(&n);
        let text = if n.ends_with(".tgz") {
            let mut a = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(&p).unwrap()));
            let mut entries: Vec<String> = a
                .entries()
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    format!("{:?} {}", e.header().entry_type(), e.path().unwrap().display())
                })
                .collect();
            // helm writes its entries in its own order; csctl's tar walks in name order.
            entries.sort();
            entries.join("\n")
        } else {
            std::fs::read_to_string(&p).unwrap()
        };
        out.push((n, text));
    }
    out
}

fn releases(out: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `scs-e2e stack build` and csctl v0.0.5 make the same releases of upstream's docker and
/// OpenStack layouts and our docker stack (new: clusteraddon.yaml and a directory of charts with
/// vendored dependencies) and of our in-memory stack (old: one addon chart and
/// cluster-addon-values.yaml), in hash and custom mode: release
/// directory names, file names, metadata.yaml, hashes.json and the addon files byte for byte, and
/// every archive's entry list.
#[test]
fn stack_build_makes_what_csctl_makes() {
    let csctl = common::csctl();
    let ours = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/cluster-stacks/docker/scs/1-33");
    let cases = [upstream("docker-scs"), upstream("openstack-scs"), inmemory_1_33(), ours];
    let custom = [
        "--mode",
        "custom",
        "--cluster-stack-version",
        "v2",
        "--cluster-addon-version",
        "v3",
        "--node-image-version",
        "v4",
    ];
    for stack in &cases {
        for mode in [&["--mode", "hash"][..], &custom[..]] {
            let theirs = tempfile::tempdir().unwrap();
            let out = Command::new(&csctl)
                .arg("create")
                .args(mode)
                .arg(stack)
                .args(["-o", "rel"])
                .current_dir(theirs.path())
                .output()
                .unwrap();
            assert!(out.status.success(), "csctl {mode:?} {}: {out:?}", stack.display());
            let ours = tempfile::tempdir().unwrap();
            let out = Command::new(common::bin())
                .args(["stack", "build"])
                .arg(stack)
                .args(mode)
                .arg("-o")
                .arg(ours.path().join("rel"))
                .env("PATH", scs_e2e::process::path_with(&[common::assets().bin_dir]))
                .output()
                .unwrap();
            assert!(out.status.success(), "stack build {mode:?} {}: {out:?}", stack.display());
            let (a, b) = (theirs.path().join("rel"), ours.path().join("rel"));
            assert_eq!(releases(&b), releases(&a), "{mode:?} {}", stack.display());
            let name = &releases(&a)[0];
            assert_eq!(
                release_contents(&b.join(name)),
                release_contents(&a.join(name)),
                "{mode:?} {}",
                stack.display()
            );
        }
    }
}

/// Stable mode, which csctl can only run against GitHub or OCI: the first release is v1; a
/// release after it bumps the stack and, where cluster-addon/ changed, the addon; with neither
/// the addon nor its values changed, only the stack version moves; a stack whose addon sources
/// are all absent has "no change" and is refused.
#[test]
fn stable_mode_bumps_from_the_previous_release() {
    let work = tempfile::tempdir().unwrap();
    let stack = work.path().join("stack");
    scs_e2e::base::copy_tree(&inmemory_1_33(), &stack).unwrap();
    let build = |extra: &[&str]| {
        let out = Command::new(common::bin())
            .args(["stack", "build"])
            .arg(&stack)
            .args(["--mode", "stable", "-o"])
            .arg(work.path().join("rel"))
            .args(extra)
            .env("PATH", scs_e2e::process::path_with(&[common::assets().bin_dir]))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, first) = build(&[]);
    assert_eq!(code, Some(0), "{first}");
    assert!(
        first.contains("inmemory-scs-1-33-v1 (cluster stack v1, cluster addon v1"),
        "{first}"
    );
    let v1 = work.path().join("rel/inmemory-scs-1-33-v1");
    // Same sources: only the cluster stack version moves... csctl refuses that as "no change".
    let (code, same) = build(&["--latest", v1.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{same}");
    assert!(same.contains("no change in the cluster stack"), "{same}");
    // The addon chart changed: stack and addon bumped, the node image kept.
    std::fs::write(stack.join("cluster-addon/values.yaml"), "changed: true\n").unwrap();
    let (code, next) = build(&["--latest", v1.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{next}");
    assert!(
        next.contains("inmemory-scs-1-33-v2 (cluster stack v2, cluster addon v2, node image v1"),
        "{next}"
    );
}
