//! Kubernetes helpers shared by steps, collectors and environments: clients from kubeconfigs,
//! dynamic kinds through a discovery cache, watch-based waits, partial-object matching.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, utils::Backoff};
use kube::{Client, Config};
use serde_json::Value;
use tokio::time::Instant;

/// Builds a client from a kubeconfig file. Errors name the file but never echo its content.
pub async fn client_from_kubeconfig(path: &Path) -> anyhow::Result<Client> {
    let kc = Kubeconfig::read_from(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read kubeconfig {}: {}; point --kubeconfig or KUBECONFIG at a valid kubeconfig file",
            path.display(),
            first_line(&e.to_string())
        )
    })?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| anyhow::anyhow!("kubeconfig {} is not usable: {}", path.display(), first_line(&e.to_string())))?;
    Ok(Client::try_from(config)?)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// Resolves `apiVersion` + `kind` to an API resource, cached per client.
pub struct Resolver {
    client: Client,
    cache: Mutex<HashMap<(String, String), (ApiResource, ApiCapabilities)>>,
}

impl Resolver {
    /// A resolver for `client`'s cluster, with an empty cache.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The client the resolver uses.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Finds a kind's API resource and capabilities (discovery, then cached).
    pub async fn resolve(&self, api_version: &str, kind: &str) -> Result<(ApiResource, ApiCapabilities), kube::Error> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(hit) = self.cache.lock().unwrap().get(&key) {
            return Ok(hit.clone());
        }
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let found = kube::discovery::pinned_kind(&self.client, &gvk).await?;
        self.cache.lock().unwrap().insert(key, found.clone());
        Ok(found)
    }

    /// The API for a kind: namespaced kinds in `namespace`, cluster-scoped kinds ignore it.
    pub async fn api(&self, api_version: &str, kind: &str, namespace: &str) -> Result<Api<DynamicObject>, kube::Error> {
        let (ar, caps) = self.resolve(api_version, kind).await?;
        Ok(match caps.scope {
            Scope::Namespaced => Api::namespaced_with(self.client.clone(), namespace, &ar),
            Scope::Cluster => Api::all_with(self.client.clone(), &ar),
        })
    }

    /// Drops a cached resolution, so the kind is discovered again (after its CRD changed).
    pub fn forget(&self, api_version: &str, kind: &str) {
        self.cache.lock().unwrap().remove(&(api_version.to_string(), kind.to_string()));
    }
}

/// Which objects a wait watches.
#[derive(Clone, Debug)]
pub enum Target {
    /// The object with this name.
    Name(String),
    /// The objects matching this label selector.
    Selector(String),
}

impl Target {
    fn watcher_config(&self) -> watcher::Config {
        match self {
            Target::Name(n) => watcher::Config::default().fields(&format!("metadata.name={n}")),
            Target::Selector(s) => watcher::Config::default().labels(s),
        }
    }
}

/// What a check says about the objects observed so far.
pub enum Verdict {
    /// The check passed: stop waiting.
    Done,
    /// Not yet; the text describes the state, reported if the wait times out.
    Pending(String),
    /// A terminal failure: stop waiting.
    Failed(String),
}

/// Why a wait ended without the check passing.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The deadline passed before the check said done.
    #[error("timed out after {elapsed:.1?}: {last}")]
    Timeout {
        /// How long the wait took.
        elapsed: Duration,
        /// What the check last reported (and the last API error, if any).
        last: String,
    },
    /// The check reported a terminal failure (or the watch stream ended).
    #[error("{0}")]
    Failed(String),
}

/// Quick reconnects: a restarted API server should be seen again within a second.
struct QuickBackoff {
    next: Duration,
}

impl Iterator for QuickBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let d = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(1));
        Some(d)
    }
}

impl Backoff for QuickBackoff {
    fn reset(&mut self) {
        self.next = Duration::from_millis(100);
    }
}

/// Watches the target objects until `check` says done, fails, or the deadline passes.
/// `check` sees the current objects (by name) and whether the initial list is complete.
/// Survives API server restarts: the watcher re-lists and the check runs again.
pub async fn wait_until<F>(
    api: Api<DynamicObject>,
    target: &Target,
    deadline: Instant,
    check: F,
) -> Result<BTreeMap<String, DynamicObject>, WaitError>
where
    F: FnMut(&BTreeMap<String, DynamicObject>) -> Verdict,
{
    wait_until_ticking(api, target, deadline, None, check).await
}

