//! `node-distribution-check` (scs-0214-v2): nodes spread over failure zones, visible through the
//! standard topology labels. Manual in the spec, so informational unless asked for.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use super::{Level, Outcome, Verdict};

/// Node label marking control-plane nodes.
pub const CONTROL_PLANE: &str = "node-role.kubernetes.io/control-plane";
/// Standard node label naming the node's failure zone.
pub const ZONE: &str = "topology.kubernetes.io/zone";
/// Standard node label naming the node's region.
pub const REGION: &str = "topology.kubernetes.io/region";

/// Decides from node names and labels.
pub fn evaluate(nodes: &BTreeMap<String, BTreeMap<String, String>>) -> Outcome {
    if nodes.len() < 2 {
        return Outcome::new(Verdict::Fail).with(
            Level::Error,
            format!("{} node(s): at least 2 are needed for any distribution", nodes.len()),
        );
    }
    let missing: Vec<String> = nodes
        .iter()
        .filter_map(|(n, l)| {
            let lacks: Vec<&str> = [ZONE, REGION].into_iter().filter(|k| !l.contains_key(*k)).collect();
            (!lacks.is_empty()).then(|| format!("{n} lacks {}", lacks.join(" and ")))
        })
        .collect();
    if !missing.is_empty() {
        return Outcome::new(Verdict::Fail).with(Level::Error, format!("nodes without topology labels: {}", missing.join("; ")));
    }
    let labelled: Vec<&String> = nodes
        .iter()
        .filter(|(_, l)| l.contains_key(CONTROL_PLANE))
        .map(|(n, _)| n)
        .collect();
    // Managed offers often hide the control plane: without role labels every node counts.
    let control: Vec<&String> = if labelled.is_empty() { nodes.keys().collect() } else { labelled };
    let mut out = Outcome::new(Verdict::Pass);
    for (what, key) in [("zone", ZONE), ("region", REGION)] {
        let values: BTreeSet<&str> = control.iter().map(|n| nodes[*n][key].as_str()).collect();
        if values.len() < 2 {
            out = out.with(
                Level::Warning,
                format!(
                    "all {} control-plane node(s) are in one {what} ({}): a {what} failure takes the control plane down",
                    control.len(),
                    values.iter().next().unwrap_or(&"")
                ),
            );
        }
    }
    let zones: BTreeSet<&str> = nodes.values().map(|l| l[ZONE].as_str()).collect();
    out.with(
        Level::Info,
        format!("{} nodes ({} control plane) in {} zone(s)", nodes.len(), control.len(), zones.len()),
    )
}

/// The testcase: lists the cluster's nodes and [`evaluate`]s them; ABORT if they cannot be listed.
pub async fn run(client: &kube::Client) -> Outcome {
    let api: Api<Node> = Api::all(client.clone());
    match api.list(&ListParams::default()).await {
        Ok(list) => evaluate(
            &list
                .items
                .into_iter()
                .map(|n| (n.metadata.name.unwrap_or_default(), n.metadata.labels.unwrap_or_default()))
                .collect(),
        ),
        Err(e) => Outcome::new(Verdict::Abort).with(Level::Critical, format!("cannot list nodes: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenarios() -> BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>> {
        serde_saphyr::from_str(include_str!("../../../fixtures/scs-standards/testdata/node-scenarios.yaml")).unwrap()
    }

    #[test]
    fn upstream_scenarios_under_the_v2_rules() {
        let s = scenarios();
        let verdict = |name: &str| evaluate(&s[name]);
        assert_eq!(verdict("success-1").verdict, Verdict::Pass);
        assert!(
            verdict("success-1")
                .messages
                .iter()
                .any(|(l, m)| *l == Level::Warning && m.contains("one region")),
            "shared region warns"
        );
        assert_eq!(verdict("success-2").verdict, Verdict::Pass);
        // v2 dropped host-id: one zone is a warning, not a failure.
        let one_zone = verdict("no-distribution-2");
        assert_eq!(one_zone.verdict, Verdict::Pass);
        assert!(
            one_zone
                .messages
                .iter()
                .any(|(l, m)| *l == Level::Warning && m.contains("one zone"))
        );
        assert_eq!(
            verdict("missing-labels").verdict,
            Verdict::Pass,
            "a missing host-id does not matter any more"
        );
        let few = verdict("not-enough-nodes");
        assert_eq!(few.verdict, Verdict::Fail);
        assert!(few.messages[0].1.contains("1 node(s): at least 2"));
    }

    #[test]
    fn topology_labels_are_required_and_unlabelled_control_planes_count_all_nodes() {
        let mut nodes = scenarios()["success-1"].clone();
        nodes.get_mut("worker-1").unwrap().remove(ZONE);
        let o = evaluate(&nodes);
        assert_eq!(o.verdict, Verdict::Fail);
        assert!(
            o.messages[0].1.contains("worker-1 lacks topology.kubernetes.io/zone"),
            "{:?}",
            o.messages
        );

        let mut nodes = scenarios()["success-1"].clone();
        for l in nodes.values_mut() {
            l.remove(CONTROL_PLANE);
        }
        let o = evaluate(&nodes);
        assert_eq!(o.verdict, Verdict::Pass);
        assert!(
            o.messages.iter().any(|(_, m)| m == "6 nodes (6 control plane) in 3 zone(s)"),
            "{:?}",
            o.messages
        );
    }
}
