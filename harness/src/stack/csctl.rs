//! Release assets built from a cluster stack directory the way csctl v0.0.5 (`csctl create`,
//! SCS's release tool) builds them, so what scs-e2e tests is what a release would contain.
//!
//! A stack directory (the layout of the cluster-stacks repository, e.g. `providers/docker/scs`)
//! holds `csctl.yaml` (one Kubernetes version), the `cluster-class/` chart and either
//! - the old layout: one `cluster-addon/` chart plus `cluster-addon-values.yaml`, or
//! - the new layout: `clusteraddon.yaml` (CSO's hook stages) and `cluster-addon/` as a directory
//!   of charts, released as one tar of that directory.
//!
//! What csctl does, and so this module: every file of the directory is copied with
//! `<< .ClusterClassVersion >>`, `<< .ClusterAddonVersion >>` and `<< .NodeImageVersion >>`
//! replaced (fasttemplate: an unknown tag becomes empty, a start tag without end is an error);
//! the `version` of `cluster-class/Chart.yaml` (and of `cluster-addon/Chart.yaml`, old layout) is
//! set; the charts are packaged; `metadata.yaml`, `hashes.json` and the addon file are written
//! into `<out>/<provider>-<name>-<major>-<minor>-<version>/`. Versions come from one of three
//! modes: `stable` (v1, or the previous release bumped), `hash` (`v0-sha.<7 chars of the
//! directory's hash>`) and `custom` (given). Not done: csctl's provider plugins (node images,
//! `csctl-<provider>` run when `provider.config` is set) and publishing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use anyhow::{Context, bail};
use base64::Engine;
use regex::Regex;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The stack's csctl configuration file.
pub const CONFIG_FILE: &str = "csctl.yaml";
/// The new layout's addon configuration (hook stages); copied into the release as it is.
pub const ADDON_CONFIG: &str = "clusteraddon.yaml";
/// The old layout's addon values; copied into the release after templating.
pub const ADDON_VALUES: &str = "cluster-addon-values.yaml";
const METADATA_API_VERSION: &str = "metadata.clusterstack.x-k8s.io/v1alpha1";

// csctl's checks, and CSO's version pattern (csctl validates custom versions with CSO's code).
// Go's `\w` and `\b` are ASCII.
static PROVIDER_TYPE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").unwrap());
static KUBERNETES_VERSION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^v(\d+)\.(\d+)\.\d+$").unwrap());
static VERSION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?-u)^v(\d+)(-\b(\w+)\b\.(\w+))?$").unwrap());

