//! Language-server latency while typing: every iteration applies one new
//! single-character edit (the text is never the same twice, so the parse cache
//! only helps where `nixl lsp` would be helped too), then re-checks as the server
//! does on a change (pipeline with the piece cache, diagnostics converted).
//!
//! Two files of about 5,000 lines: many small blocks, and one block of 5,000
//! lines (a `setup` with 600 steps), typed into in the middle. Before the
//! criterion runs, 500 keystrokes in each are timed one by one and the p50 and
//! p90 printed: the target is p90 under 10 ms. For comparison, the same file
//! checked with a cold cache.
//! Run with `cargo bench --bench lsp`.

use criterion::{criterion_group, criterion_main, Criterion};
use lsp_types::{Position, Range, TextDocumentContentChangeEvent, Url};
use nixl::lsp::analysis::Analysis;
use nixl::lsp::docs::{apply_change, BufferLoader, Documents};
use nixl::lsp::reparse::ParseCache;
use std::time::{Duration, Instant};

const HEAD: &str = "import \"std/aws\"\nimport \"std/models\"\nimport \"std/vllm\"\n\n";

fn step(j: usize) -> String {
    format!(
        "  step \"{j:04}-install\" {{\n    name    = \"install {j}\"\n    run     = \"pip install pkg{j}=={{version}}\"\n    skip_if = \"python3 -c 'import pkg{j}'\"\n    timeout = 10min\n  }}\n"
    )
}

fn tail() -> String {
    let mut s = String::from("stack \"bench\" {\n  region        = \"us-east-1\"\n  zones         = [\"us-east-1a\", \"us-east-1b\"]\n  instance_type = \"g6e.12xlarge\"\n  node \"node1\" {}\n  node \"node2\" {}\n}\n\n");
    s += "experiment bench {\n  prefix = \"b\"\n  model  = qwen2_5_32b\n  server = vllm { tp = 4 }\n  bench  = vllm_bench { iterations = 20 }\n";
    s += "  factor prompt      = [1K, 4K, 12K, 32K]\n  factor concurrency = [1, 4, 8, 16]\n  restart_on = [mode, transport]\n  duration   = 5min\n  startup    = 8min\n";
    s += "  layer \"unified\" {\n    mode = unified\n    id   = \"{prefix}-u-{prompt}-c{concurrency}\"\n  }\n";
    s += "  layer \"efa\" {\n    mode      = disaggregated\n    transport = efa\n    id        = \"{prefix}-e-{prompt}-c{concurrency}\"\n  }\n}\n";
    s
}

/// About `lines` lines in setups of 8 steps each.
fn many_blocks(lines: usize) -> String {
    let mut s = String::from(HEAD);
    let mut i = 0;
    while s.lines().count() + 40 < lines {
        s += &format!("setup s{i} {{\n  let version = \"0.{i}\"\n");
        for j in 0..8 {
            s += &step(j);
        }
        s += "}\n";
        i += 1;
    }
    s + &tail()
}

/// About `lines` lines, nearly all in one `setup` block.
fn one_block(lines: usize) -> String {
    let mut s = String::from(HEAD);
    s += "setup big {\n  let version = \"0.1\"\n";
    let mut j = 0;
    while s.lines().count() + 40 < lines {
        s += &step(j);
        j += 1;
    }
    s += "}\n";
    s + &tail()
}

/// A document being typed into: each `key` inserts one character inside the
/// `name` string of the middle step, so every re-check sees a new text.
struct Typist {
    uri: Url,
    docs: Documents,
    cache: ParseCache,
    version: i32,
    line: u32,
    col: u32,
}

impl Typist {
    fn new(text: String) -> Typist {
        let uri = Url::parse("file:///bench/big.nixl").unwrap();
        let n = text.lines().count();
        assert!((4_900..=5_100).contains(&n), "{n} lines");
        let names: Vec<usize> =
            text.lines().enumerate().filter(|(_, l)| l.contains("name    = \"install")).map(|(i, _)| i).collect();
        let line = names[names.len() / 2];
        let col = text.lines().nth(line).unwrap().rfind('"').unwrap() as u32;
        let mut docs = Documents::default();
        docs.open(uri.clone(), text.clone(), 1);
        let t = Typist { uri, docs, cache: ParseCache::default(), version: 1, line: line as u32, col };
        let a = t.check();
        assert!(a.diagnostics().is_empty(), "{:?}", a.diagnostics());
        assert_eq!(a.loaded.campaigns[0].design.patterns.len(), 32);
        t
    }

    fn check(&self) -> Analysis {
        let text = &self.docs.get(&self.uri).unwrap().text;
        Analysis::run(&self.uri, text, self.version, &BufferLoader { docs: &self.docs, cache: &self.cache })
    }

    /// One keystroke and the re-check after it.
    fn key(&mut self) {
        self.version += 1;
        let c = (b'a' + (self.version % 26) as u8) as char;
        let at = Position::new(self.line, self.col);
        let mut t = self.docs.get(&self.uri).unwrap().text.clone();
        apply_change(
            &mut t,
            TextDocumentContentChangeEvent { range: Some(Range::new(at, at)), range_length: None, text: c.into() },
        );
        self.col += 1;
        self.docs.open(self.uri.clone(), t, self.version);
        let a = self.check();
        assert!(a.diagnostics().is_empty());
    }
}

/// Times `n` keystrokes one by one and prints the p50 and p90.
fn percentiles(name: &str, text: String, n: usize) {
    let mut t = Typist::new(text);
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let start = Instant::now();
            t.key();
            start.elapsed()
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: {n} keystrokes, p50 {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        ms(times[n / 2]),
        ms(times[n * 9 / 10]),
        ms(times[n - 1])
    );
}

fn typing(c: &mut Criterion) {
    percentiles("typing in a 5,000-line block", one_block(5_000), 500);
    percentiles("typing in a 5,000-line file of small blocks", many_blocks(5_000), 500);
    let mut t = Typist::new(one_block(5_000));
    c.bench_function("lsp keystroke + re-check, one 5000-line block", |b| b.iter(|| t.key()));
    let mut t = Typist::new(many_blocks(5_000));
    c.bench_function("lsp keystroke + re-check, 5000 lines of small blocks", |b| b.iter(|| t.key()));
}

fn cold(c: &mut Criterion) {
    let text = one_block(5_000);
    let uri = Url::parse("file:///bench/big.nixl").unwrap();
    let mut docs = Documents::default();
    docs.open(uri.clone(), text.clone(), 1);
    c.bench_function("lsp re-check without the parse cache, one 5000-line block", |b| {
        b.iter(|| {
            let cache = ParseCache::default();
            let a = Analysis::run(&uri, &text, 1, &BufferLoader { docs: &docs, cache: &cache });
            assert!(a.diagnostics().is_empty());
        })
    });
}

criterion_group!(benches, typing, cold);
criterion_main!(benches);
