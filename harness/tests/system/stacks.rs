//! The Cluster Stacks lifecycle against real Cluster API and CSO in the lab: the quickstart suite
//! through the CLI (the upgrade suite runs as `cargo test --test suites -- upgrade::`), and each
//! failure path ending in a clear message with artifacts.
//! Cluster API labs run one at a time per machine (CSO and CAPD fix two ports); these tests
//! queue on that lock.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{assets, bin, lab_options};
use scs_e2e::report::Status;

fn suites() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../suites")
}

/// `run --env lab` with its own state directory; returns (exit code, stderr).
fn run_lab(suite: &Path, art: &Path, state: &Path) -> (i32, String) {
    let out = Command::new(bin())
        // Owned by the run: the lab dies with it whatever happens (a kept lab would hold the
        // Cluster API layer's fixed ports for the next test).
        .args(["run", "--env", "lab", "--delete", "always", "--suite"])
        .arg(suite)
        .arg("--artifacts")
        .arg(art)
        .env("XDG_STATE_HOME", state)
        .env("SCS_E2E_LAB_BIN_DIR", assets().bin_dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// No process mentions the run's state directory (every lab process has a path under it).
fn processes_under(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&needle))
        .collect()
}

fn step_log(art: &Path, scenario: &str) -> String {
    let dir = art.join(scenario).join("steps");
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    logs.sort();
    logs.iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn quickstart_runs_the_stack_lifecycle_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (art, state) = (dir.path().join("out"), dir.path().join("state"));
    let (code, err) = run_lab(&suites().join("quickstart.yaml"), &art, &state);
    assert_eq!(code, 0, "{err}");
    let r = scs_e2e::report::json::read(&art.join("results.json")).unwrap();
    assert_eq!(r.scenarios.len(), 1);
    assert_eq!(r.scenarios[0].status, Status::Passed);
    assert_eq!(r.properties["cluster_api_version"], scs_e2e::env::lab::build::CLUSTER_API_VERSION);
    let steps: Vec<&str> = r.scenarios[0].steps.iter().map(|s| s.operation.as_str()).collect();
    assert_eq!(
        steps,
        [
            "installClusterStack",
            "waitClusterStackRelease",
            "createCluster",
            "waitCluster",
            "command",
            "deleteCluster",
            "deleteClusterStack"
        ]
    );
    let log = step_log(&art, "quickstart/cluster-stack-lifecycle");
    assert!(log.contains("ClusterClass inmemory-scs-1-33-v1"), "{log}");
    assert!(log.contains("ClusterAddon cluster-addon-quickstart created"), "{log}");
    assert!(art.join("junit_scs-e2e.xml").is_file());
    // The workload kubeconfig is a secret: used by the command step, never in the artifacts.
    for f in walk(&art) {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        assert!(
            !text.contains("client-key-data") && !text.contains("PRIVATE KEY"),
            "{f} holds a secret"
        );
    }
    assert!(processes_under(&state).is_empty(), "{:?}", processes_under(&state));
    assert!(!state.join("scs-e2e").exists() || std::fs::read_dir(state.join("scs-e2e")).unwrap().next().is_none());
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

const NEGATIVE: &str = r#"apiVersion: scs-e2e/v1alpha1
kind: Suite
name: negative
vars:
  STACK_SOURCE: builtin:inmemory/scs
scenarios:
  - name: missing-assets
    steps:
      - installClusterStack: {provider: inmemory, name: scs, kubernetesVersion: "1.33", versions: [v7]}
      - timeout: 1m
        waitClusterStackRelease: {provider: inmemory, name: scs, kubernetesVersion: "1.33", version: v7}
    onFailure:
      - clusterApi: {}
  - name: wrong-topology-version
    steps:
      - installClusterStack: {provider: inmemory, name: scs, kubernetesVersion: "1.33", versions: [v1], source: "${STACK_SOURCE}"}
      - timeout: 2m
        waitClusterStackRelease: {provider: inmemory, name: scs, kubernetesVersion: "1.33", version: v1}
      - createCluster:
          name: wrong
          stack: {provider: inmemory, name: scs, kubernetesVersion: "1.33", version: v1}
          topologyVersion: v1.33.99
    onFailure:
      - clusterApi: {}
  - name: blocking-hook
    steps:
      - installClusterStack: {provider: inmemory, name: scs, kubernetesVersion: "1.33", versions: [v1, v2], source: "${STACK_SOURCE}"}
      - timeout: 2m
        waitClusterStackRelease: {provider: inmemory, name: scs, kubernetesVersion: "1.33", version: v1}
      - createCluster:
          name: hooked
          stack: {provider: inmemory, name: scs, kubernetesVersion: "1.33", version: v1}
          workers: 0
      - timeout: 3m
        waitCluster: {name: hooked, addons: skip}
      - name: register CSO's runtime hooks
        apply: {file: "${CSO_HOOKS_MANIFEST}"}
      - name: the hooks are discovered
        timeout: 1m
        wait:
          resource: {apiVersion: runtime.cluster.x-k8s.io/v1alpha1, kind: ExtensionConfig, name: cso-hooks}
          condition: Discovered
      - timeout: 3m
        upgradeCluster: {name: hooked, version: v2, hookTimeout: 20s, addons: skip}
    onFailure:
      - clusterApi: {}
      - environmentLogs: {}
"#;

#[test]
fn each_failure_path_ends_with_a_clear_message_and_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("negative.yaml");
    std::fs::write(&suite, NEGATIVE).unwrap();
    let (art, state) = (dir.path().join("out"), dir.path().join("state"));
    let (code, err) = run_lab(&suite, &art, &state);
    assert_eq!(code, 1, "{err}");
    let r = scs_e2e::report::json::read(&art.join("results.json")).unwrap();
    let failure = |name: &str| -> String {
        let sc = r.scenarios.iter().find(|s| s.name == name).unwrap();
        assert_eq!(sc.status, Status::Failed, "{name}");
        sc.steps.iter().filter_map(|s| s.message.clone()).collect::<Vec<_>>().join("\n")
    };
    let m = failure("missing-assets");
    assert!(
        m.contains("release assets not found") && m.contains("/releases/cluster-stacks/inmemory-scs-1-33-v7 "),
        "{m}"
    );
    let m = failure("wrong-topology-version");
    assert!(m.contains("v1.33.99"), "{m}");
    let m = failure("blocking-hook");
    assert!(m.contains("BeforeClusterUpgrade"), "{m}");
    for sc in ["missing-assets", "wrong-topology-version", "blocking-hook"] {
        let d = art.join("negative").join(sc);
        let files = walk(&d);
        assert!(
            files.iter().any(|f| f.contains("cluster-api") || f.contains("clusterstack")),
            "{sc}: {files:?}"
        );
    }
    assert!(processes_under(&state).is_empty());
}

