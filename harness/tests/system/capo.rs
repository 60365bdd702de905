//! CAPO and ORC for real: the lab (Cluster API, CSO, and the OpenStack layer: CAPO v0.12 and
//! ORC built from their Go modules) as the management cluster, against the real OpenStack
//! services of `fixtures/openstack`. `scs-e2e run --env openstack` runs the `openstack` suite's
//! `infrastructure` scenario with the SCS OpenStack stack: ORC imports the stack's node image
//! into Glance, CAPO makes the network, subnet, router, security groups, the API server's load
//! balancer with its floating IP and the control plane's server, and removes them all when the
//! cluster is deleted; the leak check afterwards must find nothing. The servers run on Nova's
//! fake hypervisor, so no node ever joins (the suite says so).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::openstack_services;
use scs_e2e::env::lab::build;
use scs_e2e::env::openstack::clouds::{Lookup, load};
use scs_e2e::env::openstack::identity::Session;
use scs_e2e::report::{RunReport, Status};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// A copy of the upstream OpenStack stack snapshot whose node image ORC fetches from `url`
/// (checked against `sha256`). The format becomes raw: Glance inspects what is uploaded, and
/// our stand-in image is zeros, not a qcow2 file.
fn stack_copy(dest: &Path, url: &str, sha256: &str) {
    let src = fixtures().join("cluster-stacks/upstream/openstack-scs");
    let out = Command::new("cp").arg("-r").arg(&src).arg(dest).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let image = dest.join("cluster-class/templates/image.yaml");
    let text = std::fs::read_to_string(&image).unwrap();
    let mut lines = Vec::new();
    for l in text.lines() {
        let t = l.trim_start();
        let indent = &l[..l.len() - t.len()];
        lines.push(if t.starts_with("url: ") {
            format!("{indent}url: {url}")
        } else if t.starts_with("value: ") {
            format!("{indent}value: {sha256}")
        } else if t.starts_with("diskFormat: ") {
            format!("{indent}diskFormat: raw")
        } else {
            l.to_string()
        });
    }
    let changed = lines.join("\n") + "\n";
    assert_eq!(changed.matches("127.0.0.1").count(), 1, "{changed}");
    assert!(changed.contains(sha256) && changed.contains("diskFormat: raw"), "{changed}");
    std::fs::write(&image, changed).unwrap();
}

/// The fixture's member cloud (an application credential), renamed `openstack`: the SCS stack's
/// ORC Image names its credentials `openstack`/`openstack` in the chart's values.
fn member_clouds_yaml(fixture: &Path) -> String {
    let v: Value = serde_saphyr::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let cloud = v["clouds"]["scs-e2e"].clone();
    assert!(cloud.is_object(), "the fixture's clouds.yaml has scs-e2e: {}", fixture.display());
    serde_json::to_string_pretty(&serde_json::json!({"clouds": {"openstack": cloud}})).unwrap()
}

async fn get_json(s: &Session, url: &str) -> Result<Value, String> {
    let r = s.get(url).await.map_err(|e| e.to_string())?;
    let status = r.status();
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(v)
    } else {
        Err(format!("GET {url}: {status} {v}"))
    }
}

