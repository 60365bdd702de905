//! The OpenStack resource APIs the harness needs: typed list and delete calls for compute
//! (Nova), network (Neutron), load-balancer (Octavia), block-storage (Cinder) and image (Glance),
//! over an authenticated [`Session`]. Lists follow every page; a delete answered 404 means the
//! resource is already gone. Errors name the service, the call and OpenStack's own message.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::identity::{IdentityError, Session};

/// Safety net against a service whose `next` links never end.
const MAX_PAGES: usize = 10_000;

/// The services, by the catalog types they are published under (first match wins).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    /// Nova (`compute`): servers, server groups, flavors, limits.
    Compute,
    /// Neutron (`network`): networks, subnets, routers, ports, floating IPs, security groups.
    Network,
    /// Octavia (`load-balancer`): load balancers.
    LoadBalancer,
    /// Cinder (`block-storage` or `volumev3`): volumes.
    BlockStorage,
    /// Glance (`image`): images.
    Image,
}

impl Service {
    /// Catalog service types; Cinder is `block-storage` on new clouds, `volumev3` on most.
    pub fn catalog_types(self) -> &'static [&'static str] {
        match self {
            Service::Compute => &["compute"],
            Service::Network => &["network"],
            Service::LoadBalancer => &["load-balancer"],
            Service::BlockStorage => &["block-storage", "volumev3"],
            Service::Image => &["image"],
        }
    }

    /// The service as messages name it: its type and OpenStack project, e.g. `network (neutron)`.
    pub fn label(self) -> &'static str {
        match self {
            Service::Compute => "compute (nova)",
            Service::Network => "network (neutron)",
            Service::LoadBalancer => "load-balancer (octavia)",
            Service::BlockStorage => "block-storage (cinder)",
            Service::Image => "image (glance)",
        }
    }
}

/// Why a resource API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token (Keystone unreachable or refusing), no catalog endpoint for the service, or the
    /// service could not be reached.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The service answered with an error status.
    #[error("{service}: {call} answered {status}: {message}")]
    Http {
        /// The service's [`Service::label`].
        service: &'static str,
        /// Method and path of the call, e.g. `GET /v2.0/ports` (no host).
        call: String,
        /// The HTTP status code.
        status: u16,
        /// OpenStack's message from the error body (see [`error_message`]).
        message: String,
    },
    /// The service answered success with a body that is not what the API documents.
    #[error("{service}: {call}: unexpected answer: {detail}")]
    Malformed {
        /// The service's [`Service::label`].
        service: &'static str,
        /// Method and path of the call, e.g. `GET /servers/detail` (no host).
        call: String,
        /// What was wrong: the parse error, a missing key, too many pages.
        detail: String,
    },
}

impl ApiError {
    /// The cloud could not be reached or refused our credentials: an infrastructure problem,
    /// not a leftover.
    pub fn is_unreachable_or_auth(&self) -> bool {
        match self {
            ApiError::Identity(IdentityError::NoEndpoint { .. }) => false,
            ApiError::Identity(_) => true,
            ApiError::Http { status, .. } => matches!(status, 401 | 403),
            ApiError::Malformed { .. } => false,
        }
    }

    /// The catalog has no endpoint for the service (a cloud without Octavia, say).
    pub fn is_no_endpoint(&self) -> bool {
        matches!(self, ApiError::Identity(IdentityError::NoEndpoint { .. }))
    }

    /// The HTTP status of an [`ApiError::Http`]; `None` for the other errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What a delete found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    /// The service accepted the delete (it may still be going, like a server).
    Accepted,
    /// 404: someone (a cascade, the controller) was faster.
    AlreadyGone,
}

/// OpenStack's message from an error body. The services disagree on the shape: Neutron
/// `{"NeutronError": {"message"}}`, Nova and Cinder `{"itemNotFound": {"message"}}`, Octavia
/// `{"faultstring"}` or `{"description"}`, Keystone `{"error": {"message"}}`, Glance plain text.
pub fn error_message(body: &str) -> String {
    let text = match serde_json::from_str::<Value>(body) {
        Ok(v) => json_message(&v).unwrap_or_else(|| body.trim().to_string()),
        Err(_) => body.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" "),
    };
    let mut text = crate::redact::apply(&text).into_owned();
    if text.len() > 500 {
        let mut cut = 500;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    if text.is_empty() { "(no message)".into() } else { text }
}

