//! Suites: the declarative format (model), reading and checking it (loader), and expanding it
//! into the scenarios a run executes (plan).

pub mod loader;
pub mod model;
pub mod plan;
