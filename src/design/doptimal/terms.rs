//! Model terms of an optimal design: the functions of the factors that the
//! fitted surface has (`linear`, `interaction`, `quadratic` or an explicit
//! `terms = [...]` list), and each candidate point's row of the model matrix.
//! Numeric factors are scaled to [-1, 1], on a log scale under `log(...)`;
//! categorical factors enter with effect coding: one column per level but the
//! last, which is coded -1 in all of them, so each column is a level's
//! deviation from the mean and the intercept stays the grand mean.

use crate::check::model::Factor;
use crate::check::value::Value;
use crate::diagnostics::{Code, Diagnostic, Span};
use crate::syntax::ast::{BinOp, Expr, ExprKind};

/// How a factor enters a term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scale {
    /// A numeric factor, its levels scaled linearly to [-1, 1].
    Linear,
    /// A numeric factor with positive levels, its logarithms scaled to [-1, 1].
    Log,
    /// A categorical factor, effect-coded in one column per level but the last.
    Effect,
}

/// One factor of a term on its scale, raised to a power (2 in a squared term).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Component {
    pub factor: usize,
    pub scale: Scale,
    pub power: u32,
}

/// A product of components. The model always has an intercept besides its terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    pub components: Vec<Component>,
}

/// The model of an optimal design, with the coded values of each factor level it uses.
#[derive(Clone, Debug)]
pub struct ModelTerms {
    pub terms: Vec<Term>,
    codes: Vec<Coding>,
}

/// The coded columns of each level of one factor on one scale: `levels[level][column]`.
#[derive(Clone, Debug)]
struct Coding {
    factor: usize,
    scale: Scale,
    levels: Vec<Vec<f64>>,
}

/// The effects a model asks for, which are the ones warning W0304 may speak of.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Effects {
    /// Factors with a term of their own or in a product.
    pub factors: Vec<usize>,
    /// Pairs of distinct factors that share a term, each ordered (low, high).
    pub pairs: Vec<(usize, usize)>,
}

type Result<T> = std::result::Result<T, Box<Diagnostic>>;

const MODEL_HELP: &str = "write `linear(prompt, backend)`, `interaction(...)`, `quadratic(log(prompt), log(concurrency))` \
     or `terms = [prompt, backend, prompt*backend, log(concurrency)*log(concurrency)]`";

fn model_error(span: Span, msg: impl Into<String>) -> Box<Diagnostic> {
    Box::new(Diagnostic::error(Code::DesignBudget, span, msg).help(MODEL_HELP))
}

/// `linear(...)`, `interaction(...)` or `quadratic(...)` over factor names or `log(name)`.
pub fn from_call(e: &Expr, factors: &[Factor]) -> Result<ModelTerms> {
    let ExprKind::Call(f, args) = &e.kind else {
        return Err(model_error(e.span, "model terms must be `linear(...)`, `interaction(...)` or `quadratic(...)`"));
    };
    let kind = f.as_name().map(|n| n.name.as_str()).unwrap_or("");
    if !["linear", "interaction", "quadratic"].contains(&kind) {
        return Err(model_error(e.span, "model terms must be `linear(...)`, `interaction(...)` or `quadratic(...)`"));
    }
    let mut mains: Vec<Component> = vec![];
    for a in args {
        if let Some(n) = &a.name {
            return Err(model_error(n.span, format!("`{kind}` takes factors, not `{} = ...`", n.name)));
        }
        let c = component(&a.value, factors)?;
        if mains.iter().any(|m| m.factor == c.factor) {
            return Err(model_error(a.value.span, format!("`{}` appears twice", factors[c.factor].name)));
        }
        if kind == "quadratic" && c.scale == Scale::Effect {
            return Err(not_numeric(factors, c.factor, a.value.span, "`quadratic(...)` gives every factor a squared term"));
        }
        mains.push(c);
    }
    if mains.is_empty() {
        return Err(model_error(e.span, "the model needs at least one factor"));
    }
    let mut terms: Vec<Term> = mains.iter().map(|c| Term { components: vec![*c] }).collect();
    if kind != "linear" {
        for (i, a) in mains.iter().enumerate() {
            for b in &mains[i + 1..] {
                terms.push(Term { components: vec![*a, *b] });
            }
        }
    }
    if kind == "quadratic" {
        terms.extend(mains.iter().map(|c| Term { components: vec![Component { power: 2, ..*c }] }));
    }
    Ok(ModelTerms::new(terms, factors))
}

