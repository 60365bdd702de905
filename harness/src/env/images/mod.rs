//! Container images built from source (`scs-e2e images build`): a kind node image with every
//! image kubeadm and kind need preloaded, and the management cluster's controllers, so
//! `--env kind` never pulls (air-gapped sites, machines without a registry).
//!
//! Each image is a recipe, `fixtures/images/<name>.sh` (compiled into the binary), that leaves a
//! root filesystem tarball and its `docker import` changes; the node image's recipe runs kind's
//! own `kind build node-image` instead. Results are keyed on the recipe, its files, the pinned
//! lab modules it reuses and the keys of the images it reads, kept as `docker save` archives in
//! the cache and labelled in the engine, so a second build (or a fresh engine) reuses them.

pub mod offline;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::env::lab::build::{self as lab_build, Progress};

mod files {
    include!(concat!(env!("OUT_DIR"), "/image_files.rs"));
}

/// The node image `images build` makes (Kubernetes of the lab, kind v0.29.0's node layout).
pub const NODE_IMAGE: &str = "scs-e2e.local/kind-node:v1.33.13";
/// The engine label carrying an image's key.
const KEY_LABEL: &str = "io.scs-e2e.key";

/// Where `--env kind` gets its images (a setting of the config file).
pub use crate::config::ImagesMode as Mode;

/// Where an image ends up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// Parts of the kind node image.
    Node,
    /// Controllers loaded into the management cluster.
    Management,
    /// What tests run inside workload clusters (Sonobuoy and the e2e conformance images), loaded
    /// into their nodes by the `loadImages` step.
    Test,
}

/// What a recipe produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// `$OUT/rootfs.tar` + `$OUT/changes`, imported and tagged by us.
    Rootfs,
    /// The image itself, made in the engine by `kind build node-image`.
    KindNode,
}

/// One image and how it is built: `fixtures/images/<name>.sh` and what its key covers.
#[derive(Debug)]
pub struct Recipe {
    /// The image's short name (also its recipe's file name).
    pub name: &'static str,
    /// The first tag is the image's own; the others are aliases.
    pub tags: &'static [&'static str],
    /// Whether the image goes into the node image or the management cluster.
    pub group: Group,
    /// Images whose archives the recipe reads from `$IMAGES` (built first; keys chained).
    pub needs: &'static [&'static str],
    /// Other fixture files (path prefixes under `fixtures/`) the recipe reads.
    pub inputs: &'static [&'static str],
    /// Reuses binaries from the lab's build (so the lab's pins are part of the key).
    pub lab_bin: bool,
    /// What the recipe leaves: a root filesystem to import, or the node image itself.
    pub output: Output,
}

macro_rules! recipe {
    ($name:literal, $group:ident, [$($tag:literal),+], needs [$($need:literal),*], inputs [$($input:literal),*], lab $lab:literal) => {
        Recipe { name: $name, tags: &[$($tag),+], group: Group::$group, needs: &[$($need),*], inputs: &[$($input),*], lab_bin: $lab, output: Output::Rootfs }
    };
}

