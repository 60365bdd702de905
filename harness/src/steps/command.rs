//! `command`: run a program (argv) or a bash script with `KUBECONFIG` set to the scenario's cluster.

use std::collections::BTreeMap;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Operation, exactly_one};
use crate::context::{StepCtx, StepFailure};
use crate::process::{Ended, path_with, run_streaming};

/// Runs `argv` or a bash `script` (with `set -euo pipefail`) in the suite's directory. The
/// environment has `KUBECONFIG`, `NAMESPACE`, `SCENARIO`, `ARTIFACTS`, earlier steps' outputs
/// (like `CLUSTER_KUBECONFIG`) and the environment's variables (like `CSO_RELEASE_DIR`), plus `env`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Command {
    /// Program and arguments, run without a shell (`${VAR}`s substituted). Set this or `script`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// A bash script, run with `-euo pipefail`. Its `${VAR}`s reach it as environment variables
    /// that bash expands, never spliced into the code: quote them as any shell variable
    /// (`"${VAR}"`). Set this or `argv`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// Extra environment variables (values `${VAR}`-substituted).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Expected exit code (default 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exit_code: i32,
    /// The output must contain this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_contains: Option<String>,
    /// The output must match this regular expression (multi-line: `^` and `$` match at each line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_matches: Option<String>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// A script and the variables it gets: each known `${NAME}` stays in the text for bash to expand
