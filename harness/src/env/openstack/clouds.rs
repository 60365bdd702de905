//! OpenStack credentials from the places openstacksdk looks: `OS_CLIENT_CONFIG_FILE`,
//! `./clouds.yaml`, `~/.config/openstack/clouds.yaml`, `/etc/openstack/clouds.yaml` (the first
//! that exists), with the same directories' `secure.yaml` (or `OS_CLIENT_SECURE_FILE`) merged over
//! it. The cloud is `--cloud`, else `OS_CLOUD`, else the only one in the file.
//!
//! Secrets stay in this module's types: `Debug` redacts them, and nothing here logs.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// Why no usable cloud came out of clouds.yaml / secure.yaml: bad input, for the user to fix.
#[derive(Debug, thiserror::Error)]
pub enum CloudsError {
    /// No clouds.yaml at any of the places looked at.
    #[error("no clouds.yaml found (looked at {searched}): create one, or set OS_CLIENT_CONFIG_FILE to its path")]
    NoFile {
        /// The paths looked at, comma-separated.
        searched: String,
    },
    /// A file is unreadable, not YAML, has no `clouds:` map, or the cloud's entry is malformed
    /// (e.g. no `auth.auth_url`).
    #[error("{file}: {detail}")]
    Invalid {
        /// The file, with `:line:column` for a YAML syntax error.
        file: String,
        /// What is wrong.
        detail: String,
    },
    /// The file has several clouds and neither `--cloud` nor `OS_CLOUD` picks one.
    #[error("{file} has several clouds ({names}) and none was chosen: pass --cloud NAME or set OS_CLOUD")]
    NoneChosen {
        /// The clouds.yaml read.
        file: String,
        /// The clouds it has, comma-separated.
        names: String,
    },
    /// The cloud asked for is not in the file.
    #[error("{file} has no cloud `{cloud}` (it has {names}): fix --cloud / OS_CLOUD")]
    UnknownCloud {
        /// The clouds.yaml read.
        file: String,
        /// The cloud asked for (`--cloud` or `OS_CLOUD`).
        cloud: String,
        /// The clouds it has, comma-separated.
        names: String,
    },
    /// The cloud's password or application credential secret is in neither clouds.yaml nor
    /// secure.yaml.
    #[error(
        "{file}: cloud `{cloud}` has no {what}, and {secure} has no entry for it: add `clouds: {{{cloud}: {{auth: {{{key}: ...}}}}}}` to {secure} (or put it in {file})"
    )]
    MissingSecret {
        /// The clouds.yaml read.
        file: String,
        /// The cloud's name.
        cloud: String,
        /// What is missing, in words: `password` or `application credential secret`.
        what: String,
        /// The `auth` key to add: `password` or `application_credential_secret`.
        key: String,
        /// The secure.yaml found, or else the first place one was looked for.
        secure: String,
    },
    /// The region asked for is not among the regions the cloud's entry lists.
    #[error("{file}: cloud `{cloud}` has no region `{region}` (its regions: {names}): fix --region / OS_REGION_NAME")]
    UnknownRegion {
        /// The clouds.yaml read.
        file: String,
        /// The cloud's name.
        cloud: String,
        /// The region asked for (`OS_REGION_NAME`).
        region: String,
        /// The entry's regions (`regions` and `region_name`), comma-separated.
        names: String,
    },
}

/// Where to look; `from_env` reads the process environment, tests build their own.
#[derive(Clone, Debug, Default)]
pub struct Lookup {
    /// The cloud to use (`--cloud`, else `OS_CLOUD`); `None`: the file's only cloud.
    pub cloud: Option<String>,
    /// The region (`OS_REGION_NAME`), over the entry's `region_name`; `None`: the entry's.
    pub region: Option<String>,
    /// `OS_CLIENT_CONFIG_FILE`: the one clouds.yaml to read instead of searching.
    pub config_file: Option<PathBuf>,
    /// `OS_CLIENT_SECURE_FILE`: the one secure.yaml to read instead of searching.
    pub secure_file: Option<PathBuf>,
    /// The working directory, searched first.
    pub cwd: PathBuf,
    /// The home directory (`HOME`), whose `.config/openstack` is searched second; `None`: skipped.
    pub home: Option<PathBuf>,
    /// The system directory searched last: `/etc/openstack`.
    pub etc: PathBuf,
}