fn json_message(v: &Value) -> Option<String> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from);
    s(v, "message")
        .or_else(|| s(v, "faultstring"))
        .or_else(|| s(v, "description"))
        .or_else(|| v.get("error").and_then(|e| s(e, "message")))
        .or_else(|| v.as_object()?.values().find_map(|inner| s(inner, "message")))
}

/// Path and query of a URL, for messages (the host is the catalog's business).
fn call_name(method: &reqwest::Method, url: &str) -> String {
    let path = url
        .split_once("://")
        .map(|(_, rest)| rest.find('/').map(|i| &rest[i..]).unwrap_or("/"))
        .unwrap_or(url);
    format!("{method} {path}")
}

/// Resolves `href` (absolute, or a path) against `base`'s origin and path prefix.
fn join_url(base: &str, href: &str) -> String {
    if href.starts_with("http://") || href.starts_with("https://") {
        return href.to_string();
    }
    format!("{}/{}", base.trim_end_matches('/'), href.trim_start_matches('/'))
}

fn origin(url: &str) -> &str {
    match url.split_once("://") {
        Some((scheme, rest)) => &url[..scheme.len() + 3 + rest.find('/').unwrap_or(rest.len())],
        None => url,
    }
}

/// Appends `version` unless the endpoint already names a version.
fn versioned(endpoint: &str, version: &str) -> String {
    let last = endpoint.rsplit('/').next().unwrap_or("");
    if last.starts_with('v') && last[1..].chars().next().is_some_and(|c| c.is_ascii_digit()) {
        endpoint.to_string()
    } else {
        format!("{endpoint}/{version}")
    }
}

// --- typed resources -------------------------------------------------------------------------

/// A reference by name, as Nova lists a server's security groups.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct NamedRef {
    /// The referenced object's name.
    #[serde(default)]
    pub name: String,
}

/// A Nova server (`GET /servers/detail`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Server {
    /// The server's id.
    pub id: String,
    /// The server's name (CAPO names it after the machine).
    #[serde(default)]
    pub name: String,
    /// Nova's status, e.g. `ACTIVE`, `BUILD`, `ERROR`, `DELETED`.
    #[serde(default)]
    pub status: String,
    /// Network name → addresses: where the server is attached.
    #[serde(default)]
    pub addresses: BTreeMap<String, Value>,
    /// The security groups the server is in, by name.
    #[serde(default)]
    pub security_groups: Vec<NamedRef>,
    /// The server's metadata key/value pairs.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Nova `OS-EXT-STS:task_state`, e.g. `deleting`; `None` when no task is running.
    #[serde(default, rename = "OS-EXT-STS:task_state")]
    pub task_state: Option<String>,
    /// `{id}` before compute microversion 2.47, the flavor's own `vcpus`, `ram`, … from it on.
    #[serde(default)]
    pub flavor: Value,
}

/// A Nova server group (affinity or anti-affinity policy for servers).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ServerGroup {
    /// The server group's id.
    pub id: String,
    /// The server group's name.
    #[serde(default)]
    pub name: String,
    /// Ids of the servers in the group.
    #[serde(default)]
    pub members: Vec<String>,
}

/// A Nova flavor: the size of a server.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Flavor {
    /// The flavor's id.
    pub id: String,
    /// The flavor's name, e.g. `SCS-2V-4`.
    #[serde(default)]
    pub name: String,
    /// Virtual CPUs.
    #[serde(default)]
    pub vcpus: u64,
    /// RAM in MiB.
    #[serde(default)]
    pub ram: u64,
    /// Root disk in GiB; 0 when the flavor has no root disk (boot from volume).
    #[serde(default)]
    pub disk: u64,
}

/// Nova's absolute limits (quota and usage), like `maxTotalInstances` / `totalInstancesUsed`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Limits {
    /// Nova `limits.absolute`: name → value; a maximum of -1 means unlimited.
    #[serde(default)]
    pub absolute: BTreeMap<String, i64>,
}

/// One of a port's fixed IPs (Neutron `fixed_ips[]`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct FixedIp {
    /// The subnet the address is from.
    #[serde(default)]
    pub subnet_id: String,
    /// The IP address.
    #[serde(default)]
    pub ip_address: String,
}

