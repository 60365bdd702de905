//! Environments provide the cluster a run talks to. `up`/`down` are reported as testcases of
//! their own, so a cluster that never comes up still yields a full report.

pub mod kind;
pub mod kubeconfig;
pub mod lab;
pub mod mgmt;
pub mod openstack;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

/// Variables environments may give steps (see [`Environment::step_vars`]); commands see them as
/// environment variables too.
pub const STEP_VAR_NAMES: &[&str] = &["CSO_RELEASE_DIR", "CSO_HOOKS_MANIFEST"];

#[async_trait]
pub trait Environment: Send + Sync {
    fn name(&self) -> &'static str;

    /// Brings the environment up. When it returns, `kubeconfig()` reaches a working API server.
    async fn up(&mut self) -> anyhow::Result<()>;

    /// Tears it down (called per the delete policy).
    async fn down(&mut self) -> anyhow::Result<()>;

    /// The admin kubeconfig of the (management) cluster; known after `up`.
    fn kubeconfig(&self) -> Option<PathBuf>;

    /// Copies the environment's logs (processes, nodes, controllers) into `dir`; returns the count.
    async fn collect_logs(&self, _dir: &Path) -> anyhow::Result<usize> {
        Ok(0)
    }

    /// Versions and facts for the report's properties.
    fn properties(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// Directories put first on PATH for commands (tools matching the environment).
    fn bin_dirs(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    /// What to tell the user when the environment is kept (`--delete never`, or a failure).
    fn keep_hint(&self) -> Option<String> {
        None
    }

    /// Variables the environment gives every step, like `CSO_RELEASE_DIR` (where CSO in local
    /// mode reads release assets).
    fn step_vars(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// Optional capability: fault injection into the management cluster's processes.
    fn faults(&self) -> Option<&dyn Faults> {
        None
    }
}

/// Environments whose control-plane processes a test may disturb (the lab can; a cloud cannot).
#[async_trait]
pub trait Faults: Send + Sync {
    /// Names of the processes that can be disturbed (`etcd`, `kube-apiserver`, ...).
    fn processes(&self) -> Vec<String>;
    /// kill -9 and reap.
    async fn kill(&self, process: &str) -> anyhow::Result<()>;
    /// Start a killed or stopped process again with its arguments; wait until it serves.
    async fn restart(&self, process: &str) -> anyhow::Result<()>;
    /// SIGSTOP / SIGCONT.
    fn pause(&self, process: &str) -> anyhow::Result<()>;
    fn resume(&self, process: &str) -> anyhow::Result<()>;
}

/// Copies every regular file of `src` (recursively) into `dst`; returns how many.
pub fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    std::fs::create_dir_all(dst)?;
    for e in std::fs::read_dir(src)? {
        let e = e?;
        let to = dst.join(e.file_name());
        let ft = e.file_type()?;
        if ft.is_dir() {
            n += copy_tree(&e.path(), &to)?;
        } else if ft.is_file() {
            std::fs::copy(e.path(), &to)?;
            n += 1;
        }
    }
    Ok(n)
}
