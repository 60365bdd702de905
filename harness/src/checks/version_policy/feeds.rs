//! The inputs (EOL data, releases, the CVE feed and records) and their parsers.

use super::*;

/// One line of `k8s-eol-data.yml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BranchEol {
    /// The release branch, like 1.33.
    pub branch: Branch,
    /// Its end-of-life date: supported until this day begins (UTC).
    pub end_of_life: NaiveDate,
}

impl BranchEol {
    /// Supported until the EOL date begins (UTC).
    pub fn is_supported(&self, now: DateTime<Utc>) -> bool {
        now < self.end_of_life.and_time(NaiveTime::MIN).and_utc()
    }
}

/// A published, final Kubernetes release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// The release's version.
    pub version: Version,
    /// When it was published on GitHub.
    pub published_at: DateTime<Utc>,
}

/// What the policy needs of one CVE record.
#[derive(Clone, Debug, PartialEq)]
pub struct CveRecord {
    /// The CVE id, like `CVE-2024-1234`.
    pub id: String,
    /// Highest CVSS base score the CNA gives (any CVSS version, as upstream counts them), if any.
    pub base_score: Option<f64>,
    /// Affected ranges of the product "Kubernetes"; read for critical CVEs only (upstream reads
    /// no other, so a malformed range elsewhere cannot end the check).
    pub ranges: Vec<VersionRange>,
}

impl CveRecord {
    /// Whether its base score reaches [`CRITICAL_SCORE`].
    pub fn is_critical(&self) -> bool {
        self.base_score.is_some_and(|s| s >= CRITICAL_SCORE)
    }

    /// Whether `v` is in one of its affected ranges.
    pub fn affects(&self, v: Version) -> bool {
        self.ranges.iter().any(|r| r.contains(v))
    }
}

/// Everything [`evaluate`] decides from, besides the cluster version and the time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inputs {
    /// End-of-life dates per branch (`k8s-eol-data.yml`).
    pub eol: Vec<BranchEol>,
    /// Final Kubernetes releases (no drafts or pre-releases).
    pub releases: Vec<Release>,
    /// Records of the CVEs in the Kubernetes CVE feed, sorted by id.
    pub cves: Vec<CveRecord>,
}

#[derive(Deserialize)]
pub(super) struct RawEol {
    branch: String,
    #[serde(rename = "end-of-life")]
    end_of_life: String,
}

