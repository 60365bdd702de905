//! `apply`: server-side apply of manifests (a file, a directory, or inline), CRDs first.

use std::time::Duration;

use async_trait::async_trait;
use kube::api::{DynamicObject, Patch, PatchParams};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Operation, exactly_one};
use crate::context::{StepCtx, StepFailure};

/// Server-side apply manifests. Namespaced objects without a namespace go to the scenario's.
/// CRDs and Namespaces are applied first, and CRDs are waited for until Established.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Apply {
    /// A YAML file (several documents allowed) or a directory of `*.yaml`/`*.yml`, relative to the suite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Inline manifests: YAML text, one object, or a list of objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Value>,
    /// Namespace for namespaced objects that name none (default: the scenario's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[async_trait]
impl Operation for Apply {
    fn summary(&self) -> String {
        match &self.file {
            Some(f) => format!("apply {f}"),
            None => "apply manifest".into(),
        }
    }

    fn validate(&self) -> Result<(), crate::error::Invalid> {
        exactly_one(&[("file", self.file.is_some()), ("manifest", self.manifest.is_some())])
    }

    async fn run(&self, ctx: &StepCtx) -> Result<(), StepFailure> {
        let mut docs = load_manifests(ctx, self.file.as_deref(), self.manifest.as_ref())?;
        // Namespaces and CRDs first, so the objects that need them find them.
        docs.sort_by_key(|d| match d.get("kind").and_then(Value::as_str) {
            Some("Namespace") => 0,
            Some("CustomResourceDefinition") => 1,
            _ => 2,
        });
        let default_ns = self
            .namespace
            .as_deref()
            .map(|n| ctx.substitute(n))
            .unwrap_or_else(|| ctx.namespace.clone());
        let mut crds = Vec::new();
        let mut crds_ready = false;
        for doc in docs {
            let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
            if kind != "CustomResourceDefinition" && !crds_ready {
                wait_established(ctx, &crds).await?;
                crds_ready = true;
            }
            let applied = apply_one(ctx, doc, &default_ns).await?;
            if kind == "CustomResourceDefinition" {
                crds.push(applied);
            }
        }
        if !crds_ready {
            wait_established(ctx, &crds).await?;
        }
        Ok(())
    }
}

