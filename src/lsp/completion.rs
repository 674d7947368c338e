//! Completion. The context (which block, which attribute, inside a string or
//! not) is read from the text before the cursor, because the line being typed
//! rarely parses; the candidates come from the schema and the last analysis.

use super::analysis::Analysis;
use crate::check::imports::STDLIB;
use crate::check::schema::{self, Ty};
use crate::check::value::FUNCTIONS;
use lsp_types::{CompletionItem, CompletionItemKind as K, CompletionTextEdit, TextEdit};

/// What the text before the cursor says about where it is.
#[derive(Debug, Default, PartialEq)]
pub struct Context {
    /// Kinds of the enclosing blocks, outermost first; records read as `{`.
    pub blocks: Vec<String>,
    /// The definition a `base { ... }` record overrides (`vllm` in `server = vllm { tp = 4 }`).
    pub record_base: Option<String>,
    /// The current statement's text up to the cursor.
    pub stmt: String,
    pub in_string: bool,
    /// Labels of the enclosing blocks, parallel to `blocks` (empty for records and unlabelled blocks).
    pub labels: Vec<String>,
    /// Byte offset just after the opening quote of the string the cursor is in.
    pub string_start: Option<usize>,
}

impl Context {
    /// The attribute (or `factor`/`let`/`set` name) being assigned, if past its `=`.
    pub fn attr(&self) -> Option<&str> {
        let (lhs, _) = self.stmt.split_once('=')?;
        let mut words = lhs.split_whitespace();
        let first = words.next()?;
        match first {
            "let" | "set" | "factor" => words.next(),
            w => Some(w),
        }
    }
    fn block(&self) -> &str {
        self.blocks.last().map(String::as_str).unwrap_or("")
    }
    fn in_record(&self) -> bool {
        self.block() == "{"
    }
}

enum Frame {
    Block(String, String),
    Record(Option<String>),
    List,
}

/// Scans the text up to `offset`: strings, comments and brackets.
pub fn context(text: &str, offset: usize) -> Context {
    let offset = crate::diagnostics::floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let mut frames: Vec<(Frame, usize)> = vec![];
    let mut stmt_start = 0;
    let mut in_string = false;
    let mut string_start = None;
    let mut chars = before.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if in_string {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => in_string = false,
                '\n' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                string_start = Some(i + 1);
            }
            '#' => {
                while chars.peek().is_some_and(|(_, c)| *c != '\n') {
                    chars.next();
                }
            }
            '{' => {
                let header = &before[stmt_start..i];
                let frame = if header.contains('=') || matches!(frames.last(), Some((Frame::List | Frame::Record(_), _))) {
                    Frame::Record(
                        header.split(|c: char| !(c.is_alphanumeric() || c == '_')).rfind(|w| !w.is_empty()).map(str::to_string),
                    )
                } else {
                    let mut words = header.split_whitespace();
                    let kind = words.next().unwrap_or("").to_string();
                    Frame::Block(kind, words.next().unwrap_or("").trim_matches('"').to_string())
                };
                frames.push((frame, stmt_start));
                stmt_start = i + 1;
            }
            '[' | '(' => frames.push((Frame::List, stmt_start)),
            '}' | ']' | ')' => {
                if let Some((_, start)) = frames.pop() {
                    stmt_start = start;
                }
            }
            '\n' | ',' | ';' if !matches!(frames.last(), Some((Frame::List, _))) => stmt_start = i + 1,
            _ => {}
        }
    }
    let string_start = string_start.filter(|_| in_string);
    let mut cx = Context { stmt: before[stmt_start..].trim_start().to_string(), in_string, string_start, ..Context::default() };
    for (f, _) in &frames {
        match f {
            Frame::Block(k, l) => {
                cx.blocks.push(k.clone());
                cx.labels.push(l.clone());
            }
            Frame::Record(base) => {
                cx.blocks.push("{".into());
                cx.labels.push(String::new());
                cx.record_base = base.clone();
            }
            Frame::List => {}
        }
    }
    cx
}

fn item(label: &str, kind: K, detail: impl Into<String>) -> CompletionItem {
    CompletionItem { label: label.to_string(), kind: Some(kind), detail: Some(detail.into()), ..Default::default() }
}

