//! The cluster-stack and cluster operations the steps are made of: watch-based, and on a
//! timeout they name the last observed state.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{CAPI_GROUP_VERSION, CLUSTER_NAME_LABEL, CSO_GROUP_VERSION, StackId};
use crate::context::{Scope, StepFailure};
use crate::kube::{Target, Verdict, WaitError, conditions, describe_conditions, wait_until, wait_until_ticking};

const FIELD_MANAGER: &str = crate::context::FIELD_MANAGER;
/// How long `ReleaseAssetsNotDownloadedYet` may last before we call the assets missing:
/// downloads from a registry take a few seconds, local mode never gets better.
pub const ASSETS_GRACE: Duration = Duration::from_secs(15);

/// The API for a CSO or Cluster API kind in the scope's namespace; a missing kind is an `Error`
/// that asks whether Cluster API and CSO are installed.
pub async fn api(scope: &Scope, api_version: &str, kind: &str) -> Result<Api<DynamicObject>, StepFailure> {
    scope.resolver.api(api_version, kind, &scope.namespace).await.map_err(|e| {
        StepFailure::error(format!(
            "the API has no {kind} ({api_version}): {e}; are Cluster API and the Cluster Stack Operator installed in this environment?"
        ))
    })
}

/// A string field of an object, by JSON pointer.
pub fn str_at<'a>(o: &'a DynamicObject, ptr: &str) -> Option<&'a str> {
    o.data.pointer(ptr).and_then(Value::as_str)
}

fn condition_is(o: &DynamicObject, type_: &str, status: &str) -> bool {
    conditions(o).iter().any(|c| c.type_ == type_ && c.status == status)
}

/// The ClusterStack of `id` in the scenario's namespace (by its spec, whatever its name).
pub async fn find_cluster_stack(scope: &Scope, id: &StackId) -> Result<Option<DynamicObject>, StepFailure> {
    let stacks = api(scope, CSO_GROUP_VERSION, "ClusterStack").await?;
    Ok(stacks.list(&ListParams::default()).await?.items.into_iter().find(|s| {
        str_at(s, "/spec/provider") == Some(id.provider.as_str())
            && str_at(s, "/spec/name") == Some(id.name.as_str())
            && str_at(s, "/spec/kubernetesVersion") == Some(id.kubernetes_version.as_str())
    }))
}

/// Creates or updates the ClusterStack of `id` with `versions` (merged with those it has).
/// `autoSubscribe` is always off: on, CSO would add releases behind the test's back.
pub async fn apply_cluster_stack(
    scope: &Scope,
    id: &StackId,
    object_name: Option<&str>,
    channel: &str,
    versions: &[String],
    no_provider: bool,
    provider_ref: Option<&Value>,
) -> Result<String, StepFailure> {
    let existing = find_cluster_stack(scope, id).await?;
    let name = match (&existing, object_name) {
        (Some(s), _) => s.metadata.name.clone().unwrap_or_default(),
        (None, Some(n)) => n.to_string(),
        (None, None) => id.prefix(),
    };
    let mut all: BTreeSet<String> = existing
        .as_ref()
        .and_then(|s| s.data.pointer("/spec/versions"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default();
    all.extend(versions.iter().cloned());
    let mut obj = json!({
        "apiVersion": CSO_GROUP_VERSION,
        "kind": "ClusterStack",
        "metadata": {"name": name, "namespace": scope.namespace},
        "spec": {
            "provider": id.provider,
            "name": id.name,
            "kubernetesVersion": id.kubernetes_version,
            "channel": channel,
            "autoSubscribe": false,
            "noProvider": no_provider,
            "versions": all,
        }
    });
    if let Some(r) = provider_ref {
        obj["spec"]["providerRef"] = r.clone();
    }
    let stacks = api(scope, CSO_GROUP_VERSION, "ClusterStack").await?;
    stacks
        .patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&obj))
        .await
        .map_err(|e| StepFailure::error(format!("ClusterStack {name} was refused: {}", api_message(&e))))?;
    scope.log.line(format!(
        "ClusterStack {name}: {}/{} {} versions {}",
        id.provider,
        id.name,
        id.kubernetes_version,
        all.iter().cloned().collect::<Vec<_>>().join(", ")
    ));
    Ok(name)
}

