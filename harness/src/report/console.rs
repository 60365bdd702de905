//! Console output: a live line per running scenario on a terminal (indicatif), plain timestamped
//! lines elsewhere (CI logs).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{RunReport, ScenarioResult, Status, StepResult};

/// What the engine tells observers.
pub enum Event<'a> {
    /// An environment phase (`up`, `down`) started.
    PhaseStarted {
        /// The phase's name.
        name: &'a str,
    },
    /// An environment phase finished.
    PhaseFinished {
        /// Its result.
        result: &'a StepResult,
    },
    /// A scenario started.
    ScenarioStarted {
        /// The scenario, `suite.scenario`.
        id: &'a str,
        /// Its number of steps.
        steps: usize,
    },
    /// A step started.
    StepStarted {
        /// The scenario, `suite.scenario`.
        id: &'a str,
        /// The step's index, from 0.
        index: usize,
        /// The scenario's number of steps.
        steps: usize,
        /// The step's name.
        name: &'a str,
        /// The step's timeout per attempt.
        timeout: Duration,
    },
    /// A step finished (also a leak check, which has no `StepStarted`).
    StepFinished {
        /// The scenario, `suite.scenario`.
        id: &'a str,
        /// The step's result.
        result: &'a StepResult,
    },
    /// A scenario finished, its collectors included.
    ScenarioFinished {
        /// Its result.
        result: &'a ScenarioResult,
    },
    /// A remark for the user, like where logs went or what was kept.
    Note(&'a str),
}

/// Receives the engine's events as the run goes (the console, tests).
pub trait Observer: Send + Sync {
    /// Handles one event; scenarios run in parallel, so their events interleave.
    fn on(&self, ev: Event<'_>);
}

/// Observes nothing (library use, tests).
pub struct Silent;
impl Observer for Silent {
    fn on(&self, _: Event<'_>) {}
}

/// How much the console shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Only what went wrong; no live progress.
    Quiet,
    /// Phases, steps and scenarios as they finish, and live progress on a terminal.
    Normal,
    /// Also scenario and step starts, when not on a terminal.
    Verbose,
}

/// The console [`Observer`]: live progress on a terminal, timestamped lines on stderr otherwise.
pub struct Console {
    verbosity: Verbosity,
    live: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Console {
    /// Live progress when stderr is a terminal, plain lines otherwise.
    pub fn new(verbosity: Verbosity) -> Console {
        let live = (std::io::stderr().is_terminal() && verbosity != Verbosity::Quiet)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Console {
            verbosity,
            live,
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, s: &str) {
        let s = &*crate::redact::apply(s);
        match &self.live {
            Some(mp) => {
                let _ = mp.println(s);
            }
            None => eprintln!("{} {s}", chrono::Utc::now().format("%H:%M:%S%.3f")),
        }
    }
}

fn mark(s: Status) -> &'static str {
    match s {
        Status::Passed => "PASS",
        Status::Failed => "FAIL",
        Status::Error => "ERROR",
        Status::Skipped => "SKIP",
    }
}

fn step_line(prefix: &str, r: &StepResult) -> String {
    let mut s = format!("{} {prefix} › {} ({:.2}s)", mark(r.status), r.name, r.duration_secs);
    if r.attempts.len() > 1 {
        s.push_str(&format!(" after {} attempts", r.attempts.len()));
    }
    if let Some(m) = r.message.as_ref().filter(|_| r.status != Status::Passed) {
        s.push_str(&format!(": {m}"));
    }
    s
}

impl Observer for Console {
    fn on(&self, ev: Event<'_>) {
        let quiet = self.verbosity == Verbosity::Quiet;
        match ev {
            Event::PhaseStarted { name } => {
                if !quiet {
                    self.line(&format!("environment: {name} …"));
                }
            }
            Event::PhaseFinished { result } => {
                if !quiet || result.status.is_bad() {
                    self.line(&step_line("environment", result));
                }
                // An environment that failed says why in its details (a tool's last lines, the
                // fix): they belong on the console, not only in results.json.
                if let (true, Some(d)) = (result.status.is_bad(), &result.details) {
                    for l in crate::redact::apply(d).lines() {
                        self.line(&format!("    {l}"));
                    }
                }
            }
            Event::ScenarioStarted { id, steps } => {
                if let Some(mp) = &self.live {
                    let pb = mp.add(ProgressBar::new_spinner());
                    pb.set_style(ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg} {elapsed:>4}").expect("valid template"));
                    pb.set_prefix(id.to_string());
                    pb.set_message(format!("{steps} steps"));
                    pb.enable_steady_tick(Duration::from_millis(120));
                    self.bars.lock().unwrap().insert(id.to_string(), pb);
                } else if self.verbosity == Verbosity::Verbose {
                    self.line(&format!("START {id} ({steps} steps)"));
                }
            }
            Event::StepStarted {
                id,
                index,
                steps,
                name,
                timeout,
            } => {
                if let Some(pb) = self.bars.lock().unwrap().get(id) {
                    pb.set_message(format!(
                        "[{}/{steps}] {name} (timeout {})",
                        index + 1,
                        humantime::format_duration(timeout)
                    ));
                } else if self.verbosity == Verbosity::Verbose {
                    self.line(&format!("RUN  {id} › {name}"));
                }
            }
            Event::StepFinished { id, result } => {
                if !quiet || result.status.is_bad() {
                    self.line(&step_line(id, result));
                }
            }
            Event::ScenarioFinished { result } => {
                if let Some(pb) = self.bars.lock().unwrap().remove(&result.id()) {
                    pb.finish_and_clear();
                }
                if !quiet || result.status.is_bad() {
                    self.line(&format!("{} {} ({:.1}s)", mark(result.status), result.id(), result.duration_secs));
                }
            }
            Event::Note(s) => {
                if !quiet {
                    self.line(s)
                }
            }
        }
    }
}

/// The closing summary.
pub fn summary_text(r: &RunReport) -> String {
    let count = |st: Status| r.scenarios.iter().filter(|s| s.status == st).count();
    let s = r.summary();
    let mut out = format!(
        "{} scenarios: {} passed, {} failed, {} errors, {} skipped | {} steps: {} passed, {} failed, {} errors, {} skipped{} | {:.1}s",
        r.scenarios.len(),
        count(Status::Passed),
        count(Status::Failed),
        count(Status::Error),
        count(Status::Skipped),
        s.passed + s.failed + s.errors + s.skipped,
        s.passed,
        s.failed,
        s.errors,
        s.skipped,
        if s.flaky > 0 {
            format!(" ({} flaky)", s.flaky)
        } else {
            String::new()
        },
        r.duration_secs
    );
    if r.interrupted {
        out.push_str(" | interrupted");
    }
    for sc in r.scenarios.iter().filter(|s| s.status.is_bad()) {
        for st in sc.steps.iter().filter(|s| s.status.is_bad()) {
            out.push_str(&format!(
                "\n  {} {} › {}: {}",
                mark(st.status),
                sc.id(),
                st.name,
                st.message.as_deref().unwrap_or("")
            ));
        }
    }
    for p in r.phases.iter().filter(|p| p.status.is_bad()) {
        out.push_str(&format!(
            "\n  {} environment › {}: {}",
            mark(p.status),
            p.name,
            p.message.as_deref().unwrap_or("")
        ));
    }
    out
}
