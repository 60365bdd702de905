//! The lab's Cluster API layer: the core manager, the kubeadm bootstrap and control-plane
//! providers, CAPD (whose in-memory backend simulates machines and serves one small API server per
//! workload cluster) and the Cluster Stack Operator in local mode, as local processes.
//!
//! Like envtest, the CRDs' conversion webhooks and the webhook configurations are rewritten to
//! loopback URLs that trust the lab CA, and each controller gets its own ports. Two ports are
//! fixed by the controllers themselves (CSO's webhook server 9443, CAPD's in-memory debug server
//! 19000), so one Cluster API lab runs per machine at a time: others wait on a machine-wide lock,
//! for a bounded time, and are told who holds it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::build::Assets;
use super::pki::Pki;
use super::{Lab, LabError};

/// Controllers in start order: webhooks a later controller's objects need come first.
pub const CONTROLLERS: &[&str] = &["cluster-api", "kubeadm-bootstrap", "kubeadm-control-plane", "capd", "cso"];

/// The controllers of a lab, in start order: the OpenStack layer (ORC, CAPO) after the rest.
pub fn controllers(openstack: bool) -> Vec<&'static str> {
    let extra: &[&str] = if openstack { super::build::OPENSTACK } else { &[] };
    CONTROLLERS.iter().chain(extra).copied().collect()
}

/// Whether `name` is one of the controllers a lab may run.
pub fn is_controller(name: &str) -> bool {
    controllers(true).contains(&name)
}

/// Cluster API providers (their CRDs carry the contract label).
const PROVIDERS: &[&str] = &["kubeadm-bootstrap", "kubeadm-control-plane", "capd", "capo"];

/// Ports the controllers hard-code (see the module comment).
pub const CSO_WEBHOOK_PORT: u16 = 9443;
/// CAPD's in-memory debug server port (fixed by CAPD).
pub const CAPD_DEBUG_PORT: u16 = 19000;

/// Where CSO finds release assets in local mode: `<dir>/cluster-stacks/<tag>/`.
pub const RELEASE_DIR: &str = "releases";

const FIELD_MANAGER: &str = "scs-e2e-lab";
const FEATURE_GATES: &str = "ClusterTopology=true,RuntimeSDK=true";
/// The ExtensionConfig registering CSO's runtime hooks.
pub const EXTENSION_CONFIG: &str = "cso-hooks";

/// The loopback ports of one Cluster API layer controller.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ControllerPorts {
    /// Its webhook server (CSO's is always [`CSO_WEBHOOK_PORT`]).
    pub webhook: u16,
    /// Its health probe (`/healthz`, `/readyz`) server.
    pub health: u16,
    /// Its metrics (diagnostics) server.
    pub metrics: u16,
    /// CSO's runtime-extension (hook) server; 0 for the others.
    #[serde(default)]
    pub hook: u16,
}

/// Free loopback ports for every controller, all chosen while held so none repeat.
pub fn pick_ports(controllers: &[&str]) -> std::io::Result<BTreeMap<String, ControllerPorts>> {
    let held = super::reserve_ports(controllers.len() * 4)?;
    let p = super::ports_of(&held)?;
    Ok(controllers
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let cso = *n == "cso";
            let ports = ControllerPorts {
                webhook: if cso { CSO_WEBHOOK_PORT } else { p[i * 4] },
                health: p[i * 4 + 1],
                metrics: p[i * 4 + 2],
                hook: if cso { p[i * 4 + 3] } else { 0 },
            };
            (n.to_string(), ports)
        })
        .collect())
}

