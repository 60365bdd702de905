//! `--env openstack`: Cluster API's OpenStack provider against an SCS OpenStack cloud. So far:
//! the credentials (clouds.yaml / secure.yaml) and the objects openstack-csp-helper would create.

pub mod clouds;
pub mod identity;
pub mod secrets;