impl Lookup {
    /// Reads `OS_CLOUD` (unless `cloud` is given), `OS_REGION_NAME`, `OS_CLIENT_CONFIG_FILE`,
    /// `OS_CLIENT_SECURE_FILE`, `HOME` and the working directory; empty variables count as unset.
    pub fn from_env(cloud: Option<String>) -> Lookup {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        Lookup {
            cloud: cloud.or_else(|| var("OS_CLOUD").map(|v| v.to_string_lossy().into_owned())),
            region: var("OS_REGION_NAME").map(|v| v.to_string_lossy().into_owned()),
            config_file: var("OS_CLIENT_CONFIG_FILE").map(PathBuf::from),
            secure_file: var("OS_CLIENT_SECURE_FILE").map(PathBuf::from),
            cwd: std::env::current_dir().unwrap_or_default(),
            home: var("HOME").map(PathBuf::from),
            etc: PathBuf::from("/etc/openstack"),
        }
    }

    fn dirs(&self) -> Vec<PathBuf> {
        let mut d = vec![self.cwd.clone()];
        if let Some(h) = &self.home {
            d.push(h.join(".config/openstack"));
        }
        d.push(self.etc.clone());
        d
    }

    fn first(&self, explicit: &Option<PathBuf>, name: &str) -> (Option<PathBuf>, Vec<PathBuf>) {
        let candidates: Vec<PathBuf> = match explicit {
            Some(f) => vec![f.clone()],
            None => self.dirs().into_iter().map(|d| d.join(name)).collect(),
        };
        (candidates.iter().find(|p| p.is_file()).cloned(), candidates)
    }
}

/// A cloud's `auth:` map in clouds.yaml (secure.yaml merged in); `Debug` hides the secrets.
/// Keys that are absent are `None`.
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct Auth {
    /// Keystone's URL, with or without `/v3`; required.
    pub auth_url: String,
    /// The user's name (password login; or, with an application credential name, its owner).
    pub username: Option<String>,
    /// The user's password (password login).
    pub password: Option<String>,
    /// The user's id, used instead of `username` and its domain.
    pub user_id: Option<String>,
    /// The project to scope a password login to (in `project_domain_*`).
    pub project_name: Option<String>,
    /// The project's id, used instead of `project_name`.
    pub project_id: Option<String>,
    /// The domain of `username`; with neither name nor id, Keystone's `default` domain.
    pub user_domain_name: Option<String>,
    /// The id of `username`'s domain, used instead of `user_domain_name`.
    pub user_domain_id: Option<String>,
    /// The domain of `project_name`; with neither name nor id, Keystone's `default` domain.
    pub project_domain_name: Option<String>,
    /// The id of `project_name`'s domain, used instead of `project_domain_name`.
    pub project_domain_id: Option<String>,
    /// The application credential's id.
    pub application_credential_id: Option<String>,
    /// The application credential's name, used with its owner when there is no id.
    pub application_credential_name: Option<String>,
    /// The application credential's secret.
    pub application_credential_secret: Option<String>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("Auth")
            .field("auth_url", &self.auth_url)
            .field("username", &self.username)
            .field("password", &hidden(&self.password))
            .field("project_name", &self.project_name)
            .field("project_id", &self.project_id)
            .field("application_credential_id", &self.application_credential_id)
            .field("application_credential_secret", &hidden(&self.application_credential_secret))
            .finish_non_exhaustive()
    }
}

