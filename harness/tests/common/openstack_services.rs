//! Real OpenStack services (`fixtures/openstack/openstack.sh`): a cloud per call with its state in
//! a temporary directory, owned by the test process (the fixture stops itself if the process is
//! killed) and stopped on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct OpenStackServices {
    state: tempfile::TempDir,
    /// The clouds.yaml `up` exported (clouds `scs-e2e` and `scs-e2e-admin`).
    pub clouds_yaml: PathBuf,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/openstack/openstack.sh")
}

/// The Debian programs the fixture runs besides its virtualenv; CI installs them (.ci/run).
fn missing_tools() -> Vec<&'static str> {
    let path = format!("{}:/usr/sbin:/sbin", std::env::var("PATH").unwrap_or_default());
    let mut missing = Vec::new();
    if !std::env::split_paths(&path).any(|d| d.join("mariadbd").is_file()) {
        missing.push("mariadbd");
    }
    if !Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server").is_file() {
        missing.push("/usr/lib/rabbitmq/bin/rabbitmq-server");
    }
    missing
}

/// Starts a cloud owned by this test process and waits until it is usable (the first start
/// builds the virtualenv and the database template: minutes).
pub async fn start() -> OpenStackServices {
    start_owned_by(std::process::id()).await
}

/// Starts a cloud that stops itself when process `owner` exits.
pub async fn start_owned_by(owner: u32) -> OpenStackServices {
    let missing = missing_tools();
    assert!(
        missing.is_empty(),
        "the OpenStack fixture needs {}: apt-get install -y --no-install-recommends mariadb-server rabbitmq-server (.ci/run does)",
        missing.join(" and ")
    );
    let state = tempfile::tempdir().unwrap();
    // Straight to stderr: libtest captures eprintln!, and a cold start takes minutes.
    {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "starting the OpenStack fixture in {}", state.path().display());
    }
    let out = tokio::process::Command::new("sh")
        .arg(script())
        .arg("up")
        .arg(state.path())
        .env("OPENSTACK_FIXTURE_OWNER", owner.to_string())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    // From here on a panic still stops whatever started.
    let mut services = OpenStackServices {
        state,
        clouds_yaml: PathBuf::new(),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "openstack.sh up failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let file = stdout
        .lines()
        .find_map(|l| l.strip_prefix("export OS_CLIENT_CONFIG_FILE="))
        .unwrap_or_else(|| panic!("no OS_CLIENT_CONFIG_FILE in up's output:\n{stdout}"));
    services.clouds_yaml = PathBuf::from(file.trim_matches('\''));
    assert!(stdout.contains("export OS_CLOUD='scs-e2e'"), "up's output: {stdout}");
    services
}

impl OpenStackServices {
    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    /// Stops the cloud (what drop does), returning `down`'s output.
    pub fn down(&self) -> std::process::Output {
        Command::new("sh")
            .arg(script())
            .arg("down")
            .arg(self.state.path())
            .output()
            .unwrap()
    }
}

impl Drop for OpenStackServices {
    fn drop(&mut self) {
        let _ = self.down();
    }
}

/// Processes whose command line or environment names `dir`: every process of a fixture does
/// (config files, data directories), including helpers that left their parent.
pub fn processes_using(dir: &Path) -> Vec<(u32, String)> {
    let needle = dir.to_string_lossy().into_owned().into_bytes();
    let me = std::process::id();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
        if [&cmdline, &environ]
            .iter()
            .any(|b| b.windows(needle.len()).any(|w| w == needle.as_slice()))
        {
            let cmd = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push((pid, cmd.chars().take(120).collect()));
        }
    }
    found
}
