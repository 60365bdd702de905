//! What a check run is asked to do: the spec, subject, assignment, selection (`-t`, `-S`, forced
//! version), the cluster, bounds, run id and tool directories; and which testcases that selects.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::native;
use super::spec::Spec;

/// Everything one check run needs; built by `scs-e2e check` or a `runChecks` step.
pub struct Request {
    /// The SCS spec to check against.
    pub spec: Spec,
    /// The spec's directory: scripts' paths are relative to it.
    pub spec_dir: PathBuf,
    /// Name of the subject under test (a KaaS offer, a cluster), as the report names it.
    pub subject: String,
    /// Spec variables with their values, defaults filled in (see [`Spec::assignment`]).
    pub assignment: BTreeMap<String, String>,
    /// `-t`: only testcases whose id matches (also selects manual and informational ones); None: no filter.
    pub tests: Option<Regex>,
    /// `-S`: only testcases of these sections; None: all.
    pub sections: Option<Vec<String>>,
    /// The date that decides which spec versions are in force.
    pub reference_date: NaiveDate,
    /// `-V`: check this spec version whatever the timeline says; None: the versions in force.
    pub forced_version: Option<String>,
    /// The cluster to check; without it, native checks ABORT.
    pub kubeconfig: Option<PathBuf>,
    /// The command line recorded in the report.
    pub argv: Vec<String>,
    /// How long the `default-storage-class` check waits for its pod and volume.
    pub storage_timeout: Duration,
    /// Bound for `sonobuoy run --wait` (conformance takes hours on real clusters).
    pub sonobuoy_timeout: Duration,
    /// Interrupts long checks (sonobuoy): Ctrl-C on `scs-e2e check`, the run's own for a step.
    pub cancel: tokio_util::sync::CancellationToken,
    /// Where `version-policy-check` reads EOL data, releases and CVEs, and how it caches them.
    pub version_policy: VersionPolicyInputs,
    /// The run this check belongs to (`--run-id`): names it creates in the cluster derive from it.
    pub run_id: String,
    /// Directories searched first for tools (sonobuoy), like the lab's binaries.
    pub tool_dirs: Vec<PathBuf>,
}

/// Where `version-policy-check` gets its data: a mirror directory and/or one file or URL per
/// input. Given as `check` flags or a `runChecks` step's `versionPolicy`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, schemars::JsonSchema, clap::Args)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VersionPolicySources {
    /// Mirror directory for air-gapped runs: k8s-eol-data.yml, releases.json (GitHub releases, one
    /// array), cve-feed.json (Kubernetes CVE feed) and cve/<CVE-ID>.json.
    #[arg(long = "version-policy-data", value_name = "DIR")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Kubernetes EOL data (file or URL; default: the SCS standards repository's).
    #[arg(long, value_name = "FILE|URL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eol_data: Option<String>,
    /// Kubernetes releases (default: the GitHub releases API; GITHUB_TOKEN is used if set).
    #[arg(long = "k8s-releases", value_name = "FILE|URL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub releases: Option<String>,
    /// The official Kubernetes CVE feed (JSON).
    #[arg(long, value_name = "FILE|URL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cve_feed: Option<String>,
    /// CVE records: a URL prefix (CVE services API) or a directory of <CVE-ID>.json.
    #[arg(long, value_name = "DIR|URL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cve_records: Option<String>,
    /// CVE records fetched at once (default 24, at most 64): be polite to the CVE services API.
    #[arg(long = "cve-concurrency", value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u16>,
}

impl VersionPolicySources {
    /// `concurrency` checked: 1 to [`super::version_policy::MAX_CONCURRENCY`].
    pub fn validate(&self) -> Result<(), crate::error::Invalid> {
        match self.concurrency {
            Some(n) if n == 0 || usize::from(n) > super::version_policy::MAX_CONCURRENCY => Err(format!(
                "`concurrency: {n}`: give 1 to {} CVE records at once",
                super::version_policy::MAX_CONCURRENCY
            )
            .into()),
            _ => Ok(()),
        }
    }

    /// The download options with this `concurrency`, if given.
    pub fn options(&self, mut base: super::version_policy::Options) -> super::version_policy::Options {
        if let Some(n) = self.concurrency {
            base.concurrency = usize::from(n).clamp(1, super::version_policy::MAX_CONCURRENCY);
        }
        base
    }