/// `k8s-eol-data.yml`: a list of `{branch: '1.33', end-of-life: '2026-06-28'}`.
pub fn parse_eol_data(yaml: &[u8]) -> anyhow::Result<Vec<BranchEol>> {
    let text = std::str::from_utf8(yaml).context("the EOL data is not UTF-8")?;
    let raw: Vec<RawEol> = serde_saphyr::from_str(text).context("invalid EOL data")?;
    raw.into_iter()
        .map(|r| {
            let branch = r
                .branch
                .parse::<Branch>()
                .with_context(|| format!("EOL data: branch {:?}", r.branch))?;
            let end_of_life = NaiveDate::parse_from_str(r.end_of_life.trim(), "%Y-%m-%d")
                .with_context(|| format!("EOL data: end-of-life {:?} of branch {branch}", r.end_of_life))?;
            Ok(BranchEol { branch, end_of_life })
        })
        .collect()
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub(super) struct RawRelease {
    tag_name: String,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    prerelease: bool,
    #[serde(default)]
    published_at: Option<DateTime<Utc>>,
}

pub(super) fn releases_from_raw(raw: Vec<RawRelease>) -> anyhow::Result<Vec<Release>> {
    raw.into_iter()
        .filter(|r| !r.draft && !r.prerelease)
        .map(|r| {
            let version = parse_release_tag(&r.tag_name)?;
            let published_at = r
                .published_at
                .with_context(|| format!("release {} has no published_at", r.tag_name))?;
            Ok(Release { version, published_at })
        })
        .collect()
}

/// A GitHub releases list (one page, or all of them in one array); drafts and pre-releases are
/// left out.
pub fn parse_releases(json: &[u8]) -> anyhow::Result<Vec<Release>> {
    releases_from_raw(serde_json::from_slice(json).context("invalid GitHub releases JSON")?)
}

#[derive(Deserialize)]
pub(super) struct RawFeed {
    items: Vec<RawFeedItem>,
}

#[derive(Deserialize)]
pub(super) struct RawFeedItem {
    id: String,
}

// The id becomes part of a URL and of a file name, so nothing but a CVE id may pass.
pub(super) fn is_cve_id(s: &str) -> bool {
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    match s.strip_prefix("CVE-").and_then(|rest| rest.split_once('-')) {
        Some((year, seq)) => year.len() == 4 && digits(year) && seq.len() >= 4 && digits(seq),
        None => false,
    }
}

/// The official Kubernetes CVE feed (JSON Feed): the CVE ids of its items, without repeats.
pub fn parse_cve_feed(json: &[u8]) -> anyhow::Result<Vec<String>> {
    let feed: RawFeed = serde_json::from_slice(json).context("invalid CVE feed JSON")?;
    let mut seen = BTreeSet::new();
    let mut ids = Vec::new();
    for item in feed.items {
        let id = item.id.trim();
        if !is_cve_id(id) {
            bail!("the CVE feed has an item with id {:?}, which is not a CVE id", item.id);
        }
        if seen.insert(id.to_string()) {
            ids.push(id.to_string());
        }
    }
    Ok(ids)
}

#[derive(Deserialize)]
pub(super) struct RawRecord {
    containers: RawContainers,
}

#[derive(Deserialize)]
pub(super) struct RawContainers {
    cna: RawCna,
}

// Both lists are optional in CVE JSON 5 (rejected records have neither).
#[derive(Deserialize)]
pub(super) struct RawCna {
    #[serde(default)]
    metrics: Vec<RawMetric>,
    #[serde(default)]
    affected: Vec<RawAffected>,
}

/// One `metrics[]` entry: keys like `cvssV3_1`, `cvssV2_0`, `other`.
type RawMetric = serde_json::Map<String, serde_json::Value>;

/// A metric key the upstream check counts: `[cC][vV][sS]{1,2}V\d` anywhere in the key, so every
/// CVSS version (v2.0 too) and not `other` or `format`.
fn is_cvss_key(key: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"[cC][vV][sS]{1,2}V\d").expect("valid pattern"))
        .is_match(key)
}

#[derive(Deserialize)]
pub(super) struct RawAffected {
    product: Option<String>,
    #[serde(default)]
    versions: Vec<RawVersion>,
}

#[derive(Deserialize)]
pub(super) struct RawVersion {
    version: Option<String>,
    status: Option<String>,
    #[serde(rename = "lessThan")]
    less_than: Option<String>,
    #[serde(rename = "lessThanOrEqual")]
    less_than_or_equal: Option<String>,
}

/// A CVE JSON 5 record as the CVE services API serves it.
pub fn parse_cve_record(id: &str, json: &[u8]) -> anyhow::Result<CveRecord> {
    let raw: RawRecord = serde_json::from_slice(json).with_context(|| format!("invalid CVE JSON 5 record for {id}"))?;
    let cna = raw.containers.cna;
    let mut base_score: Option<f64> = None;
    let mut unscored = None;
    for (key, metric) in cna.metrics.iter().flat_map(|m| m.iter()).filter(|(k, _)| is_cvss_key(k)) {
        match metric.get("baseScore").and_then(serde_json::Value::as_f64) {
            Some(s) => base_score = Some(base_score.map_or(s, |b| b.max(s))),
            None => unscored = Some(key.clone()),
        }
    }
    let record = CveRecord {
        id: id.to_string(),
        base_score,
        ranges: Vec::new(),
    };
    if !record.is_critical() {
        // Upstream stops at a CVSS metric without a score unless another one made it critical.
        if let Some(key) = unscored {
            bail!("the {key} metric of {id} has no baseScore");
        }
        return Ok(record);
    }
    let mut ranges = Vec::new();
    for affected in cna.affected.iter().filter(|a| a.product.as_deref() == Some("Kubernetes")) {
        for v in affected.versions.iter().filter(|v| v.status.as_deref() == Some("affected")) {
            let range = parse_affected_range(
                v.version.as_deref().unwrap_or(""),
                v.less_than.as_deref(),
                v.less_than_or_equal.as_deref(),
            )
            .with_context(|| format!("affected versions of {id}"))?;
            ranges.push(range);
        }
    }
    Ok(CveRecord { ranges, ..record })
}
