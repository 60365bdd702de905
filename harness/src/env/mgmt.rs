//! Turning a Kubernetes cluster into a Cluster Stacks management cluster, as `--env kind` and
//! `--env openstack` do: ORC (OpenStack only), Cluster API via `clusterctl init`, and CSO via
//! its helm chart; then wait until every provider Deployment is Available (watched, not polled).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::kube::{Target, Verdict, WaitError};

// The management cluster's version pins, in one place. Cluster API and CSO follow the lab's Go
// module pins (fixtures/lab/), so the lab, kind (offline and pull) and the offline images run
// the same releases.

/// Cluster API release `clusterctl init` installs (the one the lab runs, and clusterctl's own).
pub const CAPI_VERSION: &str = crate::env::lab::build::CLUSTER_API_VERSION;
/// The CSO release the lab runs and the offline chart and image are built as.
pub const CSO_VERSION: &str = crate::env::lab::build::CSO_VERSION;
/// The published CSO chart pull mode installs, with its image tag set to [`CSO_VERSION`]: no
/// published chart names that release (charts start at 0.2.0, for v0.1.0-alpha.8), and 0.4.1's
/// templates come from a `config/` identical to [`CSO_VERSION`]'s (see the README).
pub const CSO_CHART_VERSION: &str = "0.4.1";
/// The chart value of the manager's image tag (CSO's `charts/values.yaml`).
pub const CSO_CHART_IMAGE_TAG: &str = "controllerManager.manager.image.tag";
/// The cert-manager `clusterctl init` installs by default (clusterctl v1.10.10's
/// `CertManagerDefaultVersion`); the offline images are built at it.
pub const CERT_MANAGER_VERSION: &str = "v1.19.1";
/// The legacy OpenStack provider CSPO, when a config asks for it.
pub const CSPO_VERSION: &str = crate::env::cspo::VERSION;
/// CAPO release paired with Cluster API v1.10 (CAPO v0.12 implements contract v1beta1 for CAPI
/// v1.9/v1.10).
pub const CAPO_VERSION: &str = "v0.12.1";
/// ORC, which CAPO v0.12 needs for images (and the scs2 stacks use for node images).
pub const ORC_VERSION: &str = "v2.2.0";
/// CSO's helm chart (OCI), installed unless the config names another.
pub const CSO_CHART: &str = "oci://registry.scs.community/cluster-stacks/cso";
/// Where the SCS stacks' release assets are published (CSO's `clusterStackVariables`).
pub const CSO_OCI_REPOSITORY: &str = "registry.scs.community/kaas/cluster-stacks";
/// CSO's hook server certificate is issued for this namespace, and the release name must
/// contain `cso`: both are hard-coded upstream.
pub const CSO_NAMESPACE: &str = "cso-system";
/// The helm release name of CSO (see [`CSO_NAMESPACE`]).
pub const CSO_RELEASE: &str = "cso";
/// In the kind node, the host's release directory is mounted here (see `kind::KindCluster`).
pub const NODE_RELEASE_DIR: &str = "/cso-releases";

/// ORC's `install.yaml` of that release on GitHub.
pub fn orc_manifest_url(version: &str) -> String {
    format!("https://github.com/k-orc/openstack-resource-controller/releases/download/{version}/install.yaml")
}

/// The Cluster API infrastructure provider of the management cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Infrastructure {
    /// CAPD (kind on Docker).
    Docker,
    /// CAPO, with ORC installed first.
    OpenStack,
}

/// What to install and how; every field has a pinned default.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The infrastructure provider `clusterctl init` installs.
    pub infrastructure: Infrastructure,
    /// The Cluster API version of the core, kubeadm and (Docker) infrastructure providers.
    pub capi_version: String,
    /// The CAPO version (OpenStack only).
    pub capo_version: String,
    /// A clusterctl config file (mirrors, or a local provider repository for air-gapped sites).
    pub clusterctl_config: Option<PathBuf>,
    /// ORC's install manifest, a file or URL (OpenStack only).
    pub orc_manifest: String,
    /// How CSO is installed.
    pub cso: Cso,
    /// How long the provider Deployments may take to become Available.
    pub timeout: Duration,
    /// For an existing management cluster.
    pub install: InstallPolicy,
    /// An existing management cluster's CSO local-mode release directory, as seen from here.
    pub existing_release_dir: Option<PathBuf>,
    /// The legacy CSPO, when asked for (OpenStack only).
    pub cspo: Option<super::cspo::Settings>,
    /// Run CAPD on the node's network (kind): its in-memory workload API servers listen on
    /// the pod IP, which only then is an address the host can reach.
    pub capd_host_network: bool,
    /// Keep CSO's lifecycle hooks registered (its chart's ExtensionConfig). Off for plans whose
    /// stacks are all in-memory: their workload API servers cannot take addon charts, so CSO's
    /// BeforeClusterUpgrade hook would hold every upgrade (as the lab, which never registers them).
    pub cso_hooks: bool,
}

/// A tool the management cluster is made with is missing or broken.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The tool is in none of the tool directories.
    #[error("--env {env} needs `{tool}` on PATH (or kindCluster.binDir in the config): {hint}")]
    NoTool {
        /// The environment that needs it (`kind`, `openstack`).
        env: String,
        /// The missing tool.
        tool: String,
        /// How to get it.
        hint: String,
    },
    /// Asking the tool for its version failed.
    #[error("`{tool} {args}` failed, so {tool} cannot be used: {detail}")]
    Broken {
        /// The tool's file name.
        tool: String,
        /// The version command's arguments, space-separated.
        args: String,
        /// Its last line of output, or why it could not run.
        detail: String,
    },
}

/// The management-cluster tools, with install hints (`scs-e2e lab install` builds them all).
const MGMT_TOOLS: &[(&str, &[&str], &str)] = &[
    (
        "clusterctl",
        &["version", "-o", "short"],
        "`scs-e2e lab install` builds it, or see https://cluster-api.sigs.k8s.io/user/quick-start#install-clusterctl",
    ),
    (
        "helm",
        &["version", "--short"],
        "`scs-e2e lab install` builds it, or see https://helm.sh/docs/intro/install/",
    ),
    (
        "kubectl",
        &["version", "--client"],
        "`scs-e2e lab install` builds it, or see https://kubernetes.io/docs/tasks/tools/",
    ),
];

