//! The leak check and `scs-e2e cleanup` against the real OpenStack services of
//! `fixtures/openstack` (one cloud shared by these tests, a project each): the resources a
//! cluster leaves are made through the real APIs the way CAPO, the cloud controller manager and
//! Cinder CSI make them (names, descriptions, metadata, relations; `capo.rs` checks the names
//! against what CAPO itself makes). What a real cloud adds over a stand-in: every list comes in
//! pages of 5 (the fixture's max_limit), Neutron refuses to delete a network with ports or a
//! router with interfaces (409), Octavia a load balancer with listeners unless cascaded, Cinder
//! an attached volume (400), and Nova deletes servers asynchronously. So a cleanup that ends
//! clean proves its deletion order; no request log is needed.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::openstack_services::{self, HostUse, OpenStackServices, Tenant, call, id, reaches};
use common::until;
use reqwest::Method;
use scs_e2e::env::openstack::cleanup::{Kind, inventory, leak_testcase, leaks};
use scs_e2e::env::openstack::identity::Session;
use scs_e2e::env::openstack::ownership::ClusterRef;
use scs_e2e::env::openstack::resources::{OpenStack, Service};
use serde_json::{Value, json};

/// A project of its own on the shared cloud, with what every seeding needs.
struct Cloud {
    os: &'static OpenStackServices,
    /// Held for the test's lifetime: its servers need nova-compute to answer.
    _host: HostUse,
    tenant: Tenant,
    session: Session,
    /// The external network `public`.
    ext: String,
    /// SCS-1V-4-10: one vCPU (the default quota, 10 instances and 20 cores, holds every test)
    /// and a disk (Nova lets only admins boot an image on a flavor without one).
    flavor: String,
    /// An image to boot from, nobody's cluster's.
    boot_image: String,
}

async fn cloud(prefix: &str) -> Cloud {
    cloud_with(prefix, HostUse::shared().await).await
}

/// A project on the shared cloud whose hypervisor no other test uses meanwhile.
async fn cloud_alone(prefix: &str) -> Cloud {
    cloud_with(prefix, HostUse::alone().await).await
}

async fn cloud_with(prefix: &str, host: HostUse) -> Cloud {
    let os = openstack_services::shared().await;
    let tenant = os.tenant(prefix, "lab").await;
    let session = tenant.session().await;
    let api = OpenStack::new(&session);
    let ext = openstack_services::public_network(&api).await;
    let flavor = api
        .flavors()
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.name == "SCS-1V-4-10")
        .expect("flavor SCS-1V-4-10")
        .id;
    let boot_image = openstack_services::upload_image(&api, "boot", json!({})).await;
    Cloud {
        os,
        _host: host,
        tenant,
        session,
        ext,
        flavor,
        boot_image,
    }
}

