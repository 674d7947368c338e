//! The multi-start exchange that picks `runs` distinct candidate points for an
//! optimal design. Each start is a random nonsingular subset (seeded, so the
//! same input gives the same design), improved by a modified Fedorov exchange:
//! for each design point in turn, the best swap with any candidate outside the
//! design, until a whole pass finds none. A single start stops at a local
//! optimum, and the smallest budgets (runs = terms) have the most of them; the
//! best of many starts is what a statistician's software reports.
//!
//! Swaps are scored in O(terms) per candidate from two vectors kept for all
//! candidates: the variance function d(x) = x' M^-1 x and, for I-optimality,
//! e(x) = x' M^-1 W M^-1 x, where M = X'X and W the candidates' moment matrix.
//! Both are updated by rank-one formulas after a swap and recomputed from
//! scratch at each pass so rounding cannot drift.

use serde::Serialize;

/// What the design optimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Criterion {
    /// Largest det(X'X): the most precise coefficients.
    D,
    /// Smallest average prediction variance over the candidate set: the best
    /// predictions of the fitted surface at points that were not run.
    I,
}

impl Criterion {
    pub fn label(self) -> &'static str {
        match self {
            Criterion::D => "D",
            Criterion::I => "I",
        }
    }
}

/// Candidate rows of the model matrix, stored flat.
pub struct Candidates {
    terms: usize,
    data: Vec<f64>,
}

impl Candidates {
    pub fn new(rows: &[Vec<f64>]) -> Candidates {
        let terms = rows.first().map(Vec::len).unwrap_or(0);
        Candidates { terms, data: rows.iter().flatten().copied().collect() }
    }
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.terms).unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn terms(&self) -> usize {
        self.terms
    }
    fn row(&self, j: usize) -> &[f64] {
        &self.data[j * self.terms..(j + 1) * self.terms]
    }

    /// The rank of the candidates' model matrix; below `terms` no design can estimate the model.
    pub fn rank(&self) -> usize {
        let mut basis: Vec<Vec<f64>> = vec![];
        for j in 0..self.len() {
            if basis.len() == self.terms {
                break;
            }
            if let Some(q) = independent_part(self.row(j), &basis) {
                basis.push(q);
            }
        }
        basis.len()
    }

    /// W = (1/N) sum of x x' over the candidates: trace(M^-1 W) is the average prediction variance.
    fn moments(&self) -> Vec<f64> {
        let p = self.terms;
        let mut w = vec![0.0; p * p];
        for j in 0..self.len() {
            outer_add(&mut w, self.row(j), 1.0);
        }
        let n = self.len().max(1) as f64;
        w.iter_mut().for_each(|v| *v /= n);
        w
    }
}

/// How to search: the criterion, the budget, the seed and how many starts.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub criterion: Criterion,
    pub runs: usize,
    pub seed: u64,
    pub starts: usize,
}

/// The best design found and what the other starts say about it.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Candidate indices of the chosen points, ascending.
    pub rows: Vec<usize>,
    /// log det(X'X) for D, the average prediction variance for I.
    pub value: f64,
    /// Starts whose exchange ended at the best value.
    pub best_reached: usize,
    /// The worst start's local optimum, as an efficiency against the best (1 = as good).
    pub worst_start: f64,
}

/// Starts enough to be reliable on small sets, fewer when each is expensive,
/// so a layer of a few thousand candidates stays well under a second.
pub fn default_starts(candidates: usize, runs: usize, terms: usize) -> usize {
    const WORK: usize = 250_000_000;
    let per_start = candidates.max(1) * runs.max(1) * terms.max(1) * 8;
    (WORK / per_start).clamp(24, 256)
}

