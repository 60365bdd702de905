//! `default-storage-class` (scs-0211, informational): exactly one default StorageClass with a
//! real provisioner, and a 1Gi ReadWriteOnce volume that a pod can mount. Always cleans up.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, ObjectMeta, PostParams};
use kube::discovery::ApiResource;
use tokio::time::Instant;

use super::{Level, Outcome, Verdict};
use crate::kube::{Target, Verdict as Wait, wait_until};

/// Annotation marking the default StorageClass (value `"true"`).
pub const DEFAULT_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

/// The default class, or why there is no usable one.
pub fn default_class(classes: &[StorageClass]) -> Result<&StorageClass, crate::error::Invalid> {
    let defaults: Vec<&StorageClass> = classes
        .iter()
        .filter(|c| {
            c.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_ANNOTATION))
                .is_some_and(|v| v == "true")
        })
        .collect();
    match defaults.as_slice() {
        [] => Err(format!(
            "no StorageClass is annotated {DEFAULT_ANNOTATION}: \"true\" ({} classes in all)",
            classes.len()
        )
        .into()),
        [one] if one.provisioner == "kubernetes.io/no-provisioner" => Err(format!(
            "the default StorageClass {} has provisioner kubernetes.io/no-provisioner: volumes are never provisioned",
            one.metadata.name.as_deref().unwrap_or("")
        )
        .into()),
        [one] => Ok(one),
        many => Err(format!(
            "{} StorageClasses are marked default ({}): exactly one may be",
            many.len(),
            many.iter()
                .map(|c| c.metadata.name.clone().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", ")
        )
        .into()),
    }
}

/// The testcase: exactly one usable default class, whose 1Gi volume a pod mounts within `timeout`,
/// in a namespace of its own (`scs-e2e-storage-<run_id>`), deleted afterwards.
pub async fn run(client: &kube::Client, timeout: Duration, run_id: &str) -> Outcome {
    let classes = match Api::<StorageClass>::all(client.clone()).list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) => return Outcome::new(Verdict::Abort).with(Level::Critical, format!("cannot list StorageClasses: {e}")),
    };
    let class = match default_class(&classes) {
        Ok(c) => c.metadata.name.clone().unwrap_or_default(),
        Err(why) => return Outcome::new(Verdict::Fail).with(Level::Error, why),
    };
    let ns = format!("scs-e2e-storage-{run_id}");
    let out = exercise(client, &ns, &class, timeout).await;
    // Always clean up, whatever happened; the namespace takes the claim and the pod with it.
    let _ = Api::<Namespace>::all(client.clone()).delete(&ns, &DeleteParams::background()).await;
    out
}

async fn exercise(client: &kube::Client, ns: &str, class: &str, timeout: Duration) -> Outcome {
    let meta = |name: &str| ObjectMeta {
        name: Some(name.into()),
        namespace: Some(ns.into()),
        ..Default::default()
    };
    let nsobj = Namespace {
        metadata: ObjectMeta {
            name: Some(ns.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    if let Err(e) = Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &nsobj).await {
        return Outcome::new(Verdict::Abort).with(Level::Critical, format!("cannot create namespace {ns}: {e}"));
    }
    let pvc: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "scs-e2e-probe", "namespace": ns},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    }))
    .expect("valid claim");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": meta("scs-e2e-probe"),
        "spec": {
            "containers": [{"name": "probe", "image": "registry.k8s.io/pause:3.10", "volumeMounts": [{"name": "v", "mountPath": "/data"}]}],
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "scs-e2e-probe"}}]
        }
    }))
    .expect("valid pod");
    if let Err(e) = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pvc)
        .await
    {
        return Outcome::new(Verdict::Fail).with(Level::Error, format!("cannot create a 1Gi ReadWriteOnce claim: {e}"));
    }
    if let Err(e) = Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
    {
        return Outcome::new(Verdict::Fail).with(Level::Error, format!("cannot create a pod mounting the claim: {e}"));
    }
    let deadline = Instant::now() + timeout;
    let pods = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ApiResource::erase::<Pod>(&()));
    let claims = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ApiResource::erase::<PersistentVolumeClaim>(&()));
    let target = Target::Name("scs-e2e-probe".into());
    let phase = |o: Option<&DynamicObject>| {
        o.and_then(|o| o.data.pointer("/status/phase"))
            .and_then(|v| v.as_str())
            .unwrap_or("unknown")
            .to_string()
    };
    let pod_wait = wait_until(pods, &target, deadline, |objs: &BTreeMap<String, DynamicObject>| {
        match phase(objs.get("scs-e2e-probe")).as_str() {
            "Running" => Wait::Done,
            p => Wait::Pending(format!("pod phase {p}")),
        }
    });
    if let Err(e) = pod_wait.await {
        return Outcome::new(Verdict::Fail).with(
            Level::Error,
            format!("a pod mounting a 1Gi volume of StorageClass {class} did not run: {e}"),
        );
    }
    let claim_wait = wait_until(claims, &target, deadline, |objs: &BTreeMap<String, DynamicObject>| {
        match phase(objs.get("scs-e2e-probe")).as_str() {
            "Bound" => Wait::Done,
            p => Wait::Pending(format!("claim phase {p}")),
        }
    });
    match claim_wait.await {
        Ok(_) => Outcome::new(Verdict::Pass).with(
            Level::Info,
            format!("StorageClass {class} provisioned a 1Gi ReadWriteOnce volume that a pod mounted"),
        ),
        Err(e) => Outcome::new(Verdict::Fail).with(Level::Error, format!("the claim did not bind: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, provisioner: &str, default: Option<&str>) -> StorageClass {
        StorageClass {
            metadata: ObjectMeta {
                name: Some(name.into()),
                annotations: default.map(|v| BTreeMap::from([(DEFAULT_ANNOTATION.to_string(), v.to_string())])),
                ..Default::default()
            },
            provisioner: provisioner.into(),
            ..Default::default()
        }
    }

    #[test]
    fn exactly_one_default_with_a_provisioner() {
        let csi = class("csi", "cinder.csi.openstack.org", Some("true"));
        assert_eq!(
            default_class(&[csi.clone(), class("slow", "x", None)])
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("csi")
        );
        assert!(
            default_class(&[class("a", "x", Some("false"))])
                .unwrap_err()
                .starts_with("no StorageClass is annotated")
        );
        let e = default_class(&[csi.clone(), class("b", "y", Some("true"))]).unwrap_err();
        assert!(e.starts_with("2 StorageClasses are marked default (csi, b)"), "{e}");
        let e = default_class(&[class("local", "kubernetes.io/no-provisioner", Some("true"))]).unwrap_err();
        assert!(e.contains("kubernetes.io/no-provisioner"), "{e}");
    }
}
