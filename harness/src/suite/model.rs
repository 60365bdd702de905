//! The suite format (`apiVersion: scs-e2e/v1alpha1`, `kind: Suite`) as Rust types.
//!
//! A step is a map with common keys (`name`, `timeout`, `attempts`) and exactly one operation key
//! (`apply:`, `wait:`, ...). The operations and their registry live in `crate::steps`; this
//! module only reads and writes the step map around them.

use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_saphyr::Spanned;

use crate::collect::Collector;
use crate::format::duration::{HumanDuration, Timeout};
use crate::steps::{OPERATIONS, Op};

/// A file of scenarios.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Suite {
    /// Always `scs-e2e/v1alpha1`.
    #[schemars(with = "String")]
    pub api_version: Spanned<String>,
    /// Always `Suite`.
    #[schemars(with = "String")]
    pub kind: Spanned<String>,
    /// Suite name: the first part of every JUnit classname (`suite.scenario`).
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// What the suite tests, for readers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Environments this suite can run in (`lab`, `kubeconfig`, `kind`, `openstack`); empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    /// Step defaults for every scenario of the suite.
    #[serde(default, skip_serializing_if = "Defaults::is_empty")]
    pub defaults: Defaults,
    /// Variables available as `${NAME}` in every scenario.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
    /// The scenarios; they run concurrently (up to `--parallel` at once).
    pub scenarios: Vec<Scenario>,
}

/// Defaults inherited config → suite → scenario → step.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Defaults {
    /// Timeout of each step that sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Timeout>")]
    pub timeout: Option<Spanned<Timeout>>,
    /// Attempts of each step that sets none (1 = no retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
}

impl Defaults {
    /// Whether neither `timeout` nor `attempts` is set.
    pub fn is_empty(&self) -> bool {
        self.timeout.is_none() && self.attempts.is_none()
    }
}

/// An ordered list of steps run against one cluster, with its own namespace.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scenario {
    /// Unique in the suite; may use `${VAR}` of the matrix.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// What the scenario tests, for readers (also in `list --json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Namespace for the scenario's objects; default: generated, created and deleted by the harness.
    /// Set it to use an existing namespace (it is then neither created nor deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Things outside the scenario's namespace it must have to itself, by any name: scenarios
    /// naming the same one never run at the same time, whatever `--parallel` says (one waiting
    /// for another takes one of the parallel places). E.g. a cluster stack whose releases make a
    /// cloud-wide object per namespace: the SCS OpenStack stack's ORC Image is one Glance image
    /// that every namespace adopts and the first one deleted takes with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclusive: Vec<String>,
    /// Expands the scenario once per combination of values; `${KEY}` is substituted everywhere.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub matrix: BTreeMap<String, Vec<MatrixValue>>,
    /// Step defaults for this scenario; they win over the suite's.
    #[serde(default, skip_serializing_if = "Defaults::is_empty")]
    pub defaults: Defaults,
    /// The steps, run in order; once one does not pass, the rest are skipped.
    #[schemars(with = "Vec<Step>")]
    pub steps: Vec<Spanned<Step>>,
    /// Collectors run after the steps, whatever happened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finally: Vec<Collector>,
    /// Collectors run only when a step failed, before `finally`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_failure: Vec<Collector>,
}

/// A matrix value: written as a YAML string, number or boolean, always used as text.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct MatrixValue(#[schemars(with = "MatrixScalar")] pub String);

#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum MatrixScalar {
    S(String),
    N(f64),
    B(bool),
}

