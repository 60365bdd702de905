//! Which OpenStack resources belong to a workload cluster `NS/NAME`: one rule per kind, each
//! returning why it matched (for the leak report) or `None`.
//!
//! The names follow what the controllers that create them write (read at these upstream
//! revisions; nothing is copied):
//! - Cluster API Provider OpenStack (CAPO), kubernetes-sigs/cluster-api-provider-openstack
//!   e52de58: `pkg/utils/names/names.go` (`ClusterResourceName` = `<NS>-<NAME>`,
//!   `GetDescription`), `pkg/cloud/services/networking/{network,router,securitygroups,port,
//!   floatingip}.go`, `pkg/cloud/services/loadbalancer/loadbalancer.go`,
//!   `pkg/cloud/services/compute/instance.go`, `controllers/openstackcluster_controller.go`.
//! - The OpenStack cloud controller manager and Cinder CSI, kubernetes/cloud-provider-openstack
//!   c453fb7: `pkg/openstack/loadbalancer.go` (`servicePrefix`, `lbFormat`, the floating IP
//!   description), `pkg/csi/cinder/controllerserver.go` (`cinderCSIClusterIDKey`).
//! - SCS cluster stacks, SovereignCloudStack/cluster-stacks a931cdb:
//!   `providers/openstack/scs/cluster-addon/{ccm,csi}/overwrite.yaml` set the CCM's cluster name
//!   and Cinder CSI's `clusterID` to the Cluster's `metadata.name`;
//!   `providers/openstack/scs/cluster-class/templates/image.yaml` and `scs2/image.yaml` are ORC
//!   Images per stack, not per cluster.
//! - ORC, k-orc/openstack-resource-controller c22784c: `internal/controllers/image/actuator.go`
//!   creates Glance images with the object's name, tags and properties only — no owner marker.

use std::collections::{HashMap, HashSet};

use super::resources::{FloatingIp, Image, LoadBalancer, Network, Port, Router, SecurityGroup, Server, ServerGroup, Subnet, Volume};

/// CAPO's prefix of network, subnet, router and API load balancer names.
const CAPO_NETWORK_PREFIX: &str = "k8s-clusterapi-cluster-";
/// CAPO's security group roles (`controlPlaneSuffix`, `workerSuffix`, `bastionSuffix`).
const CAPO_SECGROUP_ROLES: [&str; 3] = ["controlplane", "worker", "bastion"];
/// The Cinder CSI volume metadata key holding the cluster ID.
pub const CINDER_CSI_CLUSTER_KEY: &str = "cinder.csi.openstack.org/cluster";
/// What [`ClusterRef::capo_description`] puts before the cluster resource name.
const CAPO_DESCRIPTION_PREFIX: &str = "Created by cluster-api-provider-openstack cluster ";
/// OCCM's load balancer name prefix: `kube_service_<cluster>_<namespace>_<service>`.
const OCCM_LB_PREFIX: &str = "kube_service_";
/// OCCM's floating IP description: `<this> <ns>/<svc> from cluster <cluster>`.
const OCCM_FIP_DESCRIPTION: &str = "Floating IP for Kubernetes external service ";
/// Our own convention for images made for one cluster: ORC Images carry no owner (see above),
/// so the harness tags the images it creates for a cluster with `scs-e2e-cluster:<NS>/<NAME>`.
pub const IMAGE_TAG_PREFIX: &str = "scs-e2e-cluster:";

/// How sure a rule is that a resource is the cluster's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Evidence {
    /// A namespaced CAPO name or description, our image tag, or a relation to such a resource:
    /// no other cluster can have it.
    Proven,
    /// Only the cluster's `metadata.name` ties it to the cluster (the cloud controller manager
    /// and Cinder CSI know no namespace; machine name prefixes): a cluster of the same name in
    /// another namespace could own it as well.
    NameOnly,
}

/// A rule's verdict: why a resource is the cluster's, and how sure that is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The rule that matched, for the leak report.
    pub why: String,
    /// What the rule went by.
    pub evidence: Evidence,
}

impl Claim {
    fn proven(why: impl Into<String>) -> Option<Claim> {
        Some(Claim {
            why: why.into(),
            evidence: Evidence::Proven,
        })
    }