/// A Neutron port.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Port {
    /// The port's id.
    pub id: String,
    /// The port's name; CAPO names its ports `<server>-<index|suffix>`.
    #[serde(default)]
    pub name: String,
    /// The port's description.
    #[serde(default)]
    pub description: String,
    /// The network the port is on.
    #[serde(default)]
    pub network_id: String,
    /// The id of what uses the port (a server, a router, ...); empty when unbound.
    #[serde(default)]
    pub device_id: String,
    /// Who uses the port, e.g. `compute:nova`, `network:router_interface`, `network:dhcp`.
    #[serde(default)]
    pub device_owner: String,
    /// The port's addresses and their subnets.
    #[serde(default)]
    pub fixed_ips: Vec<FixedIp>,
    /// Ids of the security groups applied to the port.
    #[serde(default)]
    pub security_groups: Vec<String>,
}

impl Port {
    /// Ports Neutron or Octavia own (router interfaces and gateways, DHCP, floating IPs, load
    /// balancer VIPs): they go with their owner and cannot be deleted directly.
    pub fn is_service_owned(&self) -> bool {
        self.device_owner.starts_with("network:")
            || self.device_owner.starts_with("Octavia")
            || self.device_owner == "neutron:LOADBALANCERV2"
    }

    /// A router's interface on a subnet (`network:router_interface*`, or an HA router's
    /// replicated interface): removed through the router, not deleted.
    pub fn is_router_interface(&self) -> bool {
        self.device_owner.starts_with("network:router_interface") || self.device_owner == "network:ha_router_replicated_interface"
    }
}

/// A Neutron floating IP.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct FloatingIp {
    /// The floating IP's id.
    pub id: String,
    /// The floating IP's description (how CAPO and the cloud controller manager mark theirs).
    #[serde(default)]
    pub description: String,
    /// The public IP address.
    #[serde(default)]
    pub floating_ip_address: String,
    /// The port it is associated with; `None` when unassociated.
    #[serde(default)]
    pub port_id: Option<String>,
}

/// A Neutron security group.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SecurityGroup {
    /// The security group's id.
    pub id: String,
    /// The security group's name.
    #[serde(default)]
    pub name: String,
    /// The security group's description.
    #[serde(default)]
    pub description: String,
}

/// A Neutron network.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Network {
    /// The network's id.
    pub id: String,
    /// The network's name.
    #[serde(default)]
    pub name: String,
    /// The network's description.
    #[serde(default)]
    pub description: String,
    /// A provider network routers can use as their gateway (floating IPs come from it).
    #[serde(default, rename = "router:external")]
    pub external: bool,
}

/// A Neutron subnet.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Subnet {
    /// The subnet's id.
    pub id: String,
    /// The subnet's name.
    #[serde(default)]
    pub name: String,
    /// The subnet's description.
    #[serde(default)]
    pub description: String,
    /// The network the subnet belongs to.
    #[serde(default)]
    pub network_id: String,
}

/// A Neutron router.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Router {
    /// The router's id.
    pub id: String,
    /// The router's name.
    #[serde(default)]
    pub name: String,
    /// The router's description.
    #[serde(default)]
    pub description: String,
    /// Neutron `external_gateway_info` (external network, fixed IPs); `None` or `{}` when the
    /// router has no gateway.
    #[serde(default)]
    pub external_gateway_info: Option<Value>,
}

impl Router {
    /// Whether the router has an external gateway set (a non-empty `external_gateway_info`).
    pub fn has_gateway(&self) -> bool {
        self.external_gateway_info
            .as_ref()
            .is_some_and(|g| g.as_object().is_some_and(|o| !o.is_empty()))
    }
}

/// An Octavia load balancer.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct LoadBalancer {
    /// The load balancer's id.
    pub id: String,
    /// The load balancer's name.
    #[serde(default)]
    pub name: String,
    /// The load balancer's description.
    #[serde(default)]
    pub description: String,
    /// Octavia's provisioning status, e.g. `ACTIVE`, `PENDING_DELETE`, `ERROR`.
    #[serde(default)]
    pub provisioning_status: String,
    /// The Neutron port of its virtual IP (where a floating IP attaches); `None` if not given.
    #[serde(default)]
    pub vip_port_id: Option<String>,
    /// The network of its virtual IP; `None` if not given.
    #[serde(default)]
    pub vip_network_id: Option<String>,
}

