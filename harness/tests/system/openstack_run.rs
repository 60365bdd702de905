//! `scs-e2e run --env openstack` end to end, with everything real that can run here: the lab
//! (Cluster API, the in-memory provider, CSO) as an existing management cluster carrying the
//! real CAPO and ORC CRDs, and the real OpenStack services of `fixtures/openstack` (a project of
//! the shared cloud each, an application credential). The workload clusters are in-memory ones
//! (`capo.rs` runs CAPO itself), but everything the OpenStack environment adds around
//! them runs for real: credentials in each scenario namespace, the `managed-secret` label the
//! ClusterResourceSet selects (Cluster API applies the cloud-config Secret to the workload
//! cluster), the stack variables, the preflight, the leak check, and no secret anywhere.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::openstack_services::{self, Tenant, call, id};
use common::{assets, lab_options};
use scs_e2e::env::openstack::ownership::ClusterRef;
use scs_e2e::env::openstack::resources::{OpenStack, Service};
use scs_e2e::report::{RunReport, Status};
use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// A module pinned by `fixtures/lab/openstack` (source only), downloaded into the Go module
/// cache and verified against that go.sum.
fn module_dir(module: &str) -> PathBuf {
    let out = Command::new("go")
        .args(["mod", "download", "-json", module])
        .current_dir(fixtures().join("lab/openstack"))
        .output()
        .expect("go");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    PathBuf::from(v["Dir"].as_str().unwrap())
}