    fn by_name(why: impl Into<String>) -> Option<Claim> {
        Some(Claim {
            why: why.into(),
            evidence: Evidence::NameOnly,
        })
    }

    /// Through a related resource of the cluster (`id`): as sure as the claim on that one.
    fn through(why: impl Into<String>, rel: &Related, id: &str) -> Option<Claim> {
        Some(Claim {
            why: why.into(),
            evidence: if rel.name_only.contains(id) {
                Evidence::NameOnly
            } else {
                Evidence::Proven
            },
        })
    }
}

/// A workload cluster, as Cluster API names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClusterRef {
    /// The Cluster object's namespace in the management cluster.
    pub namespace: String,
    /// The Cluster object's `metadata.name`.
    pub name: String,
}

impl ClusterRef {
    /// The cluster `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Self {
        ClusterRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// CAPO's `ClusterResourceName`: the base of every name it gives cloud resources.
    pub fn resource_name(&self) -> String {
        format!("{}-{}", self.namespace, self.name)
    }

    /// Network, subnet and router (`getNetworkName`, `getSubnetName`, `getRouterName`).
    pub fn capo_network_name(&self) -> String {
        format!("{CAPO_NETWORK_PREFIX}{}", self.resource_name())
    }

    /// The API server load balancer (`getLoadBalancerName`, suffix `kubeapi`).
    pub fn capo_api_lb_name(&self) -> String {
        format!("{}-kubeapi", self.capo_network_name())
    }

    /// The managed security groups (`getSec{ControlPlane,Worker,Bastion}GroupName`).
    pub fn capo_security_groups(&self) -> Vec<String> {
        CAPO_SECGROUP_ROLES
            .iter()
            .map(|role| format!("k8s-cluster-{}-secgroup-{role}", self.resource_name()))
            .collect()
    }

    /// The description CAPO gives networks, subnets, routers, ports, floating IPs and the API
    /// load balancer (`names.GetDescription`).
    pub fn capo_description(&self) -> String {
        format!("{CAPO_DESCRIPTION_PREFIX}{}", self.resource_name())
    }

    /// Machines (and so servers) of a topology cluster are named `<NAME>-...`; the bastion is
    /// `<NAME>-bastion` (`bastionName(cluster.Name)`).
    fn machine_prefix(&self) -> String {
        format!("{}-", self.name)
    }

    /// The Glance tag the harness puts on images it makes for this cluster:
    /// `scs-e2e-cluster:<NS>/<NAME>` (see [`IMAGE_TAG_PREFIX`]).
    pub fn image_tag(&self) -> String {
        format!("{IMAGE_TAG_PREFIX}{}/{}", self.namespace, self.name)
    }
}

impl std::fmt::Display for ClusterRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What is already known to be the cluster's, for the rules that go by relation (a port of
/// our server, a subnet of our network, a floating IP on our port).
#[derive(Clone, Debug, Default)]
pub struct Related {
    /// Ids of the cluster's networks.
    pub networks: HashSet<String>,
    /// Ids of the cluster's servers.
    pub servers: HashSet<String>,
    /// Names of the cluster's servers (CAPO names ports and volumes after them).
    pub server_names: HashSet<String>,
    /// Names of the servers that are not the cluster's (a leftover volume named after one of
    /// them is theirs, even when the name has our prefix).
    pub other_server_names: HashSet<String>,
    /// Ids of the servers that are not the cluster's.
    pub other_servers: HashSet<String>,
    /// Ids of the cluster's ports, and of its load balancers' VIP ports.
    pub ports: HashSet<String>,
    /// Every network's name by id (to tell another cluster's network from ours).
    pub network_names: HashMap<String, String>,
    /// Every port's network by id (where a load balancer's VIP or a floating IP sits).
    pub port_networks: HashMap<String, String>,
    /// Ids of the cluster's resources that only its name ties to it ([`Evidence::NameOnly`]);
    /// what is claimed through them is no surer.
    pub name_only: HashSet<String>,
}

impl Related {
    /// The port sits on another CAPO cluster's network.
    fn port_on_other_capo_network(&self, c: &ClusterRef, port: &str) -> bool {
        self.port_networks
            .get(port)
            .and_then(|n| self.network_names.get(n))
            .is_some_and(|name| is_other_capo_network(c, name))
    }
}

