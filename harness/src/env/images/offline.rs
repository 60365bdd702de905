//! Offline management-cluster manifests: a clusterctl local repository, cert-manager and the CSO
//! chart, referencing exactly the images `scs-e2e images build` tags.
//!
//! Everything is rendered from the pinned Go modules' own sources, the way each project makes its
//! release: Cluster API's providers from `config/default` with `kubectl kustomize` (the release's
//! `kustomize build`), images set to the release names and pulled `IfNotPresent` (the release's
//! `manifest-modification`), clusterctl's `${VAR:=default}` placeholders kept; cert-manager from
//! the chart in its module with `helm template` (the release's `cert-manager.yaml`); CSO as a
//! chart wrapping its `config/default`. `lab install` copies only CRDs and webhooks out of the
//! modules, so the whole `config/` trees come from the Go module cache: [`Modules::download`]
//! runs `go mod download -json` in the lab's wrapper modules (fetching a missing module zip,
//! checked against the wrapper's `go.sum`).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::env::mgmt::{LocalProvider, ProviderKind};

// The versions offline images are built and rendered as: the management cluster's pins.
use crate::env::mgmt::{CAPI_VERSION, CERT_MANAGER_VERSION, CSO_VERSION};
/// The namespace cert-manager is rendered into.
pub const CERT_MANAGER_NAMESPACE: &str = "cert-manager";
/// CAPD's default load balancer (`test/infrastructure/docker/internal/loadbalancer`). CAPD starts
/// it through the engine's socket, so it belongs in the engine, not in the kind node.
pub const HAPROXY_IMAGE: &str = "kindest/haproxy:v20230606-42a2262b";

/// An image as its project's release manifests name it, and the repository names (last path
/// element) its sources use for it before the release rewrites them.
#[derive(Clone, Copy, Debug)]
pub struct ReleaseImage {
    /// The release's repository (`registry.k8s.io/cluster-api/cluster-api-controller`).
    pub repository: &'static str,
    /// The release's tag (the pinned version).
    pub tag: &'static str,
    /// Repository names (last path element) the sources' manifests use for this image.
    pub source_names: &'static [&'static str],
}

impl ReleaseImage {
    /// `<repository>:<tag>`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }
}

/// Cluster API v1.10.10's release images (Makefile `manifest-modification`: `PROD_REGISTRY`),
/// CAPD's development image (`manifest-modification-dev`: `STAGING_REGISTRY`), and CSO's
/// (`release-manifests`: `IMAGE_PREFIX/cso`).
pub static RELEASE_IMAGES: &[ReleaseImage] = &[
    ReleaseImage {
        repository: "registry.k8s.io/cluster-api/cluster-api-controller",
        tag: CAPI_VERSION,
        source_names: &["cluster-api-controller"],
    },
    ReleaseImage {
        repository: "registry.k8s.io/cluster-api/kubeadm-bootstrap-controller",
        tag: CAPI_VERSION,
        source_names: &["kubeadm-bootstrap-controller"],
    },
    ReleaseImage {
        repository: "registry.k8s.io/cluster-api/kubeadm-control-plane-controller",
        tag: CAPI_VERSION,
        source_names: &["kubeadm-control-plane-controller"],
    },
    ReleaseImage {
        repository: "gcr.io/k8s-staging-cluster-api/capd-manager",
        tag: CAPI_VERSION,
        source_names: &["capd-manager"],
    },
    ReleaseImage {
        repository: "ghcr.io/sovereigncloudstack/cso",
        tag: CSO_VERSION,
        source_names: &["cso-staging", "cso"],
    },
];

// The wrapper modules pinning the sources (the lab's, and the one cert-manager's images are
// built from).
const CAPI_GO_MOD: &str = include_str!("../../../../fixtures/lab/capi/go.mod");
const CAPI_GO_SUM: &str = include_str!("../../../../fixtures/lab/capi/go.sum");
const CSO_GO_MOD: &str = include_str!("../../../../fixtures/lab/cso/go.mod");
const CSO_GO_SUM: &str = include_str!("../../../../fixtures/lab/cso/go.sum");
const CERT_MANAGER_GO_MOD: &str = include_str!("../../../../fixtures/images/cert-manager/go.mod");
const CERT_MANAGER_GO_SUM: &str = include_str!("../../../../fixtures/images/cert-manager/go.sum");