impl Cloud {
    fn api(&self) -> OpenStack<'_> {
        OpenStack::new(&self.session)
    }

    /// Runs the real binary with the tenant's clouds.yaml (or `clouds_yaml`), nothing of the user's.
    async fn scs_e2e(&self, clouds_yaml: Option<&Path>, args: &[&str]) -> Output {
        let file = clouds_yaml
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.tenant.clouds_yaml.clone());
        let dir = self.tenant.dir.path();
        tokio::process::Command::new(env!("CARGO_BIN_EXE_scs-e2e"))
            .args(args)
            .current_dir(dir)
            .env("HOME", dir)
            .env("OS_CLIENT_CONFIG_FILE", file)
            .env_remove("OS_CLOUD")
            .env_remove("OS_REGION_NAME")
            .env_remove("OS_CLIENT_SECURE_FILE")
            .env_remove("OS_PASSWORD")
            .output()
            .await
            .unwrap()
    }

    async fn post(&self, svc: Service, path: &str, body: Value) -> Value {
        call(&self.api(), svc, Method::POST, path, Some(body)).await
    }

    /// A network with a subnet (`10.8.0.0/24`: projects do not share address space).
    async fn network(&self, name: &str, description: &str) -> (String, String) {
        let net = id(
            &self
                .post(
                    Service::Network,
                    "/networks",
                    json!({"network": {"name": name, "description": description}}),
                )
                .await,
            "network",
        );
        let sub = id(
            &self
                .post(
                    Service::Network,
                    "/subnets",
                    json!({"subnet": {"name": name, "network_id": net, "ip_version": 4, "cidr": "10.8.0.0/24"}}),
                )
                .await,
            "subnet",
        );
        (net, sub)
    }

    /// A server on the fake hypervisor (not waited for: see [`Cloud::active`]).
    async fn server(&self, name: &str, network: Value, group: Option<&str>) -> String {
        let mut body = json!({"server": {"name": name, "imageRef": self.boot_image, "flavorRef": self.flavor, "networks": [network]}});
        if let Some(g) = group {
            body["os:scheduler_hints"] = json!({"group": g});
        }
        id(&self.post(Service::Compute, "/servers", body).await, "server")
    }

    async fn active(&self, servers: &[String]) {
        let api = self.api();
        for s in servers {
            until(&format!("server {s} ACTIVE"), Duration::from_secs(300), || {
                reaches(
                    &api,
                    Service::Compute,
                    format!("/servers/{s}"),
                    "server",
                    "status",
                    "ACTIVE",
                    "ERROR",
                )
            })
            .await;
        }
    }

    /// A load balancer with one listener (so deleting it needs the cascade), ACTIVE. Returns
    /// its id and its VIP port (a real Neutron port, made by the fixture's Octavia driver).
    async fn load_balancer(&self, name: &str, description: &str, subnet: &str, port: u16) -> (String, String) {
        let lb = self
            .post(
                Service::LoadBalancer,
                "/lbaas/loadbalancers",
                json!({"loadbalancer": {"name": name, "description": description, "vip_subnet_id": subnet}}),
            )
            .await;
        let id = id(&lb, "loadbalancer");
        let vip = lb["loadbalancer"]["vip_port_id"].as_str().expect("a VIP port").to_string();
        let api = self.api();
        let path = format!("/lbaas/loadbalancers/{id}");
        let active = || {
            reaches(
                &api,
                Service::LoadBalancer,
                path.clone(),
                "loadbalancer",
                "provisioning_status",
                "ACTIVE",
                "ERROR",
            )
        };
        until(&format!("load balancer {name} ACTIVE"), Duration::from_secs(120), active).await;
        self.post(
            Service::LoadBalancer,
            "/lbaas/listeners",
            json!({"listener": {"loadbalancer_id": id, "protocol": "TCP", "protocol_port": port}}),
        )
        .await;
        until(
            &format!("load balancer {name} ACTIVE with its listener"),
            Duration::from_secs(120),
            active,
        )
        .await;
        (id, vip)
    }

    async fn floating_ip(&self, description: &str, port: Option<&str>) -> String {
        id(
            &self
                .post(
                    Service::Network,
                    "/floatingips",
                    json!({"floatingip": {"floating_network_id": self.ext, "description": description, "port_id": port}}),
                )
                .await,
            "floatingip",
        )
    }

    async fn volume(&self, body: Value) -> String {
        let v = id(
            &self.post(Service::BlockStorage, "/volumes", json!({"volume": body})).await,
            "volume",
        );
        let api = self.api();
        until(&format!("volume {v} available"), Duration::from_secs(120), || {
            reaches(
                &api,
                Service::BlockStorage,
                format!("/volumes/{v}"),
                "volume",
                "status",
                "available",
                "error",
            )
        })
        .await;
        v
    }

    async fn server_group(&self, name: &str) -> String {
        id(
            &self
                .post(
                    Service::Compute,
                    "/os-server-groups",
                    json!({"server_group": {"name": name, "policies": ["anti-affinity"]}}),
                )
                .await,
            "server_group",
        )
    }

    /// Everything the project sees, by kind and id (what is being deleted counts as gone).
    async fn everything(&self) -> BTreeSet<(Kind, String)> {
        let api = self.api();
        let mut all = BTreeSet::new();
        let mut put = |k: Kind, ids: Vec<String>| all.extend(ids.into_iter().map(|i| (k, i)));
        put(
            Kind::Server,
            api.servers()
                .await
                .unwrap()
                .into_iter()
                .filter(|s| s.status != "DELETED")
                .map(|s| s.id)
                .collect(),
        );
        put(
            Kind::ServerGroup,
            api.server_groups().await.unwrap().into_iter().map(|g| g.id).collect(),
        );
        put(Kind::Port, api.ports().await.unwrap().into_iter().map(|p| p.id).collect());
        put(
            Kind::FloatingIp,
            api.floating_ips().await.unwrap().into_iter().map(|f| f.id).collect(),
        );
        put(
            Kind::SecurityGroup,
            api.security_groups().await.unwrap().into_iter().map(|g| g.id).collect(),
        );
        put(Kind::Network, api.networks().await.unwrap().into_iter().map(|n| n.id).collect());
        put(Kind::Subnet, api.subnets().await.unwrap().into_iter().map(|s| s.id).collect());
        put(Kind::Router, api.routers().await.unwrap().into_iter().map(|r| r.id).collect());
        put(
            Kind::LoadBalancer,
            api.load_balancers()
                .await
                .unwrap()
                .into_iter()
                .filter(|l| l.provisioning_status != "DELETED")
                .map(|l| l.id)
                .collect(),
        );
        put(Kind::Volume, api.volumes().await.unwrap().into_iter().map(|v| v.id).collect());
        put(Kind::Image, api.images().await.unwrap().into_iter().map(|i| i.id).collect());
        all
    }
}

