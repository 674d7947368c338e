//! Names and where they are defined and used, for go to definition, references
//! and hover. Built from the syntax trees of every file an analysis loaded.
//!
//! A symbol is a string key: `g:NAME` for top-level `let`s and named definitions,
//! `e:EXP:NAME` for an experiment's factors and `let`/`set`s, `l:EXP:LAYER:NAME` for a
//! layer's, `s:SETUP:NAME` for a setup's `let`s, and `KIND:LABEL` for string-labelled
//! things (`instance:g6e.12xlarge`, `layer:EXP:L2-EFA`, `node:node1`...). Names are
//! resolved innermost first, through the experiments an experiment extends.

use crate::diagnostics::{FileId, Span};
use crate::syntax::ast::{Block, BlockLabel, Expr, ExprKind, File, StmtKind, StrPart};
use std::collections::{HashMap, HashSet};

#[derive(Clone, Debug)]
pub struct Occurrence {
    pub span: Span,
    pub key: String,
    pub def: bool,
}

#[derive(Default)]
pub struct Index {
    pub occurrences: Vec<Occurrence>,
    defined: HashSet<String>,
    /// Experiment name to the experiment it extends.
    parents: HashMap<String, String>,
}

/// Where a name is being resolved: the experiment, layer or setup around it.
#[derive(Clone, Default)]
struct Scope {
    experiment: Option<String>,
    layer: Option<String>,
    setup: Option<String>,
}

impl Index {
    pub fn build(files: &[(FileId, File)]) -> Index {
        let mut ix = Index::default();
        for (_, f) in files {
            for s in &f.items {
                match &s.kind {
                    StmtKind::Let(id, _) => ix.def(format!("g:{}", id.name), id.span),
                    StmtKind::Block(b) => ix.defs_of_block(b, &Scope::default()),
                    _ => {}
                }
            }
        }
        for (_, f) in files {
            for s in &f.items {
                match &s.kind {
                    StmtKind::Let(_, e) => ix.uses_in_expr(e, &Scope::default()),
                    StmtKind::Block(b) => ix.uses_in_block(b, &Scope::default()),
                    _ => {}
                }
            }
        }
        ix
    }

    fn def(&mut self, key: String, span: Span) {
        self.defined.insert(key.clone());
        self.occurrences.push(Occurrence { span, key, def: true });
    }

    fn defs_of_block(&mut self, b: &Block, sc: &Scope) {
        let kind = b.kind.name.as_str();
        let label = b.name();
        let mut inner = sc.clone();
        match (kind, label) {
            ("layer", Some(l)) => {
                let exp = sc.experiment.clone().unwrap_or_default();
                self.def(format!("layer:{exp}:{}", l.text()), l.span());
                inner.layer = Some(l.text().to_string());
            }
            ("pattern" | "analysis", Some(l)) => {
                let exp = sc.experiment.clone().unwrap_or_default();
                self.def(format!("{kind}:{exp}:{}", l.text()), l.span());
            }
            ("step", Some(l)) => {
                let setup = sc.setup.clone().unwrap_or_default();
                self.def(format!("step:{setup}:{}", l.text()), l.span());
            }
            (_, Some(BlockLabel::Ident(i))) => {
                self.def(format!("g:{}", i.name), i.span);
                if kind == "experiment" {
                    inner.experiment = Some(i.name.clone());
                    if let Some(p) = &b.extends {
                        self.parents.insert(i.name.clone(), p.name.clone());
                    }
                }
                if kind == "setup" {
                    inner.setup = Some(i.name.clone());
                }
            }
            (_, Some(BlockLabel::Str(s))) => self.def(format!("{kind}:{}", s.value), s.span),
            _ => {}
        }
        for s in &b.body {
            match &s.kind {
                StmtKind::Factor(id, _) | StmtKind::Let(id, _) | StmtKind::Set(id, _) => {
                    if let Some(key) = inner.local_key(&id.name) {
                        self.def(key, id.span);
                    }
                }
                StmtKind::Block(child) => self.defs_of_block(child, &inner),
                _ => {}
            }
        }
    }

