//! The `scs-e2e` binary end to end: exit codes, reports, attempts, concurrency, SIGINT, bad input
//! that touches nothing, `--env lab` and `lab up/status/down`.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use scs_e2e::report::{RunReport, Status};

fn scs(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args).env_remove("KUBECONFIG").env_remove("SCS_E2E_ENV").stdin(Stdio::null());
    c
}

fn run_out(c: &mut Command) -> (i32, String, String) {
    let o: Output = c.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

fn write_suite(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &p,
        format!("apiVersion: scs-e2e/v1alpha1\nkind: Suite\nname: {name}\nscenarios:\n{body}"),
    )
    .unwrap();
    p
}

fn on_lab(suite: &Path, artifacts: &Path, extra: &[&str]) -> Command {
    let kc = lab().kubeconfig();
    let mut c = scs(&["run", "--env", "kubeconfig", "--kubeconfig"]);
    c.arg(&kc).arg("--suite").arg(suite).arg("--artifacts").arg(artifacts).args(extra);
    c
}

fn results(artifacts: &Path) -> RunReport {
    scs_e2e::report::json::read(&artifacts.join("results.json")).unwrap()
}

#[test]
fn generic_steps_against_an_existing_cluster_pass_and_write_reports() {
    let out = tempfile::tempdir().unwrap();
    let (code, _, err) = run_out(&mut on_lab(Path::new("custom-resources"), out.path(), &[]));
    assert_eq!(code, 0, "{err}");
    let r = results(out.path());
    assert_eq!(r.environment, "kubeconfig");
    assert_eq!(r.scenarios.len(), 2);
    assert!(r.scenarios.iter().all(|s| s.status == Status::Passed));
    assert!(r.properties["kubernetes_version"].starts_with("v1.33"));
    let xml = std::fs::read_to_string(out.path().join("junit_scs-e2e.xml")).unwrap();
    let back = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    assert_eq!(back.failures + back.errors, 0);
    assert_eq!(back.tests, 10 + 2, "10 steps and 2 environment phases");
    assert!(
        out.path()
            .join("custom-resources/custom-resource-lifecycle/steps/04-mark-the-widget-ready-as-a-controller-would.log")
            .exists()
    );
}

#[test]
fn a_failing_step_exits_1_skips_the_rest_and_collects_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(
        dir.path(),
        "failing",
        r#"  - name: mismatch
    steps:
      - apply:
          manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: cm}, data: {k: actual}}
      - timeout: 1s
        assert:
          resource: {apiVersion: v1, kind: ConfigMap, name: cm}
          matches: {data: {k: wanted}}
      - command: {argv: ["true"]}
    onFailure:
      - resources: {kinds: [v1/ConfigMap]}
      - events: {}
    finally:
      - command: {script: "echo finally-ran > $ARTIFACTS/finally.txt"}
"#,
    );
    let (code, _, err) = run_out(&mut on_lab(&suite, dir.path(), &[]));
    assert_eq!(code, 1, "{err}");
    let r = results(dir.path());
    let s = &r.scenarios[0];
    assert_eq!(s.status, Status::Failed);
    let st: Vec<Status> = s.steps.iter().map(|x| x.status).collect();
    assert_eq!(st, [Status::Passed, Status::Failed, Status::Skipped]);
    assert!(
        s.steps[1]
            .message
            .as_deref()
            .unwrap()
            .contains(r#".data.k: expected "wanted", found "actual""#)
    );
    let collected = dir.path().join("failing/mismatch");
    assert!(collected.join("on-failure/01-resources/configmap").read_dir().unwrap().count() >= 1);
    assert!(collected.join("on-failure/02-events/events.txt").exists());
    assert_eq!(std::fs::read_to_string(collected.join("finally.txt")).unwrap(), "finally-ran\n");
    assert!(err.contains("FAIL failing.mismatch › assert ConfigMap/cm"), "{err}");
}

#[test]
fn every_attempt_is_recorded_and_a_late_pass_is_flaky() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(
        dir.path(),
        "retry",
        r#"  - name: third-time-lucky
    steps:
      - attempts: 3
        command:
          script: |
            n=$(cat "$ARTIFACTS/count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$ARTIFACTS/count"
            echo "attempt $n"; [ "$n" -ge 3 ]
"#,
    );
    let (code, _, err) = run_out(&mut on_lab(&suite, dir.path(), &[]));
    assert_eq!(code, 0, "{err}");
    let step = &results(dir.path()).scenarios[0].steps[0];
    let a: Vec<Status> = step.attempts.iter().map(|a| a.status).collect();
    assert_eq!(a, [Status::Failed, Status::Failed, Status::Passed]);
    let log = std::fs::read_to_string(dir.path().join(step.log.as_ref().unwrap())).unwrap();
    assert!(log.contains("--- attempt 2/3 ---\nattempt 2"), "{log}");
    let xml = std::fs::read_to_string(dir.path().join("junit_scs-e2e.xml")).unwrap();
    assert_eq!(xml.matches("<flakyFailure").count(), 2, "{xml}");
}

/// Scenarios that wait for each other, one per entry of `exclusive` (its `exclusive:` list): a
/// scenario passes only if at some moment all of them were running at once. Each marks itself
/// alive while its script runs (and removes the mark before it ends, so a later scenario never
/// counts one that has finished); the first to see all alive leaves `met` so the others pass
/// even if they look a moment later.
fn barrier_suite(dir: &Path, exclusive: &[&str]) -> PathBuf {
    let barrier = dir.join("barrier");
    std::fs::create_dir_all(&barrier).unwrap();
    let n = exclusive.len();
    let body: String = exclusive
        .iter()
        .enumerate()
        .map(|(i, x)| {
            format!(
                r#"  - name: s{i}
    exclusive: {x}
    steps:
      - timeout: 20s
        command:
          script: |
            touch {b}/alive-{i}; end=$((SECONDS+5)); rc=1
            while [ $SECONDS -lt $end ]; do
              if [ -e {b}/met ] || [ $(ls {b} | grep -c '^alive-') -ge {n} ]; then touch {b}/met; rc=0; break; fi
              sleep 0.05
            done
            rm {b}/alive-{i}; exit $rc
"#,
                b = barrier.display()
            )
        })
        .collect();
    write_suite(dir, "barrier", &body)
}

