//! `--env kind`: a kind management cluster on Docker (or Podman) with Cluster API (CAPD), CSO
//! and optionally CSO in local mode for unreleased stacks. Preflight checks the engine and the
//! tools first and fails fast (exit 3) with the fix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Environment;
use super::lab::build as lab_build;
use super::{images, mgmt};

/// The node image kind starts (Kubernetes 1.33, the version the lab and CAPI v1.10 pair with).
pub const NODE_IMAGE: &str = "kindest/node:v1.33.1";

/// Why `--env kind` cannot run here (preflight failures, each with its fix).
#[derive(Debug, thiserror::Error)]
pub enum KindError {
    /// Neither `docker` nor `podman` in the tool directories.
    #[error(
        "--env kind needs a container engine: neither `docker` nor `podman` is on PATH; install Docker (https://docs.docker.com/engine/install/) or Podman, or use --env lab (no containers needed)"
    )]
    NoEngine,
    /// `<engine> info` failed: the engine's daemon is not reachable.
    #[error(
        "--env kind: `{engine} info` failed, so the engine is not reachable: {detail}\nfix: start the engine (e.g. `sudo systemctl start docker`) and check that your user may use it, or use --env lab"
    )]
    EngineDown {
        /// The engine CLI's path.
        engine: String,
        /// The last line of its output, or why it could not run.
        detail: String,
    },
    /// No `kind` in the tool directories.
    #[error(
        "--env kind needs `kind` on PATH (or kindCluster.binDir in the config): `go install sigs.k8s.io/kind@v0.29.0`, or see https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
    )]
    NoKind,
    /// A management-cluster tool is missing or broken.
    #[error(transparent)]
    Tool(#[from] mgmt::ToolError),
    /// This machine's bounding set lacks CAP_SYS_RESOURCE, which the engine's runtime (runc, crun) asks for.
    #[error(
        "--env kind: the engine cannot start privileged containers here: this machine's capability bounding set lacks CAP_SYS_RESOURCE, and the engine's default runtime `{runtime}` asks for every capability (runc: \"unable to apply caps: operation not permitted\"); kind and CAPD always run privileged containers\nfix: use an engine whose runtime drops that capability: `eval \"$(fixtures/engine/dockerd.sh up)\"` starts one (see fixtures/engine/README.md), or run on a machine (or VM) that has CAP_SYS_RESOURCE"
    )]
    Caps {
        /// The engine's default runtime (`runc` or `crun`).
        runtime: String,
    },
    /// DOCKER_HOST is not a `unix://` socket, which CAPD would need mounted into the node.
    #[error(
        "--env kind: DOCKER_HOST is `{0}`, but CAPD inside the management cluster needs the engine's unix socket mounted into the node: use a local engine (`unix://` socket)"
    )]
    RemoteEngine(String),
    /// Offline images, and the node image is not in the engine (even after building).
    #[error(
        "--env kind: the node image `{image}` is not in the engine, and images are `offline` (never pulled)\nfix: `scs-e2e images build` builds {default}; or set kindCluster.nodeImage to an image `docker images` lists"
    )]
    NoNodeImage {
        /// The node image asked for.
        image: String,
        /// The node image `images build` makes.
        default: String,
    },
}

/// The capability runc cannot grant where the bounding set lacks it (`CAP_SYS_RESOURCE`, bit 24).
const CAP_SYS_RESOURCE: u32 = 24;

/// Whether this process's capability bounding set holds `cap` (`None`: unreadable, assume yes).
pub fn bounding_set_has(status: &str, cap: u32) -> Option<bool> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapBnd:"))?.trim();
    let bits = u64::from_str_radix(hex, 16).ok()?;
    Some(bits & (1 << cap) != 0)
}

/// The host path of the engine's socket, which CAPD needs inside the node: DOCKER_HOST's
/// `unix://` path, else the default socket.
pub fn engine_socket(docker_host: Option<&str>) -> Result<PathBuf, KindError> {
    match docker_host.filter(|h| !h.is_empty()) {
        None => Ok(PathBuf::from("/var/run/docker.sock")),
        Some(h) => h
            .strip_prefix("unix://")
            .map(PathBuf::from)
            .ok_or_else(|| KindError::RemoteEngine(h.to_string())),
    }
}

