//! Shared helpers: paths, golden comparison with re-blessing, running the binary.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/reference` beside the repository, where CI has it.
pub fn reference(name: &str) -> PathBuf {
    root().join("..").join("shared").join("reference").join(name)
}

/// A genuine tool output beside the repository (../shared/fixtures/tool-outputs, see SOURCES.md there).
pub fn fixture(name: &str) -> PathBuf {
    root().join("..").join("shared").join("fixtures").join("tool-outputs").join(name)
}

/// Compares `actual` with the file at `expected`; `NIXL_BLESS=1` rewrites it instead.
pub fn golden(expected: &Path, actual: &str) {
    if std::env::var_os("NIXL_BLESS").is_some() {
        std::fs::write(expected, actual).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(expected)
        .unwrap_or_else(|_| panic!("missing golden {} (run with NIXL_BLESS=1 to create it)", expected.display()));
    if want != actual {
        panic!(
            "golden mismatch for {}\n--- expected\n{want}\n--- actual\n{actual}\n(run with NIXL_BLESS=1 to accept the new output)",
            expected.display()
        );
    }
}

pub fn nixl() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nixl"));
    c.current_dir(root()).env("NO_COLOR", "1");
    c
}

/// A fresh scratch directory under the target directory.
pub fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target").join("test-scratch").join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Exactly what `nixl check --format plain` runs (the pipeline, then its
/// diagnostics one per line), plus the exit code it would give.
pub fn diagnose(path: &str) -> String {
    let loaded = nixl::pipeline::load(Path::new(path));
    let diags = &loaded.check.diagnostics;
    let mut out =
        nixl::diagnostics::render::render(diags, &loaded.check.sources, nixl::diagnostics::render::Format::Plain, false);
    out.push_str(&format!("exit: {}\n", u8::from(loaded.check.has_errors())));
    out
}

/// The plan of an experiment against a state, as `nixl plan` makes it (no targets).
pub fn plan_of(loaded: &nixl::pipeline::Loaded, experiment: Option<&str>, state: &nixl::state::State) -> nixl::plan::Plan {
    let campaign = loaded.campaign(experiment).expect("experiment");
    let inputs = nixl::plan::Inputs {
        model: &loaded.check.model,
        campaign,
        state,
        source_hash: "fixed-for-goldens",
        stack_changes: &nixl::provider::aws::template::changes,
        targets: &[],
        replace: &[],
    };
    nixl::plan::build(&inputs).expect("no targets to miss")
}
