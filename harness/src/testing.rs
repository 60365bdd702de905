//! Helpers for tests and benchmarks (not part of the harness's interface).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A loopback HTTP/1.1 server: `answer(request target)` gives status and body, sent after
/// `latency` (one connection per request, `Connection: close`). Returns `http://127.0.0.1:PORT`.
pub async fn serve_http<F>(latency: Duration, answer: F) -> String
where
    F: Fn(&str) -> (u16, Vec<u8>) + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 2048];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head);
                let target = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, body) = answer(&target);
                tokio::time::sleep(latency).await;
                let head = format!(
                    "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    if status == 200 { "OK" } else { "Error" },
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    base
}

/// MemTotal − MemAvailable of the machine, in bytes: what everything running uses.
pub fn memory_in_use() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |k: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
            * 1024
    };
    field("MemTotal:").saturating_sub(field("MemAvailable:"))
}

/// The machine's peak memory in use while it runs, above what was in use when it started
/// (sampled every 200 ms on a thread; anything else on the machine shows in it too).
pub struct PeakMemory {
    baseline: u64,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl PeakMemory {
    /// Starts sampling.
    pub fn start() -> Self {
        let baseline = memory_in_use();
        let peak = Arc::new(AtomicU64::new(baseline));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (peak, stop) = (peak.clone(), stop.clone());
            move || {
                while !stop.load(Ordering::SeqCst) {
                    peak.fetch_max(memory_in_use(), Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        });
        PeakMemory {
            baseline,
            peak,
            stop,
            thread,
        }
    }

    /// Stops sampling: the peak above the baseline, in bytes.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
        self.peak.load(Ordering::SeqCst).saturating_sub(self.baseline)
    }
}

/// A copy at `dest` of our snapshot of upstream's SCS OpenStack stack
/// (`fixtures/cluster-stacks/upstream/openstack-scs`) whose node image ORC fetches from `url`
/// (checked against `sha256`) instead of the internet. The format becomes raw: Glance inspects
/// what is uploaded, and a stand-in image of zeros is no qcow2 file.
pub fn openstack_stack_copy(fixtures: &Path, dest: &Path, url: &str, sha256: &str) {
    let src = fixtures.join("cluster-stacks/upstream/openstack-scs");
    let out = std::process::Command::new("cp").arg("-r").arg(&src).arg(dest).output().expect("cp");
    assert!(out.status.success(), "{out:?}");
    let image = dest.join("cluster-class/templates/image.yaml");
    let text = std::fs::read_to_string(&image).unwrap();
    let mut lines = Vec::new();
    for l in text.lines() {
        let t = l.trim_start();
        let indent = &l[..l.len() - t.len()];
        lines.push(if t.starts_with("url: ") {
            format!("{indent}url: {url}")
        } else if t.starts_with("value: ") {
            format!("{indent}value: {sha256}")
        } else if t.starts_with("diskFormat: ") {
            format!("{indent}diskFormat: raw")
        } else {
            l.to_string()
        });
    }
    let changed = lines.join("\n") + "\n";
    assert_eq!(changed.matches(url).count(), 1, "{changed}");
    assert!(changed.contains(sha256) && changed.contains("diskFormat: raw"), "{changed}");
    std::fs::write(&image, changed).unwrap();
}

/// A clouds.yaml with the OpenStack fixture's member cloud (`scs-e2e`, an application
/// credential) renamed `openstack`: the SCS stack's ORC Image names its credentials
/// `openstack`/`openstack` in the chart's values.
pub fn openstack_member_clouds_yaml(fixture_clouds_yaml: &Path) -> String {
    let text = std::fs::read_to_string(fixture_clouds_yaml).unwrap();
    let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let cloud = v["clouds"]["scs-e2e"].clone();
    assert!(
        cloud.is_object(),
        "the fixture's clouds.yaml has scs-e2e: {}",
        fixture_clouds_yaml.display()
    );
    serde_json::to_string_pretty(&serde_json::json!({"clouds": {"openstack": cloud}})).unwrap()
}

/// A directory to run `scs-e2e run --env openstack` in against the OpenStack fixture, with `lab`
/// as the management cluster: `work/clouds.yaml` (the fixture's member cloud as `openstack`),
/// `work/config.yaml`, and `work/openstack-scs`, the SCS OpenStack stack snapshot whose node image
/// (1 MiB of zeros) this process serves on loopback. Returns the stack's directory.
pub async fn openstack_work_dir(
    fixtures: &Path,
    work: &Path,
    lab: &crate::env::lab::Lab,
    fixture_clouds_yaml: &Path,
) -> std::path::PathBuf {
    use sha2::Digest;
    std::fs::create_dir_all(work).unwrap();
    std::fs::write(work.join("clouds.yaml"), openstack_member_clouds_yaml(fixture_clouds_yaml)).unwrap();
    std::fs::write(
        work.join("config.yaml"),
        format!(
            "apiVersion: scs-e2e/v1alpha1\nkind: Config\nopenstack:\n  managementKubeconfig: {}\nmanagement:\n  csoReleaseDir: {}\n",
            lab.kubeconfig().display(),
            lab.release_dir().unwrap().display()
        ),
    )
    .unwrap();
    let image = vec![0u8; 1 << 20];
    let sha = format!("{:x}", sha2::Sha256::digest(&image));
    // ORC downloads it from loopback (the stack's own URL is on the internet).
    let base = serve_http(Duration::ZERO, move |_| (200, image.clone())).await;
    let stack = work.join("openstack-scs");
    openstack_stack_copy(fixtures, &stack, &format!("{base}/ubuntu-capi-image.raw"), &sha);
    stack
}

/// `scs-e2e stack build DIR --mode hash` into `out` with `bin`: the release version it prints.
pub fn stack_hash_version(bin: &Path, dir: &Path, out: &Path, path: &std::ffi::OsStr) -> String {
    let built = std::process::Command::new(bin)
        .args(["stack", "build"])
        .arg(dir)
        .args(["--mode", "hash", "--print-version", "-o"])
        .arg(out)
        .env("PATH", path)
        .output()
        .expect("scs-e2e stack build");
    assert!(built.status.success(), "{built:?}");
    String::from_utf8(built.stdout).unwrap().trim().to_string()
}
