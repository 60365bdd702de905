//! JUnit XML (quick-junit): `<testsuites name="scs-e2e">`, a `<testsuite>` per scenario (plus one
//! for the environment), a `<testcase>` per step with `classname` = `suite.scenario`.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestRerun, TestSuite, XmlString};

use super::{RunReport, Status, StepResult};

/// The file name CI systems look for under the artifacts directory.
pub const FILE_NAME: &str = "junit_scs-e2e.xml";

/// The run as JUnit XML.
pub fn render(r: &RunReport) -> String {
    let mut report = Report::new("scs-e2e");
    report.set_timestamp(r.started_at.fixed_offset());
    report.set_time(dur(r.duration_secs));
    let props = |extra: &[(&str, &str)]| -> Vec<Property> {
        let mut v: Vec<Property> = vec![
            Property::new("environment", r.environment.as_str()),
            Property::new("run_id", r.run_id.as_str()),
            Property::new("harness_version", r.harness_version.as_str()),
        ];
        v.extend(r.properties.iter().map(|(k, val)| Property::new(k.as_str(), val.as_str())));
        v.extend(extra.iter().map(|(k, val)| Property::new(*k, *val)));
        v
    };
    if !r.phases.is_empty() {
        let mut ts = TestSuite::new("environment");
        ts.set_timestamp(r.phases[0].started_at.fixed_offset());
        ts.add_properties(props(&[]));
        let classname = format!("environment.{}", r.environment);
        ts.add_test_cases(r.phases.iter().map(|p| testcase(p, &classname, None)));
        report.add_test_suite(ts);
    }
    for sc in &r.scenarios {
        let id = sc.id();
        let mut ts = TestSuite::new(id.as_str());
        ts.set_timestamp(sc.started_at.fixed_offset());
        ts.set_time(dur(sc.duration_secs));
        let matrix: Vec<(String, String)> = sc.matrix.iter().map(|(k, v)| (format!("matrix.{k}"), v.clone())).collect();
        let extra: Vec<(&str, &str)> = matrix.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        ts.add_properties(props(&extra));
        ts.add_test_cases(sc.steps.iter().map(|s| testcase(s, &id, Some(&sc.file))));
        report.add_test_suite(ts);
    }
    report.to_string().expect("JUnit serializes")
}

fn testcase(s: &StepResult, classname: &str, file: Option<&str>) -> TestCase {
    let status = match s.status {
        Status::Passed => {
            let mut st = TestCaseStatus::success();
            st.add_reruns(s.attempts.iter().filter(|a| a.status.is_bad()).map(rerun));
            st
        }
        Status::Failed | Status::Error => {
            let mut st = TestCaseStatus::non_success(kind(s.status));
            st.set_message(s.message.clone().unwrap_or_default());
            let mut body = s.details.clone().unwrap_or_default();
            if let Some(log) = &s.log {
                if !body.is_empty() {
                    body.push_str("\n\n");
                }
                body.push_str(&format!("log: {log}"));
            }
            if !body.is_empty() {
                st.set_description(body);
            }
            // Earlier failed attempts; the last one is the failure itself.
            let n = s.attempts.len().saturating_sub(1);
            st.add_reruns(s.attempts.iter().take(n).map(rerun));
            st
        }
        Status::Skipped => {
            let mut st = TestCaseStatus::skipped();
            if let Some(m) = &s.message {
                st.set_message(m.as_str());
            }
            st
        }
    };
    let mut tc = TestCase::new(s.name.as_str(), status);
    tc.set_classname(classname);
    tc.set_timestamp(s.started_at.fixed_offset());
    tc.set_time(dur(s.duration_secs));
    if let Some(f) = file {
        tc.extra.insert(XmlString::new("file"), XmlString::new(f));
    }
    if let Some(t) = &s.log_tail {
        tc.set_system_out(t.as_str());
    }
    tc
}

fn kind(s: Status) -> NonSuccessKind {
    if s == Status::Error {
        NonSuccessKind::Error
    } else {
        NonSuccessKind::Failure
    }
}

fn rerun(a: &super::Attempt) -> TestRerun {
    let mut r = TestRerun::new(kind(a.status));
    r.set_timestamp(a.started_at.fixed_offset());
    r.set_time(dur(a.duration_secs));
    if let Some(m) = &a.message {
        r.set_message(m.as_str());
    }
    if let Some(d) = &a.details {
        r.set_description(d.as_str());
    }
    r
}

fn dur(secs: f64) -> Duration {
    Duration::from_secs_f64(secs.max(0.0))
}
