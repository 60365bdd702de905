//! Building the lab's binaries with `go build` from the pinned Go modules in `fixtures/lab/`.
//! The module files are compiled into scs-e2e, so an installed binary builds its lab anywhere.
//! Binaries are cached in a `KUBEBUILDER_ASSETS`-style directory; present binaries are reused.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};

/// The Kubernetes release of the lab's control plane and kubectl (pinned in `fixtures/lab/control-plane`).
pub const KUBERNETES_VERSION: &str = "v1.33.13";
/// The etcd release the lab builds (the one that Kubernetes release requires).
pub const ETCD_VERSION: &str = "3.5.21";

/// A Go module written into the cache before building.
struct Module {
    dir: &'static str,
    files: &'static [(&'static str, &'static str)],
}

/// What a cold build of each module's components costs, roughly (seconds on two cores, from a
/// cold `.ci/run`): only their ratio matters, for sharing the modules out between build lanes.
fn cold_cost(module_dir: &str) -> u32 {
    match module_dir {
        "control-plane" => 1100,
        "capi" => 500,
        "cso" => 260,
        _ => 60,
    }
}

/// A wrapper module that is just `go.mod` and `go.sum` in `fixtures/lab/<dir>`.
macro_rules! go_module {
    ($dir:literal) => {
        Module {
            dir: $dir,
            files: &[
                ("go.mod", include_str!(concat!("../../../../fixtures/lab/", $dir, "/go.mod"))),
                ("go.sum", include_str!(concat!("../../../../fixtures/lab/", $dir, "/go.sum"))),
            ],
        }
    };
}

static CONTROL_PLANE: Module = Module {
    dir: "control-plane",
    files: &[
        ("go.mod", include_str!("../../../../fixtures/lab/control-plane/go.mod")),
        ("go.sum", include_str!("../../../../fixtures/lab/control-plane/go.sum")),
        ("etcd/main.go", include_str!("../../../../fixtures/lab/control-plane/etcd/main.go")),
        // Not a lab binary: the kind node image's CNI daemon, here for the compiled client-go.
        (
            "kindnetd/main.go",
            include_str!("../../../../fixtures/lab/control-plane/kindnetd/main.go"),
        ),
    ],
};

/// The Sonobuoy CLI release the lab builds (pinned in `fixtures/lab/control-plane`).
pub const SONOBUOY_VERSION: &str = "v0.57.3";

static CAPI: Module = go_module!("capi");

static CSO: Module = go_module!("cso");

static KIND: Module = go_module!("kind");

/// The Cluster API release the lab builds (pinned in `fixtures/lab/capi`).
pub const CLUSTER_API_VERSION: &str = "v1.10.10";
/// The Cluster Stack Operator release the lab builds (pinned in `fixtures/lab/cso`).
pub const CSO_VERSION: &str = "v0.1.0-alpha.7";
/// The helm release the lab builds (pinned in `fixtures/lab/control-plane`).
pub const HELM_VERSION: &str = "v3.18.6";
/// The kind release the lab builds (pinned in `fixtures/lab/kind`).
pub const KIND_VERSION: &str = "v0.29.0";
/// The csctl release built on demand (pinned in `fixtures/lab/control-plane`).
pub const CSCTL_VERSION: &str = "v0.0.5";
/// The OpenStack provider (CAPO) release built on demand (pinned in `fixtures/lab/capi`).
pub const CAPO_VERSION: &str = "v0.12.1";
/// The OpenStack Resource Controller release built on demand (pinned in `fixtures/lab/capi`).
pub const ORC_VERSION: &str = "v2.2.0";

/// Manifests a controller ships in its Go module: CRDs and webhook configurations, copied into
/// `<bin>/manifests/<component>/` at install time so the lab never needs Go at start-up.
pub struct Manifests {
    /// The Go module holding them (its directory comes from `go list -m`).
    pub module: &'static str,
    /// Relative to the module: the CRD directory and the webhook manifest.
    pub crds: &'static str,
    /// The webhook manifest, relative to the module (None: the controller serves no webhook).
    pub webhooks: Option<&'static str>,
}

/// One binary the lab builds: its Go package in a pinned wrapper module.
pub struct Component {
    /// The binary's name (`etcd`, `kube-apiserver`, `cso`, ...).
    pub name: &'static str,
    module: &'static Module,
    package: &'static str,
    /// Kubernetes binaries report their version from these variables (`/version`, `--version`).
    kube_version: bool,
    /// CRDs and webhooks to copy out of its module (controllers only; None for the rest).
    pub manifests: Option<Manifests>,
    /// Built only when asked for ([`ensure`]), never by [`install`]: tools only some tests
    /// need, which should not cost every lab install their build.
    pub on_demand: bool,
}

