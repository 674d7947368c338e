//! Optimal designs against references computed here, by code independent of the
//! engine: exhaustive search where the candidate count allows, the best of many
//! random-start classic Fedorov exchanges (best pair swap per step) elsewhere.
//! Each case is a `.nixl` file planned through `nixl::pipeline::load`, the entry
//! point of `nixl check` and `nixl plan`; its D-efficiency against the reference
//! must be at least 0.99, and loading twice must give the same points.

use crate::support::scratch;
use nixl::design::Design;

/// A factor's levels: numbers (on a linear or log scale in the model) or names.
enum Levels {
    Num(Vec<f64>),
    Cat(Vec<&'static str>),
}

struct FactorSpec {
    name: &'static str,
    levels: Levels,
}

/// One factor of a term: (factor index, on a log scale, power).
type Part = (usize, bool, u32);

/// A prune as written in the file, and as a test on level indices.
type Prune = (&'static str, fn(&[usize]) -> bool);

struct Case {
    label: &'static str,
    factors: Vec<FactorSpec>,
    /// The design as written in the file.
    design: String,
    /// The same model, as the test's own list of terms (the intercept is implied).
    terms: Vec<Vec<Part>>,
    runs: usize,
    prune: Option<Prune>,
}

fn num(name: &'static str, levels: &[f64]) -> FactorSpec {
    FactorSpec { name, levels: Levels::Num(levels.to_vec()) }
}

fn linear(fs: &[(usize, bool)]) -> Vec<Vec<Part>> {
    fs.iter().map(|&(f, log)| vec![(f, log, 1)]).collect()
}

fn interaction(fs: &[(usize, bool)]) -> Vec<Vec<Part>> {
    let mut t = linear(fs);
    for (i, &(a, la)) in fs.iter().enumerate() {
        for &(b, lb) in &fs[i + 1..] {
            t.push(vec![(a, la, 1), (b, lb, 1)]);
        }
    }
    t
}

fn quadratic(fs: &[(usize, bool)]) -> Vec<Vec<Part>> {
    let mut t = interaction(fs);
    t.extend(fs.iter().map(|&(f, log)| vec![(f, log, 2)]));
    t
}

impl Case {
    fn source(&self) -> String {
        let mut s = String::from("experiment e {\n");
        for f in &self.factors {
            let levels: Vec<String> = match &f.levels {
                Levels::Num(v) => v.iter().map(|x| x.to_string()).collect(),
                Levels::Cat(v) => v.iter().map(|x| x.to_string()).collect(),
            };
            s += &format!("  factor {} = [{}]\n", f.name, levels.join(", "));
        }
        if let Some((cond, _)) = &self.prune {
            s += &format!("  prune {cond} because \"not worth running\"\n");
        }
        let id: Vec<String> = self.factors.iter().map(|f| format!("{{{}}}", f.name)).collect();
        s += &format!(
            "  layer \"L\" {{\n    mode   = unified\n    id     = \"e-{}\"\n    design = {}\n  }}\n}}\n",
            id.join("-"),
            self.design
        );
        s
    }

    /// The candidates left by the prune, as level indices, last factor fastest.
    fn candidates(&self) -> Vec<Vec<usize>> {
        let sizes: Vec<usize> = self.factors.iter().map(|f| self.level_count(f)).collect();
        let mut points = vec![vec![]];
        for n in sizes {
            points = points.into_iter().flat_map(|p: Vec<usize>| (0..n).map(move |l| [p.clone(), vec![l]].concat())).collect();
        }
        points.retain(|p| !self.prune.as_ref().is_some_and(|(_, pruned)| pruned(p)));
        points
    }

    fn level_count(&self, f: &FactorSpec) -> usize {
        match &f.levels {
            Levels::Num(v) => v.len(),
            Levels::Cat(v) => v.len(),
        }
    }

    /// The model-matrix row of a point: numbers scaled to [-1, 1] (after the log), names effect-coded.
    fn row(&self, point: &[usize]) -> Vec<f64> {
        let coded = |f: usize, log: bool| -> Vec<f64> {
            match &self.factors[f].levels {
                Levels::Num(v) => {
                    let t: Vec<f64> = v.iter().map(|x| if log { x.ln() } else { *x }).collect();
                    let lo = t.iter().cloned().fold(f64::INFINITY, f64::min);
                    let hi = t.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    vec![-1.0 + 2.0 * (t[point[f]] - lo) / (hi - lo)]
                }
                Levels::Cat(v) => {
                    let last = v.len() - 1;
                    (0..last).map(|c| if point[f] == last { -1.0 } else { f64::from(u8::from(c == point[f])) }).collect()
                }
            }
        };
        let mut row = vec![1.0];
        for term in &self.terms {
            let mut cols = vec![1.0];
            for &(f, log, power) in term {
                let c = coded(f, log);
                cols = cols.iter().flat_map(|a| c.iter().map(move |b| a * b.powi(power as i32))).collect();
            }
            row.extend(cols);
        }
        row
    }
}

/// log |det(X'X)| by Gaussian elimination with partial pivoting; -inf when singular.
fn log_det(rows: &[&Vec<f64>]) -> f64 {
    let p = rows[0].len();
    let mut m = vec![vec![0.0; p]; p];
    for r in rows {
        for i in 0..p {
            for j in 0..p {
                m[i][j] += r[i] * r[j];
            }
        }
    }
    let mut sum = 0.0;
    for col in 0..p {
        let piv = (col..p).max_by(|a, b| m[*a][col].abs().total_cmp(&m[*b][col].abs())).unwrap();
        if m[piv][col].abs() < 1e-9 {
            return f64::NEG_INFINITY;
        }
        m.swap(col, piv);
        sum += m[col][col].abs().ln();
        let pivot_row = m[col].clone();
        for row in m.iter_mut().skip(col + 1) {
            let f = row[col] / pivot_row[col];
            row.iter_mut().zip(&pivot_row).skip(col).for_each(|(v, q)| *v -= f * q);
        }
    }
    sum
}

/// The inverse by Gauss-Jordan elimination.
fn inverse(m: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let p = m.len();
    let mut a: Vec<Vec<f64>> =
        m.iter().enumerate().map(|(i, r)| [r.clone(), (0..p).map(|j| f64::from(u8::from(i == j))).collect()].concat()).collect();
    for col in 0..p {
        let piv = (col..p).max_by(|x, y| a[*x][col].abs().total_cmp(&a[*y][col].abs())).unwrap();
        a.swap(col, piv);
        let d = a[col][col];
        a[col].iter_mut().for_each(|v| *v /= d);
        for r in 0..p {
            if r != col {
                let f = a[r][col];
                let pivot_row = a[col].clone();
                a[r].iter_mut().zip(&pivot_row).for_each(|(v, q)| *v -= f * q);
            }
        }
    }
    a.into_iter().map(|r| r[p..].to_vec()).collect()
}

/// The best log det over every `runs`-subset of the candidates.
fn exhaustive(x: &[Vec<f64>], runs: usize) -> f64 {
    let n = x.len();
    let mut idx: Vec<usize> = (0..runs).collect();
    let mut best = f64::NEG_INFINITY;
    loop {
        let rows: Vec<&Vec<f64>> = idx.iter().map(|&i| &x[i]).collect();
        best = best.max(log_det(&rows));
        // Next combination in lexicographic order.
        let Some(k) = (0..runs).rev().find(|&k| idx[k] < n - runs + k) else { break };
        idx[k] += 1;
        for j in k + 1..runs {
            idx[j] = idx[j - 1] + 1;
        }
    }
    best
}

fn binomial(n: usize, k: usize) -> f64 {
    (0..k).map(|i| (n - i) as f64 / (i + 1) as f64).product()
}

/// The best log det of `starts` classic Fedorov exchanges from random nonsingular subsets:
/// each step makes the single swap (design point, candidate) with the largest det ratio.
fn many_start_fedorov(x: &[Vec<f64>], runs: usize, starts: usize) -> f64 {
    let n = x.len();
    let p = x[0].len();
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |m: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % m as u64) as usize
    };
    let mut best = f64::NEG_INFINITY;
    for _ in 0..starts {
        let mut design: Vec<usize> = vec![];
        for _attempt in 0..1000 {
            let mut pool: Vec<usize> = (0..n).collect();
            design = (0..runs).map(|_| pool.swap_remove(next(pool.len()))).collect();
            if log_det(&design.iter().map(|&i| &x[i]).collect::<Vec<_>>()).is_finite() {
                break;
            }
        }
        for _step in 0..10 * runs {
            let mut m = vec![vec![0.0; p]; p];
            for &r in &design {
                for i in 0..p {
                    for j in 0..p {
                        m[i][j] += x[r][i] * x[r][j];
                    }
                }
            }
            let minv = inverse(&m);
            let mx: Vec<Vec<f64>> = x.iter().map(|r| (0..p).map(|i| (0..p).map(|j| minv[i][j] * r[j]).sum()).collect()).collect();
            let d: Vec<f64> = x.iter().zip(&mx).map(|(r, v)| r.iter().zip(v).map(|(a, b)| a * b).sum()).collect();
            let mut swap = None;
            let mut ratio = 1.0 + 1e-10;
            for (k, &i) in design.iter().enumerate() {
                for j in (0..n).filter(|j| !design.contains(j)) {
                    let dij: f64 = x[j].iter().zip(&mx[i]).map(|(a, b)| a * b).sum();
                    let r = (1.0 + d[j]) * (1.0 - d[i]) + dij * dij;
                    if r > ratio {
                        ratio = r;
                        swap = Some((k, j));
                    }
                }
            }
            match swap {
                Some((k, j)) => design[k] = j,
                None => break,
            }
        }
        best = best.max(log_det(&design.iter().map(|&i| &x[i]).collect::<Vec<_>>()));
    }
    best
}

