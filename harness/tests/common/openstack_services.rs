//! Real OpenStack services (`fixtures/openstack/openstack.sh`): a cloud per call with its state in
//! a temporary directory, owned by the test process (the fixture stops itself if the process is
//! killed) and stopped on drop; or one cloud shared by the tests of this process ([`shared`]),
//! each test in a project of its own ([`OpenStackServices::tenant`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use scs_e2e::env::openstack::clouds::{Lookup, load};
use scs_e2e::env::openstack::identity::Session;
use scs_e2e::env::openstack::resources::{OpenStack, Service};
use serde_json::{Value, json};

pub struct OpenStackServices {
    state: State,
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
    up(State::Temp(tempfile::tempdir().unwrap()), owner).await
}

/// Where a fixture keeps its state: a temporary directory removed on drop, or the shared
/// fixture's directory, which outlives every test and is swept by the next process.
enum State {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl State {
    fn path(&self) -> &Path {
        match self {
            State::Temp(t) => t.path(),
            State::Kept(p) => p,
        }
    }
}

/// The prefix of the shared fixtures' state directories in the temporary directory; the
/// owning test process's PID follows.
const SHARED_PREFIX: &str = "scs-e2e-openstack-shared-";

/// The shared cloud's one hypervisor: the tests that boot servers on it hold it shared for their
/// lifetime, and the stuck-server test, which freezes nova-compute, alone. Nova's scheduler takes
/// a compute service silent for over a minute as down and then fails every boot with "No valid
/// host" (seen in CI).
static HYPERVISOR: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// A hold on the shared cloud's hypervisor (see [`HYPERVISOR`]), released when dropped.
pub enum HostUse {
    Shared(#[allow(dead_code)] tokio::sync::RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] tokio::sync::RwLockWriteGuard<'static, ()>),
}

impl HostUse {
    /// Servers of this test run beside other tests' servers.
    pub async fn shared() -> HostUse {
        HostUse::Shared(HYPERVISOR.read().await)
    }

