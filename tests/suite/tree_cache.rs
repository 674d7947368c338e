//! The command line's cache of parsed trees (check/tree_cache.rs): a warm run prints what a
//! cold one does, spans included; damaged entries and files with syntax errors are parsed.
//! Also: a command about one experiment renders only its commands (pipeline::load_for).

use crate::support::{nixl, root, scratch};
use std::path::Path;

/// `nixl args` with the cache in `cache` ("" turns it off): exit code, stdout, stderr.
fn run(cache: &Path, args: &[&str], dir: &Path) -> (Option<i32>, String, String) {
    let out = nixl().current_dir(dir).env("NIXL_CACHE_DIR", cache).args(args).output().expect("nixl runs");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn entries(cache: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> =
        std::fs::read_dir(cache.join("trees")).map(|r| r.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_warm_plan_prints_what_a_cold_one_does_and_damaged_entries_are_parsed_again() {
    let cache = scratch("tree-cache-plan");
    let state = cache.join("state.json");
    let args = ["plan", "examples/phase2.nixl", "--state", state.to_str().unwrap()];
    let off = run(Path::new(""), &args, &root());
    assert_eq!(off.0, Some(0), "{}", off.2);
    let cold = run(&cache, &args, &root());
    // phase2.nixl, the phase1.nixl it imports and phase1's setup.nixl; the stdlib is built in.
    assert_eq!(entries(&cache).len(), 3, "{:?}", entries(&cache));
    let warm = run(&cache, &args, &root());
    assert_eq!(cold, off);
    assert_eq!(warm, off);
    assert_eq!(entries(&cache).len(), 3);
    for e in entries(&cache) {
        std::fs::write(&e, b"not a tree").unwrap();
    }
    assert_eq!(run(&cache, &args, &root()), off, "a damaged entry is a miss");
    for e in entries(&cache) {
        assert_ne!(std::fs::read(&e).unwrap(), b"not a tree", "{} was written again", e.display());
    }
}

#[test]
fn diagnostics_from_cached_files_point_where_a_parse_would_and_syntax_errors_are_never_cached() {
    let dir = scratch("tree-cache-diags");
    let cache = dir.join("cache");
    std::fs::write(dir.join("lib.nixl"), "# a library\nlet x = no_such_name\n").unwrap();
    std::fs::write(dir.join("main.nixl"), "import \"./lib.nixl\"\nlet y = 1\n").unwrap();
    let off = run(Path::new(""), &["check", "main.nixl"], &dir);
    assert_eq!(off.0, Some(1), "{}", off.2);
    assert!(off.2.contains("lib.nixl:2:9") && off.2.contains("no_such_name"), "{}", off.2);
    let cold = run(&cache, &["check", "main.nixl"], &dir);
    assert_eq!(entries(&cache).len(), 2);
    let warm = run(&cache, &["check", "main.nixl"], &dir);
    assert_eq!(cold, off);
    assert_eq!(warm, off, "a cached tree's spans point into its own file");

    std::fs::write(dir.join("bad.nixl"), "let = 3\n").unwrap();
    let first = run(&cache, &["check", "bad.nixl"], &dir);
    assert_eq!(first.0, Some(1));
    assert_eq!(entries(&cache).len(), 2, "a file with a syntax error is not cached");
    assert_eq!(run(&cache, &["check", "bad.nixl"], &dir), first);
}

/// Two experiments; `broken`'s server reads a name nothing defines, so rendering its start
/// command fails (E0606), while `fine` renders.
const TWO_EXPERIMENTS: &str = r#"server broken_server {
  port          = 18100
  start_unified = "serve {model_path} --port {port}"
  health        = "true"
}

server fine_server {
  port          = 18100
  start_unified = "serve --port {port}"
  health        = "true"
}

bench b {
  run = "client --port {port} --concurrency {concurrency} --out {out}"
}

experiment broken {
  server = broken_server
  bench  = b
  factor concurrency = [1]
  layer "U" {
    mode = unified
    id   = "broken-{concurrency}"
  }
}

experiment fine {
  server = fine_server
  bench  = b
  factor concurrency = [1]
  layer "U" {
    mode = unified
    id   = "fine-{concurrency}"
  }
}
"#;

#[test]
fn a_plan_renders_the_commands_of_the_experiment_it_plans_and_check_renders_all() {
    let dir = scratch("render-one-experiment");
    std::fs::write(dir.join("two.nixl"), TWO_EXPERIMENTS).unwrap();
    let off = Path::new("");
    let check = run(off, &["check", "two.nixl"], &dir);
    assert_eq!(check.0, Some(1), "{}", check.2);
    assert!(check.2.contains("E0606") && check.2.contains("model_path"), "{}", check.2);
    // `fine` is the file's own experiment (the last); its plan does not run `broken`'s commands.
    let fine = run(off, &["plan", "two.nixl"], &dir);
    assert_eq!(fine.0, Some(0), "{}", fine.2);
    assert!(fine.1.contains("fine-1") && !fine.2.contains("E0606"), "{}\n{}", fine.1, fine.2);
    let broken = run(off, &["plan", "two.nixl", "--experiment", "broken"], &dir);
    assert_eq!(broken.0, Some(1), "{}", broken.2);
    assert!(broken.2.contains("E0606") && broken.2.contains("model_path"), "{}", broken.2);
}