/// Every image, in build order (an image comes after those it needs).
pub static RECIPES: &[Recipe] = &[
    // kind-base first: it needs nothing, and most of it (a Debian bootstrap) is downloading and
    // unpacking, which overlaps with the other lane's compiles.
    recipe!("kind-base", Node, ["scs-e2e.local/kind-base:v0.29.0"], needs [], inputs ["lab/kind/"], lab false),
    recipe!("etcd", Node, ["registry.k8s.io/etcd:3.5.24-0"], needs [], inputs [], lab false),
    recipe!("coredns", Node, ["registry.k8s.io/coredns/coredns:v1.12.0"], needs [], inputs [], lab false),
    recipe!("pause", Node, ["registry.k8s.io/pause:3.10"], needs [], inputs [], lab false),
    recipe!("kindnetd", Node, ["docker.io/kindest/kindnetd:v20250512-df8de77b"], needs [], inputs ["lab/control-plane/"], lab false),
    recipe!("local-path-provisioner", Node, ["docker.io/kindest/local-path-provisioner:v20250214-acbabc1a"], needs [], inputs ["lab/control-plane/"], lab false),
    recipe!("local-path-helper", Node, ["docker.io/kindest/local-path-helper:v20241212-8ac705d0"], needs [], inputs [], lab false),
    recipe!("kube-apiserver", Node, ["registry.k8s.io/kube-apiserver:v1.33.13"], needs [], inputs ["lab/control-plane/"], lab true),
    recipe!("kube-controller-manager", Node, ["registry.k8s.io/kube-controller-manager:v1.33.13"], needs [], inputs ["lab/control-plane/"], lab true),
    recipe!("kube-scheduler", Node, ["registry.k8s.io/kube-scheduler:v1.33.13"], needs [], inputs ["lab/control-plane/"], lab false),
    recipe!("kube-proxy", Node, ["registry.k8s.io/kube-proxy:v1.33.13"], needs [], inputs ["lab/control-plane/"], lab false),
    Recipe {
        name: "kind-node",
        tags: &[NODE_IMAGE],
        group: Group::Node,
        needs: &[
            "kind-base",
            "etcd",
            "coredns",
            "pause",
            "kindnetd",
            "local-path-provisioner",
            "local-path-helper",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kube-proxy",
        ],
        inputs: &["lab/control-plane/"],
        lab_bin: true,
        output: Output::KindNode,
    },
    // cert-manager's controller is the longest compile of all: it starts as soon as a lane is free.
    recipe!("cert-manager-controller", Management, ["quay.io/jetstack/cert-manager-controller:v1.19.1"], needs [], inputs ["images/mgmt/", "images/cert-manager/"], lab false),
    recipe!("cluster-api-controller", Management, ["registry.k8s.io/cluster-api/cluster-api-controller:v1.10.10"], needs [], inputs ["images/mgmt/"], lab true),
    recipe!("kubeadm-bootstrap-controller", Management, ["registry.k8s.io/cluster-api/kubeadm-bootstrap-controller:v1.10.10"], needs [], inputs ["images/mgmt/"], lab true),
    recipe!("kubeadm-control-plane-controller", Management, ["registry.k8s.io/cluster-api/kubeadm-control-plane-controller:v1.10.10"], needs [], inputs ["images/mgmt/"], lab true),
    recipe!("capd", Management, ["gcr.io/k8s-staging-cluster-api/capd-manager:v1.10.10"], needs [], inputs ["images/mgmt/"], lab true),
    recipe!("cso", Management, ["ghcr.io/sovereigncloudstack/cso:v0.1.0-alpha.7"], needs [], inputs ["images/mgmt/"], lab true),
    recipe!("cert-manager-webhook", Management, ["quay.io/jetstack/cert-manager-webhook:v1.19.1"], needs [], inputs ["images/mgmt/", "images/cert-manager/"], lab false),
    recipe!("cert-manager-cainjector", Management, ["quay.io/jetstack/cert-manager-cainjector:v1.19.1"], needs [], inputs ["images/mgmt/", "images/cert-manager/"], lab false),
    recipe!("haproxy", Management, ["docker.io/kindest/haproxy:v20230606-42a2262b"], needs [], inputs ["images/mgmt/"], lab false),
    // Sonobuoy's aggregator and worker, its e2e plugin and the images the offline focus of
    // conformance tests runs (suites/specs/scs-compatible-kaas-offline.yaml). e2e.test is the
    // longest compile after cert-manager's; agnhost shares its module, so they go one after
    // the other.
    recipe!("conformance", Test, ["registry.k8s.io/conformance:v1.33.13"], needs [], inputs ["images/conformance/", "lab/control-plane/"], lab true),
    recipe!("sonobuoy", Test, ["docker.io/sonobuoy/sonobuoy:v0.57.3"], needs [], inputs ["images/sonobuoy/"], lab true),
    recipe!("agnhost", Test, ["registry.k8s.io/e2e-test-images/agnhost:2.53"], needs [], inputs ["images/conformance/"], lab false),
    recipe!("nginx", Test, ["registry.k8s.io/e2e-test-images/nginx:1.14-4"], needs [], inputs [], lab false),
];

/// The recipe of that name (`etcd`, `kind-node`, `cso`, ...).
pub fn recipe(name: &str) -> Option<&'static Recipe> {
    RECIPES.iter().find(|r| r.name == name)
}

/// The management images (what `kind load` puts into a kind management cluster).
pub fn management() -> impl Iterator<Item = &'static Recipe> {
    RECIPES.iter().filter(|r| r.group == Group::Management)
}

