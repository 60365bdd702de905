//! Where `installClusterStack.source:` and `scs-e2e stack build` take a stack from:
//! - a csctl stack directory (`csctl.yaml` in it): one Kubernetes version; a step's version
//!   `v0-sha.<hash>` is built in csctl's hash mode (and must be the directory's hash), any other
//!   version in custom mode with that version for cluster stack, addon and node image;
//! - a directory with `stack.yaml`, scs-e2e's thin multi-version wrapper: it lists which csctl
//!   stack directory makes which release (csctl itself builds one release per call, and
//!   a repository's later releases come from later commits);
//! - `builtin:inmemory/scs`: our in-memory stack compiled into scs-e2e (a wrapper directory).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use super::StackId;
use super::csctl::{self, CONFIG_FILE, CsctlConfig, Mode, Versions};

/// The wrapper's file name.
pub const WRAPPER_FILE: &str = "stack.yaml";

/// `stack.yaml`: the releases a directory of csctl stack directories makes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Wrapper {
    /// One entry per release.
    pub releases: Vec<WrapperRelease>,
}

/// One release: a csctl stack directory built in custom mode.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WrapperRelease {
    /// The csctl stack directory, relative to `stack.yaml`.
    pub dir: String,
    /// The cluster stack version (`--cluster-stack-version`), like `v1`.
    pub version: String,
    /// `--cluster-addon-version` (default: `version`).
    #[serde(default)]
    pub cluster_addon: Option<String>,
    /// `--node-image-version` (default: `version`).
    #[serde(default)]
    pub node_image: Option<String>,
    /// Builds the directory as if its `csctl.yaml` said this Kubernetes version: how a later
    /// commit of a stack moves to a new patch release without a second copy of its charts.
    #[serde(default)]
    pub kubernetes_version: Option<String>,
}

/// A resolved source.
#[derive(Debug)]
pub enum Source {
    /// One csctl stack directory.
    Csctl(PathBuf, CsctlConfig),
    /// A wrapper directory and its `stack.yaml`.
    Wrapper(PathBuf, Wrapper),
}

impl Source {
    /// Opens `dir`, or says what a source directory needs.
    pub fn open(dir: &Path) -> anyhow::Result<Source> {
        if dir.join(CONFIG_FILE).is_file() {
            return Ok(Source::Csctl(dir.to_path_buf(), CsctlConfig::load(dir)?));
        }
        let file = dir.join(WRAPPER_FILE);
        if file.is_file() {
            let text = std::fs::read_to_string(&file)?;
            let w: Wrapper = serde_saphyr::from_str(&text).map_err(|e| {
                let at = e.location().map(|l| format!(":{}:{}", l.line(), l.column())).unwrap_or_default();
                anyhow::anyhow!("{}{at}: {}", file.display(), e.without_snippet())
            })?;
            for r in &w.releases {
                if !dir.join(&r.dir).join(CONFIG_FILE).is_file() {
                    bail!(
                        "{}: `dir: {}` has no {CONFIG_FILE}: each release names a csctl stack directory",
                        file.display(),
                        r.dir
                    );
                }
            }
            return Ok(Source::Wrapper(dir.to_path_buf(), w));
        }
        if !dir.is_dir() {
            bail!("{}: no such directory (a cluster stack source)", dir.display());
        }
        bail!(
            "{}: neither {CONFIG_FILE} (a csctl stack directory, like cluster-stacks' providers/docker/scs) nor {WRAPPER_FILE} (scs-e2e's list of releases of several such directories)",
            dir.display()
        )
    }

    /// Every release the source describes: (directory, mode, Kubernetes version override).
    fn releases(&self) -> anyhow::Result<Vec<Planned>> {
        match self {
            Source::Csctl(dir, c) => Ok(vec![Planned {
                dir: dir.clone(),
                config: c.clone(),
                version: None,
                kubernetes_version: None,
            }]),
            Source::Wrapper(root, w) => w
                .releases
                .iter()
                .map(|r| {
                    let dir = root.join(&r.dir);
                    let mut config = CsctlConfig::load(&dir)?;
                    if let Some(k) = &r.kubernetes_version {
                        config = config
                            .at_kubernetes_version(k)
                            .map_err(|e| anyhow::anyhow!("{} (release {}): {e}", root.join(WRAPPER_FILE).display(), r.version))?;
                    }
                    Ok(Planned {
                        dir,
                        config,
                        version: Some(Versions {
                            cluster_stack: r.version.clone(),
                            cluster_addon: r.cluster_addon.clone().unwrap_or_else(|| r.version.clone()),
                            node_image: r.node_image.clone().unwrap_or_else(|| r.version.clone()),
                        }),
                        kubernetes_version: r.kubernetes_version.clone(),
                    })
                })
                .collect(),
        }
    }

    /// Builds the release of `id` at `version` into `out/<name>/`.
    pub fn build_for(&self, id: &StackId, version: &str, out: &Path, helm: &Path) -> anyhow::Result<csctl::Built> {
        let (p, mode) = self.select(id, version)?;
        p.build(&mode, out, helm)
    }

    /// Whether [`Source::build_for`] would find what to build (it builds nothing).
    pub fn check_for(&self, id: &StackId, version: &str) -> anyhow::Result<()> {
        self.select(id, version).map(|_| ())
    }

