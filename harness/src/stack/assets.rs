//! Release assets for CSO's local mode, built from a stack source directory.

use std::path::{Path, PathBuf};

use super::StackId;

/// Builds `<release_dir>/cluster-stacks/<tag>/` for one version; returns that directory.
pub fn build_release(source: &Path, id: &StackId, version: &str, release_dir: &Path) -> anyhow::Result<PathBuf> {
    let _ = (source, id, version, release_dir);
    anyhow::bail!("building release assets is not implemented yet")
}
