//! A real Keystone (PyPI, SQLite, loopback), started by `fixtures/keystone/keystone.sh` (its
//! virtualenv is built once into the cache).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const ADMIN_PASSWORD: &str = "canary-admin-pw-7f3a";

pub struct Keystone {
    child: Child,
    pub port: u16,
    state: tempfile::TempDir,
}

impl Drop for Keystone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Keystone {
    /// Its `/v3` URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v3", self.port)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Start-ups one at a time: the first builds the shared virtualenv, which must not happen twice
/// at once.
static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts Keystone with tokens valid for `expiration` seconds and extra catalog entries
/// (`type=name=url,...`), and waits until `/v3` answers.
pub async fn start(expiration: u64, extra_endpoints: Option<&str>) -> Keystone {
    let _one_at_a_time = STARTING.lock().await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/keystone/keystone.sh");
    let venv = scs_e2e::base::cache_root().join("keystone-venv");
    let state = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = std::fs::File::create(state.path().join("script.log")).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg(&script)
        .arg(&venv)
        .arg(state.path())
        .arg(port.to_string())
        .env("KEYSTONE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("KEYSTONE_TOKEN_EXPIRATION", expiration.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    if let Some(e) = extra_endpoints {
        cmd.env("KEYSTONE_EXTRA_ENDPOINTS", e);
    }
    let child = cmd.spawn().unwrap();
    let mut k = Keystone { child, port, state };
    let http = reqwest::Client::new();
    let url = k.url();
    // A process start-up (the first one also builds the virtualenv): nothing to watch, so poll.
    let deadline = std::time::Instant::now() + Duration::from_secs(900);
    loop {
        if let Ok(r) = http.get(&url).send().await
            && r.status().is_success()
        {
            return k;
        }
        if let Ok(Some(st)) = k.child.try_wait() {
            let log = std::fs::read_to_string(k.state.path().join("script.log")).unwrap_or_default();
            panic!("keystone.sh exited ({st}):\n{log}");
        }
        assert!(std::time::Instant::now() < deadline, "Keystone did not answer on {url}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A clouds.yaml with the admin user of Keystone on `port`.
pub fn admin_clouds(port: u16, password: &str) -> String {
    format!(
        "clouds:\n  lab:\n    auth: {{auth_url: 'http://127.0.0.1:{port}', username: admin, password: '{password}', project_name: admin, user_domain_name: Default, project_domain_name: Default}}\n    region_name: RegionOne\n"
    )
}