#[test]
fn scenarios_run_concurrently_up_to_parallel() {
    let dir = tempfile::tempdir().unwrap();
    let suite = barrier_suite(dir.path(), &["[]"; 3]);
    let (code, _, err) = run_out(&mut on_lab(&suite, &dir.path().join("p3"), &["--parallel", "3"]));
    assert_eq!(code, 0, "all three meet at the barrier: {err}");

    let dir = tempfile::tempdir().unwrap();
    let suite = barrier_suite(dir.path(), &["[]"; 3]);
    let (code, _, err) = run_out(&mut on_lab(&suite, &dir.path().join("p2"), &["--parallel", "2"]));
    assert_eq!(code, 1, "with two at a time three are never alive together: {err}");
    let r = results(&dir.path().join("p2"));
    assert_eq!(r.scenarios.iter().filter(|s| s.status == Status::Failed).count(), 3);
}

#[test]
fn scenarios_that_need_the_same_thing_to_themselves_never_run_at_once() {
    // Different things: they run together (--parallel 2) and meet.
    let dir = tempfile::tempdir().unwrap();
    let suite = barrier_suite(dir.path(), &["[stack image]", "[other]"]);
    let (code, _, err) = run_out(&mut on_lab(&suite, &dir.path().join("a"), &["--parallel", "2"]));
    assert_eq!(code, 0, "both meet at the barrier: {err}");
    // The same thing (among others): one after the other, so neither meets the other.
    let dir = tempfile::tempdir().unwrap();
    let suite = barrier_suite(dir.path(), &["[stack image, b]", "[a, stack image]"]);
    let art = dir.path().join("b");
    let (code, _, err) = run_out(&mut on_lab(&suite, &art, &["--parallel", "2"]));
    assert_eq!(code, 1, "they never run at once: {err}");
    let r = results(&art);
    assert_eq!(r.scenarios.iter().filter(|s| s.status == Status::Failed).count(), 2);
    let (a, b) = (&r.scenarios[0], &r.scenarios[1]);
    let (first, second) = if a.started_at <= b.started_at { (a, b) } else { (b, a) };
    let end = first.started_at + chrono::Duration::milliseconds((first.duration_secs * 1000.0) as i64);
    assert!(
        second.started_at >= end - chrono::Duration::milliseconds(50),
        "{first:?}\n{second:?}"
    );
}

/// The first SIGINT or SIGTERM (a CI job cancelled) stops the running step, runs `finally`,
/// writes the reports and exits 130.
fn interrupting_stops_the_step_runs_finally_writes_reports_and_exits_130(sig: i32, salt: u32) {
    let dir = tempfile::tempdir().unwrap();
    let token = format!("{}.{}", std::process::id(), salt);
    let suite = write_suite(
        dir.path(),
        "interrupt",
        &format!(
            r#"  - name: long
    steps:
      - name: hang
        command: {{argv: [sleep, "{token}"]}}
      - command: {{argv: ["true"]}}
    finally:
      - command: {{script: "echo collected > $ARTIFACTS/finally.txt"}}
"#
        ),
    );
    let mut c = on_lab(&suite, dir.path(), &[]);
    c.arg("-v").stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for l in lines.by_ref() {
        let l = l.unwrap();
        seen.push(l.clone());
        if l.contains("RUN  interrupt.long › hang") {
            break;
        }
    }
    // The step has started; its `sleep` runs (or is about to).
    scs_e2e::process::signal(child.id(), sig);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen:?} {rest:?}");
    let r = results(dir.path());
    assert!(r.interrupted);
    let s = &r.scenarios[0];
    assert_eq!(s.steps[0].status, Status::Error);
    assert_eq!(s.steps[0].message.as_deref(), Some("interrupted"));
    assert_eq!(s.steps[1].status, Status::Skipped);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("interrupt/long/finally.txt")).unwrap(),
        "collected\n"
    );
    assert!(dir.path().join("junit_scs-e2e.xml").exists());
    assert_eq!(processes_mentioning(&token), Vec::<u32>::new(), "the step's process was killed");
}

#[test]
fn sigint_stops_the_step_runs_finally_writes_reports_and_exits_130() {
    interrupting_stops_the_step_runs_finally_writes_reports_and_exits_130(libc::SIGINT, 7919);
}

#[test]
fn sigterm_stops_the_step_runs_finally_writes_reports_and_exits_130() {
    interrupting_stops_the_step_runs_finally_writes_reports_and_exits_130(libc::SIGTERM, 7927);
}