/// Refuses an engine that will fail every privileged container (checked before any cluster is
/// made, so the run ends with the cause and the fix instead of kind's runc message).
fn check_caps(engine: &Path) -> Result<(), KindError> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if bounding_set_has(&status, CAP_SYS_RESOURCE) != Some(false) {
        return Ok(());
    }
    let out = duct::cmd(engine, ["info", "--format", "{{.DefaultRuntime}}"])
        .stderr_null()
        .stdout_capture()
        .unchecked()
        .run();
    let runtime = out
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    // Only runc (and crun) ask for every capability as they are; a wrapper runtime may drop it.
    if runtime == "runc" || runtime == "crun" {
        return Err(KindError::Caps { runtime });
    }
    Ok(())
}

/// kind's own words when runc could not grant the capabilities (a runtime that looked fine).
pub fn caps_failure(output: &str) -> bool {
    output.contains("unable to apply caps")
}

/// `--env kind`: a kind management cluster named after the run (or the config file's name),
/// with the published images or (offline) those built here.
pub fn create(req: &super::EnvRequest) -> anyhow::Result<Box<dyn Environment>> {
    let k = req.file.and_then(|c| c.kind_cluster.clone()).unwrap_or_default();
    // CAPD in kind serves in-memory clusters and Docker machines.
    req.plan.check_providers("kind", &["inmemory", "docker"])?;
    let spec = mgmt::Spec::from_config(mgmt::Infrastructure::Docker, req.file.and_then(|c| c.management.as_ref()));
    let options = options(&k, req)?;
    Ok(Box::new(KindEnv::new(
        cluster(&k, req.run_id, options.images),
        spec,
        configured_tool_dirs(&k, req),
        options,
    )))
}

/// `--env kind`'s options: the images mode (`SCS_E2E_KIND_IMAGES` > `kindCluster.images` >
/// pull) and local stacks (on when the plan builds a stack from `source:`; refused up front
/// when switched off for such a plan, never a failure at its first step).
fn options(k: &crate::config::KindConfig, req: &super::EnvRequest) -> anyhow::Result<Options> {
    let images = match std::env::var("SCS_E2E_KIND_IMAGES").ok().filter(|s| !s.is_empty()) {
        Some(s) => s.parse::<images::Mode>().map_err(|e| anyhow::anyhow!("SCS_E2E_KIND_IMAGES: {e}"))?,
        None => k.images.unwrap_or_default(),
    };
    let needs_local = req.plan.local_stacks;
    if needs_local && k.local_stacks == Some(false) {
        anyhow::bail!(
            "the plan installs a cluster stack from `source:` (release assets built here for CSO's local mode), but the config file sets kindCluster.localStacks: false; remove that line (local stacks switch on by themselves), or install released stacks without `source:`"
        );
    }
    Ok(Options {
        local_stacks: k.local_stacks.unwrap_or(needs_local),
        images,
        progress: req.progress,
        cso_hooks: !req.plan.only_inmemory_stacks,
    })
}

/// The kind management cluster of a run; its kubeconfig lives in the state directory, never in
/// the artifacts. Offline, the node image is the one `images build` makes.
pub fn cluster(k: &crate::config::KindConfig, run_id: &str, images: images::Mode) -> KindCluster {
    let name = k
        .name
        .clone()
        .unwrap_or_else(|| format!("scs-e2e-{}", run_id.chars().take(8).collect::<String>().to_lowercase()));
    KindCluster {
        dir: super::lab::default_dir().with_file_name(format!("kind-{name}")),
        name,
        image: k.node_image.clone().unwrap_or_else(|| match images {
            images::Mode::Pull => NODE_IMAGE.into(),
            images::Mode::Offline => images::NODE_IMAGE.into(),
        }),
        wait: Duration::from_secs(300),
        releases: None,
        engine_socket: engine_socket(std::env::var("DOCKER_HOST").ok().as_deref())
            .unwrap_or_else(|_| PathBuf::from("/var/run/docker.sock")),
    }
}

/// Tool directories of a run: the config file's `kindCluster.binDir`, PATH, the lab's build.
pub fn configured_tool_dirs(k: &crate::config::KindConfig, req: &super::EnvRequest) -> Vec<PathBuf> {
    let assets = lab_build::Assets::locate(req.lab_bin_dir.map(Path::to_path_buf), req.lab_cache_dir.map(Path::to_path_buf));
    tool_dirs(k.bin_dir.as_deref(), &assets.bin_dir)
}

