//! Rules (`when CONDITION then run ACTION because "..."`) checked before
//! anything runs: the functions a condition calls, the metrics, layers,
//! factors and analyses it names, the types of their arguments, and the tool
//! and parameters of an `adhoc(...)` action. `results::rules` evaluates the same
//! shapes at apply time, where a misspelling would only mean a rule that never
//! fires. Pattern ids in an action are checked once the design is expanded
//! (`check_ids`).

use super::model::{Experiment, Model};
use crate::design::Design;
use crate::diagnostics::{did_you_mean, Code, Diagnostic, OrHelp, Span};
use crate::syntax::ast::{Arg, Expr, ExprKind, StrPart};
use std::collections::{BTreeMap, BTreeSet};

/// Functions a condition may call, with what they take.
const FUNCTIONS: [(&str, &str); 8] = [
    ("mean", "mean(METRIC, layer = \"LAYER\", FACTOR = LEVEL...)"),
    ("expected", "expected(METRIC, layer = \"LAYER\", FACTOR = LEVEL...): the mean in the extended experiment"),
    ("ratio", "ratio(METRIC, a = \"LAYER\", b = \"LAYER\", FACTOR = LEVEL...)"),
    ("bimodal", "bimodal(\"ANALYSIS\"): a dip-test analysis found two modes"),
    ("front_size", "front_size(\"ANALYSIS\"): how many patterns are on a pareto analysis's front"),
    ("abs", "abs(NUMBER)"),
    ("min", "min(NUMBER, NUMBER...)"),
    ("max", "max(NUMBER, NUMBER...)"),
];

/// Figures the benchmark reports for every E2E pattern (`results::vllm::parse`), and their short names;
/// the SLO figures exist when the pattern has an `slo` (`results::slo`).
const E2E_METRICS: [&str; 15] = [
    "goodput_rps",
    "slo_attainment",
    "slo_met",
    "ttft",
    "tpot",
    "e2e",
    "throughput",
    "ttft_mean",
    "ttft_p50",
    "ttft_p99",
    "tpot_mean",
    "tpot_p50",
    "tpot_p99",
    "e2e_latency_mean",
    "throughput_tps",
];

/// What a rule of one experiment may name: its own and its ancestors' layers, factors and analyses.
struct Names<'m> {
    layers: BTreeSet<&'m str>,
    factors: BTreeMap<&'m str, &'m [super::value::Value]>,
    /// Analyses by name, with their method's function (`dip_test`, `pareto`; empty when not a call).
    analyses: BTreeMap<&'m str, &'m str>,
    metrics: BTreeSet<&'m str>,
    model: &'m Model,
}

impl<'m> Names<'m> {
    fn of(model: &'m Model, exp: &'m Experiment) -> Names<'m> {
        let mut n = Names {
            layers: BTreeSet::new(),
            factors: BTreeMap::new(),
            analyses: BTreeMap::new(),
            metrics: E2E_METRICS.into_iter().collect(),
            model,
        };
        for t in model.tools.values() {
            n.metrics.extend(t.metrics.iter().map(String::as_str));
        }
        let mut seen = BTreeSet::new();
        let mut cur = Some(exp);
        while let Some(e) = cur.filter(|e| seen.insert(e.name.as_str())) {
            for f in &e.factors {
                n.factors.entry(f.name.as_str()).or_insert(&f.levels);
            }
            for l in &e.layers {
                n.layers.insert(l.name.as_str());
                for a in &l.analyses {
                    n.analyses.insert(a.name.as_str(), super::analysis::method_name(&a.method).unwrap_or(""));
                    n.metrics.extend(a.metrics.iter().map(String::as_str));
                }
            }
            cur = e.extends.as_deref().and_then(|p| model.experiments.iter().find(|x| x.name == p));
        }
        n
    }
}

/// Checks every rule of every experiment.
pub fn check(model: &Model, diags: &mut Vec<Diagnostic>) {
    for exp in &model.experiments {
        if exp.rules.is_empty() {
            continue;
        }
        let names = Names::of(model, exp);
        for r in &exp.rules {
            condition(&names, &r.cond, diags);
            action(&names, &r.action, diags);
        }
    }
}

