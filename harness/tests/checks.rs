//! SCS checks against the lab's real API server: Node objects, StorageClasses, claims, pods
//! (which never run in the lab: no scheduler, no kubelet) and `/version`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use scs_e2e::checks::{Verdict, node_distribution, storage_class};

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

    let o = storage_class::run(&client, Duration::from_secs(2)).await;
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
    let o = storage_class::run(&client, Duration::from_secs(2)).await;
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
    let report: scs_e2e::checks::runner::Report = serde_saphyr::from_str(&std::fs::read_to_string(&yaml).unwrap()).unwrap();
    assert_eq!(report.subject, "lab");
    assert_eq!(report.spec.uuid, "1fffebe6-fd4b-44d3-a36c-fc58b4bb0180");
    assert_eq!(
        scs_e2e::checks::runner::results(&report),
        BTreeMap::from([("node-distribution-check".to_string(), -1)])
    );
    let j = quick_junit::Report::deserialize_from_str(&std::fs::read_to_string(&junit).unwrap()).unwrap();
    assert_eq!((j.tests, j.failures), (1, 1));
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
    let ok = include_str!("../../fixtures/scs-standards/scs-sonobuoy-config-v1.yaml");
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
    )
    .await;
    assert_eq!(o.verdict, Verdict::Abort, "{o:?}");
    let m = &o.messages[0].1;
    assert!(
        m.starts_with("sonobuoy run --wait --e2e-focus NetworkPolicy failed (exit 1)") && m.contains("Preflight checks failed"),
        "{m}"
    );

    let (o, tests) = sonobuoy::run(&inv("--skip-preflight"), ok, work.path(), Some(bin), Duration::from_secs(8)).await;
    assert_eq!(o.verdict, Verdict::Abort, "{o:?}");
    assert!(
        o.messages[0]
            .1
            .starts_with("sonobuoy run --wait --skip-preflight did not finish in time"),
        "{:?}",
        o.messages
    );
    assert!(tests.is_empty());
    let left = Api::<Namespace>::all(client).get_opt("sonobuoy").await.unwrap();
    assert!(
        left.is_none(),
        "`delete --wait` removed the sonobuoy namespace: {:?}",
        left.map(|n| n.status)
    );
}
