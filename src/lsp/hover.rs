//! Hover: what the checker and the design engine know about the thing under the
//! cursor, as Markdown. Answers come from the analysis already computed for
//! diagnostics; only constant expressions and, for a `set`, the settings of at
//! most 5,000 patterns are evaluated here.

use super::analysis::Analysis;
use super::locate::{locate, At, Hit};
use crate::check::schema;
use crate::check::value::{self, human_bytes, Eval, Value, FUNCTIONS};
use crate::design::{tables, Design};
use crate::syntax::ast::{Block, Expr, StmtKind, Unit};
use std::fmt::Write;

pub fn hover(a: &Analysis, offset: u32) -> Option<String> {
    let at = locate(a.ast(), offset);
    let experiment = enclosing(&at, "experiment");
    let design = experiment.as_deref().and_then(|e| a.design(e));
    let kind = at.blocks.last().map(|b| b.kind.name.as_str()).unwrap_or("");
    match at.hit.as_ref()? {
        Hit::Import(s) => {
            let n = a.imports().into_iter().find(|(sp, _)| *sp == s.span).map(|(_, f)| f)?;
            let defs = a.index.occurrences.iter().filter(|o| o.def && o.span.file == n).count();
            Some(format!("**import** `{}`: {} definitions", a.loaded.check.sources.get(n).name, defs))
        }
        Hit::Kind(b) => schema::block(&b.kind.name).map(|s| {
            let attrs: Vec<String> = s.attrs.iter().map(|x| format!("`{}`", x.name)).collect();
            format!(
                "**{}**: {}\n\nattributes: {}",
                s.kind,
                s.doc,
                if attrs.is_empty() { "none".into() } else { attrs.join(", ") }
            )
        }),
        Hit::Label(b, l) => label(a, b, l.text(), design),
        Hit::InLayer(l) => design.and_then(|d| layer(d, &l.value)),
        Hit::Attr(id, e) => attribute(a, kind, &id.name, e),
        Hit::Let(kw, id, e) => {
            let across =
                if *kw == "set" { design.map(|d| across_patterns(a, d, &id.name)).unwrap_or_default() } else { String::new() };
            Some(format!("**{kw}** `{}`{}{across}", id.name, value_of(a, e)))
        }
        Hit::Factor(id, e) => Some(factor(design, &id.name).unwrap_or_else(|| {
            format!("**factor** `{}` = {}", id.name, constant(a, e).map(|v| v.display()).unwrap_or_default())
        })),
        Hit::Name(id) => name(a, &at, &id.name, offset, design),
        Hit::Str(_, s) => string(a, s, design),
        Hit::Number(e, v, unit) => Some(number(&source(a, e), *v, *unit, design)),
    }
}

fn enclosing(at: &At, kind: &str) -> Option<String> {
    at.blocks.iter().find(|b| b.kind.name == kind).and_then(|b| b.name()).map(|l| l.text().to_string())
}

/// A constant expression's value (top-level `let`s are in scope); None when it
/// depends on a pattern's factor levels.
fn constant(a: &Analysis, e: &Expr) -> Option<Value> {
    Eval { scope: &a.loaded.check.model.globals, kv_bytes_per_token: None }.eval(e).ok()
}

fn attribute(a: &Analysis, kind: &str, name: &str, e: &Expr) -> Option<String> {
    let mut s = String::new();
    match schema::block(kind).and_then(|sc| sc.attrs.iter().find(|x| x.name == name)) {
        Some(attr) => {
            let _ = write!(s, "**{kind}.{name}**: {}{}", attr.doc, if attr.required { " (required)" } else { "" });
        }
        None => {
            let _ = write!(s, "**{name}**");
        }
    }
    s.push_str(&value_of(a, e));
    Some(s)
}

/// The value paragraph of an attribute, `let` or `set` hover.
fn value_of(a: &Analysis, e: &Expr) -> String {
    let src = source(a, e);
    match constant(a, e) {
        Some(v) => format!("\n\n`{src}` = {}", show(&v)),
        // A reference to a definition (`setup = env_v0_16`): what it names.
        None => match e.as_name().and_then(|n| definition(a, &n.name)) {
            Some(d) => format!("\n\n{d}"),
            None => format!("\n\n`{src}`: evaluated per pattern"),
        },
    }
}

