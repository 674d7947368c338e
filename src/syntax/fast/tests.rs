//! The fast parser against pest, on the repository's own files and on chosen snippets.

use std::path::Path;

/// Every `.nixl` file under `dir`, recursively.
fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "nixl") {
            out.push(p);
        }
    }
}

/// The fast path's tree, when it takes the text, is pest's tree node for node.
fn agrees_with_pest(text: &str) -> Option<bool> {
    let fast = super::parse(3, text)?;
    let (pest, diags) = crate::syntax::parser::parse_with_pest(3, text);
    let json = |items: &Vec<crate::syntax::ast::Stmt>| serde_json::to_string(items).expect("trees serialize");
    Some(diags.is_empty() && json(&fast) == json(&pest.items))
}

#[test]
fn every_example_stdlib_and_golden_file_parses_as_pest_parses_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = vec![];
    for dir in ["examples", "stdlib", "tests"] {
        files(&root.join(dir), &mut all);
    }
    assert!(all.len() > 100, "the corpus was found ({} files)", all.len());
    let mut taken = 0;
    for path in &all {
        // Some invalid inputs are not UTF-8 on purpose; the loader reports those.
        let Ok(text) = std::fs::read_to_string(path) else { continue };
        if !crate::syntax::scan::scan(3, &text).diags.is_empty() {
            continue;
        }
        let must = path.starts_with(root.join("examples")) || path.starts_with(root.join("stdlib"));
        match agrees_with_pest(&text) {
            Some(same) => {
                assert!(same, "{}: the fast path's tree differs from pest's", path.display());
                taken += 1;
            }
            None => assert!(!must, "{}: the fast path gave up on a well-formed example", path.display()),
        }
    }
    assert!(taken > 50, "the fast path took {taken} files");
}

#[test]
fn whitespace_comments_and_every_kind_of_node_match_pest() {
    let cases = [
        "let a = 1   # trailing\nlet b = x ? 1 : 2  # c\n",
        "e \"n\" extends p in \"L\" {\n  factor f = [1K, 2M, 3GiB, 4Gbps, 5min, 6us, 1.5e3, 1_000]\n  x = -a.b (1, k = 2) { y = not z }\n}\n",
        "b {\n  when a == 1 and b != 2 or c in [1] then run x because \"why\"\n  prune p >= 3 % 2 ^ 4 because \"r\"\n  set s = (1, 2,)\n  w = when_x\n}\n",
        "b { s = \"a\\n{x}\\{ \\\" {y ? 1 : 2} z\", r = 'raw', l = '''long\n'''; m = $3.5 }\n",
        "b { t = (a), u = (a,), v = [\n 1,\n 2,\n], rec = {\n a = 1,\n}\n}\n",
        "\u{FEFF}let a = none\nlet b = true\nlet c = false\r\nlet d = nonex\rlet e = f()\n",
        "b {\n  q = a -\n  b\n  r = c ?\n d :\n e\n}\n",
    ];
    for text in cases {
        assert_eq!(agrees_with_pest(text), Some(true), "{text:?}");
    }
}

#[test]
fn what_pest_reports_is_left_to_pest() {
    let cases = [
        "let a = \"\\q\"\n",
        "import \"x{y}.nixl\"\n",
        "let a = 1e400\n",
        "b { = }\n",
        "a = 1\n",
        "let a = 5Ki\n",
        "b { x = 1 2 }\n",
    ];
    for text in cases {
        assert_eq!(super::parse(3, text).map(|_| ()), None, "{text:?}");
    }
}
