//! The real OpenStack services of `fixtures/openstack` (Keystone, Nova with the fake hypervisor,
//! Neutron, Glance, Cinder, Octavia) through the harness's own client: a tenant's network,
//! router, server, volume and load balancer come up, the conflicts a real cloud raises are
//! there, lists page, everything deletes cleanly; a cloud whose owner dies leaves no process
//! (`down` is checked at the end of capo.rs).

use crate::common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::openstack_services::{self, OpenStackServices, call, get, gone, id, processes_using};
use common::until;
use reqwest::Method;
use scs_e2e::env::openstack::identity::Session;
use scs_e2e::env::openstack::resources::{ApiError, OpenStack, Port, Service};
use serde_json::json;

async fn login(os: &OpenStackServices, cloud: &str) -> Session {
    openstack_services::login(&os.clouds_yaml, cloud).await
}

fn conflict(r: Result<impl std::fmt::Debug, ApiError>, what: &str) {
    match r {
        Err(e) if e.status() == Some(409) => {}
        other => panic!("{what}: expected 409 Conflict, got {other:?}"),
    }
}

/// On the shared cloud, in a project of its own (a new fixture would cost a start-up's CPU: `down`
/// is checked on capo.rs's own cloud, and the application credential of the fixture's own cloud
/// in `openstack.rs` and capo.rs).
#[tokio::test]
async fn a_tenant_comes_up_conflicts_pages_and_goes_away_on_real_services() {
    let _host = openstack_services::HostUse::shared().await;
    let os = openstack_services::shared().await;
    let tenant = os.tenant("tenant", "scs-e2e").await;
    let session = tenant.session().await;
    assert_eq!(
        session.project_id.as_deref(),
        Some(tenant.project_id.as_str()),
        "the login is scoped to the tenant's project"
    );
    let api = OpenStack::new(&session);

    // What the fixture provides: SCS flavors and the external network.
    let flavors = api.flavors().await.unwrap();
    let flavor = flavors.iter().find(|f| f.name == "SCS-2V-4-20s").expect("flavor SCS-2V-4-20s");
    assert_eq!((flavor.vcpus, flavor.ram, flavor.disk), (2, 4096, 20));
    let public = api
        .networks()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.name == "public")
        .expect("network public");
    assert!(public.external, "public is external");

    // Network, subnet, router with its gateway on public and an interface in the subnet.
    let net = id(
        &call(
            &api,
            Service::Network,
            Method::POST,
            "/networks",
            Some(json!({"network": {"name": "t-net"}})),
        )
        .await,
        "network",
    );
    let subnet = id(
        &call(
            &api,
            Service::Network,
            Method::POST,
            "/subnets",
            Some(json!({"subnet": {"name": "t-subnet", "network_id": net, "ip_version": 4, "cidr": "10.20.0.0/24"}})),
        )
        .await,
        "subnet",
    );
    let router = call(
        &api,
        Service::Network,
        Method::POST,
        "/routers",
        Some(json!({"router": {"name": "t-router", "external_gateway_info": {"network_id": public.id}}})),
    )
    .await;
    let router_id = id(&router, "router");
    let gw_ips = router["router"]["external_gateway_info"]["external_fixed_ips"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        gw_ips
            .iter()
            .any(|ip| ip["ip_address"].as_str().is_some_and(|a| a.starts_with("203.0.113."))),
        "the gateway has an address on public: {router}"
    );
    call(
        &api,
        Service::Network,
        Method::PUT,
        &format!("/routers/{router_id}/add_router_interface"),
        Some(json!({"subnet_id": subnet})),
    )
    .await;

    // A tiny image in Glance.
    let image = openstack_services::upload_image(&api, "t-image", json!({})).await;

    // A server on the fake hypervisor: scheduled, its port bound, ACTIVE.
    let server = id(
        &call(
            &api,
            Service::Compute,
            Method::POST,
            "/servers",
            Some(json!({"server": {"name": "t-server", "imageRef": image, "flavorRef": flavor.id, "networks": [{"uuid": net}]}})),
        )
        .await,
        "server",
    );
    until("server ACTIVE", Duration::from_secs(180), || async {
        let s = get(&api, Service::Compute, &format!("/servers/{server}"), "server")
            .await
            .ok_or("server vanished")?;
        match s["status"].as_str() {
            Some("ACTIVE") => Ok(Some(())),
            Some("ERROR") => Err(format!("server ERROR: {}", s["fault"])),
            _ => Ok(None),
        }
    })
    .await;
    let server_ports = api.ports_of_device(&server).await.unwrap();
    assert_eq!(server_ports.len(), 1, "one port for the server: {server_ports:?}");
    assert!(server_ports[0].fixed_ips.iter().any(|ip| ip.ip_address.starts_with("10.20.0.")));

    // A volume (Cinder's fake driver) and a load balancer (Octavia's noop drivers).
    let volume = id(
        &call(
            &api,
            Service::BlockStorage,
            Method::POST,
            "/volumes",
            Some(json!({"volume": {"name": "t-volume", "size": 1}})),
        )
        .await,
        "volume",
    );
    let lb = id(
        &call(
            &api,
            Service::LoadBalancer,
            Method::POST,
            "/lbaas/loadbalancers",
            Some(json!({"loadbalancer": {"name": "t-lb", "vip_subnet_id": subnet}})),
        )
        .await,
        "loadbalancer",
    );
    until("volume available", Duration::from_secs(120), || async {
        let v = get(&api, Service::BlockStorage, &format!("/volumes/{volume}"), "volume")
            .await
            .ok_or("volume vanished")?;
        match v["status"].as_str() {
            Some("available") => Ok(Some(())),
            Some("error") => Err(format!("volume error: {v}")),
            _ => Ok(None),
        }
    })
    .await;
    until("load balancer ACTIVE", Duration::from_secs(180), || async {
        let l = api
            .load_balancer(&lb)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("load balancer vanished")?;
        match l.provisioning_status.as_str() {
            "ACTIVE" => Ok(Some(())),
            "ERROR" => Err(format!("load balancer ERROR: {l:?}")),
            _ => Ok(None),
        }
    })
    .await;

    // The conflicts a real Neutron raises.
    conflict(api.delete_router(&router_id).await, "deleting a router that has an interface");
    conflict(api.delete_network(&net).await, "deleting a network a server's port is on");

    // Pagination: one port a page, following the markers, gives the unpaged list.
    let first = get(&api, Service::Network, "/ports?limit=1", "ports_links").await;
    let next = first
        .as_ref()
        .and_then(|l| l.as_array())
        .and_then(|l| l.iter().find(|x| x["rel"] == "next"))
        .cloned();
    assert!(
        next.is_some_and(|n| n["href"].as_str().unwrap_or("").contains("marker=")),
        "a next link with a marker: {first:?}"
    );
    let all: Vec<Port> = api.ports().await.unwrap();
    let paged: Vec<Port> = api.list(Service::Network, "/ports?limit=1", "ports").await.unwrap();
    assert!(all.len() >= 2, "the server's and the router interface's ports at least: {all:?}");
    assert_eq!(paged.len(), all.len(), "pages add up");
    assert_eq!(
        paged.iter().map(|p| p.id.clone()).collect::<BTreeSet<_>>(),
        all.iter().map(|p| p.id.clone()).collect::<BTreeSet<_>>()
    );

    // Clean deletion, in dependency order, each waited for.
    api.delete_load_balancer(&lb).await.unwrap();
    api.delete_server(&server).await.unwrap();
    api.delete_volume(&volume).await.unwrap();
    until("load balancer deleted", Duration::from_secs(120), || async {
        Ok(match api.load_balancer(&lb).await.map_err(|e| e.to_string())? {
            None => Some(()),
            Some(l) if l.provisioning_status == "DELETED" => Some(()),
            Some(_) => None,
        })
    })
    .await;
    until("server deleted", Duration::from_secs(120), || {
        gone(&api, Service::Compute, format!("/servers/{server}"), "server")
    })
    .await;
    until("volume deleted", Duration::from_secs(120), || {
        gone(&api, Service::BlockStorage, format!("/volumes/{volume}"), "volume")
    })
    .await;
    call(
        &api,
        Service::Network,
        Method::PUT,
        &format!("/routers/{router_id}/remove_router_interface"),
        Some(json!({"subnet_id": subnet})),
    )
    .await;
    api.clear_router_gateway(&router_id).await.unwrap();
    api.delete_router(&router_id).await.unwrap();
    api.delete_network(&net).await.unwrap();
    api.delete_image(&image).await.unwrap();

    assert!(api.servers().await.unwrap().is_empty(), "no server left");
    assert!(api.volumes().await.unwrap().is_empty(), "no volume left");
    assert!(api.routers().await.unwrap().is_empty(), "no router left");
    assert!(api.ports().await.unwrap().is_empty(), "no port left");
    assert!(
        api.subnets().await.unwrap().iter().all(|s| s.network_id == public.id),
        "only public's subnet left"
    );
    assert_eq!(
        api.networks().await.unwrap().iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
        ["public"],
        "only the external network left"
    );
    assert!(api.images().await.unwrap().iter().all(|i| i.id != image), "the image is gone");
    let lbs = api.load_balancers().await.unwrap();
    assert!(
        lbs.iter().all(|l| l.provisioning_status == "DELETED"),
        "no load balancer left: {lbs:?}"
    );

    // The admin cloud works too (the fixture's second entry).
    let admin = login(os, "scs-e2e-admin").await;
    assert!(OpenStack::new(&admin).flavors().await.unwrap().len() >= 4);
}