/// The CAPO cluster resource name (`<NS>-<NAME>`, see [`ClusterRef::resource_name`]) that a
/// resource's name or description carries, if it is one CAPO made.
pub fn capo_resource_name(name_or_description: &str) -> Option<&str> {
    let s = name_or_description;
    if let Some(r) = s.strip_prefix(CAPO_NETWORK_PREFIX) {
        return Some(r.strip_suffix("-kubeapi").unwrap_or(r));
    }
    if let Some((r, role)) = s.strip_prefix("k8s-cluster-").and_then(|r| r.rsplit_once("-secgroup-")) {
        return CAPO_SECGROUP_ROLES.contains(&role).then_some(r);
    }
    s.strip_prefix(CAPO_DESCRIPTION_PREFIX)
}

/// The namespace of another Cluster API cluster with `c`'s name, if `resource_name` (a CAPO
/// cluster resource name) can be one: `<OTHER-NS>-<NAME>`. A cluster `x/foo-alpha` reads as
/// `x-foo/alpha` here too; for telling apart, erring towards "maybe another" is the safe side.
pub fn namesake<'a>(c: &ClusterRef, resource_name: &'a str) -> Option<&'a str> {
    let ns = resource_name.strip_suffix(c.name.as_str())?.strip_suffix('-')?;
    (!ns.is_empty() && ns != c.namespace).then_some(ns)
}

fn is_other_capo_network(c: &ClusterRef, network_name: &str) -> bool {
    network_name.starts_with(CAPO_NETWORK_PREFIX) && network_name != c.capo_network_name()
}

fn is_other_capo_secgroup(c: &ClusterRef, name: &str) -> bool {
    name.starts_with("k8s-cluster-") && name.contains("-secgroup-") && !c.capo_security_groups().iter().any(|g| g == name)
}

/// Networks: CAPO's cluster network, by name.
pub fn network(c: &ClusterRef, n: &Network) -> Option<Claim> {
    if n.name == c.capo_network_name() {
        Claim::proven("CAPO cluster network name")
    } else {
        None
    }
}

/// Subnets: CAPO's cluster subnet by name, or any subnet of the cluster's networks.
pub fn subnet(c: &ClusterRef, s: &Subnet, rel: &Related) -> Option<Claim> {
    if s.name == c.capo_network_name() {
        Claim::proven("CAPO cluster subnet name")
    } else if rel.networks.contains(&s.network_id) {
        Claim::through(format!("subnet of the cluster's network {}", s.network_id), rel, &s.network_id)
    } else {
        None
    }
}

/// Routers: CAPO's cluster router, by name.
pub fn router(c: &ClusterRef, r: &Router) -> Option<Claim> {
    if r.name == c.capo_network_name() {
        Claim::proven("CAPO cluster router name")
    } else {
        None
    }
}

/// Security groups: CAPO's managed control plane, worker and bastion groups, by name.
pub fn security_group(c: &ClusterRef, g: &SecurityGroup) -> Option<Claim> {
    if c.capo_security_groups().contains(&g.name) {
        Claim::proven("CAPO managed security group name")
    } else {
        None
    }
}

/// Load balancers (Octavia): CAPO's API server load balancer, or one the cloud controller
/// manager made for a `LoadBalancer` Service of a cluster with this name
/// (`kube_service_<NAME>_...`): proven when its VIP is on the cluster's network, another's when
/// on another CAPO cluster's network, else the name alone says so.
pub fn load_balancer(c: &ClusterRef, lb: &LoadBalancer, rel: &Related) -> Option<Claim> {
    if lb.name == c.capo_api_lb_name() {
        return Claim::proven("CAPO API server load balancer name");
    }
    // Kubernetes names have no `_`, so `kube_service_<NAME>_` cannot be a cluster with a longer name.
    if !lb.name.starts_with(&format!("{OCCM_LB_PREFIX}{}_", c.name)) {
        return None;
    }
    let vip_network = lb
        .vip_network_id
        .as_deref()
        .or_else(|| lb.vip_port_id.as_deref().and_then(|p| rel.port_networks.get(p)).map(String::as_str));
    match vip_network {
        Some(n) if rel.networks.contains(n) => Claim::through(
            format!("cloud controller manager Service load balancer on the cluster's network {n}"),
            rel,
            n,
        ),
        Some(n) if rel.network_names.get(n).is_some_and(|name| is_other_capo_network(c, name)) => None,
        _ => Claim::by_name(format!(
            "cloud controller manager Service load balancer of a cluster named {}",
            c.name
        )),
    }
}