/// What one cluster has in the cloud: the ids the leak check must find, and the ports Neutron
/// and Octavia own that go with their owners.
struct Seeded {
    owned: BTreeSet<(Kind, String)>,
    service_ports: Vec<String>,
    servers: Vec<String>,
    /// Cinder CSI's volume: tied to the cluster by its name alone.
    csi_volume: String,
    /// CAPO's root volume of the control plane machine, attached to it.
    root_volume: String,
}

/// A cluster's resources as its controllers make them: CAPO's network, subnet, router (gateway
/// and interface), security groups, a port per machine and a machine booted on it, a stray port
/// of a machine that is gone, the API load balancer with its floating IP, a root volume; the
/// cloud controller manager's Service load balancer and floating IP; a floating IP bound to a
/// machine's port; a server group holding a worker; Cinder CSI's volume; our tagged image.
async fn seed(cl: &Cloud, ns: &str, name: &str) -> Seeded {
    let c = ClusterRef::new(ns, name);
    let net_name = c.capo_network_name();
    let desc = c.capo_description();
    let mut owned = BTreeSet::new();
    let mut own = |k: Kind, id: &str| {
        owned.insert((k, id.to_string()));
    };
    let (net, sub) = cl.network(&net_name, &desc).await;
    own(Kind::Network, &net);
    own(Kind::Subnet, &sub);
    let router = id(
        &cl.post(
            Service::Network,
            "/routers",
            json!({"router": {"name": net_name, "description": desc, "external_gateway_info": {"network_id": cl.ext}}}),
        )
        .await,
        "router",
    );
    own(Kind::Router, &router);
    let iface = call(
        &cl.api(),
        Service::Network,
        Method::PUT,
        &format!("/routers/{router}/add_router_interface"),
        Some(json!({"subnet_id": sub})),
    )
    .await["port_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut sgs = Vec::new();
    for g in &c.capo_security_groups()[..2] {
        let sg = id(
            &cl.post(
                Service::Network,
                "/security-groups",
                json!({"security_group": {"name": g, "description": "Cluster API managed group"}}),
            )
            .await,
            "security_group",
        );
        own(Kind::SecurityGroup, &sg);
        sgs.push(sg);
    }
    let group = cl.server_group(&format!("{name}-workers")).await;
    own(Kind::ServerGroup, &group);
    // Machine names end in random characters: two clusters of one name do not share them.
    let salt = &format!("{:08x}", ns.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32)))[..4];
    let mut machines = Vec::new();
    for (i, m) in [format!("{name}-control-plane-7x2{salt}"), format!("{name}-md-0-5b8c9-zt4{salt}")]
        .into_iter()
        .enumerate()
    {
        let port = id(
            &cl.post(
                Service::Network,
                "/ports",
                json!({"port": {"name": format!("{m}-0"), "description": desc, "network_id": net, "security_groups": [sgs[i]]}}),
            )
            .await,
            "port",
        );
        own(Kind::Port, &port);
        let server = cl.server(&m, json!({"port": port}), (i == 1).then_some(group.as_str())).await;
        own(Kind::Server, &server);
        machines.push((server, m, port));
    }
    // A port CAPO made for a machine that is gone: detached, still on the network.
    let stray = id(
        &cl.post(
            Service::Network,
            "/ports",
            json!({"port": {"name": format!("{name}-md-0-old-0"), "description": desc, "network_id": net, "security_groups": [sgs[1]]}}),
        )
        .await,
        "port",
    );
    own(Kind::Port, &stray);
    let (api_lb, api_vip) = cl.load_balancer(&c.capo_api_lb_name(), &desc, &sub, 6443).await;
    own(Kind::LoadBalancer, &api_lb);
    let (svc_lb, svc_vip) = cl
        .load_balancer(
            &format!("kube_service_{name}_default_web"),
            &format!("Kubernetes external service default/web from cluster {name}"),
            &sub,
            80,
        )
        .await;
    own(Kind::LoadBalancer, &svc_lb);
    cl.active(&machines.iter().map(|m| m.0.clone()).collect::<Vec<_>>()).await;
    for (d, port) in [
        (desc.clone(), &api_vip),
        (
            format!("Floating IP for Kubernetes external service default/web from cluster {name}"),
            &svc_vip,
        ),
        // Bound to a machine's port, with no telling description.
        (String::new(), &machines[0].2),
    ] {
        let fip = cl.floating_ip(&d, Some(port)).await;
        own(Kind::FloatingIp, &fip);
    }
    let csi_volume = cl
        .volume(json!({"name": "pvc-1f0e", "size": 1, "metadata": {"cinder.csi.openstack.org/cluster": name, "csi.storage.k8s.io/pvc/name": "data"}}))
        .await;
    own(Kind::Volume, &csi_volume);
    let cp = &machines[0];
    let root_volume = cl
        .volume(json!({"name": format!("{}-root", cp.1), "description": format!("Root volume for {}", cp.1), "size": 1}))
        .await;
    own(Kind::Volume, &root_volume);
    cl.post(
        Service::Compute,
        &format!("/servers/{}/os-volume_attachments", cp.0),
        json!({"volumeAttachment": {"volumeId": root_volume}}),
    )
    .await;
    let api = cl.api();
    until("root volume attached", Duration::from_secs(120), || {
        reaches(
            &api,
            Service::BlockStorage,
            format!("/volumes/{root_volume}"),
            "volume",
            "status",
            "in-use",
            "error",
        )
    })
    .await;
    let image = openstack_services::upload_image(
        &api,
        "ubuntu-capi-image-v1.33.1",
        json!({"tags": [c.image_tag()], "os_distro": "ubuntu"}),
    )
    .await;
    own(Kind::Image, &image);
    Seeded {
        owned,
        service_ports: vec![iface, api_vip, svc_vip],
        servers: machines.into_iter().map(|(id, _, _)| id).collect(),
        csi_volume,
        root_volume,
    }
}

