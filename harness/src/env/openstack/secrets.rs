//! What openstack-csp-helper creates, natively: the cloud's credentials for Cluster API's
//! OpenStack provider in the management cluster, and — through a ClusterResourceSet — the
//! `kube-system/cloud-config` Secret (`cloud.conf`) the workload clusters' cloud controller
//! manager and Cinder CSI read.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{Value, json};

use super::clouds::{AuthKind, Cloud};

/// The label workload clusters carry to receive the cloud-config Secret.
pub const MANAGED_SECRET_LABEL: &str = "managed-secret";

/// Names the stacks expect: `openstack/scs` uses Secret `<cloud>` and label value
/// `cloud-config`; `scs2` uses Secret `openstack` and `clouds-yaml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Naming {
    /// Name of the management-cluster credentials Secret (holds `clouds.yaml`, `cloudName`, `cacert`).
    pub secret: String,
    /// Value of the `managed-secret` label that makes a workload cluster match the ClusterResourceSet.
    pub label_value: String,
    /// scs2 hands workload clusters `kube-system/clouds-yaml` (key `clouds.yaml`) through the
    /// ClusterResourceSet `clouds-yaml`; scs hands them `kube-system/cloud-config` (`cloud.conf`)
    /// through `crs-<cloud>-secret`.
    pub scs2: bool,
}

impl Naming {
    /// The `openstack/scs` naming: Secret named after the cloud, label value `cloud-config`.
    pub fn scs(cloud: &str) -> Naming {
        Naming {
            secret: cloud.to_string(),
            label_value: "cloud-config".into(),
            scs2: false,
        }
    }
    /// The `scs2` naming: Secret `openstack`, label value `clouds-yaml`.
    pub fn scs2() -> Naming {
        Naming {
            secret: "openstack".into(),
            label_value: "clouds-yaml".into(),
            scs2: true,
        }
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// `clouds.yaml` with just this cloud (secrets merged in): what CAPO's `identityRef` reads.
pub fn clouds_yaml(cloud: &Cloud) -> String {
    let doc = json!({"clouds": {cloud.name.clone(): cloud.raw.0.clone()}});
    serde_json::to_string_pretty(&doc).expect("serializes")
}

/// The `[Global]` section of the OpenStack cloud provider's `cloud.conf`.
pub fn cloud_conf(cloud: &Cloud, cacert_in_cluster: Option<&str>) -> String {
    let a = &cloud.auth;
    let mut lines = vec!["[Global]".to_string(), format!("auth-url={}", a.auth_url)];
    let mut opt = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            lines.push(format!("{k}={v}"));
        }
    };
    match cloud.kind {
        AuthKind::ApplicationCredential => {
            opt("application-credential-id", &a.application_credential_id);
            opt("application-credential-name", &a.application_credential_name);
            opt("application-credential-secret", &a.application_credential_secret);
            opt("username", &a.username);
            opt("user-domain-name", &a.user_domain_name);
        }
        AuthKind::Password => {
            opt("username", &a.username);
            opt("user-id", &a.user_id);
            opt("password", &a.password);
            opt("tenant-name", &a.project_name);
            opt("tenant-id", &a.project_id);
            opt("domain-name", &a.user_domain_name);
            opt("domain-id", &a.user_domain_id);
            opt("tenant-domain-name", &a.project_domain_name);
            opt("tenant-domain-id", &a.project_domain_id);
        }
    }
    opt("region", &cloud.region);
    if let Some(ca) = cacert_in_cluster {
        lines.push(format!("ca-file={ca}"));
    }
    if !cloud.verify {
        lines.push("tls-insecure=true".into());
    }
    lines.push(String::new());
    lines.join("\n")
}

