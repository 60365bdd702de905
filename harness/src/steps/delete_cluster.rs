//! `deleteCluster`: delete a Cluster and check that nothing of it is left.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ClusterEffect, Operation};
use crate::context::{StepCtx, StepFailure};
use crate::stack::{CAPI_GROUP_VERSION, CLUSTER_NAME_LABEL, CSO_GROUP_VERSION, ops};

/// Deletes the Cluster, waits until its finalizers let it go, then until no Machine, Secret
/// or ClusterAddon of it remains.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeleteCluster {
    /// The Cluster's name.
    pub name: String,
}

#[async_trait]
impl Operation for DeleteCluster {
    fn summary(&self) -> String {
        format!("delete cluster {}", self.name)
    }

    fn cluster_effect(&self) -> ClusterEffect<'_> {
        ClusterEffect::Deletes(&self.name)
    }

    async fn run(&self, ctx: &StepCtx) -> Result<(), StepFailure> {
        let scope = ctx.scope();
        let name = ctx.substitute(&self.name);
        ops::delete_and_wait(&scope, CAPI_GROUP_VERSION, "Cluster", &name).await?;
        let selector = format!("{CLUSTER_NAME_LABEL}={name}");
        ops::wait_none_left(&scope, CAPI_GROUP_VERSION, "Machine", Some(&selector), None).await?;
        ops::wait_none_left(&scope, "v1", "Secret", None, Some(&format!("{name}-"))).await?;
        ops::wait_none_left(
            &scope,
            CSO_GROUP_VERSION,
            "ClusterAddon",
            None,
            Some(&format!("cluster-addon-{name}")),
        )
        .await?;
        ctx.log
            .line(format!("Cluster {name} and its machines, secrets and addons are gone"));
        Ok(())
    }
}
