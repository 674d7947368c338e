//! Rules: `when <condition> then run <ad-hoc patterns> because "..."`.
//! Conditions read stored results and analyses; a condition whose figures do
//! not exist yet is undecided and does not fire. Apply evaluates the rules after
//! every result and runs the patterns of the rules that fire.

use super::analysis::metric_key;
use super::ResultRecord;
use crate::check::model::RuleDecl;
use crate::check::value::{binary_values, Eval, Value};
use crate::design::Design;
use crate::syntax::ast::{Arg, BinOp, Expr, ExprKind, Unit};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A rule that fired: why, and the ad-hoc patterns it asks for.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Fired {
    /// Index of the rule in the experiment (its identity within one apply).
    pub rule: usize,
    pub condition: String,
    pub reason: String,
    pub patterns: Vec<String>,
    #[serde(default)]
    pub at: String,
}

/// What conditions read: this experiment's results and those of the one it extends.
pub struct Ctx<'a> {
    pub design: &'a Design,
    pub results: &'a [ResultRecord],
    /// Results of the experiment this one extends: `expected(...)` reads them.
    pub parent: &'a [ResultRecord],
}

/// Rules whose condition holds now. Undecided conditions (figures missing) do not fire.
pub fn evaluate(rules: &[RuleDecl], ctx: &Ctx) -> Vec<Fired> {
    let mut out = vec![];
    for (i, r) in rules.iter().enumerate() {
        if let Ok(Value::Bool(true)) = ctx.eval(&r.cond) {
            let patterns = ctx.patterns(&r.action).unwrap_or_default();
            out.push(Fired {
                rule: i,
                condition: crate::syntax::fmt::expr_text(&r.cond),
                reason: r.reason.clone().unwrap_or_default(),
                patterns,
                at: crate::state::lock::now_rfc3339(),
            });
        }
    }
    out
}

fn latency(metric: &str) -> bool {
    metric.starts_with("ttft") || metric.starts_with("tpot") || metric.starts_with("e2e") || metric.ends_with("_ms")
}