fn unknown(span: Span, what: &str, name: &str, known: &[&str], diags: &mut Vec<Diagnostic>) {
    let help = did_you_mean(name, known.iter().copied()).or_help(|| {
        if known.is_empty() {
            format!("no {what} is defined here")
        } else {
            format!("known: {}", known.join(", "))
        }
    });
    diags.push(Diagnostic::error(Code::UnknownReference, span, format!("no {what} named `{name}`")).help(help));
}

fn condition(n: &Names, e: &Expr, diags: &mut Vec<Diagnostic>) {
    match &e.kind {
        ExprKind::Paren(x) | ExprKind::Unary(_, x) => condition(n, x, diags),
        ExprKind::Binary(_, a, b) => {
            condition(n, a, diags);
            condition(n, b, diags);
        }
        ExprKind::Ternary(a, b, c) => {
            for x in [a, b, c] {
                condition(n, x, diags);
            }
        }
        ExprKind::Call(f, args) => call(n, f, args, e.span, diags),
        ExprKind::Name(i) => {
            let mut d = Diagnostic::error(Code::UnknownName, i.span, format!("unknown name `{}` in a rule's condition", i.name));
            d = d.help(if n.metrics.contains(i.name.as_str()) {
                format!("a metric is read through a function: `mean({}, layer = \"LAYER\")`", i.name)
            } else {
                "conditions read results through mean(...), expected(...), ratio(...) and bimodal(...)".to_string()
            });
            diags.push(d);
        }
        ExprKind::Member(..) | ExprKind::With(..) | ExprKind::List(_) | ExprKind::Tuple(_) | ExprKind::Record(_) => {
            diags.push(Diagnostic::error(Code::Type, e.span, "a rule's condition compares numbers read from results"))
        }
        _ => {}
    }
}

fn call(n: &Names, f: &Expr, args: &[Arg], span: Span, diags: &mut Vec<Diagnostic>) {
    let ExprKind::Name(fname) = &f.kind else {
        diags.push(Diagnostic::error(Code::Type, f.span, "only built-in functions can be called in a rule"));
        return;
    };
    let Some((_, usage)) = FUNCTIONS.iter().find(|(name, _)| *name == fname.name) else {
        let names: Vec<&str> = FUNCTIONS.iter().map(|f| f.0).collect();
        let help = did_you_mean(&fname.name, names.iter().copied())
            .or_help(|| format!("a rule's condition can call {}", names.join(", ")));
        diags.push(
            Diagnostic::error(Code::UnknownName, fname.span, format!("`{}` is not a function a rule can call", fname.name))
                .help(help),
        );
        return;
    };
    let positional: Vec<&Expr> = args.iter().filter(|a| a.name.is_none()).map(|a| &a.value).collect();
    let bad_args = |msg: String, at: Span, diags: &mut Vec<Diagnostic>| {
        diags.push(Diagnostic::error(Code::Type, at, msg).help(format!("write {usage}")));
    };
    match fname.name.as_str() {
        "abs" | "min" | "max" => {
            if let Some(a) = args.iter().find_map(|a| a.name.as_ref()) {
                bad_args(format!("`{}` takes no named arguments", fname.name), a.span, diags);
            }
            let want = if fname.name == "abs" { 1..=1 } else { 1..=usize::MAX };
            if !want.contains(&positional.len()) {
                bad_args(
                    format!("`{}` takes {}", fname.name, if fname.name == "abs" { "one number" } else { "numbers" }),
                    span,
                    diags,
                );
            }
            for x in positional {
                condition(n, x, diags);
            }
        }
        "mean" | "expected" | "ratio" => {
            match positional.as_slice() {
                [m] => metric(n, m, diags),
                _ => bad_args(
                    format!("`{}` takes one metric, found {} positional arguments", fname.name, positional.len()),
                    span,
                    diags,
                ),
            }
            let mut sides = 0;
            for a in args {
                let Some(key) = &a.name else { continue };
                match key.name.as_str() {
                    "layer" if fname.name != "ratio" => layer(n, &a.value, diags),
                    "a" | "b" if fname.name == "ratio" => {
                        sides += 1;
                        layer(n, &a.value, diags);
                    }
                    other => filter(n, key.span, other, &a.value, diags),
                }
            }
            if fname.name == "ratio" && sides != 2 {
                bad_args("`ratio` compares two layers: give both `a` and `b`".into(), span, diags);
            }
        }
        "bimodal" | "front_size" => {
            let (method, usage) =
                if fname.name == "bimodal" { ("dip_test", "dip_test(METRIC)") } else { ("pareto", "pareto(LATENCY)") };
            match positional.as_slice() {
                [x] => match string(x) {
                    Some(name) => match n.analyses.get(name.as_str()) {
                        Some(m) if *m == method => {}
                        Some(_) => diags.push(
                            Diagnostic::error(Code::Type, x.span, format!("analysis `{name}` is not a {method} analysis"))
                                .help(format!("`{}` reads an analysis with `method = {usage}`", fname.name)),
                        ),
                        None => {
                            let known: Vec<&str> = n.analyses.keys().copied().collect();
                            unknown(x.span, "analysis", &name, &known, diags)
                        }
                    },
                    None => bad_args(format!("`{}` takes the analysis name as a string", fname.name), x.span, diags),
                },
                _ => bad_args(format!("`{}` takes one analysis name", fname.name), span, diags),
            }
        }
        _ => {}
    }
}

