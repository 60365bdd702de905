//! Suite loading and validation: every bad input is an error naming file:line:column and the fix;
//! matrix expansion; timeout inheritance; the committed JSON Schema.

use std::path::PathBuf;
use std::time::Duration;

use scs_e2e::config::Settings;
use scs_e2e::suite::loader::{find_suite, load_suite_str};
use scs_e2e::suite::plan::{Filters, build_plan, expand_suite};

const FILE: &str = "suites/t.yaml";

fn plan_err(text: &str) -> String {
    plan_err_with(text, &Settings::default())
}

fn plan_err_with(text: &str, settings: &Settings) -> String {
    let res = load_suite_str(text, FILE, PathBuf::from(".")).and_then(|ls| build_plan(vec![ls], settings, &Filters::default()));
    match res {
        Ok(_) => panic!("accepted bad input:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn suite(scenarios: &str) -> String {
    format!("apiVersion: scs-e2e/v1alpha1\nkind: Suite\nname: t\nscenarios:\n{scenarios}")
}

const OK_STEP: &str = "      - command: {argv: [\"true\"]}\n";

#[test]
fn unknown_step_field_names_line_column_and_the_known_fields() {
    let e = plan_err(&suite(
        "  - name: a\n    steps:\n      - timout: 5m\n        command: {argv: [\"true\"]}\n",
    ));
    assert!(
        e.starts_with(
            "suites/t.yaml:7:9: unknown field `timout`, expected one of name, timeout, attempts, apply, assert, wait, delete, command"
        ),
        "{e}"
    );
    assert!(e.contains("7 |       - timout: 5m"), "snippet: {e}");
}

#[test]
fn unknown_operation_field_is_rejected() {
    let e = plan_err(&suite(
        "  - name: a\n    steps:\n      - command: {argv: [\"true\"], exitcode: 1}\n",
    ));
    assert!(e.starts_with("suites/t.yaml:7:"), "{e}");
    assert!(e.contains("unknown field `exitcode`") && e.contains("exitCode"), "{e}");
}

#[test]
fn unknown_scenario_field_is_rejected() {
    let e = plan_err(&suite("  - name: a\n    stepz: []\n"));
    assert!(e.starts_with("suites/t.yaml:6:5: unknown field `stepz`"), "{e}");
}

#[test]
fn wrong_types_are_rejected() {
    let e = plan_err(&suite(&format!("  - name: a\n    steps:\n      - attempts: many\n  {OK_STEP}")));
    assert!(
        e.starts_with("suites/t.yaml:7:9: `attempts` is \"many\"; write a whole number of tries"),
        "{e}"
    );
}

#[test]
fn duplicate_scenario_names_are_rejected() {
    let e = plan_err(&suite(&format!(
        "  - name: a\n    steps:\n{OK_STEP}  - name: a\n    steps:\n{OK_STEP}"
    )));
    assert!(e.starts_with("suites/t.yaml:8:11: duplicate scenario name `a`"), "{e}");
}

#[test]
fn bad_durations_are_rejected_with_an_example() {
    let e = plan_err(&suite(
        "  - name: a\n    steps:\n      - timeout: 5 fortnights\n        command: {argv: [\"true\"]}\n",
    ));
    assert!(e.starts_with("suites/t.yaml:7:18: invalid duration `5 fortnights`"), "{e}");
    assert!(e.contains("like `30s`, `5m` or `1h30m`"), "{e}");
}

#[test]
fn unknown_intervals_list_the_known_ones() {
    let e = plan_err(&suite(
        "  - name: a\n    steps:\n      - timeout: wait-forever\n        command: {argv: [\"true\"]}\n",
    ));
    assert!(e.starts_with("suites/t.yaml:7:18: unknown interval `wait-forever`"), "{e}");
    assert!(e.contains("wait-cluster"), "{e}");
}

#[test]
fn bad_regexes_in_steps_point_at_the_step() {
    let e = plan_err(&suite(
        "  - name: a\n    steps:\n      - command: {argv: [\"true\"], outputMatches: \"(unclosed\"}\n",
    ));
    assert!(e.starts_with("suites/t.yaml:7:"), "{e}");
    assert!(e.contains("`outputMatches` is not a valid regular expression"), "{e}");
}

#[test]
fn bad_filter_regexes_and_shards_are_rejected() {
    let e = Filters::parse(Some("(a"), None, None).unwrap_err().to_string();
    assert!(e.starts_with("--focus `(a` is not a valid regular expression"), "{e}");
    let e = Filters::parse(None, Some("[z-a]"), None).unwrap_err().to_string();
    assert!(e.starts_with("--skip `[z-a]`"), "{e}");
    for bad in ["0/2", "3/2", "x", "1/0"] {
        let e = Filters::parse(None, None, Some(bad)).unwrap_err().to_string();
        assert!(e.contains("write I/N"), "{bad}: {e}");
    }
}

#[test]
fn two_operations_in_one_step_are_rejected() {
    let e = plan_err(&suite(
        "  - name: a\n    steps:\n      - command: {argv: [\"true\"]}\n        delete: {file: x.yaml}\n",
    ));
    assert!(e.contains("a step has exactly one operation, found `command` and `delete`"), "{e}");
    assert!(e.starts_with("suites/t.yaml:"), "{e}");
}

#[test]
fn exclusive_fields_are_checked_before_running() {
    let e = plan_err(&suite("  - name: a\n    steps:\n      - apply: {}\n"));
    assert!(e.starts_with("suites/t.yaml:7:9: apply step: set one of `file`, `manifest`"), "{e}");
    let e = plan_err(&suite(
        "  - name: a\n    steps:\n      - wait: {resource: {apiVersion: v1, kind: Pod}}\n",
    ));
    assert!(e.contains("wait step: set one of `resource.name`, `resource.selector`"), "{e}");
}

#[test]
fn wrong_api_version_and_kind_say_what_to_write() {
    let e = plan_err("apiVersion: scs-e2e/v1\nkind: Suite\nname: t\nscenarios: []\n");
    assert!(
        e.starts_with("suites/t.yaml:1:13: apiVersion is `scs-e2e/v1`; write `apiVersion: scs-e2e/v1alpha1`"),
        "{e}"
    );
    let e = plan_err("apiVersion: scs-e2e/v1alpha1\nkind: Config\nname: t\nscenarios: []\n");
    assert!(e.starts_with("suites/t.yaml:2:7: kind is `Config`"), "{e}");
}

#[test]
fn unknown_suite_names_list_the_known_ones() {
    let e = find_suite("no-such-suite").unwrap_err().to_string();
    assert!(
        e.starts_with("no suite `no-such-suite`: give a suite file path or one of the known names:"),
        "{e}"
    );
    assert!(e.contains("quickstart"), "{e}");
}

#[test]
fn invalid_yaml_is_located() {
    let e = plan_err("apiVersion: scs-e2e/v1alpha1\nkind: Suite\nname: [unclosed\n");
    assert!(e.starts_with("suites/t.yaml:"), "{e}");
}

#[test]
fn matrix_expands_with_stable_names_and_substitutes_everywhere() {
    let text = suite(
        "  - name: up-${k8s}-${stack}\n    matrix:\n      stack: [v1, v2]\n      k8s: [\"1.32\", \"1.33\"]\n    steps:\n      - name: run ${stack}\n        command: {argv: [echo, \"${k8s}\", \"${NAMESPACE}\"]}\n  - name: plain\n    matrix: {n: [1, 2]}\n    steps:\n      - command: {script: \"echo ${n}\"}\n",
    );
    let ls = load_suite_str(&text, FILE, PathBuf::from(".")).unwrap();
    let scenarios = expand_suite(&ls, &Settings::default()).unwrap();
    let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["up-1.32-v1", "up-1.32-v2", "up-1.33-v1", "up-1.33-v2", "plain[1]", "plain[2]"]
    );
    let s = &scenarios[3];
    assert_eq!(s.matrix.get("stack").map(String::as_str), Some("v2"));
    assert_eq!(s.steps[0].name, "run v2");
    let argv = match &s.steps[0].op {
        scs_e2e::steps::Op::Command(c) => c.argv.clone().unwrap(),
        _ => unreachable!(),
    };
    assert_eq!(
        argv,
        ["echo", "1.33", "${NAMESPACE}"],
        "matrix variables substituted, the run's own kept for run time"
    );
    // Expanding twice gives the same names: JUnit history lines up across nights.
    let again: Vec<String> = expand_suite(&ls, &Settings::default())
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(again, names);
}

#[test]
fn matrix_names_that_collide_are_rejected() {
    let e = plan_err(&suite(
        "  - name: up-${a}\n    matrix: {a: [x], b: [1, 2]}\n    steps:\n      - command: {argv: [\"true\"]}\n",
    ));
    assert!(e.contains("scenario name `up-x` occurs twice after matrix expansion"), "{e}");
    assert!(e.starts_with("suites/t.yaml:5:11:"), "{e}");
}

#[test]
fn timeouts_inherit_config_suite_scenario_step() {
    let text = "apiVersion: scs-e2e/v1alpha1\nkind: Suite\nname: t\ndefaults: {timeout: 2m, attempts: 2}\nscenarios:\n  - name: scenario-defaults\n    defaults: {timeout: 3m}\n    steps:\n      - {timeout: 4m, command: {argv: [\"true\"]}}\n      - command: {argv: [\"true\"]}\n      - {timeout: wait-cluster, attempts: 1, command: {argv: [\"true\"]}}\n  - name: suite-defaults\n    steps:\n      - command: {argv: [\"true\"]}\n";
    let ls = load_suite_str(text, FILE, PathBuf::from(".")).unwrap();
    let mut settings = Settings::default();
    settings.intervals.insert("wait-cluster".into(), Duration::from_secs(7200));
    let s = expand_suite(&ls, &settings).unwrap();
    let t: Vec<(u64, &str, u32)> = s
        .iter()
        .flat_map(|sc| {
            sc.steps
                .iter()
                .map(|st| (st.timeout.as_secs(), st.timeout_from.as_str(), st.attempts))
        })
        .collect();
    assert_eq!(
        t,
        [
            (240, "step", 2),
            (180, "scenario", 2),
            (7200, "step (wait-cluster)", 1),
            (120, "suite", 2)
        ]
    );

    let bare = suite(OK_STEP.replace("      - ", "  - name: x\n    steps:\n      - ").as_str());
    let ls = load_suite_str(&bare, FILE, PathBuf::from(".")).unwrap();
    let settings = Settings {
        default_timeout: Duration::from_secs(42),
        ..Settings::default()
    };
    assert_eq!(expand_suite(&ls, &settings).unwrap()[0].steps[0].timeout, Duration::from_secs(42));
    assert_eq!(expand_suite(&ls, &settings).unwrap()[0].steps[0].timeout_from, "config");
}

#[test]
fn config_files_are_checked_too() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.yaml");
    std::fs::write(
        &p,
        "apiVersion: scs-e2e/v1alpha1\nkind: Config\nintervals:\n  wait-cluster: 1h\n  Bad_Name: 5m\n",
    )
    .unwrap();
    let e = Settings::from_file(Some(&p)).unwrap_err().to_string();
    assert!(e.contains("c.yaml:5:3: interval name `Bad_Name` must be lowercase"), "{e}");
    std::fs::write(&p, "apiVersion: scs-e2e/v1alpha1\nkind: Config\nparalel: 3\n").unwrap();
    let e = Settings::from_file(Some(&p)).unwrap_err().to_string();
    assert!(e.contains("c.yaml:3:1: unknown field `paralel`"), "{e}");
    std::fs::write(
        &p,
        "apiVersion: scs-e2e/v1alpha1\nkind: Config\nintervals: {wait-cluster: 2h}\ndefaultTimeout: 90s\n",
    )
    .unwrap();
    let s = Settings::from_file(Some(&p)).unwrap();
    assert_eq!(s.intervals["wait-cluster"], Duration::from_secs(7200));
    assert_eq!(s.default_timeout, Duration::from_secs(90));
}

