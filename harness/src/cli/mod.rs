//! The `scs-e2e` command line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{DeletePolicy, Settings};
use crate::engine::{self, RunOptions};
use crate::env::Environment;
use crate::env::lab::{self, LabOptions, build};
use crate::error::{Exit, Fatal, InputError};
use crate::report::console::{Console, Verbosity};
use crate::suite::loader::{self, LoadedSuite};
use crate::suite::plan::{Filters, Plan, build_plan};

mod check;
mod images;
mod lab_cmd;
mod report;
mod run;
mod stack;

pub use check::CheckArgs;
use check::check;
pub use images::ImagesCmd;
use images::images_cmd;
use lab_cmd::lab_cmd;
pub use lab_cmd::{LabAssetArgs, LabCmd};
pub use report::ReportCmd;
pub use run::{ReproduceArgs, RunArgs, Select, plan_from};
use run::{print_plan, reproduce, run, validate};
pub use stack::{StackBuildArgs, StackCmd};

const EXIT_CODES: &str = "Exit codes:
  0    all tests passed
  1    at least one test failed
  2    usage, suite or config error (nothing was touched)
  3    infrastructure error: the environment could not come up
  130  interrupted (SIGINT/SIGTERM); reports are still written

Settings: flags > environment (SCS_E2E_*, KUBECONFIG) > --config file > defaults.";

/// The parsed `scs-e2e` command line: global output flags and the subcommand.
#[derive(Parser, Debug)]
#[command(name = "scs-e2e", version, about = "End-to-end conformance and testing harness for SCS Cluster Stacks", after_help = EXIT_CODES)]
pub struct Cli {
    /// Only failures and the summary.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Step starts and debug logs too.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Cmd,
}

/// The `scs-e2e` subcommands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run suites (default: the quickstart suite in the lab).
    #[command(after_help = EXIT_CODES)]
    Run(RunArgs),
    /// List the scenarios and steps a run would execute, after filters.
    List {
        /// Which suites and scenarios to list.
        #[command(flatten)]
        select: Select,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Check suite and config files without running anything.
    Validate {
        /// Suite or config files to check (a file with `kind: Config` is checked as config).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the suite format (or of the config file).
    Schema {
        /// Print the schema of the config file instead.
        #[arg(long)]
        config: bool,
    },
    /// Run the SCS KaaS standard checks (scs-compatible-kaas) against a cluster; takes
    /// upstream's scs-compliance-check.py command line too.
    #[command(after_help = check::CHECK_HELP)]
    Check(CheckArgs),
    /// The local lab: a real control plane from Go modules, no Docker.
    Lab {
        /// The lab subcommand.
        #[command(subcommand)]
        command: LabCmd,
    },
    /// Container images built from source for `--env kind` (kind node image, management
    /// controllers, Sonobuoy and the e2e test images), so nothing is ever pulled: air-gapped
    /// sites, machines without a registry.
    Images {
        /// The images subcommand.
        #[command(subcommand)]
        command: ImagesCmd,
    },
    /// Cluster stacks: build release assets as csctl does.
    Stack {
        /// The stack subcommand.
        #[command(subcommand)]
        command: StackCmd,
    },
    /// Work with results.json files.
    Report {
        /// The report subcommand.
        #[command(subcommand)]
        command: ReportCmd,
    },
    /// Re-run a report's failed scenarios with the suite content it recorded, keeping the
    /// environment (`--delete never`) so you can look at it.
    Reproduce(ReproduceArgs),
    /// List (and with --yes delete) the OpenStack resources a workload cluster left behind.
    #[command(after_help = crate::env::openstack::cleanup::CLEANUP_HELP)]
    Cleanup(crate::env::openstack::cleanup::CleanupArgs),
}

/// Runs the command line and returns the process exit code (see `Exit`); the binary's entry point.
pub fn main() -> i32 {
    crate::redact::add_from_env();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => Exit::Usage as i32,
            };
        }
    };
    init_tracing(cli.verbose || matches!(&cli.command, Cmd::Check(a) if a.debug));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(f) => {
            eprintln!("{}", crate::redact::apply(&format!("error: {:#}", f.error)));
            f.exit as i32
        }
    }
}

fn init_tracing(verbose: bool) {
    let default = if verbose { "scs_e2e=debug,kube=warn" } else { "scs_e2e=warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SCS_E2E_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| crate::redact::Stderr)
        .try_init();
}

fn verbosity(cli: &Cli) -> Verbosity {
    if cli.quiet {
        Verbosity::Quiet
    } else if cli.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    }
}

async fn dispatch(cli: Cli) -> Result<i32, Fatal> {
    let v = verbosity(&cli);
    if let Cmd::Check(args) = cli.command {
        return check(args).await;
    }
    dispatch_exit(cli.command, v).await.map(|e| e as i32)
}

async fn dispatch_exit(command: Cmd, v: Verbosity) -> Result<Exit, Fatal> {
    match command {
        Cmd::Run(args) => run(args, v).await,
        Cmd::Reproduce(args) => reproduce(args, v).await,
        Cmd::Cleanup(args) => crate::env::openstack::cleanup::run(args).await,
        Cmd::List { select, json } => {
            let (_, plan) = plan_from(&select)?;
            print_plan(&plan, json, false);
            Ok(Exit::Passed)
        }
        Cmd::Validate { files } => validate(&files),
        Cmd::Schema { config } => {
            let schema = if config {
                schemars::schema_for!(crate::config::ConfigFile)
            } else {
                crate::suite::model::suite_schema()
            };
            println!("{}", serde_json::to_string_pretty(&schema).expect("schema serializes"));
            Ok(Exit::Passed)
        }
        Cmd::Lab { command } => lab_cmd(command).await,
        Cmd::Images { command } => images_cmd(command).await,
        Cmd::Stack { command } => tokio::task::block_in_place(|| stack::stack_cmd(command)),
        Cmd::Check(_) => unreachable!("handled in dispatch"),
        Cmd::Report {
            command: ReportCmd::Merge { files, output },
        } => report::merge(&files, &output),
        Cmd::Report {
            command: ReportCmd::Upload { report, upload },
        } => report::upload(&report, &upload).await,
    }
}