/// The API server's (or an admission webhook's) own words.
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// What a usable release tells: its Kubernetes version and the ClusterClass it made.
#[derive(Clone, Debug)]
pub struct ReleaseInfo {
    /// The ClusterStackRelease's name, like `inmemory-scs-1-33-v1`.
    pub name: String,
    /// The release's `status.kubernetesVersion`, like `v1.33.4`.
    pub kubernetes_version: String,
    /// The ClusterClass the release made.
    pub class: String,
}

/// Waits until the release is usable: `status.ready`, `HelmChartApplied` True and its
/// ClusterClass present. ClusterStack `Ready` is no signal: it turns True before any release is.
/// `release_dir` (CSO's local-mode directory, if any) only names where assets are missing.
pub async fn wait_release(scope: &Scope, id: &StackId, version: &str, release_dir: Option<&str>) -> Result<ReleaseInfo, StepFailure> {
    let name = id.release_name(version);
    let releases = api(scope, CSO_GROUP_VERSION, "ClusterStackRelease").await?;
    let asset_dir = match release_dir {
        Some(d) => PathBuf::from(d).join("cluster-stacks").join(&name).display().to_string(),
        None => format!("<CSO release dir>/cluster-stacks/{name}/"),
    };
    let mut missing_since: Option<Instant> = None;
    let target = Target::Name(name.clone());
    let release_wait = wait_until_ticking(releases, &target, scope.deadline, Some(Duration::from_secs(1)), |objs| {
        let Some(r) = objs.get(&name) else {
            return Verdict::Pending(format!(
                "ClusterStackRelease {name} does not exist yet (is the version in the ClusterStack's versions?)"
            ));
        };
        let not_downloaded = conditions(r)
            .iter()
            .any(|c| c.type_ == "ClusterStackReleaseDownloaded" && c.status == "False" && c.reason == "ReleaseAssetsNotDownloadedYet");
        if not_downloaded {
            let since = *missing_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= ASSETS_GRACE {
                return Verdict::Failed(format!(
                    "ClusterStackRelease {name}: release assets not found (ClusterStackReleaseDownloaded=False, ReleaseAssetsNotDownloadedYet for {}s); CSO expects them in {asset_dir} (metadata.yaml, the cluster-class and cluster-addon chart .tgz, cluster-addon-values.yaml or clusteraddon.yaml): build them from the stack's source (installClusterStack `source:`) or fix the version",
                    ASSETS_GRACE.as_secs()
                ));
            }
        } else {
            missing_since = None;
        }
        let ready = r.data.pointer("/status/ready").and_then(Value::as_bool) == Some(true);
        if ready && condition_is(r, "HelmChartApplied", "True") {
            Verdict::Done
        } else {
            Verdict::Pending(format!("ClusterStackRelease {name}: ready={ready}; {}", describe_conditions(r)))
        }
    });
    // With CSPO, a failed node-image import would otherwise only show as a timeout.
    let done = tokio::select! {
        r = release_wait => r?,
        f = super::cspo::image_import_failure(scope, &name) => return Err(f),
    };
    let r = &done[&name];
    let kubernetes_version = str_at(r, "/status/kubernetesVersion").unwrap_or_default().to_string();
    let class = id.class_name(version);
    let classes = api(scope, CAPI_GROUP_VERSION, "ClusterClass").await?;
    wait_until(classes, &Target::Name(class.clone()), scope.deadline, |objs| {
        if objs.contains_key(&class) {
            Verdict::Done
        } else {
            Verdict::Pending(format!("release {name} is ready but ClusterClass {class} does not exist"))
        }
    })
    .await
    .map_err(|e| StepFailure::failed(e.to_string()))?;
    scope.log.line(format!(
        "release {name} usable: Kubernetes {kubernetes_version}, ClusterClass {class}"
    ));
    Ok(ReleaseInfo {
        name,
        kubernetes_version,
        class,
    })
}

/// Reads a release that should be usable already (for createCluster/upgradeCluster).
pub async fn ready_release(scope: &Scope, id: &StackId, version: &str) -> Result<ReleaseInfo, StepFailure> {
    let name = id.release_name(version);
    let releases = api(scope, CSO_GROUP_VERSION, "ClusterStackRelease").await?;
    let r = releases.get_opt(&name).await?.ok_or_else(|| {
        StepFailure::error(format!(
            "ClusterStackRelease {name} does not exist: install the stack version first (installClusterStack, waitClusterStackRelease)"
        ))
    })?;
    let kubernetes_version = str_at(&r, "/status/kubernetesVersion").unwrap_or_default().to_string();
    if kubernetes_version.is_empty() {
        return Err(StepFailure::error(format!(
            "ClusterStackRelease {name} has no status.kubernetesVersion yet: wait for it with waitClusterStackRelease"
        )));
    }
    Ok(ReleaseInfo {
        name,
        kubernetes_version,
        class: id.class_name(version),
    })
}

