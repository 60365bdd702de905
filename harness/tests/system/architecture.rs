//! The crate's layering (README, "Architecture"): every module of `harness/src` belongs to a
//! unit (a top-level module, or a folder of `env/`), units sit in layers, and imports run
//! downwards. This test reads the sources, builds the import graph and fails on a cycle
//! between units, on an upward import not in the short list of exceptions, and on a unit
//! missing from the table (a new module must be placed).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lowest first. A unit may import its own layer and the ones below.
const LAYERS: &[(&str, &[&str])] = &[
    ("floor", &["base", "format", "error", "redact", "process"]),
    ("kubernetes, results and settings", &["kube", "report", "config"]),
    (
        "environments",
        &[
            "env",
            "env::lab",
            "env::images",
            "env::mgmt",
            "env::cspo",
            "env::kind",
            "env::kubeconfig",
            "env::openstack",
        ],
    ),
    ("checks", &["checks"]),
    ("step context and stack operations", &["context", "stack"]),
    ("steps", &["steps", "collect"]),
    ("suites", &["suite"]),
    ("engine", &["engine"]),
    ("command line", &["cli", "testing"]),
];

/// Upward imports tolerated, as (importing unit, imported unit, why).
const EXCEPTIONS: &[(&str, &str, &str)] = &[];

fn unit(module: &str) -> String {
    let mut p = module.split("::");
    match (p.next(), p.next()) {
        (Some("env"), Some(sub)) => format!("env::{sub}"),
        (Some(top), _) => top.to_string(),
        _ => String::new(),
    }
}

fn layer(unit: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, units)| units.contains(&unit))
}

/// Module path of each source file (`env/lab/mod.rs` → `env::lab`).
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(src).unwrap().with_extension("");
                let mut parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
                if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                    parts.pop();
                }
                out.insert(parts.join("::"), p);
            }
        }
    }
    out
}

/// The source without comments and without its `#[cfg(test)] mod tests` (tests may reach anywhere).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Paths named after `crate::` or `super::`, with `{a, b::c}` groups expanded (one level deep
/// is all this crate writes).
fn referenced_paths(code: &str, module: &str) -> Vec<String> {
    let mut out = Vec::new();
    let parent = module.rsplit_once("::").map(|(p, _)| p).unwrap_or("");
    for (prefix, base) in [("crate::", ""), ("super::", parent)] {
        let mut rest = code;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            let path = rest[..end].trim_end_matches(':');
            let full = if base.is_empty() {
                path.to_string()
            } else {
                format!("{base}::{path}")
            };
            if rest[end..].starts_with('{') && rest[..end].ends_with("::") {
                let close = rest[end..].find('}').map(|j| end + j).unwrap_or(rest.len());
                for item in rest[end + 1..close].split(',') {
                    let item = item.trim().trim_start_matches('{');
                    if !item.is_empty() && item != "self" {
                        out.push(format!("{full}::{item}"));
                    }
                }
            }
            out.push(full);
        }
    }
    out
}

/// The longest module that is a prefix of `path`.
fn resolve<'a>(path: &str, modules: &'a BTreeMap<String, PathBuf>) -> Option<&'a str> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find_map(|m| modules.get_key_value(&m).map(|(k, _)| k.as_str()))
}

struct Graph {
    /// file-level: importing module → imported modules
    edges: BTreeMap<String, BTreeSet<String>>,
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    let mut edges = BTreeMap::new();
    for (m, path) in &mods {
        let code = code(&std::fs::read_to_string(path).unwrap());
        let targets: BTreeSet<String> = referenced_paths(&code, m)
            .iter()
            .filter_map(|p| resolve(p, &mods))
            .filter(|t| *t != m && !m.starts_with(&format!("{t}::")))
            .map(str::to_string)
            .collect();
        edges.insert(m.clone(), targets);
    }
    Graph { edges }
}

fn unit_edges(g: &Graph) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, tos) in &g.edges {
        for to in tos {
            let (a, b) = (unit(from), unit(to));
            if a != b && !a.is_empty() && !b.is_empty() {
                out.entry(a).or_default().insert(b);
            }
        }
    }
    out
}

/// A cycle through `start`, if any (depth-first search on the unit graph).
fn cycle_through(start: &str, edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn dfs(at: &str, start: &str, edges: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>, seen: &mut BTreeSet<String>) -> bool {
        for next in edges.get(at).into_iter().flatten() {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if dfs(next, start, edges, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    dfs(start, start, edges, &mut path, &mut BTreeSet::new()).then(|| {
        path.push(start.to_string());
        path
    })
}

#[test]
fn every_unit_has_a_layer() {
    let g = graph();
    let missing: BTreeSet<String> = g
        .edges
        .keys()
        .map(|m| unit(m))
        .filter(|u| !u.is_empty() && layer(u).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a layer: {missing:?}; add them to LAYERS in harness/tests/system/architecture.rs and to the README's architecture section"
    );
}

#[test]
fn units_import_each_other_without_cycles() {
    let edges = unit_edges(&graph());
    let cycles: BTreeSet<String> = edges
        .keys()
        .filter_map(|u| cycle_through(u, &edges))
        .map(|c| c.join(" → "))
        .collect();
    assert!(
        cycles.is_empty(),
        "import cycles between units:\n{}",
        cycles.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn imports_run_downwards() {
    let g = graph();
    let mut upward = Vec::new();
    for (from, tos) in &g.edges {
        for to in tos {
            let (a, b) = (unit(from), unit(to));
            let (Some(la), Some(lb)) = (layer(&a), layer(&b)) else { continue };
            if lb > la && !EXCEPTIONS.iter().any(|(x, y, _)| *x == a && *y == b) {
                upward.push(format!("{from} → {to} ({} → {})", LAYERS[la].0, LAYERS[lb].0));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports from a lower layer to a higher one:\n{}",
        upward.join("\n")
    );
    assert!(EXCEPTIONS.len() <= 2, "at most two tolerated upward imports");
}

#[test]
fn the_parser_sees_grouped_and_relative_imports() {
    let code = "use crate::steps::{StepCtx, apply::Apply};\nlet x = super::ops::run();\nlet y = crate::base::slug(s); // crate::cli";
    let got = referenced_paths(code, "stack::cspo");
    assert!(got.contains(&"steps::StepCtx".to_string()), "{got:?}");
    assert!(got.contains(&"steps::apply::Apply".to_string()), "{got:?}");
    assert!(got.contains(&"stack::ops::run".to_string()), "{got:?}");
    assert!(got.contains(&"base::slug".to_string()), "{got:?}");
    let stripped = self::code(code);
    assert!(
        !referenced_paths(&stripped, "x").iter().any(|p| p == "cli"),
        "comments are not imports"
    );
}
