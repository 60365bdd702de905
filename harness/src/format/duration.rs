//! Human durations (`90s`, `5m`, `1h30m`) and step timeouts that may name a configured interval.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written the way people write them: `500ms`, `30s`, `5m`, `1h30m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Parses `500ms`, `30s`, `5m`, `1h30m`, ...; the error says how to write one.
    pub fn parse(s: &str) -> Result<Self, crate::error::Invalid> {
        let t = s.trim();
        if t.is_empty() {
            return Err("empty duration".into());
        }
        humantime::parse_duration(t)
            .map(HumanDuration)
            .map_err(|e| format!("invalid duration `{s}` ({e}); write a number with a unit, like `30s`, `5m` or `1h30m`").into())
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        HumanDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration such as `500ms`, `30s`, `5m` or `1h30m`.",
            "pattern": "^\\s*[0-9]+\\s*[a-zµ]+(\\s*[0-9]+\\s*[a-zµ]+)*\\s*$"
        })
    }
}

/// A step timeout: either a duration, or the name of an interval from the config
/// (`wait-cluster`), so slow clouds can stretch waits without editing suites.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// A fixed duration, like `5m`.
    Fixed(HumanDuration),
    /// The name of an interval (`wait-cluster`): built in or from the config file's `intervals`.
    Interval(String),
}

impl Timeout {
    fn parse(s: &str) -> Result<Self, crate::error::Invalid> {
        let t = s.trim();
        if t.starts_with(|c: char| c.is_ascii_digit()) {
            HumanDuration::parse(t).map(Timeout::Fixed)
        } else if is_interval_name(t) {
            Ok(Timeout::Interval(t.to_string()))
        } else {
            Err(format!(
                "invalid timeout `{s}`: write a duration like `5m`, or the name of an interval from the config like `wait-cluster`"
            )
            .into())
        }
    }
}

/// Whether `s` can name an interval: a lowercase letter, then lowercase letters, digits and dashes.
pub fn is_interval_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase()) && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timeout::Fixed(d) => d.fmt(f),
            Timeout::Interval(n) => f.write_str(n),
        }
    }
}

impl Serialize for Timeout {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timeout {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timeout::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Timeout {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timeout".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration (`30s`, `5m`) or the name of an interval defined in the config (`wait-cluster`)."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compound_durations() {
        assert_eq!(HumanDuration::parse("1h30m").unwrap().0, Duration::from_secs(5400));
        assert_eq!(HumanDuration::parse(" 250ms ").unwrap().0, Duration::from_millis(250));
        assert!(HumanDuration::parse("5").unwrap_err().contains("like `30s`"));
        assert!(HumanDuration::parse("5 parsecs").is_err());
    }

    #[test]
    fn timeout_is_a_duration_or_an_interval_name() {
        assert_eq!(
            Timeout::parse("2m").unwrap(),
            Timeout::Fixed(HumanDuration(Duration::from_secs(120)))
        );
        assert_eq!(Timeout::parse("wait-cluster").unwrap(), Timeout::Interval("wait-cluster".into()));
        assert!(Timeout::parse("Wait Cluster").is_err());
        assert!(Timeout::parse("2 fortnights").is_err());
    }
}
