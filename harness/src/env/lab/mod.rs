//! The lab: a real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) as
//! local processes on loopback, built from Go modules. No Docker, no registry.
//!
//! Two ownership modes: *owned* labs (tests, `run --env lab --delete always`) die with the process
//! that started them (PR_SET_PDEATHSIG); *detached* labs (`lab up`, kept runs) outlive it and are
//! stopped with `lab down`, which finds them through `<dir>/lab.json`.

pub mod build;

pub mod capi;

pub mod pki;

mod args;
mod environment;
mod processes;
mod state;

use args::process_args;
pub use environment::{LabEnv, create};
pub use processes::tail;
use processes::{STOP_ORDER, is_lab_process, spawn_owned, stop_child};
pub use state::{LabState, Ports, STATE_FILE, down_dir, read_state, status_dir};
use state::{check_dir, pick_ports};
pub(crate) use state::{ports_of, reserve_ports};

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

/// Why a lab could not be started, found or stopped.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The directory holds a lab whose processes still run.
    #[error(
        "a lab is already running in {dir} (pids {pids}): use it (export KUBECONFIG={dir}/kubeconfig), or stop it with `scs-e2e lab down --dir {dir}`"
    )]
    Running {
        /// The lab's directory.
        dir: String,
        /// Its live processes' pids, comma-separated.
        pids: String,
    },
    /// The directory holds an earlier lab's state, but its processes are gone.
    #[error(
        "{dir} holds a stale lab from an earlier run (its processes are gone): remove it with `scs-e2e lab down --dir {dir}`, or choose another --dir"
    )]
    Stale {
        /// The lab's directory.
        dir: String,
    },
    /// The fixed API server port (`--apiserver-port`) is taken.
    #[error("port {port} on 127.0.0.1 is in use: pick another --apiserver-port, or leave it out to use a free port")]
    PortInUse {
        /// The port asked for.
        port: u16,
    },
    /// A process exited while the lab was starting.
    #[error("{name} exited during start-up ({status}); last lines of {log}:\n{tail}")]
    Exited {
        /// The process (`etcd`, `kube-apiserver`, ...).
        name: String,
        /// Its exit status.
        status: String,
        /// The path of its log.
        log: String,
        /// The log's last lines (with a note when a port was taken meanwhile).
        tail: String,
    },
    /// A process did not become ready within the ready timeout.
    #[error("{what} was not ready within {secs}s; last lines of {log}:\n{tail}")]
    NotReady {
        /// What was waited for (`kube-apiserver /readyz`, ...).
        what: String,
        /// The ready timeout, in seconds.
        secs: u64,
        /// The path of the log of the process concerned.
        log: String,
        /// That log's last lines.
        tail: String,
    },
    /// A fixed port of the Cluster API layer (9443, 19000) is taken.
    #[error(
        "port {port} is in use, and the Cluster API layer needs it (CSO's webhook server listens on 9443 and CAPD's in-memory debug server on 19000, neither configurable): stop the other lab (`scs-e2e lab down`) or whatever holds the port (`ss -ltnp | grep {port}`)"
    )]
    FixedPortInUse {
        /// The taken port.
        port: u16,
    },
    /// Another lab's Cluster API layer held the machine-wide lock longer than the wait allows.
    #[error(
        "another lab's Cluster API layer has held {path} for more than {secs}s: {holder}. Stop that lab (`scs-e2e lab down --dir <its dir>`) or let it finish; to wait longer, set SCS_E2E_LAB_LOCK_WAIT=<seconds>"
    )]
    LockWait {
        /// The lock file.
        path: String,
        /// How long was waited, in seconds.
        secs: u64,
        /// What the holder wrote into the lock file (pid, command line, since when).
        holder: String,
    },
    /// Reading or applying the Cluster API layer's manifests (CRDs, webhooks) failed.
    #[error("installing the Cluster API layer: {0}")]
    Manifests(String),
    /// `lab down`/`lab status` found no lab in the directory.
    #[error("no lab in {dir}: start one with `scs-e2e lab up --dir {dir}`")]
    NoLab {
        /// The directory looked in.
        dir: String,
    },
    /// The lab's binaries are missing or could not be built.
    #[error(transparent)]
    Build(#[from] build::BuildError),
    /// Anything else (file operations, the API client).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// What Go's net package says when a listen finds its port taken.
const PORT_TAKEN: &str = "address already in use";
const PORT_RACE_NOTE: &str = "\n(a port was taken between choosing and binding it)";

impl LabError {
    /// A process that exited during start-up, told by its log's last lines.
    fn exited(name: &str, status: &str, log: &Path) -> LabError {
        let mut tail_text = tail(log, 15);
        if tail_text.contains(PORT_TAKEN) {
            tail_text.push_str(PORT_RACE_NOTE);
        }
        LabError::Exited {
            name: name.into(),
            status: status.into(),
            log: log.display().to_string(),
            tail: tail_text,
        }
    }

    /// A process exited because a port chosen for it was taken meanwhile: worth a new attempt.
    fn lost_port_race(&self) -> bool {
        matches!(self, LabError::Exited { tail, .. } if tail.contains(PORT_TAKEN))
    }
}

impl From<std::io::Error> for LabError {
    fn from(e: std::io::Error) -> Self {
        LabError::Other(e.into())
    }
}

/// How a lab is started.
#[derive(Clone, Debug)]
pub struct LabOptions {
    /// The lab's directory; must not hold another lab.
    pub dir: PathBuf,
    /// Where its binaries are.
    pub assets: Assets,
    /// A fixed API server port (default: a free one).
    pub apiserver_port: Option<u16>,
    /// Let the processes outlive this one (`lab up`, kept runs); false: they die with it.
    pub detached: bool,
    /// How long each start-up stage may take to become ready (default 60 s).
    pub ready_timeout: Duration,
    /// Also run Cluster API, its kubeadm and in-memory providers, and CSO.
    pub cluster_api: bool,
    /// Also run the OpenStack provider (CAPO) and ORC (needs `cluster_api`, and both built:
    /// [`build::ensure`]). They reach the cloud named in each cluster's credentials Secret.
    pub openstack: bool,
}

impl LabOptions {
    /// Options for a lab in `dir` with `assets`' binaries: owned, free ports, 60 s ready timeout,
    /// no Cluster API layer.
    pub fn new(dir: PathBuf, assets: Assets) -> Self {
        LabOptions {
            dir,
            assets,
            apiserver_port: None,
            detached: false,
            ready_timeout: Duration::from_secs(60),
            cluster_api: false,
            openstack: false,
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

/// Every port of a lab, the control plane's held while the controllers' are chosen so that no
/// port is given twice.
fn choose_ports(apiserver: Option<u16>, controllers: &[&str]) -> Result<(Ports, BTreeMap<String, capi::ControllerPorts>), LabError> {
    let (ports, held) = pick_ports(apiserver)?;
    let controllers = if controllers.is_empty() {
        BTreeMap::new()
    } else {
        capi::pick_ports(controllers)?
    };
    drop(held);
    Ok((ports, controllers))
}

/// A running lab.
pub struct Lab {
    /// The lab's directory (state, PKI, etcd data, logs, kubeconfigs).
    pub dir: PathBuf,
    opts: LabOptions,
    state: Mutex<LabState>,
    children: Mutex<BTreeMap<String, Child>>,
    args: BTreeMap<String, Vec<String>>,
    env: BTreeMap<String, BTreeMap<String, String>>,
    stopped: Mutex<bool>,
    /// Held while the Cluster API layer runs (its fixed ports allow one per machine).
    _machine_lock: Option<std::sync::Arc<capi::MachineLock>>,
}

impl Lab {
    /// The admin kubeconfig: `<dir>/kubeconfig`.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// A snapshot of the state `lab.json` holds (pids, ports, versions).
    pub fn state(&self) -> LabState {
        self.state.lock().unwrap().clone()
    }

    /// Where process `name` logs: `<dir>/logs/<name>.log`.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    /// Starts etcd, kube-apiserver and kube-controller-manager and waits until they work.
    /// On failure every started process is killed and the lab's data removed (logs stay).
    pub async fn start(opts: LabOptions) -> Result<Lab, LabError> {
        check_dir(&opts.dir)?;
        opts.assets.check()?;
        if opts.openstack && !opts.cluster_api {
            return Err(LabError::Manifests(
                "the OpenStack layer (CAPO, ORC) runs on the Cluster API layer: start the lab with both".into(),
            ));
        }
        if opts.cluster_api {
            opts.assets.check_cluster_api()?;
        }
        if opts.openstack {
            opts.assets.check_openstack()?;
        }
        let machine_lock = match opts.cluster_api {
            true => Some(std::sync::Arc::new(capi::MachineLock::acquire().await?)),
            false => None,
        };
        // A port chosen free can be taken by another program before our process binds it
        // (ports are only held while choosing). That is no fault of the lab: try again with
        // fresh ports, a bounded number of times.
        const ATTEMPTS: usize = 3;
        let mut attempt = 1;
        loop {
            match Self::attempt(opts.clone(), machine_lock.clone()).await {
                Err(e) if attempt < ATTEMPTS && e.lost_port_race() => {
                    // The next attempt's logs start empty, so its failure is told by its own lines.
                    let kept = opts.dir.join(format!("logs-attempt-{attempt}"));
                    std::fs::rename(opts.dir.join("logs"), &kept)?;
                    tracing::warn!(
                        "lab start-up lost a port to another program (attempt {attempt} of {ATTEMPTS}, logs kept in {}); starting again with fresh ports: {e}",
                        kept.display()
                    );
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    async fn attempt(opts: LabOptions, machine_lock: Option<std::sync::Arc<capi::MachineLock>>) -> Result<Lab, LabError> {
        let dir = opts.dir.clone();
        let controllers = if opts.cluster_api {
            capi::controllers(opts.openstack)
        } else {
            Vec::new()
        };
        let (ports, controller_ports) = choose_ports(opts.apiserver_port, &controllers)?;
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
        if opts.cluster_api {
            for (name, (a, e)) in capi::process_specs(&dir, &pki, &opts.assets, &controller_ports) {
                args.insert(name.clone(), a);
                env.insert(name, e);
            }
            capi::prepare_dirs(&dir, &pki)?;
        }
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
                return Err(LabError::exited(n, &st.to_string(), &self.log_path(n)));
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

    /// The pid of the lab's process `name` (`etcd`, `kube-apiserver`, ...) as last started.
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

    /// Fault hook: SIGSTOP; false when the process is unknown or the signal failed.
    pub fn pause(&self, name: &str) -> bool {
        self.signal(name, libc::SIGSTOP)
    }

    /// Fault hook: SIGCONT (after [`Lab::pause`]); false when the process is unknown or the signal failed.
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
            let (controllers, base): (Vec<_>, Vec<_>) = children.into_iter().partition(|(n, _)| capi::is_controller(n));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_port_is_given_twice_across_control_plane_and_controllers() {
        // Each round draws 4 + 28 ports from a few thousand: were the control plane's let go
        // before the controllers' are chosen, repeats would show within these rounds.
        for _ in 0..300 {
            let (p, controllers) = choose_ports(None, &capi::controllers(true)).unwrap();
            let mut all = vec![p.etcd_client, p.etcd_peer, p.apiserver, p.controller_manager];
            for c in controllers.values() {
                all.extend([c.webhook, c.health, c.metrics, c.hook].into_iter().filter(|&x| x != 0));
            }
            let n = all.len();
            all.sort_unstable();
            all.dedup();
            assert_eq!(all.len(), n, "a port repeats: {all:?}");
        }
    }

    #[test]
    fn only_a_taken_port_counts_as_a_lost_race() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("etcd.log");
        std::fs::write(&log, "starting\nlisten tcp 127.0.0.1:27823: bind: address already in use\n").unwrap();
        let e = LabError::exited("etcd", "exit status: 1", &log);
        assert!(e.lost_port_race(), "{e}");
        assert!(e.to_string().contains("taken between choosing and binding"), "{e}");
        std::fs::write(&log, "starting\nflag provided but not defined: -bogus\n").unwrap();
        let e = LabError::exited("etcd", "exit status: 2", &log);
        assert!(!e.lost_port_race(), "{e}");
    }
}
