//! Cluster Stacks and the clusters built from them: the names CSO derives, the objects the
//! steps create and watch, and release assets for CSO's local mode, built as csctl builds them
//! ([`csctl`]) from the sources a step names ([`source`]).

pub mod builtin;
pub mod csctl;
pub mod cspo;
pub mod ops;
pub mod source;

use std::sync::LazyLock;

use regex::Regex;

/// API group/version of CSO's kinds (ClusterStack, ClusterStackRelease, ...).
pub const CSO_GROUP_VERSION: &str = "clusterstack.x-k8s.io/v1alpha1";
/// API group/version of Cluster API's kinds (Cluster, MachineDeployment, ...).
pub const CAPI_GROUP_VERSION: &str = "cluster.x-k8s.io/v1beta1";
/// Label Cluster API puts on everything that belongs to a cluster.
pub const CLUSTER_NAME_LABEL: &str = "cluster.x-k8s.io/cluster-name";

static KUBERNETES_MINOR: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\d\.\d+$").unwrap());
// CSO's pattern; `\b` makes `v1-alpha.1` valid and `v1-.1` not.
static STACK_VERSION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^v\d+(-\b\w+\b\.\w+)?$").unwrap());
// Provider and stack names are parts of a `-`-separated tag, so they cannot contain `-`.
static NAME_PART: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z0-9]+$").unwrap());

/// A stack version as steps name it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StackRef {
    /// Provider, like `inmemory`, `docker` or `openstack`.
    pub provider: String,
    /// Stack name, like `scs`.
    pub name: String,
    /// Kubernetes `<major>.<minor>`, quoted: `"1.33"`.
    pub kubernetes_version: String,
    /// Stack version, like `v1`.
    pub version: String,
}

impl StackRef {
    /// With `${VARS}` substituted, validated.
    pub fn resolve(&self, subst: impl Fn(&str) -> String) -> Result<(StackId, String), crate::error::Invalid> {
        let id = StackId {
            provider: subst(&self.provider),
            name: subst(&self.name),
            kubernetes_version: subst(&self.kubernetes_version),
        };
        let version = subst(&self.version);
        if !self.has_vars() {
            id.validate()?;
            validate_version(&version)?;
        }
        Ok((id, version))
    }

    fn has_vars(&self) -> bool {
        [&self.provider, &self.name, &self.kubernetes_version, &self.version]
            .iter()
            .any(|s| s.contains("${"))
    }

    /// Checks at load time what can be checked before variables are known.
    pub fn validate(&self) -> Result<(), crate::error::Invalid> {
        if self.has_vars() {
            return Ok(());
        }
        self.resolve(|s| s.to_string()).map(|_| ())
    }
}

/// Which stack: `<provider>/<name>` for Kubernetes `<major>.<minor>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackId {
    /// Provider, like `inmemory`, `docker` or `openstack`.
    pub provider: String,
    /// Stack name, like `scs`.
    pub name: String,
    /// Kubernetes `<major>.<minor>`, like `1.33`.
    pub kubernetes_version: String,
}

impl StackId {
    /// Checks what CSO's webhook checks, before anything touches the cluster.
    pub fn validate(&self) -> Result<(), crate::error::Invalid> {
        for (field, v) in [("provider", &self.provider), ("name", &self.name)] {
            if !NAME_PART.is_match(v) {
                return Err(format!(
                    "`{field}: {v}` is not a valid cluster stack {field}: use lowercase letters and digits only (no `-`: CSO splits release tags at `-`)"
                ).into());
            }
        }
        if !KUBERNETES_MINOR.is_match(&self.kubernetes_version) {
            return Err(format!(
                "`kubernetesVersion: {}` must be <major>.<minor> like \"1.33\" (pattern ^\\d\\.\\d+$; quote it in YAML)",
                self.kubernetes_version
            )
            .into());
        }
        Ok(())
    }

    /// `<provider>-<name>-<major>-<minor>`: the ClusterStack's default name and the tag prefix.
    pub fn prefix(&self) -> String {
        format!("{}-{}-{}", self.provider, self.name, self.kubernetes_version.replace('.', "-"))
    }