/// Each controller's command line and environment.
pub fn process_specs(
    dir: &Path,
    pki: &Pki,
    assets: &Assets,
    ports: &BTreeMap<String, ControllerPorts>,
) -> BTreeMap<String, (Vec<String>, BTreeMap<String, String>)> {
    let d = |p: &Path| p.display().to_string();
    let kubeconfig = d(&dir.join("kubeconfig"));
    let webhook_dir = d(&pki.webhook_dir());
    let mut out = BTreeMap::new();
    for name in controllers(true).into_iter().filter(|n| ports.contains_key(*n)) {
        let p = ports[name];
        let mut env = BTreeMap::from([("KUBECONFIG".to_string(), kubeconfig.clone())]);
        let args: Vec<String> = if name == "orc" {
            vec![
                "--leader-elect=false".into(),
                format!("--health-probe-bind-address=127.0.0.1:{}", p.health),
                format!("--metrics-bind-address=127.0.0.1:{}", p.metrics),
                // Plain HTTP: the lab has no metrics clients to authenticate.
                "--metrics-secure=false".into(),
            ]
        } else if name == "cso" {
            // CSO's webhook server has no cert-dir flag: controller-runtime looks in
            // $TMPDIR/k8s-webhook-server/serving-certs, so TMPDIR points into the lab.
            env.insert("TMPDIR".into(), d(&dir.join("cso-tmp")));
            // `helm template` runs as a child process: our helm first on PATH.
            let path = std::env::var("PATH").unwrap_or_default();
            env.insert("PATH".into(), format!("{}:{path}", d(&assets.bin_dir)));
            vec![
                "--leader-elect=false".into(),
                format!("--health-probe-bind-address=127.0.0.1:{}", p.health),
                format!("--metrics-bind-address=127.0.0.1:{}", p.metrics),
                format!("--hook-port={}", p.hook),
                format!("--hook-cert-dir={webhook_dir}"),
                "--local=true".into(),
                format!("--release-dir={}", d(&dir.join(RELEASE_DIR))),
                "--log-level=info".into(),
            ]
        } else {
            if name == "capd" {
                // The in-memory workload API servers listen here.
                env.insert("POD_IP".into(), "127.0.0.1".into());
            }
            let mut args: Vec<String> = vec![
                "--leader-elect=false".into(),
                format!("--webhook-port={}", p.webhook),
                format!("--webhook-cert-dir={webhook_dir}"),
                format!("--health-addr=127.0.0.1:{}", p.health),
                format!("--diagnostics-address=127.0.0.1:{}", p.metrics),
                "--insecure-diagnostics=true".into(),
                "--v=2".into(),
            ];
            // CAPO shares Cluster API's manager flags but has no feature-gates flag.
            if name != "capo" {
                args.push(format!("--feature-gates={FEATURE_GATES}"));
            }
            args
        };
        out.insert(name.to_string(), (args, env));
    }
    out
}

