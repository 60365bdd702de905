//! The lab: a real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) as
//! local processes on loopback, built from Go modules. No Docker, no registry.
//!
//! Two ownership modes: *owned* labs (tests, `run --env lab --delete always`) die with the process
//! that started them (PR_SET_PDEATHSIG); *detached* labs (`lab up`, kept runs) outlive it and are
//! stopped with `lab down`, which finds them through `<dir>/lab.json`.

pub mod build;
pub mod capi;
pub mod pki;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ServiceAccount;
use serde::{Deserialize, Serialize};

use self::build::Assets;
use super::Environment;
use crate::kube::{Target, Verdict, wait_until};
use crate::process::{alive, kill_group, signal};

pub const STATE_FILE: &str = "lab.json";

/// Controllers before the control plane they talk to, the API server before etcd.
const STOP_ORDER: &[&str] = &[
    "cso",
    "capd",
    "kubeadm-control-plane",
    "kubeadm-bootstrap",
    "cluster-api",
    "kube-controller-manager",
    "kube-apiserver",
    "etcd",
];

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Ports {
    pub etcd_client: u16,
    pub etcd_peer: u16,
    pub apiserver: u16,
    pub controller_manager: u16,
}

/// What `lab status` and `lab down` read: enough to find and stop a detached lab.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabState {
    pub pids: BTreeMap<String, u32>,
    pub ports: Ports,
    pub bin_dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub kubernetes_version: String,
    pub detached: bool,
    /// Ports of the Cluster API layer's controllers (empty without it).
    #[serde(default)]
    pub controller_ports: BTreeMap<String, capi::ControllerPorts>,
}

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "a lab is already running in {dir} (pids {pids}): use it (export KUBECONFIG={dir}/kubeconfig), or stop it with `scs-e2e lab down --dir {dir}`"
    )]
    Running { dir: String, pids: String },
    #[error(
        "{dir} holds a stale lab from an earlier run (its processes are gone): remove it with `scs-e2e lab down --dir {dir}`, or choose another --dir"
    )]
    Stale { dir: String },
    #[error("port {port} on 127.0.0.1 is in use: pick another --apiserver-port, or leave it out to use a free port")]
    PortInUse { port: u16 },
    #[error("{name} exited during start-up ({status}); last lines of {log}:\n{tail}")]
    Exited {
        name: String,
        status: String,
        log: String,
        tail: String,
    },
    #[error("{what} was not ready within {secs}s; last lines of {log}:\n{tail}")]
    NotReady {
        what: String,
        secs: u64,
        log: String,
        tail: String,
    },
    #[error(
        "port {port} is in use, and the Cluster API layer needs it (CSO's webhook server listens on 9443 and CAPD's in-memory debug server on 19000, neither configurable): stop the other lab (`scs-e2e lab down`) or whatever holds the port (`ss -ltnp | grep {port}`)"
    )]
    FixedPortInUse { port: u16 },
    #[error("installing the Cluster API layer: {0}")]
    Manifests(String),
    #[error("no lab in {dir}: start one with `scs-e2e lab up --dir {dir}`")]
    NoLab { dir: String },
    #[error(transparent)]
    Build(#[from] build::BuildError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<std::io::Error> for LabError {
    fn from(e: std::io::Error) -> Self {
        LabError::Other(e.into())
    }
}

#[derive(Clone, Debug)]
pub struct LabOptions {
    pub dir: PathBuf,
    pub assets: Assets,
    /// A fixed API server port (default: a free one).
    pub apiserver_port: Option<u16>,
    pub detached: bool,
    pub ready_timeout: Duration,
    /// Also run Cluster API, its kubeadm and in-memory providers, and CSO.
    pub cluster_api: bool,
}

impl LabOptions {
    pub fn new(dir: PathBuf, assets: Assets) -> Self {
        LabOptions {
            dir,
            assets,
            apiserver_port: None,
            detached: false,
            ready_timeout: Duration::from_secs(60),
            cluster_api: false,
        }
    }
}

/// `$XDG_STATE_HOME/scs-e2e/lab` (default for `lab up`).
pub fn default_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("scs-e2e")
        .join("lab")
}

