//! Turning a cluster into a management cluster with the real tools (clusterctl, helm, kubectl
//! built from Go modules) against the lab's real API server. Provider components come from the
//! modules' own `config/default` (built with `kubectl kustomize`) through a clusterctl local
//! repository; the CSO chart is made from CSO's module the same way. The lab has no kubelet, so
//! no provider pod ever runs: the wait must end in a clear timeout naming the Deployments.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use scs_e2e::env::images::offline;
use scs_e2e::env::mgmt::{self, Infrastructure, Spec};
use tokio_util::sync::CancellationToken;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// The pinned modules' directories in the Go module cache (downloaded by `lab install`).
fn modules(work: &Path) -> offline::Modules {
    offline::Modules::download(Path::new("go"), &work.join(".modules")).unwrap()
}

/// Cluster API's four providers as a clusterctl local repository, from the module sources (the
/// product's offline rendering: release images, placeholders kept).
fn capi_repository(dir: &Path, kubectl: &Path) -> PathBuf {
    let providers = offline::capi_providers(&modules(dir.parent().unwrap()), kubectl).unwrap();
    mgmt::write_local_repository(dir, &providers).unwrap()
}

/// CSO's chart made from its module (the published chart lives in a registry this machine
/// cannot reach), as `--images offline` makes it.
fn cso_chart(dir: &Path, kubectl: &Path) -> PathBuf {
    offline::write_cso_chart(dir, &modules(dir), kubectl).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusterctl_and_helm_install_real_providers_and_the_wait_names_what_never_became_available() {
    let lab = common::lab();
    let assets = common::assets();
    let kubectl = assets.path("kubectl");
    let kc = lab.kubeconfig();
    let tmp = tempfile::tempdir().unwrap();
    let client = common::client().await;

    let out = std::process::Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&kc)
        .args(["apply", "-f"])
        .arg(fixtures().join("lab/cert-manager-crds.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for n in ["issuers.cert-manager.io", "certificates.cert-manager.io"] {
        let api = Api::all_with(client.clone(), &kube::api::ApiResource::erase::<CustomResourceDefinition>(&()));
        scs_e2e::kube::wait_crd_established(api, n, tokio::time::Instant::now() + Duration::from_secs(30))
            .await
            .unwrap();
    }

    let mut spec = Spec::new(Infrastructure::Docker);
    spec.clusterctl_config = Some(capi_repository(&tmp.path().join("repo"), &kubectl));
    spec.cso.use_generated_chart(&cso_chart(tmp.path(), &kubectl));
    spec.cso.local_release_dir = Some(mgmt::NODE_RELEASE_DIR.into());
    // The timeout covers clusterctl and helm too: 15 s was not enough for them on a machine
    // loaded by a cold CI run (clusterctl init was stopped half way), so the wait gets its own
    // margin and still ends in minutes where a wait ignoring it would run for ten.
    spec.timeout = Duration::from_secs(60);
    let tools = mgmt::Tools {
        clusterctl: assets.path("clusterctl"),
        helm: assets.path("helm"),
        kubectl: kubectl.clone(),
    };
    let said = std::sync::Mutex::new(Vec::<String>::new());
    let started = std::time::Instant::now();
    let err = mgmt::install(
        &spec,
        &tools,
        &kc,
        &|l| said.lock().unwrap().push(l.to_string()),
        &CancellationToken::new(),
    )
    .await
    .expect_err("no kubelet: nothing becomes Available");
    let msg = err.to_string();
    // It gave up at its timeout instead of waiting on (the guarded failure: a wait that ignores
    // it runs for many minutes).
    assert!(
        started.elapsed() < spec.timeout + Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(msg.contains("did not become Available within 60s"), "{msg}");
    for d in [
        "capi-system/capi-controller-manager",
        "capi-kubeadm-control-plane-system/capi-kubeadm-control-plane-controller-manager",
        "capd-system/capd-controller-manager",
    ] {
        assert!(msg.contains(&format!("{d}: 0/1 ready")), "{d} in: {msg}");
    }
    assert!(!msg.contains("cso-system"), "CSO comes after Cluster API is up: {msg}");
    assert!(msg.contains("are the nodes Ready?"), "{msg}");
    let said = said.into_inner().unwrap();
    assert!(
        said.iter().any(|l| l.starts_with("clusterctl init --infrastructure docker:v1.10")),
        "{said:?}"
    );

    // clusterctl installed the real CRDs and substituted the feature gates from its environment.
    for n in [
        "clusters.cluster.x-k8s.io",
        "kubeadmcontrolplanes.controlplane.cluster.x-k8s.io",
        "dockerclusters.infrastructure.cluster.x-k8s.io",
        "providers.clusterctl.cluster.x-k8s.io",
    ] {
        crds.get(n).await.unwrap_or_else(|e| panic!("CRD {n}: {e}"));
    }
    let capi: Api<Deployment> = Api::namespaced(client.clone(), "capi-system");
    let d = capi.get("capi-controller-manager").await.unwrap();
    let args = d.spec.template.spec.unwrap().containers[0].args.clone().unwrap().join(" ");
    for gate in ["ClusterTopology=true", "ClusterResourceSet=true", "RuntimeSDK=true"] {
        assert!(args.contains(gate), "{gate} in {args}");
    }
    let providers = Api::<kube::api::DynamicObject>::all_with(
        client.clone(),
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "clusterctl.cluster.x-k8s.io",
            "v1alpha3",
            "Provider",
        )),
    );
    let names: Vec<String> = providers
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");

    // CSO goes in once Cluster API is up. Here Cluster API's webhooks have no pods behind them
    // and would refuse CSO's ExtensionConfig, so they go first (as if the providers ran).
    let out = std::process::Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&kc)
        .args([
            "delete",
            "mutatingwebhookconfigurations,validatingwebhookconfigurations",
            "-l",
            "clusterctl.cluster.x-k8s.io",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let err = mgmt::install_cso(&spec, &tools, &kc, &client, &|_| (), deadline, &CancellationToken::new())
        .await
        .expect_err("no kubelet");
    assert!(err.to_string().contains("cso-system/cso-controller-manager: 0/1 ready"), "{err}");

    crds.get("clusterstacks.clusterstack.x-k8s.io").await.unwrap();
    // CSO in local mode reads release assets from the node's hostPath.
    let cso: Api<Deployment> = Api::namespaced(client.clone(), mgmt::CSO_NAMESPACE);
    let pod = cso.get("cso-controller-manager").await.unwrap().spec.template.spec.unwrap();
    let manager = pod.containers.iter().find(|c| c.name == "manager").unwrap();
    let args = manager.args.clone().unwrap();
    assert!(args.contains(&"--local=true".to_string()), "{args:?}");
    assert!(args.contains(&format!("--release-dir={}", mgmt::NODE_RELEASE_DIR)), "{args:?}");
    let vol = pod.volumes.unwrap().into_iter().find(|v| v.name == "cso-releases").unwrap();
    assert_eq!(vol.host_path.unwrap().path, mgmt::NODE_RELEASE_DIR);
    // helm was given the OCI repository.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), mgmt::CSO_NAMESPACE);
    let s = secrets
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|s| s.data.as_ref().is_some_and(|d| d.contains_key("oci-repository")))
        .unwrap();
    assert_eq!(s.data.unwrap()["oci-repository"].0, mgmt::CSO_OCI_REPOSITORY.as_bytes());

    // `helm upgrade -i` again (a re-run on a kept management cluster) upgrades in place.
    let again = mgmt::run(
        &tools.helm,
        &spec.helm_cso_args(&kc),
        &[],
        tokio::time::Instant::now() + Duration::from_secs(120),
        &CancellationToken::new(),
    )
    .await;
    assert!(again.is_ok(), "{again:?}");
}

