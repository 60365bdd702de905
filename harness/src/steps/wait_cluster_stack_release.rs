//! `waitClusterStackRelease`: until a stack version is usable.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Operation;
use crate::context::{StepCtx, StepFailure};
use crate::stack::{StackRef, ops};

/// Waits until the ClusterStackRelease of a version is usable: `status.ready`, condition
/// `HelmChartApplied` True, and its ClusterClass exists. (ClusterStack `Ready` is not used: it
/// turns True before any release is usable.) Missing local-mode assets fail with their path.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WaitClusterStackRelease {
    /// The stack version to wait for (its fields sit directly in the step).
    #[serde(flatten)]
    pub stack: StackRef,
}

#[async_trait]
impl Operation for WaitClusterStackRelease {
    fn summary(&self) -> String {
        let s = &self.stack;
        format!("wait release {}/{} {} {}", s.provider, s.name, s.kubernetes_version, s.version)
    }

    fn validate(&self) -> Result<(), crate::error::Invalid> {
        self.stack.validate()
    }

    async fn run(&self, ctx: &StepCtx) -> Result<(), StepFailure> {
        let scope = ctx.scope();
        let (id, version) = self.stack.resolve(|s| ctx.substitute(s)).map_err(StepFailure::error)?;
        ops::wait_release(&scope, &id, &version, ctx.vars.get("CSO_RELEASE_DIR").map(String::as_str)).await?;
        Ok(())
    }
}