/// One attachment of a Cinder volume.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct VolumeAttachment {
    /// The server the volume is attached to.
    #[serde(default)]
    pub server_id: String,
}

/// A Cinder volume (`GET /volumes/detail`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Volume {
    /// The volume's id.
    pub id: String,
    /// The volume's name; `None` when it has none (Cinder gives `null`).
    #[serde(default)]
    pub name: Option<String>,
    /// The volume's description; `None` when it has none.
    #[serde(default)]
    pub description: Option<String>,
    /// Cinder's status, e.g. `available`, `in-use`, `deleting`, `error`.
    #[serde(default)]
    pub status: String,
    /// The volume's metadata (Cinder CSI puts the cluster ID here).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The servers it is attached to.
    #[serde(default)]
    pub attachments: Vec<VolumeAttachment>,
}

/// A Glance image.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Image {
    /// The image's id.
    pub id: String,
    /// The image's name; `None` when it has none.
    #[serde(default)]
    pub name: Option<String>,
    /// Glance's status, e.g. `queued`, `active`, `deactivated`.
    #[serde(default)]
    pub status: String,
    /// The image's tags (the harness tags images it makes for a cluster).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Glance puts custom properties at the top level of the image.
    #[serde(flatten)]
    pub properties: BTreeMap<String, Value>,
}

// --- the client ------------------------------------------------------------------------------

/// Typed calls over a session. Endpoints come from the token's catalog.
pub struct OpenStack<'a> {
    /// The authenticated session the calls go through.
    pub session: &'a Session,
}

impl<'a> OpenStack<'a> {
    /// The typed calls over `session`.
    pub fn new(session: &'a Session) -> Self {
        OpenStack { session }
    }

