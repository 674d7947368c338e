//! Shell safety by construction, as properties: ids, prefixes, folder names (`{here}`), setup
//! `let` values, template settings and setup `env` values full of shell syntax (quotes, `$()`,
//! backticks, newlines, spaces) render scripts that bash parses (`bash -n`), and running them
//! executes nothing the values hold (a canary `touch PWNED` never happens) while each value
//! arrives whole, wherever it stands in the command (outside quotes, in '...', "...", `$(...)`,
//! `$'...'`, an assignment, a comment).

use crate::support::{root, scratch};
use proptest::prelude::*;
use std::path::Path;
use std::process::Command;

/// Hostile text: quotes, command substitution, backticks, newlines, spaces, globs.
fn hostile() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("'".to_string()),
            Just("\"".to_string()),
            Just("$(touch PWNED)".to_string()),
            Just("`touch PWNED`".to_string()),
            Just("\n".to_string()),
            Just(" ".to_string()),
            Just(";".to_string()),
            Just("*".to_string()),
            Just("\\".to_string()),
            "[a-z0-9]{1,4}",
        ],
        1..6,
    )
    .prop_map(|parts| parts.concat())
}

fn parses(script: &str) -> bool {
    Command::new("bash").args(["-n", "-c", script]).output().unwrap().status.success()
}

/// Runs a script in `dir` (with `path` before the system's PATH); its combined output.
fn run_in(dir: &Path, script: &str, path: Option<&Path>) -> std::process::Output {
    let mut c = Command::new("bash");
    c.arg("-c").arg(script).current_dir(dir);
    if let Some(p) = path {
        c.env("PATH", format!("{}:{}", p.display(), std::env::var("PATH").unwrap_or_default()));
    }
    c.output().unwrap()
}

/// Whether a file named PWNED exists anywhere under `dir`.
fn pwned(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().flatten().any(|e| {
        let p = e.path();
        e.file_name() == "PWNED" || (p.is_dir() && !p.is_symlink() && pwned(&p))
    })
}

/// The same value in every place a command can hold it (outside quotes, '...', "...", $(...), an
/// assignment, $'...', a comment); each line writes what it received.
/// `NAME` is the interpolation (`{v}`), written into a nixl string.
fn lines_using(name: &str) -> String {
    [
        format!("\"printf '%s\\\\n' {{{name}}} > bare.txt\""),
        format!("\"printf '%s\\\\n' 'x{{{name}}}y' > single.txt\""),
        format!("\"printf '%s\\\\n' \\\"x{{{name}}}y\\\" > double.txt\""),
        format!("\"printf '%s\\\\n' \\\"$(printf '%s' {{{name}}})\\\" > subst.txt\""),
        format!("\"V={{{name}}}; printf '%s\\\\n' \\\"$V\\\" > assign.txt\""),
        format!("\"printf '%s\\\\n' $'x{{{name}}}y' > ansic.txt\""),
        format!("\"echo comment > comment.txt # {{{name}}}\""),
    ]
    .join(",\n      ")
}