/// What the lab needs, in build order (etcd first: it is the smallest and checks the toolchain),
/// and the tools built only on demand.
pub static COMPONENTS: &[Component] = &[
    Component {
        name: "etcd",
        module: &CONTROL_PLANE,
        package: "./etcd",
        kube_version: false,
        manifests: None,
        on_demand: false,
    },
    Component {
        name: "kube-apiserver",
        module: &CONTROL_PLANE,
        package: "k8s.io/kubernetes/cmd/kube-apiserver",
        kube_version: true,
        manifests: None,
        on_demand: false,
    },
    Component {
        name: "kube-controller-manager",
        module: &CONTROL_PLANE,
        package: "k8s.io/kubernetes/cmd/kube-controller-manager",
        kube_version: true,
        manifests: None,
        on_demand: false,
    },
    Component {
        name: "kubectl",
        module: &CONTROL_PLANE,
        package: "k8s.io/kubernetes/cmd/kubectl",
        kube_version: true,
        manifests: None,
        on_demand: false,
    },
    // Not part of the lab itself: the CLI the Sonobuoy checks drive.
    Component {
        name: "sonobuoy",
        module: &CONTROL_PLANE,
        package: "github.com/vmware-tanzu/sonobuoy",
        kube_version: false,
        manifests: None,
        on_demand: false,
    },
    // The Cluster API layer (started only for plans with cluster-stack steps).
    Component {
        name: "cluster-api",
        module: &CAPI,
        package: "sigs.k8s.io/cluster-api",
        kube_version: false,
        manifests: Some(Manifests {
            module: "sigs.k8s.io/cluster-api",
            crds: "config/crd/bases",
            webhooks: Some("config/webhook/manifests.yaml"),
        }),
        on_demand: false,
    },
    Component {
        name: "kubeadm-bootstrap",
        module: &CAPI,
        package: "sigs.k8s.io/cluster-api/bootstrap/kubeadm",
        kube_version: false,
        manifests: Some(Manifests {
            module: "sigs.k8s.io/cluster-api",
            crds: "bootstrap/kubeadm/config/crd/bases",
            webhooks: Some("bootstrap/kubeadm/config/webhook/manifests.yaml"),
        }),
        on_demand: false,
    },
    Component {
        name: "kubeadm-control-plane",
        module: &CAPI,
        package: "sigs.k8s.io/cluster-api/controlplane/kubeadm",
        kube_version: false,
        manifests: Some(Manifests {
            module: "sigs.k8s.io/cluster-api",
            crds: "controlplane/kubeadm/config/crd/bases",
            webhooks: Some("controlplane/kubeadm/config/webhook/manifests.yaml"),
        }),
        on_demand: false,
    },
    // CAPD: since v1.9 its DevCluster/DevMachine in-memory backend is the in-memory provider.
    Component {
        name: "capd",
        module: &CAPI,
        package: "sigs.k8s.io/cluster-api/test/infrastructure/docker",
        kube_version: false,
        manifests: Some(Manifests {
            module: "sigs.k8s.io/cluster-api/test",
            crds: "infrastructure/docker/config/crd/bases",
            webhooks: Some("infrastructure/docker/config/webhook/manifests.yaml"),
        }),
        on_demand: false,
    },
    Component {
        name: "cso",
        module: &CSO,
        package: "github.com/SovereignCloudStack/cluster-stack-operator/cmd",
        kube_version: false,
        manifests: Some(Manifests {
            module: "github.com/SovereignCloudStack/cluster-stack-operator",
            crds: "config/crd/bases",
            webhooks: Some("config/webhook/manifests.yaml"),
        }),
        on_demand: false,
    },
    // CSO runs `helm template` as a child process.
    Component {
        name: "helm",
        module: &CONTROL_PLANE,
        package: "helm.sh/helm/v3/cmd/helm",
        kube_version: false,
        manifests: None,
        on_demand: false,
    },
    // Tools `--env kind|openstack` drive; here the tests run them for their command lines, error
    // paths and (clusterctl) a real `init` against the lab.
    Component {
        name: "clusterctl",
        module: &CAPI,
        package: "sigs.k8s.io/cluster-api/cmd/clusterctl",
        kube_version: false,
        manifests: None,
        on_demand: false,
    },
    Component {
        name: "kind",
        module: &KIND,
        package: "sigs.k8s.io/kind",
        kube_version: false,
        manifests: None,
        on_demand: false,
    },
    // The reference `scs-e2e stack build` is compared with.
    Component {
        name: "csctl",
        module: &CONTROL_PLANE,
        package: "github.com/SovereignCloudStack/csctl",
        kube_version: false,
        manifests: None,
        on_demand: true,
    },
    // The OpenStack layer (a lab started with `openstack`): CAPO and ORC against a real
    // OpenStack. Only the OpenStack tests need them, so they are built on first use.
    Component {
        name: "orc",
        module: &CAPI,
        package: "github.com/k-orc/openstack-resource-controller/v2/cmd/manager",
        kube_version: false,
        manifests: Some(Manifests {
            module: "github.com/k-orc/openstack-resource-controller/v2",
            crds: "config/crd/bases",
            webhooks: None,
        }),
        on_demand: true,
    },
    Component {
        name: "capo",
        module: &CAPI,
        package: "sigs.k8s.io/cluster-api-provider-openstack",
        kube_version: false,
        manifests: Some(Manifests {
            module: "sigs.k8s.io/cluster-api-provider-openstack",
            crds: "config/crd/bases",
            webhooks: Some("config/webhook/manifests.yaml"),
        }),
        on_demand: true,
    },
];

/// The OpenStack layer's controllers, in start order (ORC's Image CRD is one CAPO watches).
pub const OPENSTACK: &[&str] = &["orc", "capo"];

/// The Cluster API layer's binaries, in start order (helm is not a process but CSO needs it).
pub const CLUSTER_API: &[&str] = &["cluster-api", "kubeadm-bootstrap", "kubeadm-control-plane", "capd", "cso", "helm"];

/// The binaries `lab up` starts (kubectl is a convenience for command steps).
pub const REQUIRED: &[&str] = &["etcd", "kube-apiserver", "kube-controller-manager"];