    /// The versioned API root of a service.
    pub fn base(&self, svc: Service) -> Result<String, ApiError> {
        let mut first_err = None;
        for t in svc.catalog_types() {
            match self.session.endpoint(t) {
                Ok(ep) => return Ok(self.api_root(svc, &ep)),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.expect("every service has a catalog type").into())
    }

    fn api_root(&self, svc: Service, ep: &str) -> String {
        match svc {
            // Nova publishes its versioned root (`.../v2.1`, sometimes with the project id).
            Service::Compute => ep.to_string(),
            Service::Network => versioned(ep, "v2.0"),
            Service::LoadBalancer => versioned(ep, "v2"),
            Service::Image => versioned(ep, "v2"),
            // Cinder's v3 endpoint usually ends in the project id (`.../v3/<project>`, from
            // `$(project_id)s` in the catalog); without one, add it, as the older API wants it.
            Service::BlockStorage => {
                let project = self.session.project_id.as_deref().map(|p| format!("/{p}")).unwrap_or_default();
                if ep.contains("/v3/") {
                    ep.to_string()
                } else if ep.ends_with("/v3") {
                    format!("{ep}{project}")
                } else {
                    format!("{ep}/v3{project}")
                }
            }
        }
    }

    async fn request(&self, method: reqwest::Method, url: &str, body: Option<&Value>) -> Result<(u16, String), ApiError> {
        let r = self.session.send(method, url, body).await?;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        Ok((status, text))
    }

    fn http_error(svc: Service, method: &reqwest::Method, url: &str, status: u16, body: &str) -> ApiError {
        ApiError::Http {
            service: svc.label(),
            call: call_name(method, url),
            status,
            message: error_message(body),
        }
    }

    /// GET one JSON document.
    pub async fn get_json(&self, svc: Service, url: &str) -> Result<Option<Value>, ApiError> {
        let m = reqwest::Method::GET;
        let (status, text) = self.request(m.clone(), url, None).await?;
        match status {
            404 => Ok(None),
            200..=299 => serde_json::from_str(&text).map(Some).map_err(|e| ApiError::Malformed {
                service: svc.label(),
                call: call_name(&m, url),
                detail: e.to_string(),
            }),
            _ => Err(Self::http_error(svc, &m, url, status, &text)),
        }
    }

    /// Every item of a collection under `key`, following `next` links (`<key>_links` with
    /// rel=next for Nova, Neutron, Octavia and Cinder; a top-level `next` path for Glance).
    pub async fn list<T: DeserializeOwned>(&self, svc: Service, path: &str, key: &str) -> Result<Vec<T>, ApiError> {
        let root = self.base(svc)?;
        let mut url = format!("{root}{path}");
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let call = |u: &str| call_name(&reqwest::Method::GET, u);
        for _ in 0..MAX_PAGES {
            seen.insert(url.clone());
            let doc = self.page(svc, &url, key).await?;
            let items: &[Value] = doc[key].as_array().map(Vec::as_slice).unwrap_or_default();
            for it in items {
                out.push(Self::item(svc, &url, key, it)?);
            }
            let next = doc
                .get(format!("{key}_links"))
                .and_then(Value::as_array)
                .and_then(|links| links.iter().find(|l| l.get("rel").and_then(Value::as_str) == Some("next")))
                .and_then(|l| l.get("href").and_then(Value::as_str))
                .map(|h| join_url(origin(&root), h))
                // Glance: `next` is a path below the endpoint (which may have a prefix).
                .or_else(|| {
                    doc.get("next")
                        .and_then(Value::as_str)
                        .map(|h| join_url(root.strip_suffix("/v2").unwrap_or(&root), h))
                });
            match next {
                Some(n) if !items.is_empty() && !seen.contains(&n) => url = n,
                _ => return Ok(out),
            }
        }
        Err(ApiError::Malformed {
            service: svc.label(),
            call: call(&format!("{root}{path}")),
            detail: format!("more than {MAX_PAGES} pages"),
        })
    }

    /// One page of a collection: its document, which has a `key` list (else an error naming
    /// the call); a 404 is an error too (no such collection on this endpoint).
    async fn page(&self, svc: Service, url: &str, key: &str) -> Result<Value, ApiError> {
        let call = || call_name(&reqwest::Method::GET, url);
        let doc = self.get_json(svc, url).await?.ok_or_else(|| ApiError::Http {
            service: svc.label(),
            call: call(),
            status: 404,
            message: "the collection does not exist on this endpoint".into(),
        })?;
        if doc.get(key).and_then(Value::as_array).is_none() {
            return Err(ApiError::Malformed {
                service: svc.label(),
                call: call(),
                detail: format!("no `{key}` list in the answer"),
            });
        }
        Ok(doc)
    }

    /// One item of a page, read as `T`; an error names the call it came from.
    fn item<T: DeserializeOwned>(svc: Service, url: &str, key: &str, it: &Value) -> Result<T, ApiError> {
        serde_json::from_value(it.clone()).map_err(|e| ApiError::Malformed {
            service: svc.label(),
            call: call_name(&reqwest::Method::GET, url),
            detail: format!("`{key}` item: {e}"),
        })
    }

    /// Every item of a collection that pages by `offset` without links: asks from the count
    /// seen so far until a page is empty or brings no new id (a service ignoring `offset`).
    pub async fn list_by_offset<T: DeserializeOwned>(&self, svc: Service, path: &str, key: &str) -> Result<Vec<T>, ApiError> {
        let root = self.base(svc)?;
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut ids = HashSet::new();
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let url = format!("{root}{path}{sep}offset={}", ids.len());
            let doc = self.page(svc, &url, key).await?;
            let before = ids.len();
            for it in doc[key].as_array().into_iter().flatten() {
                let id = it.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
                if ids.insert(id) {
                    out.push(Self::item(svc, &url, key, it)?);
                }
            }
            if ids.len() == before {
                return Ok(out);
            }
        }
        Err(ApiError::Malformed {
            service: svc.label(),
            call: call_name(&reqwest::Method::GET, &format!("{root}{path}")),
            detail: format!("more than {MAX_PAGES} pages"),
        })
    }

    /// DELETE; 404 is [`Deleted::AlreadyGone`].
    pub async fn delete(&self, svc: Service, path: &str) -> Result<Deleted, ApiError> {
        let url = format!("{}{path}", self.base(svc)?);
        let m = reqwest::Method::DELETE;
        let (status, text) = self.request(m.clone(), &url, None).await?;
        match status {
            404 => Ok(Deleted::AlreadyGone),
            200..=299 => Ok(Deleted::Accepted),
            _ => Err(Self::http_error(svc, &m, &url, status, &text)),
        }
    }

