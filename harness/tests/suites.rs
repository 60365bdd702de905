//! Every scenario in `suites/` as a libtest trial (`cargo test --test suites -- <filter>`), run by
//! the real engine against this binary's lab (scenarios with cluster-stack steps get a lab with
//! Cluster API and CSO of their own). Scenarios of suites that cannot run in the lab are listed
//! as ignored.

mod common;

use std::path::PathBuf;

use libtest_mimic::{Arguments, Failed, Trial};
use scs_e2e::config::Settings;
use scs_e2e::engine::{self, RunOptions};
use scs_e2e::env::kubeconfig::KubeconfigEnv;
use scs_e2e::env::lab::LabEnv;
use scs_e2e::error::Exit;
use scs_e2e::suite::loader::{LoadedSuite, load_suite_file, suites_in};
use scs_e2e::suite::plan::{Filters, build_plan, expand_suite};

fn main() {
    let args = Arguments::from_args();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../suites");
    let settings = Settings::default();
    let mut trials = Vec::new();
    for f in suites_in(&dir) {
        let ls = load_suite_file(&f).unwrap_or_else(|e| panic!("{e}"));
        let envs = &ls.suite.environments;
        let runs_here = envs.is_empty() || envs.iter().any(|e| e == "lab" || e == "kubeconfig");
        for sc in expand_suite(&ls, &settings).unwrap_or_else(|e| panic!("{e}")) {
            let (ls, id) = (ls.clone(), sc.id());
            let t = Trial::test(format!("{}::{}", ls.name(), sc.name), move || run(ls, &id)).with_kind("scenario");
            trials.push(t.with_ignored_flag(!runs_here));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}

fn run(ls: LoadedSuite, id: &str) -> Result<(), Failed> {
    let focus = format!("^{}$", regex::escape(id));
    let filters = Filters::parse(Some(&focus), None, None)?;
    let plan = build_plan(vec![ls], &Settings::default(), &filters)?;
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("suites").join(id);
    let _ = std::fs::remove_dir_all(&artifacts);
    let opts = RunOptions::new(artifacts.clone());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let report = rt.block_on(async {
        if plan.uses_cluster_stacks() {
            // Cluster API and CSO: a lab of its own with that layer (one at a time per machine).
            let mut lo = common::lab_options("suite-capi");
            lo.cluster_api = true;
            let mut env = LabEnv::new(lo, false);
            engine::run(&plan, &mut env, &opts, Default::default(), &scs_e2e::report::console::Silent).await
        } else {
            let mut env = KubeconfigEnv::new(common::lab().kubeconfig());
            engine::run(&plan, &mut env, &opts, Default::default(), &scs_e2e::report::console::Silent).await
        }
    });
    engine::write_reports(&report, &opts)?;
    if report.exit() == Exit::Passed {
        Ok(())
    } else {
        Err(format!(
            "{}\nartifacts: {}",
            scs_e2e::report::console::summary_text(&report),
            artifacts.display()
        )
        .into())
    }
}