impl<'de> Deserialize<'de> for MatrixValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = MatrixValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean (quote versions like \"1.30\" so they stay text)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MatrixValue, E> {
                Ok(MatrixValue(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<MatrixValue, E> {
                Ok(MatrixValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<MatrixValue, E> {
                Ok(MatrixValue(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<MatrixValue, E> {
                Ok(MatrixValue(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<MatrixValue, E> {
                Ok(MatrixValue(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// One step: common keys plus exactly one operation.
#[derive(Clone, Debug)]
pub struct Step {
    /// Shown in reports; default: the operation's own summary.
    pub name: Option<String>,
    /// How long each attempt may take: a duration or an interval name; unset, the scenario's,
    /// suite's or config's default applies.
    pub timeout: Option<Spanned<Timeout>>,
    /// Tries before the step fails (for known flaky steps); every attempt is recorded.
    pub attempts: Option<u32>,
    /// The step's one operation (`apply`, `wait`, `createCluster`, ...).
    pub op: Op,
}

const COMMON_KEYS: &[&str] = &["name", "timeout", "attempts"];

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StepVisitor;
        impl<'de> Visitor<'de> for StepVisitor {
            type Value = Step;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a step: a map with one operation key ({})", OPERATIONS.join(", "))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Step, A::Error> {
                let (mut name, mut timeout, mut attempts, mut op) = (None, None, None, None::<Op>);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "name" => name = Some(map.next_value()?),
                        "timeout" => timeout = Some(map.next_value()?),
                        "attempts" => {
                            let v: serde_json::Value = map.next_value()?;
                            match v.as_u64().filter(|n| (1..=u32::MAX as u64).contains(n)) {
                                Some(n) => attempts = Some(n as u32),
                                None => {
                                    return Err(de::Error::custom(format!(
                                        "`attempts` is {v}; write a whole number of tries, at least 1 (1 = no retry)"
                                    )));
                                }
                            }
                        }
                        other => match Op::next_value(other, &mut map)? {
                            Some(o) => {
                                if let Some(prev) = &op {
                                    return Err(de::Error::custom(format!(
                                        "a step has exactly one operation, found `{}` and `{other}`: split them into two steps",
                                        prev.key()
                                    )));
                                }
                                op = Some(o)
                            }
                            None => {
                                let expected: Vec<&str> = COMMON_KEYS.iter().chain(OPERATIONS).copied().collect();
                                return Err(de::Error::custom(format!(
                                    "unknown field `{other}`, expected one of {}",
                                    expected.join(", ")
                                )));
                            }
                        },
                    }
                }
                let op =
                    op.ok_or_else(|| de::Error::custom(format!("a step needs one operation key, one of {}", OPERATIONS.join(", "))))?;
                Ok(Step {
                    name,
                    timeout,
                    attempts,
                    op,
                })
            }
        }
        d.deserialize_map(StepVisitor)
    }
}

impl Serialize for Step {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        if let Some(n) = &self.name {
            m.serialize_entry("name", n)?;
        }
        if let Some(t) = &self.timeout {
            m.serialize_entry("timeout", &t.value)?;
        }
        if let Some(a) = &self.attempts {
            m.serialize_entry("attempts", a)?;
        }
        self.op.serialize_entry(&mut m)?;
        m.end()
    }
}

impl JsonSchema for Step {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Step".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut props = serde_json::Map::new();
        props.insert(
            "name".into(),
            json_schema!({"type": "string", "description": "Name shown in reports."}).into(),
        );
        props.insert("timeout".into(), generator.subschema_for::<Timeout>().into());
        props.insert(
            "attempts".into(),
            json_schema!({"type": "integer", "minimum": 1, "description": "Tries before the step fails."}).into(),
        );
        let mut one_of = Vec::new();
        for (key, schema) in Op::schemas(generator) {
            props.insert(key.into(), schema.into());
            one_of.push(serde_json::json!({"required": [key]}));
        }
        json_schema!({
            "type": "object",
            "description": "A step: `name`, `timeout`, `attempts` and exactly one operation key.",
            "properties": props,
            "additionalProperties": false,
            "oneOf": one_of,
        })
    }
}

/// The JSON Schema of the suite format, as committed in `suites/suite.schema.json`.
pub fn suite_schema() -> Schema {
    schemars::schema_for!(Suite)
}

/// The built-in step timeout: 5 minutes.
pub fn default_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(300))
}