/// Reads manifests from a file, a directory or an inline value, with `${VAR}` substituted.
pub fn load_manifests(ctx: &StepCtx, file: Option<&str>, inline: Option<&Value>) -> Result<Vec<Value>, StepFailure> {
    let mut docs = Vec::new();
    if let Some(f) = file {
        let path = ctx.resolve_path(&ctx.substitute(f));
        let files = if path.is_dir() {
            let mut v: Vec<_> = std::fs::read_dir(&path)
                .map_err(|e| StepFailure::error(format!("cannot read directory {}: {e}", path.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
                .collect();
            v.sort();
            v
        } else {
            vec![path]
        };
        for p in files {
            let text = std::fs::read_to_string(&p).map_err(|e| StepFailure::error(format!("cannot read manifest {}: {e}", p.display())))?;
            docs.extend(parse_docs(&ctx.substitute(&text), &p.display().to_string())?);
        }
    }
    match inline {
        Some(Value::String(text)) => docs.extend(parse_docs(&ctx.substitute(text), "inline manifest")?),
        Some(v) => {
            let text = ctx.substitute(&v.to_string());
            let v: Value = serde_json::from_str(&text).map_err(|e| StepFailure::error(format!("inline manifest: {e}")))?;
            match v {
                Value::Array(items) => docs.extend(items),
                other => docs.push(other),
            }
        }
        None => {}
    }
    // `kind: List` holds its objects in `items`.
    let mut out = Vec::new();
    for d in docs {
        if d.get("kind").and_then(Value::as_str) == Some("List") {
            out.extend(d.get("items").and_then(Value::as_array).cloned().unwrap_or_default());
        } else if !d.is_null() {
            out.push(d);
        }
    }
    Ok(out)
}

fn parse_docs(text: &str, source: &str) -> Result<Vec<Value>, StepFailure> {
    serde_saphyr::from_multiple::<Value>(text).map_err(|e| {
        let at = e.location().map(|l| format!(":{}:{}", l.line(), l.column())).unwrap_or_default();
        StepFailure::error(format!("{source}{at}: invalid YAML: {}", e.without_snippet()))
    })
}

async fn apply_one(ctx: &StepCtx, mut doc: Value, default_ns: &str) -> Result<DynamicObject, StepFailure> {
    let field = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(api_version), Some(kind)) = (field("apiVersion"), field("kind")) else {
        return Err(StepFailure::error(format!(
            "a manifest lacks apiVersion or kind: {}",
            preview(&doc)
        )));
    };
    let Some(name) = doc.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string) else {
        return Err(StepFailure::error(format!(
            "{kind} lacks metadata.name (server-side apply needs a name)"
        )));
    };
    let (ar, caps) = resolve_retrying(ctx, &api_version, &kind).await?;
    let api = match caps.scope {
        kube::discovery::Scope::Namespaced => {
            let ns = doc
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(default_ns)
                .to_string();
            doc["metadata"]["namespace"] = Value::String(ns.clone());
            kube::Api::<DynamicObject>::namespaced_with(ctx.client(), &ns, &ar)
        }
        kube::discovery::Scope::Cluster => kube::Api::all_with(ctx.client(), &ar),
    };
    let applied = api
        .patch(
            &name,
            &PatchParams::apply(crate::context::FIELD_MANAGER).force(),
            &Patch::Apply(&doc),
        )
        .await
        .map_err(|e| StepFailure::error(format!("applying {kind}/{name}: {e}")))?;
    ctx.log.line(format!(
        "applied {kind}/{name}{}",
        applied
            .metadata
            .namespace
            .as_deref()
            .map(|n| format!(" in {n}"))
            .unwrap_or_default()
    ));
    Ok(applied)
}

/// A kind from a just-established CRD can take a moment to appear in discovery.
async fn resolve_retrying(
    ctx: &StepCtx,
    api_version: &str,
    kind: &str,
) -> Result<(kube::discovery::ApiResource, kube::discovery::ApiCapabilities), StepFailure> {
    let mut delay = Duration::from_millis(50);
    loop {
        match ctx.resolver.resolve(api_version, kind).await {
            Ok(r) => return Ok(r),
            Err(e) if tokio::time::Instant::now() + delay < ctx.deadline && is_not_found(&e) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            Err(e) => {
                return Err(StepFailure::error(format!(
                    "the API server does not serve {kind} in {api_version}: {e}; install its CRD first (an earlier apply step)"
                )));
            }
        }
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 404,
        other => other.to_string().contains("not found") || other.to_string().contains("404"),
    }
}

async fn wait_established(ctx: &StepCtx, crds: &[DynamicObject]) -> Result<(), StepFailure> {
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let api = ctx.resolver.api("apiextensions.k8s.io/v1", "CustomResourceDefinition", "").await?;
        crate::kube::wait_crd_established(api, &name, ctx.deadline)
            .await
            .map_err(|e| StepFailure::error(format!("CRD {name} never became Established: {e}")))?;
        let kind = crd.data.pointer("/spec/names/kind").and_then(Value::as_str).unwrap_or_default();
        let group = crd.data.pointer("/spec/group").and_then(Value::as_str).unwrap_or_default();
        for v in crd.data.pointer("/spec/versions").and_then(Value::as_array).into_iter().flatten() {
            if let Some(v) = v.get("name").and_then(Value::as_str) {
                ctx.resolver.forget(&format!("{group}/{v}"), kind);
            }
        }
        ctx.log.line(format!("CRD {name} is Established"));
    }
    Ok(())
}

fn preview(v: &Value) -> String {
    let s = v.to_string();
    s.chars().take(120).collect()
}