/// The reference optimum and how it was found.
fn reference(case: &Case, x: &[Vec<f64>]) -> (f64, &'static str) {
    if binomial(x.len(), case.runs) <= 60_000.0 {
        (exhaustive(x, case.runs), "exhaustive")
    } else {
        (many_start_fedorov(x, case.runs, 200), "Fedorov x200")
    }
}

/// Plans a case's file; the design and its diagnostics as text.
fn plan(case: &Case, dir: &std::path::Path) -> (Design, String) {
    let path = dir.join(format!("{}.nixl", case.label));
    std::fs::write(&path, case.source()).unwrap();
    let loaded = nixl::pipeline::load(&path);
    let diags: Vec<String> = loaded.check.diagnostics.iter().map(|d| format!("{}: {}", d.code, d.message)).collect();
    assert!(!loaded.check.has_errors(), "{}: {}\n{}", case.label, diags.join("\n"), case.source());
    let design = loaded.campaigns.into_iter().next().map(|c| c.design).unwrap_or_else(|| panic!("{}: no design", case.label));
    (design, diags.join("\n"))
}

/// The chosen points as candidate indices.
fn chosen(case: &Case, d: &Design, candidates: &[Vec<usize>]) -> Vec<usize> {
    d.patterns
        .iter()
        .map(|p| {
            let levels: Vec<usize> = p.levels.iter().map(|l| *l as usize).collect();
            candidates
                .iter()
                .position(|c| *c == levels)
                .unwrap_or_else(|| panic!("{}: {levels:?} is not a candidate", case.label))
        })
        .collect()
}

