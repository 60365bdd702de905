//! The OpenStack side of workload clusters: credentials in each scenario namespace, the label
//! and ClusterClass variables the stacks expect, a preflight of flavors, image and quota before
//! a Cluster is created, and the leak check after one is deleted.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::cleanup::leak_check_step;
use super::clouds::Cloud;
use super::identity::Session;
use super::ownership::ClusterRef;
use super::resources::{Flavor, Limits, OpenStack, Server};
use super::secrets::{MANAGED_SECRET_LABEL, Naming};
use crate::env::{ClusterCloud, ClusterRequest};
use crate::report::StepResult;

/// The [`ClusterCloud`] of `--env openstack`: puts the credentials into scenario namespaces,
/// labels and fills in variables of workload clusters, preflights them and leak-checks them.
pub struct OpenStackClusters {
    /// The Keystone session the preflight and the leak check query the cloud with.
    pub session: Arc<Session>,
    /// The cloud (clouds.yaml entry) the clusters are created on.
    pub cloud: Cloud,
    /// Names of the credentials Secret and the `managed-secret` label value the stack expects.
    pub naming: Naming,
    /// The management cluster the credentials go into.
    pub kubeconfig: PathBuf,
    /// The user's ClusterClass variables (config `openstack.clusterVariables`), over ours.
    pub variables: BTreeMap<String, Value>,
    /// An image that must already be in Glance (config `openstack.image`).
    pub image: Option<String>,
    /// What each cluster this run created was found to need: the cloud's usage counts it only
    /// as its servers appear, so parallel scenarios would otherwise be promised the same quota.
    /// Held across a preflight, so the scenarios take turns.
    pub promised: tokio::sync::Mutex<BTreeMap<ClusterRef, Demand>>,
}

/// Quota a cluster takes: its machines, and their cores and RAM when its flavors are known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Demand {
    /// Servers: the control-plane and worker machines.
    pub instances: u64,
    /// vCPUs of those servers; 0 when the flavors are not known.
    pub cores: u64,
    /// RAM of those servers in MiB (as Nova counts it); 0 when the flavors are not known.
    pub ram: u64,
}

impl Demand {
    fn saturating_sub(self, o: Demand) -> Demand {
        Demand {
            instances: self.instances.saturating_sub(o.instances),
            cores: self.cores.saturating_sub(o.cores),
            ram: self.ram.saturating_sub(o.ram),
        }
    }

    fn add(self, o: Demand) -> Demand {
        Demand {
            instances: self.instances + o.instances,
            cores: self.cores + o.cores,
            ram: self.ram + o.ram,
        }
    }
}

/// The part of the promised quota the cloud does not count yet: each promised cluster's demand
/// less its servers that already exist (found as the leak check finds them).
pub fn outstanding(promised: &BTreeMap<ClusterRef, Demand>, servers: &[Server], flavors: &[Flavor]) -> Demand {
    let size = |s: &Server| {
        let f = &s.flavor;
        match (f.get("vcpus").and_then(Value::as_u64), f.get("ram").and_then(Value::as_u64)) {
            (Some(c), Some(r)) => (c, r),
            _ => f
                .get("id")
                .and_then(Value::as_str)
                .and_then(|id| flavors.iter().find(|x| x.id == id))
                .map_or((0, 0), |x| (x.vcpus, x.ram)),
        }
    };
    promised.iter().fold(Demand::default(), |sum, (c, want)| {
        let there = servers
            .iter()
            .filter(|s| super::ownership::server(c, s).is_some())
            .fold(Demand::default(), |d, s| {
                let (cores, ram) = size(s);
                d.add(Demand { instances: 1, cores, ram })
            });
        sum.add(want.saturating_sub(there))
    })
}

