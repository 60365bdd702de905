//! The integration tests, one binary (`cargo test --test system [-- module::]`): one link instead of
//! fourteen, and tests of different areas (a kind cluster, a Cluster API lab, Keystone) wait on
//! their real peers at the same time instead of one test binary after another.
//! Named `system` so that cargo runs it after `suites` (test binaries run in name order): its
//! kind tests wait for the images, which CI builds beside the lab-only tests and suites.

#[path = "../common/mod.rs"]
mod common;

mod architecture;
mod capo;
mod checks;
mod cli;
mod csctl;
mod kind;
mod lab;
mod lab_faults;
mod loader;
mod mgmt;
mod openstack;
mod openstack_resources;
mod openstack_run;
mod openstack_services;
mod reports;
mod stacks;
mod upload;
mod zuul;
