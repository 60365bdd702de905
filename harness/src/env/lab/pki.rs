//! The lab's certificates: a CA, the API server's serving certificate, client certificates for
//! the admin and the controller manager, and the service-account signing key.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};

/// A lab's generated certificates and keys: the files in `dir`, and the PEMs kubeconfigs embed.
pub struct Pki {
    /// Where the files are (`<lab>/pki`).
    pub dir: PathBuf,
    /// The lab CA's certificate (PEM).
    pub ca_pem: String,
    /// The admin's client certificate (PEM; `scs-e2e-admin` in `system:masters`).
    pub admin_cert_pem: String,
    /// The admin's private key (PEM).
    pub admin_key_pem: String,
    /// The kube-controller-manager's client certificate (PEM).
    pub kcm_cert_pem: String,
    /// The kube-controller-manager's private key (PEM).
    pub kcm_key_pem: String,
}

impl Pki {
    /// The CA certificate: `<dir>/ca.crt`.
    pub fn ca_crt(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    /// The CA's private key: `<dir>/ca.key`.
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    /// The API server's serving certificate: `<dir>/apiserver.crt`.
    pub fn apiserver_crt(&self) -> PathBuf {
        self.dir.join("apiserver.crt")
    }
    /// The API server's serving key: `<dir>/apiserver.key`.
    pub fn apiserver_key(&self) -> PathBuf {
        self.dir.join("apiserver.key")
    }
    /// The service-account signing key: `<dir>/sa.key`.
    pub fn sa_key(&self) -> PathBuf {
        self.dir.join("sa.key")
    }
    /// The service-account verification (public) key: `<dir>/sa.pub`.
    pub fn sa_pub(&self) -> PathBuf {
        self.dir.join("sa.pub")
    }
    /// Serving certificate of the controllers' webhook and extension servers on 127.0.0.1, in
    /// controller-runtime's layout (`tls.crt`, `tls.key`); the API server trusts it via the CA.
    pub fn webhook_dir(&self) -> PathBuf {
        self.dir.join("webhook")
    }
}

/// Generates everything into `dir` (mode 0600 for keys).
pub fn generate(dir: &Path) -> anyhow::Result<Pki> {
    std::fs::create_dir_all(dir)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "scs-e2e-lab-ca");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate()?;
    let ca_key_pem = ca_key.serialize_pem();
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;

    let leaf = |cn: &str, org: Option<&str>, sans: Vec<String>, server: bool| -> anyhow::Result<(String, String)> {
        let mut p = CertificateParams::new(sans)?;
        p.distinguished_name.push(DnType::CommonName, cn);
        if let Some(o) = org {
            p.distinguished_name.push(DnType::OrganizationName, o);
        }
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        p.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &ca)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    let sans = [
        "127.0.0.1",
        "::1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "10.96.0.1",
    ]
    .map(String::from)
    .to_vec();
    let (api_crt, api_key) = leaf("kube-apiserver", None, sans, true)?;
    let (admin_crt, admin_key) = leaf("scs-e2e-admin", Some("system:masters"), vec![], false)?;
    // In system:masters: its controllers act as the manager itself, with no per-controller
    // service-account tokens to bootstrap first (seconds faster to a working lab).
    let (kcm_crt, kcm_key) = leaf("system:kube-controller-manager", Some("system:masters"), vec![], false)?;
    let (hook_crt, hook_key) = leaf(
        "scs-e2e-lab-webhooks",
        None,
        ["127.0.0.1", "localhost"].map(String::from).to_vec(),
        true,
    )?;
    let sa = KeyPair::generate()?;

    let pki = Pki {
        dir: dir.to_path_buf(),
        ca_pem: ca.pem(),
        admin_cert_pem: admin_crt,
        admin_key_pem: admin_key,
        kcm_cert_pem: kcm_crt,
        kcm_key_pem: kcm_key,
    };
    std::fs::write(pki.ca_crt(), &pki.ca_pem)?;
    crate::base::write_private(&pki.ca_key(), ca_key_pem.as_bytes())?;
    std::fs::write(pki.apiserver_crt(), api_crt)?;
    crate::base::write_private(&pki.apiserver_key(), api_key.as_bytes())?;
    crate::base::write_private(&pki.sa_key(), sa.serialize_pem().as_bytes())?;
    std::fs::create_dir_all(pki.webhook_dir())?;
    std::fs::write(pki.webhook_dir().join("tls.crt"), hook_crt)?;
    crate::base::write_private(&pki.webhook_dir().join("tls.key"), hook_key.as_bytes())?;
    std::fs::write(pki.sa_pub(), sa.public_key_pem())?;
    Ok(pki)
}

/// A kubeconfig with embedded certificates (written 0600: it grants cluster-admin).
pub fn write_kubeconfig(path: &Path, server: &str, ca_pem: &str, cert_pem: &str, key_pem: &str, user: &str) -> std::io::Result<()> {
    use base64::Engine;
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: scs-e2e-lab\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: scs-e2e-lab\n  context:\n    cluster: scs-e2e-lab\n    user: {user}\ncurrent-context: scs-e2e-lab\n",
        b(ca_pem),
        b(cert_pem),
        b(key_pem)
    );
    crate::base::write_private(path, text.as_bytes())
}
