//! A hand-written parser for well-formed files: the grammar (`grammar/nixl.pest`) by
//! recursive descent, building the tree directly. pest stays the reference: this parser
//! gives up (None) wherever pest would record an error node or the builder a diagnostic,
//! and the caller then parses with pest, so every diagnostic still comes from there.
//!
//! Why: pest's generic machinery (a call-limit check and a position snapshot per rule
//! call, pairs built and walked again) made parsing the largest step of a first
//! `nixl plan examples/phase2.nixl`. Trees are the same node for node, spans included:
//! `tests/suite/props.rs` compares both parsers on the examples, the golden inputs and
//! generated text.
//!
//! The rules follow pest's semantics: ordered choice, greedy repetition without
//! backtracking into it, and implicit whitespace (`skip`: spaces, tabs, BOMs and comments,
//! never newlines) between the elements of non-atomic rules, so a rule's span ends where
//! pest's would, trailing whitespace included where pest includes it.

use super::ast::*;
use crate::diagnostics::{FileId, Span};

mod expr;
#[cfg(test)]
mod tests;

/// Expressions nested deeper than this are left to pest and the builder, whose own limit
/// counts about five levels per nesting: 30 here stays under its 200.
const MAX_DEPTH: u32 = 30;

const KEYWORDS: &[&str] = &[
    "import", "let", "set", "factor", "prune", "because", "when", "then", "extends", "in", "and", "or", "not", "true", "false",
    "none",
];

/// Units in the grammar's order: the first that matches is taken, as pest's choice does.
const UNITS: &[&str] =
    &["KiB", "MiB", "GiB", "TiB", "KB", "MB", "GB", "TB", "B", "Gbps", "Mbps", "Kbps", "ms", "us", "min", "s", "h", "K", "M"];

/// The file's statements, or None when the text needs pest (an error, or a diagnostic).
/// The text must have passed `scan::scan` (balanced delimiters, bounded nesting).
pub fn parse(file: FileId, text: &str) -> Option<Vec<Stmt>> {
    let mut p = Parser { text, b: text.as_bytes(), pos: 0, file, depth: 0, bad: false };
    let items = p.file_items();
    items.filter(|_| !p.bad)
}

struct Parser<'a> {
    text: &'a str,
    b: &'a [u8],
    pos: usize,
    file: FileId,
    depth: u32,
    /// Set where the builder would report a diagnostic: the whole parse is then given up.
    bad: bool,
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

