//! `scs-e2e lab`: install, start, inspect and stop the lab.

use super::*;

/// `scs-e2e lab` subcommands.
#[derive(Subcommand, Debug)]
pub enum LabCmd {
    /// Build the lab's binaries (cached; skipped when present).
    Install(LabAssetArgs),
    /// Start a lab that keeps running; prints how to reach it.
    Up {
        /// Where the lab's binaries come from.
        #[command(flatten)]
        assets: LabAssetArgs,
        /// Lab directory (default: $XDG_STATE_HOME/scs-e2e/lab).
        #[arg(long, env = "SCS_E2E_LAB_DIR")]
        dir: Option<PathBuf>,
        /// Fixed API server port (default: a free one).
        #[arg(long)]
        apiserver_port: Option<u16>,
        /// Also run Cluster API (core, kubeadm, in-memory provider) and the Cluster Stack
        /// Operator in local mode; release assets go to `<dir>/releases`.
        #[arg(long)]
        cluster_api: bool,
        /// Also run the OpenStack provider (CAPO) and ORC on top of `--cluster-api` (implied),
        /// built on first use; clusters name their cloud in a credentials Secret as usual.
        #[arg(long)]
        openstack: bool,
    },
    /// Stop a lab and remove its data.
    Down {
        /// Lab directory (default: $XDG_STATE_HOME/scs-e2e/lab).
        #[arg(long, env = "SCS_E2E_LAB_DIR")]
        dir: Option<PathBuf>,
    },
    /// Show whether a lab's processes run and its API server is ready.
    Status {
        /// Lab directory (default: $XDG_STATE_HOME/scs-e2e/lab).
        #[arg(long, env = "SCS_E2E_LAB_DIR")]
        dir: Option<PathBuf>,
    },
}

/// Where the lab's binaries come from: a prebuilt directory or the build cache.
#[derive(Args, Debug, Clone, Default)]
pub struct LabAssetArgs {
    /// Use prebuilt binaries from this directory (KUBEBUILDER_ASSETS layout) instead of building.
    #[arg(long, env = "SCS_E2E_LAB_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Cache for built binaries (default: $XDG_CACHE_HOME/scs-e2e/lab).
    #[arg(long, env = "SCS_E2E_LAB_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

pub(super) async fn lab_cmd(cmd: LabCmd) -> Result<Exit, Fatal> {
    match cmd {
        LabCmd::Install(a) => {
            let assets = build::Assets::locate(a.bin_dir, a.cache_dir);
            let t0 = std::time::Instant::now();
            let built = tokio::task::spawn_blocking(move || build::install(&assets, &build::ConsoleProgress::new()).map(|b| (b, assets)))
                .await
                .map_err(|e| Fatal::infra(anyhow::anyhow!(e)))?
                .map_err(Fatal::infra)?;
            if built.0.is_empty() {
                eprintln!("lab binaries present in {}", built.1.bin_dir.display());
            } else {
                eprintln!(
                    "built {} in {:.0}s into {}",
                    built.0.join(", "),
                    t0.elapsed().as_secs_f64(),
                    built.1.bin_dir.display()
                );
            }
            println!("{}", built.1.bin_dir.display());
            Ok(Exit::Passed)
        }
        LabCmd::Up {
            assets,
            dir,
            apiserver_port,
            cluster_api,
            openstack,
        } => {
            let assets = build::Assets::locate(assets.bin_dir, assets.cache_dir);
            let a2 = assets.clone();
            tokio::task::spawn_blocking(move || {
                build::install(&a2, &build::ConsoleProgress::new())?;
                if openstack {
                    for c in build::OPENSTACK {
                        build::ensure(&a2, c, &build::ConsoleProgress::new())?;
                    }
                }
                Ok::<_, build::BuildError>(())
            })
            .await
            .map_err(|e| Fatal::infra(anyhow::anyhow!(e)))?
            .map_err(Fatal::infra)?;
            let dir = dir.unwrap_or_else(lab::default_dir);
            let mut opts = LabOptions::new(dir.clone(), assets);
            opts.apiserver_port = apiserver_port;
            opts.detached = true;
            opts.cluster_api = cluster_api || openstack;
            opts.openstack = openstack;
            let t0 = std::time::Instant::now();
            let lab = lab::Lab::start(opts).await.map_err(|e| match e {
                lab::LabError::Running { .. }
                | lab::LabError::Stale { .. }
                | lab::LabError::PortInUse { .. }
                | lab::LabError::FixedPortInUse { .. } => Fatal::usage(e),
                other => Fatal::infra(other),
            })?;
            let kc = lab.kubeconfig();
            let st = lab.detach();
            eprintln!(
                "lab ready in {:.1}s: Kubernetes {} at https://127.0.0.1:{}",
                t0.elapsed().as_secs_f64(),
                st.kubernetes_version,
                st.ports.apiserver
            );
            eprintln!("stop it with: scs-e2e lab down --dir {}", dir.display());
            println!("export KUBECONFIG={}", kc.display());
            Ok(Exit::Passed)
        }
        LabCmd::Down { dir } => {
            let dir = dir.unwrap_or_else(lab::default_dir);
            let n = tokio::task::spawn_blocking(move || lab::down_dir(&dir))
                .await
                .map_err(|e| Fatal::infra(anyhow::anyhow!(e)))?
                .map_err(|e| match e {
                    lab::LabError::NoLab { .. } => Fatal::usage(e),
                    other => Fatal::infra(other),
                })?;
            eprintln!("lab stopped ({n} processes) and removed");
            Ok(Exit::Passed)
        }
        LabCmd::Status { dir } => {
            let dir = dir.unwrap_or_else(lab::default_dir);
            let (state, procs, ready) = lab::status_dir(&dir).await.map_err(Fatal::usage)?;
            println!("lab {} (Kubernetes {})", dir.display(), state.kubernetes_version);
            for (name, alive) in &procs {
                println!(
                    "  {name:<26} {} (pid {})",
                    if *alive { "running" } else { "NOT RUNNING" },
                    state.pids[name]
                );
            }
            match &ready {
                Ok(()) => println!("  api server https://127.0.0.1:{} ready", state.ports.apiserver),
                Err(e) => println!("  api server https://127.0.0.1:{} NOT READY: {e}", state.ports.apiserver),
            }
            println!("  export KUBECONFIG={}", state.kubeconfig.display());
            Ok(if ready.is_ok() && procs.values().all(|a| *a) {
                Exit::Passed
            } else {
                Exit::Infra
            })
        }
    }
}
