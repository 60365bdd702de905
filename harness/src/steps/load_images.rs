//! `loadImages`: put images built here into every node of a workload cluster whose machines are
//! containers (CAPD's Docker machines under `--env kind`), so its pods need no registry.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Operation;
use crate::context::{StepCtx, StepFailure};
use crate::env::images;

/// Builds the named images if they are not built yet (`scs-e2e images build`, cached) and
/// imports them into the containerd of every running node container of the cluster (CAPD labels
/// them `io.x-k8s.kind.cluster=<cluster>`), as `kind load` does for kind's own nodes. Nodes made
/// later (an upgrade, a remediated machine) do not have them: load after those steps.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoadImages {
    /// The workload Cluster's name.
    pub cluster: String,
    /// Image recipes (`scs-e2e images list`), like `sonobuoy` or `conformance`.
    pub images: Vec<String>,
}

use crate::env::kind::CAPD_CLUSTER_LABEL as CLUSTER_LABEL;

/// CAPD's label for what a container is: `control-plane`, `worker`, or `external-load-balancer`
/// (haproxy, which carries the cluster label too but runs no containerd).
const ROLE_LABEL: &str = "io.x-k8s.kind.role";

/// The node containers among `docker ps` lines of `<name> <role>`: all but the load balancer.
fn node_containers(ps: &str) -> Vec<String> {
    ps.lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next()?;
            (parts.next() != Some("external-load-balancer")).then(|| name.to_string())
        })
        .collect()
}

#[async_trait]
impl Operation for LoadImages {
    fn summary(&self) -> String {
        format!("load images {} into cluster {}", self.images.join(", "), self.cluster)
    }

    fn validate(&self) -> Result<(), crate::error::Invalid> {
        if self.images.is_empty() {
            return Err("`images` is empty: name the image recipes to load (`scs-e2e images list`)".into());
        }
        for name in self.images.iter().filter(|n| !n.contains("${")) {
            if images::recipe(name).is_none() {
                return Err(images::ImagesError::Unknown(name.clone()).to_string().into());
            }
            if images::recipe(name).is_some_and(|r| r.output == images::Output::KindNode) {
                return Err(format!("`{name}` is the node image itself; it cannot be loaded into a node").into());
            }
        }
        Ok(())
    }

    async fn run(&self, ctx: &StepCtx) -> Result<(), StepFailure> {
        let cluster = ctx.substitute(&self.cluster);
        let names: Vec<String> = self.images.iter().map(|n| ctx.substitute(n)).collect();
        let engine = images::Engine::find(&ctx.extra_path).map_err(|e| StepFailure::error(e.to_string()))?;
        let recipes: Vec<&'static images::Recipe> = names
            .iter()
            .map(|n| images::recipe(n).ok_or_else(|| StepFailure::error(images::ImagesError::Unknown(n.clone()).to_string())))
            .collect::<Result<_, _>>()?;
        let filter = format!("label={CLUSTER_LABEL}={cluster}");
        let nodes = engine
            .run(&[
                "ps",
                "--filter",
                &filter,
                "--filter",
                "status=running",
                "--format",
                &format!("{{{{.Names}}}} {{{{.Label \"{ROLE_LABEL}\"}}}}"),
            ])
            .map_err(|e| StepFailure::error(e.to_string()))?;
        let nodes = node_containers(&nodes);
        if nodes.is_empty() {
            return Err(StepFailure::failed(format!(
                "cluster {cluster} has no running node container (label {CLUSTER_LABEL}={cluster}); loadImages needs the Docker machines of --env kind"
            )));
        }
        let cache = images::Cache::locate();
        let log = ctx.log.clone();
        let cancel = ctx.cancel.clone();
        let deadline = ctx.deadline;
        let result = tokio::task::spawn_blocking(move || -> Result<Vec<String>, String> {
            let built = images::ensure_shown(&engine, &cache, &recipes, false, false).map_err(|e| e.to_string())?;
            if !built.is_empty() {
                log.line(format!("built {}", built.join(", ")));
            }
            let mut lines = Vec::new();
            for node in &nodes {
                for r in &recipes {
                    if cancel.is_cancelled() || tokio::time::Instant::now() > deadline {
                        return Err(format!("stopped before {} was in {node}", r.name));
                    }
                    let archive = cache.archive(r, &images::key(r));
                    // ctr as kind's own `kind load` runs it: the images in Kubernetes' namespace,
                    // unpacked for the node's snapshotter.
                    let out = duct::cmd(
                        &engine.docker,
                        [
                            "exec",
                            "-i",
                            node.as_str(),
                            "ctr",
                            "--namespace=k8s.io",
                            "images",
                            "import",
                            "--all-platforms",
                            "--digests",
                            "--snapshotter=overlayfs",
                            "-",
                        ],
                    )
                    .stdin_path(&archive)
                    .stderr_to_stdout()
                    .stdout_capture()
                    .unchecked()
                    .run()
                    .map_err(|e| format!("{}: {e}", archive.display()))?;
                    let text = String::from_utf8_lossy(&out.stdout);
                    if !out.status.success() {
                        return Err(format!("importing {} into {node} failed: {}", r.name, text.trim()));
                    }
                    lines.push(format!("{node}: {} ({})", r.name, r.tags.join(", ")));
                }
            }
            Ok(lines)
        })
        .await
        .map_err(|e| StepFailure::error(format!("the image import task failed: {e}")))?
        .map_err(StepFailure::error)?;
        for l in result {
            ctx.log.line(l);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::node_containers;

    #[test]
    fn the_load_balancer_is_not_a_node_and_blank_lines_are_nothing() {
        let ps = "c1-lb external-load-balancer\nc1-cp-x control-plane\n\nc1-md-0-y worker\nold-node \n";
        assert_eq!(node_containers(ps), ["c1-cp-x", "c1-md-0-y", "old-node"]);
        assert!(node_containers("c1-lb external-load-balancer\n").is_empty());
    }
}
