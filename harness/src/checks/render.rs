//! Renderers of a check run: the console summary and JUnit (the YAML is the compliance model
//! serialized, [`yaml`]).

use std::collections::BTreeMap;

use super::compliance::{Report, results};
use super::request::Request;

/// The compliance YAML, as upstream writes it.
pub fn yaml(r: &Report) -> String {
    serde_saphyr::to_string(r).expect("the compliance report serializes")
}

/// `- main: PASS (3 passed)` per version and target, then FAILED / ABORTED / MISSING lists.
pub fn summary(req: &Request, r: &Report) -> String {
    let res = results(r);
    let mut out = format!(
        "{} ({}), subject {}, reference date {}\n",
        req.spec.name, req.spec.uuid, req.subject, req.reference_date
    );
    let versions: Vec<String> = match &req.forced_version {
        Some(v) => vec![v.clone()],
        None => req.spec.versions_in_force(req.reference_date).into_iter().map(|(v, _)| v).collect(),
    };
    for v in versions {
        out.push_str(&format!("{v}:\n"));
        for (target, ids) in req.spec.targets(&v) {
            let ids: Vec<&String> = ids
                .iter()
                .filter(|id| req.tests.as_ref().is_none_or(|re| re.is_match(id)))
                .collect();
            let (mut pass, mut fail, mut abort, mut missing) = (vec![], vec![], vec![], vec![]);
            for id in ids {
                match res.get(id) {
                    Some(1) => pass.push(id),
                    Some(-1) => fail.push(id),
                    Some(_) => abort.push(id),
                    None => missing.push(id),
                }
            }
            let verdict = if !fail.is_empty() {
                "FAIL"
            } else if !abort.is_empty() || !missing.is_empty() {
                "ABORT"
            } else {
                "PASS"
            };
            let mut counts = vec![format!("{} passed", pass.len())];
            for (n, what) in [(fail.len(), "failed"), (abort.len(), "aborted"), (missing.len(), "missing")] {
                if n > 0 {
                    counts.push(format!("{n} {what}"));
                }
            }
            out.push_str(&format!("- {target}: {verdict} ({})\n", counts.join(", ")));
            for (label, list) in [("FAILED", &fail), ("ABORTED", &abort), ("MISSING", &missing)] {
                if list.is_empty() {
                    continue;
                }
                out.push_str(&format!("  {label}:\n"));
                for id in list.iter() {
                    let tc = req.spec.testcase(id);
                    out.push_str(&format!(
                        "  - {id}: {}\n",
                        tc.and_then(|t| t.description.as_deref()).unwrap_or("").trim()
                    ));
                    if let Some(u) = tc.and_then(|t| t.url.as_deref()) {
                        out.push_str(&format!("    > {u}\n"));
                    }
                }
            }
        }
    }
    out
}

/// JUnit: one testcase per spec testcase (PASS pass, FAIL failure, ABORT error, missing skipped),
/// each with the `timestamp` and `time` of the invocation that gave its result (what was not run
/// gets the report's time and 0 s).
pub fn junit(req: &Request, r: &Report) -> String {
    use quick_junit::{NonSuccessKind, Report as JReport, TestCase, TestCaseStatus, TestSuite};
    let res = results(r);
    let checked_at = chrono::NaiveDateTime::parse_from_str(&r.checked_at, "%Y-%m-%d %H:%M:%S")
        .map(|t| t.and_utc())
        .unwrap_or_else(|_| chrono::Utc::now());
    let timing_of = |id: &str| {
        r.run
            .invocations
            .values()
            .find(|inv| inv.results.contains_key(id))
            .and_then(|inv| inv.timing)
            .unwrap_or((checked_at, std::time::Duration::ZERO))
    };
    let timed = |tc: &mut TestCase, (at, took): (chrono::DateTime<chrono::Utc>, std::time::Duration)| {
        tc.set_timestamp(at.fixed_offset());
        tc.set_time(took);
    };
    let mut suite = TestSuite::new(format!("scs-compliance.{}", req.subject));
    let first = r.run.invocations.values().filter_map(|inv| inv.timing.map(|t| t.0)).min();
    suite.set_timestamp(first.unwrap_or(checked_at).fixed_offset());
    suite.set_time(r.run.invocations.values().filter_map(|inv| inv.timing.map(|t| t.1)).sum());
    let messages: BTreeMap<&str, Vec<&String>> = r.run.invocations.values().fold(BTreeMap::new(), |mut m, inv| {
        for id in inv.results.keys() {
            m.entry(id.as_str()).or_insert_with(Vec::new).extend(inv.stderr.iter());
        }
        m
    });
    for sel in req.select() {
        let status = match res.get(&sel.id) {
            Some(1) => TestCaseStatus::success(),
            Some(v) => {
                let mut s = TestCaseStatus::non_success(if *v == -1 { NonSuccessKind::Failure } else { NonSuccessKind::Error });
                let lines = messages.get(sel.id.as_str()).cloned().unwrap_or_default();
                s.set_message(lines.first().map(|l| l.as_str()).unwrap_or(if *v == -1 { "FAIL" } else { "ABORT" }));
                s.set_description(lines.iter().map(|l| l.as_str()).collect::<Vec<_>>().join("\n"));
                s
            }
            None => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(if sel.manual {
                    "manual testcase: not run automatically"
                } else {
                    "missing: no result"
                });
                s
            }
        };
        let mut tc = TestCase::new(sel.id.as_str(), status);
        tc.set_classname(format!("scs-compliance.{}", req.subject));
        timed(&mut tc, timing_of(&sel.id));
        suite.add_test_case(tc);
    }
    let mut rep = JReport::new("scs-e2e");
    rep.add_test_suite(suite);
    for inv in r.run.invocations.values().filter(|i| !i.e2e.is_empty()) {
        let mut ts = TestSuite::new(format!("sonobuoy.{}", inv.id));
        // Our record of Sonobuoy's results has no per-test times: each carries its run's start.
        let (at, took) = inv.timing.unwrap_or((checked_at, std::time::Duration::ZERO));
        ts.set_timestamp(at.fixed_offset());
        ts.set_time(took);
        // A focus leaves thousands of specs skipped: they are counted, not listed.
        let skipped = inv.e2e.iter().filter(|(_, st)| st == "skipped").count();
        if skipped > 0 {
            ts.set_system_out(format!("{skipped} e2e tests not selected (skipped) are not listed"));
        }
        for (name, status) in inv.e2e.iter().filter(|(_, st)| st != "skipped") {
            let st = match status.as_str() {
                "passed" | "failed_ok" => TestCaseStatus::success(),
                "failed" => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message("failed");
                    s
                }
                _ => TestCaseStatus::skipped(),
            };
            let mut tc = TestCase::new(name.as_str(), st);
            tc.set_classname(format!("sonobuoy.{}", inv.id));
            tc.set_timestamp(at.fixed_offset());
            ts.add_test_case(tc);
        }
        rep.add_test_suite(ts);
    }
    rep.to_string().expect("JUnit serializes")
}
