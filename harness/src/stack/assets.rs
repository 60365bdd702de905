//! Release assets for CSO's local mode, built from a stack source directory.
//!
//! A source directory holds `stack.yaml` (provider, name, and per Kubernetes minor its directory,
//! Kubernetes version and stack versions) and per minor the `cluster-class/` and `cluster-addon/`
//! charts plus `cluster-addon-values.yaml` (or `clusteraddon.yaml` for CSO's hook mode). A release
//! is written in CSO's layout, `<release_dir>/cluster-stacks/<tag>/`:
//! `metadata.yaml`, `<prefix>-cluster-class-<version>.tgz`, `<prefix>-cluster-addon-<addon>.tgz`
//! and the values or addon file. Directories appear whole (built aside, then renamed): CSO
//! reading a half-written release would wait a minute before looking again.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use super::StackId;

/// The stack description's file name in a stack source directory.
pub const STACK_FILE: &str = "stack.yaml";

/// A stack source directory's `stack.yaml`: which stack it is and what it can release.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StackSource {
    /// Provider, like `inmemory`.
    pub provider: String,
    /// Stack name, like `scs`.
    pub name: String,
    /// The Kubernetes minors the source has charts for.
    pub kubernetes: Vec<Minor>,
}

/// One Kubernetes minor of a stack source: its chart directory and stack versions.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Minor {
    /// `"1.33"`.
    pub minor: String,
    /// The directory of this minor's charts, relative to `stack.yaml`.
    pub dir: String,
    /// The Kubernetes version releases of this minor install (`versions.kubernetes`).
    pub kubernetes_version: String,
    /// The stack versions this minor can release.
    pub versions: Vec<Release>,
}

/// One releasable stack version and the addon version it ships.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Release {
    /// The stack version (`clusterStack`), like `v1`: the cluster-class chart's version.
    pub cluster_stack: String,
    /// The cluster-addon chart's version (`clusterAddon`).
    pub cluster_addon: String,
    /// Overrides the minor's Kubernetes version (a stack version that moves to a new patch).
    #[serde(default)]
    pub kubernetes_version: Option<String>,
}

impl StackSource {
    /// Reads and parses `stack.yaml` in `dir`; errors name the file (and line).
    pub fn load(dir: &Path) -> anyhow::Result<StackSource> {
        let file = dir.join(STACK_FILE);
        let text = std::fs::read_to_string(&file).with_context(|| {
            format!(
                "{}: cannot read the stack description ({}); a stack source directory needs one (see fixtures/cluster-stacks/README.md)",
                file.display(),
                STACK_FILE
            )
        })?;
        serde_saphyr::from_str(&text).map_err(|e| {
            let at = e.location().map(|l| format!(":{}:{}", l.line(), l.column())).unwrap_or_default();
            anyhow::anyhow!("{}{at}: {}", file.display(), e.without_snippet())
        })
    }

    /// The minor and release of one stack version, or an error listing what the source offers.
    pub fn find(&self, file: &Path, id: &StackId, version: &str) -> anyhow::Result<(&Minor, &Release)> {
        if self.provider != id.provider || self.name != id.name {
            bail!(
                "{}: this source is the stack {}/{}, not {}/{}: point `source:` at the right stack or fix provider/name",
                file.display(),
                self.provider,
                self.name,
                id.provider,
                id.name
            );
        }
        let Some(minor) = self.kubernetes.iter().find(|m| m.minor == id.kubernetes_version) else {
            let have: Vec<&str> = self.kubernetes.iter().map(|m| m.minor.as_str()).collect();
            bail!(
                "{}: no Kubernetes {} in this stack (it has {}): add it under `kubernetes:` or use one of those",
                file.display(),
                id.kubernetes_version,
                have.join(", ")
            );
        };
        let Some(release) = minor.versions.iter().find(|r| r.cluster_stack == version) else {
            let have: Vec<&str> = minor.versions.iter().map(|r| r.cluster_stack.as_str()).collect();
            bail!(
                "{}: no stack version {version} for Kubernetes {} (it has {})",
                file.display(),
                id.kubernetes_version,
                have.join(", ")
            );
        };
        Ok((minor, release))
    }
}

