//! Incremental parsing for the language server: a file is cut into top-level
//! chunks (a line that starts a block, `let` or `import` at depth 0), a large
//! block further into its header and runs of its body statements, and each
//! piece's tree is cached by its text, so an edit re-parses only its piece: the
//! cost of a keystroke follows the statement typed in, not the block around it.
//! The cache is bounded by the bytes of text it holds (`BUDGET_BYTES`), least
//! recently used pieces first, so memory stays flat under typing.
//!
//! The result must equal `syntax::parse` of the whole text. Two rules make sure:
//! only error-free pieces are composed (any diagnostic, and the whole file is
//! parsed again in one piece, so errors read exactly as `nixl check` prints
//! them), and a boundary in the wrong place (inside a block, a list, a long
//! string or a continued expression) always leaves some piece that does not
//! parse, hence with a diagnostic.

use crate::diagnostics::{Diagnostic, FileId, Span};
use crate::syntax::ast::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// A parsed piece: a whole top-level chunk, a large block's header (parsed with an
/// empty body), or a run of that block's body statements.
enum Tree {
    Chunk(File),
    Header(File),
    Body(Vec<Stmt>, Vec<Comment>),
}

struct Entry {
    tree: Rc<Tree>,
    /// The parse that last used it.
    used: u64,
}

/// Trees of pieces by their text, bounded by the bytes of text they stand for.
#[derive(Default)]
pub struct ParseCache {
    inner: RefCell<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Keyed by the piece's kind (one byte) and text.
    pieces: HashMap<Box<str>, Entry>,
    /// Text bytes held by the keys; a tree takes a small multiple of its text.
    bytes: usize,
    parses: u64,
}

/// The cache holds trees for at most this much source text: every keystroke in a
/// block adds a version of the statements being typed, and what no recent parse
/// used goes first.
pub const BUDGET_BYTES: usize = 4 << 20;
/// Blocks above this size are cut into runs of statements, so an edit inside a
/// large block re-parses one run, not the block.
const SPLIT_ABOVE: usize = 2_048;
/// Body statements are grouped into runs of about this size.
const RUN_BYTES: usize = 1_024;

impl ParseCache {
    /// `syntax::parse(file, text)`, reusing the trees of unchanged pieces.
    pub fn parse(&self, file: FileId, text: &str) -> (File, Vec<Diagnostic>) {
        if text.len() > crate::syntax::parser::MAX_FILE_BYTES {
            return crate::syntax::parse(file, text);
        }
        match self.compose(file, text) {
            Some(f) => (f, vec![]),
            None => crate::syntax::parse(file, text),
        }
    }

    /// Text bytes the cache holds.
    pub fn bytes(&self) -> usize {
        self.inner.borrow().bytes
    }

    /// The tree of one piece, parsed on a miss. None when the piece has diagnostics.
    fn get(&self, kind: u8, piece: &str, parse: impl FnOnce() -> Option<Tree>) -> Option<Rc<Tree>> {
        let mut key = String::with_capacity(piece.len() + 1);
        key.push(kind as char);
        key.push_str(piece);
        let mut inner = self.inner.borrow_mut();
        let now = inner.parses;
        if let Some(e) = inner.pieces.get_mut(key.as_str()) {
            e.used = now;
            return Some(e.tree.clone());
        }
        drop(inner);
        let tree = Rc::new(parse()?);
        let mut inner = self.inner.borrow_mut();
        inner.bytes += key.len();
        inner.pieces.insert(key.into_boxed_str(), Entry { tree: tree.clone(), used: now });
        Some(tree)
    }

    /// Over budget: drops the least recently used pieces (never those of the parse
    /// just done) until the cache holds half its budget.
    fn sweep(&self) {
        let mut inner = self.inner.borrow_mut();
        if inner.bytes <= BUDGET_BYTES {
            return;
        }
        let mut ages: Vec<(u64, usize)> = inner.pieces.iter().map(|(k, e)| (e.used, k.len())).collect();
        ages.sort_unstable();
        let (mut held, mut cutoff) = (inner.bytes, 0);
        for (used, len) in ages {
            if held <= BUDGET_BYTES / 2 || used >= inner.parses {
                break;
            }
            held -= len;
            cutoff = used + 1;
        }
        inner.pieces.retain(|_, e| e.used >= cutoff);
        inner.bytes = inner.pieces.keys().map(|k| k.len()).sum();
    }

    fn compose(&self, file: FileId, text: &str) -> Option<File> {
        self.inner.borrow_mut().parses += 1;
        let mut out = Composed { items: vec![], comments: vec![] };
        let mut ok = true;
        for (start, end) in chunk_bounds(text) {
            let piece = &text[start..end];
            let s = Shift { file, by: start as u32 };
            let layout = if piece.len() > SPLIT_ABOVE { block_layout(piece) } else { None };
            let done = match layout {
                Some(layout) => self.split_block(piece, &layout, &s, &mut out),
                None => self.whole_chunk(piece, &s, &mut out),
            };
            if !done {
                ok = false;
                break;
            }
        }
        self.sweep();
        ok.then(|| File { items: out.items, comments: out.comments, span: Span::new(file, 0, text.len()) })
    }

