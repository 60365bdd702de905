//! Test fixtures: one real lab per test binary (started on first use, killed when the binary
//! exits), a fresh namespace per test, and extra labs for tests that break theirs.
#![allow(dead_code)]

pub mod keystone;
pub mod openstack_services;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use scs_e2e::env::lab::build::{self, Assets};
use scs_e2e::env::lab::{Lab, LabOptions};

static SHARED: OnceLock<Lab> = OnceLock::new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn assets() -> Assets {
    let a = Assets::locate(None, None);
    if !a.missing().is_empty() {
        // Straight to stderr: libtest would capture eprintln!, and this can take minutes.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "building the lab's binaries into {} (first run: several minutes)",
            a.bin_dir.display()
        );
    }
    build::install(&a, &build::Quiet).expect("lab binaries (run `cargo run -- lab install`)");
    a
}

/// The real csctl, built on first use (it is not part of `lab install`): the reference that
/// `scs-e2e stack build` is compared with.
pub fn csctl() -> PathBuf {
    let a = Assets::locate(None, None);
    if !a.path("csctl").is_file() {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "building csctl into {} (first run: about two minutes)",
            a.bin_dir.display()
        );
    }
    build::ensure(&a, "csctl", &build::Quiet).expect("csctl (go build in fixtures/lab/control-plane)")
}

fn labs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("labs")
}

/// Options for a new lab in a fresh directory under target/tmp.
pub fn lab_options(name: &str) -> LabOptions {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = labs_dir().join(format!("{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    LabOptions::new(dir, assets())
}

/// The binary's shared lab. Started from a plain thread: tests each run their own runtime.
pub fn lab() -> &'static Lab {
    SHARED.get_or_init(|| {
        remove_dead_labs();
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(Lab::start(lab_options("shared"))).expect("start the shared lab")
        })
        .join()
        .expect("lab start thread")
    })
}

pub async fn client_for(lab: &Lab) -> kube::Client {
    scs_e2e::kube::client_from_kubeconfig(&lab.kubeconfig()).await.expect("lab client")
}

pub async fn client() -> kube::Client {
    client_for(lab()).await
}

/// Earlier test binaries' labs died with them (PDEATHSIG); their directories are removed here.
fn remove_dead_labs() {
    for e in std::fs::read_dir(labs_dir()).into_iter().flatten().flatten() {
        let alive = scs_e2e::env::lab::read_state(&e.path()).is_some_and(|s| s.pids.values().any(|p| scs_e2e::process::alive(*p)));
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A new namespace for one test.
pub async fn namespace(client: &kube::Client, prefix: &str) -> String {
    let name = format!("t-{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    api.create(&PostParams::default(), &ns).await.expect("create namespace");
    name
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_scs-e2e")
}

/// A step context for running one operation directly against a lab.
pub fn step_ctx(lab: &Lab, client: kube::Client, ns: &str, timeout: std::time::Duration) -> scs_e2e::context::StepCtx {
    let vars = std::collections::BTreeMap::from([("NAMESPACE".to_string(), ns.to_string())]);
    scs_e2e::context::StepCtx {
        resolver: std::sync::Arc::new(scs_e2e::kube::Resolver::new(client)),
        namespace: ns.to_string(),
        kubeconfig: lab.kubeconfig(),
        base_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        artifacts: std::env::temp_dir(),
        vars,
        extra_path: vec![assets().bin_dir],
        log: Default::default(),
        deadline: tokio::time::Instant::now() + timeout,
        cancel: Default::default(),
        outputs: Default::default(),
        cloud: None,
        run_id: scs_e2e::base::new_run_id(),
    }
}

pub const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.test.scs.community
spec:
  group: test.scs.community
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

/// Installs the Gadget CRD (idempotent: server-side apply) and a Gadget in `ns`.
pub async fn gadget(ctx: &scs_e2e::context::StepCtx, name: &str) {
    use scs_e2e::steps::Operation;
    let manifest =
        format!("{WIDGET_CRD}\n---\napiVersion: test.scs.community/v1\nkind: Gadget\nmetadata: {{name: {name}}}\nspec: {{size: 1}}\n");
    let op = scs_e2e::steps::apply::Apply {
        file: None,
        manifest: Some(serde_json::Value::String(manifest)),
        namespace: None,
    };
    op.run(ctx).await.expect("apply Gadget CRD and object");
}

/// The Gadget API in a namespace (the CRD that `gadget` installs).
pub fn gadget_api(client: &kube::Client, ns: &str) -> Api<kube::api::DynamicObject> {
    let ar = kube::discovery::ApiResource {
        group: "test.scs.community".into(),
        version: "v1".into(),
        api_version: "test.scs.community/v1".into(),
        kind: "Gadget".into(),
        plural: "gadgets".into(),
    };
    Api::namespaced_with(client.clone(), ns, &ar)
}

/// Sets a status condition on a Gadget through the status subresource.
pub async fn set_condition(client: &kube::Client, ns: &str, name: &str, type_: &str, status: &str, reason: &str) {
    let api = gadget_api(client, ns);
    let patch = serde_json::json!({"status": {"conditions": [{"type": type_, "status": status, "reason": reason, "message": "set by test", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    api.patch_status(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .expect("patch status");
}

/// The pids of processes whose command line mentions `needle` (to find strays).
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline"))
            && String::from_utf8_lossy(&cmd).contains(needle)
        {
            // Zombies have an empty cmdline, so a match is a live process.
            out.push(pid);
        }
    }
    out
}

/// A container engine for the real-kind tests: DOCKER_HOST's when it answers, else the
/// project's private one (`fixtures/engine/dockerd.sh up`: needs root and Debian's docker.io),
/// started once and left running (its images are the build cache). Returns DOCKER_HOST.
pub fn engine() -> String {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let answers = |host: &str| {
            std::process::Command::new("docker")
                .args(["info", "--format", "{{.ServerVersion}}"])
                .env("DOCKER_HOST", host)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if let Ok(h) = std::env::var("DOCKER_HOST")
            && answers(&h)
        {
            return h;
        }
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/engine/dockerd.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .arg("up")
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "the real-kind tests need a container engine: `{} up` failed (install Debian's docker.io, run as root)",
            script.display()
        );
        let line = String::from_utf8(out.stdout).unwrap();
        let host = line
            .trim()
            .strip_prefix("export DOCKER_HOST=")
            .expect("dockerd.sh prints the export line")
            .to_string();
        assert!(answers(&host), "the engine at {host} does not answer");
        host
    })
    .clone()
}

/// The offline images (`scs-e2e images build`, cached and keyed on the pins) in `engine()`.
pub fn images() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let host = engine();
        assets();
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "scs-e2e images build (first run: tens of minutes; cached afterwards)"
        );
        let st = std::process::Command::new(env!("CARGO_BIN_EXE_scs-e2e"))
            .args(["images", "build"])
            .env("DOCKER_HOST", &host)
            .stdin(std::process::Stdio::null())
            .status()
            .expect("scs-e2e");
        assert!(st.success(), "scs-e2e images build failed");
    });
}

/// Every file below `dir` (none if it is missing).
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Polls a real state until `check` gives a value (`Err`: a terminal state, fail at once):
/// the services have nothing to subscribe to.
pub async fn until<T, F, Fut>(what: &str, timeout: std::time::Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, String>>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match check().await {
            Ok(Some(v)) => return v,
            Ok(None) => {}
            Err(e) => panic!("{what}: {e}"),
        }
        assert!(std::time::Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}
