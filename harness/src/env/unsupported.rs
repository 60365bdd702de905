//! Environments this build cannot bring up yet: they fail `up` with a clear message (exit 3),
//! after the report machinery has started, so users still get JUnit and JSON.

use std::path::PathBuf;

use async_trait::async_trait;

use super::Environment;

pub struct Unsupported {
    pub name: &'static str,
}

#[async_trait]
impl Environment for Unsupported {
    fn name(&self) -> &'static str {
        self.name
    }
    async fn up(&mut self) -> anyhow::Result<()> {
        anyhow::bail!(
            "the `{}` environment is not available in scs-e2e {} yet; use --env lab, or --env kubeconfig with a cluster you created",
            self.name,
            env!("CARGO_PKG_VERSION")
        )
    }
    async fn down(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    fn kubeconfig(&self) -> Option<PathBuf> {
        None
    }
}