/// Resources that are nobody's cluster's; with `groups`, that many spare server groups too.
async fn seed_unrelated(cl: &Cloud, groups: usize) {
    let (shared, sub) = cl.network("shared", "").await;
    let db = cl.server_group("db-anti-affinity").await;
    for i in 0..groups {
        cl.server_group(&format!("spare-{i}")).await;
    }
    let web = cl.server("web-1", json!({"uuid": shared}), Some(&db)).await;
    openstack_services::upload_image(&cl.api(), "ubuntu-capi-image-v1.33.1", json!({})).await;
    cl.volume(json!({"name": "pvc-x", "size": 1, "metadata": {"cinder.csi.openstack.org/cluster": "gamma"}}))
        .await;
    cl.floating_ip("ops jump host", None).await;
    cl.load_balancer("kube_service_gamma_default_web", "", &sub, 80).await;
    cl.active(&[web]).await;
}

fn found(l: &[scs_e2e::env::openstack::cleanup::Leftover]) -> BTreeSet<(Kind, String)> {
    l.iter().map(|x| (x.kind, x.id.clone())).collect()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// What is left of `before` once `s`'s resources and the service ports that went with them
/// are gone.
fn without(before: &BTreeSet<(Kind, String)>, s: &Seeded, keep: &BTreeSet<(Kind, String)>) -> BTreeSet<(Kind, String)> {
    let mut expected = before.clone();
    for r in s.owned.difference(keep) {
        assert!(expected.remove(r), "{r:?} was there");
    }
    for p in &s.service_ports {
        expected.remove(&(Kind::Port, p.clone()));
    }
    expected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leak_check_and_cleanup_find_and_remove_exactly_one_clusters_resources() {
    let cl = cloud("leaks").await;
    // Unrelated things first: the snapshot after them is what must survive.
    seed_unrelated(&cl, 2).await;
    let unrelated = cl.everything().await;
    let alpha = seed(&cl, "default", "alpha").await;
    // Another cluster, and one whose machine names also start with `alpha-`.
    let beta = seed(&cl, "default", "beta").await;
    let alpha2 = seed(&cl, "default", "alpha-2").await;

    let session = cl.tenant.session().await;
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

    // Lists past the fixture's pages of 5: 7 servers (next links), 6 server groups (Nova's
    // offset, it gives no link), 7 flavors; and the quota usage.
    let os = OpenStack::new(&session);
    assert_eq!(os.servers().await.unwrap().len(), 7);
    assert_eq!(os.server_groups().await.unwrap().len(), 6);
    assert_eq!(os.limits().await.unwrap().absolute["totalInstancesUsed"], 7);
    let flavors: BTreeSet<String> = os.flavors().await.unwrap().into_iter().map(|f| f.name).collect();
    assert_eq!(flavors.len(), 7, "{flavors:?}");
    assert!(flavors.contains("SCS-1V-2") && flavors.contains("SCS-4V-16-50"), "{flavors:?}");

    // Dry run: lists, changes nothing, exit 1 (something is there).
    let before = cl.everything().await;
    let out = cl.scs_e2e(None, &["cleanup", "--cluster", "alpha"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    for (k, id) in &alpha.owned {
        assert!(stdout.contains(&format!("would delete {k} {id}")), "{k} {id} missing:\n{stdout}");
    }
    assert!(stdout.contains("dry run: nothing was deleted"), "{stdout}");
    assert_eq!(cl.everything().await, before, "a dry run changes nothing");

    // For real. The real services refuse a wrong order (a network with ports, a router with
    // interfaces, a load balancer with listeners without the cascade, an attached volume), so
    // a clean end is the proof of the order.
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
                "120s",
            ],
        )
        .await;
    let (stdout2, stderr2) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout2}\n{stderr2}");
    assert!(stdout2.contains("nothing of cluster default/alpha is left"), "{stdout2}");
    let now = cl.everything().await;
    assert_eq!(
        now,
        without(&before, &alpha, &BTreeSet::new()),
        "exactly alpha's resources are gone"
    );
    assert!(unrelated.is_subset(&now), "unrelated resources kept");

    // Clean now; the others untouched.
    assert!(leaks(&session, &a).await.unwrap().is_empty());
    assert_eq!(
        found(&leaks(&session, &ClusterRef::new("default", "beta")).await.unwrap()),
        beta.owned
    );
    assert_eq!(leak_testcase(&a, &Ok(vec![].into())).status, scs_e2e::report::Status::Passed);
    for t in [&stdout, &stderr, &stdout2, &stderr2] {
        assert!(!t.contains(&cl.tenant.password), "{t}");
    }
}

/// The PIDs of the fixture's nova-compute (a state directory's).
fn nova_compute(os: &OpenStackServices) -> Vec<i32> {
    let dir = os.state_dir().to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
            let cmd = String::from_utf8_lossy(&std::fs::read(e.path().join("cmdline")).ok()?).replace('\0', " ");
            (cmd.contains("bin/nova-compute") && cmd.contains(&dir)).then_some(pid)
        })
        .collect()
}

