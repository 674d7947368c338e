//! Language-server latency: re-check after a one-line edit of a generated
//! 5,000-line file, as `nixl lsp` does on each change (apply the incremental edit,
//! run the pipeline with the chunk parse cache, convert the diagnostics).
//! Target: under 20 ms. For comparison, the same with the whole file parsed.
//! Run with `cargo bench --bench lsp`.

use criterion::{criterion_group, criterion_main, Criterion};
use lsp_types::{Position, Range, TextDocumentContentChangeEvent, Url};
use nixl::lsp::analysis::Analysis;
use nixl::lsp::docs::{apply_change, BufferLoader, Documents};
use nixl::lsp::reparse::ParseCache;

/// About `lines` lines: the standard library, setups with steps, and an experiment with layers.
fn file(lines: usize) -> String {
    let mut s = String::from("import \"std/aws\"\nimport \"std/models\"\nimport \"std/vllm\"\n\n");
    let mut i = 0;
    while s.lines().count() + 40 < lines {
        s += &format!("setup s{i} {{\n  let version = \"0.{i}\"\n");
        for j in 0..8 {
            s += &format!("  step \"{j:02}-install\" {{\n    name    = \"install {j}\"\n    run     = \"pip install pkg{j}=={{version}}\"\n    skip_if = \"python3 -c 'import pkg{j}'\"\n    timeout = 10min\n  }}\n");
        }
        s += "}\n";
        i += 1;
    }
    s += "stack \"bench\" {\n  region        = \"us-east-1\"\n  zones         = [\"us-east-1a\", \"us-east-1b\"]\n  instance_type = \"g6e.12xlarge\"\n  node \"node1\" {}\n  node \"node2\" {}\n}\n\n";
    s += "experiment bench {\n  prefix = \"b\"\n  model  = qwen2_5_32b\n  server = vllm { tp = 4 }\n  bench  = vllm_bench { iterations = 20 }\n";
    s += "  factor prompt      = [1K, 4K, 12K, 32K]\n  factor concurrency = [1, 4, 8, 16]\n  restart_on = [mode, transport]\n  duration   = 5min\n  startup    = 8min\n";
    s += "  layer \"unified\" {\n    mode = unified\n    id   = \"{prefix}-u-{prompt}-c{concurrency}\"\n  }\n";
    s += "  layer \"efa\" {\n    mode      = disaggregated\n    transport = efa\n    id        = \"{prefix}-e-{prompt}-c{concurrency}\"\n  }\n}\n";
    s
}

fn bench(c: &mut Criterion) {
    let text = file(5_000);
    let n = text.lines().count();
    assert!((4_900..=5_100).contains(&n), "{n} lines");
    let uri = Url::parse("file:///bench/big.nixl").unwrap();
    let mut docs = Documents::default();
    let cache = ParseCache::default();
    docs.open(uri.clone(), text.clone(), 1);
    let a = Analysis::run(&uri, &text, 1, &BufferLoader { docs: &docs, cache: &cache });
    assert!(a.diagnostics().is_empty(), "{:?}", a.diagnostics());
    assert_eq!(a.loaded.campaigns[0].design.patterns.len(), 32);

    // The edit: one `timeout` in the middle of the file, 10min <-> 11min.
    let timeouts: Vec<usize> = text.lines().enumerate().filter(|(_, l)| l.contains("timeout = 10min")).map(|(i, _)| i).collect();
    let line = timeouts[timeouts.len() / 2];
    let col = text.lines().nth(line).unwrap().find("10min").unwrap() as u32;
    let mut version = 1;
    c.bench_function("lsp re-check after a one-line edit, 5000 lines", |b| {
        b.iter(|| {
            version += 1;
            let new = if version % 2 == 0 { "11" } else { "10" };
            let mut t = docs.get(&uri).unwrap().text.clone();
            apply_change(
                &mut t,
                TextDocumentContentChangeEvent {
                    range: Some(Range::new(Position::new(line as u32, col), Position::new(line as u32, col + 2))),
                    range_length: None,
                    text: new.into(),
                },
            );
            docs.open(uri.clone(), t, version);
            let text = &docs.get(&uri).unwrap().text;
            let a = Analysis::run(&uri, text, version, &BufferLoader { docs: &docs, cache: &cache });
            assert!(a.diagnostics().is_empty());
        })
    });
}

fn cold(c: &mut Criterion) {
    let text = file(5_000);
    let uri = Url::parse("file:///bench/big.nixl").unwrap();
    let mut docs = Documents::default();
    docs.open(uri.clone(), text.clone(), 1);
    c.bench_function("lsp re-check without the parse cache, 5000 lines", |b| {
        b.iter(|| {
            let cache = ParseCache::default();
            let a = Analysis::run(&uri, &text, 1, &BufferLoader { docs: &docs, cache: &cache });
            assert!(a.diagnostics().is_empty());
        })
    });
}

criterion_group!(benches, bench, cold);
criterion_main!(benches);
