//! `deleteClusterStack`: delete a ClusterStack and its releases.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Operation;
use crate::context::{StepCtx, StepFailure};
use crate::stack::{CSO_GROUP_VERSION, StackId, ops};

/// Deletes the ClusterStack of a provider/name/minor and waits until it and its
/// ClusterStackReleases are gone.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeleteClusterStack {
    /// Provider, like `inmemory`, `docker` or `openstack`.
    pub provider: String,
    /// Stack name, like `scs`.
    pub name: String,
    /// Kubernetes `<major>.<minor>`, quoted: `"1.33"`.
    pub kubernetes_version: String,
}

#[async_trait]
impl Operation for DeleteClusterStack {
    fn summary(&self) -> String {
        format!("delete cluster stack {}/{} {}", self.provider, self.name, self.kubernetes_version)
    }

    fn validate(&self) -> Result<(), crate::error::Invalid> {
        let id = StackId {
            provider: self.provider.clone(),
            name: self.name.clone(),
            kubernetes_version: self.kubernetes_version.clone(),
        };
        if [&id.provider, &id.name, &id.kubernetes_version].iter().any(|s| s.contains("${")) {
            return Ok(());
        }
        id.validate()
    }

    async fn run(&self, ctx: &StepCtx) -> Result<(), StepFailure> {
        let scope = ctx.scope();
        let id = StackId {
            provider: ctx.substitute(&self.provider),
            name: ctx.substitute(&self.name),
            kubernetes_version: ctx.substitute(&self.kubernetes_version),
        };
        id.validate().map_err(StepFailure::error)?;
        let Some(stack) = ops::find_cluster_stack(&scope, &id).await? else {
            return Err(StepFailure::failed(format!(
                "no ClusterStack for {}/{} {} in {}",
                id.provider, id.name, id.kubernetes_version, ctx.namespace
            )));
        };
        let name = stack.metadata.name.clone().unwrap_or_default();
        ops::delete_and_wait(&scope, CSO_GROUP_VERSION, "ClusterStack", &name).await?;
        ops::wait_none_left(
            &scope,
            CSO_GROUP_VERSION,
            "ClusterStackRelease",
            None,
            Some(&format!("{}-", id.prefix())),
        )
        .await?;
        ctx.log.line(format!("ClusterStack {name} and its releases are gone"));
        Ok(())
    }
}
