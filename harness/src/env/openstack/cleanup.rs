//! What a workload cluster left in the cloud: the leak check after a cluster's deletion, and
//! `scs-e2e cleanup`, which deletes it in dependency order (dry run unless `--yes`).

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use super::clouds::{Lookup, load};
use super::identity::Session;
use super::ownership::{self, Claim, ClusterRef, Evidence, Related};
use super::resources::{ApiError, Deleted, OpenStack, Service};
use crate::error::{Exit, Fatal};
use crate::report::{Status, StepResult};

/// Kinds in deletion order: dependents before what they depend on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// An Octavia load balancer (deleted with cascade: listeners, pools, members).
    LoadBalancer,
    /// A Nova server (a machine of the cluster, or its bastion).
    Server,
    /// A Neutron floating IP.
    FloatingIp,
    /// A Neutron port.
    Port,
    /// A Neutron router (its interfaces and gateway are removed first).
    Router,
    /// A Neutron subnet.
    Subnet,
    /// A Neutron network.
    Network,
    /// A Neutron security group.
    SecurityGroup,
    /// A Nova server group.
    ServerGroup,
    /// A Cinder volume.
    Volume,
    /// A Glance image.
    Image,
}

impl Kind {
    /// The kind as reports and `scs-e2e cleanup` print it: `load-balancer`, `floating-ip`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::LoadBalancer => "load-balancer",
            Kind::Server => "server",
            Kind::FloatingIp => "floating-ip",
            Kind::Port => "port",
            Kind::Router => "router",
            Kind::Subnet => "subnet",
            Kind::Network => "network",
            Kind::SecurityGroup => "security-group",
            Kind::ServerGroup => "server-group",
            Kind::Volume => "volume",
            Kind::Image => "image",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resource that belongs to the cluster, and the rule that said so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leftover {
    /// What kind of resource it is.
    pub kind: Kind,
    /// The resource's OpenStack id.
    pub id: String,
    /// The resource's name (a floating IP's address); empty when it has none.
    pub name: String,
    /// Why it is the cluster's: the ownership rule that matched.
    pub why: String,
    /// What that rule went by.
    pub evidence: Evidence,
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.name.is_empty() { "(no name)" } else { &self.name };
        write!(f, "{} {} {name} ({})", self.kind, self.id, self.why)
    }
}

/// The cluster's resources, those that may be a namesake's, plus the services the cloud does not
/// offer (nothing to check).
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    /// The cluster's resources, sorted by kind (deletion order), name and id: all that matched
    /// when no other cluster of its name is in the cloud, else only the proven ones.
    pub owned: Vec<Leftover>,
    /// What only the cluster's name ties to it while clusters of the same name live in other
    /// namespaces ([`Inventory::namesakes`]): could be theirs, so neither counted nor deleted.
    pub ambiguous: Vec<Leftover>,
    /// Other Cluster API clusters of the same name, as CAPO's namespaced names in the cloud show
    /// them (`<OTHER-NS>/<NAME>`).
    pub namesakes: Vec<ClusterRef>,
    /// Labels (e.g. `load-balancer (octavia)`) of the optional services the catalog lacks:
    /// load-balancer, block-storage, image.
    pub absent_services: Vec<&'static str>,
}

/// A service missing from the catalog (no Octavia, no Glance) has nothing of ours: empty.
fn optional<T>(r: Result<Vec<T>, ApiError>, svc: Service, absent: &mut Vec<&'static str>) -> Result<Vec<T>, ApiError> {
    match r {
        Err(e) if e.is_no_endpoint() => {
            absent.push(svc.label());
            Ok(Vec::new())
        }
        other => other,
    }
}

impl From<Vec<Leftover>> for Inventory {
    fn from(owned: Vec<Leftover>) -> Self {
        Inventory {
            owned,
            ..Default::default()
        }
    }
}

impl Inventory {
    /// The namesakes as `a/x, b/x`.
    pub fn namesakes_text(&self) -> String {
        self.namesakes.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ")
    }
}

