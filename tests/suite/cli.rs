//! The binary as a user runs it: exit codes, output streams, saved plans.

use crate::support::{nixl, root, scratch};
use std::process::Command;

#[test]
fn check_accepts_every_example() {
    let mut cmd = nixl();
    cmd.arg("check");
    for e in std::fs::read_dir(root().join("examples")).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "nixl") {
            cmd.arg(e.path());
        }
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn check_reports_errors_with_exit_one_and_json_on_request() {
    let out = nixl().args(["check", "tests/golden/invalid/e0103_unknown_name.nixl", "--format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["code"], "nixl::E0103");
    assert_eq!(v[0]["line"], 8);
    assert_eq!(v[0]["help"], "did you mean `unified`?");
}

#[test]
fn check_never_panics_on_garbage_files() {
    let dir = scratch("garbage");
    for (i, bytes) in [&b""[..], b"\x00\x01\x02\xff", b"{{{{", b"\"", b"'''", b"experiment"].iter().enumerate() {
        let p = dir.join(format!("{i}.nixl"));
        std::fs::write(&p, bytes).unwrap();
        let out = nixl().arg("check").arg(&p).output().unwrap();
        assert!(matches!(out.status.code(), Some(0) | Some(1)), "{:?}", out.status);
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
    let out = nixl().args(["check", "no/such/file.nixl"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn plan_detailed_exitcode_says_changes_are_pending() {
    let dir = scratch("detailed");
    let state = dir.join("state.json");
    let out = nixl().args(["plan", "examples/phase2.nixl", "--detailed-exitcode", "--state"]).arg(&state).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("128 -> 51"), "{text}");
    assert!(text.contains("6 server launches"), "{text}");
}

#[test]
fn plan_json_is_valid_and_versioned() {
    let out = nixl().args(["plan", "examples/phase2.nixl", "--json"]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format"], 1);
    assert_eq!(v["summary"]["launches"], 6);
    assert_eq!(v["summary"]["run"], 51);
}

#[test]
fn a_saved_plan_is_refused_after_the_file_changes() {
    let dir = scratch("saved");
    for f in ["phase1.nixl", "phase2.nixl", "setup.nixl"] {
        std::fs::copy(root().join("examples").join(f), dir.join(f)).unwrap();
    }
    let file = dir.join("phase2.nixl");
    let saved = dir.join("p.plan");
    let out = nixl().arg("plan").arg(&file).arg("--out").arg(&saved).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(saved.exists());
    let text = std::fs::read_to_string(&file).unwrap().replace("prune prompt == 100K", "prune prompt == 64K");
    std::fs::write(&file, text).unwrap();
    let out = nixl().arg("apply").arg(&saved).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the saved plan is stale"), "{err}");
    assert!(err.contains("changed since the plan was made"), "{err}");
}

#[test]
fn show_prints_a_patterns_resolved_settings() {
    let out = nixl().args(["show", "examples/phase2.nixl", "p2-efa-64k-c1"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("max_model_len"), "{text}");
    assert!(text.contains("133120"), "{text}");
    assert!(text.contains("17179869184 bytes"), "{text}");
    let out = nixl().args(["show", "examples/phase2.nixl", "p2-efa-64k-c8"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean"));
}

#[test]
fn fmt_check_accepts_the_examples_and_stdlib() {
    let mut cmd = nixl();
    cmd.args(["fmt", "--check"]);
    for dir in ["examples", "stdlib"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "nixl") {
                cmd.arg(e.path());
            }
        }
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "would reformat:\n{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn fmt_rewrites_a_file_and_check_reports_it() {
    let dir = scratch("fmt");
    let f = dir.join("messy.nixl");
    std::fs::write(&f, "# keep me\nlet  x=1K+  4K   # and me\nmodel m {hf_id=\"a\"\n  layers = 2}\n").unwrap();
    let out = nixl().args(["fmt", "--check"]).arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("messy.nixl"));
    let out = nixl().arg("fmt").arg(&f).output().unwrap();
    assert!(out.status.success());
    let text = std::fs::read_to_string(&f).unwrap();
    assert!(text.contains("# keep me") && text.contains("# and me"), "{text}");
    assert!(text.contains("let x = 1K + 4K"), "{text}");
    let out = nixl().args(["fmt", "--check"]).arg(&f).output().unwrap();
    assert!(out.status.success());
    // A file that does not parse is never rewritten.
    std::fs::write(&f, "let x = \n").unwrap();
    let out = nixl().arg("fmt").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "let x = \n");
}

#[test]
fn nixl_toml_names_the_default_file_provider_and_state_dir() {
    let dir = scratch("nixl-toml");
    std::fs::copy(root().join("examples/quickstart.nixl"), dir.join("qs.nixl")).unwrap();
    // No FILE and no nixl.toml: a clear error, exit 2.
    let out = nixl().current_dir(&dir).args(["plan"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("names no `file`"));
    std::fs::write(dir.join("nixl.toml"), "file = \"qs.nixl\"\nprovider = \"local\"\nstate_dir = \"my-state\"\n").unwrap();
    let out = nixl().current_dir(&dir).args(["plan", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["experiment"], "quickstart");
    // Every command takes the file from nixl.toml: check, fmt, show (the pattern table), report.
    let out = nixl().current_dir(&dir).args(["check"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = nixl().current_dir(&dir).args(["fmt", "--check"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let out = nixl().current_dir(&dir).args(["show"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("unified (E2E, 4 scheduled)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = nixl().current_dir(&dir).args(["report"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("report.html"), "{}", String::from_utf8_lossy(&out.stderr));
    // The state lives where nixl.toml says: force-unlock reports that path.
    let out = nixl().current_dir(&dir).args(["force-unlock"]).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("my-state"), "{text}");
    // A misspelt key is an error naming the file, not silently ignored.
    std::fs::write(dir.join("nixl.toml"), "fiel = \"qs.nixl\"\n").unwrap();
    let out = nixl().current_dir(&dir).args(["plan"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field"));
}

/// Inputs that would read forever or allocate without bound end at once with a coded
/// diagnostic: a character device, a FIFO (opening it alone would block), a file over
/// the size limit, a design of 10^8 candidate points. Peak memory is read with
/// /usr/bin/time (a generous bound: the point is "bounded", not a benchmark).
#[test]
fn unbounded_inputs_end_at_once_with_a_coded_diagnostic() {
    let dir = crate::support::scratch("bounded-inputs");
    let fifo = dir.join("pipe.nixl");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let levels = (1..=100).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    let big = dir.join("big-design.nixl");
    std::fs::write(
        &big,
        format!(
            "experiment big {{\n  factor a = [{levels}]\n  factor b = [{levels}]\n  factor c = [{levels}]\n  factor d = [{levels}]\n  layer \"L\" {{ mode = unified, id = \"b-{{a}}-{{b}}-{{c}}-{{d}}\" }}\n}}\n"
        ),
    )
    .unwrap();
    let huge = dir.join("huge.nixl");
    std::fs::write(&huge, "#".repeat(9_000_000)).unwrap();
    let cases = [
        ("/dev/zero".to_string(), "nixl::E0101", "not a regular file"),
        (fifo.display().to_string(), "nixl::E0101", "not a regular file"),
        (huge.display().to_string(), "nixl::E0003", "more than the limit"),
        (big.display().to_string(), "nixl::E0003", "100000000 candidate points"),
    ];
    let timed = std::path::Path::new("/usr/bin/time").exists();
    for (file, code, says) in cases {
        let mut c = if timed {
            let mut c = Command::new("/usr/bin/time");
            c.args(["-f", "peak-kb=%M"]).arg(env!("CARGO_BIN_EXE_nixl"));
            c
        } else {
            nixl()
        };
        let out = c.args(["check", &file]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file}: {err}");
        assert!(err.contains(code) && err.contains(says), "{file}: {err}");
        if let Some(kb) = err.lines().find_map(|l| l.strip_prefix("peak-kb=")).and_then(|k| k.trim().parse::<u64>().ok()) {
            assert!(kb < 100 * 1024, "{file}: peak {kb} KB");
        }
    }
}

/// Imports stay inside the project and name .nixl files: a file cannot pull in, and a
/// diagnostic cannot quote, other files of the machine. A nixl.toml above widens the project.
#[test]
fn imports_stay_inside_the_project() {
    let dir = crate::support::scratch("imports-inside");
    let inner = dir.join("project");
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::write(dir.join("shared.nixl"), "# shared by several projects\n").unwrap();
    std::fs::write(inner.join("a.nixl"), "import \"/etc/passwd\"\nimport \"../shared.nixl\"\n").unwrap();
    let out = nixl().arg("check").arg(inner.join("a.nixl")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("`/etc/passwd` is not a .nixl file"), "{err}");
    assert!(err.contains("`../shared.nixl` is outside the project"), "{err}");
    assert!(!err.contains("root:"), "a line of /etc/passwd was quoted: {err}");
    // A nixl.toml one level up makes both files one project.
    std::fs::write(dir.join("nixl.toml"), "").unwrap();
    std::fs::write(inner.join("a.nixl"), "import \"../shared.nixl\"\n").unwrap();
    let out = nixl().arg("check").arg(inner.join("a.nixl")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
