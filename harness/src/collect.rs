//! Collectors: what a scenario saves for debugging (`finally` always, `onFailure` on failure).
//! Everything goes below the scenario's artifact directory; Secret values are never written.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DynamicObject, ListParams, LogParams};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::StepCtx;
use crate::env::Environment;
use crate::steps::Operation;

/// One collector of a scenario's `finally` or `onFailure` list: what to save into its artifacts.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Collector {
    /// Dump objects of the given kinds as YAML (Secrets with their values redacted).
    Resources(Resources),
    /// Events of the given namespaces, oldest first.
    Events(Namespaces),
    /// Logs of the pods matching a selector.
    PodLogs(PodLogs),
    /// The environment's own logs: lab processes, kind nodes, controllers.
    EnvironmentLogs(Empty),
    /// Every object of the Cluster API, CSO and infrastructure provider kinds (API groups
    /// ending in `x-k8s.io`, found by discovery) in the scenario's namespace.
    ClusterApi(Empty),
    /// Run a command; its output is saved.
    Command(crate::steps::command::Command),
}

/// No options (for collectors that take none).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// Options of the `resources` collector: which kinds, in which namespaces.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// `apiVersion/Kind`, such as `v1/ConfigMap` or `cluster.x-k8s.io/v1beta1/Cluster`.
    pub kinds: Vec<String>,
    /// Default: the scenario's namespace. Cluster-scoped kinds ignore it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

/// Options of the `events` collector: which namespaces.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Namespaces {
    /// Default: the scenario's namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

/// Options of the `podLogs` collector: which pods.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodLogs {
    /// Default: the scenario's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Label selector; default: every pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

impl Collector {
    /// Kebab-case name of the collector's kind (`pod-logs`, ...): in artifact directory names and
    /// the report's collector records.
    pub fn label(&self) -> &'static str {
        match self {
            Collector::Resources(_) => "resources",
            Collector::Events(_) => "events",
            Collector::PodLogs(_) => "pod-logs",
            Collector::EnvironmentLogs(_) => "environment-logs",
            Collector::ClusterApi(_) => "cluster-api",
            Collector::Command(_) => "command",
        }
    }

    /// Checks the options before anything runs: `resources` kinds must read `apiVersion/Kind`.
    pub fn validate(&self) -> Result<(), crate::error::Invalid> {
        match self {
            Collector::Resources(r) => {
                for k in &r.kinds {
                    split_kind(k)?;
                }
                Ok(())
            }
            Collector::Command(c) => c.validate(),
            _ => Ok(()),
        }
    }

    /// Runs the collector into `dir`; returns a one-line summary.
    pub async fn collect(&self, ctx: &StepCtx, env: &dyn Environment, dir: &Path) -> anyhow::Result<String> {
        std::fs::create_dir_all(dir)?;
        let nss = |v: &Vec<String>| -> Vec<String> {
            if v.is_empty() {
                vec![ctx.namespace.clone()]
            } else {
                v.iter().map(|n| ctx.substitute(n)).collect()
            }
        };
        match self {
            Collector::Resources(r) => {
                let mut n = 0;
                for k in &r.kinds {
                    let (av, kind) = split_kind(k).map_err(anyhow::Error::msg)?;
                    for ns in nss(&r.namespaces) {
                        n += dump_kind(ctx, av, kind, &ns, dir).await?;
                    }
                }
                Ok(format!("{n} objects"))
            }
            Collector::ClusterApi(_) => {
                let discovery = kube::discovery::Discovery::new(ctx.client()).run().await?;
                let (mut n, mut kinds) = (0, 0);
                for group in discovery.groups().filter(|g| g.name().ends_with("x-k8s.io")) {
                    for (ar, caps) in group.recommended_resources() {
                        if !caps.supports_operation(kube::discovery::verbs::LIST) {
                            continue;
                        }
                        kinds += 1;
                        n += dump_kind(ctx, &ar.api_version, &ar.kind, &ctx.namespace, dir).await?;
                    }
                }
                Ok(format!("{n} objects of {kinds} Cluster API kinds"))
            }
            Collector::Events(e) => {
                let mut lines = Vec::new();
                for ns in nss(&e.namespaces) {
                    let api: Api<Event> = Api::namespaced(ctx.client(), &ns);
                    let mut evs = api.list(&ListParams::default()).await?.items;
                    evs.sort_by_key(event_time);
                    for ev in evs {
                        lines.push(format!(
                            "{}\t{}\t{}\t{}/{}\t{}\t{}",
                            event_time(&ev),
                            ns,
                            ev.type_.clone().unwrap_or_default(),
                            ev.involved_object.kind.clone().unwrap_or_default(),
                            ev.involved_object.name.clone().unwrap_or_default(),
                            ev.reason.clone().unwrap_or_default(),
                            ev.message.clone().unwrap_or_default().replace('\n', " ")
                        ));
                    }
                }
                crate::redact::write(&dir.join("events.txt"), &(lines.join("\n") + "\n"))?;
                Ok(format!("{} events", lines.len()))
            }
            Collector::PodLogs(p) => {
                let ns = p
                    .namespace
                    .as_deref()
                    .map(|n| ctx.substitute(n))
                    .unwrap_or_else(|| ctx.namespace.clone());
                let api: Api<Pod> = Api::namespaced(ctx.client(), &ns);
                let mut lp = ListParams::default();
                if let Some(s) = &p.selector {
                    lp = lp.labels(&ctx.substitute(s));
                }
                let mut n = 0;
                for pod in api.list(&lp).await?.items {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
                        let params = LogParams {
                            container: Some(c.name.clone()),
                            ..Default::default()
                        };
                        let text = api.logs(&name, &params).await.unwrap_or_else(|e| format!("(no logs: {e})\n"));
                        crate::redact::write(&dir.join(format!("{name}_{}.log", c.name)), &text)?;
                        n += 1;
                    }
                }
                Ok(format!("{n} container logs"))
            }
            Collector::EnvironmentLogs(_) => {
                let files = env.collect_logs(dir).await?;
                // Copied as the environment wrote them: masked here, before anyone reads them.
                crate::redact::mask_tree(dir)?;
                Ok(format!("{files} log files"))
            }
            Collector::Command(c) => {
                let res = c.run(ctx).await;
                crate::redact::write(&dir.join("output.log"), &(ctx.log.lines().join("\n") + "\n"))?;
                match res {
                    Ok(()) => Ok("command succeeded".into()),
                    Err(f) => anyhow::bail!(f.message),
                }
            }
        }
    }
}

