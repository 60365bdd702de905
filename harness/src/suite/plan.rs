//! Expansion of suites into the plan a run executes: matrix combinations with stable names,
//! variables substituted, timeouts inherited (config → suite → scenario → step), filters, shards.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use serde::Serialize;

use super::loader::{LoadedSuite, matrix_combinations, validate};
use super::model::{Defaults, Step};
use crate::collect::Collector;
use crate::config::Settings;
use crate::error::InputError;
use crate::format::duration::Timeout;
use crate::format::subst::{placeholders, substitute_known, substitute_value};
use crate::steps::Op;

/// What a run executes: the suites it read and their expanded, filtered scenarios.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The suites, as loaded (reports record their content).
    pub suites: Vec<LoadedSuite>,
    /// The scenarios to run, after matrix expansion, filters and sharding.
    pub scenarios: Vec<PlannedScenario>,
}

/// One scenario after expansion: one matrix combination, variables substituted, timeouts resolved.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedScenario {
    /// The suite's name.
    pub suite: String,
    /// The suite file as shown in reports.
    pub suite_file: String,
    /// The suite file's directory: relative paths in steps resolve against it.
    #[serde(skip)]
    pub suite_dir: PathBuf,
    /// The scenario's name, with matrix values (`name[a,b]` when the name has no `${KEY}`).
    pub name: String,
    /// The scenario's `description`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// This expansion's matrix values, by key; empty without a matrix.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub matrix: BTreeMap<String, String>,
    /// The scenario's own namespace (substituted); None: the harness makes one and deletes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// What it must have to itself (substituted, sorted, each once): see the suite's `exclusive`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclusive: Vec<String>,
    /// The suite's `vars`, those given from outside and the matrix values, for `${NAME}` at run
    /// time.
    #[serde(skip)]
    pub vars: BTreeMap<String, String>,
    /// Where each of `vars` came from: `suite`, `matrix`, `--var`, `environment SCS_E2E_VAR_X`,
    /// `config <file>` (for `list` and `--dry-run`).
    #[serde(skip)]
    pub var_sources: BTreeMap<String, String>,
    /// The steps, in order.
    pub steps: Vec<PlannedStep>,
    /// Collectors run after the steps, whatever happened.
    #[serde(skip)]
    pub finally: Vec<Collector>,
    /// Collectors run only when a step failed.
    #[serde(skip)]
    pub on_failure: Vec<Collector>,
}

impl Plan {
    /// Whether any step drives Cluster API or CSO (the lab then starts its Cluster API layer).
    pub fn uses_cluster_stacks(&self) -> bool {
        self.scenarios.iter().flat_map(|s| &s.steps).any(|s| s.op.needs_cluster_api())
    }

    /// Whether every stack the plan installs is an in-memory one (and there is one).
    pub fn only_inmemory_stacks(&self) -> bool {
        let providers: Vec<&str> = self
            .scenarios
            .iter()
            .flat_map(|s| &s.steps)
            .filter_map(|s| s.op.operation().stack_install().map(|i| i.provider))
            .collect();
        !providers.is_empty() && providers.iter().all(|p| *p == "inmemory")
    }

    /// The provider of every stack a step installs, with `suite.scenario, step N` (providers
    /// still written as `${VAR}` left out).
    pub fn stack_providers(&self) -> Vec<(String, String)> {
        self.scenarios
            .iter()
            .flat_map(|sc| {
                sc.steps.iter().enumerate().filter_map(move |(i, st)| {
                    let p = st.op.operation().stack_install()?.provider;
                    (!p.contains("${")).then(|| (p.to_string(), format!("{}, step {}", sc.id(), i + 1)))
                })
            })
            .collect()
    }

