//! A lab's state on disk (`lab.json`: ports and process ids), its directory, its ports, and
//! finding, inspecting and stopping a lab by its directory.

use super::*;

/// The state file in a lab's directory.
pub const STATE_FILE: &str = "lab.json";

/// The control plane's ports on 127.0.0.1.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Ports {
    /// etcd's client port.
    pub etcd_client: u16,
    /// etcd's peer port.
    pub etcd_peer: u16,
    /// The API server's secure port.
    pub apiserver: u16,
    /// The controller manager's secure port.
    pub controller_manager: u16,
}

/// What `lab status` and `lab down` read: enough to find and stop a detached lab.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabState {
    /// Each started process's pid, by name (`etcd`, `kube-apiserver`, ...).
    pub pids: BTreeMap<String, u32>,
    /// The control plane's ports.
    pub ports: Ports,
    /// Where the processes' binaries are (a pid only counts as the lab's if it runs one of them).
    pub bin_dir: PathBuf,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The control plane's Kubernetes version (`v1.33.13`).
    pub kubernetes_version: String,
    /// The processes outlive the process that started them (stopped with `lab down`).
    pub detached: bool,
    /// Ports of the Cluster API layer's controllers (empty without it).
    #[serde(default)]
    pub controller_ports: BTreeMap<String, capi::ControllerPorts>,
}

pub(super) fn check_dir(dir: &Path) -> Result<(), LabError> {
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

/// The state of the lab in `dir` (None: no `lab.json`, or unreadable).
pub fn read_state(dir: &Path) -> Option<LabState> {
    let text = std::fs::read_to_string(dir.join(STATE_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The control plane's ports, with their listeners: the caller holds them until every other
/// port of the lab is chosen too, or the controllers' ports could repeat them.
pub(super) fn pick_ports(apiserver: Option<u16>) -> Result<(Ports, Vec<std::net::TcpListener>), LabError> {
    let mut held = reserve_ports(4)?;
    let p = ports_of(&held)?;
    let apiserver = match apiserver {
        Some(p) => {
            held.push(std::net::TcpListener::bind(("127.0.0.1", p)).map_err(|_| LabError::PortInUse { port: p })?);
            p
        }
        None => p[3],
    };
    let ports = Ports {
        etcd_client: p[0],
        etcd_peer: p[1],
        apiserver,
        controller_manager: p[2],
    };
    Ok((ports, held))
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
    let seed = mix(
        u64::from(std::process::id()) << 32 | u64::from(nanos),
        CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    ) as u32;
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

/// Scatters nearby inputs (consecutive calls, close clocks) far apart: a splitmix64 finaliser.
fn mix(a: u64, b: u32) -> u64 {
    let mut z = a ^ u64::from(b).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub(crate) fn ports_of(held: &[std::net::TcpListener]) -> std::io::Result<Vec<u16>> {
    held.iter().map(|l| l.local_addr().map(|a| a.port())).collect()
}
