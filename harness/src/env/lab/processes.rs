//! The lab's child processes: started in their own process group, owned (they die with a lab
//! that is not detached), stopped in order.

use super::*;

/// Controllers before the control plane they talk to, the API server before etcd.
pub(super) const STOP_ORDER: &[&str] = &[
    "capo",
    "orc",
    "cso",
    "capd",
    "kubeadm-control-plane",
    "kubeadm-bootstrap",
    "cluster-api",
    "kube-controller-manager",
    "kube-apiserver",
    "etcd",
];

/// SIGTERM, up to 5 s grace, then SIGKILL; always reaped.
pub(super) fn stop_child(mut c: Child) {
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
pub(super) fn spawn_owned(mut cmd: Command) -> std::io::Result<Child> {
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

/// A pid from a state file is ours only if it still runs one of the lab's binaries (pids get reused).
pub(super) fn is_lab_process(pid: u32, bin_dir: &Path) -> bool {
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

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
