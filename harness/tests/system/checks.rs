//! SCS checks against the lab's real API server: Node objects, StorageClasses, claims, pods
//! (which never run in the lab: no scheduler, no kubelet) and `/version`.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use scs_e2e::checks::{Verdict, node_distribution, storage_class};
use tokio_util::sync::CancellationToken;

async fn make_node(nodes: &Api<Node>, name: &str, labels: &[(&str, &str)]) {
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    nodes.create(&PostParams::default(), &node).await.unwrap();
}

/// One test owns the cluster's nodes and storage classes (both cluster-scoped).
#[tokio::test]
async fn node_distribution_and_storage_class_on_real_objects() {
    let client = client().await;
    let nodes: Api<Node> = Api::all(client.clone());

    let o = node_distribution::run(&client).await;
    assert_eq!(o.verdict, Verdict::Fail, "the lab has no nodes: {o:?}");
    tokio::task::spawn_blocking(check_command_writes_the_compliance_yaml_and_junit)
        .await
        .unwrap();

    let cp = ("node-role.kubernetes.io/control-plane", "");
    make_node(
        &nodes,
        "cp-a",
        &[cp, ("topology.kubernetes.io/zone", "a"), ("topology.kubernetes.io/region", "r")],
    )
    .await;
    make_node(
        &nodes,
        "cp-b",
        &[cp, ("topology.kubernetes.io/zone", "b"), ("topology.kubernetes.io/region", "r")],
    )
    .await;
    make_node(
        &nodes,
        "worker",
        &[("topology.kubernetes.io/zone", "a"), ("topology.kubernetes.io/region", "r")],
    )
    .await;
    let o = node_distribution::run(&client).await;
    assert_eq!(o.verdict, Verdict::Pass, "{o:?}");
    assert!(o.messages.iter().any(|(_, m)| m.contains("one region (r)")), "{o:?}");

    make_node(&nodes, "bare", &[]).await;
    let o = node_distribution::run(&client).await;
    assert_eq!(o.verdict, Verdict::Fail);
    assert!(
        o.messages[0]
            .1
            .contains("bare lacks topology.kubernetes.io/zone and topology.kubernetes.io/region"),
        "{o:?}"
    );
    for n in ["cp-a", "cp-b", "worker", "bare"] {
        nodes.delete(n, &DeleteParams::default()).await.unwrap();
    }

    let o = storage_class::run(&client, Duration::from_secs(2), "r1").await;
    assert_eq!(o.verdict, Verdict::Fail);
    assert!(o.messages[0].1.starts_with("no StorageClass is annotated"), "{o:?}");

    let classes: Api<StorageClass> = Api::all(client.clone());
    let sc = StorageClass {
        metadata: ObjectMeta {
            name: Some("lab-default".into()),
            annotations: Some(BTreeMap::from([(
                storage_class::DEFAULT_ANNOTATION.to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        },
        provisioner: "example.com/never".into(),
        ..Default::default()
    };
    classes.create(&PostParams::default(), &sc).await.unwrap();
    // The probe's namespace derives from the run id it is given: one that is taken aborts.
    let taken = Namespace {
        metadata: ObjectMeta {
            name: Some("scs-e2e-storage-r2".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &taken)
        .await
        .unwrap();
    let o = storage_class::run(&client, Duration::from_secs(2), "r2").await;
    assert_eq!(o.verdict, Verdict::Abort, "{o:?}");
    assert!(o.messages[0].1.starts_with("cannot create namespace scs-e2e-storage-r2"), "{o:?}");
    let o = storage_class::run(&client, Duration::from_secs(2), "r3").await;
    assert_eq!(o.verdict, Verdict::Fail);
    let msg = &o.messages[0].1;
    assert!(
        msg.starts_with("a pod mounting a 1Gi volume of StorageClass lab-default did not run: timed out after"),
        "{msg}"
    );
    assert!(msg.contains("pod phase Pending"), "the last observed state is named: {msg}");
    // The probe namespace is always removed again.
    let left: Vec<String> = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|n| n.metadata.name.as_deref().unwrap_or("").starts_with("scs-e2e-storage-") && n.metadata.deletion_timestamp.is_none())
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(left.is_empty(), "probe namespaces left: {left:?}");
    classes.delete("lab-default", &DeleteParams::default()).await.unwrap();
}

/// `scs-e2e check` end to end, while the lab has no nodes.
fn check_command_writes_the_compliance_yaml_and_junit() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("report.yaml");
    let junit = dir.path().join("junit.xml");
    let out = std::process::Command::new(bin())
        .args([
            "check",
            "--subject",
            "lab",
            "-t",
            "node-distribution-check",
            "--reference-date",
            "2026-11-01",
            "--kubeconfig",
        ])
        .arg(lab().kubeconfig())
        .arg("-o")
        .arg(&yaml)
        .arg("--junit")
        .arg(&junit)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The lab has no nodes unless a test made some: FAIL, one error line + one FAIL = exit 2.
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let report: scs_e2e::checks::compliance::Report = serde_saphyr::from_str(&std::fs::read_to_string(&yaml).unwrap()).unwrap();
    assert_eq!(report.subject, "lab");
    assert_eq!(report.spec.uuid, "1fffebe6-fd4b-44d3-a36c-fc58b4bb0180");
    assert_eq!(
        scs_e2e::checks::compliance::results(&report),
        BTreeMap::from([("node-distribution-check".to_string(), -1)])
    );
    let j = quick_junit::Report::deserialize_from_str(&std::fs::read_to_string(&junit).unwrap()).unwrap();
    assert_eq!((j.tests, j.failures), (1, 1));
    upstream_command_lines_give_the_same_exit_code_and_report(dir.path(), &report);
}

/// A CSP's scs-compliance-check.py command line, with `scs-e2e check` in its place: the same
/// exit code and report as our own flags gave (`ours`), and upstream's meaning of `-C`, `-t`
/// (matched at the start), `-S` (testcases without a section dropped), `-V`/`--version` and a
/// repeated `-a`.
fn upstream_command_lines_give_the_same_exit_code_and_report(dir: &std::path::Path, ours: &scs_e2e::checks::compliance::Report) {
    let kc = format!("kubeconfig={}", lab().kubeconfig().display());
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin())
            .arg("check")
            .args(args)
            .current_dir(dir)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap();
        let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let report = std::fs::read_to_string(dir.join("up.yaml"))
            .ok()
            .map(|y| serde_saphyr::from_str::<scs_e2e::checks::compliance::Report>(&y).unwrap());
        let _ = std::fs::remove_file(dir.join("up.yaml"));
        // Shown with a failure below.
        eprintln!("check {args:?} exited {:?}:\n{text}", out.status.code());
        (out.status.code(), report, text)
    };
    let results = |r: &Option<scs_e2e::checks::compliance::Report>| scs_e2e::checks::compliance::results(r.as_ref().unwrap());
    // The spec path of a standards checkout, which is not here: the built-in copy.
    let spec = "Tests/scs-compatible-kaas.yaml";
    let (code, report, text) = run(&[
        "-s",
        "lab",
        "-d",
        "2026-11-01",
        "-a",
        &kc,
        "-t",
        "node-distribution",
        "-o",
        "up.yaml",
        spec,
    ]);
    assert_eq!(code, Some(2), "{text}");
    let r = report.as_ref().unwrap();
    assert_eq!(results(&report), scs_e2e::checks::compliance::results(ours));
    assert_eq!(
        (&r.subject, &r.spec.uuid, r.reference_date),
        (&ours.subject, &ours.spec.uuid, ours.reference_date)
    );
    assert_eq!(r.run.assignment.get("kubeconfig"), ours.run.assignment.get("kubeconfig"));
    // GNU style: options after the positional spec, long forms.
    let (code, report, text) = run(&[
        spec,
        "--subject=lab",
        "--date=2026-11-01",
        "--assign",
        &kc,
        "--tests=node-distribution",
        "--output=up.yaml",
    ]);
    assert_eq!(
        (code, results(&report)),
        (Some(2), scs_e2e::checks::compliance::results(ours)),
        "{text}"
    );
    // -C: the FAIL and its ERROR line do not count.
    let (code, report, text) = run(&[
        "-C",
        "-s",
        "lab",
        "-a",
        &kc,
        "-t",
        "node-distribution",
        "-o",
        "up.yaml",
        "scs-compatible-kaas",
    ]);
    assert_eq!(
        (code, results(&report)),
        (Some(0), scs_e2e::checks::compliance::results(ours)),
        "{text}"
    );
    // -t matches at the start of the id; -S drops testcases without a section (this one has none).
    for args in [&["-t", "distribution"][..], &["-t", "node-distribution", "-S", "light"]] {
        let (code, report, text) = run(&[&["-s", "lab", "-a", &kc, "-o", "up.yaml"][..], args, &[spec]].concat());
        let got = results(&report);
        assert!(
            code == Some(0) && !got.contains_key("node-distribution-check"),
            "{args:?}: {got:?}\n{text}"
        );
    }
    // -V/--version names a spec version; an unknown one, or a variable given twice: exit 2,
    // nothing checked.
    let (code, report, text) = run(&[
        "-s",
        "lab",
        "--version",
        "v1",
        "-a",
        &kc,
        "-t",
        "node-distribution",
        "-o",
        "up.yaml",
        spec,
    ]);
    assert_eq!((code, r_version(&report)), (Some(2), Some("v1".to_string())), "{text}");
    let (code, report, text) = run(&["-s", "lab", "-V", "v9", "-a", &kc, "-o", "up.yaml", spec]);
    assert!(
        code == Some(2) && report.is_none() && text.contains("the spec has versions v1"),
        "{text}"
    );
    let (code, report, text) = run(&["-s", "lab", "-a", &kc, "-a", &kc, "-o", "up.yaml", spec]);
    assert!(code == Some(2) && report.is_none() && text.contains("assigned twice"), "{text}");
}

fn r_version(r: &Option<scs_e2e::checks::compliance::Report>) -> Option<String> {
    r.as_ref().and_then(|r| r.run.forced_version.clone())
}

/// Real sonobuoy (built by `lab install`) against the lab. The lab has no DNS pods, so
/// sonobuoy's preflight refuses; with preflight skipped its aggregator pod never runs and
/// `run --wait` hits our bound. Either way the check aborts with sonobuoy's own words, and the
/// clean-up removes what the run made.
#[tokio::test]
async fn real_sonobuoy_against_the_lab_aborts_clearly_and_cleans_up() {
    use scs_e2e::checks::sonobuoy;
    let client = client().await;
    let kc = lab().kubeconfig().display().to_string();
    let bin = sonobuoy::find_binary(&[assets().bin_dir]).expect("lab install builds sonobuoy");
    let ok = include_str!("../../../fixtures/scs-standards/scs-sonobuoy-config-v1.yaml");
    let work = tempfile::tempdir().unwrap();
    let inv = |extra: &str| {
        let argv: Vec<String> = [
            "run",
            "-k",
            &kc,
            "--scs-sonobuoy-config",
            "c.yaml",
            "--execution-mode",
            "serial",
            "-c",
            "kaas-networking-check",
            "-a",
            extra,
        ]
        .map(String::from)
        .to_vec();
        sonobuoy::Invocation::from_script_args(&argv).unwrap()
    };

    let (o, _) = sonobuoy::run(
        &inv("--e2e-focus NetworkPolicy"),
        ok,
        work.path(),
        Some(bin.clone()),
        Duration::from_secs(60),
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(o.verdict, Verdict::Abort, "{o:?}");
    let m = &o.messages[0].1;
    assert!(
        m.starts_with("sonobuoy run --wait --e2e-focus NetworkPolicy failed (exit 1)") && m.contains("Preflight checks failed"),
        "{m}"
    );

    let (o, tests) = sonobuoy::run(
        &inv("--skip-preflight"),
        ok,
        work.path(),
        Some(bin.clone()),
        Duration::from_secs(8),
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(o.verdict, Verdict::Abort, "{o:?}");
    assert!(
        o.messages[0]
            .1
            .starts_with("sonobuoy run --wait --skip-preflight did not finish in time"),
        "{:?}",
        o.messages
    );
    assert!(tests.is_empty());
    let left = Api::<Namespace>::all(client.clone()).get_opt("sonobuoy").await.unwrap();
    assert!(
        left.is_none(),
        "`delete --wait` removed the sonobuoy namespace: {:?}",
        left.map(|n| n.status)
    );

    // Interrupted once sonobuoy has made its namespace, with an hour still to go: the run
    // stops at once, says so, and cleans up all the same.
    let cancel = CancellationToken::new();
    let watcher = {
        let (cancel, api) = (cancel.clone(), Api::<Namespace>::all(client.clone()));
        tokio::spawn(async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while std::time::Instant::now() < deadline {
                if api.get_opt("sonobuoy").await.ok().flatten().is_some() {
                    cancel.cancel();
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        })
    };
    let t0 = std::time::Instant::now();
    let (o, tests) = sonobuoy::run(
        &inv("--skip-preflight"),
        ok,
        work.path(),
        Some(bin),
        Duration::from_secs(3600),
        &cancel,
    )
    .await;
    assert!(watcher.await.unwrap(), "sonobuoy never made its namespace");
    assert_eq!(o.verdict, Verdict::Abort, "{o:?}");
    assert!(
        o.messages[0].1.starts_with("sonobuoy run --wait --skip-preflight was interrupted"),
        "{:?}",
        o.messages
    );
    assert!(tests.is_empty());
    assert!(
        t0.elapsed() < Duration::from_secs(600),
        "interrupted, not timed out: {:?}",
        t0.elapsed()
    );
    let left = Api::<Namespace>::all(client).get_opt("sonobuoy").await.unwrap();
    assert!(left.is_none(), "cleaned up after the interruption: {:?}", left.map(|n| n.status));
}

/// A version-policy mirror directory for the lab's version: releases of its branch published
/// `ages` days before now (the lab's own version 90 days ago), supported branches around it, and
/// the CVEs given as (id, score) affecting exactly the lab's version.
pub(crate) fn version_policy_mirror(newer_patch_age_days: Option<i64>, cves: &[(&str, f64)]) -> tempfile::TempDir {
    use serde_json::json;
    let lab = scs_e2e::env::lab::build::KUBERNETES_VERSION.trim_start_matches('v');
    let parts: Vec<u32> = lab.split('.').map(|p| p.parse().unwrap()).collect();
    let (minor, patch) = (parts[1], parts[2]);
    let now = chrono::Utc::now();
    let at = |days: i64| (now - chrono::TimeDelta::days(days)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut releases = vec![json!({"tag_name": format!("v{lab}"), "draft": false, "prerelease": false, "published_at": at(90)})];
    if let Some(age) = newer_patch_age_days {
        releases
            .push(json!({"tag_name": format!("v1.{minor}.{}", patch + 1), "draft": false, "prerelease": false, "published_at": at(age)}));
    }
    // Drafts and prereleases never count, however old.
    releases.push(json!({"tag_name": format!("v1.{minor}.{}", patch + 2), "draft": true, "prerelease": false, "published_at": at(80)}));
    releases
        .push(json!({"tag_name": format!("v1.{minor}.{}-rc.0", patch + 3), "draft": false, "prerelease": true, "published_at": at(80)}));
    let eol: String = (0..3)
        .map(|i| {
            format!(
                "- branch: '1.{}'\n  end-of-life: '{}'\n",
                minor + i,
                (now + chrono::TimeDelta::days(100 + 120 * i as i64)).format("%Y-%m-%d")
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("cve")).unwrap();
    std::fs::write(dir.path().join("k8s-eol-data.yml"), eol).unwrap();
    std::fs::write(dir.path().join("releases.json"), serde_json::to_vec(&releases).unwrap()).unwrap();
    let items: Vec<_> = cves.iter().map(|(id, _)| json!({"id": id})).collect();
    std::fs::write(
        dir.path().join("cve-feed.json"),
        serde_json::to_vec(&json!({"items": items})).unwrap(),
    )
    .unwrap();
    for (id, score) in cves {
        let record = json!({
            "cveMetadata": {"cveId": id},
            "containers": {"cna": {
                "metrics": [{"cvssV3_1": {"baseScore": score}}],
                "affected": [{"product": "Kubernetes", "versions": [{"version": lab, "status": "affected"}]}],
            }},
        });
        std::fs::write(
            dir.path().join("cve").join(format!("{id}.json")),
            serde_json::to_vec(&record).unwrap(),
        )
        .unwrap();
    }
    dir
}

/// `version-policy-check` end to end through `scs-e2e check`: the lab's real `/version`, offline
/// data from a mirror directory; the verdict follows the age of the newer patch and the CVEs.
#[test]
fn version_policy_check_reads_the_lab_version_and_a_mirror() {
    let lab_version = scs_e2e::env::lab::build::KUBERNETES_VERSION.trim_start_matches('v');
    let check = |mirror: &tempfile::TempDir| {
        let out_dir = tempfile::tempdir().unwrap();
        let yaml = out_dir.path().join("report.yaml");
        let out = std::process::Command::new(bin())
            .args(["check", "--subject", "lab", "-t", "^version-policy-check$", "--kubeconfig"])
            .arg(lab().kubeconfig())
            .arg("--version-policy-data")
            .arg(mirror.path())
            .arg("-o")
            .arg(&yaml)
            .arg("--junit")
            .arg(out_dir.path().join("junit.xml"))
            .current_dir(out_dir.path())
            .output()
            .unwrap();
        let report: scs_e2e::checks::compliance::Report = serde_saphyr::from_str(&std::fs::read_to_string(&yaml).unwrap()).unwrap();
        let inv = report.run.invocations.values().next().unwrap().clone();
        let result = scs_e2e::checks::compliance::results(&report)["version-policy-check"];
        (out.status.code(), result, inv.stderr.join("\n"))
    };

    // Only the lab's own patch (drafts and prereleases don't count): recent.
    let (code, result, stderr) = check(&version_policy_mirror(None, &[]));
    assert_eq!((code, result), (Some(0), 1), "{stderr}");
    // A newer patch, 20 days old: still within the 31 days.
    let (code, result, stderr) = check(&version_policy_mirror(Some(20), &[]));
    assert_eq!((code, result), (Some(0), 1), "{stderr}");
    // 40 days old: outdated, named in an ERROR line.
    let (code, result, stderr) = check(&version_policy_mirror(Some(40), &[]));
    assert_eq!(result, -1, "{stderr}");
    assert!(code.unwrap_or(0) >= 1, "{stderr}");
    assert!(stderr.contains(lab_version), "{stderr}");
    // A critical CVE on the lab's version: 5 days in, a warning naming both versions ...
    let (code, result, stderr) = check(&version_policy_mirror(Some(5), &[("CVE-2099-0001", 8.0)]));
    assert_eq!((code, result), (Some(0), 1), "{stderr}");
    assert!(stderr.contains(&format!("Consider updating from {lab_version} to")), "{stderr}");
    // ... 20 days in, a failure; a score under 8 changes nothing.
    let (_, result, stderr) = check(&version_policy_mirror(Some(20), &[("CVE-2099-0001", 9.1)]));
    assert_eq!(result, -1, "{stderr}");
    let (_, result, stderr) = check(&version_policy_mirror(Some(20), &[("CVE-2099-0001", 7.9)]));
    assert_eq!(result, 1, "{stderr}");
    // A mirror missing a file aborts with a CRITICAL line naming it.
    let broken = version_policy_mirror(None, &[]);
    std::fs::remove_file(broken.path().join("cve-feed.json")).unwrap();
    let (code, result, stderr) = check(&broken);
    assert_eq!(result, 0, "{stderr}");
    assert!(
        code.unwrap_or(0) >= 1 && stderr.contains("CRITICAL") && stderr.contains("cve-feed.json"),
        "{stderr}"
    );
}

/// The `runChecks` suite step with `versionPolicy: {data: ...}` (a run-time variable, resolved):
/// passes on a current mirror, fails naming the testcase on an outdated one.
#[tokio::test]
async fn run_checks_step_takes_the_version_policy_mirror() {
    use scs_e2e::steps::Operation;
    let client = client().await;
    let artifacts = tempfile::tempdir().unwrap();
    let step: scs_e2e::steps::checks::RunChecks = serde_json::from_value(serde_json::json!({
        "tests": "^version-policy-check$",
        "subject": "lab-step",
        "versionPolicy": {"data": "${MIRROR}"}
    }))
    .unwrap();
    for (mirror, passes) in [
        (version_policy_mirror(None, &[]), true),
        (version_policy_mirror(Some(45), &[]), false),
    ] {
        let mut ctx = step_ctx(lab(), client.clone(), "default", Duration::from_secs(60));
        ctx.artifacts = artifacts.path().to_path_buf();
        ctx.vars.insert("MIRROR".into(), mirror.path().display().to_string());
        let got = step.run(&ctx).await;
        assert_eq!(got.is_ok(), passes, "{got:?}");
        if let Err(e) = got {
            assert!(e.message.contains("version-policy-check: FAIL"), "{}", e.message);
        }
        assert!(artifacts.path().join("lab-step-compliance.yaml").exists());
    }
}

/// `runChecks` checks the cluster it is given, with every check: here a ServiceAccount with no
/// rights on the lab's API server. Version policy reads `/version` (open to every user) and
/// names the version in the compliance YAML; node distribution may not list nodes and ABORTs
/// naming the account. The same step against the environment's (admin) kubeconfig lists the
/// nodes. And `assign.kubeconfig` pointing at a server that is not there makes both ABORT.
#[tokio::test]
async fn run_checks_step_checks_the_cluster_of_its_kubeconfig_with_every_check() {
    use scs_e2e::steps::Operation;
    let client = client().await;
    let lab = lab();
    let kubectl = assets().path("kubectl");
    let k = |args: &[&str]| -> String {
        let o = std::process::Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(lab.kubeconfig())
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let sa = format!("no-rights-{}", std::process::id());
    k(&["-n", "default", "create", "serviceaccount", &sa]);
    let token = k(&["-n", "default", "create", "token", &sa]);
    let admin: serde_json::Value = serde_saphyr::from_str(&std::fs::read_to_string(lab.kubeconfig()).unwrap()).unwrap();
    let cluster = &admin["clusters"][0]["cluster"];
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = |name: &str, server: &str| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: '{server}', certificate-authority-data: {}}}\nusers:\n- name: u\n  user: {{token: {token}}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
                cluster["certificate-authority-data"].as_str().unwrap()
            ),
        )
        .unwrap();
        p
    };
    let weak = kubeconfig("weak.kubeconfig", cluster["server"].as_str().unwrap());
    // Nothing listens on port 9 of loopback.
    let gone = kubeconfig("gone.kubeconfig", "https://127.0.0.1:9");
    let mirror = version_policy_mirror(None, &[]);
    let version = client.apiserver_version().await.unwrap().git_version;
    let version = version.trim_start_matches('v').split(['-', '+']).next().unwrap().to_string();

    let artifacts = tempfile::tempdir().unwrap();
    let art = artifacts.path().to_path_buf();
    let run = |step: serde_json::Value| {
        let step: scs_e2e::steps::checks::RunChecks = serde_json::from_value(step).unwrap();
        step.validate().unwrap();
        let mut ctx = step_ctx(lab, client.clone(), "default", Duration::from_secs(60));
        ctx.artifacts = art.clone();
        let art = art.clone();
        ctx.vars.insert("MIRROR".into(), mirror.path().display().to_string());
        ctx.vars.insert("WEAK".into(), weak.display().to_string());
        async move {
            let got = step.run(&ctx).await;
            let subject = step.subject.clone().unwrap();
            let yaml = std::fs::read_to_string(art.join(format!("{subject}-compliance.yaml"))).unwrap();
            (got, yaml)
        }
    };
    let both = "^(version-policy-check|node-distribution-check)$";

    let (got, yaml) = run(serde_json::json!({
        "tests": both, "subject": "weak", "kubeconfig": "${WEAK}", "versionPolicy": {"data": "${MIRROR}"}
    }))
    .await;
    let e = got.expect_err("node distribution cannot list nodes");
    assert!(e.message.contains("node-distribution-check: ABORT"), "{}", e.message);
    assert!(!e.message.contains("version-policy-check"), "version policy passed: {}", e.message);
    assert!(yaml.contains("cannot list nodes") && yaml.contains(&sa), "{yaml}");
    assert!(yaml.contains(&format!("The K8s cluster version {version} ")), "{yaml}");

    // The environment's kubeconfig may list nodes: whatever the verdict, no ABORT.
    let (got, yaml) = run(serde_json::json!({
        "tests": "^node-distribution-check$", "subject": "admin"
    }))
    .await;
    assert!(!yaml.contains("cannot list nodes"), "{got:?}\n{yaml}");

    let (got, yaml) = run(serde_json::json!({
        "tests": both, "subject": "gone", "assign": {"kubeconfig": gone.display().to_string()},
        "versionPolicy": {"data": "${MIRROR}"}
    }))
    .await;
    let e = got.expect_err("nothing to check");
    assert!(
        e.message.contains("node-distribution-check: ABORT") && e.message.contains("version-policy-check: ABORT"),
        "{}",
        e.message
    );
    assert!(yaml.contains("cannot read /version"), "{yaml}");
    assert!(!yaml.contains(&token), "the token stays out of the report");

    // A spec script gets the same cluster as `{kubeconfig}`.
    let spec_dir = dir.path().join("spec");
    std::fs::create_dir_all(&spec_dir).unwrap();
    let probe = spec_dir.join("probe.sh");
    std::fs::write(&probe, "#!/bin/sh\necho \"INFO: checking $2\" >&2\necho \"probe: PASS\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        spec_dir.join("spec.yaml"),
        "name: t\nuuid: u-1\nurl: https://example.com\nvariables: [kubeconfig]\nscripts:\n- executable: ./probe.sh\n  args: -k {kubeconfig}\n  testcases:\n  - {id: probe, description: A probe.}\nmodules:\n- {id: m, name: M, targets: {main: [probe]}}\ntimeline:\n- {date: 2024-01-01, versions: {v1: effective}}\nversions:\n- {version: v1, include: [m]}\n",
    )
    .unwrap();
    let (got, yaml) = run(serde_json::json!({
        "spec": spec_dir.join("spec.yaml").display().to_string(), "subject": "script", "kubeconfig": "${WEAK}"
    }))
    .await;
    assert!(got.is_ok(), "{got:?}\n{yaml}");
    assert!(yaml.contains(&format!("checking {}", weak.display())), "{yaml}");

    let twice: scs_e2e::steps::checks::RunChecks =
        serde_json::from_value(serde_json::json!({"kubeconfig": "a", "assign": {"kubeconfig": "b"}})).unwrap();
    assert!(twice.validate().unwrap_err().to_string().contains("given twice"));
    k(&["-n", "default", "delete", "serviceaccount", &sa]);
}

/// A real API server of another version — the lab's kube-apiserver linked again, stamped
/// v1.32.9 (its Go cache is warm: only the link runs) — beside the shared lab's v1.33.13:
/// `runChecks` with its kubeconfig checks that cluster, and the compliance YAML names its
/// version, not the environment's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_checks_names_the_version_of_the_cluster_it_is_given() {
    use scs_e2e::steps::Operation;
    let client = client().await;
    let lab = lab();
    let opts = lab_options("other-version");
    // The relinked binary (~100 MB) goes with the test.
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = bin_dir.path().join("bin");
    let lab_assets = assets();
    let (b, a) = (bin.clone(), lab_assets.clone());
    tokio::task::spawn_blocking(move || scs_e2e::env::lab::build::build_with_version(&a, "kube-apiserver", "v1.32.9", &b))
        .await
        .unwrap()
        .unwrap();
    for e in std::fs::read_dir(&lab_assets.bin_dir).unwrap().flatten() {
        if e.file_name() != "kube-apiserver" {
            std::os::unix::fs::symlink(e.path(), bin.join(e.file_name())).unwrap();
        }
    }
    let mut opts = opts;
    opts.assets = scs_e2e::env::lab::build::Assets::locate(Some(bin), None);
    let other = scs_e2e::env::lab::Lab::start(opts).await.unwrap();
    let other_client = scs_e2e::kube::client_from_kubeconfig(&other.kubeconfig()).await.unwrap();
    assert_eq!(other_client.apiserver_version().await.unwrap().git_version, "v1.32.9");

    let mirror = version_policy_mirror(None, &[]);
    let artifacts = tempfile::tempdir().unwrap();
    for (subject, kubeconfig, version, not) in [
        ("other", Some(other.kubeconfig()), "1.32.9", "1.33.13"),
        ("env", None, "1.33.13", "1.32.9"),
    ] {
        let mut step = serde_json::json!({"tests": "^version-policy-check$", "subject": subject, "versionPolicy": {"data": "${MIRROR}"}});
        if let Some(k) = &kubeconfig {
            step["kubeconfig"] = serde_json::json!(k.display().to_string());
        }
        let step: scs_e2e::steps::checks::RunChecks = serde_json::from_value(step).unwrap();
        let mut ctx = step_ctx(lab, client.clone(), "default", Duration::from_secs(60));
        ctx.artifacts = artifacts.path().to_path_buf();
        ctx.vars.insert("MIRROR".into(), mirror.path().display().to_string());
        let _ = step.run(&ctx).await;
        let yaml = std::fs::read_to_string(artifacts.path().join(format!("{subject}-compliance.yaml"))).unwrap();
        assert!(
            yaml.contains(&format!("The K8s cluster version {version} ")) && !yaml.contains(not),
            "{subject}: {yaml}"
        );
    }
}