fn cases() -> Vec<Case> {
    let three = [1.0, 2.0, 3.0];
    let tokens = [128.0, 1024.0, 8192.0];
    let conc = [1.0, 4.0, 16.0];
    let mut v = vec![];
    let mut add = |label, factors, design: &str, terms, runs, prune| {
        v.push(Case { label, factors, design: design.to_string(), terms, runs, prune });
    };
    add(
        "2f-quadratic-runs-eq-terms",
        vec![num("a", &three), num("b", &three)],
        "d_optimal(quadratic(a, b), runs = 6)",
        quadratic(&[(0, false), (1, false)]),
        6,
        None,
    );
    add(
        "2f-quadratic-log-7",
        vec![num("prompt", &tokens), num("concurrency", &conc)],
        "d_optimal(quadratic(log(prompt), log(concurrency)), runs = 7)",
        quadratic(&[(0, true), (1, true)]),
        7,
        None,
    );
    add(
        "2f-interaction-4x4-runs-eq-terms",
        vec![num("a", &[1.0, 2.0, 4.0, 8.0]), num("b", &[10.0, 20.0, 30.0, 40.0])],
        "d_optimal(interaction(log(a), b), runs = 4)",
        interaction(&[(0, true), (1, false)]),
        4,
        None,
    );
    add(
        "3f-linear-runs-eq-terms",
        vec![num("a", &three), num("b", &three), num("c", &tokens)],
        "d_optimal(linear(a, b, log(c)), runs = 4)",
        linear(&[(0, false), (1, false), (2, true)]),
        4,
        None,
    );
    add(
        "3f-interaction-pruned",
        vec![num("a", &three), num("b", &three), num("c", &three)],
        "d_optimal(interaction(a, b, c), runs = 8)",
        interaction(&[(0, false), (1, false), (2, false)]),
        8,
        Some(("a == 3 and b == 3", |p| p[0] == 2 && p[1] == 2)),
    );
    add(
        "3f-quadratic-runs-eq-terms",
        vec![num("a", &three), num("b", &three), num("c", &three)],
        "d_optimal(quadratic(a, b, c), runs = 10)",
        quadratic(&[(0, false), (1, false), (2, false)]),
        10,
        None,
    );
    add(
        "3f-quadratic-log-pruned-13",
        vec![num("prompt", &tokens), num("concurrency", &conc), num("tp", &[1.0, 2.0, 4.0])],
        "d_optimal(quadratic(log(prompt), log(concurrency), log(tp)), runs = 13)",
        quadratic(&[(0, true), (1, true), (2, true)]),
        13,
        Some(("prompt == 8192 and concurrency == 16", |p| p[0] == 2 && p[1] == 2)),
    );
    add(
        "4f-quadratic-log-18",
        vec![num("a", &tokens), num("b", &conc), num("c", &[1.0, 2.0, 4.0]), num("d", &[64.0, 256.0, 1024.0])],
        "d_optimal(quadratic(log(a), log(b), log(c), log(d)), runs = 18)",
        quadratic(&[(0, true), (1, true), (2, true), (3, true)]),
        18,
        None,
    );
    add(
        "4f-quadratic-log-runs-eq-terms",
        vec![num("a", &tokens), num("b", &conc), num("c", &[1.0, 2.0, 4.0]), num("d", &[64.0, 256.0, 1024.0])],
        "d_optimal(quadratic(log(a), log(b), log(c), log(d)), runs = 15)",
        quadratic(&[(0, true), (1, true), (2, true), (3, true)]),
        15,
        None,
    );
    add(
        "4f-linear-pruned-runs-eq-terms",
        vec![num("a", &three), num("b", &three), num("c", &three), num("d", &three)],
        "d_optimal(linear(a, b, c, d), runs = 5)",
        linear(&[(0, false), (1, false), (2, false), (3, false)]),
        5,
        Some(("a == 1 and b == 1", |p| p[0] == 0 && p[1] == 0)),
    );
    add(
        "4f-quadratic-4-levels-pruned-20",
        vec![
            num("a", &[1.0, 2.0, 3.0, 4.0]),
            num("b", &[1.0, 2.0, 3.0, 4.0]),
            num("c", &[256.0, 1024.0, 4096.0, 16384.0]),
            num("d", &[1.0, 2.0, 3.0, 4.0]),
        ],
        "d_optimal(quadratic(a, b, log(c), d), runs = 20)",
        quadratic(&[(0, false), (1, false), (2, true), (3, false)]),
        20,
        Some(("a + b > 7", |p| p[0] + p[1] > 5)),
    );
    add(
        "3f-backend-interaction-runs-eq-terms",
        vec![
            num("prompt", &tokens),
            num("concurrency", &conc),
            FactorSpec { name: "backend", levels: Levels::Cat(vec!["ucx", "libfabric", "tcp"]) },
        ],
        "d_optimal(interaction(log(prompt), log(concurrency), backend), runs = 10)",
        interaction(&[(0, true), (1, true), (2, false)]),
        10,
        None,
    );
    add(
        "3f-term-list",
        vec![num("a", &three), num("b", &tokens), num("c", &conc)],
        "d_optimal(terms = [a, log(b), log(c), a*log(b), log(c)*log(c)], runs = 7)",
        vec![vec![(0, false, 1)], vec![(1, true, 1)], vec![(2, true, 1)], vec![(0, false, 1), (1, true, 1)], vec![(2, true, 2)]],
        7,
        None,
    );
    v
}