/// Why the lab's binaries are not there or could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No `go` on PATH, and the binaries have to be built.
    #[error(
        "the Go toolchain (`go`) is not on PATH, and the lab builds its binaries from Go modules: install Go 1.24 or newer (https://go.dev/dl/), or set SCS_E2E_LAB_BIN_DIR to a directory holding {} (the KUBEBUILDER_ASSETS layout)",
        REQUIRED.join(", ")
    )]
    NoGo,
    /// `go build` failed fetching modules (the proxy is unreachable or refused).
    #[error(
        "downloading Go modules for {component} failed (GOPROXY={proxy}): {detail}\nfix: check that the Go module proxy is reachable (or set GOPROXY to a mirror), then run `scs-e2e lab install` again"
    )]
    Download {
        /// The component being built.
        component: String,
        /// The GOPROXY in effect.
        proxy: String,
        /// The last lines of `go build`'s output.
        detail: String,
    },
    /// `go build` failed, or a component's manifests could not be found in its module.
    #[error("`go build` of {component} failed: {detail}\nfull output: {log}")]
    Build {
        /// The component being built.
        component: String,
        /// The last lines of `go build`'s output, or what was missing.
        detail: String,
        /// The full build log (or the module directory, when copying manifests failed).
        log: String,
    },
    /// A given (not managed) bin directory lacks an on-demand tool, which is built only into the
    /// managed cache.
    #[error(
        "{dir} (SCS_E2E_LAB_BIN_DIR or lab.binDir, used as is) has no {name}: put one there, or unset it so that scs-e2e builds {name} into its cache"
    )]
    NotGiven {
        /// The bin directory.
        dir: String,
        /// The absent tool.
        name: String,
    },
    /// A given (not managed) bin directory lacks binaries the lab needs.
    #[error("{dir} lacks {missing}: SCS_E2E_LAB_BIN_DIR (or lab.binDir) must hold {} (the KUBEBUILDER_ASSETS layout)", REQUIRED.join(", "))]
    Incomplete {
        /// The bin directory.
        dir: String,
        /// The absent binaries (or manifests), comma-separated.
        missing: String,
    },
    /// A file or process operation failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Where binaries live: a user-provided directory, or the cache for these pinned versions.
#[derive(Clone, Debug)]
pub struct Assets {
    /// The `KUBEBUILDER_ASSETS`-style directory holding the binaries (and `manifests/`).
    pub bin_dir: PathBuf,
    /// Built by us (so we may build what is missing), or given by the user (use as is).
    pub managed: bool,
    cache_root: PathBuf,
}

impl Assets {
    /// `bin_dir` (flag/env/config) wins; else `<cache>/lab/<k8s>-<hash>/bin`.
    pub fn locate(bin_dir: Option<PathBuf>, cache_dir: Option<PathBuf>) -> Assets {
        let cache_root = cache_dir.unwrap_or_else(default_cache_dir);
        match bin_dir.or_else(|| std::env::var_os("SCS_E2E_LAB_BIN_DIR").map(PathBuf::from)) {
            Some(d) => Assets {
                bin_dir: d,
                managed: false,
                cache_root,
            },
            None => Assets {
                bin_dir: cache_root.join(format!("{KUBERNETES_VERSION}-{}", source_hash())).join("bin"),
                managed: true,
                cache_root,
            },
        }
    }

    /// The binary `name` in the bin directory (present or not).
    pub fn path(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// Components of the lab install whose binary (or copied manifests) is absent.
    pub fn missing(&self) -> Vec<&'static str> {
        COMPONENTS
            .iter()
            .filter(|c| !c.on_demand)
            .filter(|c| !self.path(c.name).is_file() || (c.manifests.is_some() && !self.manifests_dir(c.name).is_dir()))
            .map(|c| c.name)
            .collect()
    }

    /// `<bin>/manifests/<component>`: `crds/*.yaml` and `webhooks.yaml`.
    pub fn manifests_dir(&self, component: &str) -> PathBuf {
        self.bin_dir.join("manifests").join(component)
    }

    /// Fails unless the Cluster API layer (binaries and manifests) is present.
    pub fn check_cluster_api(&self) -> Result<(), BuildError> {
        self.incomplete(self.missing().into_iter().filter(|n| CLUSTER_API.contains(n)).collect())
    }

    /// Fails unless the OpenStack layer (CAPO and ORC, built on demand by [`ensure`]) is present.
    pub fn check_openstack(&self) -> Result<(), BuildError> {
        self.incomplete(
            OPENSTACK
                .iter()
                .copied()
                .filter(|n| !self.path(n).is_file() || !self.manifests_dir(n).is_dir())
                .collect(),
        )
    }

    /// Fails unless the binaries `lab up` needs are present.
    pub fn check(&self) -> Result<(), BuildError> {
        self.incomplete(REQUIRED.iter().copied().filter(|n| !self.path(n).is_file()).collect())
    }

    fn incomplete(&self, missing: Vec<&str>) -> Result<(), BuildError> {
        if missing.is_empty() {
            Ok(())
        } else {
            Err(BuildError::Incomplete {
                dir: self.bin_dir.display().to_string(),
                missing: missing.join(", "),
            })
        }
    }

    fn src_dir(&self) -> PathBuf {
        self.bin_dir.parent().unwrap_or(&self.cache_root).join("src")
    }
}

/// `<cache>/lab` (SCS_E2E_CACHE_DIR, XDG_CACHE_HOME or ~/.cache): the default lab build cache.
pub fn default_cache_dir() -> PathBuf {
    crate::base::cache_root().join("lab")
}

