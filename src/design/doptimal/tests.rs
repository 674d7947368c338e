//! Unit tests of the exchange against brute force on small candidate sets, and
//! of the model coding.

use super::exchange::{average_variance, log_det, search, Settings};
use super::*;
use crate::check::model::Factor;
use crate::check::value::Value;
use crate::diagnostics::Span;

fn grid(levels: &[f64], k: usize) -> Vec<Vec<f64>> {
    let mut pts = vec![vec![]];
    for _ in 0..k {
        pts = pts.into_iter().flat_map(|p: Vec<f64>| levels.iter().map(move |l| [p.clone(), vec![*l]].concat())).collect();
    }
    pts
}

/// Full quadratic rows of points in [-1, 1]^k.
fn quadratic_rows(points: &[Vec<f64>]) -> Vec<Vec<f64>> {
    points
        .iter()
        .map(|x| {
            let mut r = vec![1.0];
            r.extend(x);
            for a in 0..x.len() {
                for b in a + 1..x.len() {
                    r.push(x[a] * x[b]);
                }
            }
            r.extend(x.iter().map(|v| v * v));
            r
        })
        .collect()
}

fn settings(criterion: Criterion, runs: usize) -> Settings {
    Settings { criterion, runs, seed: DEFAULT_SEED, starts: 32 }
}

/// Every single swap of a chosen point for an unchosen one, scored from scratch.
fn best_single_swap(c: &Candidates, rows: &[usize], score: impl Fn(&[usize]) -> f64) -> f64 {
    let mut best = f64::NEG_INFINITY;
    for k in 0..rows.len() {
        for j in 0..c.len() {
            if rows.contains(&j) {
                continue;
            }
            let mut r = rows.to_vec();
            r[k] = j;
            best = best.max(score(&r));
        }
    }
    best
}

#[test]
fn picks_the_corners_for_a_linear_model() {
    let x: Vec<Vec<f64>> = grid(&[-1.0, 0.0, 1.0], 2).into_iter().map(|p| vec![1.0, p[0], p[1]]).collect();
    let c = Candidates::new(&x);
    let found = search(&c, settings(Criterion::D, 4)).unwrap();
    assert_eq!(found.rows, vec![0, 2, 6, 8]);
    assert!((found.value - 64f64.ln()).abs() < 1e-9);
    assert_eq!(found.best_reached, 32);
}

#[test]
fn a_d_optimal_design_cannot_be_improved_by_any_single_swap() {
    let c = Candidates::new(&quadratic_rows(&grid(&[-1.0, 0.0, 1.0], 3)));
    let found = search(&c, settings(Criterion::D, 12)).unwrap();
    assert!((found.value - log_det(&c, &found.rows)).abs() < 1e-8);
    let swap = best_single_swap(&c, &found.rows, |r| log_det(&c, r));
    assert!(swap <= found.value + 1e-9, "a swap reaches {swap} > {}", found.value);
}

#[test]
fn an_i_optimal_design_cannot_be_improved_by_any_single_swap() {
    // The rank-two Woodbury score must agree with the average variance computed afresh.
    let c = Candidates::new(&quadratic_rows(&grid(&[-1.0, -0.5, 0.0, 0.5, 1.0], 2)));
    let found = search(&c, settings(Criterion::I, 8)).unwrap();
    assert!((found.value - average_variance(&c, &found.rows)).abs() < 1e-9 * found.value);
    let swap = -best_single_swap(&c, &found.rows, |r| -average_variance(&c, r));
    assert!(swap >= found.value * (1.0 - 1e-9), "a swap reaches {swap} < {}", found.value);
}

#[test]
fn i_optimal_and_d_optimal_designs_differ_where_prediction_matters() {
    // On a 5x5 grid, 12-run D-optimal quadratic designs sit on the edges; I-optimal ones use the centre more.
    let pts = grid(&[-1.0, -0.5, 0.0, 0.5, 1.0], 2);
    let c = Candidates::new(&quadratic_rows(&pts));
    let d = search(&c, settings(Criterion::D, 12)).unwrap();
    let i = search(&c, settings(Criterion::I, 12)).unwrap();
    assert!(average_variance(&c, &i.rows) < average_variance(&c, &d.rows) * 0.999);
    assert!(log_det(&c, &d.rows) > log_det(&c, &i.rows));
}