fn kubectl(kc: &Path, args: &[&str]) -> String {
    let out = Command::new(assets().path("kubectl"))
        .arg("--kubeconfig")
        .arg(kc)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `scs-e2e run --env openstack` with the config, suite, clouds.yaml and secure.yaml in `dir`
/// (the current directory is where clouds.yaml is looked up first) and nothing of the user's.
fn scs_run(dir: &Path, home: &Path, artifacts: &Path) -> Command {
    scs_run_suite(dir, home, artifacts, Path::new("suite.yaml"))
}

fn scs_run_suite(dir: &Path, home: &Path, artifacts: &Path, suite: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scs-e2e"));
    c.args(["run", "--env", "openstack", "--config", "config.yaml", "--suite"])
        .arg(suite)
        .arg("--artifacts")
        .arg(artifacts)
        .current_dir(dir)
        .env("HOME", home)
        .env_remove("OS_CLOUD")
        .env_remove("OS_CLIENT_CONFIG_FILE")
        .env_remove("OS_CLIENT_SECURE_FILE");
    c
}

/// The management cluster: the lab, plus the provider CRDs an OpenStack one has, labelled with
/// the Cluster API contract they implement as clusterctl labels them (Cluster API's topology
/// controller looks the template versions up by that label).
async fn management_lab(name: &str) -> (scs_e2e::env::lab::Lab, PathBuf) {
    let mut opts = lab_options(name);
    opts.cluster_api = true;
    let lab = scs_e2e::env::lab::Lab::start(opts).await.unwrap();
    let kc = lab.kubeconfig();
    let capo = module_dir("sigs.k8s.io/cluster-api-provider-openstack").join("config/crd/bases");
    let orc = module_dir("github.com/k-orc/openstack-resource-controller/v2").join("config/crd/bases");
    for dir in [&capo, &orc] {
        kubectl(&kc, &["apply", "--server-side", "-f", dir.to_str().unwrap()]);
    }
    kubectl(
        &kc,
        &[
            "label",
            "--overwrite",
            "-f",
            capo.to_str().unwrap(),
            "cluster.x-k8s.io/v1beta1=v1beta1",
        ],
    );
    (lab, kc)
}

/// A project of its own on the shared cloud, and the id of its external network `public`.
async fn project(prefix: &str, cloud: &str) -> (Tenant, String) {
    let tenant = openstack_services::shared().await.tenant(prefix, cloud).await;
    let s = tenant.session().await;
    let ext = openstack_services::public_network(&OpenStack::new(&s)).await;
    (tenant, ext)
}

const APP_SECRET: &str = "canary-appcred-secret-5e0b";
const GITHUB_TOKEN: &str = "ghp_canaryOpenStackRun0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_openstack_puts_credentials_labels_and_variables_around_clusters_and_checks_for_leaks() {
    let (lab, kc) = management_lab("os-run").await;

    // The cloud: a project of the real services with Nova's default quota set explicitly (10
    // instances, 20 cores: the numbers below) and an application credential whose secret lives
    // only in secure.yaml.
    let (tenant, ext) = project("os-run", "gx-lab").await;
    let admin = openstack_services::shared().await.admin().await;
    openstack_services::set_compute_quota(&admin, &tenant.project_id, json!({"instances": 10, "cores": 20, "ram": 51200})).await;
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let s = tenant.session().await;
    let identity = s.endpoint("identity").unwrap();
    let r = s
        .send(
            reqwest::Method::POST,
            &format!("{identity}/users/{}/application_credentials", s.user_id.clone().unwrap()),
            Some(&json!({"application_credential": {"name": "e2e", "secret": APP_SECRET}})),
        )
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let ac: Value = r.json().await.unwrap();
    let ac_id = ac["application_credential"]["id"].as_str().unwrap().to_string();
    std::fs::write(
        work.join("clouds.yaml"),
        format!(
            "clouds:\n  gx-lab:\n    auth_type: v3applicationcredential\n    auth: {{auth_url: '{identity}', application_credential_id: {ac_id}}}\n    region_name: RegionOne\n"
        ),
    )
    .unwrap();
    std::fs::write(
        work.join("secure.yaml"),
        format!("clouds:\n  gx-lab:\n    auth: {{application_credential_secret: {APP_SECRET}}}\n"),
    )
    .unwrap();
    // What the "leaky" cluster leaves: CAPO's network and a security group.
    let api = OpenStack::new(&s);
    let ns = format!("os-run-{}", std::process::id());
    let leaky = ClusterRef::new(&ns, "leaky");
    let post = |svc: Service, path: &'static str, body: Value| call(&api, svc, reqwest::Method::POST, path, Some(body));
    let net = id(
        &post(
            Service::Network,
            "/networks",
            json!({"network": {"name": leaky.capo_network_name(), "description": leaky.capo_description()}}),
        )
        .await,
        "network",
    );
    let sg = id(
        &post(
            Service::Network,
            "/security-groups",
            json!({"security_group": {"name": leaky.capo_security_groups()[0], "description": "Cluster API managed group"}}),
        )
        .await,
        "security_group",
    );

    std::fs::write(
        work.join("config.yaml"),
        format!(
            "apiVersion: scs-e2e/v1alpha1\nkind: Config\nopenstack:\n  managementKubeconfig: {}\n  clusterVariables: {{controller_flavor: SCS-2V-4, worker_flavor: SCS-4V-8-50}}\nmanagement:\n  csoReleaseDir: {}\n",
            kc.display(),
            lab.release_dir().unwrap().display()
        ),
    )
    .unwrap();
    let capi_log = lab.log_path("cluster-api").display().to_string();
    let stack = r#"{provider: inmemory, name: scs, kubernetesVersion: "1.33", version: v1}"#;
    std::fs::write(
        work.join("suite.yaml"),
        format!(
            r#"apiVersion: scs-e2e/v1alpha1
kind: Suite
name: os
scenarios:
  - name: lifecycle
    namespace: {ns}
    steps:
      - command: {{script: 'echo "token=$GITHUB_TOKEN cloud=$OPENSTACK_CLOUD secret=$OPENSTACK_SECRET_NAME"'}}
      - installClusterStack: {{provider: inmemory, name: scs, kubernetesVersion: "1.33", versions: [v1], source: "builtin:inmemory/scs"}}
      - waitClusterStackRelease: {stack}
      - createCluster: {{name: leaky, stack: {stack}, workers: 1}}
      - createCluster: {{name: tidy, stack: {stack}, workers: 0, variables: {{worker_flavor: SCS-2V-4}}}}
      # The ClusterResourceSet selected both clusters by their label.
      - assert:
          resource: {{apiVersion: addons.cluster.x-k8s.io/v1beta1, kind: ClusterResourceSetBinding, name: leaky}}
          matches: {{spec: {{bindings: [{{clusterResourceSetName: crs-gx-lab-secret}}]}}}}
      - assert:
          resource: {{apiVersion: addons.cluster.x-k8s.io/v1beta1, kind: ClusterResourceSetBinding, name: tidy}}
          matches: {{spec: {{bindings: [{{clusterResourceSetName: crs-gx-lab-secret}}]}}}}
      # A real kube-apiserver creates the `kubernetes` Service at start, the in-memory one does
      # not; the ClusterResourceSet controller reads it before it applies anything, and retries
      # with a growing back-off, so it is woken once both clusters have it. It then unpacks
      # our resource-set Secret and creates `kube-system/cloud-config` in each cluster (which
      # the in-memory API server refuses: it takes no JSON POST of a Secret).
      - waitCluster: {{name: leaky, addons: skip}}
      - command: {{script: 'kubectl --kubeconfig "$CLUSTER_KUBECONFIG" -n default create service clusterip kubernetes --tcp=443:6443'}}
      - waitCluster: {{name: tidy, addons: skip}}
      - command: {{script: 'kubectl --kubeconfig "$CLUSTER_KUBECONFIG" -n default create service clusterip kubernetes --tcp=443:6443'}}
      - command: {{script: 'kubectl -n "$NAMESPACE" annotate clusterresourceset --all scs-e2e.test/wake=1 --overwrite'}}
      - name: Cluster API unpacked the cloud-config Secret for the workload cluster
        timeout: 1m
        command: {{script: 'until grep -q "Kind=Secret kube-system/cloud-config.*Cluster=\"$NAMESPACE/leaky\" Secret=\"$NAMESPACE/gx-lab-workload-cluster-secret\"" {capi_log}; do sleep 0.2; done'}}
      - deleteCluster: {{name: leaky}}
      - deleteCluster: {{name: tidy}}
      - name: too big for the quota
        createCluster: {{name: huge, stack: {stack}, controlPlaneReplicas: 3, workers: 9}}
  # Fails before its deleteCluster: with --delete always the namespace goes, and the cluster
  # in it is deleted first and checked like any other. What fails: a cluster that the cloud's
  # free quota would hold, were it not promised in part to `left` already (whose in-memory
  # machines the cloud never counts).
  - name: left
    steps:
      - installClusterStack: {{provider: inmemory, name: scs, kubernetesVersion: "1.33", versions: [v1], source: "builtin:inmemory/scs"}}
      - waitClusterStackRelease: {stack}
      - createCluster: {{name: left, stack: {stack}, workers: 0}}
      - name: quota promised to left
        createCluster: {{name: crowded, stack: {stack}, workers: 9, variables: {{worker_flavor: SCS-2V-4}}}}
      - deleteCluster: {{name: left}}
"#
        ),
    )
    .unwrap();
    // The namespace the second scenario will own, known from the run id given; what its
    // cluster leaves: a port.
    let run_id = format!("os-{}", std::process::id());
    let plan = scs_e2e::suite::plan::build_plan(
        vec![scs_e2e::suite::loader::load_suite_file(&work.join("suite.yaml")).unwrap()],
        &scs_e2e::config::Settings::default(),
        &Default::default(),
    )
    .unwrap();
    let left_ns = scs_e2e::engine::namespace_for(plan.scenarios.iter().find(|s| s.name == "left").unwrap(), &run_id);
    let left = ClusterRef::new(&left_ns, "left");
    let shared = id(
        &post(Service::Network, "/networks", json!({"network": {"name": "shared"}})).await,
        "network",
    );
    let port = id(
        &post(
            Service::Network,
            "/ports",
            json!({"port": {"name": "left-bastion-port", "description": left.capo_description(), "network_id": shared}}),
        )
        .await,
        "port",
    );

    let art = tmp.path().join("artifacts");
    let mut cmd = scs_run(&work, tmp.path(), &art);
    // One scenario at a time, so each sees exactly its own promised quota.
    cmd.args(["--delete", "always", "--run-id", &run_id, "--parallel", "1"])
        .env("XDG_CACHE_HOME", scs_e2e::base::cache_root().parent().unwrap())
        .env("GITHUB_TOKEN", GITHUB_TOKEN)
        .env("PATH", scs_e2e::process::path_with(&[assets().bin_dir]))
        .env_remove("KUBECONFIG");
    let out = tokio::process::Command::from(cmd).output().await.unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    let r: RunReport = scs_e2e::report::json::read(&art.join("results.json")).unwrap_or_else(|e| panic!("{e}\n{stderr}"));
    let sc = r.scenarios.iter().find(|s| s.name == "lifecycle").unwrap();
    let by_name = |n: &str| {
        sc.steps
            .iter()
            .find(|s| s.name == n)
            .unwrap_or_else(|| panic!("no step {n}: {:#?}", sc.steps))
    };
    let summary: Vec<String> = sc
        .steps
        .iter()
        .map(|s| format!("{:?} {} {:?}", s.status, s.name, s.message))
        .collect();
    assert_eq!(r.phases[0].status, Status::Passed, "{:?}\n{stderr}", r.phases[0].message);
    assert_eq!(r.properties.get("management").map(String::as_str), Some("existing, used as it is"));

    assert_eq!(out.status.code(), Some(1), "{summary:#?}\n{stdout}\n{stderr}");
    for n in [
        "install cluster stack inmemory/scs 1.33 v1",
        "Cluster API unpacked the cloud-config Secret for the workload cluster",
    ] {
        assert_eq!(
            by_name(n).status,
            Status::Passed,
            "{summary:#?}\n{stderr}\n{}",
            kubectl(
                &kc,
                &[
                    "get",
                    "clusterresourcesets,clusterresourcesetbindings,secrets",
                    "-n",
                    &ns,
                    "-o",
                    "yaml"
                ]
            )
        );
    }

    // The leak check after each deletion: the leftovers of `leaky`, each named; `tidy` clean.
    let leak = by_name(&format!("openstack leak check {ns}/leaky"));
    assert_eq!(leak.status, Status::Failed, "{summary:#?}");
    assert_eq!(
        leak.message.as_deref(),
        Some(format!("2 OpenStack resources of cluster {ns}/leaky left after its deletion").as_str())
    );
    let details = leak.details.as_deref().unwrap();
    assert!(details.contains(&net) && details.contains(&sg), "{details}");
    assert_eq!(
        by_name(&format!("openstack leak check {ns}/tidy")).status,
        Status::Passed,
        "{summary:#?}"
    );
    let names: Vec<&str> = sc.steps.iter().map(|s| s.name.as_str()).collect();
    let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert_eq!(at(&format!("openstack leak check {ns}/leaky")), at("delete cluster leaky") + 1);

    // The scenario that failed before its deleteCluster: its cluster was deleted before the
    // namespace (--delete always), the cloud asked, and the port it left named.
    let lsc = r.scenarios.iter().find(|s| s.name == "left").unwrap();
    let tail: Vec<(&str, Status)> = lsc.steps.iter().rev().take(3).rev().map(|s| (s.name.as_str(), s.status)).collect();
    let leak_name = format!("openstack leak check {left_ns}/left");
    assert_eq!(
        tail,
        [
            ("delete cluster left", Status::Skipped),
            ("teardown: delete cluster left", Status::Passed),
            (leak_name.as_str(), Status::Failed),
        ],
        "{:#?}",
        lsc.steps
    );
    assert!(lsc.steps.last().unwrap().details.as_deref().unwrap().contains(&port));
    let crowded = &lsc.steps[3];
    assert_eq!(crowded.name, "quota promised to left");
    assert_eq!(
        crowded.message.as_deref(),
        Some(
            "openstack cannot hold cluster crowded: quota: 10 instances needed, 9 free (0 of 10 used, 1 promised to this run's clusters the cloud does not count yet); quota: 20 cores needed, 18 free (0 of 20 used, 2 promised to this run's clusters the cloud does not count yet)"
        ),
        "{:#?}",
        lsc.steps
    );
    let teardown_log = std::fs::read_to_string(art.join(lsc.steps[5].log.as_deref().unwrap())).unwrap();
    assert!(
        teardown_log.contains("Cluster left and its machines, secrets and addons are gone"),
        "{teardown_log}"
    );
    assert!(
        kubectl(
            &kc,
            &[
                "get",
                "clusters.cluster.x-k8s.io",
                "-n",
                &left_ns,
                "-o",
                "name",
                "--ignore-not-found"
            ]
        )
        .trim()
        .is_empty()
    );

    // The quota (10 instances) cannot hold 12 machines: refused before
    // anything is created.
    let huge = by_name("too big for the quota");
    assert_eq!(huge.status, Status::Error, "{summary:#?}");
    let m = huge.message.as_deref().unwrap();
    assert!(
        m.starts_with("openstack cannot hold cluster huge: quota: 12 instances needed, 10 free"),
        "{m}"
    );
    assert_eq!(
        kubectl(&kc, &["get", "clusters.cluster.x-k8s.io", "-n", &ns, "-o", "name"]).trim(),
        ""
    );

    // The stack's variables and the preflight, from the createCluster logs.
    let log_of = |n: &str| {
        let i = at(n);
        std::fs::read_to_string(
            art.join("os/lifecycle/steps")
                .join(format!("{:02}-{}.log", i + 1, scs_e2e::base::slug(n))),
        )
        .unwrap()
    };
    let leaky_log = log_of("create cluster leaky from inmemory/scs 1.33 v1");
    for l in [
        "variable cloud_name=\"gx-lab\" from the openstack environment",
        "variable secret_name=\"gx-lab\" from the openstack environment",
        "variable controller_flavor=\"SCS-2V-4\" from the openstack environment",
        "variable worker_flavor=\"SCS-4V-8-50\" from the openstack environment",
        "preflight: flavor SCS-4V-8-50 (worker_flavor): 4 vCPU, 8192 MiB RAM",
        "preflight: quota cores: 6 needed",
    ] {
        assert!(leaky_log.contains(l), "{l}:\n{leaky_log}");
    }
    assert!(
        leaky_log.contains(&format!("variable external_id=\"{ext}\" from the openstack environment")),
        "{leaky_log}"
    );
    // The class declares no `identityRef` (scs2's): not set. The step's own value wins.
    assert!(!leaky_log.contains("identityRef"), "{leaky_log}");
    let tidy_log = log_of("create cluster tidy from inmemory/scs 1.33 v1");
    assert!(
        !tidy_log.contains("variable worker_flavor") && tidy_log.contains("preflight: flavor SCS-2V-4 (worker_flavor)"),
        "{tidy_log}"
    );

    // The credentials went into the scenario's namespace, the way the stacks expect them.
    let secret = kubectl(&kc, &["get", "secret", "gx-lab", "-n", &ns, "-o", "jsonpath={.data.cloudName}"]);
    assert_eq!(secret.trim(), "Z3gtbGFi", "base64 of gx-lab");

    // No secret in any file the run wrote, nor on the console; the step's echo was masked.
    let files = common::files_under(&art);
    assert!(files.len() >= 10, "{files:?}");
    for f in &files {
        let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
        for c in [APP_SECRET, GITHUB_TOKEN, &tenant.password] {
            assert!(!text.contains(c), "{} holds {c}", f.display());
        }
    }
    for c in [APP_SECRET, GITHUB_TOKEN] {
        assert!(!stdout.contains(c) && !stderr.contains(c), "the console shows {c}");
    }
    assert!(log_of(&sc.steps[0].name).contains("token=*** cloud=gx-lab secret=gx-lab"));

    // Before any management cluster: a flavor the project is not offered, and a region the
    // catalog does not have, each end the environment's `up` (exit 3) naming what is there.
    let again = |config: &str, clouds: Option<&str>| {
        let dir = tmp.path().join(format!("again-{}", config.len()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.yaml"), config).unwrap();
        std::fs::copy(work.join("suite.yaml"), dir.join("suite.yaml")).unwrap();
        std::fs::copy(work.join("secure.yaml"), dir.join("secure.yaml")).unwrap();
        let c = std::fs::read_to_string(work.join("clouds.yaml")).unwrap();
        std::fs::write(dir.join("clouds.yaml"), clouds.map(|r| c.replace("RegionOne", r)).unwrap_or(c)).unwrap();
        let out = scs_run(&dir, tmp.path(), Path::new("out")).output().unwrap();
        let r = scs_e2e::report::json::read(&dir.join("out/results.json")).unwrap();
        (out.status.code(), r.phases[0].message.clone().unwrap_or_default())
    };
    let mgmt = format!(
        "apiVersion: scs-e2e/v1alpha1\nkind: Config\nopenstack:\n  managementKubeconfig: {}\n",
        kc.display()
    );
    let (code, m) = again(&format!("{mgmt}  clusterVariables: {{worker_flavor: SCS-64V-256}}\n"), None);
    assert_eq!(code, Some(3), "{m}");
    assert_eq!(
        m,
        "cloud `gx-lab` does not offer what the config file asks for: flavor `SCS-64V-256` (worker_flavor) is not offered to this project; it has: SCS-1V-2, SCS-1V-4-10, SCS-2V-4, SCS-2V-4-20s, SCS-2V-8-20, SCS-4V-16-50, SCS-4V-8-50"
    );
    let (code, m) = again(&mgmt, Some("RegionTwo"));
    assert_eq!(code, Some(3), "{m}");
    assert!(m.contains("no compute endpoint") && m.contains("region RegionTwo"), "{m}");
    lab.stop().await.unwrap();
}

/// `suites/openstack.yaml`'s `rendered` scenario with the lab as management cluster: our
/// snapshot of upstream's providers/openstack/scs is built as csctl builds it (clusteraddon.yaml,
/// a directory of addon charts), CSO turns it into a usable release and ClusterClass, the
/// Cluster with the suite's variables is accepted, and Cluster API's topology controller renders
/// the OpenStackCluster and OpenStackMachineTemplates with the cloud's external network, the
/// suite's subnet and flavors, the version's image and the environment's credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openstack_suite_renders_the_scs_openstack_stack_into_capo_objects() {
    let (lab, kc) = management_lab("os-suite").await;
    let (tenant, ext) = project("os-suite", "lab").await;
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::copy(&tenant.clouds_yaml, work.join("clouds.yaml")).unwrap();
    std::fs::write(
        work.join("config.yaml"),
        format!(
            "apiVersion: scs-e2e/v1alpha1\nkind: Config\nopenstack:\n  managementKubeconfig: {}\nmanagement:\n  csoReleaseDir: {}\n",
            kc.display(),
            lab.release_dir().unwrap().display()
        ),
    )
    .unwrap();
    let suite = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../suites/openstack.yaml");
    // The README's pull-request recipe: the stack's hash-mode version from `stack build`, then
    // the suite with it (the step builds in hash mode and checks the directory still hashes so).
    let snapshot = fixtures().join("cluster-stacks/upstream/openstack-scs");
    let built = Command::new(env!("CARGO_BIN_EXE_scs-e2e"))
        .args(["stack", "build"])
        .arg(&snapshot)
        .args(["--mode", "hash", "--print-version", "-o"])
        .arg(tmp.path().join("rel"))
        .env("PATH", scs_e2e::process::path_with(&[assets().bin_dir]))
        .output()
        .unwrap();
    assert!(built.status.success(), "{built:?}");
    let version = String::from_utf8(built.stdout).unwrap().trim().to_string();
    assert!(version.starts_with("v0-sha.") && version.len() == 14, "{version}");
    let art = tmp.path().join("artifacts");
    let ns = format!("os-suite-{}", std::process::id());
    let mut cmd = scs_run_suite(&work, tmp.path(), &art, &suite);
    // The suite's own worker flavor replaced from the command line: the rendered template must
    // show the value given, not the suite's default.
    cmd.args([
        "--focus",
        "openstack\\.rendered",
        "--delete",
        "always",
        "--var",
        "WORKER_FLAVOR=SCS-4V-16-50",
    ])
    .args(["--var", &format!("STACK_VERSION={version}")])
    .args(["--run-id", &ns])
    .env("XDG_CACHE_HOME", scs_e2e::base::cache_root().parent().unwrap())
    .env("PATH", scs_e2e::process::path_with(&[assets().bin_dir]))
    .env_remove("KUBECONFIG");
    let out = tokio::process::Command::from(cmd).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let r: RunReport = scs_e2e::report::json::read(&art.join("results.json")).unwrap_or_else(|e| panic!("{e}\n{stderr}"));
    let sc = r.scenarios.iter().find(|s| s.name == "rendered").unwrap();
    let summary: Vec<String> = sc
        .steps
        .iter()
        .map(|s| format!("{:?} {} {:?}", s.status, s.name, s.message))
        .collect();
    assert_eq!(out.status.code(), Some(0), "{summary:#?}\n{stderr}");
    assert_eq!(r.scenarios.len(), 1, "only `rendered` was focused");
    // What the asserts saw, in their logs: the values the suite was given, not placeholders.
    let logs: String = sc
        .steps
        .iter()
        .filter_map(|s| s.log.as_ref())
        .map(|l| std::fs::read_to_string(art.join(l)).unwrap_or_default())
        .collect();
    let class = format!("openstack-scs-1-32-{version}");
    assert!(logs.contains(&format!("ClusterClass {class}")), "{logs}");
    assert!(
        logs.contains(
            "OpenStackMachineTemplate [cluster.x-k8s.io/cluster-name=rendered,topology.cluster.x-k8s.io/deployment-name]: all 1 match"
        ),
        "{logs}"
    );
    let install = std::fs::read_to_string(art.join(sc.steps[0].log.as_deref().unwrap())).unwrap();
    let dashed = version.replace('.', "-");
    assert!(
        install.contains(&format!("openstack-scs-1-32-{dashed} (cluster addon {version}")),
        "{install}"
    );
    // The release CSO read: the new layout's addon archive and clusteraddon.yaml.
    let release = lab
        .release_dir()
        .unwrap()
        .join(format!("cluster-stacks/openstack-scs-1-32-{dashed}"));
    for f in [
        "clusteraddon.yaml".to_string(),
        "metadata.yaml".to_string(),
        format!("openstack-scs-1-32-cluster-addon-{version}.tgz"),
        format!("openstack-scs-1-32-cluster-class-{version}.tgz"),
    ] {
        assert!(release.join(&f).is_file(), "{f} in {}", release.display());
    }
    // The external network the OpenStackCluster assert compared with came from the cloud (the
    // class patches externalNetwork.id from external_id): the one network marked external.
    assert!(
        logs.contains(&format!("variable external_id=\"{ext}\" from the openstack environment")),
        "{logs}"
    );
    assert!(
        logs.contains("OpenStackCluster [cluster.x-k8s.io/cluster-name=rendered]: all 1 match"),
        "{logs}"
    );
    assert!(
        logs.contains("preflight: flavor SCS-4V-16-50 (worker_flavor)"),
        "the --var reached the Cluster: {logs}"
    );
    lab.stop().await.unwrap();
}