/// `terms = [a, b, a*b, log(c)*log(c)]`: each item a product of factors or `log(factor)`;
/// a factor repeated in a product is raised to that power.
pub fn from_list(e: &Expr, factors: &[Factor]) -> Result<ModelTerms> {
    let ExprKind::List(items) = &e.kind else {
        return Err(model_error(e.span, "`terms` is a list of model terms"));
    };
    let mut terms: Vec<Term> = vec![];
    for item in items {
        let mut leaves = vec![];
        product_leaves(item, &mut leaves);
        let mut components: Vec<Component> = vec![];
        for leaf in leaves {
            let c = component(leaf, factors)?;
            match components.iter_mut().find(|x| x.factor == c.factor && x.scale == c.scale) {
                Some(x) => x.power += 1,
                None => components.push(c),
            }
        }
        if let Some(c) = components.iter().find(|c| c.scale == Scale::Effect && c.power > 1) {
            return Err(not_numeric(factors, c.factor, item.span, "a power of a factor needs numbers"));
        }
        components.sort();
        let term = Term { components };
        if terms.contains(&term) {
            return Err(model_error(item.span, "this term is listed twice"));
        }
        terms.push(term);
    }
    if terms.is_empty() {
        return Err(model_error(e.span, "the model needs at least one term"));
    }
    Ok(ModelTerms::new(terms, factors))
}

/// The factors of a product `a * log(b) * a`, left to right; `x^k` is x repeated k times.
fn product_leaves<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match &e.kind {
        ExprKind::Binary(BinOp::Mul, a, b) => {
            product_leaves(a, out);
            product_leaves(b, out);
        }
        ExprKind::Binary(BinOp::Pow, base, k) => match &k.kind {
            ExprKind::Number { value, .. } if value.fract() == 0.0 && (1.0..=4.0).contains(value) => {
                for _ in 0..*value as usize {
                    product_leaves(base, out);
                }
            }
            // Not a small whole power: left to `component`, which names the form terms take.
            _ => out.push(e),
        },
        ExprKind::Paren(x) => product_leaves(x, out),
        _ => out.push(e),
    }
}

/// A factor name or `log(name)`, checked against the factor's levels.
fn component(e: &Expr, factors: &[Factor]) -> Result<Component> {
    let (name, log) = match &e.kind {
        ExprKind::Name(n) => (n, false),
        ExprKind::Call(g, inner) if g.as_name().is_some_and(|n| n.name == "log") && inner.len() == 1 => {
            match inner[0].value.as_name() {
                Some(n) => (n, true),
                None => return Err(model_error(inner[0].value.span, "`log` takes a factor name")),
            }
        }
        _ => {
            return Err(model_error(
                e.span,
                "a model term is a factor, `log(factor)`, a product of them (`a*b`) or a power 1 to 4 (`log(c)^2`)",
            ))
        }
    };
    let Some(index) = factors.iter().position(|f| f.name == name.name) else {
        let names: Vec<&str> = factors.iter().map(|f| f.name.as_str()).collect();
        return Err(Box::new(
            Diagnostic::error(Code::UnknownName, name.span, format!("`{}` is not a factor", name.name))
                .help(format!("factors: {}", names.join(", "))),
        ));
    };
    let factor = &factors[index];
    if factor.levels.len() < 2 {
        return Err(Box::new(
            Diagnostic::error(
                Code::DesignBudget,
                e.span,
                format!("`{}` has one level, so a model cannot estimate its effect", factor.name),
            )
            .help("leave it out of the model, or give it more levels"),
        ));
    }
    let numeric = factor.levels.iter().all(|v| matches!(v, Value::Num(..)));
    let scale = match (numeric, log) {
        (true, false) => Scale::Linear,
        (true, true) => Scale::Log,
        (false, false) => Scale::Effect,
        (false, true) => return Err(not_numeric(factors, index, e.span, "`log` needs numbers")),
    };
    if scale == Scale::Log {
        if let Some(v) = factor.levels.iter().find(|v| v.as_f64().is_some_and(|x| x <= 0.0)) {
            return Err(Box::new(
                Diagnostic::error(
                    Code::Domain,
                    e.span,
                    format!("`log({})` needs positive levels, and {} is not", factor.name, v.display()),
                )
                .help(format!("use `{}` on a linear scale", factor.name)),
            ));
        }
    }
    Ok(Component { factor: index, scale, power: 1 })
}