/// Why images could not be listed, loaded or built.
#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    /// No `docker` on PATH (or in the tool directories).
    #[error(
        "building images needs a container engine: `docker` is not on PATH; install Docker (Debian: `apt-get install docker.io`; on a VM without CAP_SYS_RESOURCE start it with `eval \"$(fixtures/engine/dockerd.sh up)\"`)"
    )]
    NoEngine,
    /// A container engine command failed.
    #[error("`{engine} {args}` failed: {tail}")]
    Docker {
        /// The engine executable.
        engine: String,
        /// The command's arguments, space-separated.
        args: String,
        /// The last lines of its output.
        tail: String,
    },
    /// An image name that no recipe has.
    #[error("unknown image `{0}`: known images are {known}", known = RECIPES.iter().map(|r| r.name).collect::<Vec<_>>().join(", "))]
    Unknown(String),
    /// An image's recipe failed.
    #[error("building image {name} failed ({how}); its last output:\n{tail}\nfull log: {log}")]
    Recipe {
        /// The image (recipe name).
        name: String,
        /// `exit <code>` or `killed by a signal`.
        how: String,
        /// The last lines of the build's output.
        tail: String,
        /// The path of the full build log.
        log: String,
    },
    /// Building the lab's binaries, which some recipes reuse, failed.
    #[error(transparent)]
    Lab(#[from] lab_build::BuildError),
    /// Another build held the cache for longer than the bound.
    #[error(
        "another images build has held {path} for more than {secs}s: {holder}. Let it finish or stop it; to wait longer, set SCS_E2E_IMAGES_LOCK_WAIT=<seconds>"
    )]
    LockWait {
        /// The lock file.
        path: String,
        /// The bound waited.
        secs: u64,
        /// What the holder wrote into the lock file.
        holder: String,
    },
    /// A file or process operation failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Where image recipes, their scratch space and the archives live.
#[derive(Clone, Debug)]
pub struct Cache {
    /// The cache directory (`<cache>/images` by default); holds `archives/`, `work/` and `src/`.
    pub root: PathBuf,
}

impl Cache {
    /// `<cache>/images` (SCS_E2E_CACHE_DIR, XDG_CACHE_HOME or ~/.cache).
    pub fn locate() -> Cache {
        Cache {
            root: crate::base::cache_root().join("images"),
        }
    }

    /// The `docker save` archive of `r` built with `key`: `<root>/archives/<name>-<key>.tar`.
    pub fn archive(&self, r: &Recipe, key: &str) -> PathBuf {
        self.root.join("archives").join(format!("{}-{key}.tar", r.name))
    }

    fn work(&self, r: &Recipe) -> PathBuf {
        self.root.join("work").join(r.name)
    }

    fn src(&self) -> PathBuf {
        self.root.join("src")
    }
}

/// An image's key: its recipe and files, the lab pins it reuses, its tags and what it reads.
pub fn key(r: &Recipe) -> String {
    let mut h = Sha256::new();
    h.update(r.name);
    for t in r.tags {
        h.update(t);
    }
    let own_dir = format!("images/{}/", r.name);
    let own_script = format!("images/{}.sh", r.name);
    for (path, bytes) in files::FILES {
        // `images/lib/` holds what recipes share: every image depends on it.
        let shared = path.starts_with("images/lib/");
        if shared || *path == own_script || path.starts_with(&own_dir) || r.inputs.iter().any(|i| path.starts_with(i)) {
            h.update(path);
            h.update(bytes);
        }
    }
    if r.inputs.iter().any(|i| i.starts_with("lab/")) || r.lab_bin {
        h.update(lab_build::source_hash());
    }
    for n in r.needs {
        h.update(key(recipe(n).expect("needs name known recipes")));
    }
    format!("{:x}", h.finalize())[..12].to_string()
}

/// What the engine and the cache have of one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// In the engine with this key.
    Ready,
    /// Not in the engine, but its archive is cached (a `docker load` away).
    Archived,
    /// Must be built.
    Missing,
}

impl State {
    /// How `images` listings show the state (`in the engine`, `to build`, ...).
    pub fn describe(self) -> &'static str {
        match self {
            State::Ready => "in the engine",
            State::Archived => "archived (loads without building)",
            State::Missing => "to build",
        }
    }
}

/// The container engine CLI (DOCKER_HOST and the rest of its environment are inherited).
#[derive(Clone, Debug)]
pub struct Engine {
    /// The `docker` executable.
    pub docker: PathBuf,
}

impl Engine {
    /// `docker` from `dirs` or PATH; [`ImagesError::NoEngine`] without one.
    pub fn find(dirs: &[PathBuf]) -> Result<Engine, ImagesError> {
        let docker = crate::process::which("docker", dirs).ok_or(ImagesError::NoEngine)?;
        Ok(Engine { docker })
    }

    /// Runs `docker <args>`; its output (stderr included), trimmed, or the error with its last lines.
    pub fn run(&self, args: &[&str]) -> Result<String, ImagesError> {
        let out = duct::cmd(&self.docker, args)
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .run()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() {
            Ok(text)
        } else {
            Err(ImagesError::Docker {
                engine: self.docker.display().to_string(),
                args: args.join(" "),
                tail: tail(&text, 6),
            })
        }
    }