/// Finds clusterctl, helm and kubectl in `dirs` and asks each for its version (so a broken
/// binary fails here, not half way through).
pub fn preflight(env: &str, dirs: &[PathBuf]) -> Result<(Tools, BTreeMap<String, String>), ToolError> {
    let mut found = BTreeMap::new();
    let mut versions = BTreeMap::new();
    for (tool, args, hint) in MGMT_TOOLS {
        let path = dirs
            .iter()
            .map(|d| d.join(tool))
            .find(|p| crate::process::is_executable(p))
            .ok_or_else(|| ToolError::NoTool {
                env: env.into(),
                tool: tool.to_string(),
                hint: hint.to_string(),
            })?;
        versions.insert(tool.to_string(), tool_version(&path, args)?);
        found.insert(*tool, path);
    }
    let tools = Tools {
        clusterctl: found.remove("clusterctl").expect("found above"),
        helm: found.remove("helm").expect("found above"),
        kubectl: found.remove("kubectl").expect("found above"),
    };
    Ok((tools, versions))
}

/// The first line of `tool args` (its version), or why it failed.
pub fn tool_version(path: &Path, args: &[&str]) -> Result<String, ToolError> {
    let tool = path.file_name().unwrap_or_default().to_string_lossy().to_string();
    let out = duct::cmd(path, args)
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()
        .map_err(|e| ToolError::Broken {
            tool: tool.clone(),
            args: args.join(" "),
            detail: e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        return Err(ToolError::Broken {
            tool,
            args: args.join(" "),
            detail: text.lines().last().unwrap_or("").to_string(),
        });
    }
    Ok(text.lines().next().unwrap_or("").to_string())
}

/// A management cluster that exists already (`--management-kubeconfig`): Cluster API, the
/// provider and CSO go into it as the install policy says (a bare one gets them, a complete one
/// is used as it is, a partial one is refused), after the tools' preflight.
pub struct Existing<'a> {
    /// The management cluster's kubeconfig.
    pub kubeconfig: &'a Path,
    /// What it should have, and how to install it.
    pub spec: &'a Spec,
    /// Where clusterctl, helm and kubectl are looked for.
    pub tool_dirs: &'a [PathBuf],
    /// The environment's name, for messages (`--env openstack needs clusterctl ...`).
    pub env: &'a str,
}

impl Existing<'_> {
    /// Makes it ready; returns the report's properties (tool versions and pins, or that it is
    /// used as it is).
    pub async fn prepare(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let client = crate::kube::client_from_kubeconfig(self.kubeconfig).await?;
        let (have, lack) = installed_parts(&client, self.spec.infrastructure).await?;
        let install =
            decide_install(self.spec.install, &have, &lack).map_err(|e| anyhow::anyhow!("{e} ({})", self.kubeconfig.display()))?;
        let mut props = BTreeMap::new();
        if install {
            let (tools, versions) = preflight(self.env, self.tool_dirs)?;
            props.extend(versions);
            props.extend(properties(self.spec));
            let say = |l: &str| tracing::info!("{l}");
            self::install(
                self.spec,
                &tools,
                self.kubeconfig,
                &say,
                &tokio_util::sync::CancellationToken::new(),
            )
            .await?;
        } else {
            tracing::info!("the management cluster has {}: used as it is", have.join(", "));
            props.insert("management".into(), "existing, used as it is".into());
        }
        Ok(props)
    }
}

pub use crate::config::InstallPolicy;

/// The CRDs that show each part is installed: (part, CRD name).
pub fn marker_crds(infrastructure: Infrastructure) -> Vec<(&'static str, &'static str)> {
    let mut v = vec![
        ("Cluster API", "clusters.cluster.x-k8s.io"),
        ("the Cluster Stack Operator", "clusterstacks.clusterstack.x-k8s.io"),
    ];
    match infrastructure {
        Infrastructure::Docker => v.push(("the Docker provider (CAPD)", "dockerclusters.infrastructure.cluster.x-k8s.io")),
        Infrastructure::OpenStack => {
            v.push(("the OpenStack provider (CAPO)", "openstackclusters.infrastructure.cluster.x-k8s.io"));
            v.push(("ORC", "images.openstack.k-orc.cloud"));
        }
    }
    v
}

/// Which parts of a management cluster are there: (present, missing), by their CRDs.
pub async fn installed_parts(client: &kube::Client, infrastructure: Infrastructure) -> Result<(Vec<String>, Vec<String>), MgmtError> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    let (mut have, mut lack) = (Vec::new(), Vec::new());
    for (part, crd) in marker_crds(infrastructure) {
        let found = crds
            .get_opt(crd)
            .await
            .map_err(|e| MgmtError::Kube(format!("reading CRD {crd}: {e}")))?;
        if found.is_some() {
            have.push(part.to_string())
        } else {
            lack.push(part.to_string())
        }
    }
    Ok((have, lack))
}

/// What to do with an existing management cluster: `Ok(true)` install, `Ok(false)` use as is.
pub fn decide_install(policy: InstallPolicy, have: &[String], lack: &[String]) -> Result<bool, crate::error::Invalid> {
    match policy {
        InstallPolicy::Always => Ok(true),
        InstallPolicy::Auto if lack.is_empty() => Ok(false),
        InstallPolicy::Auto if have.is_empty() => Ok(true),
        InstallPolicy::Auto => Err(format!(
            "the management cluster has {} but lacks {}: install the missing parts, or set `management.install: always` in the config file to install everything over it",
            have.join(", "),
            lack.join(", ")
        ).into()),
        InstallPolicy::Never if lack.is_empty() => Ok(false),
        InstallPolicy::Never => Err(format!(
            "the management cluster lacks {} and `management.install` is never: install them, or set it to auto",
            lack.join(", ")
        ).into()),
    }
}

/// How CSO is installed: its helm chart, values and mode.
#[derive(Clone, Debug)]
pub struct Cso {
    /// OCI reference, chart directory or `.tgz`.
    pub chart: String,
    /// Chart version (OCI charts only; a local chart is what it is).
    pub version: Option<String>,
    /// The manager image tag set over the chart's own, so the published chart runs the release
    /// the lab tests; `None` leaves the chart's (a chart the config names runs its own image).
    pub image_tag: Option<String>,
    /// Where the stacks' release assets are published (`clusterStackVariables.ociRepository`).
    pub oci_repository: String,
    /// Extra values files for the chart.
    pub values: Vec<PathBuf>,
    /// Run CSO in local mode, reading release assets from this directory inside the node
    /// (a hostPath), so an unreleased stack can be tested.
    pub local_release_dir: Option<String>,
}