/// A machine-wide lock: the fixed ports allow one Cluster API lab at a time.
pub struct MachineLock(#[allow(dead_code)] crate::process::FileLock);

/// The machine-wide lock file. In /tmp, not the cache: the ports are the machine's, whatever
/// cache a run uses.
pub const MACHINE_LOCK: &str = "/tmp/scs-e2e-cluster-api.lock";

/// How long a lab waits for another one's Cluster API layer: `SCS_E2E_LAB_LOCK_WAIT` seconds,
/// else 30 minutes (test suites queue many labs behind each other).
pub fn lock_wait() -> Duration {
    crate::process::secs_from_env("SCS_E2E_LAB_LOCK_WAIT", Duration::from_secs(1800))
}

impl MachineLock {
    /// Waits for the lock (at most [`lock_wait`]), then checks the fixed ports are free (a
    /// detached lab holds them without holding the lock).
    pub async fn acquire() -> Result<MachineLock, LabError> {
        let lock = Self::acquire_at(Path::new(MACHINE_LOCK), lock_wait(), &crate::process::lock_holder()).await?;
        for port in [CSO_WEBHOOK_PORT, CAPD_DEBUG_PORT] {
            if std::net::TcpListener::bind(("0.0.0.0", port)).is_err() {
                return Err(LabError::FixedPortInUse { port });
            }
        }
        Ok(lock)
    }

    /// The lock at `path` within `wait`, noting `holder` in it; else [`LabError::LockWait`]
    /// naming whoever holds it.
    pub async fn acquire_at(path: &Path, wait: Duration, holder: &str) -> Result<MachineLock, LabError> {
        let (p, h) = (path.to_path_buf(), holder.to_string());
        let got = tokio::task::spawn_blocking(move || {
            crate::process::FileLock::acquire_announced(&p, wait, &h, |who| {
                tracing::info!("waiting for another lab's Cluster API layer to stop (ports 9443 and 19000 are fixed): {who}")
            })
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(anyhow::Error::from)?;
        got.map(MachineLock).map_err(|holder| LabError::LockWait {
            path: path.display().to_string(),
            secs: wait.as_secs(),
            holder,
        })
    }
}

/// Prepares CSO's certificate directory and release directory.
pub fn prepare_dirs(dir: &Path, pki: &Pki) -> std::io::Result<()> {
    let certs = dir.join("cso-tmp").join("k8s-webhook-server").join("serving-certs");
    std::fs::create_dir_all(&certs)?;
    for f in ["tls.crt", "tls.key"] {
        std::fs::copy(pki.webhook_dir().join(f), certs.join(f))?;
    }
    std::fs::create_dir_all(dir.join(RELEASE_DIR).join("cluster-stacks"))
}

fn read_docs(path: &Path) -> Result<Vec<Value>, LabError> {
    let text = std::fs::read_to_string(path).map_err(|e| LabError::Manifests(format!("{}: {e}", path.display())))?;
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).map_err(|e| LabError::Manifests(format!("{}: {e}", path.display())))?;
    Ok(docs.into_iter().filter(|d| d.is_object()).collect())
}

fn loopback(port: u16, path: &str, ca_b64: &str) -> Value {
    json!({"url": format!("https://127.0.0.1:{port}{path}"), "caBundle": ca_b64})
}

/// CRDs with their conversion webhook (multi-version ones) pointed at the owner's webhook port.
pub fn crds(assets: &Assets, controller: &str, port: u16, ca_b64: &str) -> Result<Vec<Value>, LabError> {
    let dir = assets.manifests_dir(controller).join("crds");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| LabError::Manifests(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut out = Vec::new();
    for p in entries {
        for mut doc in read_docs(&p)? {
            // The provider contract label kustomize adds in each provider's config/crd: the
            // topology controller looks a template's API version up by it.
            if PROVIDERS.contains(&controller) {
                doc["metadata"]["labels"]["cluster.x-k8s.io/v1beta1"] = json!("v1beta1");
            }
            let versions = doc.pointer("/spec/versions").and_then(Value::as_array).map_or(0, Vec::len);
            if versions > 1 {
                doc["spec"]["conversion"] = json!({
                    "strategy": "Webhook",
                    "webhook": {
                        "conversionReviewVersions": ["v1", "v1beta1"],
                        "clientConfig": loopback(port, "/convert", ca_b64),
                    }
                });
            }
            out.push(doc);
        }
    }
    Ok(out)
}

/// The webhook configurations, renamed per controller (every module calls its own
/// `validating-webhook-configuration`) and pointed at its loopback port.
pub fn webhooks(assets: &Assets, controller: &str, port: u16, ca_b64: &str) -> Result<Vec<Value>, LabError> {
    let mut out = Vec::new();
    for mut doc in read_docs(&assets.manifests_dir(controller).join("webhooks.yaml"))? {
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("webhooks")
            .to_string();
        doc["metadata"] = json!({"name": format!("{controller}-{name}")});
        if let Some(hooks) = doc.get_mut("webhooks").and_then(Value::as_array_mut) {
            for h in hooks {
                let path = h
                    .pointer("/clientConfig/service/path")
                    .and_then(Value::as_str)
                    .unwrap_or("/")
                    .to_string();
                h["clientConfig"] = loopback(port, &path, ca_b64);
            }
        }
        out.push(doc);
    }
    Ok(out)
}

async fn apply(client: &kube::Client, ar: &ApiResource, doc: &Value) -> Result<(), LabError> {
    let name = doc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
    api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(doc))
        .await
        .map_err(|e| LabError::Manifests(format!("applying {} {name}: {e}", ar.kind)))?;
    Ok(())
}

fn ar(api_version: &str, kind: &str, plural: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Installs CRDs and webhook configurations, starts the controllers, waits until each serves,
/// and registers CSO's runtime hooks.
pub async fn start(lab: &Lab, client: &kube::Client, pki: &Pki) -> Result<(), LabError> {
    let assets = &lab.opts.assets;
    assets.check_cluster_api()?;
    let ports = lab.state().controller_ports;
    let all = controllers(true);
    let started: Vec<&str> = all.iter().copied().filter(|n| ports.contains_key(*n)).collect();
    let ca_b64 = base64::engine::general_purpose::STANDARD.encode(&pki.ca_pem);
    let crd_ar = ar("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions");
    let mut names = Vec::new();
    for c in &started {
        for doc in crds(assets, c, ports[*c].webhook, &ca_b64)? {
            apply(client, &crd_ar, &doc).await?;
            names.push(
                doc.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    let deadline = tokio::time::Instant::now() + lab.opts.ready_timeout;
    let crd_api: Api<DynamicObject> = Api::all_with(client.clone(), &crd_ar);
    for n in &names {
        crate::kube::wait_crd_established(crd_api.clone(), n, deadline)
            .await
            .map_err(|e| LabError::Manifests(format!("CRD {n} never became Established: {e}")))?;
    }
    for c in &started {
        for doc in webhooks(assets, c, ports[*c].webhook, &ca_b64)? {
            let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
            let plural = format!("{}s", kind.to_lowercase());
            apply(client, &ar("admissionregistration.k8s.io/v1", &kind, &plural), &doc).await?;
        }
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| LabError::Manifests(e.to_string()))?;
    for c in &started {
        lab.spawn(c)?;
        wait_healthy(lab, &http, c, ports[*c].health, deadline).await?;
    }
    // CSO's hooks are not registered by default: its BeforeClusterUpgrade hook holds every
    // upgrade until the ClusterAddon's chart is applied, which never happens on in-memory
    // workload clusters. Suites that test hooks apply this manifest (`${CSO_HOOKS_MANIFEST}`).
    let manifest = serde_json::to_string_pretty(&hooks_manifest(ports["cso"].hook, &ca_b64)).expect("serializes");
    std::fs::write(lab.dir.join(HOOKS_MANIFEST), manifest)?;
    Ok(())
}

/// The file holding CSO's ExtensionConfig, in the lab directory.
pub const HOOKS_MANIFEST: &str = "cso-hooks.json";

/// The ExtensionConfig registering CSO's hook server with Cluster API's Runtime SDK.
pub fn hooks_manifest(port: u16, ca_b64: &str) -> Value {
    json!({
        "apiVersion": "runtime.cluster.x-k8s.io/v1alpha1",
        "kind": "ExtensionConfig",
        "metadata": {"name": EXTENSION_CONFIG},
        "spec": {"clientConfig": loopback(port, "", ca_b64), "namespaceSelector": {}},
    })
}

/// Polls the controller's `/readyz` (a process start-up: nothing to watch), failing fast with
/// the log tail if it exits. CAPI's readiness includes its webhook server.
async fn wait_healthy(lab: &Lab, http: &reqwest::Client, name: &str, port: u16, deadline: tokio::time::Instant) -> Result<(), LabError> {
    let url = format!("http://127.0.0.1:{port}/readyz");
    loop {
        lab.check_exited(&[name])?;
        if let Ok(r) = http.get(&url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(lab.not_ready(&format!("{name} /readyz"), name));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lock_held_too_long_is_an_error_naming_the_holder_and_a_free_one_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("machine.lock");
        let first = MachineLock::acquire_at(&path, Duration::ZERO, "pid 1 (`scs-e2e lab up`) since then")
            .await
            .unwrap();
        let t0 = std::time::Instant::now();
        let e = MachineLock::acquire_at(&path, Duration::from_millis(300), "pid 2")
            .await
            .err()
            .unwrap();
        let waited = t0.elapsed();
        let msg = e.to_string();
        assert!(msg.contains("pid 1 (`scs-e2e lab up`) since then"), "{msg}");
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains("SCS_E2E_LAB_LOCK_WAIT"),
            "{msg}"
        );
        // It waited its bound, and not much longer.
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
        drop(first);
        let second = MachineLock::acquire_at(&path, Duration::from_millis(300), "pid 2 (`next`)")
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "pid 2 (`next`)",
            "the holder says who it is, and only that"
        );
        drop(second);
    }

    #[test]
    fn ports_are_distinct_and_cso_keeps_its_fixed_webhook_port() {
        let p = pick_ports(&controllers(true)).unwrap();
        assert_eq!(p.len(), CONTROLLERS.len() + 2);
        assert_eq!(p["cso"].webhook, CSO_WEBHOOK_PORT);
        let mut all: Vec<u16> = p
            .iter()
            .flat_map(|(n, c)| {
                let mut v = vec![c.health, c.metrics];
                if n != "cso" {
                    v.push(c.webhook);
                } else {
                    v.push(c.hook);
                }
                v
            })
            .collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "a port repeats: {p:?}");
    }

    #[test]
    fn the_openstack_layer_starts_after_the_rest_and_each_controller_gets_its_own_flags() {
        assert_eq!(controllers(false), CONTROLLERS);
        assert_eq!(controllers(true)[CONTROLLERS.len()..], ["orc", "capo"]);
        let dir = tempfile::tempdir().unwrap();
        let pki = super::super::pki::generate(&dir.path().join("pki")).unwrap();
        let assets = Assets::locate(Some(dir.path().join("bin")), None);
        let without = process_specs(dir.path(), &pki, &assets, &pick_ports(&controllers(false)).unwrap());
        assert!(!without.contains_key("capo") && !without.contains_key("orc"), "{without:?}");
        let ports = pick_ports(&controllers(true)).unwrap();
        let specs = process_specs(dir.path(), &pki, &assets, &ports);
        let capo = specs["capo"].0.join(" ");
        // CAPO serves its webhooks (the conversion of its older API versions) on its own port
        // with the lab's certificate, and takes no Cluster API feature gates (it has no such flag).
        assert!(capo.contains(&format!("--webhook-port={}", ports["capo"].webhook)), "{capo}");
        assert!(
            capo.contains(&format!("--webhook-cert-dir={}", pki.webhook_dir().display())),
            "{capo}"
        );
        assert!(!capo.contains("--feature-gates"), "{capo}");
        // ORC has controller-runtime's flag names, and no webhook.
        let orc = specs["orc"].0.join(" ");
        assert!(
            orc.contains(&format!("--health-probe-bind-address=127.0.0.1:{}", ports["orc"].health)),
            "{orc}"
        );
        assert!(!orc.contains("webhook"), "{orc}");
        for (_, env) in specs.values() {
            assert_eq!(env["KUBECONFIG"], dir.path().join("kubeconfig").display().to_string());
        }
    }
}