/// Where tools are looked up: the configured directory, PATH, then the lab's build cache (where
/// `scs-e2e lab install` puts kind, clusterctl, helm and kubectl).
pub fn tool_dirs(configured: Option<&Path>, lab_bin: &Path) -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    configured
        .map(Path::to_path_buf)
        .into_iter()
        .chain(std::env::split_paths(&path))
        .chain(std::iter::once(lab_bin.to_path_buf()))
        .collect()
}

/// The tools `--env kind` drives.
#[derive(Clone, Debug)]
pub struct Tools {
    /// The container engine CLI (`docker`, else `podman`).
    pub engine: PathBuf,
    /// The `kind` binary.
    pub kind: PathBuf,
}

/// The Cluster API Clusters in a management cluster (any namespace); empty when it does not
/// answer within a few seconds (it is about to be deleted anyway).
async fn workload_clusters(kubeconfig: &Path) -> Vec<String> {
    let list = async {
        let client = crate::kube::client_from_kubeconfig(kubeconfig).await?;
        let gvk = kube::api::GroupVersionKind::gvk("cluster.x-k8s.io", "v1beta1", "Cluster");
        let api: kube::Api<kube::api::DynamicObject> = kube::Api::all_with(client, &kube::discovery::ApiResource::from_gvk(&gvk));
        anyhow::Ok(api.list(&Default::default()).await?.items)
    };
    match tokio::time::timeout(Duration::from_secs(20), list).await {
        Ok(Ok(items)) => items.into_iter().filter_map(|c| c.metadata.name).collect(),
        _ => Vec::new(),
    }
}

/// The label CAPD's Docker machines carry, valued with their Cluster's name (kind's own).
pub const CAPD_CLUSTER_LABEL: &str = "io.x-k8s.kind.cluster";

/// Removes the containers (and their anonymous volumes) CAPD made for these clusters: it labels
/// each with `io.x-k8s.kind.cluster=<cluster name>`. The names come from our own management
/// cluster; suites name clusters after their run's namespaces, so no other run's match.
async fn remove_capd_containers(engine: &Path, clusters: &[String]) {
    for name in clusters {
        let filter = format!("label={CAPD_CLUSTER_LABEL}={name}");
        let Ok(out) = tokio::process::Command::new(engine)
            .args(["ps", "-aq", "--filter", &filter])
            .output()
            .await
        else {
            continue;
        };
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect();
        if ids.is_empty() {
            continue;
        }
        tracing::warn!(
            "removing {} container(s) of workload cluster {name}, left when its management cluster went",
            ids.len()
        );
        let _ = tokio::process::Command::new(engine)
            .args(["rm", "-f", "-v"])
            .args(&ids)
            .output()
            .await;
    }
}

/// Finds the engine and kind in `dirs` and checks the engine answers (fails fast, exit 3, with
/// the fix).
pub fn preflight_in(dirs: &[PathBuf]) -> Result<Tools, KindError> {
    let find = |name: &str| dirs.iter().map(|d| d.join(name)).find(|p| crate::process::is_executable(p));
    let engine = find("docker").or_else(|| find("podman")).ok_or(KindError::NoEngine)?;
    let kind = find("kind").ok_or(KindError::NoKind)?;
    check_engine(&engine)?;
    Ok(Tools { engine, kind })
}