    fn uses_in_block(&mut self, b: &Block, sc: &Scope) {
        let mut inner = sc.clone();
        let label = b.name().map(|l| l.text().to_string());
        match b.kind.name.as_str() {
            "experiment" => inner.experiment = label,
            "layer" => inner.layer = label,
            "setup" => inner.setup = label,
            _ => {}
        }
        if let Some(p) = &b.extends {
            self.reference(format!("g:{}", p.name), p.span);
        }
        if let Some(l) = &b.in_layer {
            if let Some(key) = self.resolve_layer(&l.value, &inner) {
                self.reference(key, l.span);
            }
        }
        for s in &b.body {
            match &s.kind {
                StmtKind::Attr(id, e) => {
                    // `pattern "x" in "L" { prompt = 12K }` sets a factor: a use of it.
                    if b.kind.name == "pattern" {
                        if let Some(key) = self.resolve_name(&id.name, &inner).filter(|k| k.starts_with("e:")) {
                            self.occurrences.push(Occurrence { span: id.span, key, def: false });
                        }
                    }
                    self.string_refs(&b.kind.name, &id.name, e, &inner);
                    self.uses_in_expr(e, &inner);
                }
                StmtKind::Factor(_, e) | StmtKind::Let(_, e) | StmtKind::Set(_, e) => self.uses_in_expr(e, &inner),
                StmtKind::Prune { cond, .. } => self.uses_in_expr(cond, &inner),
                StmtKind::When { cond, action, .. } => {
                    self.uses_in_expr(cond, &inner);
                    self.uses_in_expr(action, &inner);
                }
                StmtKind::Block(child) => self.uses_in_block(child, &inner),
                StmtKind::Import(_) | StmtKind::Error(_) => {}
            }
        }
    }

    /// Strings that name something: instance types, regions, layers, nodes, stacks.
    fn string_refs(&mut self, kind: &str, attr: &str, e: &Expr, sc: &Scope) {
        let items: Vec<&Expr> = match &e.kind {
            ExprKind::List(items) => items.iter().collect(),
            _ => vec![e],
        };
        for item in items {
            let Some(text) = item.as_plain_str() else { continue };
            let key = match (kind, attr) {
                ("stack", "instance_type") => Some(format!("instance:{text}")),
                ("stack", "region") => Some(format!("region:{text}")),
                ("experiment", "stack") => Some(format!("stack:{text}")),
                ("step", "nodes") => Some(format!("node:{text}")),
                ("analysis", "inputs") => self.resolve_layer(&text, sc),
                _ => None,
            };
            if let Some(k) = key {
                self.reference(k, item.span);
            }
        }
    }

    fn reference(&mut self, key: String, span: Span) {
        if self.defined.contains(&key) {
            self.occurrences.push(Occurrence { span, key, def: false });
        }
    }

    fn uses_in_expr(&mut self, e: &Expr, sc: &Scope) {
        match &e.kind {
            ExprKind::Name(id) => {
                if let Some(key) = self.resolve_name(&id.name, sc) {
                    self.occurrences.push(Occurrence { span: id.span, key, def: false });
                }
            }
            ExprKind::Str(parts) => {
                for p in parts {
                    if let StrPart::Interp(x) = p {
                        self.uses_in_expr(x, sc);
                    }
                }
            }
            ExprKind::List(items) | ExprKind::Tuple(items) => items.iter().for_each(|x| self.uses_in_expr(x, sc)),
            ExprKind::Record(fields) => fields.iter().for_each(|f| self.uses_in_expr(&f.value, sc)),
            ExprKind::Member(base, _) => self.uses_in_expr(base, sc),
            ExprKind::Call(f, args) => {
                self.uses_in_expr(f, sc);
                for a in args {
                    self.uses_in_expr(&a.value, sc);
                    // `mean(ttft, concurrency = 16)` filters on a factor: a use of it.
                    if let Some(n) = &a.name {
                        if let Some(key) = self.resolve_name(&n.name, sc).filter(|k| k.starts_with("e:")) {
                            self.occurrences.push(Occurrence { span: n.span, key, def: false });
                        }
                    }
                    // `mean(ttft, layer = "L2-EFA")`, `compare(m, a = "L1", b = "L2")`, `bimodal("analysis")`.
                    let Some(text) = a.value.as_plain_str() else { continue };
                    let key = match a.name.as_ref().map(|n| n.name.as_str()) {
                        Some("layer" | "a" | "b") => self.resolve_layer(&text, sc),
                        None => self.resolve_in_chain("analysis", &text, sc),
                        _ => None,
                    };
                    if let Some(k) = key {
                        self.reference(k, a.value.span);
                    }
                }
            }
            ExprKind::With(base, fields) => {
                self.uses_in_expr(base, sc);
                fields.iter().for_each(|f| self.uses_in_expr(&f.value, sc));
            }
            ExprKind::Unary(_, x) | ExprKind::Paren(x) => self.uses_in_expr(x, sc),
            ExprKind::Binary(_, a, b) => {
                self.uses_in_expr(a, sc);
                self.uses_in_expr(b, sc);
            }
            ExprKind::Ternary(a, b, c) => {
                self.uses_in_expr(a, sc);
                self.uses_in_expr(b, sc);
                self.uses_in_expr(c, sc);
            }
            ExprKind::None | ExprKind::Bool(_) | ExprKind::Number { .. } | ExprKind::Raw { .. } => {}
        }
    }

