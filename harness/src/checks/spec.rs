//! The SCS certificate spec format (`scs-compatible-kaas.yaml`): model, validation, and which
//! testcases apply at a reference date.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::InputError;

/// An SCS certificate spec: variables, scripts with their testcases, modules, timeline and versions.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Human-readable name, like `SCS-compatible KaaS`.
    pub name: String,
    /// Stable identifier of the spec, copied into compliance reports.
    pub uuid: String,
    /// Where the spec file is published.
    pub url: String,
    /// Variables the scripts' `args` use as `{name}`; values come from `-a name=VALUE`.
    #[serde(default)]
    pub variables: Vec<Variable>,
    /// The test scripts, each with the testcases it reports.
    #[serde(default)]
    pub scripts: Vec<Script>,
    /// Modules (usually one per standard) and the testcases they ask for.
    #[serde(default)]
    pub modules: Vec<Module>,
    /// Dated entries saying which versions are in which state from then on.
    #[serde(default)]
    pub timeline: Vec<TimelineEntry>,
    /// The spec's versions, each a set of modules.
    #[serde(default)]
    pub versions: Vec<Version>,
}

/// `- kubeconfig` (required) or `- execution_mode: parallel` (with a default).
#[derive(Clone, Debug, Serialize)]
pub struct Variable {
    /// The variable's name, as in `{name}` and `-a name=VALUE`.
    pub name: String,
    /// Its default value; None: the variable is required.
    pub default: Option<String>,
}

impl<'de> Deserialize<'de> for Variable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            WithDefault(BTreeMap<String, String>),
        }
        match Raw::deserialize(d)? {
            Raw::Name(name) => Ok(Variable { name, default: None }),
            Raw::WithDefault(m) if m.len() == 1 => {
                let (name, default) = m.into_iter().next().expect("one entry");
                Ok(Variable {
                    name,
                    default: Some(default),
                })
            }
            Raw::WithDefault(_) => Err(serde::de::Error::custom(
                "a variable with a default is a one-entry map, like `execution_mode: parallel`",
            )),
        }
    }
}

/// A test script and the testcases it reports (`<id>: PASS|FAIL|ABORT` on stdout).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// Absent for manual testcases.
    #[serde(default)]
    pub executable: Option<String>,
    /// Its arguments, with `{variable}` placeholders (see [`Spec::format_args`]); None: no arguments.
    #[serde(default)]
    pub args: Option<String>,
    /// Environment variables for the script, as the spec gives them; empty if none.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The testcases this script reports on.
    pub testcases: Vec<Testcase>,
}

/// How long a testcase's result stays valid (upstream `lifetime`); a week by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifetime {
    /// A day.
    Day,
    /// A week (the default).
    #[default]
    Week,
    /// A month.
    Month,
    /// A quarter of a year.
    Quarter,
    /// A year.
    Year,
}

/// One testcase of a script.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Testcase {
    /// Unique id, like `version-policy-check`; results are keyed by it.
    pub id: String,
    /// How long its result stays valid (default: a week).
    #[serde(default)]
    pub lifetime: Lifetime,
    /// Section for `-S`, like `light` or `heavy`; None: kept whatever `-S` says.
    #[serde(default)]
    pub section: Option<String>,
    /// What the testcase requires; the summary shows it for failed, aborted and missing ones.
    #[serde(default)]
    pub description: Option<String>,
    /// Link to the requirement in the standard.
    #[serde(default)]
    pub url: Option<String>,
}

/// A module of the spec (usually one standard) and the testcases it asks for, per target.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Module {
    /// Module id, as versions' `include` names it (like `scs-0210-v2`).
    pub id: String,
    /// Human-readable name of the standard.
    pub name: String,
    /// The standard's documentation.
    #[serde(default)]
    pub url: Option<String>,
    /// Module parameters as the spec gives them; empty if none.
    #[serde(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// Target name (like `main`, `preview`) → testcase ids.
    #[serde(default)]
    pub targets: BTreeMap<String, Vec<String>>,
}