/// A stack directory's `csctl.yaml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsctlConfig {
    /// `csctl.clusterstack.x-k8s.io/v1alpha1`.
    pub api_version: String,
    /// The Kubernetes version the stack installs, `v1.33.4`.
    pub kubernetes_version: String,
    /// `scs`.
    pub cluster_stack_name: String,
    /// `provider.type`: `docker`, `openstack`, ...
    pub provider: String,
    /// `provider.config` is set: csctl would run the plugin `csctl-<provider>` for node images.
    pub provider_config: bool,
    /// Kubernetes major and minor.
    pub minor: (u64, u64),
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawConfig {
    api_version: String,
    config: RawInner,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawInner {
    kubernetes_version: String,
    cluster_stack_name: String,
    provider: RawProvider,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawProvider {
    #[serde(rename = "type")]
    kind: String,
    config: Option<serde_json::Value>,
}

/// The 1-based line of the first `key:` in `text`, for error messages.
fn line_of(text: &str, key: &str) -> Option<usize> {
    let pat = format!("{key}:");
    text.lines().position(|l| l.trim_start().starts_with(&pat)).map(|i| i + 1)
}

impl CsctlConfig {
    /// Reads `<dir>/csctl.yaml`, checked as csctl checks it; errors name the file and line.
    pub fn load(dir: &Path) -> anyhow::Result<CsctlConfig> {
        let file = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&file).with_context(|| {
            format!(
                "{}: cannot read it: a cluster stack directory (as csctl builds it) has csctl.yaml, cluster-class/ and cluster-addon/",
                file.display()
            )
        })?;
        let raw: RawConfig = serde_saphyr::from_str(&text).map_err(|e| {
            let at = e.location().map(|l| format!(":{}", l.line())).unwrap_or_default();
            anyhow::anyhow!("{}{at}: {}", file.display(), e.without_snippet())
        })?;
        let at = |key: &str| match line_of(&text, key) {
            Some(n) => format!("{}:{n}", file.display()),
            None => file.display().to_string(),
        };
        let p = &raw.config.provider;
        if p.kind.is_empty() {
            bail!(
                "{}: `config.provider.type` is missing: set it to the provider, like docker or openstack",
                at("config")
            );
        }
        if p.kind.len() > 253 || !PROVIDER_TYPE.is_match(&p.kind) {
            bail!(
                "{}: `type: {}` is not a valid provider type: lowercase letters, digits and inner `-` only",
                at("type"),
                p.kind
            );
        }
        if raw.config.cluster_stack_name.is_empty() {
            bail!(
                "{}: `config.clusterStackName` is missing: set it to the stack's name, like scs",
                at("config")
            );
        }
        let minor = kubernetes_minor(&raw.config.kubernetes_version).map_err(|e| anyhow::anyhow!("{}: {e}", at("kubernetesVersion")))?;
        let provider_config = match &p.config {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Object(m)) => !m.is_empty(),
            Some(_) => true,
        };
        Ok(CsctlConfig {
            api_version: raw.api_version,
            kubernetes_version: raw.config.kubernetes_version,
            cluster_stack_name: raw.config.cluster_stack_name,
            provider: p.kind.clone(),
            provider_config,
            minor,
        })
    }

    /// The same stack at another Kubernetes version, as a later commit's csctl.yaml would say it
    /// (checked as csctl.yaml's, its minor taken from it).
    pub fn at_kubernetes_version(&self, version: &str) -> anyhow::Result<CsctlConfig> {
        Ok(CsctlConfig {
            kubernetes_version: version.to_string(),
            minor: kubernetes_minor(version)?,
            ..self.clone()
        })
    }

    /// `<provider>-<name>-<major>-<minor>`: the prefix of release and chart names.
    pub fn prefix(&self) -> String {
        format!("{}-{}-{}-{}", self.provider, self.cluster_stack_name, self.minor.0, self.minor.1)
    }

    /// `"1.33"`, as steps name the Kubernetes minor.
    pub fn minor_string(&self) -> String {
        format!("{}.{}", self.minor.0, self.minor.1)
    }
}

/// Major and minor of a full Kubernetes version like `v1.33.4`, which csctl requires.
fn kubernetes_minor(v: &str) -> anyhow::Result<(u64, u64)> {
    let Some(c) = KUBERNETES_VERSION.captures(v) else {
        bail!("`kubernetesVersion: {v}` must be a full version like v1.33.4 (pattern ^v\\d+\\.\\d+\\.\\d+$)");
    };
    Ok((c[1].parse()?, c[2].parse()?))
}

/// A cluster stack (or component) version as CSO parses it: `v<N>` or `v<N>-<channel>.<patch>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    major: u64,
    channel: Option<(String, String)>,
}

impl Version {
    /// Parses like CSO's `version.New` (which csctl uses): leading zeros of the major vanish.
    pub fn parse(v: &str) -> anyhow::Result<Version> {
        let Some(c) = VERSION.captures(v) else {
            bail!("`{v}` is not a cluster stack version: write v<N> or v<N>-<channel>.<M>, like v1 or v0-sha.3e2f1ab");
        };
        let major = c[1].parse().with_context(|| format!("`{v}`: the major version is too large"))?;
        let channel = c.get(3).map(|ch| (ch.as_str().to_string(), c[4].to_string()));
        Ok(Version { major, channel })
    }

    /// `v1`, `v0-sha-3e2f1ab`: release directory and tag names.
    pub fn dashed(&self) -> String {
        match &self.channel {
            None => format!("v{}", self.major),
            Some((c, p)) => format!("v{}-{c}-{p}", self.major),
        }
    }

    /// `v1`, `v0-sha.3e2f1ab`: chart versions and metadata.
    pub fn dotted(&self) -> String {
        match &self.channel {
            None => format!("v{}", self.major),
            Some((c, p)) => format!("v{}-{c}.{p}", self.major),
        }
    }
}

/// The three versions of a release (`metadata.yaml`'s `versions`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versions {
    /// The cluster stack (cluster-class chart) version.
    pub cluster_stack: String,
    /// The cluster addon version.
    pub cluster_addon: String,
    /// The node image version (may be empty after a stable bump of a release without one).
    pub node_image: String,
}