/// Servers: on the cluster's network or in its security groups; else named after its machines,
/// unless they sit on another CAPO cluster's network or groups (cluster `a` must not claim
/// `a-b`'s machines).
pub fn server(c: &ClusterRef, s: &Server) -> Option<Claim> {
    let net = c.capo_network_name();
    if s.addresses.contains_key(&net) {
        return Claim::proven(format!("attached to the cluster network {net}"));
    }
    let groups = c.capo_security_groups();
    if let Some(g) = s.security_groups.iter().find(|g| groups.contains(&g.name)) {
        return Claim::proven(format!("in the cluster security group {}", g.name));
    }
    let foreign =
        s.addresses.keys().any(|n| is_other_capo_network(c, n)) || s.security_groups.iter().any(|g| is_other_capo_secgroup(c, &g.name));
    if s.name.starts_with(&c.machine_prefix()) && !foreign {
        Claim::by_name(format!("named after the cluster's machines ({}*)", c.machine_prefix()))
    } else {
        None
    }
}

/// Ports we may delete directly: those of our servers, on our networks, or made by CAPO for the
/// cluster. Neutron's and Octavia's own ports go with their owners.
pub fn port(c: &ClusterRef, p: &Port, rel: &Related) -> Option<Claim> {
    if p.is_service_owned() {
        return None;
    }
    if rel.servers.contains(&p.device_id) {
        Claim::through(format!("port of the cluster's server {}", p.device_id), rel, &p.device_id)
    } else if rel.networks.contains(&p.network_id) {
        Claim::through(format!("on the cluster's network {}", p.network_id), rel, &p.network_id)
    } else if p.description == c.capo_description() {
        Claim::proven("CAPO port description")
    } else if rel.server_names.iter().any(|s| p.name.starts_with(&format!("{s}-")))
        || (p.name.starts_with(&c.machine_prefix()) && !rel.network_names.get(&p.network_id).is_some_and(|n| is_other_capo_network(c, n)))
    {
        // CAPO names ports `<server>-<index|suffix>` (`getPortName`); they outlive the server.
        Claim::by_name(format!("named after the cluster's machines ({}*)", c.machine_prefix()))
    } else {
        None
    }
}

/// Floating IPs: CAPO's by description, any bound to one of the cluster's ports, or the cloud
/// controller manager's for Services of a cluster with this name (by description, unless bound
/// to a port on another CAPO cluster's network).
pub fn floating_ip(c: &ClusterRef, f: &FloatingIp, rel: &Related) -> Option<Claim> {
    if f.description == c.capo_description() {
        return Claim::proven("CAPO floating IP description");
    }
    if let Some(p) = f.port_id.as_deref().filter(|p| rel.ports.contains(*p)) {
        return Claim::through(format!("bound to the cluster's port {p}"), rel, p);
    }
    if let Some(rest) = f.description.strip_prefix(OCCM_FIP_DESCRIPTION)
        && rest.ends_with(&format!(" from cluster {}", c.name))
        && !f.port_id.as_deref().is_some_and(|p| rel.port_on_other_capo_network(c, p))
    {
        return Claim::by_name(format!(
            "cloud controller manager Service floating IP of a cluster named {}",
            c.name
        ));
    }
    None
}

/// Server groups: holding one of the cluster's servers, or named `<NAME>-...` and holding
/// none of another cluster's servers.
pub fn server_group(c: &ClusterRef, g: &ServerGroup, rel: &Related) -> Option<Claim> {
    if let Some(m) = g.members.iter().find(|m| rel.servers.contains(*m)) {
        return Claim::through(format!("holds the cluster's server {m}"), rel, m);
    }
    // The SCS stacks take server group ids as variables (`controller_server_group_id`,
    // `worker_server_group_id`); whoever makes them for a cluster names them `<NAME>-...`.
    // A group holding another cluster's servers is theirs, whatever its name.
    if g.name.starts_with(&c.machine_prefix()) && !g.members.iter().any(|m| rel.other_servers.contains(m)) {
        Claim::by_name(format!("server group named {}*", c.machine_prefix()))
    } else {
        None
    }
}