#[test]
fn bad_stack_names_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "provider",
            r#"{provider: In-Memory, name: scs, kubernetesVersion: "1.33", versions: [v1]}"#,
            "In-Memory",
        ),
        (
            "minor",
            r#"{provider: inmemory, name: scs, kubernetesVersion: "v1.33", versions: [v1]}"#,
            "v1.33",
        ),
        (
            "version",
            r#"{provider: inmemory, name: scs, kubernetesVersion: "1.33", versions: ["1.0"]}"#,
            "1.0",
        ),
    ];
    let mut files = Vec::new();
    for (name, step, _) in cases {
        let f = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &f,
            format!("apiVersion: scs-e2e/v1alpha1\nkind: Suite\nname: {name}\nscenarios:\n  - name: s\n    steps:\n      - installClusterStack: {step}\n"),
        )
        .unwrap();
        files.push(f);
    }
    let out = Command::new(bin()).arg("validate").args(&files).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for (name, _, bad) in cases {
        assert!(err.contains(&format!("{name}.yaml:7:")) && err.contains(bad), "{name}: {err}");
    }
    // `run` refuses such a file without starting a lab.
    let state = dir.path().join("state");
    let (code, err) = run_lab(&files[0], &dir.path().join("out"), &state);
    assert_eq!(code, 2, "{err}");
    assert!(!state.exists(), "a lab was started for an invalid suite");
}

