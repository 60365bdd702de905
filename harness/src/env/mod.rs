//! Environments provide the cluster a run talks to. `up`/`down` are reported as testcases of
//! their own, so a cluster that never comes up still yields a full report.

pub mod cspo;
pub mod images;
pub mod kind;
pub mod kubeconfig;
pub mod lab;
pub mod mgmt;
pub mod openstack;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{ConfigFile, DeletePolicy};

/// What a run asks of its environment, whatever it is: the command line's and the config file's
/// settings and what the plan needs. Each environment builds itself from it ([`Registration`]).
#[derive(Clone)]
pub struct EnvRequest<'a> {
    /// The run's id (`--run-id`, else generated); names the environment creates (kind cluster, lab dir) derive from it.
    pub run_id: &'a str,
    /// When to tear the environment down (`--delete`).
    pub delete: DeletePolicy,
    /// Show progress bars (image and lab builds) on the console.
    pub progress: bool,
    /// What the plan needs of the management cluster.
    pub plan: PlanNeeds,
    /// The config file, if one was given.
    pub file: Option<&'a ConfigFile>,
    /// `--kubeconfig`, else KUBECONFIG (as given: may list several files).
    pub kubeconfig: Option<&'a str>,
    /// `--management-kubeconfig`: an existing management cluster.
    pub management_kubeconfig: Option<&'a Path>,
    /// `--cloud`: the clouds.yaml entry.
    pub cloud: Option<&'a str>,
    /// `--lab-bin-dir`, `--lab-cache-dir`.
    pub lab_bin_dir: Option<&'a Path>,
    /// `--lab-cache-dir`: where built lab binaries are cached (None: the config file's or the default).
    pub lab_cache_dir: Option<&'a Path>,
}

/// What the plan needs of the management cluster.
#[derive(Clone, Debug, Default)]
pub struct PlanNeeds {
    /// A step needs Cluster API and CSO.
    pub cluster_api: bool,
    /// A step builds release assets from a stack directory (CSO in local mode).
    pub local_stacks: bool,
    /// Every stack installed is an in-memory one (and there is one).
    pub only_inmemory_stacks: bool,
    /// The provider of every stack the plan installs, with where (`suite.scenario`, step
    /// number); providers written as `${VAR}` are left out (known at run time only).
    pub stack_providers: Vec<(String, String)>,
}

impl PlanNeeds {
    /// Refuses, before anything is touched, a plan whose stacks need an infrastructure provider
    /// the environment `env` does not run (`offered`): an in-memory stack on CAPO, an OpenStack
    /// stack in the lab. The error names each step and where the stack can run instead.
    pub fn check_providers(&self, env: &str, offered: &[&str]) -> anyhow::Result<()> {
        let wrong: Vec<String> = self
            .stack_providers
            .iter()
            .filter(|(p, _)| !offered.contains(&p.as_str()))
            .map(|(p, at)| format!("provider `{p}` ({at})"))
            .collect();
        if wrong.is_empty() {
            return Ok(());
        }
        let home = |p: &str| match p {
            "inmemory" => "--env lab or --env kind",
            "docker" => "--env kind",
            "openstack" => "--env openstack",
            _ => "an environment with that Cluster API provider (or --env kubeconfig with one)",
        };
        let first = self
            .stack_providers
            .iter()
            .find(|(p, _)| !offered.contains(&p.as_str()))
            .expect("one is wrong");
        anyhow::bail!(
            "--env {env} runs cluster stacks of provider {} only, but the plan installs {}: run those suites with {}, or give them a stack of provider {}",
            offered.join(", "),
            wrong.join(", "),
            home(&first.0),
            offered.join(" or ")
        )
    }
}

/// An environment, as `--env` names it. Adding one is a module (or folder) with its
/// [`Environment`] and `create`, plus one line in [`ENVIRONMENTS`].
pub struct Registration {
    /// The `--env` value (`lab`, `kubeconfig`, `kind`, `openstack`).
    pub name: &'static str,
    /// One line for `--help`.
    pub about: &'static str,
    /// Builds the environment, reading and checking its input without touching anything: an
    /// error is bad input (exit 2).
    pub create: fn(&EnvRequest) -> anyhow::Result<Box<dyn Environment>>,
}

/// Every environment; the first is the default.
pub static ENVIRONMENTS: &[Registration] = &[
    Registration {
        name: "lab",
        about: "a local control plane built from Go modules (no Docker)",
        create: lab::create,
    },
    Registration {
        name: "kubeconfig",
        about: "an existing cluster (--kubeconfig or KUBECONFIG)",
        create: kubeconfig::create,
    },
    Registration {
        name: "kind",
        about: "a kind management cluster with CAPD (needs Docker)",
        create: kind::create,
    },
    Registration {
        name: "openstack",
        about: "OpenStack via CAPO (kind or an existing management cluster)",
        create: openstack::environment::create,
    },
];

/// The registered environment of that name.
pub fn find(name: &str) -> Option<&'static Registration> {
    ENVIRONMENTS.iter().find(|r| r.name == name)
}