/// The engine answers, its socket can be mounted into a node, and it can start privileged
/// containers on this machine.
pub fn check_engine(engine: &Path) -> Result<(), KindError> {
    let out = duct::cmd(engine, ["info", "--format", "{{.ServerVersion}}"])
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()
        .map_err(|e| KindError::EngineDown {
            engine: engine.display().to_string(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(KindError::EngineDown {
            engine: engine.display().to_string(),
            detail: String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or("").to_string(),
        });
    }
    engine_socket(std::env::var("DOCKER_HOST").ok().as_deref())?;
    check_caps(engine)?;
    Ok(())
}

/// One kind management cluster.
#[derive(Clone, Debug)]
pub struct KindCluster {
    /// The kind cluster's name (`scs-e2e-<run id prefix>` unless the config names it).
    pub name: String,
    /// The node image: `kindCluster.nodeImage`, else [`NODE_IMAGE`] (pull) or the one `images build` makes (offline).
    pub image: String,
    /// Where the generated config and the kubeconfig go.
    pub dir: PathBuf,
    /// `kind create cluster --wait`: how long kind waits for the control plane.
    pub wait: Duration,
    /// A host directory with CSO release assets, mounted into the node at `/cso-releases` (for
    /// CSO's local mode with a hostPath volume).
    pub releases: Option<PathBuf>,
    /// The engine's socket on the host (DOCKER_HOST's), mounted into the node for CAPD.
    pub engine_socket: PathBuf,
}

impl KindCluster {
    /// Where [`KindCluster::config`] is written (`<dir>/kind-config.yaml`).
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("kind-config.yaml")
    }

    /// Where kind writes the cluster's admin kubeconfig (`<dir>/kubeconfig`).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// The kind config: CAPD needs the engine's socket inside the node (where its manifest
    /// expects it); the docker stacks expect dual-stack networking.
    pub fn config(&self) -> String {
        let mut mounts = vec![(self.engine_socket.display().to_string(), "/var/run/docker.sock".to_string())];
        if let Some(r) = &self.releases {
            mounts.push((r.display().to_string(), "/cso-releases".to_string()));
        }
        let mounts: String = mounts
            .iter()
            .map(|(h, c)| format!("      - hostPath: {}\n        containerPath: {}\n", yaml_str(h), yaml_str(c)))
            .collect();
        format!(
            "# Generated by scs-e2e for the management cluster `{}`.\nkind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  ipFamily: dual\nnodes:\n  - role: control-plane\n    extraMounts:\n{mounts}",
            self.name
        )
    }

    /// `kind create cluster`'s arguments: name, node image, config, kubeconfig and wait.
    pub fn create_args(&self) -> Vec<String> {
        vec![
            "create".into(),
            "cluster".into(),
            "--name".into(),
            self.name.clone(),
            "--image".into(),
            self.image.clone(),
            "--config".into(),
            self.config_path().display().to_string(),
            "--kubeconfig".into(),
            self.kubeconfig().display().to_string(),
            "--wait".into(),
            format!("{}s", self.wait.as_secs()),
        ]
    }

    /// `kind delete cluster --name <name>`'s arguments.
    pub fn delete_args(&self) -> Vec<String> {
        vec!["delete".into(), "cluster".into(), "--name".into(), self.name.clone()]
    }

    /// `kind export logs <dir> --name <name>`'s arguments.
    pub fn export_logs_args(&self, dir: &Path) -> Vec<String> {
        vec![
            "export".into(),
            "logs".into(),
            dir.display().to_string(),
            "--name".into(),
            self.name.clone(),
        ]
    }
}

/// How a kind environment gets its images and runs CSO.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// CSO in local mode, reading `<dir>/releases` (mounted into the node).
    pub local_stacks: bool,
    /// Pull the published images, or use (and build) those `images build` makes.
    pub images: images::Mode,
    /// Show image builds with a progress bar (or lines, off a terminal).
    pub progress: bool,
    /// Keep CSO's lifecycle hooks (see `mgmt::Spec::cso_hooks`).
    pub cso_hooks: bool,
}

/// The kind environment: preflight, `kind create cluster`, the management cluster's providers,
/// logs on failure and `kind delete cluster` per the delete policy.
pub struct KindEnv {
    /// The kind cluster it creates.
    pub cluster: KindCluster,
    /// What goes into the management cluster (providers, CSO and their versions).
    pub spec: mgmt::Spec,
    /// Searched for the engine and every tool.
    pub dirs: Vec<PathBuf>,
    options: Options,
    created: bool,
    properties: BTreeMap<String, String>,
    tools: Option<Tools>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            local_stacks: false,
            images: images::Mode::Pull,
            progress: false,
            cso_hooks: true,
        }
    }
}

