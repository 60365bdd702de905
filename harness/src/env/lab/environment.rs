//! `--env lab`: the lab as a run's environment.

use super::*;

/// `--env lab`: a lab for the duration of a run.
pub struct LabEnv {
    opts: LabOptions,
    lab: Option<Lab>,
    install_progress: bool,
}

/// `--env lab`: a lab of this run's own (its directory named after the run id), with Cluster API
/// when the plan needs it; kept past the process unless it is always deleted.
pub fn create(req: &crate::env::EnvRequest) -> anyhow::Result<Box<dyn crate::env::Environment>> {
    let cfg = req.file.and_then(|c| c.lab.clone()).unwrap_or_default();
    let assets = build::Assets::locate(
        req.lab_bin_dir.map(Path::to_path_buf).or(cfg.bin_dir),
        req.lab_cache_dir.map(Path::to_path_buf).or(cfg.cache_dir),
    );
    let mut lo = LabOptions::new(default_dir().with_file_name(format!("lab-run-{}", req.run_id)), assets);
    // A lab that may be kept must outlive this process; one always deleted dies with it.
    lo.detached = req.delete != crate::config::DeletePolicy::Always;
    lo.cluster_api = req.plan.cluster_api;
    // Cluster API in the lab runs the in-memory provider (CAPD's) only.
    req.plan.check_providers("lab", &["inmemory"])?;
    Ok(Box::new(LabEnv::new(lo, req.progress)))
}

impl LabEnv {
    /// A lab environment started with `opts`; `install_progress` shows the binaries' build on the console.
    pub fn new(opts: LabOptions, install_progress: bool) -> Self {
        LabEnv {
            opts,
            lab: None,
            install_progress,
        }
    }

    /// The running lab (None before `up` or after `down`).
    pub fn lab(&self) -> Option<&Lab> {
        self.lab.as_ref()
    }
}

#[async_trait]
impl Environment for LabEnv {
    fn name(&self) -> &'static str {
        "lab"
    }

    async fn up(&mut self) -> anyhow::Result<()> {
        let assets = self.opts.assets.clone();
        let progress = self.install_progress;
        tokio::task::spawn_blocking(move || {
            if progress {
                build::install(&assets, &build::ConsoleProgress::new())
            } else {
                build::install(&assets, &build::Quiet)
            }
        })
        .await??;
        self.lab = Some(Lab::start(self.opts.clone()).await?);
        Ok(())
    }

    async fn down(&mut self) -> anyhow::Result<()> {
        if let Some(lab) = self.lab.take() {
            lab.stop().await?;
        }
        Ok(())
    }

    fn kubeconfig(&self) -> Option<PathBuf> {
        self.lab.as_ref().map(Lab::kubeconfig)
    }

    async fn collect_logs(&self, dir: &Path) -> anyhow::Result<usize> {
        let logs = self.opts.dir.join("logs");
        if !logs.is_dir() {
            return Ok(0);
        }
        Ok(crate::base::copy_tree(&logs, dir)?)
    }

    fn properties(&self) -> BTreeMap<String, String> {
        let mut p = BTreeMap::from([
            ("kubernetes_version".to_string(), build::KUBERNETES_VERSION.to_string()),
            ("etcd_version".to_string(), build::ETCD_VERSION.to_string()),
        ]);
        if self.opts.cluster_api {
            p.insert("cluster_api_version".into(), build::CLUSTER_API_VERSION.into());
            p.insert("cso_version".into(), build::CSO_VERSION.into());
        }
        p
    }

    fn step_vars(&self) -> BTreeMap<String, String> {
        self.lab
            .as_ref()
            .and_then(Lab::release_dir)
            .map(|d| {
                BTreeMap::from([
                    ("CSO_RELEASE_DIR".to_string(), d.display().to_string()),
                    (
                        "CSO_HOOKS_MANIFEST".to_string(),
                        self.opts.dir.join(capi::HOOKS_MANIFEST).display().to_string(),
                    ),
                ])
            })
            .unwrap_or_default()
    }

    fn bin_dirs(&self) -> Vec<PathBuf> {
        vec![self.opts.assets.bin_dir.clone()]
    }

    fn faults(&self) -> Option<&dyn crate::env::Faults> {
        self.lab.as_ref().map(|l| l as &dyn crate::env::Faults)
    }

    fn keep_hint(&self) -> Option<String> {
        let lab = self.lab.as_ref()?;
        Some(format!(
            "the lab keeps running: export KUBECONFIG={}; stop it with `scs-e2e lab down --dir {}`",
            lab.kubeconfig().display(),
            lab.dir.display()
        ))
    }
}

impl Drop for LabEnv {
    fn drop(&mut self) {
        // A kept, detached lab must survive us; an owned one dies in Lab::drop.
        if let Some(lab) = self.lab.take()
            && self.opts.detached
        {
            lab.detach();
        }
    }
}