    /// Relative paths are taken from `base` (the working directory, or the suite's directory).
    pub fn resolve(&self, base: &std::path::Path) -> super::version_policy::Sources {
        use super::version_policy::{Source, Sources};
        let source = |s: &str| match s.parse::<Source>() {
            Ok(Source::File(p)) if p.is_relative() => Source::File(base.join(p)),
            Ok(other) => other,
            Err(never) => match never {},
        };
        let mut out = match &self.data {
            Some(d) => match source(d) {
                Source::File(dir) => Sources::from_dir(&dir),
                Source::Url(u) => Sources {
                    eol: Source::Url(format!("{}/k8s-eol-data.yml", u.trim_end_matches('/'))),
                    releases: Source::Url(format!("{}/releases.json", u.trim_end_matches('/'))),
                    cve_feed: Source::Url(format!("{}/cve-feed.json", u.trim_end_matches('/'))),
                    cve_record_base: Source::Url(format!("{}/cve/", u.trim_end_matches('/'))),
                },
            },
            None => Sources::default(),
        };
        for (given, slot) in [
            (&self.eol_data, &mut out.eol),
            (&self.releases, &mut out.releases),
            (&self.cve_feed, &mut out.cve_feed),
            (&self.cve_records, &mut out.cve_record_base),
        ] {
            if let Some(g) = given {
                *slot = source(g);
            }
        }
        out
    }
}

/// Inputs of `version-policy-check`; `now` pins the clock (reproducible runs, tests).
#[derive(Clone, Debug, Default)]
pub struct VersionPolicyInputs {
    /// Where each input comes from (files, URLs or a mirror directory).
    pub sources: super::version_policy::Sources,
    /// Caching and concurrency of the downloads.
    pub options: super::version_policy::Options,
    /// The reference time of the check; None: the current time.
    pub now: Option<chrono::DateTime<Utc>>,
}

impl VersionPolicyInputs {
    /// The defaults (the upstream URLs), cached under the user's cache directory for a few hours
    /// so that repeated runs neither hammer GitHub's rate limit nor need the network.
    pub fn cached() -> Self {
        VersionPolicyInputs {
            options: super::version_policy::Options {
                cache_dir: Some(crate::base::cache_root().join("version-policy")),
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

/// One row of work: a testcase and the versions/targets that ask for it.
#[derive(Clone, Debug)]
pub struct Selected {
    /// The testcase id.
    pub id: String,
    /// A manual testcase (no executable, not run natively here): listed, but not run.
    pub manual: bool,
}

impl Request {
    /// The testcases to run: every target of the versions in force (or the forced one), narrowed
    /// by `-t` and `-S`; manual testcases only when `-t` names them and we implement them.
    pub fn select(&self) -> Vec<Selected> {
        let versions: Vec<String> = match &self.forced_version {
            Some(v) => vec![v.clone()],
            None => self
                .spec
                .versions_in_force(self.reference_date)
                .into_iter()
                .map(|(v, _)| v)
                .collect(),
        };
        let mut ids: BTreeSet<String> = versions.iter().flat_map(|v| self.spec.targets(v).into_values().flatten()).collect();
        if let Some(re) = &self.tests {
            ids.extend(
                self.spec
                    .testcases()
                    .map(|t| t.id.clone())
                    .chain(native::CHECKS.iter().filter(|n| n.informational).map(|n| n.id.to_string()))
                    .filter(|id| matches_at_start(re, id)),
            );
            ids.retain(|id| matches_at_start(re, id));
        }
        if let Some(sections) = &self.sections {
            ids.retain(|id| {
                self.spec
                    .testcase(id)
                    .and_then(|t| t.section.as_ref())
                    .is_some_and(|s| sections.contains(s))
            });
        }
        ids.into_iter()
            .map(|id| {
                let manual = self.spec.script_of(&id).is_some_and(|s| s.executable.is_none())
                    && !(native::find(&id).is_some() && self.tests.as_ref().is_some_and(|r| matches_at_start(r, &id)));
                Selected { id, manual }
            })
            .collect()
    }
}

/// `-t` as upstream applies it (Python's `re.match`): the pattern must match at the start of the
/// id, not necessarily the whole of it. The leftmost match starts at 0 whenever any match does.
pub fn matches_at_start(re: &Regex, id: &str) -> bool {
    re.find(id).is_some_and(|m| m.start() == 0)
}