/// Why the offline manifests could not be made.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// A tool (`go`, `kubectl`, `helm`) failed or did not give what was asked.
    #[error("`{tool} {args}` failed: {detail}")]
    Tool {
        /// The program.
        tool: String,
        /// Its arguments, space-separated.
        args: String,
        /// The last lines of its stderr, or what was missing.
        detail: String,
    },
    /// A tool's output or a module's sources were not what rendering expects.
    #[error("{0}")]
    Render(String),
    /// A file or process operation failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Source directories of the pinned modules in the Go module cache.
#[derive(Clone, Debug)]
pub struct Modules {
    /// `sigs.k8s.io/cluster-api` (core, kubeadm bootstrap and control plane, `metadata.yaml`).
    pub capi: PathBuf,
    /// `sigs.k8s.io/cluster-api/test` (CAPD in `infrastructure/docker`).
    pub capi_test: PathBuf,
    /// `github.com/SovereignCloudStack/cluster-stack-operator` (CSO's `config/`).
    pub cso: PathBuf,
    /// `github.com/cert-manager/cert-manager` (its Helm chart).
    pub cert_manager: PathBuf,
}

impl Modules {
    /// Writes the wrapper modules under `work` and asks `go mod download -json` for each
    /// module's directory (downloading what the module cache lacks).
    pub fn download(go: &Path, work: &Path) -> Result<Modules, OfflineError> {
        let capi = download(
            go,
            &work.join("capi"),
            CAPI_GO_MOD,
            CAPI_GO_SUM,
            &["sigs.k8s.io/cluster-api", "sigs.k8s.io/cluster-api/test"],
        )?;
        let cso = download(
            go,
            &work.join("cso"),
            CSO_GO_MOD,
            CSO_GO_SUM,
            &["github.com/SovereignCloudStack/cluster-stack-operator"],
        )?;
        let cm = download(
            go,
            &work.join("cert-manager"),
            CERT_MANAGER_GO_MOD,
            CERT_MANAGER_GO_SUM,
            &["github.com/cert-manager/cert-manager"],
        )?;
        let mut it = capi.into_iter().chain(cso).chain(cm);
        let mut next = || it.next().expect("one directory per module asked for");
        Ok(Modules {
            capi: next(),
            capi_test: next(),
            cso: next(),
            cert_manager: next(),
        })
    }
}

fn download(go: &Path, dir: &Path, go_mod: &str, go_sum: &str, modules: &[&str]) -> Result<Vec<PathBuf>, OfflineError> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("go.mod"), go_mod)?;
    std::fs::write(dir.join("go.sum"), go_sum)?;
    let mut args = vec!["mod", "download", "-json"];
    args.extend(modules);
    // As an OsStr, a bare `go` is looked up on PATH (duct runs a relative Path from `dir`).
    let out = duct::cmd(go.as_os_str(), &args)
        .dir(dir)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut dirs = std::collections::BTreeMap::new();
    for v in serde_json::Deserializer::from_str(&text).into_iter::<Value>() {
        let v = v.map_err(|e| OfflineError::Render(format!("`go mod download -json` output: {e}")))?;
        let path = v["Path"].as_str().unwrap_or_default().to_string();
        match (v["Dir"].as_str(), v["Error"].as_str()) {
            (Some(d), None) if !d.is_empty() => {
                dirs.insert(path, PathBuf::from(d));
            }
            (_, e) => {
                return Err(OfflineError::Tool {
                    tool: "go".into(),
                    args: args.join(" "),
                    detail: format!("{path}: {}", e.unwrap_or("no directory")),
                });
            }
        }
    }
    modules
        .iter()
        .map(|m| {
            dirs.remove(*m).ok_or_else(|| OfflineError::Tool {
                tool: "go".into(),
                args: args.join(" "),
                detail: format!("no directory for {m}: {}", String::from_utf8_lossy(&out.stderr).trim()),
            })
        })
        .collect()
}