/// The variable names a ClusterClass declares: its own (`spec.variables`) and those Cluster API
/// found in its runtime extensions (`status.variables`).
pub async fn class_variables(scope: &Scope, class: &str) -> Result<std::collections::BTreeSet<String>, StepFailure> {
    let classes = api(scope, CAPI_GROUP_VERSION, "ClusterClass").await?;
    let c = classes
        .get_opt(class)
        .await?
        .ok_or_else(|| StepFailure::error(format!("ClusterClass {class} does not exist in namespace {}", scope.namespace)))?;
    Ok(["/spec/variables", "/status/variables"]
        .iter()
        .filter_map(|p| c.data.pointer(p).and_then(Value::as_array))
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str).map(str::to_string))
        .collect())
}

/// The Cluster's readiness, by v1beta2 `Available` where the Cluster reports v1beta2
/// conditions, else by the v1beta1 set. `None` when ready, else what is missing.
pub fn cluster_not_ready(c: &DynamicObject) -> Option<String> {
    if let Some(v2) = c.data.pointer("/status/v1beta2/conditions").and_then(Value::as_array) {
        let available = v2.iter().find(|x| x.get("type").and_then(Value::as_str) == Some("Available"));
        return match available {
            Some(a) if a.get("status").and_then(Value::as_str) == Some("True") => None,
            Some(a) => Some(format!(
                "Available={} ({}): {}",
                a.get("status").and_then(Value::as_str).unwrap_or(""),
                a.get("reason").and_then(Value::as_str).unwrap_or(""),
                a.get("message").and_then(Value::as_str).unwrap_or("")
            )),
            None => Some("no v1beta2 Available condition yet".into()),
        };
    }
    let missing: Vec<&str> = ["Ready", "ControlPlaneReady", "InfrastructureReady", "TopologyReconciled"]
        .into_iter()
        .filter(|t| !condition_is(c, t, "True"))
        .collect();
    (!missing.is_empty()).then(|| format!("not yet True: {}; {}", missing.join(", "), describe_conditions(c)))
}

/// A lifecycle hook that has blocked `TopologyReconciled` for longer than `limit`.
pub fn blocking_hook(c: &DynamicObject, limit: Duration) -> Option<String> {
    let cond = c
        .data
        .pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|x| x.get("type").and_then(Value::as_str) == Some("TopologyReconciled"))?;
    let reason = cond.get("reason").and_then(Value::as_str).unwrap_or("");
    if cond.get("status").and_then(Value::as_str) != Some("False") || !reason.contains("HookBlocking") {
        return None;
    }
    let since = cond
        .get("lastTransitionTime")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())?;
    let age = chrono::Utc::now().signed_duration_since(since).to_std().unwrap_or_default();
    (age > limit).then(|| {
        format!(
            "a lifecycle hook blocks the topology for {}s (limit {}s): {}",
            age.as_secs(),
            limit.as_secs(),
            cond.get("message").and_then(Value::as_str).unwrap_or(reason)
        )
    })
}

/// Waits until the Cluster is ready (see [`cluster_not_ready`]) and returns it; fails early when a
/// lifecycle hook blocks the topology for longer than `hook_limit`.
pub async fn wait_cluster_ready(scope: &Scope, cluster: &str, hook_limit: Duration) -> Result<DynamicObject, StepFailure> {
    let clusters = api(scope, CAPI_GROUP_VERSION, "Cluster").await?;
    let done = wait_until_ticking(
        clusters,
        &Target::Name(cluster.into()),
        scope.deadline,
        Some(Duration::from_secs(1)),
        |objs| {
            let Some(c) = objs.get(cluster) else {
                return Verdict::Pending(format!("Cluster {cluster} does not exist"));
            };
            if let Some(h) = blocking_hook(c, hook_limit) {
                return Verdict::Failed(format!("Cluster {cluster}: {h}"));
            }
            match cluster_not_ready(c) {
                None => Verdict::Done,
                Some(why) => Verdict::Pending(format!("Cluster {cluster}: {why}")),
            }
        },
    )
    .await;
    match done {
        Ok(done) => Ok(done[cluster].clone()),
        // The Cluster's conditions name MachineDeployments at best; the one Machine that holds
        // it up (a node that never joined, a dead container) is what a reader needs.
        Err(WaitError::Timeout { elapsed, last }) => {
            let machines = match api(scope, CAPI_GROUP_VERSION, "Machine").await {
                Ok(m) => m
                    .list(&ListParams::default().labels(&format!("{CLUSTER_NAME_LABEL}={cluster}")))
                    .await
                    .map(|l| unready_machines(&l.items))
                    .unwrap_or_else(|e| format!("its Machines could not be listed: {e}")),
                Err(e) => format!("its Machines could not be listed: {}", e.message),
            };
            Err(WaitError::Timeout {
                elapsed,
                last: format!("{last}; {machines}"),
            }
            .into())
        }
        Err(e) => Err(e.into()),
    }
}