/// A literal string, or a bare name (conditions accept both for names).
fn string(e: &Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Str(parts) => parts
            .iter()
            .map(|p| match p {
                StrPart::Text(t) => Some(t.as_str()),
                StrPart::Interp(_) => None,
            })
            .collect::<Option<String>>(),
        ExprKind::Name(i) => Some(i.name.clone()),
        _ => None,
    }
}

fn metric(n: &Names, e: &Expr, diags: &mut Vec<Diagnostic>) {
    let Some(name) = string(e) else {
        diags.push(Diagnostic::error(Code::Type, e.span, "a metric is a name such as `ttft`, `tpot_p99` or `latency_us`"));
        return;
    };
    if !n.metrics.contains(name.as_str()) {
        let known: Vec<&str> = n.metrics.iter().copied().collect();
        unknown(e.span, "metric", &name, &known, diags);
    }
}

fn layer(n: &Names, e: &Expr, diags: &mut Vec<Diagnostic>) {
    match &e.kind {
        ExprKind::Str(_) => {
            let Some(name) = string(e) else { return };
            if !n.layers.contains(name.as_str()) {
                let known: Vec<&str> = n.layers.iter().copied().collect();
                unknown(e.span, "layer", &name, &known, diags);
            }
        }
        _ => diags.push(Diagnostic::error(Code::Type, e.span, "a layer is named by a string").help("write `layer = \"L2-EFA\"`")),
    }
}

/// `FACTOR = LEVEL`: a factor of the experiment and one of its levels.
fn filter(n: &Names, at: Span, key: &str, value: &Expr, diags: &mut Vec<Diagnostic>) {
    let Some(levels) = n.factors.get(key) else {
        let mut known: Vec<&str> = n.factors.keys().copied().collect();
        known.push("layer");
        let help = did_you_mean(key, known.iter().copied()).or_help(|| format!("filters are {}", known.join(", ")));
        diags.push(Diagnostic::error(Code::UnknownReference, at, format!("no factor named `{key}` to filter on")).help(help));
        return;
    };
    let scope: BTreeMap<String, super::value::Value> = BTreeMap::new();
    let v = super::value::Eval { scope: &scope, kv_bytes_per_token: None }.eval(value).or_else(|_| match &value.kind {
        ExprKind::Name(i) => Ok(super::value::Value::Sym(i.name.clone())),
        _ => Err(()),
    });
    match v {
        Ok(v) if levels.iter().any(|l| super::value::values_equal(l, &v)) => {}
        Ok(v) => {
            let shown: Vec<String> = levels.iter().take(12).map(|l| l.display()).collect();
            diags.push(
                Diagnostic::error(Code::Domain, value.span, format!("{} is not a level of factor `{key}`", v.display()))
                    .help(format!("its levels are {}", shown.join(", "))),
            );
        }
        Err(_) => diags.push(Diagnostic::error(Code::Type, value.span, format!("`{key}` takes one level, written literally"))),
    }
}