/// Writes every pinned wrapper module to `<dest>/<dir>/` (the image recipes build from them too).
pub fn write_modules(dest: &Path) -> std::io::Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for m in COMPONENTS.iter().map(|c| c.module).filter(|m| seen.insert(m.dir)) {
        write_module(dest, m)?;
    }
    Ok(())
}

fn write_module(dest: &Path, m: &Module) -> std::io::Result<()> {
    for (p, text) in m.files {
        crate::base::write_file(&dest.join(m.dir).join(p), text.as_bytes())?;
    }
    Ok(())
}

/// Changes whenever a pinned module changes, so a new pin never reuses stale binaries.
/// On-demand components are left out (adding one must not make every lab rebuild); each of
/// theirs is checked against its own [`component_hash`] instead. Their pins are in the modules
/// they share with the lab's binaries, so moving one changes this key too: it may move the
/// dependency versions those binaries build with.
pub fn source_hash() -> String {
    let mut h = Sha256::new();
    for c in COMPONENTS.iter().filter(|c| !c.on_demand) {
        hash_component(&mut h, c);
    }
    format!("{:x}", h.finalize())[..10].to_string()
}

/// The pin of one component: its name, package and module files.
fn component_hash(c: &Component) -> String {
    let mut h = Sha256::new();
    hash_component(&mut h, c);
    format!("{:x}", h.finalize())[..10].to_string()
}

fn hash_component(h: &mut Sha256, c: &Component) {
    h.update(c.name);
    h.update(c.package);
    for (p, text) in c.module.files {
        h.update(p);
        h.update(text);
    }
}

/// Reports build progress (a bar on a terminal, lines otherwise); builds may run at once.
pub trait Progress: Sync {
    /// The build begins with `total` items.
    fn start(&self, total: usize);
    /// Item `index` (from 0) of the total, `name`, is being built.
    fn building(&self, index: usize, name: &str);
    /// `name` is done (built, or for images also loaded from its archive), after `secs` seconds.
    fn done(&self, name: &str, secs: f64);
    /// Every item is done (or the build stopped).
    fn finish(&self);
}

/// Progress on stderr: a bar on a terminal, a line per step otherwise.
pub struct ConsoleProgress {
    bar: Option<indicatif::ProgressBar>,
    /// What is being made: `lab install` builds binaries with go build, `images build` images.
    label: &'static str,
    unit: &'static str,
    verb: &'static str,
}

impl ConsoleProgress {
    /// Progress of `lab install`'s go builds.
    pub fn new() -> Self {
        Self::named("lab install", "binaries with go build", "go build")
    }

    /// Progress shown as `label`, counting `unit` (`building 12 <unit>`), each step `<verb> <name>`.
    pub fn named(label: &'static str, unit: &'static str, verb: &'static str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template(&format!(
                    "{{spinner}} {label} [{{bar:24}}] {{pos}}/{{len}} {{wide_msg}} {{elapsed}}"
                ))
                .expect("valid template")
                .progress_chars("=> "),
            );
            b.enable_steady_tick(std::time::Duration::from_millis(150));
            b
        });
        ConsoleProgress { bar, label, unit, verb }
    }
}