/// The values a pattern setting takes across the design's patterns, with counts.
fn across_patterns(a: &Analysis, d: &Design, name: &str) -> String {
    let Some(campaign) = a.campaign(&d.experiment) else { return String::new() };
    let r = crate::design::Resolver::new(&a.loaded.check.model, campaign);
    let mut counts: Vec<(String, usize)> = vec![];
    // Bounded: hover must stay instant on a million-pattern design.
    for p in d.patterns.iter().take(5000) {
        let Some(v) = r.own_settings(p).remove(name) else { continue };
        let v = v.display();
        match counts.iter_mut().find(|(x, _)| *x == v) {
            Some((_, n)) => *n += 1,
            None => counts.push((v, 1)),
        }
    }
    if counts.is_empty() {
        return String::new();
    }
    let list: Vec<String> = counts.iter().map(|(v, n)| format!("`{v}` ({n})")).collect();
    format!("\n\nacross patterns: {}", list.join(", "))
}

/// An expression's source text, on one line and not too long for a hover.
fn source(a: &Analysis, e: &Expr) -> String {
    let text = &a.loaded.check.sources.get(e.span.file).text;
    let raw = text.get(e.span.range()).unwrap_or("");
    let one: String = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 100 {
        format!("{}...", one.chars().take(100).collect::<String>())
    } else {
        one
    }
}

/// A value with its unit spelled out: `200GB` is 200000000000 bytes (186.3 GiB).
fn show(v: &Value) -> String {
    match v {
        Value::Num(x, Unit::Bytes) => format!("{} bytes ({})", value::fmt_num(*x), human_bytes(*x)),
        Value::Num(x, Unit::Duration) => format!("{} ({} s)", value::fmt_duration(*x), value::fmt_num(*x)),
        Value::Num(x, Unit::Tokens) => format!("{} tokens", value::fmt_num(*x)),
        Value::Num(x, Unit::Bandwidth) => format!("{} Gbit/s", value::fmt_num(x / 1e9)),
        Value::Num(x, Unit::Money) => format!("${x:.2}"),
        other => format!("`{}`", other.display()),
    }
}

fn factor(design: Option<&Design>, name: &str) -> Option<String> {
    let f = design?.factors.iter().find(|f| f.name == name)?;
    let levels: Vec<String> = f.levels.iter().map(Value::display).collect();
    Some(format!("**factor** `{name}`: {} levels\n\n{}", levels.len(), levels.join(", ")))
}

fn layer(d: &Design, name: &str) -> Option<String> {
    let (i, l) = d.layers.iter().enumerate().find(|(_, l)| l.name == name)?;
    let pats: Vec<_> = d.patterns.iter().filter(|p| p.layer as usize == i).collect();
    let adhoc = pats.iter().filter(|p| p.adhoc).count();
    let mut s = format!(
        "**layer** `{name}` ({}): {} patterns, {} scheduled, {adhoc} ad hoc\n\n{} candidates",
        l.category.label(),
        pats.len(),
        pats.len() - adhoc,
        l.candidates
    );
    for (reason, n) in &l.removed {
        let _ = write!(s, "\n- {n} removed: {reason}");
    }
    Some(s)
}

fn pattern(a: &Analysis, id: &str) -> Option<String> {
    let (c, p) = a.loaded.campaigns.iter().find_map(|c| c.design.pattern(id).map(|p| (c, p)))?;
    Some(format!("```\n{}```", tables::show_pattern(&a.loaded.check.model, c, p)))
}

fn instance(a: &Analysis, name: &str) -> Option<String> {
    let i = a.loaded.check.model.instances.get(name)?;
    let mut s = format!(
        "**instance** `{name}`: {} x {} ({} each)\n\n- EFA: {}",
        i.gpus,
        i.gpu,
        human_bytes(i.gpu_memory),
        if i.efa { "yes" } else { "no" }
    );
    if let Some(bw) = i.efa_bandwidth {
        let _ = write!(s, ", {} Gbps", value::fmt_num(bw / 1e9));
    }
    let _ = write!(s, ", RDMA {}", if i.rdma { "yes" } else { "no" });
    let _ = write!(s, "\n- price: ${:.2}/h\n- root volume: {}", i.price_per_hour, human_bytes(i.volume));
    Some(s)
}

fn string(a: &Analysis, s: &str, design: Option<&Design>) -> Option<String> {
    let model = &a.loaded.check.model;
    if let Some(h) = instance(a, s) {
        return Some(h);
    }
    if let Some(zones) = model.regions.get(s) {
        return Some(format!("**region** `{s}`: zones {}", zones.join(", ")));
    }
    if let Some((r, _)) = model.regions.iter().find(|(_, z)| z.iter().any(|z| z == s)) {
        return Some(format!("**zone** `{s}` in region `{r}`"));
    }
    if let Some(h) = design.and_then(|d| layer(d, s)) {
        return Some(h);
    }
    pattern(a, s)
}