impl Cso {
    /// Installs `chart`, made here from the release's module: it names the release image itself
    /// and has neither a version to ask for nor the published chart's image value.
    pub fn use_generated_chart(&mut self, chart: &Path) {
        self.chart = chart.display().to_string();
        self.version = None;
        self.image_tag = None;
    }
}

impl Spec {
    /// The pinned defaults for `infrastructure`.
    pub fn new(infrastructure: Infrastructure) -> Spec {
        Spec {
            infrastructure,
            capi_version: CAPI_VERSION.into(),
            capo_version: CAPO_VERSION.into(),
            clusterctl_config: None,
            orc_manifest: orc_manifest_url(ORC_VERSION),
            cso: Cso {
                chart: CSO_CHART.into(),
                version: Some(CSO_CHART_VERSION.into()),
                image_tag: Some(CSO_VERSION.into()),
                oci_repository: CSO_OCI_REPOSITORY.into(),
                values: Vec::new(),
                local_release_dir: None,
            },
            timeout: Duration::from_secs(600),
            install: InstallPolicy::Auto,
            existing_release_dir: None,
            cspo: None,
            capd_host_network: false,
            cso_hooks: true,
        }
    }

    /// The defaults, overridden by the config file's `management:` section.
    pub fn from_config(infrastructure: Infrastructure, c: Option<&crate::config::ManagementConfig>) -> Spec {
        let mut s = Spec::new(infrastructure);
        let Some(c) = c else { return s };
        let set = |to: &mut String, v: &Option<String>| {
            if let Some(v) = v {
                to.clone_from(v);
            }
        };
        set(&mut s.capi_version, &c.cluster_api_version);
        set(&mut s.capo_version, &c.capo_version);
        set(&mut s.orc_manifest, &c.orc_manifest);
        set(&mut s.cso.chart, &c.cso_chart);
        set(&mut s.cso.oci_repository, &c.cso_oci_repository);
        s.clusterctl_config.clone_from(&c.clusterctl_config);
        // Our pin is for our chart: another chart gets no version unless one is named.
        if c.cso_chart.is_some() || c.cso_chart_version.is_some() {
            s.cso.version.clone_from(&c.cso_chart_version);
            s.cso.image_tag = None;
        }
        s.cso.values.clone_from(&c.cso_values);
        if let Some(t) = &c.timeout {
            s.timeout = t.0;
        }
        s.install = c.install.unwrap_or_default();
        s.existing_release_dir.clone_from(&c.cso_release_dir);
        s.cspo = c.cspo.as_ref().map(|p| super::cspo::Settings {
            manifest: p
                .manifest
                .clone()
                .unwrap_or_else(|| super::cspo::manifest_url(p.version.as_deref().unwrap_or(super::cspo::VERSION))),
            variables: p.variables.clone(),
            import_timeout_minutes: p.import_timeout_minutes,
        });
        s
    }

    fn infrastructure_provider(&self) -> String {
        match self.infrastructure {
            Infrastructure::Docker => format!("docker:{}", self.capi_version),
            Infrastructure::OpenStack => format!("openstack:{}", self.capo_version),
        }
    }

    /// `clusterctl init` with every provider pinned.
    pub fn clusterctl_init_args(&self, kubeconfig: &Path) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "init".into(),
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
            "--core".into(),
            format!("cluster-api:{}", self.capi_version),
            "--bootstrap".into(),
            format!("kubeadm:{}", self.capi_version),
            "--control-plane".into(),
            format!("kubeadm:{}", self.capi_version),
            "--infrastructure".into(),
            self.infrastructure_provider(),
        ];
        if let Some(c) = &self.clusterctl_config {
            a.push("--config".into());
            a.push(c.display().to_string());
        }
        a
    }

    /// The feature gates Cluster Stacks need, read by clusterctl's variable substitution in the
    /// provider components (`${CLUSTER_TOPOLOGY:=false}` and friends).
    pub fn clusterctl_env(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("CLUSTER_TOPOLOGY", "true"),
            ("EXP_CLUSTER_RESOURCE_SET", "true"),
            ("EXP_RUNTIME_SDK", "true"),
            // clusterctl otherwise asks GitHub for a newer clusterctl (it hangs where there is
            // no internet, and the pinned version is deliberate).
            ("CLUSTERCTL_DISABLE_VERSIONCHECK", "true"),
        ]
    }

    /// `kubectl apply` of ORC (server-side: its CRDs are too large for the last-applied
    /// annotation).
    pub fn orc_apply_args(&self, kubeconfig: &Path) -> Vec<String> {
        vec![
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
            "apply".into(),
            "--server-side".into(),
            "--force-conflicts".into(),
            "-f".into(),
            self.orc_manifest.clone(),
        ]
    }

    /// `helm upgrade -i cso -n cso-system --create-namespace CHART ...`.
    pub fn helm_cso_args(&self, kubeconfig: &Path) -> Vec<String> {
        let c = &self.cso;
        let mut a: Vec<String> = vec![
            "upgrade".into(),
            "-i".into(),
            CSO_RELEASE.into(),
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
            "-n".into(),
            CSO_NAMESPACE.into(),
            "--create-namespace".into(),
            c.chart.clone(),
        ];
        if let (Some(v), true) = (&c.version, c.chart.starts_with("oci://")) {
            a.push("--version".into());
            a.push(v.clone());
        }
        a.push("--set".into());
        a.push(format!("clusterStackVariables.ociRepository={}", c.oci_repository));
        if let Some(t) = &c.image_tag {
            a.push("--set".into());
            a.push(format!("{CSO_CHART_IMAGE_TAG}={t}"));
        }
        if self.infrastructure == Infrastructure::OpenStack {
            // The scs2 stacks create ORC Images from the management cluster through CSO.
            for (i, verb) in ["create", "delete", "get", "list", "patch", "update", "watch"].iter().enumerate() {
                a.push("--set".into());
                a.push(format!("controllerManager.rbac.additionalRules[0].verbs[{i}]={verb}"));
            }
            a.push("--set".into());
            a.push("controllerManager.rbac.additionalRules[0].apiGroups[0]=openstack.k-orc.cloud".into());
            a.push("--set".into());
            a.push("controllerManager.rbac.additionalRules[0].resources[0]=images".into());
        }
        for v in &c.values {
            a.push("--values".into());
            a.push(v.display().to_string());
        }
        a
    }

    /// Namespaces whose Deployments must become Available.
    pub fn namespaces(&self) -> Vec<&'static str> {
        let mut n = vec!["capi-system", "capi-kubeadm-bootstrap-system", "capi-kubeadm-control-plane-system"];
        match self.infrastructure {
            Infrastructure::Docker => n.push("capd-system"),
            Infrastructure::OpenStack => {
                n.push("orc-system");
                n.push("capo-system");
            }
        }
        n.push(CSO_NAMESPACE);
        n
    }
}