/// How the cloud authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthKind {
    /// Keystone's `password` method: a user and password, scoped to a project if one is named.
    Password,
    /// Keystone's `application_credential` method (`auth_type: v3applicationcredential`, or an
    /// application credential id or name in `auth`); the credential carries its project scope.
    ApplicationCredential,
}

/// One cloud, merged from clouds.yaml and secure.yaml.
#[derive(Clone, Debug)]
pub struct Cloud {
    /// The cloud's key under `clouds:`.
    pub name: String,
    /// The clouds.yaml it was read from.
    pub file: PathBuf,
    /// How it logs in to Keystone.
    pub kind: AuthKind,
    /// The `auth:` map, secrets included.
    pub auth: Auth,
    /// The region whose endpoints to use (`OS_REGION_NAME`, else `region_name`); `None`: any.
    pub region: Option<String>,
    /// The catalog interface to use (`interface`); `None`: `public`.
    pub interface: Option<String>,
    /// `identity_api_version` as written (e.g. `3`); the login is Keystone v3 regardless.
    pub identity_api_version: Option<String>,
    /// A CA bundle path (relative paths are relative to clouds.yaml).
    pub cacert: Option<PathBuf>,
    /// `verify: false` turns TLS verification off.
    pub verify: bool,
    /// The cloud's entry as merged (secrets included: for the clouds.yaml Secret, never logs).
    pub raw: Redacted<Value>,
}

/// A value whose `Debug` never shows it.
#[derive(Clone)]
pub struct Redacted<T>(pub T);

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    auth: Auth,
    #[serde(default)]
    auth_type: Option<String>,
    #[serde(default)]
    region_name: Option<String>,
    #[serde(default)]
    regions: Vec<Value>,
    #[serde(default)]
    interface: Option<String>,
    #[serde(default)]
    identity_api_version: Option<Value>,
    #[serde(default)]
    cacert: Option<String>,
    #[serde(default)]
    verify: Option<bool>,
}

fn read_yaml(path: &Path) -> Result<Value, CloudsError> {
    let text = std::fs::read_to_string(path).map_err(|e| CloudsError::Invalid {
        file: path.display().to_string(),
        detail: e.to_string(),
    })?;
    serde_saphyr::from_str::<Value>(&text).map_err(|e| {
        let at = e.location().map(|l| format!(":{}:{}", l.line(), l.column())).unwrap_or_default();
        CloudsError::Invalid {
            file: format!("{}{at}", path.display()),
            detail: format!("invalid YAML: {}", e.without_snippet()),
        }
    })
}

