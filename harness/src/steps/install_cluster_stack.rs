//! `installClusterStack`: a ClusterStack with the versions a test needs, never auto-subscribing.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Operation, StackInstall};
use crate::context::{StepCtx, StepFailure};
use crate::stack::{StackId, ops, validate_version};

/// Creates (or extends) the ClusterStack `<provider>-<name>-<major>-<minor>` in the scenario's
/// namespace. With `source`, the release assets of each version are built from a stack
/// directory into the environment's CSO release directory first (local mode).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InstallClusterStack {
    /// Provider, like `inmemory`, `docker` or `openstack`.
    pub provider: String,
    /// Stack name, like `scs`.
    pub name: String,
    /// Kubernetes `<major>.<minor>`, quoted: `"1.33"`.
    pub kubernetes_version: String,
    /// Stack versions, like `[v1]`.
    pub versions: Vec<String>,
    /// Release channel (default `stable`).
    #[serde(default = "stable")]
    pub channel: String,
    /// The provider has no provider-specific release (CSO only); default true. `false` is the
    /// legacy OpenStack path: CSPO imports the node images, and the ClusterStack's `providerRef`
    /// names an OpenStackClusterStackReleaseTemplate made by this step.
    #[serde(default = "yes")]
    pub no_provider: bool,
    /// With `noProvider: false`: the Secret (with `clouds.yaml`) CSPO logs in with (default: the
    /// OpenStack environment's, `$OPENSTACK_SECRET_NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_secret: Option<String>,
    /// The ClusterStack object's name (default `<provider>-<name>-<major>-<minor>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_name: Option<String>,
    /// Where to build the release assets from, as csctl v0.0.5 builds them (relative to the
    /// suite): a csctl stack directory (`csctl.yaml`, like cluster-stacks'
    /// `providers/docker/scs`; version `v0-sha.<hash>` builds in hash mode, others in custom
    /// mode), a directory with scs-e2e's `stack.yaml` listing releases of such directories, or
    /// `builtin:inmemory/scs` for our in-memory stack compiled into scs-e2e.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

fn stable() -> String {
    "stable".into()
}
fn yes() -> bool {
    true
}

impl InstallClusterStack {
    fn id(&self, ctx: Option<&StepCtx>) -> StackId {
        let s = |v: &str| ctx.map(|c| c.substitute(v)).unwrap_or_else(|| v.to_string());
        StackId {
            provider: s(&self.provider),
            name: s(&self.name),
            kubernetes_version: s(&self.kubernetes_version),
        }
    }
}

#[async_trait]
impl Operation for InstallClusterStack {
    fn summary(&self) -> String {
        format!(
            "install cluster stack {}/{} {} {}",
            self.provider,
            self.name,
            self.kubernetes_version,
            self.versions.join(",")
        )
    }

    fn stack_install(&self) -> Option<StackInstall<'_>> {
        Some(StackInstall {
            provider: &self.provider,
            from_source: self.source.is_some(),
            source: self.source.as_deref(),
            name: &self.name,
            kubernetes_version: &self.kubernetes_version,
            versions: &self.versions,
        })
    }

    fn validate(&self) -> Result<(), crate::error::Invalid> {
        if !self.no_provider && !self.provider.contains("${") && self.provider != "openstack" {
            return Err(format!(
                "`noProvider: false` is known for provider openstack (CSPO) only, not `{}`",
                self.provider
            )
            .into());
        }
        if self.identity_secret.is_some() && self.no_provider {
            return Err("`identitySecret` is for `noProvider: false` (CSPO)".into());
        }
        if self.versions.is_empty() {
            return Err("`versions` needs at least one stack version, like [v1]".into());
        }
        let id = self.id(None);
        if ![&id.provider, &id.name, &id.kubernetes_version].iter().any(|s| s.contains("${")) {
            id.validate()?;
        }
        for v in self.versions.iter().filter(|v| !v.contains("${")) {
            validate_version(v)?;
        }
        Ok(())
    }

    async fn run(&self, ctx: &StepCtx) -> Result<(), StepFailure> {
        let scope = ctx.scope();
        let id = self.id(Some(ctx));
        id.validate().map_err(StepFailure::error)?;
        let versions: Vec<String> = self.versions.iter().map(|v| ctx.substitute(v)).collect();
        for v in &versions {
            validate_version(v).map_err(StepFailure::error)?;
        }
        if let Some(src) = &self.source {
            let source = crate::stack::source::open(&ctx.substitute(src), |s| ctx.resolve_path(s))
                .map_err(|e| StepFailure::error(format!("{e:#}")))?;
            let Some(release_dir) = ctx.vars.get("CSO_RELEASE_DIR") else {
                return Err(StepFailure::error(
                    "`source:` builds release assets for CSO's local mode, but this environment runs CSO without a local release directory",
                ));
            };
            let Some(helm) = crate::process::which("helm", &ctx.extra_path) else {
                return Err(StepFailure::error(
                    "`source:` packages the stack's charts with helm, which is not on PATH (the lab builds it: `scs-e2e lab install`)",
                ));
            };
            // CSO's local mode reads <release dir>/cluster-stacks/<release>/.
            let out = std::path::Path::new(release_dir).join("cluster-stacks");
            for v in &versions {
                let built = source
                    .build_for(&id, v, &out, &helm)
                    .map_err(|e| StepFailure::error(format!("{e:#}")))?;
                // CSO unpacks the new layout's addon archive beside it, as its own user (65532
                // in its image, which is not ours in a kind node's hostPath).
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&built.dir, std::fs::Permissions::from_mode(0o777))
                        .map_err(|e| StepFailure::error(format!("{}: {e}", built.dir.display())))?;
                }
                ctx.log.line(format!(
                    "built release assets {} (cluster addon {}, Kubernetes {})",
                    built.dir.display(),
                    built.versions.cluster_addon,
                    built.kubernetes_version
                ));
                for n in &built.notes {
                    ctx.log.line(format!("note: {n}"));
                }
            }
        }
        let object_name = self.object_name.as_deref().map(|n| ctx.substitute(n));
        let provider_ref = if self.no_provider {
            None
        } else {
            let secret = self
                .identity_secret
                .as_deref()
                .map(|s| ctx.substitute(s))
                .or_else(|| ctx.vars.get("OPENSTACK_SECRET_NAME").cloned())
                .ok_or_else(|| {
                    StepFailure::error(
                        "`noProvider: false` makes CSPO import node images with a cloud's credentials: run with --env openstack, or name the Secret in `identitySecret`",
                    )
                })?;
            let template = format!("{}-cspo", object_name.clone().unwrap_or_else(|| id.prefix()));
            Some(crate::stack::cspo::apply_template(&scope, &template, &secret).await?)
        };
        ops::apply_cluster_stack(
            &scope,
            &id,
            object_name.as_deref(),
            &ctx.substitute(&self.channel),
            &versions,
            self.no_provider,
            provider_ref.as_ref(),
        )
        .await?;
        Ok(())
    }
}