/// What each line of [`lines_using`] must have written for `value`.
fn received_whole(dir: &Path, value: &str) -> Result<(), TestCaseError> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| format!("<{f}: {e}>"));
    prop_assert_eq!(read("bare.txt"), format!("{value}\n"));
    prop_assert_eq!(read("single.txt"), format!("x{value}y\n"));
    prop_assert_eq!(read("double.txt"), format!("x{value}y\n"));
    // `$(...)` drops trailing newlines, as it does for any output.
    prop_assert_eq!(read("subst.txt"), format!("{}\n", value.trim_end_matches('\n')));
    prop_assert_eq!(read("assign.txt"), format!("{value}\n"));
    prop_assert_eq!(read("ansic.txt"), format!("x{value}y\n"));
    prop_assert_eq!(read("comment.txt"), "comment\n");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A prefix (and so every id) with shell syntax is refused at check time; a safe one renders
    /// commands that bash parses. No id ever reaches a script unchecked.
    #[test]
    fn a_hostile_prefix_is_refused_and_a_safe_one_renders_scripts_that_parse(prefix in hostile()) {
        let text = format!(
            "import \"std/models\"\nimport \"std/vllm\"\nexperiment e {{\n  prefix = {prefix:?}\n  model = qwen2_5_7b\n  server = vllm {{ max_model_len = 4096 }}\n  bench = vllm_bench {{}}\n  factor prompt = [1K]\n  factor concurrency = [1]\n  layer \"L\" {{ mode = unified, id = \"{{prefix}}-{{prompt}}\" }}\n}}\n"
        );
        let loaded = nixl::pipeline::load_text("p.nixl", &text, &nixl::check::imports::FsLoader);
        let safe = prefix.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) && !prefix.starts_with(['-', '.']);
        let refused = loaded.check.diagnostics.iter().any(|d| d.code == nixl::diagnostics::Code::Domain);
        prop_assert_eq!(refused, !safe, "{}", prefix);
        if safe {
            let c = &loaded.campaigns[0];
            let vars = nixl::design::render::RenderVars::new(&["10.0.0.1", "10.0.0.2"], ".").with_model(c.design.model.as_ref());
            let cmds = nixl::design::commands::for_pattern(&loaded.check.model, c, &c.design.patterns[0], &vars).unwrap();
            for s in cmds.scripts {
                prop_assert!(parses(&s.body), "{}", s.body);
            }
        }
    }

    /// A setup step's `env` values reach the script quoted: it parses, and running it
    /// executes nothing the value holds.
    #[test]
    fn setup_env_values_cannot_inject_commands(value in hostile()) {
        let step = nixl::check::model::SetupStep {
            id: "01-x".into(),
            name: "x".into(),
            run: vec!["printf '%s' \"$VALUE\" > value.txt".into()],
            skip_if: None,
            timeout: 60.0,
            nodes: vec![],
            env: [("VALUE".to_string(), nixl::check::model::EnvValue::Text(value.clone()))].into(),
            provides: vec![],
            span: Default::default(),
        };
        let script = nixl::design::render::setup_script(&step);
        let dir = scratch("inject");
        let out = run_in(&dir, &script, None);
        prop_assert!(out.status.success(), "{}\n{}", script, String::from_utf8_lossy(&out.stderr));
        prop_assert!(!pwned(&dir), "{}", script);
        prop_assert_eq!(std::fs::read_to_string(dir.join("value.txt")).unwrap(), value);
    }

    /// A setup `let` value interpolated into `run` and `skip_if` arrives whole in every place a
    /// command can hold it, and runs nothing it holds.
    #[test]
    fn a_setup_let_value_is_quoted_wherever_it_stands(value in hostile()) {
        let text = format!(
            "setup s {{\n  let v = {value:?}\n  step \"01-x\" {{\n    name = \"x\"\n    skip_if = \"test -e {{v}}.never\"\n    run = [\n      {}\n    ]\n  }}\n}}\n",
            lines_using("v")
        );
        let loaded = nixl::pipeline::load_text("s.nixl", &text, &super::props::NoFiles);
        let errors: Vec<_> = loaded.check.diagnostics.iter().filter(|d| d.is_error()).collect();
        prop_assert!(errors.is_empty(), "{text}\n{errors:?}");
        let script = nixl::design::render::setup_script(&loaded.check.model.setups[0].steps[0]);
        prop_assert!(parses(&script), "{}", script);
        let dir = scratch("let-inject");
        let out = run_in(&dir, &script, None);
        prop_assert!(out.status.success(), "{}\n{}", script, String::from_utf8_lossy(&out.stderr));
        prop_assert!(!pwned(&dir), "{}", script);
        received_whole(&dir, &value)?;
    }

    /// A bench setting interpolated into its command template arrives whole wherever it stands
    /// (the script `nixl show --commands` prints and apply sends), and runs nothing it holds.
    #[test]
    fn a_template_setting_is_quoted_wherever_it_stands(value in hostile()) {
        let text = format!(
            "import \"std/models\"\nserver s {{\n  start_unified = \"true\"\n  health = \"true\"\n  stop = \"true\"\n}}\nbench b {{\n  tag = {value:?}\n  run = [\n      \"echo {{num(prompt)}} {{concurrency}} > factors.txt\",\n      {}\n  ]\n}}\nexperiment e {{\n  prefix = \"e\"\n  model = qwen2_5_7b\n  server = s\n  bench = b\n  factor prompt = [1K]\n  factor concurrency = [1]\n  layer \"L\" {{ mode = unified, id = \"{{prefix}}-{{prompt}}\" }}\n}}\n",
            lines_using("tag")
        );
        let loaded = nixl::pipeline::load_text("b.nixl", &text, &nixl::check::imports::FsLoader);
        let errors: Vec<_> = loaded.check.diagnostics.iter().filter(|d| d.is_error()).collect();
        prop_assert!(errors.is_empty(), "{text}\n{errors:?}");
        let c = &loaded.campaigns[0];
        let vars = nixl::design::render::RenderVars::new(&["10.0.0.1", "10.0.0.2"], ".").with_model(c.design.model.as_ref());
        let cmds = nixl::design::commands::for_pattern(&loaded.check.model, c, &c.design.patterns[0], &vars).unwrap();
        let bench = cmds.scripts.iter().find(|s| s.role == "bench").unwrap();
        prop_assert!(parses(&bench.body), "{}", bench.body);
        let dir = scratch("template-inject");
        let out = run_in(&dir, &bench.body, None);
        prop_assert!(out.status.success(), "{}\n{}", bench.body, String::from_utf8_lossy(&out.stderr));
        prop_assert!(!pwned(&dir), "{}", bench.body);
        received_whole(&dir, &value)?;
    }
}

