//! The leak check and `scs-e2e cleanup` against a real Keystone (login, catalog, token checks)
//! whose catalog points at loopback stand-ins for Nova, Neutron, Octavia, Cinder and Glance
//! (`common/fake_openstack.rs`).

use crate::common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Output;

use common::fake_openstack::{Coll, FakeOpenStack};
use common::keystone::{self, ADMIN_PASSWORD, Keystone, admin_clouds};
use scs_e2e::env::openstack::cleanup::{Kind, inventory, leak_testcase, leaks};
use scs_e2e::env::openstack::clouds::{Lookup, load};
use scs_e2e::env::openstack::identity::Session;
use scs_e2e::env::openstack::ownership::ClusterRef;
use scs_e2e::env::openstack::resources::OpenStack;
use serde_json::json;

struct Cloud {
    fake: FakeOpenStack,
    keystone: Keystone,
    dir: tempfile::TempDir,
}

/// Fake services first (Keystone's catalog needs their port), then Keystone, then the fake
/// learns where to check tokens.
async fn cloud() -> Cloud {
    let fake = FakeOpenStack::start().await;
    let keystone = keystone::start(3600, Some(&fake.catalog_spec())).await;
    fake.set_keystone(&keystone.url());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("clouds.yaml"), admin_clouds(keystone.port, ADMIN_PASSWORD)).unwrap();
    Cloud { fake, keystone, dir }
}

impl Cloud {
    async fn session(&self) -> Session {
        let c = load(&Lookup {
            cwd: self.dir.path().to_path_buf(),
            etc: self.dir.path().join("none"),
            ..Default::default()
        })
        .unwrap();
        Session::login(&c).await.unwrap()
    }

    /// Runs the real binary with this cloud's clouds.yaml (and nothing from the user's).
    async fn scs_e2e(&self, clouds_yaml: Option<&Path>, args: &[&str]) -> Output {
        let file = clouds_yaml
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.dir.path().join("clouds.yaml"));
        tokio::process::Command::new(env!("CARGO_BIN_EXE_scs-e2e"))
            .args(args)
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env("OS_CLIENT_CONFIG_FILE", file)
            .env_remove("OS_CLOUD")
            .env_remove("OS_REGION_NAME")
            .env_remove("OS_CLIENT_SECURE_FILE")
            .env_remove("OS_PASSWORD")
            .output()
            .await
            .unwrap()
    }
}

/// What one cluster has in the cloud, as CAPO, the cloud controller manager and Cinder CSI make
/// it: the ids the leak check must find, and the service-owned ports that go with their owners.
#[derive(Default)]
struct Seeded {
    owned: BTreeSet<(Kind, String)>,
    service_ports: Vec<String>,
    servers: Vec<String>,
}