    fn whole_chunk(&self, piece: &str, s: &Shift, out: &mut Composed) -> bool {
        let tree = self.get(b'c', piece, || {
            let (f, d) = crate::syntax::parse(0, piece);
            d.is_empty().then_some(Tree::Chunk(f))
        });
        let Some(Tree::Chunk(f)) = tree.as_deref() else { return false };
        out.items.extend(f.items.iter().map(|i| s.stmt(i.clone())));
        out.comments.extend(f.comments.iter().map(|c| s.comment(c)));
        true
    }

    /// A large block from its header and its runs of body statements, each cached.
    fn split_block(&self, piece: &str, l: &Layout, s: &Shift, out: &mut Composed) -> bool {
        let header_text = format!("{}}}", &piece[..l.body_start]);
        let header = self.get(b'h', &header_text, || {
            let (f, d) = crate::syntax::parse(0, &header_text);
            (d.is_empty() && f.items.len() == 1).then_some(Tree::Header(f))
        });
        let Some(Tree::Header(hf)) = header.as_deref() else { return false };
        let StmtKind::Block(head) = &hf.items[0].kind else { return false };
        out.comments.extend(hf.comments.iter().map(|c| s.comment(c)));
        let mut body = vec![];
        for &(a, b) in &l.runs {
            let run = &piece[a..b];
            let tree = self.get(b'b', run, || {
                let (stmts, cs, d) = crate::syntax::parser::parse_body_piece(0, run);
                d.is_empty().then_some(Tree::Body(stmts, cs))
            });
            let Some(Tree::Body(stmts, cs)) = tree.as_deref() else { return false };
            let rs = Shift { file: s.file, by: s.by + a as u32 };
            body.extend(stmts.iter().map(|x| rs.stmt(x.clone())));
            out.comments.extend(cs.iter().map(|c| rs.comment(c)));
        }
        // After the closing brace: blank lines and comments only.
        let tail = &piece[l.close + 1..];
        let (tail_file, tail_diags) = crate::syntax::parse(0, tail);
        if !tail_diags.is_empty() || !tail_file.items.is_empty() {
            return false;
        }
        let ts = Shift { file: s.file, by: s.by + l.close as u32 + 1 };
        out.comments.extend(tail_file.comments.iter().map(|c| ts.comment(c)));
        let mut block = s.block(Block { body: vec![], ..head.clone() });
        block.body = body;
        block.body_span = s.span(Span::new(0, l.open, l.close + 1));
        let span = s.span(Span::new(0, head.kind.span.start as usize, l.close + 1));
        out.items.push(Stmt { kind: StmtKind::Block(block), span });
        true
    }
}

struct Composed {
    items: Vec<Stmt>,
    comments: Vec<Comment>,
}

/// Where a block chunk's body starts and ends, and its statement runs.
struct Layout {
    /// The `{` ending the header line, and the start of the line after it.
    open: usize,
    body_start: usize,
    /// Runs of body lines, each starting at a statement at depth 1.
    runs: Vec<(usize, usize)>,
    /// The `}` closing the block, alone on its line.
    close: usize,
}

/// The layout of `kind labels {` + body lines + `}`: None for any other shape
/// (the chunk is then parsed whole). A run boundary is a line at depth 1 that
/// is not blank, not a comment and not inside a long string; a boundary in the
/// wrong place (a line continuing an expression) leaves a run that does not
/// parse, and the whole file is parsed again.
fn block_layout(piece: &str) -> Option<Layout> {
    let first_nl = piece.find('\n')?;
    let header = piece[..first_nl].trim_end_matches('\r');
    let mut depth = 0i64;
    let mut in_long = false;
    let mut last = None;
    let mut open = None;
    let mut i = 0;
    for_each_code_byte(header, &mut in_long, |c| {
        match c {
            b'{' | b'[' | b'(' => {
                depth += 1;
                if c == b'{' && depth == 1 && open.is_none() {
                    open = Some(i);
                }
            }
            b'}' | b']' | b')' => depth -= 1,
            _ => {}
        }
        if !c.is_ascii_whitespace() {
            last = Some(c);
        }
        i += 1;
    });
    // The header ends with the block's `{`, and nothing else is open.
    if in_long || depth != 1 || last != Some(b'{') {
        return None;
    }
    let open = header.rfind('{')?;
    let body_start = first_nl + 1;
    let mut runs = vec![];
    let mut run_start = body_start;
    let mut at = body_start;
    let mut close = None;
    for line in piece[body_start..].split_inclusive('\n') {
        let trimmed = line.trim_start();
        if !in_long && depth == 1 && trimmed.starts_with('}') {
            if !trimmed[1..].trim().is_empty() {
                return None;
            }
            close = Some(at + (line.len() - trimmed.len()));
            break;
        }
        let starts_stmt = !in_long && depth == 1 && !trimmed.is_empty() && !trimmed.starts_with('#');
        if starts_stmt && at - run_start >= RUN_BYTES {
            runs.push((run_start, at));
            run_start = at;
        }
        for_each_code_byte(line, &mut in_long, |c| match c {
            b'{' | b'[' | b'(' => depth += 1,
            b'}' | b']' | b')' => depth -= 1,
            _ => {}
        });
        if depth < 1 {
            return None;
        }
        at += line.len();
    }
    let close = close?;
    let last_line = piece[..close].rfind('\n').map_or(close, |n| n + 1);
    runs.push((run_start, last_line));
    runs.retain(|(a, b)| a < b);
    Some(Layout { open, body_start, runs, close })
}