impl KindEnv {
    /// The environment for `cluster`, made per `spec` with tools from `dirs`; with local stacks,
    /// `<dir>/releases` is mounted for CSO's local mode. Touches nothing until `up`.
    pub fn new(mut cluster: KindCluster, mut spec: mgmt::Spec, dirs: Vec<PathBuf>, options: Options) -> KindEnv {
        if options.local_stacks {
            cluster.releases = Some(cluster.dir.join("releases"));
            spec.cso.local_release_dir = Some(mgmt::NODE_RELEASE_DIR.into());
        }
        // The in-memory provider serves each workload cluster's API server on CAPD's pod IP;
        // on the node's network that address is one the host (and its kubectl) can reach.
        spec.capd_host_network = true;
        spec.cso_hooks = options.cso_hooks;
        KindEnv {
            cluster,
            spec,
            dirs,
            options,
            created: false,
            properties: BTreeMap::new(),
            tools: None,
        }
    }
}

/// Offline: builds what is missing (node image and controllers), checks the node image and
/// writes the manifests that reference the built images into `dir`.
fn prepare_offline(engine: &Path, node_image: &str, dir: &Path, progress: bool) -> anyhow::Result<images::offline::Offline> {
    let e = images::Engine {
        docker: engine.to_path_buf(),
    };
    let cache = images::Cache::locate();
    let mut wanted: Vec<&'static images::Recipe> = images::management().collect();
    if node_image == images::NODE_IMAGE {
        wanted = images::closure(&["kind-node".to_string()])?.into_iter().chain(wanted).collect();
    }
    let t0 = std::time::Instant::now();
    let built = images::ensure_shown(&e, &cache, &wanted, false, progress)?;
    if !built.is_empty() {
        tracing::info!("built images {} in {:.0}s", built.join(", "), t0.elapsed().as_secs_f64());
    }
    if !e.has(node_image) {
        return Err(KindError::NoNodeImage {
            image: node_image.into(),
            default: images::NODE_IMAGE.into(),
        }
        .into());
    }
    let lab = lab_build::Assets::locate(None, None);
    let go = crate::process::which("go", &[]).ok_or(lab_build::BuildError::NoGo)?;
    let modules = images::offline::Modules::download(&go, &dir.join("modules"))?;
    let tools = images::offline::Tools {
        kubectl: lab.path("kubectl"),
        helm: lab.path("helm"),
    };
    let m = images::offline::write(&dir.join("offline"), &modules, &tools)?;
    let missing: Vec<&str> = m.images.iter().map(String::as_str).filter(|t| !e.has(t)).collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "the offline manifests reference images the engine lacks: {}\nfix: add a recipe for them to fixtures/images and run `scs-e2e images build`",
            missing.join(", ")
        );
    }
    Ok(m)
}

