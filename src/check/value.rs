//! Values and the evaluator. The checker evaluates constants once; the design
//! engine evaluates `let`, `set`, `prune` and id templates once per pattern
//! with the factor levels bound.

use crate::diagnostics::{Code, Diagnostic, Span};
use crate::syntax::ast::{BinOp, Expr, ExprKind, StrPart, UnOp, Unit};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum Value {
    None,
    Bool(bool),
    Num(f64, Unit),
    Str(String),
    /// An enumeration literal such as `unified`, `efa` or `bf16`.
    Sym(String),
    List(Vec<Value>),
    Record(BTreeMap<String, Value>),
    /// A named top-level definition (`model qwen2_5_32b`, `tool fi_info`), with its fields.
    Ref {
        kind: String,
        name: String,
        fields: BTreeMap<String, Value>,
    },
    /// A fragment of shell nixl built itself (`{serve_args}`, each of its values quoted): a
    /// script takes it as it is, where any other interpolated value is quoted (`check::shell`).
    Shell(String),
}

impl Value {
    pub fn num(v: f64) -> Value {
        Value::Num(v, Unit::None)
    }
    pub fn type_name(&self) -> String {
        match self {
            Value::None => "none".into(),
            Value::Bool(_) => "a boolean".into(),
            Value::Num(_, u) => u.describe().into(),
            Value::Str(_) => "a string".into(),
            Value::Sym(_) => "a name".into(),
            Value::List(_) => "a list".into(),
            Value::Record(_) => "a record".into(),
            Value::Ref { kind, .. } => format!("a {kind}"),
            Value::Shell(_) => "shell text".into(),
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Num(v, _) => Some(*v),
            _ => None,
        }
    }
    /// A number, with `inf` (an unlimited request rate) as infinity: for ordering and figures.
    pub fn as_f64_or_inf(&self) -> Option<f64> {
        match self {
            Value::Sym(s) if s == "inf" => Some(f64::INFINITY),
            _ => self.as_f64(),
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Sym(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    /// A field of a record or reference.
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Record(m) | Value::Ref { fields: m, .. } => m.get(name),
            _ => None,
        }
    }
    pub fn truthy(&self) -> bool {
        !matches!(self, Value::None | Value::Bool(false))
    }

    /// The text a value contributes to an interpolated string (pattern ids use it):
    /// tokens as `12k`, bytes in binary units as `64kb`, names as written.
    pub fn interpolated(&self) -> String {
        let mut s = String::new();
        self.write_interpolated(&mut s);
        s
    }

    /// `interpolated` into a buffer: ids of a million patterns are built without temporaries.
    pub fn write_interpolated(&self, out: &mut String) {
        match self {
            Value::Num(v, Unit::None) if v.fract() == 0.0 && v.abs() < 1e15 => {
                let _ = write!(out, "{}", *v as i64);
            }
            Value::Num(v, Unit::Tokens) if *v >= 1024.0 && v % 1024.0 == 0.0 => {
                let _ = write!(out, "{}k", (*v / 1024.0) as i64);
            }
            Value::Str(s) | Value::Sym(s) | Value::Shell(s) => out.push_str(s),
            other => out.push_str(&other.interpolated_slow()),
        }
    }

    fn interpolated_slow(&self) -> String {
        match self {
            Value::Num(v, Unit::Tokens) => {
                if *v >= 1024.0 && v % 1024.0 == 0.0 {
                    format!("{}k", v / 1024.0)
                } else {
                    fmt_num(*v)
                }
            }
            Value::Num(v, Unit::Bytes) => binary_bytes(*v).to_lowercase(),
            Value::Num(v, Unit::Duration) => format!("{}s", fmt_num(*v)),
            Value::Num(v, Unit::Bandwidth) => format!("{}Gbps", fmt_num(v / 1e9)),
            Value::Num(v, Unit::Money) => format!("${v:.2}"),
            Value::Num(v, Unit::None) => fmt_num(*v),
            Value::Str(s) | Value::Sym(s) | Value::Shell(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::None => "none".into(),
            Value::Ref { name, .. } => name.clone(),
            other => other.display(),
        }
    }

    /// `display` into a buffer, without a temporary for plain numbers and tokens.
    pub fn write_display(&self, out: &mut String) {
        match self {
            Value::Num(v, Unit::None) if v.fract() == 0.0 && v.abs() < 1e15 => {
                let _ = write!(out, "{}", *v as i64);
            }
            Value::Num(v, Unit::Tokens) if *v >= 1024.0 && v % 1024.0 == 0.0 => {
                let _ = write!(out, "{}K", (*v / 1024.0) as i64);
            }
            other => out.push_str(&other.display()),
        }
    }

    /// How a value is shown in tables and `nixl show`: with its unit, upper-case.
    pub fn display(&self) -> String {
        match self {
            Value::Num(v, Unit::Tokens) => {
                if *v >= 1024.0 && v % 1024.0 == 0.0 {
                    format!("{}K", v / 1024.0)
                } else {
                    fmt_num(*v)
                }
            }
            Value::Num(v, Unit::Bytes) => binary_bytes(*v),
            Value::Num(v, Unit::Duration) => fmt_duration(*v),
            Value::Str(s) => format!("{s:?}"),
            Value::List(items) => format!("[{}]", items.iter().map(Value::display).collect::<Vec<_>>().join(", ")),
            Value::Record(m) => {
                let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k} = {}", v.display())).collect();
                format!("{{ {} }}", inner.join(", "))
            }
            other => other.interpolated(),
        }
    }
}

pub fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// 268435456 -> "256MiB"; values that are not whole binary multiples stay in bytes.
pub fn binary_bytes(v: f64) -> String {
    let units = [("TiB", 1u64 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (name, size) in units {
        let s = size as f64;
        if v >= s && (v % s == 0.0) {
            return format!("{}{}", fmt_num(v / s), name.replace("iB", "B"));
        }
    }
    format!("{}B", fmt_num(v))
}

/// A readable size: 3221225472 -> "3.0 GiB".
pub fn human_bytes(v: f64) -> String {
    let units = [("TiB", 1u64 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (name, size) in units {
        if v >= size as f64 {
            return format!("{:.1} {name}", v / size as f64);
        }
    }
    format!("{v} B")
}

pub fn fmt_duration(secs: f64) -> String {
    let s = secs.round() as i64;
    if s < 60 {
        return format!("{}s", fmt_num((secs * 10.0).round() / 10.0));
    }
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if m > 0 {
        let _ = write!(out, "{}{m}m", if h > 0 { " " } else { "" });
    }
    if sec > 0 && h == 0 {
        let _ = write!(out, "{}{sec}s", if m > 0 { " " } else { "" });
    }
    out
}

/// Names visible to an expression, innermost scope first.
pub trait Scope {
    fn lookup(&self, name: &str) -> Option<Value>;
}

impl Scope for BTreeMap<String, Value> {
    fn lookup(&self, name: &str) -> Option<Value> {
        self.get(name).cloned()
    }
}

/// A scope on top of another.
pub struct Layered<'a> {
    pub inner: &'a dyn Scope,
    pub outer: &'a dyn Scope,
}

impl Scope for Layered<'_> {
    fn lookup(&self, name: &str) -> Option<Value> {
        self.inner.lookup(name).or_else(|| self.outer.lookup(name))
    }
}

/// Enumeration literals: bare names that stand for themselves.
pub const SYMBOLS: &[&str] = &[
    "unified",
    "disaggregated",
    "efa",
    "srd",
    "tcp",
    "cluster",
    "spread",
    "partition",
    "spot",
    "on_demand",
    "bf16",
    "fp16",
    "fp32",
    "fp8",
    "cuda",
    "cpu",
    "libfabric",
    "ucx",
    "baseline",
    "lowlevel",
    "service",
    "all",
    "pairwise",
    "many_to_one",
    "one_to_many",
    "tag_bw",
    "tag_lat",
    "online",
    "offline",
    "ttft",
    "tpot",
    "e2e",
    "itl",
    "throughput",
    "full",
    "producer",
    "consumer",
    "both",
    "host",
    "yarn",
    "latency_us",
    "bandwidth_gb_s",
    "transfer_time_ms",
    // An unlimited request rate (`vllm bench serve --request-rate inf`).
    "inf",
    // Latencies a `pareto(...)` front may use (check::analysis::LATENCIES).
    "ttft_mean",
    "ttft_p50",
    "ttft_p90",
    "ttft_p99",
    "tpot_mean",
    "tpot_p50",
    "tpot_p90",
    "tpot_p99",
    "e2e_latency_mean",
    "e2e_latency_p50",
    "e2e_latency_p90",
    "e2e_latency_p99",
];

/// Built-in functions, with the number of positional arguments they take.
pub const FUNCTIONS: &[(&str, &str)] = &[
    ("min", "min(a, b, ...): the smallest argument"),
    ("max", "max(a, b, ...): the largest argument"),
    ("abs", "abs(x): absolute value"),
    ("log", "log(x): natural logarithm of a number (units dropped)"),
    ("len", "len(list): number of items"),
    ("num", "num(x): the plain number of a quantity, in base units (bytes, seconds, tokens)"),
    ("kv_bytes", "kv_bytes(tokens): KV-cache bytes of the experiment's model for that many tokens"),
    ("points", "points(...): an explicit list of design points"),
    ("d_optimal", "d_optimal(terms, runs = N): a D-optimal subset of the candidate points"),
    ("linear", "linear(x, y, ...): main-effect model terms"),
    ("quadratic", "quadratic(x, y, ...): full quadratic response-surface terms"),
    ("dip_test", "dip_test(metric): Hartigan's dip test for bimodality"),
    ("compare", "compare(metric, a = LAYER, b = LAYER): difference and ratio at matching levels"),
    ("correlation", "correlation(metric, with = METRIC): Pearson and Spearman correlation"),
    ("tpot_separation", "tpot_separation(): TPOT split into GPU compute and batch wait by clustering inter-token latencies"),
    ("tpot_spread", "tpot_spread(limit = 15ms): whether TPOT is independent of the backend across the input layers"),
    (
        "disaggregation_overhead",
        "disaggregation_overhead(): TTFT a disaggregated layer adds over unified serving at the same levels",
    ),
    ("pareto", "pareto(latency): the Pareto front of latency (ttft_p99 by default) against throughput per GPU"),
    ("mean", "mean(metric, layer = L, ...): mean of a metric over results"),
    ("expected", "expected(metric): the expectation declared for a metric"),
    ("bimodal", "bimodal(analysis): whether an analysis detected bimodality"),
    ("front_size", "front_size(analysis): how many patterns are on a pareto analysis's front"),
    ("ratio", "ratio(metric, a = L, b = L, ...): ratio of a metric between two result sets"),
    ("adhoc", "adhoc(tool, ...): the ad-hoc patterns of a tool"),
    (
        "secret",
        "secret(\"env:NAME\" or \"ssm:/path\"): read when apply runs and given to a setup step as an environment variable (`env` only); never in scripts, plans or the state",
    ),
];

pub struct Eval<'a> {
    pub scope: &'a dyn Scope,
    /// Bytes of KV cache per token of the experiment's model, for `kv_bytes`.
    pub kv_bytes_per_token: Option<f64>,
}

type R = Result<Value, Box<Diagnostic>>;

fn err(code: Code, span: Span, msg: impl Into<String>) -> Box<Diagnostic> {
    Box::new(Diagnostic::error(code, span, msg))
}

impl Eval<'_> {
    pub fn eval(&self, e: &Expr) -> R {
        match &e.kind {
            ExprKind::None => Ok(Value::None),
            ExprKind::Bool(b) => Ok(Value::Bool(*b)),
            ExprKind::Number { value, unit, .. } => Ok(Value::Num(*value, *unit)),
            ExprKind::Str(parts) => {
                let mut s = String::new();
                for p in parts {
                    match p {
                        StrPart::Text(t) => s.push_str(t),
                        StrPart::Interp(x) => self.eval(x)?.write_interpolated(&mut s),
                    }
                }
                Ok(Value::Str(s))
            }
            ExprKind::Raw { value, .. } => Ok(Value::Str(value.clone())),
            ExprKind::List(items) | ExprKind::Tuple(items) => {
                Ok(Value::List(items.iter().map(|x| self.eval(x)).collect::<Result<_, _>>()?))
            }
            ExprKind::Record(fields) => {
                let mut m = BTreeMap::new();
                for f in fields {
                    m.insert(f.name.name.clone(), self.eval(&f.value)?);
                }
                Ok(Value::Record(m))
            }
            ExprKind::Name(id) => self.name(&id.name, id.span),
            ExprKind::Member(base, field) => {
                let b = self.eval(base)?;
                match b.field(&field.name) {
                    Some(v) => Ok(v.clone()),
                    None => {
                        let names: Vec<String> = match &b {
                            Value::Record(m) | Value::Ref { fields: m, .. } => m.keys().cloned().collect(),
                            _ => vec![],
                        };
                        let mut d = Diagnostic::error(
                            Code::UnknownName,
                            field.span,
                            format!("{} has no field `{}`", b.type_name(), field.name),
                        );
                        if let Some(h) = crate::diagnostics::did_you_mean(&field.name, names.iter().map(String::as_str)) {
                            d = d.help(h);
                        }
                        Err(Box::new(d))
                    }
                }
            }
            ExprKind::With(base, fields) => {
                let mut b = self.eval(base)?;
                match &mut b {
                    Value::Record(m) | Value::Ref { fields: m, .. } => {
                        for f in fields {
                            m.insert(f.name.name.clone(), self.eval(&f.value)?);
                        }
                        Ok(b)
                    }
                    other => Err(err(
                        Code::Type,
                        base.span,
                        format!("`{{ ... }}` overrides fields of a record or definition, not of {}", other.type_name()),
                    )),
                }
            }
            ExprKind::Paren(x) => self.eval(x),
            ExprKind::Ternary(c, a, b) => {
                let cv = self.eval(c)?;
                match cv {
                    Value::Bool(true) => self.eval(a),
                    Value::Bool(false) => self.eval(b),
                    other => Err(err(Code::Type, c.span, format!("a condition must be a boolean, found {}", other.type_name()))),
                }
            }
            ExprKind::Unary(op, x) => {
                let v = self.eval(x)?;
                match (op, v) {
                    (UnOp::Not, Value::Bool(b)) => Ok(Value::Bool(!b)),
                    (UnOp::Neg, Value::Num(n, u)) => Ok(Value::Num(-n, u)),
                    (UnOp::Not, v) => Err(err(Code::Type, x.span, format!("`not` needs a boolean, found {}", v.type_name()))),
                    (UnOp::Neg, v) => Err(err(Code::Type, x.span, format!("`-` needs a number, found {}", v.type_name()))),
                }
            }
            ExprKind::Binary(op, a, b) => self.binary(*op, a, b),
            ExprKind::Call(f, args) => self.call(f, args, e.span),
        }
    }

    fn name(&self, name: &str, span: Span) -> R {
        if let Some(v) = self.scope.lookup(name) {
            return Ok(v);
        }
        if SYMBOLS.contains(&name) {
            return Ok(Value::Sym(name.to_string()));
        }
        Err(Box::new(Diagnostic::error(Code::UnknownName, span, format!("unknown name `{name}`")).subject(name)))
    }

    fn binary(&self, op: BinOp, a: &Expr, b: &Expr) -> R {
        if op == BinOp::And || op == BinOp::Or {
            let av = self.eval(a)?;
            let ab = av
                .as_bool()
                .ok_or_else(|| err(Code::Type, a.span, format!("`{}` needs booleans, found {}", op.symbol(), av.type_name())))?;
            if (op == BinOp::And && !ab) || (op == BinOp::Or && ab) {
                return Ok(Value::Bool(ab));
            }
            let bv = self.eval(b)?;
            return bv
                .as_bool()
                .map(Value::Bool)
                .ok_or_else(|| err(Code::Type, b.span, format!("`{}` needs booleans, found {}", op.symbol(), bv.type_name())));
        }
        let av = self.eval(a)?;
        let bv = self.eval(b)?;
        binary_values(op, &av, &bv, a.span, b.span)
    }

    fn call(&self, f: &Expr, args: &[crate::syntax::ast::Arg], span: Span) -> R {
        let name = match &f.kind {
            ExprKind::Name(i) => i.name.as_str(),
            _ => return Err(err(Code::Type, f.span, "only built-in functions can be called")),
        };
        let vals: Vec<Value> = args.iter().filter(|a| a.name.is_none()).map(|a| self.eval(&a.value)).collect::<Result<_, _>>()?;
        let nums = || -> Result<Vec<(f64, Unit)>, Box<Diagnostic>> {
            vals.iter()
                .zip(args)
                .map(|(v, a)| match v {
                    Value::Num(n, u) => Ok((*n, *u)),
                    other => Err(err(Code::Type, a.value.span, format!("`{name}` needs numbers, found {}", other.type_name()))),
                })
                .collect()
        };
        match name {
            "min" | "max" | "abs" | "log" => {
                let ns = nums()?;
                if ns.is_empty() {
                    return Err(err(Code::Eval, span, format!("`{name}` needs at least one argument")));
                }
                let unit = ns[0].1;
                if name != "log" {
                    if let Some((i, _)) = ns.iter().enumerate().find(|(_, (_, u))| *u != unit) {
                        return Err(err(
                            Code::Unit,
                            args[i].value.span,
                            format!("`{name}` arguments must share a unit: {} and {}", unit.describe(), ns[i].1.describe()),
                        ));
                    }
                }
                let v = match name {
                    "min" => ns.iter().map(|x| x.0).fold(f64::INFINITY, f64::min),
                    "max" => ns.iter().map(|x| x.0).fold(f64::NEG_INFINITY, f64::max),
                    "abs" => ns[0].0.abs(),
                    _ => {
                        if ns[0].0 <= 0.0 {
                            return Err(err(Code::Eval, args[0].value.span, "`log` of a number that is not positive"));
                        }
                        return Ok(Value::num(ns[0].0.ln()));
                    }
                };
                Ok(Value::Num(v, unit))
            }
            "num" => match vals.first() {
                Some(Value::Num(x, _)) => Ok(Value::num(*x)),
                Some(other) => {
                    Err(err(Code::Type, args[0].value.span, format!("`num` needs a number, found {}", other.type_name())))
                }
                None => Err(err(Code::Eval, span, "`num` needs one argument")),
            },
            "len" => match vals.first() {
                Some(Value::List(l)) => Ok(Value::num(l.len() as f64)),
                _ => Err(err(Code::Type, span, "`len` needs one list")),
            },
            // Only a setup step's `env` reads a secret (check::secret); anywhere else its value
            // would be written into a script or a file.
            "secret" => Err(super::secret::misplaced(f)),
            "kv_bytes" => {
                let per = self
                    .kv_bytes_per_token
                    .ok_or_else(|| err(Code::Eval, span, "`kv_bytes` needs an experiment with a `model`"))?;
                let map = |v: &Value, s: Span| match v {
                    Value::Num(t, Unit::Tokens) | Value::Num(t, Unit::None) => Ok(Value::Num(t * per, Unit::Bytes)),
                    other => Err(err(Code::Unit, s, format!("`kv_bytes` needs tokens, found {}", other.type_name()))),
                };
                match vals.first() {
                    Some(Value::List(items)) => {
                        Ok(Value::List(items.iter().map(|v| map(v, args[0].value.span)).collect::<Result<_, _>>()?))
                    }
                    Some(v) => map(v, args[0].value.span),
                    None => Err(err(Code::Eval, span, "`kv_bytes` needs a token count")),
                }
            }
            _ => {
                // Design, analysis and rule functions are data for later stages.
                let mut m = BTreeMap::new();
                m.insert("function".to_string(), Value::Str(name.to_string()));
                m.insert("args".to_string(), Value::List(vals));
                for a in args {
                    if let Some(n) = &a.name {
                        m.insert(n.name.clone(), self.eval(&a.value)?);
                    }
                }
                Ok(Value::Record(m))
            }
        }
    }
}

pub fn binary_values(op: BinOp, av: &Value, bv: &Value, sa: Span, sb: Span) -> R {
    use BinOp::*;
    match op {
        Eq => return Ok(Value::Bool(values_equal(av, bv))),
        Ne => return Ok(Value::Bool(!values_equal(av, bv))),
        In => {
            return match bv {
                Value::List(items) => Ok(Value::Bool(items.iter().any(|x| values_equal(av, x)))),
                other => Err(err(Code::Type, sb, format!("`in` needs a list on its right, found {}", other.type_name()))),
            }
        }
        Add if matches!((av, bv), (Value::Str(_), Value::Str(_))) => {
            return Ok(Value::Str(format!("{}{}", av.as_str().unwrap_or(""), bv.as_str().unwrap_or(""))));
        }
        _ => {}
    }
    let (x, ux) = match av {
        Value::Num(x, u) => (*x, *u),
        other => return Err(err(Code::Type, sa, format!("`{}` needs numbers, found {}", op.symbol(), other.type_name()))),
    };
    let (y, uy) = match bv {
        Value::Num(y, u) => (*y, *u),
        other => return Err(err(Code::Type, sb, format!("`{}` needs numbers, found {}", op.symbol(), other.type_name()))),
    };
    let unit = combine_units(op, ux, uy).ok_or_else(|| {
        Box::new(
            // The right operand is where the mismatch shows; the left one is labelled beside it.
            Diagnostic::error(
                Code::Unit,
                sb,
                format!("cannot apply `{}` to {} and {}", op.symbol(), ux.describe(), uy.describe()),
            )
            .label(uy.describe())
            .with(sa, ux.describe())
            .help("quantities must share a unit to be added, subtracted or compared"),
        )
    })?;
    Ok(match op {
        Lt => Value::Bool(x < y),
        Le => Value::Bool(x <= y),
        Gt => Value::Bool(x > y),
        Ge => Value::Bool(x >= y),
        Add => Value::Num(x + y, unit),
        Sub => Value::Num(x - y, unit),
        Mul => Value::Num(x * y, unit),
        Pow => Value::Num(x.powf(y), unit),
        Div | Mod => {
            if y == 0.0 {
                return Err(err(Code::Eval, sb, "division by zero"));
            }
            let v = match (op, ux, uy) {
                (Mod, _, _) => x % y,
                // bytes over bits per second
                (_, Unit::Bytes, Unit::Bandwidth) => x * 8.0 / y,
                _ => x / y,
            };
            Value::Num(v, unit)
        }
        _ => unreachable!("handled above"),
    })
}

/// The unit of `a op b`, or None when the units do not combine.
pub fn combine_units(op: BinOp, a: Unit, b: Unit) -> Option<Unit> {
    use BinOp::*;
    match op {
        // Tokens are counts, so a plain number mixes with them.
        Add | Sub | Lt | Le | Gt | Ge | Mod => match (a, b) {
            _ if a == b => Some(a),
            (Unit::Tokens, Unit::None) | (Unit::None, Unit::Tokens) => Some(Unit::Tokens),
            _ => None,
        },
        Mul => match (a, b) {
            (Unit::None, u) | (u, Unit::None) => Some(u),
            _ => None,
        },
        // A power of a plain number only: 2^10, not 1K^2.
        Pow => match (a, b) {
            (Unit::None, Unit::None) => Some(Unit::None),
            _ => None,
        },
        Div => match (a, b) {
            (u, Unit::None) => Some(u),
            (u, v) if u == v => Some(Unit::None),
            (Unit::Bytes, Unit::Bandwidth) => Some(Unit::Duration),
            _ => None,
        },
        _ => Some(Unit::None),
    }
}

pub fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Sym(x), Value::Str(y)) | (Value::Str(x), Value::Sym(y)) => x == y,
        (Value::Num(x, _), Value::Num(y, _)) => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
        (Value::Ref { name: x, .. }, Value::Ref { name: y, .. }) => x == y,
        (Value::Ref { name: x, .. }, Value::Sym(y)) | (Value::Sym(y), Value::Ref { name: x, .. }) => x == y,
        _ => a == b,
    }
}