/// `over` wins; maps merge key by key.
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Finds and merges the chosen cloud.
pub fn load(l: &Lookup) -> Result<Cloud, CloudsError> {
    let (file, searched) = l.first(&l.config_file, "clouds.yaml");
    let file = file.ok_or_else(|| CloudsError::NoFile {
        searched: searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
    })?;
    let fname = file.display().to_string();
    let doc = read_yaml(&file)?;
    let clouds: BTreeMap<String, Value> = doc
        .get("clouds")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .ok_or_else(|| CloudsError::Invalid {
            file: fname.clone(),
            detail: "no `clouds:` map: the file must look like `clouds: {mycloud: {auth: {...}}}`".into(),
        })?;
    let names = || clouds.keys().cloned().collect::<Vec<_>>().join(", ");
    let name = match &l.cloud {
        Some(c) => c.clone(),
        None if clouds.len() == 1 => clouds.keys().next().unwrap().clone(),
        None => {
            return Err(CloudsError::NoneChosen {
                file: fname,
                names: names(),
            });
        }
    };
    let mut entry = clouds.get(&name).cloned().ok_or_else(|| CloudsError::UnknownCloud {
        file: fname.clone(),
        cloud: name.clone(),
        names: names(),
    })?;
    let (secure, secure_searched) = l.first(&l.secure_file, "secure.yaml");
    if let Some(s) = &secure
        && let Some(over) = read_yaml(s)?.pointer(&format!("/clouds/{name}"))
    {
        merge(&mut entry, over);
    }
    // Unquoted `password: 12345` or `project_name: on` are numbers and booleans in YAML; here
    // every auth value is a string.
    if let Some(auth) = entry.get_mut("auth").and_then(Value::as_object_mut) {
        for v in auth.values_mut() {
            if v.is_number() || v.is_boolean() {
                *v = Value::String(v.to_string());
            }
        }
    }
    let e: Entry = serde_json::from_value(entry.clone()).map_err(|err| CloudsError::Invalid {
        file: fname.clone(),
        detail: format!("cloud `{name}`: {err}"),
    })?;
    let kind = match e.auth_type.as_deref() {
        Some("v3applicationcredential") => AuthKind::ApplicationCredential,
        _ if e.auth.application_credential_id.is_some() || e.auth.application_credential_name.is_some() => AuthKind::ApplicationCredential,
        _ => AuthKind::Password,
    };
    let secure_name = secure
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| secure_searched.first().map(|p| p.display().to_string()).unwrap_or_default());
    let missing = |what: &str, key: &str| CloudsError::MissingSecret {
        file: fname.clone(),
        cloud: name.clone(),
        what: what.into(),
        key: key.into(),
        secure: secure_name.clone(),
    };
    if e.auth.auth_url.is_empty() {
        return Err(CloudsError::Invalid {
            file: fname.clone(),
            detail: format!("cloud `{name}` has no auth.auth_url"),
        });
    }
    match kind {
        AuthKind::Password if e.auth.password.is_none() => return Err(missing("password", "password")),
        AuthKind::ApplicationCredential if e.auth.application_credential_secret.is_none() => {
            return Err(missing("application credential secret", "application_credential_secret"));
        }
        _ => {}
    }
    let region = l.region.clone().or(e.region_name.clone());
    if let Some(r) = &region {
        let known: Vec<String> = e
            .regions
            .iter()
            .filter_map(|v| v.as_str().map(String::from).or_else(|| v.get("name")?.as_str().map(String::from)))
            .chain(e.region_name.clone())
            .fold(Vec::new(), |mut v, r| {
                if !v.contains(&r) {
                    v.push(r);
                }
                v
            });
        if !known.is_empty() && !known.contains(r) {
            return Err(CloudsError::UnknownRegion {
                file: fname,
                cloud: name,
                region: r.clone(),
                names: known.join(", "),
            });
        }
    }
    for secret in [&e.auth.password, &e.auth.application_credential_secret].into_iter().flatten() {
        crate::redact::add(secret);
    }
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(Cloud {
        name,
        kind,
        region,
        interface: e.interface,
        identity_api_version: e
            .identity_api_version
            .map(|v| v.as_str().map(String::from).unwrap_or_else(|| v.to_string())),
        cacert: e.cacert.map(|c| base.join(c)),
        verify: e.verify.unwrap_or(true),
        auth: e.auth,
        raw: Redacted(entry),
        file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            for d in ["cwd", "home/.config/openstack", "etc"] {
                std::fs::create_dir_all(dir.path().join(d)).unwrap();
            }
            Fixture { dir }
        }
        fn write(&self, rel: &str, text: &str) -> PathBuf {
            let p = self.dir.path().join(rel);
            std::fs::write(&p, text).unwrap();
            p
        }
        fn lookup(&self, cloud: Option<&str>) -> Lookup {
            Lookup {
                cloud: cloud.map(String::from),
                cwd: self.dir.path().join("cwd"),
                home: Some(self.dir.path().join("home")),
                etc: self.dir.path().join("etc"),
                ..Default::default()
            }
        }
    }

    const TWO: &str = "clouds:\n  prod:\n    auth: {auth_url: 'https://keystone:5000/v3', username: u, project_name: p, user_domain_name: Default, project_domain_name: Default}\n    region_name: RegionOne\n    regions: [RegionOne, RegionTwo]\n    cacert: ca.pem\n  appcred:\n    auth_type: v3applicationcredential\n    auth: {auth_url: 'https://keystone:5000/v3', application_credential_id: abc, application_credential_secret: canary-secret-1}\n    verify: false\n";

    #[test]
    fn secure_yaml_is_merged_and_the_home_file_is_found() {
        let f = Fixture::new();
        f.write("home/.config/openstack/clouds.yaml", TWO);
        f.write(
            "home/.config/openstack/secure.yaml",
            "clouds:\n  prod:\n    auth: {password: canary-password-2}\n",
        );
        let c = load(&f.lookup(Some("prod"))).unwrap();
        assert_eq!(c.kind, AuthKind::Password);
        assert_eq!(c.auth.password.as_deref(), Some("canary-password-2"));
        assert_eq!(c.auth.username.as_deref(), Some("u"));
        assert_eq!(c.region.as_deref(), Some("RegionOne"));
        assert!(c.cacert.unwrap().ends_with("home/.config/openstack/ca.pem"));
        assert!(c.verify);
        let debug = format!("{:?}", c.auth);
        assert!(!debug.contains("canary-password-2") && debug.contains("<redacted>"), "{debug}");

        let a = load(&f.lookup(Some("appcred"))).unwrap();
        assert_eq!(a.kind, AuthKind::ApplicationCredential);
        assert!(!a.verify);
        assert!(!format!("{a:?}").contains("canary-secret-1"));
    }

    #[test]
    fn the_current_directory_wins_and_a_single_cloud_needs_no_name() {
        let f = Fixture::new();
        f.write("home/.config/openstack/clouds.yaml", TWO);
        f.write(
            "cwd/clouds.yaml",
            "clouds:\n  only:\n    auth: {auth_url: 'http://127.0.0.1:5000/v3', username: x, password: 12345, project_name: z}\n",
        );
        let c = load(&f.lookup(None)).unwrap();
        assert_eq!(c.name, "only");
        assert_eq!(c.auth.password.as_deref(), Some("12345"));
        assert!(c.file.ends_with("cwd/clouds.yaml"));
    }

    #[test]
    fn bad_input_is_named_with_its_fix() {
        let f = Fixture::new();
        let e = load(&f.lookup(None)).unwrap_err().to_string();
        assert!(e.starts_with("no clouds.yaml found") && e.contains("OS_CLIENT_CONFIG_FILE"), "{e}");

        f.write("etc/clouds.yaml", TWO);
        let e = load(&f.lookup(None)).unwrap_err().to_string();
        assert!(e.contains("several clouds (appcred, prod)") && e.contains("OS_CLOUD"), "{e}");
        let e = load(&f.lookup(Some("staging"))).unwrap_err().to_string();
        assert!(e.contains("no cloud `staging` (it has appcred, prod)"), "{e}");
        // prod's password lives nowhere: secure.yaml is named as the place to put it.
        let e = load(&f.lookup(Some("prod"))).unwrap_err().to_string();
        assert!(e.contains("has no password") && e.contains("secure.yaml"), "{e}");

        f.write("etc/secure.yaml", "clouds:\n  prod:\n    auth: {password: pw}\n");
        let mut l = f.lookup(Some("prod"));
        l.region = Some("RegionNine".into());
        let e = load(&l).unwrap_err().to_string();
        assert!(e.contains("no region `RegionNine` (its regions: RegionOne, RegionTwo)"), "{e}");
        l.region = Some("RegionTwo".into());
        assert_eq!(load(&l).unwrap().region.as_deref(), Some("RegionTwo"));

        let p = f.write("cwd/broken.yaml", "clouds:\n  a: [\n");
        let mut l = f.lookup(None);
        l.config_file = Some(p);
        let e = load(&l).unwrap_err().to_string();
        assert!(e.contains("broken.yaml:") && e.contains("invalid YAML"), "{e}");
    }
}