/// The cloud's one external network, offered as the stacks' `external_id` (scs) and
/// `networkExternalID` (scs2); with none or several, the user names it (`clusterVariables`).
pub fn external_network_variables(networks: &[super::resources::Network]) -> BTreeMap<String, Value> {
    let ext: Vec<_> = networks.iter().filter(|n| n.external).collect();
    match ext.as_slice() {
        [one] => BTreeMap::from([
            ("external_id".to_string(), Value::from(one.id.clone())),
            ("networkExternalID".to_string(), Value::from(one.id.clone())),
        ]),
        _ => BTreeMap::new(),
    }
}

/// Variables the SCS OpenStack stacks take from the cloud and its credentials. Both stack
/// generations are offered; `createCluster` sets only those the ClusterClass declares.
pub fn stack_variables(cloud: &Cloud, naming: &Naming) -> BTreeMap<String, Value> {
    BTreeMap::from([
        // openstack/scs (snake_case): the clouds.yaml entry and the Secret holding it.
        ("cloud_name".to_string(), Value::from(cloud.name.clone())),
        ("secret_name".to_string(), Value::from(naming.secret.clone())),
        // scs2: one object naming both.
        (
            "identityRef".to_string(),
            serde_json::json!({"name": naming.secret, "cloudName": cloud.name}),
        ),
    ])
}

#[async_trait]
impl ClusterCloud for OpenStackClusters {
    fn kind(&self) -> &'static str {
        "openstack"
    }

    async fn prepare_namespace(&self, namespace: &str) -> anyhow::Result<()> {
        super::environment::apply_credentials(&self.kubeconfig, &self.cloud, &self.naming, namespace).await
    }

    fn cluster_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(MANAGED_SECRET_LABEL.to_string(), self.naming.label_value.clone())])
    }

    fn cluster_variables(&self) -> BTreeMap<String, Value> {
        let mut v = stack_variables(&self.cloud, &self.naming);
        v.extend(self.variables.clone());
        v
    }

    async fn preflight(&self, req: &ClusterRequest) -> Result<Vec<String>, String> {
        let mut promised = self.promised.lock().await;
        let cluster = ClusterRef::new(&req.namespace, &req.name);
        // A cluster made again (after an attempt that failed) is not counted twice.
        promised.remove(&cluster);
        let (lines, demand) = preflight(&self.session, self.image.as_deref(), req, &promised).await?;
        promised.insert(cluster, demand);
        Ok(lines)
    }

    async fn forget(&self, namespace: &str, name: &str) {
        self.promised.lock().await.remove(&ClusterRef::new(namespace, name));
    }

    async fn leak_check(&self, namespace: &str, name: &str) -> StepResult {
        // Deleted: what it took is the cloud's to give out again.
        self.forget(namespace, name).await;
        leak_check_step(&self.session, &ClusterRef::new(namespace, name)).await
    }
}

/// Asks the cloud for its flavors, quota (images, when one is required; servers, when quota is
/// promised to other clusters) and [`check`]s.
pub async fn preflight(
    session: &Session,
    image: Option<&str>,
    req: &ClusterRequest,
    promised: &BTreeMap<ClusterRef, Demand>,
) -> Result<(Vec<String>, Demand), String> {
    let os = OpenStack::new(session);
    let flavors = os.flavors().await.map_err(|e| e.to_string())?;
    let limits = os.limits().await.map_err(|e| e.to_string())?;
    let pending = if promised.is_empty() {
        Demand::default()
    } else {
        outstanding(promised, &os.servers().await.map_err(|e| e.to_string())?, &flavors)
    };
    let images: Option<Vec<(String, String)>> = match image {
        Some(_) => Some(
            os.images()
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|i| (i.id, i.name.unwrap_or_default()))
                .collect(),
        ),
        None => None,
    };
    check(req, &flavors, &limits, pending, image, images.as_deref())
}

/// Which machines a flavor variable sizes, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    ControlPlane,
    Workers,
    Both,
}

fn role_of(variable: &str) -> Option<Role> {
    let v = variable.to_ascii_lowercase();
    if !v.contains("flavor") {
        return None;
    }
    Some(if v.contains("control") {
        Role::ControlPlane
    } else if v.contains("worker") {
        Role::Workers
    } else {
        Role::Both
    })
}