    /// PUT a JSON body; 404 is [`Deleted::AlreadyGone`] (the object went meanwhile).
    async fn put(&self, svc: Service, path: &str, body: &Value) -> Result<Deleted, ApiError> {
        let url = format!("{}{path}", self.base(svc)?);
        let m = reqwest::Method::PUT;
        let (status, text) = self.request(m.clone(), &url, Some(body)).await?;
        match status {
            404 => Ok(Deleted::AlreadyGone),
            200..=299 => Ok(Deleted::Accepted),
            _ => Err(Self::http_error(svc, &m, &url, status, &text)),
        }
    }

    async fn get_one<T: DeserializeOwned>(&self, svc: Service, path: &str, key: &str) -> Result<Option<T>, ApiError> {
        let url = format!("{}{path}", self.base(svc)?);
        let Some(doc) = self.get_json(svc, &url).await? else {
            return Ok(None);
        };
        let item = doc.get(key).cloned().ok_or_else(|| ApiError::Malformed {
            service: svc.label(),
            call: call_name(&reqwest::Method::GET, &url),
            detail: format!("no `{key}` in the answer"),
        })?;
        serde_json::from_value(item).map(Some).map_err(|e| ApiError::Malformed {
            service: svc.label(),
            call: call_name(&reqwest::Method::GET, &url),
            detail: e.to_string(),
        })
    }

    // compute

    /// Every server of the project, with details.
    pub async fn servers(&self) -> Result<Vec<Server>, ApiError> {
        self.list(Service::Compute, "/servers/detail", "servers").await
    }
    /// One server; `None` once it is gone.
    pub async fn server(&self, id: &str) -> Result<Option<Server>, ApiError> {
        self.get_one(Service::Compute, &format!("/servers/{id}"), "server").await
    }
    /// Deletes a server; Nova deletes asynchronously, so it may still show up for a while.
    pub async fn delete_server(&self, id: &str) -> Result<Deleted, ApiError> {
        self.delete(Service::Compute, &format!("/servers/{id}")).await
    }
    /// Every server group of the project. Nova gives no next link here: it cuts the list at its
    /// `max_limit` and takes `offset`.
    pub async fn server_groups(&self) -> Result<Vec<ServerGroup>, ApiError> {
        self.list_by_offset(Service::Compute, "/os-server-groups", "server_groups").await
    }
    /// Deletes a server group.
    pub async fn delete_server_group(&self, id: &str) -> Result<Deleted, ApiError> {
        self.delete(Service::Compute, &format!("/os-server-groups/{id}")).await
    }
    /// Every flavor the project may use, with vCPUs, RAM and disk.
    pub async fn flavors(&self) -> Result<Vec<Flavor>, ApiError> {
        self.list(Service::Compute, "/flavors/detail", "flavors").await
    }
    /// The project's compute quota and usage; empty if Nova answers 404.
    pub async fn limits(&self) -> Result<Limits, ApiError> {
        Ok(self.get_one(Service::Compute, "/limits", "limits").await?.unwrap_or_default())
    }

    // network