fn seed(f: &FakeOpenStack, ns: &str, name: &str) -> Seeded {
    let c = ClusterRef::new(ns, name);
    let net_name = c.capo_network_name();
    let desc = c.capo_description();
    let mut s = Seeded::default();
    let mut own = |k: Kind, id: &str| {
        s.owned.insert((k, id.to_string()));
    };
    let net = f.add(Coll::Networks, json!({"name": net_name, "description": desc}));
    own(Kind::Network, &net);
    let sub = f.add(Coll::Subnets, json!({"name": net_name, "network_id": net, "cidr": "10.8.0.0/20"}));
    own(Kind::Subnet, &sub);
    let router = f.add(
        Coll::Routers,
        json!({"name": net_name, "description": desc, "external_gateway_info": {"network_id": "ext-net", "enable_snat": true}}),
    );
    own(Kind::Router, &router);
    let fixed = json!([{"subnet_id": sub, "ip_address": "10.8.0.1"}]);
    let iface = f.add(
        Coll::Ports,
        json!({"name": "", "network_id": net, "device_id": router, "device_owner": "network:router_interface", "fixed_ips": fixed}),
    );
    let dhcp = f.add(
        Coll::Ports,
        json!({"name": "", "network_id": net, "device_id": "dhcp", "device_owner": "network:dhcp", "fixed_ips": [{"subnet_id": sub, "ip_address": "10.8.0.2"}]}),
    );
    let sgs: Vec<String> = c.capo_security_groups()[..2]
        .iter()
        .map(|g| f.add(Coll::SecurityGroups, json!({"name": g, "description": "Cluster API managed group"})))
        .collect();
    for g in &sgs {
        own(Kind::SecurityGroup, g);
    }
    let mut servers = Vec::new();
    // Machine names end in random characters: two clusters of one name do not share them.
    let salt = &format!("{:08x}", ns.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32)))[..4];
    for (i, m) in [format!("{name}-control-plane-7x2{salt}"), format!("{name}-md-0-5b8c9-zt4{salt}")]
        .iter()
        .enumerate()
    {
        let sg = &c.capo_security_groups()[i];
        let id = f.add(
            Coll::Servers,
            json!({"name": m, "status": "ACTIVE", "addresses": {net_name.clone(): [{"addr": format!("10.8.0.{}", 10 + i), "version": 4}]},
                   "security_groups": [{"name": sg}], "metadata": {}}),
        );
        own(Kind::Server, &id);
        let port = f.add(
            Coll::Ports,
            json!({"name": format!("{m}-0"), "description": desc, "network_id": net, "device_id": id, "device_owner": "compute:nova",
                   "security_groups": [sgs[i]], "fixed_ips": [{"subnet_id": sub, "ip_address": format!("10.8.0.{}", 10 + i)}]}),
        );
        own(Kind::Port, &port);
        servers.push((id, m.clone(), port));
    }
    // A port CAPO made for a machine that is gone: detached, still on the network.
    let stray = f.add(
        Coll::Ports,
        json!({"name": format!("{name}-md-0-old-0"), "description": desc, "network_id": net, "device_id": "", "device_owner": "",
               "security_groups": [sgs[1]], "fixed_ips": [{"subnet_id": sub, "ip_address": "10.8.0.40"}]}),
    );
    own(Kind::Port, &stray);
    let api_vip = f.add(
        Coll::Ports,
        json!({"name": "octavia-lb-api", "network_id": net, "device_owner": "Octavia", "device_id": "lb", "fixed_ips": [{"subnet_id": sub, "ip_address": "10.8.0.5"}]}),
    );
    let api_lb = f.add(
        Coll::LoadBalancers,
        json!({"name": c.capo_api_lb_name(), "description": desc, "provisioning_status": "ACTIVE", "vip_port_id": api_vip, "vip_network_id": net, "listeners": [{"id": "l1"}]}),
    );
    own(Kind::LoadBalancer, &api_lb);
    let svc_vip = f.add(
        Coll::Ports,
        json!({"name": "octavia-lb-web", "network_id": net, "device_owner": "Octavia", "device_id": "lb2", "fixed_ips": [{"subnet_id": sub, "ip_address": "10.8.0.6"}]}),
    );
    let svc_lb = f.add(
        Coll::LoadBalancers,
        json!({"name": format!("kube_service_{name}_default_web"), "description": format!("Kubernetes external service default/web from cluster {name}"),
               "provisioning_status": "ACTIVE", "vip_port_id": svc_vip, "vip_network_id": net, "listeners": [{"id": "l2"}]}),
    );
    own(Kind::LoadBalancer, &svc_lb);
    for (d, port) in [
        (desc.clone(), Some(api_vip.clone())),
        (
            format!("Floating IP for Kubernetes external service default/web from cluster {name}"),
            Some(svc_vip.clone()),
        ),
        // Bound to a server's port, with no telling description.
        (String::new(), Some(servers[0].2.clone())),
    ] {
        let id = f.add(
            Coll::FloatingIps,
            json!({"description": d, "port_id": port, "floating_ip_address": "203.0.113.9"}),
        );
        own(Kind::FloatingIp, &id);
    }
    let group = f.add(
        Coll::ServerGroups,
        json!({"name": format!("{name}-workers"), "policies": ["soft-anti-affinity"], "members": [servers[1].0]}),
    );
    own(Kind::ServerGroup, &group);
    let pv = f.add(
        Coll::Volumes,
        json!({"name": "pvc-1f0e", "status": "available", "metadata": {"cinder.csi.openstack.org/cluster": name, "csi.storage.k8s.io/pvc/name": "data"}, "attachments": []}),
    );
    own(Kind::Volume, &pv);
    let root = f.add(
        Coll::Volumes,
        json!({"name": format!("{}-root", servers[0].1), "description": format!("Root volume for {}", servers[0].1), "status": "in-use",
               "metadata": {}, "attachments": [{"server_id": servers[0].0}]}),
    );
    own(Kind::Volume, &root);
    let image = f.add(
        Coll::Images,
        json!({"name": "ubuntu-capi-image-v1.33.1", "status": "active", "tags": [c.image_tag()], "os_distro": "ubuntu"}),
    );
    own(Kind::Image, &image);
    s.service_ports = vec![iface, dhcp, api_vip, svc_vip];
    s.servers = servers.into_iter().map(|(id, _, _)| id).collect();
    s
}