/// from the environment (a value is data, never code, whatever quotes or `;` it holds). A name
/// bash cannot take (`${a.b}`) is renamed in the text to `${SCS_E2E_SCRIPT_VAR_<n>}` (`SCS_E2E_VAR_<NAME>` is an input of scs-e2e itself).
fn script_with_vars(script: &str, vars: &BTreeMap<String, String>) -> (String, Vec<(String, String)>) {
    let shell_name = |n: &str| {
        let mut c = n.chars();
        c.next().is_some_and(|f| f == '_' || f.is_ascii_alphabetic()) && c.all(|x| x == '_' || x.is_ascii_alphanumeric())
    };
    // (name in the suite, name in the environment, value), in order of first use.
    let mut used: Vec<(String, String, String)> = Vec::new();
    let mut out = String::with_capacity(script.len());
    let mut rest = script;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}').map(|j| (j, &after[..j])) {
            Some((j, name)) if vars.contains_key(name) => {
                let exported = match used.iter().find(|(n, _, _)| n == name) {
                    Some((_, e, _)) => e.clone(),
                    None => {
                        let e = if shell_name(name) {
                            name.to_string()
                        } else {
                            format!("SCS_E2E_SCRIPT_VAR_{}", used.len())
                        };
                        used.push((name.to_string(), e.clone(), vars[name].clone()));
                        e
                    }
                };
                out.push_str(&format!("${{{exported}}}"));
                rest = &after[j + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    (out, used.into_iter().map(|(_, e, v)| (e, v)).collect())
}

#[async_trait]
impl Operation for Command {
    fn summary(&self) -> String {
        match (&self.argv, &self.script) {
            (Some(a), _) => format!("run {}", a.first().map(String::as_str).unwrap_or("")),
            (None, Some(s)) => format!("script {}", s.lines().next().unwrap_or("").chars().take(40).collect::<String>()),
            _ => "command".into(),
        }
    }

    fn validate(&self) -> Result<(), crate::error::Invalid> {
        exactly_one(&[("argv", self.argv.is_some()), ("script", self.script.is_some())])?;
        if self.argv.as_ref().is_some_and(Vec::is_empty) {
            return Err("`argv` needs at least the program name".into());
        }
        // With `${VAR}` inside, the regex is checked again after matrix expansion.
        if let Some(re) = self.output_matches.as_ref().filter(|r| !r.contains("${")) {
            regex::Regex::new(re).map_err(|e| format!("`outputMatches` is not a valid regular expression: {e}"))?;
        }
        Ok(())
    }

    async fn run(&self, ctx: &StepCtx) -> Result<(), StepFailure> {
        let expr = match (&self.argv, &self.script) {
            (Some(argv), _) => {
                let argv: Vec<String> = argv.iter().map(|a| ctx.substitute(a)).collect();
                duct::cmd(&argv[0], &argv[1..])
            }
            (None, Some(script)) => {
                let (text, vars) = script_with_vars(script, &ctx.vars);
                vars.into_iter()
                    .fold(duct::cmd("bash", ["-euo", "pipefail", "-c", &text]), |e, (k, v)| e.env(k, v))
            }
            _ => return Err(StepFailure::error("command needs argv or script")),
        };
        let mut expr = expr
            .dir(&ctx.base_dir)
            .env("KUBECONFIG", &ctx.kubeconfig)
            .env("NAMESPACE", &ctx.namespace)
            .env("ARTIFACTS", &ctx.artifacts)
            .env("PATH", path_with(&ctx.extra_path));
        if let Some(s) = ctx.vars.get("SCENARIO") {
            expr = expr.env("SCENARIO", s);
        }
        // What earlier steps handed on (a workload cluster's CLUSTER_KUBECONFIG) and what the
        // environment gives steps (CSO_RELEASE_DIR), so scripts can use `$NAME` too.
        for (k, v) in ctx.outputs.snapshot() {
            expr = expr.env(k, v);
        }
        for k in crate::env::STEP_VAR_NAMES {
            if let Some(v) = ctx.vars.get(*k) {
                expr = expr.env(k, v);
            }
        }
        for (k, v) in &self.env {
            expr = expr.env(k, ctx.substitute(v));
        }
        let log = ctx.log.clone();
        let out = run_streaming(expr, move |l| log.line(l), ctx.deadline, &ctx.cancel)
            .await
            .map_err(|e| StepFailure::error(format!("cannot start {}: {e}", self.summary())))?;
        match out.ended {
            Ended::Exited(c) if c == self.exit_code => {}
            Ended::Exited(c) => {
                return Err(
                    StepFailure::failed(format!("{} exited with {c}, expected {}", self.summary(), self.exit_code))
                        .details(tail(&out.output)),
                );
            }
            Ended::Signalled(s) => return Err(StepFailure::failed(format!("{} was killed by signal {s}", self.summary()))),
            Ended::TimedOut => {
                return Err(StepFailure::failed(format!("{} timed out and was killed", self.summary())).details(tail(&out.output)));
            }
            Ended::Cancelled => return Err(StepFailure::error("interrupted")),
        }
        if let Some(want) = &self.output_contains
            && !out.output.contains(&ctx.substitute(want))
        {
            return Err(StepFailure::failed(format!("output does not contain {want:?}")).details(tail(&out.output)));
        }
        if let Some(re) = &self.output_matches {
            let re = regex::RegexBuilder::new(re)
                .multi_line(true)
                .build()
                .map_err(|e| StepFailure::error(e.to_string()))?;
            if !re.is_match(&out.output) {
                return Err(StepFailure::failed(format!("output does not match /{re}/")).details(tail(&out.output)));
            }
        }
        Ok(())
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_reach_a_script_as_variables_and_never_run_as_code() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("pwned");
        let evil = format!("x\"; touch {} #$(touch {})", marker.display(), marker.display());
        let vars = BTreeMap::from([
            ("value".to_string(), evil.clone()),
            ("a.b".to_string(), "it's \"quoted\"".to_string()),
        ]);
        let script = "printf '%s|' \"${value}\" \"${a.b}\" \"${a.b}\" \"${NOT_KNOWN:-unset}\"";
        let (text, env) = script_with_vars(script, &vars);
        assert_eq!(
            text,
            "printf '%s|' \"${value}\" \"${SCS_E2E_SCRIPT_VAR_1}\" \"${SCS_E2E_SCRIPT_VAR_1}\" \"${NOT_KNOWN:-unset}\""
        );
        assert_eq!(env.len(), 2, "{env:?}");
        let out = env
            .into_iter()
            .fold(duct::cmd("bash", ["-euo", "pipefail", "-c", &text]), |e, (k, v)| e.env(k, v))
            .env_remove("NOT_KNOWN")
            .read()
            .unwrap();
        assert_eq!(out, format!("{evil}|it's \"quoted\"|it's \"quoted\"|unset|"));
        assert!(!marker.exists(), "a value ran as code");
    }
}
