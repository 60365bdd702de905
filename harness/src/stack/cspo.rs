//! The legacy OpenStack path: the Cluster Stack Provider OpenStack (CSPO) imports a stack's node
//! images into Glance. CSO makes an OpenStackClusterStackRelease from the ClusterStack's
//! `providerRef` template and waits for its `status.ready`; CSPO makes one
//! OpenStackNodeImageRelease per image and reports the import in its `OpenStackImageActive`
//! condition. A timed-out or broken import leaves the release waiting forever (CSPO does not
//! give up), so the harness reads the image releases and fails at once.

use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::context::{Scope, StepFailure};
use crate::kube::{Target, Verdict, WaitError, conditions, wait_until};

/// API group/version of CSPO's kinds.
pub const GROUP_VERSION: &str = "infrastructure.clusterstack.x-k8s.io/v1alpha1";
/// Kind of the template a ClusterStack's `providerRef` points at (carries the cloud identity).
pub const TEMPLATE_KIND: &str = "OpenStackClusterStackReleaseTemplate";
/// Kind of CSPO's per-image release, whose `OpenStackImageActive` condition reports the import.
pub const IMAGE_RELEASE_KIND: &str = "OpenStackNodeImageRelease";
/// Kind of the provider release CSO makes from the template; `status.ready` once images are in.
pub const RELEASE_KIND: &str = "OpenStackClusterStackRelease";
/// Reasons of `OpenStackImageActive`=False that CSPO never recovers from by itself.
pub const TERMINAL_REASONS: &[&str] = &["OpenStackImageImportTimeOutReason", "IssueWithOpenStackImage"];

/// Server-side applies the template (identity: the Secret with `clouds.yaml`); returns the
/// ClusterStack's `providerRef` to it.
pub async fn apply_template(scope: &Scope, name: &str, identity_secret: &str) -> Result<Value, StepFailure> {
    let api = scope.resolver.api(GROUP_VERSION, TEMPLATE_KIND, &scope.namespace).await.map_err(|e| {
        StepFailure::error(format!(
            "the API has no {TEMPLATE_KIND} ({GROUP_VERSION}): {e}; `noProvider: false` needs the Cluster Stack Provider OpenStack (CSPO) installed"
        ))
    })?;
    let obj = json!({
        "apiVersion": GROUP_VERSION,
        "kind": TEMPLATE_KIND,
        "metadata": {"name": name, "namespace": scope.namespace},
        "spec": {"template": {"spec": {"identityRef": {"kind": "Secret", "name": identity_secret}}}},
    });
    api.patch(
        name,
        &PatchParams::apply(crate::context::FIELD_MANAGER).force(),
        &Patch::Apply(&obj),
    )
    .await
    .map_err(|e| StepFailure::error(format!("{TEMPLATE_KIND} {name} was refused: {}", super::ops::api_message(&e))))?;
    scope
        .log
        .line(format!("{TEMPLATE_KIND} {name}: CSPO imports images with Secret {identity_secret}"));
    Ok(json!({"apiVersion": GROUP_VERSION, "kind": TEMPLATE_KIND, "name": name}))
}

/// Whether an image release belongs to the provider release `release` (CSPO sets an owner
/// reference; an image shared by several releases has several).
fn owned_by(o: &kube::api::DynamicObject, release: &str) -> bool {
    o.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.kind == RELEASE_KIND && r.name == release)
}

/// The first image import of `release` that failed for good, described; `None` while none has.
pub fn failed_import(objs: &std::collections::BTreeMap<String, kube::api::DynamicObject>, release: &str) -> Option<String> {
    objs.iter().filter(|(_, o)| owned_by(o, release)).find_map(|(n, o)| {
        let c = conditions(o)
            .into_iter()
            .find(|c| c.type_ == "OpenStackImageActive" && c.status == "False" && TERMINAL_REASONS.contains(&c.reason.as_str()))?;
        let image = o.data.pointer("/spec/image/createOpts/name").and_then(Value::as_str).unwrap_or("?");
        Some(format!(
            "{IMAGE_RELEASE_KIND} {n} (image {image}): OpenStackImageActive=False, {}: {}",
            c.reason, c.message
        ))
    })
}

/// Resolves only when an image import of `release` has failed for good; pends forever where
/// CSPO is not installed or nothing fails (the caller races it against the release's wait).
pub async fn image_import_failure(scope: &Scope, release: &str) -> StepFailure {
    let Ok(api) = scope.resolver.api(GROUP_VERSION, IMAGE_RELEASE_KIND, &scope.namespace).await else {
        return std::future::pending().await;
    };
    let r = wait_until(api, &Target::Selector(String::new()), scope.deadline, |objs| {
        match failed_import(objs, release) {
            Some(why) => Verdict::Failed(why),
            None => Verdict::Pending(String::new()),
        }
    })
    .await;
    match r {
        Err(WaitError::Failed(why)) => StepFailure::failed(format!("release {release}: node image import failed: {why}")),
        // A timeout is the release wait's to report, with its own last state.
        _ => std::future::pending().await,
    }
}
