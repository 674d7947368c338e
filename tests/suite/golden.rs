//! Invalid inputs under tests/golden/invalid, each with its expected diagnostics beside it.

use crate::support::{diagnose, golden, root};
use nixl::diagnostics::Code;

fn inputs() -> Vec<String> {
    let dir = root().join("tests/golden/invalid");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/golden/invalid")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".nixl"))
        .map(|n| format!("tests/golden/invalid/{n}"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_invalid_input_matches_its_golden_diagnostics() {
    let files = inputs();
    assert!(files.len() >= 40, "only {} invalid inputs", files.len());
    let mut failures = vec![];
    for f in &files {
        let out = diagnose(f);
        let expected = root().join(f.replace(".nixl", ".out"));
        if let Err(e) = std::panic::catch_unwind(|| golden(&expected, &out)) {
            failures.push(e.downcast_ref::<String>().cloned().unwrap_or_default());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_invalid_input_reports_the_code_its_name_promises() {
    for f in inputs() {
        let name = f.rsplit('/').next().unwrap();
        let code = name.split('_').next().unwrap().to_uppercase();
        let out = diagnose(&f);
        assert!(out.contains(&format!("nixl::{code}")), "{f} does not report {code}:\n{out}");
    }
}

#[test]
fn the_goldens_cover_every_diagnostic_code() {
    let all: String = inputs().iter().map(|f| diagnose(f)).collect();
    for code in Code::ALL {
        assert!(all.contains(&code.to_string()), "no invalid input reports {code}");
    }
}

#[test]
fn errors_exit_one_and_warnings_do_not() {
    for f in inputs() {
        let out = diagnose(&f);
        let has_error = out.contains(": error[");
        assert_eq!(out.ends_with("exit: 1\n"), has_error, "{f}");
    }
}

#[test]
fn fmt_is_idempotent_on_every_test_input_that_parses() {
    let mut files = inputs();
    for dir in ["examples", "stdlib", "tests/golden/invalid/lib"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "nixl") {
                files.push(e.path().to_string_lossy().to_string());
            }
        }
    }
    let mut checked = 0;
    for f in files {
        let Ok(text) = std::fs::read_to_string(root().join(&f)) else { continue };
        let (tree, diags) = nixl::syntax::parse(0, &text);
        if !diags.is_empty() {
            continue;
        }
        let once = nixl::syntax::fmt::format(&tree, &text);
        let (tree2, diags2) = nixl::syntax::parse(0, &once);
        assert!(diags2.is_empty(), "{f}: formatted output does not parse:\n{once}");
        let twice = nixl::syntax::fmt::format(&tree2, &once);
        assert_eq!(once, twice, "{f}: fmt is not idempotent");
        assert_eq!(tree.comments.len(), tree2.comments.len(), "{f}: comments lost");
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} inputs parsed");
}

/// A factor with more levels than a 16-bit index holds: every pattern id distinct, no
/// false "produced twice" (a level index once wrapped at 65,536).
#[test]
fn golden_levels_beyond_65536_give_distinct_patterns() {
    let dir = crate::support::scratch("many-levels");
    let levels: Vec<String> = (1..=70_000).map(|i| i.to_string()).collect();
    // Imports stay inside the project: the library is copied beside the file.
    std::fs::copy(root().join("tests/golden/invalid/lib/base.nixl"), dir.join("base.nixl")).unwrap();
    let text = format!(
        "import \"./base.nixl\"\nexperiment e {{\n  factor prompt = [{}]\n  layer \"L1\" {{\n    mode = unified\n    id   = \"e-{{prompt}}\"\n  }}\n}}\n",
        levels.join(", ")
    );
    let path = dir.join("levels.nixl");
    std::fs::write(&path, text).unwrap();
    let loaded = nixl::pipeline::load(&path);
    let errors: Vec<&str> = loaded.check.diagnostics.iter().filter(|d| d.is_error()).map(|d| d.message.as_str()).collect();
    assert!(errors.is_empty(), "{:?}", &errors[..errors.len().min(3)]);
    assert_eq!(loaded.campaigns[0].design.patterns.len(), 70_000);
    assert_eq!(loaded.campaigns[0].design.patterns[65_536].id.as_ref(), "e-65537");
}

/// The eight mistakes of a new user's first file, all in one run, each with its code and place.
#[test]
fn golden_eight_mistakes_are_reported_in_one_run() {
    let loaded = nixl::pipeline::load(&root().join("tests/golden/invalid/e0002_eight_mistakes_at_once.nixl"));
    let sources = &loaded.check.sources;
    let got: Vec<(String, usize)> = loaded
        .check
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| (d.code.to_string(), sources.line_col(d.primary.span.file, d.primary.span.start).0))
        .collect();
    let want: Vec<(String, usize)> = [
        (Code::ImportNotFound, 5),    // a missing import
        (Code::UnknownBlock, 7),      // a misspelt block kind
        (Code::Zone, 13),             // a zone of another region
        (Code::Unit, 15),             // a volume without its unit
        (Code::UnknownAttribute, 16), // an unknown attribute
        (Code::Delimiter, 21),        // a missing brace
        (Code::EmptyDesign, 29),      // a prune that removes everything
        (Code::UnknownReference, 33), // an undefined layer
    ]
    .into_iter()
    .map(|(c, l)| (c.to_string(), l))
    .collect();
    assert_eq!(got, want);
}