#[tokio::test]
async fn the_cloud_stops_itself_when_its_owner_dies() {
    // A stand-in for a test process that is SIGKILLed (the fixture watches its owner's pidfd):
    // `cat` ends with our end of its stdin, so it cannot outlive this test if the test is killed.
    let mut owner = tokio::process::Command::new("cat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let os = openstack_services::start_owned_by(owner.id().unwrap()).await;
    let dir = os.state_dir().to_path_buf();
    assert!(!processes_using(&dir).is_empty(), "the fixture's processes name its state dir");
    owner.kill().await.unwrap();
    let t = Instant::now();
    until(
        "every process of the fixture gone after its owner died",
        Duration::from_secs(20),
        || async { Ok(processes_using(&dir).is_empty().then_some(())) },
    )
    .await;
    let took = t.elapsed();
    assert!(took < Duration::from_secs(10), "teardown took {took:?}");
    let status = std::process::Command::new("sh")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/openstack/openstack.sh"))
        .arg("status")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(
        status.status.code(),
        Some(3),
        "status after the owner died: {}",
        String::from_utf8_lossy(&status.stdout)
    );
}

/// The services start with the fixture's sitecustomize (fixtures/openstack/site), which caches
/// `inspect`'s class lookup: what it answers is what Python answers without it, for every class
/// of WSME and of Octavia's API types (the lookups it was made for), errors included.
#[tokio::test]
async fn the_services_class_lookup_cache_answers_as_python_does() {
    let os = openstack_services::shared().await;
    let info: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(os.state_dir().join("fixture.json")).unwrap()).unwrap();
    // The supervisor is the virtualenv's python running fixture.py.
    let supervisor = info["supervisor"].as_u64().unwrap();
    let cmdline = std::fs::read(format!("/proc/{supervisor}/cmdline")).unwrap();
    let python = String::from_utf8(cmdline.split(|b| *b == 0).next().unwrap().to_vec()).unwrap();
    let site = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/openstack/site");
    // Every service starts with it first on its path: nova-compute's environment shows it (gunicorn
    // and oslo.service's workers overwrite theirs with their process titles).
    let compute = info["processes"]["nova-compute"].as_u64().unwrap();
    let environ = std::fs::read(format!("/proc/{compute}/environ")).unwrap();
    let path = environ
        .split(|b| *b == 0)
        .find_map(|v| v.strip_prefix(b"PYTHONPATH="))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    assert_eq!(
        path.split(':').next().map(std::path::Path::new).map(|p| p.canonicalize().unwrap()),
        Some(site.canonicalize().unwrap()),
        "nova-compute's PYTHONPATH: {path}"
    );
    let script = r#"
import importlib, inspect, json, pkgutil, sys, warnings
warnings.simplefilter("ignore")
print("cached" if type(inspect.ast).__name__ == "CachingAst" else "plain", file=sys.stderr)
out = {}
for pkg in ["wsme", "octavia.api.v2.types"]:
    for m in pkgutil.walk_packages(importlib.import_module(pkg).__path__, pkg + "."):
        try:
            mod = importlib.import_module(m.name)
        except Exception:
            continue
        for name, obj in sorted(vars(mod).items()):
            if inspect.isclass(obj):
                try:
                    out[m.name + "." + name] = inspect.findsource(obj)[1]
                except Exception as e:
                    out[m.name + "." + name] = type(e).__name__
print(json.dumps(out, sort_keys=True))
"#;
    let run = |with_site: bool| {
        let mut c = std::process::Command::new(&python);
        c.arg("-c").arg(script).env_remove("PYTHONPATH");
        if with_site {
            c.env("PYTHONPATH", &site);
        }
        let out = c.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        (String::from_utf8(out.stdout).unwrap(), err)
    };
    let (plain, plain_err) = run(false);
    let (cached, cached_err) = run(true);
    assert!(
        plain_err.starts_with("plain") && cached_err.starts_with("cached"),
        "{plain_err}\n{cached_err}"
    );
    let answers: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&plain).unwrap();
    let lines = answers.values().filter(|v| v.is_u64()).count();
    assert!(lines > 100, "only {lines} class lines found: {plain}");
    assert_eq!(plain, cached);
}