/// Resumes a stopped process when dropped, so a failing assertion does not leave the shared
/// cloud without a hypervisor.
struct Resume(Vec<i32>);

impl Drop for Resume {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = Command::new("kill").args(["-CONT", &p.to_string()]).status();
        }
    }
}

/// A hypervisor that stops answering (nova-compute frozen with SIGSTOP: Nova accepts the delete
/// and the server stays until the host is back) makes `cleanup` fail with exit 1, naming the
/// servers still there and the volume Cinder keeps attached, after deleting everything else;
/// once the host is back, a second cleanup finishes. Then bad credentials (exit 3) and bad
/// input (exit 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_server_fails_with_exit_1_and_bad_credentials_with_exit_3() {
    let cl = cloud_alone("stuck").await;
    let gamma = seed(&cl, "team-a", "gamma").await;
    let pids = nova_compute(cl.os);
    assert_eq!(pids.len(), 1, "one nova-compute in {}", cl.os.state_dir().display());
    let stopped = Command::new("kill").args(["-STOP", &pids[0].to_string()]).status().unwrap();
    assert!(stopped.success());
    let resume = Resume(pids);
    let out = cl
        .scs_e2e(
            None,
            &["cleanup", "--cluster", "gamma", "--namespace", "team-a", "--yes", "--wait", "3s"],
        )
        .await;
    drop(resume);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    for s in &gamma.servers {
        let line = stderr
            .lines()
            .find(|l| l.contains(s.as_str()))
            .unwrap_or_else(|| panic!("the stuck server {s} is named:\n{stderr}"));
        assert!(line.contains("still present"), "{line}");
        assert!(stdout.contains(&format!("left: server {s}")), "{stdout}");
    }
    // What does not depend on the servers is gone all the same.
    let api = cl.api();
    assert!(
        api.load_balancers()
            .await
            .unwrap()
            .iter()
            .all(|l| l.provisioning_status == "DELETED")
    );
    assert!(api.images().await.unwrap().iter().all(|i| i.name.as_deref() == Some("boot")));
    // The root volume stays attached: the failure names the service, the call and Cinder's
    // reason.
    let vols: Vec<String> = api.volumes().await.unwrap().into_iter().map(|v| v.id).collect();
    assert_eq!(
        vols,
        std::slice::from_ref(&gamma.root_volume),
        "only the attached root volume is left"
    );
    assert!(
        stderr.contains("block-storage (cinder): DELETE /v3/")
            && stderr.contains(&format!("/volumes/{} answered 400: Invalid volume", gamma.root_volume)),
        "{stderr}"
    );
    // The host is back: Nova finishes the deletes, and a second cleanup the volume.
    let out = cl
        .scs_e2e(
            None,
            &["cleanup", "--cluster", "gamma", "--namespace", "team-a", "--yes", "--wait", "120s"],
        )
        .await;
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{o}\n{e}");
    assert!(leaks(&cl.session, &ClusterRef::new("team-a", "gamma")).await.unwrap().is_empty());

    // Wrong password: Keystone refuses, exit 3, the attempt's password is not echoed.
    let good = std::fs::read_to_string(&cl.tenant.clouds_yaml).unwrap();
    let wrong = "canary-wrong-pw-3e1c";
    let bad = cl.tenant.dir.path().join("bad.yaml");
    std::fs::write(&bad, good.replace(&cl.tenant.password, wrong)).unwrap();
    let out = cl
        .scs_e2e(Some(&bad), &["cleanup", "--cluster", "gamma", "--namespace", "team-a"])
        .await;
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{o}\n{e}");
    assert!(e.contains("refused the password login (401)"), "{e}");
    // Nothing is listening on port 9: unreachable is exit 3 too.
    let down = cl.tenant.dir.path().join("down.yaml");
    let port = good.split("127.0.0.1:").nth(1).unwrap().split('/').next().unwrap();
    std::fs::write(&down, good.replace(&format!("127.0.0.1:{port}/"), "127.0.0.1:9/")).unwrap();
    let out2 = cl.scs_e2e(Some(&down), &["cleanup", "--cluster", "gamma"]).await;
    let (o2, e2) = text(&out2);
    assert_eq!(out2.status.code(), Some(3), "{o2}\n{e2}");
    assert!(e2.contains("cannot reach Keystone"), "{e2}");
    // Bad input: exit 2 before any call.
    let out3 = cl.scs_e2e(None, &["cleanup", "--cluster", "Gamma_1"]).await;
    assert_eq!(out3.status.code(), Some(2), "{:?}", text(&out3));
    let out4 = cl
        .scs_e2e(Some(&cl.tenant.dir.path().join("missing.yaml")), &["cleanup", "--cluster", "gamma"])
        .await;
    assert_eq!(out4.status.code(), Some(2), "{:?}", text(&out4));
    for t in [&stdout, &stderr, &o, &e, &o2, &e2] {
        assert!(!t.contains(wrong) && !t.contains(&cl.tenant.password), "{t}");
    }
}