/// Calls `f` with every byte of a line outside strings and comments, tracking
/// `'''` strings across lines.
fn for_each_code_byte(line: &str, in_long: &mut bool, mut f: impl FnMut(u8)) {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if *in_long {
            match line[i..].find("'''") {
                Some(n) => {
                    *in_long = false;
                    i += n + 3;
                    continue;
                }
                None => return,
            }
        }
        match b[i] {
            b'#' => return,
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'\'' if line[i..].starts_with("'''") => {
                *in_long = true;
                i += 3;
                continue;
            }
            b'\'' => {
                i += 1;
                while i < b.len() && b[i] != b'\'' && b[i] != b'\n' {
                    i += 1;
                }
            }
            c => f(c),
        }
        i += 1;
    }
}

/// Byte ranges of the top-level chunks, covering the text.
pub fn chunk_bounds(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut starts = vec![0];
    let (mut depth, mut i) = (0i64, 0);
    let mut at_line_start = true;
    while i < b.len() {
        if at_line_start && depth == 0 && i > 0 && crate::syntax::scan::starts_item(&text[i..]) {
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
    fn comment(&self, c: &Comment) -> Comment {
        Comment { span: self.span(c.span), ..c.clone() }
    }
    fn block(&self, b: Block) -> Block {
        Block {
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
        }
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
            StmtKind::Block(b) => StmtKind::Block(self.block(b)),
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

    /// A large block: the header, many steps with comments, a long string, a trailing comment.
    fn big(n: usize, edit: usize) -> String {
        let mut t = String::from("import \"std/aws\"\n\nsetup big { # header comment\n  let v = \"1\"\n");
        for i in 0..n {
            let timeout = if i == edit { "11min" } else { "10min" };
            t += &format!("  # step {i}\n  step \"{i:04}\" {{\n    run     = [\"a\",\n               \"b {{v}}\"]\n    timeout = {timeout}\n  }}\n\n");
        }
        t += "  let long = '''\n  }\n  '''\n}\n# between blocks\n\nexperiment e {\n}\n";
        t
    }

    fn same(a: &File, b: &File) {
        assert_eq!(format!("{:?}", a.items), format!("{:?}", b.items));
        assert_eq!(format!("{:?}", a.comments), format!("{:?}", b.comments));
    }

    #[test]
    fn a_large_block_is_composed_from_its_statements_exactly() {
        let cache = ParseCache::default();
        for edit in [0, 17, 39] {
            let t = big(40, edit);
            let (whole, d) = crate::syntax::parse(3, &t);
            assert!(d.is_empty(), "{d:?}");
            let (a, b) = chunk_bounds(&t)[1];
            assert!(block_layout(&t[a..b]).is_some());
            let composed = cache.compose(3, &t).expect("composed from pieces");
            same(&composed, &whole);
        }
    }

    #[test]
    fn a_cut_inside_a_continued_expression_falls_back_to_a_whole_parse() {
        let mut t = String::from("experiment e {\n");
        for i in 0..200 {
            t += &format!("  let x{i} = {i} +\n  1\n");
        }
        t += "}\n";
        let (whole, d) = crate::syntax::parse(0, &t);
        assert!(d.is_empty(), "{d:?}");
        same(&ParseCache::default().parse(0, &t).0, &whole);
        // And a real error is reported as a whole parse reports it.
        let bad = t.replace("let x100 = 100 +", "let x100 = = 100 +");
        assert_eq!(ParseCache::default().parse(0, &bad).1, crate::syntax::parse(0, &bad).1);
    }

    #[test]
    fn typing_keeps_the_cache_within_its_budget() {
        let cache = ParseCache::default();
        let base = big(400, usize::MAX);
        let mut peak = 0;
        let mid = base.find("step \"0200\"").unwrap();
        for i in 0..3_000 {
            let mut t = base.clone();
            t.insert_str(mid, &format!("let typed{} = {i}\n  ", "x".repeat(i % 40)));
            cache.parse(0, &t);
            peak = peak.max(cache.bytes());
        }
        assert!(peak <= BUDGET_BYTES + base.len(), "{peak}");
        assert!(cache.bytes() >= base.len() / 2, "{}", cache.bytes());
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
