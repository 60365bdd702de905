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
use super::resources::{Flavor, Limits, OpenStack};
use super::secrets::{MANAGED_SECRET_LABEL, Naming};
use crate::env::{ClusterCloud, ClusterRequest};
use crate::report::StepResult;

pub struct OpenStackClusters {
    pub session: Arc<Session>,
    pub cloud: Cloud,
    pub naming: Naming,
    /// The management cluster the credentials go into.
    pub kubeconfig: PathBuf,
    /// The user's ClusterClass variables (config `openstack.clusterVariables`), over ours.
    pub variables: BTreeMap<String, Value>,
    /// An image that must already be in Glance (config `openstack.image`).
    pub image: Option<String>,
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
        preflight(&self.session, self.image.as_deref(), req).await
    }

    async fn leak_check(&self, namespace: &str, name: &str) -> StepResult {
        leak_check_step(&self.session, &ClusterRef::new(namespace, name)).await
    }
}

/// Asks the cloud for its flavors, quota (and images, when one is required) and [`check`]s.
pub async fn preflight(session: &Session, image: Option<&str>, req: &ClusterRequest) -> Result<Vec<String>, String> {
    let os = OpenStack::new(session);
    let flavors = os.flavors().await.map_err(|e| e.to_string())?;
    let limits = os.limits().await.map_err(|e| e.to_string())?;
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
    check(req, &flavors, &limits, image, images.as_deref())
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
/// the required image exists, and the free quota holds the cluster's machines.
pub fn check(
    req: &ClusterRequest,
    flavors: &[Flavor],
    limits: &Limits,
    image: Option<&str>,
    images: Option<&[(String, String)]>,
) -> Result<Vec<String>, String> {
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
    let mut need = vec![("instances", "maxTotalInstances", "totalInstancesUsed", machines)];
    // Cores and RAM only when the flavors of both kinds of machine are known.
    let known = |n: u32, f: Option<&Flavor>| {
        if n == 0 {
            Some((0, 0))
        } else {
            f.map(|f| (f.vcpus * u64::from(n), f.ram * u64::from(n)))
        }
    };
    if let (Some((c1, r1)), Some((c2, r2))) = (known(req.control_plane, cp), known(req.workers, workers)) {
        need.push(("cores", "maxTotalCores", "totalCoresUsed", c1 + c2));
        need.push(("MiB RAM", "maxTotalRAMSize", "totalRAMUsed", r1 + r2));
    } else {
        lines.push("cores and RAM not checked: no flavor variable sizes every machine".into());
    }
    for (what, max_key, used_key, n) in need {
        let (Some(&max), used) = (limits.absolute.get(max_key), limits.absolute.get(used_key).copied().unwrap_or(0)) else {
            continue;
        };
        if max < 0 {
            lines.push(format!("quota {what}: unlimited"));
            continue;
        }
        let free = (max - used).max(0) as u64;
        if n > free {
            problems.push(format!("quota: {n} {what} needed, {free} free ({used} of {max} used)"));
        } else {
            lines.push(format!("quota {what}: {n} needed, {free} free"));
        }
    }
    if problems.is_empty() { Ok(lines) } else { Err(problems.join("; ")) }
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
        let ok = check(&req(3, 2, &vars), &f, &l, None, None).unwrap();
        assert!(ok.contains(&"quota cores: 14 needed, 14 free".to_string()), "{ok:?}");
        assert!(ok.contains(&"quota MiB RAM: 28672 needed, 28672 free".to_string()), "{ok:?}");
        let err = check(&req(3, 3, &vars), &f, &l, None, None).unwrap_err();
        assert_eq!(
            err,
            "quota: 6 instances needed, 5 free (5 of 10 used); quota: 18 cores needed, 14 free (6 of 20 used); quota: 36864 MiB RAM needed, 28672 free (0 of 28672 used)"
        );
    }

    #[test]
    fn unknown_flavors_and_images_are_named_with_what_there_is() {
        let f = [flavor("SCS-2V-4", 2, 4096), flavor("SCS-1V-2", 1, 2048)];
        let l = limits(&[("maxTotalInstances", -1), ("maxTotalCores", -1)]);
        let err = check(
            &req(1, 1, &[("worker_flavor", "SCS-8V-32"), ("controller_flavor", "SCS-2V-4")]),
            &f,
            &l,
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
            Some("i1"),
            Some(&[("i1".into(), "ubuntu-22.04".into())]),
        )
        .unwrap();
        assert!(
            ok.contains(&"quota instances: unlimited".to_string()) && ok.contains(&"image i1: present".to_string()),
            "{ok:?}"
        );
        // Not a flavor variable: ignored. Without flavors, only instances are counted.
        let ok = check(
            &req(1, 1, &[("cloud_name", "nope")]),
            &f,
            &limits(&[("maxTotalInstances", 2)]),
            None,
            None,
        )
        .unwrap();
        assert!(ok.iter().any(|l| l.starts_with("cores and RAM not checked")), "{ok:?}");
    }
}