/// Two clusters named `alpha` in two namespaces (suites use fixed names): each one's leak check
/// finds exactly what is provably its own; what only the name `alpha` ties to either (Cinder
/// CSI's volumes, which know no namespace) is listed for both and deleted by neither; `cleanup
/// --yes` on one leaves every resource of the other in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_of_one_name_in_two_namespaces_never_claim_each_others_resources() {
    let cl = cloud("namesakes").await;
    seed_unrelated(&cl, 0).await;
    let unrelated = cl.everything().await;
    let ours = seed(&cl, "default", "alpha").await;
    let theirs = seed(&cl, "team-b", "alpha").await;
    let session = cl.tenant.session().await;
    let a = ClusterRef::new("default", "alpha");
    let b = ClusterRef::new("team-b", "alpha");
    // The Cinder CSI volume of each (metadata `cluster: alpha`, not attached): the name alone.
    let name_only: BTreeSet<(Kind, String)> = [(Kind::Volume, ours.csi_volume.clone()), (Kind::Volume, theirs.csi_volume.clone())].into();
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
    let before = cl.everything().await;
    let out = cl
        .scs_e2e(
            None,
            &["cleanup", "--cluster", "alpha", "--namespace", "default", "--yes", "--wait", "120s"],
        )
        .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("2 not deleted as they could be a namesake's"), "{stderr}");
    let now = cl.everything().await;
    assert_eq!(
        now,
        without(&before, &ours, &name_only),
        "exactly default/alpha's proven resources are gone"
    );
    assert!(theirs.owned.is_subset(&now), "team-b/alpha's resources stay");
    assert!(unrelated.is_subset(&now), "unrelated resources kept");
    // And team-b/alpha, now alone with that name, is whole: every resource it was seeded with.
    let inv = inventory(&session, &b).await.unwrap();
    assert!(inv.namesakes.is_empty() && inv.ambiguous.is_empty(), "{:?}", inv.namesakes);
    let mut theirs_now = theirs.owned.clone();
    // default/alpha's CSI volume is now only a volume of some cluster named alpha: team-b's by name.
    theirs_now.insert((Kind::Volume, ours.csi_volume.clone()));
    assert_eq!(found(&inv.owned), theirs_now);
}

