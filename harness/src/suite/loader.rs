//! Finding, reading and validating suites. Every error names file:line:column and the fix.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};

use super::model::{Scenario, Suite};
use crate::config::Settings;
use crate::error::InputError;
use crate::format::API_VERSION;
use crate::format::duration::Timeout;

/// Suites compiled into the binary, so `scs-e2e run` works from any directory.
pub const EMBEDDED: &[(&str, &str)] = &[("quickstart", include_str!("../../../suites/quickstart.yaml"))];

/// A suite as read: the parsed file, where it came from, and its exact text.
#[derive(Clone, Debug)]
pub struct LoadedSuite {
    /// The parsed suite; [`validate`] checks what parsing cannot.
    pub suite: Suite,
    /// As shown in reports and JUnit `file`: relative to the repository (or working directory).
    pub display_path: String,
    /// Relative paths in steps resolve against this directory.
    pub dir: PathBuf,
    /// The file's text as read; reports record it so `reproduce` can run the same suite again.
    pub source: String,
    /// Hex SHA-256 of `source`.
    pub sha256: String,
}

impl LoadedSuite {
    /// The suite's `name`.
    pub fn name(&self) -> &str {
        &self.suite.name.value
    }
}

/// Resolves `--suite` values: an existing path, `suites/NAME.yaml` (here or in the repository
/// this binary was built from), or an embedded suite.
pub fn find_suite(arg: &str) -> Result<LoadedSuite, InputError> {
    let p = Path::new(arg);
    if p.is_file() {
        return load_suite_file(p);
    }
    let looks_like_path = arg.contains('/') || arg.ends_with(".yaml") || arg.ends_with(".yml");
    if !looks_like_path {
        for dir in suite_dirs() {
            for ext in ["yaml", "yml"] {
                let f = dir.join(format!("{arg}.{ext}"));
                if f.is_file() {
                    return load_suite_file(&f);
                }
            }
        }
        if let Some((name, text)) = EMBEDDED.iter().find(|(n, _)| *n == arg) {
            return load_suite_str(text, &format!("suites/{name}.yaml"), std::env::current_dir().unwrap_or_default());
        }
    }
    let mut known: Vec<String> = EMBEDDED.iter().map(|(n, _)| n.to_string()).collect();
    for dir in suite_dirs() {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let path = e.path();
                if path.extension().is_some_and(|x| x == "yaml" || x == "yml")
                    && !path.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".schema.json"))
                    && let Some(stem) = path.file_stem()
                {
                    known.push(stem.to_string_lossy().into_owned());
                }
            }
        }
    }
    known.sort();
    known.dedup();
    Err(InputError::new(format!(
        "no suite `{arg}`: give a suite file path or one of the known names: {}",
        known.join(", ")
    )))
}

/// `./suites`, then the repository's `suites/` when running from a checkout.
pub fn suite_dirs() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from("suites")];
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites");
    if repo.is_dir() {
        v.push(repo);
    }
    v
}

/// All suite files of a directory, sorted.
pub fn suites_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    v.sort();
    v
}

/// Reads and parses a suite file; relative paths in its steps resolve against its directory.
pub fn load_suite_file(path: &Path) -> Result<LoadedSuite, InputError> {
    let display = display_path(path);
    let text =
        std::fs::read_to_string(path).map_err(|e| InputError::new(format!("cannot read suite: {e}; check the path")).in_file(&display))?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
    load_suite_str(&text, &display, dir)
}

/// Path relative to the repository root (the nearest directory with `.git`), else as given.
pub fn display_path(path: &Path) -> String {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut dir = abs.parent();
    while let Some(d) = dir {
        if d.join(".git").exists()
            && let Ok(rel) = abs.strip_prefix(d)
        {
            return rel.display().to_string();
        }
        dir = d.parent();
    }
    path.display().to_string()
}

/// Parses suite text; `display` names it in errors and reports, relative paths resolve in `dir`.
pub fn load_suite_str(text: &str, display: &str, dir: PathBuf) -> Result<LoadedSuite, InputError> {
    let suite: Suite = serde_saphyr::from_str(text).map_err(|e| InputError::from_yaml(&e, display, text))?;
    let sha256 = format!("{:x}", Sha256::digest(text.as_bytes()));
    Ok(LoadedSuite {
        suite,
        display_path: display.to_string(),
        dir,
        source: text.to_string(),
        sha256,
    })
}