/// The programs rendering takes.
#[derive(Clone, Debug)]
pub struct Tools {
    /// `kubectl` (its `kustomize` renders the providers' and CSO's `config/default`).
    pub kubectl: PathBuf,
    /// `helm` (`helm template` renders cert-manager and the CSO chart).
    pub helm: PathBuf,
}

/// What [`write`] made.
#[derive(Clone, Debug)]
pub struct Offline {
    /// `clusterctl init --config` this: the four providers and cert-manager from local files.
    pub clusterctl_config: PathBuf,
    /// cert-manager's manifest, rendered from its chart, in the local repository.
    pub cert_manager_manifest: PathBuf,
    /// `helm upgrade -i cso -n cso-system <this>`.
    pub cso_chart: PathBuf,
    /// Every `image:` of every rendered manifest (sorted, once each): what must be in the node.
    pub images: Vec<String>,
}

/// Writes the clusterctl local repository (`<dir>/repository`, its `clusterctl.yaml` with the
/// `cert-manager:` section) and the CSO chart (`<dir>/charts/cso`).
pub fn write(dir: &Path, modules: &Modules, tools: &Tools) -> Result<Offline, OfflineError> {
    let repo = dir.join("repository");
    let providers = capi_providers(modules, &tools.kubectl)?;
    let mut rendered: Vec<String> = providers.iter().map(|p| p.components.clone()).collect();
    let config = crate::env::mgmt::write_local_repository(&repo, &providers)?;

    let work = dir.join(".work");
    let cert_manager = cert_manager_manifest(modules, &tools.helm, &work)?;
    let manifest = repo.join("cert-manager").join(CERT_MANAGER_VERSION).join("cert-manager.yaml");
    std::fs::create_dir_all(manifest.parent().expect("has a parent"))?;
    std::fs::write(&manifest, &cert_manager)?;
    rendered.push(cert_manager);
    let mut text = std::fs::read_to_string(&config)?;
    text.push_str(&cert_manager_config(&manifest, CERT_MANAGER_VERSION));
    std::fs::write(&config, text)?;

    let chart = write_cso_chart(&dir.join("charts"), modules, &tools.kubectl)?;
    rendered.push(run(&tools.helm, &["template".as_ref(), "cso".as_ref(), chart.as_os_str()], None)?);
    let _ = std::fs::remove_dir_all(&work);

    let mut all = Vec::new();
    for r in &rendered {
        all.extend(images(r)?);
    }
    all.sort();
    all.dedup();
    Ok(Offline {
        clusterctl_config: config,
        cert_manager_manifest: manifest,
        cso_chart: chart,
        images: all,
    })
}

/// Cluster API's core, kubeadm bootstrap and control plane, and CAPD at [`CAPI_VERSION`], from
/// the modules' `config/default`, with the release images.
pub fn capi_providers(modules: &Modules, kubectl: &Path) -> Result<Vec<LocalProvider>, OfflineError> {
    let metadata = std::fs::read_to_string(modules.capi.join("metadata.yaml"))?;
    let p = |name: &str, kind, src: PathBuf| -> Result<LocalProvider, OfflineError> {
        Ok(LocalProvider {
            name: name.into(),
            kind,
            version: CAPI_VERSION.into(),
            components: rewrite_images(&kustomize(kubectl, &src)?, RELEASE_IMAGES),
            metadata: metadata.clone(),
        })
    };
    Ok(vec![
        p("cluster-api", ProviderKind::Core, modules.capi.join("config/default"))?,
        p(
            "kubeadm",
            ProviderKind::Bootstrap,
            modules.capi.join("bootstrap/kubeadm/config/default"),
        )?,
        p(
            "kubeadm",
            ProviderKind::ControlPlane,
            modules.capi.join("controlplane/kubeadm/config/default"),
        )?,
        p(
            "docker",
            ProviderKind::Infrastructure,
            modules.capi_test.join("infrastructure/docker/config/default"),
        )?,
    ])
}