/// The Machines that are not ready (v1beta2 `Ready`, else v1beta1 `Ready` and `NodeHealthy`),
/// each with its phase, node and the conditions that are not True.
pub fn unready_machines(machines: &[DynamicObject]) -> String {
    let v2_conditions = |m: &DynamicObject| m.data.pointer("/status/v1beta2/conditions").and_then(Value::as_array).cloned();
    let mut bad = Vec::new();
    for m in machines {
        let name = m.metadata.name.as_deref().unwrap_or("?");
        let failing: Vec<String> = match v2_conditions(m) {
            Some(conds) => {
                let ready = conds.iter().any(|c| {
                    c.get("type").and_then(Value::as_str) == Some("Ready") && c.get("status").and_then(Value::as_str) == Some("True")
                });
                if ready {
                    continue;
                }
                // Paused and Deleting are False when all is well; Available only repeats Ready.
                conds
                    .iter()
                    .filter(|c| {
                        let (t, st) = (c.get("type").and_then(Value::as_str), c.get("status").and_then(Value::as_str));
                        st != Some("True") && !matches!((t, st), (Some("Paused" | "Deleting"), Some("False")) | (Some("Available"), _))
                    })
                    .map(|c| {
                        let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
                        let mut s = format!("{}={}", field("type"), field("status"));
                        if !field("message").is_empty() {
                            s.push_str(&format!(": {}", field("message").replace('\n', " ")));
                        }
                        s
                    })
                    .collect()
            }
            None => {
                if condition_is(m, "Ready", "True") && condition_is(m, "NodeHealthy", "True") {
                    continue;
                }
                conditions(m)
                    .iter()
                    .filter(|c| c.status != "True")
                    .map(|c| {
                        format!(
                            "{}={}{}",
                            c.type_,
                            c.status,
                            if c.message.is_empty() {
                                String::new()
                            } else {
                                format!(": {}", c.message)
                            }
                        )
                    })
                    .collect()
            }
        };
        let deleting = if m.metadata.deletion_timestamp.is_some() {
            ", being deleted"
        } else {
            ""
        };
        bad.push(format!(
            "Machine {name} ({}{deleting}, node {}): {}",
            str_at(m, "/status/phase").unwrap_or("no phase"),
            str_at(m, "/status/nodeRef/name").unwrap_or("none"),
            if failing.is_empty() {
                "no conditions yet".to_string()
            } else {
                failing.join("; ")
            }
        ));
    }
    match bad.len() {
        0 if machines.is_empty() => "the cluster has no Machine".into(),
        0 => format!("all {} Machines ready", machines.len()),
        _ => format!("not ready: {}", bad.join(" | ")),
    }
}