/// The state of a spec version from a timeline entry's date on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionState {
    /// Work in progress, not yet binding (still checked).
    Draft,
    /// In force.
    Effective,
    /// Still in force, but about to be deprecated.
    Warn,
    /// No longer in force: not checked.
    Deprecated,
}

/// One entry of the timeline: the state of versions from `date` on.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineEntry {
    /// The day from which this entry holds.
    pub date: NaiveDate,
    /// Version name → its state.
    pub versions: BTreeMap<String, VersionState>,
}

/// One version of the spec: the modules it includes.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    /// Its name, like `v1`.
    pub version: String,
    /// When it became stable; None if not given.
    #[serde(default)]
    pub stabilized_at: Option<NaiveDate>,
    /// The modules it includes.
    #[serde(default)]
    pub include: Vec<Include>,
}

/// `- scs-0210-v2` or `- {ref: scs-0210-v2, parameters: {...}}`.
#[derive(Clone, Debug, Serialize)]
pub struct Include {
    /// The included module's id.
    pub module: String,
    /// Parameter values for that module; empty for the plain `- id` form.
    pub parameters: BTreeMap<String, serde_json::Value>,
}

impl<'de> Deserialize<'de> for Include {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Id(String),
            Ref {
                #[serde(rename = "ref")]
                module: String,
                #[serde(default)]
                parameters: BTreeMap<String, serde_json::Value>,
            },
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Id(module) => Include {
                module,
                parameters: BTreeMap::new(),
            },
            Raw::Ref { module, parameters } => Include { module, parameters },
        })
    }
}

/// The SCS KaaS spec (scs-compatible-kaas.yaml), compiled in so `scs-e2e check` and `runChecks`
/// work from anywhere; its origin is noted in fixtures/scs-standards/README.md.
const BUILTIN: &str = include_str!("../../../fixtures/scs-standards/scs-compatible-kaas.yaml");

/// A spec and where its relative script paths resolve.
pub struct Loaded {
    /// The spec, parsed and validated.
    pub spec: Spec,
    /// The spec file's directory (for the built-in spec: the caller's fallback).
    pub dir: PathBuf,
}

impl Spec {
    /// The built-in SCS KaaS spec.
    pub fn builtin() -> Spec {
        Spec::parse(BUILTIN, "scs-compatible-kaas.yaml (built in)").expect("the built-in spec is checked by the tests")
    }