/// `child`'s exit status within `bound`, else None (the child is then killed).
fn exit_within(child: &mut std::process::Child, bound: std::time::Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + bound;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Waits (at most a minute) until `finally`'s script, whose command line mentions `needle`, runs.
fn finally_script_runs(needle: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while processes_mentioning(needle).is_empty() {
        assert!(std::time::Instant::now() < deadline, "finally's script never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Until no process's command line mentions `needle`, at most `bound`; what is left then.
fn processes_gone_within(needle: &str, bound: std::time::Duration) -> Vec<u32> {
    let deadline = std::time::Instant::now() + bound;
    loop {
        let left = processes_mentioning(needle);
        if left.is_empty() || std::time::Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A run killed outright (a CI job's timeout) writes nothing at the end, yet `clusters.json`,
/// written first, names every cluster it planned in the namespace the run really used: what
/// `scs-e2e cleanup --from` needs to find their cloud resources.
#[test]
fn a_killed_run_has_already_named_its_clusters_and_their_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let token = format!("{}.{}", std::process::id(), 77);
    let suite = write_suite(
        dir.path(),
        "killed",
        &format!(
            r#"  - name: sized-${{size}}
    matrix: {{size: [s, m]}}
    steps:
      - name: hang
        command: {{argv: [sleep, "{token}"]}}
      - createCluster:
          name: wl-${{size}}-${{NAMESPACE}}
          stack: {{provider: inmemory, name: scs, kubernetesVersion: "1.33", version: v1}}
  - name: no-cluster
    steps: [{{command: {{argv: [sleep, "{token}"]}}}}]
"#
        ),
    );
    // The CI build's id names the run (and so its namespaces' label).
    let run_id = format!("build-{}", std::process::id());
    let mut c = on_lab(&suite, dir.path(), &["--run-id", &run_id]);
    c.arg("-v").stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut started = BTreeSet::new();
    for l in lines.by_ref() {
        let l = l.unwrap();
        if let Some(i) = l.find("RUN  killed.") {
            started.insert(l[i + 5..].to_string());
        }
        if started.len() == 3 {
            break;
        }
    }
    scs_e2e::process::signal(child.id(), libc::SIGKILL);
    child.wait().unwrap();
    for pid in processes_mentioning(&token) {
        scs_e2e::process::signal(pid, libc::SIGKILL);
    }

    let plan: scs_e2e::report::ClusterPlan =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("clusters.json")).unwrap()).unwrap();
    assert_eq!(plan.environment, "kubeconfig");
    assert_eq!(plan.run_id, run_id);
    // The namespaces the run created (labelled with its id) are the ones the plan names.
    let out = Command::new(assets().path("kubectl"))
        .arg("--kubeconfig")
        .arg(lab().kubeconfig())
        .args(["get", "ns", "-l", &format!("scs-e2e.scs.community/run-id={}", plan.run_id)])
        .args([
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.metadata.annotations.scs-e2e\\.scs\\.community/scenario}{\"\\n\"}{end}",
        ])
        .output()
        .unwrap();
    let made: BTreeMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(n, s)| (s.to_string(), n.to_string())))
        .collect();
    assert_eq!(made.len(), 3, "{made:?} {}", String::from_utf8_lossy(&out.stderr));
    let got: Vec<(String, String, String)> = plan
        .clusters
        .iter()
        .map(|c| (c.scenario.clone(), c.namespace.clone(), c.name.clone()))
        .collect();
    let want: Vec<(String, String, String)> = ["m", "s"]
        .iter()
        .map(|size| {
            let sc = format!("killed.sized-{size}");
            let ns = made[&sc].clone();
            (sc, ns.clone(), format!("wl-{size}-{ns}"))
        })
        .collect();
    assert_eq!(got, want);
    for ns in made.values() {
        Command::new(assets().path("kubectl"))
            .arg("--kubeconfig")
            .arg(lab().kubeconfig())
            .args(["delete", "ns", ns, "--wait=false"])
            .output()
            .unwrap();
    }
}

/// A second interrupt while `finally` runs exits at once — well within the 120 s each collector
/// may take — and kills the script `finally` was running (its own process group, which no
/// signal to scs-e2e reaches).
#[test]
fn a_second_sigint_exits_at_once_and_kills_the_running_script() {
    let dir = tempfile::tempdir().unwrap();
    let (step, fin) = (
        format!("{}.{}", std::process::id(), 8009),
        format!("{}.{}", std::process::id(), 8011),
    );
    let suite = write_suite(
        dir.path(),
        "twice",
        &format!(
            "  - name: long\n    steps:\n      - command: {{argv: [sleep, \"{step}\"]}}\n    finally:\n      - command: {{argv: [sleep, \"{fin}\"]}}\n"
        ),
    );
    let mut c = on_lab(&suite, dir.path(), &["-v"]);
    c.stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for l in lines.by_ref() {
        if l.unwrap().contains("RUN  twice.long") {
            break;
        }
    }
    scs_e2e::process::signal(child.id(), libc::SIGINT);
    for l in lines.by_ref() {
        if l.unwrap().starts_with("interrupted: stopping steps") {
            break;
        }
    }
    // The second interrupt comes while `finally` runs its script.
    finally_script_runs(&fin);
    scs_e2e::process::signal(child.id(), libc::SIGINT);
    // Drain stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let status = exit_within(&mut child, std::time::Duration::from_secs(30));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(130),
        "exits within 30 s of the second SIGINT (a collector may take 120 s)"
    );
    assert_eq!(
        processes_gone_within(&fin, std::time::Duration::from_secs(10)),
        Vec::<u32>::new(),
        "finally's script was killed"
    );
}

/// `--env lab` interrupted: once (SIGTERM) with `--delete always`, the lab is torn down and no
/// process of it is left; twice (SIGINT while `finally` runs), scs-e2e exits at once and the
/// lab's processes die with it.
#[test]
fn an_interrupted_lab_run_leaves_no_process_behind() {
    for twice in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let (step, fin) = (
            format!("{}.{}", std::process::id(), 8017 + twice as u32),
            format!("{}.{}", std::process::id(), 8027 + twice as u32),
        );
        // Once, `finally` is quick; twice, it is still running at the second interrupt.
        let finally = if twice {
            format!("sleep, \"{fin}\"")
        } else {
            "\"true\"".to_string()
        };
        let suite = write_suite(
            dir.path(),
            "stopped",
            &format!(
                "  - name: long\n    steps:\n      - command: {{argv: [sleep, \"{step}\"]}}\n    finally:\n      - command: {{argv: [{finally}]}}\n"
            ),
        );
        let art = dir.path().join("out");
        let mut c = scs(&["run", "--env", "lab", "--delete", "always", "-v", "--artifacts"]);
        c.arg(&art)
            .arg("--suite")
            .arg(&suite)
            .env("XDG_STATE_HOME", &state)
            .env("SCS_E2E_LAB_BIN_DIR", assets().bin_dir)
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        for l in lines.by_ref() {
            if l.unwrap().contains("RUN  stopped.long") {
                break;
            }
        }
        let lab_dir = state.join("scs-e2e").display().to_string();
        assert!(!processes_mentioning(&lab_dir).is_empty(), "the lab runs");
        scs_e2e::process::signal(child.id(), if twice { libc::SIGINT } else { libc::SIGTERM });
        if twice {
            finally_script_runs(&fin);
            scs_e2e::process::signal(child.id(), libc::SIGINT);
        }
        std::thread::spawn(move || lines.for_each(drop));
        let status = exit_within(&mut child, std::time::Duration::from_secs(if twice { 30 } else { 300 }));
        assert_eq!(status.and_then(|s| s.code()), Some(130), "twice: {twice}");
        if !twice {
            let r = results(&art);
            assert!(r.interrupted);
            assert_eq!(
                r.phases.iter().map(|p| (p.name.as_str(), p.status)).collect::<Vec<_>>(),
                [("up", Status::Passed), ("down", Status::Passed)],
                "torn down after the interrupt"
            );
        }
        for needle in [&lab_dir, &step, &fin] {
            assert_eq!(
                processes_gone_within(needle, std::time::Duration::from_secs(10)),
                Vec::<u32>::new(),
                "no process mentioning {needle} (twice: {twice})"
            );
        }
    }
}