/// Builds `<release_dir>/cluster-stacks/<tag>/` for one version with `helm package`; returns
/// that directory.
pub fn build_release(source: &Path, id: &StackId, version: &str, release_dir: &Path, helm: &Path) -> anyhow::Result<PathBuf> {
    let stack = StackSource::load(source)?;
    let file = source.join(STACK_FILE);
    let (minor, release) = stack.find(&file, id, version)?;
    let charts = source.join(&minor.dir);
    let tag = id.release_name(version);
    let root = release_dir.join("cluster-stacks");
    let dest = root.join(&tag);
    let work = root.join(format!(".{tag}.tmp"));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("src"))?;
    let prefix = id.prefix();
    for (chart, chart_version) in [("cluster-class", version), ("cluster-addon", release.cluster_addon.as_str())] {
        let from = charts.join(chart);
        let to = work.join("src").join(chart);
        crate::base::copy_tree(&from, &to).with_context(|| format!("copying the chart {}", from.display()))?;
        let expected = format!("{prefix}-{chart}");
        set_chart_version(&to.join("Chart.yaml"), &from.join("Chart.yaml"), &expected, chart_version)?;
        let out = duct::cmd(helm, ["package", &to.display().to_string(), "-d", &work.display().to_string()])
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .run()
            .with_context(|| format!("running {}", helm.display()))?;
        if !out.status.success() {
            bail!(
                "`helm package {}` failed: {}",
                from.display(),
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        let tgz = work.join(format!("{expected}-{chart_version}.tgz"));
        if !tgz.is_file() {
            bail!("`helm package` did not write {} (CSO expects that name)", tgz.display());
        }
    }
    std::fs::remove_dir_all(work.join("src"))?;
    let mut addon_file = false;
    for f in ["cluster-addon-values.yaml", "clusteraddon.yaml"] {
        if charts.join(f).is_file() {
            std::fs::copy(charts.join(f), work.join(f))?;
            addon_file = true;
        }
    }
    if !addon_file {
        bail!(
            "{}: needs cluster-addon-values.yaml (CSO applies the addon chart once) or clusteraddon.yaml (hook stages)",
            charts.display()
        );
    }
    let kubernetes = release.kubernetes_version.as_deref().unwrap_or(&minor.kubernetes_version);
    // nodeImage must not be empty in CSO v0.1.0-alpha.7; this provider has no images.
    let metadata = format!(
        "apiVersion: metadata.clusterstack.x-k8s.io/v1alpha1\nversions:\n  clusterStack: {version}\n  kubernetes: {kubernetes}\n  components:\n    clusterAddon: {}\n    nodeImage: {version}\n",
        release.cluster_addon
    );
    std::fs::write(work.join("metadata.yaml"), metadata)?;
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::rename(&work, &dest)?;
    Ok(dest)
}

/// Sets the chart's `version:`; the chart's name must be what CSO derives from the tag.
fn set_chart_version(path: &Path, origin: &Path, expected_name: &str, version: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", origin.display()))?;
    let mut name_ok = false;
    let mut has_version = false;
    let mut out = String::new();
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("name:") {
            name_ok = n.trim().trim_matches('"') == expected_name;
        }
        if line.starts_with("version:") {
            has_version = true;
            out.push_str(&format!("version: {version}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !name_ok {
        bail!(
            "{}: the chart must be named `{expected_name}` (CSO looks for `{expected_name}-<version>.tgz`)",
            origin.display()
        );
    }
    if !has_version {
        out.push_str(&format!("version: {version}\n"));
    }
    std::fs::write(path, out)?;
    Ok(())
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

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/cluster-stacks/inmemory/scs")
    }

    #[test]
    fn the_fixture_offers_two_versions_of_one_minor_and_the_next_minor() {
        let s = StackSource::load(&fixture()).unwrap();
        let f = fixture().join(STACK_FILE);
        let (m, r) = s.find(&f, &id("1.33"), "v2").unwrap();
        assert_eq!((m.dir.as_str(), r.cluster_addon.as_str()), ("1-33", "v2"));
        s.find(&f, &id("1.33"), "v1").unwrap();
        s.find(&f, &id("1.34"), "v1").unwrap();
        let e = s.find(&f, &id("1.35"), "v1").unwrap_err().to_string();
        assert!(e.contains("no Kubernetes 1.35") && e.contains("1.33, 1.34"), "{e}");
        let e = s.find(&f, &id("1.33"), "v9").unwrap_err().to_string();
        assert!(e.contains("no stack version v9") && e.contains("v1, v2"), "{e}");
        let mut other = id("1.33");
        other.provider = "docker".into();
        assert!(s.find(&f, &other, "v1").unwrap_err().to_string().contains("not docker/scs"));
    }

    #[test]
    fn a_wrong_chart_name_is_named_with_its_fix() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("Chart.yaml");
        std::fs::write(&p, "apiVersion: v2\nname: other\nversion: v1\n").unwrap();
        let e = set_chart_version(&p, &p, "inmemory-scs-1-33-cluster-class", "v2")
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be named `inmemory-scs-1-33-cluster-class`"), "{e}");
        std::fs::write(&p, "apiVersion: v2\nname: inmemory-scs-1-33-cluster-class\nversion: v1\n").unwrap();
        set_chart_version(&p, &p, "inmemory-scs-1-33-cluster-class", "v2").unwrap();
        assert!(std::fs::read_to_string(&p).unwrap().contains("\nversion: v2\n"));
    }
}