/// Resources that are nobody's cluster's.
fn seed_unrelated(f: &FakeOpenStack) -> Vec<(Coll, String)> {
    let shared = f.add(Coll::Networks, json!({"name": "shared", "description": ""}));
    let web = f.add(
        Coll::Servers,
        json!({"name": "web-1", "status": "ACTIVE", "addresses": {"shared": []}, "security_groups": [{"name": "default"}]}),
    );
    vec![
        (Coll::Networks, shared.clone()),
        (Coll::Servers, web.clone()),
        (
            Coll::Ports,
            f.add(
                Coll::Ports,
                json!({"name": "web-1-port", "network_id": shared, "device_id": web, "device_owner": "compute:nova"}),
            ),
        ),
        (Coll::SecurityGroups, f.add(Coll::SecurityGroups, json!({"name": "default"}))),
        (
            Coll::Images,
            f.add(
                Coll::Images,
                json!({"name": "ubuntu-capi-image-v1.33.1", "status": "active", "tags": []}),
            ),
        ),
        (
            Coll::Volumes,
            f.add(
                Coll::Volumes,
                json!({"name": "pvc-x", "status": "available", "metadata": {"cinder.csi.openstack.org/cluster": "gamma"}}),
            ),
        ),
        (
            Coll::FloatingIps,
            f.add(Coll::FloatingIps, json!({"description": "ops jump host", "port_id": null})),
        ),
        (
            Coll::LoadBalancers,
            f.add(
                Coll::LoadBalancers,
                json!({"name": "kube_service_gamma_default_web", "listeners": []}),
            ),
        ),
        (
            Coll::ServerGroups,
            f.add(Coll::ServerGroups, json!({"name": "db-anti-affinity", "members": [web]})),
        ),
    ]
}

fn found(l: &[scs_e2e::env::openstack::cleanup::Leftover]) -> BTreeSet<(Kind, String)> {
    l.iter().map(|x| (x.kind, x.id.clone())).collect()
}

const ALL_COLLS: [Coll; 11] = [
    Coll::Servers,
    Coll::ServerGroups,
    Coll::Ports,
    Coll::FloatingIps,
    Coll::SecurityGroups,
    Coll::Networks,
    Coll::Subnets,
    Coll::Routers,
    Coll::LoadBalancers,
    Coll::Volumes,
    Coll::Images,
];

fn everything(f: &FakeOpenStack) -> BTreeSet<(Coll, String)> {
    ALL_COLLS
        .iter()
        .flat_map(|c| f.ids(*c).into_iter().map(move |id| (*c, id)))
        .collect()
}

