//! The format's primitives, shared by suites, the config file and the steps: durations and
//! timeouts, `${VAR}` substitution, the API version and references to Kubernetes objects.
//! Imports nothing of the crate, so every layer above may use it.

pub mod duration;
pub mod subst;

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The `apiVersion` of suites and the config file.
pub const API_VERSION: &str = "scs-e2e/v1alpha1";

/// A Kubernetes object (or a set, with `selector`) that a step acts on.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourceRef {
    /// `v1`, `apps/v1`, `cluster.x-k8s.io/v1beta1`, ...
    pub api_version: String,
    /// The object's kind, like `ConfigMap` or `Cluster`.
    pub kind: String,
    /// The object's name; leave it out when `selector` picks the objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Default: the scenario's namespace (ignored for cluster-scoped kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// A label selector (`app=web,tier!=db`) instead of a name: the step applies to every match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(n) = &self.name {
            write!(f, "/{n}")?;
        }
        if let Some(s) = &self.selector {
            write!(f, " [{s}]")?;
        }
        Ok(())
    }
}
