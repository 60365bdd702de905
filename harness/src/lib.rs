//! scs-e2e: end-to-end conformance and testing harness for SCS Cluster Stacks.
//!
//! Suites (declarative YAML) expand into a plan; the engine runs it in an environment (the lab,
//! an existing cluster, kind, OpenStack) and records one results model that every report
//! writer (JUnit, JSON, console) renders.

#![warn(missing_docs)]

pub mod base;
pub mod checks;
pub mod cli;
pub mod collect;
pub mod config;
pub mod context;
pub mod engine;
pub mod env;
pub mod error;
pub mod format;
pub mod kube;
pub mod process;
pub mod redact;
pub mod report;
pub mod stack;
pub mod steps;
pub mod suite;
#[doc(hidden)]
pub mod testing;