    /// Every port the project sees.
    pub async fn ports(&self) -> Result<Vec<Port>, ApiError> {
        self.list(Service::Network, "/ports", "ports").await
    }
    /// Ports of one device (a router's interfaces, a server's ports).
    pub async fn ports_of_device(&self, device_id: &str) -> Result<Vec<Port>, ApiError> {
        let all: Vec<Port> = self
            .list(Service::Network, &format!("/ports?device_id={device_id}"), "ports")
            .await?;
        // The filter is a server-side courtesy; check it.
        Ok(all.into_iter().filter(|p| p.device_id == device_id).collect())
    }
    /// Deletes a port.
    pub async fn delete_port(&self, id: &str) -> Result<Deleted, ApiError> {
        self.delete(Service::Network, &format!("/ports/{id}")).await
    }
    /// Every floating IP of the project.
    pub async fn floating_ips(&self) -> Result<Vec<FloatingIp>, ApiError> {
        self.list(Service::Network, "/floatingips", "floatingips").await
    }
    /// Releases a floating IP.
    pub async fn delete_floating_ip(&self, id: &str) -> Result<Deleted, ApiError> {
        self.delete(Service::Network, &format!("/floatingips/{id}")).await
    }
    /// Every security group the project sees.
    pub async fn security_groups(&self) -> Result<Vec<SecurityGroup>, ApiError> {
        self.list(Service::Network, "/security-groups", "security_groups").await
    }
    /// Deletes a security group.
    pub async fn delete_security_group(&self, id: &str) -> Result<Deleted, ApiError> {
        self.delete(Service::Network, &format!("/security-groups/{id}")).await
    }
    /// Every network the project sees (its own, shared and external ones).
    pub async fn networks(&self) -> Result<Vec<Network>, ApiError> {
        self.list(Service::Network, "/networks", "networks").await
    }
    /// Deletes a network.
    pub async fn delete_network(&self, id: &str) -> Result<Deleted, ApiError> {
        self.delete(Service::Network, &format!("/networks/{id}")).await
    }
    /// Every subnet the project sees.
    pub async fn subnets(&self) -> Result<Vec<Subnet>, ApiError> {
        self.list(Service::Network, "/subnets", "subnets").await
    }
    /// Deletes a subnet.
    pub async fn delete_subnet(&self, id: &str) -> Result<Deleted, ApiError> {
        self.delete(Service::Network, &format!("/subnets/{id}")).await
    }
    /// Every router the project sees.
    pub async fn routers(&self) -> Result<Vec<Router>, ApiError> {
        self.list(Service::Network, "/routers", "routers").await
    }
    /// Detaches one interface (by its port) from a router.
    pub async fn remove_router_interface(&self, router_id: &str, port_id: &str) -> Result<Deleted, ApiError> {
        self.put(
            Service::Network,
            &format!("/routers/{router_id}/remove_router_interface"),
            &json!({"port_id": port_id}),
        )
        .await
    }
    /// Clears the router's external gateway (its gateway port blocks deleting the external
    /// subnet's allocations otherwise, and some deployments refuse the delete).
    pub async fn clear_router_gateway(&self, router_id: &str) -> Result<Deleted, ApiError> {
        self.put(
            Service::Network,
            &format!("/routers/{router_id}"),
            &json!({"router": {"external_gateway_info": {}}}),
        )
        .await
    }
    /// Deletes a router (fails while it still has interfaces).
    pub async fn delete_router(&self, id: &str) -> Result<Deleted, ApiError> {
        self.delete(Service::Network, &format!("/routers/{id}")).await
    }

    // load-balancer

    /// Every load balancer the project sees.
    pub async fn load_balancers(&self) -> Result<Vec<LoadBalancer>, ApiError> {
        self.list(Service::LoadBalancer, "/lbaas/loadbalancers", "loadbalancers").await
    }
    /// One load balancer; `None` once it is gone.
    pub async fn load_balancer(&self, id: &str) -> Result<Option<LoadBalancer>, ApiError> {
        self.get_one(Service::LoadBalancer, &format!("/lbaas/loadbalancers/{id}"), "loadbalancer")
            .await
    }
    /// Deletes a load balancer with its listeners, pools, members and monitors.
    pub async fn delete_load_balancer(&self, id: &str) -> Result<Deleted, ApiError> {
        self.delete(Service::LoadBalancer, &format!("/lbaas/loadbalancers/{id}?cascade=true"))
            .await
    }

    // block-storage

    /// Every volume of the project, with details.
    pub async fn volumes(&self) -> Result<Vec<Volume>, ApiError> {
        self.list(Service::BlockStorage, "/volumes/detail", "volumes").await
    }
    /// Deletes a volume.
    pub async fn delete_volume(&self, id: &str) -> Result<Deleted, ApiError> {
        self.delete(Service::BlockStorage, &format!("/volumes/{id}")).await
    }

    // image