/// Records a claim; what is claimed by name only is remembered, so that what is related to it
/// is no surer.
fn add(out: &mut Vec<Leftover>, rel: &mut Related, kind: Kind, id: &str, name: &str, claim: Option<Claim>) -> bool {
    match claim {
        Some(Claim { why, evidence }) => {
            if evidence == Evidence::NameOnly {
                rel.name_only.insert(id.into());
            }
            out.push(Leftover {
                kind,
                id: id.into(),
                name: name.into(),
                why,
                evidence,
            });
            true
        }
        None => false,
    }
}

/// Lists every kind once and applies the ownership rules.
pub async fn inventory(session: &Session, cluster: &ClusterRef) -> Result<Inventory, ApiError> {
    let os = OpenStack::new(session);
    let mut absent = Vec::new();
    let mut owned = Vec::new();
    let lbs = optional(os.load_balancers().await, Service::LoadBalancer, &mut absent)?;
    let servers = os.servers().await?;
    let networks = os.networks().await?;
    let subnets = os.subnets().await?;
    let routers = os.routers().await?;
    let ports = os.ports().await?;
    let fips = os.floating_ips().await?;
    let groups = os.security_groups().await?;
    let server_groups = os.server_groups().await?;
    let volumes = optional(os.volumes().await, Service::BlockStorage, &mut absent)?;
    let images = optional(os.images().await, Service::Image, &mut absent)?;

    let mut rel = Related {
        network_names: networks.iter().map(|n| (n.id.clone(), n.name.clone())).collect(),
        port_networks: ports.iter().map(|p| (p.id.clone(), p.network_id.clone())).collect(),
        ..Default::default()
    };
    let r = &mut rel;
    // Networks first: load balancers are told apart by where their VIP sits.
    for n in &networks {
        if add(&mut owned, r, Kind::Network, &n.id, &n.name, ownership::network(cluster, n)) {
            r.networks.insert(n.id.clone());
        }
    }
    for lb in &lbs {
        let claim = ownership::load_balancer(cluster, lb, r);
        if add(&mut owned, r, Kind::LoadBalancer, &lb.id, &lb.name, claim) {
            // Its VIP port carries its floating IP, which is as much ours as the load balancer.
            if let Some(vip) = &lb.vip_port_id {
                r.ports.insert(vip.clone());
                if r.name_only.contains(&lb.id) {
                    r.name_only.insert(vip.clone());
                }
            }
        }
    }
    for s in &servers {
        if add(&mut owned, r, Kind::Server, &s.id, &s.name, ownership::server(cluster, s)) {
            r.servers.insert(s.id.clone());
            r.server_names.insert(s.name.clone());
        } else {
            r.other_servers.insert(s.id.clone());
            r.other_server_names.insert(s.name.clone());
        }
    }
    for p in &ports {
        let claim = ownership::port(cluster, p, r);
        if add(&mut owned, r, Kind::Port, &p.id, &p.name, claim) {
            r.ports.insert(p.id.clone());
        }
    }
    for f in &fips {
        let claim = ownership::floating_ip(cluster, f, r);
        add(&mut owned, r, Kind::FloatingIp, &f.id, &f.floating_ip_address, claim);
    }
    for x in &routers {
        add(&mut owned, r, Kind::Router, &x.id, &x.name, ownership::router(cluster, x));
    }
    for s in &subnets {
        let claim = ownership::subnet(cluster, s, r);
        add(&mut owned, r, Kind::Subnet, &s.id, &s.name, claim);
    }
    for g in &groups {
        add(
            &mut owned,
            r,
            Kind::SecurityGroup,
            &g.id,
            &g.name,
            ownership::security_group(cluster, g),
        );
    }
    for g in &server_groups {
        let claim = ownership::server_group(cluster, g, r);
        add(&mut owned, r, Kind::ServerGroup, &g.id, &g.name, claim);
    }
    for v in &volumes {
        let claim = ownership::volume(cluster, v, r);
        add(&mut owned, r, Kind::Volume, &v.id, v.name.as_deref().unwrap_or_default(), claim);
    }
    for i in &images {
        add(
            &mut owned,
            r,
            Kind::Image,
            &i.id,
            i.name.as_deref().unwrap_or_default(),
            ownership::image(cluster, i),
        );
    }

    // Clusters of the same name in other namespaces, by the namespaced names and descriptions
    // CAPO gives what it makes for them.
    let marks = networks
        .iter()
        .flat_map(|n| [n.name.as_str(), n.description.as_str()])
        .chain(routers.iter().flat_map(|x| [x.name.as_str(), x.description.as_str()]))
        .chain(groups.iter().map(|g| g.name.as_str()))
        .chain(lbs.iter().flat_map(|lb| [lb.name.as_str(), lb.description.as_str()]))
        .chain(ports.iter().map(|p| p.description.as_str()))
        .chain(fips.iter().map(|f| f.description.as_str()));
    let namesakes: std::collections::BTreeSet<ClusterRef> = marks
        .filter_map(ownership::capo_resource_name)
        .filter_map(|rn| ownership::namesake(cluster, rn))
        .map(|ns| ClusterRef::new(ns, &cluster.name))
        .collect();
    let ambiguous = if namesakes.is_empty() {
        Vec::new()
    } else {
        let (proven, by_name) = owned.into_iter().partition(|l| l.evidence == Evidence::Proven);
        owned = proven;
        by_name
    };
    let order = |a: &Leftover, b: &Leftover| (a.kind, &a.name, &a.id).cmp(&(b.kind, &b.name, &b.id));
    owned.sort_by(order);
    let mut ambiguous = ambiguous;
    ambiguous.sort_by(order);
    Ok(Inventory {
        owned,
        ambiguous,
        namesakes: namesakes.into_iter().collect(),
        absent_services: absent,
    })
}

