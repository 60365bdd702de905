//! `version-policy-check` (scs-0210-v2): the cluster runs a supported Kubernetes branch and keeps
//! up with its patch releases (31 days; 14 days when its version has a critical CVE).
//!
//! Loading the inputs (sources, on-disk cache, bounded concurrency) is kept apart from the
//! decision ([`evaluate`]), so the known answers are tested without a network or a clock.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::{Level, Outcome, Verdict};

/// The testcase id this check implements.
pub const TESTCASE: &str = "version-policy-check";

/// A newer patch of the cluster's branch older than this makes the cluster outdated.
pub const PATCH_CADENCE: TimeDelta = TimeDelta::days(31);
/// The same, for a cluster version with a critical CVE.
pub const CVE_CADENCE: TimeDelta = TimeDelta::days(14);
/// From this age of a newer patch on, a cluster with a critical CVE is told to update.
pub const CVE_WARN_AGE: TimeDelta = TimeDelta::days(2);
/// CVSS base score from which a CVE counts as critical for the policy.
pub const CRITICAL_SCORE: f64 = 8.0;

mod feeds;
mod fetch;
mod versions;

pub use feeds::*;
pub use fetch::*;
pub use versions::*;

// ---------------------------------------------------------------------------------------------
// The decision

fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The policy, decided for `cluster` at the reference time `now`.
pub fn evaluate(cluster: Version, inputs: &Inputs, now: DateTime<Utc>) -> Outcome {
    let mut msgs: Vec<(Level, String)> = Vec::new();
    let done = |verdict, messages| Outcome { verdict, messages };

    // Should a branch be listed twice, the later end of life is the one that was corrected.
    let mut eol: BTreeMap<Branch, BranchEol> = BTreeMap::new();
    for e in &inputs.eol {
        let entry = eol.entry(e.branch).or_insert_with(|| e.clone());
        entry.end_of_life = entry.end_of_life.max(e.end_of_life);
    }
    // Counted at the reference time, not today: old data is fine for a check of the past.
    let supported = eol.values().filter(|e| e.is_supported(now)).count();
    if supported < 3 {
        msgs.push((
            Level::Warning,
            format!(
                "The EOL data isn't up-to-date: it has {supported} supported branch(es) on {}.",
                now.date_naive()
            ),
        ));
    }
    if supported < 2 {
        msgs.push((
            Level::Critical,
            "The EOL data is critically outdated (fewer than 2 supported branches); update k8s-eol-data.yml.".into(),
        ));
        return done(Verdict::Abort, msgs);
    }

    let branch = cluster.branch();
    match eol.get(&branch) {
        Some(e) if !e.is_supported(now) => {
            msgs.push((
                Level::Error,
                format!(
                    "The K8s cluster version {cluster} is already EOL: branch {branch} reached its end of life on {}.",
                    e.end_of_life
                ),
            ));
            return done(Verdict::Fail, msgs);
        }
        Some(_) => {}
        // Upstream counts every branch the data does not list as EOL, a newer one too; the verdict
        // follows it, and the warning says what it more likely means.
        None if eol.keys().next_back().is_some_and(|newest| branch > *newest) => {
            msgs.push((
                Level::Warning,
                format!(
                    "Branch {branch} of the cluster version {cluster} is newer than any in the EOL data: like the upstream check, this counts it as EOL, though more likely the data is outdated (update k8s-eol-data.yml)."
                ),
            ));
            msgs.push((Level::Error, format!("The K8s cluster version {cluster} is already EOL.")));
            return done(Verdict::Fail, msgs);
        }
        None => {
            msgs.push((
                Level::Error,
                format!("The K8s cluster version {cluster} is on branch {branch}, which the EOL data does not list as supported."),
            ));
            return done(Verdict::Fail, msgs);
        }
    }

    // Releases after the reference time did not exist yet then.
    let newer: Vec<(&Release, TimeDelta)> = inputs
        .releases
        .iter()
        .filter(|r| r.version.branch() == branch && r.version > cluster && r.published_at <= now)
        .map(|r| (r, now - r.published_at))
        .collect();
    // The first patch past the limit is the one whose deadline ran out.
    let first_older_than = |limit: TimeDelta| {
        newer
            .iter()
            .filter(|(_, age)| *age > limit)
            .map(|(r, _)| *r)
            .min_by_key(|r| (r.published_at, r.version))
    };

    let mut verdict = Verdict::Pass;
    if let Some(r) = first_older_than(PATCH_CADENCE) {
        verdict = Verdict::Fail;
        msgs.push((
            Level::Error,
            format!(
                "The K8s cluster version {cluster} is outdated according to the standard: {} was released on {}, more than {} days before {}.",
                r.version,
                fmt_time(r.published_at),
                PATCH_CADENCE.num_days(),
                fmt_time(now)
            ),
        ));
    }

    let critical: Vec<&str> = inputs
        .cves
        .iter()
        .filter(|c| c.is_critical() && c.affects(cluster))
        .map(|c| c.id.as_str())
        .collect();
    for c in inputs.cves.iter().filter(|c| c.is_critical()) {
        for r in c.ranges.iter().filter(|r| r.upper == Upper::DashEnd(cluster)) {
            msgs.push((
                Level::Warning,
                format!(
                    "{} lists the affected versions as `{r}`; like the upstream check, this counts {cluster} as not affected, though the range may well include it.",
                    c.id
                ),
            ));
        }
    }
    if !critical.is_empty() {
        let ids = critical.join(", ");
        match newer.iter().filter(|(_, age)| *age > CVE_WARN_AGE).map(|(r, _)| r.version).max() {
            Some(target) => msgs.push((
                Level::Warning,
                format!("Consider updating from {cluster} to {target} to avoid a CVE ({ids})."),
            )),
            None => msgs.push((
                Level::Info,
                format!(
                    "The K8s cluster version {cluster} has critical CVE(s) {ids}; no newer {branch} patch is older than {} days yet.",
                    CVE_WARN_AGE.num_days()
                ),
            )),
        }
        if let Some(r) = first_older_than(CVE_CADENCE) {
            verdict = Verdict::Fail;
            msgs.push((
                Level::Error,
                format!(
                    "The K8s cluster version {cluster} is an outdated version with a possible CRITICAL CVE ({ids}): {} was released on {}, more than {} days before {}.",
                    r.version,
                    fmt_time(r.published_at),
                    CVE_CADENCE.num_days(),
                    fmt_time(now)
                ),
            ));
        }
    }

    if verdict == Verdict::Pass {
        msgs.push((
            Level::Info,
            format!("The K8s cluster version {cluster} is still in the recency time window."),
        ));
    }
    done(verdict, msgs)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    const RELEASES: &str = include_str!("../../../../fixtures/scs-standards/testdata/releases.json");
    const EOL: &str = include_str!("../../../../fixtures/scs-standards/k8s-eol-data.yml");
    const V1_28_5: Version = Version::new(1, 28, 5);
    const CVE_ID: &str = "CVE-2099-0001";

    fn day(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
    }

    fn fixture_inputs(cves: Vec<CveRecord>) -> Inputs {
        Inputs {
            eol: parse_eol_data(EOL.as_bytes()).unwrap(),
            releases: parse_releases(RELEASES.as_bytes()).unwrap(),
            cves,
        }
    }

    fn exact_cve(score: f64) -> CveRecord {
        CveRecord {
            id: CVE_ID.into(),
            base_score: Some(score),
            ranges: vec![VersionRange {
                lower: V1_28_5,
                upper: Upper::Exact,
            }],
        }
    }

    /// A CVE JSON 5 record with one metric and the given `versions` for product Kubernetes.
    fn record_json(metric_key: &str, score: f64, versions: serde_json::Value) -> Vec<u8> {
        let mut metric = serde_json::Map::new();
        metric.insert("format".into(), json!("CVSS"));
        metric.insert(metric_key.into(), json!({ "version": "3.1", "baseScore": score }));
        serde_json::to_vec(&json!({
            "dataType": "CVE_RECORD",
            "cveMetadata": { "cveId": CVE_ID, "state": "PUBLISHED" },
            "containers": { "cna": {
                "metrics": [metric],
                "affected": [{ "vendor": "Kubernetes", "product": "Kubernetes", "versions": versions }],
            }},
        }))
        .unwrap()
    }

    fn exact_record_json(score: f64) -> Vec<u8> {
        record_json(
            "cvssV3_1",
            score,
            json!([{ "version": "1.28.5", "status": "affected", "versionType": "semver" }]),
        )
    }

    fn has(out: &Outcome, level: Level, needle: &str) -> bool {
        out.messages.iter().any(|(l, m)| *l == level && m.contains(needle))
    }

    #[test]
    fn parse_version_trims_strips_v_and_build_info() {
        assert_eq!(parse_version("  v2.4.99   "), Ok(Version::new(2, 4, 99)));
        assert_eq!(parse_version("v1.28.5+k3s1"), Ok(V1_28_5));
        assert_eq!(parse_version("1.28.5"), Ok(V1_28_5));
        for bad in ["", "v1.28", "1.28.5.1", "1.28.x", "1.28.+5", "unspecified", "0", "1.28.5-eks-1"] {
            assert!(parse_version(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn release_tag_is_cut_at_dash() {
        assert_eq!(parse_release_tag("v1.29.3-dev0"), Ok(Version::new(1, 29, 3)));
        assert_eq!(parse_release_tag("1.24.0"), Ok(Version::new(1, 24, 0)));
        assert!(parse_release_tag("kubernetes-1.2").is_err());
    }

    #[test]
    fn releases_fixture_skips_drafts_and_prereleases() {
        let releases = parse_releases(RELEASES.as_bytes()).unwrap();
        assert_eq!(releases.len(), 16, "20 records, 4 of them pre-releases");
        let v1_28_6 = releases.iter().find(|r| r.version == Version::new(1, 28, 6)).unwrap();
        assert_eq!(v1_28_6.published_at, Utc.with_ymd_and_hms(2024, 1, 17, 19, 40, 9).unwrap());
        // A draft has no published_at, and must not be asked for one.
        let drafts = br#"[{"tag_name": "v1.99.0", "draft": true, "prerelease": false, "published_at": null},
                          {"tag_name": "v1.28.9", "draft": false, "prerelease": false, "published_at": "2024-04-16T22:00:00Z"}]"#;
        assert_eq!(
            parse_releases(drafts).unwrap(),
            vec![Release {
                version: Version::new(1, 28, 9),
                published_at: Utc.with_ymd_and_hms(2024, 4, 16, 22, 0, 0).unwrap()
            }]
        );
    }

    #[test]
    fn eol_fixture_parses() {
        let eol = parse_eol_data(EOL.as_bytes()).unwrap();
        let b128 = eol.iter().find(|e| e.branch == Branch { major: 1, minor: 28 }).unwrap();
        assert_eq!(b128.end_of_life, NaiveDate::from_ymd_opt(2024, 10, 28).unwrap());
        assert!(b128.is_supported(Utc.with_ymd_and_hms(2024, 10, 27, 23, 59, 59).unwrap()));
        assert!(!b128.is_supported(day(2024, 10, 28)));
        assert!(parse_eol_data(b"- branch: '1.x'\n  end-of-life: '2026-06-28'\n").is_err());
        assert!(parse_eol_data(b"- branch: '1.33'\n  end-of-life: 'soon'\n").is_err());
    }

    #[test]
    fn known_answer_recency_without_cve() {
        let inputs = fixture_inputs(vec![]);
        // 1.28.6 came out on 2024-01-17 19:40 UTC.
        for (now, expected) in [
            (day(2024, 1, 17), Verdict::Pass),
            (day(2024, 1, 31), Verdict::Pass),
            (day(2024, 2, 18), Verdict::Fail),
        ] {
            let out = evaluate(V1_28_5, &inputs, now);
            assert_eq!(out.verdict, expected, "at {now}: {out:?}");
            assert!(!out.messages.iter().any(|(l, _)| *l == Level::Warning), "at {now}: {out:?}");
        }
        let out = evaluate(V1_28_5, &inputs, day(2024, 2, 18));
        assert!(has(&out, Level::Error, "1.28.5 is outdated"), "{out:?}");
        assert!(has(&out, Level::Error, "1.28.6 was released on 2024-01-17"), "{out:?}");
    }

    #[test]
    fn known_answer_with_cve_warns_then_fails() {
        let inputs = fixture_inputs(vec![exact_cve(9.8)]);
        let out = evaluate(V1_28_5, &inputs, day(2024, 1, 20));
        assert_eq!(out.verdict, Verdict::Pass, "{out:?}");
        assert!(
            has(&out, Level::Warning, "Consider updating from 1.28.5 to 1.28.6 to avoid a CVE"),
            "{out:?}"
        );
        assert!(has(&out, Level::Warning, CVE_ID), "{out:?}");

        let out = evaluate(V1_28_5, &inputs, day(2024, 2, 1));
        assert_eq!(out.verdict, Verdict::Fail, "{out:?}");
        assert!(has(&out, Level::Warning, "Consider updating from 1.28.5"), "{out:?}");
        assert!(has(&out, Level::Error, "possible CRITICAL CVE"), "{out:?}");

        // Less than 2 days after 1.28.6: nothing to update to yet, so no warning.
        let out = evaluate(V1_28_5, &inputs, day(2024, 1, 19));
        assert_eq!(out.verdict, Verdict::Pass, "{out:?}");
        assert!(!has(&out, Level::Warning, "Consider updating"), "{out:?}");
        // A version outside the range is not affected (1.28.4 is merely outdated by then).
        let out = evaluate(Version::new(1, 28, 4), &inputs, day(2024, 2, 1));
        assert_eq!(out.verdict, Verdict::Fail, "{out:?}");
        assert!(!out.messages.iter().any(|(_, m)| m.contains("CVE")), "{out:?}");
    }

    #[test]
    fn cvss_8_0_counts_and_7_9_does_not() {
        for key in ["cvssV3_0", "cvssV3_1", "cvssV4_0"] {
            let versions = json!([{ "version": "1.28.5", "status": "affected" }]);
            let high = parse_cve_record(CVE_ID, &record_json(key, 8.0, versions.clone())).unwrap();
            let low = parse_cve_record(CVE_ID, &record_json(key, 7.9, versions)).unwrap();
            assert_eq!(high.base_score, Some(8.0), "{key}");
            assert!(high.is_critical(), "{key}");
            assert!(!low.is_critical(), "{key}");
            let now = day(2024, 2, 1);
            assert_eq!(evaluate(V1_28_5, &fixture_inputs(vec![high]), now).verdict, Verdict::Fail, "{key}");
            let out = evaluate(V1_28_5, &fixture_inputs(vec![low]), now);
            assert_eq!(out.verdict, Verdict::Pass, "{key}");
            assert!(!has(&out, Level::Warning, "Consider updating"), "{key}");
        }
        // Every key upstream's `[cC][vV][sS]{1,2}V\d` finds counts, CVSS v2 included; others do not.
        for key in ["cvssV2_0", "CVSSV3_1", "cvsV3", "x_cvssV3_1", "cVssV4_0"] {
            let r = parse_cve_record(CVE_ID, &record_json(key, 9.0, json!([]))).unwrap();
            assert_eq!(r.base_score, Some(9.0), "{key}");
        }
        for key in ["other", "cvssv3_1", "cvss_v3", "CVSS", "cvssV_2"] {
            let r = parse_cve_record(CVE_ID, &record_json(key, 9.0, json!([]))).unwrap();
            assert_eq!(r.base_score, None, "{key}");
            assert!(!r.is_critical(), "{key}");
        }
        // A CVSS metric without a score ends the check, unless another one made the CVE
        // critical already.
        let unscored = br#"{"containers": {"cna": {"metrics": [{"cvssV3_1": {"vectorString": "x"}}]}}}"#;
        assert!(parse_cve_record(CVE_ID, unscored).unwrap_err().to_string().contains("no baseScore"));
        let one_scored =
            br#"{"containers": {"cna": {"metrics": [{"cvssV3_1": {"vectorString": "x"}}, {"cvssV2_0": {"baseScore": 8.0}}]}}}"#;
        assert!(parse_cve_record(CVE_ID, one_scored).unwrap().is_critical());
        // Ranges are read for critical CVEs only: a malformed one elsewhere is no reason to stop.
        let bad = json!([{ "version": "1.28.5", "lessThan": "later", "status": "affected" }]);
        assert!(parse_cve_record(CVE_ID, &record_json("cvssV3_1", 7.9, bad.clone())).is_ok());
        assert!(parse_cve_record(CVE_ID, &record_json("cvssV3_1", 8.0, bad)).is_err());
        // The highest of several metrics counts.
        let two = br#"{"containers": {"cna": {"metrics": [{"cvssV3_1": {"baseScore": 7.9}}, {"cvssV3_0": {"baseScore": 8.1}}]}}}"#;
        assert_eq!(parse_cve_record(CVE_ID, two).unwrap().base_score, Some(8.1));
    }

    #[test]
    fn affected_range_parsing() {
        let v = Version::new;
        assert_eq!(
            parse_affected_range("1.2.3", Some("1.3.0"), None),
            Ok(VersionRange {
                lower: v(1, 2, 3),
                upper: Upper::Below(v(1, 3, 0))
            })
        );
        assert_eq!(
            parse_affected_range("v1.2.3", None, Some("v1.3.0")),
            Ok(VersionRange {
                lower: v(1, 2, 3),
                upper: Upper::UpTo(v(1, 3, 0))
            })
        );
        assert_eq!(
            parse_affected_range("1.2.3", None, None),
            Ok(VersionRange {
                lower: v(1, 2, 3),
                upper: Upper::Exact
            })
        );
        for lower in ["0", "unspecified", "", "1.2.x"] {
            assert_eq!(
                parse_affected_range(lower, None, Some("1.3.0")),
                Ok(VersionRange {
                    lower: Version::MIN,
                    upper: Upper::UpTo(v(1, 3, 0))
                }),
                "{lower:?}"
            );
        }
        assert_eq!(parse_affected_range("1.2.0", Some("*"), None).unwrap().upper, Upper::Unbounded);
        assert_eq!(
            parse_affected_range("1.2.0", Some("1.29.*"), None).unwrap().upper,
            Upper::Below(v(1, 30, 0))
        );
        assert_eq!(
            parse_affected_range("1.2.0", Some("2.*"), None).unwrap().upper,
            Upper::Below(v(3, 0, 0))
        );
        assert!(parse_affected_range("1.2.0", Some("later"), None).is_err());
        assert!(parse_affected_range("1.3.0", Some("1.2.0"), None).is_err(), "ends before it starts");
    }

    #[test]
    fn a_version_written_a_dash_b_is_a_up_to_b_excluded_as_upstream_reads_it() {
        let v = Version::new;
        let dash = |a, b| VersionRange {
            lower: a,
            upper: Upper::DashEnd(b),
        };
        for text in ["1.2.3 - 1.2.5", "v1.2.3 - v1.2.5", " 1.2.3  -  1.2.5 ", "1.2.3\t-\t1.2.5"] {
            assert_eq!(parse_affected_range(text, None, None), Ok(dash(v(1, 2, 3), v(1, 2, 5))), "{text:?}");
        }
        let r = parse_affected_range("1.2.3 - 1.2.5", None, None).unwrap();
        assert!(!r.contains(v(1, 2, 2)) && r.contains(v(1, 2, 3)) && r.contains(v(1, 2, 4)) && !r.contains(v(1, 2, 5)));
        // Without blanks around the dash it is no range: it matches nothing (0.0.0 only).
        for text in ["1.2.3-1.2.5", "1.2.3 -1.2.5", "1.2.3- 1.2.5", "1.2 - 1.3"] {
            let r = parse_affected_range(text, None, None).unwrap();
            assert_eq!(r.upper, Upper::Exact, "{text:?}");
            assert!(!r.contains(v(1, 2, 4)), "{text:?}");
        }
        // A bound given beside it wins; the text is then just an unreadable lower end.
        assert_eq!(
            parse_affected_range("1.2.3 - 1.2.5", Some("1.2.6"), None),
            Ok(VersionRange {
                lower: Version::MIN,
                upper: Upper::Below(v(1, 2, 6))
            })
        );
        assert!(parse_affected_range("1.2.5 - 1.2.3", None, None).is_err(), "reversed");
        // Upstream splits at the dashes and reads both parts as versions: text around them ends it.
        assert!(parse_affected_range("< 1.2.3 - 1.2.5", None, None).is_err());
        // `A.B.x` is an empty range upstream.
        assert!(!parse_affected_range("1.2.x", None, None).unwrap().contains(v(1, 2, 0)));

        // In the policy: 1.28.5 is at the excluded end of a critical `1.28.0 - 1.28.5`: not
        // affected (so it passes in the window a CVE would shorten), with a warning; 1.28.4 is.
        let rec = |text: &str| {
            let versions = json!([{ "version": text, "status": "affected" }]);
            parse_cve_record(CVE_ID, &record_json("cvssV3_1", 9.8, versions)).unwrap()
        };
        let now = day(2024, 2, 1);
        let out = evaluate(V1_28_5, &fixture_inputs(vec![rec("1.28.0 - 1.28.5")]), now);
        assert_eq!(out.verdict, Verdict::Pass, "{out:?}");
        assert!(has(&out, Level::Warning, "counts 1.28.5 as not affected"), "{out:?}");
        let out = evaluate(V1_28_5, &fixture_inputs(vec![rec("1.28.0 - 1.28.6")]), now);
        assert_eq!(out.verdict, Verdict::Fail, "{out:?}");
        assert!(!has(&out, Level::Warning, "as not affected"), "{out:?}");
    }

    #[test]
    fn range_membership() {
        let v = Version::new;
        let exact = VersionRange {
            lower: v(3, 4, 5),
            upper: Upper::Exact,
        };
        assert!(!exact.contains(v(3, 4, 4)) && exact.contains(v(3, 4, 5)) && !exact.contains(v(3, 4, 6)));
        let incl = VersionRange {
            lower: v(1, 2, 1),
            upper: Upper::UpTo(v(1, 3, 4)),
        };
        assert!(!incl.contains(v(1, 2, 0)) && incl.contains(v(1, 2, 1)) && incl.contains(v(1, 3, 4)) && !incl.contains(v(1, 3, 5)));
        let excl = VersionRange {
            lower: v(1, 2, 1),
            upper: Upper::Below(v(1, 3, 4)),
        };
        assert!(!excl.contains(v(1, 2, 0)) && excl.contains(v(1, 2, 1)) && excl.contains(v(1, 3, 3)) && !excl.contains(v(1, 3, 4)));
        let open = VersionRange {
            lower: v(1, 2, 1),
            upper: Upper::Unbounded,
        };
        assert!(!open.contains(v(1, 2, 0)) && open.contains(v(99, 0, 0)));
    }

    #[test]
    fn cve_record_keeps_only_affected_kubernetes_ranges() {
        let json = br#"{"containers": {"cna": {
            "metrics": [{"cvssV3_1": {"baseScore": 8.8}}],
            "affected": [
              {"product": "Kubernetes", "versions": [
                {"version": "1.27.0", "lessThanOrEqual": "1.27.3", "status": "affected"},
                {"version": "1.28.0", "status": "unaffected"}]},
              {"product": "kubelet", "versions": [{"version": "0", "lessThan": "9.0.0", "status": "affected"}]}
            ]}}}"#;
        let rec = parse_cve_record(CVE_ID, json).unwrap();
        assert_eq!(
            rec.ranges,
            vec![VersionRange {
                lower: Version::new(1, 27, 0),
                upper: Upper::UpTo(Version::new(1, 27, 3))
            }]
        );
        assert!(rec.affects(Version::new(1, 27, 3)) && !rec.affects(Version::new(1, 28, 0)));
        // A rejected record has neither metrics nor affected versions.
        let rejected = br#"{"containers": {"cna": {"rejectedReasons": [{"lang": "en", "value": "dup"}]}}}"#;
        assert_eq!(
            parse_cve_record(CVE_ID, rejected).unwrap(),
            CveRecord {
                id: CVE_ID.into(),
                base_score: None,
                ranges: vec![]
            }
        );
        // An error answer is no record.
        assert!(parse_cve_record(CVE_ID, br#"{"error": "CVE_RECORD_DNE"}"#).is_err());
    }

    #[test]
    fn cve_feed_ids() {
        let feed = br#"{"version": "https://jsonfeed.org/version/1.1", "items": [
            {"id": "CVE-2024-3177", "url": "x"}, {"id": "CVE-2023-5528"}, {"id": "CVE-2024-3177"}]}"#;
        assert_eq!(parse_cve_feed(feed).unwrap(), vec!["CVE-2024-3177", "CVE-2023-5528"]);
        assert!(parse_cve_feed(br#"{"items": [{"id": "../../etc/passwd"}]}"#).is_err());
        assert!(parse_cve_feed(br#"{"items": "none"}"#).is_err());
    }

    #[test]
    fn branch_past_eol_fails() {
        let inputs = fixture_inputs(vec![]);
        // 1.27 reached its end of life on 2024-06-28.
        let out = evaluate(Version::new(1, 27, 16), &inputs, day(2024, 7, 1));
        assert_eq!(out.verdict, Verdict::Fail, "{out:?}");
        assert!(has(&out, Level::Error, "already EOL"), "{out:?}");
        // Unlisted and older than everything listed: not supported.
        let out = evaluate(Version::new(1, 20, 0), &inputs, day(2024, 7, 1));
        assert_eq!(out.verdict, Verdict::Fail, "{out:?}");
        // Newer than everything listed (1.36 is the newest): EOL, as upstream has it, with a
        // warning that the data is the likelier culprit. One past the data and far past it alike.
        for minor in [37, 40] {
            let out = evaluate(Version::new(1, minor, 0), &inputs, day(2026, 9, 1));
            assert_eq!(out.verdict, Verdict::Fail, "{out:?}");
            assert!(has(&out, Level::Error, "already EOL"), "{out:?}");
            assert!(has(&out, Level::Warning, "newer than any in the EOL data"), "{out:?}");
        }
        // The newest listed branch itself is supported: no such warning.
        let out = evaluate(Version::new(1, 36, 0), &inputs, day(2026, 9, 1));
        assert!(!has(&out, Level::Warning, "newer than any"), "{out:?}");
    }

    #[test]
    fn stale_eol_data_warns_then_aborts() {
        let inputs = Inputs {
            eol: parse_eol_data(EOL.as_bytes()).unwrap(),
            ..Inputs::default()
        };
        let v136 = Version::new(1, 36, 0);
        // 2024: many supported branches, no warning.
        let out = evaluate(V1_28_5, &inputs, day(2024, 1, 17));
        assert!(!out.messages.iter().any(|(l, _)| *l == Level::Warning), "{out:?}");
        // 2027-01-01: only 1.35 and 1.36 are supported.
        let out = evaluate(v136, &inputs, day(2027, 1, 1));
        assert_eq!(out.verdict, Verdict::Pass, "{out:?}");
        assert!(has(&out, Level::Warning, "isn't up-to-date"), "{out:?}");
        // 2027-03-01: only 1.36.
        let out = evaluate(v136, &inputs, day(2027, 3, 1));
        assert_eq!(out.verdict, Verdict::Abort, "{out:?}");
        assert!(has(&out, Level::Warning, "isn't up-to-date"), "{out:?}");
        assert!(has(&out, Level::Critical, "critically outdated"), "{out:?}");
        assert_eq!(evaluate(v136, &Inputs::default(), day(2024, 1, 1)).verdict, Verdict::Abort);
    }

    #[test]
    fn source_strings() {
        assert_eq!("https://x/y".parse::<Source>().unwrap(), Source::Url("https://x/y".into()));
        assert_eq!("file:///m/a.yml".parse::<Source>().unwrap(), Source::File("/m/a.yml".into()));
        assert_eq!("mirror/a.yml".parse::<Source>().unwrap(), Source::File("mirror/a.yml".into()));
        assert_eq!(
            join_url(CVE_RECORD_BASE_URL, CVE_ID),
            format!("https://cveawg.mitre.org/api/cve/{CVE_ID}")
        );
        assert_eq!(join_url("http://m/cve", CVE_ID), format!("http://m/cve/{CVE_ID}"));
        assert_eq!(page_url(RELEASES_URL, 2), format!("{RELEASES_URL}?per_page=100&page=2"));
        assert_eq!(page_url("http://m/r?x=1", 1), "http://m/r?x=1&per_page=100&page=1");
    }

    #[test]
    fn github_token_goes_to_the_github_api_only() {
        let t = Some("secret");
        assert_eq!(auth_for(&page_url(RELEASES_URL, 1), t), t);
        assert_eq!(auth_for(&page_url(RELEASES_URL, 1), None), None);
        assert_eq!(auth_for("https://api.github.com.evil.example/releases", t), None);
        assert_eq!(auth_for("http://api.github.com/releases", t), None);
        assert_eq!(auth_for(CVE_FEED_URL, t), None);
        assert_eq!(auth_for(&join_url(CVE_RECORD_BASE_URL, CVE_ID), t), None);
    }

    /// A mirror directory with the fixtures and one CVE (exactly 1.28.5, score 9.8).
    fn write_mirror(dir: &Path) -> Sources {
        let sources = Sources::from_dir(dir);
        std::fs::write(dir.join("k8s-eol-data.yml"), EOL).unwrap();
        std::fs::write(dir.join("releases.json"), RELEASES).unwrap();
        std::fs::write(dir.join("cve-feed.json"), format!(r#"{{"items": [{{"id": "{CVE_ID}"}}]}}"#)).unwrap();
        std::fs::create_dir(dir.join("cve")).unwrap();
        std::fs::write(dir.join("cve").join(format!("{CVE_ID}.json")), exact_record_json(9.8)).unwrap();
        sources
    }

    #[tokio::test]
    async fn file_sources_work() {
        let dir = tempfile::tempdir().unwrap();
        let sources = write_mirror(dir.path());
        let opts = Options::default();
        let out = run("v1.28.5", &sources, &opts, day(2024, 1, 20)).await;
        assert_eq!(out.verdict, Verdict::Pass, "{out:?}");
        assert!(
            has(&out, Level::Warning, "Consider updating from 1.28.5 to 1.28.6 to avoid a CVE"),
            "{out:?}"
        );
        let out = run("v1.28.5", &sources, &opts, day(2024, 2, 1)).await;
        assert_eq!(out.verdict, Verdict::Fail, "{out:?}");
        let out = run("  v1.28.6  ", &sources, &opts, day(2024, 2, 1)).await;
        assert_eq!(out.verdict, Verdict::Pass, "{out:?}");
    }

    #[tokio::test]
    async fn failing_source_aborts_with_critical() {
        let dir = tempfile::tempdir().unwrap();
        let sources = write_mirror(dir.path());
        let opts = Options::default();
        let now = day(2024, 1, 20);

        let out = run("v1.28.5-gke.1", &sources, &opts, now).await;
        assert_eq!(out.verdict, Verdict::Abort, "{out:?}");
        assert!(has(&out, Level::Critical, "cluster version"), "{out:?}");

        let missing = Sources {
            releases: Source::File(dir.path().join("nope.json")),
            ..sources.clone()
        };
        let out = run("v1.28.5", &missing, &opts, now).await;
        assert_eq!(out.verdict, Verdict::Abort, "{out:?}");
        assert!(has(&out, Level::Critical, "nope.json"), "{out:?}");

        std::fs::write(dir.path().join("cve").join(format!("{CVE_ID}.json")), "<html>").unwrap();
        let out = run("v1.28.5", &sources, &opts, now).await;
        assert_eq!(out.verdict, Verdict::Abort, "{out:?}");
        assert!(has(&out, Level::Critical, CVE_ID), "{out:?}");

        std::fs::write(dir.path().join("cve").join(format!("{CVE_ID}.json")), exact_record_json(9.8)).unwrap();
        std::fs::write(dir.path().join("k8s-eol-data.yml"), "branch: [").unwrap();
        let out = run("v1.28.5", &sources, &opts, now).await;
        assert_eq!(out.verdict, Verdict::Abort, "{out:?}");
        assert!(has(&out, Level::Critical, "EOL data"), "{out:?}");
        assert_eq!(out.messages.len(), 1, "{out:?}");
    }

    /// A loopback HTTP server answering `routes` (path with query, else path alone; else 404),
    /// counting the requests it gets.
    async fn serve(routes: HashMap<String, Vec<u8>>) -> (String, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let base = crate::testing::serve_http(Duration::ZERO, move |target| {
            counter.fetch_add(1, Ordering::SeqCst);
            let path = target.split('?').next().unwrap_or("/");
            match routes.get(target).or_else(|| routes.get(path)) {
                Some(b) => (200, b.clone()),
                None => (404, b"{}".to_vec()),
            }
        })
        .await;
        (base, hits)
    }

    fn url_routes() -> HashMap<String, Vec<u8>> {
        let all: Vec<serde_json::Value> = serde_json::from_str(RELEASES).unwrap();
        let page = |items: &[serde_json::Value]| serde_json::to_vec(items).unwrap();
        HashMap::from([
            ("/eol.yml".to_string(), EOL.as_bytes().to_vec()),
            ("/releases?per_page=100&page=1".to_string(), page(&all[..10])),
            ("/releases?per_page=100&page=2".to_string(), page(&all[10..])),
            ("/releases?per_page=100&page=3".to_string(), b"[]".to_vec()),
            // A plain file server: the query makes no difference.
            ("/static/releases.json".to_string(), RELEASES.as_bytes().to_vec()),
            (
                "/feed.json".to_string(),
                format!(r#"{{"items": [{{"id": "{CVE_ID}"}}]}}"#).into_bytes(),
            ),
            (format!("/cve/{CVE_ID}"), exact_record_json(9.8)),
        ])
    }

    fn url_sources(base: &str) -> Sources {
        Sources {
            eol: Source::Url(format!("{base}/eol.yml")),
            releases: Source::Url(format!("{base}/releases")),
            cve_feed: Source::Url(format!("{base}/feed.json")),
            cve_record_base: Source::Url(format!("{base}/cve/")),
        }
    }

    #[tokio::test]
    async fn url_sources_paginate_and_are_cached_within_the_ttl() {
        let (base, hits) = serve(url_routes()).await;
        let cache = tempfile::tempdir().unwrap();
        let sources = url_sources(&base);
        let opts = Options {
            cache_dir: Some(cache.path().to_path_buf()),
            ttl: Duration::from_secs(3600),
            concurrency: 4,
        };
        let now = day(2024, 2, 1);

        let first = run("v1.28.5", &sources, &opts, now).await;
        assert_eq!(first.verdict, Verdict::Fail, "{first:?}");
        assert!(has(&first, Level::Error, "possible CRITICAL CVE"), "{first:?}");
        // EOL data, three release pages, the feed, one record.
        assert_eq!(hits.load(Ordering::SeqCst), 6);
        let inputs = load(&sources, &opts).await.unwrap();
        assert_eq!(inputs.releases, parse_releases(RELEASES.as_bytes()).unwrap());

        let second = run("v1.28.5", &sources, &opts, now).await;
        assert_eq!(second, first);
        assert_eq!(hits.load(Ordering::SeqCst), 6, "the cache must answer within the TTL");

        let expired = Options {
            ttl: Duration::ZERO,
            ..opts.clone()
        };
        assert_eq!(run("v1.28.5", &sources, &expired, now).await, first);
        assert_eq!(hits.load(Ordering::SeqCst), 12, "past the TTL the network is asked again");
    }

    #[tokio::test]
    async fn url_failures_abort_and_static_release_files_end_pagination() {
        let (base, hits) = serve(url_routes()).await;
        let opts = Options::default();
        let now = day(2024, 1, 20);

        let static_file = Sources {
            releases: Source::Url(format!("{base}/static/releases.json")),
            ..url_sources(&base)
        };
        let before = hits.load(Ordering::SeqCst);
        let out = run("v1.28.5", &static_file, &opts, now).await;
        assert_eq!(out.verdict, Verdict::Pass, "{out:?}");
        assert!(has(&out, Level::Warning, "Consider updating from 1.28.5 to 1.28.6"), "{out:?}");
        // EOL data, the same release list twice, the feed, one record.
        assert_eq!(hits.load(Ordering::SeqCst) - before, 5);

        let no_records = Sources {
            cve_record_base: Source::Url(format!("{base}/missing")),
            ..url_sources(&base)
        };
        let out = run("v1.28.5", &no_records, &opts, now).await;
        assert_eq!(out.verdict, Verdict::Abort, "{out:?}");
        assert!(has(&out, Level::Critical, "404"), "{out:?}");
        assert!(has(&out, Level::Critical, CVE_ID), "{out:?}");

        // Nothing listens on a port just freed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let unreachable = Sources {
            cve_feed: Source::Url(format!("http://127.0.0.1:{port}/feed.json")),
            ..url_sources(&base)
        };
        let out = run("v1.28.5", &unreachable, &opts, now).await;
        assert_eq!(out.verdict, Verdict::Abort, "{out:?}");
        assert!(has(&out, Level::Critical, "CVE feed"), "{out:?}");
    }
}
