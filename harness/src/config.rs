//! The config file (`apiVersion: scs-e2e/v1alpha1`, `kind: Config`) and the settings a run uses.
//! Precedence: flags > environment (`SCS_E2E_*`, `KUBECONFIG`) > config file > defaults.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::error::InputError;
use crate::format::API_VERSION;
use crate::format::duration::{HumanDuration, is_interval_name};

/// What to delete when a scenario (or the run) ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DeletePolicy {
    /// Always clean up.
    Always,
    /// Clean up what passed; keep what failed for debugging.
    Success,
    /// Keep everything (print how to reach it).
    Never,
}

impl DeletePolicy {
    /// Whether to delete at the end, given whether the scenario (or run) passed.
    pub fn should_delete(self, passed: bool) -> bool {
        match self {
            DeletePolicy::Always => true,
            DeletePolicy::Success => passed,
            DeletePolicy::Never => false,
        }
    }
}

/// The config file.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigFile {
    /// Always `scs-e2e/v1alpha1`.
    #[schemars(with = "String")]
    pub api_version: Spanned<String>,
    /// Always `Config`.
    #[schemars(with = "String")]
    pub kind: Spanned<String>,
    /// The environment (`lab`, `kubeconfig`, `kind`, `openstack`); `--env` wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub env: Option<Spanned<String>>,
    /// Kubeconfig for `--env kubeconfig` when neither `--kubeconfig` nor KUBECONFIG is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// Suites to run when `--suite` is not given (names or files; default: quickstart).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suites: Vec<String>,
    /// Suite variables, `${NAME}` in every suite: they override the suites' own `vars`;
    /// `SCS_E2E_VAR_<NAME>` and `--var NAME=VALUE` override these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
    /// Scenarios run at once (default 4; at least 1); `--parallel` wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<usize>,
    /// What to delete afterwards (default `success`); `--delete` wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<DeletePolicy>,
    /// Artifacts directory (default `reports`); `--artifacts` wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<PathBuf>,
    /// Default step timeout and attempts, below suite and scenario defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_timeout: Option<HumanDuration>,
    /// Default attempts per step (default 1), below suite and scenario defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_attempts: Option<u32>,
    /// Named timeouts suites refer to (`timeout: wait-cluster`); these override the built-in ones.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    #[schemars(with = "BTreeMap<String, HumanDuration>")]
    pub intervals: HashMap<Spanned<String>, HumanDuration>,
    /// `--env lab`: where the lab's binaries come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab: Option<LabConfig>,
    /// `--env kind` (named so because `kind:` is the file's own kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind_cluster: Option<KindConfig>,
    /// `--env openstack`: the cloud and the management cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openstack: Option<OpenStackConfig>,
    /// How `--env kind` and `--env openstack` make their management cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management: Option<ManagementConfig>,
}

/// `--env kind`: the kind management cluster.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KindConfig {
    /// Cluster name (default `scs-e2e-<run id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Node image (default: the one pinned for Kubernetes 1.33).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_image: Option<String>,
    /// Run CSO in local mode with release assets the harness builds from our stacks (or the
    /// stacks a suite names), mounted into the node: test an unreleased stack change. Default:
    /// on when a step installs a stack from a `source:`; `false` refuses such plans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_stacks: Option<bool>,
    /// `pull` (default): the published node image and provider images. `offline`: images built
    /// here from source by `scs-e2e images build` (on first use), loaded into the cluster, never
    /// pulled. `SCS_E2E_KIND_IMAGES` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImagesMode>,
    /// Directory holding `docker`/`podman`, `kind`, `clusterctl`, `helm`, `kubectl` (searched
    /// before PATH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<PathBuf>,
}

/// `--env openstack`: the cloud and the management cluster.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OpenStackConfig {
    /// The clouds.yaml entry (default `OS_CLOUD`, or the only cloud in the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
    /// Use this management cluster instead of creating one with kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_kubeconfig: Option<PathBuf>,
    /// Namespace of the workload clusters and their credentials (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Secret naming: `scs` (Secret `<cloud>`, label `managed-secret: cloud-config`) or `scs2`
    /// (Secret `openstack`, label `managed-secret: clouds-yaml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub naming: Option<String>,
    /// ClusterClass variables for every workload cluster, like the stacks' flavors
    /// (`controller_flavor`, `worker_flavor`) or `external_id`. Set where the class declares
    /// them; a step's own values win. `cloud_name`/`secret_name` are filled in already.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cluster_variables: BTreeMap<String, serde_json::Value>,
    /// An image that must already be in Glance before a cluster is created (preflight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// Versions and sources of what goes into a management cluster; every field has a pinned
