//! `waitCluster`: until a Cluster is ready, its kubeconfig fetched and its addons applied.

use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Operation;
use crate::context::{StepCtx, StepFailure};
use crate::stack::{AddonWait, ops};

/// Waits until the Cluster is ready (v1beta2 `Available`, or v1beta1 `Ready`,
/// `ControlPlaneReady`, `InfrastructureReady` and `TopologyReconciled`), fetches its kubeconfig
/// (exported as `${CLUSTER_KUBECONFIG}` to later steps, kept out of the artifacts) and waits for
/// its ClusterAddon to be ready for the Cluster's class.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WaitCluster {
    /// The Cluster's name.
    pub name: String,
    /// How far to wait for the ClusterAddon `cluster-addon-<name>`: `ready` (default),
    /// `created` (simulated clusters that cannot take addons) or `skip`.
    #[serde(default)]
    pub addons: AddonWait,
    /// How long a lifecycle hook may block the topology before the step fails (default 2m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_timeout: Option<crate::format::duration::HumanDuration>,
}

/// How long a lifecycle hook may block the topology when `hookTimeout` is not set (2 minutes).
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(120);

#[async_trait]
impl Operation for WaitCluster {
    fn summary(&self) -> String {
        format!("wait cluster {}", self.name)
    }

    async fn run(&self, ctx: &StepCtx) -> Result<(), StepFailure> {
        let scope = ctx.scope();
        let name = ctx.substitute(&self.name);
        let hooks = self.hook_timeout.map(|d| d.0).unwrap_or(DEFAULT_HOOK_TIMEOUT);
        let cluster = ops::wait_cluster_ready(&scope, &name, hooks).await?;
        let path = ops::fetch_kubeconfig(&scope, &name).await?;
        ctx.outputs.set("CLUSTER_KUBECONFIG", path.display().to_string());
        ctx.log
            .line(format!("Cluster {name} ready; its kubeconfig is ${{CLUSTER_KUBECONFIG}}"));
        if self.addons != AddonWait::Skip {
            let class = ops::str_at(&cluster, "/spec/topology/class").unwrap_or_default();
            ops::wait_addon(&scope, &name, class, self.addons).await?;
            if self.addons == AddonWait::Ready {
                ctx.log.line(format!("ClusterAddon cluster-addon-{name} ready for {class}"));
            } else {
                ctx.log.line(format!("ClusterAddon cluster-addon-{name} created"));
            }
        }
        Ok(())
    }
}
