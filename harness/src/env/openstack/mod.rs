//! `--env openstack`: Cluster API's OpenStack provider against an SCS OpenStack cloud. So far:
//! the credentials (clouds.yaml / secure.yaml) the environment reads.

pub mod clouds;