fn action(n: &Names, e: &Expr, diags: &mut Vec<Diagnostic>) {
    match &e.kind {
        ExprKind::Call(f, args) if matches!(&f.kind, ExprKind::Name(i) if i.name == "adhoc") => {
            let tools: Vec<&str> = n.model.tools.keys().map(String::as_str).collect();
            let mut positional = args.iter().filter(|a| a.name.is_none());
            let tool = match (positional.next(), positional.next()) {
                (Some(a), None) => match &a.value.kind {
                    ExprKind::Name(i) => match n.model.tools.get(&i.name) {
                        Some(t) => Some(t),
                        None => {
                            unknown(i.span, "tool", &i.name, &tools, diags);
                            None
                        }
                    },
                    _ => {
                        diags.push(Diagnostic::error(Code::Type, a.value.span, "`adhoc` takes the name of a tool"));
                        None
                    }
                },
                _ => {
                    diags.push(
                        Diagnostic::error(Code::Type, e.span, "`adhoc` takes one tool")
                            .help("write `adhoc(TOOL, PARAM = VALUE...)`"),
                    );
                    None
                }
            };
            let Some(tool) = tool else { return };
            for a in args {
                let Some(key) = &a.name else { continue };
                if !tool.params.contains_key(&key.name) {
                    let params: Vec<&str> = tool.params.keys().map(String::as_str).collect();
                    let help = did_you_mean(&key.name, params.iter().copied()).or_help(|| {
                        if params.is_empty() {
                            format!("`{}` takes no parameters", tool.name)
                        } else {
                            format!("its parameters are {}", params.join(", "))
                        }
                    });
                    diags.push(
                        Diagnostic::error(
                            Code::UnknownAttribute,
                            key.span,
                            format!("tool `{}` has no parameter `{}`", tool.name, key.name),
                        )
                        .help(help),
                    );
                }
            }
        }
        ExprKind::Call(f, _) => {
            let help = match &f.kind {
                ExprKind::Name(i) => did_you_mean(&i.name, ["adhoc"]).or_help(|| "write `adhoc(TOOL)`".into()),
                _ => "write `adhoc(TOOL)`".into(),
            };
            diags.push(
                Diagnostic::error(Code::UnknownName, f.span, "a rule runs `adhoc(TOOL)` or a list of pattern ids").help(help),
            );
        }
        ExprKind::List(items) => {
            for i in items {
                if string(i).is_none() {
                    diags.push(Diagnostic::error(Code::Type, i.span, "a pattern id is a string"));
                }
            }
        }
        ExprKind::Str(_) | ExprKind::Name(_) => {}
        _ => diags.push(Diagnostic::error(Code::Type, e.span, "a rule runs `adhoc(TOOL)` or a list of pattern ids")),
    }
}

/// Pattern ids a rule's action lists, against the expanded design of its experiment.
pub fn check_ids(model: &Model, designs: &[&Design]) -> Vec<Diagnostic> {
    let mut diags = vec![];
    for d in designs {
        let Some(exp) = model.experiments.iter().find(|e| e.name == d.experiment) else { continue };
        let ids: BTreeSet<&str> = d.patterns.iter().map(|p| &*p.id).collect();
        for r in &exp.rules {
            let items: Vec<&Expr> = match &r.action.kind {
                ExprKind::List(items) => items.iter().collect(),
                ExprKind::Str(_) | ExprKind::Name(_) => vec![&r.action],
                _ => continue,
            };
            for i in items {
                let Some(id) = string(i) else { continue };
                if !ids.contains(id.as_str()) {
                    let help = did_you_mean(&id, ids.iter().copied())
                        .or_help(|| "`nixl plan` lists the pattern ids; ad-hoc ones are in layers with `adhoc`".into());
                    diags.push(
                        Diagnostic::error(
                            Code::UnknownReference,
                            i.span,
                            format!("no pattern `{id}` in experiment `{}`", exp.name),
                        )
                        .help(help),
                    );
                }
            }
        }
    }
    diags
}