    /// The key an image in the engine was built with (`None`: no such image).
    pub fn key_of(&self, tag: &str) -> Option<String> {
        let fmt = format!("{{{{index .Config.Labels \"{KEY_LABEL}\"}}}}");
        self.run(&["image", "inspect", "--format", &fmt, tag]).ok()
    }

    /// The ID of the image tagged `tag` (`None`: no such image).
    pub fn id_of(&self, tag: &str) -> Option<String> {
        self.run(&["image", "inspect", "--format", "{{.Id}}", tag]).ok()
    }

    /// Removes `old`, the image `tag` named before a rebuild, once nothing names it any more:
    /// else every rebuild leaves its predecessor behind untagged (25 images, 2 GB after one
    /// full rebuild). An image that still has a tag of anyone's (our node-key markers aside) or
    /// that a container uses stays: the engine refuses to remove it without force.
    pub fn remove_replaced(&self, old: &str, tag: &str) {
        if self.id_of(tag).as_deref() == Some(old) {
            return;
        }
        let tags = self
            .run(&["image", "inspect", "--format", "{{range .RepoTags}}{{println .}}{{end}}", old])
            .unwrap_or_default();
        let (markers, others): (Vec<&str>, Vec<&str>) = tags
            .lines()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .partition(|t| t.starts_with(NODE_MARKER_PREFIX));
        if !others.is_empty() {
            return;
        }
        for m in markers {
            let _ = self.run(&["image", "rm", m]);
        }
        let _ = self.run(&["image", "rm", old]);
    }

    /// Removes every node-key marker but `current`, and with it a node image of an older key
    /// that only its marker still named (one left by a run before predecessors were removed,
    /// 1.2 GB each). Removing a tag never removes an image that another tag names or that a
    /// container uses. `current` is a marker (`<repository>:key-<key>`); only its repository's markers are touched.
    pub fn remove_stale_markers(&self, current: &str) {
        let Some((repo, _)) = current.split_once(":key-") else {
            return;
        };
        let prefix = format!("{repo}:key-");
        let tags = self
            .run(&["image", "ls", repo, "--format", "{{.Repository}}:{{.Tag}}"])
            .unwrap_or_default();
        for t in tags.lines().map(str::trim) {
            if t.starts_with(&prefix) && t != current {
                let _ = self.run(&["image", "rm", t]);
            }
        }
    }

    /// Whether the engine has an image tagged `tag`.
    pub fn has(&self, tag: &str) -> bool {
        self.id_of(tag).is_some()
    }
}

/// The marker tag recording the key of a node image (kind's build cannot label it).
fn node_marker(key: &str) -> String {
    format!("{NODE_MARKER_PREFIX}{key}")
}

const NODE_MARKER_PREFIX: &str = "scs-e2e.local/kind-node:key-";

/// Whether `r`'s image, with its current key, is in the engine, only archived in the cache, or missing.
pub fn state(engine: &Engine, cache: &Cache, r: &Recipe) -> State {
    let k = key(r);
    let ready = match r.output {
        Output::Rootfs => engine.key_of(r.tags[0]).as_deref() == Some(k.as_str()) && r.tags.iter().all(|t| engine.has(t)),
        Output::KindNode => engine.has(&node_marker(&k)) && engine.has(r.tags[0]),
    };
    if ready {
        State::Ready
    } else if r.output == Output::Rootfs && cache.archive(r, &k).is_file() {
        State::Archived
    } else {
        State::Missing
    }
}

/// `names` and everything they need, in build order; empty `names`: every image.
pub fn closure(names: &[String]) -> Result<Vec<&'static Recipe>, ImagesError> {
    if names.is_empty() {
        return Ok(RECIPES.iter().collect());
    }
    let mut want = std::collections::BTreeSet::new();
    let mut stack: Vec<&'static Recipe> = Vec::new();
    for n in names {
        stack.push(recipe(n).ok_or_else(|| ImagesError::Unknown(n.clone()))?);
    }
    while let Some(r) = stack.pop() {
        if want.insert(r.name) {
            stack.extend(r.needs.iter().map(|n| recipe(n).expect("known")));
        }
    }
    Ok(RECIPES.iter().filter(|r| want.contains(r.name)).collect())
}

/// How long a build waits for another one on the same cache: `SCS_E2E_IMAGES_LOCK_WAIT`
/// seconds, else two hours (a fully cold build takes about a quarter of that here).
pub fn lock_wait() -> Duration {
    crate::process::secs_from_env("SCS_E2E_IMAGES_LOCK_WAIT", Duration::from_secs(7200))
}