pub fn complete(a: Option<&Analysis>, text: &str, offset: usize) -> Vec<CompletionItem> {
    let offset = crate::diagnostics::floor_char_boundary(text, offset.min(text.len()));
    let cx = context(text, offset);
    let mut out = vec![];
    if cx.in_string {
        strings(a, &cx, text, offset, &mut out);
    } else if cx.stmt.contains('=') || starts_value(&cx.stmt) {
        values(a, &cx, &mut out);
        stdlib_items(a, &cx, text, &mut out);
    } else if cx.in_record() {
        record_fields(a, &cx, &mut out);
    } else {
        statements(a, &cx, &mut out);
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|i| seen.insert(i.label.clone()));
    with_edits(&mut out, &cx, text, offset);
    out
}

/// Gives every item the range it replaces, so no client has to guess: in a string,
/// the whole content between the quotes (the typed prefix filters); elsewhere the
/// word around the cursor.
fn with_edits(out: &mut [CompletionItem], cx: &Context, text: &str, offset: usize) {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let (start, end) = match cx.string_start {
        Some(start) => {
            let rest = &text[offset..];
            let line_end = rest.find('\n').unwrap_or(rest.len());
            let close = rest[..line_end].find('"').unwrap_or(0);
            (start, offset + close)
        }
        None => {
            let start = text[..offset].trim_end_matches(word).len();
            let end = offset + text[offset..].find(|c: char| !word(c)).unwrap_or(text.len() - offset);
            (start, end)
        }
    };
    let lines = super::convert::LineIndex::new(text);
    let range = lines.range(start, end);
    for i in out.iter_mut() {
        let new_text = i.insert_text.take().unwrap_or_else(|| i.label.clone());
        i.filter_text = Some(i.label.clone());
        i.text_edit = Some(CompletionTextEdit::Edit(TextEdit::new(range, new_text)));
    }
}

/// `prune ...` and `when ...` take expressions without an `=`.
fn starts_value(stmt: &str) -> bool {
    let first = stmt.split_whitespace().next().unwrap_or("");
    matches!(first, "prune" | "when") && stmt.contains(' ')
}

/// Statement position: attribute names, child block kinds and keywords of the block.
fn statements(a: Option<&Analysis>, cx: &Context, out: &mut Vec<CompletionItem>) {
    let kind = cx.block();
    if kind.is_empty() {
        out.push(item("import", K::KEYWORD, "import \"std/aws\" or a relative file"));
        out.push(item("let", K::KEYWORD, "let NAME = VALUE"));
    }
    if let Some(sc) = schema::block(kind) {
        for attr in sc.attrs {
            let mut i = item(attr.name, K::PROPERTY, format!("{}{}", attr.doc, if attr.required { " (required)" } else { "" }));
            i.insert_text = Some(format!("{} = ", attr.name));
            out.push(i);
        }
        for s in sc.stmts {
            out.push(item(s, K::KEYWORD, format!("statement of `{kind}`")));
        }
    }
    for child in schema::BLOCKS.iter().filter(|b| b.parents.contains(&kind)) {
        out.push(item(child.kind, K::CLASS, child.doc));
    }
    // A pattern fixes factor levels; a layer may fix settings too.
    if matches!(kind, "pattern" | "layer") {
        for f in factors(a) {
            out.push(item(&f, K::VARIABLE, "factor"));
        }
        for s in schema::PATTERN_SETTINGS {
            out.push(item(s, K::PROPERTY, "pattern setting"));
        }
    }
}

/// Inside `base { ... }`: the fields the base takes (a tool's params, a server's settings).
fn record_fields(a: Option<&Analysis>, cx: &Context, out: &mut Vec<CompletionItem>) {
    let (Some(a), Some(base)) = (a, &cx.record_base) else { return };
    let model = &a.loaded.check.model;
    if let Some(t) = model.tools.get(base) {
        for (k, v) in &t.params {
            out.push(item(k, K::FIELD, format!("param of `{base}` (default {})", v.display())));
        }
    }
    if let Some(def_kind) = def_kind(a, base) {
        if let Some(sc) = schema::block(&def_kind) {
            for attr in sc.attrs {
                out.push(item(attr.name, K::FIELD, attr.doc));
            }
        }
        // Attributes the definition sets: the usual things to override.
        for (_, f) in &a.loaded.check.files {
            for s in &f.items {
                if let crate::syntax::ast::StmtKind::Block(b) = &s.kind {
                    if b.name().is_some_and(|l| l.text() == base) {
                        for st in &b.body {
                            if let crate::syntax::ast::StmtKind::Attr(id, _) = &st.kind {
                                out.push(item(&id.name, K::FIELD, format!("set by `{base}`")));
                            }
                        }
                    }
                }
            }
        }
    }
}