/// A provider for a clusterctl local repository.
pub struct LocalProvider {
    /// clusterctl's provider name: `cluster-api`, `kubeadm`, `docker`, `openstack`, ...
    pub name: String,
    /// The provider's type (core, bootstrap, control plane, infrastructure).
    pub kind: ProviderKind,
    /// The release version (`v1.10.10`): the repository's version directory.
    pub version: String,
    /// The components YAML (what `kustomize build config/default` gives), with clusterctl's
    /// `${VAR:=default}` placeholders left in.
    pub components: String,
    /// The provider's `metadata.yaml` (release series → contract).
    pub metadata: String,
}

/// A clusterctl provider type.
#[derive(Clone, Copy, Debug)]
pub enum ProviderKind {
    /// The core provider (`cluster-api`).
    Core,
    /// A bootstrap provider (kubeadm).
    Bootstrap,
    /// A control-plane provider (kubeadm).
    ControlPlane,
    /// An infrastructure provider (docker, openstack).
    Infrastructure,
}

impl ProviderKind {
    fn parts(self) -> (&'static str, &'static str, &'static str) {
        match self {
            ProviderKind::Core => ("CoreProvider", "", "core-components.yaml"),
            ProviderKind::Bootstrap => ("BootstrapProvider", "bootstrap-", "bootstrap-components.yaml"),
            ProviderKind::ControlPlane => ("ControlPlaneProvider", "control-plane-", "control-plane-components.yaml"),
            ProviderKind::Infrastructure => ("InfrastructureProvider", "infrastructure-", "infrastructure-components.yaml"),
        }
    }
}

/// Writes a clusterctl local repository (`<dir>/<label>/<version>/<components>` plus
/// `metadata.yaml`) and the `clusterctl.yaml` pointing at it; returns that config's path. For
/// air-gapped sites and for installing providers built from source.
pub fn write_local_repository(dir: &Path, providers: &[LocalProvider]) -> std::io::Result<PathBuf> {
    let mut config = String::from("# Generated by scs-e2e: a clusterctl local repository.\nproviders:\n");
    for p in providers {
        let (type_, prefix, file) = p.kind.parts();
        let label = if matches!(p.kind, ProviderKind::Core) {
            p.name.clone()
        } else {
            format!("{prefix}{}", p.name)
        };
        let vdir = dir.join(&label).join(&p.version);
        std::fs::create_dir_all(&vdir)?;
        std::fs::write(vdir.join(file), &p.components)?;
        std::fs::write(vdir.join("metadata.yaml"), &p.metadata)?;
        config.push_str(&format!(
            "  - name: {}\n    type: {type_}\n    url: {}\n",
            p.name,
            serde_json::to_string(&vdir.join(file).display().to_string()).expect("strings serialize")
        ));
    }
    let path = dir.join("clusterctl.yaml");
    std::fs::write(&path, config)?;
    Ok(path)
}

/// The programs `install` runs.
#[derive(Clone, Debug)]
pub struct Tools {
    /// `clusterctl` (installs Cluster API and the infrastructure provider).
    pub clusterctl: PathBuf,
    /// `helm` (installs CSO).
    pub helm: PathBuf,
    /// `kubectl` (applies ORC and CSPO).
    pub kubectl: PathBuf,
}

/// Why installing the management cluster's providers failed.
#[derive(Debug, thiserror::Error)]
pub enum MgmtError {
    /// A tool (clusterctl, helm, kubectl) could not start, failed, timed out or was interrupted.
    #[error("`{tool} {args}` {how}; its last output:\n{tail}")]
    Tool {
        /// The program (its path when it could not start, else its file name).
        tool: String,
        /// Its arguments, space-separated.
        args: String,
        /// What happened (`exited with 1`, `was interrupted`, ...).
        how: String,
        /// Its last lines of output (up to 15; empty when it could not start).
        tail: String,
    },
    /// The provider Deployments did not become Available before the deadline.
    #[error(
        "the management cluster's providers did not become Available within {timeout:?}:\n{details}\nhint: pods that never start usually mean no node can run them (are the nodes Ready? `kubectl get nodes`), or an image that cannot be pulled (`kubectl -n NAMESPACE describe pods`)"
    )]
    NotAvailable {
        /// The management cluster's timeout ([`Spec::timeout`]).
        timeout: Duration,
        /// Each Deployment not Available, with its replica counts and conditions, one per line.
        details: String,
    },
    /// An API request, a manifest or a local file failed (the message says which).
    #[error("{0}")]
    Kube(String),
    /// CSPO's release manifest could not be read.
    #[error(transparent)]
    Fetch(#[from] super::cspo::FetchError),
}

/// Installs everything in order and waits for it. `say` gets progress lines.
pub async fn install(
    spec: &Spec,
    tools: &Tools,
    kubeconfig: &Path,
    say: &(dyn Fn(&str) + Sync),
    cancel: &CancellationToken,
) -> Result<(), MgmtError> {
    let deadline = Instant::now() + spec.timeout;
    if spec.infrastructure == Infrastructure::OpenStack {
        say(&format!("installing ORC from {}", spec.orc_manifest));
        run(&tools.kubectl, &spec.orc_apply_args(kubeconfig), &[], deadline, cancel).await?;
    }
    say(&format!("clusterctl init --infrastructure {}", spec.infrastructure_provider()));
    run(
        &tools.clusterctl,
        &spec.clusterctl_init_args(kubeconfig),
        &spec.clusterctl_env(),
        deadline,
        cancel,
    )
    .await?;
    let client = crate::kube::client_from_kubeconfig(kubeconfig)
        .await
        .map_err(|e| MgmtError::Kube(format!("{e:#}")))?;
    if spec.infrastructure == Infrastructure::Docker && spec.capd_host_network {
        say("CAPD on the node's network (its in-memory API servers must be reachable from the host)");
        capd_host_network(&client).await?;
    }
    // CSO's chart creates an ExtensionConfig, which Cluster API's webhook must admit: the
    // providers have to be up before CSO goes in.
    let providers: Vec<&str> = spec.namespaces().into_iter().filter(|n| *n != CSO_NAMESPACE).collect();
    say(&format!("waiting for the Deployments in {}", providers.join(", ")));
    wait_available(&client, &providers, deadline, spec.timeout).await?;
    say("waiting for Cluster API's webhook to answer");
    wait_capi_webhook(&client, deadline).await?;
    install_cso(spec, tools, kubeconfig, &client, say, deadline, cancel).await?;
    if spec.infrastructure == Infrastructure::OpenStack {
        install_cspo(spec, tools, kubeconfig, &client, say, deadline, cancel).await?;
    }
    Ok(())
}

