//! `--env openstack`: a management cluster (kind, or one given by kubeconfig) with ORC, CAPO,
//! Cluster API and CSO, and the cloud's credentials in it the way openstack-csp-helper puts
//! them. The credentials are loaded and checked when the environment is built, so bad
//! clouds.yaml input fails before anything is created.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use kube::api::{Patch, PatchParams};

use super::clouds::Cloud;
use super::clusters::OpenStackClusters;
use super::identity::Session;
use super::secrets::{self, Naming};
use crate::env::kind::{KindCluster, KindEnv};
use crate::env::mgmt;
use crate::env::{ClusterCloud, Environment};

/// Where the management cluster comes from.
pub enum Management {
    /// Created with kind (CAPO runs in it; no Docker provider needed).
    Kind(Box<KindEnv>),
    /// An existing cluster; not deleted at the end.
    Existing(PathBuf),
}

/// The config file's `openstack:` settings besides the cloud and the management cluster.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Where the credentials go at start (scenario namespaces get them too).
    pub namespace: String,
    /// ClusterClass variables for every workload cluster.
    pub variables: BTreeMap<String, serde_json::Value>,
    /// An image that must be in Glance before a cluster is created.
    pub image: Option<String>,
}

/// The `--env openstack` [`Environment`]: the cloud's credentials, the management cluster, and
/// (after `up`) the [`OpenStackClusters`] that creates workload clusters on the cloud.
pub struct OpenStackEnv {
    cloud: Cloud,
    naming: Naming,
    management: Management,
    spec: mgmt::Spec,
    dirs: Vec<PathBuf>,
    properties: BTreeMap<String, String>,
    options: Options,
    clusters: Option<Arc<OpenStackClusters>>,
}

/// `--env openstack`: credentials read and checked now (bad clouds.yaml input is exit 2 with
/// nothing touched); the management cluster is an existing one or a kind cluster of the run.
pub fn create(req: &crate::env::EnvRequest) -> anyhow::Result<Box<dyn Environment>> {
    let o = req.file.and_then(|c| c.openstack.clone()).unwrap_or_default();
    let k = req.file.and_then(|c| c.kind_cluster.clone()).unwrap_or_default();
    let lookup = super::clouds::Lookup::from_env(req.cloud.map(str::to_string).or(o.cloud.clone()));
    let cloud = super::clouds::load(&lookup)?;
    let naming = match o.naming.as_deref() {
        None | Some("scs") => Naming::scs(&cloud.name),
        Some("scs2") => Naming::scs2(),
        Some(other) => anyhow::bail!(
            "openstack.naming `{other}` in the config file: use `scs` (Secret named after the cloud) or `scs2` (Secret `openstack`)"
        ),
    };
    let management = req.management_kubeconfig.map(Path::to_path_buf).or(o.management_kubeconfig.clone());
    match &management {
        Some(m) => crate::env::kubeconfig::check_kubeconfig(m)?,
        // The kind management cluster made here runs CAPO (with ORC) and no other infrastructure
        // provider; an existing one runs whatever was installed there.
        None => req.plan.check_providers("openstack", &["openstack"])?,
    }
    let spec = mgmt::Spec::from_config(mgmt::Infrastructure::OpenStack, req.file.and_then(|c| c.management.as_ref()));
    Ok(Box::new(OpenStackEnv::new(
        cloud,
        naming,
        management,
        crate::env::kind::cluster(&k, req.run_id, crate::env::images::Mode::Pull),
        spec,
        crate::env::kind::configured_tool_dirs(&k, req),
        Options {
            namespace: o.namespace.clone().unwrap_or_else(|| "default".into()),
            variables: o.cluster_variables.clone(),
            image: o.image.clone(),
        },
    )))
}

impl OpenStackEnv {
    /// Builds the environment without touching anything; `management` is an existing cluster's
    /// kubeconfig, or `None` to create the `kind` cluster at `up`.
    pub fn new(
        cloud: Cloud,
        naming: Naming,
        management: Option<PathBuf>,
        kind: KindCluster,
        spec: mgmt::Spec,
        dirs: Vec<PathBuf>,
        options: Options,
    ) -> OpenStackEnv {
        let management = match management {
            Some(k) => Management::Existing(k),
            None => Management::Kind(Box::new(KindEnv::new(kind, spec.clone(), dirs.clone(), Default::default()))),
        };
        OpenStackEnv {
            cloud,
            naming,
            management,
            spec,
            dirs,
            properties: BTreeMap::new(),
            options,
            clusters: None,
        }
    }

    fn mgmt_kubeconfig(&self) -> PathBuf {
        match &self.management {
            Management::Kind(k) => k.cluster.kubeconfig(),
            Management::Existing(p) => p.clone(),
        }
    }
}