/// Writes every object of one kind (in `ns`, if namespaced) as YAML; returns the count.
async fn dump_kind(ctx: &StepCtx, api_version: &str, kind: &str, ns: &str, dir: &Path) -> anyhow::Result<usize> {
    let api = ctx.resolver.api(api_version, kind, ns).await?;
    let mut n = 0;
    for o in api.list(&ListParams::default()).await?.items {
        let file = dir.join(kind.to_lowercase()).join(format!(
            "{}{}.yaml",
            o.metadata.namespace.as_deref().map(|n| format!("{n}_")).unwrap_or_default(),
            o.metadata.name.as_deref().unwrap_or("unnamed")
        ));
        crate::redact::write(&file, &serde_saphyr::to_string(&sanitize(&o, kind))?)?;
        n += 1;
    }
    Ok(n)
}

fn event_time(e: &Event) -> String {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
        .unwrap_or_default()
}

/// `apps/v1/Deployment` → (`apps/v1`, `Deployment`); `v1/Pod` → (`v1`, `Pod`).
pub fn split_kind(s: &str) -> Result<(&str, &str), crate::error::Invalid> {
    match s.rsplit_once('/') {
        Some((av, k)) if !av.is_empty() && k.starts_with(|c: char| c.is_ascii_uppercase()) => Ok((av, k)),
        _ => Err(format!("kind `{s}` must be written apiVersion/Kind, like `v1/ConfigMap` or `apps/v1/Deployment`").into()),
    }
}

/// Object as written to artifacts: no managedFields, and no Secret values. `kind` is the kind
/// the collector asked for: objects of a list come without their own kind.
pub fn sanitize(o: &DynamicObject, kind: &str) -> Value {
    let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    if kind == "Secret" || o.types.as_ref().is_some_and(|t| t.kind == "Secret") {
        for key in ["data", "stringData"] {
            if let Some(Value::Object(d)) = v.get_mut(key) {
                for val in d.values_mut() {
                    *val = Value::String("REDACTED".into());
                }
            }
        }
        if let Some(a) = v.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    v
}

/// `<artifacts>/<suite>/<scenario>/collect/<NN>-<label>`
pub fn collector_dir(scenario_dir: &Path, phase: &str, index: usize, c: &Collector) -> PathBuf {
    scenario_dir.join(phase).join(format!("{:02}-{}", index + 1, c.label()))
}
