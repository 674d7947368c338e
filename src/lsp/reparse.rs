//! Incremental parsing for the language server: a file is cut into top-level
//! chunks (a line that starts a block, `let` or `import` at depth 0) and each
//! chunk's tree is cached by its text, so an edit re-parses only its chunk.
//! Parsing is over 90% of a re-check, and this is what keeps a 5,000-line file
//! under the 20 ms target.
//!
//! The result must equal `syntax::parse` of the whole text. Two rules make sure:
//! only error-free chunks are composed (any diagnostic, and the whole file is
//! parsed again in one piece, so errors read exactly as `nixl check` prints
//! them), and a chunk boundary in the wrong place (inside a block, a list or a
//! long string) always leaves some chunk unbalanced, hence with a diagnostic.

use crate::diagnostics::{Diagnostic, FileId, Span};
use crate::syntax::ast::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

type Parsed = Rc<(File, Vec<Diagnostic>)>;

/// Chunk trees by chunk text, with the number of the parse that last used each.
#[derive(Default)]
pub struct ParseCache {
    chunks: RefCell<HashMap<String, (Parsed, u64)>>,
    parses: std::cell::Cell<u64>,
}

/// Above this many entries, those no parse used recently are dropped: every
/// keystroke in a large block adds a version of that block.
const SWEEP_ABOVE: usize = 2_000;
/// "Recently": within this many parses (a re-check parses a file and its imports).
const KEEP_PARSES: u64 = 64;

impl ParseCache {
    /// `syntax::parse(file, text)`, reusing the trees of unchanged chunks.
    pub fn parse(&self, file: FileId, text: &str) -> (File, Vec<Diagnostic>) {
        if text.len() > crate::syntax::parser::MAX_FILE_BYTES {
            return crate::syntax::parse(file, text);
        }
        let mut items = vec![];
        let mut comments = vec![];
        let now = self.parses.get() + 1;
        self.parses.set(now);
        let mut chunks = self.chunks.borrow_mut();
        if chunks.len() > SWEEP_ABOVE {
            chunks.retain(|_, (_, used)| now - *used < KEEP_PARSES);
        }
        for (start, end) in chunk_bounds(text) {
            let piece = &text[start..end];
            let entry = chunks.entry(piece.to_string()).or_insert_with(|| (Rc::new(crate::syntax::parse(0, piece)), now));
            entry.1 = now;
            let parsed = entry.0.clone();
            if !parsed.1.is_empty() {
                drop(chunks);
                return crate::syntax::parse(file, text);
            }
            let s = Shift { file, by: start as u32 };
            items.extend(parsed.0.items.iter().map(|i| s.stmt(i.clone())));
            comments.extend(parsed.0.comments.iter().map(|c| Comment { span: s.span(c.span), ..c.clone() }));
        }
        (File { items, comments, span: Span::new(file, 0, text.len()) }, vec![])
    }
}

