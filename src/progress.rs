//! What apply shows while it runs, through a sink the caller passes in: the
//! executor and the providers write to it and never to stderr themselves.
//! [`Terminal`] is the CLI's sink: on a terminal the log lines scroll above a
//! status line redrawn in place (current launch, pattern n of m, elapsed,
//! estimated remaining); elsewhere (CI, a pipe, a log file) plain lines only,
//! each pattern line carrying its position and the estimate.

use crate::check::value::fmt_duration;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

/// Where progress goes. Every method but `line` has a default that ignores it.
pub trait Sink: Send + Sync {
    /// One line of what is happening.
    fn line(&self, msg: &str);
    /// Apply starts: how many patterns and estimated seconds of work it will run.
    fn begin(&self, _patterns: usize, _seconds: f64, _launches: usize) {}
    /// An action starts; `launch` is its launch number and restart key, when it has one.
    fn starting(&self, _launch: Option<(u32, &str)>) {}
    /// An action ended (done or failed) after its estimated `seconds`.
    fn finished(&self, _pattern: bool, _seconds: f64) {}
    /// "pattern 5 of 51, 12m 3s elapsed, est. 3h 10m left" for pattern lines.
    fn position(&self) -> String {
        String::new()
    }
    /// Apply ends: clear whatever is drawn.
    fn end(&self) {}
}

/// A sink that keeps nothing: for callers that show no progress.
pub struct Silent;

impl Sink for Silent {
    fn line(&self, _msg: &str) {}
}

/// The command line's view, on stderr.
pub struct Terminal {
    view: Mutex<View>,
}

struct View {
    tty: bool,
    started: Instant,
    patterns_total: usize,
    patterns_done: usize,
    /// Seconds of estimated work not yet finished.
    remaining: f64,
    launches: usize,
    launch: String,
    drawn: bool,
}

impl Terminal {
    /// A status line only on a terminal and without NIXL_PLAIN.
    pub fn stderr() -> Terminal {
        let tty = std::io::stderr().is_terminal() && std::env::var_os("NIXL_PLAIN").is_none();
        Terminal {
            view: Mutex::new(View {
                tty,
                started: Instant::now(),
                patterns_total: 0,
                patterns_done: 0,
                remaining: 0.0,
                launches: 0,
                launch: String::new(),
                drawn: false,
            }),
        }
    }

    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Sink for Terminal {
    fn line(&self, msg: &str) {
        let mut v = self.view();
        let mut err = std::io::stderr().lock();
        if v.tty {
            if v.drawn {
                let _ = write!(err, "\r\x1b[2K");
            }
            let _ = writeln!(err, "{msg}");
            let _ = write!(err, "{}", v.status());
            let _ = err.flush();
            v.drawn = true;
        } else {
            let _ = writeln!(err, "{msg}");
        }
    }

    fn begin(&self, patterns: usize, seconds: f64, launches: usize) {
        let mut v = self.view();
        v.started = Instant::now();
        v.patterns_total = patterns;
        v.patterns_done = 0;
        v.remaining = seconds;
        v.launches = launches;
        v.launch = if launches == 0 { String::new() } else { format!("0/{launches}") };
    }

    fn starting(&self, launch: Option<(u32, &str)>) {
        if let Some((n, key)) = launch {
            let mut v = self.view();
            v.launch = format!("{n}/{} ({key})", v.launches);
        }
    }

    fn finished(&self, pattern: bool, seconds: f64) {
        let mut v = self.view();
        v.remaining = (v.remaining - seconds).max(0.0);
        if pattern {
            v.patterns_done += 1;
        }
    }

    fn position(&self) -> String {
        self.view().summary()
    }

    fn end(&self) {
        let mut v = self.view();
        if v.tty && v.drawn {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            v.drawn = false;
        }
    }
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
        let launch = if self.launch.is_empty() { String::new() } else { format!("launch {} · ", self.launch) };
        format!("\x1b[2m▸ {launch}{}\x1b[0m", self.summary().replace(", ", " · "))
    }
}
