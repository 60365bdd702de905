//! One self-contained HTML file (inline CSS, no scripts, no network): the summary, a scenario ×
//! step matrix coloured by outcome, a timeline of each scenario's steps, the failures with links
//! to their logs (relative to the artifacts directory, where the file is written), and the run's
//! properties.

use std::fmt::Write;

use super::{RunReport, Status, StepResult};

/// The HTML report's file name; it is written in the artifacts directory.
pub const FILE_NAME: &str = "report.html";

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn class(s: Status) -> &'static str {
    match s {
        Status::Passed => "passed",
        Status::Failed => "failed",
        Status::Error => "error",
        Status::Skipped => "skipped",
    }
}

/// A link to the step's log, when it has one (paths are relative to the artifacts directory).
fn log_link(s: &StepResult, text: &str) -> String {
    match &s.log {
        Some(l) => format!("<a href=\"{}\">{}</a>", esc(l), esc(text)),
        None => esc(text),
    }
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}\
.passed{background:#c8e6c9}.failed{background:#ffcdd2}.error{background:#ffe0b2}.skipped{background:#eee;color:#777}\
.cell{min-width:1.6em;text-align:center}.flaky{outline:2px dashed #f9a825;outline-offset:-3px}\
.bar{position:relative;height:14px;background:#fafafa;border:1px solid #ddd;width:640px}\
.bar span{position:absolute;top:0;height:14px;border-right:1px solid #fff}\
.axis{display:flex;justify-content:space-between;width:640px;color:#777;font-size:12px}\
pre{white-space:pre-wrap;background:#f6f6f6;padding:6px;max-height:20em;overflow:auto}\
.summary span{display:inline-block;padding:2px 8px;margin-right:6px;border-radius:3px}";

/// The run as one self-contained HTML page.
pub fn render(r: &RunReport) -> String {
    let mut h = String::new();
    let count = |st: Status| r.scenarios.iter().filter(|s| s.status == st).count();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>scs-e2e {}</title><style>{STYLE}</style></head><body>\n",
        esc(&r.run_id)
    );
    let _ = write!(
        h,
        "<h1>scs-e2e run {}</h1>\n<p>environment <b>{}</b> · started {} · {:.1} s{}</p>\n<p class=\"summary\">scenarios: <span class=\"passed\">{} passed</span><span class=\"failed\">{} failed</span><span class=\"error\">{} errors</span><span class=\"skipped\">{} skipped</span></p>\n",
        esc(&r.run_id),
        esc(&r.environment),
        r.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        r.duration_secs,
        if r.interrupted { " · <b>interrupted</b>" } else { "" },
        count(Status::Passed),
        count(Status::Failed),
        count(Status::Error),
        count(Status::Skipped),
    );

    // Phases and the matrix.
    h.push_str("<h2>Scenarios × steps</h2>\n<table><tr><th>scenario</th><th>status</th><th>time</th>");
    let width = r.scenarios.iter().map(|s| s.steps.len()).max().unwrap_or(0);
    for i in 1..=width {
        let _ = write!(h, "<th class=\"cell\">{i}</th>");
    }
    h.push_str("</tr>\n");
    for p in &r.phases {
        let _ = writeln!(
            h,
            "<tr><td>environment.{}</td><td class=\"{}\">{}</td><td>{:.1} s</td><td colspan=\"{width}\">{}</td></tr>",
            esc(&p.name),
            class(p.status),
            class(p.status),
            p.duration_secs,
            esc(p.message.as_deref().unwrap_or(""))
        );
    }
    for sc in &r.scenarios {
        let _ = write!(
            h,
            "<tr><td id=\"{}\">{}.{}</td><td class=\"{}\">{}</td><td>{:.1} s</td>",
            esc(&format!("{}.{}", sc.suite, sc.name)),
            esc(&sc.suite),
            esc(&sc.name),
            class(sc.status),
            class(sc.status),
            sc.duration_secs
        );
        for i in 0..width {
            match sc.steps.get(i) {
                Some(st) => {
                    let flaky = if st.is_flaky() { " flaky" } else { "" };
                    let _ = write!(
                        h,
                        "<td class=\"cell {}{flaky}\" title=\"{} ({}, {:.1} s){}\">{}</td>",
                        class(st.status),
                        esc(&st.name),
                        esc(&st.operation),
                        st.duration_secs,
                        st.message.as_deref().map(|m| format!(": {}", esc(m))).unwrap_or_default(),
                        log_link(st, &(i + 1).to_string())
                    );
                }
                None => h.push_str("<td></td>"),
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");

    // Timeline: each scenario's steps on one time axis. The axis spans the run and every step:
    // steps are timed apart from the run, so in a partial or hand-made report one can end after
    // the recorded duration, and it would be squeezed to nothing at the right edge.
    let since = |t: chrono::DateTime<chrono::Utc>| (t - r.started_at).num_milliseconds() as f64 / 1000.0;
    let steps = || r.scenarios.iter().flat_map(|sc| sc.steps.iter());
    let origin = steps().map(|st| since(st.started_at)).fold(0.0f64, f64::min);
    let end = steps()
        .map(|st| since(st.started_at) + st.duration_secs)
        .fold(r.duration_secs, f64::max);
    let total = (end - origin).max(0.001);
    let _ = write!(
        h,
        "<h2>Timeline</h2>\n<table><tr><td></td><td><div class=\"axis\"><span>{origin:.1} s</span><span>{:.1} s</span><span>{end:.1} s</span></div></td></tr>\n",
        origin + total / 2.0
    );
    for sc in &r.scenarios {
        let _ = write!(h, "<tr><td>{}.{}</td><td><div class=\"bar\">", esc(&sc.suite), esc(&sc.name));
        for st in &sc.steps {
            let left = ((since(st.started_at) - origin) / total * 100.0).clamp(0.0, 100.0);
            // At least visible, never past the end.
            let w = (st.duration_secs / total * 100.0).max(0.2).min(100.0 - left);
            let _ = write!(
                h,
                "<span class=\"{}\" style=\"left:{left:.2}%;width:{w:.2}%\" title=\"{} {:.1} s\"></span>",
                class(st.status),
                esc(&st.name),
                st.duration_secs
            );
        }
        h.push_str("</div></td></tr>\n");
    }
    h.push_str("</table>\n");

    // Failures.
    let bad: Vec<(&super::ScenarioResult, &StepResult)> = r
        .scenarios
        .iter()
        .flat_map(|sc| sc.steps.iter().filter(|s| s.status.is_bad()).map(move |s| (sc, s)))
        .collect();
    if !bad.is_empty() {
        h.push_str("<h2>Failures</h2>\n");
        for (sc, st) in bad {
            let _ = write!(
                h,
                "<h3 class=\"{}\">{}.{} › {}</h3>\n<p>{}</p>\n",
                class(st.status),
                esc(&sc.suite),
                esc(&sc.name),
                log_link(st, &st.name),
                esc(st.message.as_deref().unwrap_or(""))
            );
            if let Some(d) = &st.details {
                let _ = writeln!(h, "<pre>{}</pre>", esc(d));
            }
            if let Some(t) = &st.log_tail {
                let _ = writeln!(h, "<pre>{}</pre>", esc(t));
            }
            for c in &sc.collected {
                let _ = writeln!(h, "<p>collected: <a href=\"{}\">{}</a></p>", esc(&c.path), esc(&c.collector));
            }
        }
    }

    h.push_str("<h2>Properties</h2>\n<table>");
    let _ = write!(h, "<tr><th>harness</th><td>{}</td></tr>", esc(&r.harness_version));
    for (k, v) in &r.properties {
        let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    h.push_str("</table>\n</body></html>\n");
    h
}