/// The error for a categorical factor where a term needs numbers, with the reason
/// and a term list that says the same with a numeric factor of the experiment.
fn not_numeric(factors: &[Factor], f: usize, span: Span, why: &str) -> Box<Diagnostic> {
    let factor = &factors[f];
    let levels: Vec<String> = factor.levels.iter().map(Value::display).collect();
    let name = &factor.name;
    let example = match factors.iter().find(|o| o.levels.len() > 1 && o.levels.iter().all(|v| matches!(v, Value::Num(..)))) {
        Some(o) => format!("terms = [{name}, {0}, {name}*{0}, {0}*{0}]", o.name),
        None => format!("terms = [{name}]"),
    };
    Box::new(
        Diagnostic::error(Code::Type, span, format!("`{name}` is not numeric (its levels are {}), and {why}", levels.join(", ")))
            .help(format!(
                "a categorical factor enters a model in `linear(...)`, `interaction(...)` or a term list: `{example}`"
            )),
    )
}

impl ModelTerms {
    fn new(terms: Vec<Term>, factors: &[Factor]) -> ModelTerms {
        let mut codes: Vec<Coding> = vec![];
        for c in terms.iter().flat_map(|t| &t.components) {
            if !codes.iter().any(|k| (k.factor, k.scale) == (c.factor, c.scale)) {
                codes.push(Coding { factor: c.factor, scale: c.scale, levels: coded_levels(&factors[c.factor], c.scale) });
            }
        }
        ModelTerms { terms, codes }
    }

    fn code(&self, factor: usize, scale: Scale) -> &[Vec<f64>] {
        &self.codes.iter().find(|k| (k.factor, k.scale) == (factor, scale)).expect("coded when the model was built").levels
    }

    /// Model-matrix columns: the intercept and each term's (a categorical factor has levels - 1).
    pub fn columns(&self) -> usize {
        1 + self
            .terms
            .iter()
            .map(|t| t.components.iter().map(|c| self.code(c.factor, c.scale)[0].len()).product::<usize>())
            .sum::<usize>()
    }

    /// The model-matrix row of a point given as level indices in factor order.
    pub fn row(&self, levels: &[u32]) -> Vec<f64> {
        let mut row = vec![1.0];
        for t in &self.terms {
            let mut cols = vec![1.0];
            for c in &t.components {
                let coded = &self.code(c.factor, c.scale)[levels[c.factor] as usize];
                cols = cols.iter().flat_map(|a| coded.iter().map(move |b| a * b.powi(c.power as i32))).collect();
            }
            row.extend(cols);
        }
        row
    }

    /// The factors and the pairs of factors the model has terms for.
    pub fn effects(&self) -> Effects {
        let mut e = Effects::default();
        for t in &self.terms {
            let mut fs: Vec<usize> = t.components.iter().map(|c| c.factor).collect();
            fs.sort_unstable();
            fs.dedup();
            for (i, a) in fs.iter().enumerate() {
                if !e.factors.contains(a) {
                    e.factors.push(*a);
                }
                for b in &fs[i + 1..] {
                    if !e.pairs.contains(&(*a, *b)) {
                        e.pairs.push((*a, *b));
                    }
                }
            }
        }
        e.factors.sort_unstable();
        e.pairs.sort_unstable();
        e
    }
}

/// Each level's coded columns: one value in [-1, 1] for a numeric scale, the
/// effect code (a unit vector, or all -1 for the last level) for a categorical one.
fn coded_levels(factor: &Factor, scale: Scale) -> Vec<Vec<f64>> {
    let k = factor.levels.len();
    if scale == Scale::Effect {
        return (0..k)
            .map(|l| {
                (0..k - 1)
                    .map(|c| {
                        if l == k - 1 {
                            -1.0
                        } else if c == l {
                            1.0
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect();
    }
    let vals: Vec<f64> = factor
        .levels
        .iter()
        .map(|l| {
            let v = l.as_f64().unwrap_or(0.0);
            if scale == Scale::Log {
                v.ln()
            } else {
                v
            }
        })
        .collect();
    let (lo, hi) = vals.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    vals.iter().map(|v| vec![if hi > lo { 2.0 * (v - lo) / (hi - lo) - 1.0 } else { 0.0 }]).collect()
}