impl Default for ConsoleProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for ConsoleProgress {
    fn start(&self, total: usize) {
        match &self.bar {
            Some(b) => b.set_length(total as u64),
            None => eprintln!(
                "{}: building {total} {} (the first build takes several minutes)",
                self.label, self.unit
            ),
        }
    }
    fn building(&self, index: usize, name: &str) {
        match &self.bar {
            Some(b) => b.set_message(format!("{} {name}", self.verb)),
            None => eprintln!("{}: [{}] {} {name} …", self.label, index + 1, self.verb),
        }
    }
    fn done(&self, name: &str, secs: f64) {
        match &self.bar {
            Some(b) => {
                b.inc(1);
                b.println(format!("built {name} in {secs:.0}s"));
            }
            None => eprintln!("{}: built {name} in {secs:.0}s", self.label),
        }
    }
    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Shows nothing.
pub struct Quiet;
impl Progress for Quiet {
    fn start(&self, _: usize) {}
    fn building(&self, _: usize, _: &str) {}
    fn done(&self, _: &str, _: f64) {}
    fn finish(&self) {}
}

/// Builds whatever binaries are missing. Returns the names built (empty: all cached).
pub fn install(assets: &Assets, progress: &dyn Progress) -> Result<Vec<&'static str>, BuildError> {
    if !assets.managed {
        assets.check()?;
        return Ok(Vec::new());
    }
    if assets.missing().is_empty() {
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(&assets.bin_dir)?;
    // One builder at a time (parallel tests, two terminals): the others wait, then find the binaries.
    let _lock = crate::process::FileLock::acquire(&assets.bin_dir.join(".install.lock"))?;
    let missing = assets.missing();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let go = crate::process::which("go", &[]).ok_or(BuildError::NoGo)?;
    let src = assets.src_dir();
    let todo: Vec<&Component> = COMPONENTS.iter().filter(|c| missing.contains(&c.name)).collect();
    // Every module is written before any build starts: two lanes may share none, but each
    // reads only its own.
    write_modules(&src)?;
    progress.start(todo.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let results: Vec<Result<Vec<&'static str>, BuildError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = lanes(&todo, BUILD_LANES)
            .into_iter()
            .map(|lane| {
                let (go, src, next, failed) = (&go, &src, &next, &failed);
                scope.spawn(move || {
                    let mut built = Vec::new();
                    for c in lane {
                        if failed.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        progress.building(index, c.name);
                        let t0 = Instant::now();
                        let mdir = src.join(c.module.dir);
                        let r = (|| {
                            if !assets.path(c.name).is_file() {
                                build_one(go, c, &ldflags(c, KUBERNETES_VERSION), &mdir, &assets.bin_dir, src)?;
                            }
                            if let Some(m) = &c.manifests {
                                copy_manifests(go, c.name, m, &mdir, &assets.manifests_dir(c.name))?;
                            }
                            Ok(())
                        })();
                        if let Err(e) = r {
                            failed.store(true, std::sync::atomic::Ordering::Relaxed);
                            return Err(e);
                        }
                        progress.done(c.name, t0.elapsed().as_secs_f64());
                        built.push(c.name);
                    }
                    Ok(built)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("a build lane panicked")).collect()
    });
    progress.finish();
    let mut built = Vec::new();
    for r in results {
        built.extend(r?);
    }
    // In COMPONENTS order, whatever lane built what.
    built.sort_by_key(|n| COMPONENTS.iter().position(|c| c.name == *n));
    Ok(built)
}

/// The component `name`, if it is of the kind `is` asks for; else the error says `what` it is not.
fn component(name: &str, is: impl Fn(&Component) -> bool, what: &str) -> Result<&'static Component, BuildError> {
    COMPONENTS
        .iter()
        .find(|c| c.name == name && is(c))
        .ok_or_else(|| BuildError::Build {
            component: name.to_string(),
            detail: what.into(),
            log: String::new(),
        })
}

/// Builds the on-demand component `name` (`csctl`) into the bin directory unless it is there
/// from the same pin, and returns its path. A given (unmanaged) bin directory is used as is.
pub fn ensure(assets: &Assets, name: &str, progress: &dyn Progress) -> Result<PathBuf, BuildError> {
    let c = component(name, |c| c.on_demand, "not one of the lab's on-demand tools")?;
    let bin = assets.path(name);
    if !assets.managed {
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(BuildError::NotGiven {
                dir: assets.bin_dir.display().to_string(),
                name: name.to_string(),
            })
        };
    }
    // The lab's cache key leaves on-demand pins out, so the binary carries its own.
    let stamp = assets.bin_dir.join(format!(".{name}.pin"));
    let pin = component_hash(c);
    let fresh = || {
        bin.is_file()
            && std::fs::read_to_string(&stamp).is_ok_and(|s| s == pin)
            && (c.manifests.is_none() || assets.manifests_dir(name).is_dir())
    };
    if fresh() {
        return Ok(bin);
    }
    std::fs::create_dir_all(&assets.bin_dir)?;
    let _lock = crate::process::FileLock::acquire(&assets.bin_dir.join(".install.lock"))?;
    if fresh() {
        return Ok(bin);
    }
    let go = crate::process::which("go", &[]).ok_or(BuildError::NoGo)?;
    let src = assets.src_dir();
    write_module(&src, c.module)?;
    progress.start(1);
    progress.building(0, name);
    let t0 = Instant::now();
    let mdir = src.join(c.module.dir);
    let built = build_one(&go, c, &ldflags(c, KUBERNETES_VERSION), &mdir, &assets.bin_dir, &src).and_then(|()| match &c.manifests {
        Some(m) => copy_manifests(&go, name, m, &mdir, &assets.manifests_dir(name)),
        None => Ok(()),
    });
    if built.is_ok() {
        progress.done(name, t0.elapsed().as_secs_f64());
    }
    progress.finish();
    built?;
    std::fs::write(&stamp, pin)?;
    Ok(bin)
}

/// Two `go build`s at once keep both cores busy through the single-threaded links and the
/// narrow ends of each build; more would only compete.
const BUILD_LANES: usize = 2;

/// Shares the components out between `n` lanes by module (a module's components share most
/// packages, so they go one after another in one lane and compile them once), the costliest
/// module first onto the least loaded lane.
fn lanes<'a>(todo: &[&'a Component], n: usize) -> Vec<Vec<&'a Component>> {
    let mut modules: Vec<&str> = Vec::new();
    for c in todo {
        if !modules.contains(&c.module.dir) {
            modules.push(c.module.dir);
        }
    }
    modules.sort_by_key(|m| std::cmp::Reverse(cold_cost(m)));
    let mut lanes: Vec<(u32, Vec<&'a Component>)> = (0..n).map(|_| (0, Vec::new())).collect();
    for m in modules {
        let lane = lanes.iter_mut().min_by_key(|(load, _)| *load).expect("at least one lane");
        lane.0 += cold_cost(m);
        lane.1.extend(todo.iter().filter(|c| c.module.dir == m));
    }
    lanes.into_iter().map(|(_, l)| l).filter(|l| !l.is_empty()).collect()
}

/// The compiler flags of every Go build of the project's (here, the image recipes in
/// `fixtures/images/lib/recipe.sh` and `mgmt/lib.sh`): the same everywhere, so that the builds share
/// compiled packages in the Go cache. No DWARF: `-ldflags=-w` drops it from the binaries anyway,
/// and making it took 11% of a cold build's CPU (helm on an empty cache: 270 against 304 CPU-s).
pub const GCFLAGS: &str = "-gcflags=all=-dwarf=false";

/// The Go compiler's GC target: `GOGC` if set, else 400. The compiler allocates a lot and the
/// builds are CPU-bound: building kube-scheduler on empty caches took 0.85x the CPU with 400 as
/// with Go's 100 (655 against 768 CPU-seconds, peak memory +6%, one run each, same hour).
pub fn go_gc() -> String {
    std::env::var("GOGC").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| "400".into())
}