/// The best of `settings.starts` exchanges; None when the candidates cannot estimate the model.
pub fn search(c: &Candidates, settings: Settings) -> Option<Outcome> {
    let runs = settings.runs.min(c.len());
    if c.is_empty() || runs < c.terms() || c.rank() < c.terms() {
        return None;
    }
    let w = (settings.criterion == Criterion::I).then(|| c.moments());
    let mut rng = SplitMix64(settings.seed);
    let mut finals: Vec<f64> = vec![];
    let mut best: Option<(f64, Vec<usize>)> = None;
    for _ in 0..settings.starts.max(1) {
        let start = random_start(c, runs, &mut rng);
        let mut ex = Exchange::new(c, w.as_deref(), settings.criterion, start);
        let Some(value) = ex.run() else { continue };
        finals.push(value);
        if best.as_ref().is_none_or(|(b, _)| better(settings.criterion, value, *b, 1e-10)) {
            best = Some((value, ex.chosen));
        }
    }
    let (value, mut rows) = best?;
    rows.sort_unstable();
    let best_reached = finals.iter().filter(|v| !better(settings.criterion, value, **v, 1e-7)).count();
    let worst = finals.iter().copied().fold(value, |a, v| if better(settings.criterion, a, v, 0.0) { v } else { a });
    Some(Outcome { rows, value, best_reached, worst_start: efficiency(settings.criterion, worst, value, c.terms()) })
}

/// Whether `a` beats `b` by more than a relative tolerance.
fn better(criterion: Criterion, a: f64, b: f64, tol: f64) -> bool {
    match criterion {
        Criterion::D => a > b + tol,
        Criterion::I => a < b * (1.0 - tol),
    }
}

/// The efficiency of a design with criterion value `v` against one with `best`:
/// (det ratio)^(1/terms) for D, the variance ratio for I.
pub fn efficiency(criterion: Criterion, v: f64, best: f64, terms: usize) -> f64 {
    match criterion {
        Criterion::D => ((v - best) / terms as f64).exp(),
        Criterion::I => best / v,
    }
}

/// log det(X'X) of the chosen rows, or -inf when singular.
pub fn log_det(c: &Candidates, rows: &[usize]) -> f64 {
    let p = c.terms();
    let mut m = vec![0.0; p * p];
    rows.iter().for_each(|&r| outer_add(&mut m, c.row(r), 1.0));
    match cholesky(&m, p) {
        Some(l) => (0..p).map(|i| 2.0 * l[i * p + i].ln()).sum(),
        None => f64::NEG_INFINITY,
    }
}

/// The average prediction variance trace((X'X)^-1 W) over the candidates, or +inf when singular.
pub fn average_variance(c: &Candidates, rows: &[usize]) -> f64 {
    let p = c.terms();
    let mut m = vec![0.0; p * p];
    rows.iter().for_each(|&r| outer_add(&mut m, c.row(r), 1.0));
    match cholesky(&m, p) {
        Some(l) => {
            let minv = gram_of_columns(&lower_inverse(&l, p), p);
            let w = c.moments();
            minv.iter().zip(&w).map(|(a, b)| a * b).sum()
        }
        None => f64::INFINITY,
    }
}

/// One start's state: the design, M^-1, and d and e for every candidate.
struct Exchange<'a> {
    c: &'a Candidates,
    w: Option<&'a [f64]>,
    criterion: Criterion,
    chosen: Vec<usize>,
    in_design: Vec<bool>,
    minv: Vec<f64>,
    d: Vec<f64>,
    e: Vec<f64>,
    log_det: f64,
    trace: f64,
}

const MAX_PASSES: usize = 100;