/// How the release's versions are chosen (`csctl create --mode`).
#[derive(Clone, Debug)]
pub enum Mode {
    /// v1 for a first release; with the previous release's directory (csctl downloads it from
    /// GitHub or OCI; here it is given), its versions bumped where the sources changed.
    Stable {
        /// The previous release's directory (`metadata.yaml`, `hashes.json`).
        latest: Option<PathBuf>,
    },
    /// `v0-sha.<first 7 characters of the directory's hash>` for every version.
    Hash,
    /// The given versions.
    Custom(Versions),
}

/// The hashes csctl records in `hashes.json` and compares with the previous release.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseHash {
    /// The whole directory.
    pub cluster_stack: String,
    /// `cluster-addon/`.
    pub cluster_addon_dir: String,
    /// `cluster-addon-values.yaml`.
    pub cluster_addon_values: String,
    /// `node-image/`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_image_dir: String,
}

/// The files under `dir` (symlinks included, directories not), as `/`-separated relative paths.
fn files_below(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out: Vec<String> = walk(dir)?.into_iter().filter(|(_, is_dir)| !is_dir).map(|(p, _)| p).collect();
    // Whole paths in byte order, as Go's dirhash sorts them (`a-b` before `a/c`).
    out.sort();
    Ok(out)
}

/// Everything under `dir` as `/`-separated relative paths with "is a directory", depth first in
/// name order like Go's filepath.Walk (symlinks are not followed, so they count as files); the
/// top directory itself is no entry.
fn walk(dir: &Path) -> std::io::Result<Vec<(String, bool)>> {
    fn go(dir: &Path, rel: &Path, out: &mut Vec<(String, bool)>) -> std::io::Result<()> {
        let mut names: Vec<_> = std::fs::read_dir(dir.join(rel))?.collect::<Result<_, _>>()?;
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let r = rel.join(e.file_name());
            let is_dir = e.file_type()?.is_dir();
            out.push((r.to_string_lossy().replace('\\', "/"), is_dir));
            if is_dir {
                go(dir, &r, out)?;
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    go(dir, Path::new(""), &mut out)?;
    Ok(out)
}

/// Go's `dirhash.HashDir(dir, "", dirhash.Hash1)`: `h1:` and the base64 SHA-256 of the lines
/// `<sha256 hex>  <path>\n` over the sorted files.
pub fn dirhash(dir: &Path) -> anyhow::Result<String> {
    let mut summary = Sha256::new();
    for f in files_below(dir).with_context(|| format!("reading {}", dir.display()))? {
        if f.contains('\n') {
            bail!(
                "{}: a file name contains a newline, which csctl's hash refuses",
                dir.join(&f).display()
            );
        }
        let bytes = std::fs::read(dir.join(&f)).with_context(|| format!("reading {}", dir.join(&f).display()))?;
        writeln!(SummaryWriter(&mut summary), "{:x}  {f}", Sha256::digest(&bytes))?;
    }
    Ok(format!(
        "h1:{}",
        base64::engine::general_purpose::STANDARD.encode(summary.finalize())
    ))
}

struct SummaryWriter<'a>(&'a mut Sha256);

impl Write for SummaryWriter<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// csctl's `clean`: no `h1:`, no `/`, `=` or `+`, lower case.
fn clean(hash: &str) -> String {
    hash.trim_start_matches("h1:").replace(['/', '=', '+'], "").to_lowercase()
}

impl ReleaseHash {
    /// Hashes a stack directory as csctl does.
    pub fn of(dir: &Path) -> anyhow::Result<ReleaseHash> {
        let mut h = ReleaseHash {
            cluster_stack: clean(&dirhash(dir)?),
            ..ReleaseHash::default()
        };
        for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let e = e?;
            let name = e.file_name();
            let is_dir = e.file_type()?.is_dir();
            match (name.to_str(), is_dir) {
                (Some("cluster-addon"), true) => h.cluster_addon_dir = clean(&dirhash(&e.path())?),
                (Some("node-image"), true) => h.node_image_dir = clean(&dirhash(&e.path())?),
                (Some(ADDON_VALUES), false) => {
                    let bytes = std::fs::read(e.path())?;
                    h.cluster_addon_values = clean(&base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes)));
                }
                _ => {}
            }
        }
        Ok(h)
    }

    /// `v0-sha.<7 characters>`: the hash mode's version.
    pub fn version(&self) -> String {
        format!("v0-sha.{}", &self.cluster_stack[..7.min(self.cluster_stack.len())])
    }
}