/// The cache's build lock within `wait`, saying first that it waits and for whom.
fn build_lock(path: &Path, wait: Duration) -> Result<crate::process::FileLock, ImagesError> {
    let me = crate::process::lock_holder();
    crate::process::FileLock::acquire_announced(path, wait, &me, |who| {
        eprintln!("images: waiting for another build on this cache to finish ({who})")
    })?
    .map_err(|holder| ImagesError::LockWait {
        path: path.display().to_string(),
        secs: wait.as_secs(),
        holder,
    })
}

/// Makes every image in `recipes` ready in the engine: loads cached archives, builds the rest
/// (first the lab's binaries, which some recipes reuse: `lab_progress` shows that build).
/// Returns the names built (not loaded).
pub fn ensure(
    engine: &Engine,
    cache: &Cache,
    recipes: &[&'static Recipe],
    force: bool,
    progress: &dyn Progress,
    lab_progress: &dyn Progress,
) -> Result<Vec<&'static str>, ImagesError> {
    // One builder per cache at a time; others wait (bounded), then find the images.
    std::fs::create_dir_all(&cache.root)?;
    let _lock = build_lock(&cache.root.join(".build.lock"), lock_wait())?;
    let states: Vec<State> = recipes.iter().map(|r| state(engine, cache, r)).collect();
    let todo: Vec<(&Recipe, State)> = recipes
        .iter()
        .zip(states)
        .filter(|(_, s)| force || *s != State::Ready)
        .map(|(r, s)| (*r, s))
        .collect();
    if todo.is_empty() {
        return Ok(Vec::new());
    }
    let lab = lab_build::Assets::locate(None, None);
    if todo.iter().any(|(r, _)| r.lab_bin) {
        lab_build::install(&lab, lab_progress)?;
    }
    materialize(cache)?;
    progress.start(todo.len());
    let built = run_lanes(&todo, progress, |r, s| {
        let k = key(r);
        let previous = engine.id_of(r.tags[0]);
        let built = if s == State::Archived && !force {
            engine.run(&["load", "-i", &cache.archive(r, &k).display().to_string()])?;
            false
        } else {
            build_one(engine, cache, r, &k, &lab.bin_dir)?;
            true
        };
        if let Some(old) = previous {
            engine.remove_replaced(&old, r.tags[0]);
        }
        if r.output == Output::KindNode {
            engine.remove_stale_markers(&node_marker(&k));
        }
        Ok(built)
    });
    progress.finish();
    built
}

/// Two image builds at once: while one waits on the network or the engine (debootstrap,
/// `docker import`, `docker save`) or links alone, the other compiles.
const BUILD_LANES: usize = 2;

/// Recipes that compile from the same Go module share most packages: they go one after another
/// so those compile once. The module is the first input naming one; else the recipe is alone.
fn module_group(r: &Recipe) -> &'static str {
    r.inputs.iter().copied().find(|i| *i != "images/mgmt/").unwrap_or(r.name)
}

