//! `results.json`: the versioned source of truth, and merging the results of shards.

use std::collections::BTreeMap;
use std::path::Path;

use super::{RunReport, SCHEMA};

/// File name of the results model.
pub const FILE_NAME: &str = "results.json";

/// The report as pretty-printed JSON (`results.json`).
pub fn render(r: &RunReport) -> String {
    serde_json::to_string_pretty(r).expect("report serializes") + "\n"
}

/// Reads a `results.json`; one of another schema version is an error.
pub fn read(path: &Path) -> anyhow::Result<RunReport> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not JSON: {e}", path.display()))?;
    let schema = v.get("schema").and_then(|s| s.as_str()).unwrap_or("");
    if schema != SCHEMA {
        anyhow::bail!(
            "{}: schema is `{schema}`, this scs-e2e reads `{SCHEMA}`: use the scs-e2e version that wrote it",
            path.display()
        );
    }
    serde_json::from_value(v).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Merges shard reports into one. Each scenario must come from exactly one shard: a scenario in
/// two reports is an error (a doubled testcase), never silently dropped.
pub fn merge(reports: Vec<RunReport>) -> anyhow::Result<RunReport> {
    let several = reports.len() > 1;
    let mut it = reports.into_iter().map(|mut r| {
        // Each shard brought up its own environment: keep its phases apart.
        if several {
            for p in &mut r.phases {
                p.name = format!("{} ({})", p.name, r.run_id);
            }
        }
        r
    });
    let mut out = it
        .next()
        .ok_or_else(|| anyhow::anyhow!("nothing to merge: give at least one results.json"))?;
    let mut seen: BTreeMap<String, String> = out.scenarios.iter().map(|s| (s.id(), out.run_id.clone())).collect();
    let first_started = out.started_at;
    let mut ended = out.started_at + chrono::Duration::milliseconds((out.duration_secs * 1000.0) as i64);
    for r in it {
        for sc in &r.scenarios {
            if let Some(prev) = seen.insert(sc.id(), r.run_id.clone()) {
                anyhow::bail!(
                    "scenario {} is in two reports (runs {prev} and {}): merge each shard once",
                    sc.id(),
                    r.run_id
                );
            }
        }
        if r.environment != out.environment {
            out.properties
                .insert("environments".into(), format!("{},{}", out.environment, r.environment));
        }
        let shard_end = r.started_at + chrono::Duration::milliseconds((r.duration_secs * 1000.0) as i64);
        ended = ended.max(shard_end);
        out.started_at = out.started_at.min(r.started_at);
        out.interrupted |= r.interrupted;
        out.phases.extend(r.phases);
        for s in r.suites {
            if !out.suites.iter().any(|x| x.name == s.name && x.sha256 == s.sha256) {
                out.suites.push(s);
            }
        }
        out.scenarios.extend(r.scenarios);
        out.run_id = format!("{}+{}", out.run_id, r.run_id);
    }
    out.started_at = out.started_at.min(first_started);
    out.duration_secs = super::secs((ended - out.started_at).to_std().unwrap_or_default());
    out.properties.remove("shard");
    out.scenarios.sort_by_key(|s| s.id());
    Ok(out)
}
