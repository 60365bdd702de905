//! `createCluster`: a Cluster from a stack version's ClusterClass.

use std::collections::BTreeMap;

use async_trait::async_trait;
use kube::api::PostParams;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ClusterEffect, Operation};
use crate::context::{StepCtx, StepFailure};
use crate::stack::{CAPI_GROUP_VERSION, StackRef, ops};

/// Creates a Cluster with `topology.class` the stack version's ClusterClass and
/// `topology.version` the release's Kubernetes version (CSO's webhook refuses anything else).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateCluster {
    /// The Cluster's name.
    pub name: String,
    /// The stack version it is built from.
    pub stack: StackRef,
    /// Control-plane machines (default 1).
    #[serde(default = "one")]
    pub control_plane_replicas: u32,
    /// Worker machines in one MachineDeployment (default 1; 0 for none).
    #[serde(default = "one")]
    pub workers: u32,
    /// The ClusterClass's worker class (default `default-worker`).
    #[serde(default = "default_worker")]
    pub worker_class: String,
    /// ClusterClass variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, Value>,
    /// Labels on the Cluster (ClusterResourceSets select by them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Use this `topology.version` instead of the release's (to test the webhook's refusal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_version: Option<String>,
}

fn one() -> u32 {
    1
}
fn default_worker() -> String {
    "default-worker".into()
}

#[async_trait]
impl Operation for CreateCluster {
    fn summary(&self) -> String {
        format!(
            "create cluster {} from {}/{} {} {}",
            self.name, self.stack.provider, self.stack.name, self.stack.kubernetes_version, self.stack.version
        )
    }

    fn cluster_effect(&self) -> ClusterEffect<'_> {
        ClusterEffect::Creates(&self.name)
    }

    fn validate(&self) -> Result<(), crate::error::Invalid> {
        self.stack.validate()
    }

    async fn run(&self, ctx: &StepCtx) -> Result<(), StepFailure> {
        let scope = ctx.scope();
        let (id, version) = self.stack.resolve(|s| ctx.substitute(s)).map_err(StepFailure::error)?;
        let release = ops::ready_release(&scope, &id, &version).await?;
        let name = ctx.substitute(&self.name);
        let topology_version = self
            .topology_version
            .as_deref()
            .map(|v| ctx.substitute(v))
            .unwrap_or(release.kubernetes_version.clone());
        let mut variables = self.variables.clone();
        let mut labels: BTreeMap<String, String> = self.labels.iter().map(|(k, v)| (k.clone(), ctx.substitute(v))).collect();
        if let Some(cloud) = &ctx.cloud {
            // The cloud's defaults, where the class declares them and the step has not set them.
            let declared = ops::class_variables(&scope, &release.class).await?;
            for (k, v) in cloud.cluster_variables() {
                if declared.contains(&k) && !variables.contains_key(&k) {
                    ctx.log.line(format!("variable {k}={v} from the {} environment", cloud.kind()));
                    variables.insert(k, v);
                }
            }
            for (k, v) in cloud.cluster_labels() {
                labels.entry(k).or_insert(v);
            }
            let req = crate::env::ClusterRequest {
                namespace: ctx.namespace.clone(),
                name: name.clone(),
                control_plane: self.control_plane_replicas,
                workers: self.workers,
                variables: variables.clone(),
            };
            let lines = cloud
                .preflight(&req)
                .await
                .map_err(|why| StepFailure::error(format!("{} cannot hold cluster {name}: {why}", cloud.kind())))?;
            for l in lines {
                ctx.log.line(format!("preflight: {l}"));
            }
        }
        let variables: Vec<Value> = variables.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
        let mut topology = json!({
            "class": release.class,
            "version": topology_version,
            "controlPlane": {"replicas": self.control_plane_replicas},
        });
        if self.workers > 0 {
            topology["workers"] =
                json!({"machineDeployments": [{"class": ctx.substitute(&self.worker_class), "name": "md-0", "replicas": self.workers}]});
        }
        if !variables.is_empty() {
            topology["variables"] = Value::Array(variables);
        }
        let obj: kube::api::DynamicObject = serde_json::from_value(json!({
            "apiVersion": CAPI_GROUP_VERSION,
            "kind": "Cluster",
            "metadata": {"name": name, "namespace": ctx.namespace, "labels": labels},
            "spec": {"topology": topology},
        }))
        .map_err(|e| StepFailure::error(e.to_string()))?;
        let clusters = ops::api(&scope, CAPI_GROUP_VERSION, "Cluster").await?;
        if let Err(e) = clusters.create(&PostParams::default(), &obj).await {
            // One that already exists keeps what it was promised.
            let exists = matches!(&e, kube::Error::Api(s) if s.code == 409);
            if let (Some(cloud), false) = (&ctx.cloud, exists) {
                cloud.forget(&ctx.namespace, &name).await;
            }
            return Err(StepFailure::failed(format!("Cluster {name} was refused: {}", ops::api_message(&e))));
        }
        ctx.log
            .line(format!("Cluster {name}: class {}, version {topology_version}", release.class));
        Ok(())
    }
}