#[tokio::test]
async fn a_failing_tool_is_named_with_its_arguments_and_last_output() {
    let assets = common::assets();
    let tmp = tempfile::tempdir().unwrap();
    let kc = tmp.path().join("kubeconfig");
    std::fs::write(&kc, "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n").unwrap();
    let spec = Spec::new(Infrastructure::Docker);
    let err = mgmt::run(
        &assets.path("clusterctl"),
        &spec.clusterctl_init_args(&kc),
        &spec.clusterctl_env(),
        tokio::time::Instant::now() + Duration::from_secs(60),
        &CancellationToken::new(),
    )
    .await
    .expect_err("no cluster in that kubeconfig");
    let msg = err.to_string();
    assert!(msg.starts_with("`clusterctl init --kubeconfig "), "{msg}");
    assert!(msg.contains("exited with 1"), "{msg}");
    // clusterctl's own words about the kubeconfig, not a generic failure.
    assert!(msg.to_lowercase().contains("kubeconfig") && msg.lines().count() > 1, "{msg}");
}

/// A Docker CLI whose daemon answers `info` and `ps` but can pull and run nothing (this
/// machine has no Docker engine; kind itself is real).
fn tiny_suite(dir: &Path) -> PathBuf {
    let p = dir.join("tiny.yaml");
    std::fs::write(
        &p,
        "apiVersion: scs-e2e/v1alpha1\nkind: Suite\nname: tiny\nscenarios:\n  - name: one\n    steps:\n      - command: {argv: [\"true\"]}\n",
    )
    .unwrap();
    p
}

