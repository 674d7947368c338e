//! What apply shows while it runs. On a terminal: the log lines scroll above
//! a status line redrawn in place (current server group, pattern n of m,
//! elapsed, estimated remaining). Elsewhere (CI, a pipe, a log file): the
//! plain lines only, each pattern line carrying its position and the estimate.

use crate::check::value::fmt_duration;
use crate::plan::{Action, Kind, Plan};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

struct View {
    tty: bool,
    started: Instant,
    patterns_total: usize,
    patterns_done: usize,
    /// Seconds of estimated work not yet finished.
    remaining: f64,
    group: String,
    drawn: bool,
}

static VIEW: Mutex<Option<View>> = Mutex::new(None);

/// Starts the view for the actions apply will run.
pub fn begin(plan: &Plan, to_run: &[&Action]) {
    let tty = std::io::stderr().is_terminal() && std::env::var_os("NIXL_PLAIN").is_none();
    let view = View {
        tty,
        started: Instant::now(),
        patterns_total: to_run.iter().filter(|a| a.kind == Kind::Pattern).count(),
        patterns_done: 0,
        remaining: to_run.iter().map(|a| a.duration).sum(),
        group: if plan.groups.is_empty() { String::new() } else { format!("0/{}", plan.groups.len()) },
        drawn: false,
    };
    *VIEW.lock().unwrap_or_else(|e| e.into_inner()) = Some(view);
}

/// Prints a log line above the status line.
pub fn log(msg: &str) {
    let mut guard = VIEW.lock().unwrap_or_else(|e| e.into_inner());
    let mut err = std::io::stderr().lock();
    match guard.as_mut() {
        Some(v) if v.tty => {
            if v.drawn {
                let _ = write!(err, "\r\x1b[2K");
            }
            let _ = writeln!(err, "{msg}");
            let _ = write!(err, "{}", v.status());
            let _ = err.flush();
            v.drawn = true;
        }
        _ => {
            let _ = writeln!(err, "{msg}");
        }
    }
}

/// An action starts: the group it belongs to becomes the current one.
pub fn starting(plan: &Plan, a: &Action) {
    if let Some(v) = VIEW.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        if let Some(g) = a.group.and_then(|g| plan.groups.iter().find(|s| s.group == g)) {
            v.group = format!("{}/{} ({})", g.group + 1, plan.groups.len(), g.key);
        }
    }
}

/// An action ended (done or failed): its estimate leaves the remaining time.
pub fn finished(a: &Action) {
    if let Some(v) = VIEW.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        v.remaining = (v.remaining - a.duration).max(0.0);
        if a.kind == Kind::Pattern {
            v.patterns_done += 1;
        }
    }
}

/// "pattern 5 of 51, 12m 3s elapsed, est. 3h 10m left" for plain pattern lines.
pub fn position() -> String {
    VIEW.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|v| v.summary()).unwrap_or_default()
}

/// Clears the status line at the end, so the final summary starts clean.
pub fn end() {
    let mut guard = VIEW.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(v) = guard.as_ref() {
        if v.tty && v.drawn {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
    *guard = None;
}

impl View {
    fn summary(&self) -> String {
        format!(
            "pattern {} of {}, {} elapsed, est. {} left",
            (self.patterns_done + 1).min(self.patterns_total.max(1)),
            self.patterns_total,
            fmt_duration(self.started.elapsed().as_secs_f64().round()),
            fmt_duration(self.remaining.round())
        )
    }

    fn status(&self) -> String {
        let group = if self.group.is_empty() { String::new() } else { format!("group {} · ", self.group) };
        format!("\x1b[2m▸ {group}{}\x1b[0m", self.summary().replace(", ", " · "))
    }
}
