//! A loopback stand-in for Nova, Neutron, Octavia, Cinder and Glance: the documented request and
//! response shapes of the calls the harness makes, state in memory, every token checked against
//! the real Keystone (GET /v3/auth/tokens). Behaviours the cleanup has to cope with are the
//! services' own: small pages with `next` links, a router refusing deletion while it has
//! interfaces (409), networks, subnets and security groups refusing while ports use them,
//! load balancers with children needing `cascade=true`, in-use volumes refusing (400), servers
//! that take a few looks to disappear (and one that never does, when told to stick).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::{Value, json};

/// Items per page unless the client asks for `limit`: small, so every list crosses pages.
pub const PAGE_SIZE: usize = 2;
/// How many GETs a deleted server is still seen (then once as DELETED, then 404).
const SERVER_DELETE_POLLS: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Coll {
    Servers,
    ServerGroups,
    Flavors,
    Ports,
    FloatingIps,
    SecurityGroups,
    Networks,
    Subnets,
    Routers,
    LoadBalancers,
    Volumes,
    Images,
}

impl Coll {
    /// The JSON key of the collection (and `<key>_links`).
    fn key(self) -> &'static str {
        match self {
            Coll::Servers => "servers",
            Coll::ServerGroups => "server_groups",
            Coll::Flavors => "flavors",
            Coll::Ports => "ports",
            Coll::FloatingIps => "floatingips",
            Coll::SecurityGroups => "security_groups",
            Coll::Networks => "networks",
            Coll::Subnets => "subnets",
            Coll::Routers => "routers",
            Coll::LoadBalancers => "loadbalancers",
            Coll::Volumes => "volumes",
            Coll::Images => "images",
        }
    }
}

#[derive(Default)]
struct State {
    items: BTreeMap<Coll, BTreeMap<String, Value>>,
    next_id: u64,
    /// Server id → GETs left before it is gone.
    deleting: HashMap<String, u32>,
    /// Servers whose delete is accepted but never happens.
    stuck: HashSet<String>,
    /// Load balancers being deleted (one more GET shows PENDING_DELETE).
    lb_deleting: HashSet<String>,
    /// Every request, `METHOD /path?query`, plus `GONE <coll> <id>` when something disappears.
    log: Vec<String>,
    /// Requests without a valid token.
    unauthorized: usize,
}

impl State {
    fn coll(&mut self, c: Coll) -> &mut BTreeMap<String, Value> {
        self.items.entry(c).or_default()
    }
    fn remove(&mut self, c: Coll, id: &str) -> Option<Value> {
        let v = self.coll(c).remove(id);
        if v.is_some() {
            self.log.push(format!("GONE {} {id}", c.key()));
        }
        v
    }
    fn ports_where(&mut self, f: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.coll(Coll::Ports).values().filter(|p| f(p)).cloned().collect()
    }
}

struct Shared {
    state: Mutex<State>,
    keystone: Mutex<Option<String>>,
    /// Valid tokens → their project (Keystone asked once per token).
    tokens: Mutex<HashMap<String, String>>,
    http: reqwest::Client,
}