/// default.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ManagementConfig {
    /// Cluster API version for clusterctl (core, kubeadm and Docker providers; default: pinned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_api_version: Option<String>,
    /// Cluster API Provider OpenStack (CAPO) version (default: pinned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capo_version: Option<String>,
    /// A clusterctl config (mirrors, or a local provider repository).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusterctl_config: Option<PathBuf>,
    /// ORC's install manifest (file or URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orc_manifest: Option<String>,
    /// CSO chart: OCI reference, directory or .tgz (default: `mgmt::CSO_CHART` at
    /// `mgmt::CSO_CHART_VERSION` running `mgmt::CSO_VERSION`). Naming one, or a version, runs
    /// that chart's own image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cso_chart: Option<String>,
    /// CSO chart version (OCI charts only; unset with `cso_chart` set: the chart's newest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cso_chart_version: Option<String>,
    /// Where CSO fetches stack releases (`clusterStackVariables.ociRepository`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cso_oci_repository: Option<String>,
    /// Extra values files for the CSO chart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cso_values: Vec<PathBuf>,
    /// How long the providers may take to become Available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    /// For an existing management cluster (`openstack.managementKubeconfig`): `auto` (default)
    /// installs only into a cluster that has none of Cluster API, the provider and CSO, and
    /// uses one that has all of them as it is; `always`; `never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<InstallPolicy>,
    /// The legacy Cluster Stack Provider OpenStack (for `noProvider: false` stacks): installed
    /// after CSO when this section is present (OpenStack only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cspo: Option<CspoConfig>,
    /// For an existing management cluster whose CSO runs in local mode: the release directory
    /// it reads (as seen from here), where `installClusterStack` with `source:` builds assets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cso_release_dir: Option<PathBuf>,
}

/// The legacy Cluster Stack Provider OpenStack (CSPO): its release, manifest and variables.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CspoConfig {
    /// Release version (default v0.1.0-alpha.6), for the default manifest URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The install manifest, file or URL (default: the release's
    /// cspo-infrastructure-components.yaml).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// Plain values of GIT_PROVIDER, GIT_ORG_NAME, GIT_REPOSITORY_NAME, GIT_ACCESS_TOKEN,
    /// OCI_REGISTRY, OCI_REPOSITORY, OCI_ACCESS_TOKEN, OCI_USERNAME, OCI_PASSWORD (encoded for
    /// the manifest's `*_B64`); OCI_REGISTRY switches CSPO to `--source=oci`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// Minutes an image import may take before CSPO gives up (CSPO's default: forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_timeout_minutes: Option<u32>,
}

/// `--env lab`: where the lab's binaries come from; `--lab-bin-dir`/`--lab-cache-dir` win.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabConfig {
    /// Where built lab binaries are cached (default `$XDG_CACHE_HOME/scs-e2e/lab`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    /// Use these binaries instead of building (a `KUBEBUILDER_ASSETS`-style directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<PathBuf>,
}

/// Built-in intervals: generous for clouds; the lab finishes far inside them.
pub fn builtin_intervals() -> BTreeMap<String, Duration> {
    [
        ("default", 300),
        ("wait-crd", 60),
        ("wait-controllers", 600),
        ("wait-cluster-stack-release", 900),
        ("wait-cluster", 1800),
        ("wait-upgrade", 2700),
        ("wait-delete", 1200),
        // The environment's phases: `up` may build the lab and the offline images on first use.
        ("environment-up", 5400),
        ("environment-down", 1800),
    ]
    .into_iter()
    .map(|(k, s)| (k.to_string(), Duration::from_secs(s)))
    .collect()
}

/// Settings every run and listing uses, after precedence is applied.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Timeout of a step that sets none (5m, or the config file's `defaultTimeout`).
    pub default_timeout: Duration,
    /// Attempts of a step that sets none (1, or the config file's `defaultAttempts`; at least 1).
    pub default_attempts: u32,
    /// Named timeouts: the built-in ones, overridden and extended by the config file's `intervals`.
    pub intervals: BTreeMap<String, Duration>,
    /// The `--config` file these came from; None without one.
    pub config_file: Option<PathBuf>,
    /// The parsed config file; None without one.
    pub file: Option<ConfigFile>,
    /// Suite variables given from outside the suites, with where each came from (`--var`,
    /// `SCS_E2E_VAR_<NAME>`, the config file): they override the suites' `vars`.
    pub vars: BTreeMap<String, (String, String)>,
}

