//! Installs the Cluster Stack Provider OpenStack (CSPO), the legacy provider that imports
//! node images for `noProvider: false` stacks: its release manifest with the `${VAR:=default}`
//! variables filled in (as drone/envsubst would; the GNU one cannot), the manager's flags for an
//! import timeout and OCI sources, and without the kube-rbac-proxy sidecar, whose image
//! (gcr.io/kubebuilder/kube-rbac-proxy) is no longer served.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use serde_json::Value;

/// The CSPO release installed when the config names no version or manifest.
pub const VERSION: &str = "v0.1.0-alpha.6";
/// The namespace CSPO's release manifest installs it into.
pub const NAMESPACE: &str = "cspo-system";

/// The GitHub release URL of CSPO's infrastructure-components manifest for `version`.
pub fn manifest_url(version: &str) -> String {
    format!(
        "https://github.com/SovereignCloudStack/cluster-stack-provider-openstack/releases/download/{version}/cspo-infrastructure-components.yaml"
    )
}

/// The variables the manifest takes (each `<NAME>_B64`), given in plain text.
pub const VARIABLES: &[&str] = &[
    "GIT_PROVIDER",
    "GIT_ORG_NAME",
    "GIT_REPOSITORY_NAME",
    "GIT_ACCESS_TOKEN",
    "OCI_REGISTRY",
    "OCI_REPOSITORY",
    "OCI_ACCESS_TOKEN",
    "OCI_USERNAME",
    "OCI_PASSWORD",
];

/// How CSPO is installed: which manifest, and what goes into its variables and flags.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Manifest file or URL.
    pub manifest: String,
    /// Plain values of [`VARIABLES`]; the manifest gets them base64-encoded.
    pub variables: BTreeMap<String, String>,
    /// Minutes an image import may take before CSPO marks it failed (CSPO's default 0 waits
    /// forever).
    pub import_timeout_minutes: Option<u32>,
}

/// `${NAME}` and `${NAME:=default}` replaced from `vars`; unknown names take their default (or
/// nothing). Anything else is left as it is.
pub fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[i..]);
            return out;
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":=") {
            Some((n, d)) => (n, Some(d.trim_matches('"'))),
            None => (inner, None),
        };
        let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if valid {
            out.push_str(vars.get(name).map(String::as_str).or(default).unwrap_or(""));
        } else {
            out.push_str(&rest[i..i + 2 + end + 1]);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The documents of the manifest, filled in and adjusted; errors name the problem.
pub fn render(manifest: &str, s: &Settings) -> Result<Vec<Value>, String> {
    let mut vars = BTreeMap::new();
    for (k, v) in &s.variables {
        if !VARIABLES.contains(&k.as_str()) {
            return Err(format!(
                "management.cspo.variables: unknown `{k}` (known: {})",
                VARIABLES.join(", ")
            ));
        }
        vars.insert(format!("{k}_B64"), base64::engine::general_purpose::STANDARD.encode(v));
    }
    let text = substitute(manifest, &vars);
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).map_err(|e| format!("the CSPO manifest is not YAML: {e}"))?;
    let mut docs: Vec<Value> = docs.into_iter().filter(|d| d.is_object()).collect();
    let oci = s.variables.contains_key("OCI_REGISTRY");
    let mut found = false;
    for d in docs.iter_mut().filter(|d| d["kind"] == "Deployment") {
        let Some(containers) = d.pointer_mut("/spec/template/spec/containers").and_then(Value::as_array_mut) else {
            continue;
        };
        containers.retain(|c| c["name"] != "kube-rbac-proxy");
        for c in containers.iter_mut().filter(|c| c["name"] == "manager") {
            found = true;
            let args = c
                .as_object_mut()
                .expect("a container is a map")
                .entry("args")
                .or_insert_with(|| Value::Array(Vec::new()));
            let Some(args) = args.as_array_mut() else { continue };
            args.retain(|a| {
                let a = a.as_str().unwrap_or_default();
                !a.starts_with("--image-import-timeout") && !a.starts_with("--source") && !a.starts_with("--metrics-bind-address")
            });
            // The proxy that fronted the metrics is gone; the manager serves them itself.
            args.push(Value::from("--metrics-bind-address=:8080"));
            if let Some(m) = s.import_timeout_minutes {
                args.push(Value::from(format!("--image-import-timeout={m}")));
            }
            if oci {
                args.push(Value::from("--source=oci"));
            }
        }
    }
    if !found {
        return Err("the CSPO manifest has no Deployment with a `manager` container".into());
    }
    Ok(docs)
}

