//! `--env kind` for real: a kind management cluster on a real container engine (DOCKER_HOST, or
//! the project's private one from fixtures/engine), with the node image and every controller
//! image built here from source (`SCS_E2E_KIND_IMAGES=offline`), Cluster API with CAPD, cert-manager
//! and CSO installed offline, and the in-memory stack served by CAPD inside kind.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use scs_e2e::report::Status;

/// kind clusters are heavy on two cores: the tests make them one at a time. Two at a time would
/// use the CPU the docker suites leave idle in their last quarter hour (59 % idle, vmstat), but
/// in a CI rehearsal beside the other tests, each kind cluster made beside the docker suites'
/// failed: kubeadm init inside `kind create cluster` (quickstart, upgrade), and the docker
/// suites' workload control planes never initialized within 900 s.
static ONE_CLUSTER: Mutex<()> = Mutex::new(());

fn kind() -> PathBuf {
    common::assets().path("kind")
}

fn kubectl() -> PathBuf {
    common::assets().path("kubectl")
}

fn scs_e2e(args: &[&str]) -> Command {
    let mut c = Command::new(common::bin());
    c.args(args)
        .env("DOCKER_HOST", common::engine())
        .env("SCS_E2E_KIND_IMAGES", "offline")
        .env_remove("KUBECONFIG")
        .env_remove("SCS_E2E_ENV")
        .stdin(Stdio::null());
    c
}