/// Volumes (Cinder): attached to a server of the cluster; else, unless attached to other
/// servers only, Cinder CSI's with this cluster's name in their metadata, or a CAPO
/// root/additional volume whose description names one of its servers or machines.
pub fn volume(c: &ClusterRef, v: &Volume, rel: &Related) -> Option<Claim> {
    if let Some(a) = v.attachments.iter().find(|a| rel.servers.contains(&a.server_id)) {
        return Claim::through(format!("attached to the cluster's server {}", a.server_id), rel, &a.server_id);
    }
    if !v.attachments.is_empty() && v.attachments.iter().all(|a| rel.other_servers.contains(&a.server_id)) {
        // In use by servers that are not the cluster's: theirs, whatever it says.
        return None;
    }
    if v.metadata.get(CINDER_CSI_CLUSTER_KEY) == Some(&c.name) {
        return Claim::by_name(format!("Cinder CSI volume ({CINDER_CSI_CLUSTER_KEY}={})", c.name));
    }
    // CAPO root and additional volumes: `<server>-<suffix>`, described `Root volume for
    // <server>` / `Additional block device for <server>`.
    let desc = v.description.as_deref().unwrap_or_default();
    let server = desc
        .strip_prefix("Root volume for ")
        .or_else(|| desc.strip_prefix("Additional block device for "))?;
    if rel.server_names.contains(server) || (server.starts_with(&c.machine_prefix()) && !rel.other_server_names.contains(server)) {
        Claim::by_name(format!("CAPO volume of server {server}"))
    } else {
        None
    }
}