/// A name part no other build in this machine's processes uses at the same time (scenarios
/// build in parallel, several runs may share a release directory).
pub(crate) fn unique() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// csctl's `BumpVersion`: the first number plus one, written over every number (`v3` → `v4`).
fn bump(v: &str) -> anyhow::Result<String> {
    static NUMBER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d+").unwrap());
    let Some(m) = NUMBER.find(v) else {
        bail!("`{v}` has no number to bump");
    };
    let next = m.as_str().parse::<u64>()? + 1;
    Ok(NUMBER.replace_all(v, next.to_string().as_str()).into_owned())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetadataFile {
    versions: MetadataVersions,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetadataVersions {
    cluster_stack: String,
    #[serde(default)]
    components: MetadataComponents,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct MetadataComponents {
    cluster_addon: String,
    node_image: String,
}

/// What a build made.
#[derive(Clone, Debug)]
pub struct Built {
    /// `<provider>-<name>-<major>-<minor>-<version>`.
    pub name: String,
    /// The release directory.
    pub dir: PathBuf,
    /// Its versions.
    pub versions: Versions,
    /// The Kubernetes version of `metadata.yaml`.
    pub kubernetes_version: String,
    /// Things csctl would do that this build did not (provider plugins).
    pub notes: Vec<String>,
}

/// Builds the release of the stack directory `src` into `<out>/<name>/` (replacing one there);
/// the directory appears whole or not at all.
pub fn build(src: &Path, mode: &Mode, out: &Path, helm: &Path) -> anyhow::Result<Built> {
    let config = CsctlConfig::load(src)?;
    let hooks = match std::fs::metadata(src.join(ADDON_CONFIG)) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read it", src.join(ADDON_CONFIG).display())),
    };
    let current = ReleaseHash::of(src)?;
    let (versions, latest) = match mode {
        Mode::Hash => {
            let v = current.version();
            (
                Versions {
                    cluster_stack: v.clone(),
                    cluster_addon: v.clone(),
                    node_image: v,
                },
                ReleaseHash::default(),
            )
        }
        Mode::Custom(v) => {
            for (what, s) in [
                ("cluster stack", &v.cluster_stack),
                ("cluster addon", &v.cluster_addon),
                ("node image", &v.node_image),
            ] {
                Version::parse(s).with_context(|| format!("the custom {what} version"))?;
            }
            (v.clone(), ReleaseHash::default())
        }
        Mode::Stable { latest: None } => (
            Versions {
                cluster_stack: "v1".into(),
                cluster_addon: "v1".into(),
                node_image: "v1".into(),
            },
            ReleaseHash::default(),
        ),
        Mode::Stable { latest: Some(dir) } => stable_bump(dir, &current)?,
    };
    // csctl refuses a release whose addon and node image sources equal the previous one's (in
    // every mode: without a previous release, a stack with neither has "no change").
    if current.cluster_addon_dir == latest.cluster_addon_dir
        && current.cluster_addon_values == latest.cluster_addon_values
        && current.node_image_dir == latest.node_image_dir
    {
        bail!(
            "{}: no change in the cluster stack (cluster-addon/, {ADDON_VALUES} and node-image/ as in the previous release, or all absent)",
            src.display()
        );
    }
    let stack_version = Version::parse(&versions.cluster_stack)?;
    let name = format!("{}-{}", config.prefix(), stack_version.dashed());
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let work = out.join(format!(".{name}.{}.tmp", unique()));
    let _ = std::fs::remove_dir_all(&work);
    let result = build_into(src, &config, hooks, &current, &versions, &work, helm);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&work);
        return Err(e);
    }
    let dest = out.join(&name);
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::rename(&work, &dest).with_context(|| format!("moving the release to {}", dest.display()))?;
    let mut notes = Vec::new();
    if config.provider_config {
        notes.push(format!(
            "csctl.yaml sets provider.config: csctl would run its plugin csctl-{} (node images); scs-e2e does not run plugins",
            config.provider
        ));
    }
    return Ok(Built {
        name,
        dir: dest,
        versions,
        kubernetes_version: config.kubernetes_version,
        notes,
    });

    fn build_into(
        src: &Path,
        config: &CsctlConfig,
        hooks: bool,
        hash: &ReleaseHash,
        versions: &Versions,
        work: &Path,
        helm: &Path,
    ) -> anyhow::Result<()> {
        let tmp = work.join(".src");
        template_tree(src, &tmp, versions)?;
        let class = tmp.join("cluster-class");
        set_chart_version(
            &class.join("Chart.yaml"),
            &src.join("cluster-class/Chart.yaml"),
            &versions.cluster_stack,
        )?;
        let addon = tmp.join("cluster-addon");
        if addon.join("Chart.yaml").is_file() {
            set_chart_version(
                &addon.join("Chart.yaml"),
                &src.join("cluster-addon/Chart.yaml"),
                &versions.cluster_addon,
            )?;
        }
        helm_package(helm, &class, work)?;
        if hooks {
            let tgz = work.join(format!("{}-cluster-addon-{}.tgz", config.prefix(), versions.cluster_addon));
            tar_dir(&addon, &tgz).with_context(|| format!("packing {}", src.join("cluster-addon").display()))?;
            std::fs::copy(src.join(ADDON_CONFIG), work.join(ADDON_CONFIG))?;
        } else {
            if !addon.is_dir() {
                bail!(
                    "{}: no cluster-addon/ chart (nor {ADDON_CONFIG} for a directory of charts)",
                    src.display()
                );
            }
            helm_package(helm, &addon, work)?;
            let values = tmp.join(ADDON_VALUES);
            if !values.is_file() {
                bail!(
                    "{}: missing: a stack without {ADDON_CONFIG} needs {ADDON_VALUES} (CSO renders it into the addon chart's values)",
                    src.join(ADDON_VALUES).display()
                );
            }
            std::fs::copy(&values, work.join(ADDON_VALUES))?;
        }
        std::fs::remove_dir_all(&tmp)?;
        check_chart_names(src, config, hooks, versions, work)?;
        std::fs::write(work.join("metadata.yaml"), metadata_yaml(&config.kubernetes_version, versions))?;
        std::fs::write(work.join("hashes.json"), serde_json::to_string_pretty(hash)?)?;
        Ok(())
    }
}