    fn select(&self, id: &StackId, version: &str) -> anyhow::Result<(Planned, Mode)> {
        let all = self.releases()?;
        let matching = |p: &&Planned| {
            p.config.provider == id.provider && p.config.cluster_stack_name == id.name && p.config.minor_string() == id.kubernetes_version
        };
        let Some(at) = all
            .iter()
            .position(|p| matching(&p) && p.version.as_ref().is_none_or(|v| v.cluster_stack == version))
        else {
            let have: Vec<String> = all
                .iter()
                .map(|p| {
                    format!(
                        "{}/{} {} {}",
                        p.config.provider,
                        p.config.cluster_stack_name,
                        p.config.minor_string(),
                        p.version.as_ref().map(|v| v.cluster_stack.as_str()).unwrap_or("(any version)")
                    )
                })
                .collect();
            bail!(
                "{}: no release of {}/{} {} {version} here (it has: {}): point `source:` at the right stack or fix the step",
                self.path().display(),
                id.provider,
                id.name,
                id.kubernetes_version,
                have.join(", ")
            );
        };
        let p = all.into_iter().nth(at).expect("found at this index");
        let mode = match &p.version {
            Some(v) => Mode::Custom(v.clone()),
            None if version.starts_with("v0-sha.") => {
                let actual = csctl::ReleaseHash::of(&p.dir)?.version();
                if actual != version {
                    bail!(
                        "{}: the directory's csctl hash version is {actual}, not {version} (its files changed): use {actual}",
                        p.dir.display()
                    );
                }
                Mode::Hash
            }
            None => Mode::Custom(Versions {
                cluster_stack: version.into(),
                cluster_addon: version.into(),
                node_image: version.into(),
            }),
        };
        Ok((p, mode))
    }

    /// Builds every release a wrapper lists, or the one of a csctl directory in `mode`.
    pub fn build_all(&self, mode: &Mode, out: &Path, helm: &Path) -> anyhow::Result<Vec<csctl::Built>> {
        self.releases()?
            .iter()
            .map(|p| match &p.version {
                Some(v) => p.build(&Mode::Custom(v.clone()), out, helm),
                None => p.build(mode, out, helm),
            })
            .collect()
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        match self {
            Source::Csctl(d, _) | Source::Wrapper(d, _) => d,
        }
    }
}

#[derive(Debug)]
struct Planned {
    dir: PathBuf,
    config: CsctlConfig,
    version: Option<Versions>,
    kubernetes_version: Option<String>,
}

impl Planned {
    fn build(&self, mode: &Mode, out: &Path, helm: &Path) -> anyhow::Result<csctl::Built> {
        let Some(k) = &self.kubernetes_version else {
            return csctl::build(&self.dir, mode, out, helm);
        };
        // A copy with csctl.yaml's kubernetesVersion changed, as the later commit would have it.
        let copy = out.join(format!(".src-{}", csctl::unique()));
        let _ = std::fs::remove_dir_all(&copy);
        crate::base::copy_tree(&self.dir, &copy).with_context(|| format!("copying {}", self.dir.display()))?;
        let file = copy.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&file)?;
        let text: String = text
            .lines()
            .map(|l| match l.split_once("kubernetesVersion:") {
                Some((indent, _)) if indent.trim().is_empty() => format!("{indent}kubernetesVersion: {k}\n"),
                _ => format!("{l}\n"),
            })
            .collect();
        std::fs::write(&file, text)?;
        let built = csctl::build(&copy, mode, out, helm);
        let _ = std::fs::remove_dir_all(&copy);
        built.map_err(|e| anyhow::anyhow!("{} (with kubernetesVersion {k}): {e:#}", self.dir.display()))
    }
}

/// Opens a `source:` value: `builtin:NAME` or a directory.
pub fn open(source: &str, resolve: impl Fn(&str) -> PathBuf) -> anyhow::Result<Source> {
    match source.strip_prefix(super::builtin::PREFIX) {
        Some(name) => Source::open(&super::builtin::materialize(name)?),
        None => Source::open(&resolve(source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(minor: &str) -> StackId {
        StackId {
            provider: "inmemory".into(),
            name: "scs".into(),
            kubernetes_version: minor.into(),
        }
    }

    /// A release's `kubernetesVersion` is the stack's version for matching too: a directory
    /// released at the next minor is found under that minor, not its csctl.yaml's.
    #[test]
    fn a_release_at_another_kubernetes_version_is_found_under_its_minor() {
        let d = tempfile::tempdir().unwrap();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/cluster-stacks/inmemory/scs/1-33");
        crate::base::copy_tree(&fixture, &d.path().join("1-33")).unwrap();
        let write = |k: &str| {
            std::fs::write(
                d.path().join(WRAPPER_FILE),
                format!("releases:\n  - dir: 1-33\n    version: v1\n    kubernetesVersion: {k}\n"),
            )
            .unwrap()
        };
        write("v1.34.2");
        let s = Source::open(d.path()).unwrap();
        s.check_for(&id("1.34"), "v1").unwrap();
        let e = s.check_for(&id("1.33"), "v1").unwrap_err().to_string();
        assert!(e.contains("it has: inmemory/scs 1.34 v1"), "{e}");
        write("1.34");
        let e = Source::open(d.path())
            .unwrap()
            .check_for(&id("1.34"), "v1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("stack.yaml (release v1)") && e.contains("like v1.33.4"), "{e}");
    }
}