/// The link flags of `c`; Kubernetes binaries report `kube_version`.
fn ldflags(c: &Component, kube_version: &str) -> String {
    let mut f = vec!["-s".to_string(), "-w".to_string()];
    if c.kube_version {
        let pkgs = ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"];
        version_flags(&mut f, &pkgs, kube_version);
    }
    if c.name == "clusterctl" {
        // `clusterctl version` and its provider-contract checks read these.
        version_flags(&mut f, &["sigs.k8s.io/cluster-api/version"], CLUSTER_API_VERSION);
    }
    if c.name == "helm" {
        // As helm's release stamps it (and fixtures/images/mgmt/lib.sh, which then reuses this
        // build for CSO's image instead of linking another): its version, and the Kubernetes
        // release of the client-go it is built with (the control plane's), which `helm template`
        // assumes when CSO does not pass --kube-version. Unstamped, helm assumes v1.20.
        let h = "helm.sh/helm/v3";
        let (major, minor) = major_minor(kube_version);
        f.push(format!("-X {h}/internal/version.version={HELM_VERSION}"));
        f.push(format!("-X {h}/internal/version.gitTreeState=clean"));
        for pkg in ["pkg/lint/rules", "pkg/chartutil"] {
            f.push(format!("-X {h}/{pkg}.k8sVersionMajor={major} -X {h}/{pkg}.k8sVersionMinor={minor}"));
        }
    }
    if c.name == "csctl" {
        // What `csctl version` says (its Makefile sets the same variable).
        f.push(format!("-X github.com/SovereignCloudStack/csctl/pkg/cmd.Version={CSCTL_VERSION}"));
    }
    f.join(" ")
}

/// `("1", "33")` of `v1.33.13`.
fn major_minor(v: &str) -> (&str, &str) {
    let mut parts = v.trim_start_matches('v').split('.');
    (parts.next().unwrap_or("1"), parts.next().unwrap_or("0"))
}

/// `-X` flags filling the variables of a Kubernetes-style `version` package.
fn version_flags(f: &mut Vec<String>, pkgs: &[&str], v: &str) {
    let (major, minor) = major_minor(v);
    for pkg in pkgs {
        f.push(format!("-X {pkg}.gitVersion={v}"));
        f.push(format!("-X {pkg}.gitMajor={major}"));
        f.push(format!("-X {pkg}.gitMinor={minor}"));
        f.push(format!("-X {pkg}.gitTreeState=clean"));
        f.push(format!("-X {pkg}.buildDate=1970-01-01T00:00:00Z"));
    }
}

/// Links one of the lab's Kubernetes binaries (`kube-apiserver`, ...) again into `out_dir`,
/// stamped with another `version` (what its `/version` and `--version` say): from the same
/// sources and flags, so with the lab's Go cache warm only the link runs. Tests use it for a real
/// API server of another version.
pub fn build_with_version(assets: &Assets, name: &str, version: &str, out_dir: &Path) -> Result<PathBuf, BuildError> {
    let c = component(name, |c| c.kube_version, "not one of the lab's Kubernetes binaries")?;
    let go = crate::process::which("go", &[]).ok_or(BuildError::NoGo)?;
    let src = assets.src_dir();
    if !src.join(c.module.dir).join("go.mod").is_file() {
        write_modules(&src)?;
    }
    std::fs::create_dir_all(out_dir)?;
    build_one(&go, c, &ldflags(c, version), &src.join(c.module.dir), out_dir, out_dir)?;
    Ok(out_dir.join(c.name))
}

fn build_one(go: &Path, c: &Component, flags: &str, module_dir: &Path, bin_dir: &Path, log_dir: &Path) -> Result<(), BuildError> {
    let tmp = bin_dir.join(format!(".{}.tmp", c.name));
    let log = log_dir.join(format!("build-{}.log", c.name));
    let out = duct::cmd(
        go,
        [
            "build",
            "-trimpath",
            GCFLAGS,
            "-ldflags",
            flags,
            "-o",
            &tmp.display().to_string(),
            c.package,
        ],
    )
    .dir(module_dir)
    .env("CGO_ENABLED", "0")
    .env("GOGC", go_gc())
    .stderr_to_stdout()
    .stdout_capture()
    .unchecked()
    .run()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    std::fs::write(&log, &text)?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        let tail: Vec<&str> = text.lines().rev().take(6).collect::<Vec<_>>().into_iter().rev().collect();
        let detail = tail.join("\n");
        if is_download_failure(&text) {
            let proxy = std::env::var("GOPROXY").unwrap_or_else(|_| go_env(go, "GOPROXY"));
            return Err(BuildError::Download {
                component: c.name.to_string(),
                proxy,
                detail,
            });
        }
        return Err(BuildError::Build {
            component: c.name.to_string(),
            detail,
            log: log.display().to_string(),
        });
    }
    // Rename last: a binary is either whole or absent, so an interrupted build is simply redone.
    std::fs::rename(&tmp, bin_dir.join(c.name))?;
    Ok(())
}