/// The workload cluster's kubeconfig from Secret `<cluster>-kubeconfig` (key `value`), written
/// with mode 0600 outside the artifacts (it is a credential).
pub async fn fetch_kubeconfig(scope: &Scope, cluster: &str) -> Result<PathBuf, StepFailure> {
    use k8s_openapi::api::core::v1::Secret;
    let secrets: Api<Secret> = Api::namespaced(scope.client(), &scope.namespace);
    let name = format!("{cluster}-kubeconfig");
    let s = secrets
        .get_opt(&name)
        .await?
        .ok_or_else(|| StepFailure::failed(format!("Secret {name} does not exist although Cluster {cluster} is ready")))?;
    let value = s
        .data
        .as_ref()
        .and_then(|d| d.get("value"))
        .ok_or_else(|| StepFailure::failed(format!("Secret {name} has no key `value`")))?;
    let dir = crate::base::private_dir().map_err(|e| StepFailure::error(format!("cannot make a private directory: {e}")))?;
    let path = dir.join(format!("{}-{cluster}.kubeconfig", scope.namespace));
    crate::base::write_private(&path, &value.0).map_err(|e| StepFailure::error(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

/// Waits for the cluster's ClusterAddon to be ready for `class` (the Cluster's current class).
pub async fn wait_addon(scope: &Scope, cluster: &str, class: &str, mode: super::AddonWait) -> Result<(), StepFailure> {
    if mode == super::AddonWait::Skip {
        return Ok(());
    }
    let need_ready = mode == super::AddonWait::Ready;
    let name = format!("cluster-addon-{cluster}");
    let addons = api(scope, CSO_GROUP_VERSION, "ClusterAddon").await?;
    wait_until(addons, &Target::Name(name.clone()), scope.deadline, |objs| {
        let Some(a) = objs.get(&name) else {
            return Verdict::Pending(format!("ClusterAddon {name} does not exist"));
        };
        let stack = str_at(a, "/spec/clusterStack").unwrap_or("");
        let ready = a.data.pointer("/status/ready").and_then(Value::as_bool) == Some(true);
        let for_cluster = str_at(a, "/spec/clusterRef/name") == Some(cluster);
        // CSO fills spec.clusterStack only once it applied the chart.
        if (need_ready && ready && stack == class) || (!need_ready && for_cluster) {
            Verdict::Done
        } else {
            Verdict::Pending(format!(
                "ClusterAddon {name}: ready={ready}, clusterStack={stack:?} (want {class:?}); {}",
                describe_conditions(a)
            ))
        }
    })
    .await?;
    Ok(())
}

/// Name → (version, phase, node) of the cluster's Machines.
pub async fn machines(scope: &Scope, cluster: &str) -> Result<BTreeMap<String, String>, StepFailure> {
    let api = api(scope, CAPI_GROUP_VERSION, "Machine").await?;
    let list = api
        .list(&ListParams::default().labels(&format!("{CLUSTER_NAME_LABEL}={cluster}")))
        .await?;
    Ok(list
        .items
        .iter()
        .map(|m| (m.metadata.name.clone().unwrap_or_default(), describe_machine(m)))
        .collect())
}

fn describe_machine(m: &DynamicObject) -> String {
    format!(
        "{} {} node={}",
        str_at(m, "/spec/version").unwrap_or("?"),
        str_at(m, "/status/phase").unwrap_or("no phase"),
        str_at(m, "/status/nodeRef/name").unwrap_or("none")
    )
}

/// Fails once a lifecycle hook has blocked the Cluster's topology for longer than `limit`;
/// otherwise runs until just after the step's deadline (so the step's own wait reports first).
pub async fn fail_on_blocking_hook(scope: &Scope, cluster: &str, limit: Duration) -> StepFailure {
    let clusters = match api(scope, CAPI_GROUP_VERSION, "Cluster").await {
        Ok(a) => a,
        Err(e) => return e,
    };
    let deadline = scope.deadline + Duration::from_secs(1);
    let r = wait_until_ticking(
        clusters,
        &Target::Name(cluster.into()),
        deadline,
        Some(Duration::from_secs(1)),
        |objs| match objs.get(cluster).and_then(|c| blocking_hook(c, limit)) {
            Some(h) => Verdict::Failed(format!("Cluster {cluster}: {h}")),
            None => Verdict::Pending(String::new()),
        },
    )
    .await;
    match r {
        Err(e) => e.into(),
        Ok(_) => StepFailure::error("unreachable: the hook watch never ends on its own"),
    }
}

/// Waits until none of `old` Machines is left and every Machine of the cluster runs `version`
/// with a node.
pub async fn wait_machines_replaced(scope: &Scope, cluster: &str, old: &BTreeSet<String>, version: &str) -> Result<usize, StepFailure> {
    let api = api(scope, CAPI_GROUP_VERSION, "Machine").await?;
    let target = Target::Selector(format!("{CLUSTER_NAME_LABEL}={cluster}"));
    let done = wait_until(api, &target, scope.deadline, |objs| {
        let left: Vec<&String> = objs.keys().filter(|n| old.contains(*n)).collect();
        let not_new: Vec<String> = objs
            .iter()
            .filter(|(_, m)| {
                str_at(m, "/spec/version") != Some(version)
                    || str_at(m, "/status/phase") != Some("Running")
                    || str_at(m, "/status/nodeRef/name").is_none()
            })
            .map(|(n, m)| format!("{n}: {}", describe_machine(m)))
            .collect();
        if left.is_empty() && not_new.is_empty() && !objs.is_empty() {
            Verdict::Done
        } else {
            Verdict::Pending(format!(
                "old machines left: [{}]; not yet Running {version} with a node: [{}]",
                left.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                not_new.join("; ")
            ))
        }
    })
    .await?;
    Ok(done.len())
}

/// Deletes one object and waits until it is gone (finalizers included).
pub async fn delete_and_wait(scope: &Scope, api_version: &str, kind: &str, name: &str) -> Result<(), StepFailure> {
    let api = api(scope, api_version, kind).await?;
    // Not foreground: the garbage collector would delete a Cluster's infrastructure cluster
    // together with its machines, while Cluster API's own finalizer deletes them in order.
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    wait_until(api, &Target::Name(name.into()), scope.deadline, |objs| match objs.get(name) {
        None => Verdict::Done,
        Some(o) => Verdict::Pending(format!(
            "{kind} {name} still exists (finalizers: {}); {}",
            o.metadata.finalizers.clone().unwrap_or_default().join(", "),
            describe_conditions(o)
        )),
    })
    .await?;
    Ok(())
}

/// Waits until nothing of `kind` matches `selector` (or `name_prefix`, if given) any more.
pub async fn wait_none_left(
    scope: &Scope,
    api_version: &str,
    kind: &str,
    selector: Option<&str>,
    name_prefix: Option<&str>,
) -> Result<(), StepFailure> {
    let api = api(scope, api_version, kind).await?;
    let target = match selector {
        Some(s) => Target::Selector(s.into()),
        None => Target::Selector(String::new()),
    };
    wait_until(api, &target, scope.deadline, |objs| {
        let left: Vec<&String> = objs.keys().filter(|n| name_prefix.is_none_or(|p| n.starts_with(p))).collect();
        if left.is_empty() {
            Verdict::Done
        } else {
            Verdict::Pending(format!(
                "{kind} left: {}",
                left.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ))
        }
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(v: Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_timeout_names_the_machines_that_hold_the_cluster_up() {
        let ready = machine(serde_json::json!({
            "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Machine",
            "metadata": {"name": "c-cp-1"},
            "status": {"phase": "Running", "nodeRef": {"name": "c-cp-1"},
                "v1beta2": {"conditions": [{"type": "Ready", "status": "True"}]}}
        }));
        let dead = machine(serde_json::json!({
            "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Machine",
            "metadata": {"name": "c-md-0-x", "deletionTimestamp": "2026-12-01T00:00:00Z"},
            "status": {"phase": "Running", "nodeRef": {"name": "c-md-0-x"},
                "v1beta2": {"conditions": [
                    {"type": "Ready", "status": "False", "message": "* NodeHealthy: Node is unreachable\n* HealthCheckSucceeded: failed"},
                    {"type": "InfrastructureReady", "status": "True"},
                    {"type": "Available", "status": "False"},
                    {"type": "Paused", "status": "False"},
                    {"type": "Deleting", "status": "False"}]}}
        }));
        let v1 = machine(serde_json::json!({
            "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Machine",
            "metadata": {"name": "old"},
            "status": {"phase": "Provisioned", "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "NodeHealthy", "status": "False", "message": "waiting for a node"}]}
        }));
        let text = unready_machines(&[ready.clone(), dead, v1]);
        assert!(!text.contains("c-cp-1"), "{text}");
        assert!(
            text.contains("Machine c-md-0-x (Running, being deleted, node c-md-0-x): Ready=False: * NodeHealthy: Node is unreachable * HealthCheckSucceeded: failed"),
            "{text}"
        );
        assert!(
            text.contains("Machine old (Provisioned, node none): NodeHealthy=False: waiting for a node"),
            "{text}"
        );
        for fine in ["InfrastructureReady", "Available", "Paused", "Deleting"] {
            assert!(!text.contains(fine), "{fine} in {text}");
        }
        assert_eq!(unready_machines(&[ready]), "all 1 Machines ready");
        assert_eq!(unready_machines(&[]), "the cluster has no Machine");
    }
}
