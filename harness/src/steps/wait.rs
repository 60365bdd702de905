//! `wait`: until a condition holds on one object or on every object of a selector, or until the
//! objects are gone. Any kind, custom resources included.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Operation;
use crate::context::{StepCtx, StepFailure};
use crate::format::ResourceRef;
use crate::kube::{Target, Verdict, conditions, describe_conditions, wait_until};

/// Waits for `condition` (with `status`, default "True", and optionally `reason`) or for deletion.
/// Without either, waits until the object exists.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Wait {
    /// One object (`name`) or all objects matching `selector` (at least one must exist).
    pub resource: ResourceRef,
    /// Condition type in `status.conditions`, such as `Ready` or `Available`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Expected condition status (default `True`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Expected condition reason, if it matters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Wait until the object(s) no longer exist.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

#[async_trait]
impl Operation for Wait {
    fn summary(&self) -> String {
        match (&self.condition, self.deleted) {
            (Some(c), _) => format!("wait {} {c}", self.resource),
            (None, true) => format!("wait {} deleted", self.resource),
            (None, false) => format!("wait {} exists", self.resource),
        }
    }

    fn validate(&self) -> Result<(), crate::error::Invalid> {
        super::exactly_one(&[
            ("resource.name", self.resource.name.is_some()),
            ("resource.selector", self.resource.selector.is_some()),
        ])?;
        if self.deleted && self.condition.is_some() {
            return Err("set `condition` or `deleted: true`, not both".into());
        }
        if self.condition.is_none() && (self.status.is_some() || self.reason.is_some()) {
            return Err("`status` and `reason` need a `condition`".into());
        }
        Ok(())
    }

    async fn run(&self, ctx: &StepCtx) -> Result<(), StepFailure> {
        let api = ctx.api_for(&self.resource).await?;
        let target = match (&self.resource.name, &self.resource.selector) {
            (Some(n), _) => Target::Name(ctx.substitute(n)),
            (None, Some(s)) => Target::Selector(ctx.substitute(s)),
            (None, None) => return Err(StepFailure::error("wait needs resource.name or resource.selector")),
        };
        let kind = self.resource.kind.clone();
        let what = match &target {
            Target::Name(n) => format!("{kind}/{n}"),
            Target::Selector(s) => format!("{kind} [{s}]"),
        };
        let want_status = self.status.clone().unwrap_or_else(|| "True".into());
        let check = |objs: &std::collections::BTreeMap<String, kube::api::DynamicObject>| {
            if self.deleted {
                return if objs.is_empty() {
                    Verdict::Done
                } else {
                    Verdict::Pending(format!(
                        "{what} still exists: {}",
                        objs.keys().cloned().collect::<Vec<_>>().join(", ")
                    ))
                };
            }
            if objs.is_empty() {
                return Verdict::Pending(format!("{what} does not exist"));
            }
            let Some(cond) = &self.condition else { return Verdict::Done };
            let mut pending = Vec::new();
            for (name, o) in objs {
                let ok = conditions(o)
                    .iter()
                    .any(|c| &c.type_ == cond && c.status == want_status && self.reason.as_ref().is_none_or(|r| &c.reason == r));
                if !ok {
                    pending.push(format!("{kind}/{name}: {}", describe_conditions(o)));
                }
            }
            if pending.is_empty() {
                Verdict::Done
            } else {
                Verdict::Pending(format!("waiting for {cond}={want_status}; {}", pending.join(" | ")))
            }
        };
        let done = wait_until(api, &target, ctx.deadline, check).await?;
        ctx.log.line(format!("{} done ({} object(s))", self.summary(), done.len()));
        Ok(())
    }
}