/// Byte ranges of the top-level chunks, covering the text.
pub fn chunk_bounds(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut starts = vec![0];
    let (mut depth, mut i) = (0i64, 0);
    let mut at_line_start = true;
    while i < b.len() {
        if at_line_start && depth == 0 && i > 0 && starts_item(&text[i..]) {
            starts.push(i);
        }
        at_line_start = false;
        match b[i] {
            b'\n' => at_line_start = true,
            b'#' => {
                i = text[i..].find('\n').map(|n| i + n).unwrap_or(b.len());
                continue;
            }
            b'"' => {
                // A string ends on its line; braces inside it are interpolations, not depth.
                i += 1;
                while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                if i < b.len() && b[i] == b'\n' {
                    continue;
                }
            }
            b'\'' if text[i..].starts_with("'''") => {
                i = text[i + 3..].find("'''").map(|n| i + 3 + n + 2).unwrap_or(b.len());
            }
            b'\'' => {
                i += 1;
                while i < b.len() && b[i] != b'\'' && b[i] != b'\n' {
                    i += 1;
                }
                if i < b.len() && b[i] == b'\n' {
                    continue;
                }
            }
            b'{' | b'[' | b'(' => depth += 1,
            b'}' | b']' | b')' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    starts.push(text.len());
    starts.windows(2).map(|w| (w[0], w[1])).filter(|(s, e)| s < e).collect()
}

/// A line that can only begin a new top-level item: `import "`, `let x`, or a
/// block header `kind label`/`kind {`. Keywords cannot continue an expression.
fn starts_item(line: &str) -> bool {
    if line.starts_with("import ") || line.starts_with("let ") {
        return true;
    }
    let word = line.bytes().take_while(|c| c.is_ascii_alphanumeric() || *c == b'_').count();
    if word == 0 || line.as_bytes()[0].is_ascii_digit() || !line[word..].starts_with(' ') {
        return false;
    }
    let rest = line[word..].trim_start_matches(' ');
    rest.starts_with('"') || rest.starts_with('{') || rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
}

/// Moves every span of a cached chunk tree to its place in the file.
struct Shift {
    file: FileId,
    by: u32,
}

impl Shift {
    fn span(&self, s: Span) -> Span {
        Span { file: self.file, start: s.start + self.by, end: s.end + self.by }
    }
    fn ident(&self, i: Ident) -> Ident {
        Ident { span: self.span(i.span), ..i }
    }
    fn lit(&self, l: StrLit) -> StrLit {
        StrLit { span: self.span(l.span), ..l }
    }
    fn stmt(&self, s: Stmt) -> Stmt {
        let kind = match s.kind {
            StmtKind::Import(l) => StmtKind::Import(self.lit(l)),
            StmtKind::Let(i, e) => StmtKind::Let(self.ident(i), self.expr(e)),
            StmtKind::Set(i, e) => StmtKind::Set(self.ident(i), self.expr(e)),
            StmtKind::Factor(i, e) => StmtKind::Factor(self.ident(i), self.expr(e)),
            StmtKind::Attr(i, e) => StmtKind::Attr(self.ident(i), self.expr(e)),
            StmtKind::Prune { cond, reason } => StmtKind::Prune { cond: self.expr(cond), reason: self.lit(reason) },
            StmtKind::When { cond, action, reason } => {
                StmtKind::When { cond: self.expr(cond), action: self.expr(action), reason: reason.map(|r| self.lit(r)) }
            }
            StmtKind::Block(b) => StmtKind::Block(Block {
                kind: self.ident(b.kind),
                labels: b
                    .labels
                    .into_iter()
                    .map(|l| match l {
                        BlockLabel::Str(s) => BlockLabel::Str(self.lit(s)),
                        BlockLabel::Ident(i) => BlockLabel::Ident(self.ident(i)),
                    })
                    .collect(),
                extends: b.extends.map(|i| self.ident(i)),
                in_layer: b.in_layer.map(|l| self.lit(l)),
                body: b.body.into_iter().map(|s| self.stmt(s)).collect(),
                body_span: self.span(b.body_span),
            }),
            StmtKind::Error(t) => StmtKind::Error(t),
        };
        Stmt { kind, span: self.span(s.span) }
    }
    fn exprs(&self, v: Vec<Expr>) -> Vec<Expr> {
        v.into_iter().map(|e| self.expr(e)).collect()
    }
    fn fields(&self, v: Vec<Field>) -> Vec<Field> {
        v.into_iter().map(|f| Field { name: self.ident(f.name), value: self.expr(f.value) }).collect()
    }
    /// Shifts in place: the box is reused, not reallocated.
    fn boxed(&self, mut e: Box<Expr>) -> Box<Expr> {
        let inner = std::mem::replace(&mut *e, Expr { kind: ExprKind::None, span: Span::default() });
        *e = self.expr(inner);
        e
    }
    fn expr(&self, e: Expr) -> Expr {
        let kind = match e.kind {
            k @ (ExprKind::None | ExprKind::Bool(_) | ExprKind::Number { .. } | ExprKind::Raw { .. }) => k,
            ExprKind::Str(parts) => ExprKind::Str(
                parts
                    .into_iter()
                    .map(|p| match p {
                        StrPart::Interp(x) => StrPart::Interp(self.expr(x)),
                        t => t,
                    })
                    .collect(),
            ),
            ExprKind::List(v) => ExprKind::List(self.exprs(v)),
            ExprKind::Tuple(v) => ExprKind::Tuple(self.exprs(v)),
            ExprKind::Record(f) => ExprKind::Record(self.fields(f)),
            ExprKind::Name(i) => ExprKind::Name(self.ident(i)),
            ExprKind::Member(b, i) => ExprKind::Member(self.boxed(b), self.ident(i)),
            ExprKind::Call(f, args) => ExprKind::Call(
                self.boxed(f),
                args.into_iter().map(|a| Arg { name: a.name.map(|n| self.ident(n)), value: self.expr(a.value) }).collect(),
            ),
            ExprKind::With(b, f) => ExprKind::With(self.boxed(b), self.fields(f)),
            ExprKind::Unary(op, x) => ExprKind::Unary(op, self.boxed(x)),
            ExprKind::Binary(op, a, b) => ExprKind::Binary(op, self.boxed(a), self.boxed(b)),
            ExprKind::Ternary(a, b, c) => ExprKind::Ternary(self.boxed(a), self.boxed(b), self.boxed(c)),
            ExprKind::Paren(x) => ExprKind::Paren(self.boxed(x)),
        };
        Expr { kind, span: self.span(e.span) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_chunks_are_dropped() {
        let cache = ParseCache::default();
        for i in 0..(SWEEP_ABOVE as u64 + KEEP_PARSES + 10) {
            cache.parse(0, &format!("let a = {i}\nlet b = 2\n"));
        }
        // `let b` is used by every parse and stays; old versions of `let a` went.
        let chunks = cache.chunks.borrow();
        assert!(chunks.len() <= SWEEP_ABOVE + 2, "{}", chunks.len());
        assert!(chunks.contains_key("let b = 2\n"));
        assert!(!chunks.contains_key("let a = 0\n"));
    }

    #[test]
    fn chunks_start_at_top_level_items_only() {
        let t = "import \"std/aws\"\nlet x = [\n  1,\n]\nstack \"s\" {\n  node \"n\" {}\n}\n# c\nexperiment e extends p {\n}\n";
        let starts: Vec<usize> = chunk_bounds(t).iter().map(|(s, _)| *s).collect();
        let lines: Vec<&str> = starts.iter().map(|s| t[*s..].lines().next().unwrap()).collect();
        assert_eq!(lines, ["import \"std/aws\"", "let x = [", "stack \"s\" {", "experiment e extends p {"]);
        // Braces in strings and long raw strings do not count; a `'''` spanning lines hides its lines.
        let t = "let a = \"{\"\nlet b = '''\nlet c = 1\n'''\nlet d = 2\n";
        let lines: Vec<&str> = chunk_bounds(t).iter().map(|(s, _)| t[*s..].lines().next().unwrap()).collect();
        assert_eq!(lines, ["let a = \"{\"", "let b = '''", "let d = 2"]);
    }
}
