//! Caches for values that depend on only some factors. A prune on `prompt`
//! is evaluated once per prompt level, not once per candidate point; the
//! same holds for restart keys and estimates. This keeps a million-point
//! expansion well under a second.

use crate::check::build::collect_free_names;
use crate::check::model::Derived;
use crate::syntax::ast::{Expr, Ident};
use std::collections::BTreeSet;

/// Factor indices the expressions read, directly or through derived and layer settings.
pub fn deps(exprs: &[&Expr], factors: &[String], fixed: &[(String, Expr)], derived: &[&Derived]) -> Vec<usize> {
    let mut out = BTreeSet::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut stack: Vec<Ident> = vec![];
    for e in exprs {
        collect_free_names(e, &mut stack);
    }
    while let Some(id) = stack.pop() {
        if !seen.insert(id.name.clone()) {
            continue;
        }
        if let Some(d) = derived.iter().rev().find(|d| d.name == id.name) {
            collect_free_names(&d.expr, &mut stack);
        } else if let Some((_, e)) = fixed.iter().find(|(n, _)| *n == id.name) {
            collect_free_names(e, &mut stack);
        } else if let Some(i) = factors.iter().position(|f| *f == id.name) {
            out.insert(i);
        }
    }
    out.into_iter().collect()
}

/// A dense table indexed by the levels of the factors a value depends on.
pub struct Memo<T> {
    deps: Vec<usize>,
    strides: Vec<usize>,
    table: Vec<Option<T>>,
}

/// Tables larger than this are not worth keeping; values are then computed each time.
const MAX_TABLE: usize = 1 << 20;

impl<T: Clone> Memo<T> {
    pub fn new(deps: Vec<usize>, sizes: &[usize]) -> Memo<T> {
        let mut strides = vec![];
        let mut total: usize = 1;
        for &d in &deps {
            strides.push(total);
            total = total.saturating_mul(sizes[d].max(1));
        }
        let table = if total <= MAX_TABLE { vec![None; total] } else { vec![] };
        Memo { deps, strides, table }
    }

    fn slot(&self, levels: &[u32]) -> Option<usize> {
        if self.table.is_empty() {
            return None;
        }
        Some(self.deps.iter().zip(&self.strides).map(|(&d, &s)| levels[d] as usize * s).sum())
    }

    pub fn get(&self, levels: &[u32]) -> Option<T> {
        self.slot(levels).and_then(|i| self.table[i].clone())
    }

    pub fn put(&mut self, levels: &[u32], v: T) {
        if let Some(i) = self.slot(levels) {
            self.table[i] = Some(v);
        }
    }
}
