//! `assert`: an object (or every object a selector picks) matches a partial object within the
//! step's timeout (watch, not poll).

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Operation;
use crate::context::{StepCtx, StepFailure};
use crate::format::ResourceRef;
use crate::kube::{Target, Verdict, match_subset, to_json, wait_until};

/// Waits until the object exists and contains `matches` (maps by key, list elements order-free);
/// with a `selector`, until at least one object matches it and every one of them contains `matches`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Assert {
    /// The object (`name`), or the objects (`selector`: every match must contain `matches`).
    pub resource: ResourceRef,
    /// A partial object, such as `{status: {phase: Ready}}`.
    pub matches: Value,
}

#[async_trait]
impl Operation for Assert {
    fn summary(&self) -> String {
        format!("assert {}", self.resource)
    }

    fn validate(&self) -> Result<(), crate::error::Invalid> {
        if self.resource.name.is_some() == self.resource.selector.is_some() {
            return Err(
                "`assert` needs `resource.name` (one object) or `resource.selector` (every object it picks, at least one), not both".into(),
            );
        }
        if !self.matches.is_object() {
            return Err("`matches` must be a map, a partial object like `{status: {phase: Ready}}`".into());
        }
        Ok(())
    }

    async fn run(&self, ctx: &StepCtx) -> Result<(), StepFailure> {
        let api = ctx.api_for(&self.resource).await?;
        let expected: Value =
            serde_json::from_str(&ctx.substitute(&self.matches.to_string())).map_err(|e| StepFailure::error(format!("matches: {e}")))?;
        let kind = &self.resource.kind;
        if let Some(sel) = &self.resource.selector {
            let sel = ctx.substitute(sel);
            let objs = wait_until(api, &Target::Selector(sel.clone()), ctx.deadline, |objs| {
                if objs.is_empty() {
                    return Verdict::Pending(format!("no {kind} matches [{sel}]"));
                }
                let wrong: Vec<String> = objs
                    .iter()
                    .filter_map(|(n, o)| match_subset(&expected, &to_json(o)).err().map(|why| format!("{kind}/{n}: {why}")))
                    .collect();
                if wrong.is_empty() {
                    Verdict::Done
                } else {
                    Verdict::Pending(format!("{} of {} do not match: {}", wrong.len(), objs.len(), wrong.join("; ")))
                }
            })
            .await?;
            let names: Vec<&str> = objs.keys().map(String::as_str).collect();
            ctx.log
                .line(format!("{kind} [{sel}]: all {} match ({})", names.len(), names.join(", ")));
            return Ok(());
        }
        let name = ctx.substitute(self.resource.name.as_deref().unwrap_or_default());
        wait_until(api, &Target::Name(name.clone()), ctx.deadline, |objs| match objs.get(&name) {
            None => Verdict::Pending(format!("{kind}/{name} does not exist")),
            Some(o) => match match_subset(&expected, &to_json(o)) {
                Ok(()) => Verdict::Done,
                Err(why) => Verdict::Pending(format!("{kind}/{name} does not match: {why}")),
            },
        })
        .await?;
        ctx.log.line(format!("{kind}/{name} matches"));
        Ok(())
    }
}