    /// The ClusterStackRelease (and release asset tag) of one stack version: `.` becomes `-`.
    pub fn release_name(&self, version: &str) -> String {
        format!("{}-{}", self.prefix(), version.replace('.', "-"))
    }

    /// The ClusterClass the release's chart creates: `{{ .Release.Name }}-{{ .Chart.Version }}`,
    /// where the dot of a version like `v0-sha.abc` stays.
    pub fn class_name(&self, version: &str) -> String {
        format!("{}-{}", self.prefix(), version)
    }

    /// The Kubernetes minor as numbers.
    pub fn minor(&self) -> Option<(u32, u32)> {
        let (a, b) = self.kubernetes_version.split_once('.')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    }
}

/// Checks a stack version against CSO's pattern: `v<N>` or `v<N>-<channel>.<M>` (`v0-sha.3e2f1`).
pub fn validate_version(v: &str) -> Result<(), crate::error::Invalid> {
    if STACK_VERSION.is_match(v) {
        Ok(())
    } else {
        Err(format!(
            "`{v}` is not a cluster stack version: write v<N> or v<N>-<channel>.<M> like v1 or v0-sha.3e2f1 (pattern ^v\\d+(-\\b\\w+\\b\\.\\w+)?$)"
        ).into())
    }
}

/// Reverses [`StackId::class_name`] for a ClusterClass made by a stack of `provider`/`name`
/// (any minor): the stack and version, if the class name has that shape.
pub fn parse_class_name(class: &str) -> Option<(StackId, String)> {
    let mut parts = class.splitn(5, '-');
    let (provider, name, major, minor, version) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let id = StackId {
        provider: provider.into(),
        name: name.into(),
        kubernetes_version: format!("{major}.{minor}"),
    };
    (id.validate().is_ok() && validate_version(version).is_ok()).then(|| (id, version.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(p: &str, n: &str, k: &str) -> StackId {
        StackId {
            provider: p.into(),
            name: n.into(),
            kubernetes_version: k.into(),
        }
    }

    #[test]
    fn names_follow_cso() {
        let s = id("inmemory", "scs", "1.33");
        assert_eq!(s.prefix(), "inmemory-scs-1-33");
        assert_eq!(s.release_name("v1"), "inmemory-scs-1-33-v1");
        assert_eq!(s.release_name("v0-sha.3e2f1"), "inmemory-scs-1-33-v0-sha-3e2f1");
        assert_eq!(s.class_name("v0-sha.3e2f1"), "inmemory-scs-1-33-v0-sha.3e2f1");
        assert_eq!(
            parse_class_name("inmemory-scs-1-33-v0-sha.3e2f1"),
            Some((s.clone(), "v0-sha.3e2f1".into()))
        );
        assert_eq!(parse_class_name("inmemory-scs-1-33-2"), None);
        assert_eq!(s.minor(), Some((1, 33)));
    }

    #[test]
    fn bad_names_and_versions_are_refused_with_the_fix() {
        assert!(id("in-memory", "scs", "1.33").validate().unwrap_err().contains("no `-`"));
        assert!(id("inmemory", "SCS", "1.33").validate().unwrap_err().contains("lowercase"));
        for k in ["1.33.1", "v1.33", "1", "133", "1.x"] {
            assert!(id("inmemory", "scs", k).validate().unwrap_err().contains("<major>.<minor>"), "{k}");
        }
        for v in ["v1", "v12", "v0-sha.3e2f1", "v1-alpha.1"] {
            assert_eq!(validate_version(v), Ok(()), "{v}");
        }
        for v in ["1", "v1.0", "v1-", "v1-alpha", "v1-.1", "V1", "v1-alpha.1.2"] {
            assert!(validate_version(v).is_err(), "{v}");
        }
    }
}

/// How far a step waits for the Cluster's ClusterAddon (`cluster-addon-<cluster>`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AddonWait {
    /// `status.ready` and `spec.clusterStack` equal to the Cluster's class (the default).
    #[default]
    Ready,
    /// CSO created it for the Cluster (`spec.clusterRef`); readiness is not awaited. For simulated workload
    /// clusters that cannot take addons: CAPI's in-memory API server has no `/readyz` and no
    /// server-side apply, both of which CSO needs to apply the addon chart.
    Created,
    /// Not looked at.
    Skip,
}