fn clusters() -> Vec<String> {
    let out = Command::new(kind())
        .args(["get", "clusters"])
        .env("DOCKER_HOST", common::engine())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

fn kind_delete(name: &str) {
    let st = Command::new(kind())
        .args(["delete", "cluster", "--name", name])
        .env("DOCKER_HOST", common::engine())
        .status()
        .unwrap();
    assert!(st.success());
}

/// `kubectl --kubeconfig K args` → stdout (asserting success).
fn kctl(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new(kubectl())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// One test's kind run: the images ready, the one-cluster slot held, its run id, cluster name
/// and artifacts directory.
struct KindRun {
    _one: std::sync::MutexGuard<'static, ()>,
    _tmp: tempfile::TempDir,
    art: PathBuf,
    id: String,
    name: String,
}

impl KindRun {
    fn new(prefix: &str) -> KindRun {
        common::images();
        let one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
        let tmp = tempfile::tempdir().unwrap();
        let id = format!("{prefix}{}", std::process::id());
        KindRun {
            _one: one,
            art: tmp.path().join("out"),
            _tmp: tmp,
            name: format!("scs-e2e-{id}"),
            id,
        }
    }

    /// `scs-e2e run --env kind --suite SUITE` with this run's id and artifacts, plus `extra`.
    fn command(&self, suite: &str, extra: &[&str]) -> Command {
        let mut args = vec!["run", "--env", "kind", "--suite", suite, "--run-id", &self.id, "--artifacts"];
        let art = self.art.to_str().unwrap();
        args.push(art);
        args.extend(extra);
        let mut c = scs_e2e(&args);
        // The run's state directory (kubeconfig, clusterctl repositories) goes with the test's
        // temporary directory, also when the test deletes the cluster with `kind delete`.
        c.env("XDG_STATE_HOME", self._tmp.path().join("state"));
        c
    }
}

/// The main job's suite and the upgrade suite in one kind management cluster, as one run (a
/// second cluster of the same kind would only repeat its creation and installs: about 5 minutes
/// of the tests' critical path on two cores). Deleting a passed run's kind cluster is asserted by
/// the docker suites' test.
#[test]
fn offline_quickstart_and_upgrade_in_a_real_kind_cluster_pass_and_pull_nothing() {
    let run = KindRun::new("kq");
    let (art, name) = (&run.art, &run.name);
    let t0 = Instant::now();
    let out = run
        .command("quickstart", &["--suite", "upgrade", "--delete", "never"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let kept = clusters().contains(name);
    let report = scs_e2e::report::json::read(&art.join("results.json"));
    // Look at the cluster before anything can fail, then always remove it.
    let kubeconfig = art.with_file_name("kubeconfig");
    if kept {
        let kc = Command::new(kind())
            .args(["get", "kubeconfig", "--name", name])
            .env("DOCKER_HOST", common::engine())
            .output()
            .unwrap();
        std::fs::write(&kubeconfig, kc.stdout).unwrap();
    }
    let inspect = kept.then(|| {
        (
            kctl(
                &kubeconfig,
                &[
                    "get",
                    "nodes",
                    "-o",
                    "jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
                ],
            ),
            kctl(
                &kubeconfig,
                &[
                    "get",
                    "pods",
                    "-A",
                    "-o",
                    "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {.status.phase}{\"\\n\"}{end}",
                ],
            ),
            kctl(
                &kubeconfig,
                &[
                    "get",
                    "events",
                    "-A",
                    "-o",
                    "jsonpath={range .items[*]}{.reason} {.involvedObject.name}: {.message}{\"\\n\"}{end}",
                ],
            ),
            kctl(
                &kubeconfig,
                &[
                    "get",
                    "pods",
                    "-A",
                    "-o",
                    "jsonpath={range .items[*]}{range .spec.containers[*]}{.image}{\"\\n\"}{end}{end}",
                ],
            ),
        )
    });
    // The same real cluster serves the pod-log canary: kubelet writes what a container prints.
    let canary = kept.then(|| pod_log_canary(&kubeconfig, &art.with_file_name("canary")));
    if kept {
        kind_delete(name);
    }
    assert_eq!(out.status.code(), Some(0), "{err}");
    let r = report.unwrap();
    assert_eq!(
        r.properties.get("images").map(String::as_str),
        Some("offline"),
        "{:?}",
        r.properties
    );
    assert_eq!(
        r.properties.get("node_image").map(String::as_str),
        Some(scs_e2e::env::images::NODE_IMAGE)
    );
    for suite in ["quickstart", "upgrade"] {
        let mine: Vec<_> = r.scenarios.iter().filter(|s| s.suite == suite).collect();
        assert!(!mine.is_empty(), "no {suite} scenario in {:?}", r.scenarios);
        for s in mine {
            assert!(s.steps.len() >= 7, "{:?}", s.steps);
            for st in &s.steps {
                assert_eq!(st.status, Status::Passed, "{suite}/{}: {}: {:?}", s.name, st.name, st.message);
            }
        }
    }
    // The upgrade's end state is asserted by the suite's own steps: they are there and passed.
    let upgrade = r.scenarios.iter().find(|s| s.suite == "upgrade").unwrap();
    assert!(
        upgrade.steps.iter().filter(|s| s.operation == "upgradeCluster").count() >= 2,
        "{:?}",
        upgrade.steps
    );
    assert!(
        upgrade.steps.iter().any(|s| s.name.starts_with("end state after")),
        "{:?}",
        upgrade.steps
    );
    canary.expect("kept with --delete never")();
    let (nodes, pods, events, images) = inspect.expect("kept with --delete never");
    assert!(nodes.lines().all(|l| l.ends_with(" True")) && !nodes.is_empty(), "{nodes}");
    for ns in [
        "cert-manager",
        "capi-system",
        "capi-kubeadm-bootstrap-system",
        "capi-kubeadm-control-plane-system",
        "capd-system",
        "cso-system",
        "kube-system",
    ] {
        let mine: Vec<&str> = pods.lines().filter(|l| l.starts_with(&format!("{ns}/"))).collect();
        assert!(!mine.is_empty(), "no pod in {ns}:\n{pods}");
        assert!(mine.iter().all(|l| l.ends_with(" Running")), "{ns}:\n{pods}");
    }
    // Every image was there before it was needed: kubelet never pulled one.
    assert!(!events.lines().any(|l| l.starts_with("Pulling ")), "{events}");
    assert!(images.contains("registry.k8s.io/cluster-api/cluster-api-controller:"), "{images}");
    assert!(images.contains("ghcr.io/sovereigncloudstack/cso:"), "{images}");
    eprintln!("quickstart and upgrade suites in kind: {:.0}s", t0.elapsed().as_secs_f64());
}

/// A registered secret printed by a pod (plain and base64), collected with `podLogs` when the
/// scenario fails, appears in no artifact and not on the console; the logs themselves are there,
/// masked. Runs the real binary against a real kind cluster (its kubelet writes the logs); the
/// checks are returned, to run once the cluster is deleted.
fn pod_log_canary(kubeconfig: &Path, dir: &Path) -> impl FnOnce() + use<> {
    const TOKEN: &str = "ghp_canaryPodLog0123456789abcdef";
    std::fs::create_dir_all(dir).unwrap();
    let suite = dir.join("leaky-pod.yaml");
    // The helper image is preloaded on the node (busybox: sh, base64); it is never pulled.
    let pod = r#"apiVersion: v1
kind: Pod
metadata: {name: talker}
spec:
  restartPolicy: Never
  containers:
  - name: talker
    image: docker.io/kindest/local-path-helper:v20241212-8ac705d0
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "echo token=$TOKEN; printf %s $TOKEN | base64"]
    env:
    - name: TOKEN
      valueFrom: {secretKeyRef: {name: leaky, key: token}}
"#;
    let script = format!(
        "kubectl -n \"$NAMESPACE\" create secret generic leaky --from-literal=token=\"$GITHUB_TOKEN\"\nkubectl -n \"$NAMESPACE\" apply -f - <<'EOF'\n{pod}EOF\nkubectl -n \"$NAMESPACE\" wait --for=jsonpath='{{.status.phase}}'=Succeeded pod/talker --timeout=180s\n"
    );
    let body = serde_json::json!({
        "apiVersion": "scs-e2e/v1alpha1", "kind": "Suite", "name": "leaky-pod",
        "scenarios": [{
            "name": "pod-prints-a-secret",
            "steps": [{"command": {"script": script}}, {"command": {"script": "exit 3"}}],
            "onFailure": [{"podLogs": {}}, {"resources": {"kinds": ["v1/Secret"]}}],
        }],
    });
    std::fs::write(&suite, serde_json::to_string_pretty(&body).unwrap()).unwrap();
    let art = dir.join("out");
    let out = scs_e2e(&["run", "-v", "--env", "kubeconfig", "--kubeconfig"])
        .arg(kubeconfig)
        .arg("--suite")
        .arg(&suite)
        .arg("--artifacts")
        .arg(&art)
        .env("GITHUB_TOKEN", TOKEN)
        .env("PATH", scs_e2e::process::path_with(&[common::assets().bin_dir.clone()]))
        .output()
        .unwrap();
    let (code, stdout, stderr) = (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    let files: Vec<(PathBuf, String)> = common::files_under(&art)
        .into_iter()
        .map(|p| {
            let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
            (p, text)
        })
        .collect();
    move || {
        assert_eq!(code, Some(1), "the scenario fails on purpose:\n{stderr}");
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(TOKEN);
        for c in [TOKEN, b64.as_str()] {
            for (p, text) in &files {
                assert!(!text.contains(c), "{} holds the canary", p.display());
            }
            assert!(!stdout.contains(c) && !stderr.contains(c), "the console shows the canary");
        }
        let log = files
            .iter()
            .find(|(p, _)| p.file_name().is_some_and(|n| n == "talker_talker.log"))
            .unwrap_or_else(|| {
                panic!(
                    "the pod's log was collected:\n{}",
                    files
                        .iter()
                        .map(|(p, t)| format!("== {}\n{t}", p.display()))
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            });
        // Both lines were printed, each masked, not dropped.
        assert_eq!(log.1.lines().collect::<Vec<_>>(), ["token=***", "***"], "{}", log.1);
        let dumped = files
            .iter()
            .find(|(p, _)| p.to_string_lossy().ends_with("_leaky.yaml"))
            .expect("Secret leaky dumped");
        assert!(dumped.1.contains("token: REDACTED"), "{}", dumped.1);
    }
}

#[test]
fn a_killed_run_leaves_its_kind_cluster_for_kind_delete_and_the_plan_names_it() {
    let run = KindRun::new("kk");
    let (art, name) = (&run.art, run.name.clone());
    let mut child = run
        .command("quickstart", &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Until kind has made the node container (bounded: the run may fail first).
    let deadline = Instant::now() + Duration::from_secs(600);
    let node = format!("{name}-control-plane");
    let mut seen = false;
    while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        let ps = Command::new("docker")
            .args(["ps", "-q", "--filter", &format!("name=^{node}$")])
            .env("DOCKER_HOST", common::engine())
            .output()
            .unwrap();
        if !ps.stdout.is_empty() {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen, "the run never made its node container");
    // The plan, written before anything started, names the management cluster.
    let plan: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(art.join("clusters.json")).unwrap()).unwrap();
    assert_eq!(plan["managementCluster"], name.as_str(), "{plan}");
    // kind's own create may still be finishing; once it is there, `kind delete` removes it.
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline && !clusters().contains(&name) {
        std::thread::sleep(Duration::from_millis(500));
    }
    kind_delete(&name);
    assert!(!clusters().contains(&name));
    let ps = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=io.x-k8s.kind.cluster={name}")])
        .env("DOCKER_HOST", common::engine())
        .output()
        .unwrap();
    assert!(ps.stdout.is_empty(), "containers left: {}", String::from_utf8_lossy(&ps.stdout));
}

/// Stops a test's own engine, whatever happens.
struct Engine {
    dir: String,
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/engine/dockerd.sh"))
            .args(["down", "--purge"])
            .env("SCS_E2E_ENGINE_DIR", &self.dir)
            .env("SCS_E2E_ENGINE_POOL", "172.31.0.0/16")
            .status();
    }
}

#[test]
fn an_engine_whose_runc_needs_a_capability_the_machine_lacks_is_refused_with_the_fix() {
    common::images();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let lacks = scs_e2e::env::kind::bounding_set_has(&status, 24) == Some(false);
    // A second engine of ours, with plain runc: what a stock Docker is on this VM.
    let engine = Engine {
        dir: format!("/tmp/scs-e2e-caps-{}", std::process::id()),
    };
    let out = Command::new("bash")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/engine/dockerd.sh"))
        .arg("up")
        .env("SCS_E2E_ENGINE_DIR", &engine.dir)
        .env("SCS_E2E_ENGINE_POOL", "172.31.0.0/16")
        .env("SCS_E2E_ENGINE_RUNTIME", "runc")
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success());
    let host = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .strip_prefix("export DOCKER_HOST=")
        .unwrap()
        .to_string();
    let docker = |args: &[&str]| Command::new("docker").args(args).env("DOCKER_HOST", &host).output().unwrap();
    // The premise: a privileged container running as root (as kind's node does) fails (or, on
    // a machine with the capability, runs). busybox from the local-path-helper image.
    let helper = scs_e2e::env::images::recipe("local-path-helper").unwrap();
    let archive = scs_e2e::env::images::Cache::locate().archive(helper, &scs_e2e::env::images::key(helper));
    assert!(docker(&["load", "-i", archive.to_str().unwrap()]).status.success());
    let run = docker(&["run", "-d", "--privileged", "--name", "caps", helper.tags[0], "sleep", "60"]);
    let said = String::from_utf8_lossy(&run.stderr).to_string();
    let _ = docker(&["rm", "-f", "caps"]);
    assert_eq!(run.status.success(), !lacks, "{said}");
    if lacks {
        assert!(scs_e2e::env::kind::caps_failure(&said), "{said}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let art = tmp.path().join("out");
    let out = scs_e2e(&[
        "run",
        "--env",
        "kind",
        "--suite",
        "quickstart",
        "--artifacts",
        art.to_str().unwrap(),
    ])
    .env("DOCKER_HOST", &host)
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert_eq!(
        err.contains("lacks CAP_SYS_RESOURCE") && err.contains("fixtures/engine/dockerd.sh up"),
        lacks,
        "{err}"
    );
    if lacks {
        // Refused before any cluster was made.
        assert!(docker(&["ps", "-aq", "--filter", "label=io.x-k8s.kind.role"]).stdout.is_empty());
    }
}

/// Faults done to a running docker suites run from outside, as an operator would see them.
#[derive(Debug, Default)]
struct Faults {
    /// The docker-checks worker (Machine, node container) killed, and when.
    killed: Option<(String, String, chrono::DateTime<chrono::Utc>)>,
    /// That Machine was deleted (remediated) while the run went on.
    remediated: bool,
    /// The CSO pod deleted once the docker cluster's class was v2, and when.
    cso_deleted: Option<(String, chrono::DateTime<chrono::Utc>)>,
    /// The CSO pod that took over, Ready.
    cso_replacement: Option<String>,
}

/// Watches the run's kind management cluster and does two faults: it kills the docker-checks
/// cluster's worker container once the worker's node registered but before the Cluster is
/// Available (so during `waitCluster`; the stack's MachineHealthCheck must replace it), and
/// deletes the CSO pod once the docker cluster was moved to the v2 class (mid-upgrade; the
/// upgrade must still complete). Polls the objects until `stop` is set.
fn inject_faults(cluster: String, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<Faults> {
    use serde_json::Value;
    std::thread::spawn(move || {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("mgmt.kubeconfig");
        let mut have_kubeconfig = false;
        let mut f = Faults::default();
        let get = |kind_: &str, ns: Option<&str>| -> Vec<Value> {
            let mut c = Command::new(kubectl());
            c.arg("--kubeconfig").arg(&kubeconfig).args(["get", kind_, "-o", "json"]);
            match ns {
                Some(ns) => c.args(["-n", ns]),
                None => c.arg("-A"),
            };
            c.output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
                .and_then(|v| v["items"].as_array().cloned())
                .unwrap_or_default()
        };
        let in_ns = |o: &Value, prefix: &str| o["metadata"]["namespace"].as_str().is_some_and(|n| n.starts_with(prefix));
        let available = |c: &Value| {
            c["status"]["v1beta2"]["conditions"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|x| x["type"] == "Available" && x["status"] == "True"))
        };
        while !stop.load(std::sync::atomic::Ordering::SeqCst) && (f.cso_replacement.is_none() || !f.remediated) {
            std::thread::sleep(Duration::from_secs(2));
            if !have_kubeconfig {
                let out = Command::new(kind())
                    .args(["get", "kubeconfig", "--name", &cluster])
                    .env("DOCKER_HOST", common::engine())
                    .output()
                    .unwrap();
                if out.status.success() {
                    std::fs::write(&kubeconfig, &out.stdout).unwrap();
                    have_kubeconfig = true;
                }
                continue;
            }
            let machines = get("machines.cluster.x-k8s.io", None);
            let clusters = get("clusters.cluster.x-k8s.io", None);
            match &f.killed {
                None => {
                    let checks_available = clusters.iter().any(|c| in_ns(c, "e2e-workload-") && available(c));
                    let worker = machines.iter().find(|m| {
                        in_ns(m, "e2e-workload-")
                            && m["metadata"]["labels"]["cluster.x-k8s.io/deployment-name"].is_string()
                            && m["status"]["nodeRef"]["name"].is_string()
                    });
                    if let (Some(m), false) = (worker, checks_available) {
                        let node = m["status"]["nodeRef"]["name"].as_str().unwrap().to_string();
                        let out = Command::new("docker")
                            .args(["kill", &node])
                            .env("DOCKER_HOST", common::engine())
                            .output()
                            .unwrap();
                        assert!(out.status.success(), "docker kill {node}: {}", String::from_utf8_lossy(&out.stderr));
                        eprintln!("fault: killed worker node container {node}");
                        let name = m["metadata"]["name"].as_str().unwrap().to_string();
                        f.killed = Some((name, node, chrono::Utc::now()));
                    }
                }
                Some((name, ..)) if !f.remediated => {
                    f.remediated = !machines.iter().any(|m| m["metadata"]["name"] == name.as_str());
                }
                _ => {}
            }
            let pods = || get("pods", Some("cso-system"));
            let ready = |p: &Value| {
                p["metadata"]["deletionTimestamp"].is_null()
                    && p["status"]["conditions"]
                        .as_array()
                        .is_some_and(|cs| cs.iter().any(|x| x["type"] == "Ready" && x["status"] == "True"))
            };
            match &f.cso_deleted {
                None => {
                    let upgrading = clusters
                        .iter()
                        .any(|c| in_ns(c, "e2e-lifecycle-") && c["spec"]["topology"]["class"].as_str().is_some_and(|k| k.ends_with("-v2")));
                    if upgrading {
                        let pods = pods();
                        let pod = pods.iter().find(|p| ready(p)).expect("a CSO pod runs before the upgrade");
                        let name = pod["metadata"]["name"].as_str().unwrap().to_string();
                        kctl(&kubeconfig, &["-n", "cso-system", "delete", "pod", &name, "--wait=false"]);
                        eprintln!("fault: deleted the CSO pod {name} mid-upgrade");
                        f.cso_deleted = Some((name, chrono::Utc::now()));
                    }
                }
                Some((old, _)) if f.cso_replacement.is_none() => {
                    f.cso_replacement = pods()
                        .iter()
                        .find(|p| ready(p) && p["metadata"]["name"] != old.as_str())
                        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string());
                }
                _ => {}
            }
        }
        f
    })
}

/// `suites/docker.yaml` and `suites/docker-checks.yaml` in one run (two workload clusters at
/// once): CAPD starts the machines as containers of our node image, CSO applies the docker
/// stack's addons at the lifecycle hooks (kindnet, local-path storage), nodes and kube-system pods
/// become Ready, a Service answers by name, the same-minor upgrade replaces every machine and the
/// ClusterAddon follows the new release; the SCS checks run against the workload cluster (its
/// version in the compliance report; Sonobuoy's focus of conformance tests with the images built
/// here, each test a passed JUnit testcase); afterwards no container of either workload cluster and no
/// kind cluster is left. Faults on the way (see [`inject_faults`]): the docker-checks worker's
/// container is killed during `waitCluster` and replaced by the stack's MachineHealthCheck, and
/// the CSO pod is deleted mid-upgrade.
#[test]
fn offline_docker_suites_run_real_workload_clusters_and_leave_no_container() {
    let run = KindRun::new("kd");
    let mirror = crate::checks::version_policy_mirror(None, &[]);
    let data = format!("VERSION_POLICY_DATA={}", mirror.path().display());
    let t0 = Instant::now();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let faults = inject_faults(run.name.clone(), stop.clone());
    let out = run
        .command("docker", &["--suite", "docker-checks", "--var", &data])
        .output()
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let faults = faults.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let left = clusters().contains(&run.name);
    if left {
        kind_delete(&run.name);
    }
    // The workload clusters are named after their scenarios' namespaces (see the suites).
    let r = scs_e2e::report::json::read(&run.art.join("results.json")).unwrap();
    let sc = r.scenarios.iter().find(|s| s.suite == "docker").unwrap();
    let checks = r.scenarios.iter().find(|s| s.suite == "docker-checks").unwrap();
    let docker = |args: &[&str]| {
        let out = Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", common::engine())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let containers = docker(&["ps", "-a", "--format", "{{.Names}} {{.Labels}}"]);
    // A failed run keeps its clusters; with the management cluster deleted above, CAPD's
    // containers would stay: removed before anything is asserted.
    for ns in [&sc.namespace, &checks.namespace].into_iter().flatten() {
        let ids = docker(&["ps", "-aq", "--filter", &format!("label=io.x-k8s.kind.cluster={ns}")]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            docker(&[&["rm", "-f", "-v"][..], &ids].concat());
        }
    }
    let summary: Vec<String> = [sc, checks]
        .iter()
        .flat_map(|sc| sc.steps.iter().map(|s| format!("{:?} {} {:?}", s.status, s.name, s.message)))
        .collect();
    assert_eq!(out.status.code(), Some(0), "{summary:#?}\n{err}\n{faults:?}");
    // The node fault hit the docker-checks cluster while its waitCluster ran, and the
    // MachineHealthCheck replaced the Machine (the wait then passed: asserted above).
    let (machine, node, at) = faults.killed.clone().expect("the worker's node registered, and was killed");
    let wait = checks.steps.iter().find(|s| s.operation == "waitCluster").unwrap();
    let wait_end = wait.started_at + chrono::Duration::milliseconds((wait.duration_secs * 1000.0) as i64);
    assert!(
        wait.started_at < at && at < wait_end,
        "{node} was killed at {at}, outside waitCluster ({} + {}s)",
        wait.started_at,
        wait.duration_secs
    );
    assert!(faults.remediated, "Machine {machine} (node {node}) was not replaced: {faults:?}");
    // The CSO fault came during the docker cluster's upgrade, which completed (the end state
    // asserts passed) with another CSO pod.
    let (pod, at) = faults.cso_deleted.clone().expect("the CSO pod was deleted mid-upgrade");
    let upgrade = sc.steps.iter().find(|s| s.operation == "upgradeCluster").unwrap();
    assert!(
        upgrade.started_at < at,
        "CSO pod {pod} deleted at {at}, before the upgrade began at {}",
        upgrade.started_at
    );
    assert!(faults.cso_replacement.is_some(), "no CSO pod took over from {pod}: {faults:?}");
    assert!(!left, "--delete success removes the kind cluster of a passed run");
    let answer = sc
        .steps
        .iter()
        .find(|s| s.name.starts_with("a Deployment answers"))
        .and_then(|s| s.log.as_ref())
        .map(|l| std::fs::read_to_string(run.art.join(l)).unwrap())
        .unwrap();
    assert!(answer.contains("answer: web-"), "{answer}");
    for ns in [&sc.namespace, &checks.namespace].map(|n| n.clone().unwrap_or_default()) {
        assert!(
            !ns.is_empty() && !containers.contains(&ns),
            "containers of {ns} left:\n{containers}"
        );
    }
    // The checks saw the workload cluster: its version, and each check ran.
    let yaml = std::fs::read_to_string(run.art.join("docker-checks/workload/docker-workload-compliance.yaml")).unwrap();
    assert!(yaml.contains("The K8s cluster version 1.33.13 "), "{yaml}");
    for id in [
        "cncf-k8s-conformance",
        "version-policy-check",
        "node-distribution-check",
        "default-storage-class",
    ] {
        assert!(yaml.contains(id), "{id} in {yaml}");
    }
    // Sonobuoy ran the focus in the workload cluster with the images built here: each of the
    // three conformance tests is a passed testcase of the step's JUnit, and no other e2e test ran.
    let junit = std::fs::read_to_string(run.art.join("docker-checks/workload/junit_docker-workload-checks.xml")).unwrap();
    let e2e: Vec<&str> = junit.split("<testcase ").filter(|t| t.contains("classname=\"sonobuoy.")).collect();
    for name in [
        "Pods should be submitted and removed",
        "Services should serve a basic endpoint from pods",
        "ReplicationController should test the lifecycle of a ReplicationController",
    ] {
        let case = e2e
            .iter()
            .find(|t| t.contains(name))
            .unwrap_or_else(|| panic!("no e2e testcase {name:?} in {junit}"));
        let body = case.split("</testcase>").next().unwrap_or(case);
        assert!(
            !body.contains("<failure") && !body.contains("<skipped"),
            "{name} did not pass: {case}"
        );
    }
    // Besides ginkgo's suite nodes ([SynchronizedBeforeSuite], ...), only the focus ran.
    let specs = e2e.iter().filter(|t| t.starts_with("name=\"[It] ")).count();
    assert_eq!(specs, 3, "only the focus ran: {junit}");
    eprintln!("docker and docker-checks suites in kind: {:.0}s", t0.elapsed().as_secs_f64());
}

/// `images build` removes the image a rebuild replaced (and a node image's stale key marker)
/// once nothing else names it, and keeps one that someone tagged too.
#[test]
fn a_rebuilt_image_leaves_no_predecessor_unless_someone_else_still_names_it() {
    let dir = tempfile::tempdir().unwrap();
    // The engine CLI as `images build` runs it, pointed at the test engine.
    let docker = dir.path().join("docker");
    std::fs::write(
        &docker,
        format!("#!/bin/sh\nDOCKER_HOST='{}' exec docker \"$@\"\n", common::engine()),
    )
    .unwrap();
    std::fs::set_permissions(&docker, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let engine = scs_e2e::env::images::Engine { docker };
    let n = std::process::id();
    // A one-file image whose content (and so ID) differs per call.
    let import = |content: &str, tag: &str| -> String {
        let root = dir.path().join("rootfs");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("content"), content).unwrap();
        let tar = dir.path().join("rootfs.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        engine.run(&["import", &tar.display().to_string(), tag]).unwrap();
        engine.id_of(tag).expect("imported")
    };

    let tag = format!("scs-e2e-test/replaced:{n}");
    let marker = format!("scs-e2e.local/kind-node:key-test{n}");
    let old = import("first build", &tag);
    engine.run(&["tag", &tag, &marker]).unwrap();
    // Nothing to do while the tag still names the same image.
    engine.remove_replaced(&old, &tag);
    assert_eq!(engine.id_of(&tag).as_deref(), Some(old.as_str()));
    let new = import("second build", &tag);
    assert_ne!(old, new);
    engine.remove_replaced(&old, &tag);
    assert_eq!(engine.id_of(&old), None, "the replaced image stays in the engine");
    assert_eq!(engine.id_of(&marker), None, "its key marker stays");
    assert_eq!(engine.id_of(&tag).as_deref(), Some(new.as_str()));

    // Someone else's tag keeps the predecessor.
    let kept = format!("scs-e2e-test/kept:{n}");
    engine.run(&["tag", &tag, &kept]).unwrap();
    let newer = import("third build", &tag);
    engine.remove_replaced(&new, &tag);
    assert_eq!(
        engine.id_of(&kept).as_deref(),
        Some(new.as_str()),
        "an image someone tagged was removed"
    );
    assert_eq!(engine.id_of(&tag).as_deref(), Some(newer.as_str()));

    // A node image of an older key that only its stale marker names goes with the marker; the
    // current key's marker stays. (In a repository of the test's own: the real node image's
    // marker must stay.)
    let stale = format!("scs-e2e-test/kind-node-{n}:key-a");
    let current = format!("scs-e2e-test/kind-node-{n}:key-b");
    let orphan = import("an older node image", &stale);
    engine.run(&["tag", &tag, &current]).unwrap();
    engine.remove_stale_markers(&current);
    assert_eq!(engine.id_of(&stale), None);
    assert_eq!(engine.id_of(&orphan), None, "the image only a stale marker named stays");
    assert_eq!(engine.id_of(&current).as_deref(), Some(newer.as_str()));
    for t in [&tag, &kept, &current] {
        engine.run(&["image", "rm", t]).unwrap();
    }
}
