//! Stage 2: syntax trees to the resolved model. Imports, name resolution,
//! schema validation (attributes, types, units), domains and references.
//! Every problem becomes a diagnostic; checking never stops at the first.

pub mod analysis;
pub mod build;
pub mod cidr;
pub mod imports;
pub mod isolate;
pub mod model;
pub mod rules;
pub mod saturation;
pub mod schema;
pub mod secret;
pub mod shell;
pub mod slo;
pub mod symbols;
pub mod until;
pub mod value;

use crate::diagnostics::{did_you_mean, Code, Diagnostic, OrHelp, SourceMap, Span};
use crate::syntax::ast::{self, Block, Stmt, StmtKind};
use imports::Loader;
use schema::{BlockSchema, Ty};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use value::{Eval, Scope, Value};

pub use model::Model;

pub struct CheckOutput {
    pub model: Model,
    pub diagnostics: Vec<Diagnostic>,
    pub sources: SourceMap,
    /// Parsed files, for the formatter and the language server.
    pub files: Vec<(crate::diagnostics::FileId, ast::File)>,
}

impl CheckOutput {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Checks a file on disk and everything it imports.
pub fn check_path(path: &Path) -> CheckOutput {
    check_path_with(path, &imports::FsLoader)
}

/// Checks a file on disk, read and parsed through `loader` (the command line caches trees).
pub fn check_path_with(path: &Path, loader: &dyn Loader) -> CheckOutput {
    finish(imports::load(path, loader))
}

/// Checks an in-memory text (an editor buffer); imports are read through `loader`.
pub fn check_text(name: &str, text: &str, loader: &dyn Loader) -> CheckOutput {
    finish(imports::load_text(name, text, loader))
}

/// A test's snippet checked with no diagnostic allowed: its model.
#[cfg(test)]
pub(crate) fn clean_model(text: &str) -> Model {
    let out = check_text("t.nixl", text, &imports::FsLoader);
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    out.model
}

fn finish(loaded: imports::Loaded) -> CheckOutput {
    let mut diags = loaded.diagnostics;
    let syntax_failed = diags.iter().any(|d| matches!(d.code, Code::Delimiter | Code::Limit | Code::Encoding));
    let mut model = Model::default();
    if !syntax_failed || !loaded.files.is_empty() {
        let globals = Globals::collect(&loaded.files, &mut diags);
        for (_, f) in &loaded.files {
            for s in &f.items {
                if let StmtKind::Block(b) = &s.kind {
                    validate_block(b, "", &globals, &mut diags);
                }
            }
        }
        build::build(&globals, &loaded.files, &mut model, &mut diags);
        rules::check(&model, &mut diags);
        analysis::check(&model, &mut diags);
        model.globals = globals.let_values();
        diags.extend(globals.take_errors());
    }
    dedup(&mut diags);
    CheckOutput { model, diagnostics: diags, sources: loaded.sources, files: loaded.files }
}

fn dedup(diags: &mut Vec<Diagnostic>) {
    let mut seen = HashSet::new();
    diags.retain(|d| seen.insert((d.code, d.primary.span, d.message.clone())));
    diags.sort_by_key(|d| (d.primary.span.file, d.primary.span.start));
}

/// Top-level names: `let` values and named definitions, evaluated on demand.
pub struct Globals<'a> {
    pub lets: BTreeMap<String, &'a ast::Expr>,
    /// Named definitions by name: (kind, block).
    pub defs: BTreeMap<String, (&'a str, &'a Block)>,
    /// String-labelled definitions (instances, regions, stacks) by kind and label.
    pub labelled: BTreeMap<(String, String), &'a Block>,
    cache: RefCell<BTreeMap<String, Option<Value>>>,
    errors: RefCell<Vec<Diagnostic>>,
}

