//! The names one pattern sees: its overrides, derived settings, the layer's
//! fixed settings, the factor levels, the experiment's settings, the globals.
//! Derived and fixed values are evaluated on first use, so a prune reads only
//! what it needs.

use crate::check::model::Derived;
use crate::check::value::{Eval, Scope, Value};
use crate::diagnostics::Diagnostic;
use crate::syntax::ast::Expr;
use std::cell::RefCell;
use std::collections::BTreeMap;

pub struct PointScope<'a> {
    pub overrides: &'a BTreeMap<String, Value>,
    pub factor_names: &'a [String],
    pub factor_values: &'a [Value],
    pub fixed: &'a [(String, Expr)],
    pub derived: &'a [&'a Derived],
    pub base: &'a dyn Scope,
    pub kv_per_token: Option<f64>,
    /// Cached values of fixed (first) and derived (after) entries; None while unevaluated.
    cache: RefCell<Vec<Slot>>,
    pub errors: RefCell<Vec<Diagnostic>>,
}

#[derive(Clone)]
enum Slot {
    Todo,
    Busy,
    Done(Value),
}

impl<'a> PointScope<'a> {
    pub fn new(
        overrides: &'a BTreeMap<String, Value>,
        factor_names: &'a [String],
        factor_values: &'a [Value],
        fixed: &'a [(String, Expr)],
        derived: &'a [&'a Derived],
        base: &'a dyn Scope,
        kv_per_token: Option<f64>,
    ) -> Self {
        PointScope {
            overrides,
            factor_names,
            factor_values,
            fixed,
            derived,
            base,
            kv_per_token,
            cache: RefCell::new(vec![Slot::Todo; fixed.len() + derived.len()]),
            errors: RefCell::new(vec![]),
        }
    }

    pub fn eval(&self, e: &Expr) -> Result<Value, Box<Diagnostic>> {
        Eval { scope: self, kv_bytes_per_token: self.kv_per_token }.eval(e)
    }

    fn slot(&self, i: usize, e: &Expr) -> Option<Value> {
        match self.cache.borrow()[i].clone() {
            Slot::Done(v) => return Some(v),
            Slot::Busy => return None,
            Slot::Todo => {}
        }
        self.cache.borrow_mut()[i] = Slot::Busy;
        let v = match self.eval(e) {
            Ok(v) => v,
            Err(d) => {
                self.errors.borrow_mut().push(*d);
                Value::None
            }
        };
        self.cache.borrow_mut()[i] = Slot::Done(v.clone());
        Some(v)
    }

    /// Every setting this pattern has, for `nixl show` and the executor.
    pub fn all_settings(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for (n, v) in self.factor_names.iter().zip(self.factor_values) {
            out.insert(n.clone(), v.clone());
        }
        for (n, _) in self.fixed {
            if let Some(v) = self.lookup(n) {
                out.insert(n.clone(), v);
            }
        }
        for d in self.derived.iter().filter(|d| d.setting) {
            if let Some(v) = self.lookup(&d.name) {
                out.insert(d.name.clone(), v);
            }
        }
        for (k, v) in self.overrides {
            out.insert(k.clone(), v.clone());
        }
        out
    }
}

impl Scope for PointScope<'_> {
    fn lookup(&self, name: &str) -> Option<Value> {
        if let Some(v) = self.overrides.get(name) {
            return Some(v.clone());
        }
        if let Some(i) = self.derived.iter().rposition(|d| d.name == name) {
            return self.slot(self.fixed.len() + i, &self.derived[i].expr);
        }
        if let Some(i) = self.fixed.iter().position(|(n, _)| n == name) {
            return self.slot(i, &self.fixed[i].1);
        }
        if let Some(i) = self.factor_names.iter().position(|n| n == name) {
            return Some(self.factor_values[i].clone());
        }
        self.base.lookup(name)
    }
}
