//! `runChecks`: run SCS KaaS standard checks against the scenario's cluster.

use std::collections::BTreeMap;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Operation;
use crate::checks::request::{self, Request};
use crate::checks::spec::{Loaded, Spec};
use crate::checks::{compliance, render, runner};
use crate::context::{StepCtx, StepFailure};

/// Runs a spec's testcases (default: the built-in scs-compatible-kaas) and fails unless every
/// selected testcase passes. The compliance YAML and a JUnit file (`junit_<subject>-checks.xml`,
/// with one testcase per e2e test Sonobuoy ran) go to the scenario's artifacts. Every check,
/// native or script, checks the cluster of `kubeconfig` (or `assign.kubeconfig`), by default the
/// environment's.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RunChecks {
    /// Spec file, relative to the suite (default: the built-in scs-compatible-kaas.yaml).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    /// Subject name in the report (default: the scenario).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Testcase ids to run, a regular expression (like `-t`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<String>,
    /// Sections, like `[light]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<String>,
    /// The cluster to check, a kubeconfig file: `${CLUSTER_KUBECONFIG}` for the workload cluster
    /// the scenario created (default: `assign.kubeconfig`, else the environment's cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    /// Spec variables (`kubeconfig` and `subject_root` are filled in).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub assign: BTreeMap<String, String>,
    /// Where version-policy-check reads its data (default: upstream URLs, cached for 6h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_policy: Option<request::VersionPolicySources>,
}

#[async_trait]
impl Operation for RunChecks {
    fn summary(&self) -> String {
        format!("SCS checks{}", self.tests.as_ref().map(|t| format!(" {t}")).unwrap_or_default())
    }

    fn validate(&self) -> Result<(), crate::error::Invalid> {
        if let Some(t) = self.tests.as_ref().filter(|t| !t.contains("${")) {
            regex::Regex::new(t).map_err(|e| format!("`tests` is not a valid regular expression: {e}"))?;
        }
        if let Some(vp) = &self.version_policy {
            vp.validate()?;
        }
        if self.kubeconfig.is_some() && self.assign.contains_key("kubeconfig") {
            return Err("the cluster is given twice: keep `kubeconfig:` and drop `assign.kubeconfig`".into());
        }
        Ok(())
    }

    async fn run(&self, ctx: &StepCtx) -> Result<(), StepFailure> {
        let path = self.spec.as_ref().map(|p| ctx.resolve_path(&ctx.substitute(p)));
        let Loaded { spec, dir } = Spec::load(path.as_deref(), &ctx.base_dir).map_err(|e| StepFailure::error(e.to_string()))?;
        let subject = self
            .subject
            .clone()
            .unwrap_or_else(|| ctx.vars.get("SCENARIO").cloned().unwrap_or_else(|| "cluster".into()));
        let mut given: BTreeMap<String, String> = self.assign.iter().map(|(k, v)| (k.clone(), ctx.substitute(v))).collect();
        let kubeconfig = self
            .kubeconfig
            .as_deref()
            .or(self.assign.get("kubeconfig").map(String::as_str))
            .map(|k| ctx.resolve_path(&ctx.substitute(k)))
            .unwrap_or_else(|| ctx.kubeconfig.clone());
        // Native checks and scripts see the same cluster.
        given.remove("kubeconfig");
        for (name, value) in [
            ("kubeconfig", kubeconfig.display().to_string()),
            ("subject_root", ctx.artifacts.join("checks").display().to_string()),
        ] {
            if spec.variables.iter().any(|v| v.name == name) {
                given.entry(name.into()).or_insert(value);
            }
        }
        let assignment = spec.assignment(&given).map_err(StepFailure::error)?;
        let tests = self
            .tests
            .as_deref()
            .map(|t| regex::Regex::new(&ctx.substitute(t)))
            .transpose()
            .map_err(|e| StepFailure::error(e.to_string()))?;
        let remaining = ctx.deadline.saturating_duration_since(tokio::time::Instant::now());
        let req = Request {
            spec,
            spec_dir: dir,
            subject: subject.clone(),
            assignment,
            tests,
            sections: (!self.sections.is_empty()).then(|| self.sections.clone()),
            reference_date: chrono::Utc::now().date_naive(),
            forced_version: None,
            kubeconfig: Some(kubeconfig),
            argv: vec!["scs-e2e".into(), "runChecks".into()],
            sonobuoy_timeout: remaining,
            cancel: ctx.cancel.clone(),
            storage_timeout: remaining
                .saturating_sub(std::time::Duration::from_secs(5))
                .max(std::time::Duration::from_secs(1)),
            version_policy: {
                let mut vp = request::VersionPolicyInputs::cached();
                if let Some(given) = &self.version_policy {
                    // A variable left empty means the default source, so a suite can offer one.
                    let sub = |v: &Option<String>| v.as_deref().map(|s| ctx.substitute(s)).filter(|s| !s.is_empty());
                    let given = request::VersionPolicySources {
                        data: sub(&given.data),
                        eol_data: sub(&given.eol_data),
                        releases: sub(&given.releases),
                        cve_feed: sub(&given.cve_feed),
                        cve_records: sub(&given.cve_records),
                        concurrency: given.concurrency,
                    };
                    vp.sources = given.resolve(&ctx.base_dir);
                    vp.options = given.options(vp.options);
                }
                vp
            },
            run_id: ctx.run_id.clone(),
            // The environment's tools first, then the lab's build (sonobuoy is built there).
            tool_dirs: ctx
                .extra_path
                .iter()
                .cloned()
                .chain([crate::env::lab::build::Assets::locate(None, None).bin_dir])
                .collect(),
        };
        let report = runner::run(&req).await;
        let summary = render::summary(&req, &report);
        for l in summary.lines() {
            ctx.log.line(l);
        }
        let path = ctx.artifacts.join(format!("{}-compliance.yaml", crate::base::slug(&subject)));
        let yaml = render::yaml(&report);
        crate::redact::write_atomic(&path, &yaml).map_err(|e| StepFailure::error(e.to_string()))?;
        // One testcase per spec testcase and per e2e test Sonobuoy ran, for CI systems that
        // show JUnit beside the run's own (Zuul, GitHub Actions, Prow collect junit_*.xml).
        let junit = ctx.artifacts.join(format!("junit_{}-checks.xml", crate::base::slug(&subject)));
        crate::redact::write_atomic(&junit, &render::junit(&req, &report)).map_err(|e| StepFailure::error(e.to_string()))?;
        let results = compliance::results(&report);
        let selected: Vec<String> = req.select().into_iter().filter(|s| !s.manual).map(|s| s.id).collect();
        let bad: Vec<String> = selected
            .iter()
            .filter(|id| results.get(*id) != Some(&1))
            .map(|id| {
                let word = match results.get(id) {
                    Some(-1) => "FAIL",
                    Some(_) => "ABORT",
                    None => "MISSING",
                };
                format!("{id}: {word}")
            })
            .collect();
        if bad.is_empty() {
            Ok(())
        } else {
            Err(StepFailure::failed(format!("SCS checks did not pass: {}", bad.join(", ")))
                .details(format!("{summary}\nreport: {}", path.display())))
        }
    }
}
