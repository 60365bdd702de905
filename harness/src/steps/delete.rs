//! `delete`: delete an object, a selection, or what a manifest file names; wait until gone.

use async_trait::async_trait;
use kube::api::{DeleteParams, DynamicObject, ListParams, PropagationPolicy};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Operation, exactly_one};
use crate::context::{StepCtx, StepFailure};
use crate::format::ResourceRef;
use crate::kube::{Target, Verdict, wait_until};

/// Deletes objects and (by default) waits until they are gone, finalizers included.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Delete {
    /// One object (`name`) or every object matching `selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceRef>,
    /// Every object in a manifest file or directory, like `kubectl delete -f`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Wait until the objects are gone (default true).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub wait: bool,
    /// Fail if the object does not exist (default false: deleting nothing is fine).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub must_exist: bool,
    /// `Background` (default), `Foreground` or `Orphan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<Propagation>,
}

/// Kubernetes' deletion propagation policy: what happens to the objects' dependents.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema)]
pub enum Propagation {
    /// Delete the object now; the garbage collector deletes dependents afterwards.
    Background,
    /// Delete dependents first; the object goes once they are gone.
    Foreground,
    /// Leave the dependents in place.
    Orphan,
}

fn yes() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}

#[async_trait]
impl Operation for Delete {
    fn summary(&self) -> String {
        match (&self.resource, &self.file) {
            (Some(r), _) => format!("delete {r}"),
            (None, Some(f)) => format!("delete {f}"),
            _ => "delete".into(),
        }
    }

    fn validate(&self) -> Result<(), crate::error::Invalid> {
        exactly_one(&[("resource", self.resource.is_some()), ("file", self.file.is_some())])?;
        if let Some(r) = &self.resource {
            exactly_one(&[("resource.name", r.name.is_some()), ("resource.selector", r.selector.is_some())])?;
        }
        Ok(())
    }

    async fn run(&self, ctx: &StepCtx) -> Result<(), StepFailure> {
        let dp = DeleteParams {
            propagation_policy: Some(match self.propagation.unwrap_or(Propagation::Background) {
                Propagation::Background => PropagationPolicy::Background,
                Propagation::Foreground => PropagationPolicy::Foreground,
                Propagation::Orphan => PropagationPolicy::Orphan,
            }),
            ..Default::default()
        };
        let mut targets: Vec<(ResourceRef, Target)> = Vec::new();
        if let Some(r) = &self.resource {
            let t = match (&r.name, &r.selector) {
                (Some(n), _) => Target::Name(ctx.substitute(n)),
                (_, Some(s)) => Target::Selector(ctx.substitute(s)),
                _ => return Err(StepFailure::error("delete needs resource.name or resource.selector")),
            };
            targets.push((r.clone(), t));
        } else {
            for doc in super::apply::load_manifests(ctx, self.file.as_deref(), None)? {
                let s = |p: &str| doc.pointer(p).and_then(Value::as_str).map(str::to_string);
                let (Some(api_version), Some(kind), Some(name)) = (s("/apiVersion"), s("/kind"), s("/metadata/name")) else {
                    continue;
                };
                let r = ResourceRef {
                    api_version,
                    kind,
                    name: Some(name.clone()),
                    namespace: s("/metadata/namespace"),
                    selector: None,
                };
                targets.push((r, Target::Name(name)));
            }
            // Reverse order: objects before the CRDs and namespaces they live in.
            targets.reverse();
        }
        for (r, target) in &targets {
            let api = ctx.api_for(r).await?;
            match target {
                Target::Name(n) => match api.delete(n, &dp).await {
                    Ok(_) => ctx.log.line(format!("deleting {}/{n}", r.kind)),
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        if self.must_exist {
                            return Err(StepFailure::failed(format!("{}/{n} does not exist", r.kind)));
                        }
                        ctx.log.line(format!("{}/{n} was already gone", r.kind));
                    }
                    Err(e) => return Err(StepFailure::error(format!("deleting {}/{n}: {e}", r.kind))),
                },
                Target::Selector(s) => {
                    let lp = ListParams::default().labels(s);
                    let list = api.delete_collection(&dp, &lp).await?;
                    let n = list.left().map(|l| l.items.len()).unwrap_or(0);
                    if n == 0 && self.must_exist {
                        return Err(StepFailure::failed(format!("no {} matches {s}", r.kind)));
                    }
                    ctx.log.line(format!("deleting {n} {} matching {s}", r.kind));
                }
            }
        }
        if self.wait {
            for (r, target) in &targets {
                let api: kube::Api<DynamicObject> = ctx.api_for(r).await?;
                let kind = r.kind.clone();
                wait_until(api, target, ctx.deadline, |objs| {
                    if objs.is_empty() {
                        Verdict::Done
                    } else {
                        let left: Vec<String> = objs
                            .iter()
                            .map(|(n, o)| {
                                format!(
                                    "{kind}/{n} (finalizers: {})",
                                    o.metadata.finalizers.clone().unwrap_or_default().join(", ")
                                )
                            })
                            .collect();
                        Verdict::Pending(format!("still there: {}", left.join(", ")))
                    }
                })
                .await?;
            }
            ctx.log.line("all deleted objects are gone");
        }
        Ok(())
    }
}