/// Watches a CustomResourceDefinition until its `Established` condition is True.
pub async fn wait_crd_established(api: Api<DynamicObject>, name: &str, deadline: Instant) -> Result<(), WaitError> {
    wait_until(api, &Target::Name(name.to_string()), deadline, |objs| match objs.get(name) {
        Some(o) if conditions(o).iter().any(|c| c.type_ == "Established" && c.status == "True") => Verdict::Done,
        Some(o) => Verdict::Pending(format!("CRD {name}: {}", describe_conditions(o))),
        None => Verdict::Pending(format!("CRD {name} not found")),
    })
    .await
    .map(|_| ())
}

/// [`wait_until`], also re-checking every `tick` without events, for checks that depend on how
/// long a state has lasted (an object that stays in an error state never changes again).
pub async fn wait_until_ticking<F>(
    api: Api<DynamicObject>,
    target: &Target,
    deadline: Instant,
    tick: Option<Duration>,
    mut check: F,
) -> Result<BTreeMap<String, DynamicObject>, WaitError>
where
    F: FnMut(&BTreeMap<String, DynamicObject>) -> Verdict,
{
    let started = Instant::now();
    let stream = watcher::watcher(api, target.watcher_config()).backoff(QuickBackoff {
        next: Duration::from_millis(100),
    });
    let mut stream = std::pin::pin!(stream);
    let mut objects: BTreeMap<String, DynamicObject> = BTreeMap::new();
    let mut init_buffer: Option<BTreeMap<String, DynamicObject>> = None;
    let mut synced = false;
    let mut last = "nothing observed yet: no answer from the API server".to_string();
    let mut last_error: Option<String> = None;
    loop {
        let wake = match tick {
            Some(t) if synced => deadline.min(Instant::now() + t),
            _ => deadline,
        };
        let next = match tokio::time::timeout_at(wake, stream.next()).await {
            Ok(Some(n)) => n,
            Err(_) if wake < deadline => {
                match check(&objects) {
                    Verdict::Done => return Ok(objects),
                    Verdict::Pending(s) => last = s,
                    Verdict::Failed(s) => return Err(WaitError::Failed(s)),
                }
                continue;
            }
            Ok(None) => return Err(WaitError::Failed("watch stream ended".into())),
            Err(_) => {
                let mut last = last;
                if let Some(e) = last_error {
                    last.push_str(&format!(" (last API error: {e})"));
                }
                return Err(WaitError::Timeout {
                    elapsed: started.elapsed(),
                    last,
                });
            }
        };
        match next {
            Err(e) => {
                last_error = Some(first_line(&e.to_string()).to_string());
                continue;
            }
            Ok(ev) => {
                last_error = None;
                match ev {
                    Event::Init => init_buffer = Some(BTreeMap::new()),
                    Event::InitApply(o) => {
                        if let Some(b) = init_buffer.as_mut() {
                            b.insert(obj_name(&o), o);
                        }
                    }
                    Event::InitDone => {
                        objects = init_buffer.take().unwrap_or_default();
                        synced = true;
                    }
                    Event::Apply(o) => {
                        objects.insert(obj_name(&o), o);
                    }
                    Event::Delete(o) => {
                        objects.remove(&obj_name(&o));
                    }
                }
            }
        }
        if !synced || init_buffer.is_some() {
            continue;
        }
        match check(&objects) {
            Verdict::Done => return Ok(objects),
            Verdict::Pending(s) => last = s,
            Verdict::Failed(s) => return Err(WaitError::Failed(s)),
        }
    }
}

fn obj_name(o: &DynamicObject) -> String {
    o.metadata.name.clone().unwrap_or_default()
}