    /// No other test's server runs meanwhile (this test stops the hypervisor).
    pub async fn alone() -> HostUse {
        HostUse::Alone(HYPERVISOR.write().await)
    }
}

/// One cloud for every test of this process that asks (tests take a project each: see
/// [`OpenStackServices::tenant`]): a fixture costs ~2 GB and half a minute, and the tests run
/// eight at a time. It stops when this process exits (the fixture watches its owner); its state
/// directory is removed by the next process that starts one.
pub async fn shared() -> &'static OpenStackServices {
    static SHARED: tokio::sync::OnceCell<OpenStackServices> = tokio::sync::OnceCell::const_new();
    SHARED
        .get_or_init(|| async {
            let tmp = std::env::temp_dir();
            for e in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(pid) = name.strip_prefix(SHARED_PREFIX).and_then(|p| p.parse::<u32>().ok()) else {
                    continue;
                };
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    // Its owner is gone, so is the fixture; `down` makes sure before the removal.
                    let _ = Command::new("sh").arg(script()).arg("down").arg(e.path()).output();
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
            let dir = tmp.join(format!("{SHARED_PREFIX}{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            up(State::Kept(dir), std::process::id()).await
        })
        .await
}

async fn up(state: State, owner: u32) -> OpenStackServices {
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

/// A project of its own on a cloud, with a member user (roles `member` and
/// `load-balancer_member`, as the fixture's own tenant) and a clouds.yaml naming it.
pub struct Tenant {
    pub dir: tempfile::TempDir,
    /// `<dir>/clouds.yaml`: cloud [`Tenant::cloud`] with password auth, scoped to the project.
    pub clouds_yaml: PathBuf,
    /// The cloud's name in that file.
    pub cloud: String,
    pub project_id: String,
    pub password: String,
}

impl Tenant {
    /// A session as the tenant's user.
    pub async fn session(&self) -> Session {
        login(&self.clouds_yaml, &self.cloud).await
    }
}

impl OpenStackServices {
    /// A session as the cloud's admin (cloud `scs-e2e-admin` of the fixture's clouds.yaml).
    pub async fn admin(&self) -> Session {
        login(&self.clouds_yaml, "scs-e2e-admin").await
    }

    /// A new project `<prefix>-<random>` with its own member user; `cloud` names it in the
    /// tenant's clouds.yaml. Quotas are the cloud's defaults (see [`set_compute_quota`]).
    pub async fn tenant(&self, prefix: &str, cloud: &str) -> Tenant {
        let admin = self.admin().await;
        let keystone = admin.endpoint("identity").unwrap();
        let suffix = format!("{:08x}", rand_u32());
        let name = format!("{prefix}-{suffix}");
        let password = format!("pw-{suffix}-{:08x}", rand_u32());
        let post = |path: &str, body: Value| {
            let url = format!("{keystone}{path}");
            let admin = &admin;
            async move {
                let r = admin.send(Method::POST, &url, Some(&body)).await.unwrap();
                let status = r.status();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                assert!(status.is_success(), "POST {url}: {status} {v}");
                v
            }
        };
        let project_id = post("/projects", json!({"project": {"name": name, "domain_id": "default"}})).await["project"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let user_id = post(
            "/users",
            json!({"user": {"name": name, "domain_id": "default", "password": password, "default_project_id": project_id}}),
        )
        .await["user"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let roles: Value = admin.get(&format!("{keystone}/roles")).await.unwrap().json().await.unwrap();
        for role in ["member", "load-balancer_member"] {
            let id = roles["roles"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == role)
                .unwrap_or_else(|| panic!("role {role} in {roles}"))["id"]
                .as_str()
                .unwrap()
                .to_string();
            let url = format!("{keystone}/projects/{project_id}/users/{user_id}/roles/{id}");
            let r = admin.send(Method::PUT, &url, None).await.unwrap();
            assert!(r.status().is_success(), "PUT {url}: {}", r.status());
        }
        let dir = tempfile::tempdir().unwrap();
        let clouds_yaml = dir.path().join("clouds.yaml");
        std::fs::write(
            &clouds_yaml,
            format!(
                "clouds:\n  {cloud}:\n    auth: {{auth_url: '{}', username: '{name}', password: '{password}', project_name: '{name}', user_domain_name: Default, project_domain_name: Default}}\n    region_name: RegionOne\n    interface: public\n",
                keystone
            ),
        )
        .unwrap();
        Tenant {
            dir,
            clouds_yaml,
            cloud: cloud.into(),
            project_id,
            password,
        }
    }
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish() as u32
}

/// Sets a project's Nova quotas (as the admin): e.g. `{"instances": 10, "cores": 20}`.
pub async fn set_compute_quota(admin: &Session, project_id: &str, quota: Value) {
    let api = OpenStack::new(admin);
    call(
        &api,
        Service::Compute,
        Method::PUT,
        &format!("/os-quota-sets/{project_id}"),
        Some(json!({"quota_set": quota})),
    )
    .await;
}

/// Logs in to `cloud` of a clouds.yaml (and nothing of the user's own configuration).
pub async fn login(clouds_yaml: &Path, cloud: &str) -> Session {
    let dir = clouds_yaml.parent().unwrap();
    let c = load(&Lookup {
        cloud: Some(cloud.into()),
        config_file: Some(clouds_yaml.to_path_buf()),
        cwd: dir.to_path_buf(),
        etc: dir.join("none"),
        ..Default::default()
    })
    .unwrap();
    Session::login(&c).await.unwrap_or_else(|e| panic!("login to {cloud}: {e}"))
}

/// A request to a service; panics unless it answers 2xx. Returns the JSON body (Null if none).
pub async fn call(api: &OpenStack<'_>, svc: Service, method: Method, path: &str, body: Option<Value>) -> Value {
    let url = format!("{}{path}", api.base(svc).unwrap());
    let r = api.session.send(method.clone(), &url, body.as_ref()).await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    assert!(status.is_success(), "{method} {path} answered {status}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// `v[key].id`.
pub fn id(v: &Value, key: &str) -> String {
    v[key]["id"].as_str().unwrap_or_else(|| panic!("no {key}.id in {v}")).to_string()
}

/// GET a resource's JSON under `key`; `None` once it is gone (404).
pub async fn get(api: &OpenStack<'_>, svc: Service, path: &str, key: &str) -> Option<Value> {
    let url = format!("{}{path}", api.base(svc).unwrap());
    api.get_json(svc, &url).await.unwrap().map(|v| v[key].clone())
}

/// For [`crate::common::until`]: done once the resource answers 404.
pub async fn gone(api: &OpenStack<'_>, svc: Service, path: String, key: &str) -> Result<Option<()>, String> {
    Ok(get(api, svc, &path, key).await.is_none().then_some(()))
}

/// For [`crate::common::until`]: done once `field` of the resource is `want`; an error once it
/// is `bad` (or the resource vanished).
pub async fn reaches(
    api: &OpenStack<'_>,
    svc: Service,
    path: String,
    key: &str,
    field: &str,
    want: &str,
    bad: &str,
) -> Result<Option<()>, String> {
    let v = get(api, svc, &path, key).await.ok_or_else(|| format!("{path} vanished"))?;
    match v[field].as_str() {
        Some(s) if s == want => Ok(Some(())),
        Some(s) if s == bad => Err(format!("{path}: {field} {s}: {v}")),
        _ => Ok(None),
    }
}

/// Uploads a small raw image (the client speaks JSON only, so the data goes by hand) with
/// `extra` properties (tags, ...) and waits until Glance has it active. Returns its id.
pub async fn upload_image(api: &OpenStack<'_>, name: &str, extra: Value) -> String {
    let mut body = json!({"name": name, "disk_format": "raw", "container_format": "bare"});
    body.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    let image = call(api, Service::Image, Method::POST, "/images", Some(body)).await["id"]
        .as_str()
        .expect("the new image's id")
        .to_string();
    let upload = reqwest::Client::new()
        .put(format!("{}/images/{image}/file", api.base(Service::Image).unwrap()))
        .header("X-Auth-Token", api.session.token().await.unwrap())
        .header("Content-Type", "application/octet-stream")
        .body(vec![0u8; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status().as_u16(), 204, "image upload: {:?}", upload.text().await);
    crate::common::until("image active", Duration::from_secs(60), || async {
        let i = get(api, Service::Image, &format!("/images/{image}"), "status").await;
        Ok(i.filter(|s| s == "active").map(|_| ()))
    })
    .await;
    image
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

/// The id of the fixture's external network `public`, as the project sees it.
pub async fn public_network(api: &OpenStack<'_>) -> String {
    api.networks()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.name == "public" && n.external)
        .expect("the external network public")
        .id
}