    /// Checks, before anything runs, that every `installClusterStack.source:` known at plan time
    /// (no run-time `${...}` left) exists and offers the stack versions the step installs; the
    /// error names the scenario and step. Builds nothing.
    pub fn check_stack_sources(&self) -> Result<(), String> {
        let mut errors = Vec::new();
        for sc in &self.scenarios {
            for (i, st) in sc.steps.iter().enumerate() {
                let Some(inst) = st.op.operation().stack_install() else { continue };
                let Some(src) = inst.source else { continue };
                let fields = [src, inst.provider, inst.name, inst.kubernetes_version];
                if fields.iter().any(|f| f.contains("${")) {
                    continue;
                }
                let at = format!("{}, step {}", sc.id(), i + 1);
                // As the step resolves it: relative to the suite, absolute as is (join keeps it).
                let source = match crate::stack::source::open(src, |p| sc.suite_dir.join(p)) {
                    Ok(s) => s,
                    Err(e) => {
                        errors.push(format!("{at} ({}): {e:#}", sc.suite_file));
                        continue;
                    }
                };
                let id = crate::stack::StackId {
                    provider: inst.provider.to_string(),
                    name: inst.name.to_string(),
                    kubernetes_version: inst.kubernetes_version.to_string(),
                };
                for v in inst.versions.iter().filter(|v| !v.contains("${")) {
                    if let Err(e) = source.check_for(&id, v) {
                        errors.push(format!("{at} ({}): {e:#}", sc.suite_file));
                    }
                }
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors.join("\n")) }
    }

    /// Whether a step builds release assets from a stack source (`installClusterStack.source`):
    /// CSO must then run in local mode.
    pub fn uses_local_stacks(&self) -> bool {
        self.scenarios
            .iter()
            .flat_map(|s| &s.steps)
            .any(|s| s.op.operation().stack_install().is_some_and(|i| i.from_source))
    }
}

impl PlannedScenario {
    /// `suite.scenario`: JUnit classname, filter subject, shard key.
    pub fn id(&self) -> String {
        format!("{}.{}", self.suite, self.name)
    }
}

/// One step of a planned scenario, with its name, timeout and attempts resolved.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedStep {
    /// The step's `name`, or the operation's summary (`apply crd.yaml`).
    pub name: String,
    /// The operation's suite key, like `apply`.
    pub operation: &'static str,
    /// How long each attempt may take (seconds in JSON).
    #[serde(serialize_with = "secs")]
    pub timeout: Duration,
    /// Where the timeout came from: `step`, `scenario`, `suite`, `config`, plus the interval name.
    pub timeout_from: String,
    /// Tries before the step fails (1 = no retry).
    pub attempts: u32,
    /// The operation, variables substituted.
    #[serde(skip)]
    pub op: Op,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Which scenarios to run.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    /// Keep only scenarios whose `suite.scenario` matches (`--focus`).
    pub focus: Option<Regex>,
    /// Leave out scenarios whose `suite.scenario` matches (`--skip`).
    pub skip: Option<Regex>,
    /// (index from 1, count)
    pub shard: Option<(usize, usize)>,
}

impl Filters {
    /// From the `--focus`, `--skip` and `--shard` values; a bad regex or shard is a usage error.
    pub fn parse(focus: Option<&str>, skip: Option<&str>, shard: Option<&str>) -> Result<Filters, InputError> {
        let re = |flag: &str, v: Option<&str>| -> Result<Option<Regex>, InputError> {
            v.map(|s| {
                Regex::new(s).map_err(|e| {
                    InputError::new(format!(
                        "{flag} `{s}` is not a valid regular expression: {}",
                        last_line(&e.to_string())
                    ))
                })
            })
            .transpose()
        };
        let shard = shard
            .map(|s| {
                let bad = || InputError::new(format!("--shard `{s}`: write I/N with 1 <= I <= N, like --shard 2/4"));
                let (i, n) = s.split_once('/').ok_or_else(bad)?;
                let (i, n): (usize, usize) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
                if i == 0 || n == 0 || i > n {
                    return Err(bad());
                }
                Ok((i, n))
            })
            .transpose()?;
        Ok(Filters {
            focus: re("--focus", focus)?,
            skip: re("--skip", skip)?,
            shard,
        })
    }

    fn keep(&self, id: &str) -> bool {
        self.focus.as_ref().is_none_or(|r| r.is_match(id)) && !self.skip.as_ref().is_some_and(|r| r.is_match(id))
    }
}

/// Regex errors put the useful sentence last.
fn last_line(s: &str) -> String {
    s.lines().rfind(|l| !l.trim().is_empty()).unwrap_or(s).trim().to_string()
}