/// Kills the kubeadm control-plane provider once the upgrade patch is in: the step must time
/// out naming the machines that were never replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_stopped_mid_upgrade_fails_the_upgrade_naming_the_stuck_machines() {
    let mut opts = lab_options("capi-fault");
    opts.cluster_api = true;
    let lab = scs_e2e::env::lab::Lab::start(opts).await.unwrap();
    let client = common::client_for(&lab).await;
    let ns = common::namespace(&client, "fault").await;
    let mut ctx = common::step_ctx(&lab, client.clone(), &ns, Duration::from_secs(180));
    ctx.vars
        .insert("CSO_RELEASE_DIR".into(), lab.release_dir().unwrap().display().to_string());
    let step = |y: &str| -> scs_e2e::suite::model::Step { serde_saphyr::from_str(y).unwrap() };
    for y in [
        r#"installClusterStack: {provider: inmemory, name: scs, kubernetesVersion: "1.33", versions: [v1, v2], source: "builtin:inmemory/scs"}"#,
        r#"waitClusterStackRelease: {provider: inmemory, name: scs, kubernetesVersion: "1.33", version: v1}"#,
        r#"waitClusterStackRelease: {provider: inmemory, name: scs, kubernetesVersion: "1.33", version: v2}"#,
        r#"createCluster: {name: fault, stack: {provider: inmemory, name: scs, kubernetesVersion: "1.33", version: v1}, workers: 0}"#,
        r#"waitCluster: {name: fault, addons: skip}"#,
    ] {
        step(y).op.operation().run(&ctx).await.unwrap_or_else(|e| panic!("{y}: {e:?}"));
    }
    let mut ctx = ctx.clone();
    ctx.deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let upgrade = step(r#"upgradeCluster: {name: fault, version: v2, addons: skip}"#);
    // Mid-upgrade: once the upgrade patch is in, the control-plane provider goes away.
    let clusters = ctx.resolver.api("cluster.x-k8s.io/v1beta1", "Cluster", &ns).await.unwrap();
    let stop = async {
        scs_e2e::kube::wait_until(
            clusters,
            &scs_e2e::kube::Target::Name("fault".into()),
            ctx.deadline,
            |objs| match objs
                .get("fault")
                .and_then(|c| c.data.pointer("/spec/topology/class")?.as_str().map(String::from))
            {
                Some(c) if c == "inmemory-scs-1-33-v2" => scs_e2e::kube::Verdict::Done,
                other => scs_e2e::kube::Verdict::Pending(format!("class {other:?}")),
            },
        )
        .await
        .unwrap();
        lab.kill("kubeadm-control-plane").await;
    };
    let (result, ()) = tokio::join!(upgrade.op.operation().run(&ctx), stop);
    let e = result.unwrap_err();
    let msg = format!("{e:?}");
    assert!(msg.contains("timed out") && msg.contains("old machines left: [fault-"), "{msg}");
    lab.stop().await.unwrap();
}

/// The objects openstack-csp-helper would create are accepted by the API server and Cluster
/// API's webhooks (the ClusterResourceSet is validated by the core manager).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_credential_objects_are_accepted_by_cluster_api() {
    use kube::api::{Api, DynamicObject, Patch, PatchParams};
    use scs_e2e::env::openstack::{clouds, secrets};
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("clouds.yaml"),
        "clouds:\n  gx:\n    auth_type: v3applicationcredential\n    auth: {auth_url: 'https://api.example:5000/v3', application_credential_id: id1, application_credential_secret: s}\n",
    )
    .unwrap();
    let cloud = clouds::load(&clouds::Lookup {
        cwd: d.path().to_path_buf(),
        etc: d.path().join("none"),
        ..Default::default()
    })
    .unwrap();
    let mut opts = lab_options("capi-openstack");
    opts.cluster_api = true;
    let lab = scs_e2e::env::lab::Lab::start(opts).await.unwrap();
    let client = common::client_for(&lab).await;
    let ns = common::namespace(&client, "openstack").await;
    let resolver = scs_e2e::kube::Resolver::new(client.clone());
    for o in secrets::objects(&cloud, &secrets::Naming::scs("gx"), &ns, None) {
        let (av, kind, name) = (
            o["apiVersion"].as_str().unwrap(),
            o["kind"].as_str().unwrap(),
            o["metadata"]["name"].as_str().unwrap(),
        );
        let api: Api<DynamicObject> = resolver.api(av, kind, &ns).await.unwrap();
        api.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&o))
            .await
            .unwrap_or_else(|e| panic!("{kind} {name}: {e}"));
    }
    let crs = resolver
        .api("addons.cluster.x-k8s.io/v1beta1", "ClusterResourceSet", &ns)
        .await
        .unwrap();
    let got = crs.get("crs-gx-secret").await.unwrap();
    assert_eq!(got.data["spec"]["clusterSelector"]["matchLabels"]["managed-secret"], "cloud-config");
    lab.stop().await.unwrap();
}

