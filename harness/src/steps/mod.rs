//! Step operations and their registry (`operations!`: suite key, type, whether it needs Cluster
//! API). Each module holds one operation: its suite fields and how it runs.

pub mod apply;
pub mod assert;
pub mod checks;
pub mod command;
pub mod create_cluster;
pub mod delete;
pub mod delete_cluster;
pub mod delete_cluster_stack;
pub mod install_cluster_stack;
pub mod load_images;
pub mod upgrade_cluster;
pub mod wait;
pub mod wait_cluster;
pub mod wait_cluster_stack_release;

use async_trait::async_trait;
use schemars::{Schema, SchemaGenerator};
use serde::de::MapAccess;
use serde::ser::SerializeMap;

use crate::context::{StepCtx, StepFailure};

macro_rules! operations {
    ($($key:literal => $variant:ident($ty:ty), cluster_api: $capi:literal;)*) => {
        /// The operation of a step.
        #[derive(Clone, Debug)]
        pub enum Op {
            $(
                /// An operation and its suite fields; the variant is the suite key in PascalCase.
                $variant($ty),
            )*
        }

        /// The operation keys, in documentation order.
        pub const OPERATIONS: &[&str] = &[$($key,)*];

        impl Op {
            /// The operation's suite key, like `apply` or `createCluster`.
            pub fn key(&self) -> &'static str {
                match self {
                    $(Op::$variant(_) => $key,)*
                }
            }

            /// Whether the operation needs Cluster API and CSO in the management cluster (the
            /// lab then starts them; other environments install them).
            pub fn needs_cluster_api(&self) -> bool {
                match self {
                    $(Op::$variant(_) => $capi,)*
                }
            }

            pub(crate) fn next_value<'de, A: MapAccess<'de>>(key: &str, map: &mut A) -> Result<Option<Op>, A::Error> {
                Ok(Some(match key {
                    $($key => Op::$variant(map.next_value()?),)*
                    _ => return Ok(None),
                }))
            }

            pub(crate) fn serialize_entry<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
                match self {
                    $(Op::$variant(v) => map.serialize_entry($key, v),)*
                }
            }

            /// The operation's behaviour.
            pub fn operation(&self) -> &dyn Operation {
                match self {
                    $(Op::$variant(v) => v,)*
                }
            }

            pub(crate) fn schemas(generator: &mut SchemaGenerator) -> Vec<(&'static str, Schema)> {
                vec![$(($key, generator.subschema_for::<$ty>()),)*]
            }
        }
    };
}

// The operations: suite key, variant, type, and whether it needs Cluster API and CSO. Adding an
// operation is one line here plus its module.
operations! {
    "apply" => Apply(apply::Apply), cluster_api: false;
    "assert" => Assert(assert::Assert), cluster_api: false;
    "wait" => Wait(wait::Wait), cluster_api: false;
    "delete" => Delete(delete::Delete), cluster_api: false;
    "command" => Command(command::Command), cluster_api: false;
    "runChecks" => RunChecks(checks::RunChecks), cluster_api: false;
    "loadImages" => LoadImages(load_images::LoadImages), cluster_api: false;
    "installClusterStack" => InstallClusterStack(install_cluster_stack::InstallClusterStack), cluster_api: true;
    "waitClusterStackRelease" => WaitClusterStackRelease(wait_cluster_stack_release::WaitClusterStackRelease), cluster_api: true;
    "createCluster" => CreateCluster(create_cluster::CreateCluster), cluster_api: true;
    "waitCluster" => WaitCluster(wait_cluster::WaitCluster), cluster_api: true;
    "upgradeCluster" => UpgradeCluster(upgrade_cluster::UpgradeCluster), cluster_api: true;
    "deleteCluster" => DeleteCluster(delete_cluster::DeleteCluster), cluster_api: true;
    "deleteClusterStack" => DeleteClusterStack(delete_cluster_stack::DeleteClusterStack), cluster_api: true;
}

impl Op {
    /// The step the engine adds to delete a Cluster left in a namespace it tears down.
    pub fn delete_cluster(name: String) -> Op {
        Op::DeleteCluster(delete_cluster::DeleteCluster { name })
    }
}

/// What every operation implements.
#[async_trait]
pub trait Operation: Send + Sync {
    /// Default step name in reports (`apply crd.yaml`).
    fn summary(&self) -> String;
    /// Checks the fields that serde cannot (mutually exclusive keys, regexes) before anything runs.
    fn validate(&self) -> Result<(), crate::error::Invalid> {
        Ok(())
    }
    /// Runs one attempt of the step; `Err` says whether it failed or errored, and why.
    async fn run(&self, ctx: &StepCtx) -> Result<(), StepFailure>;

    /// What the step does to the workload Clusters of its namespace: the engine plans the
    /// Clusters a run creates (clusters.json) and checks the cloud after a deletion.
    fn cluster_effect(&self) -> ClusterEffect<'_> {
        ClusterEffect::None
    }

    /// The cluster stack the step installs, if it installs one.
    fn stack_install(&self) -> Option<StackInstall<'_>> {
        None
    }
}

/// See [`Operation::cluster_effect`]; names as written in the suite (`${VAR}` unsubstituted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterEffect<'a> {
    /// The step creates or deletes no Cluster.
    None,
    /// The step creates the Cluster of this name.
    Creates(&'a str),
    /// The step deletes the Cluster of this name.
    Deletes(&'a str),
}

/// See [`Operation::stack_install`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackInstall<'a> {
    /// `inmemory`, `docker`, `openstack`, ...
    pub provider: &'a str,
    /// Release assets are built from a stack directory (CSO must run in local mode).
    pub from_source: bool,
    /// The `source:` itself (variables substituted as far as the plan knows them).
    pub source: Option<&'a str>,
    /// Stack name, Kubernetes minor and versions, as written.
    pub name: &'a str,
    /// `"1.33"`.
    pub kubernetes_version: &'a str,
    /// The versions the step installs.
    pub versions: &'a [String],
}

/// Exactly one of the named optional fields must be set.
pub(crate) fn exactly_one(fields: &[(&str, bool)]) -> Result<(), crate::error::Invalid> {
    let set: Vec<&str> = fields.iter().filter(|(_, s)| *s).map(|(n, _)| *n).collect();
    let names: Vec<String> = fields.iter().map(|(n, _)| format!("`{n}`")).collect();
    match set.len() {
        1 => Ok(()),
        0 => Err(format!("set one of {}", names.join(", ")).into()),
        _ => Err(format!("set only one of {}, not {}", names.join(", "), set.join(" and ")).into()),
    }
}