/// The leak check: what of `cluster` is still in the cloud (empty after a clean deletion); what
/// could as well be a namesake's is not in it (see [`Inventory::ambiguous`]).
pub async fn leaks(session: &Session, cluster: &ClusterRef) -> Result<Vec<Leftover>, ApiError> {
    Ok(inventory(session, cluster).await?.owned)
}

/// The leak check as a report testcase (operation `leakCheck`): failed with one line per
/// leftover, an error when the cloud could not be asked, passed when clean.
///
/// Meant to run after the cluster's deletion (its `deleteCluster` step succeeded and the
/// Cluster object is gone), e.g. pushed into `RunReport::phases` after `down` or appended to the
/// scenario's steps so `scenario_status` fails the scenario.
pub async fn leak_check_step(session: &Session, cluster: &ClusterRef) -> StepResult {
    let started_at = chrono::Utc::now();
    let t0 = std::time::Instant::now();
    let result = inventory(session, cluster).await;
    let mut r = leak_testcase(cluster, &result);
    r.started_at = started_at;
    r.duration_secs = crate::report::secs(t0.elapsed());
    r
}

/// [`leak_check_step`]'s result from a finished check: failed when something provably the
/// cluster's is left. What could as well be a namesake's is listed, not counted: a live cluster
/// of the same name may be using it.
pub fn leak_testcase(cluster: &ClusterRef, result: &Result<Inventory, ApiError>) -> StepResult {
    let lines = |l: &[Leftover]| l.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n");
    let (status, message, details) = match result {
        Ok(inv) => {
            let mut details = Vec::new();
            if !inv.owned.is_empty() {
                details.push(lines(&inv.owned));
            }
            let not_counted = format!(
                "{} resource{} that only the name `{}` ties to this cluster, not counted: cluster{} {} of the same name {} in this cloud",
                inv.ambiguous.len(),
                plural(inv.ambiguous.len()),
                cluster.name,
                plural(inv.namesakes.len()),
                inv.namesakes_text(),
                if inv.namesakes.len() == 1 { "is" } else { "are" }
            );
            if !inv.ambiguous.is_empty() {
                details.push(format!("{not_counted}:\n{}", lines(&inv.ambiguous)));
            }
            let details = (!details.is_empty()).then(|| details.join("\n"));
            if inv.owned.is_empty() {
                (Status::Passed, (!inv.ambiguous.is_empty()).then_some(not_counted), details)
            } else {
                let n = inv.owned.len();
                let message = format!("{n} OpenStack resource{} of cluster {cluster} left after its deletion", plural(n));
                (Status::Failed, Some(message), details)
            }
        }
        Err(e) => (Status::Error, Some(format!("leak check for cluster {cluster}: {e}")), None),
    };
    StepResult {
        name: format!("openstack leak check {cluster}"),
        operation: "leakCheck".into(),
        status,
        started_at: chrono::Utc::now(),
        duration_secs: 0.0,
        timeout_secs: 0.0,
        message: message.map(|m| crate::redact::apply(&m).into_owned()),
        details: details.map(|d| crate::redact::apply(&d).into_owned()),
        log_tail: None,
        log: None,
        attempts: Vec::new(),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

// --- cleanup ---------------------------------------------------------------------------------

/// How [`cleanup`] goes about it; the default is a dry run that would wait 10 minutes, polling
/// every 2 seconds.
#[derive(Clone, Debug)]
pub struct CleanupOptions {
    /// Delete; otherwise only list what would be deleted.
    pub yes: bool,
    /// How long servers and load balancers may take to go.
    pub wait: Duration,
    /// Between looks at something going away.
    pub poll: Duration,
}

impl Default for CleanupOptions {
    fn default() -> Self {
        CleanupOptions {
            yes: false,
            wait: Duration::from_secs(600),
            poll: Duration::from_secs(2),
        }
    }
}

/// What a cleanup did.
#[derive(Clone, Debug, Default)]
pub struct CleanupOutcome {
    /// What the first look found (a dry run's list).
    pub found: Vec<Leftover>,
    /// What could be a namesake's as well: listed, never deleted ([`Inventory::ambiguous`]).
    pub ambiguous: Vec<Leftover>,
    /// The clusters of the same name in other namespaces.
    pub namesakes: Vec<ClusterRef>,
    /// What was deleted, or was already gone when its delete was sent (empty on a dry run).
    pub deleted: Vec<Leftover>,
    /// What failed, with the reason.
    pub failed: Vec<(Leftover, String)>,
    /// What the final look still found (empty after a complete cleanup).
    pub remaining: Vec<Leftover>,
}

/// Deletes the cluster's resources (never what could be a namesake's) in dependency order: load balancers (cascade) → servers
/// (waiting until they are gone) → floating IPs → ports → router interfaces and gateways →
/// routers → subnets → networks → security groups → server groups → volumes → images. Every item
/// is tried even after a failure, so one stuck server does not hide the rest. `say` gets one
/// line per action.
pub async fn cleanup(
    session: &Session,
    cluster: &ClusterRef,
    opts: &CleanupOptions,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<CleanupOutcome, ApiError> {
    let inv = inventory(session, cluster).await?;
    for s in &inv.absent_services {
        say(format!("note: the catalog has no {s} endpoint; nothing of that kind to check"));
    }
    let mut out = CleanupOutcome {
        found: inv.owned.clone(),
        ambiguous: inv.ambiguous.clone(),
        namesakes: inv.namesakes.clone(),
        ..Default::default()
    };
    if !opts.yes {
        return Ok(out);
    }
    let os = OpenStack::new(session);
    let of = |k: Kind| inv.owned.iter().filter(move |l| l.kind == k);
    let fail = |out: &mut CleanupOutcome, say: &mut (dyn FnMut(String) + Send), l: &Leftover, why: String| {
        say(format!("FAILED {l}: {why}"));
        out.failed.push((l.clone(), why));
    };
    let deleted = |out: &mut CleanupOutcome, say: &mut (dyn FnMut(String) + Send), l: &Leftover, d: Deleted| {
        say(format!(
            "deleted {} {} {}{}",
            l.kind,
            l.id,
            l.name,
            if d == Deleted::AlreadyGone { " (already gone)" } else { "" }
        ));
        out.deleted.push(l.clone());
    };

    // Load balancers first (their listeners and members point at the servers' ports), then
    // servers; both delete asynchronously, so each kind is waited for before the next.
    for kind in [Kind::LoadBalancer, Kind::Server] {
        let mut going = Vec::new();
        for l in of(kind) {
            match delete_one(&os, l).await {
                Ok(Deleted::AlreadyGone) => deleted(&mut out, say, l, Deleted::AlreadyGone),
                Ok(Deleted::Accepted) => going.push(l.clone()),
                Err(e) => fail(&mut out, say, l, e.to_string()),
            }
        }
        for (l, r) in wait_gone(&os, &going, opts).await {
            match r {
                Ok(()) => deleted(&mut out, say, &l, Deleted::Accepted),
                Err(why) => fail(&mut out, say, &l, why),
            }
        }
    }

    for l in of(Kind::FloatingIp).chain(of(Kind::Port)) {
        match delete_one(&os, l).await {
            Ok(d) => deleted(&mut out, say, l, d),
            Err(e) => fail(&mut out, say, l, e.to_string()),
        }
    }

    // Routers: detach every interface (ours, and any router's interface on our networks, which
    // would block the subnets), clear the gateway, then delete.
    let our_networks: HashSet<&str> = of(Kind::Network).map(|l| l.id.as_str()).collect();
    let our_routers: HashSet<&str> = of(Kind::Router).map(|l| l.id.as_str()).collect();
    let interfaces = match os.ports().await {
        Ok(ports) => ports
            .into_iter()
            .filter(|p| {
                p.is_router_interface() && (our_routers.contains(p.device_id.as_str()) || our_networks.contains(p.network_id.as_str()))
            })
            .collect(),
        Err(e) => {
            say(format!("could not list router interfaces: {e}"));
            Vec::new()
        }
    };
    for p in &interfaces {
        match os.remove_router_interface(&p.device_id, &p.id).await {
            Ok(_) => say(format!(
                "removed interface {} (port {}) from router {}",
                subnet_of(p),
                p.id,
                p.device_id
            )),
            Err(e) => say(format!("FAILED to remove interface port {} from router {}: {e}", p.id, p.device_id)),
        }
    }
    let routers = match os.routers().await {
        Ok(r) => r,
        Err(e) => {
            say(format!("could not list routers: {e}"));
            Vec::new()
        }
    };
    for l in of(Kind::Router) {
        if routers.iter().any(|r| r.id == l.id && r.has_gateway()) {
            match os.clear_router_gateway(&l.id).await {
                Ok(_) => say(format!("cleared the external gateway of router {} {}", l.id, l.name)),
                Err(e) => say(format!("FAILED to clear the gateway of router {}: {e}", l.id)),
            }
        }
        match delete_one(&os, l).await {
            Ok(d) => deleted(&mut out, say, l, d),
            Err(e) => fail(&mut out, say, l, e.to_string()),
        }
    }

    for kind in [
        Kind::Subnet,
        Kind::Network,
        Kind::SecurityGroup,
        Kind::ServerGroup,
        Kind::Volume,
        Kind::Image,
    ] {
        for l in of(kind) {
            match delete_one(&os, l).await {
                Ok(d) => deleted(&mut out, say, l, d),
                Err(e) => fail(&mut out, say, l, e.to_string()),
            }
        }
    }

    out.remaining = leaks(session, cluster).await?;
    Ok(out)
}

/// The plain delete of one resource (load balancers cascade).
async fn delete_one(os: &OpenStack<'_>, l: &Leftover) -> Result<Deleted, ApiError> {
    match l.kind {
        Kind::LoadBalancer => os.delete_load_balancer(&l.id).await,
        Kind::Server => os.delete_server(&l.id).await,
        Kind::FloatingIp => os.delete_floating_ip(&l.id).await,
        Kind::Port => os.delete_port(&l.id).await,
        Kind::Router => os.delete_router(&l.id).await,
        Kind::Subnet => os.delete_subnet(&l.id).await,
        Kind::Network => os.delete_network(&l.id).await,
        Kind::SecurityGroup => os.delete_security_group(&l.id).await,
        Kind::ServerGroup => os.delete_server_group(&l.id).await,
        Kind::Volume => os.delete_volume(&l.id).await,
        Kind::Image => os.delete_image(&l.id).await,
    }
}

fn subnet_of(p: &super::resources::Port) -> String {
    p.fixed_ips
        .first()
        .map(|f| format!("subnet {}", f.subnet_id))
        .unwrap_or_else(|| "of a subnet".into())
}

/// The status of an item whose delete was accepted, or `None` once it is gone.
async fn presence(os: &OpenStack<'_>, l: &Leftover) -> Result<Option<String>, ApiError> {
    match l.kind {
        Kind::LoadBalancer => Ok(os.load_balancer(&l.id).await?.map(|lb| lb.provisioning_status)),
        // Nova shows a deleted server as DELETED for a while before answering 404.
        Kind::Server => Ok(os.server(&l.id).await?.filter(|s| s.status != "DELETED").map(|s| s.status)),
        // Every other kind is gone when its delete returns.
        _ => Ok(None),
    }
}

/// Polls each item until it is gone; a timeout names the last status.
async fn wait_gone(os: &OpenStack<'_>, items: &[Leftover], opts: &CleanupOptions) -> Vec<(Leftover, Result<(), String>)> {
    let deadline = Instant::now() + opts.wait;
    let mut pending: Vec<(Leftover, String)> = items.iter().map(|l| (l.clone(), String::new())).collect();
    let mut done = Vec::new();
    loop {
        let mut still = Vec::new();
        for (l, _) in pending {
            match presence(os, &l).await {
                Ok(None) => done.push((l, Ok(()))),
                Ok(Some(st)) => still.push((l, st)),
                Err(e) => done.push((l, Err(e.to_string()))),
            }
        }
        pending = still;
        if pending.is_empty() {
            return done;
        }
        if Instant::now() >= deadline {
            for (l, st) in pending {
                let why = format!(
                    "still present {} after the delete was accepted (status {})",
                    humantime::format_duration(opts.wait),
                    if st.is_empty() { "unknown" } else { &st }
                );
                done.push((l, Err(why)));
            }
            return done;
        }
        tokio::time::sleep(opts.poll).await;
    }
}

// --- the `cleanup` command -------------------------------------------------------------------

/// The flags of `scs-e2e cleanup`: which clusters (`--cluster`/`--namespace`, or `--from` a
/// run), which cloud, and whether to delete.
#[derive(clap::Args, Debug, Clone)]
pub struct CleanupArgs {
    /// The workload cluster's name (its Cluster object's metadata.name).
    #[arg(long, required_unless_present = "from", conflicts_with = "from")]
    pub cluster: Option<String>,
    /// The Cluster object's namespace.
    #[arg(long, default_value = "default", conflicts_with = "from")]
    pub namespace: String,
    /// Every cluster a run planned: its artifacts directory or the `clusters.json` in it (written
    /// when the run starts, so it is there even when the run was killed).
    #[arg(long, value_name = "PATH")]
    pub from: Option<PathBuf>,
    /// The cloud in clouds.yaml (default: OS_CLOUD, or the file's only cloud).
    #[arg(long)]
    pub cloud: Option<String>,
    /// Delete; without it, only list what would be deleted.
    #[arg(long)]
    pub yes: bool,
    /// How long servers and load balancers may take to disappear.
    #[arg(long, default_value = "10m", value_parser = parse_wait)]
    pub wait: Duration,
}

fn parse_wait(s: &str) -> Result<Duration, crate::error::Invalid> {
    crate::format::duration::HumanDuration::parse(s).map(|d| d.0)
}

/// The exit codes of `scs-e2e cleanup`, shown after its `--help`.
pub const CLEANUP_HELP: &str = "Exit codes:
  0  nothing of the cluster is left (dry run: nothing was found)
  1  something could not be deleted, or could be another cluster's of the same name in
     another namespace and was left alone (dry run: something was found)
  2  bad input: flags, clouds.yaml
  3  the cloud is unreachable or refused the credentials";

/// A Kubernetes object name (RFC 1123 label for namespaces, subdomain for clusters): anything
/// else cannot be a cluster, and would make the name rules match the wrong things.
fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// The clusters named by `--from`: a run's artifacts directory or its `clusters.json`.
fn planned(from: &Path) -> Result<Vec<ClusterRef>, Fatal> {
    let file = if from.is_dir() {
        from.join(crate::report::CLUSTER_PLAN_FILE)
    } else {
        from.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|e| {
        Fatal::usage(anyhow::anyhow!(
            "--from {}: {e}; give a run's artifacts directory or the {} a run wrote into it",
            file.display(),
            crate::report::CLUSTER_PLAN_FILE
        ))
    })?;
    let plan: crate::report::ClusterPlan = serde_json::from_str(&text).map_err(|e| {
        Fatal::usage(anyhow::anyhow!(
            "{}:{}:{}: not a cluster plan ({e}); scs-e2e run writes it as {}",
            file.display(),
            e.line(),
            e.column(),
            crate::report::CLUSTER_PLAN_FILE
        ))
    })?;
    if plan.schema != crate::report::CLUSTER_PLAN_SCHEMA {
        return Err(Fatal::usage(anyhow::anyhow!(
            "{}: schema `{}`, this scs-e2e reads `{}`",
            file.display(),
            plan.schema,
            crate::report::CLUSTER_PLAN_SCHEMA
        )));
    }
    plan.clusters
        .iter()
        .map(|c| {
            check_names(&c.name, &c.namespace)
                .map_err(|e| Fatal::usage(anyhow::anyhow!("{}: cluster of scenario {}: {e}", file.display(), c.scenario)))?;
            Ok(ClusterRef::new(&c.namespace, &c.name))
        })
        .collect()
}

fn check_names(cluster: &str, namespace: &str) -> Result<(), crate::error::Invalid> {
    if !valid_name(cluster, 253) {
        return Err(format!("cluster `{cluster}` is not a Kubernetes object name (lowercase letters, digits, `-`, `.`)").into());
    }
    if !valid_name(namespace, 63) || namespace.contains('.') {
        return Err(format!("namespace `{namespace}` is not a Kubernetes namespace name (lowercase letters, digits, `-`)").into());
    }
    Ok(())
}

/// `scs-e2e cleanup`: lists (and with `--yes` deletes) what the clusters left in the cloud.
pub async fn run(args: CleanupArgs) -> Result<Exit, Fatal> {
    let targets = match (&args.from, &args.cluster) {
        (Some(from), _) => planned(from)?,
        (None, Some(cluster)) => {
            check_names(cluster, &args.namespace).map_err(|e| Fatal::usage(anyhow::anyhow!("--{e}")))?;
            vec![ClusterRef::new(&args.namespace, cluster)]
        }
        (None, None) => return Err(Fatal::usage(anyhow::anyhow!("name a cluster (--cluster) or a run (--from)"))),
    };
    let print = |s: String| println!("{}", crate::redact::apply(&s));
    if targets.is_empty() {
        print("the run planned no workload clusters: nothing to clean up".into());
        return Ok(Exit::Passed);
    }
    let cloud = load(&Lookup::from_env(args.cloud.clone())).map_err(Fatal::usage)?;
    let session = Session::login(&cloud).await.map_err(Fatal::infra)?;
    let opts = CleanupOptions {
        yes: args.yes,
        wait: args.wait,
        // Often enough for short waits, gently for the default ten minutes.
        poll: (args.wait / 20).clamp(Duration::from_millis(100), Duration::from_secs(2)),
    };
    // Every cluster is tried; the worst outcome decides the exit.
    let mut found_any = false;
    let mut errors = Vec::new();
    for cluster in &targets {
        let mut say = |s: String| print(s);
        let out = cleanup(&session, cluster, &opts, &mut say).await.map_err(|e| {
            if e.is_unreachable_or_auth() {
                Fatal::infra(e)
            } else {
                // Listing failed for another reason (a service error): nothing can be promised.
                Fatal {
                    exit: Exit::Failures,
                    error: e.into(),
                }
            }
        })?;
        let n = out.found.len();
        found_any |= n > 0 || !out.ambiguous.is_empty();
        print(format!(
            "cluster {cluster} on cloud `{}`: {n} resource{} found",
            cloud.name,
            plural(n)
        ));
        if !out.ambiguous.is_empty() {
            let names: Vec<String> = out.namesakes.iter().map(|c| c.to_string()).collect();
            print(format!(
                "  {} more that only the name `{}` ties to it are not deleted: cluster{} {} of the same name {} in this cloud (delete them by hand once you know whose they are)",
                out.ambiguous.len(),
                cluster.name,
                plural(names.len()),
                names.join(", "),
                if names.len() == 1 { "is" } else { "are" }
            ));
            for l in &out.ambiguous {
                print(format!("  not deleted: {l}"));
            }
        }
        if !args.yes {
            for l in &out.found {
                print(format!("  would delete {l}"));
            }
            continue;
        }
        for l in &out.remaining {
            print(format!("  left: {l}"));
        }
        if out.remaining.is_empty() && out.failed.is_empty() && out.ambiguous.is_empty() {
            print(format!("deleted {}; nothing of cluster {cluster} is left", out.deleted.len()));
        } else {
            let failed: Vec<String> = out
                .failed
                .iter()
                .map(|(l, why)| format!("{} {} {}: {why}", l.kind, l.id, l.name))
                .collect();
            errors.push(format!(
                "cleanup of cluster {cluster} incomplete: {} left, {} failed, {} not deleted as they could be a namesake's{}",
                out.remaining.len(),
                out.failed.len(),
                out.ambiguous.len(),
                if failed.is_empty() {
                    String::new()
                } else {
                    format!(":\n  {}", failed.join("\n  "))
                }
            ));
        }
    }
    if !args.yes {
        if found_any {
            print("dry run: nothing was deleted; run again with --yes to delete these".into());
            return Ok(Exit::Failures);
        }
        return Ok(Exit::Passed);
    }
    if errors.is_empty() {
        Ok(Exit::Passed)
    } else {
        Err(Fatal {
            exit: Exit::Failures,
            error: anyhow::anyhow!("{}", errors.join("\n")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_sort_in_deletion_order() {
        let mut k = vec![
            Kind::Image,
            Kind::Network,
            Kind::Server,
            Kind::Port,
            Kind::LoadBalancer,
            Kind::Router,
            Kind::Subnet,
        ];
        k.sort();
        assert_eq!(
            k,
            [
                Kind::LoadBalancer,
                Kind::Server,
                Kind::Port,
                Kind::Router,
                Kind::Subnet,
                Kind::Network,
                Kind::Image
            ]
        );
    }

    #[test]
    fn leak_testcase_fails_listing_each_leftover() {
        let c = ClusterRef::new("default", "alpha");
        let l = Leftover {
            kind: Kind::Router,
            id: "r1".into(),
            name: "k8s-clusterapi-cluster-default-alpha".into(),
            why: "CAPO cluster router name".into(),
            evidence: Evidence::Proven,
        };
        let v1 = Leftover {
            kind: Kind::Volume,
            id: "v1".into(),
            name: String::new(),
            why: "w".into(),
            evidence: Evidence::NameOnly,
        };
        let t = leak_testcase(&c, &Ok(vec![l.clone(), v1.clone()].into()));
        assert_eq!(t.status, Status::Failed);
        assert_eq!(t.operation, "leakCheck");
        assert_eq!(
            t.message.as_deref(),
            Some("2 OpenStack resources of cluster default/alpha left after its deletion")
        );
        assert_eq!(
            t.details.as_deref(),
            Some("router r1 k8s-clusterapi-cluster-default-alpha (CAPO cluster router name)\nvolume v1 (no name) (w)")
        );
        assert_eq!(leak_testcase(&c, &Ok(vec![].into())).status, Status::Passed);

        // Beside a namesake, what only the name ties to the cluster is listed, not counted.
        let with_namesake = |owned: Vec<Leftover>| Inventory {
            owned,
            ambiguous: vec![v1.clone()],
            namesakes: vec![ClusterRef::new("team-b", "alpha")],
            absent_services: Vec::new(),
        };
        let t = leak_testcase(&c, &Ok(with_namesake(vec![])));
        assert_eq!(t.status, Status::Passed);
        let note = "1 resource that only the name `alpha` ties to this cluster, not counted: cluster team-b/alpha of the same name is in this cloud";
        assert_eq!(t.message.as_deref(), Some(note));
        assert_eq!(t.details.as_deref(), Some(format!("{note}:\nvolume v1 (no name) (w)").as_str()));
        let t = leak_testcase(&c, &Ok(with_namesake(vec![l.clone()])));
        assert_eq!(t.status, Status::Failed);
        assert_eq!(
            t.message.as_deref(),
            Some("1 OpenStack resource of cluster default/alpha left after its deletion")
        );
        assert!(t.details.as_deref().unwrap().starts_with("router r1 "), "{t:?}");

        let e = ApiError::Http {
            service: "network (neutron)",
            call: "GET /v2.0/ports".into(),
            status: 500,
            message: "boom".into(),
        };
        let t = leak_testcase(&c, &Err(e));
        assert_eq!(t.status, Status::Error);
        assert!(t.message.unwrap().contains("network (neutron): GET /v2.0/ports answered 500: boom"));
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("alpha-1", 253) && valid_name("a.b", 253));
        assert!(
            !valid_name("", 253)
                && !valid_name("Alpha", 253)
                && !valid_name("-a", 253)
                && !valid_name("a_b", 253)
                && !valid_name("a*", 253)
        );
    }
}
