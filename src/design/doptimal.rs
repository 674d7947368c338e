//! D-optimal designs: choose N of the candidate points that maximise
//! det(X'X) for a response-surface model, by Fedorov's exchange algorithm.
//! Deterministic: the same candidates and budget always give the same points.

use crate::check::model::Factor;
use crate::diagnostics::{Code, Diagnostic};
use crate::syntax::ast::{Expr, ExprKind};

/// The model terms: which factors, on a log scale or not, linear or quadratic.
#[derive(Debug, Clone)]
pub struct Terms {
    pub vars: Vec<(usize, bool)>,
    pub quadratic: bool,
}

pub fn terms(e: &Expr, factor_names: &[String]) -> Result<Terms, Box<Diagnostic>> {
    let bad = |msg: &str| {
        Box::new(
            Diagnostic::error(Code::DesignBudget, e.span, msg.to_string())
                .help("write `linear(prompt, concurrency)` or `quadratic(log(prompt), log(concurrency))`"),
        )
    };
    let ExprKind::Call(f, args) = &e.kind else {
        return Err(bad("model terms must be `linear(...)` or `quadratic(...)`"));
    };
    let quadratic = match f.as_name().map(|n| n.name.as_str()) {
        Some("linear") => false,
        Some("quadratic") => true,
        _ => return Err(bad("model terms must be `linear(...)` or `quadratic(...)`")),
    };
    let mut vars = vec![];
    for a in args {
        let (name, log) = match &a.value.kind {
            ExprKind::Name(n) => (n, false),
            ExprKind::Call(g, inner) if g.as_name().is_some_and(|n| n.name == "log") && inner.len() == 1 => {
                match inner[0].value.as_name() {
                    Some(n) => (n, true),
                    None => return Err(bad("`log` takes a factor name")),
                }
            }
            _ => return Err(bad("each term is a factor name or `log(factor)`")),
        };
        match factor_names.iter().position(|f| *f == name.name) {
            Some(i) => vars.push((i, log)),
            None => {
                return Err(Box::new(
                    Diagnostic::error(Code::UnknownName, name.span, format!("`{}` is not a factor", name.name))
                        .help(format!("factors: {}", factor_names.join(", "))),
                ))
            }
        }
    }
    if vars.is_empty() {
        return Err(bad("the model needs at least one factor"));
    }
    Ok(Terms { vars, quadratic })
}

impl Terms {
    pub fn columns(&self) -> usize {
        let k = self.vars.len();
        if self.quadratic {
            1 + 2 * k + k * (k - 1) / 2
        } else {
            1 + k
        }
    }

    /// The model-matrix row of a point, each factor scaled to [-1, 1].
    pub fn row(&self, factors: &[Factor], levels: &[u32]) -> Vec<f64> {
        let mut xs = vec![];
        for &(i, log) in &self.vars {
            let f = |v: f64| if log { v.max(1e-12).ln() } else { v };
            let vals: Vec<f64> = factors[i].levels.iter().map(|l| f(l.as_f64().unwrap_or(0.0))).collect();
            let (lo, hi) = vals.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
            let v = vals[levels[i] as usize];
            xs.push(if hi > lo { 2.0 * (v - lo) / (hi - lo) - 1.0 } else { 0.0 });
        }
        let mut row = vec![1.0];
        row.extend(&xs);
        if self.quadratic {
            row.extend(xs.iter().map(|x| x * x));
            for a in 0..xs.len() {
                for b in a + 1..xs.len() {
                    row.push(xs[a] * xs[b]);
                }
            }
        }
        row
    }
}

/// log det(X'X) of the chosen rows, or -inf when singular.
pub fn log_det(x: &[Vec<f64>], rows: &[usize]) -> f64 {
    let p = x.first().map(Vec::len).unwrap_or(0);
    let mut m = vec![vec![0.0; p]; p];
    for &r in rows {
        for i in 0..p {
            for j in 0..p {
                m[i][j] += x[r][i] * x[r][j];
            }
        }
    }
    // Cholesky: X'X is symmetric positive semi-definite.
    let mut l = vec![vec![0.0; p]; p];
    let mut sum = 0.0;
    for i in 0..p {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = m[i][i] - s;
                if d <= 1e-10 {
                    return f64::NEG_INFINITY;
                }
                l[i][i] = d.sqrt();
                sum += 2.0 * l[i][i].ln();
            } else {
                l[i][j] = (m[i][j] - s) / l[j][j];
            }
        }
    }
    sum
}

/// Chooses `n` distinct rows of `x` maximising det(X'X).
pub fn fedorov(x: &[Vec<f64>], n: usize) -> Vec<usize> {
    let n = n.min(x.len());
    // Start: greedy, each step adding the row that most increases a regularised determinant.
    let mut chosen: Vec<usize> = vec![];
    let ridge = |rows: &[usize]| -> f64 {
        let p = x.first().map(Vec::len).unwrap_or(0);
        let mut aug: Vec<Vec<f64>> = rows.iter().map(|&r| x[r].clone()).collect();
        for i in 0..p {
            let mut e = vec![0.0; p];
            e[i] = 1e-3;
            aug.push(e);
        }
        let idx: Vec<usize> = (0..aug.len()).collect();
        log_det(&aug, &idx)
    };
    while chosen.len() < n {
        let mut best = None;
        let mut best_v = f64::NEG_INFINITY;
        for c in 0..x.len() {
            if chosen.contains(&c) {
                continue;
            }
            chosen.push(c);
            let v = ridge(&chosen);
            chosen.pop();
            if v > best_v + 1e-12 {
                best_v = v;
                best = Some(c);
            }
        }
        match best {
            Some(c) => chosen.push(c),
            None => break,
        }
    }
    // Exchange: swap a chosen row for an unchosen one while det improves.
    let mut current = log_det(x, &chosen);
    for _ in 0..100 {
        let mut improved = false;
        for i in 0..chosen.len() {
            for c in 0..x.len() {
                if chosen.contains(&c) {
                    continue;
                }
                let old = chosen[i];
                chosen[i] = c;
                let v = log_det(x, &chosen);
                if v > current + 1e-9 {
                    current = v;
                    improved = true;
                } else {
                    chosen[i] = old;
                }
            }
        }
        if !improved {
            break;
        }
    }
    chosen.sort_unstable();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_corners_for_a_linear_model() {
        // 3x3 grid on [-1, 1]^2 with intercept and two main effects: the 4 corners are optimal.
        let mut x = vec![];
        for a in [-1.0, 0.0, 1.0] {
            for b in [-1.0, 0.0, 1.0] {
                x.push(vec![1.0, a, b]);
            }
        }
        let chosen = fedorov(&x, 4);
        assert_eq!(chosen, vec![0, 2, 6, 8]);
        assert!((log_det(&x, &chosen) - (4.0f64 * 4.0 * 4.0).ln()).abs() < 1e-9);
    }

    #[test]
    fn singular_designs_have_minus_infinite_log_det() {
        let x = vec![vec![1.0, 0.0], vec![1.0, 0.0]];
        assert_eq!(log_det(&x, &[0, 1]), f64::NEG_INFINITY);
    }
}
