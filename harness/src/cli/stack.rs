//! `scs-e2e stack build`: release assets from a cluster stack directory, as csctl v0.0.5's
//! `csctl create` builds them (the code `installClusterStack.source` uses).

use super::*;
use crate::stack::csctl::{Mode, Versions};

/// `scs-e2e stack` subcommands.
#[derive(Subcommand, Debug)]
pub enum StackCmd {
    /// Build release assets like `csctl create` v0.0.5: `<out>/<provider>-<name>-<major>-<minor>-<version>/`
    /// with metadata.yaml, hashes.json, the packaged charts and clusteraddon.yaml (or
    /// cluster-addon-values.yaml). Provider plugins (node images) are not run.
    Build(StackBuildArgs),
}

/// csctl's modes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeArg {
    /// v1, or `--latest`'s versions bumped where the sources changed.
    Stable,
    /// v0-sha.<first 7 characters of the directory's hash>.
    Hash,
    /// The versions given with --version (and --cluster-addon-version, --node-image-version).
    Custom,
}

/// `scs-e2e stack build` arguments.
#[derive(Args, Debug)]
pub struct StackBuildArgs {
    /// A csctl stack directory (with csctl.yaml, like cluster-stacks' providers/docker/scs), a
    /// directory with scs-e2e's stack.yaml (builds every release it lists; --mode is then
    /// custom, with its versions) or `builtin:inmemory/scs`.
    pub dir: String,
    /// How versions are chosen (csctl's --mode).
    #[arg(short, long, value_enum, default_value = "stable")]
    pub mode: ModeArg,
    /// Custom mode: the cluster stack version, like v2 (csctl's --cluster-stack-version).
    #[arg(long, alias = "cluster-stack-version")]
    pub version: Option<String>,
    /// Custom mode: the cluster addon version (default: --version).
    #[arg(long)]
    pub cluster_addon_version: Option<String>,
    /// Custom mode: the node image version (default: --version).
    #[arg(long)]
    pub node_image_version: Option<String>,
    /// Stable mode: the previous release's directory (csctl downloads it from GitHub or OCI);
    /// without it the release is the first, v1.
    #[arg(long)]
    pub latest: Option<PathBuf>,
    /// Where the release directories go (csctl's default too).
    #[arg(short, long, default_value = "./.release")]
    pub output: PathBuf,
    /// Print only each release's cluster stack version (for scripts: the hash mode's version).
    #[arg(long)]
    pub print_version: bool,
}

pub(super) fn stack_cmd(cmd: StackCmd) -> Result<Exit, Fatal> {
    let StackCmd::Build(a) = cmd;
    let mode = match a.mode {
        ModeArg::Custom => {
            let Some(v) = &a.version else {
                return Err(Fatal::usage(anyhow::anyhow!(
                    "--mode custom needs --version (the cluster stack version, like v2)"
                )));
            };
            Mode::Custom(Versions {
                cluster_stack: v.clone(),
                cluster_addon: a.cluster_addon_version.clone().unwrap_or_else(|| v.clone()),
                node_image: a.node_image_version.clone().unwrap_or_else(|| v.clone()),
            })
        }
        m => {
            if a.version.is_some() || a.cluster_addon_version.is_some() || a.node_image_version.is_some() {
                return Err(Fatal::usage(anyhow::anyhow!(
                    "--version, --cluster-addon-version and --node-image-version are for --mode custom"
                )));
            }
            if m == ModeArg::Hash {
                if a.latest.is_some() {
                    return Err(Fatal::usage(anyhow::anyhow!("--latest is for --mode stable")));
                }
                Mode::Hash
            } else {
                Mode::Stable { latest: a.latest.clone() }
            }
        }
    };
    let source = crate::stack::source::open(&a.dir, |s| PathBuf::from(s)).map_err(Fatal::usage)?;
    let bin = build::Assets::locate(None, None).bin_dir;
    let helm = crate::process::which("helm", std::slice::from_ref(&bin)).ok_or_else(|| {
        Fatal::infra(anyhow::anyhow!(
            "helm packages the charts and is neither on PATH nor in the lab ({}): `scs-e2e lab install` builds it",
            bin.display()
        ))
    })?;
    let built = source.build_all(&mode, &a.output, &helm).map_err(Fatal::usage)?;
    for b in built {
        for n in &b.notes {
            eprintln!("note: {n}");
        }
        if a.print_version {
            println!("{}", b.versions.cluster_stack);
        } else {
            println!(
                "Created {} (cluster stack {}, cluster addon {}, node image {}, Kubernetes {})",
                b.dir.display(),
                b.versions.cluster_stack,
                b.versions.cluster_addon,
                b.versions.node_image,
                b.kubernetes_version
            );
        }
    }
    Ok(Exit::Passed)
}