/// A run killed after writing a report's temp file and before renaming it over the report (the
/// moment a CI job's timeout can hit, made exact by the `SCS_E2E_TEST_FAULT` hook) leaves the
/// previous `results.json` whole.
#[test]
fn a_run_killed_between_write_and_rename_leaves_the_previous_report_whole() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(
        dir.path(),
        "atomic",
        "  - name: first\n    steps: [{command: {argv: [\"true\"]}}]\n  - name: second\n    steps: [{command: {argv: [\"true\"]}}]\n",
    );
    let art = dir.path().join("out");
    let mut c = on_lab(&suite, &art, &["--parallel", "1"]);
    // The first write of results.json follows `first`, the second `second`.
    c.env("SCS_E2E_TEST_FAULT", "kill-before-rename:results.json:2");
    let out = c.output().unwrap();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGKILL),
        "killed at the second write: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = results(&art);
    assert!(r.interrupted, "the partial report");
    assert_eq!(r.scenarios.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["first"]);
    // The killed write had been made: its temp file holds both scenarios, never renamed.
    let tmp: Vec<PathBuf> = std::fs::read_dir(&art)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(".results.json.") && n.ends_with(".tmp")
        })
        .collect();
    assert_eq!(tmp.len(), 1, "{tmp:?}");
    let t = scs_e2e::report::json::read(&tmp[0]).unwrap();
    assert_eq!(t.scenarios.len(), 2);
}

#[test]
fn bad_input_exits_2_names_the_place_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let art = dir.path().join("artifacts");
    let bad = write_suite(dir.path(), "bad", "  - name: a\n    steps:\n      - comand: {argv: [\"true\"]}\n");
    let not_kc = dir.path().join("not-a-kubeconfig");
    std::fs::write(&not_kc, "just: [text").unwrap();
    let moon = dir.path().join("moon.yaml");
    std::fs::write(&moon, "apiVersion: scs-e2e/v1alpha1\nkind: Config\nenv: moon\n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["run".into(), "--suite".into(), bad.display().to_string()],
            "bad.yaml:7:9: unknown field `comand`",
        ),
        (
            vec!["run".into(), "--suite".into(), "no-such-suite".into()],
            "no suite `no-such-suite`",
        ),
        (
            vec!["run".into(), "--focus".into(), "(".into()],
            "--focus `(` is not a valid regular expression",
        ),
        (vec!["run".into(), "--shard".into(), "5/4".into()], "--shard `5/4`: write I/N"),
        (
            vec![
                "run".into(),
                "--env".into(),
                "kubeconfig".into(),
                "--kubeconfig".into(),
                "/nonexistent/kc".into(),
            ],
            "cannot read kubeconfig /nonexistent/kc",
        ),
        (
            vec![
                "run".into(),
                "--env".into(),
                "kubeconfig".into(),
                "--kubeconfig".into(),
                not_kc.display().to_string(),
            ],
            "is not a kubeconfig",
        ),
        (
            vec!["run".into(), "--env".into(), "kubeconfig".into()],
            "--env kubeconfig needs a kubeconfig",
        ),
        (vec!["run".into(), "--env".into(), "moon".into()], "invalid value 'moon'"),
        (
            vec!["run".into(), "--run-id".into(), "Build_7".into()],
            "--run-id `Build_7`: use 1 to 40 characters of a-z, 0-9 and -",
        ),
        (
            vec!["run".into(), "--config".into(), "/nonexistent.yaml".into()],
            "/nonexistent.yaml: cannot read config",
        ),
        (
            vec!["run".into(), "--config".into(), moon.display().to_string()],
            "moon.yaml:3:6: env: unknown environment `moon`: use lab, kubeconfig, kind or openstack",
        ),
    ];
    for (args, want) in cases {
        let mut c = scs(&[]);
        c.args(&args).arg("--artifacts").arg(&art);
        let (code, _, err) = run_out(&mut c);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: wanted {want:?} in {err}");
        assert!(!art.exists(), "{args:?} touched the artifacts directory");
    }
}

#[test]
fn an_environment_that_does_not_come_up_exits_3_with_a_full_report() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: canary-token-123}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    )
    .unwrap();
    let art = dir.path().join("out");
    let mut c = scs(&["run", "--env", "kubeconfig", "--kubeconfig"]);
    c.arg(&kc).arg("--artifacts").arg(&art);
    let (code, _, err) = run_out(&mut c);
    assert_eq!(code, 3, "{err}");
    let r = results(&art);
    assert_eq!(r.phases[0].status, Status::Error);
    assert!(r.phases[0].message.as_deref().unwrap().contains("does not answer"));
    assert!(r.scenarios.iter().all(|s| s.status == Status::Skipped && !s.steps.is_empty()));
    let xml = std::fs::read_to_string(art.join("junit_scs-e2e.xml")).unwrap();
    assert!(xml.contains("<testcase name=\"up\" classname=\"environment.kubeconfig\""), "{xml}");
    for f in [art.join("junit_scs-e2e.xml"), art.join("results.json")] {
        assert!(
            !std::fs::read_to_string(f).unwrap().contains("canary-token-123"),
            "no secrets in reports"
        );
    }
    assert!(!err.contains("canary-token-123"));
}

