//! Rules: `when <condition> then run <ad-hoc patterns> because "..."`.
//! Conditions read stored results and analyses. A figure is read only once it
//! is final: `mean(ttft, layer = "L2-EFA")` waits until every scheduled pattern
//! of that layer (and filters) has a result for its current settings, so a rule
//! never fires on the first result of a layer or on a stale one; until then the
//! condition is undecided and does not fire. `expected(...)` reads the extended
//! experiment's results at the levels this experiment measured, like with like.
//! Apply evaluates the rules after every result and runs what the rules that fire ask for.

use super::analysis::metric_key;
use super::ResultRecord;
use crate::check::model::RuleDecl;
use crate::check::value::{binary_values, Eval, Value};
use crate::design::Design;
use crate::diagnostics::Diagnostic;
use crate::syntax::ast::{Arg, BinOp, Expr, ExprKind, Unit};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Why a condition or an action could not be evaluated. [`RuleError::is_undecided`]
/// tells figures that do not exist yet from conditions that cannot work.
#[derive(Clone, Debug, PartialEq)]
pub enum RuleError {
    /// A literal or operator the checker's evaluator rejected, with its diagnostic.
    Expression(Box<Diagnostic>),
    /// `and`/`or` on something that is not a boolean.
    NeedBooleans,
    /// A call of something other than a built-in function's name.
    NotBuiltin,
    /// A built-in called without an argument it needs: "`{function}` needs {needs}".
    MissingArgument { function: &'static str, needs: &'static str },
    /// `abs`, `min` or `max` without a number among its arguments.
    NeedsNumbers { function: String },
    /// No result with the metric matches the filters yet (undecided).
    NoResultsYet { metric: String },
    /// The analysis has not run yet, or not on the current results (undecided).
    NoAnalysisYet { analysis: String },
    /// Some scheduled patterns the figure reads have no current result yet (undecided).
    Waiting { metric: String, missing: usize, of: usize },
    /// `bimodal(...)` of an analysis that is not a dip test.
    NotDipTest { analysis: String },
    /// `front_size(...)` of an analysis that is not a pareto front.
    NotPareto { analysis: String },
    /// `ratio` whose `b` side is zero or not a number.
    RatioOfZero,
    /// A function that conditions cannot call.
    NotAllowed(String),
}

impl RuleError {
    /// The figures a condition reads do not exist yet: it is undecided, neither true nor broken.
    pub fn is_undecided(&self) -> bool {
        matches!(self, RuleError::NoResultsYet { .. } | RuleError::NoAnalysisYet { .. } | RuleError::Waiting { .. })
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleError::Expression(d) => write!(f, "{}", d.message),
            RuleError::NeedBooleans => write!(f, "`and`/`or` need booleans"),
            RuleError::NotBuiltin => write!(f, "only built-in functions can be called"),
            RuleError::MissingArgument { function, needs } => write!(f, "`{function}` needs {needs}"),
            RuleError::NeedsNumbers { function } => write!(f, "`{function}` needs numbers"),
            RuleError::NoResultsYet { metric } => write!(f, "no `{metric}` results yet"),
            RuleError::NoAnalysisYet { analysis } => write!(f, "analysis `{analysis}` has no result yet"),
            RuleError::Waiting { metric, missing, of } => {
                write!(f, "`{metric}`: {missing} of the {of} patterns it reads have no current result yet")
            }
            RuleError::NotDipTest { analysis } => write!(f, "analysis `{analysis}` is not a dip test"),
            RuleError::NotPareto { analysis } => write!(f, "analysis `{analysis}` is not a pareto front"),
            RuleError::RatioOfZero => write!(f, "ratio of a zero"),
            RuleError::NotAllowed(name) => write!(f, "`{name}` cannot be used in a rule's condition"),
        }
    }
}

impl std::error::Error for RuleError {}

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
    /// The scheduled patterns with their current hashes (see [`scheduled`]): a figure
    /// waits for all of those it reads. Empty: every stored result counts as final.
    pub scheduled: &'a [Scheduled],
}

/// A scheduled pattern as a rule sees it: what it must have a result for.
#[derive(Clone, Debug, PartialEq)]
pub struct Scheduled {
    pub id: String,
    pub layer: String,
    /// The content hash its result must carry to be current.
    pub hash: String,
    /// Its settings as results store them (`prompt` = "12K"), for the filters.
    pub settings: BTreeMap<String, String>,
    /// The analysis it computes, for `bimodal("NAME")`.
    pub analysis: Option<String>,
}