/// Names of what the admin sees in the cloud (every project): networks, routers, security
/// groups, ports, floating IPs, load balancers and servers.
async fn cloud_names(admin: &Session) -> Vec<String> {
    let mut names = Vec::new();
    let network = admin.endpoint("network").unwrap();
    for (path, key) in [
        ("v2.0/networks", "networks"),
        ("v2.0/routers", "routers"),
        ("v2.0/security-groups", "security_groups"),
        ("v2.0/ports", "ports"),
        ("v2.0/floatingips", "floatingips"),
    ] {
        let v: Value = get_json(admin, &format!("{network}/{path}")).await.unwrap();
        for r in v[key].as_array().unwrap() {
            names.push(format!(
                "{key} {} {}",
                r["name"].as_str().unwrap_or(""),
                r["description"].as_str().unwrap_or("")
            ));
        }
    }
    let lb = admin.endpoint("load-balancer").unwrap();
    let v: Value = get_json(admin, &format!("{lb}/v2/lbaas/loadbalancers")).await.unwrap();
    for r in v["loadbalancers"].as_array().unwrap() {
        names.push(format!("loadbalancer {}", r["name"].as_str().unwrap_or("")));
    }
    let compute = admin.endpoint("compute").unwrap();
    let v: Value = get_json(admin, &format!("{compute}/servers?all_tenants=1")).await.unwrap();
    for r in v["servers"].as_array().unwrap() {
        names.push(format!("server {}", r["name"].as_str().unwrap_or("")));
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capo_makes_and_removes_a_clusters_infrastructure_on_real_openstack_services() {
    let assets = common::assets();
    let built = tokio::task::spawn_blocking({
        let a = assets.clone();
        move || {
            build::OPENSTACK
                .iter()
                .try_for_each(|c| build::ensure(&a, c, &build::Quiet).map(drop))
        }
    })
    .await
    .unwrap();
    built.expect("CAPO and ORC built from their Go modules");
    let cloud = openstack_services::start().await;

    let mut opts = common::lab_options("capo");
    opts.cluster_api = true;
    opts.openstack = true;
    let lab = scs_e2e::env::lab::Lab::start(opts).await.unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("clouds.yaml"), member_clouds_yaml(&cloud.clouds_yaml)).unwrap();
    std::fs::write(
        work.join("config.yaml"),
        format!(
            "apiVersion: scs-e2e/v1alpha1\nkind: Config\nopenstack:\n  managementKubeconfig: {}\nmanagement:\n  csoReleaseDir: {}\n",
            lab.kubeconfig().display(),
            lab.release_dir().unwrap().display()
        ),
    )
    .unwrap();

    // The node image: 1 MiB served on loopback, the stack pointed at it.
    let image = vec![0u8; 1 << 20];
    let sha = format!("{:x}", Sha256::digest(&image));
    // ORC downloads it from loopback (the stack's own URL is on the internet).
    let base = scs_e2e::testing::serve_http(std::time::Duration::ZERO, move |_| (200, image.clone())).await;
    let url = format!("{base}/ubuntu-capi-image.raw");
    let stack = tmp.path().join("openstack-scs");
    stack_copy(&stack, &url, &sha);
    let path = scs_e2e::process::path_with(std::slice::from_ref(&assets.bin_dir));
    let built = Command::new(env!("CARGO_BIN_EXE_scs-e2e"))
        .args(["stack", "build"])
        .arg(&stack)
        .args(["--mode", "hash", "--print-version", "-o"])
        .arg(tmp.path().join("rel"))
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(built.status.success(), "{built:?}");
    let version = String::from_utf8(built.stdout).unwrap().trim().to_string();

    let run_id = format!("capo-{}", std::process::id());
    let art = tmp.path().join("artifacts");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scs-e2e"))
        .args(["run", "--env", "openstack", "--config", "config.yaml", "--suite"])
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../suites/openstack.yaml"))
        .args(["--focus", "openstack\\.infrastructure", "--delete", "always", "--run-id", &run_id])
        .arg("--var")
        .arg(format!("STACK_SOURCE={}", stack.display()))
        .args(["--var", &format!("STACK_VERSION={version}")])
        .arg("--artifacts")
        .arg(&art)
        .current_dir(&work)
        .env("HOME", tmp.path())
        .env("PATH", &path)
        .env("XDG_CACHE_HOME", scs_e2e::base::cache_root().parent().unwrap())
        .env_remove("OS_CLOUD")
        .env_remove("OS_CLIENT_CONFIG_FILE")
        .env_remove("OS_CLIENT_SECURE_FILE")
        .env_remove("KUBECONFIG")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let r: RunReport = scs_e2e::report::json::read(&art.join("results.json")).unwrap_or_else(|e| panic!("{e}\n{stderr}"));
    let sc = r.scenarios.iter().find(|s| s.name == "infrastructure").unwrap();
    let summary: Vec<String> = sc
        .steps
        .iter()
        .map(|s| format!("{:?} {} {:?} {:?}", s.status, s.name, s.message, s.details))
        .collect();
    assert_eq!(out.status.code(), Some(0), "{summary:#?}\n{stderr}");
    let step = |name: &str| {
        sc.steps
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} in {summary:#?}"))
    };
    for name in [
        "CAPO made the network, router, security groups and the API server's load balancer",
        "the control plane's machine is ready",
        "the control plane's server is ACTIVE",
        "delete the cluster",
    ] {
        assert_eq!(step(name).status, Status::Passed, "{summary:#?}");
    }
    let ns = sc.namespace.clone().expect("the scenario ran in a namespace");
    let leak = step(&format!("openstack leak check {ns}/infra"));
    assert_eq!(leak.status, Status::Passed, "{summary:#?}");
    assert_eq!(leak.details, None, "nothing left, nothing ambiguous: {summary:#?}");

    // What CAPO made is gone, looked at from outside the product too: the admin sees no
    // network, router, group, port, address, load balancer or server of the cluster's.
    let admin = Session::login(
        &load(&Lookup {
            cloud: Some("scs-e2e-admin".into()),
            config_file: Some(cloud.clouds_yaml.clone()),
            etc: tmp.path().join("none"),
            ..Default::default()
        })
        .unwrap(),
    )
    .await
    .unwrap();
    let left: Vec<String> = cloud_names(&admin)
        .await
        .into_iter()
        .filter(|n| n.contains(&format!("{ns}-infra")) || n.contains(&format!("{ns}/infra")) || n.contains(" infra-"))
        .collect();
    assert!(left.is_empty(), "{left:#?}");
    // And ORC's import is there: the stack's node image, active, from our URL's bytes.
    let image_ep = admin.endpoint("image").unwrap();
    let v: Value = get_json(&admin, &format!("{image_ep}/v2/images?name=ubuntu-capi-image-v1.32.5"))
        .await
        .unwrap();
    let images = v["images"].as_array().unwrap();
    assert_eq!(images.len(), 1, "{v:#}");
    assert_eq!(images[0]["status"], "active", "{v:#}");
    assert_eq!(images[0]["size"], 1 << 20, "{v:#}");

    lab.stop().await.unwrap();
}