/// An API server that accepts connections and never answers holds `up` only as long as the
/// `environment-up` interval allows (the client's own read timeout is minutes).
#[test]
fn an_environment_up_that_hangs_ends_at_its_interval_with_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    // The kernel completes the handshake for a listener nobody accepts on; TLS then waits.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{port}', insecure-skip-tls-verify: true}}}}]\nusers: [{{name: u, user: {{token: t0123456}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(
        &cfg,
        "apiVersion: scs-e2e/v1alpha1\nkind: Config\nintervals: {environment-up: 2s}\n",
    )
    .unwrap();
    let art = dir.path().join("out");
    let mut c = scs(&["run", "--env", "kubeconfig", "--kubeconfig"]);
    c.arg(&kc).arg("--config").arg(&cfg).arg("--artifacts").arg(&art);
    let t0 = std::time::Instant::now();
    let (code, _, err) = run_out(&mut c);
    let took = t0.elapsed();
    assert_eq!(code, 3, "{err}");
    assert!(
        took < std::time::Duration::from_secs(60),
        "ended by the interval, not the client: {took:?}"
    );
    let r = results(&art);
    let m = r.phases[0].message.as_deref().unwrap();
    assert!(m.contains("up did not finish within 2s") && m.contains("environment-up"), "{m}");
    assert_eq!(r.phases[0].timeout_secs, 2.0);
    drop(silent);
}

#[test]
fn dry_run_prints_the_plan_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let art = dir.path().join("a");
    let mut c = scs(&["run", "--dry-run", "--artifacts"]);
    c.arg(&art).env("XDG_STATE_HOME", dir.path().join("state"));
    let (code, out, err) = run_out(&mut c);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("quickstart.cluster-stack-lifecycle"), "{out}");
    assert!(
        out.contains("waitClusterStackRelease wait until the release is usable  (timeout 2m from step)"),
        "{out}"
    );
    assert!(out.contains("on failure: collect cluster-api"), "{out}");
    assert!(out.contains("1 scenario, 7 steps"), "{out}");
    assert!(!art.exists() && !dir.path().join("state").exists(), "dry run touched the disk");
}

#[test]
fn list_validate_and_schema() {
    let (code, out, _) = run_out(&mut scs(&["list", "--json", "--suite", "custom-resources", "--focus", "config"]));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["name"], "config-and-namespace");
    assert_eq!(v[0]["steps"][0]["operation"], "apply");

    let dir = tempfile::tempdir().unwrap();
    let good = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../suites/custom-resources.yaml");
    let bad = write_suite(
        dir.path(),
        "dup",
        "  - name: a\n    steps: [{command: {argv: [\"true\"]}}]\n  - name: a\n    steps: [{command: {argv: [\"true\"]}}]\n",
    );
    let (code, out, err) = run_out(scs(&["validate"]).arg(&good).arg(&bad));
    assert_eq!(code, 2);
    assert!(
        out.contains("ok: ") && out.contains("(suite custom-resources (2 scenarios))"),
        "{out}"
    );
    assert!(err.contains("dup.yaml:7:11: duplicate scenario name `a`"), "{err}");

    let (code, out, _) = run_out(&mut scs(&["schema"]));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["$defs"]["Step"]["oneOf"].as_array().unwrap().len() >= 5);
}

#[test]
fn env_lab_run_passes_and_leaves_no_lab_behind() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let art = dir.path().join("out");
    let mut c = scs(&["run", "--env", "lab", "--suite", "custom-resources", "--artifacts"]);
    c.arg(&art)
        .env("XDG_STATE_HOME", &state)
        .env("SCS_E2E_LAB_BIN_DIR", assets().bin_dir);
    let (code, _, err) = run_out(&mut c);
    assert_eq!(code, 0, "{err}");
    let r = results(&art);
    assert_eq!(r.environment, "lab");
    assert_eq!(
        r.phases.iter().map(|p| (p.name.as_str(), p.status)).collect::<Vec<_>>(),
        [("up", Status::Passed), ("down", Status::Passed)]
    );
    let lab_dir = state.join(format!("scs-e2e/lab-run-{}", r.run_id));
    assert!(!lab_dir.exists(), "lab removed");
    assert_eq!(processes_mentioning(&lab_dir.display().to_string()), Vec::<u32>::new());
}