/// The scheduled (not ad-hoc) patterns of a campaign, for [`Ctx::scheduled`].
pub fn scheduled(model: &crate::check::Model, campaign: &crate::design::Campaign) -> Vec<Scheduled> {
    let resolver = crate::design::Resolver::new(model, campaign);
    campaign
        .design
        .scheduled()
        .map(|p| Scheduled {
            id: p.id.to_string(),
            layer: campaign.design.layers.get(p.layer as usize).map(|l| l.name.clone()).unwrap_or_default(),
            hash: resolver.hash(p),
            settings: resolver
                .settings(p)
                .iter()
                .filter(|(_, v)| !matches!(v, Value::Ref { .. }))
                .map(|(k, v)| (k.clone(), super::setting_text(v)))
                .collect(),
            analysis: p.analysis().map(str::to_string),
        })
        .collect()
}

/// Rules whose condition holds now. Undecided conditions (figures missing) do not fire.
pub fn evaluate(rules: &[RuleDecl], ctx: &Ctx) -> Vec<Fired> {
    let mut out = vec![];
    for (i, r) in rules.iter().enumerate() {
        let holds = match ctx.eval(&r.cond) {
            Ok(v) => matches!(v, Value::Bool(true)),
            // Figures missing: undecided, asked again after the next result.
            Err(e) if e.is_undecided() => false,
            // A condition that cannot be evaluated never fires; `nixl check` reports what it can.
            Err(_) => false,
        };
        if holds {
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
    fn literal(&self, e: &Expr) -> Result<Value, RuleError> {
        let scope: BTreeMap<String, Value> = BTreeMap::new();
        Eval { scope: &scope, kv_bytes_per_token: None }.eval(e).map_err(RuleError::Expression)
    }

    /// A bare name is a metric or tool name; anything else is evaluated.
    fn word(&self, e: &Expr) -> Result<String, RuleError> {
        match &e.kind {
            ExprKind::Name(i) => Ok(i.name.clone()),
            _ => Ok(self.literal(e)?.interpolated()),
        }
    }

    pub fn eval(&self, e: &Expr) -> Result<Value, RuleError> {
        match &e.kind {
            ExprKind::Paren(x) => self.eval(x),
            ExprKind::Unary(_, _) | ExprKind::Ternary(..) => self.literal(e),
            ExprKind::Binary(op, a, b) => {
                if matches!(op, BinOp::And | BinOp::Or) {
                    let av = self.eval(a)?.as_bool().ok_or(RuleError::NeedBooleans)?;
                    if (*op == BinOp::And && !av) || (*op == BinOp::Or && av) {
                        return Ok(Value::Bool(av));
                    }
                    return Ok(Value::Bool(self.eval(b)?.as_bool().ok_or(RuleError::NeedBooleans)?));
                }
                let (av, bv) = (self.eval(a)?, self.eval(b)?);
                binary_values(*op, &av, &bv, a.span, b.span).map_err(RuleError::Expression)
            }
            ExprKind::Call(f, args) => {
                let name = match &f.kind {
                    ExprKind::Name(i) => i.name.as_str(),
                    _ => return Err(RuleError::NotBuiltin),
                };
                self.call(name, args)
            }
            _ => self.literal(e),
        }
    }

    fn call(&self, name: &str, args: &[Arg]) -> Result<Value, RuleError> {
        let positional: Vec<&Expr> = args.iter().filter(|a| a.name.is_none()).map(|a| &a.value).collect();
        let named = || -> Result<Vec<(String, Value)>, RuleError> {
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
                let (first, unit) = *nums.first().ok_or_else(|| RuleError::NeedsNumbers { function: name.to_string() })?;
                let v = match name {
                    "abs" => first.abs(),
                    "min" => nums.iter().map(|x| x.0).fold(f64::INFINITY, f64::min),
                    _ => nums.iter().map(|x| x.0).fold(f64::NEG_INFINITY, f64::max),
                };
                Ok(Value::Num(v, unit))
            }
            "mean" | "expected" => {
                let metric =
                    self.word(positional.first().ok_or(RuleError::MissingArgument { function: "mean", needs: "a metric" })?)?;
                if name == "mean" {
                    self.mean_here(&metric, &named()?)
                } else {
                    self.expected(&metric, &named()?)
                }
            }
            "ratio" => {
                let metric =
                    self.word(positional.first().ok_or(RuleError::MissingArgument { function: "ratio", needs: "a metric" })?)?;
                let filters = named()?;
                let side = |which: &str| -> Result<Value, RuleError> {
                    let mut f: Vec<(String, Value)> = filters.iter().filter(|(k, _)| k != "a" && k != "b").cloned().collect();
                    let layer = filters
                        .iter()
                        .find(|(k, _)| k == which)
                        .ok_or(RuleError::MissingArgument { function: "ratio", needs: "a = LAYER and b = LAYER" })?;
                    f.push(("layer".into(), layer.1.clone()));
                    self.mean_here(&metric, &f)
                };
                match (side("a")?.as_f64(), side("b")?.as_f64()) {
                    (Some(a), Some(b)) if b != 0.0 => Ok(Value::num(a / b)),
                    _ => Err(RuleError::RatioOfZero),
                }
            }
            "bimodal" => {
                let analysis = self.word(
                    positional.first().ok_or(RuleError::MissingArgument { function: "bimodal", needs: "an analysis name" })?,
                )?;
                let rec = self.analysis(&analysis)?;
                let b = rec.metrics.get("bimodal").ok_or_else(|| RuleError::NotDipTest { analysis: analysis.clone() })?;
                Ok(Value::Bool(*b >= 1.0))
            }
            "front_size" => {
                let analysis = self.word(
                    positional.first().ok_or(RuleError::MissingArgument { function: "front_size", needs: "an analysis name" })?,
                )?;
                let rec = self.analysis(&analysis)?;
                let n = rec.metrics.get("front_size").ok_or_else(|| RuleError::NotPareto { analysis: analysis.clone() })?;
                Ok(Value::num(*n))
            }
            other => Err(RuleError::NotAllowed(other.to_string())),
        }
    }

    /// An analysis's current result, by its declared name (or id): one computed from
    /// earlier inputs (they changed since) is not read.
    fn analysis(&self, analysis: &str) -> Result<&ResultRecord, RuleError> {
        let rec = self
            .results
            .iter()
            .find(|r| {
                r.kind == super::ResultKind::Analysis
                    && (r.settings.get("analysis").and_then(|v| v.as_str()) == Some(analysis) || r.id == analysis)
            })
            .ok_or_else(|| RuleError::NoAnalysisYet { analysis: analysis.to_string() })?;
        let current = self.scheduled.iter().find(|s| s.analysis.as_deref() == Some(analysis));
        if current.is_some_and(|s| s.id != rec.id || s.hash != rec.hash) {
            return Err(RuleError::NoAnalysisYet { analysis: analysis.to_string() });
        }
        Ok(rec)
    }

    /// This experiment's mean of a metric over `layer = L` and factor filters, once
    /// every scheduled pattern that matches has its current result.
    fn mean_here(&self, metric: &str, filters: &[(String, Value)]) -> Result<Value, RuleError> {
        let key = metric_key(metric);
        let wanted = self.matching(filters);
        if wanted.is_empty() {
            let vals: Vec<f64> =
                self.results.iter().filter(|r| record_matches(r, filters)).filter_map(|r| r.metrics.get(&key).copied()).collect();
            return as_mean(&key, &vals);
        }
        let current: Vec<&ResultRecord> =
            wanted.iter().filter_map(|s| self.results.iter().find(|r| r.id == s.id && r.hash == s.hash)).collect();
        if current.len() < wanted.len() {
            return Err(RuleError::Waiting { metric: key, missing: wanted.len() - current.len(), of: wanted.len() });
        }
        let vals: Vec<f64> = current.iter().filter_map(|r| r.metrics.get(&key).copied()).collect();
        as_mean(&key, &vals)
    }

    /// The extended experiment's mean at the levels this experiment measures under
    /// the same filters: like with like, never all of its levels against some of ours.
    fn expected(&self, metric: &str, filters: &[(String, Value)]) -> Result<Value, RuleError> {
        let key = metric_key(metric);
        let factors: Vec<&str> = self.design.factors.iter().map(|f| f.name.as_str()).collect();
        let levels = |s: &dyn Fn(&str) -> Option<String>| -> Vec<Option<String>> { factors.iter().map(|f| s(f)).collect() };
        let ours: Vec<Vec<Option<String>>> =
            self.matching(filters).iter().map(|s| levels(&|f: &str| s.settings.get(f).cloned())).collect();
        let vals: Vec<f64> = self
            .parent
            .iter()
            .filter(|r| record_matches(r, filters))
            .filter(|r| {
                ours.is_empty() || ours.contains(&levels(&|f: &str| r.settings.get(f).and_then(|v| v.as_str()).map(String::from)))
            })
            .filter_map(|r| r.metrics.get(&key).copied())
            .collect();
        as_mean(&key, &vals)
    }

    /// The scheduled patterns a figure with these filters reads.
    fn matching(&self, filters: &[(String, Value)]) -> Vec<&Scheduled> {
        self.scheduled
            .iter()
            .filter(|s| {
                filters.iter().all(|(k, v)| {
                    let text = super::setting_text(v);
                    if k == "layer" {
                        s.layer == text
                    } else {
                        s.settings.get(k) == Some(&text)
                    }
                })
            })
            .collect()
    }
}

fn record_matches(r: &ResultRecord, filters: &[(String, Value)]) -> bool {
    filters.iter().all(|(k, v)| {
        let text = super::setting_text(v);
        if k == "layer" {
            return r.layer == text;
        }
        r.settings.get(k).and_then(|s| s.as_str()) == Some(text.as_str())
    })
}

fn as_mean(key: &str, vals: &[f64]) -> Result<Value, RuleError> {
    if vals.is_empty() {
        return Err(RuleError::NoResultsYet { metric: key.to_string() });
    }
    let m = super::stats::mean(vals);
    // Latencies are stored in ms; as durations they compare with `15ms` literals.
    Ok(if latency(key) { Value::Num(m / 1000.0, Unit::Duration) } else { Value::num(m) })
}

impl Ctx<'_> {
    /// The ad-hoc patterns an action names: `adhoc(tool, param = value...)` or a list of ids.
    pub fn patterns(&self, action: &Expr) -> Result<Vec<String>, RuleError> {
        match &action.kind {
            ExprKind::Call(f, args) if matches!(&f.kind, ExprKind::Name(i) if i.name == "adhoc") => {
                let tool = self.word(
                    &args
                        .iter()
                        .find(|a| a.name.is_none())
                        .ok_or(RuleError::MissingArgument { function: "adhoc", needs: "a tool" })?
                        .value,
                )?;
                let filters: Vec<(String, String)> = args
                    .iter()
                    .filter_map(|a| a.name.as_ref().map(|n| (n.name.clone(), &a.value)))
                    .map(|(n, v)| Ok((n, self.word(v)?)))
                    .collect::<Result<_, RuleError>>()?;
                Ok(self
                    .design
                    .patterns
                    .iter()
                    .filter(|p| p.adhoc && p.tool() == Some(tool.as_str()))
                    .filter(|p| filters.iter().all(|(k, v)| p.values().get(k).is_some_and(|x| &x.interpolated() == v)))
                    .map(|p| p.id.to_string())
                    .collect())
            }
            ExprKind::List(items) => items.iter().map(|x| self.word(x)).collect(),
            _ => Ok(vec![self.word(action)?]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase2() -> (crate::pipeline::Loaded, Vec<RuleDecl>) {
        let loaded = crate::pipeline::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/phase2.nixl"));
        let rules = crate::design::merge::merged(&loaded.check.model, "phase2", &mut vec![]).unwrap().rules;
        (loaded, rules)
    }

    #[test]
    fn a_metric_without_results_is_undecided_and_the_rule_does_not_fire() {
        let (loaded, rules) = phase2();
        let design = loaded.design(Some("phase2")).unwrap();
        let ctx = Ctx { design, results: &[], parent: &[], scheduled: &[] };
        let e = ctx.eval(&rules[0].cond).unwrap_err();
        assert_eq!(e, RuleError::NoResultsYet { metric: "ttft_mean".into() });
        assert!(e.is_undecided());
        assert_eq!(e.to_string(), "no `ttft_mean` results yet");
        let e = ctx.eval(&rules[2].cond).unwrap_err();
        assert_eq!(e, RuleError::NoAnalysisYet { analysis: "bimodality-detection".into() });
        assert!(e.is_undecided());
        assert!(evaluate(&rules, &ctx).is_empty());
    }

    #[test]
    fn every_rule_error_says_what_it_said_as_a_string() {
        let cases = [
            (RuleError::NeedBooleans, "`and`/`or` need booleans"),
            (RuleError::NotBuiltin, "only built-in functions can be called"),
            (RuleError::MissingArgument { function: "mean", needs: "a metric" }, "`mean` needs a metric"),
            (
                RuleError::MissingArgument { function: "ratio", needs: "a = LAYER and b = LAYER" },
                "`ratio` needs a = LAYER and b = LAYER",
            ),
            (RuleError::MissingArgument { function: "adhoc", needs: "a tool" }, "`adhoc` needs a tool"),
            (RuleError::NeedsNumbers { function: "max".into() }, "`max` needs numbers"),
            (RuleError::NotDipTest { analysis: "a".into() }, "analysis `a` is not a dip test"),
            (RuleError::NotPareto { analysis: "a".into() }, "analysis `a` is not a pareto front"),
            (RuleError::RatioOfZero, "ratio of a zero"),
            (RuleError::NotAllowed("median".into()), "`median` cannot be used in a rule's condition"),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), text);
            assert!(!e.is_undecided(), "{e:?}");
        }
    }
}