/// `cleanup --from` takes the clusters a (killed) run planned and removes exactly theirs: the
/// cluster that never got far (nothing in the cloud) is no error, another team's cluster stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_from_a_runs_cluster_plan_removes_each_planned_cluster() {
    let cl = cloud("plan").await;
    let a = seed(&cl, "e2e-sized-s-0a1b2c", "wl-s").await;
    let b = seed(&cl, "e2e-sized-m-3d4e5f", "wl-m").await;
    // Another team's cluster (a different name: OCCM and Cinder CSI tag by cluster name alone).
    let other = seed(&cl, "team-a", "wl-q").await;
    let art = cl.tenant.dir.path().join("artifacts");
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

    let out = cl.scs_e2e(None, &["cleanup", "--from", art_s, "--yes", "--wait", "120s"]).await;
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{o}\n{e}");
    let left = cl.everything().await;
    for r in a.owned.iter().chain(&b.owned) {
        assert!(!left.contains(r), "{r:?} is gone");
    }
    assert!(other.owned.is_subset(&left), "team-a's resources stay");

    // A file that is not a plan: named with its line, nothing touched, exit 2.
    let bad = cl.tenant.dir.path().join("bad.json");
    std::fs::write(&bad, "{\n  \"schema\": \"scs-e2e.clusters/v1\",\n  \"clusters\": 3\n}\n").unwrap();
    let out = cl.scs_e2e(None, &["cleanup", "--from", bad.to_str().unwrap(), "--yes"]).await;
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{o}\n{e}");
    assert!(e.contains("bad.json:") && e.contains("not a cluster plan"), "{e}");
    let out = cl.scs_e2e(None, &["cleanup", "--from", art_s, "--cluster", "x"]).await;
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert_eq!(cl.everything().await, left);
}