impl<'a> Parser<'a> {
    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.file, start, end)
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn at(&self, s: &str) -> bool {
        self.b[self.pos..].starts_with(s.as_bytes())
    }

    /// A literal token.
    fn lit(&mut self, s: &str) -> bool {
        let yes = self.at(s);
        if yes {
            self.pos += s.len();
        }
        yes
    }

    /// Runs `f`; on failure the position goes back to where it was.
    fn attempt<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        let save = self.pos;
        let r = f(self);
        if r.is_none() {
            self.pos = save;
        }
        r
    }

    /// pest's implicit whitespace: spaces, tabs, BOMs and comments (to the line's end).
    fn skip(&mut self) {
        loop {
            match self.peek() {
                Some(b' ' | b'\t') => self.pos += 1,
                Some(0xEF) if self.at("\u{FEFF}") => self.pos += 3,
                Some(b'#') => {
                    while !matches!(self.peek(), None | Some(b'\n' | b'\r')) {
                        self.pos += 1;
                    }
                }
                _ => return,
            }
        }
    }

    /// `nls`: whitespace, comments and newlines.
    fn nls(&mut self) {
        loop {
            self.skip();
            match self.peek() {
                Some(b'\n' | b'\r') => self.pos += 1,
                _ => return,
            }
        }
    }

    /// `NEWLINE`: `\n`, `\r\n` or `\r`.
    fn nl(&mut self) -> bool {
        self.lit("\n") || self.lit("\r\n") || self.lit("\r")
    }

    /// A keyword not followed by an identifier character (`kw_let`, `op_and`, ...).
    fn kw(&mut self, word: &str) -> bool {
        let yes = self.at(word) && !self.b.get(self.pos + word.len()).copied().is_some_and(is_ident_char);
        if yes {
            self.pos += word.len();
        }
        yes
    }

    /// A keyword and the whitespace after it; None when the keyword is not here.
    fn word(&mut self, word: &str) -> Option<()> {
        self.kw(word).then(|| self.skip())
    }

    /// `eq` (`=` not followed by `=`) and the whitespace after it.
    fn equals(&mut self) -> Option<()> {
        if !self.at("=") || self.at("==") {
            return None;
        }
        self.pos += 1;
        self.skip();
        Some(())
    }

    /// The end of a word (`[A-Za-z_][A-Za-z0-9_]*`) starting here, if one does.
    fn word_end(&self) -> Option<usize> {
        let c = self.peek()?;
        if !(c.is_ascii_alphabetic() || c == b'_') {
            return None;
        }
        let mut e = self.pos + 1;
        while self.b.get(e).copied().is_some_and(is_ident_char) {
            e += 1;
        }
        Some(e)
    }

    /// `field_name`: any word, keywords included.
    fn field_name(&mut self) -> Option<Ident> {
        let end = self.word_end()?;
        let id = Ident { name: self.text[self.pos..end].to_string(), span: self.span(self.pos, end) };
        self.pos = end;
        Some(id)
    }

    /// `ident`: a word that is not a keyword.
    fn ident(&mut self) -> Option<Ident> {
        let end = self.word_end()?;
        if KEYWORDS.contains(&&self.text[self.pos..end]) {
            return None;
        }
        self.field_name()
    }

    // ---- statements ---------------------------------------------------------

    /// `file`: newlines and items to the end of input.
    fn file_items(&mut self) -> Option<Vec<Stmt>> {
        let mut items = vec![];
        loop {
            self.skip();
            if self.pos == self.b.len() {
                return Some(items);
            }
            if self.nl() {
                continue;
            }
            let start = self.pos;
            let kind = self
                .attempt(Self::import_stmt)
                .or_else(|| self.attempt(|p| p.let_like("let").map(|(n, v)| StmtKind::Let(n, v))))
                .or_else(|| self.attempt(Self::block).map(StmtKind::Block))?;
            items.push(self.ended(kind, start)?);
        }
    }

    /// A statement followed by `end`: a comma, a semicolon, or (not consumed) a newline,
    /// a closing brace or the end of input.
    fn ended(&mut self, kind: StmtKind, start: usize) -> Option<Stmt> {
        let stmt = Stmt { kind, span: self.span(start, self.pos) };
        self.skip();
        if self.lit(",") || self.lit(";") || matches!(self.peek(), None | Some(b'\n' | b'\r' | b'}')) {
            Some(stmt)
        } else {
            None
        }
    }

    /// `stmt`, in a block's body.
    fn stmt(&mut self) -> Option<Stmt> {
        let start = self.pos;
        let keyword = |p: &mut Self| -> Option<StmtKind> {
            if !matches!(p.peek(), Some(b'f' | b'l' | b's' | b'p' | b'w')) {
                return None;
            }
            p.attempt(|p| p.let_like("factor").map(|(n, v)| StmtKind::Factor(n, v)))
                .or_else(|| p.attempt(|p| p.let_like("let").map(|(n, v)| StmtKind::Let(n, v))))
                .or_else(|| p.attempt(|p| p.let_like("set").map(|(n, v)| StmtKind::Set(n, v))))
                .or_else(|| p.attempt(Self::prune_stmt))
                .or_else(|| p.attempt(Self::when_stmt))
        };
        let kind =
            keyword(self).or_else(|| self.attempt(Self::attribute)).or_else(|| self.attempt(Self::block).map(StmtKind::Block))?;
        self.ended(kind, start)
    }

    fn import_stmt(&mut self) -> Option<StmtKind> {
        self.word("import")?;
        Some(StmtKind::Import(self.str_lit()?))
    }

    /// `let_stmt`, `set_stmt` and `factor_stmt`: `keyword name = expr`.
    fn let_like(&mut self, keyword: &str) -> Option<(Ident, Expr)> {
        self.word(keyword)?;
        self.attribute_parts()
    }

    fn attribute(&mut self) -> Option<StmtKind> {
        self.attribute_parts().map(|(n, v)| StmtKind::Attr(n, v))
    }

    fn attribute_parts(&mut self) -> Option<(Ident, Expr)> {
        let name = self.ident()?;
        self.skip();
        self.equals()?;
        Some((name, self.expr()?))
    }

    fn prune_stmt(&mut self) -> Option<StmtKind> {
        self.word("prune")?;
        let cond = self.expr()?;
        self.skip();
        self.word("because")?;
        Some(StmtKind::Prune { cond, reason: self.str_lit()? })
    }

    fn when_stmt(&mut self) -> Option<StmtKind> {
        self.word("when")?;
        let cond = self.expr()?;
        self.skip();
        self.word("then")?;
        self.word("run")?;
        let action = self.expr()?;
        self.skip();
        let reason = self.attempt(|p| {
            p.word("because")?;
            p.str_lit()
        });
        Some(StmtKind::When { cond, action, reason })
    }

    /// `block`: `kind label* (extends name)? (in "layer")? { body }`.
    fn block(&mut self) -> Option<Block> {
        let kind = self.ident()?;
        let mut labels = vec![];
        loop {
            let save = self.pos;
            self.skip();
            let label = match self.peek() {
                Some(b'"') => self.attempt(Self::str_lit).map(BlockLabel::Str),
                _ => self.ident().map(BlockLabel::Ident),
            };
            match label {
                Some(l) => labels.push(l),
                None => {
                    self.pos = save;
                    break;
                }
            }
        }
        self.skip();
        let extends = self.attempt(|p| {
            p.word("extends")?;
            p.ident()
        });
        self.skip();
        let in_layer = self.attempt(|p| {
            p.word("in")?;
            p.str_lit()
        });
        self.skip();
        let body_start = self.pos;
        if !self.lit("{") {
            return None;
        }
        let mut body = vec![];
        loop {
            self.skip();
            if self.lit("}") {
                break;
            }
            if self.nl() {
                continue;
            }
            // Anything else is a statement, or an error node for pest to report.
            body.push(self.stmt()?);
        }
        Some(Block { kind, labels, extends, in_layer, body, body_span: self.span(body_start, self.pos) })
    }
}