    /// Every image the project sees (its own, public and shared ones).
    pub async fn images(&self) -> Result<Vec<Image>, ApiError> {
        self.list(Service::Image, "/images", "images").await
    }
    /// Deletes an image.
    pub async fn delete_image(&self, id: &str) -> Result<Deleted, ApiError> {
        self.delete(Service::Image, &format!("/images/{id}")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_of_each_service_shape() {
        assert_eq!(
            error_message(r#"{"NeutronError": {"type": "RouterInUse", "message": "Router r still has ports", "detail": ""}}"#),
            "Router r still has ports"
        );
        assert_eq!(
            error_message(r#"{"itemNotFound": {"code": 404, "message": "Instance x could not be found."}}"#),
            "Instance x could not be found."
        );
        assert_eq!(
            error_message(r#"{"faultcode": "Client", "faultstring": "Invalid state PENDING_UPDATE", "debuginfo": null}"#),
            "Invalid state PENDING_UPDATE"
        );
        assert_eq!(
            error_message(r#"{"error": {"code": 401, "message": "The request you have made requires authentication."}}"#),
            "The request you have made requires authentication."
        );
        assert_eq!(
            error_message("404 Not Found\n\nThe resource could not be found.\n\n   "),
            "404 Not Found The resource could not be found."
        );
        assert_eq!(error_message(""), "(no message)");
    }

    /// Nova's server groups come without a next link, cut at its max_limit: paged by offset,
    /// until a page is empty, or brings nothing new (a service that ignores `offset`).
    #[tokio::test]
    async fn lists_without_links_are_paged_by_offset() {
        use super::super::identity::{CatalogEntry, Endpoint, Session};
        let groups = |from: usize, to: usize| -> Vec<u8> {
            let items: Vec<Value> = (from..to)
                .map(|i| serde_json::json!({"id": format!("g{i}"), "name": format!("group-{i}"), "members": []}))
                .collect();
            serde_json::to_vec(&serde_json::json!({"server_groups": items})).unwrap()
        };
        let catalog = |base: &str| {
            vec![CatalogEntry {
                service_type: "compute".into(),
                name: "nova".into(),
                endpoints: vec![Endpoint {
                    interface: "public".into(),
                    region: None,
                    region_id: None,
                    url: format!("{base}/compute/v2.1"),
                }],
            }]
        };
        // Pages of 2 of 5 groups.
        let base = crate::testing::serve_http(std::time::Duration::ZERO, move |target| {
            let offset: usize = target.rsplit("offset=").next().and_then(|o| o.parse().ok()).unwrap_or(0);
            (200, groups(offset.min(5), (offset + 2).min(5)))
        })
        .await;
        let s = Session::logged_in_for_tests(&base, catalog(&base));
        let got = OpenStack::new(&s).server_groups().await.unwrap();
        assert_eq!(
            got.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
            ["g0", "g1", "g2", "g3", "g4"]
        );
        // The same first page whatever the offset: what it has, once.
        let base = crate::testing::serve_http(std::time::Duration::ZERO, move |_| (200, groups(0, 2))).await;
        let s = Session::logged_in_for_tests(&base, catalog(&base));
        assert_eq!(OpenStack::new(&s).server_groups().await.unwrap().len(), 2);
    }

    #[test]
    fn urls_are_joined_and_versioned() {
        assert_eq!(versioned("http://h:9696", "v2.0"), "http://h:9696/v2.0");
        assert_eq!(versioned("http://h/network/v2.0", "v2.0"), "http://h/network/v2.0");
        assert_eq!(versioned("http://h:9292/image", "v2"), "http://h:9292/image/v2");
        assert_eq!(origin("http://h:1/a/b"), "http://h:1");
        assert_eq!(origin("https://h"), "https://h");
        assert_eq!(
            join_url("http://h:1/image", "/v2/images?marker=x"),
            "http://h:1/image/v2/images?marker=x"
        );
        assert_eq!(join_url("http://h:1", "http://other/x"), "http://other/x");
        assert_eq!(
            call_name(&reqwest::Method::DELETE, "http://h:1/v2.0/ports/p1"),
            "DELETE /v2.0/ports/p1"
        );
    }

    #[test]
    fn service_owned_ports_and_router_gateways() {
        let p = |owner: &str| Port {
            device_owner: owner.into(),
            ..Default::default()
        };
        assert!(p("network:router_interface").is_service_owned() && p("network:router_interface").is_router_interface());
        assert!(p("network:dhcp").is_service_owned() && !p("network:dhcp").is_router_interface());
        assert!(p("Octavia").is_service_owned());
        assert!(!p("compute:nova").is_service_owned() && !p("").is_service_owned());
        let r = |g: Value| Router {
            external_gateway_info: Some(g),
            ..Default::default()
        };
        assert!(r(json!({"network_id": "ext"})).has_gateway());
        assert!(!r(json!({})).has_gateway() && !r(Value::Null).has_gateway() && !Router::default().has_gateway());
    }
}
