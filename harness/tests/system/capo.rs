//! CAPO and ORC for real: the lab (Cluster API, CSO, and the OpenStack layer: CAPO v0.12 and
//! ORC built from their Go modules) as the management cluster, against the real OpenStack
//! services of `fixtures/openstack`. `scs-e2e run --env openstack` runs the `openstack` suite's
//! `infrastructure` scenario with the SCS OpenStack stack: ORC imports the stack's node image
//! into Glance, CAPO makes the network, subnet, router, security groups, the API server's load
//! balancer with its floating IP and the control plane's server, and removes them all when the
//! cluster is deleted; the leak check afterwards must find nothing. The servers run on Nova's
//! fake hypervisor, so no node ever joins (the suite says so). Then a deliberate leak that
//! `scs-e2e cleanup` must find and remove exactly, beside a same-name cluster it must not touch;
//! and the quota preflight refuses the cluster from Nova's real quota (lowered by the admin).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::openstack_services;
use scs_e2e::env::lab::build;
use scs_e2e::env::openstack::clouds::{Lookup, load};
use scs_e2e::env::openstack::identity::Session;
use scs_e2e::env::openstack::resources::{OpenStack, Service};
use scs_e2e::report::{RunReport, Status};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
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

/// One resource the admin sees: its kind, id, and name with description.
struct Res {
    kind: &'static str,
    id: String,
    text: String,
}

/// What the admin sees in the cloud (every project): networks, routers, security groups,
/// ports, floating IPs, load balancers and servers, every page.
async fn cloud_resources(admin: &Session) -> Vec<Res> {
    let api = OpenStack::new(admin);
    let mut out = Vec::new();
    for (svc, path, key) in [
        (Service::Network, "/networks", "networks"),
        (Service::Network, "/routers", "routers"),
        (Service::Network, "/security-groups", "security_groups"),
        (Service::Network, "/ports", "ports"),
        (Service::Network, "/floatingips", "floatingips"),
        (Service::LoadBalancer, "/lbaas/loadbalancers", "loadbalancers"),
        (Service::Compute, "/servers/detail?all_tenants=1", "servers"),
    ] {
        let items: Vec<Value> = api.list(svc, path, key).await.unwrap();
        for r in items {
            out.push(Res {
                kind: key,
                id: r["id"].as_str().unwrap_or("").to_string(),
                text: format!("{} {}", r["name"].as_str().unwrap_or(""), r["description"].as_str().unwrap_or("")),
            });
        }
    }
    out
}

async fn cloud_names(admin: &Session) -> Vec<String> {
    cloud_resources(admin)
        .await
        .into_iter()
        .map(|r| format!("{} {}", r.kind, r.text))
        .collect()
}