    /// The spec at `path`, or the built-in one (whose scripts resolve against `builtin_dir`):
    /// the one loader of `scs-e2e check` and the `runChecks` step.
    pub fn load(path: Option<&Path>, builtin_dir: &Path) -> Result<Loaded, InputError> {
        let Some(path) = path else {
            return Ok(Loaded {
                spec: Spec::builtin(),
                dir: builtin_dir.to_path_buf(),
            });
        };
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::new(format!("cannot read the spec: {e}; give the path of an SCS spec file")).in_file(&file))?;
        Ok(Loaded {
            spec: Spec::parse(&text, &file)?,
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        })
    }

    /// Parses and validates spec YAML; `file` names the source in errors.
    pub fn parse(text: &str, file: &str) -> Result<Spec, InputError> {
        let spec: Spec = serde_saphyr::from_str(text).map_err(|e| InputError::from_yaml(&e, file, text))?;
        spec.validate().map_err(|m| InputError::new(m).in_file(file))?;
        Ok(spec)
    }

    fn validate(&self) -> Result<(), crate::error::Invalid> {
        let mut ids = HashSet::new();
        for tc in self.testcases() {
            if !ids.insert(tc.id.as_str()) {
                return Err(format!("testcase id `{}` is defined twice: testcase ids must be unique", tc.id).into());
            }
        }
        let mut modules = HashSet::new();
        for m in &self.modules {
            if !modules.insert(m.id.as_str()) {
                return Err(format!("module id `{}` is defined twice", m.id).into());
            }
            for t in m.targets.values().flatten() {
                if !ids.contains(t.as_str()) {
                    return Err(format!("module `{}` names testcase `{t}`, which no script defines", m.id).into());
                }
            }
        }
        let mut versions = HashSet::new();
        for v in &self.versions {
            if !versions.insert(v.version.as_str()) {
                return Err(format!("version `{}` is defined twice", v.version).into());
            }
            for i in &v.include {
                if !modules.contains(i.module.as_str()) {
                    return Err(format!("version `{}` includes module `{}`, which is not defined", v.version, i.module).into());
                }
            }
        }
        for e in &self.timeline {
            for v in e.versions.keys() {
                if !versions.contains(v.as_str()) {
                    return Err(format!("timeline entry {} names version `{v}`, which is not defined", e.date).into());
                }
            }
        }
        Ok(())
    }

    /// All testcases of all scripts, in spec order.
    pub fn testcases(&self) -> impl Iterator<Item = &Testcase> {
        self.scripts.iter().flat_map(|s| &s.testcases)
    }

    /// The script that reports `testcase`, if any.
    pub fn script_of(&self, testcase: &str) -> Option<&Script> {
        self.scripts.iter().find(|s| s.testcases.iter().any(|t| t.id == testcase))
    }

    /// The testcase with this id, if any.
    pub fn testcase(&self, id: &str) -> Option<&Testcase> {
        self.testcases().find(|t| t.id == id)
    }

    /// The versions in force on `date`: those of the latest timeline entry dated on or before it,
    /// deprecated ones excepted.
    pub fn versions_in_force(&self, date: NaiveDate) -> Vec<(String, VersionState)> {
        let entry = self.timeline.iter().filter(|e| e.date <= date).max_by_key(|e| e.date);
        entry
            .map(|e| {
                e.versions
                    .iter()
                    .filter(|(_, s)| **s != VersionState::Deprecated)
                    .map(|(v, s)| (v.clone(), *s))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Target name → testcase ids of one version: the union over its modules.
    pub fn targets(&self, version: &str) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let Some(v) = self.versions.iter().find(|v| v.version == version) else {
            return out;
        };
        for inc in &v.include {
            if let Some(m) = self.modules.iter().find(|m| m.id == inc.module) {
                for (target, ids) in &m.targets {
                    out.entry(target.clone()).or_default().extend(ids.iter().cloned());
                }
            }
        }
        out
    }

    /// `{kubeconfig}`-style formatting of a script's args; every variable must have a value.
    pub fn format_args(&self, args: &str, assignment: &BTreeMap<String, String>) -> Result<String, crate::error::Invalid> {
        let mut out = String::new();
        let mut rest = args;
        while let Some(i) = rest.find('{') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let j = after.find('}').ok_or_else(|| format!("unclosed `{{` in script args `{args}`"))?;
            let name = &after[..j];
            out.push_str(
                assignment
                    .get(name)
                    .ok_or_else(|| format!("variable `{name}` has no value: pass -a {name}=VALUE"))?,
            );
            rest = &after[j + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Variables from `-a key=value`, defaults filled in; missing required ones are an error.
    pub fn assignment(&self, given: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, crate::error::Invalid> {
        let mut out = BTreeMap::new();
        for v in &self.variables {
            match given.get(&v.name).or(v.default.as_ref()) {
                Some(val) => {
                    out.insert(v.name.clone(), val.clone());
                }
                None => return Err(format!("the spec needs variable `{}`: pass -a {}=VALUE", v.name, v.name).into()),
            }
        }
        for (k, val) in given {
            if !self.variables.iter().any(|v| &v.name == k) {
                return Err(format!(
                    "the spec has no variable `{k}`: it knows {}",
                    self.variables.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(", ")
                )
                .into());
            }
            out.insert(k.clone(), val.clone());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KAAS: &str = BUILTIN;

    #[test]
    fn the_loader_gives_the_builtin_spec_or_names_the_unreadable_file() {
        let d = tempfile::tempdir().unwrap();
        let l = Spec::load(None, d.path()).unwrap();
        assert_eq!(l.spec.name, Spec::builtin().name);
        assert_eq!(l.dir, d.path());
        let missing = d.path().join("nope.yaml");
        let e = Spec::load(Some(&missing), d.path()).err().unwrap();
        assert_eq!(e.file.as_deref(), Some(missing.display().to_string().as_str()));
        std::fs::write(&missing, KAAS).unwrap();
        assert_eq!(Spec::load(Some(&missing), Path::new("/")).unwrap().dir, d.path());
    }

    fn spec() -> Spec {
        Spec::parse(KAAS, "scs-compatible-kaas.yaml").unwrap()
    }

    #[test]
    fn parses_the_upstream_kaas_spec() {
        let s = spec();
        assert_eq!(s.uuid, "1fffebe6-fd4b-44d3-a36c-fc58b4bb0180");
        let ids: Vec<&str> = s.testcases().map(|t| t.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "cncf-k8s-conformance",
                "version-policy-check",
                "node-distribution-check",
                "kaas-networking-check"
            ]
        );
        assert_eq!(s.testcase("cncf-k8s-conformance").unwrap().lifetime, Lifetime::Year);
        assert_eq!(
            s.testcase("version-policy-check").unwrap().lifetime,
            Lifetime::Week,
            "week is the default"
        );
        assert!(s.script_of("node-distribution-check").unwrap().executable.is_none(), "manual");
        assert_eq!(s.variables[2].default.as_deref(), Some("parallel"));
    }

    #[test]
    fn versions_in_force_follow_the_timeline() {
        let s = spec();
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert_eq!(s.versions_in_force(d(2024, 1, 1)), vec![]);
        assert_eq!(s.versions_in_force(d(2024, 3, 1)), vec![("v1".to_string(), VersionState::Draft)]);
        assert_eq!(
            s.versions_in_force(d(2024, 11, 26)),
            vec![("v1".to_string(), VersionState::Effective)]
        );
        let t = s.targets("v1");
        assert_eq!(
            t["main"].iter().map(String::as_str).collect::<Vec<_>>(),
            ["cncf-k8s-conformance", "kaas-networking-check", "version-policy-check"]
        );
        assert!(
            !t.contains_key("preview"),
            "v1 includes scs-0214-v2 (no targets), not the manual module"
        );
    }

    #[test]
    fn unknown_keys_and_duplicate_ids_are_errors() {
        let e = Spec::parse(&KAAS.replace("lifetime: year", "lifetime: year\n    colour: blue"), "s.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `colour`") && e.starts_with("s.yaml:"), "{e}");
        let dup = KAAS.replace(
            "- id: kaas-networking-check\n    lifetime",
            "- id: version-policy-check\n    lifetime",
        );
        let e = Spec::parse(&dup, "s.yaml").unwrap_err().to_string();
        assert!(e.contains("testcase id `version-policy-check` is defined twice"), "{e}");
    }

    #[test]
    fn variables_and_args() {
        let s = spec();
        let e = s.assignment(&BTreeMap::new()).unwrap_err();
        assert_eq!(e, "the spec needs variable `subject_root`: pass -a subject_root=VALUE");
        let given = BTreeMap::from([
            ("subject_root".to_string(), "/tmp/s".to_string()),
            ("kubeconfig".to_string(), "/k".to_string()),
        ]);
        let a = s.assignment(&given).unwrap();
        assert_eq!(a["execution_mode"], "parallel");
        assert_eq!(
            s.format_args("-k {kubeconfig} -r {subject_root}/x", &a).unwrap(),
            "-k /k -r /tmp/s/x"
        );
        assert!(s.format_args("{nope}", &a).unwrap_err().contains("`nope` has no value"));
        let bad = BTreeMap::from([("colour".to_string(), "x".to_string())]);
        assert!(s.assignment(&bad).is_err());
    }
}
