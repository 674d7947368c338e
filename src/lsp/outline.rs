//! Views of a document's structure: folding ranges (blocks, multi-line
//! lists and records, comment runs), workspace symbols (named definitions of
//! every open document and what it imports) and semantic tokens (factors,
//! layers, patterns, settings, units).

use super::analysis::Analysis;
use crate::syntax::ast::{Block, Expr, ExprKind, StmtKind, StrPart};
use lsp_types::{
    FoldingRange, FoldingRangeKind, Location, SemanticToken, SemanticTokenModifier, SemanticTokenType, SemanticTokensLegend,
    SymbolInformation, SymbolKind,
};

/// Blocks and multi-line values fold; so do runs of two or more comment lines.
pub fn folding(a: &Analysis) -> Vec<FoldingRange> {
    let mut out = vec![];
    let line = |off: u32| a.lines.position(off as usize).line;
    for s in &a.ast().items {
        fold_stmt(&s.kind, s.span, &line, &mut out);
    }
    let mut run: Option<(u32, u32)> = None;
    for c in &a.ast().comments {
        let l = line(c.span.start);
        run = match run {
            Some((start, end)) if l == end + 1 && !c.trailing => Some((start, l)),
            other => {
                if let Some((s, e)) = other.filter(|(s, e)| e > s) {
                    out.push(range(s, e, Some(FoldingRangeKind::Comment)));
                }
                (!c.trailing).then_some((l, l))
            }
        };
    }
    if let Some((s, e)) = run.filter(|(s, e)| e > s) {
        out.push(range(s, e, Some(FoldingRangeKind::Comment)));
    }
    out
}

fn range(start: u32, end: u32, kind: Option<FoldingRangeKind>) -> FoldingRange {
    FoldingRange { start_line: start, start_character: None, end_line: end, end_character: None, kind, collapsed_text: None }
}

fn fold_stmt(kind: &StmtKind, span: crate::diagnostics::Span, line: &dyn Fn(u32) -> u32, out: &mut Vec<FoldingRange>) {
    match kind {
        StmtKind::Block(b) => {
            let (s, e) = (line(span.start), line(span.end));
            if e > s {
                out.push(range(s, e.saturating_sub(1).max(s), None));
            }
            for c in &b.body {
                fold_stmt(&c.kind, c.span, line, out);
            }
        }
        StmtKind::Attr(_, e) | StmtKind::Let(_, e) | StmtKind::Set(_, e) | StmtKind::Factor(_, e) => {
            let (s, en) = (line(e.span.start), line(e.span.end));
            if en > s {
                out.push(range(s, en.saturating_sub(1).max(s), None));
            }
        }
        _ => {}
    }
}

