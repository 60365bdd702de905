//! `--env kubeconfig`: an existing cluster, given by `--kubeconfig` or `KUBECONFIG`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{EnvRequest, Environment};

/// An existing cluster reached through its kubeconfig: `up` checks it answers, `down` leaves it alone.
pub struct KubeconfigEnv {
    path: PathBuf,
    server_version: Option<String>,
}

/// `--env kubeconfig`: the cluster of `--kubeconfig`/KUBECONFIG, else the config file's.
pub fn create(req: &EnvRequest) -> anyhow::Result<Box<dyn Environment>> {
    let kc = req
        .kubeconfig
        .map(first_kubeconfig)
        .or(req.file.and_then(|c| c.kubeconfig.clone()))
        .ok_or_else(|| anyhow::anyhow!("--env kubeconfig needs a kubeconfig: pass --kubeconfig FILE or set KUBECONFIG"))?;
    check_kubeconfig(&kc)?;
    Ok(Box::new(KubeconfigEnv::new(kc)))
}

/// KUBECONFIG may list several files; the first existing one is used.
pub fn first_kubeconfig(v: &str) -> PathBuf {
    std::env::split_paths(v).find(|p| p.is_file()).unwrap_or_else(|| PathBuf::from(v))
}

/// Reads and parses a kubeconfig (an error names the file and the fix) and registers its
/// tokens and passwords for redaction.
pub fn check_kubeconfig(p: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(p)
        .map_err(|e| anyhow::anyhow!("cannot read kubeconfig {}: {e}; check --kubeconfig or KUBECONFIG", p.display()))?;
    kube::config::Kubeconfig::from_yaml(&text).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a kubeconfig: {}; check --kubeconfig or KUBECONFIG",
            p.display(),
            e.to_string().lines().next().unwrap_or("")
        )
    })?;
    // Its tokens and passwords must never show up in what a run writes.
    if let Ok(v) = serde_saphyr::from_str::<serde_json::Value>(&text) {
        for u in v.get("users").and_then(|u| u.as_array()).into_iter().flatten() {
            for k in ["token", "password"] {
                if let Some(s) = u.pointer(&format!("/user/{k}")).and_then(|s| s.as_str()) {
                    crate::redact::add(s);
                }
            }
        }
    }
    Ok(())
}

impl KubeconfigEnv {
    /// The cluster of the kubeconfig at `path` (not read until `up`).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            server_version: None,
        }
    }
}

#[async_trait]
impl Environment for KubeconfigEnv {
    fn name(&self) -> &'static str {
        "kubeconfig"
    }

    async fn up(&mut self) -> anyhow::Result<()> {
        let client = crate::kube::client_from_kubeconfig(&self.path).await?;
        let v = client.apiserver_version().await.map_err(|e| {
            anyhow::anyhow!(
                "the cluster of kubeconfig {} does not answer: {e}; is it running and reachable?",
                self.path.display()
            )
        })?;
        self.server_version = Some(v.git_version);
        Ok(())
    }

    async fn down(&mut self) -> anyhow::Result<()> {
        // Not ours to delete.
        Ok(())
    }

    fn kubeconfig(&self) -> Option<PathBuf> {
        Some(self.path.clone())
    }

    fn properties(&self) -> BTreeMap<String, String> {
        self.server_version
            .iter()
            .map(|v| ("kubernetes_version".to_string(), v.clone()))
            .collect()
    }
}