/// cert-manager's static manifest as its release makes `cert-manager.yaml`: the chart in its
/// module (`deploy/charts/cert-manager`, its `Chart.template.yaml` given the version) through
/// `helm template --set crds.enabled=true --set creator=static --set startupapicheck.enabled=false`
/// (for the lab's Kubernetes version),
/// after the namespace and with the CRDs first. `work` is scratch space.
pub fn cert_manager_manifest(modules: &Modules, helm: &Path, work: &Path) -> Result<String, OfflineError> {
    let src = modules.cert_manager.join("deploy/charts/cert-manager");
    let chart = work.join("cert-manager");
    let _ = std::fs::remove_dir_all(&chart);
    copy_dir(&src, &chart)?;
    let template = std::fs::read_to_string(src.join("Chart.template.yaml"))?;
    std::fs::write(chart.join("Chart.yaml"), chart_yaml(&template, CERT_MANAGER_VERSION)?)?;
    let out = run(
        helm,
        &[
            "template".as_ref(),
            "--api-versions=".as_ref(),
            // The management cluster's (a helm built without its release's ldflags assumes 1.20,
            // below the chart's kubeVersion).
            "--kube-version".as_ref(),
            crate::env::lab::build::KUBERNETES_VERSION.as_ref(),
            "--namespace".as_ref(),
            CERT_MANAGER_NAMESPACE.as_ref(),
            "--set".as_ref(),
            "crds.enabled=true".as_ref(),
            "--set".as_ref(),
            "creator=static".as_ref(),
            "--set".as_ref(),
            "startupapicheck.enabled=false".as_ref(),
            "cert-manager".as_ref(),
            chart.as_os_str(),
        ],
        None,
    )?;
    let namespace = std::fs::read_to_string(modules.cert_manager.join("deploy/manifests/namespace.yaml"))?;
    let (crds, rest): (Vec<&str>, Vec<&str>) = split_docs(&out).partition(|d| kind_of(d) == Some("CustomResourceDefinition"));
    let mut docs = vec![namespace.trim_end()];
    docs.extend(crds);
    docs.extend(rest);
    Ok(docs.join("\n---\n") + "\n")
}

/// The chart's `Chart.yaml` from cert-manager's `Chart.template.yaml` (what its release's `yq`
/// does: version, appVersion, not a prerelease).
pub fn chart_yaml(template: &str, version: &str) -> Result<String, OfflineError> {
    let mut seen = 0;
    let text: Vec<String> = template
        .lines()
        .map(|l| {
            if l.starts_with("version:") {
                seen += 1;
                format!("version: {version}")
            } else if l.starts_with("appVersion:") {
                seen += 1;
                format!("appVersion: {version}")
            } else {
                l.replace("\"{{IS_PRERELEASE}}\"", "\"false\"")
            }
        })
        .collect();
    if seen != 2 {
        return Err(OfflineError::Render(
            "cert-manager's Chart.template.yaml has no top-level version and appVersion".into(),
        ));
    }
    Ok(text.join("\n") + "\n")
}

/// clusterctl's `cert-manager:` section: install this version from this file (a local
/// repository path, `.../cert-manager/<version>/cert-manager.yaml`), never from GitHub.
pub fn cert_manager_config(manifest: &Path, version: &str) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("strings serialize");
    format!(
        "cert-manager:\n  url: {}\n  version: {}\n",
        q(&manifest.display().to_string()),
        q(version)
    )
}

/// CSO's chart wrapping its module's `config/default` (the published chart lives in a registry),
/// with the release image: `<dir>/cso`. `Files.Get` keeps the CRDs' `{{ }}` text from being
/// templated; the Secret of CSO's variables is templated from the values as in the published
/// chart (`clusterStackVariables.ociRepository`); the namespace is helm's (`--create-namespace`).
pub fn write_cso_chart(dir: &Path, modules: &Modules, kubectl: &Path) -> Result<PathBuf, OfflineError> {
    let all = rewrite_images(&kustomize(kubectl, &modules.cso.join("config/default"))?, RELEASE_IMAGES);
    let (plain, secret) = cso_chart_files(&all)?;
    let chart = dir.join("cso");
    let _ = std::fs::remove_dir_all(&chart);
    std::fs::create_dir_all(chart.join("templates"))?;
    std::fs::create_dir_all(chart.join("files"))?;
    let v = CSO_VERSION.trim_start_matches('v');
    std::fs::write(
        chart.join("Chart.yaml"),
        format!(
            "apiVersion: v2\nname: cso\nversion: {v}\nappVersion: {CSO_VERSION}\ndescription: The Cluster Stack Operator from its module's config/default (scs-e2e)\n"
        ),
    )?;
    std::fs::write(chart.join("values.yaml"), "clusterStackVariables:\n  ociRepository: \"\"\n")?;
    std::fs::write(chart.join("files/cso.yaml"), plain)?;
    std::fs::write(chart.join("templates/cso.yaml"), "{{ .Files.Get \"files/cso.yaml\" }}\n")?;
    std::fs::write(chart.join("templates/secret.yaml"), secret)?;
    Ok(chart)
}