/// Why the CSPO manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL could not be fetched, or answered with an error status.
    #[error("fetching {url}: {detail}")]
    Http {
        /// The manifest's URL.
        url: String,
        /// The request's error, or `HTTP <status>`.
        detail: String,
    },
    /// The manifest file could not be read.
    #[error("{path}: {source}")]
    File {
        /// The manifest's path.
        path: String,
        /// The read error.
        source: std::io::Error,
    },
}

/// Reads the manifest from a file or URL.
pub async fn fetch(manifest: &str) -> Result<String, FetchError> {
    let http = |detail: String| FetchError::Http {
        url: manifest.to_string(),
        detail,
    };
    if manifest.starts_with("https://") || manifest.starts_with("http://") {
        let r = reqwest::get(manifest).await.map_err(|e| http(e.to_string()))?;
        if !r.status().is_success() {
            return Err(http(format!("HTTP {}", r.status())));
        }
        r.text().await.map_err(|e| http(e.to_string()))
    } else {
        std::fs::read_to_string(Path::new(manifest)).map_err(|source| FetchError::File {
            path: manifest.to_string(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"apiVersion: v1
kind: Namespace
metadata: {name: cspo-system}
---
apiVersion: v1
kind: Secret
metadata: {name: cspo-cluster-stack-variables, namespace: cspo-system}
data:
  git-provider: ${GIT_PROVIDER_B64:=""}
  git-org-name: ${GIT_ORG_NAME_B64:=""}
  oci-registry: ${OCI_REGISTRY_B64:=""}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cspo-controller-manager, namespace: cspo-system}
spec:
  template:
    spec:
      containers:
        - name: kube-rbac-proxy
          image: gcr.io/kubebuilder/kube-rbac-proxy:v0.15.0
        - name: manager
          image: ghcr.io/sovereigncloudstack/cspo:v0.1.0-alpha.6
          args: [--health-probe-bind-address=:8081, --metrics-bind-address=127.0.0.1:8080, --leader-elect]
"#;

    #[test]
    fn variables_are_encoded_and_defaults_kept() {
        let vars = BTreeMap::from([("A_B64".to_string(), "eA==".to_string())]);
        assert_eq!(
            substitute(r#"a: ${A_B64:=""} b: ${B:=x} c: ${C} d: ${not a var} $HOME"#, &vars),
            "a: eA== b: x c:  d: ${not a var} $HOME"
        );
        let s = Settings {
            variables: BTreeMap::from([
                ("GIT_PROVIDER".to_string(), "github".to_string()),
                ("GIT_ORG_NAME".to_string(), "SovereignCloudStack".to_string()),
            ]),
            import_timeout_minutes: Some(30),
            ..Default::default()
        };
        let docs = render(MANIFEST, &s).unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[1]["data"]["git-provider"], "Z2l0aHVi");
        assert_eq!(docs[1]["data"]["git-org-name"], "U292ZXJlaWduQ2xvdWRTdGFjaw==");
        // Empty, as the release's `${...:=""}` defaults say.
        assert!(docs[1]["data"]["oci-registry"].is_null() || docs[1]["data"]["oci-registry"] == "");
        let containers = docs[2]["spec"]["template"]["spec"]["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1, "the kube-rbac-proxy sidecar is dropped");
        assert_eq!(
            containers[0]["args"],
            serde_json::json!([
                "--health-probe-bind-address=:8081",
                "--leader-elect",
                "--metrics-bind-address=:8080",
                "--image-import-timeout=30"
            ])
        );
    }

    #[test]
    fn oci_sources_and_bad_settings() {
        let s = Settings {
            variables: BTreeMap::from([("OCI_REGISTRY".to_string(), "registry.scs.community".to_string())]),
            ..Default::default()
        };
        let docs = render(MANIFEST, &s).unwrap();
        let args = &docs[2]["spec"]["template"]["spec"]["containers"][0]["args"];
        assert!(args.as_array().unwrap().iter().any(|a| a == "--source=oci"), "{args}");
        let bad = Settings {
            variables: BTreeMap::from([("GIT_TOKEN".to_string(), "x".to_string())]),
            ..Default::default()
        };
        assert!(render(MANIFEST, &bad).unwrap_err().contains("unknown `GIT_TOKEN`"));
        assert!(
            render("kind: ConfigMap\n", &Settings::default())
                .unwrap_err()
                .contains("no Deployment")
        );
    }
}