/// CSPO from its release manifest (filled in and adjusted by [`super::cspo::render`]), when
/// the spec asks for it.
pub async fn install_cspo(
    spec: &Spec,
    tools: &Tools,
    kubeconfig: &Path,
    client: &kube::Client,
    say: &(dyn Fn(&str) + Sync),
    deadline: Instant,
    cancel: &CancellationToken,
) -> Result<(), MgmtError> {
    let Some(c) = &spec.cspo else { return Ok(()) };
    say(&format!("installing CSPO from {}", c.manifest));
    let text = super::cspo::fetch(&c.manifest).await?;
    let docs = super::cspo::render(&text, c).map_err(MgmtError::Kube)?;
    // kubectl reads the adjusted manifest from a file of ours (no secrets: the Git/OCI tokens
    // are in it base64-encoded, so it is private to us and removed at once).
    let file = std::env::temp_dir().join(format!("scs-e2e-cspo-{}.yaml", std::process::id()));
    let yaml: Vec<String> = docs.iter().map(|d| serde_json::to_string(d).expect("serializes")).collect();
    crate::base::write_private(&file, yaml.join("\n---\n").as_bytes()).map_err(|e| MgmtError::Kube(format!("{}: {e}", file.display())))?;
    let args: Vec<String> = vec![
        "apply".into(),
        "--server-side".into(),
        "--force-conflicts".into(),
        "--kubeconfig".into(),
        kubeconfig.display().to_string(),
        "-f".into(),
        file.display().to_string(),
    ];
    let applied = run(&tools.kubectl, &args, &[], deadline, cancel).await;
    let _ = std::fs::remove_file(&file);
    applied?;
    say(&format!("waiting for the Deployments in {}", super::cspo::NAMESPACE));
    wait_available(client, &[super::cspo::NAMESPACE], deadline, spec.timeout).await
}

/// CSO via helm (after Cluster API is up), local mode if asked, then wait for it.
pub async fn install_cso(
    spec: &Spec,
    tools: &Tools,
    kubeconfig: &Path,
    client: &kube::Client,
    say: &(dyn Fn(&str) + Sync),
    deadline: Instant,
    cancel: &CancellationToken,
) -> Result<(), MgmtError> {
    say(&format!("helm upgrade -i {CSO_RELEASE} {}", spec.cso.chart));
    let mut attempt = 1;
    while let Err(e) = run(&tools.helm, &spec.helm_cso_args(kubeconfig), &[], deadline, cancel).await {
        // The webhooks answered the probes before, but a controller on a loaded machine can
        // stop answering for a while (seen: cert-manager's TLS handshake timed out and Cluster
        // API's webhook refused connections in the same helm run). That passes; anything else
        // does not.
        if attempt >= CSO_INSTALL_ATTEMPTS || !webhook_unreachable(&e) {
            return Err(e);
        }
        say(&format!(
            "helm could not reach an admission webhook (attempt {attempt} of {CSO_INSTALL_ATTEMPTS}); removing the partial release and waiting for the webhooks"
        ));
        // A first install that failed leaves a release without a deployed revision, which
        // `upgrade -i` refuses: start clean.
        let uninstall: Vec<String> = [
            "uninstall",
            CSO_RELEASE,
            "--kubeconfig",
            &kubeconfig.display().to_string(),
            "-n",
            CSO_NAMESPACE,
            "--wait",
            "--ignore-not-found",
        ]
        .map(String::from)
        .to_vec();
        run(&tools.helm, &uninstall, &[], deadline, cancel).await?;
        wait_cert_manager_webhook(client, deadline).await?;
        wait_capi_webhook(client, deadline).await?;
        attempt += 1;
    }
    if let Some(dir) = &spec.cso.local_release_dir {
        say(&format!("CSO in local mode, release assets from {dir}"));
        cso_local_mode(client, dir).await?;
    }
    say(&format!("waiting for the Deployments in {CSO_NAMESPACE}"));
    wait_available(client, &[CSO_NAMESPACE], deadline, spec.timeout).await?;
    wait_cso_webhook(client, deadline).await?;
    if !spec.cso_hooks {
        say("CSO's lifecycle hooks unregistered (in-memory workload clusters cannot take addons)");
        unregister_cso_hooks(client).await?;
    }
    Ok(())
}

/// How often CSO's helm install meets an unreachable webhook before the environment fails.
const CSO_INSTALL_ATTEMPTS: u32 = 3;

/// A tool's failure that is an admission webhook not answering (refused, timed out), as
/// opposed to one that answered and refused.
fn webhook_unreachable(e: &MgmtError) -> bool {
    match e {
        MgmtError::Tool { how, tail, .. } if how.starts_with("exited") => {
            tail.contains("failed calling webhook")
                && [
                    "connection refused",
                    "timeout",
                    "deadline exceeded",
                    "no endpoints available",
                    "EOF",
                ]
                .iter()
                .any(|w| tail.contains(w))
        }
        _ => false,
    }
}

/// Waits until cert-manager's admission webhook answers: CSO's chart has cert-manager objects.
pub async fn wait_cert_manager_webhook(client: &kube::Client, deadline: Instant) -> Result<(), MgmtError> {
    let probe = json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Issuer",
        "metadata": {"name": "scs-e2e-webhook-probe", "namespace": "default"},
        "spec": {"selfSigned": {}}
    });
    wait_webhook(client, "issuers", probe, "cert-manager's webhook", deadline).await
}

/// Waits until CSO's admission webhook answers (see [`wait_webhook`]); the first ClusterStack of
/// a run met "connection refused" in the gap after its pod became Ready.
pub async fn wait_cso_webhook(client: &kube::Client, deadline: Instant) -> Result<(), MgmtError> {
    let probe = json!({
        "apiVersion": "clusterstack.x-k8s.io/v1alpha1",
        "kind": "ClusterStack",
        "metadata": {"name": "scs-e2e-webhook-probe", "namespace": CSO_NAMESPACE},
        "spec": {"provider": "probe", "name": "probe", "kubernetesVersion": "1.33", "channel": "stable", "autoSubscribe": false, "noProvider": true, "versions": []}
    });
    wait_webhook(client, "clusterstacks", probe, "CSO's webhook", deadline).await
}