impl<'a> Exchange<'a> {
    fn new(c: &'a Candidates, w: Option<&'a [f64]>, criterion: Criterion, chosen: Vec<usize>) -> Exchange<'a> {
        let mut in_design = vec![false; c.len()];
        chosen.iter().for_each(|&j| in_design[j] = true);
        let n = c.len();
        Exchange { c, w, criterion, chosen, in_design, minv: vec![], d: vec![0.0; n], e: vec![0.0; n], log_det: 0.0, trace: 0.0 }
    }

    /// Passes until none improves; the criterion value, or None if the start was singular.
    fn run(&mut self) -> Option<f64> {
        self.refresh()?;
        for _ in 0..MAX_PASSES {
            if !self.pass() {
                break;
            }
            self.refresh()?;
        }
        Some(match self.criterion {
            Criterion::D => self.log_det,
            Criterion::I => self.trace,
        })
    }

    /// M^-1, log det, d, e and the trace computed afresh from the design.
    fn refresh(&mut self) -> Option<()> {
        let p = self.c.terms();
        let mut m = vec![0.0; p * p];
        self.chosen.iter().for_each(|&r| outer_add(&mut m, self.c.row(r), 1.0));
        let l = cholesky(&m, p)?;
        self.log_det = (0..p).map(|i| 2.0 * l[i * p + i].ln()).sum();
        let li = lower_inverse(&l, p);
        self.minv = gram_of_columns(&li, p);
        // e(x) = x' B x with B = M^-1 W M^-1, formed once.
        let b = self.w.map(|w| mat_mul(&mat_mul(&self.minv, w, p), &self.minv, p));
        let mut y = vec![0.0; p];
        for j in 0..self.c.len() {
            let x = self.c.row(j);
            // d = |L^-1 x|^2: half the work of x' M^-1 x, as L^-1 is triangular.
            for (i, yi) in y.iter_mut().enumerate() {
                *yi = dot(&li[i * p..i * p + i + 1], &x[..=i]);
            }
            self.d[j] = dot(&y, &y);
            if let Some(b) = &b {
                mat_vec(b, x, &mut y);
                self.e[j] = dot(x, &y);
            }
        }
        if let Some(w) = self.w {
            self.trace = self.minv.iter().zip(w).map(|(a, b)| a * b).sum();
        }
        Some(())
    }

    /// One pass over the design points; whether any swap was made.
    fn pass(&mut self) -> bool {
        let p = self.c.terms();
        let mut improved = false;
        let mut u = vec![0.0; p];
        let mut wu = vec![0.0; p];
        let mut g = vec![0.0; p];
        for k in 0..self.chosen.len() {
            let i = self.chosen[k];
            mat_vec(&self.minv, self.c.row(i), &mut u);
            if let Some(w) = self.w {
                mat_vec(w, &u, &mut wu);
                mat_vec(&self.minv, &wu, &mut g);
            }
            if let Some(j) = self.best_swap(i, &u, &g) {
                self.swap(k, j);
                improved = true;
            }
        }
        improved
    }

    /// The candidate whose swap with design point `i` improves the criterion most.
    /// `u` = M^-1 x_i and `g` = M^-1 W M^-1 x_i.
    fn best_swap(&self, i: usize, u: &[f64], g: &[f64]) -> Option<usize> {
        let di = self.d[i];
        let ei = self.e[i];
        let mut best = None;
        // A swap must gain more than rounding, or passes could go on for ever.
        let mut best_score = match self.criterion {
            Criterion::D => 1.0 + 1e-9,
            Criterion::I => self.trace * (1.0 - 1e-9),
        };
        for j in 0..self.c.len() {
            if self.in_design[j] {
                continue;
            }
            let x = self.c.row(j);
            let dij = dot(x, u);
            // det(M') / det(M) for M' = M - x_i x_i' + x_j x_j'.
            let delta = (1.0 + self.d[j]) * (1.0 - di) + dij * dij;
            match self.criterion {
                Criterion::D => {
                    if delta > best_score {
                        best_score = delta;
                        best = Some(j);
                    }
                }
                Criterion::I => {
                    if delta <= 1e-9 {
                        continue;
                    }
                    // trace(M'^-1 W) by the Woodbury identity for the rank-two change.
                    let eij = dot(x, g);
                    let t = self.trace + ((di - 1.0) * self.e[j] - 2.0 * dij * eij + (1.0 + self.d[j]) * ei) / delta;
                    if t < best_score {
                        best_score = t;
                        best = Some(j);
                    }
                }
            }
        }
        best
    }

    /// Replaces the design's k-th point by candidate j: add first, so M stays nonsingular.
    fn swap(&mut self, k: usize, j: usize) {
        let i = self.chosen[k];
        self.rank_one(j, 1.0);
        self.rank_one(i, -1.0);
        self.chosen[k] = j;
        self.in_design[i] = false;
        self.in_design[j] = true;
    }

    /// M += sign * a a' for candidate a, with M^-1, log det, d, e and the trace updated.
    fn rank_one(&mut self, a: usize, sign: f64) {
        let p = self.c.terms();
        let x = self.c.row(a);
        let mut v = vec![0.0; p];
        mat_vec(&self.minv, x, &mut v);
        let denom = 1.0 + sign * dot(x, &v);
        let s = sign / denom;
        self.log_det += denom.ln();
        let mut z = vec![0.0; p];
        let mut vwv = 0.0;
        if let Some(w) = self.w {
            let mut wv = vec![0.0; p];
            mat_vec(w, &v, &mut wv);
            vwv = dot(&v, &wv);
            mat_vec(&self.minv, &wv, &mut z);
            self.trace -= s * vwv;
        }
        for j in 0..self.c.len() {
            let xj = self.c.row(j);
            let gj = dot(xj, &v);
            self.d[j] -= s * gj * gj;
            if self.w.is_some() {
                let hj = dot(xj, &z);
                self.e[j] += -2.0 * s * gj * hj + s * s * gj * gj * vwv;
            }
        }
        outer_add(&mut self.minv, &v, -s);
    }
}