impl Ctx<'_> {
    fn literal(&self, e: &Expr) -> Result<Value, String> {
        let scope: BTreeMap<String, Value> = BTreeMap::new();
        Eval { scope: &scope, kv_bytes_per_token: None }.eval(e).map_err(|d| d.message)
    }

    /// A bare name is a metric or tool name; anything else is evaluated.
    fn word(&self, e: &Expr) -> Result<String, String> {
        match &e.kind {
            ExprKind::Name(i) => Ok(i.name.clone()),
            _ => Ok(self.literal(e)?.interpolated()),
        }
    }

    pub fn eval(&self, e: &Expr) -> Result<Value, String> {
        match &e.kind {
            ExprKind::Paren(x) => self.eval(x),
            ExprKind::Unary(_, _) | ExprKind::Ternary(..) => self.literal(e),
            ExprKind::Binary(op, a, b) => {
                if matches!(op, BinOp::And | BinOp::Or) {
                    let av = self.eval(a)?.as_bool().ok_or("`and`/`or` need booleans")?;
                    if (*op == BinOp::And && !av) || (*op == BinOp::Or && av) {
                        return Ok(Value::Bool(av));
                    }
                    return Ok(Value::Bool(self.eval(b)?.as_bool().ok_or("`and`/`or` need booleans")?));
                }
                let (av, bv) = (self.eval(a)?, self.eval(b)?);
                binary_values(*op, &av, &bv, a.span, b.span).map_err(|d| d.message)
            }
            ExprKind::Call(f, args) => {
                let name = match &f.kind {
                    ExprKind::Name(i) => i.name.as_str(),
                    _ => return Err("only built-in functions can be called".into()),
                };
                self.call(name, args)
            }
            _ => self.literal(e),
        }
    }

    fn call(&self, name: &str, args: &[Arg]) -> Result<Value, String> {
        let positional: Vec<&Expr> = args.iter().filter(|a| a.name.is_none()).map(|a| &a.value).collect();
        let named = || -> Result<Vec<(String, Value)>, String> {
            args.iter()
                .filter_map(|a| a.name.as_ref().map(|n| (n.name.clone(), &a.value)))
                .map(|(n, v)| Ok((n, self.literal(v)?)))
                .collect()
        };
        match name {
            "abs" | "min" | "max" => {
                let vals: Vec<Value> = positional.iter().map(|x| self.eval(x)).collect::<Result<_, _>>()?;
                let nums: Vec<(f64, Unit)> = vals
                    .iter()
                    .filter_map(|v| match v {
                        Value::Num(n, u) => Some((*n, *u)),
                        _ => None,
                    })
                    .collect();
                let (first, unit) = *nums.first().ok_or_else(|| format!("`{name}` needs numbers"))?;
                let v = match name {
                    "abs" => first.abs(),
                    "min" => nums.iter().map(|x| x.0).fold(f64::INFINITY, f64::min),
                    _ => nums.iter().map(|x| x.0).fold(f64::NEG_INFINITY, f64::max),
                };
                Ok(Value::Num(v, unit))
            }
            "mean" | "expected" => {
                let metric = self.word(positional.first().ok_or("`mean` needs a metric")?)?;
                let source = if name == "mean" { self.results } else { self.parent };
                self.mean(source, &metric, &named()?)
            }
            "ratio" => {
                let metric = self.word(positional.first().ok_or("`ratio` needs a metric")?)?;
                let filters = named()?;
                let side = |which: &str| -> Result<Value, String> {
                    let mut f: Vec<(String, Value)> = filters.iter().filter(|(k, _)| k != "a" && k != "b").cloned().collect();
                    let layer = filters.iter().find(|(k, _)| k == which).ok_or("`ratio` needs a = LAYER and b = LAYER")?;
                    f.push(("layer".into(), layer.1.clone()));
                    self.mean(self.results, &metric, &f)
                };
                match (side("a")?.as_f64(), side("b")?.as_f64()) {
                    (Some(a), Some(b)) if b != 0.0 => Ok(Value::num(a / b)),
                    _ => Err("ratio of a zero".into()),
                }
            }
            "bimodal" => {
                let analysis = self.word(positional.first().ok_or("`bimodal` needs an analysis name")?)?;
                let rec = self
                    .results
                    .iter()
                    .find(|r| r.kind == "analysis" && (r.id == analysis || r.id.ends_with(&format!("-{analysis}"))))
                    .ok_or_else(|| format!("analysis `{analysis}` has no result yet"))?;
                let b = rec.metrics.get("bimodal").ok_or_else(|| format!("analysis `{analysis}` is not a dip test"))?;
                Ok(Value::Bool(*b >= 1.0))
            }
            other => Err(format!("`{other}` cannot be used in a rule's condition")),
        }
    }

    /// Mean of a metric over results matching `layer = L` and factor filters.
    fn mean(&self, source: &[ResultRecord], metric: &str, filters: &[(String, Value)]) -> Result<Value, String> {
        let key = metric_key(metric);
        let want = |r: &ResultRecord| {
            filters.iter().all(|(k, v)| {
                let text = v.display().trim_matches('"').to_string();
                if k == "layer" {
                    return r.layer == text;
                }
                r.settings.get(k).and_then(|s| s.as_str()) == Some(text.as_str())
            })
        };
        let vals: Vec<f64> = source.iter().filter(|r| want(r)).filter_map(|r| r.metrics.get(&key).copied()).collect();
        if vals.is_empty() {
            return Err(format!("no `{key}` results yet"));
        }
        let m = super::stats::mean(&vals);
        // Latencies are stored in ms; as durations they compare with `15ms` literals.
        Ok(if latency(&key) { Value::Num(m / 1000.0, Unit::Duration) } else { Value::num(m) })
    }

    /// The ad-hoc patterns an action names: `adhoc(tool, param = value...)` or a list of ids.
    pub fn patterns(&self, action: &Expr) -> Result<Vec<String>, String> {
        match &action.kind {
            ExprKind::Call(f, args) if matches!(&f.kind, ExprKind::Name(i) if i.name == "adhoc") => {
                let tool = self.word(&args.iter().find(|a| a.name.is_none()).ok_or("`adhoc` needs a tool")?.value)?;
                let filters: Vec<(String, String)> = args
                    .iter()
                    .filter_map(|a| a.name.as_ref().map(|n| (n.name.clone(), &a.value)))
                    .map(|(n, v)| Ok((n, self.word(v)?)))
                    .collect::<Result<_, String>>()?;
                Ok(self
                    .design
                    .patterns
                    .iter()
                    .filter(|p| p.adhoc && p.tool.as_deref() == Some(tool.as_str()))
                    .filter(|p| filters.iter().all(|(k, v)| p.values.get(k).is_some_and(|x| &x.interpolated() == v)))
                    .map(|p| p.id.clone())
                    .collect())
            }
            ExprKind::List(items) => items.iter().map(|x| self.word(x)).collect(),
            _ => Ok(vec![self.word(action)?]),
        }
    }
}
