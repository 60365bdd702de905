//! The command lines of the lab's processes (etcd, API server, controller manager).

use super::*;

pub(super) fn process_args(dir: &Path, pki: &pki::Pki, ports: Ports) -> BTreeMap<String, Vec<String>> {
    let d = |p: &Path| p.display().to_string();
    let etcd_url = format!("http://127.0.0.1:{}", ports.etcd_client);
    let peer_url = format!("http://127.0.0.1:{}", ports.etcd_peer);
    let kcm_kc = d(&dir.join("kcm.kubeconfig"));
    let mut m = BTreeMap::new();
    m.insert(
        "etcd".to_string(),
        vec![
            "--name=lab".into(),
            format!("--data-dir={}", d(&dir.join("etcd"))),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=lab={peer_url}"),
            // A throw-away test store: durability is not worth the fsync latency.
            "--unsafe-no-fsync=true".into(),
            "--log-level=warn".into(),
        ],
    );
    m.insert(
        "kube-apiserver".to_string(),
        vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={}", ports.apiserver),
            format!("--cert-dir={}", d(&dir.join("pki"))),
            format!("--tls-cert-file={}", d(&pki.apiserver_crt())),
            format!("--tls-private-key-file={}", d(&pki.apiserver_key())),
            format!("--client-ca-file={}", d(&pki.ca_crt())),
            format!("--service-account-key-file={}", d(&pki.sa_pub())),
            format!("--service-account-signing-key-file={}", d(&pki.sa_key())),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            "--authorization-mode=RBAC".into(),
            "--allow-privileged=true".into(),
            "--profiling=false".into(),
        ],
    );
    m.insert(
        "kube-controller-manager".to_string(),
        vec![
            format!("--kubeconfig={kcm_kc}"),
            format!("--authentication-kubeconfig={kcm_kc}"),
            format!("--authorization-kubeconfig={kcm_kc}"),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", ports.controller_manager),
            format!("--cert-dir={}", d(&dir.join("pki").join("kcm"))),
            "--leader-elect=false".into(),
            format!("--service-account-private-key-file={}", d(&pki.sa_key())),
            format!("--root-ca-file={}", d(&pki.ca_crt())),
            format!("--cluster-signing-cert-file={}", d(&pki.ca_crt())),
            format!("--cluster-signing-key-file={}", d(&pki.ca_key())),
            "--profiling=false".into(),
        ],
    );
    m
}