#[test]
fn lab_up_status_down() {
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let bin_dir = assets().bin_dir;
    let lab_cmd = |args: &[&str]| {
        let mut c = scs(&["lab"]);
        c.args(args).arg("--dir").arg(&lab_dir).env("SCS_E2E_LAB_BIN_DIR", &bin_dir);
        run_out(&mut c)
    };
    let (code, out, err) = lab_cmd(&["up"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), format!("export KUBECONFIG={}/kubeconfig", lab_dir.display()));
    assert!(
        !processes_mentioning(&lab_dir.display().to_string()).is_empty(),
        "the lab outlives `lab up`"
    );
    let (code, out, _) = lab_cmd(&["status"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("kube-apiserver             running") && out.contains("ready"), "{out}");
    let (code, _, err) = lab_cmd(&["up"]);
    assert_eq!(code, 2, "a second lab in the same dir: {err}");
    assert!(err.contains("a lab is already running in"), "{err}");
    let (code, _, err) = lab_cmd(&["down"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(processes_mentioning(&lab_dir.display().to_string()), Vec::<u32>::new());
    assert!(!lab_dir.exists());
    let (code, _, err) = lab_cmd(&["status"]);
    assert_eq!(code, 2);
    assert!(err.contains("no lab in"), "{err}");
}

#[test]
fn flags_beat_environment_beats_config_file_beats_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "apiVersion: scs-e2e/v1alpha1\nkind: Config\nenv: kubeconfig\nkubeconfig: /from/config\nparallel: 7\ndelete: never\n",
    )
    .unwrap();
    let header = |c: &mut Command| {
        let (code, out, err) = run_out(c);
        assert_eq!(code, 0, "{err}");
        out.lines().next().unwrap().to_string()
    };
    let mut c = scs(&["run", "--dry-run"]);
    assert!(header(&mut c).ends_with("env lab, parallel 4, delete Success"), "defaults");
    let mut c = scs(&["run", "--dry-run", "--config"]);
    c.arg(&cfg);
    // The kubeconfig from the config file is checked before the dry run prints anything.
    let (code, _, err) = run_out(&mut c);
    assert_eq!((code, err.contains("cannot read kubeconfig /from/config")), (2, true), "{err}");
    let mut c = scs(&["run", "--dry-run", "--config"]);
    c.arg(&cfg).env("SCS_E2E_ENV", "lab");
    assert!(
        header(&mut c).ends_with("env lab, parallel 7, delete Never"),
        "env var over config file"
    );
    let mut c = scs(&["run", "--dry-run", "--config"]);
    c.arg(&cfg)
        .env("SCS_E2E_ENV", "lab")
        .env("SCS_E2E_PARALLEL", "3")
        .args(["--parallel", "2", "--delete", "always"]);
    assert!(
        header(&mut c).ends_with("env lab, parallel 2, delete Always"),
        "flags over env and config"
    );
    let mut c = scs(&["run", "--dry-run", "--config"]);
    c.arg(&cfg).env("SCS_E2E_ENV", "lab").env("SCS_E2E_PARALLEL", "3");
    assert!(header(&mut c).ends_with("env lab, parallel 3, delete Never"), "env over config");
}

#[test]
fn delete_never_keeps_the_lab_and_says_how_to_reach_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let art = dir.path().join("out");
    let mut c = scs(&[
        "run",
        "--env",
        "lab",
        "--delete",
        "never",
        "--suite",
        "custom-resources",
        "--focus",
        "config",
        "--artifacts",
    ]);
    c.arg(&art)
        .env("XDG_STATE_HOME", &state)
        .env("SCS_E2E_LAB_BIN_DIR", assets().bin_dir);
    let (code, _, err) = run_out(&mut c);
    assert_eq!(code, 0, "{err}");
    let r = results(&art);
    let lab_dir = state.join(format!("scs-e2e/lab-run-{}", r.run_id));
    assert!(
        err.contains(&format!("export KUBECONFIG={}/kubeconfig", lab_dir.display())),
        "{err}"
    );
    assert!(err.contains(&format!("scs-e2e lab down --dir {}", lab_dir.display())), "{err}");
    assert_eq!(r.phases[1].status, Status::Skipped);
    assert!(
        !processes_mentioning(&lab_dir.display().to_string()).is_empty(),
        "the kept lab runs after scs-e2e exited"
    );
    let mut c = scs(&["lab", "status", "--dir"]);
    c.arg(&lab_dir);
    assert_eq!(run_out(&mut c).0, 0);
    let mut c = scs(&["lab", "down", "--dir"]);
    c.arg(&lab_dir);
    assert_eq!(run_out(&mut c).0, 0);
    assert_eq!(processes_mentioning(&lab_dir.display().to_string()), Vec::<u32>::new());
}

#[test]
fn shards_run_separately_merge_into_one_report() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for i in 1..=2 {
        let art = dir.path().join(format!("shard{i}"));
        let shard = format!("{i}/2");
        let (code, _, err) = run_out(&mut on_lab(Path::new("generic-steps"), &art, &["--shard", &shard]));
        assert_eq!(code, 0, "{err}");
        assert_eq!(results(&art).scenarios.len(), 1, "one scenario per shard");
        files.push(art.join("results.json"));
    }
    let merged = dir.path().join("merged");
    let mut c = scs(&["report", "merge"]);
    c.args(&files).arg("-o").arg(&merged);
    let (code, _, err) = run_out(&mut c);
    assert_eq!(code, 0, "{err}");
    let r = results(&merged);
    let ids: Vec<String> = r.scenarios.iter().map(|s| s.id()).collect();
    assert_eq!(ids, ["generic-steps.configmap-large", "generic-steps.configmap-small"]);
    let xml = std::fs::read_to_string(merged.join("junit_scs-e2e.xml")).unwrap();
    let back = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    assert_eq!(back.tests, 2 * 5 + 4, "10 steps and two environments' up and down");
    let mut c = scs(&["report", "merge"]);
    c.arg(&files[0]).arg(&files[0]).arg("-o").arg(dir.path().join("dup"));
    let (code, _, err) = run_out(&mut c);
    assert_eq!(code, 2);
    assert!(err.contains("is in two reports"), "{err}");
}

#[test]
fn a_failed_lab_run_keeps_the_lab_logs_in_the_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(
        dir.path(),
        "fails",
        "  - name: f\n    steps:\n      - command: {argv: [\"false\"]}\n",
    );
    let art = dir.path().join("out");
    let mut c = scs(&["run", "--env", "lab", "--delete", "always", "--artifacts"]);
    c.arg(&art)
        .arg("--suite")
        .arg(&suite)
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .env("SCS_E2E_LAB_BIN_DIR", assets().bin_dir);
    let (code, _, err) = run_out(&mut c);
    assert_eq!(code, 1, "{err}");
    for p in ["etcd", "kube-apiserver", "kube-controller-manager"] {
        let log = art.join(format!("environment/logs/{p}.log"));
        assert!(log.metadata().map(|m| m.len() > 0).unwrap_or(false), "{} collected", log.display());
    }
    assert_eq!(results(&art).phases[1].status, Status::Passed, "--delete always removed the lab");
}

