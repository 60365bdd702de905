//! `loadImages`: put images built here into every node of a workload cluster whose machines are
//! containers (CAPD's Docker machines under `--env kind`), so its pods need no registry.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Operation;
use std::time::Duration;

use kube::api::DynamicObject;

use crate::context::{StepCtx, StepFailure};
use crate::env::images;
use crate::kube::{Target, Verdict, wait_until_ticking};
use crate::stack::{CAPI_GROUP_VERSION, CLUSTER_NAME_LABEL};

/// Builds the named images if they are not built yet (`scs-e2e images build`, cached) and
/// imports them into the containerd of every running node container of the cluster (CAPD labels
/// them `io.x-k8s.kind.cluster=<cluster>`), as `kind load` does for kind's own nodes. Where
/// Cluster API runs, it first waits (within the step's timeout) until the cluster has the
/// Machines its topology asks for, none being deleted, each node's container running: a machine
/// being remediated would otherwise be replaced by a node without the images (a dead worker's
/// Node stays Ready for up to 40 s, so `waitCluster` can pass just before its MachineHealthCheck
/// acts). Nodes made later still (an upgrade) do not have them: load after those steps.
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
        let running = || -> Result<Vec<String>, String> {
            let ps = engine
                .run(&[
                    "ps",
                    "--filter",
                    &filter,
                    "--filter",
                    "status=running",
                    "--format",
                    &format!("{{{{.Names}}}} {{{{.Label \"{ROLE_LABEL}\"}}}}"),
                ])
                .map_err(|e| e.to_string())?;
            Ok(node_containers(&ps))
        };
        let mut nodes = running().map_err(StepFailure::error)?;
        if let Some(machines) = machine_api(ctx).await {
            let want = topology_count(ctx, &cluster).await;
            let (mut said, mut engine_error) = (String::new(), None);
            let selector = Target::Selector(format!("{CLUSTER_NAME_LABEL}={cluster}"));
            wait_until_ticking(machines, &selector, ctx.deadline, Some(Duration::from_secs(2)), |objs| {
                nodes = match running() {
                    Ok(n) => n,
                    Err(e) => {
                        engine_error = Some(e.clone());
                        return Verdict::Failed(e);
                    }
                };
                let view: Vec<MachineView> = objs.values().map(MachineView::of).collect();
                match not_settled(&view, want, &nodes) {
                    None => Verdict::Done,
                    Some(why) => {
                        if why != said {
                            ctx.log.line(format!("waiting: {why}"));
                            said = why.clone();
                        }
                        Verdict::Pending(format!("cluster {cluster}'s machines: {why}"))
                    }
                }
            })
            .await
            .map_err(|e| engine_error.take().map_or_else(|| e.into(), StepFailure::error))?;
        }
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

/// The Machine API when Cluster API is installed (else `None`: containers are all there is).
async fn machine_api(ctx: &StepCtx) -> Option<kube::Api<DynamicObject>> {
    crate::stack::ops::api(&ctx.scope(), CAPI_GROUP_VERSION, "Machine").await.ok()
}

/// The Machines cluster `cluster`'s topology asks for (see [`topology_replicas`]); `None` when
/// it has none or cannot be read: then the Machines there are all there is to wait for.
async fn topology_count(ctx: &StepCtx, cluster: &str) -> Option<u64> {
    let clusters = crate::stack::ops::api(&ctx.scope(), CAPI_GROUP_VERSION, "Cluster").await.ok()?;
    let c = clusters.get_opt(cluster).await.ok().flatten()?;
    topology_replicas(&c.data)
}

/// What [`not_settled`] needs of a Machine.
struct MachineView {
    name: String,
    deleting: bool,
    node: Option<String>,
}

impl MachineView {
    fn of(m: &DynamicObject) -> MachineView {
        MachineView {
            name: m.metadata.name.clone().unwrap_or_default(),
            deleting: m.metadata.deletion_timestamp.is_some(),
            node: crate::stack::ops::str_at(m, "/status/nodeRef/name").map(str::to_string),
        }
    }
}

