//! Kubernetes versions, release tags and the affected-version ranges of CVE records.

use super::*;

/// A Kubernetes version `major.minor.patch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major version.
    pub major: u32,
    /// Minor version: with the major one, the release branch.
    pub minor: u32,
    /// Patch release within the branch.
    pub patch: u32,
}

impl Version {
    /// `0.0.0`, below every release ("from the beginning" in CVE ranges).
    pub const MIN: Version = Version::new(0, 0, 0);

    /// The version `major.minor.patch`.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Version { major, minor, patch }
    }

    /// Its release branch `major.minor`.
    pub fn branch(self) -> Branch {
        Branch {
            major: self.major,
            minor: self.minor,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A release branch `major.minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Branch {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl fmt::Display for Branch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for Branch {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().split_once('.') {
            Some((major, minor)) => match (number(major), number(minor)) {
                (Some(major), Some(minor)) => Ok(Branch { major, minor }),
                _ => Err(VersionError(s.into())),
            },
            None => Err(VersionError(s.into())),
        }
    }
}

/// Text that is not a version we recognize (it holds the text).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unrecognized version format: {0:?}")]
pub struct VersionError(pub String);

// Digits only: `u32::from_str` would also take "+5".
pub(super) fn number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `gitVersion`-style text: whitespace and a leading `v` are dropped, build info after `+` too;
/// what is left must be three integers.
pub fn parse_version(s: &str) -> Result<Version, VersionError> {
    let t = s.trim();
    let t = t.strip_prefix('v').unwrap_or(t);
    let t = t.split('+').next().unwrap_or(t);
    let mut parts = t.split('.');
    match (
        parts.next().and_then(number),
        parts.next().and_then(number),
        parts.next().and_then(number),
        parts.next(),
    ) {
        (Some(major), Some(minor), Some(patch), None) => Ok(Version::new(major, minor, patch)),
        _ => Err(VersionError(s.into())),
    }
}

/// A GitHub release tag; what follows `-` (`v1.29.3-dev0`) is not part of the version.
pub fn parse_release_tag(tag: &str) -> Result<Version, VersionError> {
    parse_version(tag.split('-').next().unwrap_or(tag)).map_err(|_| VersionError(tag.into()))
}

/// The upper end of an affected range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upper {
    /// No upper bound given: only the lower version itself.
    Exact,
    /// `lessThan`
    Below(Version),
    /// `lessThanOrEqual`
    UpTo(Version),
    /// `*`, CVE JSON 5 for "no upper bound".
    Unbounded,
    /// The `B` of a `version` written `A - B`: excluded, as the upstream check has it (a
    /// [`Upper::Below`] that remembers how it was written, for the warning about it).
    DashEnd(Version),
}

/// Versions a CVE affects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionRange {
    /// The first affected version (`0.0.0` when the record means "from the beginning").
    pub lower: Version,
    /// Where the range ends.
    pub upper: Upper,
}

impl VersionRange {
    /// Whether `v` is in the range.
    pub fn contains(&self, v: Version) -> bool {
        match self.upper {
            Upper::Exact => v == self.lower,
            Upper::Below(u) | Upper::DashEnd(u) => self.lower <= v && v < u,
            Upper::UpTo(u) => self.lower <= v && v <= u,
            Upper::Unbounded => self.lower <= v,
        }
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.upper {
            Upper::Exact => write!(f, "{}", self.lower),
            Upper::Below(u) => write!(f, ">= {}, < {u}", self.lower),
            Upper::UpTo(u) => write!(f, ">= {}, <= {u}", self.lower),
            Upper::Unbounded => write!(f, ">= {}", self.lower),
            Upper::DashEnd(u) => write!(f, "{} - {u}", self.lower),
        }
    }
}

/// One `affected[].versions[]` entry of a CVE JSON 5 record (status `affected`), read as the
/// upstream check reads it: `lessThanOrEqual` before `lessThan`; a `version` that is no version
/// means "from the beginning"; without either bound, a `version` written `A - B` (blanks around
/// the dash, `v` optional, anywhere in the text) is `A` up to `B` excluded, and any other text
/// matches nothing.
pub fn parse_affected_range(
    version: &str,
    less_than: Option<&str>,
    less_than_or_equal: Option<&str>,
) -> Result<VersionRange, VersionError> {
    // CVE records say "0" or "unspecified" when they mean "from the beginning".
    let lower = parse_version(version).ok();
    let upper = match (less_than_or_equal, less_than) {
        (Some(u), _) => parse_upper(u, true)?,
        (None, Some(u)) => parse_upper(u, false)?,
        (None, None) => {
            if lower.is_none() && dash_range().is_match(version) {
                // Upstream splits at every dash and takes the first two parts.
                let mut parts = version.split('-');
                let a = parse_version(parts.next().unwrap_or_default()).map_err(|_| VersionError(version.into()))?;
                let b = parse_version(parts.next().unwrap_or_default()).map_err(|_| VersionError(version.into()))?;
                if b < a {
                    return Err(VersionError(version.into()));
                }
                return Ok(VersionRange {
                    lower: a,
                    upper: Upper::DashEnd(b),
                });
            }
            Upper::Exact
        }
    };
    let lower = lower.unwrap_or(Version::MIN);
    let end = match upper {
        Upper::Below(u) | Upper::UpTo(u) | Upper::DashEnd(u) => Some(u),
        Upper::Exact | Upper::Unbounded => None,
    };
    if end.is_some_and(|u| u < lower) {
        // Upstream refuses a range that ends before it starts.
        return Err(VersionError(version.into()));
    }
    Ok(VersionRange { lower, upper })
}

fn dash_range() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"v?\d+\.\d+\.\d+\s+-\s+v?\d+\.\d+\.\d+").expect("valid pattern"))
}

pub(super) fn parse_upper(s: &str, inclusive: bool) -> Result<Upper, VersionError> {
    let t = s.trim();
    if t == "*" {
        return Ok(Upper::Unbounded);
    }
    // CVE JSON 5: `*` is infinity, so "1.29.*" includes the whole 1.29 series.
    if let Some(series) = t.strip_suffix(".*") {
        let series = series.strip_prefix('v').unwrap_or(series);
        let parts: Option<Vec<u32>> = series.split('.').map(number).collect();
        return match parts.as_deref() {
            Some(&[major]) => Ok(Upper::Below(Version::new(major.saturating_add(1), 0, 0))),
            Some(&[major, minor]) => Ok(Upper::Below(Version::new(major, minor.saturating_add(1), 0))),
            _ => Err(VersionError(s.into())),
        };
    }
    let v = parse_version(t)?;
    Ok(if inclusive { Upper::UpTo(v) } else { Upper::Below(v) })
}