/// A running lab.
pub struct Lab {
    pub dir: PathBuf,
    opts: LabOptions,
    state: Mutex<LabState>,
    children: Mutex<BTreeMap<String, Child>>,
    args: BTreeMap<String, Vec<String>>,
    env: BTreeMap<String, BTreeMap<String, String>>,
    stopped: Mutex<bool>,
    /// Held while the Cluster API layer runs (its fixed ports allow one per machine).
    _machine_lock: Option<capi::MachineLock>,
}

impl Lab {
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    pub fn state(&self) -> LabState {
        self.state.lock().unwrap().clone()
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    /// Starts etcd, kube-apiserver and kube-controller-manager and waits until they work.
    /// On failure every started process is killed and the lab's data removed (logs stay).
    pub async fn start(opts: LabOptions) -> Result<Lab, LabError> {
        let dir = opts.dir.clone();
        check_dir(&dir)?;
        opts.assets.check()?;
        if opts.cluster_api {
            opts.assets.check_cluster_api()?;
        }
        let machine_lock = match opts.cluster_api {
            true => Some(capi::MachineLock::acquire().await?),
            false => None,
        };
        let ports = pick_ports(opts.apiserver_port)?;
        for sub in ["pki", "logs", "etcd"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let pki = pki::generate(&dir.join("pki"))?;
        let server = format!("https://127.0.0.1:{}", ports.apiserver);
        pki::write_kubeconfig(
            &dir.join("kubeconfig"),
            &server,
            &pki.ca_pem,
            &pki.admin_cert_pem,
            &pki.admin_key_pem,
            "scs-e2e-admin",
        )?;
        pki::write_kubeconfig(
            &dir.join("kcm.kubeconfig"),
            &server,
            &pki.ca_pem,
            &pki.kcm_cert_pem,
            &pki.kcm_key_pem,
            "kube-controller-manager",
        )?;
        let mut args = process_args(&dir, &pki, ports);
        let mut env = BTreeMap::new();
        let controller_ports = if opts.cluster_api {
            let cp = capi::pick_ports()?;
            for (name, (a, e)) in capi::process_specs(&dir, &pki, &opts.assets, &cp) {
                args.insert(name.clone(), a);
                env.insert(name, e);
            }
            capi::prepare_dirs(&dir, &pki)?;
            cp
        } else {
            BTreeMap::new()
        };
        let lab = Lab {
            dir: dir.clone(),
            state: Mutex::new(LabState {
                pids: BTreeMap::new(),
                ports,
                bin_dir: opts.assets.bin_dir.clone(),
                kubeconfig: dir.join("kubeconfig"),
                kubernetes_version: build::KUBERNETES_VERSION.into(),
                detached: opts.detached,
                controller_ports,
            }),
            opts,
            children: Mutex::new(BTreeMap::new()),
            args,
            env,
            stopped: Mutex::new(false),
            _machine_lock: machine_lock,
        };
        match lab.boot(&pki).await {
            Ok(()) => Ok(lab),
            Err(e) => {
                lab.kill_all();
                for sub in [
                    "etcd",
                    "pki",
                    STATE_FILE,
                    "kubeconfig",
                    "kcm.kubeconfig",
                    "cso-tmp",
                    capi::RELEASE_DIR,
                ] {
                    let p = dir.join(sub);
                    let _ = if p.is_dir() {
                        std::fs::remove_dir_all(&p)
                    } else {
                        std::fs::remove_file(&p)
                    };
                }
                *lab.stopped.lock().unwrap() = true;
                Err(e)
            }
        }
    }

    async fn boot(&self, pki: &pki::Pki) -> Result<(), LabError> {
        self.spawn("etcd")?;
        self.spawn("kube-apiserver")?;
        let client = crate::kube::client_from_kubeconfig(&self.kubeconfig()).await?;
        self.wait_apiserver_ready(&client).await?;
        self.spawn("kube-controller-manager")?;
        self.wait_controller_manager(&client).await?;
        if self.opts.cluster_api {
            capi::start(self, &client, pki).await?;
        }
        Ok(())
    }

    /// Where CSO reads release assets in local mode (`None` without the Cluster API layer).
    pub fn release_dir(&self) -> Option<PathBuf> {
        self.opts.cluster_api.then(|| self.dir.join(capi::RELEASE_DIR))
    }

    /// Polls `/readyz` (a process start-up, not a resource: there is nothing to watch yet) and
    /// fails fast with the log tail when a process exits.
    pub async fn wait_apiserver_ready(&self, client: &kube::Client) -> Result<(), LabError> {
        let deadline = tokio::time::Instant::now() + self.opts.ready_timeout;
        loop {
            self.check_exited(&["etcd", "kube-apiserver"])?;
            let req = http::Request::get("/readyz").body(Vec::new()).expect("valid request");
            if let Ok(body) = client.request_text(req).await
                && body.trim() == "ok"
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(self.not_ready("kube-apiserver /readyz", "kube-apiserver"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The controller manager is working once its service-account controller has created
    /// `default/default`: a functional signal, watched.
    async fn wait_controller_manager(&self, client: &kube::Client) -> Result<(), LabError> {
        let dynamic_api = kube::Api::<kube::api::DynamicObject>::namespaced_with(
            client.clone(),
            "default",
            &kube::discovery::ApiResource::erase::<ServiceAccount>(&()),
        );
        let deadline = tokio::time::Instant::now() + self.opts.ready_timeout;
        let target = Target::Name("default".into());
        let watch = wait_until(dynamic_api, &target, deadline, |objs| {
            if objs.contains_key("default") {
                Verdict::Done
            } else {
                Verdict::Pending("no default ServiceAccount yet".into())
            }
        });
        let mut watch = std::pin::pin!(watch);
        loop {
            tokio::select! {
                r = &mut watch => {
                    return r.map(|_| ()).map_err(|_| self.not_ready("kube-controller-manager (default ServiceAccount)", "kube-controller-manager"));
                }
                _ = tokio::time::sleep(Duration::from_millis(200)) => self.check_exited(&["kube-controller-manager"])?,
            }
        }
    }

    fn not_ready(&self, what: &str, log_of: &str) -> LabError {
        let log = self.log_path(log_of);
        LabError::NotReady {
            what: what.into(),
            secs: self.opts.ready_timeout.as_secs(),
            tail: tail(&log, 15),
            log: log.display().to_string(),
        }
    }

    fn check_exited(&self, names: &[&str]) -> Result<(), LabError> {
        let mut children = self.children.lock().unwrap();
        for n in names {
            if let Some(c) = children.get_mut(*n)
                && let Ok(Some(st)) = c.try_wait()
            {
                let log = self.log_path(n);
                let mut tail_text = tail(&log, 15);
                if tail_text.contains("address already in use") {
                    tail_text.push_str("\n(a port was taken between choosing and binding it: run `lab up` again)");
                }
                return Err(LabError::Exited {
                    name: n.to_string(),
                    status: st.to_string(),
                    log: log.display().to_string(),
                    tail: tail_text,
                });
            }
        }
        Ok(())
    }

    /// Starts (or restarts) one process with its fixed arguments.
    pub fn spawn(&self, name: &str) -> Result<u32, LabError> {
        let bin = self.opts.assets.path(name);
        let log = OpenOptions::new().create(true).append(true).open(self.log_path(name))?;
        let mut cmd = Command::new(&bin);
        cmd.args(&self.args[name])
            .envs(self.env.get(name).into_iter().flatten())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        let child = if self.opts.detached { cmd.spawn()? } else { spawn_owned(cmd)? };
        let pid = child.id();
        self.children.lock().unwrap().insert(name.to_string(), child);
        self.state.lock().unwrap().pids.insert(name.to_string(), pid);
        self.save_state()?;
        Ok(pid)
    }

    fn save_state(&self) -> std::io::Result<()> {
        let s = serde_json::to_string_pretty(&*self.state.lock().unwrap()).expect("state serializes");
        crate::base::write_atomic(&self.dir.join(STATE_FILE), s.as_bytes())
    }

    pub fn pid(&self, name: &str) -> Option<u32> {
        self.state.lock().unwrap().pids.get(name).copied()
    }

    /// Fault hook: sends a signal (SIGKILL, SIGSTOP, SIGCONT, ...) to a lab process.
    pub fn signal(&self, name: &str, sig: i32) -> bool {
        self.pid(name).is_some_and(|p| signal(p, sig))
    }

    /// Fault hook: kill -9 and reap.
    pub async fn kill(&self, name: &str) {
        let child = self.children.lock().unwrap().remove(name);
        if let Some(mut c) = child {
            kill_group(c.id(), libc::SIGKILL);
            let _ = tokio::task::spawn_blocking(move || c.wait()).await;
        }
    }

    /// Fault hook: graceful stop (SIGTERM), waiting for the exit.
    pub async fn stop_process(&self, name: &str) {
        let child = self.children.lock().unwrap().remove(name);
        if let Some(mut c) = child {
            kill_group(c.id(), libc::SIGTERM);
            let _ = tokio::task::spawn_blocking(move || c.wait()).await;
        }
    }

    /// Fault hook: start a stopped or killed API server again on the same port, until ready.
    pub async fn restart_apiserver(&self) -> Result<(), LabError> {
        self.kill("kube-apiserver").await;
        self.spawn("kube-apiserver")?;
        let client = crate::kube::client_from_kubeconfig(&self.kubeconfig()).await?;
        self.wait_apiserver_ready(&client).await
    }

    pub fn pause(&self, name: &str) -> bool {
        self.signal(name, libc::SIGSTOP)
    }

    pub fn resume(&self, name: &str) -> bool {
        self.signal(name, libc::SIGCONT)
    }

    /// Stops every process (controller manager, API server, etcd) and removes the lab's files.
    pub async fn stop(&self) -> std::io::Result<()> {
        let children: Vec<(String, Child)> = {
            let mut c = self.children.lock().unwrap();
            STOP_ORDER
                .iter()
                .filter_map(|n| c.remove(*n).map(|ch| (n.to_string(), ch)))
                .collect()
        };
        tokio::task::spawn_blocking(move || {
            // The Cluster API layer's controllers are independent of each other: stop them
            // together (each may take seconds to drain), then the control plane in order.
            let (controllers, base): (Vec<_>, Vec<_>) = children.into_iter().partition(|(n, _)| capi::CONTROLLERS.contains(&n.as_str()));
            std::thread::scope(|s| {
                for (_, c) in controllers {
                    s.spawn(move || stop_child(c));
                }
            });
            for (_, c) in base {
                stop_child(c);
            }
        })
        .await
        .map_err(std::io::Error::other)?;
        *self.stopped.lock().unwrap() = true;
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir)?;
        }
        Ok(())
    }

    /// Leaves the processes running (a detached lab that should outlive this process).
    pub fn detach(self) -> LabState {
        *self.stopped.lock().unwrap() = true;
        let s = self.state();
        // Forget the handles: dropping a Child neither kills nor waits.
        self.children.lock().unwrap().clear();
        s
    }

    fn kill_all(&self) {
        let mut c = self.children.lock().unwrap();
        for (_, mut ch) in std::mem::take(&mut *c) {
            kill_group(ch.id(), libc::SIGCONT);
            kill_group(ch.id(), libc::SIGKILL);
            let _ = ch.wait();
        }
    }
}

#[async_trait]
impl super::Faults for Lab {
    fn processes(&self) -> Vec<String> {
        self.args.keys().cloned().collect()
    }

    async fn kill(&self, process: &str) -> anyhow::Result<()> {
        self.known(process)?;
        Lab::kill(self, process).await;
        Ok(())
    }

    async fn restart(&self, process: &str) -> anyhow::Result<()> {
        self.known(process)?;
        if process == "kube-apiserver" {
            return Ok(self.restart_apiserver().await?);
        }
        Lab::kill(self, process).await;
        self.spawn(process)?;
        Ok(())
    }

    fn pause(&self, process: &str) -> anyhow::Result<()> {
        self.known(process)?;
        anyhow::ensure!(Lab::pause(self, process), "{process} is not running");
        Ok(())
    }

    fn resume(&self, process: &str) -> anyhow::Result<()> {
        self.known(process)?;
        anyhow::ensure!(Lab::resume(self, process), "{process} is not running");
        Ok(())
    }
}

impl Lab {
    fn known(&self, process: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.args.contains_key(process),
            "the lab has no process `{process}`: it runs {}",
            self.args.keys().cloned().collect::<Vec<_>>().join(", ")
        );
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // A lab nobody stopped must not outlive its owner (a panicking test, an early return).
        if !*self.stopped.lock().unwrap() {
            self.kill_all();
        }
    }
}

/// SIGTERM, up to 5 s grace, then SIGKILL; always reaped.
fn stop_child(mut c: Child) {
    kill_group(c.id(), libc::SIGCONT);
    kill_group(c.id(), libc::SIGTERM);
    for _ in 0..100 {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    kill_group(c.id(), libc::SIGKILL);
    let _ = c.wait();
}

/// Spawns from one long-lived thread with PR_SET_PDEATHSIG, so children die with this process
/// (the signal follows the spawning *thread*, hence a thread that never exits).
fn spawn_owned(mut cmd: Command) -> std::io::Result<Child> {
    type Req = (Command, mpsc::Sender<std::io::Result<Child>>);
    static TX: OnceLock<Mutex<mpsc::Sender<Req>>> = OnceLock::new();
    let tx = TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Req>();
        std::thread::Builder::new()
            .name("lab-spawner".into())
            .spawn(move || {
                for (mut c, reply) in rx {
                    let _ = reply.send(c.spawn());
                }
            })
            .expect("spawn lab-spawner thread");
        Mutex::new(tx)
    });
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let (rtx, rrx) = mpsc::channel();
    tx.lock()
        .unwrap()
        .send((cmd, rtx))
        .map_err(|_| std::io::Error::other("lab spawner thread is gone"))?;
    rrx.recv().map_err(|_| std::io::Error::other("lab spawner thread is gone"))?
}

fn check_dir(dir: &Path) -> Result<(), LabError> {
    let Some(state) = read_state(dir) else { return Ok(()) };
    let live: Vec<String> = state
        .pids
        .values()
        .filter(|p| is_lab_process(**p, &state.bin_dir))
        .map(|p| p.to_string())
        .collect();
    let d = dir.display().to_string();
    if live.is_empty() {
        Err(LabError::Stale { dir: d })
    } else {
        Err(LabError::Running {
            dir: d,
            pids: live.join(", "),
        })
    }
}

pub fn read_state(dir: &Path) -> Option<LabState> {
    let text = std::fs::read_to_string(dir.join(STATE_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// A pid from a state file is ours only if it still runs one of the lab's binaries (pids get reused).
fn is_lab_process(pid: u32, bin_dir: &Path) -> bool {
    if !alive(pid) {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmd) => {
            let argv0 = cmd.split(|b| *b == 0).next().unwrap_or_default();
            Path::new(std::str::from_utf8(argv0).unwrap_or("")).starts_with(bin_dir)
        }
        Err(_) => false,
    }
}

/// Listeners on free ports below the kernel's ephemeral range: outgoing connections never take
/// those, so a port stays free between our choosing it and the process binding it (with dozens
/// of controller connections a port from the ephemeral range was taken in that gap). Checked on
/// all interfaces, as webhook servers bind there; held by the caller until all are chosen.
pub(crate) fn reserve_ports(n: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    // CAPD's in-memory API servers count up from 20000; stay above its usual use.
    const LOW: u32 = 24_100;
    let high = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768)
        .clamp(LOW + 1_000, 65_535);
    let span = high - LOW;
    // A different start per process and call, so labs started together rarely probe the same ports.
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let seed =
        std::process::id().wrapping_mul(7_919) ^ nanos ^ CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed).wrapping_mul(104_729);
    let mut held = Vec::with_capacity(n);
    for i in 0..span {
        if held.len() == n {
            break;
        }
        let port = (LOW + (seed.wrapping_add(i.wrapping_mul(13))) % span) as u16;
        if let Ok(l) = std::net::TcpListener::bind(("0.0.0.0", port)) {
            held.push(l);
        }
    }
    if held.len() < n {
        return Err(std::io::Error::other(format!("fewer than {n} free ports between {LOW} and {high}")));
    }
    Ok(held)
}

pub(crate) fn ports_of(held: &[std::net::TcpListener]) -> std::io::Result<Vec<u16>> {
    held.iter().map(|l| l.local_addr().map(|a| a.port())).collect()
}

fn pick_ports(apiserver: Option<u16>) -> Result<Ports, LabError> {
    // Hold all listeners until every port is chosen, so no two are the same.
    let held = reserve_ports(4)?;
    let p = ports_of(&held)?;
    let apiserver = match apiserver {
        Some(p) => {
            std::net::TcpListener::bind(("127.0.0.1", p)).map_err(|_| LabError::PortInUse { port: p })?;
            p
        }
        None => p[3],
    };
    Ok(Ports {
        etcd_client: p[0],
        etcd_peer: p[1],
        apiserver,
        controller_manager: p[2],
    })
}

fn process_args(dir: &Path, pki: &pki::Pki, ports: Ports) -> BTreeMap<String, Vec<String>> {
    let d = |p: &Path| p.display().to_string();
    let etcd_url = format!("http://127.0.0.1:{}", ports.etcd_client);
    let peer_url = format!("http://127.0.0.1:{}", ports.etcd_peer);
    let kcm_kc = d(&dir.join("kcm.kubeconfig"));
    let mut m = BTreeMap::new();
    m.insert(
        "etcd".to_string(),
        vec![
            "--name=lab".into(),
            format!("--data-dir={}", d(&dir.join("etcd"))),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=lab={peer_url}"),
            // A throw-away test store: durability is not worth the fsync latency.
            "--unsafe-no-fsync=true".into(),
            "--log-level=warn".into(),
        ],
    );
    m.insert(
        "kube-apiserver".to_string(),
        vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={}", ports.apiserver),
            format!("--cert-dir={}", d(&dir.join("pki"))),
            format!("--tls-cert-file={}", d(&pki.apiserver_crt())),
            format!("--tls-private-key-file={}", d(&pki.apiserver_key())),
            format!("--client-ca-file={}", d(&pki.ca_crt())),
            format!("--service-account-key-file={}", d(&pki.sa_pub())),
            format!("--service-account-signing-key-file={}", d(&pki.sa_key())),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            "--authorization-mode=RBAC".into(),
            "--allow-privileged=true".into(),
            "--profiling=false".into(),
        ],
    );
    m.insert(
        "kube-controller-manager".to_string(),
        vec![
            format!("--kubeconfig={kcm_kc}"),
            format!("--authentication-kubeconfig={kcm_kc}"),
            format!("--authorization-kubeconfig={kcm_kc}"),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", ports.controller_manager),
            format!("--cert-dir={}", d(&dir.join("pki").join("kcm"))),
            "--leader-elect=false".into(),
            format!("--service-account-private-key-file={}", d(&pki.sa_key())),
            format!("--root-ca-file={}", d(&pki.ca_crt())),
            format!("--cluster-signing-cert-file={}", d(&pki.ca_crt())),
            format!("--cluster-signing-key-file={}", d(&pki.ca_key())),
            "--profiling=false".into(),
        ],
    );
    m
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `lab down --dir D`: stops the processes a state file names and removes the directory.
pub fn down_dir(dir: &Path) -> Result<usize, LabError> {
    let Some(state) = read_state(dir) else {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
            return Ok(0);
        }
        return Err(LabError::NoLab {
            dir: dir.display().to_string(),
        });
    };
    let mut stopped = 0;
    for name in STOP_ORDER {
        let Some(&pid) = state.pids.get(*name) else { continue };
        if !is_lab_process(pid, &state.bin_dir) {
            continue;
        }
        kill_group(pid, libc::SIGCONT);
        kill_group(pid, libc::SIGTERM);
        // Not our child: we cannot wait(), so watch /proc until it is gone.
        let mut gone = false;
        for _ in 0..100 {
            if !is_lab_process(pid, &state.bin_dir) {
                gone = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !gone {
            kill_group(pid, libc::SIGKILL);
        }
        stopped += 1;
    }
    std::fs::remove_dir_all(dir)?;
    Ok(stopped)
}

/// `lab status`: each process alive or not, and whether the API server is ready.
pub async fn status_dir(dir: &Path) -> Result<(LabState, BTreeMap<String, bool>, Result<(), String>), LabError> {
    let state = read_state(dir).ok_or_else(|| LabError::NoLab {
        dir: dir.display().to_string(),
    })?;
    let procs = state
        .pids
        .iter()
        .map(|(n, p)| (n.clone(), is_lab_process(*p, &state.bin_dir)))
        .collect();
    let ready = async {
        let client = crate::kube::client_from_kubeconfig(&state.kubeconfig)
            .await
            .map_err(|e| e.to_string())?;
        let req = http::Request::get("/readyz").body(Vec::new()).expect("valid request");
        let r = tokio::time::timeout(Duration::from_secs(3), client.request_text(req))
            .await
            .map_err(|_| "no answer within 3s".to_string())?;
        r.map(|_| ()).map_err(|e| e.to_string())
    }
    .await;
    Ok((state, procs, ready))
}

/// `--env lab`: a lab for the duration of a run.
pub struct LabEnv {
    opts: LabOptions,
    lab: Option<Lab>,
    install_progress: bool,
}

/// `--env lab`: a lab of this run's own (its directory named after the run id), with Cluster API
/// when the plan needs it; kept past the process unless it is always deleted.
pub fn create(req: &super::EnvRequest) -> anyhow::Result<Box<dyn super::Environment>> {
    let cfg = req.file.and_then(|c| c.lab.clone()).unwrap_or_default();
    let assets = build::Assets::locate(
        req.lab_bin_dir.map(Path::to_path_buf).or(cfg.bin_dir),
        req.lab_cache_dir.map(Path::to_path_buf).or(cfg.cache_dir),
    );
    let mut lo = LabOptions::new(default_dir().with_file_name(format!("lab-run-{}", req.run_id)), assets);
    // A lab that may be kept must outlive this process; one always deleted dies with it.
    lo.detached = req.delete != crate::config::DeletePolicy::Always;
    lo.cluster_api = req.plan.cluster_api;
    Ok(Box::new(LabEnv::new(lo, req.progress)))
}

impl LabEnv {
    pub fn new(opts: LabOptions, install_progress: bool) -> Self {
        LabEnv {
            opts,
            lab: None,
            install_progress,
        }
    }

    pub fn lab(&self) -> Option<&Lab> {
        self.lab.as_ref()
    }
}

#[async_trait]
impl Environment for LabEnv {
    fn name(&self) -> &'static str {
        "lab"
    }

    async fn up(&mut self) -> anyhow::Result<()> {
        let assets = self.opts.assets.clone();
        let progress = self.install_progress;
        tokio::task::spawn_blocking(move || {
            if progress {
                build::install(&assets, &build::ConsoleProgress::new())
            } else {
                build::install(&assets, &build::Quiet)
            }
        })
        .await??;
        self.lab = Some(Lab::start(self.opts.clone()).await?);
        Ok(())
    }

    async fn down(&mut self) -> anyhow::Result<()> {
        if let Some(lab) = self.lab.take() {
            lab.stop().await?;
        }
        Ok(())
    }

    fn kubeconfig(&self) -> Option<PathBuf> {
        self.lab.as_ref().map(Lab::kubeconfig)
    }

    async fn collect_logs(&self, dir: &Path) -> anyhow::Result<usize> {
        let logs = self.opts.dir.join("logs");
        if !logs.is_dir() {
            return Ok(0);
        }
        Ok(crate::base::copy_tree(&logs, dir)?)
    }

    fn properties(&self) -> BTreeMap<String, String> {
        let mut p = BTreeMap::from([
            ("kubernetes_version".to_string(), build::KUBERNETES_VERSION.to_string()),
            ("etcd_version".to_string(), build::ETCD_VERSION.to_string()),
        ]);
        if self.opts.cluster_api {
            p.insert("cluster_api_version".into(), build::CLUSTER_API_VERSION.into());
            p.insert("cso_version".into(), build::CSO_VERSION.into());
        }
        p
    }

    fn step_vars(&self) -> BTreeMap<String, String> {
        self.lab
            .as_ref()
            .and_then(Lab::release_dir)
            .map(|d| {
                BTreeMap::from([
                    ("CSO_RELEASE_DIR".to_string(), d.display().to_string()),
                    (
                        "CSO_HOOKS_MANIFEST".to_string(),
                        self.opts.dir.join(capi::HOOKS_MANIFEST).display().to_string(),
                    ),
                ])
            })
            .unwrap_or_default()
    }

    fn bin_dirs(&self) -> Vec<PathBuf> {
        vec![self.opts.assets.bin_dir.clone()]
    }

    fn faults(&self) -> Option<&dyn super::Faults> {
        self.lab.as_ref().map(|l| l as &dyn super::Faults)
    }

    fn keep_hint(&self) -> Option<String> {
        let lab = self.lab.as_ref()?;
        Some(format!(
            "the lab keeps running: export KUBECONFIG={}; stop it with `scs-e2e lab down --dir {}`",
            lab.kubeconfig().display(),
            lab.dir.display()
        ))
    }
}

impl Drop for LabEnv {
    fn drop(&mut self) {
        // A kept, detached lab must survive us; an owned one dies in Lab::drop.
        if let Some(lab) = self.lab.take()
            && self.opts.detached
        {
            lab.detach();
        }
    }
}