#[test]
fn every_optimal_design_is_within_one_percent_of_an_independent_reference() {
    let dir = scratch("designs");
    let mut report = vec![];
    let mut weak = vec![];
    let all = cases();
    assert!(all.len() >= 10);
    for case in &all {
        let candidates = case.candidates();
        let x: Vec<Vec<f64>> = candidates.iter().map(|c| case.row(c)).collect();
        let p = x[0].len();
        let (d1, _) = plan(case, &dir);
        let (d2, _) = plan(case, &dir);
        let ids = |d: &Design| d.patterns.iter().map(|p| p.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&d1), ids(&d2), "{}: two runs chose different points", case.label);
        let rows = chosen(case, &d1, &candidates);
        assert_eq!(rows.len(), case.runs, "{}", case.label);
        let info = d1.layers[0].optimal.as_ref().expect("an optimal design records how it was found");
        assert_eq!(info.terms, p, "{}: the engine's model has {} columns, the test's {p}", case.label, info.terms);
        let ours = log_det(&rows.iter().map(|&i| &x[i]).collect::<Vec<_>>());
        let (best, how) = reference(case, &x);
        let efficiency = ((ours - best) / p as f64).exp();
        let line = format!(
            "{:<38} N={:<3} p={:<2} runs={:<2} reference={how:<12} D-eff={efficiency:.6} starts={} reached={}",
            case.label,
            candidates.len(),
            p,
            case.runs,
            info.starts,
            info.best_reached
        );
        if efficiency < 0.99 {
            weak.push(line.clone());
        }
        report.push(line);
    }
    println!("{}", report.join("\n"));
    assert!(weak.is_empty(), "below 0.99 D-efficiency:\n{}", weak.join("\n"));
}

