//! `--env kubeconfig`: an existing cluster, given by `--kubeconfig` or `KUBECONFIG`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;

use super::Environment;

pub struct KubeconfigEnv {
    path: PathBuf,
    server_version: Option<String>,
}

impl KubeconfigEnv {
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