/// Why the cluster's machines are not settled for loading, or `None` when they are: as many
/// Machines as its topology asks for (`want`), none being deleted, each with a node whose
/// container runs.
fn not_settled(machines: &[MachineView], want: Option<u64>, running: &[String]) -> Option<String> {
    let mut why = Vec::new();
    for m in machines {
        match (&m.node, m.deleting) {
            (_, true) => why.push(format!("Machine {} is being deleted", m.name)),
            (None, false) => why.push(format!("Machine {} has no node yet", m.name)),
            (Some(n), false) if !running.contains(n) => why.push(format!("the container of Machine {}'s node {n} is not running", m.name)),
            _ => {}
        }
    }
    let live = machines.iter().filter(|m| !m.deleting).count() as u64;
    if let Some(w) = want.filter(|w| live < *w) {
        why.push(format!("{live} of the {w} Machines its topology asks for"));
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// The Machines a topology Cluster asks for: its control plane's and its MachineDeployments'
/// replicas (`None` without a topology, or with a count left to autoscaling).
fn topology_replicas(cluster: &serde_json::Value) -> Option<u64> {
    let t = cluster.pointer("/spec/topology")?;
    let mut n = t.pointer("/controlPlane/replicas")?.as_u64()?;
    for md in t
        .pointer("/workers/machineDeployments")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
    {
        n += md.get("replicas")?.as_u64()?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::{MachineView, node_containers, not_settled, topology_replicas};

    fn m(name: &str, node: Option<&str>, deleting: bool) -> MachineView {
        MachineView {
            name: name.into(),
            deleting,
            node: node.map(str::to_string),
        }
    }

    #[test]
    fn machines_settle_only_with_every_node_running_and_the_topology_count() {
        let running = ["c-cp".to_string(), "c-md-new".to_string()];
        let all = [m("cp", Some("c-cp"), false), m("md-new", Some("c-md-new"), false)];
        assert_eq!(not_settled(&all, Some(2), &running), None);
        // A killed worker: its Machine is still there, its container is not.
        let killed = [m("cp", Some("c-cp"), false), m("md-old", Some("c-md-old"), false)];
        let why = not_settled(&killed, Some(2), &running).unwrap();
        assert!(why.contains("Machine md-old's node c-md-old is not running"), "{why}");
        // Being remediated, and its replacement not made yet: the count says so.
        let going = [m("cp", Some("c-cp"), false), m("md-old", Some("c-md-old"), true)];
        let why = not_settled(&going, Some(2), &running).unwrap();
        assert!(
            why.contains("md-old is being deleted") && why.contains("1 of the 2 Machines"),
            "{why}"
        );
        let gone = [m("cp", Some("c-cp"), false)];
        assert_eq!(
            not_settled(&gone, Some(2), &running).unwrap(),
            "1 of the 2 Machines its topology asks for"
        );
        assert_eq!(not_settled(&gone, None, &running), None, "no topology: the Machines there are all");
        let fresh = [m("cp", Some("c-cp"), false), m("md-new", None, false)];
        assert_eq!(not_settled(&fresh, Some(2), &running).unwrap(), "Machine md-new has no node yet");
    }

    #[test]
    fn the_topology_count_is_the_control_plane_and_every_machine_deployment() {
        let c = serde_json::json!({"spec": {"topology": {"controlPlane": {"replicas": 3},
            "workers": {"machineDeployments": [{"replicas": 2}, {"replicas": 1}]}}}});
        assert_eq!(topology_replicas(&c), Some(6));
        let no_workers = serde_json::json!({"spec": {"topology": {"controlPlane": {"replicas": 1}}}});
        assert_eq!(topology_replicas(&no_workers), Some(1));
        let autoscaled = serde_json::json!({"spec": {"topology": {"controlPlane": {"replicas": 1},
            "workers": {"machineDeployments": [{"class": "w"}]}}}});
        assert_eq!(topology_replicas(&autoscaled), None);
        assert_eq!(topology_replicas(&serde_json::json!({"spec": {}})), None);
    }

    #[test]
    fn the_load_balancer_is_not_a_node_and_blank_lines_are_nothing() {
        let ps = "c1-lb external-load-balancer\nc1-cp-x control-plane\n\nc1-md-0-y worker\nold-node \n";
        assert_eq!(node_containers(ps), ["c1-cp-x", "c1-md-0-y", "old-node"]);
        assert!(node_containers("c1-lb external-load-balancer\n").is_empty());
    }
}
