//! Go to definition, find references, the document outline and formatting.

use super::analysis::Analysis;
use crate::diagnostics::Span;
use crate::syntax::ast::{Block, Stmt, StmtKind};
use lsp_types::{
    CodeAction, CodeActionKind, CodeActionOrCommand, DocumentSymbol, Location, Position, Range, SymbolKind, TextEdit, Url,
    WorkspaceEdit,
};

/// Where the name under the cursor is defined; an import goes to the imported file.
pub fn definition(a: &Analysis, offset: u32) -> Vec<Location> {
    for (span, file) in a.imports() {
        if span.start <= offset && offset <= span.end {
            return a.uri_of(file).map(|u| Location::new(u, Range::default())).into_iter().collect();
        }
    }
    let Some(o) = a.index.at(a.file, offset) else { return vec![] };
    a.index.definitions(&o.key).filter_map(|d| a.location(d.span)).collect()
}

pub fn references(a: &Analysis, offset: u32, include_declaration: bool) -> Vec<Location> {
    let Some(o) = a.index.at(a.file, offset) else { return vec![] };
    a.index.all(&o.key).filter(|r| include_declaration || !r.def).filter_map(|r| a.location(r.span)).collect()
}

/// The outline: blocks with their labels, and the factors, `let`s and `set`s inside.
pub fn symbols(a: &Analysis) -> Vec<DocumentSymbol> {
    a.ast().items.iter().filter_map(|s| symbol(a, s)).collect()
}

#[allow(deprecated)] // `DocumentSymbol::deprecated` must still be written.
fn symbol(a: &Analysis, s: &Stmt) -> Option<DocumentSymbol> {
    let range = a.lines.range(s.span.start as usize, s.span.end as usize);
    type Parts = (String, Option<String>, SymbolKind, Span, Vec<DocumentSymbol>);
    let (name, detail, kind, sel, children): Parts = match &s.kind {
        StmtKind::Block(b) => {
            let label = b.labels.iter().map(|l| l.text()).collect::<Vec<_>>().join(" ");
            let sel = b.name().map(|l| l.span()).unwrap_or(b.kind.span);
            let name = if label.is_empty() { b.kind.name.clone() } else { label };
            (name, Some(b.kind.name.clone()), block_kind(b), sel, b.body.iter().filter_map(|c| symbol(a, c)).collect())
        }
        StmtKind::Factor(id, _) => (id.name.clone(), Some("factor".into()), SymbolKind::ENUM, id.span, vec![]),
        StmtKind::Let(id, _) => (id.name.clone(), Some("let".into()), SymbolKind::VARIABLE, id.span, vec![]),
        StmtKind::Set(id, _) => (id.name.clone(), Some("set".into()), SymbolKind::PROPERTY, id.span, vec![]),
        StmtKind::Import(t) => (t.value.clone(), Some("import".into()), SymbolKind::MODULE, t.span, vec![]),
        _ => return None,
    };
    Some(DocumentSymbol {
        name,
        detail,
        kind,
        tags: None,
        deprecated: None,
        range,
        selection_range: a.lines.range(sel.start as usize, sel.end as usize),
        children: if children.is_empty() { None } else { Some(children) },
    })
}

pub(super) fn block_kind(b: &Block) -> SymbolKind {
    match b.kind.name.as_str() {
        "experiment" => SymbolKind::NAMESPACE,
        "layer" => SymbolKind::CLASS,
        "stack" | "setup" => SymbolKind::MODULE,
        "step" | "analysis" => SymbolKind::FUNCTION,
        "instance" | "region" | "model" => SymbolKind::STRUCT,
        "pattern" => SymbolKind::CONSTANT,
        _ => SymbolKind::OBJECT,
    }
}

/// `nixl fmt` as one edit over the whole document; none when the text does not
/// parse (the formatter leaves such files alone) or is already formatted.
pub fn format(text: &str) -> Vec<TextEdit> {
    let (file, diags) = crate::syntax::parse(0, text);
    if diags.iter().any(|d| d.is_error()) {
        return vec![];
    }
    let formatted = crate::syntax::fmt::format(&file, text);
    if formatted == text {
        return vec![];
    }
    let idx = super::convert::LineIndex::new(text);
    let end = idx.position(text.len());
    vec![TextEdit::new(Range::new(Position::new(0, 0), end), formatted)]
}

/// Quick fixes: a diagnostic whose help says "did you mean `x`?" (carried in its
/// `data`) offers the replacement; a quoted name stays quoted.
pub fn code_actions(uri: &Url, text: &str, diagnostics: &[lsp_types::Diagnostic]) -> Vec<CodeActionOrCommand> {
    let idx = super::convert::LineIndex::new(text);
    let mut out = vec![];
    for d in diagnostics {
        let Some(new) = d.data.as_ref().and_then(|v| v["replace"].as_str()) else { continue };
        let old = text.get(idx.offset(d.range.start)..idx.offset(d.range.end)).unwrap_or("");
        let new = if old.starts_with('"') { format!("\"{new}\"") } else { new.to_string() };
        let edit = TextEdit::new(d.range, new.clone());
        out.push(CodeActionOrCommand::CodeAction(CodeAction {
            title: format!("Replace with {new}"),
            kind: Some(CodeActionKind::QUICKFIX),
            diagnostics: Some(vec![d.clone()]),
            edit: Some(WorkspaceEdit { changes: Some([(uri.clone(), vec![edit])].into_iter().collect()), ..Default::default() }),
            is_preferred: Some(true),
            ..Default::default()
        }));
    }
    out
}