/// CSO's kustomized `config/default` as the chart's two parts: every document but the Namespace
/// and the variables Secret (served as is), and that Secret as a template (the OCI repository
/// from the values, every other `${VAR...}` empty).
pub fn cso_chart_files(all: &str) -> Result<(String, String), OfflineError> {
    let (mut plain, mut secret) = (Vec::new(), None);
    for d in split_docs(all) {
        match kind_of(d) {
            Some("Namespace") => {}
            Some("Secret") if d.contains("${OCI_REPOSITORY_B64") => {
                secret = Some(
                    d.replace(
                        "${OCI_REPOSITORY_B64:=\"\"}",
                        "{{ .Values.clusterStackVariables.ociRepository | b64enc | quote }}",
                    )
                    .lines()
                    .map(|l| match l.find("${") {
                        Some(i) => format!("{}\"\"", &l[..i]),
                        None => l.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
                        + "\n",
                )
            }
            _ => plain.push(d),
        }
    }
    let secret = secret.ok_or_else(|| OfflineError::Render("CSO's config/default has no Secret of ${OCI_REPOSITORY_B64}".into()))?;
    Ok((plain.join("\n---\n") + "\n", secret))
}

/// Sets each `image:` whose repository's last path element is one of a release image's
/// `source_names` to that release image, and `imagePullPolicy: Always` to `IfNotPresent` (as the
/// releases do). Text in, text out: clusterctl's `${VAR:=default}` placeholders and the layout
/// stay as they are.
pub fn rewrite_images(yaml: &str, releases: &[ReleaseImage]) -> String {
    let mut out = String::with_capacity(yaml.len());
    for line in yaml.split_inclusive('\n') {
        let (body, eol) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        out.push_str(&rewrite_line(body, releases));
        out.push_str(eol);
    }
    out
}

fn rewrite_line(line: &str, releases: &[ReleaseImage]) -> String {
    let trimmed = line.trim_start();
    let indent = &line[..line.len() - trimmed.len()];
    let (dash, rest) = match trimmed.strip_prefix("- ") {
        Some(r) => ("- ", r.trim_start()),
        None => ("", trimmed),
    };
    if let Some(v) = rest.strip_prefix("imagePullPolicy:")
        && v.trim() == "Always"
    {
        return format!("{indent}{dash}imagePullPolicy: IfNotPresent");
    }
    let Some(v) = rest.strip_prefix("image:") else {
        return line.to_string();
    };
    let value = v.trim().trim_matches(|c| c == '"' || c == '\'');
    if value.is_empty() || value.contains(char::is_whitespace) {
        return line.to_string();
    }
    match releases.iter().find(|r| r.source_names.contains(&repository_name(value))) {
        Some(r) => format!("{indent}{dash}image: {}", r.reference()),
        None => line.to_string(),
    }
}

/// `registry/path/name:tag@digest` → `name`.
fn repository_name(image: &str) -> &str {
    let repo = image.split('@').next().unwrap_or(image);
    let last = repo.rsplit('/').next().unwrap_or(repo);
    last.split(':').next().unwrap_or(last)
}

/// Every `image:` string in the documents (CRDs aside: their schemas describe images, they run
/// none), sorted, once each.
pub fn images(yaml: &str) -> Result<Vec<String>, OfflineError> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(yaml).map_err(|e| OfflineError::Render(format!("rendered manifests are not YAML: {e}")))?;
    let mut found = Vec::new();
    for d in docs.iter().filter(|d| d["kind"] != "CustomResourceDefinition") {
        collect_images(d, &mut found);
    }
    found.sort();
    found.dedup();
    Ok(found)
}

fn collect_images(v: &Value, found: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("image", Value::String(s)) if !s.is_empty() => found.push(s.clone()),
                    _ => collect_images(v, found),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_images(v, found)),
        _ => {}
    }
}

