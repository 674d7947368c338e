//! The formatter against hand-written and perturbed inputs: canonical, idempotent, comments kept.
use super::format;
use crate::syntax::parse;

fn parse_ok(src: &str) -> crate::syntax::ast::File {
    let (f, d) = parse(0, src);
    assert!(d.is_empty(), "diagnostics for:\n{src}\n{d:?}");
    f
}

/// The tree without spans, to compare before and after formatting.
fn shape(f: &crate::syntax::ast::File) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("span");
                m.remove("body_span");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(&f.items).expect("serialize");
    strip(&mut v);
    v
}

fn comment_texts(f: &crate::syntax::ast::File) -> Vec<String> {
    let mut v: Vec<String> = f.comments.iter().map(|c| c.text.trim_end().to_string()).collect();
    v.sort();
    v
}

/// Formats, and checks the output parses to the same tree with the same
/// comments and formats to itself.
fn check(src: &str) -> String {
    let f = parse_ok(src);
    let once = format(&f, src);
    let g = parse_ok(&once);
    assert_eq!(shape(&f), shape(&g), "tree changed:\n{once}");
    assert_eq!(comment_texts(&f), comment_texts(&g), "comments:\n{once}");
    let twice = format(&g, &once);
    assert_eq!(once, twice, "not idempotent:\n--- once\n{once}\n--- twice\n{twice}");
    assert!(once.is_empty() || (once.ends_with('\n') && !once.ends_with("\n\n")));
    once
}

const BRIEF: &str = r#"import "std/aws"
# a comment
let tp = 4
stack "s" {
  region = "us-east-1"   # trailing
  zones  = ["us-east-1a", "us-east-1b"]
  node "node1" { role = "producer" }
}
experiment phase2 extends phase1 {
  factor prompt = [1K, 4K, 12K]
  set max_model_len = prompt > 32K ? 131072 : 32768
  prune prompt == 4K and concurrency > 1 because "interpolated"
  layer "L2-EFA" {
    mode = disaggregated
    id   = "{prefix}-efa-{prompt}-c{concurrency}"
  }
  pattern "p2-x" in "L2-EFA" { prompt = 12K, concurrency = 1 }
  when mean(ttft, layer = "L2-EFA") > 1.3 * expected(ttft) then run adhoc(nixlbench)
  server = vllm { tp = 4, health_timeout = 600s }
}
"#;

#[test]
fn brief_sample_is_already_canonical() {
    assert_eq!(check(BRIEF), BRIEF.replace("\"   #", "\"  #"));
}

#[test]
fn spacing_and_alignment() {
    let src = "let   a=1\nlet bbb  =  [1,2 ,3]\n\n\n\nstack \"s\"{\nregion=\"x\"  # t\n\n\nzones=[ \"a\",\"b\" ]\nlong_name  = {a=1,b=2}\n  node \"n\" {role=\"p\",x=2}\n  y = 1\n}\n\n\n";
    let want = "let a   = 1\nlet bbb = [1, 2, 3]\n\nstack \"s\" {\n  region = \"x\"  # t\n\n  zones     = [\"a\", \"b\"]\n  long_name = { a = 1, b = 2 }\n  node \"n\" { role = \"p\", x = 2 }\n  y = 1\n}\n";
    assert_eq!(check(src), want);
}