/// A scenario that fails once (its marker file is missing) is re-run by `reproduce` from the
/// recorded suite content, even after the suite file changed; the passing one is not re-run.
/// `scs-e2e reproduce FIRST/results.json EXTRA... --artifacts AGAIN` against the lab, with the
/// flaky scripts' marker file.
fn reproduce_on_lab(first: &Path, again: &Path, marker: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut c = scs(&["reproduce"]);
    c.arg(first.join("results.json"))
        .args(extra)
        .arg("--artifacts")
        .arg(again)
        .env("KUBECONFIG", lab().kubeconfig())
        .env("FLAKY_MARKER", marker);
    run_out(&mut c)
}

#[test]
fn reproduce_reruns_only_the_failed_scenarios_from_the_recorded_suite() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let suite = write_suite(
        dir.path(),
        "flaky",
        "  - name: steady\n    steps: [{command: {argv: [\"true\"]}}]\n  - name: once-${n}\n    matrix: {n: [a]}\n    steps:\n      - command: {script: 'if [ -e \"$FLAKY_MARKER\" ]; then exit 0; fi; touch \"$FLAKY_MARKER\"; exit 1'}\n",
    );
    let first = dir.path().join("first");
    let (code, _, err) = run_out(on_lab(&suite, &first, &[]).env("FLAKY_MARKER", &marker));
    assert_eq!(code, 1, "{err}");
    // The suite file changes after the run: reproduce must use what the report recorded.
    std::fs::write(&suite, "not a suite any more").unwrap();

    let again = dir.path().join("again");
    let reproduce = |extra: &[&str]| reproduce_on_lab(&first, &again, &marker, extra);
    // The recorded commands are no longer the local suite's: listed, and nothing runs.
    let (code, _, err) = reproduce(&[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("flaky: if [ -e \"$FLAKY_MARKER\" ]; then exit 0") && err.contains("flaky: true"),
        "{err}"
    );
    assert!(err.contains("--yes"), "{err}");
    assert!(!again.exists(), "nothing ran");
    let (code, _, err) = reproduce(&["--yes"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("reproducing 1 scenario(s)") && err.contains("flaky.once-a"), "{err}");
    assert!(
        err.contains("changed since the run; using the content the report recorded"),
        "{err}"
    );
    let r = results(&again);
    assert_eq!(r.environment, "kubeconfig");
    let names: Vec<&str> = r.scenarios.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["once-a"]);
    assert_eq!(r.scenarios[0].status, Status::Passed);

    let mut c = scs(&["reproduce"]);
    c.arg(first.join("results.json")).arg("--scenario").arg("nope");
    let (code, _, err) = run_out(&mut c);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no scenario `nope` (it has flaky.steady, flaky.once-a)"), "{err}");
}

/// Canary secrets — GITHUB_TOKEN, an OS_PASSWORD, and the real ServiceAccount token the run
/// authenticates with — printed by failing and passing steps, and kept in a Secret that a
/// failing scenario's collector dumps (with a value that no variable and no suite text holds: the
/// script computes it), appear in no file the run
/// writes and not on the console at `-v`, neither plain nor base64-encoded.
#[test]
fn planted_secrets_appear_in_no_report_log_or_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let kubectl = assets().path("kubectl");
    let lab_kc = lab().kubeconfig();
    let sa = format!("canary-{}", std::process::id());
    let k = |args: &[&str]| -> String {
        let o = Command::new(&kubectl).arg("--kubeconfig").arg(&lab_kc).args(args).output().unwrap();
        assert!(o.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    k(&["-n", "default", "create", "serviceaccount", &sa]);
    k(&[
        "create",
        "clusterrolebinding",
        &sa,
        "--clusterrole=cluster-admin",
        &format!("--serviceaccount=default:{sa}"),
    ]);
    let token = k(&["-n", "default", "create", "token", &sa]);
    let admin: serde_json::Value = serde_saphyr::from_str(&std::fs::read_to_string(&lab_kc).unwrap()).unwrap();
    let kc = dir.path().join("token.kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster: {{server: {}, certificate-authority-data: {}}}\nusers:\n- name: sa\n  user: {{token: {token}}}\ncontexts:\n- name: sa\n  context: {{cluster: lab, user: sa}}\ncurrent-context: sa\n",
            admin["clusters"][0]["cluster"]["server"].as_str().unwrap(),
            admin["clusters"][0]["cluster"]["certificate-authority-data"].as_str().unwrap()
        ),
    )
    .unwrap();
    let suite = write_suite(
        dir.path(),
        "leaky",
        "  - name: prints-and-passes\n    steps:\n      - command: {script: 'echo \"gh=$GITHUB_TOKEN os=$OS_PASSWORD\"; kubectl config view --raw --minify | grep token'}\n  - name: prints-and-fails\n    steps:\n      - command: {script: 'kubectl -n \"$NAMESPACE\" create secret generic leaky --from-literal=token=\"$GITHUB_TOKEN\" --from-literal=other=canary-unregistered-$((6*7))x'}\n      - command: {script: 'echo \"gh=$GITHUB_TOKEN\"; echo \"os=$OS_PASSWORD\" >&2; exit 3'}\n    onFailure:\n      - command: {script: 'echo collected $GITHUB_TOKEN'}\n      - resources: {kinds: [v1/Secret]}\n      - events: {}\n",
    );
    let art = dir.path().join("out");
    let mut c = scs(&["run", "-v", "--env", "kubeconfig", "--kubeconfig"]);
    c.arg(&kc)
        .arg("--suite")
        .arg(&suite)
        .arg("--artifacts")
        .arg(&art)
        .env("GITHUB_TOKEN", "ghp_canaryGithubToken0123456789")
        .env("OS_PASSWORD", "canary-os-password-4d2c")
        .env("PATH", scs_e2e::process::path_with(&[assets().bin_dir]));
    let (code, out, err) = run_out(&mut c);
    assert_eq!(code, 1, "{err}");
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let plain = [
        "ghp_canaryGithubToken0123456789",
        "canary-os-password-4d2c",
        token.as_str(),
        "canary-unregistered-42x",
    ];
    let encoded: Vec<String> = plain.iter().map(|c| b64(c)).collect();
    let canaries: Vec<&str> = plain.iter().copied().chain(encoded.iter().map(String::as_str)).collect();
    let mut files = 0;
    let mut dumped = None;
    let mut stack = vec![art.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            files += 1;
            let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
            for c in &canaries {
                assert!(!text.contains(c), "{} holds a secret", p.display());
            }
            if p.file_name().is_some_and(|n| n.to_string_lossy().ends_with("_leaky.yaml")) {
                dumped = Some(text);
            }
        }
    }
    assert!(files >= 6, "reports and step logs were written ({files} files)");
    for c in &canaries {
        assert!(!out.contains(c) && !err.contains(c), "the console shows a secret");
    }
    // `-v` did log (the debug lines are there), and the Secret was dumped, its values masked.
    assert!(err.contains("DEBUG"), "no debug output at -v:\n{err}");
    let dumped = dumped.expect("the failing scenario dumped v1/Secret leaky");
    assert!(dumped.contains("token: REDACTED") && dumped.contains("other: REDACTED"), "{dumped}");
    // The steps did print them: masked, not dropped.
    let steps = art.join("leaky/prints-and-passes/steps");
    let first = std::fs::read_dir(&steps).unwrap().flatten().next().unwrap().path();
    let log = std::fs::read_to_string(first).unwrap();
    assert!(log.contains("gh=*** os=***"), "{log}");
    k(&["delete", "clusterrolebinding", &sa]);
}