/// `unknown environment `x`: use lab, kubeconfig, kind or openstack`.
pub fn unknown(name: &str) -> String {
    let names: Vec<&str> = ENVIRONMENTS.iter().map(|r| r.name).collect();
    let (last, rest) = names.split_last().expect("environments are registered");
    format!("unknown environment `{name}`: use {} or {last}", rest.join(", "))
}

/// Variables environments may give steps (see [`Environment::step_vars`]); commands see them as
/// environment variables too.
pub const STEP_VAR_NAMES: &[&str] = &[
    "CSO_RELEASE_DIR",
    "CSO_HOOKS_MANIFEST",
    "OPENSTACK_CLOUD",
    "OPENSTACK_SECRET_NAME",
    "OPENSTACK_EXTERNAL_NETWORK_ID",
];

/// A cluster a run talks to, with its life cycle (`up`, `down`) and optional capabilities.
#[async_trait]
pub trait Environment: Send + Sync {
    /// The name `--env` gives it (`lab`, `kind`, ...), as registered.
    fn name(&self) -> &'static str;

    /// Brings the environment up. When it returns, `kubeconfig()` reaches a working API server.
    async fn up(&mut self) -> anyhow::Result<()>;

    /// Tears it down (called per the delete policy).
    async fn down(&mut self) -> anyhow::Result<()>;

    /// The admin kubeconfig of the (management) cluster; known after `up`.
    fn kubeconfig(&self) -> Option<PathBuf>;

    /// Copies the environment's logs (processes, nodes, controllers) into `dir`; returns the count.
    async fn collect_logs(&self, _dir: &Path) -> anyhow::Result<usize> {
        Ok(0)
    }

    /// Versions and facts for the report's properties.
    fn properties(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// Directories put first on PATH for commands (tools matching the environment).
    fn bin_dirs(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    /// What to tell the user when the environment is kept (`--delete never`, or a failure).
    fn keep_hint(&self) -> Option<String> {
        None
    }

    /// The management cluster this environment will create (a kind cluster's name), known
    /// before `up` so a killed run's plan still names it.
    fn management_cluster(&self) -> Option<String> {
        None
    }

    /// Variables the environment gives every step, like `CSO_RELEASE_DIR` (where CSO in local
    /// mode reads release assets).
    fn step_vars(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// Optional capability: fault injection into the management cluster's processes.
    fn faults(&self) -> Option<&dyn Faults> {
        None
    }

    /// Optional capability: a cloud the workload clusters run in (known after `up`).
    fn cluster_cloud(&self) -> Option<Arc<dyn ClusterCloud>> {
        None
    }
}

/// A workload cluster as `createCluster` is about to make it.
#[derive(Clone, Debug)]
pub struct ClusterRequest {
    /// The namespace the Cluster is created in (the scenario's).
    pub namespace: String,
    /// The Cluster's name.
    pub name: String,
    /// Number of control-plane machines.
    pub control_plane: u32,
    /// Number of worker machines.
    pub workers: u32,
    /// The ClusterClass variables the Cluster will carry (the cloud's defaults merged in).
    pub variables: BTreeMap<String, serde_json::Value>,
}

/// What a cloud adds around workload clusters: its credentials in each scenario namespace,
/// the labels and ClusterClass variables its stacks need, a preflight before a Cluster is
/// created, and a leak check after one is deleted.
#[async_trait]
pub trait ClusterCloud: Send + Sync {
    /// `openstack`: names the cloud in logs and testcase names.
    fn kind(&self) -> &'static str;
    /// Puts what the clusters of `namespace` need into it (the credential Secrets and the
    /// ClusterResourceSet); idempotent.
    async fn prepare_namespace(&self, namespace: &str) -> anyhow::Result<()>;
    /// Labels every workload Cluster gets (ClusterResourceSets select by them).
    fn cluster_labels(&self) -> BTreeMap<String, String>;
    /// ClusterClass variables offered to every Cluster: only those its class declares are set,
    /// and a step's own values win.
    fn cluster_variables(&self) -> BTreeMap<String, serde_json::Value>;
    /// Whether the cloud can hold the cluster (flavors, image, quota); log lines, or why not.
    async fn preflight(&self, req: &ClusterRequest) -> Result<Vec<String>, String>;
    /// After the cluster's deletion: what of it is left in the cloud, as a testcase.
    async fn leak_check(&self, namespace: &str, name: &str) -> crate::report::StepResult;
    /// The cluster a preflight passed was not created after all: what it was promised is free.
    async fn forget(&self, _namespace: &str, _name: &str) {}
}

/// Environments whose control-plane processes a test may disturb (the lab can; a cloud cannot).
#[async_trait]
pub trait Faults: Send + Sync {
    /// Names of the processes that can be disturbed (`etcd`, `kube-apiserver`, ...).
    fn processes(&self) -> Vec<String>;
    /// kill -9 and reap.
    async fn kill(&self, process: &str) -> anyhow::Result<()>;
    /// Start a killed or stopped process again with its arguments; wait until it serves.
    async fn restart(&self, process: &str) -> anyhow::Result<()>;
    /// SIGSTOP / SIGCONT.
    fn pause(&self, process: &str) -> anyhow::Result<()>;
    /// Continue a process paused with [`Faults::pause`] (SIGCONT).
    fn resume(&self, process: &str) -> anyhow::Result<()>;
}