/// `Ready=False (Reason): message; Synced=True` — the conditions of an object, for messages.
pub fn describe_conditions(obj: &DynamicObject) -> String {
    let conds = conditions(obj);
    if conds.is_empty() {
        return "no conditions".into();
    }
    conds
        .iter()
        .map(|c| {
            let mut s = format!("{}={}", c.type_, c.status);
            if !c.reason.is_empty() {
                s.push_str(&format!(" ({})", c.reason));
            }
            if !c.message.is_empty() {
                s.push_str(&format!(": {}", c.message));
            }
            s
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// One entry of an object's `status.conditions`; missing strings are empty.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// The condition's `type`, like `Ready`.
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason; empty when not given.
    pub reason: String,
    /// Human-readable message; empty when not given.
    pub message: String,
}

/// `status.conditions` of any object (Kubernetes and Cluster API v1beta1 shapes alike).
pub fn conditions(obj: &DynamicObject) -> Vec<Condition> {
    let s = |c: &Value, k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    obj.data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|c| Condition {
                    type_: s(c, "type"),
                    status: s(c, "status"),
                    reason: s(c, "reason"),
                    message: s(c, "message"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whole object as JSON (metadata included), for partial matching.
pub fn to_json(obj: &DynamicObject) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

/// Checks that `expected` is contained in `actual`: maps key by key, scalars by equality, and each
/// element of an expected list matched by a distinct element of the actual list (order-free).
/// The error names the path of the first mismatch and what was found there.
pub fn match_subset(expected: &Value, actual: &Value) -> Result<(), crate::error::Invalid> {
    match_at(expected, actual, &mut String::new())
}

fn match_at(expected: &Value, actual: &Value, path: &mut String) -> Result<(), crate::error::Invalid> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                match a.get(k) {
                    Some(av) => match_at(ev, av, path)?,
                    None if ev.is_null() => {}
                    None => return Err(format!("{path}: expected {}, but it is missing", short(ev)).into()),
                }
                path.truncate(len);
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            let mut used = vec![false; a.len()];
            for (i, ev) in e.iter().enumerate() {
                let hit = a
                    .iter()
                    .enumerate()
                    .find(|(j, av)| !used[*j] && match_at(ev, av, &mut String::new()).is_ok());
                match hit {
                    Some((j, _)) => used[j] = true,
                    None => return Err(format!("{path}[{i}]: no element matches {}; found {}", short(ev), short(actual)).into()),
                }
            }
            Ok(())
        }
        (e, a) if scalar_eq(e, a) => Ok(()),
        (e, a) => Err(format!(
            "{}: expected {}, found {}",
            if path.is_empty() { "." } else { path },
            short(e),
            short(a)
        )
        .into()),
    }
}

/// Numbers compare by value, and a quoted number matches the number (YAML authors quote freely).
fn scalar_eq(e: &Value, a: &Value) -> bool {
    match (e, a) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::String(x), Value::Number(y)) | (Value::Number(y), Value::String(x)) => x.parse::<f64>().ok() == y.as_f64(),
        _ => e == a,
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 200 {
        format!("{}…", &s[..s.floor_char_boundary(200)])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_matching_reports_the_first_mismatch() {
        let actual = json!({"status": {"phase": "Pending", "conditions": [{"type": "A", "status": "True"}, {"type": "Ready", "status": "False"}]}, "spec": {"replicas": 3}});
        assert!(match_subset(&json!({"spec": {"replicas": "3"}}), &actual).is_ok());
        assert!(match_subset(&json!({"status": {"conditions": [{"type": "Ready"}]}}), &actual).is_ok());
        let e = match_subset(&json!({"status": {"phase": "Ready"}}), &actual).unwrap_err();
        assert_eq!(e, r#".status.phase: expected "Ready", found "Pending""#);
        let e = match_subset(&json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}), &actual).unwrap_err();
        assert!(e.starts_with(".status.conditions[0]: no element matches"), "{e}");
        let e = match_subset(&json!({"spec": {"paused": true}}), &actual).unwrap_err();
        assert_eq!(e, ".spec.paused: expected true, but it is missing");
    }

    #[test]
    fn list_elements_are_matched_distinctly() {
        let actual = json!([{"a": 1}, {"b": 2}]);
        assert!(match_subset(&json!([{"a": 1}, {"b": 2}]), &actual).is_ok());
        assert!(match_subset(&json!([{"a": 1}, {"a": 1}]), &actual).is_err());
    }
}