/// Waits until Cluster API's ExtensionConfig webhook answers: CSO's chart creates one, and on a
/// busy machine helm met "failed calling webhook ... context deadline exceeded" right after the
/// providers' Deployments became Available.
pub async fn wait_capi_webhook(client: &kube::Client, deadline: Instant) -> Result<(), MgmtError> {
    let probe = json!({
        "apiVersion": "runtime.cluster.x-k8s.io/v1alpha1",
        "kind": "ExtensionConfig",
        "metadata": {"name": "scs-e2e-webhook-probe"},
        "spec": {"clientConfig": {"url": "https://127.0.0.1:9/probe"}}
    });
    wait_webhook(client, "extensionconfigs", probe, "Cluster API's webhook", deadline).await
}

/// Waits until the admission webhook for `probe`'s kind answers: a Ready pod is not yet a
/// Service endpoint kube-proxy routes to. Probed with a server-side dry run (nothing is stored),
/// once a second until the deadline; any answer of the webhook, its own refusal included, counts.
async fn wait_webhook(
    client: &kube::Client,
    plural: &str,
    probe: serde_json::Value,
    what: &str,
    deadline: Instant,
) -> Result<(), MgmtError> {
    let api_version = probe["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let ar = kube::api::ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: probe["kind"].as_str().unwrap_or_default().into(),
        plural: plural.into(),
    };
    let api: Api<kube::api::DynamicObject> = match probe.pointer("/metadata/namespace").and_then(|n| n.as_str()) {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    let probe: kube::api::DynamicObject = serde_json::from_value(probe).expect("valid object");
    let pp = kube::api::PostParams {
        dry_run: true,
        ..Default::default()
    };
    loop {
        let last = match api.create(&pp, &probe).await {
            Ok(_) => return Ok(()),
            Err(e) if !e.to_string().contains("failed calling webhook") => return Ok(()),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(MgmtError::Kube(format!("{what} never answered: {last}")));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Deletes the ExtensionConfigs that point Cluster API at CSO's hook server.
pub async fn unregister_cso_hooks(client: &kube::Client) -> Result<(), MgmtError> {
    let ar = kube::api::ApiResource {
        group: "runtime.cluster.x-k8s.io".into(),
        version: "v1alpha1".into(),
        api_version: "runtime.cluster.x-k8s.io/v1alpha1".into(),
        kind: "ExtensionConfig".into(),
        plural: "extensionconfigs".into(),
    };
    let api: Api<kube::api::DynamicObject> = Api::all_with(client.clone(), &ar);
    let list = api
        .list(&Default::default())
        .await
        .map_err(|e| MgmtError::Kube(format!("listing ExtensionConfigs: {e}")))?;
    for e in list.items {
        let ns = e.data.pointer("/spec/clientConfig/service/namespace").and_then(|v| v.as_str());
        if ns == Some(CSO_NAMESPACE) {
            let name = e.metadata.name.clone().unwrap_or_default();
            api.delete(&name, &Default::default())
                .await
                .map_err(|e| MgmtError::Kube(format!("deleting ExtensionConfig {name}: {e}")))?;
        }
    }
    Ok(())
}

/// Runs one tool; fails with its argv and last lines (they name no secret: kubeconfigs are
/// passed by path).
pub async fn run(
    program: &Path,
    args: &[String],
    env: &[(&str, &str)],
    deadline: Instant,
    cancel: &CancellationToken,
) -> Result<String, MgmtError> {
    let mut expr = duct::cmd(program, args);
    for (k, v) in env {
        expr = expr.env(k, v);
    }
    let tool = program.file_name().unwrap_or_default().to_string_lossy().to_string();
    let name = tool.clone();
    let out = crate::process::run_streaming(expr, move |l| tracing::debug!("{name}: {l}"), deadline, cancel)
        .await
        .map_err(|e| MgmtError::Tool {
            tool: program.display().to_string(),
            args: args.join(" "),
            how: format!("could not start: {e}"),
            tail: String::new(),
        })?;
    let how = match out.ended {
        crate::process::Ended::Exited(0) => return Ok(out.output),
        crate::process::Ended::Exited(c) => format!("exited with {c}"),
        crate::process::Ended::Signalled(s) => format!("was killed by signal {s}"),
        crate::process::Ended::TimedOut => "did not finish before the management cluster's timeout".into(),
        crate::process::Ended::Cancelled => "was interrupted".into(),
    };
    let lines: Vec<&str> = out.output.lines().collect();
    Err(MgmtError::Tool {
        tool,
        args: args.join(" "),
        how,
        tail: lines[lines.len().saturating_sub(15)..].join("\n"),
    })
}

/// CAPD's Deployment on the node's network. Its webhook (9443) and probe ports are then the
/// node's: nothing else in a kind management cluster listens there.
pub async fn capd_host_network(client: &kube::Client) -> Result<(), MgmtError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), "capd-system");
    let patch = json!({"spec": {"template": {"spec": {"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}}}});
    api.patch("capd-controller-manager", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .map_err(|e| {
            MgmtError::Kube(format!(
                "patching Deployment capd-system/capd-controller-manager onto the node's network: {e}"
            ))
        })?;
    Ok(())
}

/// Local mode: CSO reads release assets from a hostPath instead of an OCI registry.
pub async fn cso_local_mode(client: &kube::Client, dir: &str) -> Result<(), MgmtError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), CSO_NAMESPACE);
    let list = api.list(&Default::default()).await.map_err(|e| MgmtError::Kube(e.to_string()))?;
    let d = list
        .items
        .iter()
        .find(|d| {
            d.spec
                .template
                .spec
                .as_ref()
                .is_some_and(|p| p.containers.iter().any(|c| c.name == "manager"))
        })
        .ok_or_else(|| {
            MgmtError::Kube(format!(
                "no Deployment with a `manager` container in {CSO_NAMESPACE}: is the chart CSO's?"
            ))
        })?;
    let name = d.metadata.name.clone().unwrap_or_default();
    let pod = d.spec.template.spec.as_ref().expect("checked above");
    let mut containers = pod.containers.clone();
    for c in containers.iter_mut().filter(|c| c.name == "manager") {
        let args = c.args.get_or_insert_with(Vec::new);
        args.retain(|a| !a.starts_with("--local") && !a.starts_with("--release-dir"));
        args.push("--local=true".into());
        args.push(format!("--release-dir={dir}"));
        let mounts = c.volume_mounts.get_or_insert_with(Vec::new);
        mounts.retain(|m| m.name != "cso-releases");
        mounts.push(serde_json::from_value(json!({"name": "cso-releases", "mountPath": dir})).expect("valid mount"));
    }
    let mut volumes = pod.volumes.clone().unwrap_or_default();
    volumes.retain(|v| v.name != "cso-releases");
    volumes.push(
        serde_json::from_value(json!({"name": "cso-releases", "hostPath": {"path": NODE_RELEASE_DIR, "type": "Directory"}}))
            .expect("valid volume"),
    );
    let patch = json!({"spec": {"template": {"spec": {"containers": containers, "volumes": volumes}}}});
    api.patch(&name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .map_err(|e| MgmtError::Kube(format!("patching Deployment {CSO_NAMESPACE}/{name} for local mode: {e}")))?;
    Ok(())
}

/// Waits until every Deployment in `namespaces` (at least one each) is Available; on timeout
/// names each one that is not, with its replica counts and conditions.
pub async fn wait_available(client: &kube::Client, namespaces: &[&str], deadline: Instant, timeout: Duration) -> Result<(), MgmtError> {
    let waits = namespaces.iter().map(|ns| {
        let api = Api::namespaced_with(client.clone(), ns, &kube::api::ApiResource::erase::<Deployment>(&()));
        let ns = ns.to_string();
        async move {
            let r = crate::kube::wait_until(api, &Target::Selector(String::new()), deadline, |objs| {
                if objs.is_empty() {
                    return Verdict::Pending(format!("{ns}: no Deployment yet"));
                }
                let waiting: Vec<String> = objs.values().filter_map(|o| not_available(&ns, o)).collect();
                if waiting.is_empty() {
                    Verdict::Done
                } else {
                    Verdict::Pending(waiting.join("\n"))
                }
            })
            .await;
            match r {
                Ok(_) => None,
                Err(WaitError::Timeout { last, .. }) => Some(last),
                Err(WaitError::Failed(s)) => Some(format!("{ns}: {s}")),
            }
        }
    });
    let problems: Vec<String> = futures::future::join_all(waits).await.into_iter().flatten().collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(MgmtError::NotAvailable {
            timeout,
            details: problems
                .iter()
                .map(|p| format!("  {}", p.replace('\n', "\n  ")))
                .collect::<Vec<_>>()
                .join("\n"),
        })
    }
}

/// `None` when Available=True; else a line like
/// `capi-system/capi-controller-manager: 0/1 ready, Available=False (MinimumReplicasUnavailable)`.
fn not_available(ns: &str, o: &kube::api::DynamicObject) -> Option<String> {
    let conds = crate::kube::conditions(o);
    let status = o.data.get("status");
    let n = |k: &str| status.and_then(|s| s.get(k)).and_then(|v| v.as_i64()).unwrap_or(0);
    let want = o.data.pointer("/spec/replicas").and_then(|v| v.as_i64()).unwrap_or(1);
    // Available and rolled out: a patched Deployment (CSO's local mode, CAPD's network) is
    // Available from its old pod until that pod goes; its Service must not end up empty.
    let generation = o.metadata.generation.unwrap_or(0);
    let rolled_out =
        n("observedGeneration") >= generation && n("updatedReplicas") == want && n("replicas") == want && n("availableReplicas") >= want;
    if rolled_out && conds.iter().any(|c| c.type_ == "Available" && c.status == "True") {
        return None;
    }
    Some(format!(
        "{ns}/{}: {}/{want} ready, {}{}",
        o.metadata.name.as_deref().unwrap_or("?"),
        n("readyReplicas"),
        crate::kube::describe_conditions(o),
        if rolled_out {
            String::new()
        } else {
            format!(", rolling out ({} of {want} updated, {} pods)", n("updatedReplicas"), n("replicas"))
        }
    ))
}

/// Versions of what was installed, for the report's properties.
pub fn properties(spec: &Spec) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    p.insert("cluster_api".into(), spec.capi_version.clone());
    if spec.infrastructure == Infrastructure::OpenStack {
        p.insert("capo".into(), spec.capo_version.clone());
        p.insert("orc_manifest".into(), spec.orc_manifest.clone());
    }
    p.insert(
        "cso_chart".into(),
        match &spec.cso.version {
            Some(v) => format!("{}:{v}", spec.cso.chart),
            None => spec.cso.chart.clone(),
        },
    );
    if let Some(t) = &spec.cso.image_tag {
        p.insert("cso_image_tag".into(), t.clone());
    }
    if let Some(d) = &spec.cso.local_release_dir {
        p.insert("cso_local_release_dir".into(), d.clone());
    }
    p
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_an_unreachable_webhook_makes_the_cso_install_try_again() {
        let tool = |how: &str, tail: &str| MgmtError::Tool {
            tool: "helm".into(),
            args: "upgrade -i cso".into(),
            how: how.into(),
            tail: tail.into(),
        };
        // What stop 28's rehearsal met, under load.
        let seen = "Error: 2 errors occurred:\n\t* Internal error occurred: failed calling webhook \"webhook.cert-manager.io\": failed to call webhook: Post \"https://cert-manager-webhook.cert-manager.svc:443/validate?timeout=30s\": net/http: TLS handshake timeout\n\t* Internal error occurred: failed calling webhook \"default.extensionconfig.runtime.addons.cluster.x-k8s.io\": failed to call webhook: Post \"https://capi-webhook-service.capi-system.svc:443/mutate\": dial tcp 10.96.180.143:443: connect: connection refused";
        assert!(webhook_unreachable(&tool("exited with 1", seen)));
        // A webhook that answered and refused, a broken chart, a timeout of helm itself: no.
        let denied = "Error: admission webhook \"vclusterstack.kb.io\" denied the request: spec.versions: invalid";
        assert!(!webhook_unreachable(&tool("exited with 1", denied)));
        assert!(!webhook_unreachable(&tool(
            "exited with 1",
            "Error: chart requires kubeVersion: >=1.40"
        )));
        assert!(!webhook_unreachable(&tool(
            "did not finish before the management cluster's timeout",
            seen
        )));
        assert!(!webhook_unreachable(&MgmtError::Kube(seen.into())));
    }

    #[test]
    fn an_existing_management_cluster_is_installed_into_only_when_bare() {
        let all: Vec<String> = marker_crds(Infrastructure::OpenStack).iter().map(|(p, _)| p.to_string()).collect();
        let none: Vec<String> = Vec::new();
        assert_eq!(decide_install(InstallPolicy::Auto, &none, &all), Ok(true));
        assert_eq!(decide_install(InstallPolicy::Auto, &all, &none), Ok(false));
        let e = decide_install(InstallPolicy::Auto, &all[..1], &all[1..]).unwrap_err();
        assert!(
            e.starts_with(
                "the management cluster has Cluster API but lacks the Cluster Stack Operator, the OpenStack provider (CAPO), ORC"
            ),
            "{e}"
        );
        assert!(e.contains("management.install: always"), "{e}");
        assert_eq!(decide_install(InstallPolicy::Always, &all, &none), Ok(true));
        assert!(
            decide_install(InstallPolicy::Never, &none, &all)
                .unwrap_err()
                .contains("set it to auto")
        );
        assert_eq!(decide_install(InstallPolicy::Never, &all, &none), Ok(false));
    }

    use super::*;

    #[test]
    fn clusterctl_pins_every_provider_and_enables_the_gates_cluster_stacks_need() {
        let mut s = Spec::new(Infrastructure::Docker);
        s.clusterctl_config = Some("/r/clusterctl.yaml".into());
        assert_eq!(
            s.clusterctl_init_args(Path::new("/k")).join(" "),
            format!(
                "init --kubeconfig /k --core cluster-api:{CAPI_VERSION} --bootstrap kubeadm:{CAPI_VERSION} --control-plane kubeadm:{CAPI_VERSION} --infrastructure docker:{CAPI_VERSION} --config /r/clusterctl.yaml"
            )
        );
        let env: BTreeMap<_, _> = s.clusterctl_env().into_iter().collect();
        assert_eq!(env["CLUSTER_TOPOLOGY"], "true");
        assert_eq!(env["EXP_RUNTIME_SDK"], "true");
        assert_eq!(env["EXP_CLUSTER_RESOURCE_SET"], "true");
        let o = Spec::new(Infrastructure::OpenStack);
        assert!(
            o.clusterctl_init_args(Path::new("/k"))
                .contains(&format!("openstack:{CAPO_VERSION}"))
        );
        assert_eq!(
            o.namespaces(),
            [
                "capi-system",
                "capi-kubeadm-bootstrap-system",
                "capi-kubeadm-control-plane-system",
                "orc-system",
                "capo-system",
                "cso-system"
            ]
        );
    }

    #[test]
    fn pull_mode_pins_the_chart_and_runs_the_labs_cso_release_in_it() {
        let a = Spec::new(Infrastructure::Docker).helm_cso_args(Path::new("/k")).join(" ");
        assert!(
            a.contains(&format!(
                "oci://registry.scs.community/cluster-stacks/cso --version {CSO_CHART_VERSION} "
            )),
            "{a}"
        );
        assert!(
            a.contains(&format!("--set controllerManager.manager.image.tag={CSO_VERSION}")),
            "{a}"
        );
        assert_eq!((CSO_CHART_VERSION, CSO_VERSION), ("0.4.1", "v0.1.0-alpha.7"));
        // A version from the config wins, and that chart runs its own image.
        let c = crate::config::ManagementConfig {
            cso_chart_version: Some("0.3.0".into()),
            ..Default::default()
        };
        let a = Spec::from_config(Infrastructure::Docker, Some(&c))
            .helm_cso_args(Path::new("/k"))
            .join(" ");
        assert!(a.contains("--version 0.3.0 "), "{a}");
        assert!(!a.contains("image.tag"), "{a}");
        // Another chart is not asked for our pinned version.
        let c = crate::config::ManagementConfig {
            cso_chart: Some("oci://example.org/cso".into()),
            ..Default::default()
        };
        let a = Spec::from_config(Infrastructure::Docker, Some(&c))
            .helm_cso_args(Path::new("/k"))
            .join(" ");
        assert!(!a.contains("--version") && !a.contains("image.tag"), "{a}");
        // Settings that name no CSO chart keep the pins.
        let c = crate::config::ManagementConfig {
            cso_oci_repository: Some("example.org/stacks".into()),
            ..Default::default()
        };
        let s = Spec::from_config(Infrastructure::Docker, Some(&c));
        assert_eq!(s.cso.version.as_deref(), Some(CSO_CHART_VERSION));
        assert_eq!(properties(&s)["cso_chart"], format!("{CSO_CHART}:{CSO_CHART_VERSION}"));
        assert_eq!(properties(&s)["cso_image_tag"], CSO_VERSION);
        // Offline kind's chart, generated from the module, carries the release image itself.
        let mut s = Spec::new(Infrastructure::Docker);
        s.cso.use_generated_chart(Path::new("/w/charts/cso"));
        let a = s.helm_cso_args(Path::new("/k")).join(" ");
        assert!(a.contains(" /w/charts/cso --set clusterStackVariables"), "{a}");
        assert!(!a.contains("--version") && !a.contains("image.tag"), "{a}");
        assert!(!properties(&s).contains_key("cso_image_tag"));
    }

    #[test]
    fn cso_goes_to_cso_system_as_cso_with_the_oci_repository() {
        let mut s = Spec::new(Infrastructure::Docker);
        s.cso.version = Some("0.1.0".into());
        let a = s.helm_cso_args(Path::new("/k")).join(" ");
        assert!(a.starts_with("upgrade -i cso --kubeconfig /k -n cso-system --create-namespace oci://registry.scs.community/cluster-stacks/cso --version 0.1.0 --set clusterStackVariables.ociRepository=registry.scs.community/kaas/cluster-stacks"), "{a}");
        assert!(!a.contains("k-orc"), "{a}");
        // A local chart has no version to ask for; OpenStack adds CSO's rights on ORC Images.
        let mut o = Spec::new(Infrastructure::OpenStack);
        o.cso.chart = "/charts/cso".into();
        o.cso.version = Some("0.1.0".into());
        let a = o.helm_cso_args(Path::new("/k")).join(" ");
        assert!(!a.contains("--version"), "{a}");
        assert!(a.contains("additionalRules[0].apiGroups[0]=openstack.k-orc.cloud"), "{a}");
        assert_eq!(o.orc_apply_args(Path::new("/k"))[2..4], ["apply", "--server-side"]);
    }
}
