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

/// The parser's fast path (`syntax/fast/`) and pest give the same tree and the same
/// diagnostics: the fast path either builds pest's tree or leaves the text to pest.
fn both_parsers_agree(text: &str) -> Result<(), TestCaseError> {
    let (fast, fast_diags) = nixl::syntax::parse(0, text);
    let (pest, pest_diags) = nixl::syntax::parser::parse_with_pest(0, text);
    let json = |f: &nixl::syntax::ast::File| serde_json::to_string(f).expect("trees serialize");
    prop_assert_eq!(json(&fast), json(&pest), "trees differ for {:?}", text);
    prop_assert_eq!(format!("{fast_diags:?}"), format!("{pest_diags:?}"), "diagnostics differ for {:?}", text);
    Ok(())
}

/// Whitespace, comments, newlines and separators put anywhere in an example: text that is
/// often still well-formed, and otherwise fails right where a token was split.
fn sprinkle(which: usize, cuts: &[(usize, usize)]) -> String {
    const BITS: &[&str] = &[" ", "\t", " # note ", "\n", "\r\n", ",", ";", "\u{FEFF}", "  ", "_", "(", ")", "-"];
    let all = examples();
    let mut text = all[which % all.len()].clone();
    for &(at, bit) in cuts {
        let at = nixl::diagnostics::floor_char_boundary(&text, at % (text.len() + 1));
        text.insert_str(at, BITS[bit % BITS.len()]);
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn the_fast_parser_agrees_with_pest_on_examples_with_whitespace_sprinkled(which in 0usize..64, cuts in proptest::collection::vec((0usize..100_000, 0usize..64), 0..4)) {
        both_parsers_agree(&sprinkle(which, &cuts))?;
    }

    #[test]
    fn the_fast_parser_agrees_with_pest_on_grammar_fragments(parts in proptest::collection::vec(prop_oneof![
        Just("{"), Just("}"), Just("["), Just("]"), Just("("), Just(")"), Just("\""), Just("'"), Just("'''"), Just("\n"),
        Just("="), Just("=="), Just("?"), Just(":"), Just(","), Just("experiment e "), Just("layer \"L\" "), Just("factor p = "),
        Just("prune "), Just(" because \"r\""), Just("1K"), Just("10s"), Just("200GB"), Just("$3"), Just("x"), Just("{x}"), Just("# c"),
        Just("let "), Just("set "), Just("when "), Just(" then run "), Just("not "), Just(" and "), Just("-"), Just("\\"),
        Just(" a = 1"), Just("b.c"), Just("f(k = 1, 2)"), Just(" in "), Just("1.5e3"), Just(" ^ "), Just("none"), Just("\"{1}\""),
    ], 0..40)) {
        both_parsers_agree(&parts.concat())?;
    }
}

/// Random expressions of the whole grammar, with whitespace, comments and newlines where the
/// grammar takes them (and sometimes where it does not): the fast parser's spans and trees are
/// compared with pest's on text that is mostly well-formed.
fn expression() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("1"),
        Just("2.5"),
        Just("1e3"),
        Just("1_000"),
        Just("10GiB"),
        Just("3min"),
        Just("4Gbps"),
        Just("$4"),
        Just("x"),
        Just("a_b"),
        Just("none"),
        Just("true"),
        Just("false"),
        Just("nonex"),
        Just("inner"),
        Just("\"s\""),
        Just("\"a{x}b\""),
        Just("\"\\n\\{\\\"\""),
        Just("'raw'"),
        Just("'''l\nm'''"),
        Just("\"{a ? 1 : 2} \""),
        Just("-1"),
    ]
    .prop_map(str::to_string);
    let sp = || prop_oneof![Just(""), Just(" "), Just("\t"), Just("  # c")];
    let nsp = || prop_oneof![Just(""), Just(" "), Just("\n  "), Just(" # c\n"), Just("\r\n")];
    let op = prop_oneof![
        Just("or"),
        Just("and"),
        Just("=="),
        Just("!="),
        Just("<="),
        Just(">="),
        Just("<"),
        Just(">"),
        Just("in"),
        Just("+"),
        Just("-"),
        Just("*"),
        Just("/"),
        Just("%"),
        Just("^"),
    ];
    leaf.prop_recursive(4, 48, 3, move |e| {
        prop_oneof![
            (e.clone(), op.clone(), e.clone(), sp(), nsp()).prop_map(|(a, o, b, s, n)| format!("{a} {o}{s}{n}{b}")),
            (e.clone(), prop_oneof![Just("not "), Just("-"), Just("- ")]).prop_map(|(a, u)| format!("{u}{a}")),
            (e.clone(), nsp(), nsp()).prop_map(|(a, n, m)| format!("({n}{a}{m})")),
            (e.clone(), e.clone(), nsp(), any::<bool>())
                .prop_map(|(a, b, n, t)| format!("({a},{n}{b}{})", if t { "," } else { "" })),
            (e.clone(), e.clone(), nsp(), nsp()).prop_map(|(a, b, n, m)| format!("[{n}{a},{m}{b}{n}]")),
            (e.clone(), nsp(), any::<bool>()).prop_map(|(a, n, t)| format!("{{{n}k = {a}{}{n}}}", if t { "," } else { "" })),
            (e.clone(), e.clone(), e.clone(), nsp()).prop_map(|(a, b, c, n)| format!("{a}({n}{b}, k = {c}{n})")),
            (e.clone(), sp()).prop_map(|(a, s)| format!("{a}{s}.field")),
            (e.clone(), e.clone(), sp()).prop_map(|(a, b, s)| format!("{a}{s}{{ k = {b} }}")),
            (e.clone(), e.clone(), e.clone(), nsp(), sp()).prop_map(|(a, b, c, n, s)| format!("{a} ?{n}{b}{s}{n}:{n}{c}")),
            e.clone().prop_map(|a| format!("\"t{{{a}}}u\"")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_fast_parser_agrees_with_pest_on_generated_statements(
        e in proptest::collection::vec(expression(), 5),
        trail in prop_oneof![Just(""), Just("  "), Just(" # t"), Just(","), Just(";")],
    ) {
        let text = format!(
            "let v = {}{trail}\nb \"L\" extends p {{\n  a = {}{trail}\n  factor f = {}\n  when {} then run x because \"r\"{trail}\n  prune {} because \"r\"\n  inner = 1, set s = 2\n}}\n",
            e[0], e[1], e[2], e[3], e[4]
        );
        both_parsers_agree(&text)?;
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
                nixl::plan::Kind::ServerStart => current = (a.group.get(), a.launch.get(), a.id.launch()),
                nixl::plan::Kind::Pattern => {
                    prop_assert_eq!((a.group.get(), a.launch.get()), (current.0, current.1));
                    prop_assert_eq!(a.launch.get(), current.2);
                }
                nixl::plan::Kind::ServerStop => current = (None, None, None),
                _ => {}
            }
        }
    }
}