pub struct FakeOpenStack {
    pub port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOpenStack {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Reply = (u16, Value);

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn neutron_error(status: u16, kind: &str, msg: String) -> Reply {
    (status, json!({"NeutronError": {"type": kind, "message": msg, "detail": ""}}))
}

fn nova_error(status: u16, msg: String) -> Reply {
    let key = match status {
        404 => "itemNotFound",
        409 => "conflictingRequest",
        _ => "badRequest",
    };
    (status, json!({key: {"code": status, "message": msg}}))
}

impl FakeOpenStack {
    pub async fn start() -> FakeOpenStack {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            keystone: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
            http: reqwest::Client::new(),
        });
        let sh = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sh = sh.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let sh = sh.clone();
                        async move { Ok::<_, Infallible>(handle(&sh, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeOpenStack { port, shared, task }
    }

    /// `KEYSTONE_EXTRA_ENDPOINTS` for keystone.sh: the services under path prefixes, like
    /// devstack; Cinder's URL has the project id Keystone fills in.
    pub fn catalog_spec(&self) -> String {
        let b = format!("http://127.0.0.1:{}", self.port);
        format!(
            "compute=nova={b}/compute/v2.1,network=neutron={b}/network,load-balancer=octavia={b}/load-balancer,volumev3=cinderv3={b}/volume/v3/$(project_id)s,image=glance={b}/image"
        )
    }

    /// Where tokens are checked: the Keystone `/v3` URL.
    pub fn set_keystone(&self, v3: &str) {
        *self.shared.keystone.lock().unwrap() = Some(v3.trim_end_matches('/').to_string());
    }

    /// Adds a resource (the test seeds the cloud directly); returns its id.
    pub fn add(&self, c: Coll, mut v: Value) -> String {
        let mut st = self.shared.state.lock().unwrap();
        st.next_id += 1;
        let id = format!("{:08x}-0000-4000-8000-{:012x}", c as u32, st.next_id);
        v["id"] = json!(id);
        st.coll(c).insert(id.clone(), v);
        id
    }

    pub fn get(&self, c: Coll, id: &str) -> Option<Value> {
        self.shared.state.lock().unwrap().coll(c).get(id).cloned()
    }

    pub fn ids(&self, c: Coll) -> Vec<String> {
        self.shared.state.lock().unwrap().coll(c).keys().cloned().collect()
    }

    /// The server accepts deletes but never goes.
    pub fn stick(&self, server_id: &str) {
        self.shared.state.lock().unwrap().stuck.insert(server_id.into());
    }

    pub fn log(&self) -> Vec<String> {
        self.shared.state.lock().unwrap().log.clone()
    }

    pub fn unauthorized(&self) -> usize {
        self.shared.state.lock().unwrap().unauthorized
    }
}

async fn handle(sh: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    // Links are absolute, built from the Host the client used, as the services do.
    let origin = format!(
        "http://{}",
        req.headers().get("host").and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1")
    );
    let token = req.headers().get("x-auth-token").and_then(|v| v.to_str().ok()).map(String::from);
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let full = match req_query(&query) {
        q if q.is_empty() => path.clone(),
        q => format!("{path}?{q}"),
    };
    sh.state.lock().unwrap().log.push(format!("{method} {full}"));

    let (status, reply) = match validate(sh, token.as_deref()).await {
        None => {
            sh.state.lock().unwrap().unauthorized += 1;
            (
                401,
                json!({"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}),
            )
        }
        Some(project) => {
            let mut st = sh.state.lock().unwrap();
            route(&mut st, &method, &path, &query, &body, &project, &origin)
        }
    };
    let (ctype, bytes) = if reply.is_string() {
        // Glance answers errors in plain text.
        ("text/plain", reply.as_str().unwrap().as_bytes().to_vec())
    } else if reply.is_null() {
        ("application/json", Vec::new())
    } else {
        ("application/json", serde_json::to_vec(&reply).unwrap())
    };
    Response::builder()
        .status(status)
        .header("content-type", ctype)
        .body(Full::new(Bytes::from(bytes)))
        .unwrap()
}

fn req_query(q: &[(String, String)]) -> String {
    q.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// The token's project, per Keystone (a token may validate itself).
async fn validate(sh: &Shared, token: Option<&str>) -> Option<String> {
    let token = token?;
    if let Some(p) = sh.tokens.lock().unwrap().get(token) {
        return Some(p.clone());
    }
    let ks = sh.keystone.lock().unwrap().clone()?;
    let r = sh
        .http
        .get(format!("{ks}/auth/tokens"))
        .header("X-Auth-Token", token)
        .header("X-Subject-Token", token)
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    let v: Value = r.json().await.ok()?;
    let project = v.pointer("/token/project/id").and_then(Value::as_str)?.to_string();
    sh.tokens.lock().unwrap().insert(token.to_string(), project.clone());
    Some(project)
}

/// One page of `items` (sorted by id) after `marker`, with the next link if more remain.
fn page(items: Vec<Value>, query: &[(String, String)], key: &str, link_base: &str, glance: bool) -> Reply {
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let limit = q("limit").and_then(|l| l.parse().ok()).unwrap_or(PAGE_SIZE).max(1);
    let start = match q("marker") {
        Some(m) => match items.iter().position(|i| s(i, "id") == m) {
            Some(p) => p + 1,
            None => {
                return (
                    400,
                    json!({"badRequest": {"code": 400, "message": format!("marker [{m}] not found")}}),
                );
            }
        },
        None => 0,
    };
    let rest = &items[start.min(items.len())..];
    let this: Vec<Value> = rest.iter().take(limit).cloned().collect();
    let mut doc = json!({ key: this });
    if rest.len() > limit {
        let last = s(this.last().unwrap(), "id");
        let others: Vec<(String, String)> = query.iter().filter(|(k, _)| k != "limit" && k != "marker").cloned().collect();
        let extra = if others.is_empty() {
            String::new()
        } else {
            format!("&{}", req_query(&others))
        };
        let next = format!("{link_base}?limit={limit}&marker={last}{extra}");
        if glance {
            doc["next"] = json!(next);
        } else {
            doc[format!("{key}_links")] = json!([{"rel": "next", "href": next}]);
        }
    }
    (200, doc)
}

/// Neutron's list filters: `field=value` on plain fields.
fn filtered(st: &mut State, c: Coll, query: &[(String, String)]) -> Vec<Value> {
    st.coll(c)
        .values()
        .filter(|v| {
            query
                .iter()
                .filter(|(k, _)| k != "limit" && k != "marker")
                .all(|(k, want)| v.get(k).and_then(Value::as_str) == Some(want))
        })
        .cloned()
        .collect()
}

fn route(st: &mut State, method: &str, path: &str, query: &[(String, String)], body: &Value, project: &str, origin: &str) -> Reply {
    let seg: Vec<&str> = path.trim_matches('/').split('/').collect();
    match seg.as_slice() {
        ["compute", "v2.1", rest @ ..] => nova(st, method, rest, query, origin),
        ["network", "v2.0", rest @ ..] => neutron(st, method, rest, query, body, origin),
        ["load-balancer", "v2", "lbaas", rest @ ..] => octavia(st, method, rest, query, origin),
        ["volume", "v3", p, rest @ ..] => {
            if *p != project {
                return nova_error(400, "Malformed request url".into());
            }
            cinder(st, method, rest, query, project, origin)
        }
        ["image", "v2", rest @ ..] => glance(st, method, rest, query),
        _ => (404, json!({"error": {"code": 404, "message": format!("no such API: {path}")}})),
    }
}

fn nova(st: &mut State, method: &str, rest: &[&str], query: &[(String, String)], origin: &str) -> Reply {
    match (method, rest) {
        ("GET", ["servers", "detail"]) => {
            let items = st.coll(Coll::Servers).values().cloned().collect();
            page(items, query, "servers", &format!("{origin}/compute/v2.1/servers/detail"), false)
        }
        ("GET", ["servers", id]) => {
            let Some(mut v) = st.coll(Coll::Servers).get(*id).cloned() else {
                return nova_error(404, format!("Instance {id} could not be found."));
            };
            if st.stuck.contains(*id) {
                v["OS-EXT-STS:task_state"] = json!("deleting");
            } else if let Some(left) = st.deleting.get_mut(*id) {
                if *left == 0 {
                    st.deleting.remove(*id);
                    server_gone(st, id);
                    v["status"] = json!("DELETED");
                } else {
                    *left -= 1;
                    v["OS-EXT-STS:task_state"] = json!("deleting");
                }
            }
            (200, json!({"server": v}))
        }
        ("DELETE", ["servers", id]) => {
            if !st.coll(Coll::Servers).contains_key(*id) {
                return nova_error(404, format!("Instance {id} could not be found."));
            }
            st.deleting.entry(id.to_string()).or_insert(SERVER_DELETE_POLLS);
            (204, Value::Null)
        }
        ("GET", ["os-server-groups"]) => (
            200,
            json!({"server_groups": st.coll(Coll::ServerGroups).values().cloned().collect::<Vec<_>>()}),
        ),
        ("DELETE", ["os-server-groups", id]) => match st.remove(Coll::ServerGroups, id) {
            Some(_) => (204, Value::Null),
            None => nova_error(404, format!("Server group {id} could not be found.")),
        },
        ("GET", ["flavors", "detail"]) => {
            let items = st.coll(Coll::Flavors).values().cloned().collect();
            page(items, query, "flavors", &format!("{origin}/compute/v2.1/flavors/detail"), false)
        }
        ("GET", ["limits"]) => {
            let used = st.coll(Coll::Servers).len();
            (
                200,
                json!({"limits": {"rate": [], "absolute": {"maxTotalInstances": 10, "totalInstancesUsed": used, "maxTotalCores": 20, "totalCoresUsed": used * 2}}}),
            )
        }
        _ => nova_error(404, "The resource could not be found.".into()),
    }
}

/// A server is gone: its Nova-made ports go, its volumes are detached.
fn server_gone(st: &mut State, id: &str) {
    st.remove(Coll::Servers, id);
    for p in st.ports_where(|p| s(p, "device_id") == id && s(p, "device_owner").starts_with("compute:")) {
        st.remove(Coll::Ports, &s(&p, "id"));
    }
    for v in st.coll(Coll::Volumes).values_mut() {
        let attached = v["attachments"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| s(x, "server_id") == id));
        if attached {
            v["attachments"] = json!([]);
            v["status"] = json!("available");
        }
    }
}

fn neutron_coll(name: &str) -> Option<(Coll, &'static str)> {
    Some(match name {
        "ports" => (Coll::Ports, "Port"),
        "floatingips" => (Coll::FloatingIps, "Floating IP"),
        "security-groups" => (Coll::SecurityGroups, "Security group"),
        "networks" => (Coll::Networks, "Network"),
        "subnets" => (Coll::Subnets, "Subnet"),
        "routers" => (Coll::Routers, "Router"),
        _ => return None,
    })
}

fn neutron(st: &mut State, method: &str, rest: &[&str], query: &[(String, String)], body: &Value, origin: &str) -> Reply {
    match (method, rest) {
        ("GET", [name]) => {
            let Some((c, _)) = neutron_coll(name) else {
                return neutron_error(404, "HTTPNotFound", "The resource could not be found.".into());
            };
            let items = filtered(st, c, query);
            page(items, query, c.key(), &format!("{origin}/network/v2.0/{name}"), false)
        }
        ("PUT", ["routers", id, "remove_router_interface"]) => {
            let (port_id, subnet_id) = (s(body, "port_id"), s(body, "subnet_id"));
            let found = st
                .ports_where(|p| {
                    s(p, "device_id") == *id
                        && s(p, "device_owner") == "network:router_interface"
                        && (s(p, "id") == port_id
                            || p["fixed_ips"]
                                .as_array()
                                .is_some_and(|f| f.iter().any(|x| !subnet_id.is_empty() && s(x, "subnet_id") == subnet_id)))
                })
                .into_iter()
                .next();
            match found {
                Some(p) => {
                    let pid = s(&p, "id");
                    st.remove(Coll::Ports, &pid);
                    let sub = p["fixed_ips"][0]["subnet_id"].clone();
                    (200, json!({"id": id, "port_id": pid, "subnet_id": sub, "subnet_ids": [sub]}))
                }
                None => neutron_error(
                    404,
                    "RouterInterfaceNotFound",
                    format!("Router {id} does not have an interface with id {port_id}"),
                ),
            }
        }
        ("PUT", ["routers", id]) => {
            let Some(r) = st.coll(Coll::Routers).get_mut(*id) else {
                return neutron_error(404, "RouterNotFound", format!("Router {id} could not be found"));
            };
            if let Some(g) = body.pointer("/router/external_gateway_info") {
                r["external_gateway_info"] = if g.as_object().is_none_or(|o| o.is_empty()) {
                    Value::Null
                } else {
                    g.clone()
                };
            }
            (200, json!({"router": r.clone()}))
        }
        ("DELETE", [name, id]) => {
            let Some((c, label)) = neutron_coll(name) else {
                return neutron_error(404, "HTTPNotFound", "The resource could not be found.".into());
            };
            if !st.coll(c).contains_key(*id) {
                let kind = format!("{}NotFound", label.replace(' ', ""));
                return neutron_error(404, &kind, format!("{label} {id} could not be found."));
            }
            let id = *id;
            let busy_ports =
                |st: &mut State, f: &dyn Fn(&Value) -> bool| !st.ports_where(|p| s(p, "device_owner") != "network:dhcp" && f(p)).is_empty();
            match c {
                Coll::Routers
                    if !st
                        .ports_where(|p| s(p, "device_id") == id && s(p, "device_owner") == "network:router_interface")
                        .is_empty() =>
                {
                    return neutron_error(409, "RouterInUse", format!("Router {id} still has ports"));
                }
                Coll::Subnets
                    if busy_ports(st, &|p| {
                        p["fixed_ips"].as_array().is_some_and(|f| f.iter().any(|x| s(x, "subnet_id") == id))
                    }) =>
                {
                    return neutron_error(
                        409,
                        "SubnetInUse",
                        format!("Unable to complete operation on subnet {id}: One or more ports have an IP allocation from this subnet."),
                    );
                }
                Coll::Networks if busy_ports(st, &|p| s(p, "network_id") == id) => {
                    return neutron_error(
                        409,
                        "NetworkInUse",
                        format!("Unable to complete operation on network {id}. There are one or more ports still in use on the network."),
                    );
                }
                Coll::SecurityGroups if busy_ports(st, &|p| p["security_groups"].as_array().is_some_and(|g| g.iter().any(|x| x == id))) => {
                    return neutron_error(409, "SecurityGroupInUse", format!("Security Group {id} in use."));
                }
                Coll::Ports if s(&st.coll(c)[id], "device_owner").starts_with("network:") => {
                    let owner = s(&st.coll(c)[id], "device_owner");
                    return neutron_error(
                        409,
                        "ServicePortInUse",
                        format!("Port {id} cannot be deleted directly via the port API: has device owner {owner}."),
                    );
                }
                _ => {}
            }
            st.remove(c, id);
            match c {
                Coll::Ports => {
                    for f in st.coll(Coll::FloatingIps).values_mut() {
                        if s(f, "port_id") == id {
                            f["port_id"] = Value::Null;
                        }
                    }
                }
                Coll::Networks => {
                    for sub in filtered(st, Coll::Subnets, &[("network_id".into(), id.into())]) {
                        st.remove(Coll::Subnets, &s(&sub, "id"));
                    }
                    for p in st.ports_where(|p| s(p, "network_id") == id) {
                        st.remove(Coll::Ports, &s(&p, "id"));
                    }
                }
                _ => {}
            }
            (204, Value::Null)
        }
        _ => neutron_error(404, "HTTPNotFound", "The resource could not be found.".into()),
    }
}

fn octavia(st: &mut State, method: &str, rest: &[&str], query: &[(String, String)], origin: &str) -> Reply {
    let not_found = |id: &str| {
        (
            404,
            json!({"faultcode": "Client", "faultstring": format!("Load Balancer {id} could not be found."), "debuginfo": null}),
        )
    };
    match (method, rest) {
        ("GET", ["loadbalancers"]) => {
            let items = st.coll(Coll::LoadBalancers).values().cloned().collect();
            page(
                items,
                query,
                "loadbalancers",
                &format!("{origin}/load-balancer/v2/lbaas/loadbalancers"),
                false,
            )
        }
        ("GET", ["loadbalancers", id]) => {
            let Some(mut v) = st.coll(Coll::LoadBalancers).get(*id).cloned() else {
                return not_found(id);
            };
            if st.lb_deleting.remove(*id) {
                // Octavia deletes in the background; the next look finds it gone.
                st.remove(Coll::LoadBalancers, id);
                if let Some(vip) = v["vip_port_id"].as_str() {
                    st.remove(Coll::Ports, vip);
                }
                v["provisioning_status"] = json!("PENDING_DELETE");
            }
            (200, json!({"loadbalancer": v}))
        }
        ("DELETE", ["loadbalancers", id]) => {
            let Some(v) = st.coll(Coll::LoadBalancers).get(*id) else {
                return not_found(id);
            };
            let cascade = query.iter().any(|(k, v)| k == "cascade" && v == "true");
            if !cascade && v["listeners"].as_array().is_some_and(|l| !l.is_empty()) {
                return (
                    400,
                    json!({"faultcode": "Client", "faultstring": format!("Cannot delete Load Balancer {id} - it has children"), "debuginfo": null}),
                );
            }
            st.lb_deleting.insert(id.to_string());
            (204, Value::Null)
        }
        _ => (404, json!({"faultcode": "Client", "faultstring": "Not Found", "debuginfo": null})),
    }
}

fn cinder(st: &mut State, method: &str, rest: &[&str], query: &[(String, String)], project: &str, origin: &str) -> Reply {
    match (method, rest) {
        ("GET", ["volumes", "detail"]) => {
            let items = st.coll(Coll::Volumes).values().cloned().collect();
            page(
                items,
                query,
                "volumes",
                &format!("{origin}/volume/v3/{project}/volumes/detail"),
                false,
            )
        }
        ("DELETE", ["volumes", id]) => {
            let Some(v) = st.coll(Coll::Volumes).get(*id) else {
                return nova_error(404, format!("Volume {id} could not be found."));
            };
            if s(v, "status") == "in-use" {
                return nova_error(
                    400,
                    "Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer.".into(),
                );
            }
            st.remove(Coll::Volumes, id);
            (202, Value::Null)
        }
        _ => nova_error(404, "The resource could not be found.".into()),
    }
}

fn glance(st: &mut State, method: &str, rest: &[&str], query: &[(String, String)]) -> Reply {
    let not_found = || (404, json!("404 Not Found\n\nThe resource could not be found.\n\n   "));
    match (method, rest) {
        ("GET", ["images"]) => {
            let items = st.coll(Coll::Images).values().cloned().collect();
            // Glance's `next` is a path below its endpoint.
            let (status, mut doc) = page(items, query, "images", "/v2/images", true);
            doc["first"] = json!("/v2/images");
            doc["schema"] = json!("/v2/schemas/images");
            (status, doc)
        }
        ("DELETE", ["images", id]) => match st.remove(Coll::Images, id) {
            Some(_) => (204, Value::Null),
            None => not_found(),
        },
        _ => not_found(),
    }
}