/// Images (Glance): those tagged with the cluster's [`ClusterRef::image_tag`].
pub fn image(c: &ClusterRef, i: &Image) -> Option<Claim> {
    let tag = c.image_tag();
    if i.tags.contains(&tag) {
        Claim::proven(format!("tagged {tag}"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};

    use super::super::resources::{NamedRef, VolumeAttachment};
    use super::*;

    fn a() -> ClusterRef {
        ClusterRef::new("default", "alpha")
    }

    #[test]
    fn capo_names() {
        let c = a();
        assert_eq!(c.capo_network_name(), "k8s-clusterapi-cluster-default-alpha");
        assert_eq!(c.capo_api_lb_name(), "k8s-clusterapi-cluster-default-alpha-kubeapi");
        assert_eq!(
            c.capo_security_groups(),
            [
                "k8s-cluster-default-alpha-secgroup-controlplane",
                "k8s-cluster-default-alpha-secgroup-worker",
                "k8s-cluster-default-alpha-secgroup-bastion"
            ]
        );
        assert_eq!(
            c.capo_description(),
            "Created by cluster-api-provider-openstack cluster default-alpha"
        );
    }

    #[test]
    fn network_subnet_router_and_security_groups_go_by_capo_names() {
        let c = a();
        let net = |name: &str| Network {
            id: "n".into(),
            name: name.into(),
            ..Default::default()
        };
        assert!(network(&c, &net("k8s-clusterapi-cluster-default-alpha")).is_some());
        assert!(network(&c, &net("k8s-clusterapi-cluster-default-alpha-2")).is_none());
        assert!(network(&c, &net("k8s-clusterapi-cluster-other-alpha")).is_none());
        let rel = Related {
            networks: HashSet::from(["n1".to_string()]),
            ..Default::default()
        };
        let sub = |name: &str, net: &str| Subnet {
            id: "s".into(),
            name: name.into(),
            network_id: net.into(),
            ..Default::default()
        };
        assert!(subnet(&c, &sub("anything", "n1"), &rel).unwrap().why.contains("n1"));
        assert!(subnet(&c, &sub("k8s-clusterapi-cluster-default-alpha", "n9"), &rel).is_some());
        assert!(subnet(&c, &sub("x", "n9"), &rel).is_none());
        let r = |name: &str| Router {
            id: "r".into(),
            name: name.into(),
            ..Default::default()
        };
        assert!(router(&c, &r("k8s-clusterapi-cluster-default-alpha")).is_some());
        assert!(router(&c, &r("k8s-clusterapi-cluster-default-beta")).is_none());
        let g = |name: &str| SecurityGroup {
            id: "g".into(),
            name: name.into(),
            ..Default::default()
        };
        assert!(security_group(&c, &g("k8s-cluster-default-alpha-secgroup-worker")).is_some());
        assert!(security_group(&c, &g("k8s-cluster-default-alpha-secgroup-other")).is_none());
        assert!(security_group(&c, &g("k8s-cluster-default-alpha-2-secgroup-worker")).is_none());
        assert!(security_group(&c, &g("default")).is_none());
    }

    #[test]
    fn load_balancers_of_capo_and_the_cloud_controller_manager() {
        let c = a();
        let rel = Related {
            networks: HashSet::from(["net-a".to_string()]),
            network_names: HashMap::from([
                ("net-a".to_string(), c.capo_network_name()),
                ("net-b".to_string(), "k8s-clusterapi-cluster-team-b-alpha".to_string()),
                ("shared".to_string(), "shared".to_string()),
            ]),
            port_networks: HashMap::from([("vip-b".to_string(), "net-b".to_string())]),
            ..Default::default()
        };
        let lb = |name: &str, net: Option<&str>, port: Option<&str>| LoadBalancer {
            id: "l".into(),
            name: name.into(),
            vip_network_id: net.map(String::from),
            vip_port_id: port.map(String::from),
            ..Default::default()
        };
        let evidence = |l: LoadBalancer| load_balancer(&c, &l, &rel).map(|claim| claim.evidence);
        assert_eq!(
            evidence(lb("k8s-clusterapi-cluster-default-alpha-kubeapi", None, None)),
            Some(Evidence::Proven)
        );
        assert_eq!(
            evidence(lb("kube_service_alpha_ingress_nginx", Some("net-a"), None)),
            Some(Evidence::Proven),
            "its VIP is on the cluster's network"
        );
        assert_eq!(
            evidence(lb("kube_service_alpha_ingress_nginx", Some("shared"), None)),
            Some(Evidence::NameOnly)
        );
        assert_eq!(
            evidence(lb("kube_service_alpha_ingress_nginx", None, None)),
            Some(Evidence::NameOnly)
        );
        assert_eq!(
            evidence(lb("kube_service_alpha_ingress_nginx", Some("net-b"), None)),
            None,
            "team-b/alpha's"
        );
        assert_eq!(
            evidence(lb("kube_service_alpha_ingress_nginx", None, Some("vip-b"))),
            None,
            "team-b/alpha's, by its VIP port"
        );
        assert_eq!(evidence(lb("kube_service_alpha-2_ingress_nginx", None, None)), None);
        assert_eq!(evidence(lb("kube_service_beta_default_web", None, None)), None);
        assert_eq!(evidence(lb("alpha", None, None)), None);
    }

    #[test]
    fn namesakes_are_read_from_capo_names_and_descriptions() {
        let c = a();
        let rn = |s| capo_resource_name(s);
        assert_eq!(rn("k8s-clusterapi-cluster-team-b-alpha"), Some("team-b-alpha"));
        assert_eq!(rn("k8s-clusterapi-cluster-team-b-alpha-kubeapi"), Some("team-b-alpha"));
        assert_eq!(rn("k8s-cluster-team-b-alpha-secgroup-worker"), Some("team-b-alpha"));
        assert_eq!(rn("k8s-cluster-team-b-alpha-secgroup-mine"), None);
        assert_eq!(
            rn("Created by cluster-api-provider-openstack cluster team-b-alpha"),
            Some("team-b-alpha")
        );
        assert_eq!(rn("shared"), None);
        assert_eq!(namesake(&c, "team-b-alpha"), Some("team-b"));
        assert_eq!(namesake(&c, "default-alpha"), None, "itself");
        assert_eq!(namesake(&c, "default-alpha-2"), None);
        assert_eq!(namesake(&c, "default-beta"), None);
        assert_eq!(namesake(&c, "alpha"), None);
        assert_eq!(namesake(&c, "-alpha"), None);
    }

    #[test]
    fn what_is_related_to_a_name_only_claim_is_no_surer() {
        let c = a();
        let mut rel = Related {
            servers: HashSet::from(["by-net".to_string(), "by-name".to_string()]),
            name_only: HashSet::from(["by-name".to_string()]),
            ..Default::default()
        };
        let p = |dev: &str| Port {
            id: "p".into(),
            device_id: dev.into(),
            device_owner: "compute:nova".into(),
            ..Default::default()
        };
        assert_eq!(port(&c, &p("by-net"), &rel).unwrap().evidence, Evidence::Proven);
        assert_eq!(port(&c, &p("by-name"), &rel).unwrap().evidence, Evidence::NameOnly);
        rel.other_servers.insert("theirs".into());
        let v = |att: &str, meta: &[(&str, &str)]| Volume {
            id: "v".into(),
            attachments: vec![VolumeAttachment { server_id: att.into() }],
            metadata: meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
            ..Default::default()
        };
        assert_eq!(volume(&c, &v("by-name", &[]), &rel).unwrap().evidence, Evidence::NameOnly);
        assert!(
            volume(&c, &v("theirs", &[(CINDER_CSI_CLUSTER_KEY, "alpha")]), &rel).is_none(),
            "in use by another cluster's server"
        );
        assert_eq!(
            volume(&c, &v("gone", &[(CINDER_CSI_CLUSTER_KEY, "alpha")]), &rel).unwrap().evidence,
            Evidence::NameOnly,
            "attached to a server that no longer exists"
        );
    }

    fn srv(name: &str, nets: &[&str], groups: &[&str]) -> Server {
        Server {
            id: format!("id-{name}"),
            name: name.into(),
            addresses: nets.iter().map(|n| (n.to_string(), Value::Array(vec![]))).collect(),
            security_groups: groups.iter().map(|g| NamedRef { name: g.to_string() }).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn servers_by_network_group_or_machine_name_but_not_a_longer_clusters() {
        let c = a();
        assert!(
            server(&c, &srv("x", &["k8s-clusterapi-cluster-default-alpha"], &[]))
                .unwrap()
                .why
                .contains("network")
        );
        assert!(
            server(&c, &srv("x", &["ext"], &["k8s-cluster-default-alpha-secgroup-worker"]))
                .unwrap()
                .why
                .contains("security group")
        );
        assert!(
            server(&c, &srv("alpha-md-0-abcde-xyz", &["shared"], &["default"]))
                .unwrap()
                .why
                .contains("alpha-*")
        );
        assert!(server(&c, &srv("alpha-bastion", &[], &[])).is_some());
        // `alpha-2` is another cluster whose machines also start with `alpha-`.
        assert!(server(&c, &srv("alpha-2-md-0-xyz", &["k8s-clusterapi-cluster-default-alpha-2"], &[])).is_none());
        assert!(
            server(
                &c,
                &srv("alpha-2-md-0-xyz", &["shared"], &["k8s-cluster-default-alpha-2-secgroup-worker"])
            )
            .is_none()
        );
        assert!(server(&c, &srv("beta-md-0", &["shared"], &[])).is_none());
        assert!(server(&c, &srv("alphabet", &[], &[])).is_none());
    }

    #[test]
    fn ports_floating_ips_and_volumes_by_relation_or_marker() {
        let c = a();
        let rel = Related {
            networks: HashSet::from(["net-a".to_string()]),
            servers: HashSet::from(["srv-a".to_string()]),
            server_names: HashSet::from(["alpha-cp-1".to_string()]),
            other_server_names: HashSet::from(["alpha-2-cp-1".to_string()]),
            ports: HashSet::from(["port-a".to_string()]),
            other_servers: HashSet::new(),
            network_names: HashMap::from([("net-b".to_string(), "k8s-clusterapi-cluster-default-alpha-2".to_string())]),
            ..Default::default()
        };
        let p = |name: &str, net: &str, dev: &str, owner: &str, desc: &str| Port {
            id: "p".into(),
            name: name.into(),
            network_id: net.into(),
            device_id: dev.into(),
            device_owner: owner.into(),
            description: desc.into(),
            ..Default::default()
        };
        assert!(
            port(&c, &p("", "shared", "srv-a", "compute:nova", ""), &rel)
                .unwrap()
                .why
                .contains("server")
        );
        assert!(port(&c, &p("", "net-a", "", "", ""), &rel).unwrap().why.contains("network"));
        assert!(port(&c, &p("", "shared", "", "", &c.capo_description()), &rel).is_some());
        assert!(port(&c, &p("alpha-cp-1-0", "shared", "", "", ""), &rel).is_some());
        assert!(port(&c, &p("alpha-2-md-0", "net-b", "", "", ""), &rel).is_none());
        assert!(
            port(&c, &p("", "net-a", "r", "network:router_interface", ""), &rel).is_none(),
            "router interfaces go with the router"
        );
        assert!(port(&c, &p("", "net-a", "d", "network:dhcp", ""), &rel).is_none());
        assert!(port(&c, &p("web", "shared", "other", "compute:nova", ""), &rel).is_none());

        let f = |desc: &str, port: Option<&str>| FloatingIp {
            id: "f".into(),
            description: desc.into(),
            port_id: port.map(String::from),
            ..Default::default()
        };
        assert!(floating_ip(&c, &f(&c.capo_description(), None), &rel).is_some());
        assert!(
            floating_ip(
                &c,
                &f("Floating IP for Kubernetes external service default/web from cluster alpha", None),
                &rel
            )
            .is_some()
        );
        assert!(
            floating_ip(
                &c,
                &f("Floating IP for Kubernetes external service default/web from cluster beta", None),
                &rel
            )
            .is_none()
        );
        assert!(floating_ip(&c, &f("", Some("port-a")), &rel).is_some());
        assert!(floating_ip(&c, &f("mine", Some("port-z")), &rel).is_none());

        let v = |meta: &[(&str, &str)], att: &[&str], desc: Option<&str>| Volume {
            id: "v".into(),
            metadata: meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
            attachments: att.iter().map(|s| VolumeAttachment { server_id: s.to_string() }).collect(),
            description: desc.map(String::from),
            ..Default::default()
        };
        assert!(volume(&c, &v(&[(CINDER_CSI_CLUSTER_KEY, "alpha")], &[], None), &rel).is_some());
        assert!(volume(&c, &v(&[(CINDER_CSI_CLUSTER_KEY, "beta")], &[], None), &rel).is_none());
        assert!(volume(&c, &v(&[], &["srv-a"], None), &rel).is_some());
        assert!(volume(&c, &v(&[], &[], Some("Root volume for alpha-cp-1")), &rel).is_some());
        assert!(volume(&c, &v(&[], &[], Some("Root volume for beta-cp-1")), &rel).is_none());
        assert!(
            volume(&c, &v(&[], &[], Some("Root volume for alpha-cp-9")), &rel).is_some(),
            "its server is gone already"
        );
        assert!(volume(&c, &v(&[], &[], Some("Root volume for alpha-2-cp-1")), &rel).is_none());
        assert!(volume(&c, &v(&[], &[], None), &rel).is_none());
    }

    #[test]
    fn server_groups_and_images() {
        let c = a();
        let g = |name: &str, members: &[&str]| ServerGroup {
            id: "g".into(),
            name: name.into(),
            members: members.iter().map(|m| m.to_string()).collect(),
        };
        let rel = Related {
            servers: HashSet::from(["mine".to_string()]),
            other_servers: HashSet::from(["theirs".to_string()]),
            ..Default::default()
        };
        assert!(server_group(&c, &g("alpha-workers", &[]), &rel).is_some());
        assert!(server_group(&c, &g("beta-workers", &[]), &rel).is_none());
        assert!(server_group(&c, &g("anti-affinity", &["mine"]), &rel).unwrap().why.contains("mine"));
        assert!(server_group(&c, &g("alpha-2-workers", &["theirs"]), &rel).is_none());
        let img: Image = serde_json::from_value(
            json!({"id": "i", "name": "ubuntu-capi-image-v1.33.1", "tags": ["scs-e2e-cluster:default/alpha"], "os_distro": "ubuntu"}),
        )
        .unwrap();
        assert!(image(&c, &img).is_some());
        assert_eq!(img.properties.get("os_distro"), Some(&json!("ubuntu")));
        let shared: Image = serde_json::from_value(json!({"id": "i", "name": "ubuntu-capi-image-v1.33.1", "tags": []})).unwrap();
        assert!(image(&c, &shared).is_none(), "a stack's shared image is no cluster's");
    }
}