fn label(a: &Analysis, b: &Block, text: &str, design: Option<&Design>) -> Option<String> {
    match b.kind.name.as_str() {
        "instance" => instance(a, text),
        "layer" => design.and_then(|d| layer(d, text)),
        "pattern" => pattern(a, text),
        "region" | "stack" => string(a, text, design),
        "experiment" => {
            let d = a.design(text)?;
            let adhoc = d.patterns.iter().filter(|p| p.adhoc).count();
            Some(format!(
                "**experiment** `{text}`: {} patterns ({} scheduled), {} layers, {} restart groups",
                d.patterns.len(),
                d.patterns.len() - adhoc,
                d.layers.len(),
                d.groups.len()
            ))
        }
        _ => definition(a, text),
    }
}

fn number(text: &str, v: f64, unit: Unit, design: Option<&Design>) -> String {
    let mut s = format!("`{text}` = {}", show(&Value::Num(v, unit)));
    if let (Unit::Tokens, Some(d)) = (unit, design) {
        if let Some(m) = &d.model {
            let kv = m.kv_bytes_per_token() as f64 * v;
            let tp = d.tp.max(1);
            let _ = write!(
                s,
                "\n\nKV cache of a {text}-token prompt on `{}`: {} ({} per GPU at TP={tp})",
                m.name,
                human_bytes(kv),
                human_bytes(kv / tp as f64)
            );
        }
    }
    s
}

/// A named top-level definition: a model's shape, a tool, a `let` value...
fn definition(a: &Analysis, name: &str) -> Option<String> {
    let model = &a.loaded.check.model;
    if let Some(m) = model.models.get(name) {
        return Some(format!(
            "**model** `{name}`: `{}`\n\n{} layers, {} KV heads x {}, {}; KV cache {} per token; context {}",
            m.hf_id,
            m.layers,
            m.kv_heads,
            m.head_dim,
            m.dtype,
            human_bytes(m.kv_bytes_per_token() as f64),
            m.max_position_embeddings
        ));
    }
    if let Some(t) = model.tools.get(name) {
        let params: Vec<String> = t.params.iter().map(|(k, v)| format!("{k} = {}", v.display())).collect();
        return Some(format!(
            "**tool** `{name}` ({}, {} node(s), ~{})\n\nparams: {}",
            t.kind,
            t.nodes,
            value::fmt_duration(t.duration),
            if params.is_empty() { "none".into() } else { params.join(", ") }
        ));
    }
    if let Some(s) = model.setups.iter().find(|s| s.name == name) {
        return Some(format!("**setup** `{name}`: {} steps", s.steps.len()));
    }
    if let Some(v) = model.globals.get(name) {
        return Some(format!("**let** `{name}` = `{}`", v.display()));
    }
    let kind = a.loaded.check.files.iter().flat_map(|(_, f)| &f.items).find_map(|s| match &s.kind {
        StmtKind::Block(b) if b.name().is_some_and(|l| l.text() == name) => Some(b.kind.name.clone()),
        _ => None,
    })?;
    Some(format!("**{kind}** `{name}`"))
}

fn name(a: &Analysis, at: &At, name: &str, offset: u32, design: Option<&Design>) -> Option<String> {
    if let Some(o) = a.index.at(a.file, offset) {
        if o.key.starts_with("e:") || o.key.starts_with("l:") {
            if let Some(h) = factor(design, name) {
                return Some(h);
            }
            return Some(format!(
                "**{}** `{name}`: a pattern setting, evaluated per pattern",
                if o.key.starts_with("l:") { "layer let/set" } else { "let/set" }
            ));
        }
        if o.key.starts_with("g:") {
            return definition(a, name);
        }
    }
    if let Some(h) = factor(design, name) {
        return Some(h);
    }
    if let Some((_, doc)) = FUNCTIONS.iter().find(|(f, _)| *f == name) {
        return Some(format!("**function** `{doc}`"));
    }
    if value::SYMBOLS.contains(&name) {
        let attr = at.attr.map(|i| format!(" (value of `{}`)", i.name)).unwrap_or_default();
        return Some(format!("**enumeration literal** `{name}`{attr}"));
    }
    None
}