fn stable_bump(latest_dir: &Path, current: &ReleaseHash) -> anyhow::Result<(Versions, ReleaseHash)> {
    let mfile = latest_dir.join("metadata.yaml");
    let text =
        std::fs::read_to_string(&mfile).with_context(|| format!("{}: cannot read the previous release's metadata", mfile.display()))?;
    let m: MetadataFile = serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", mfile.display(), e.without_snippet()))?;
    let hfile = latest_dir.join("hashes.json");
    let latest: ReleaseHash = serde_json::from_str(
        &std::fs::read_to_string(&hfile).with_context(|| format!("{}: cannot read the previous release's hashes", hfile.display()))?,
    )
    .with_context(|| format!("{}: not csctl's hashes.json", hfile.display()))?;
    let c = m.versions.components;
    let versions = Versions {
        cluster_stack: bump(&m.versions.cluster_stack)?,
        cluster_addon: if current.cluster_addon_dir != latest.cluster_addon_dir
            || current.cluster_addon_values != latest.cluster_addon_values
        {
            bump(&c.cluster_addon)?
        } else {
            c.cluster_addon
        },
        node_image: if current.node_image_dir != latest.node_image_dir {
            bump(&c.node_image)?
        } else {
            c.node_image
        },
    };
    Ok((versions, latest))
}

/// `metadata.yaml` byte for byte as csctl writes it (Go yaml.v3, four-space indent).
pub fn metadata_yaml(kubernetes: &str, v: &Versions) -> String {
    let mut s = format!(
        "apiVersion: {METADATA_API_VERSION}\nversions:\n    clusterStack: {}\n    kubernetes: {kubernetes}\n    components:\n        clusterAddon: {}\n",
        v.cluster_stack, v.cluster_addon
    );
    if !v.node_image.is_empty() {
        s.push_str(&format!("        nodeImage: {}\n", v.node_image));
    }
    s
}