/// The documents of a multi-document YAML text, without empty ones and leading `---`.
fn split_docs(yaml: &str) -> impl Iterator<Item = &str> {
    yaml.split("\n---")
        .map(|d| d.strip_prefix("---").unwrap_or(d))
        .map(|d| d.trim_start_matches('\n').trim_end())
        .filter(|d| d.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')))
}

/// A document's top-level `kind:` (text: the documents may hold placeholders).
fn kind_of(doc: &str) -> Option<&str> {
    doc.lines().find_map(|l| l.strip_prefix("kind:")).map(str::trim)
}

fn kustomize(kubectl: &Path, dir: &Path) -> Result<String, OfflineError> {
    run(kubectl, &["kustomize".as_ref(), dir.as_os_str()], None)
}

fn run(program: &Path, args: &[&std::ffi::OsStr], dir: Option<&Path>) -> Result<String, OfflineError> {
    let mut cmd = duct::cmd(program.as_os_str(), args).stdout_capture().stderr_capture().unchecked();
    if let Some(d) = dir {
        cmd = cmd.dir(d);
    }
    let out = cmd.run()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(OfflineError::Tool {
            tool: program.display().to_string(),
            args: args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "),
            detail: tail.join("\n"),
        });
    }
    String::from_utf8(out.stdout).map_err(|e| OfflineError::Render(format!("{}: output is not UTF-8: {e}", program.display())))
}

/// A copy of a (read-only, module cache) directory tree whose copies we may change and remove.
fn copy_dir(src: &Path, dst: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dst)?;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o755))?;
    for e in std::fs::read_dir(src)? {
        let e = e?;
        let to = dst.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &to)?;
        } else {
            std::fs::copy(e.path(), &to)?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o644))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPI_DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: capi-controller-manager
  namespace: capi-system
spec:
  template:
    spec:
      containers:
      - args:
        - --feature-gates=ClusterTopology=${CLUSTER_TOPOLOGY:=false}
        image: gcr.io/k8s-staging-cluster-api/cluster-api-controller:main
        imagePullPolicy: Always
        name: manager
        env:
        - name: DOCKER_HOST
          value: ${CAPD_DOCKER_HOST:=""}
      - image: "registry.example/sidecar:v1"
        name: sidecar