/// Copies a controller's CRDs and webhook manifest out of the Go module cache (the build just
/// downloaded the module). Written to a temporary directory and renamed: whole or absent.
fn copy_manifests(go: &Path, name: &str, m: &Manifests, module_dir: &Path, dest: &Path) -> Result<(), BuildError> {
    let out = duct::cmd(go, ["list", "-m", "-f", "{{.Dir}}", m.module])
        .dir(module_dir)
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || text.is_empty() {
        return Err(BuildError::Build {
            component: name.to_string(),
            detail: format!("`go list -m {}` found no module directory: {text}", m.module),
            log: module_dir.display().to_string(),
        });
    }
    let src = PathBuf::from(text);
    let tmp = dest.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.join("crds"))?;
    let mut n = 0;
    for e in std::fs::read_dir(src.join(m.crds))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "yaml") {
            std::fs::copy(&p, tmp.join("crds").join(p.file_name().unwrap()))?;
            n += 1;
        }
    }
    if n == 0 {
        return Err(BuildError::Build {
            component: name.to_string(),
            detail: format!("no CRDs in {}", src.join(m.crds).display()),
            log: module_dir.display().to_string(),
        });
    }
    // A controller without webhooks gets an empty manifest: the lab reads every one the same way.
    match m.webhooks {
        Some(w) => std::fs::copy(src.join(w), tmp.join("webhooks.yaml")).map(drop)?,
        None => std::fs::write(tmp.join("webhooks.yaml"), "")?,
    }
    // The module cache is read-only; our copies must be removable with the cache.
    for p in [tmp.join("crds"), tmp.join("webhooks.yaml")] {
        set_writable(&p)?;
    }
    let _ = std::fs::remove_dir_all(dest);
    std::fs::create_dir_all(dest.parent().unwrap())?;
    std::fs::rename(&tmp, dest)?;
    Ok(())
}

fn set_writable(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if p.is_dir() {
        for e in std::fs::read_dir(p)? {
            set_writable(&e?.path())?;
        }
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
    } else {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644))
    }
}

fn is_download_failure(out: &str) -> bool {
    [
        "module lookup disabled",
        "dial tcp",
        "proxy.golang.org",
        "reading https://",
        "no such host",
        "GOPROXY=off",
        "connection refused",
        "i/o timeout",
        "403 Forbidden",
        "404 Not Found",
        "missing go.sum entry",
        "verifying module",
    ]
    .iter()
    .any(|m| out.contains(m))
}