/// Validates and expands suites into a plan.
pub fn build_plan(suites: Vec<LoadedSuite>, settings: &Settings, filters: &Filters) -> Result<Plan, InputError> {
    let mut scenarios = Vec::new();
    let mut suite_names = HashSet::new();
    for ls in &suites {
        validate(ls, settings)?;
        if !suite_names.insert(ls.name().to_string()) {
            return Err(
                InputError::new(format!("two suites are named `{}`: suite names must be unique in a run", ls.name()))
                    .in_file(&ls.display_path),
            );
        }
        scenarios.extend(expand_suite(ls, settings)?);
    }
    let mut kept: Vec<PlannedScenario> = scenarios.into_iter().filter(|s| filters.keep(&s.id())).collect();
    if let Some((i, n)) = filters.shard {
        // Round-robin over the sorted ids: every shard gets a fair share, the same one every run.
        let mut ids: Vec<String> = kept.iter().map(PlannedScenario::id).collect();
        ids.sort();
        let mine: HashSet<String> = ids
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % n == i - 1)
            .map(|(_, id)| id)
            .collect();
        kept.retain(|s| mine.contains(&s.id()));
    }
    Ok(Plan { suites, scenarios: kept })
}

/// Expands one suite's scenarios (matrix, substitution, timeouts) and validates their steps.
pub fn expand_suite(ls: &LoadedSuite, settings: &Settings) -> Result<Vec<PlannedScenario>, InputError> {
    let s = &ls.suite;
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for sc in &s.scenarios {
        for combo in matrix_combinations(sc) {
            // Suite defaults < config < environment < --var (merged in settings.vars); a matrix
            // key is the expansion itself and keeps its values.
            let mut vars = s.vars.clone();
            let mut var_sources: BTreeMap<String, String> = s.vars.keys().map(|k| (k.clone(), "suite".to_string())).collect();
            for (k, (v, from)) in &settings.vars {
                vars.insert(k.clone(), v.clone());
                var_sources.insert(k.clone(), from.clone());
            }
            vars.extend(combo.clone());
            var_sources.extend(combo.keys().map(|k| (k.clone(), "matrix".to_string())));
            let mut name = substitute_known(&sc.name.value, &combo);
            if !combo.is_empty() && name == sc.name.value {
                // No ${KEY} in the name: append the values so every expansion has its own stable name.
                let vals: Vec<&str> = combo.values().map(String::as_str).collect();
                name = format!("{name}[{}]", vals.join(","));
            }
            let at = &sc.name.referenced;
            if name.contains("${") {
                return Err(InputError::new(format!(
                    "scenario name `{name}` uses a variable that is not a matrix key: known keys are {}",
                    sc.matrix.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
                .in_file(&ls.display_path)
                .at(&ls.source, at.line(), at.column()));
            }
            if !names.insert(name.clone()) {
                return Err(InputError::new(format!(
                    "scenario name `{name}` occurs twice after matrix expansion: put each matrix key in the name as ${{KEY}}"
                ))
                .in_file(&ls.display_path)
                .at(&ls.source, at.line(), at.column()));
            }
            let mut steps = Vec::with_capacity(sc.steps.len());
            for st in &sc.steps {
                // One JSON form serves the substitution and the unknown-variable check.
                let mut json = serde_json::to_value(&st.value).expect("a step serializes");
                if !vars.is_empty() {
                    substitute_value(&mut json, &vars);
                }
                if let Some(unknown) = unknown_var(&json, &vars) {
                    return Err(InputError::new(format!(
                        "`${{{unknown}}}` (scenario {name}) is no variable of this suite: define it in the suite's `vars`, give it with --var {unknown}=VALUE (or SCS_E2E_VAR_{unknown}, or `vars:` in the config file), or use one the run sets: {}",
                        [SCENARIO_VARS, crate::env::STEP_VAR_NAMES].concat().join(", ")
                    ))
                    .in_file(&ls.display_path)
                    .at(&ls.source, st.referenced.line(), st.referenced.column()));
                }
                // Substitution only changes strings; a value that no longer parses keeps the original step.
                let step: Step = if vars.is_empty() {
                    st.value.clone()
                } else {
                    serde_json::from_value(json).unwrap_or_else(|_| st.value.clone())
                };
                step.op.operation().validate().map_err(|m| {
                    InputError::new(format!("{} step (scenario {name}): {m}", step.op.key()))
                        .in_file(&ls.display_path)
                        .at(&ls.source, st.referenced.line(), st.referenced.column())
                })?;
                let (timeout, from) = resolve_timeout(&step, &sc.defaults, &s.defaults, settings);
                let attempts = step
                    .attempts
                    .or(sc.defaults.attempts)
                    .or(s.defaults.attempts)
                    .unwrap_or(settings.default_attempts);
                steps.push(PlannedStep {
                    name: step.name.clone().unwrap_or_else(|| step.op.operation().summary()),
                    operation: step.op.key(),
                    timeout,
                    timeout_from: from,
                    attempts,
                    op: step.op,
                });
            }
            let sub_collectors = |v: &Vec<Collector>| -> Vec<Collector> {
                v.iter()
                    .map(|c| {
                        if vars.is_empty() {
                            return c.clone();
                        }
                        let mut j = serde_json::to_value(c).expect("collector serializes");
                        substitute_value(&mut j, &vars);
                        serde_json::from_value(j).unwrap_or_else(|_| c.clone())
                    })
                    .collect()
            };
            let (finally, on_failure) = (sub_collectors(&sc.finally), sub_collectors(&sc.on_failure));
            out.push(PlannedScenario {
                suite: s.name.value.clone(),
                suite_file: ls.display_path.clone(),
                suite_dir: ls.dir.clone(),
                name,
                description: sc.description.clone(),
                matrix: combo,
                namespace: sc.namespace.as_ref().map(|n| substitute_known(n, &vars)),
                exclusive: sc
                    .exclusive
                    .iter()
                    .map(|x| substitute_known(x, &vars))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                vars,
                var_sources,
                steps,
                finally,
                on_failure,
            });
        }
    }
    Ok(out)
}

/// The variables the run itself sets for each scenario's steps, besides the environments'
/// ([`crate::env::STEP_VAR_NAMES`]): the engine's per-scenario ones and `waitCluster`'s
/// CLUSTER_KUBECONFIG. Kept in step with the engine's `scenario_vars` and `waitCluster`.
pub const SCENARIO_VARS: &[&str] = &["NAMESPACE", "SCENARIO", "RUN_ID", "ARTIFACTS", "KUBECONFIG", "CLUSTER_KUBECONFIG"];

/// Set by the run (or an environment) for steps: see [`SCENARIO_VARS`].
pub fn is_runtime_var(name: &str) -> bool {
    SCENARIO_VARS.contains(&name) || crate::env::STEP_VAR_NAMES.contains(&name)
}

/// The first `${NAME}` in a step (after substitution) that is neither one of `vars` nor set by
/// the run. Bash scripts (`script` fields) are left out: their `${...}` are bash's.
fn unknown_var(v: &serde_json::Value, vars: &BTreeMap<String, String>) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::String(s) => placeholders(s)
            .find(|n| crate::config::is_var_name(n) && !vars.contains_key(*n) && !is_runtime_var(n))
            .map(str::to_string),
        Value::Array(a) => a.iter().find_map(|x| unknown_var(x, vars)),
        Value::Object(m) => m
            .iter()
            .filter(|(k, _)| k.as_str() != "script")
            .find_map(|(_, x)| unknown_var(x, vars)),
        _ => None,
    }
}

fn resolve_timeout(step: &Step, scenario: &Defaults, suite: &Defaults, settings: &Settings) -> (Duration, String) {
    let candidates = [(&step.timeout, "step"), (&scenario.timeout, "scenario"), (&suite.timeout, "suite")];
    for (t, from) in candidates {
        if let Some(t) = t {
            return match &t.value {
                Timeout::Fixed(d) => (d.0, from.to_string()),
                Timeout::Interval(n) => (
                    settings.intervals.get(n).copied().unwrap_or(settings.default_timeout),
                    format!("{from} ({n})"),
                ),
            };
        }
    }
    (settings.default_timeout, "config".into())
}