/// The environment variables that set suite variables: `SCS_E2E_VAR_<NAME>`.
pub const VAR_ENV_PREFIX: &str = "SCS_E2E_VAR_";

/// A suite variable name: a letter or `_`, then letters, digits, `_` and `.`.
pub fn is_var_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_timeout: Duration::from_secs(300),
            default_attempts: 1,
            intervals: builtin_intervals(),
            config_file: None,
            file: None,
            vars: BTreeMap::new(),
        }
    }
}

impl Settings {
    /// The defaults, overridden by the config file at `path` (if given); a bad file is an error.
    pub fn from_file(path: Option<&Path>) -> Result<Settings, InputError> {
        let mut s = Settings::default();
        let Some(path) = path else { return Ok(s) };
        let cfg = load_config(path)?;
        if let Some(t) = cfg.default_timeout {
            s.default_timeout = t.0;
        }
        if let Some(a) = cfg.default_attempts {
            s.default_attempts = a.max(1);
        }
        for (k, v) in &cfg.intervals {
            s.intervals.insert(k.value.clone(), v.0);
        }
        cfg.register_secrets();
        for (k, v) in &cfg.vars {
            if !is_var_name(k) {
                return Err(
                    InputError::new(format!("vars: `{k}` is not a variable name (letters, digits, `_`, `.`)"))
                        .in_file(path.display().to_string()),
                );
            }
            s.vars.insert(k.clone(), (v.clone(), format!("config {}", path.display())));
        }
        s.config_file = Some(path.to_path_buf());
        s.file = Some(cfg);
        Ok(s)
    }

    /// Adds the suite variables given from outside, over the config file's: `env` (the process's
    /// `SCS_E2E_VAR_<NAME>`s), then `flags` (`--var NAME=VALUE`, repeatable; the last wins). A
    /// malformed one is a usage error naming it; secret-named values are masked from here on.
    pub fn add_vars(&mut self, flags: &[String], env: impl IntoIterator<Item = (String, String)>) -> Result<(), InputError> {
        let mut given: Vec<(String, String, String)> = env
            .into_iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(VAR_ENV_PREFIX)
                    .map(|n| (n.to_string(), v, format!("environment {k}")))
            })
            .collect();
        given.sort();
        for f in flags {
            let (k, v) = f
                .split_once('=')
                .ok_or_else(|| InputError::new(format!("--var `{f}`: write NAME=VALUE, like --var STACK_SOURCE=./my-stack")))?;
            given.push((k.to_string(), v.to_string(), "--var".into()));
        }
        for (k, v, from) in given {
            if !is_var_name(&k) {
                return Err(InputError::new(format!(
                    "{from}: `{k}` is not a variable name (a letter or `_`, then letters, digits, `_`, `.`)"
                )));
            }
            if crate::redact::is_secret_name(&k) {
                crate::redact::add(&v);
            }
            self.vars.insert(k, (v, from));
        }
        Ok(())
    }
}

impl ConfigFile {
    /// Registers the secrets the file holds with [`crate::redact`], before anything can print
    /// or record them: CSPO's variables and the OpenStack cluster variables whose names say
    /// secret (GIT_ACCESS_TOKEN, OCI_ACCESS_TOKEN, OCI_PASSWORD, ...), and secret-named suite
    /// `vars` (as `--var` ones are).
    pub fn register_secrets(&self) {
        let cspo = self.management.iter().flat_map(|m| m.cspo.iter()).flat_map(|c| c.variables.iter());
        for (k, v) in cspo.chain(&self.vars) {
            if crate::redact::is_secret_name(k) {
                crate::redact::add(v);
            }
        }
        for (k, v) in self.openstack.iter().flat_map(|o| o.cluster_variables.iter()) {
            if let Some(v) = v.as_str().filter(|_| crate::redact::is_secret_name(k)) {
                crate::redact::add(v);
            }
        }
    }
}