fn go_env(go: &Path, key: &str) -> String {
    duct::cmd(go, ["env", key]).read().unwrap_or_default().trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn try_lock(path: &Path) -> bool {
        let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        // SAFETY: a non-blocking flock on our own descriptor.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
    }

    #[test]
    fn install_lock_excludes_other_builders_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".install.lock");
        let held = crate::process::FileLock::acquire(&p).unwrap();
        assert!(!try_lock(&p), "a second builder must wait");
        drop(held);
        assert!(try_lock(&p), "free again after the first builder is done");
    }

    #[test]
    fn a_user_bin_dir_is_used_as_is_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let a = Assets::locate(Some(dir.path().to_path_buf()), None);
        assert!(!a.managed);
        let e = install(&a, &Quiet).unwrap_err().to_string();
        assert!(e.contains("lacks etcd, kube-apiserver, kube-controller-manager"), "{e}");
    }

    #[test]
    fn lanes_keep_modules_together_and_balance_the_cold_cost() {
        // What `lab install` builds: the on-demand tools are built one at a time by `ensure`.
        let all: Vec<&Component> = COMPONENTS.iter().filter(|c| !c.on_demand).collect();
        let lanes = lanes(&all, 2);
        assert_eq!(lanes.len(), 2);
        assert_eq!(lanes.iter().map(Vec::len).sum::<usize>(), all.len());
        for m in ["control-plane", "capi", "cso", "kind"] {
            let holding: Vec<usize> = (0..2).filter(|i| lanes[*i].iter().any(|c| c.module.dir == m)).collect();
            assert_eq!(holding.len(), 1, "{m} is built in one lane");
        }
        // The Kubernetes control plane (half the cold cost) against nearly everything else.
        let cp: Vec<&str> = lanes[0].iter().map(|c| c.module.dir).collect();
        assert!(!cp.iter().any(|m| ["capi", "cso"].contains(m)), "{cp:?}");
        // Within a lane, components keep their order (etcd first checks the toolchain).
        assert_eq!(lanes[0][0].name, "etcd");
        // One lane for a single module.
        assert_eq!(super::lanes(&all[..2], 2).len(), 1);
    }

    #[test]
    fn on_demand_tools_stay_out_of_the_lab_install_and_its_cache_key() {
        let cache = tempfile::tempdir().unwrap();
        let a = Assets::locate(None, Some(cache.path().to_path_buf()));
        assert!(a.missing().contains(&"kind"));
        assert!(!a.missing().contains(&"csctl"), "install must not build csctl");
        let csctl = COMPONENTS.iter().find(|c| c.name == "csctl").unwrap();
        assert!(csctl.on_demand);
        // CAPO and ORC too: only the OpenStack tests need them.
        for n in OPENSTACK {
            assert!(COMPONENTS.iter().any(|c| c.name == *n && c.on_demand), "{n}");
            assert!(!a.missing().contains(n), "install must not build {n}");
        }
        // They share the lab's modules (csctl the control plane's, CAPO and ORC Cluster API's) and
        // so its compiled dependencies: a new pin of theirs can move the versions the lab builds
        // with, so it changes the lab's key too. Their own pin stamps (.csctl.pin, ...) say
        // whether the tool itself is current.
        let mut h = Sha256::new();
        for c in COMPONENTS.iter().filter(|c| !["csctl", "capo", "orc"].contains(&c.name)) {
            hash_component(&mut h, c);
        }
        assert_eq!(source_hash(), format!("{:x}", h.finalize())[..10]);
    }

    #[test]
    fn ensure_reuses_a_binary_of_the_same_pin_and_uses_a_given_dir_as_is() {
        let cache = tempfile::tempdir().unwrap();
        let a = Assets::locate(None, Some(cache.path().to_path_buf()));
        std::fs::create_dir_all(&a.bin_dir).unwrap();
        std::fs::write(a.path("csctl"), "").unwrap();
        let csctl = COMPONENTS.iter().find(|c| c.name == "csctl").unwrap();
        std::fs::write(a.bin_dir.join(".csctl.pin"), component_hash(csctl)).unwrap();
        // Nothing is built (no `go` needed): the stamp matches.
        assert_eq!(ensure(&a, "csctl", &Quiet).unwrap(), a.path("csctl"));
        let e = ensure(&a, "kind", &Quiet).unwrap_err().to_string();
        assert!(e.contains("not one of the lab's on-demand tools"), "{e}");

        let given = tempfile::tempdir().unwrap();
        let g = Assets::locate(Some(given.path().to_path_buf()), None);
        let e = ensure(&g, "csctl", &Quiet).unwrap_err().to_string();
        assert!(e.contains("has no csctl"), "{e}");
        std::fs::write(g.path("csctl"), "").unwrap();
        assert_eq!(ensure(&g, "csctl", &Quiet).unwrap(), g.path("csctl"));
    }

    #[test]
    fn csctl_reports_its_pinned_version() {
        let csctl = COMPONENTS.iter().find(|c| c.name == "csctl").unwrap();
        let f = ldflags(csctl, KUBERNETES_VERSION);
        assert!(f.contains("-X github.com/SovereignCloudStack/csctl/pkg/cmd.Version=v0.0.5"), "{f}");
    }

    #[test]
    fn kubernetes_binaries_get_version_ldflags() {
        let f = ldflags(&COMPONENTS[1], KUBERNETES_VERSION);
        assert!(f.contains("-X k8s.io/component-base/version.gitVersion=v1.33.13"), "{f}");
        assert!(f.contains("gitMinor=33"), "{f}");
        assert!(
            !ldflags(&COMPONENTS[0], KUBERNETES_VERSION).contains("-X"),
            "etcd has its own version"
        );
    }

    /// The image recipes compile with the lab's flags: with other flags the Go cache keys differ
    /// and a cold image build compiles every shared package (client-go, Kubernetes) again.
    #[test]
    fn image_recipes_compile_with_the_labs_flags() {
        let recipe = include_str!("../../../../fixtures/images/lib/recipe.sh");
        assert!(recipe.contains(&format!("\nGCFLAGS={GCFLAGS}\n")));
        for (file, text) in [
            ("lib/recipe.sh", recipe),
            ("mgmt/lib.sh", include_str!("../../../../fixtures/images/mgmt/lib.sh")),
            ("conformance.sh", include_str!("../../../../fixtures/images/conformance.sh")),
        ] {
            // The command lines of the builds (not the log lines that name them).
            let builds: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("CGO_ENABLED=0") && !l.trim_start().starts_with('#'))
                .collect();
            assert!(!builds.is_empty(), "{file} builds nothing");
            for l in builds {
                assert!(l.contains(GCFLAGS) || l.contains("\"$GCFLAGS\""), "{file}: {l}");
            }
        }
    }

    /// `module version` of every requirement and `module => module version` of every replacement.
    fn go_mod_versions(text: &str) -> std::collections::BTreeMap<String, String> {
        let mut out = std::collections::BTreeMap::new();
        let mut block = "";
        for line in text.lines().map(|l| l.split("//").next().unwrap_or("").trim()) {
            match line {
                "require (" => block = "require",
                "replace (" => block = "replace",
                ")" => block = "",
                _ => {
                    let (kind, rest) = match line.split_once(' ') {
                        Some(("require", r)) => ("require", r),
                        Some(("replace", r)) => ("replace", r),
                        _ => (block, line),
                    };
                    let words: Vec<&str> = rest.split_whitespace().collect();
                    match (kind, words.as_slice()) {
                        ("require", [m, v]) => {
                            out.insert(m.to_string(), v.to_string());
                        }
                        ("replace", [m, "=>", _, v]) => {
                            out.insert(format!("{m} =>"), v.to_string());
                        }
                        _ => {}
                    }
                }
            }
        }
        out
    }

    /// The conformance image's module (e2e.test, agnhost) requires what the control plane's
    /// requires, for every module both have: a package compiles once per set of dependency
    /// versions, so one differing version (say golang.org/x/net, which client-go imports)
    /// compiles client-go and all that is above it a second time in a cold run.
    #[test]
    fn the_conformance_module_shares_the_control_planes_versions() {
        let cp = go_mod_versions(include_str!("../../../../fixtures/lab/control-plane/go.mod"));
        let conf = go_mod_versions(include_str!("../../../../fixtures/images/conformance/go.mod"));
        assert!(
            cp.contains_key("k8s.io/client-go") && cp.contains_key("k8s.io/client-go =>"),
            "{cp:?}"
        );
        let differ: Vec<String> = conf
            .iter()
            .filter_map(|(m, v)| cp.get(m).filter(|c| *c != v).map(|c| format!("{m}: {v} (control plane: {c})")))
            .collect();
        assert!(differ.is_empty(), "fixtures/images/conformance/go.mod: {differ:#?}");
        // The parser reads both blocks and single lines.
        let one = go_mod_versions("module x\nrequire a v1\nrequire (\n\tb v2 // indirect\n)\nreplace c => c v3\n");
        assert_eq!(one.len(), 3, "{one:?}");
    }
}