/// csctl's templating (fasttemplate with `<< ` and ` >>`) of one file's bytes.
pub fn render(text: &[u8], v: &Versions) -> Result<Vec<u8>, String> {
    const START: &[u8] = b"<< ";
    const END: &[u8] = b" >>";
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(n) = find(rest, START) {
        out.extend_from_slice(&rest[..n]);
        rest = &rest[n + START.len()..];
        let Some(e) = find(rest, END) else {
            let line = text.len() - rest.len();
            let line = text[..line].iter().filter(|b| **b == b'\n').count() + 1;
            return Err(format!("line {line}: `<< ` without ` >>` (csctl's templating needs both)"));
        };
        match &rest[..e] {
            b".ClusterClassVersion" => out.extend_from_slice(v.cluster_stack.as_bytes()),
            b".ClusterAddonVersion" => out.extend_from_slice(v.cluster_addon.as_bytes()),
            b".NodeImageVersion" => out.extend_from_slice(v.node_image.as_bytes()),
            _ => {}
        }
        rest = &rest[e + END.len()..];
    }
    out.extend_from_slice(rest);
    Ok(out)
}

fn template_tree(src: &Path, dst: &Path, v: &Versions) -> anyhow::Result<()> {
    for f in files_below(src).with_context(|| format!("reading {}", src.display()))? {
        let from = src.join(&f);
        let bytes = std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
        let out = render(&bytes, v).map_err(|e| anyhow::anyhow!("{}: {e}", from.display()))?;
        let to = dst.join(&f);
        std::fs::create_dir_all(to.parent().expect("below dst"))?;
        std::fs::write(&to, out)?;
    }
    Ok(())
}