/// Named definitions matching `query` (a case-insensitive substring) in every analysis given.
#[allow(deprecated)] // `SymbolInformation::deprecated` must still be written.
pub fn workspace_symbols<'a>(analyses: impl Iterator<Item = &'a Analysis>, query: &str) -> Vec<SymbolInformation> {
    let q = query.to_lowercase();
    let mut out: Vec<SymbolInformation> = vec![];
    let mut seen = std::collections::HashSet::new();
    for a in analyses {
        for (_, f) in &a.loaded.check.files {
            for s in &f.items {
                let StmtKind::Block(b) = &s.kind else { continue };
                let mut push = |name: &str, kind: SymbolKind, span, container: Option<String>| {
                    if !name.to_lowercase().contains(&q) {
                        return;
                    }
                    let Some(location): Option<Location> = a.location(span) else { return };
                    if seen.insert((location.uri.to_string(), location.range.start.line, name.to_string())) {
                        out.push(SymbolInformation {
                            name: name.to_string(),
                            kind,
                            tags: None,
                            deprecated: None,
                            location,
                            container_name: container,
                        });
                    }
                };
                if let Some(l) = b.name() {
                    push(l.text(), super::navigate::block_kind(b), s.span, Some(b.kind.name.clone()));
                }
                if b.kind.name == "experiment" {
                    let exp = b.name().map(|l| l.text().to_string());
                    for c in &b.body {
                        match &c.kind {
                            StmtKind::Block(l) if l.kind.name == "layer" || l.kind.name == "pattern" => {
                                if let Some(n) = l.name() {
                                    push(n.text(), super::navigate::block_kind(l), c.span, exp.clone());
                                }
                            }
                            StmtKind::Factor(id, _) => push(&id.name, SymbolKind::ENUM, c.span, exp.clone()),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    out
}

/// The token types, in legend order.
const TYPES: [&str; 6] = ["factor", "layer", "pattern", "setting", "unit", "definition"];

pub fn legend() -> SemanticTokensLegend {
    SemanticTokensLegend {
        token_types: TYPES.iter().map(|t| SemanticTokenType::new(t)).collect(),
        token_modifiers: vec![SemanticTokenModifier::DECLARATION],
    }
}

struct Tokens<'a> {
    a: &'a Analysis,
    /// (start byte, length in bytes, type, modifiers)
    raw: Vec<(u32, u32, u32, u32)>,
}

/// Semantic tokens of the document: factors (declared and used), layer and
/// pattern labels, settings of layers and patterns, units of numbers, and
/// names of definitions.
pub fn semantic_tokens(a: &Analysis) -> Vec<SemanticToken> {
    let mut t = Tokens { a, raw: vec![] };
    for occ in a.index.occurrences.iter().filter(|o| o.span.file == a.file) {
        let ty = if occ.key.starts_with("e:") && is_factor(a, &occ.key) {
            0
        } else if occ.key.starts_with("layer:") {
            1
        } else if occ.key.starts_with("pattern:") {
            2
        } else if occ.key.starts_with("g:") {
            5
        } else {
            continue;
        };
        t.raw.push((occ.span.start, occ.span.len() as u32, ty, u32::from(occ.def)));
    }
    for s in &a.ast().items {
        t.stmt(&s.kind, "");
    }
    t.raw.sort_unstable();
    t.raw.dedup_by_key(|x| x.0);
    encode(a, &t.raw)
}

fn is_factor(a: &Analysis, key: &str) -> bool {
    let mut parts = key.splitn(3, ':').skip(1);
    let (Some(exp), Some(name)) = (parts.next(), parts.next()) else { return false };
    a.loaded.check.model.experiments.iter().any(|e| e.name == exp && e.factors.iter().any(|f| f.name == name))
}

impl Tokens<'_> {
    fn stmt(&mut self, kind: &StmtKind, parent: &str) {
        match kind {
            StmtKind::Block(b) => self.block(b),
            StmtKind::Attr(id, e) => {
                if matches!(parent, "layer" | "pattern") && self.a.index.at(self.a.file, id.span.start).is_none() {
                    self.raw.push((id.span.start, id.span.len() as u32, 3, 0));
                }
                self.expr(e);
            }
            StmtKind::Let(_, e) | StmtKind::Set(_, e) | StmtKind::Factor(_, e) => self.expr(e),
            StmtKind::Prune { cond, .. } => self.expr(cond),
            StmtKind::When { cond, action, .. } => {
                self.expr(cond);
                self.expr(action);
            }
            _ => {}
        }
    }
    fn block(&mut self, b: &Block) {
        for s in &b.body {
            self.stmt(&s.kind, &b.kind.name);
        }
    }
    fn expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Number { text, .. } => {
                let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic()).len();
                if digits < text.len() && !text.starts_with('$') {
                    self.raw.push((e.span.start + digits as u32, (text.len() - digits) as u32, 4, 0));
                }
            }
            ExprKind::Str(parts) => parts.iter().for_each(|p| {
                if let StrPart::Interp(x) = p {
                    self.expr(x)
                }
            }),
            ExprKind::List(v) | ExprKind::Tuple(v) => v.iter().for_each(|x| self.expr(x)),
            ExprKind::Record(f) | ExprKind::With(_, f) => f.iter().for_each(|x| self.expr(&x.value)),
            ExprKind::Member(x, _) | ExprKind::Unary(_, x) | ExprKind::Paren(x) => self.expr(x),
            ExprKind::Call(f, args) => {
                self.expr(f);
                args.iter().for_each(|x| self.expr(&x.value));
            }
            ExprKind::Binary(_, x, y) => {
                self.expr(x);
                self.expr(y);
            }
            ExprKind::Ternary(x, y, z) => {
                self.expr(x);
                self.expr(y);
                self.expr(z);
            }
            _ => {}
        }
    }
}

/// LSP's relative encoding: line and start deltas, lengths in UTF-16 units.
fn encode(a: &Analysis, raw: &[(u32, u32, u32, u32)]) -> Vec<SemanticToken> {
    let mut out = vec![];
    let (mut prev_line, mut prev_col) = (0, 0);
    for &(start, len, ty, mods) in raw {
        let s = a.lines.position(start as usize);
        let e = a.lines.position((start + len) as usize);
        if e.line != s.line {
            continue;
        }
        let delta_line = s.line - prev_line;
        let delta_start = if delta_line == 0 { s.character - prev_col } else { s.character };
        out.push(SemanticToken {
            delta_line,
            delta_start,
            length: e.character - s.character,
            token_type: ty,
            token_modifiers_bitset: mods,
        });
        prev_line = s.line;
        prev_col = s.character;
    }
    out
}