fn def_kind(a: &Analysis, name: &str) -> Option<String> {
    a.loaded.check.files.iter().flat_map(|(_, f)| &f.items).find_map(|s| match &s.kind {
        crate::syntax::ast::StmtKind::Block(b) if b.name().is_some_and(|l| l.text() == name) => Some(b.kind.name.clone()),
        _ => None,
    })
}

/// Value position: enumeration literals the attribute allows, definitions of the
/// right kind, factors and names in scope, functions.
fn values(a: Option<&Analysis>, cx: &Context, out: &mut Vec<CompletionItem>) {
    let attr = cx.attr().unwrap_or("");
    let ty = schema::block(cx.block()).and_then(|s| s.attrs.iter().find(|x| x.name == attr)).map(|x| x.ty);
    match ty {
        Some(Ty::Sym(allowed) | Ty::SymList(allowed)) => {
            for s in allowed {
                out.push(item(s, K::ENUM_MEMBER, format!("value of `{attr}`")));
            }
        }
        Some(Ty::Bool) => {
            out.push(item("true", K::KEYWORD, "boolean"));
            out.push(item("false", K::KEYWORD, "boolean"));
        }
        _ => {}
    }
    // `mode` and `transport` in layers and patterns are open attributes there.
    match attr {
        "mode" => schema::MODES.iter().for_each(|s| out.push(item(s, K::ENUM_MEMBER, "mode"))),
        "transport" => schema::TRANSPORTS.iter().for_each(|s| out.push(item(s, K::ENUM_MEMBER, "transport"))),
        "backend" => schema::BACKENDS.iter().for_each(|s| out.push(item(s, K::ENUM_MEMBER, "NIXL backend"))),
        "kv_buffer_device" => schema::BUFFER_DEVICES.iter().for_each(|s| out.push(item(s, K::ENUM_MEMBER, "KV buffer device"))),
        _ => {}
    }
    let wanted = wanted_kind(cx);
    if let Some(a) = a {
        // A definition of one kind is wanted: factors and `let`s would only be noise.
        for f in factors(Some(a)).into_iter().filter(|_| wanted.is_none()) {
            out.push(item(&f, K::VARIABLE, "factor"));
        }
        for (_, f) in &a.loaded.check.files {
            for s in &f.items {
                match &s.kind {
                    crate::syntax::ast::StmtKind::Let(id, _) if wanted.is_none() => out.push(item(&id.name, K::VARIABLE, "let")),
                    crate::syntax::ast::StmtKind::Block(b) => {
                        if let Some(crate::syntax::ast::BlockLabel::Ident(i)) = b.name() {
                            if wanted.as_deref().is_none_or(|w| w == b.kind.name) {
                                out.push(item(&i.name, K::REFERENCE, b.kind.name.clone()));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    if wanted.is_none() {
        for (f, doc) in FUNCTIONS {
            out.push(item(f, K::FUNCTION, *doc));
        }
        for s in ["true", "false", "none"] {
            out.push(item(s, K::KEYWORD, "literal"));
        }
    }
}

/// The definition kind a value position wants: `model =` a model, `steps =` tools...
fn wanted_kind(cx: &Context) -> Option<String> {
    let attr = cx.attr().unwrap_or("");
    match schema::block(cx.block()).and_then(|s| s.attrs.iter().find(|x| x.name == attr)).map(|x| x.ty) {
        Some(Ty::Ref(k) | Ty::RefList(k)) => Some(k.to_string()),
        _ => match attr {
            "server" | "bench" => Some(attr.to_string()),
            "steps" | "keep" => Some("tool".to_string()),
            _ => None,
        },
    }
}

/// Named definitions of the standard library, parsed once: (module, kind, name).
fn stdlib_defs() -> &'static [(&'static str, String, String)] {
    static DEFS: std::sync::OnceLock<Vec<(&'static str, String, String)>> = std::sync::OnceLock::new();
    DEFS.get_or_init(|| {
        let mut out = vec![];
        for (module, text) in STDLIB {
            let (file, _) = crate::syntax::parse(0, text);
            for s in &file.items {
                if let crate::syntax::ast::StmtKind::Block(b) = &s.kind {
                    if let Some(crate::syntax::ast::BlockLabel::Ident(i)) = b.name() {
                        out.push((*module, b.kind.name.clone(), i.name.clone()));
                    }
                }
            }
        }
        out
    })
}

/// Standard-library definitions of the wanted kind that the document does not import
/// yet, offered with the `import` line they need.
fn stdlib_items(a: Option<&Analysis>, cx: &Context, text: &str, out: &mut Vec<CompletionItem>) {
    let Some(kind) = wanted_kind(cx) else { return };
    let loaded: Vec<&str> = a.map(|a| a.loaded.check.sources.files().map(|(_, f)| f.name.as_str()).collect()).unwrap_or_default();
    // After the last import, or at the top.
    let line = text.lines().enumerate().filter(|(_, l)| l.starts_with("import ")).map(|(i, _)| i + 1).last().unwrap_or(0) as u32;
    let at = lsp_types::Position::new(line, 0);
    for (module, k, name) in stdlib_defs() {
        if *k != kind || loaded.contains(module) {
            continue;
        }
        let mut i = item(name, K::REFERENCE, format!("{k} from {module} (adds the import)"));
        i.additional_text_edits =
            Some(vec![lsp_types::TextEdit::new(lsp_types::Range::new(at, at), format!("import \"{module}\"\n"))]);
        out.push(i);
    }
}

/// Factor names of the document's experiments (an extending experiment has its parent's).
fn factors(a: Option<&Analysis>) -> Vec<String> {
    let Some(a) = a else { return vec![] };
    let mut names: Vec<String> = a.loaded.designs().flat_map(|d| d.factors.iter().map(|f| f.name.clone())).collect();
    if names.is_empty() {
        names = a.loaded.check.model.experiments.iter().flat_map(|e| e.factors.iter().map(|f| f.name.clone())).collect();
    }
    names
}

/// Inside a string: import paths, instance types, zones, regions, layers, pattern ids, nodes.
fn strings(a: Option<&Analysis>, cx: &Context, text: &str, offset: usize, out: &mut Vec<CompletionItem>) {
    if cx.stmt.starts_with("import") {
        let typed = cx.string_start.map(|s| &text[s..offset]).unwrap_or("");
        if !typed.starts_with('.') && !typed.starts_with('/') {
            for (k, text) in STDLIB {
                let first = text.lines().next().unwrap_or("").trim_start_matches('#').trim();
                out.push(item(k, K::MODULE, first));
            }
        }
        import_paths(a, typed, out);
        return;
    }
    let Some(a) = a else { return };
    let model = &a.loaded.check.model;
    let in_layer = cx.stmt.starts_with("pattern") && cx.stmt.contains(" in ");
    match cx.attr() {
        _ if in_layer => layers(a, out),
        Some("instance_type") => {
            for (name, i) in &model.instances {
                let detail = format!("{} x {}, ${:.2}/h", i.gpus, i.gpu, i.price_per_hour);
                out.push(item(name, K::VALUE, detail));
            }
        }
        Some("zones") => {
            // The zones of the region this stack names, else every known zone.
            let region = region_in(a, cx);
            for (r, zones) in &model.regions {
                if region.as_deref().is_none_or(|x| x == r) {
                    zones.iter().for_each(|z| out.push(item(z, K::VALUE, format!("zone of {r}"))));
                }
            }
        }
        Some("region") => model.regions.iter().for_each(|(r, z)| out.push(item(r, K::VALUE, format!("{} zones", z.len())))),
        Some("inputs") => layers(a, out),
        Some("schedule") => schedule_ids(a, cx, out),
        Some("stack") => model.stacks.iter().for_each(|s| out.push(item(&s.name, K::VALUE, s.region.clone()))),
        Some("nodes") => model.stacks.iter().flat_map(|s| &s.nodes).for_each(|n| out.push(item(&n.name, K::VALUE, "node"))),
        _ => {}
    }
}

/// Files and folders for an import: `typed` is the path so far, relative to the document.
fn import_paths(a: Option<&Analysis>, typed: &str, out: &mut Vec<CompletionItem>) {
    let Some(a) = a else { return };
    let doc = std::path::Path::new(&a.name);
    let Some(base) = doc.parent() else { return };
    let (dir_part, _) = typed.rsplit_once('/').unwrap_or(("", typed));
    let prefix = if dir_part.is_empty() { "./".to_string() } else { format!("{dir_part}/") };
    let dir = if typed.starts_with('/') {
        std::path::PathBuf::from(format!("/{}", dir_part.trim_start_matches('/')))
    } else {
        base.join(dir_part)
    };
    let Ok(rd) = std::fs::read_dir(&dir) else { return };
    let mut entries: Vec<(String, bool)> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let is_dir = e.file_type().ok()?.is_dir();
            let keep = !name.starts_with('.') && (is_dir || (name.ends_with(".nixl") && e.path() != doc));
            keep.then_some((name, is_dir))
        })
        .collect();
    entries.sort();
    for (name, is_dir) in entries {
        let label = format!("{prefix}{name}{}", if is_dir { "/" } else { "" });
        out.push(item(&label, if is_dir { K::FOLDER } else { K::FILE }, if is_dir { "folder" } else { "nixl file" }));
    }
}

/// The ids a layer's `schedule` may list: the layer's own patterns, in the
/// experiment the cursor is in.
fn schedule_ids(a: &Analysis, cx: &Context, out: &mut Vec<CompletionItem>) {
    let label_of = |kind: &str| cx.blocks.iter().rposition(|b| b == kind).map(|i| cx.labels[i].as_str());
    let (Some(exp), Some(layer)) = (label_of("experiment"), label_of("layer")) else { return };
    let Some(d) = a.loaded.designs().find(|d| d.experiment == exp) else { return };
    let Some(li) = d.layers.iter().position(|l| l.name == layer) else { return };
    for p in d.patterns.iter().filter(|p| p.layer as usize == li) {
        out.push(item(&p.id, K::VALUE, crate::design::tables::describe(d, p)));
    }
}

fn layers(a: &Analysis, out: &mut Vec<CompletionItem>) {
    for d in a.loaded.designs() {
        for l in &d.layers {
            out.push(item(&l.name, K::VALUE, format!("layer of {} ({})", d.experiment, l.category.label())));
        }
    }
}

/// The `region = "..."` of the stack around the cursor, read from the analysis.
fn region_in(a: &Analysis, cx: &Context) -> Option<String> {
    if cx.block() != "stack" {
        return None;
    }
    // The stack the cursor is in is not known by name here; use the region of the
    // document's stacks when they agree on one.
    let regions: std::collections::BTreeSet<&str> = a
        .loaded
        .check
        .model
        .stacks
        .iter()
        .filter(|s| a.loaded.check.sources.get(s.span.file).name == a.name)
        .map(|s| s.region.as_str())
        .collect();
    (regions.len() == 1).then(|| regions.into_iter().next().unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts() {
        let t = "experiment e {\n  layer \"L\" {\n    mo";
        let cx = context(t, t.len());
        assert_eq!(cx.blocks, vec!["experiment", "layer"]);
        assert_eq!(cx.stmt, "mo");
        let t = "stack \"s\" {\n  zones = [\"us-east-1a\", \"us";
        let cx = context(t, t.len());
        assert!(cx.in_string);
        assert_eq!(cx.attr(), Some("zones"));
        let t = "experiment e {\n  server = vllm { t";
        let cx = context(t, t.len());
        assert_eq!(cx.blocks, vec!["experiment", "{"]);
        assert_eq!(cx.record_base.as_deref(), Some("vllm"));
        assert_eq!(cx.stmt, "t");
        let t = "x {\n  # a { comment\n  \"}\" \n  a = 1\n  b";
        assert_eq!(context(t, t.len()).blocks, vec!["x"]);
    }
}