/// An error about a value read from the config file at `path`, pointing at its line.
pub fn error_at(path: &Path, at: &Spanned<String>, message: impl Into<String>) -> InputError {
    let e = InputError::new(message).in_file(path.display().to_string());
    match std::fs::read_to_string(path) {
        Ok(text) => e.at(&text, at.referenced.line(), at.referenced.column()),
        Err(_) => e,
    }
}

/// Reads a config file and checks its apiVersion, kind, interval names and `parallel`.
pub fn load_config(path: &Path) -> Result<ConfigFile, InputError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(format!("cannot read config: {e}; check the --config path")).in_file(&file))?;
    let cfg: ConfigFile = serde_saphyr::from_str(&text).map_err(|e| InputError::from_yaml(&e, &file, &text))?;
    let loc = |s: &Spanned<String>| (s.referenced.line(), s.referenced.column());
    if cfg.api_version.value != API_VERSION {
        let (l, c) = loc(&cfg.api_version);
        return Err(InputError::new(format!(
            "apiVersion is `{}`; write `apiVersion: {API_VERSION}`",
            cfg.api_version.value
        ))
        .in_file(&file)
        .at(&text, l, c));
    }
    if cfg.kind.value != "Config" {
        let (l, c) = loc(&cfg.kind);
        return Err(
            InputError::new(format!("kind is `{}`; a config file has `kind: Config`", cfg.kind.value))
                .in_file(&file)
                .at(&text, l, c),
        );
    }
    for k in cfg.intervals.keys() {
        if !is_interval_name(&k.value) {
            let (l, c) = loc(k);
            return Err(InputError::new(format!(
                "interval name `{}` must be lowercase letters, digits and dashes, like `wait-cluster`",
                k.value
            ))
            .in_file(&file)
            .at(&text, l, c));
        }
    }
    if cfg.parallel == Some(0) {
        return Err(InputError::new("parallel: must be at least 1").in_file(&file));
    }
    Ok(cfg)
}

/// Where `--env kind` gets its images: `pull` the published ones (kindest/node and the
/// providers' registries), or `offline`: build them here first and never pull.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImagesMode {
    /// Pull the published images (default).
    #[default]
    Pull,
    /// Build the images here with `scs-e2e images build`, load them into the cluster, never pull.
    Offline,
}

impl FromStr for ImagesMode {
    type Err = crate::error::Invalid;
    fn from_str(s: &str) -> Result<ImagesMode, crate::error::Invalid> {
        match s {
            "pull" => Ok(ImagesMode::Pull),
            "offline" => Ok(ImagesMode::Offline),
            _ => Err(format!(
                "unknown images mode `{s}`: use `pull` (published images) or `offline` (built here by `scs-e2e images build`, never pulled)"
            )
            .into()),
        }
    }
}

/// Whether an existing management cluster gets Cluster API, the provider and CSO installed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InstallPolicy {
    /// Install into a bare cluster, use a complete one as it is, refuse a partial one.
    #[default]
    Auto,
    /// Install everything, whatever is there already.
    Always,
    /// Never install: the cluster must have all of them already.
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_the_config_file_are_masked_from_the_moment_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(
            &path,
            "apiVersion: scs-e2e/v1alpha1\nkind: Config\nvars: {REGISTRY_TOKEN: canary-var-token-9a0c, STACK: canary-stack-visible}\nmanagement:\n  cspo:\n    variables:\n      GIT_ORG_NAME: canary-org-visible\n      GIT_ACCESS_TOKEN: canary-cspo-git-7f3a\n      OCI_PASSWORD: canary-cspo-oci-0b9e\nopenstack:\n  clusterVariables: {ssh_private_key: canary-ssh-key-55d1, worker_flavor: canary-flavor-visible}\n",
        )
        .unwrap();
        let text = "a canary-cspo-git-7f3a b canary-cspo-oci-0b9e c canary-ssh-key-55d1 d canary-org-visible e canary-flavor-visible f canary-var-token-9a0c g canary-stack-visible";
        assert_eq!(crate::redact::apply(text), text, "nothing registered before the file is read");
        Settings::from_file(Some(&path)).unwrap();
        assert_eq!(
            crate::redact::apply(text),
            "a *** b *** c *** d canary-org-visible e canary-flavor-visible f *** g canary-stack-visible"
        );
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode("canary-cspo-git-7f3a");
        assert_eq!(crate::redact::apply(&b64), "***", "the manifest's GIT_ACCESS_TOKEN_B64 form");
    }
}