/// The management-cluster objects, in apply order: the credentials Secret, the resource-set
/// Secret carrying `kube-system/cloud-config`, and the ClusterResourceSet.
pub fn objects(cloud: &Cloud, naming: &Naming, namespace: &str, cacert_pem: Option<&str>) -> Vec<Value> {
    const CA_PATH: &str = "/etc/config/cacert";
    let mut creds = BTreeMap::from([
        ("clouds.yaml".to_string(), b64(&clouds_yaml(cloud))),
        ("cloudName".to_string(), b64(&cloud.name)),
    ]);
    if let Some(ca) = cacert_pem {
        creds.insert("cacert".into(), b64(ca));
    }
    let (workload_name, mut workload_data) = if naming.scs2 {
        (
            "clouds-yaml",
            BTreeMap::from([("clouds.yaml".to_string(), b64(&clouds_yaml(cloud)))]),
        )
    } else {
        (
            "cloud-config",
            BTreeMap::from([("cloud.conf".to_string(), b64(&cloud_conf(cloud, cacert_pem.map(|_| CA_PATH))))]),
        )
    };
    if let Some(ca) = cacert_pem {
        workload_data.insert("cacert".into(), b64(ca));
    }
    let cloud_config = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": workload_name, "namespace": "kube-system"},
        "type": "Opaque",
        "data": workload_data,
    });
    let crs_name = if naming.scs2 {
        "clouds-yaml".to_string()
    } else {
        format!("crs-{}-secret", naming.secret)
    };
    let set_secret = format!("{}-workload-cluster-secret", naming.secret);
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": naming.secret, "namespace": namespace, "labels": {"clusterctl.cluster.x-k8s.io/move": "true"}},
            "type": "Opaque",
            "data": creds,
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": set_secret, "namespace": namespace},
            "type": "addons.cluster.x-k8s.io/resource-set",
            "data": {format!("{workload_name}.yaml"): b64(&serde_json::to_string_pretty(&cloud_config).expect("serializes"))},
        }),
        json!({
            "apiVersion": "addons.cluster.x-k8s.io/v1beta1",
            "kind": "ClusterResourceSet",
            "metadata": {"name": crs_name, "namespace": namespace},
            "spec": {
                "strategy": "Reconcile",
                "clusterSelector": {"matchLabels": {MANAGED_SECRET_LABEL: naming.label_value}},
                "resources": [{"kind": "Secret", "name": set_secret}],
            },
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::clouds::{Lookup, load};
    use super::*;

    fn cloud(text: &str, name: &str) -> Cloud {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("clouds.yaml"), text).unwrap();
        load(&Lookup {
            cloud: Some(name.into()),
            cwd: d.path().to_path_buf(),
            etc: d.path().join("none"),
            ..Default::default()
        })
        .unwrap()
    }

    const CLOUDS: &str = "clouds:\n  gx:\n    auth_type: v3applicationcredential\n    auth: {auth_url: 'https://api.example:5000/v3', application_credential_id: id1, application_credential_secret: canary-s3cr3t}\n    region_name: RegionA\n    verify: false\n  pw:\n    auth: {auth_url: 'https://api.example:5000/v3', username: alice, password: canary-pw, project_name: p1, user_domain_name: Default, project_domain_name: Default}\n";

    fn decode(v: &Value, key: &str) -> String {
        let s = v["data"][key].as_str().unwrap();
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).unwrap()).unwrap()
    }

    #[test]
    fn application_credentials_become_the_helpers_three_objects() {
        let c = cloud(CLOUDS, "gx");
        let objs = objects(&c, &Naming::scs("gx"), "ns1", Some("-----BEGIN CERTIFICATE-----\n"));
        let kinds: Vec<(&str, &str)> = objs
            .iter()
            .map(|o| (o["kind"].as_str().unwrap(), o["metadata"]["name"].as_str().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("Secret", "gx"),
                ("Secret", "gx-workload-cluster-secret"),
                ("ClusterResourceSet", "crs-gx-secret")
            ]
        );
        assert_eq!(decode(&objs[0], "cloudName"), "gx");
        let clouds: Value = serde_saphyr::from_str(&decode(&objs[0], "clouds.yaml")).unwrap();
        assert_eq!(clouds["clouds"]["gx"]["auth"]["application_credential_secret"], "canary-s3cr3t");
        assert_eq!(objs[1]["type"], "addons.cluster.x-k8s.io/resource-set");
        let inner: Value = serde_json::from_str(&decode(&objs[1], "cloud-config.yaml")).unwrap();
        assert_eq!(inner["metadata"], json!({"name": "cloud-config", "namespace": "kube-system"}));
        let conf = decode(&inner, "cloud.conf");
        assert!(conf.starts_with("[Global]\nauth-url=https://api.example:5000/v3\n"), "{conf}");
        for l in [
            "application-credential-id=id1",
            "application-credential-secret=canary-s3cr3t",
            "region=RegionA",
            "ca-file=/etc/config/cacert",
            "tls-insecure=true",
        ] {
            assert!(conf.lines().any(|x| x == l), "{l} in {conf}");
        }
        assert_eq!(objs[2]["spec"]["clusterSelector"]["matchLabels"]["managed-secret"], "cloud-config");
        assert_eq!(objs[2]["spec"]["resources"][0]["name"], "gx-workload-cluster-secret");
    }

    #[test]
    fn passwords_and_the_scs2_naming() {
        let c = cloud(CLOUDS, "pw");
        let objs = objects(&c, &Naming::scs2(), "ns1", None);
        assert_eq!(objs[0]["metadata"]["name"], "openstack");
        assert!(objs[0]["data"].get("cacert").is_none());
        assert_eq!(objs[2]["metadata"]["name"], "clouds-yaml");
        assert_eq!(objs[2]["spec"]["clusterSelector"]["matchLabels"]["managed-secret"], "clouds-yaml");
        // scs2's workload clusters read clouds.yaml, not cloud.conf.
        let inner: Value = serde_json::from_str(&decode(&objs[1], "clouds-yaml.yaml")).unwrap();
        assert_eq!(inner["metadata"], json!({"name": "clouds-yaml", "namespace": "kube-system"}));
        let clouds: Value = serde_saphyr::from_str(&decode(&inner, "clouds.yaml")).unwrap();
        assert_eq!(clouds["clouds"]["pw"]["auth"]["password"], "canary-pw");
        // The cloud.conf of a password cloud (scs).
        let objs = objects(&c, &Naming::scs("pw"), "ns1", None);
        let inner: Value = serde_json::from_str(&decode(&objs[1], "cloud-config.yaml")).unwrap();
        let conf = decode(&inner, "cloud.conf");
        for l in [
            "username=alice",
            "password=canary-pw",
            "tenant-name=p1",
            "domain-name=Default",
            "tenant-domain-name=Default",
        ] {
            assert!(conf.lines().any(|x| x == l), "{l} in {conf}");
        }
        assert!(!conf.contains("tls-insecure") && !conf.contains("ca-file"), "{conf}");
    }
}