/// A `python3` that records the script it is asked to run (NUL-separated) and succeeds at once:
/// the demo's servers, health check and benchmark as harmless commands.
fn stub_python(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let py = bin.join("python3");
    let log = dir.join("python-scripts");
    std::fs::write(
        &py,
        format!("#!/bin/bash\ncase \"$1\" in *.py) printf '%s\\0' \"$1\" >> '{}';; esac\nexit 0\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&py, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The local demo from a folder whose name is full of shell syntax: every script of every
    /// pattern parses, runs (with harmless stand-ins for python3) without running anything the
    /// name holds, and hands the stand-in scripts their whole path inside that folder.
    #[test]
    fn the_local_demo_renders_from_any_folder_and_runs_nothing_its_name_holds(name in hostile()) {
        let loaded = nixl::pipeline::load(&root().join("examples/local-demo.nixl"));
        prop_assert!(!loaded.check.has_errors());
        let c = &loaded.campaigns[0];
        let here = format!("/srv/nixl demos/{name}");
        let vars = nixl::design::render::RenderVars::new(&["127.0.0.1", "127.0.0.1"], &here).with_model(c.design.model.as_ref());
        let dir = scratch("here-inject");
        let bin = stub_python(&dir);
        let work = dir.join("node");
        std::fs::create_dir_all(&work).unwrap();
        for p in c.design.patterns.iter().filter(|p| p.group.is_some() || p.tool().is_some()) {
            let cmds = nixl::design::commands::for_pattern(&loaded.check.model, c, p, &vars).unwrap();
            for s in &cmds.scripts {
                prop_assert!(parses(&s.body), "{}", s.body);
                let out = run_in(&work, &s.body, Some(&bin));
                prop_assert!(out.status.success(), "{}\n{}", s.body, String::from_utf8_lossy(&out.stderr));
            }
        }
        prop_assert!(!pwned(&dir), "the folder name ran a command");
        let asked = std::fs::read_to_string(dir.join("python-scripts")).unwrap();
        let scripts: Vec<&str> = asked.split('\0').filter(|s| !s.is_empty()).collect();
        prop_assert!(scripts.len() >= 4, "{scripts:?}");
        for s in scripts {
            let ok = s == format!("{here}/local-demo/standin_server.py") || s == format!("{here}/local-demo/standin_bench.py");
            prop_assert!(ok, "python3 was given {:?}", s);
        }
    }
}
