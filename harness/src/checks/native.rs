//! The testcases implemented here instead of by the spec's scripts: one registry line each.

use futures::future::BoxFuture;

use super::request::Request;
use super::{Level, Outcome, Verdict};

/// A native check: its testcase id, whether it is informational (not in the spec: it runs only
/// when `-t` names it) and how it runs against a cluster.
pub struct Native {
    /// The testcase id it implements (the spec's, or its own if informational).
    pub id: &'static str,
    /// Not in the spec: runs only when `-t` names it.
    pub informational: bool,
    /// Runs the check against the cluster, for the request's options.
    pub run: for<'a> fn(&'a kube::Client, &'a Request) -> BoxFuture<'a, Outcome>,
}

/// Every native check. Adding one is a module beside this one plus a line here.
pub static CHECKS: &[Native] = &[
    Native {
        id: super::version_policy::TESTCASE,
        informational: false,
        run: |c, req| Box::pin(version_policy(c, req)),
    },
    Native {
        id: "node-distribution-check",
        informational: false,
        run: |c, _| Box::pin(super::node_distribution::run(c)),
    },
    Native {
        id: "default-storage-class",
        informational: true,
        run: |c, req| Box::pin(super::storage_class::run(c, req.storage_timeout, &req.run_id)),
    },
];

/// The native check for a testcase id.
pub fn find(id: &str) -> Option<&'static Native> {
    CHECKS.iter().find(|n| n.id == id)
}

async fn version_policy(client: &kube::Client, req: &Request) -> Outcome {
    let inputs = &req.version_policy;
    use super::version_policy as vp;
    match vp::cluster_version(client).await {
        Ok(v) => vp::run(&v, &inputs.sources, &inputs.options, inputs.now.unwrap_or_else(chrono::Utc::now)).await,
        Err(e) => Outcome::new(Verdict::Abort).with(Level::Critical, format!("{e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_native_check_is_found_by_its_own_id_and_nothing_else_is() {
        let mut ids: Vec<&str> = CHECKS.iter().map(|n| n.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), CHECKS.len(), "ids are unique");
        for n in CHECKS {
            assert!(std::ptr::eq(find(n.id).unwrap(), n));
        }
        // An id without a registry line is not native: it runs the spec's script.
        assert!(find("cncf-k8s-conformance").is_none());
        assert!(find("default-storage-class-2").is_none());
    }
}