/// Plans a file's text and returns its design and diagnostics (code: message per line).
fn plan_text(label: &str, text: &str) -> (Option<Design>, String) {
    let dir = scratch(label);
    let path = dir.join("e.nixl");
    std::fs::write(&path, text).unwrap();
    let loaded = nixl::pipeline::load(&path);
    let diags: Vec<String> = loaded.check.diagnostics.iter().map(|d| format!("{}: {}", d.code, d.message)).collect();
    (loaded.campaigns.into_iter().next().map(|c| c.design), diags.join("\n"))
}

const BACKENDS: &str = "experiment e {
  factor prompt      = [1K, 4K, 12K]
  factor concurrency = [1, 4, 16]
  factor backend     = [ucx, libfabric, tcp]
  layer \"L\" {
    mode   = unified
    id     = \"e-{prompt}-c{concurrency}-{backend}\"
    design = DESIGN
  }
}
";

#[test]
fn a_categorical_factor_in_the_model_gets_every_level() {
    for design in [
        "d_optimal(linear(log(prompt), log(concurrency), backend), runs = 5)",
        "d_optimal(interaction(log(prompt), backend), runs = 6)",
        "i_optimal(terms = [log(prompt), log(concurrency), backend, log(prompt)*backend, log(prompt)*log(prompt)], runs = 9)",
    ] {
        let (d, diags) = plan_text("backends", &BACKENDS.replace("DESIGN", design));
        let d = d.unwrap_or_else(|| panic!("{design}: {diags}"));
        let backends: std::collections::BTreeSet<String> =
            d.patterns.iter().map(|p| d.factor_value(p, "backend").unwrap().display()).collect();
        assert_eq!(backends.into_iter().collect::<Vec<_>>(), ["libfabric", "tcp", "ucx"], "{design}");
    }
}

#[test]
fn a_categorical_factor_in_a_quadratic_model_is_an_error_with_the_reason() {
    let (_, diags) =
        plan_text("quadratic-backend", &BACKENDS.replace("DESIGN", "d_optimal(quadratic(log(prompt), backend), runs = 9)"));
    assert!(diags.contains("E0201: `backend` is not numeric (its levels are ucx, libfabric, tcp)"), "{diags}");
    let (_, diags) = plan_text("log-backend", &BACKENDS.replace("DESIGN", "d_optimal(linear(log(backend)), runs = 3)"));
    assert!(diags.contains("`log` needs numbers"), "{diags}");
}

#[test]
fn a_prune_that_removes_a_level_the_model_needs_is_an_error_naming_it() {
    let text = BACKENDS
        .replace("DESIGN", "d_optimal(linear(log(prompt), backend), runs = 4)")
        .replace("  layer", "  prune backend == tcp because \"no tcp\"\n  layer");
    let (_, diags) = plan_text("pruned-level", &text);
    assert!(
        diags.contains("E0303: the candidates left by the prunes cannot estimate the model: `backend` has no candidate at tcp"),
        "{diags}"
    );
}