/// The preflight itself, on what the cloud answered: every flavor variable names a flavor,
/// the required image exists, and the free quota, less what is `pending` for this run's other
/// clusters, holds the cluster's machines. Gives what the cluster will take.
pub fn check(
    req: &ClusterRequest,
    flavors: &[Flavor],
    limits: &Limits,
    pending: Demand,
    image: Option<&str>,
    images: Option<&[(String, String)]>,
) -> Result<(Vec<String>, Demand), String> {
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    let mut cp: Option<&Flavor> = None;
    let mut workers: Option<&Flavor> = None;
    // A flavor variable naming no role (`flavor`) sizes the machines no other one does.
    let mut generic: Option<&Flavor> = None;
    for (var, value) in &req.variables {
        let (Some(role), Some(wanted)) = (role_of(var), value.as_str()) else {
            continue;
        };
        match flavors.iter().find(|f| f.name == wanted || f.id == wanted) {
            Some(f) => {
                lines.push(format!("flavor {wanted} ({var}): {} vCPU, {} MiB RAM", f.vcpus, f.ram));
                match role {
                    Role::ControlPlane => cp = Some(f),
                    Role::Workers => workers = Some(f),
                    Role::Both => generic = generic.or(Some(f)),
                }
            }
            None => {
                let mut names: Vec<&str> = flavors.iter().map(|f| f.name.as_str()).collect();
                names.sort_unstable();
                problems.push(format!(
                    "flavor `{wanted}` ({var}) is not offered to this project; it has: {}",
                    if names.is_empty() { "none".to_string() } else { names.join(", ") }
                ));
            }
        }
    }
    if let (Some(want), Some(list)) = (image, images) {
        if list.iter().any(|(id, name)| id == want || name == want) {
            lines.push(format!("image {want}: present"));
        } else {
            problems.push(format!(
                "image `{want}` is not in Glance (upload it, or drop `openstack.image` to let the stack import its own)"
            ));
        }
    }

    let cp = cp.or(generic);
    let workers = workers.or(generic);
    let machines = u64::from(req.control_plane) + u64::from(req.workers);
    let mut demand = Demand {
        instances: machines,
        ..Default::default()
    };
    let mut need = vec![("instances", "maxTotalInstances", "totalInstancesUsed", machines, pending.instances)];
    // Cores and RAM only when the flavors of both kinds of machine are known.
    let known = |n: u32, f: Option<&Flavor>| {
        if n == 0 {
            Some((0, 0))
        } else {
            f.map(|f| (f.vcpus * u64::from(n), f.ram * u64::from(n)))
        }
    };
    if let (Some((c1, r1)), Some((c2, r2))) = (known(req.control_plane, cp), known(req.workers, workers)) {
        (demand.cores, demand.ram) = (c1 + c2, r1 + r2);
        need.push(("cores", "maxTotalCores", "totalCoresUsed", c1 + c2, pending.cores));
        need.push(("MiB RAM", "maxTotalRAMSize", "totalRAMUsed", r1 + r2, pending.ram));
    } else {
        lines.push("cores and RAM not checked: no flavor variable sizes every machine".into());
    }
    for (what, max_key, used_key, n, promised) in need {
        let (Some(&max), used) = (limits.absolute.get(max_key), limits.absolute.get(used_key).copied().unwrap_or(0)) else {
            continue;
        };
        if max < 0 {
            lines.push(format!("quota {what}: unlimited"));
            continue;
        }
        let free = ((max - used).max(0) as u64).saturating_sub(promised);
        let others = |before: &str| {
            if promised > 0 {
                format!("{before}{promised} promised to this run's clusters the cloud does not count yet")
            } else {
                String::new()
            }
        };
        if n > free {
            problems.push(format!(
                "quota: {n} {what} needed, {free} free ({used} of {max} used{})",
                others(", ")
            ));
        } else {
            lines.push(format!("quota {what}: {n} needed, {free} free{}", others(" after ")));
        }
    }
    if problems.is_empty() {
        Ok((lines, demand))
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flavor(name: &str, vcpus: u64, ram: u64) -> Flavor {
        serde_json::from_value(serde_json::json!({"id": format!("id-{name}"), "name": name, "vcpus": vcpus, "ram": ram, "disk": 0}))
            .unwrap()
    }

    fn limits(pairs: &[(&str, i64)]) -> Limits {
        serde_json::from_value(serde_json::json!({"absolute": pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>()}))
            .unwrap()
    }

    fn req(cp: u32, workers: u32, vars: &[(&str, &str)]) -> ClusterRequest {
        ClusterRequest {
            namespace: "ns".into(),
            name: "c".into(),
            control_plane: cp,
            workers,
            variables: vars.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect(),
        }
    }

    #[test]
    fn only_a_single_external_network_is_offered() {
        let net = |id: &str, ext: bool| -> super::super::resources::Network {
            serde_json::from_value(serde_json::json!({"id": id, "name": id, "router:external": ext})).unwrap()
        };
        let v = external_network_variables(&[net("a", false), net("ext", true)]);
        assert_eq!(v["external_id"], "ext");
        assert_eq!(v["networkExternalID"], "ext");
        assert!(external_network_variables(&[net("e1", true), net("e2", true)]).is_empty());
        assert!(external_network_variables(&[net("a", false)]).is_empty());
    }

    #[test]
    fn quota_counts_each_kind_of_machine_with_its_flavor() {
        let f = [flavor("SCS-2V-4", 2, 4096), flavor("SCS-4V-8", 4, 8192)];
        let vars = [("controller_flavor", "SCS-2V-4"), ("worker_flavor", "SCS-4V-8")];
        // 3 CP × 2 + 2 W × 4 = 14 cores; 3 × 4096 + 2 × 8192 = 28672 MiB.
        let l = limits(&[
            ("maxTotalInstances", 10),
            ("totalInstancesUsed", 5),
            ("maxTotalCores", 20),
            ("totalCoresUsed", 6),
            ("maxTotalRAMSize", 28672),
            ("totalRAMUsed", 0),
        ]);
        let ok = check(&req(3, 2, &vars), &f, &l, Demand::default(), None, None).unwrap().0;
        assert!(ok.contains(&"quota cores: 14 needed, 14 free".to_string()), "{ok:?}");
        assert!(ok.contains(&"quota MiB RAM: 28672 needed, 28672 free".to_string()), "{ok:?}");
        let err = check(&req(3, 3, &vars), &f, &l, Demand::default(), None, None).unwrap_err();
        assert_eq!(
            err,
            "quota: 6 instances needed, 5 free (5 of 10 used); quota: 18 cores needed, 14 free (6 of 20 used); quota: 36864 MiB RAM needed, 28672 free (0 of 28672 used)"
        );
    }

    #[test]
    fn quota_promised_to_other_clusters_of_the_run_is_not_given_twice() {
        let f = [flavor("SCS-2V-4", 2, 4096), flavor("SCS-4V-8", 4, 8192)];
        let vars = [("controller_flavor", "SCS-2V-4"), ("worker_flavor", "SCS-4V-8")];
        let l = limits(&[
            ("maxTotalInstances", 10),
            ("totalInstancesUsed", 2),
            ("maxTotalCores", 40),
            ("totalCoresUsed", 6),
        ]);
        // a: 1 CP + 2 W, promised 3 instances / 10 cores; one of its workers already runs
        // (counted by the cloud, flavor inline as from microversion 2.47), so 2 / 6 are pending.
        // b: 1 CP, nothing of it yet (its server's flavor only by id, as before 2.47, is c's).
        let (a, b) = (ClusterRef::new("ns", "a"), ClusterRef::new("ns", "b"));
        let promised = BTreeMap::from([
            (
                a.clone(),
                Demand {
                    instances: 3,
                    cores: 10,
                    ram: 20480,
                },
            ),
            (
                b,
                Demand {
                    instances: 1,
                    cores: 2,
                    ram: 4096,
                },
            ),
        ]);
        let server = |name: &str, flavor: Value| -> Server {
            serde_json::from_value(serde_json::json!({"id": name, "name": name, "flavor": flavor})).unwrap()
        };
        let servers = [
            server(
                "a-md-0-x1",
                serde_json::json!({"vcpus": 4, "ram": 8192, "original_name": "SCS-4V-8"}),
            ),
            server("c-cp-1", serde_json::json!({"id": "id-SCS-2V-4"})),
        ];
        let pending = outstanding(&promised, &servers, &f);
        assert_eq!(
            pending,
            Demand {
                instances: 3,
                cores: 8,
                ram: 16384
            }
        );
        // 1 CP + 1 W: 2 instances, 6 cores. 8 instances free in the cloud, 3 of them promised.
        let (lines, demand) = check(&req(1, 1, &vars), &f, &l, pending, None, None).unwrap();
        assert_eq!(
            demand,
            Demand {
                instances: 2,
                cores: 6,
                ram: 12288
            }
        );
        assert!(
            lines.contains(
                &"quota instances: 2 needed, 5 free after 3 promised to this run's clusters the cloud does not count yet".to_string()
            ),
            "{lines:?}"
        );
        // 1 CP + 5 W: 6 instances would fit the cloud's 8, not the 5 left.
        let err = check(&req(1, 5, &vars), &f, &l, pending, None, None).unwrap_err();
        assert_eq!(
            err,
            "quota: 6 instances needed, 5 free (2 of 10 used, 3 promised to this run's clusters the cloud does not count yet)"
        );
        // Without the promises it fits: nothing else refused it.
        assert!(check(&req(1, 5, &vars), &f, &l, Demand::default(), None, None).is_ok());
    }

    #[test]
    fn unknown_flavors_and_images_are_named_with_what_there_is() {
        let f = [flavor("SCS-2V-4", 2, 4096), flavor("SCS-1V-2", 1, 2048)];
        let l = limits(&[("maxTotalInstances", -1), ("maxTotalCores", -1)]);
        let err = check(
            &req(1, 1, &[("worker_flavor", "SCS-8V-32"), ("controller_flavor", "SCS-2V-4")]),
            &f,
            &l,
            Demand::default(),
            Some("ubuntu-capi-image-v1.33.5"),
            Some(&[("i1".into(), "ubuntu-22.04".into())]),
        )
        .unwrap_err();
        assert!(
            err.contains("flavor `SCS-8V-32` (worker_flavor) is not offered to this project; it has: SCS-1V-2, SCS-2V-4"),
            "{err}"
        );
        assert!(err.contains("image `ubuntu-capi-image-v1.33.5` is not in Glance"), "{err}");
        // Unlimited quota, one generic flavor variable for every machine, the image by id.
        let ok = check(
            &req(1, 2, &[("flavor", "SCS-1V-2")]),
            &f,
            &l,
            Demand::default(),
            Some("i1"),
            Some(&[("i1".into(), "ubuntu-22.04".into())]),
        )
        .unwrap()
        .0;
        assert!(
            ok.contains(&"quota instances: unlimited".to_string()) && ok.contains(&"image i1: present".to_string()),
            "{ok:?}"
        );
        // Not a flavor variable: ignored. Without flavors, only instances are counted.
        let ok = check(
            &req(1, 1, &[("cloud_name", "nope")]),
            &f,
            &limits(&[("maxTotalInstances", 2)]),
            Demand::default(),
            None,
            None,
        )
        .unwrap()
        .0;
        assert!(ok.iter().any(|l| l.starts_with("cores and RAM not checked")), "{ok:?}");
    }
}