    /// The experiment and those it extends, nearest first (cycles are cut).
    fn chain(&self, exp: &str) -> Vec<String> {
        let mut out = vec![exp.to_string()];
        while let Some(p) = self.parents.get(out.last().expect("non-empty")) {
            if out.contains(p) {
                break;
            }
            out.push(p.clone());
        }
        out
    }

    fn resolve_name(&self, name: &str, sc: &Scope) -> Option<String> {
        let mut candidates = vec![];
        if let (Some(e), Some(l)) = (&sc.experiment, &sc.layer) {
            candidates.push(format!("l:{e}:{l}:{name}"));
        }
        if let Some(e) = &sc.experiment {
            candidates.extend(self.chain(e).into_iter().map(|x| format!("e:{x}:{name}")));
        }
        if let Some(s) = &sc.setup {
            candidates.push(format!("s:{s}:{name}"));
        }
        candidates.push(format!("g:{name}"));
        candidates.into_iter().find(|k| self.defined.contains(k))
    }

    fn resolve_layer(&self, layer: &str, sc: &Scope) -> Option<String> {
        self.resolve_in_chain("layer", layer, sc)
    }

    /// `KIND:EXP:LABEL` of the nearest experiment (this one, then those it extends) defining it.
    fn resolve_in_chain(&self, kind: &str, label: &str, sc: &Scope) -> Option<String> {
        let e = sc.experiment.as_deref()?;
        self.chain(e).into_iter().map(|x| format!("{kind}:{x}:{label}")).find(|k| self.defined.contains(k))
    }

    /// The occurrence under a byte offset of a file (the end of a word counts, for cursors).
    pub fn at(&self, file: FileId, offset: u32) -> Option<&Occurrence> {
        self.occurrences
            .iter()
            .filter(|o| o.span.file == file && o.span.start <= offset && offset <= o.span.end)
            .min_by_key(|o| o.span.len())
    }

    pub fn definitions(&self, key: &str) -> impl Iterator<Item = &Occurrence> {
        let key = key.to_string();
        self.occurrences.iter().filter(move |o| o.def && o.key == key)
    }

    pub fn all(&self, key: &str) -> impl Iterator<Item = &Occurrence> {
        let key = key.to_string();
        self.occurrences.iter().filter(move |o| o.key == key)
    }
}

impl Scope {
    /// The key a `factor`/`let`/`set` declared here gets.
    fn local_key(&self, name: &str) -> Option<String> {
        match (&self.experiment, &self.layer, &self.setup) {
            (Some(e), Some(l), _) => Some(format!("l:{e}:{l}:{name}")),
            (Some(e), None, _) => Some(format!("e:{e}:{name}")),
            (None, _, Some(s)) => Some(format!("s:{s}:{name}")),
            _ => None,
        }
    }
}