/// A directory with the few programs a run needs besides its tools: the system's /usr/bin is
/// left out of PATH, since a container engine may be installed there (Debian's docker.io).
fn basics() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("basics-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        for t in ["sh", "bash", "true", "false", "env", "cat"] {
            let p = scs_e2e::process::which(t, &[]).unwrap_or_else(|| panic!("{t} on PATH"));
            std::os::unix::fs::symlink(p, d.join(t)).unwrap();
        }
        d
    })
    .clone()
}

/// `scs-e2e run` with PATH holding only `dirs` (plus the basics), the engine (if any) given by
/// DOCKER_HOST.
fn run_with_path(dirs: &[&Path], args: &[&str], extra_env: &[(&str, &Path)]) -> (i32, String, PathBuf) {
    let path = std::env::join_paths(dirs.iter().map(|d| d.to_path_buf()).chain([basics()])).unwrap();
    let mut c = std::process::Command::new(common::bin());
    c.args(args)
        .env("PATH", path)
        .env_remove("KUBECONFIG")
        .env_remove("SCS_E2E_ENV")
        .env_remove("OS_CLOUD")
        .env("SCS_E2E_LAB_BIN_DIR", "/nonexistent-lab-bin")
        .stdin(std::process::Stdio::null());
    for (k, v) in extra_env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    let art = PathBuf::from(args[args.iter().position(|a| *a == "--artifacts").unwrap() + 1]);
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into(), art)
}

/// The environment's `up` testcase: its message and details.
fn up_message(art: &Path) -> String {
    let r = scs_e2e::report::json::read(&art.join("results.json")).unwrap();
    let p = &r.phases[0];
    format!("{}\n{}", p.message.as_deref().unwrap_or(""), p.details.as_deref().unwrap_or(""))
}