#[async_trait]
impl Environment for KindEnv {
    fn name(&self) -> &'static str {
        "kind"
    }

    async fn up(&mut self) -> anyhow::Result<()> {
        let tools = preflight_in(&self.dirs)?;
        let (mtools, versions) = mgmt::preflight("kind", &self.dirs)?;
        self.cluster.engine_socket = engine_socket(std::env::var("DOCKER_HOST").ok().as_deref())?;
        self.properties.extend(versions);
        self.properties
            .insert("kind".into(), mgmt::tool_version(&tools.kind, &["version"])?);
        self.properties.insert("node_image".into(), self.cluster.image.clone());
        self.properties.insert("kind_cluster".into(), self.cluster.name.clone());
        self.properties.insert(
            "images".into(),
            match self.options.images {
                images::Mode::Pull => "pull",
                images::Mode::Offline => "offline",
            }
            .into(),
        );
        std::fs::create_dir_all(&self.cluster.dir)?;
        let load = match self.options.images {
            images::Mode::Offline => {
                // Image builds block (go build, debootstrap) for minutes on first use.
                let (engine, image, dir, progress) = (
                    tools.engine.clone(),
                    self.cluster.image.clone(),
                    self.cluster.dir.clone(),
                    self.options.progress,
                );
                let m = tokio::task::spawn_blocking(move || prepare_offline(&engine, &image, &dir, progress)).await??;
                self.spec.clusterctl_config = Some(m.clusterctl_config.clone());
                self.spec.cso.use_generated_chart(&m.cso_chart);
                m.images
            }
            images::Mode::Pull => Vec::new(),
        };
        self.properties.extend(mgmt::properties(&self.spec));
        if let Some(r) = &self.cluster.releases {
            std::fs::create_dir_all(r)?;
        }
        std::fs::write(self.cluster.config_path(), self.cluster.config())?;
        let cancel = CancellationToken::new();
        let deadline = Instant::now() + self.cluster.wait + Duration::from_secs(300);
        tracing::info!("kind create cluster --name {}", self.cluster.name);
        // Marked before the call: a half-created cluster must be deleted too.
        self.created = true;
        self.tools = Some(tools.clone());
        if let Err(e) = mgmt::run(&tools.kind, &self.cluster.create_args(), &[], deadline, &cancel).await {
            let text = e.to_string();
            if caps_failure(&text) {
                return Err(KindError::Caps {
                    runtime: "its default".into(),
                }
                .into());
            }
            if text.contains("failed to pull image") {
                return Err(anyhow::anyhow!(
                    "{text}\nfix: the node image `{}` could not be pulled: check kindCluster.nodeImage and the registry, or build every image here and never pull: SCS_E2E_KIND_IMAGES=offline (`scs-e2e images list` shows them)",
                    self.cluster.image
                ));
            }
            return Err(e.into());
        }
        if !load.is_empty() {
            tracing::info!("kind load docker-image: {} images", load.len());
            let mut args: Vec<String> = vec!["load".into(), "docker-image".into(), "--name".into(), self.cluster.name.clone()];
            args.extend(load);
            mgmt::run(&tools.kind, &args, &[], deadline, &cancel).await?;
        }
        let say = |l: &str| tracing::info!("{l}");
        mgmt::install(&self.spec, &mtools, &self.cluster.kubeconfig(), &say, &cancel).await?;
        Ok(())
    }

    async fn down(&mut self) -> anyhow::Result<()> {
        let (true, Some(tools)) = (self.created, &self.tools) else {
            return Ok(());
        };
        let deadline = Instant::now() + Duration::from_secs(300);
        // CAPD's machines and load balancers are containers beside the management node: a
        // workload cluster still there (an interrupted run) would outlive its management cluster.
        let workload = workload_clusters(&self.cluster.kubeconfig()).await;
        mgmt::run(&tools.kind, &self.cluster.delete_args(), &[], deadline, &CancellationToken::new()).await?;
        self.created = false;
        remove_capd_containers(&tools.engine, &workload).await;
        // The kubeconfig lives here; with the cluster gone it is only a stale secret.
        let _ = std::fs::remove_dir_all(&self.cluster.dir);
        Ok(())
    }

    fn kubeconfig(&self) -> Option<PathBuf> {
        Some(self.cluster.kubeconfig())
    }

    async fn collect_logs(&self, dir: &Path) -> anyhow::Result<usize> {
        let (true, Some(tools)) = (self.created, &self.tools) else {
            return Ok(0);
        };
        let deadline = Instant::now() + Duration::from_secs(300);
        let to = dir.join("kind");
        mgmt::run(
            &tools.kind,
            &self.cluster.export_logs_args(&to),
            &[],
            deadline,
            &CancellationToken::new(),
        )
        .await?;
        Ok(walk_count(&to))
    }

    fn properties(&self) -> BTreeMap<String, String> {
        self.properties.clone()
    }

    fn bin_dirs(&self) -> Vec<PathBuf> {
        self.dirs.clone()
    }

    fn keep_hint(&self) -> Option<String> {
        self.created.then(|| {
            format!(
                "kind cluster `{n}` kept: export KUBECONFIG={k}\n  delete it with: kind delete cluster --name {n}",
                n = self.cluster.name,
                k = self.cluster.kubeconfig().display()
            )
        })
    }

    fn management_cluster(&self) -> Option<String> {
        Some(self.cluster.name.clone())
    }

    fn step_vars(&self) -> BTreeMap<String, String> {
        self.cluster
            .releases
            .iter()
            .map(|r| ("CSO_RELEASE_DIR".to_string(), r.display().to_string()))
            .collect()
    }
}

fn walk_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| if e.path().is_dir() { walk_count(&e.path()) } else { 1 })
        .sum()
}