fn coll_of(k: Kind) -> Coll {
    match k {
        Kind::LoadBalancer => Coll::LoadBalancers,
        Kind::Server => Coll::Servers,
        Kind::FloatingIp => Coll::FloatingIps,
        Kind::Port => Coll::Ports,
        Kind::Router => Coll::Routers,
        Kind::Subnet => Coll::Subnets,
        Kind::Network => Coll::Networks,
        Kind::SecurityGroup => Coll::SecurityGroups,
        Kind::ServerGroup => Coll::ServerGroups,
        Kind::Volume => Coll::Volumes,
        Kind::Image => Coll::Images,
    }
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leak_check_and_cleanup_find_and_remove_exactly_one_clusters_resources() {
    let cl = cloud().await;
    let f = &cl.fake;
    let alpha = seed(f, "default", "alpha");
    // Another cluster, and one whose machine names also start with `alpha-`.
    let beta = seed(f, "default", "beta");
    let alpha2 = seed(f, "default", "alpha-2");
    let unrelated = seed_unrelated(f);
    for i in 0..3 {
        f.add(
            Coll::Flavors,
            json!({"name": format!("SCS-{i}V-4"), "vcpus": i + 1, "ram": 4096, "disk": 0}),
        );
    }

    let session = cl.session().await;
    let a = ClusterRef::new("default", "alpha");
    let got = leaks(&session, &a).await.unwrap();
    let kinds: BTreeSet<Kind> = got.iter().map(|l| l.kind).collect();
    assert_eq!(kinds.len(), 11, "every kind is found: {kinds:?}");
    assert_eq!(
        found(&got),
        alpha.owned,
        "alpha's leftovers:\n{}",
        got.iter().map(|l| l.to_string()).collect::<Vec<_>>().join("\n")
    );
    assert!(got.iter().all(|l| !l.why.is_empty()));
    let b = leaks(&session, &ClusterRef::new("default", "beta")).await.unwrap();
    assert_eq!(found(&b), beta.owned);
    let a2 = leaks(&session, &ClusterRef::new("default", "alpha-2")).await.unwrap();
    assert_eq!(found(&a2), alpha2.owned);
    assert!(
        leaks(&session, &ClusterRef::new("other", "alpha"))
            .await
            .unwrap()
            .iter()
            .all(|l| l.kind != Kind::Network)
    );

    // As a report testcase: failed, one line per leftover.
    let t = leak_testcase(&a, &Ok(got.clone().into()));
    assert_eq!(t.status, scs_e2e::report::Status::Failed);
    assert_eq!(t.details.as_deref().unwrap().lines().count(), alpha.owned.len());

    // The other calls: quota usage and flavors across pages.
    let os = OpenStack::new(&session);
    let servers = os.servers().await.unwrap();
    assert_eq!(servers.len(), 7);
    assert_eq!(os.limits().await.unwrap().absolute["totalInstancesUsed"], 7);
    assert_eq!(os.flavors().await.unwrap().len(), 3);
    assert!(f.log().iter().any(|l| l.contains("marker=")), "lists crossed pages");

    // Dry run: lists, deletes nothing, exit 1 (something is there).
    let before = everything(f);
    let writes = |log: &[String]| {
        log.iter()
            .filter(|l| l.starts_with("DELETE") || l.starts_with("PUT") || l.starts_with("POST"))
            .count()
    };
    let w0 = writes(&f.log());
    let out = cl.scs_e2e(None, &["cleanup", "--cluster", "alpha"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    for (k, id) in &alpha.owned {
        assert!(stdout.contains(&format!("would delete {k} {id}")), "{k} {id} missing:\n{stdout}");
    }
    assert!(stdout.contains("dry run: nothing was deleted"), "{stdout}");
    assert_eq!(writes(&f.log()), w0, "a dry run writes nothing");
    assert_eq!(everything(f), before);

    // For real.
    let log_start = f.log().len();
    let out = cl
        .scs_e2e(
            None,
            &[
                "cleanup",
                "--cluster",
                "alpha",
                "--namespace",
                "default",
                "--cloud",
                "lab",
                "--yes",
                "--wait",
                "60s",
            ],
        )
        .await;
    let (stdout2, stderr2) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout2}\n{stderr2}");
    assert!(stdout2.contains("nothing of cluster default/alpha is left"), "{stdout2}");
    let mut expected = before.clone();
    for (k, id) in &alpha.owned {
        assert!(expected.remove(&(coll_of(*k), id.clone())), "{k} {id}");
    }
    for p in &alpha.service_ports {
        expected.remove(&(Coll::Ports, p.clone()));
    }
    assert_eq!(everything(f), expected, "exactly alpha's resources are gone");
    for (c, id) in &unrelated {
        assert!(f.get(*c, id).is_some(), "unrelated {c:?} {id} kept");
    }

    // The order: each delete of a kind after every delete of the kinds before it.
    let log: Vec<String> = f.log()[log_start..].to_vec();
    let id_kind: HashMap<&str, Kind> = alpha.owned.iter().map(|(k, id)| (id.as_str(), *k)).collect();
    let mut last = Kind::LoadBalancer;
    for l in log.iter().filter(|l| l.starts_with("DELETE")) {
        let id = l
            .split(['/', '?'])
            .rev()
            .find(|s| id_kind.contains_key(s))
            .unwrap_or_else(|| panic!("delete of a foreign id: {l}"));
        let k = id_kind[id];
        assert!(k >= last, "{k} deleted after {last}: {l}\n{}", log.join("\n"));
        last = k;
    }
    let pos = |pred: &dyn Fn(&String) -> bool| log.iter().position(pred);
    let first_fip_delete = pos(&|l| l.starts_with("DELETE") && l.contains("/floatingips/")).unwrap();
    for s in &alpha.servers {
        let gone = pos(&|l| *l == format!("GONE servers {s}")).expect("server gone");
        assert!(gone < first_fip_delete, "servers were waited for before the network went");
    }
    let lb_delete = pos(&|l| l.starts_with("DELETE") && l.contains("/lbaas/loadbalancers/")).unwrap();
    assert!(log[lb_delete].ends_with("?cascade=true"), "{}", log[lb_delete]);
    let router = alpha.owned.iter().find(|(k, _)| *k == Kind::Router).unwrap().1.clone();
    let iface =
        pos(&|l| l.starts_with("PUT") && l.ends_with(&format!("/routers/{router}/remove_router_interface"))).expect("interface removed");
    let gateway = pos(&|l| l.starts_with("PUT") && l.ends_with(&format!("/routers/{router}"))).expect("gateway cleared");
    let delete = pos(&|l| *l == format!("DELETE /network/v2.0/routers/{router}")).unwrap();
    assert!(iface < delete && gateway < delete, "{}", log.join("\n"));
    assert!(
        log.iter()
            .any(|l| l.starts_with("DELETE /volume/v3/") && l.contains(session.project_id.as_deref().unwrap()))
    );

    // Clean now; the others untouched.
    assert!(leaks(&session, &a).await.unwrap().is_empty());
    assert_eq!(
        found(&leaks(&session, &ClusterRef::new("default", "beta")).await.unwrap()),
        beta.owned
    );
    assert_eq!(leak_testcase(&a, &Ok(vec![].into())).status, scs_e2e::report::Status::Passed);

    // Every call carried a token Keystone accepted; the password went nowhere.
    assert_eq!(f.unauthorized(), 0);
    for t in [&stdout, &stderr, &stdout2, &stderr2] {
        assert!(!t.contains(ADMIN_PASSWORD), "{t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_server_fails_with_exit_1_and_bad_credentials_with_exit_3() {
    let cl = cloud().await;
    let f = &cl.fake;
    let gamma = seed(f, "team-a", "gamma");
    f.stick(&gamma.servers[0]);
    let stuck_name = f.get(Coll::Servers, &gamma.servers[0]).unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();

    let out = cl
        .scs_e2e(
            None,
            &["cleanup", "--cluster", "gamma", "--namespace", "team-a", "--yes", "--wait", "2s"],
        )
        .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains(&gamma.servers[0]))
        .unwrap_or_else(|| panic!("the stuck server is named:\n{stderr}"));
    assert!(line.contains(&stuck_name) && line.contains("still present"), "{line}");
    assert!(stdout.contains(&format!("left: server {}", gamma.servers[0])), "{stdout}");
    // What does not depend on it is gone all the same.
    assert!(f.get(Coll::Servers, &gamma.servers[1]).is_none());
    assert!(f.ids(Coll::Images).is_empty() && f.ids(Coll::LoadBalancers).is_empty());
    // Its root volume stays attached: the failure names the service, the call and Cinder's
    // reason.
    let root = f.ids(Coll::Volumes);
    assert_eq!(root.len(), 1, "only the attached root volume is left");
    assert!(
        stderr.contains("block-storage (cinder): DELETE /volume/v3/")
            && stderr.contains(&format!("/volumes/{} answered 400: Invalid volume", root[0])),
        "{stderr}"
    );

    // Wrong password: Keystone refuses, exit 3, the attempt's password is not echoed.
    let wrong = "canary-wrong-pw-3e1c";
    let bad = cl.dir.path().join("bad.yaml");
    std::fs::write(&bad, admin_clouds(cl.keystone.port, wrong)).unwrap();
    let out = cl
        .scs_e2e(Some(&bad), &["cleanup", "--cluster", "gamma", "--namespace", "team-a"])
        .await;
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{o}\n{e}");
    assert!(e.contains("refused the password login (401)"), "{e}");
    // Nothing unreachable is listening on port 9: unreachable is exit 3 too.
    let down = cl.dir.path().join("down.yaml");
    std::fs::write(&down, admin_clouds(9, ADMIN_PASSWORD)).unwrap();
    let out2 = cl.scs_e2e(Some(&down), &["cleanup", "--cluster", "gamma"]).await;
    let (o2, e2) = text(&out2);
    assert_eq!(out2.status.code(), Some(3), "{o2}\n{e2}");
    assert!(e2.contains("cannot reach Keystone"), "{e2}");
    // Bad input: exit 2 before any call.
    let out3 = cl.scs_e2e(None, &["cleanup", "--cluster", "Gamma_1"]).await;
    assert_eq!(out3.status.code(), Some(2), "{:?}", text(&out3));
    let out4 = cl
        .scs_e2e(Some(&cl.dir.path().join("missing.yaml")), &["cleanup", "--cluster", "gamma"])
        .await;
    assert_eq!(out4.status.code(), Some(2), "{:?}", text(&out4));
    for t in [&stdout, &stderr, &o, &e, &o2, &e2] {
        assert!(!t.contains(wrong) && !t.contains(ADMIN_PASSWORD), "{t}");
    }
}

/// Two clusters named `alpha` in two namespaces (suites use fixed names): each one's leak check
/// finds exactly what is provably its own; what only the name `alpha` ties to either (Cinder
/// CSI's volumes, which know no namespace) is listed for both and deleted by neither; `cleanup
/// --yes` on one leaves every resource of the other in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_of_one_name_in_two_namespaces_never_claim_each_others_resources() {
    let cl = cloud().await;
    let f = &cl.fake;
    let ours = seed(f, "default", "alpha");
    let theirs = seed(f, "team-b", "alpha");
    let unrelated = seed_unrelated(f);
    let session = cl.session().await;
    let a = ClusterRef::new("default", "alpha");
    let b = ClusterRef::new("team-b", "alpha");
    // The Cinder CSI volume of each (metadata `cluster: alpha`, not attached): the name alone.
    let pv = |s: &Seeded| -> (Kind, String) {
        let vols: Vec<&(Kind, String)> = s.owned.iter().filter(|(k, _)| *k == Kind::Volume).collect();
        vols.into_iter()
            .find(|(_, id)| f.get(Coll::Volumes, id).unwrap()["name"] == "pvc-1f0e")
            .unwrap()
            .clone()
    };
    let name_only: BTreeSet<(Kind, String)> = [pv(&ours), pv(&theirs)].into();
    for (c, seeded) in [(&a, &ours), (&b, &theirs)] {
        let inv = inventory(&session, c).await.unwrap();
        let other = if c == &a { &b } else { &a };
        assert_eq!(inv.namesakes, vec![other.clone()], "{c}");
        let proven: BTreeSet<_> = seeded.owned.difference(&name_only).cloned().collect();
        assert_eq!(
            found(&inv.owned),
            proven,
            "{c}: exactly its proven resources:\n{}",
            inv.owned.iter().map(|l| l.to_string()).collect::<Vec<_>>().join("\n")
        );
        assert_eq!(found(&inv.ambiguous), name_only, "{c}: both CSI volumes are either's");
        // The leak check counts only what is provably the cluster's, and says what it left out.
        let t = leak_testcase(c, &Ok(inv));
        assert_eq!(t.status, scs_e2e::report::Status::Failed);
        let details = t.details.unwrap();
        assert!(
            details.contains(&format!("not counted: cluster {other} of the same name is in this cloud")),
            "{details}"
        );
    }

    // Dry run: the ambiguous volumes are named as left alone, not as to be deleted.
    let out = cl.scs_e2e(None, &["cleanup", "--cluster", "alpha"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    for (k, id) in &name_only {
        assert!(stdout.contains(&format!("not deleted: {k} {id}")), "{stdout}");
        assert!(!stdout.contains(&format!("would delete {k} {id}")), "{stdout}");
    }
    assert!(
        stdout.contains("cluster team-b/alpha of the same name is in this cloud"),
        "{stdout}"
    );

    // For real, on default/alpha: its proven resources go, team-b/alpha's all stay, and the run
    // ends 1 because the ambiguous volumes are left for a person to decide.
    let before = everything(f);
    let out = cl
        .scs_e2e(
            None,
            &["cleanup", "--cluster", "alpha", "--namespace", "default", "--yes", "--wait", "30s"],
        )
        .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("2 not deleted as they could be a namesake's"), "{stderr}");
    let mut expected = before.clone();
    for (k, id) in ours.owned.difference(&name_only) {
        assert!(expected.remove(&(coll_of(*k), id.clone())), "{k} {id}");
    }
    for p in &ours.service_ports {
        expected.remove(&(Coll::Ports, p.clone()));
    }
    assert_eq!(everything(f), expected, "exactly default/alpha's proven resources are gone");
    for (k, id) in theirs.owned.iter().chain(&name_only) {
        assert!(f.get(coll_of(*k), id).is_some(), "{k} {id} stays");
    }
    for (c, id) in &unrelated {
        assert!(f.get(*c, id).is_some(), "unrelated {c:?} {id} kept");
    }
    // And team-b/alpha, now alone with that name, is whole: every resource it was seeded with.
    let inv = inventory(&session, &b).await.unwrap();
    assert!(inv.namesakes.is_empty() && inv.ambiguous.is_empty(), "{:?}", inv.namesakes);
    let mut theirs_now = theirs.owned.clone();
    // default/alpha's CSI volume is now only a volume of some cluster named alpha: team-b's by name.
    theirs_now.insert(pv(&ours));
    assert_eq!(found(&inv.owned), theirs_now);
}

/// `cleanup --from` takes the clusters a (killed) run planned and removes exactly theirs: the
/// cluster that never got far (nothing in the cloud) is no error, another team's cluster stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_from_a_runs_cluster_plan_removes_each_planned_cluster() {
    let cl = cloud().await;
    let f = &cl.fake;
    let a = seed(f, "e2e-sized-s-0a1b2c", "wl-s");
    let b = seed(f, "e2e-sized-m-3d4e5f", "wl-m");
    // Another team's cluster (a different name: OCCM and Cinder CSI tag by cluster name alone).
    let other = seed(f, "team-a", "wl-q");
    let art = cl.dir.path().join("artifacts");
    std::fs::create_dir_all(&art).unwrap();
    let plan = json!({"schema": "scs-e2e.clusters/v1", "runId": "0a1b2c3d", "environment": "openstack", "clusters": [
        {"namespace": "e2e-sized-m-3d4e5f", "name": "wl-m", "scenario": "killed.sized-m"},
        {"namespace": "e2e-sized-s-0a1b2c", "name": "wl-s", "scenario": "killed.sized-s"},
        {"namespace": "e2e-never-112233", "name": "wl-x", "scenario": "killed.never"}]});
    std::fs::write(art.join("clusters.json"), serde_json::to_string_pretty(&plan).unwrap()).unwrap();
    let art_s = art.to_str().unwrap();

    let out = cl.scs_e2e(None, &["cleanup", "--from", art_s]).await;
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(1), "dry run found something:\n{o}\n{e}");
    for (k, id) in a.owned.iter().chain(&b.owned) {
        assert!(o.contains(&format!("would delete {k} {id}")), "{k} {id}:\n{o}");
    }
    assert!(o.contains("cluster e2e-never-112233/wl-x on cloud `lab`: 0 resources found"), "{o}");

    let out = cl.scs_e2e(None, &["cleanup", "--from", art_s, "--yes", "--wait", "20s"]).await;
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{o}\n{e}");
    let left = everything(f);
    for (k, id) in a.owned.iter().chain(&b.owned) {
        assert!(!left.contains(&(coll_of(*k), id.clone())), "{k} {id} is gone");
    }
    for (k, id) in &other.owned {
        assert!(left.contains(&(coll_of(*k), id.clone())), "team-a's {k} {id} stays");
    }

    // A file that is not a plan: named with its line, nothing touched, exit 2.
    let bad = cl.dir.path().join("bad.json");
    std::fs::write(&bad, "{\n  \"schema\": \"scs-e2e.clusters/v1\",\n  \"clusters\": 3\n}\n").unwrap();
    let before = everything(f);
    let out = cl.scs_e2e(None, &["cleanup", "--from", bad.to_str().unwrap(), "--yes"]).await;
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{o}\n{e}");
    assert!(e.contains("bad.json:") && e.contains("not a cluster plan"), "{e}");
    let out = cl.scs_e2e(None, &["cleanup", "--from", art_s, "--cluster", "x"]).await;
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert_eq!(everything(f), before);
}