/// Two scenarios, `kept` and `leaked`, each making cluster `infra` from the stack and waiting
/// for its control plane's server; neither deletes it.
fn two_clusters_suite() -> String {
    let mut s = String::from(
        r#"apiVersion: scs-e2e/v1alpha1
kind: Suite
name: two
vars: {KUBERNETES: "1.32", TOPOLOGY_VERSION: v1.32.5, NODE_CIDR: 10.8.0.0/20}
scenarios:
"#,
    );
    for name in ["kept", "leaked"] {
        s.push_str(&format!(
            r#"  - name: {name}
    steps:
      - installClusterStack: {{provider: openstack, name: scs, kubernetesVersion: "${{KUBERNETES}}", versions: ["${{STACK_VERSION}}"], source: "${{STACK_SOURCE}}"}}
      - timeout: 3m
        waitClusterStackRelease: {{provider: openstack, name: scs, kubernetesVersion: "${{KUBERNETES}}", version: "${{STACK_VERSION}}"}}
      - createCluster:
          name: infra
          stack: {{provider: openstack, name: scs, kubernetesVersion: "${{KUBERNETES}}", version: "${{STACK_VERSION}}"}}
          topologyVersion: ${{TOPOLOGY_VERSION}}
          controlPlaneReplicas: 1
          workers: 1
          variables: {{controller_flavor: SCS-2V-4-20s, worker_flavor: SCS-2V-4, node_cidr: "${{NODE_CIDR}}"}}
      - name: server ACTIVE
        timeout: 10m
        assert:
          resource: {{apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1, kind: OpenStackServer, selector: cluster.x-k8s.io/cluster-name=infra}}
          matches: {{status: {{ready: true, instanceState: ACTIVE}}}}
"#
        ));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capo_makes_and_removes_a_clusters_infrastructure_on_real_openstack_services_within_the_real_quota() {
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
    let stack = scs_e2e::testing::openstack_work_dir(&fixtures(), &work, &lab, &cloud.clouds_yaml).await;
    let path = scs_e2e::process::path_with(std::slice::from_ref(&assets.bin_dir));
    let version = scs_e2e::testing::stack_hash_version(Path::new(env!("CARGO_BIN_EXE_scs-e2e")), &stack, &tmp.path().join("rel"), &path);

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
    let suite = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../suites/openstack.yaml");
    let run = |suite: &Path, focus: &str, delete: &str, run_id: String, art: PathBuf| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_scs-e2e"));
        c.args(["run", "--env", "openstack", "--config", "config.yaml", "--suite"])
            .arg(suite)
            .args(["--focus", focus, "--delete", delete, "--run-id", &run_id])
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
            .env_remove("KUBECONFIG");
        async move {
            let out = c.output().await.unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            let r: RunReport = scs_e2e::report::json::read(&art.join("results.json")).unwrap_or_else(|e| panic!("{e}\n{stderr}"));
            (out, r, stderr)
        }
    };

    // The OpenStack Zuul job as Zuul runs it on its node: our run playbook with the job's
    // variables, through ansible-playbook, so the command line is the role's own. What differs
    // is what the node provides: the cloud's clouds.yaml where openstack-access-base writes one
    // (here ~/.config/openstack), the management cluster (the lab, through SCS_E2E_CONFIG,
    // instead of kind on the node), and the stack (the snapshot with its image on loopback,
    // passed as a project's job variant passes its own: scs_e2e_extra_args).
    let home = tmp.path().join("node");
    std::fs::create_dir_all(home.join(".config/openstack")).unwrap();
    std::fs::copy(work.join("clouds.yaml"), home.join(".config/openstack/clouds.yaml")).unwrap();
    let job = "scs-e2e-openstack-quick";
    let extra = serde_json::json!({"scs_e2e_extra_args": [
        "--var", format!("STACK_SOURCE={}", stack.display()), "--var", format!("STACK_VERSION={version}")]});
    let node_env = [
        ("SCS_E2E_CONFIG", work.join("config.yaml").into_os_string()),
        ("PATH", path.clone()),
        (
            "XDG_CACHE_HOME",
            scs_e2e::base::cache_root().parent().unwrap().as_os_str().to_owned(),
        ),
    ];
    let played = crate::zuul::playbook("run.yaml", job, &home, &extra, &node_env).await;
    let art = home.join("zuul-output/artifacts");
    let r: RunReport = scs_e2e::report::json::read(&art.join("results.json")).unwrap_or_else(|e| panic!("{e}\n{played}"));
    // Every scenario's steps, for the messages below.
    let all: Vec<String> = r
        .scenarios
        .iter()
        .flat_map(|sc| {
            std::iter::once(format!("{:?} {}", sc.status, sc.id())).chain(
                sc.steps
                    .iter()
                    .map(|s| format!("  {:?} {} {:?} {:?}", s.status, s.name, s.message, s.details)),
            )
        })
        .collect();
    assert!(played.ok, "the run playbook failed:\n{all:#?}\n{}", played.output);
    // The command line the role built (ansible -v prints the module's argv).
    for arg in [
        r#""run", "--env", "openstack""#,
        r#""--suite=openstack""#,
        r#""--parallel", "2""#,
        r#""--skip""#,
    ] {
        assert!(played.output.contains(arg), "{arg} in {}", played.output);
    }
    for sc in &r.scenarios {
        // The job skips `lifecycle` (scs_e2e_skip); everything else must pass.
        let want = if sc.name == "lifecycle" { Status::Skipped } else { Status::Passed };
        assert_eq!(sc.status, want, "{}: {all:#?}", sc.id());
    }
    for suite in ["generic-steps", "custom-resources", "openstack"] {
        assert!(r.scenarios.iter().any(|s| s.suite == suite), "{suite} ran: {all:#?}");
    }
    let sc = r.scenarios.iter().find(|s| s.id() == "openstack.infrastructure").unwrap();
    let summary = &all;
    let step = |name: &str| {
        sc.steps
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} in {summary:#?}"))
    };
    for name in [
        "ORC imported the stack's node image",
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
    let left: Vec<String> = cloud_names(&admin)
        .await
        .into_iter()
        .filter(|n| n.contains(&format!("{ns}-infra")) || n.contains(&format!("{ns}/infra")) || n.contains(" infra-"))
        .collect();
    assert!(left.is_empty(), "{left:#?}");

    // The job's cleanup-run playbook (which also runs after a cancel): `scs-e2e cleanup --from`
    // the run's cluster plan, for every cluster of every scenario; all were deleted cleanly, so
    // it finds nothing and succeeds.
    let cleaned = crate::zuul::playbook("cleanup.yaml", job, &home, &extra, &node_env).await;
    assert!(cleaned.ok, "{}", cleaned.output);
    let task = cleaned
        .output
        .split("TASK [")
        .find(|t| t.starts_with("scs_e2e : Remove the run's clusters from the cloud]"))
        .unwrap_or_else(|| panic!("the cleanup task ran:\n{}", cleaned.output));
    assert!(task.contains("changed: [localhost]"), "{task}");
    assert!(task.contains("nothing of cluster ") && !task.contains("would delete"), "{task}");

    let identity = admin.endpoint("identity").unwrap();
    let projects = get_json(&admin, &format!("{identity}/projects?name=scs-e2e")).await.unwrap();
    let project = projects["projects"][0]["id"].as_str().unwrap().to_string();
    // A deliberate leak, as a stuck controller or a killed run leaves one: clusters `infra` in
    // two namespaces, kept; one is then deleted while paused and without its finalizers, so
    // CAPO never cleans up, and a port with CAPO's naming joins what it left. The leak check
    // (`cleanup` without --yes) lists exactly that cluster's resources, and `cleanup --yes`
    // removes exactly them: the same-name cluster in the other namespace keeps all of its own.
    // Each namespace's copy of the stack has an ORC Image of the same name, managed: ORC
    // adopts a Glance image of that name that is already there, and deletes it with its
    // namespace, under every other namespace that adopted it too (seen: the first run's
    // teardown took the node image from under the next run's clusters). So the first run's
    // image goes first, then the node image is uploaded once for both clusters to adopt.
    let glance = admin.endpoint("image").unwrap();
    let by_name = format!("{glance}/v2/images?name=ubuntu-capi-image-v1.32.5");
    common::until(
        "ORC deleted the first run's image with its namespace",
        Duration::from_secs(180),
        || async {
            let v = get_json(&admin, &by_name).await?;
            Ok(v["images"].as_array().unwrap().is_empty().then_some(()))
        },
    )
    .await;
    let created = admin
        .send(
            reqwest::Method::POST,
            &format!("{glance}/v2/images"),
            Some(&serde_json::json!({"name": "ubuntu-capi-image-v1.32.5", "disk_format": "raw",
                "container_format": "bare", "owner": project, "visibility": "private"})),
        )
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let created: Value = created.json().await.unwrap();
    let put = reqwest::Client::new()
        .put(format!("{glance}/v2/images/{}/file", created["id"].as_str().unwrap()))
        .header("X-Auth-Token", admin.current_token().await)
        .header("Content-Type", "application/octet-stream")
        .body(vec![0u8; 1 << 20])
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{:?}", put.text().await);
    std::fs::write(work.join("two.yaml"), two_clusters_suite()).unwrap();
    let (out, r, stderr) = run(
        &work.join("two.yaml"),
        ".",
        "never",
        format!("capo-two-{}", std::process::id()),
        tmp.path().join("two"),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let ns_of = |name: &str| {
        r.scenarios
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.namespace.clone())
            .unwrap()
    };
    let (kept, leaked) = (ns_of("kept"), ns_of("leaked"));
    let kubectl_output = |args: &[&str]| {
        Command::new(assets.path("kubectl"))
            .arg("--kubeconfig")
            .arg(lab.kubeconfig())
            .args(args)
            .output()
            .unwrap()
    };
    let kubectl = |args: &[&str]| {
        let out = kubectl_output(args);
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let server_id = |ns: &str| kubectl(&["-n", ns, "get", "openstackservers", "-o", "jsonpath={.items[*].status.instanceID}"]);
    let (kept_server, leaked_server) = (server_id(&kept), server_id(&leaked));
    assert!(!kept_server.is_empty() && !leaked_server.is_empty() && !kept_server.contains(' '));
    kubectl(&[
        "-n",
        &leaked,
        "patch",
        "cluster",
        "infra",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"paused":true}}"#,
    ]);
    // Deleted first, then stripped: a controller may add a finalizer to a live object, never to
    // one being deleted. Garbage collection takes the rest; CAPO, paused, does nothing about it.
    kubectl(&["-n", &leaked, "delete", "cluster", "infra", "--wait=false"]);
    let kinds = "clusters.cluster.x-k8s.io,kubeadmcontrolplanes,machinedeployments,machinesets,machines,kubeadmconfigs,openstackclusters,openstackmachines,openstackservers";
    common::until(
        "the leaked cluster's objects were all deleted",
        Duration::from_secs(120),
        || async {
            let left = kubectl(&["-n", &leaked, "get", kinds, "-o", "name"]);
            for obj in left.lines() {
                // An object may vanish between the listing and the patch.
                kubectl_output(&[
                    "-n",
                    &leaked,
                    "patch",
                    obj,
                    "--type",
                    "merge",
                    "-p",
                    r#"{"metadata":{"finalizers":null}}"#,
                ]);
            }
            Ok(left.trim().is_empty().then_some(()))
        },
    )
    .await;
    let of = |ns: &str, all: &[Res]| -> Vec<(String, String)> {
        let c = scs_e2e::env::openstack::ownership::ClusterRef::new(ns, "infra");
        all.iter()
            .filter(|x| x.text.contains(&c.resource_name()))
            .map(|x| (x.kind.to_string(), x.id.clone()))
            .collect()
    };
    let before = cloud_resources(&admin).await;
    let leaked_net = before
        .iter()
        .find(|x| x.kind == "networks" && x.text.contains(&format!("{leaked}-infra")))
        .unwrap()
        .id
        .clone();
    let network = admin.endpoint("network").unwrap();
    let stray = admin
        .send(
            reqwest::Method::POST,
            &format!("{network}/v2.0/ports"),
            Some(&serde_json::json!({"port": {
                "network_id": leaked_net, "name": "infra-stray-0", "project_id": project,
                "description": scs_e2e::env::openstack::ownership::ClusterRef::new(&leaked, "infra").capo_description()}})),
        )
        .await
        .unwrap();
    assert_eq!(stray.status().as_u16(), 201);
    let stray: Value = stray.json().await.unwrap();
    let stray = stray["port"]["id"].as_str().unwrap().to_string();
    let before = cloud_resources(&admin).await;
    let (kept_has, leaked_has) = (of(&kept, &before), of(&leaked, &before));
    assert!(leaked_has.iter().any(|(_, id)| *id == stray), "{leaked_has:?}");
    for k in ["networks", "routers", "security_groups", "loadbalancers", "floatingips"] {
        assert!(leaked_has.iter().any(|(kind, _)| kind == k), "the leak has {k}: {leaked_has:?}");
        assert!(kept_has.iter().any(|(kind, _)| kind == k), "the kept cluster has {k}: {kept_has:?}");
    }
    let cleanup = |yes: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_scs-e2e"));
        c.args(["cleanup", "--cluster", "infra", "--namespace", &leaked, "--wait", "5m"])
            .current_dir(&work)
            .env("HOME", tmp.path())
            .env_remove("OS_CLOUD")
            .env_remove("OS_CLIENT_CONFIG_FILE")
            .env_remove("OS_CLIENT_SECURE_FILE");
        if yes {
            c.arg("--yes");
        }
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, listed) = cleanup(false);
    assert_eq!(code, Some(1), "the dry run found the leak: {listed}");
    for (kind, id) in leaked_has.iter().chain([("servers".to_string(), leaked_server.clone())].iter()) {
        assert!(listed.contains(id.as_str()), "{kind} {id} listed:\n{listed}");
    }
    for (kind, id) in kept_has.iter().chain([("servers".to_string(), kept_server.clone())].iter()) {
        assert!(
            !listed.contains(id.as_str()),
            "the kept cluster's {kind} {id} is not listed:\n{listed}"
        );
    }
    let (code, said) = cleanup(true);
    assert_eq!(code, Some(0), "{said}");
    let after = cloud_resources(&admin).await;
    let ids: Vec<&str> = after.iter().map(|x| x.id.as_str()).collect();
    for (kind, id) in &leaked_has {
        assert!(!ids.contains(&id.as_str()), "the leak's {kind} {id} is gone");
    }
    assert!(!ids.contains(&leaked_server.as_str()), "the leak's server is gone");
    for (kind, id) in &kept_has {
        assert!(ids.contains(&id.as_str()), "the kept cluster's {kind} {id} stays");
    }
    assert!(ids.contains(&kept_server.as_str()), "the kept cluster's server stays");
    // The kept cluster is still CAPO's to delete, and its deletion leaves nothing.
    kubectl(&["-n", &kept, "delete", "cluster", "infra", "--timeout=10m"]);
    let left: Vec<String> = cloud_names(&admin)
        .await
        .into_iter()
        .filter(|n| n.contains(&format!("{kept}-infra")) || n.contains(&format!("{leaked}-infra")))
        .collect();
    assert!(left.is_empty(), "{left:#?}");

    // The quota preflight against real Nova: with 3 cores left to the project, the cluster's two
    // machines (2 cores each) are refused before anything is made. Last, because this run's
    // namespace gets the stack's ORC Image too, which adopts the Glance image of the same name,
    // and deletes it with the namespace: a run beside it would lose its node image (seen).
    let compute = admin.endpoint("compute").unwrap();
    let set_cores = |n: u32| {
        let (admin, url) = (&admin, format!("{compute}/os-quota-sets/{project}"));
        async move {
            let body = serde_json::json!({"quota_set": {"cores": n}});
            let r = admin.send(reqwest::Method::PUT, &url, Some(&body)).await.unwrap();
            assert!(r.status().is_success(), "{:?}", r.text().await);
        }
    };
    set_cores(3).await;
    let (out, r, stderr) = run(
        &suite,
        "openstack\\.infrastructure",
        "always",
        format!("capo-quota-{}", std::process::id()),
        tmp.path().join("quota"),
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let sc = &r.scenarios[0];
    let create = sc.steps.iter().find(|s| s.name == "create a cluster").unwrap();
    assert_eq!(create.status, Status::Error, "{stderr}");
    let m = create.message.as_deref().unwrap();
    assert!(
        m.starts_with("openstack cannot hold cluster infra: quota: 4 cores needed, 3 free (0 of 3 used)"),
        "{m}"
    );
    let quota_ns = sc.namespace.clone().unwrap();
    let made: Vec<String> = cloud_names(&admin).await.into_iter().filter(|n| n.contains(&quota_ns)).collect();
    assert!(made.is_empty(), "nothing made for a refused cluster: {made:#?}");
    set_cores(20).await;

    lab.stop().await.unwrap();
    // `down` stops every process of the fixture, within seconds (checked here, on a cloud that
    // has worked hard, rather than on one started for it).
    let dir = cloud.state_dir().to_path_buf();
    assert!(
        !openstack_services::processes_using(&dir).is_empty(),
        "the fixture's processes name its state dir"
    );
    let t = std::time::Instant::now();
    let out = cloud.down();
    assert!(out.status.success(), "down: {}", String::from_utf8_lossy(&out.stderr));
    assert!(t.elapsed() < Duration::from_secs(10), "down took {:?}", t.elapsed());
    let left = openstack_services::processes_using(&dir);
    assert!(left.is_empty(), "processes left after down: {left:?}");
}