/// A random subset of `runs` candidates whose model matrix has full rank: candidates in
/// random order, each kept if it adds a dimension, until there are `terms`; then random fill.
fn random_start(c: &Candidates, runs: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..c.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let mut basis: Vec<Vec<f64>> = vec![];
    let mut chosen = vec![];
    let mut rest = vec![];
    for j in order {
        if basis.len() < c.terms() {
            if let Some(q) = independent_part(c.row(j), &basis) {
                basis.push(q);
                chosen.push(j);
                continue;
            }
        }
        rest.push(j);
    }
    chosen.extend(rest.into_iter().take(runs - chosen.len()));
    chosen
}

/// The part of `x` orthogonal to an orthonormal basis, normalised, unless it is negligible.
fn independent_part(x: &[f64], basis: &[Vec<f64>]) -> Option<Vec<f64>> {
    let mut r = x.to_vec();
    for q in basis {
        let c = dot(q, &r);
        r.iter_mut().zip(q).for_each(|(a, b)| *a -= c * b);
    }
    let norm = dot(&r, &r).sqrt();
    let scale = dot(x, x).sqrt();
    (norm > 1e-7 * scale.max(1.0)).then(|| r.iter().map(|v| v / norm).collect())
}

/// The seeded generator of the starts (SplitMix64: small, fast, and stable across platforms).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n.
    fn below(&mut self, n: usize) -> usize {
        ((self.next() as u128 * n as u128) >> 64) as usize
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// out = A x for a square row-major A.
fn mat_vec(a: &[f64], x: &[f64], out: &mut [f64]) {
    let p = x.len();
    for (i, o) in out.iter_mut().enumerate() {
        *o = dot(&a[i * p..(i + 1) * p], x);
    }
}

/// A B for square row-major matrices.
fn mat_mul(a: &[f64], b: &[f64], p: usize) -> Vec<f64> {
    let mut out = vec![0.0; p * p];
    for i in 0..p {
        for k in 0..p {
            let aik = a[i * p + k];
            for j in 0..p {
                out[i * p + j] += aik * b[k * p + j];
            }
        }
    }
    out
}

/// M += s x x'.
fn outer_add(m: &mut [f64], x: &[f64], s: f64) {
    let p = x.len();
    for i in 0..p {
        let sx = s * x[i];
        for j in 0..p {
            m[i * p + j] += sx * x[j];
        }
    }
}

/// The lower Cholesky factor of a symmetric matrix, or None if it is not positive definite.
fn cholesky(m: &[f64], p: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; p * p];
    // Relative to the diagonal, so the test means the same for any scale of the levels.
    let tiny = 1e-10 * (0..p).map(|i| m[i * p + i]).fold(0.0, f64::max).max(1e-300);
    for i in 0..p {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * p + k] * l[j * p + k]).sum();
            if i == j {
                let d = m[i * p + i] - s;
                if d <= tiny {
                    return None;
                }
                l[i * p + i] = d.sqrt();
            } else {
                l[i * p + j] = (m[i * p + j] - s) / l[j * p + j];
            }
        }
    }
    Some(l)
}

/// L^-1 of a lower-triangular L, itself lower-triangular.
fn lower_inverse(l: &[f64], p: usize) -> Vec<f64> {
    let mut li = vec![0.0; p * p];
    for i in 0..p {
        li[i * p + i] = 1.0 / l[i * p + i];
        for j in 0..i {
            let s: f64 = (j..i).map(|k| l[i * p + k] * li[k * p + j]).sum();
            li[i * p + j] = -s / l[i * p + i];
        }
    }
    li
}

/// A'A for a square A: with A = L^-1 this is M^-1 = L^-T L^-1.
fn gram_of_columns(a: &[f64], p: usize) -> Vec<f64> {
    let mut g = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..=i {
            let s: f64 = (0..p).map(|k| a[k * p + i] * a[k * p + j]).sum();
            g[i * p + j] = s;
            g[j * p + i] = s;
        }
    }
    g
}