#[test]
fn w0304_speaks_only_of_effects_the_model_asks_for() {
    // Three runs of a linear model cannot cross two levels of each factor, which the model does not ask for.
    let linear = "experiment e {
  factor a = [1, 2, 3]
  factor b = [1, 2, 3]
  layer \"L\" {
    mode   = unified
    id     = \"e-{a}-{b}\"
    design = d_optimal(linear(a, b), runs = 3)
  }
}
";
    let (d, diags) = plan_text("w0304-linear", linear);
    assert_eq!(d.unwrap().patterns.len(), 3);
    assert!(!diags.contains("W0304"), "{diags}");
    // The same three points as explicit points: without a model every pair is checked.
    let (d, _) = plan_text("w0304-linear", linear);
    let pts: Vec<String> = d.unwrap().patterns.iter().map(|p| format!("({}, {})", p.levels[0] + 1, p.levels[1] + 1)).collect();
    let (_, diags) =
        plan_text("w0304-points", &linear.replace("d_optimal(linear(a, b), runs = 3)", &format!("points({})", pts.join(", "))));
    assert!(diags.contains("W0304: L: the interaction of `a` and `b` cannot be estimated"), "{diags}");
}

#[test]
fn an_i_optimal_design_records_its_criterion_seed_and_d_efficiency() {
    let design = "i_optimal(quadratic(log(prompt), log(concurrency)), runs = 8, seed = 7, starts = 40)";
    let text = BACKENDS
        .replace("DESIGN", design)
        .replace("  factor backend     = [ucx, libfabric, tcp]\n", "")
        .replace("-{backend}", "");
    let (d, diags) = plan_text("i-optimal", &text);
    let d = d.unwrap_or_else(|| panic!("{diags}"));
    let o = d.layers[0].optimal.as_ref().unwrap();
    assert_eq!(
        (o.criterion, o.seed, o.starts, o.runs, o.terms, o.candidates),
        (nixl::design::doptimal::Criterion::I, 7, 40, 8, 6, 9)
    );
    assert!(o.best_reached >= 1 && o.best_reached <= 40);
    assert!(o.d_efficiency > 0.5 && o.d_efficiency <= 1.0 + 1e-12, "{}", o.d_efficiency);
    let table = nixl::design::tables::optimal_table(&d);
    assert!(table.contains("I-optimal") && table.lines().nth(2).unwrap().trim_end().ends_with(" 7"), "{table}");
}

#[test]
fn nixl_show_says_how_an_optimal_design_was_found() {
    let dir = scratch("show-optimal");
    let path = dir.join("e.nixl");
    let design = "d_optimal(quadratic(log(prompt), log(concurrency)), runs = 6, seed = 5)";
    let text = BACKENDS
        .replace("DESIGN", design)
        .replace("  factor backend     = [ucx, libfabric, tcp]\n", "")
        .replace("-{backend}", "");
    std::fs::write(&path, text).unwrap();
    let loaded = nixl::pipeline::load(&path);
    let first = loaded.campaigns[0].design.patterns[0].id.to_string();
    let out = crate::support::nixl().arg("show").arg(&path).arg(&first).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("  design      D-optimal, 6 of 9 candidates for 6 terms; best of 256 starts (seed 5), reached by "),
        "{stdout}"
    );
}

/// `^` in term lists: `log(prompt)^2` is the same term as `log(prompt)*log(prompt)`, and
/// `^` is arithmetic on plain numbers elsewhere.
#[test]
fn a_power_in_a_term_list_is_the_product_it_stands_for() {
    let design = |terms: &str| {
        let text = format!(
            "experiment e {{\n  factor prompt = [1K, 4K, 12K, 32K]\n  factor concurrency = [1, 4, 16]\n  layer \"L\" {{\n    mode = unified\n    id = \"e-{{prompt}}-c{{concurrency}}\"\n    design = d_optimal(terms = [{terms}], runs = 6)\n  }}\n}}\nexperiment f {{\n  factor n = [2^10]\n  layer \"M\" {{ mode = unified, id = \"f-{{n}}\" }}\n}}\n"
        );
        let loaded = nixl::pipeline::load_text("t.nixl", &text, &crate::props::NoFiles);
        assert!(!loaded.check.has_errors(), "{:?}", loaded.check.diagnostics);
        let e = loaded.campaign(Some("e")).unwrap();
        let ids: Vec<String> = e.design.scheduled().map(|p| p.id.to_string()).collect();
        let f = loaded.campaign(Some("f")).unwrap();
        (ids, f.design.patterns[0].id.to_string())
    };
    let (pow, n) = design("prompt, concurrency, prompt*concurrency, log(prompt)^2");
    let (product, _) = design("prompt, concurrency, prompt*concurrency, log(prompt)*log(prompt)");
    assert_eq!(pow, product);
    assert_eq!(n, "f-1024");
}
