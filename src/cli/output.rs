//! The command line's output streams. Everything a command prints goes
//! through here, so a reader that closes early (`nixl plan --json | head -c1`)
//! ends the command quietly with exit 0 instead of a panic, as Unix tools do.

use nixl::diagnostics::render::{self, Format};
use nixl::diagnostics::{Diagnostic, SourceMap};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// Writes to stdout; a closed stdout ends the process with 0: nobody is left to read.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(text.as_bytes()).and_then(|_| stdout.flush()) {
        closed(e);
    }
}

/// Writes to stdout as `write` produces it, buffered: a large plan is never built whole in memory.
pub fn out_with(write: impl FnOnce(&mut dyn std::fmt::Write)) {
    struct Sink<W: Write>(W);
    impl<W: Write> std::fmt::Write for Sink<W> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            if let Err(e) = self.0.write_all(s.as_bytes()) {
                closed(e);
            }
            Ok(())
        }
    }
    let mut sink = Sink(std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock()));
    write(&mut sink);
    if let Err(e) = sink.0.flush() {
        closed(e);
    }
}

/// Writes to stderr; a closed stderr is ignored (stdout may still be read).
pub fn err(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
}

fn closed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    let _ = writeln!(std::io::stderr(), "error: cannot write the output: {e}");
    std::process::exit(1);
}

/// "error: ..." on stderr, exit 1.
pub fn fail(message: &str) -> ExitCode {
    err(&format!("error: {message}\n"));
    ExitCode::from(1)
}

/// Colour on stderr: a terminal and no NO_COLOR.
pub fn color_stderr() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

/// Colour on stdout: a terminal and no NO_COLOR.
pub fn color_stdout() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// Prints diagnostics on stderr, so stdout holds one document (a plan, JSON) whatever they say.
/// Returns true when any is an error.
pub fn diagnostics(diags: &[Diagnostic], sources: &SourceMap, format: Format) -> bool {
    if !diags.is_empty() {
        err(&render::render(diags, sources, format, color_stderr()));
    }
    diags.iter().any(Diagnostic::is_error)
}
