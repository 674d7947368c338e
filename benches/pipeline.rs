//! Benchmarks of the pipeline at scale: parse and check a 10,000-line file,
//! expand a million-point experiment, plan 100,000 patterns in 1,000 groups,
//! choose D- and I-optimal designs among a few thousand candidates.
//! Run with `cargo bench --bench pipeline`; figures go in the issue notes.

use criterion::{criterion_group, criterion_main, Criterion};
use nixl::check::imports::Loader;
use std::path::Path;
use std::time::Duration;

struct NoFiles;
impl Loader for NoFiles {
    fn read(&self, _: &Path) -> std::io::Result<Vec<u8>> {
        Err(std::io::Error::new(std::io::ErrorKind::NotFound, "none"))
    }
}

/// About `lines` lines: setups with steps, tools, and an experiment with layers.
pub fn big_file(lines: usize) -> String {
    let mut s = String::from("# generated\nlet tp = 4\n");
    let mut n = 2;
    let mut i = 0;
    while n < lines {
        s += &format!("setup s{i} {{\n  let version = \"0.{i}\"\n");
        n += 2;
        for j in 0..8 {
            s += &format!("  step \"{j:02}-install\" {{\n    name    = \"install {j}\"\n    run     = \"pip install pkg{j}=={{version}}\"\n    skip_if = \"python3 -c 'import pkg{j}'\"\n    timeout = 10min\n  }}\n");
            n += 6;
        }
        s += "}\n";
        n += 1;
        i += 1;
    }
    s
}

/// An experiment with 6 factors of `levels` levels each: levels^6 candidate points.
pub fn grid(levels: usize, prune: bool) -> String {
    let mut s = String::from("experiment big {\n");
    for f in 0..6 {
        let vals: Vec<String> = (1..=levels).map(|v| v.to_string()).collect();
        s += &format!("  factor f{f} = [{}]\n", vals.join(", "));
    }
    if prune {
        s += "  prune f0 == 1 and f1 > 2 because \"bench\"\n";
    }
    s += "  restart_on = [mode, f0]\n";
    s += "  layer \"L\" { mode = unified, id = \"b-{f0}-{f1}-{f2}-{f3}-{f4}-{f5}\" }\n}\n";
    s
}

/// A layer of 8 x 8 x 8 x 6 = 3072 candidates whose points `design` chooses.
pub fn optimal_layer(design: &str) -> String {
    let levels = |n: usize| (0..n).map(|i| (1usize << i).to_string()).collect::<Vec<_>>().join(", ");
    format!(
        "experiment opt {{\n  factor f0 = [{}]\n  factor f1 = [{}]\n  factor f2 = [{}]\n  factor f3 = [{}]\n  \
         layer \"L\" {{ mode = unified, id = \"o-{{f0}}-{{f1}}-{{f2}}-{{f3}}\", design = {design} }}\n}}\n",
        levels(8),
        levels(8),
        levels(8),
        levels(6)
    )
}

fn bench(c: &mut Criterion) {
    let text = big_file(10_000);
    c.bench_function("parse+check 10k lines", |b| {
        b.iter(|| {
            let out = nixl::check::check_text("big.nixl", &text, &NoFiles);
            assert!(!out.has_errors());
        })
    });
    let mut g = c.benchmark_group("expand");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for (levels, label) in [(5usize, "15625"), (7, "117649"), (10, "1000000")] {
        let src = grid(levels, true);
        let out = nixl::check::check_text("grid.nixl", &src, &NoFiles);
        assert!(!out.has_errors());
        g.bench_function(format!("expand+prune+report {label} points"), |b| {
            b.iter(|| {
                let (c, diags) = nixl::design::campaign::resolve(&out.model, "big");
                assert!(diags.iter().all(|d| !d.is_error()));
                let c = c.unwrap();
                std::hint::black_box(nixl::design::tables::pattern_table(&c.design).len());
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("optimal design");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    for (design, label) in [
        ("d_optimal(quadratic(log(f0), log(f1), log(f2), log(f3)), runs = 30)", "D quadratic 4 factors 30 runs"),
        ("d_optimal(quadratic(log(f0), log(f1), log(f2), log(f3)), runs = 15)", "D quadratic 4 factors 15 runs"),
        ("i_optimal(quadratic(log(f0), log(f1), log(f2), log(f3)), runs = 30)", "I quadratic 4 factors 30 runs"),
    ] {
        let src = optimal_layer(design);
        let out = nixl::check::check_text("optimal.nixl", &src, &NoFiles);
        assert!(!out.has_errors());
        g.bench_function(format!("{label} of 3072 candidates"), |b| {
            b.iter(|| {
                let (c, diags) = nixl::design::campaign::resolve(&out.model, "opt");
                assert!(diags.iter().all(|d| !d.is_error()));
                std::hint::black_box(c.unwrap().design.patterns.len());
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("plan");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    // 100,000 patterns: f0 has 1,000 levels (the restart key), f1 100.
    let vals0: Vec<String> = (1..=1000).map(|v| v.to_string()).collect();
    let vals1: Vec<String> = (1..=100).map(|v| v.to_string()).collect();
    let src = format!(
        "experiment big {{\n  factor f0 = [{}]\n  factor f1 = [{}]\n  restart_on = [mode, f0]\n  layer \"L\" {{ mode = unified, id = \"b-{{f0}}-{{f1}}\" }}\n}}\n",
        vals0.join(", "),
        vals1.join(", ")
    );
    let out = nixl::check::check_text("plan.nixl", &src, &NoFiles);
    let (c, _) = nixl::design::campaign::resolve(&out.model, "big");
    let c = c.unwrap();
    assert_eq!(c.design.patterns.len(), 100_000);
    let state = nixl::state::State::new();
    g.bench_function("plan 100k patterns in 1000 groups", |b| {
        b.iter(|| {
            let inputs = nixl::plan::Inputs {
                model: &out.model,
                campaign: &c,
                state: &state,
                source_hash: "",
                stack_changes: &nixl::provider::aws::template::changes,
                targets: &[],
                replace: &[],
            };
            let p = nixl::plan::build(&inputs).unwrap();
            assert_eq!(p.summary.launches, 1000);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