#[test]
fn shards_partition_the_scenarios() {
    let scen: String = (0..7).map(|i| format!("  - name: s{i}\n    steps:\n{OK_STEP}")).collect();
    let text = suite(&scen);
    let mut seen = Vec::new();
    for i in 1..=3 {
        let ls = load_suite_str(&text, FILE, PathBuf::from(".")).unwrap();
        let f = Filters::parse(None, None, Some(&format!("{i}/3"))).unwrap();
        let plan = build_plan(vec![ls], &Settings::default(), &f).unwrap();
        assert!((2..=3).contains(&plan.scenarios.len()), "balanced shards");
        seen.extend(plan.scenarios.into_iter().map(|s| s.name));
    }
    seen.sort();
    assert_eq!(
        seen,
        (0..7).map(|i| format!("s{i}")).collect::<Vec<_>>(),
        "every scenario in exactly one shard"
    );
}

#[test]
fn focus_and_skip_filter_by_suite_dot_scenario() {
    let text = suite(&format!(
        "  - name: alpha\n    steps:\n{OK_STEP}  - name: beta\n    steps:\n{OK_STEP}  - name: gamma\n    steps:\n{OK_STEP}"
    ));
    let ls = load_suite_str(&text, FILE, PathBuf::from(".")).unwrap();
    let f = Filters::parse(Some(r"^t\.(alpha|beta)$"), Some("beta"), None).unwrap();
    let plan = build_plan(vec![ls], &Settings::default(), &f).unwrap();
    assert_eq!(plan.scenarios.iter().map(|s| s.id()).collect::<Vec<_>>(), ["t.alpha"]);
}

#[test]
fn the_committed_json_schema_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../suites/suite.schema.json");
    let generated = serde_json::to_string_pretty(&scs_e2e::suite::model::suite_schema()).unwrap() + "\n";
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "suites/suite.schema.json is stale: regenerate it with `cargo run -q -- schema > suites/suite.schema.json`"
    );
}

#[test]
fn every_suite_in_the_repository_is_valid() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../suites");
    let files = scs_e2e::suite::loader::suites_in(&dir);
    assert!(!files.is_empty());
    for f in files {
        let ls = scs_e2e::suite::loader::load_suite_file(&f).unwrap_or_else(|e| panic!("{e}"));
        build_plan(vec![ls], &Settings::default(), &Filters::default()).unwrap_or_else(|e| panic!("{e}"));
    }
}