/// Checks what serde cannot: versions, names, exclusive fields, regexes, intervals, collectors.
pub fn validate(ls: &LoadedSuite, settings: &Settings) -> Result<(), InputError> {
    let s = &ls.suite;
    let err = |msg: String, at: &serde_saphyr::Location| {
        InputError::new(msg)
            .in_file(&ls.display_path)
            .at(&ls.source, at.line(), at.column())
    };
    if s.api_version.value != API_VERSION {
        return Err(err(
            format!("apiVersion is `{}`; write `apiVersion: {API_VERSION}`", s.api_version.value),
            &s.api_version.referenced,
        ));
    }
    if s.kind.value != "Suite" {
        return Err(err(
            format!("kind is `{}`; a suite file has `kind: Suite`", s.kind.value),
            &s.kind.referenced,
        ));
    }
    check_name(&s.name, "suite").map_err(|m| err(m.into(), &s.name.referenced))?;
    for e in &s.environments {
        if crate::env::find(e).is_none() {
            return Err(InputError::new(format!("environments: {}", crate::env::unknown(e))).in_file(&ls.display_path));
        }
    }
    if s.scenarios.is_empty() {
        return Err(err(
            "a suite needs at least one scenario under `scenarios:`".into(),
            &s.name.referenced,
        ));
    }
    check_timeout(&s.defaults.timeout, settings).map_err(|(m, at)| err(m, &at))?;
    let mut names = HashSet::new();
    for sc in &s.scenarios {
        let at = &sc.name.referenced;
        if !names.insert(sc.name.value.clone()) {
            return Err(err(
                format!(
                    "duplicate scenario name `{}`: scenario names must be unique in a suite",
                    sc.name.value
                ),
                at,
            ));
        }
        check_name(&sc.name, "scenario").map_err(|m| err(m.into(), at))?;
        check_timeout(&sc.defaults.timeout, settings).map_err(|(m, at)| err(m, &at))?;
        for (k, vals) in &sc.matrix {
            if !valid_var(k) {
                return Err(err(format!("matrix key `{k}` must be a variable name (letters, digits, `_`)"), at));
            }
            if vals.is_empty() {
                return Err(err(format!("matrix key `{k}` has no values: list at least one"), at));
            }
        }
        if sc.steps.is_empty() {
            return Err(err(format!("scenario `{}` has no steps", sc.name.value), at));
        }
        for st in &sc.steps {
            check_timeout(&st.value.timeout, settings).map_err(|(m, at)| err(m, &at))?;
            st.value
                .op
                .operation()
                .validate()
                .map_err(|m| err(format!("{} step: {m}", st.value.op.key()), &st.referenced))?;
        }
        for c in sc.finally.iter().chain(&sc.on_failure) {
            c.validate().map_err(|m| err(format!("{} collector: {m}", c.label()), at))?;
        }
    }
    Ok(())
}

fn check_name(n: &Spanned<String>, what: &str) -> Result<(), crate::error::Invalid> {
    let v = &n.value;
    let ok = !v.is_empty()
        && v.len() <= 120
        && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.${}[]=,".contains(c))
        && v.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '$');
    if ok {
        Ok(())
    } else {
        Err(
            format!("{what} name `{v}` is not allowed: use letters, digits, `-`, `_` and `.` (it becomes a JUnit name and a directory)")
                .into(),
        )
    }
}

fn valid_var(k: &str) -> bool {
    k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_timeout(t: &Option<Spanned<Timeout>>, settings: &Settings) -> Result<(), (String, serde_saphyr::Location)> {
    if let Some(Spanned {
        value: Timeout::Interval(name),
        referenced,
        ..
    }) = t
        && !settings.intervals.contains_key(name)
    {
        let known: Vec<&str> = settings.intervals.keys().map(String::as_str).collect();
        return Err((
            format!(
                "unknown interval `{name}`: use a duration like `5m`, or one of {} (or define it under `intervals:` in the config)",
                known.join(", ")
            ),
            *referenced,
        ));
    }
    Ok(())
}

/// Matrix combinations in a stable order (keys sorted, values as written).
pub fn matrix_combinations(sc: &Scenario) -> Vec<BTreeMap<String, String>> {
    let mut combos = vec![BTreeMap::new()];
    for (k, vals) in &sc.matrix {
        let mut next = Vec::with_capacity(combos.len() * vals.len());
        for c in &combos {
            for v in vals {
                let mut c = c.clone();
                c.insert(k.clone(), v.0.clone());
                next.push(c);
            }
        }
        combos = next;
    }
    combos
}