#[test]
fn every_expression_form() {
    let src = r#"let a = not x and -y or (b + c) * d % 2 - e / f
let t = (1, 2)
let one = (1,)
let p = (a)
let r = {a=1,b="x"}
let e = {}
let l = []
let m = x.y.z
let c = f()
let c2 = f(a, k=v)
let w = base {f=v}
let w2 = base {}
let tern = a ? b : c ? d : e
let u = [1K, 200GB, 10min, 100Gbps, $10.5, 1_000, 1.5e3, 3KiB, 2ms, 4us, 1h]
let s = "a\"b\\c\{d\}\n\t{x + 1}-{f("q")}"
let r1 = 'raw {x} "q"'
let r2 = '''long
raw # not a comment
'''
let b = true, let n = none
let i = x in [1, 2]
let cmp = a == b != c <= d >= e < f > g
let neg = - -x
let nn = not not (a)
let kw = {factor = 4, in_ = yarn.factor}
"#;
    let out = check(src);
    assert!(out.contains("let r    = { a = 1, b = \"x\" }"), "{out}");
    assert!(out.contains("let one  = (1,)"), "{out}");
    assert!(out.contains("let w    = base { f = v }"), "{out}");
    assert!(out.contains("let c2   = f(a, k = v)"), "{out}");
    assert!(out.contains("let neg = --x\n"), "{out}");
    assert!(out.contains(r#""a\"b\\c\{d\}\n\t{x + 1}-{f("q")}""#), "{out}");
    assert!(out.contains("'''long\nraw # not a comment\n'''"), "{out}");
}

#[test]
fn blocks_and_statements() {
    let src = r#"experiment phase2 extends phase1 {
  factor prompt = [1K, 4K]
  factor c = [1, 2]
  set max_model_len = prompt > 32K ? 131072 : 32768
  set x = 1

  let a = 1
  set bb = 2
  prune prompt == 4K and c > 1 because "interp \{x\}"
  layer "L2-EFA" {
    mode = disaggregated
    id = "{prefix}-efa-{prompt}-c{c}"
  }
  pattern "p2-x" in "L2-EFA" {prompt = 12K, concurrency = 1}
  when mean(ttft, layer = "L2-EFA") > 1.3 * expected(ttft) then run adhoc(nixlbench)
  empty "e" {}
  empty2 "e" {

  }
  withc "c" {
    # only a comment
  }
  a b c "d" extends z in "L" { x = 1; y = 2 }
  deep {
    deeper {
      deepest = 1
    }
  }
}
"#;
    let out = check(src);
    assert!(out.contains("  factor prompt = [1K, 4K]\n  factor c      = [1, 2]\n"));
    assert!(out.contains("  set max_model_len = prompt > 32K ? 131072 : 32768\n  set x             = 1\n"));
    assert!(out.contains("  let a = 1\n  set bb = 2\n".replace("let a", "let a ").as_str()));
    assert!(out.contains("  empty2 \"e\" {}\n"));
    assert!(out.contains("  withc \"c\" {\n    # only a comment\n  }\n"));
    assert!(out.contains("  a b c \"d\" extends z in \"L\" { x = 1, y = 2 }\n"));
    assert!(out.contains("    deeper {\n      deepest = 1\n    }\n"));
    assert!(out.contains("prune prompt == 4K and c > 1 because \"interp \\{x\\}\""));
}

#[test]
fn comments_everywhere() {
    let src = r#"

# file header

# second paragraph
import "a"   # after import
let x = 1
stack "s" {  # header
  # before zones

  zones = [  # open
    # before first
    "a",   # after a
    "b"    # after b
    # dangling
  ]
  rec = {
    alpha = 1,  # one
    b = [1,
      2],
    # last
  }
  call = f(
    x,
    named = 2,  # t
  )
  v = a +  # inner
    b
  w = vllm {
    tp = 4,
    health_timeout = 600s
  }
  nested = [{
    a = 1
  }, {
    b = 2
  }]
  when mean(
    ttft,  # m
    layer = "x"
  ) > 1 then run adhoc(x)


  x = 1   # trailing x


  # end comment

}  # after block
# end of file one

# end of file two
"#;
    let out = check(src);
    assert!(out.starts_with("# file header\n\n# second paragraph\nimport \"a\"  # after import\n"));
    assert!(out.contains("stack \"s\" {  # header\n  # before zones\n\n  zones = [  # open\n    # before first\n    \"a\",  # after a\n    \"b\",  # after b\n    # dangling\n  ]\n"), "{out}");
    assert!(out.contains("  # inner\n  v = a + b\n"), "{out}");
    assert!(out.contains("  nested = [{\n    a = 1,\n  }, {\n    b = 2,\n  }]\n"), "{out}");
    assert!(out.contains("  w = vllm {\n    tp             = 4,\n    health_timeout = 600s,\n  }\n"), "{out}");
    assert!(out.contains("\n\n  x = 1  # trailing x\n\n  # end comment\n}  # after block\n"), "{out}");
    assert!(out.ends_with("# end of file one\n\n# end of file two\n"), "{out}");
}

#[test]
fn multiline_alignment_like_terraform() {
    let src = "step \"x\" {\n  name = \"n\"\n  # c\n  run = [\n    \"a\",\n  ]\n  timeout = 1min\n}\n";
    let want = "step \"x\" {\n  name = \"n\"\n  # c\n  run  = [\n    \"a\",\n  ]\n  timeout = 1min\n}\n";
    assert_eq!(check(src), want);
}

#[test]
fn empty_and_comment_only_files() {
    assert_eq!(check(""), "");
    assert_eq!(check("\n\n"), "");
    assert_eq!(check("# only\n\n\n# two   \n\n"), "# only\n\n# two\n");
    assert_eq!(check("let a = 1"), "let a = 1\n");
}

#[test]
fn errors_are_left_alone() {
    let src = "stack \"s\" {\n  region \"x\"\n}\n";
    let (f, d) = parse(0, src);
    assert!(!d.is_empty());
    assert_eq!(format(&f, src), src);
}

/// Random spaces, line breaks, blank lines and comments inserted into the
/// samples: every variant that still parses formats idempotently.
#[test]
fn perturbed_samples_are_idempotent() {
    let samples = [BRIEF, PERTURB];
    let inserts = [" ", "\n", "\n\n", " # c\n", "\n# own\n", ",", "\t"];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut checked = 0;
    for sample in samples {
        for _ in 0..400 {
            let mut src = sample.to_string();
            for _ in 0..1 + next(4) {
                let mut at = next(src.len() + 1);
                while !src.is_char_boundary(at) {
                    at -= 1;
                }
                src.insert_str(at, inserts[next(inserts.len())]);
            }
            let (_, d) = parse(0, &src);
            if d.is_empty() {
                check(&src);
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} variants parsed");
}

const PERTURB: &str = r#"let a = [1, 2, (3, 4), {x = 1, y = [5]}]
let b = f(a, k = v) + g() * -h.i
stack "s" extends t in "L" {
  z = base { p = 1, q = "s{a}t" }
  when x ? y : z then run adhoc(q)
  prune not a or b because "r"
  inner { k = '''raw''' }
}
"#;

#[test]
fn examples_and_stdlib_are_idempotent() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for dir in ["examples", "stdlib"] {
        let Ok(rd) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in rd.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("nixl") {
                continue;
            }
            let src = std::fs::read_to_string(&path).expect("read");
            let (_, d) = parse(0, &src);
            if !d.is_empty() {
                continue;
            }
            check(&src);
            seen += 1;
        }
    }
    eprintln!("formatted {seen} files");
}
