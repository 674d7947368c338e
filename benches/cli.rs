//! What a user waits for: the installed binary's wall time and peak memory, process
//! start included, for `nixl plan examples/phase2.nixl` and for a plan of a million patterns.
//! Run with `cargo bench --bench cli` (the release binary cargo builds for benches; see
//! [`nixl`] for measuring the one `cargo install` builds). Every run parses every user file:
//! nothing is cached between runs.
//!
//! Targets (issue "a planner as fast as a CLI should be"): phase 2 in at most 5 ms, a
//! million patterns in under 3 s and 500 MB. Figures are printed, not asserted: a loaded
//! machine must not fail a build, and the notes record what this machine measured.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The binary measured: `NIXL_BENCH_BIN` if set, else the one cargo built for the benches.
/// That one is not quite what `cargo install` builds: the dev-dependencies (proptest,
/// criterion) turn on features of shared crates, and it measured 5-8 % slower. To measure what
/// users run: `cargo build --release --bin nixl`, copy `target/release/nixl` aside (the bench
/// build overwrites it), and pass the copy as `NIXL_BENCH_BIN`.
fn nixl() -> String {
    std::env::var("NIXL_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_nixl").to_string())
}

/// Runs `nixl args` `n` times with stdout discarded; the wall times, sorted.
fn times(args: &[&str], dir: &Path, n: usize) -> Vec<Duration> {
    let nixl = nixl();
    let mut out: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            let status = Command::new(&nixl)
                .args(args)
                .current_dir(dir)
                .env("NO_COLOR", "1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("nixl runs");
            let took = t.elapsed();
            assert!(status.success(), "nixl {args:?} failed: {status}");
            took
        })
        .collect();
    out.sort();
    out
}

/// The largest resident set of any child waited for so far, in MiB (Linux reports KiB).
fn peak_child_rss_mib() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given; RUSAGE_CHILDREN covers waited-for children.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0
}

/// A two-factor experiment of `a` x `b` patterns in `a` restart groups.
fn million_file(dir: &Path, a: usize, b: usize) -> PathBuf {
    let levels = |n: usize| (1..=n).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    let text = format!(
        "experiment big {{\n  factor f0 = [{}]\n  factor f1 = [{}]\n  restart_on = [mode, f0]\n  layer \"L\" {{ mode = unified, id = \"b-{{f0}}-{{f1}}\" }}\n}}\n",
        levels(a),
        levels(b)
    );
    let path = dir.join("million.nixl");
    std::fs::write(&path, text).expect("temp file written");
    path
}

fn report(what: &str, t: &[Duration], rss: f64) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what:<44} min {:>9.2} ms  median {:>9.2} ms  max {:>9.2} ms  ({} runs)  peak RSS {rss:.1} MiB",
        ms(t[0]),
        ms(t[t.len() / 2]),
        ms(t[t.len() - 1]),
        t.len()
    );
}

fn main() {
    println!("measuring {}", nixl());
    // The arguments cargo passes (`--bench`, a filter) are ignored: every figure is measured each run.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scratch = std::env::temp_dir().join(format!("nixl-bench-cli-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    // A state file nobody else uses, so a developer's own `.nixl/` does not change the plan.
    let state = scratch.join("state.json");
    let state = state.to_str().expect("utf-8 temp path");

    let t = times(&["--version"], repo, 50);
    report("nixl --version (process start)", &t, peak_child_rss_mib());
    let t = times(&["check", "examples/phase2.nixl"], repo, 50);
    report("nixl check examples/phase2.nixl", &t, peak_child_rss_mib());
    let t = times(&["plan", "examples/phase2.nixl", "--state", state], repo, 50);
    report("nixl plan examples/phase2.nixl", &t, peak_child_rss_mib());

    let file = million_file(&scratch, 1000, 1000);
    let file = file.to_str().expect("utf-8 temp path");
    let t = times(&["check", file], &scratch, 3);
    report("nixl check (1,000,000 patterns)", &t, peak_child_rss_mib());
    let t = times(&["plan", file, "--state", state], &scratch, 3);
    report("nixl plan (1,000,000 patterns)", &t, peak_child_rss_mib());
    let _ = std::fs::remove_dir_all(&scratch);
}