/// Runs `step` for each recipe of `todo` on [`BUILD_LANES`] threads, each recipe once all it
/// needs is done and no recipe of its module group is running. `step` says whether it built
/// (true) or only loaded; the first error stops the others from starting new work.
fn run_lanes<F>(todo: &[(&'static Recipe, State)], progress: &dyn Progress, step: F) -> Result<Vec<&'static str>, ImagesError>
where
    F: Fn(&'static Recipe, State) -> Result<bool, ImagesError> + Sync,
{
    struct Board {
        waiting: Vec<(&'static Recipe, State)>,
        running: Vec<&'static Recipe>,
        done: Vec<&'static str>,
        built: Vec<&'static str>,
        error: Option<ImagesError>,
        started: usize,
    }
    let pending: Vec<&str> = todo.iter().map(|(r, _)| r.name).collect();
    let board = std::sync::Mutex::new(Board {
        waiting: todo.to_vec(),
        running: Vec::new(),
        done: Vec::new(),
        built: Vec::new(),
        error: None,
        started: 0,
    });
    let changed = std::sync::Condvar::new();
    std::thread::scope(|scope| {
        for _ in 0..BUILD_LANES {
            scope.spawn(|| {
                loop {
                    let mut b = board.lock().unwrap();
                    let (r, s, index) = loop {
                        if b.error.is_some() || b.waiting.is_empty() {
                            return;
                        }
                        let ready = b.waiting.iter().position(|(r, _)| {
                            r.needs.iter().all(|n| !pending.contains(n) || b.done.contains(n))
                                && !b.running.iter().any(|x| module_group(x) == module_group(r))
                        });
                        match ready {
                            // Needs always come first in RECIPES, so this cannot happen; if it
                            // did, waiting would be forever.
                            None if b.running.is_empty() => {
                                let stuck: Vec<&str> = b.waiting.iter().map(|(r, _)| r.name).collect();
                                b.error = Some(ImagesError::Io(std::io::Error::other(format!(
                                    "images {} wait for images that are not built",
                                    stuck.join(", ")
                                ))));
                                changed.notify_all();
                                return;
                            }
                            Some(i) => {
                                let (r, s) = b.waiting.remove(i);
                                b.running.push(r);
                                b.started += 1;
                                break (r, s, b.started - 1);
                            }
                            None => b = changed.wait(b).unwrap(),
                        }
                    };
                    drop(b);
                    progress.building(index, r.name);
                    let t0 = Instant::now();
                    let result = step(r, s);
                    let mut b = board.lock().unwrap();
                    b.running.retain(|x| x.name != r.name);
                    match result {
                        Ok(built) => {
                            progress.done(r.name, t0.elapsed().as_secs_f64());
                            b.done.push(r.name);
                            if built {
                                b.built.push(r.name);
                            }
                        }
                        Err(e) => {
                            b.error.get_or_insert(e);
                        }
                    }
                    changed.notify_all();
                }
            });
        }
    });
    let b = board.into_inner().unwrap();
    if let Some(e) = b.error {
        return Err(e);
    }
    // In build order, whatever lane made what.
    let mut built = b.built;
    built.sort_by_key(|n| RECIPES.iter().position(|r| r.name == *n));
    Ok(built)
}

/// [`ensure`] with the console's progress (a bar on a terminal, lines otherwise) for both the
/// lab's binaries and the images, or silently.
pub fn ensure_shown(
    engine: &Engine,
    cache: &Cache,
    recipes: &[&'static Recipe],
    force: bool,
    show: bool,
) -> Result<Vec<&'static str>, ImagesError> {
    if show {
        let images = lab_build::ConsoleProgress::named("images build", "images", "build");
        ensure(engine, cache, recipes, force, &images, &lab_build::ConsoleProgress::new())
    } else {
        ensure(engine, cache, recipes, force, &lab_build::Quiet, &lab_build::Quiet)
    }
}

/// Writes the embedded recipes and the lab's modules to `<cache>/src` (the recipes' `SRC`).
fn materialize(cache: &Cache) -> std::io::Result<()> {
    let src = cache.src();
    let _ = std::fs::remove_dir_all(&src);
    for (path, bytes) in files::FILES {
        crate::base::write_file(&src.join(path), bytes)?;
    }
    lab_build::write_modules(&src.join("lab"))
}

/// The archives of `r`'s needs, as `$IMAGES/<name>.tar` links.
fn images_dir(cache: &Cache, r: &Recipe, dir: &Path) -> Result<(), ImagesError> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    for n in r.needs {
        let need = recipe(n).expect("known");
        let a = cache.archive(need, &key(need));
        if need.output == Output::Rootfs {
            std::os::unix::fs::symlink(&a, dir.join(format!("{n}.tar")))?;
        }
    }
    Ok(())
}

fn build_one(engine: &Engine, cache: &Cache, r: &Recipe, key: &str, lab_bin: &Path) -> Result<(), ImagesError> {
    let work = cache.work(r);
    let out = work.join("out");
    let scratch = work.join("scratch");
    let images = work.join("images");
    let persistent = work.join("cache");
    for d in [&out, &scratch] {
        let _ = std::fs::remove_dir_all(d);
        std::fs::create_dir_all(d)?;
    }
    std::fs::create_dir_all(&persistent)?;
    images_dir(cache, r, &images)?;
    let log = work.join("build.log");
    let script = cache.src().join("images").join(format!("{}.sh", r.name));
    let mut cmd = duct::cmd("bash", [script.display().to_string()])
        .dir(&scratch)
        .env("SRC", cache.src())
        .env("OUT", &out)
        .env("CACHE", &persistent)
        .env("IMAGES", &images)
        .env("LAB_BIN", lab_bin)
        .env("CGO_ENABLED", "0")
        .env("GOGC", lab_build::go_gc())
        .env("PATH", crate::process::path_with(&[lab_bin.to_path_buf()]))
        .stderr_to_stdout()
        .stdout_path(&log)
        .unchecked();
    if r.output == Output::KindNode {
        let base = recipe("kind-base").expect("known");
        cmd = cmd.env("TAG", r.tags[0]).env("BASE_TAG", base.tags[0]);
    }
    let status = cmd.run()?.status;
    if !status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        return Err(ImagesError::Recipe {
            name: r.name.into(),
            how: match status.code() {
                Some(c) => format!("exit {c}"),
                None => "killed by a signal".into(),
            },
            tail: tail(&text, 15),
            log: log.display().to_string(),
        });
    }
    match r.output {
        Output::Rootfs => {
            let changes = std::fs::read_to_string(out.join("changes")).unwrap_or_default();
            let mut args: Vec<String> = vec!["import".into()];
            for c in changes.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
                args.push("--change".into());
                args.push(c.to_string());
            }
            args.push("--change".into());
            args.push(format!("LABEL {KEY_LABEL}={key}"));
            args.push(out.join("rootfs.tar").display().to_string());
            args.push(r.tags[0].to_string());
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            engine.run(&a)?;
            for t in &r.tags[1..] {
                engine.run(&["tag", r.tags[0], t])?;
            }
            // Archive whole or not at all: a half-written archive must never look cached.
            let archive = cache.archive(r, key);
            std::fs::create_dir_all(archive.parent().expect("has a parent"))?;
            let tmp = archive.with_extension("tmp");
            let mut save: Vec<String> = vec!["save".into(), "-o".into(), tmp.display().to_string()];
            save.extend(r.tags.iter().map(|t| t.to_string()));
            let a: Vec<&str> = save.iter().map(String::as_str).collect();
            engine.run(&a)?;
            std::fs::rename(&tmp, &archive)?;
            // Older archives of this image are stale now.
            remove_stale_archives(cache, r, key);
        }
        Output::KindNode => {
            engine.run(&["tag", r.tags[0], &node_marker(key)])?;
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

fn remove_stale_archives(cache: &Cache, r: &Recipe, key: &str) {
    let keep = format!("{}-{key}.tar", r.name);
    let prefix = format!("{}-", r.name);
    for e in std::fs::read_dir(cache.root.join("archives")).into_iter().flatten().flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        // `<name>-<12 hex>.tar` only: `kube-proxy-…` must not match `kube-…`.
        let is_ours = n
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tar"))
            .is_some_and(|k| k.len() == 12 && k.chars().all(|c| c.is_ascii_hexdigit()));
        if is_ours && n != keep {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// One line per image for `images list`.
pub fn list(engine: Option<&Engine>, cache: &Cache) -> Vec<BTreeMap<&'static str, String>> {
    RECIPES
        .iter()
        .map(|r| {
            let mut m = BTreeMap::new();
            m.insert("name", r.name.to_string());
            m.insert("tag", r.tags.join(", "));
            m.insert("key", key(r));
            m.insert(
                "state",
                match engine {
                    Some(e) => state(e, cache, r).describe().to_string(),
                    None if cache.archive(r, &key(r)).is_file() => State::Archived.describe().to_string(),
                    None => "unknown (no engine)".to_string(),
                },
            );
            m.insert(
                "group",
                match r.group {
                    Group::Node => "node",
                    Group::Management => "management",
                    Group::Test => "test",
                }
                .to_string(),
            );
            m
        })
        .collect()
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_waits_for_another_on_the_same_cache_within_its_bound_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".build.lock");
        let held = crate::process::FileLock::acquire_within(&path, Duration::ZERO, "pid 7 (`scs-e2e images build`)")
            .unwrap()
            .unwrap();
        let err = build_lock(&path, Duration::from_millis(300)).err().expect("held by another");
        let msg = err.to_string();
        assert!(msg.contains("pid 7 (`scs-e2e images build`)"), "{msg}");
        assert!(msg.contains("SCS_E2E_IMAGES_LOCK_WAIT"), "{msg}");
        // Released: the next build takes it at once and says who it is.
        drop(held);
        let _mine = build_lock(&path, Duration::ZERO).expect("free");
        let who = std::fs::read_to_string(&path).unwrap();
        assert!(who.contains(&format!("pid {}", std::process::id())), "{who}");
    }

    #[test]
    fn lanes_respect_needs_and_module_groups_and_run_two_at_once() {
        use std::sync::Mutex;
        use std::sync::mpsc;
        let todo: Vec<(&'static Recipe, State)> = RECIPES.iter().map(|r| (r, State::Missing)).collect();
        let events = Mutex::new(Vec::<(bool, &str)>::new());
        // etcd and coredns are the first two free recipes: each tells the other it started and
        // waits to hear back, which only happens if two lanes run them at once.
        let (tx_a, rx_a) = mpsc::channel::<()>();
        let (tx_b, rx_b) = mpsc::channel::<()>();
        let (tx_a, tx_b) = (Mutex::new(tx_a), Mutex::new(tx_b));
        let (rx_a, rx_b) = (Mutex::new(rx_a), Mutex::new(rx_b));
        let met = Mutex::new(Vec::new());
        let built = run_lanes(&todo, &lab_build::Quiet, |r, _| {
            events.lock().unwrap().push((true, r.name));
            let pair = match r.name {
                "etcd" => Some((&tx_a, &rx_b)),
                "coredns" => Some((&tx_b, &rx_a)),
                _ => None,
            };
            if let Some((tx, rx)) = pair {
                tx.lock().unwrap().send(()).unwrap();
                met.lock()
                    .unwrap()
                    .push(rx.lock().unwrap().recv_timeout(Duration::from_secs(20)).is_ok());
            }
            events.lock().unwrap().push((false, r.name));
            Ok(r.name != "haproxy")
        })
        .unwrap();
        assert_eq!(*met.lock().unwrap(), vec![true, true], "two lanes ran at once");
        let ev = events.into_inner().unwrap();
        let at = |start: bool, n: &str| ev.iter().position(|e| *e == (start, n)).unwrap();
        for r in RECIPES {
            for n in r.needs {
                assert!(at(false, n) < at(true, r.name), "{} started before {n} ended", r.name);
            }
        }
        // Two recipes of one Go module never overlap.
        let mut running: Vec<&str> = Vec::new();
        for (start, n) in &ev {
            if *start {
                let g = module_group(recipe(n).unwrap());
                assert!(
                    !running.iter().any(|x| module_group(recipe(x).unwrap()) == g),
                    "{n} overlapped a recipe of {g}"
                );
                running.push(n);
            } else {
                running.retain(|x| x != n);
            }
        }
        assert_eq!(built.len(), RECIPES.len() - 1, "what was only loaded is not counted as built");
        assert_eq!(built[0], "kind-base", "in build order");
    }

    #[test]
    fn a_failing_recipe_stops_new_work_and_is_the_error() {
        let todo: Vec<(&'static Recipe, State)> = RECIPES.iter().map(|r| (r, State::Missing)).collect();
        let ran = std::sync::Mutex::new(Vec::new());
        let e = run_lanes(&todo, &lab_build::Quiet, |r, _| {
            ran.lock().unwrap().push(r.name);
            if r.name == "pause" {
                return Err(ImagesError::Io(std::io::Error::other("pause broke")));
            }
            Ok(true)
        })
        .unwrap_err();
        assert!(e.to_string().contains("pause broke"), "{e}");
        let ran = ran.into_inner().unwrap();
        assert!(!ran.contains(&"kind-node"), "kind-node needs pause: {ran:?}");
        assert!(!ran.contains(&"haproxy"), "nothing new starts after the failure: {ran:?}");
    }

    #[test]
    fn recipes_come_after_what_they_need_and_each_has_a_script() {
        for (i, r) in RECIPES.iter().enumerate() {
            for n in r.needs {
                let j = RECIPES
                    .iter()
                    .position(|x| x.name == *n)
                    .unwrap_or_else(|| panic!("{} needs unknown {n}", r.name));
                assert!(j < i, "{} needs {n}, which comes later", r.name);
            }
            let script = format!("images/{}.sh", r.name);
            assert!(files::FILES.iter().any(|(p, _)| *p == script), "no {script} embedded");
        }
    }

    #[test]
    fn the_closure_adds_what_is_needed_in_build_order_and_names_unknown_images() {
        let c: Vec<&str> = closure(&["kind-base".into()]).unwrap().iter().map(|r| r.name).collect();
        assert_eq!(c, ["kind-base"], "the base needs no other image");
        let c: Vec<&str> = closure(&["kind-node".into(), "pause".into()])
            .unwrap()
            .iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(
            c,
            [
                "kind-base",
                "etcd",
                "coredns",
                "pause",
                "kindnetd",
                "local-path-provisioner",
                "local-path-helper",
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "kube-proxy",
                "kind-node"
            ]
        );
        let e = closure(&["kind-nod".into()]).unwrap_err().to_string();
        assert!(e.contains("unknown image `kind-nod`") && e.contains("kind-node"), "{e}");
    }

    #[test]
    fn keys_differ_per_image_and_chain_through_needs() {
        let keys: std::collections::BTreeSet<String> = RECIPES.iter().map(key).collect();
        assert_eq!(keys.len(), RECIPES.len());
        assert_eq!(key(recipe("etcd").unwrap()), key(recipe("etcd").unwrap()));
    }

    #[test]
    fn modes_parse_and_unknown_ones_name_the_choices() {
        assert_eq!("offline".parse::<Mode>(), Ok(Mode::Offline));
        let e = "airgapped".parse::<Mode>().unwrap_err();
        assert!(e.contains("`pull`") && e.contains("`offline`"), "{e}");
    }
}
