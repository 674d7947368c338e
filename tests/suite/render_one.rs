//! A command about one experiment renders only that experiment's commands for the acceptance
//! check (pipeline::load_for); `nixl check` renders every experiment's.

use crate::support::{nixl, scratch};
use std::path::Path;

/// `nixl args` in `dir`: exit code, stdout, stderr.
fn run(args: &[&str], dir: &Path) -> (Option<i32>, String, String) {
    let out = nixl().current_dir(dir).args(args).output().expect("nixl runs");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

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
    let check = run(&["check", "two.nixl"], &dir);
    assert_eq!(check.0, Some(1), "{}", check.2);
    assert!(check.2.contains("E0606") && check.2.contains("model_path"), "{}", check.2);
    // `fine` is the file's own experiment (the last); its plan does not run `broken`'s commands.
    let fine = run(&["plan", "two.nixl"], &dir);
    assert_eq!(fine.0, Some(0), "{}", fine.2);
    assert!(fine.1.contains("fine-1") && !fine.2.contains("E0606"), "{}\n{}", fine.1, fine.2);
    let broken = run(&["plan", "two.nixl", "--experiment", "broken"], &dir);
    assert_eq!(broken.0, Some(1), "{}", broken.2);
    assert!(broken.2.contains("E0606") && broken.2.contains("model_path"), "{}", broken.2);
}