/// A YAML double-quoted string (paths may hold `: ` or `#`).
fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> KindCluster {
        KindCluster {
            name: "scs-e2e-mgmt".into(),
            image: NODE_IMAGE.into(),
            dir: PathBuf::from("/tmp/run 1"),
            wait: Duration::from_secs(300),
            releases: Some(PathBuf::from("/home/me/stacks #1/releases")),
            engine_socket: PathBuf::from("/var/lib/scs-e2e-engine/docker.sock"),
        }
    }

    #[test]
    fn the_config_mounts_the_engine_socket_and_the_releases_and_is_dual_stack() {
        let c = cluster();
        let v: serde_json::Value = serde_saphyr::from_str(&c.config()).unwrap();
        assert_eq!(v["kind"], "Cluster");
        assert_eq!(v["networking"]["ipFamily"], "dual");
        let mounts = v["nodes"][0]["extraMounts"].as_array().unwrap();
        // DOCKER_HOST's socket, where CAPD's manifest looks for it in the node.
        assert_eq!(mounts[0]["hostPath"], "/var/lib/scs-e2e-engine/docker.sock");
        assert_eq!(mounts[0]["containerPath"], "/var/run/docker.sock");
        assert_eq!(mounts[1]["hostPath"], "/home/me/stacks #1/releases");
        assert_eq!(mounts[1]["containerPath"], "/cso-releases");
    }

    #[test]
    fn command_lines_name_the_cluster_config_kubeconfig_and_wait() {
        let c = cluster();
        assert_eq!(
            c.create_args().join(" "),
            "create cluster --name scs-e2e-mgmt --image kindest/node:v1.33.1 --config /tmp/run 1/kind-config.yaml --kubeconfig /tmp/run 1/kubeconfig --wait 300s"
        );
        assert_eq!(c.delete_args(), ["delete", "cluster", "--name", "scs-e2e-mgmt"]);
        assert_eq!(
            c.export_logs_args(Path::new("/a")),
            ["export", "logs", "/a", "--name", "scs-e2e-mgmt"]
        );
    }

    #[test]
    fn the_engine_socket_comes_from_docker_host() {
        assert_eq!(engine_socket(None).unwrap(), Path::new("/var/run/docker.sock"));
        assert_eq!(engine_socket(Some("")).unwrap(), Path::new("/var/run/docker.sock"));
        assert_eq!(engine_socket(Some("unix:///run/e/d.sock")).unwrap(), Path::new("/run/e/d.sock"));
        let e = engine_socket(Some("tcp://10.0.0.1:2375")).unwrap_err().to_string();
        assert!(e.contains("tcp://10.0.0.1:2375") && e.contains("unix://"), "{e}");
    }

    #[test]
    fn the_bounding_set_is_read_from_proc_status() {
        let without = "Name:\tx\nCapBnd:\t000001fffeffffff\nCapAmb:\t0\n";
        let with = "CapBnd:\t000001ffffffffff\n";
        assert_eq!(bounding_set_has(without, CAP_SYS_RESOURCE), Some(false));
        assert_eq!(bounding_set_has(with, CAP_SYS_RESOURCE), Some(true));
        assert_eq!(bounding_set_has("Name: x\n", CAP_SYS_RESOURCE), None);
        assert!(caps_failure(
            "docker: Error response from daemon: OCI runtime create failed: runc create failed: unable to start container process: unable to apply caps: operation not permitted: unknown."
        ));
    }

    #[test]
    fn preflight_names_what_is_missing_or_down() {
        let d = tempfile::tempdir().unwrap();
        let dirs = [d.path().to_path_buf()];
        let e = preflight_in(&dirs).unwrap_err().to_string();
        assert!(e.contains("neither `docker` nor `podman`") && e.contains("--env lab"), "{e}");
        // An engine whose `info` fails (here: `false`), with and without kind.
        let falsy = crate::process::which("false", &[]).unwrap();
        std::os::unix::fs::symlink(&falsy, d.path().join("docker")).unwrap();
        let e = preflight_in(&dirs).unwrap_err().to_string();
        assert!(
            e.contains("needs `kind` on PATH") && e.contains("go install sigs.k8s.io/kind"),
            "{e}"
        );
        std::os::unix::fs::symlink(&falsy, d.path().join("kind")).unwrap();
        let e = preflight_in(&dirs).unwrap_err().to_string();
        assert!(e.contains("docker info` failed") && e.contains("start the engine"), "{e}");
    }
}