"#;

    #[test]
    fn images_become_the_release_ones_pulled_if_not_present_and_placeholders_stay() {
        let out = rewrite_images(CAPI_DEPLOYMENT, RELEASE_IMAGES);
        assert!(
            out.contains("        image: registry.k8s.io/cluster-api/cluster-api-controller:v1.10.10\n"),
            "{out}"
        );
        assert!(out.contains("        imagePullPolicy: IfNotPresent\n"), "{out}");
        assert!(!out.contains("staging"), "{out}");
        // Others untouched, placeholders and layout kept.
        assert!(out.contains("      - image: \"registry.example/sidecar:v1\"\n"), "{out}");
        assert!(out.contains("${CLUSTER_TOPOLOGY:=false}") && out.contains("value: ${CAPD_DOCKER_HOST:=\"\"}"));
        assert_eq!(out.lines().count(), CAPI_DEPLOYMENT.lines().count());
        // A list item that is the image, CSO's staging name, a digest.
        let cso = "      containers:\n        - image: ghcr.io/sovereigncloudstack/cso-staging:dev\n          name: manager";
        assert!(rewrite_images(cso, RELEASE_IMAGES).contains("        - image: ghcr.io/sovereigncloudstack/cso:v0.1.0-alpha.7\n"));
        let d = "  image: 'gcr.io/k8s-staging-cluster-api/capd-manager@sha256:00'";
        assert_eq!(
            rewrite_images(d, RELEASE_IMAGES),
            "  image: gcr.io/k8s-staging-cluster-api/capd-manager:v1.10.10"
        );
        // A CRD's schema key is not an image.
        let schema = "            image:\n              type: string\n";
        assert_eq!(rewrite_images(schema, RELEASE_IMAGES), schema);
    }

    #[test]
    fn image_names_are_the_ones_the_upstream_releases_use() {
        let all: Vec<String> = RELEASE_IMAGES.iter().map(ReleaseImage::reference).collect();
        assert_eq!(
            all,
            [
                "registry.k8s.io/cluster-api/cluster-api-controller:v1.10.10",
                "registry.k8s.io/cluster-api/kubeadm-bootstrap-controller:v1.10.10",
                "registry.k8s.io/cluster-api/kubeadm-control-plane-controller:v1.10.10",
                "gcr.io/k8s-staging-cluster-api/capd-manager:v1.10.10",
                "ghcr.io/sovereigncloudstack/cso:v0.1.0-alpha.7",
            ]
        );
        assert_eq!(
            repository_name("quay.io/jetstack/cert-manager-webhook:v1.19.1"),
            "cert-manager-webhook"
        );
        assert_eq!(repository_name("localhost:5000/cso"), "cso");
    }

    #[test]
    fn images_are_read_from_every_workload_but_not_from_crd_schemas() {
        let yaml = format!(
            "{}---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: x}}\nspec:\n  default: {{image: not/me:1}}\n---\n\n---\napiVersion: batch/v1\nkind: Job\nspec:\n  template:\n    spec:\n      initContainers: [{{name: i, image: busybox:1}}]\n      containers: [{{name: c, image: busybox:1}}]\n",
            CAPI_DEPLOYMENT
        );
        assert_eq!(
            images(&yaml).unwrap(),
            [
                "busybox:1",
                "gcr.io/k8s-staging-cluster-api/cluster-api-controller:main",
                "registry.example/sidecar:v1"
            ]
        );
        assert!(images("a: [").is_err());
    }

    #[test]
    fn cert_manager_comes_from_the_local_file_at_its_version() {
        let s = cert_manager_config(Path::new("/r/cert-manager/v1.19.1/cert-manager.yaml"), CERT_MANAGER_VERSION);
        assert_eq!(
            s,
            "cert-manager:\n  url: \"/r/cert-manager/v1.19.1/cert-manager.yaml\"\n  version: \"v1.19.1\"\n"
        );
        let v: Value = serde_saphyr::from_str(&s).unwrap();
        assert_eq!(v["cert-manager"]["version"], "v1.19.1");
    }

    #[test]
    fn cert_managers_chart_template_gets_the_version() {
        let t = "apiVersion: v2\nname: cert-manager\nannotations:\n  artifacthub.io/prerelease: \"{{IS_PRERELEASE}}\"\n# The version and appVersion fields are set automatically by the release tool\nversion: v0.0.0\nappVersion: v0.0.0\n";
        let c = chart_yaml(t, "v1.19.1").unwrap();
        assert!(c.contains("\nversion: v1.19.1\nappVersion: v1.19.1\n"), "{c}");
        assert!(c.contains("prerelease: \"false\""), "{c}");
        assert!(chart_yaml("name: x\n", "v1").is_err());
    }

    #[test]
    fn csos_config_splits_into_served_documents_and_the_templated_secret() {
        let all = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: cso-system\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: cso-cluster-stack-variables\ndata:\n  git-provider: ${GIT_PROVIDER_B64:=\"\"}\n  oci-repository: ${OCI_REPOSITORY_B64:=\"\"}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: cso-controller-manager\n";
        let (plain, secret) = cso_chart_files(all).unwrap();
        assert_eq!(
            plain,
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: cso-controller-manager\n"
        );
        assert!(secret.contains("  git-provider: \"\"\n"), "{secret}");
        assert!(
            secret.contains("  oci-repository: {{ .Values.clusterStackVariables.ociRepository | b64enc | quote }}\n"),
            "{secret}"
        );
        assert!(cso_chart_files("kind: Deployment\n").is_err());
    }
}