impl<'a> Globals<'a> {
    fn collect(files: &'a [(crate::diagnostics::FileId, ast::File)], diags: &mut Vec<Diagnostic>) -> Globals<'a> {
        let mut g = Globals {
            lets: BTreeMap::new(),
            defs: BTreeMap::new(),
            labelled: BTreeMap::new(),
            cache: RefCell::new(BTreeMap::new()),
            errors: RefCell::new(vec![]),
        };
        let mut spans: BTreeMap<String, Span> = BTreeMap::new();
        let mut dup = |name: &str, span: Span, what: &str, diags: &mut Vec<Diagnostic>| {
            if let Some(prev) = spans.get(name) {
                diags.push(
                    Diagnostic::error(Code::Duplicate, span, format!("{what} `{name}` is defined twice"))
                        .label("second definition")
                        .with(*prev, "first defined here")
                        .help("rename one of them; names are shared by every imported file"),
                );
                true
            } else {
                spans.insert(name.to_string(), span);
                false
            }
        };
        for (_, f) in files {
            for s in &f.items {
                match &s.kind {
                    StmtKind::Let(name, e) if !dup(&name.name, name.span, "name", diags) => {
                        g.lets.insert(name.name.clone(), e);
                    }
                    StmtKind::Block(b) => {
                        let Some(label) = b.name() else { continue };
                        match label {
                            ast::BlockLabel::Ident(i) => {
                                if !dup(&i.name, i.span, &b.kind.name, diags) {
                                    g.defs.insert(i.name.clone(), (b.kind.name.as_str(), b));
                                }
                            }
                            ast::BlockLabel::Str(s) => {
                                let key = format!("{}:{}", b.kind.name, s.value);
                                if !dup(&key, s.span, &b.kind.name, diags) {
                                    g.labelled.insert((b.kind.name.clone(), s.value.clone()), b);
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        g
    }

    pub fn eval(&self, e: &ast::Expr) -> Result<Value, Box<Diagnostic>> {
        Eval { scope: self, kv_bytes_per_token: None }.eval(e)
    }

    /// Evaluates and reports; None when it failed (already reported).
    pub fn eval_report(&self, e: &ast::Expr, diags: &mut Vec<Diagnostic>) -> Option<Value> {
        match self.eval(e) {
            Ok(v) => Some(v),
            Err(d) => {
                diags.push(self.explain(*d));
                None
            }
        }
    }

    /// Adds "did you mean" to unknown-name diagnostics.
    pub fn explain(&self, mut d: Diagnostic) -> Diagnostic {
        if d.code == Code::UnknownName && d.help.is_none() {
            if let Some(name) = d.subject.clone() {
                let names = self.all_names();
                d = match did_you_mean(&name, names.iter().map(String::as_str)) {
                    Some(h) => d.help(h),
                    None => d.help("define it with `let`, import the file that defines it, or check the spelling"),
                };
            }
        }
        d
    }

    pub fn all_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.lets.keys().chain(self.defs.keys()).cloned().collect();
        v.extend(value::SYMBOLS.iter().map(|s| s.to_string()));
        v
    }

    pub fn take_errors(&self) -> Vec<Diagnostic> {
        std::mem::take(&mut self.errors.borrow_mut())
    }

    fn let_values(&self) -> BTreeMap<String, Value> {
        self.lets.keys().filter_map(|k| self.lookup(k).map(|v| (k.clone(), v))).collect()
    }

    /// A definition as a value: its kind, name and non-lazy attributes.
    fn def_value(&self, name: &str, kind: &str, b: &Block) -> Value {
        let schema = schema::block(kind);
        let mut fields = BTreeMap::new();
        for s in &b.body {
            if let StmtKind::Attr(id, e) = &s.kind {
                let lazy = schema.and_then(|sc| sc.attrs.iter().find(|a| a.name == id.name)).is_some_and(|a| a.ty == Ty::Lazy);
                if lazy {
                    continue;
                }
                if let Ok(v) = self.eval(e) {
                    fields.insert(id.name.clone(), v);
                }
            }
        }
        Value::Ref { kind: kind.to_string(), name: name.to_string(), fields }
    }
}

impl Scope for Globals<'_> {
    fn lookup(&self, name: &str) -> Option<Value> {
        if let Some(v) = self.cache.borrow().get(name) {
            return v.clone();
        }
        // Mark in progress: a self-referential let resolves to nothing instead of recursing.
        self.cache.borrow_mut().insert(name.to_string(), None);
        let v = if let Some(e) = self.lets.get(name) {
            match self.eval(e) {
                Ok(v) => Some(v),
                Err(d) => {
                    let d = self.explain(*d);
                    self.errors.borrow_mut().push(d);
                    Some(Value::None)
                }
            }
        } else {
            self.defs.get(name).map(|(kind, b)| self.def_value(name, kind, b))
        };
        self.cache.borrow_mut().insert(name.to_string(), v.clone());
        v
    }
}

/// Checks a block against its schema: labels, attributes, statements, children.
fn validate_block(b: &Block, parent: &str, g: &Globals, diags: &mut Vec<Diagnostic>) {
    let Some(schema) = schema::block(&b.kind.name) else {
        let kinds: Vec<&str> = schema::BLOCKS.iter().map(|s| s.kind).collect();
        let mut d = Diagnostic::error(Code::UnknownBlock, b.kind.span, format!("unknown block kind `{}`", b.kind.name));
        d = d.help(did_you_mean(&b.kind.name, kinds.iter().copied()).or_help(|| format!("block kinds are {}", kinds.join(", "))));
        diags.push(d);
        return;
    };
    if !schema.parents.contains(&parent) {
        let where_ = if parent.is_empty() { "at the top level".to_string() } else { format!("inside `{parent}`") };
        let allowed: Vec<String> =
            schema.parents.iter().map(|p| if p.is_empty() { "the top level".to_string() } else { format!("`{p}`") }).collect();
        diags.push(
            Diagnostic::error(Code::UnknownBlock, b.kind.span, format!("`{}` blocks are not allowed {where_}", b.kind.name))
                .help(format!("`{}` belongs in {}", b.kind.name, allowed.join(" or "))),
        );
        return;
    }
    let n = b.labels.len();
    if n < schema.labels.0 || n > schema.labels.1 {
        let span = b.labels.get(schema.labels.1).map(|l| l.span()).unwrap_or(b.kind.span);
        diags.push(
            Diagnostic::error(Code::Syntax, span, format!("`{}` takes {} label(s), found {n}", b.kind.name, schema.labels.1))
                .help(format!("write `{} NAME {{ ... }}`", b.kind.name)),
        );
    }
    if b.extends.is_some() && b.kind.name != "experiment" {
        diags.push(Diagnostic::error(
            Code::Syntax,
            b.extends.as_ref().map(|e| e.span).unwrap_or(b.kind.span),
            "only an `experiment` can extend another",
        ));
    }
    if b.in_layer.is_some() && b.kind.name != "pattern" {
        diags.push(Diagnostic::error(
            Code::Syntax,
            b.in_layer.as_ref().map(|e| e.span).unwrap_or(b.kind.span),
            "only a `pattern` is placed `in` a layer",
        ));
    }
    let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
    for s in &b.body {
        validate_stmt(s, b, schema, g, &mut seen, diags);
    }
    // A block with a line that did not parse is probably missing that line's attribute: don't pile on.
    let broken = b.body.iter().any(|s| matches!(s.kind, StmtKind::Error(_)));
    for a in schema.attrs.iter().filter(|a| a.required && !broken) {
        if !seen.contains_key(a.name) {
            diags.push(
                Diagnostic::error(
                    Code::MissingAttribute,
                    b.kind.span,
                    format!("`{}` is missing the required attribute `{}`", b.kind.name, a.name),
                )
                .help(format!("add `{} = ...` ({})", a.name, a.doc)),
            );
        }
    }
}

fn validate_stmt(
    s: &Stmt,
    b: &Block,
    schema: &BlockSchema,
    g: &Globals,
    seen: &mut BTreeMap<&'static str, Span>,
    diags: &mut Vec<Diagnostic>,
) {
    let keyword = match &s.kind {
        StmtKind::Block(child) => {
            validate_block(child, &b.kind.name, g, diags);
            return;
        }
        StmtKind::Attr(id, e) => {
            match schema.attrs.iter().find(|a| a.name == id.name) {
                Some(a) => {
                    if let Some(prev) = seen.insert(a.name, id.span) {
                        diags.push(
                            Diagnostic::error(Code::Duplicate, id.span, format!("attribute `{}` is set twice", id.name))
                                .with(prev, "first set here")
                                .help("keep one of them"),
                        );
                    }
                    // Steps see their setup's `let` variables: the setup builder checks them.
                    if b.kind.name != "step" {
                        check_type(a.ty, a.name, e, g, diags);
                    }
                }
                None if schema.open || is_setting(&b.kind.name, &id.name) => {}
                None => {
                    let names: Vec<&str> = schema.attrs.iter().map(|a| a.name).collect();
                    let mut d = Diagnostic::error(
                        Code::UnknownAttribute,
                        id.span,
                        format!("`{}` has no attribute `{}`", b.kind.name, id.name),
                    );
                    d = d.help(did_you_mean(&id.name, names.iter().copied()).or_help(|| {
                        if names.is_empty() {
                            format!("`{}` takes no attributes", b.kind.name)
                        } else {
                            format!("its attributes are {}", names.join(", "))
                        }
                    }));
                    diags.push(d);
                }
            }
            return;
        }
        StmtKind::Import(_) => "import",
        StmtKind::Let(..) => "let",
        StmtKind::Set(..) => "set",
        StmtKind::Factor(..) => "factor",
        StmtKind::Prune { .. } => "prune",
        StmtKind::When { .. } => "when",
        StmtKind::Error(_) => return,
    };
    if !schema.stmts.contains(&keyword) {
        diags.push(
            Diagnostic::error(Code::Syntax, s.span, format!("`{keyword}` is not allowed in a `{}` block", b.kind.name)).help(
                if schema.stmts.is_empty() {
                    format!("`{}` holds attributes only", b.kind.name)
                } else {
                    format!("`{}` allows {}", b.kind.name, schema.stmts.join(", "))
                },
            ),
        );
    }
}

/// Factor and pattern settings that a pattern block may fix.
fn is_setting(kind: &str, _name: &str) -> bool {
    kind == "pattern"
}

/// Checks a non-lazy attribute's value against its type.
fn check_type(ty: Ty, name: &str, e: &ast::Expr, g: &Globals, diags: &mut Vec<Diagnostic>) {
    if matches!(ty, Ty::Lazy) {
        return;
    }
    if let Ty::Ref(kind) = ty {
        check_ref(kind, e, g, diags);
        return;
    }
    if let Ty::RefList(kind) = ty {
        if let ast::ExprKind::List(items) = &e.kind {
            for i in items {
                check_ref(kind, i, g, diags);
            }
            return;
        }
    }
    // An enumeration literal stands for itself even where a definition shares its name.
    if let (Ty::Sym(allowed) | Ty::SymList(allowed), Some(id)) = (ty, e.as_name()) {
        if allowed.contains(&id.name.as_str()) {
            return;
        }
    }
    let Some(v) = g.eval_report(e, diags) else {
        return;
    };
    let ok = match (ty, &v) {
        (Ty::Any | Ty::Lazy, _) => true,
        (Ty::Str, Value::Str(_)) => true,
        (Ty::Bool, Value::Bool(_)) => true,
        (Ty::Num, Value::Num(..)) => true,
        (Ty::Int | Ty::PosInt, Value::Num(x, ast::Unit::None)) if x.fract() == 0.0 => {
            if *x > u32::MAX as f64 || *x < -(i32::MAX as f64) {
                diags.push(
                    Diagnostic::error(Code::Domain, e.span, format!("`{name}` is out of range: {}", value::fmt_num(*x)))
                        .help("whole numbers here go up to 4,294,967,295"),
                );
            }
            if ty == Ty::PosInt && *x < 1.0 {
                diags.push(
                    Diagnostic::error(Code::Domain, e.span, format!("`{name}` must be at least 1, found {}", value::fmt_num(*x)))
                        .help(format!("`{name}` counts something; 0 or less would run nothing")),
                );
            }
            true
        }
        (Ty::Quantity(u), Value::Num(x, vu)) => {
            if u == ast::Unit::Duration && *vu == u && *x > MAX_DURATION {
                diags.push(
                    Diagnostic::error(Code::Domain, e.span, format!("`{name}` is out of range: {}", value::fmt_num(*x)))
                        .help("durations go up to 366 days"),
                );
            }
            if u != *vu {
                diags.push(
                    Diagnostic::error(Code::Unit, e.span, format!("`{name}` must be {}, found {}", u.describe(), vu.describe()))
                        .help(unit_hint(u)),
                );
            }
            true
        }
        (Ty::SymList(allowed), Value::List(items)) => {
            let syms: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            if syms.len() == items.len() {
                symbol_list(name, allowed, &syms, e.span, diags);
            }
            syms.len() == items.len() && !syms.is_empty()
        }
        (Ty::Sym(allowed) | Ty::SymList(allowed), Value::Sym(s) | Value::Str(s)) => {
            if !allowed.contains(&s.as_str()) {
                let mut d = Diagnostic::error(
                    Code::Domain,
                    e.span,
                    format!("`{name}` must be one of {}, found `{s}`", allowed.join(", ")),
                );
                if let Some(h) = did_you_mean(s, allowed.iter().copied()) {
                    d = d.help(h);
                }
                diags.push(d);
            }
            true
        }
        (Ty::StrList, Value::List(items)) => items.iter().all(|i| matches!(i, Value::Str(_))),
        (Ty::Commands, Value::Str(_)) => true,
        (Ty::Commands, Value::List(items)) => items.iter().all(|i| matches!(i, Value::Str(_))),
        (Ty::Record, Value::Record(_)) => true,
        _ => false,
    };
    if !ok {
        let want = match ty {
            Ty::Str => "a string".to_string(),
            Ty::Bool => "true or false".to_string(),
            Ty::Int | Ty::PosInt => "a whole number".to_string(),
            Ty::Num => "a number".to_string(),
            Ty::Quantity(u) => u.describe().to_string(),
            Ty::Sym(a) => format!("one of {}", a.join(", ")),
            Ty::SymList(a) => format!("one of {}, or a non-empty list of them", a.join(", ")),
            Ty::StrList => "a list of strings".to_string(),
            Ty::Commands => "a string or a list of strings".to_string(),
            Ty::Record => "a record `{ name = value }`".to_string(),
            _ => "another value".to_string(),
        };
        let mut d = Diagnostic::error(Code::Type, e.span, format!("`{name}` must be {want}, found {}", v.type_name()));
        if matches!(ty, Ty::Int | Ty::PosInt) {
            d = d.help("write a whole number without a unit or decimals, such as 2");
        }
        diags.push(d);
    }
}

/// Each symbol of a list (`market = [spot, on_demand]`) allowed, and none twice: a list is an
/// order of preference, so a repeat is a mistake.
fn symbol_list(name: &str, allowed: &[&str], syms: &[&str], span: Span, diags: &mut Vec<Diagnostic>) {
    for (i, s) in syms.iter().enumerate() {
        if !allowed.contains(s) {
            let mut d = Diagnostic::error(
                Code::Domain,
                span,
                format!("`{name}` lists `{s}`, which is not one of {}", allowed.join(", ")),
            );
            if let Some(h) = did_you_mean(s, allowed.iter().copied()) {
                d = d.help(h);
            }
            diags.push(d);
        } else if syms[..i].contains(s) {
            diags.push(
                Diagnostic::error(Code::Domain, span, format!("`{name}` lists `{s}` twice"))
                    .help("the list is an order of preference: name each once"),
            );
        }
    }
}

/// The longest duration any step, pattern or timeout may take: 366 days, in seconds.
pub const MAX_DURATION: f64 = 366.0 * 86_400.0;

fn unit_hint(u: ast::Unit) -> &'static str {
    match u {
        ast::Unit::Bytes => "write bytes with a unit: 200GB, 48GiB, 64B",
        ast::Unit::Duration => "write durations with a unit: 30s, 10min, 2h",
        ast::Unit::Bandwidth => "write bandwidth with a unit: 100Gbps",
        ast::Unit::Tokens => "write tokens as 1K, 128K or a plain count",
        ast::Unit::Money => "write money as $10.49",
        ast::Unit::None => "write a plain number",
    }
}

fn check_ref(kind: &str, e: &ast::Expr, g: &Globals, diags: &mut Vec<Diagnostic>) {
    let Some(id) = e.as_name() else {
        diags.push(Diagnostic::error(Code::Type, e.span, format!("expected the name of a `{kind}`")));
        return;
    };
    match g.defs.get(&id.name) {
        Some((k, _)) if *k == kind => {}
        Some((k, _)) => diags.push(Diagnostic::error(Code::Type, id.span, format!("`{}` is a `{k}`, not a `{kind}`", id.name))),
        None => {
            let names: Vec<&str> = g.defs.iter().filter(|(_, (k, _))| *k == kind).map(|(n, _)| n.as_str()).collect();
            let mut d = Diagnostic::error(Code::UnknownReference, id.span, format!("no `{kind}` named `{}`", id.name));
            d = d.help(did_you_mean(&id.name, names.iter().copied()).or_help(|| {
                if names.is_empty() {
                    format!("define `{kind} {} {{ ... }}` or import the file that does", id.name)
                } else {
                    format!("defined: {}", names.join(", "))
                }
            }));
            diags.push(d);
        }
    }
}
