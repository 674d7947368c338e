//! Properties: no input makes nixl panic; plans always launch the minimum and respect every edge.

use crate::support::root;
use nixl::check::imports::Loader;
use proptest::prelude::*;
use std::path::Path;

/// Imports resolve to nothing: the properties exercise one buffer at a time.
pub struct NoFiles;
impl Loader for NoFiles {
    fn read(&self, _: &Path) -> std::io::Result<Vec<u8>> {
        Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no files in this test"))
    }
}

fn examples() -> Vec<String> {
    let mut v = vec![];
    for dir in ["examples", "stdlib"] {
        if let Ok(rd) = std::fs::read_dir(root().join(dir)) {
            for e in rd.flatten() {
                if e.path().extension().is_some_and(|x| x == "nixl") {
                    v.push(std::fs::read_to_string(e.path()).unwrap());
                }
            }
        }
    }
    v
}

fn run_everything(text: &str) {
    let loaded = nixl::pipeline::load_text("fuzz.nixl", text, &NoFiles);
    for c in &loaded.campaigns {
        let _ = crate::support::plan_of(&loaded, Some(c.name()), &nixl::state::State::new());
    }
    let _ = nixl::diagnostics::render::render(
        &loaded.check.diagnostics,
        &loaded.check.sources,
        nixl::diagnostics::render::Format::Plain,
        false,
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(s in "\\PC{0,300}") {
        run_everything(&s);
    }

    #[test]
    fn random_grammar_fragments_never_panic(parts in proptest::collection::vec(prop_oneof![
        Just("{"), Just("}"), Just("["), Just("]"), Just("("), Just(")"), Just("\""), Just("'"), Just("'''"), Just("\n"),
        Just("="), Just("=="), Just("?"), Just(":"), Just(","), Just("experiment e "), Just("layer \"L\" "), Just("factor p = "),
        Just("prune "), Just(" because \"r\""), Just("1K"), Just("10s"), Just("200GB"), Just("$3"), Just("x"), Just("{x}"), Just("# c"),
        Just("let "), Just("set "), Just("when "), Just(" then run "), Just("not "), Just(" and "), Just("-"), Just("\\"),
    ], 0..60)) {
        run_everything(&parts.concat());
    }

    #[test]
    fn mutated_examples_never_panic(which in 0usize..64, cuts in proptest::collection::vec((0usize..100_000, 0usize..40, ".{0,3}"), 1..6)) {
        let all = examples();
        prop_assume!(!all.is_empty());
        let mut text = all[which % all.len()].clone();
        for (at, len, insert) in cuts {
            let at = nixl::diagnostics::floor_char_boundary(&text, at % (text.len() + 1));
            let end = nixl::diagnostics::floor_char_boundary(&text, (at + len).min(text.len()));
            text.replace_range(at..end.max(at), &insert);
        }
        run_everything(&text);
    }
}

#[test]
fn random_bytes_never_panic() {
    // Binary garbage through the file loader, including invalid UTF-8.
    let dir = crate::support::scratch("bytes");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..64 {
        let len = (i * 37) % 2000;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let p = dir.join(format!("g{i}.nixl"));
        std::fs::write(&p, &bytes).unwrap();
        let _ = nixl::pipeline::load(&p);
    }
    let empty = dir.join("empty.nixl");
    std::fs::write(&empty, "").unwrap();
    assert!(!nixl::pipeline::load(&empty).check.has_errors());
}

#[test]
fn hostile_nesting_and_size_end_in_diagnostics() {
    let deep = "let x = ".to_string() + &"[".repeat(100_000) + &"]".repeat(100_000);
    let loaded = nixl::pipeline::load_text("deep.nixl", &deep, &NoFiles);
    assert!(loaded.check.diagnostics.iter().any(|d| d.code == nixl::diagnostics::Code::Limit));
    let ops = "let x = ".to_string() + &"not ".repeat(50_000) + "true";
    let loaded = nixl::pipeline::load_text("ops.nixl", &ops, &NoFiles);
    assert!(loaded.check.diagnostics.iter().any(|d| d.code == nixl::diagnostics::Code::Limit));
    let big = "let x = 1\n".repeat(1_000_000);
    let loaded = nixl::pipeline::load_text("big.nixl", &big, &NoFiles);
    assert!(loaded.check.diagnostics.iter().any(|d| d.code == nixl::diagnostics::Code::Limit));
}

/// A random experiment: factors, layers with modes, prunes, a derived restart setting.
fn experiment_text(levels: &[usize], layers: &[(bool, u8)], prune_at: usize, big_at: usize) -> String {
    let mut s = String::from("experiment e {\n");
    for (i, n) in levels.iter().enumerate() {
        let vals: Vec<String> = (1..=*n).map(|v| (v * 2).to_string()).collect();
        s += &format!("  factor f{i} = [{}]\n", vals.join(", "));
    }
    s += &format!("  set big = f0 > {}\n", big_at * 2);
    s += "  restart_on = [mode, transport, big]\n";
    s += &format!("  prune f0 == {} because \"random\"\n", prune_at * 2);
    let idt: Vec<String> = (0..levels.len()).map(|i| format!("{{f{i}}}")).collect();
    for (li, (unified, t)) in layers.iter().enumerate() {
        let mode = if *unified {
            "unified".to_string()
        } else {
            format!("disaggregated, transport = {}", ["efa", "srd", "tcp"][*t as usize % 3])
        };
        s += &format!("  layer \"L{li}\" {{ mode = {mode}, id = \"l{li}-{}\" }}\n", idt.join("-"));
    }
    s + "}\n"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn launches_equal_distinct_restart_keys_and_edges_are_respected(
        levels in proptest::collection::vec(1usize..5, 1..4),
        layers in proptest::collection::vec((any::<bool>(), 0u8..3), 1..4),
        prune_at in 0usize..6,
        big_at in 0usize..5,
    ) {
        let text = experiment_text(&levels, &layers, prune_at, big_at);
        let loaded = nixl::pipeline::load_text("random.nixl", &text, &NoFiles);
        let errors: Vec<_> = loaded.check.diagnostics.iter().filter(|d| d.is_error()).collect();
        if errors.iter().any(|d| d.code == nixl::diagnostics::Code::EmptyDesign) {
            return Ok(());
        }
        prop_assert!(errors.is_empty(), "{text}\n{errors:?}");
        let d = loaded.design(None).unwrap();
        let plan = crate::support::plan_of(&loaded, None, &nixl::state::State::new());
        let mut keys: Vec<u32> = d.scheduled().filter_map(|p| p.group).collect();
        keys.sort_unstable();
        keys.dedup();
        prop_assert_eq!(plan.summary.launches, keys.len());
        let position: std::collections::HashMap<&nixl::address::ActionId, usize> = plan.actions.iter().enumerate().map(|(i, a)| (&a.id, i)).collect();
        for (i, a) in plan.actions.iter().enumerate() {
            for &dep in &a.deps {
                prop_assert!(dep < i, "{} runs before its dependency {}", a.id, plan.actions[dep].id);
            }
            prop_assert_eq!(position[&a.id], i);
        }
        // Every pattern runs inside its own group's launch, numbered as its start and stop.
        let mut current: (Option<u32>, Option<u32>, Option<u32>) = (None, None, None);
        for a in &plan.actions {
            match a.kind {
                nixl::plan::Kind::ServerStart => current = (a.group, a.launch, a.id.launch()),
                nixl::plan::Kind::Pattern => {
                    prop_assert_eq!((a.group, a.launch), (current.0, current.1));
                    prop_assert_eq!(a.launch, current.2);
                }
                nixl::plan::Kind::ServerStop => current = (None, None, None),
                _ => {}
            }
        }
    }
}

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
                let out = std::process::Command::new("bash").args(["-n", "-c", &s.body]).output().unwrap();
                prop_assert!(out.status.success(), "{}", s.body);
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
            env: [("VALUE".to_string(), value.clone())].into(),
            provides: vec![],
            span: Default::default(),
        };
        let script = nixl::design::render::setup_script(&step);
        let dir = crate::support::scratch("inject");
        let out = std::process::Command::new("bash").arg("-c").arg(&script).current_dir(&dir).output().unwrap();
        prop_assert!(out.status.success(), "{}\n{}", script, String::from_utf8_lossy(&out.stderr));
        prop_assert!(!dir.join("PWNED").exists(), "{}", script);
        prop_assert_eq!(std::fs::read_to_string(dir.join("value.txt")).unwrap(), value);
    }
}