#[async_trait]
impl Environment for OpenStackEnv {
    fn name(&self) -> &'static str {
        "openstack"
    }

    async fn up(&mut self) -> anyhow::Result<()> {
        // The cloud first: a wrong password should not cost a management cluster.
        let session = Session::login(&self.cloud).await?;
        for service in ["compute", "network", "load-balancer"] {
            session.endpoint(service)?;
        }
        // The configured flavors and image, before minutes go into a management cluster.
        if !self.options.variables.is_empty() || self.options.image.is_some() {
            let req = crate::env::ClusterRequest {
                namespace: String::new(),
                name: String::new(),
                control_plane: 0,
                workers: 0,
                variables: self.options.variables.clone(),
            };
            super::clusters::preflight(&session, self.options.image.as_deref(), &req, &Default::default())
                .await
                .map_err(|e| anyhow::anyhow!("cloud `{}` does not offer what the config file asks for: {e}", self.cloud.name))?;
        }
        let session = Arc::new(session);
        self.properties.insert("cloud".into(), self.cloud.name.clone());
        if let Some(r) = &self.cloud.region {
            self.properties.insert("region".into(), r.clone());
        }
        match &mut self.management {
            Management::Kind(k) => {
                k.up().await?;
                self.properties.extend(k.properties());
            }
            Management::Existing(kc) => {
                let existing = mgmt::Existing {
                    kubeconfig: kc,
                    spec: &self.spec,
                    tool_dirs: &self.dirs,
                    env: "openstack",
                };
                self.properties.extend(existing.prepare().await?);
            }
        }
        apply_credentials(&self.mgmt_kubeconfig(), &self.cloud, &self.naming, &self.options.namespace).await?;
        // The cloud's own facts first; the config file's variables over them.
        let networks = super::resources::OpenStack::new(&session).networks().await?;
        let mut variables = super::clusters::external_network_variables(&networks);
        match variables.get("external_id") {
            Some(id) => tracing::info!("external network {id}: offered as external_id/networkExternalID"),
            None => tracing::info!(
                "no single external network: set external_id (scs) or networkExternalID (scs2) in openstack.clusterVariables if the stack needs it"
            ),
        }
        variables.extend(self.options.variables.clone());
        self.clusters = Some(Arc::new(OpenStackClusters {
            session,
            cloud: self.cloud.clone(),
            naming: self.naming.clone(),
            kubeconfig: self.mgmt_kubeconfig(),
            variables,
            image: self.options.image.clone(),
            promised: Default::default(),
        }));
        Ok(())
    }

    async fn down(&mut self) -> anyhow::Result<()> {
        match &mut self.management {
            Management::Kind(k) => k.down().await,
            Management::Existing(_) => Ok(()),
        }
    }

    fn kubeconfig(&self) -> Option<PathBuf> {
        Some(self.mgmt_kubeconfig())
    }

    async fn collect_logs(&self, dir: &Path) -> anyhow::Result<usize> {
        match &self.management {
            Management::Kind(k) => k.collect_logs(dir).await,
            Management::Existing(_) => Ok(0),
        }
    }

    fn properties(&self) -> BTreeMap<String, String> {
        self.properties.clone()
    }

    fn bin_dirs(&self) -> Vec<PathBuf> {
        self.dirs.clone()
    }

    fn keep_hint(&self) -> Option<String> {
        match &self.management {
            Management::Kind(k) => k.keep_hint(),
            Management::Existing(_) => None,
        }
    }

    fn cluster_cloud(&self) -> Option<Arc<dyn ClusterCloud>> {
        self.clusters.clone().map(|c| c as Arc<dyn ClusterCloud>)
    }

    fn step_vars(&self) -> BTreeMap<String, String> {
        let mut v = BTreeMap::from([
            ("OPENSTACK_CLOUD".to_string(), self.cloud.name.clone()),
            ("OPENSTACK_SECRET_NAME".to_string(), self.naming.secret.clone()),
        ]);
        // What the clusters get as `external_id` (found in the cloud, or from the config), so a
        // suite can check that the rendered OpenStackCluster uses it; empty when there is none.
        let external = self
            .clusters
            .as_ref()
            .and_then(|c| c.variables.get("external_id").and_then(|v| v.as_str().map(str::to_string)))
            .unwrap_or_default();
        v.insert("OPENSTACK_EXTERNAL_NETWORK_ID".into(), external);
        match &self.management {
            Management::Kind(k) => v.extend(k.step_vars()),
            Management::Existing(_) => {
                if let Some(d) = &self.spec.existing_release_dir {
                    v.insert("CSO_RELEASE_DIR".into(), d.display().to_string());
                }
            }
        }
        v
    }
}

/// Server-side applies the Secret pair and the ClusterResourceSet into `namespace` (created if
/// missing).
pub async fn apply_credentials(kubeconfig: &Path, cloud: &Cloud, naming: &Naming, namespace: &str) -> anyhow::Result<()> {
    let client = crate::kube::client_from_kubeconfig(kubeconfig).await?;
    let resolver = crate::kube::Resolver::new(client);
    let pp = PatchParams::apply("scs-e2e").force();
    let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
    let cacert = match &cloud.cacert {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("cloud `{}`: cacert {}: {e}", cloud.name, p.display()))?),
        None => None,
    };
    for obj in std::iter::once(ns).chain(secrets::objects(cloud, naming, namespace, cacert.as_deref())) {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let target_ns = if kind == "Namespace" { "" } else { namespace };
        let api = resolver.api(&api_version, &kind, target_ns).await?;
        // The error names the object, never its data (a Secret).
        api.patch(&name, &pp, &Patch::Apply(&obj)).await.map_err(|e| match e {
            kube::Error::Api(s) => anyhow::anyhow!("applying {kind} {namespace}/{name}: {} ({})", s.message, s.code),
            e => anyhow::anyhow!("applying {kind} {namespace}/{name}: {e}"),
        })?;
    }
    Ok(())
}