#[test]
fn the_same_seed_gives_the_same_design_and_another_seed_may_not() {
    let c = Candidates::new(&quadratic_rows(&grid(&[-1.0, -0.3, 0.4, 1.0], 3)));
    let a = search(&c, settings(Criterion::D, 10)).unwrap();
    let b = search(&c, settings(Criterion::D, 10)).unwrap();
    assert_eq!(a.rows, b.rows);
    assert_eq!(a.value.to_bits(), b.value.to_bits());
    assert!(a.best_reached >= 1 && a.best_reached <= 32);
    assert!(a.worst_start > 0.0 && a.worst_start <= 1.0);
}

#[test]
fn candidates_that_cannot_estimate_the_model_give_no_design() {
    // x2 is constant: its column duplicates the intercept.
    let x: Vec<Vec<f64>> = grid(&[-1.0, 1.0], 2).into_iter().map(|p| vec![1.0, p[0], 1.0]).collect();
    let c = Candidates::new(&x);
    assert_eq!(c.rank(), 2);
    assert!(search(&c, settings(Criterion::D, 3)).is_none());
}

fn factor(name: &str, levels: Vec<Value>) -> Factor {
    Factor { name: name.into(), levels, span: Span::default() }
}

#[test]
fn a_categorical_factor_is_effect_coded() {
    let sym = |s: &str| Value::Sym(s.into());
    let factors = vec![
        factor("prompt", vec![Value::num(1.0), Value::num(4.0), Value::num(16.0)]),
        factor("backend", vec![sym("ucx"), sym("libfabric"), sym("tcp")]),
    ];
    let (tree, diags) = crate::syntax::parse(0, "let x = interaction(log(prompt), backend)\n");
    assert!(diags.is_empty());
    let e = first_value(&tree);
    let m = terms::from_call(e, &factors).unwrap();
    // intercept, log(prompt), backend (2), log(prompt) x backend (2)
    assert_eq!(m.columns(), 6);
    assert_eq!(m.row(&[0, 0]), vec![1.0, -1.0, 1.0, 0.0, -1.0, 0.0]);
    assert_eq!(m.row(&[1, 2]), vec![1.0, 0.0, -1.0, -1.0, 0.0, 0.0]);
    assert_eq!(m.row(&[2, 1]), vec![1.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
    assert_eq!(m.effects(), Effects { factors: vec![0, 1], pairs: vec![(0, 1)] });
}

#[test]
fn a_categorical_factor_in_a_quadratic_model_is_a_type_error_with_its_levels() {
    let sym = |s: &str| Value::Sym(s.into());
    let factors = vec![factor("prompt", vec![Value::num(1.0), Value::num(4.0)]), factor("backend", vec![sym("ucx"), sym("tcp")])];
    let (tree, _) = crate::syntax::parse(0, "let x = quadratic(prompt, backend)\n");
    let err = terms::from_call(first_value(&tree), &factors).unwrap_err();
    assert_eq!(err.code, crate::diagnostics::Code::Type);
    assert!(err.message.contains("`backend` is not numeric (its levels are ucx, tcp)"), "{}", err.message);
}

#[test]
fn a_term_list_squares_a_repeated_factor() {
    let factors = vec![
        factor("a", vec![Value::num(1.0), Value::num(2.0), Value::num(3.0)]),
        factor("b", vec![Value::num(1.0), Value::num(10.0), Value::num(100.0)]),
    ];
    let (tree, _) = crate::syntax::parse(0, "let x = [a, a*b, log(b)*log(b)]\n");
    let m = terms::from_list(first_value(&tree), &factors).unwrap();
    assert_eq!(m.columns(), 4);
    // a = 3 -> 1; b = 10 -> 10 on [1, 100] -> 2*9/99 - 1; log(b) = log(10) -> 0.
    let r = m.row(&[2, 1]);
    assert_eq!(r[0..2], [1.0, 1.0]);
    assert!((r[2] - (18.0 / 99.0 - 1.0)).abs() < 1e-12);
    assert!(r[3].abs() < 1e-12);
}

/// The value of the first `let x = ...` of a parsed file.
fn first_value(tree: &crate::syntax::ast::File) -> &crate::syntax::ast::Expr {
    match &tree.items[0].kind {
        crate::syntax::ast::StmtKind::Let(_, e) => e,
        other => panic!("not a let: {other:?}"),
    }
}