/// Suite variables from outside: `--var` over `SCS_E2E_VAR_<NAME>` over the config file's
/// `vars` over the suite's own; `list` and `run --dry-run` show each value and where it came
/// from; a `${NAME}` no one defines is exit 2 naming file and line, unless a script's (bash's).
#[test]
fn suite_variables_come_from_flags_environment_config_and_suite_in_that_order() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("vars.yaml");
    std::fs::write(
        &suite,
        "apiVersion: scs-e2e/v1alpha1\nkind: Suite\nname: vars\nvars: {A: suite-a, B: suite-b, C: suite-c, D: suite-d}\nscenarios:\n  - name: s\n    steps:\n      - name: see ${A} ${B} ${C} ${D}\n        command: {script: 'echo \"${HOME_UNSET:-x}\" ${NOT_A_SUITE_VAR}'}\n",
    )
    .unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "apiVersion: scs-e2e/v1alpha1\nkind: Config\nvars: {A: config-a, B: config-b, C: config-c}\n",
    )
    .unwrap();
    let with_env = |c: &mut Command| {
        c.env("SCS_E2E_VAR_A", "env-a").env("SCS_E2E_VAR_B", "env-b");
    };
    let mut list = scs(&[
        "list",
        "--suite",
        suite.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--var",
        "A=flag-a",
    ]);
    with_env(&mut list);
    let (code, out, err) = run_out(&mut list);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("see flag-a env-b config-c suite-d"), "{out}");
    assert!(
        out.contains(&format!(
            "vars: A=flag-a (--var), B=env-b (environment SCS_E2E_VAR_B), C=config-c (config {}), D=suite-d (suite)",
            config.display()
        )),
        "{out}"
    );
    let mut dry = scs(&["run", "--dry-run", "--suite", suite.to_str().unwrap(), "--var", "D=flag-d"]);
    let (code, out, err) = run_out(&mut dry);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("see suite-a suite-b suite-c flag-d") && out.contains("D=flag-d (--var)"),
        "{out}"
    );

    // An undefined variable outside a script: exit 2 at its step's line, with the ways to give it.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: scs-e2e/v1alpha1\nkind: Suite\nname: bad\nscenarios:\n  - name: s\n    steps:\n      - command: {script: 'true'}\n      - installClusterStack: {provider: inmemory, name: scs, kubernetesVersion: \"1.33\", versions: [v1], source: \"${STACK_DIR}\"}\n",
    )
    .unwrap();
    let (code, _, err) = run_out(&mut scs(&["list", "--suite", bad.to_str().unwrap()]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.yaml:8") && err.contains("--var STACK_DIR=VALUE"), "{err}");
    let (code, out, err) = run_out(&mut scs(&["list", "--suite", bad.to_str().unwrap(), "--var", "STACK_DIR=./stack"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("STACK_DIR=./stack (--var)"), "{out}");
    // A malformed --var is a usage error naming it.
    let (code, _, err) = run_out(&mut scs(&["list", "--suite", suite.to_str().unwrap(), "--var", "no-equals"]));
    assert!(code == 2 && err.contains("--var `no-equals`: write NAME=VALUE"), "{err}");
}

/// A run given a variable from outside is reproduced with it again: without it the recorded
/// suite is refused (exit 2, naming the variable), with `--var` the step gets the value.
#[test]
fn reproduce_takes_the_outside_variables_the_recorded_suite_needs() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let suite = write_suite(
        dir.path(),
        "needs-var",
        "  - name: once\n    steps:\n      - name: greet ${WHO}\n        command: {script: 'if [ -e \"$FLAKY_MARKER\" ]; then exit 0; fi; touch \"$FLAKY_MARKER\"; exit 1'}\n",
    );
    let first = dir.path().join("first");
    let (code, _, err) = run_out(on_lab(&suite, &first, &["--var", "WHO=world"]).env("FLAKY_MARKER", &marker));
    assert_eq!(code, 1, "{err}");
    let again = dir.path().join("again");
    let reproduce = |extra: &[&str]| reproduce_on_lab(&first, &again, &marker, extra);
    let (code, _, err) = reproduce(&[]);
    assert!(code == 2 && err.contains("--var WHO=VALUE") && !again.exists(), "{err}");
    let (code, _, err) = reproduce(&["--var", "WHO=world"]);
    assert_eq!(code, 0, "{err}");
    let r = results(&again);
    assert_eq!(r.scenarios[0].steps[0].name, "greet world");
    assert_eq!(r.scenarios[0].status, Status::Passed);
}