/// Sets the top-level `version:` of a Chart.yaml (csctl fails when there is none).
fn set_chart_version(path: &Path, origin: &Path, version: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read it", origin.display()))?;
    let mut found = false;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if !found && line.starts_with("version:") {
            found = true;
            out.push_str(&format!("version: {version}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !found {
        bail!(
            "{}: no top-level `version:`; csctl overwrites it with the release's version, so add one (any value)",
            origin.display()
        );
    }
    std::fs::write(path, out)?;
    Ok(())
}

fn helm_package(helm: &Path, chart: &Path, dest: &Path) -> anyhow::Result<()> {
    let out = duct::cmd(helm, ["package", &chart.display().to_string(), "-d", &dest.display().to_string()])
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()
        .with_context(|| format!("running {}", helm.display()))?;
    if !out.status.success() {
        bail!(
            "`helm package` of {} failed: {}",
            chart.file_name().unwrap_or_default().to_string_lossy(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(())
}

/// Tars a directory's contents (no top directory) as csctl does for the new layout's addon,
/// in walk order; owner root and a fixed time, so one source gives one archive.
fn tar_dir(dir: &Path, tgz: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::create(tgz)?;
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::default()));
    for (name, is_dir) in walk(dir)? {
        let path = dir.join(&name);
        let meta = std::fs::metadata(&path)?;
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_username("root")?;
        h.set_groupname("root")?;
        if is_dir {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            tar.append_data(&mut h, &name, std::io::empty())?;
        } else {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(meta.len());
            tar.append_data(&mut h, &name, std::fs::File::open(&path)?)?;
        }
    }
    tar.into_inner()?.finish()?.sync_all()?;
    Ok(())
}

/// CSO finds the charts by name (`<prefix>-cluster-class-<version>`, ...): a release it could
/// not use is refused here with the fix, rather than as a ClusterStackRelease that never gets ready.
fn check_chart_names(src: &Path, config: &CsctlConfig, hooks: bool, v: &Versions, work: &Path) -> anyhow::Result<()> {
    let names: Vec<String> = std::fs::read_dir(work)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tgz"))
        .collect();
    let mut wanted = vec![(
        "cluster-class",
        format!("{}-cluster-class-{}", config.prefix(), Version::parse(&v.cluster_stack)?.dotted()),
    )];
    if !hooks {
        wanted.push((
            "cluster-addon",
            format!("{}-cluster-addon-{}", config.prefix(), Version::parse(&v.cluster_addon)?.dotted()),
        ));
    }
    for (chart, want) in wanted {
        if !names.iter().any(|n| n.contains(&want)) {
            let base = want.rsplit_once('-').map(|(b, _)| b).unwrap_or(&want);
            bail!(
                "{}: name the chart `{base}` (CSO looks for {want}*.tgz; helm package wrote {})",
                src.join(chart).join("Chart.yaml").display(),
                names.join(", ")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(cs: &str, ca: &str, ni: &str) -> Versions {
        Versions {
            cluster_stack: cs.into(),
            cluster_addon: ca.into(),
            node_image: ni.into(),
        }
    }

    #[test]
    fn versions_parse_and_print_as_cso_does() {
        let h = Version::parse("v0-sha.3e2f1ab").unwrap();
        assert_eq!((h.dashed().as_str(), h.dotted().as_str()), ("v0-sha-3e2f1ab", "v0-sha.3e2f1ab"));
        assert_eq!(Version::parse("v007").unwrap().dashed(), "v7");
        for bad in ["1", "v1.0", "v1-", "v1-alpha", "V1", "v1-alpha.1.2", "v1-é.1"] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn templating_replaces_the_three_tags_and_drops_unknown_ones() {
        let out = render(
            b"a: << .ClusterClassVersion >>/<< .ClusterAddonVersion >>/<< .NodeImageVersion >>/<< .Other >>.",
            &v("v2", "v3", "v4"),
        );
        assert_eq!(String::from_utf8(out.unwrap()).unwrap(), "a: v2/v3/v4/.");
        assert_eq!(
            render(b"no tags {{ .Chart.Version }}", &v("v1", "v1", "v1")).unwrap(),
            b"no tags {{ .Chart.Version }}"
        );
        let e = render(b"x\ny: << .ClusterClassVersion", &v("v1", "v1", "v1")).unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
    }

    #[test]
    fn stable_bumps_every_number_like_csctl() {
        assert_eq!(bump("v1").unwrap(), "v2");
        assert_eq!(bump("v9").unwrap(), "v10");
        assert!(bump("vx").is_err());
    }

    #[test]
    fn metadata_is_written_as_go_yaml_writes_it() {
        assert_eq!(
            metadata_yaml("v1.33.4", &v("v1", "v2", "")),
            "apiVersion: metadata.clusterstack.x-k8s.io/v1alpha1\nversions:\n    clusterStack: v1\n    kubernetes: v1.33.4\n    components:\n        clusterAddon: v2\n"
        );
    }

    #[test]
    fn the_directory_hash_is_go_dirhash_hash1() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("b")).unwrap();
        std::fs::write(d.path().join("a.txt"), "hello\n").unwrap();
        std::fs::write(d.path().join("b/c.txt"), "").unwrap();
        // sha256 of the summary "<sha256(hello\n)>  a.txt\n<sha256()>  b/c.txt\n".
        let summary = format!("{:x}  a.txt\n{:x}  b/c.txt\n", Sha256::digest(b"hello\n"), Sha256::digest(b""));
        let want = format!(
            "h1:{}",
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(summary.as_bytes()))
        );
        assert_eq!(dirhash(d.path()).unwrap(), want);
        assert_eq!(clean("h1:Ab/c+D=="), "abcd");
    }

    #[test]
    fn a_bad_config_names_file_line_and_fix() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join(CONFIG_FILE);
        std::fs::write(&f, "apiVersion: csctl.clusterstack.x-k8s.io/v1alpha1\nconfig:\n  kubernetesVersion: 1.33\n  clusterStackName: scs\n  provider:\n    type: docker\n").unwrap();
        let e = CsctlConfig::load(d.path()).unwrap_err().to_string();
        assert!(e.contains(&format!("{}:3:", f.display())) && e.contains("like v1.33.4"), "{e}");
        std::fs::write(
            &f,
            "config:\n  kubernetesVersion: v1.33.4\n  clusterStackName: scs\n  provider:\n    type: Docker_X\n",
        )
        .unwrap();
        let e = CsctlConfig::load(d.path()).unwrap_err().to_string();
        assert!(e.contains(":5:") && e.contains("not a valid provider type"), "{e}");
        std::fs::write(
            &f,
            "config:\n  kubernetesVersion: v1.33.4\n  clusterStackName: scs\n  provider:\n    type: docker\n    config: {a: 1}\n",
        )
        .unwrap();
        let c = CsctlConfig::load(d.path()).unwrap();
        assert_eq!(
            (c.prefix().as_str(), c.minor_string().as_str(), c.provider_config),
            ("docker-scs-1-33", "1.33", true)
        );
    }
}