#[test]
fn env_kind_without_an_engine_or_a_working_one_exits_3_with_the_fix() {
    let assets = common::assets();
    let tmp = tempfile::tempdir().unwrap();
    let suite = tiny_suite(tmp.path());
    let s = suite.to_str().unwrap();
    // Only the real tools (kind, clusterctl, helm, kubectl), no docker or podman.
    let tools = tmp.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    for t in ["kind", "clusterctl", "helm", "kubectl"] {
        std::os::unix::fs::symlink(assets.path(t), tools.join(t)).unwrap();
    }
    let art = tmp.path().join("no-engine");
    let (code, err, art) = run_with_path(
        &[&tools],
        &["run", "--env", "kind", "--suite", s, "--artifacts", art.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 3, "{err}");
    let m = up_message(&art);
    assert!(m.contains("neither `docker` nor `podman`") && m.contains("install Docker"), "{m}");

    // A real engine, which cannot pull here (no registry): the real kind fails, its words reach
    // the report with the fix, and the half-made cluster is deleted (kind delete runs).
    let host = common::engine();
    let engine = tmp.path().join("engine");
    std::fs::create_dir_all(&engine).unwrap();
    std::os::unix::fs::symlink(
        scs_e2e::process::which("docker", &[]).expect("docker on PATH"),
        engine.join("docker"),
    )
    .unwrap();
    let art = tmp.path().join("no-pull");
    let (code, err, art) = run_with_path(
        &[&engine, &tools],
        &[
            "run",
            "--env",
            "kind",
            "--suite",
            s,
            "--artifacts",
            art.to_str().unwrap(),
            "--delete",
            "always",
        ],
        &[("DOCKER_HOST", Path::new(&host)), ("SCS_E2E_KIND_IMAGES", Path::new("pull"))],
    );
    assert_eq!(code, 3, "{err}");
    let m = up_message(&art);
    assert!(m.contains("`kind create cluster --name scs-e2e-"), "{m}");
    // The console shows kind's last lines and the fix too, not only results.json.
    assert!(
        err.contains("failed to pull image") && err.contains("SCS_E2E_KIND_IMAGES=offline"),
        "{err}"
    );
    assert!(m.contains(&format!("--image {}", scs_e2e::env::kind::NODE_IMAGE)), "{m}");
    assert!(m.contains("failed to pull image") && m.contains("kindCluster.nodeImage"), "{m}");
    // `kind delete cluster` ran (per --delete always) and took the state with the kubeconfig.
    let config = m.split("--config ").nth(1).unwrap().split(' ').next().unwrap();
    let state = Path::new(config).parent().unwrap();
    assert!(
        state.ends_with(format!("kind-{}", m.split("--name ").nth(1).unwrap().split(' ').next().unwrap())),
        "{m}"
    );
    assert!(!state.exists(), "{} removed by down", state.display());
    let r = scs_e2e::report::json::read(&art.join("results.json")).unwrap();
    assert_eq!(
        r.properties.get("node_image").map(String::as_str),
        Some(scs_e2e::env::kind::NODE_IMAGE)
    );
    assert!(
        r.properties.get("clusterctl").is_some_and(|v| v.contains("v1.10")),
        "{:?}",
        r.properties
    );
    assert!(
        r.properties.get("kind").is_some_and(|v| v.contains("v0.29.0")),
        "{:?}",
        r.properties
    );

    // A tool missing: named with how to get it.
    std::fs::remove_file(tools.join("clusterctl")).unwrap();
    let art = tmp.path().join("no-clusterctl");
    let (code, err, art) = run_with_path(
        &[&engine, &tools],
        &["run", "--env", "kind", "--suite", s, "--artifacts", art.to_str().unwrap()],
        &[("DOCKER_HOST", Path::new(&host))],
    );
    assert_eq!(code, 3, "{err}");
    let m = up_message(&art);
    assert!(m.contains("needs `clusterctl` on PATH") && m.contains("scs-e2e lab install"), "{m}");
}

#[test]
fn env_openstack_refuses_unclear_credentials_before_touching_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = tiny_suite(tmp.path());
    let s = suite.to_str().unwrap();
    let clouds = tmp.path().join("clouds.yaml");
    std::fs::write(
        &clouds,
        "clouds:\n  one:\n    auth: {auth_url: 'http://127.0.0.1:1/v3', username: u, password: canary-pw-1, project_name: p, user_domain_name: d, project_domain_name: d}\n  two:\n    auth: {auth_url: 'http://127.0.0.1:1/v3', username: u, password: canary-pw-2, project_name: p, user_domain_name: d, project_domain_name: d}\n",
    )
    .unwrap();
    let art = tmp.path().join("out");
    let a = art.to_str().unwrap();
    let (code, err, _) = run_with_path(
        &[],
        &["run", "--env", "openstack", "--suite", s, "--artifacts", a],
        &[("OS_CLIENT_CONFIG_FILE", &clouds)],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("one") && err.contains("two"), "names the clouds: {err}");
    assert!(!art.exists(), "nothing written");
    let (code, err, _) = run_with_path(
        &[],
        &["run", "--env", "openstack", "--cloud", "three", "--suite", s, "--artifacts", a],
        &[("OS_CLIENT_CONFIG_FILE", &clouds)],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("three"), "{err}");
    assert!(!err.contains("canary-pw"), "{err}");
    assert!(!art.exists(), "nothing written");

    // A password that lives nowhere (no secure.yaml entry), and a region the cloud does not
    // list: each named with its fix, exit 2, nothing written.
    let three = tmp.path().join("three.yaml");
    std::fs::write(
        &three,
        "clouds:\n  three:\n    auth: {auth_url: 'http://127.0.0.1:1/v3', username: u, project_name: p, user_domain_name: d, project_domain_name: d}\n    regions: [RegionOne]\n",
    )
    .unwrap();
    let (code, err, _) = run_with_path(
        &[],
        &["run", "--env", "openstack", "--suite", s, "--artifacts", a],
        &[("OS_CLIENT_CONFIG_FILE", &three)],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("has no password") && err.contains("secure.yaml"), "{err}");
    assert!(!art.exists(), "nothing written");
    let secure = tmp.path().join("secure.yaml");
    std::fs::write(&secure, "clouds:\n  three:\n    auth: {password: canary-pw-3}\n").unwrap();
    let (code, err, _) = run_with_path(
        &[],
        &["run", "--env", "openstack", "--suite", s, "--artifacts", a],
        &[
            ("OS_CLIENT_CONFIG_FILE", &three),
            ("OS_CLIENT_SECURE_FILE", &secure),
            ("OS_REGION_NAME", Path::new("RegionNine")),
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no region `RegionNine` (its regions: RegionOne)"), "{err}");
    assert!(!err.contains("canary-pw"), "{err}");
    assert!(!art.exists(), "nothing written");

    // A valid cloud whose Keystone does not answer: exit 3 (the environment did not come up),
    // before any management cluster is made, with no password in the report.
    let (code, err, art) = run_with_path(
        &[],
        &["run", "--env", "openstack", "--cloud", "two", "--suite", s, "--artifacts", a],
        &[("OS_CLIENT_CONFIG_FILE", &clouds)],
    );
    assert_eq!(code, 3, "{err}");
    let m = up_message(&art);
    assert!(m.contains("cannot reach Keystone"), "{m}");
    for f in ["results.json", "junit_scs-e2e.xml"] {
        assert!(!std::fs::read_to_string(art.join(f)).unwrap().contains("canary-pw"), "{f}");
    }
}

/// CSPO's manifest goes in with the real kubectl: the variables base64-encoded into its Secret,
/// the manager with the import timeout and without the sidecar whose image is gone; the wait
/// names its Deployment when nothing can run it (no kubelet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cspo_is_installed_from_its_manifest_adjusted_and_waited_for() {
    let lab = common::lab();
    let assets = common::assets();
    let client = common::client().await;
    let mut spec = Spec::new(Infrastructure::OpenStack);
    spec.timeout = Duration::from_secs(5);
    let c = scs_e2e::env::cspo::Settings {
        manifest: fixtures().join("cspo/cspo-infrastructure-components.yaml").display().to_string(),
        variables: [
            ("GIT_PROVIDER", "github"),
            ("GIT_ORG_NAME", "SovereignCloudStack"),
            ("GIT_ACCESS_TOKEN", "canary-ghp-0c1e"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        import_timeout_minutes: Some(20),
    };
    let tools = mgmt::Tools {
        clusterctl: assets.path("clusterctl"),
        helm: assets.path("helm"),
        kubectl: assets.path("kubectl"),
    };
    let said = std::sync::Mutex::new(Vec::<String>::new());
    spec.cspo = Some(c);
    let err = mgmt::install_cspo(
        &spec,
        &tools,
        &lab.kubeconfig(),
        &client,
        &|l| said.lock().unwrap().push(l.to_string()),
        tokio::time::Instant::now() + spec.timeout,
        &CancellationToken::new(),
    )
    .await
    .expect_err("no kubelet: never Available");
    let msg = err.to_string();
    assert!(msg.contains("cspo-system/cspo-controller-manager: 0/1 ready"), "{msg}");
    assert!(!msg.contains("canary-ghp"), "{msg}");
    let d: Api<Deployment> = Api::namespaced(client.clone(), "cspo-system");
    let pod = d.get("cspo-controller-manager").await.unwrap().spec.template.spec.unwrap();
    let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["manager"]);
    assert_eq!(
        pod.containers[0].args.clone().unwrap(),
        [
            "--health-probe-bind-address=:8081",
            "--leader-elect",
            "--metrics-bind-address=:8080",
            "--image-import-timeout=20"
        ]
    );
    let s: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), "cspo-system");
    let data = s.get("cspo-cluster-stack-variables").await.unwrap().data.unwrap();
    assert_eq!(data["git-provider"].0, b"github");
    assert_eq!(data["git-access-token"].0, b"canary-ghp-0c1e");
    assert!(data.get("git-repo-name").is_none_or(|v| v.0.is_empty()));
    assert!(said.into_inner().unwrap()[0].starts_with("installing CSPO from "));
    // The adjusted manifest (with the token) did not stay behind.
    assert!(
        !std::env::temp_dir()
            .join(format!("scs-e2e-cspo-{}.yaml", std::process::id()))
            .exists()
    );
}