/// CSPO's three kinds, registered with open schemas: the Go module proxy refuses the
/// cluster-stack-provider-openstack module (403 for every tag), so its generated CRDs cannot be
/// fetched here. The API server, CSO and our code are real; the test plays CSPO's part.
fn cspo_crd(kind: &str, plural: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.infrastructure.clusterstack.x-k8s.io")},
        "spec": {"group": "infrastructure.clusterstack.x-k8s.io", "scope": "Namespaced",
                 "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind},
                 "versions": [{"name": "v1alpha1", "served": true, "storage": true, "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    })
}

/// The legacy OpenStack path: the ClusterStack's providerRef names the template this step made
/// (real CSO turns it into an OpenStackClusterStackRelease); a node image whose import timed
/// out fails the release wait at once, naming the image; an active one lets the release through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cspo_releases_wait_for_their_node_images_and_fail_on_an_import_timeout() {
    use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
    let mut opts = lab_options("capi-cspo");
    opts.cluster_api = true;
    let lab = scs_e2e::env::lab::Lab::start(opts).await.unwrap();
    let client = common::client_for(&lab).await;
    let resolver = scs_e2e::kube::Resolver::new(client.clone());
    let crds = resolver
        .api("apiextensions.k8s.io/v1", "CustomResourceDefinition", "")
        .await
        .unwrap();
    for (kind, plural) in [
        ("OpenStackClusterStackReleaseTemplate", "openstackclusterstackreleasetemplates"),
        ("OpenStackClusterStackRelease", "openstackclusterstackreleases"),
        ("OpenStackNodeImageRelease", "openstacknodeimagereleases"),
    ] {
        let crd: DynamicObject = serde_json::from_value(cspo_crd(kind, plural)).unwrap();
        crds.create(&PostParams::default(), &crd).await.unwrap();
        scs_e2e::kube::wait_crd_established(
            crds.clone(),
            &format!("{plural}.infrastructure.clusterstack.x-k8s.io"),
            tokio::time::Instant::now() + Duration::from_secs(30),
        )
        .await
        .unwrap();
    }
    let ns = common::namespace(&client, "cspo").await;
    let mut ctx = common::step_ctx(&lab, client.clone(), &ns, Duration::from_secs(60));
    ctx.vars
        .insert("CSO_RELEASE_DIR".into(), lab.release_dir().unwrap().display().to_string());
    ctx.vars.insert("OPENSTACK_SECRET_NAME".into(), "gx".into());
    let step = |y: &str| -> scs_e2e::suite::model::Step { serde_saphyr::from_str(y).unwrap() };
    // Our in-memory stack, named as an OpenStack one (the image import is what is tested).
    let src = tempfile::tempdir().unwrap();
    scs_e2e::base::copy_tree(&scs_e2e::stack::builtin::materialize("inmemory/scs").unwrap(), src.path()).unwrap();
    let mut dirs = vec![src.path().to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                dirs.push(e.path());
            } else {
                let text = std::fs::read_to_string(e.path()).unwrap();
                let renamed = text
                    .replace("provider: inmemory", "provider: openstack")
                    .replace("type: inmemory", "type: openstack")
                    .replace("inmemory-scs-", "openstack-scs-");
                std::fs::write(e.path(), renamed).unwrap();
            }
        }
    }
    step(&format!(
        r#"installClusterStack: {{provider: openstack, name: scs, kubernetesVersion: "1.33", versions: [v1], noProvider: false, source: "{}"}}"#,
        src.path().display()
    ))
    .op
        .operation()
        .run(&ctx)
        .await
        .unwrap();
    let template = resolver
        .api(scs_e2e::stack::cspo::GROUP_VERSION, "OpenStackClusterStackReleaseTemplate", &ns)
        .await
        .unwrap()
        .get("openstack-scs-1-33-cspo")
        .await
        .unwrap();
    assert_eq!(
        template.data["spec"]["template"]["spec"]["identityRef"],
        serde_json::json!({"kind": "Secret", "name": "gx"})
    );

    // CSO makes the provider release from the template; CSPO (the test) one image release.
    let releases: Api<DynamicObject> = resolver
        .api(scs_e2e::stack::cspo::GROUP_VERSION, "OpenStackClusterStackRelease", &ns)
        .await
        .unwrap();
    let release = scs_e2e::kube::wait_until(
        releases.clone(),
        &scs_e2e::kube::Target::Name("openstack-scs-1-33-v1".into()),
        tokio::time::Instant::now() + Duration::from_secs(60),
        |o| match o.is_empty() {
            true => scs_e2e::kube::Verdict::Pending("CSO has not made the OpenStackClusterStackRelease".into()),
            false => scs_e2e::kube::Verdict::Done,
        },
    )
    .await
    .unwrap()
    .remove("openstack-scs-1-33-v1")
    .unwrap();
    let images: Api<DynamicObject> = resolver
        .api(scs_e2e::stack::cspo::GROUP_VERSION, "OpenStackNodeImageRelease", &ns)
        .await
        .unwrap();
    let osnir: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": scs_e2e::stack::cspo::GROUP_VERSION, "kind": "OpenStackNodeImageRelease",
        "metadata": {"name": "ubuntu-capi-image-v1.33.5", "namespace": ns,
                     "ownerReferences": [{"apiVersion": scs_e2e::stack::cspo::GROUP_VERSION, "kind": "OpenStackClusterStackRelease",
                                          "name": "openstack-scs-1-33-v1", "uid": release.metadata.uid.clone().unwrap()}]},
        "spec": {"identityRef": {"kind": "Secret", "name": "gx"},
                 "image": {"url": "https://images.example/ubuntu-capi-image-v1.33.5.qcow2", "createOpts": {"name": "ubuntu-capi-image-v1.33.5"}}}
    }))
    .unwrap();
    images.create(&PostParams::default(), &osnir).await.unwrap();
    let status = |active: &str, reason: &str, ready: bool| {
        serde_json::json!({"status": {"ready": ready, "conditions": [{"type": "OpenStackImageActive", "status": active, "reason": reason,
            "severity": if active == "True" { "" } else { "Error" },
            "message": "timeout - wait for the image ubuntu-capi-image-v1.33.5 to transition to the ACTIVE status exceeds the timeout duration 30 minutes",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
    };
    images
        .patch_status(
            "ubuntu-capi-image-v1.33.5",
            &PatchParams::default(),
            &Patch::Merge(&status("False", "OpenStackImageImportTimeOutReason", false)),
        )
        .await
        .unwrap();

    let wait = step(r#"waitClusterStackRelease: {provider: openstack, name: scs, kubernetesVersion: "1.33", version: v1}"#);
    let t0 = std::time::Instant::now();
    let e = wait.op.operation().run(&ctx).await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(30), "failed at once, not at the deadline");
    assert_eq!(
        e.message,
        "release openstack-scs-1-33-v1: node image import failed: OpenStackNodeImageRelease ubuntu-capi-image-v1.33.5 (image ubuntu-capi-image-v1.33.5): OpenStackImageActive=False, OpenStackImageImportTimeOutReason: timeout - wait for the image ubuntu-capi-image-v1.33.5 to transition to the ACTIVE status exceeds the timeout duration 30 minutes"
    );

    // The image becomes active and CSPO marks its release ready: CSO's release follows.
    images
        .patch_status(
            "ubuntu-capi-image-v1.33.5",
            &PatchParams::default(),
            &Patch::Merge(&status("True", "", true)),
        )
        .await
        .unwrap();
    releases
        .patch_status(
            "openstack-scs-1-33-v1",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"status": {"ready": true}})),
        )
        .await
        .unwrap();
    wait.op.operation().run(&ctx).await.unwrap_or_else(|e| panic!("{e:?}"));
    lab.stop().await.unwrap();
}
