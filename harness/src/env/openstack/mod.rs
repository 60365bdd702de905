//! `--env openstack`: Cluster API's OpenStack provider against an SCS OpenStack cloud. So far:
//! the credentials (clouds.yaml / secure.yaml), the objects openstack-csp-helper would create,
//! the resource APIs, and what a cluster leaves behind (leak check, `scs-e2e cleanup`).

pub mod cleanup;
pub mod clouds;
pub mod clusters;
pub mod environment;
pub mod identity;
pub mod ownership;
pub mod resources;
pub mod secrets;
