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
use super::parser::{unit_scale, MAX_EXACT};
use crate::diagnostics::{FileId, Span};

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

    /// `eq`: `=` not followed by `=`.
    fn eq(&mut self) -> bool {
        let yes = self.at("=") && !self.at("==");
        if yes {
            self.pos += 1;
        }
        yes
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
        if !self.kw("import") {
            return None;
        }
        self.skip();
        Some(StmtKind::Import(self.str_lit()?))
    }

    /// `let_stmt`, `set_stmt` and `factor_stmt`: `keyword name = expr`.
    fn let_like(&mut self, keyword: &str) -> Option<(Ident, Expr)> {
        if !self.kw(keyword) {
            return None;
        }
        self.skip();
        self.attribute_parts()
    }

    fn attribute(&mut self) -> Option<StmtKind> {
        self.attribute_parts().map(|(n, v)| StmtKind::Attr(n, v))
    }

    fn attribute_parts(&mut self) -> Option<(Ident, Expr)> {
        let name = self.ident()?;
        self.skip();
        if !self.eq() {
            return None;
        }
        self.skip();
        Some((name, self.expr()?))
    }

    fn prune_stmt(&mut self) -> Option<StmtKind> {
        if !self.kw("prune") {
            return None;
        }
        self.skip();
        let cond = self.expr()?;
        self.skip();
        if !self.kw("because") {
            return None;
        }
        self.skip();
        Some(StmtKind::Prune { cond, reason: self.str_lit()? })
    }

    fn when_stmt(&mut self) -> Option<StmtKind> {
        if !self.kw("when") {
            return None;
        }
        self.skip();
        let cond = self.expr()?;
        self.skip();
        if !self.kw("then") {
            return None;
        }
        self.skip();
        if !self.kw("run") {
            return None;
        }
        self.skip();
        let action = self.expr()?;
        self.skip();
        let reason = self.attempt(|p| {
            if !p.kw("because") {
                return None;
            }
            p.skip();
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
            if !p.kw("extends") {
                return None;
            }
            p.skip();
            p.ident()
        });
        self.skip();
        let in_layer = self.attempt(|p| {
            if !p.kw("in") {
                return None;
            }
            p.skip();
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

    // ---- expressions --------------------------------------------------------

    /// `expr`: a binary expression, possibly the condition of `? :`. Ends after any
    /// whitespace that follows, as pest's `expr` pair does.
    fn expr(&mut self) -> Option<Expr> {
        if self.depth >= MAX_DEPTH {
            self.bad = true;
            return None;
        }
        self.depth += 1;
        let r = self.expr_inner();
        self.depth -= 1;
        r
    }

    fn expr_inner(&mut self) -> Option<Expr> {
        let start = self.pos;
        let cond = self.binary()?;
        self.skip();
        let branches = self.attempt(|p| {
            if !p.lit("?") {
                return None;
            }
            p.nls();
            let a = p.expr()?;
            p.nls();
            if !p.lit(":") {
                return None;
            }
            p.nls();
            let b = p.expr()?;
            Some((a, b))
        });
        Some(match branches {
            Some((a, b)) => {
                Expr { kind: ExprKind::Ternary(Box::new(cond), Box::new(a), Box::new(b)), span: self.span(start, self.pos) }
            }
            None => cond,
        })
    }

    /// `binary`: operands and operators, folded by precedence as the builder does.
    fn binary(&mut self) -> Option<Expr> {
        let first = self.unary()?;
        let mut rest: Vec<(BinOp, Expr)> = vec![];
        loop {
            let save = self.pos;
            self.skip();
            let next = self.attempt(|p| {
                let op = p.infix()?;
                p.nls();
                Some((op, p.unary()?))
            });
            match next {
                Some(pair) => rest.push(pair),
                None => {
                    self.pos = save;
                    break;
                }
            }
        }
        if rest.is_empty() {
            return Some(first);
        }
        if rest.len() > 10_000 {
            // The builder refuses a chain this long.
            self.bad = true;
            return None;
        }
        Some(super::parser::climb(first, &mut rest.into_iter().peekable(), 0))
    }

    /// `infix`, in the grammar's order.
    fn infix(&mut self) -> Option<BinOp> {
        let words = [("or", BinOp::Or), ("and", BinOp::And)];
        for (w, op) in words {
            if self.kw(w) {
                return Some(op);
            }
        }
        let symbols =
            [("==", BinOp::Eq), ("!=", BinOp::Ne), ("<=", BinOp::Le), (">=", BinOp::Ge), ("<", BinOp::Lt), (">", BinOp::Gt)];
        for (s, op) in symbols {
            if self.lit(s) {
                return Some(op);
            }
        }
        if self.kw("in") {
            return Some(BinOp::In);
        }
        let symbols =
            [("+", BinOp::Add), ("-", BinOp::Sub), ("*", BinOp::Mul), ("/", BinOp::Div), ("%", BinOp::Mod), ("^", BinOp::Pow)];
        symbols.into_iter().find_map(|(s, op)| self.lit(s).then_some(op))
    }

    /// `unary`: `not` and `-` prefixes, then a postfixed primary.
    fn unary(&mut self) -> Option<Expr> {
        let mut ops: Vec<(UnOp, Span)> = vec![];
        loop {
            let save = self.pos;
            if !ops.is_empty() {
                self.skip();
            }
            let start = self.pos;
            let op = if self.kw("not") {
                UnOp::Not
            } else if self.lit("-") {
                UnOp::Neg
            } else {
                self.pos = save;
                break;
            };
            ops.push((op, self.span(start, self.pos)));
        }
        if ops.len() > MAX_DEPTH as usize {
            self.bad = true;
            return None;
        }
        self.skip();
        let mut e = self.postfixed()?;
        for (op, s) in ops.into_iter().rev() {
            let span = s.to(e.span);
            e = Expr { kind: ExprKind::Unary(op, Box::new(e)), span };
        }
        Some(e)
    }

    /// `postfixed`: a primary followed by members, calls and `with` records.
    fn postfixed(&mut self) -> Option<Expr> {
        let mut e = self.primary()?;
        loop {
            let save = self.pos;
            self.skip();
            let at = self.pos;
            let next = match self.peek() {
                Some(b'.') => self.attempt(|p| {
                    p.pos += 1;
                    p.skip();
                    p.field_name().map(|id| (Some(id), None, None))
                }),
                Some(b'(') => self.attempt(Self::call_args).map(|a| (None, Some(a), None)),
                Some(b'{') => self.attempt(Self::record_fields).map(|f| (None, None, Some(f))),
                _ => None,
            };
            let Some(next) = next else {
                self.pos = save;
                break;
            };
            let span = e.span.to(self.span(at, self.pos));
            let kind = match next {
                (Some(id), _, _) => ExprKind::Member(Box::new(e), id),
                (_, Some(args), _) => ExprKind::Call(Box::new(e), args),
                (_, _, Some(fields)) => ExprKind::With(Box::new(e), fields),
                _ => unreachable!("one postfix matched"),
            };
            e = Expr { kind, span };
        }
        Some(e)
    }

    /// A comma-separated list between `open` and `close`, newlines allowed, a trailing
    /// comma too: `call_args`, `list` and `record` share this shape.
    fn delimited<T>(&mut self, open: &str, close: &str, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        if !self.lit(open) {
            return None;
        }
        self.nls();
        let mut items = vec![];
        if let Some(first) = self.attempt(&mut item) {
            items.push(first);
            self.nls();
            loop {
                let save = self.pos;
                let next = self.attempt(|p| {
                    if !p.lit(",") {
                        return None;
                    }
                    p.nls();
                    item(p)
                });
                match next {
                    Some(x) => {
                        items.push(x);
                        self.nls();
                    }
                    None => {
                        self.pos = save;
                        break;
                    }
                }
            }
            self.lit(",");
        }
        self.nls();
        self.lit(close).then_some(items)
    }

    fn call_args(&mut self) -> Option<Vec<Arg>> {
        self.delimited("(", ")", |p| {
            let name = p.attempt(|p| {
                let id = p.ident()?;
                p.skip();
                if !p.eq() {
                    return None;
                }
                p.skip();
                (!p.at("=")).then_some(id)
            });
            p.skip();
            Some(Arg { name, value: p.expr()? })
        })
    }

    fn record_fields(&mut self) -> Option<Vec<Field>> {
        self.delimited("{", "}", |p| {
            let name = p.field_name()?;
            p.skip();
            if !p.eq() {
                return None;
            }
            p.skip();
            Some(Field { name, value: p.expr()? })
        })
    }

    /// `primary`, in the grammar's order (the first character picks among them).
    fn primary(&mut self) -> Option<Expr> {
        let start = self.pos;
        let kind = match self.peek()? {
            b'0'..=b'9' => return self.quantity(),
            b'"' => return self.string(),
            b'$' => {
                self.pos += 1;
                return self.number(start, true);
            }
            b'\'' => self.raw_string()?,
            b'[' => ExprKind::List(self.delimited("[", "]", Self::expr)?),
            b'{' => ExprKind::Record(self.record_fields()?),
            b'(' => self.paren()?,
            _ => {
                if self.kw("none") {
                    ExprKind::None
                } else if self.kw("true") {
                    ExprKind::Bool(true)
                } else if self.kw("false") {
                    ExprKind::Bool(false)
                } else {
                    ExprKind::Name(self.ident()?)
                }
            }
        };
        Some(Expr { kind, span: self.span(start, self.pos) })
    }

    /// `paren`: `(x)`, or a tuple when there is a comma.
    fn paren(&mut self) -> Option<ExprKind> {
        self.lit("(");
        self.nls();
        let mut items = vec![self.expr()?];
        self.nls();
        let mut comma = false;
        loop {
            let save = self.pos;
            let next = self.attempt(|p| {
                if !p.lit(",") {
                    return None;
                }
                p.nls();
                p.expr()
            });
            match next {
                Some(x) => {
                    comma = true;
                    items.push(x);
                    self.nls();
                }
                None => {
                    self.pos = save;
                    break;
                }
            }
        }
        comma |= self.lit(",");
        self.nls();
        if !self.lit(")") {
            return None;
        }
        Some(if items.len() == 1 && !comma { ExprKind::Paren(Box::new(items.remove(0))) } else { ExprKind::Tuple(items) })
    }

    /// `quantity`: a number with an optional unit, not followed by an identifier character.
    fn quantity(&mut self) -> Option<Expr> {
        let start = self.pos;
        self.attempt(|p| p.number(start, false))
    }

    /// `number` (after `$` for money) and the unit; the value as the builder computes it.
    fn number(&mut self, start: usize, money: bool) -> Option<Expr> {
        let digits = |p: &mut Self| {
            let s = p.pos;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                p.pos += 1;
            }
            p.pos > s
        };
        let num_start = self.pos;
        if !self.peek()?.is_ascii_digit() {
            return None;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit() || c == b'_') {
            self.pos += 1;
        }
        self.attempt(|p| (p.lit(".") && digits(p)).then_some(()));
        self.attempt(|p| {
            if !(p.lit("e") || p.lit("E")) {
                return None;
            }
            let _ = p.lit("+") || p.lit("-");
            digits(p).then_some(())
        });
        let num = &self.text[num_start..self.pos];
        let (unit, scale) = if money {
            (Unit::Money, 1.0)
        } else {
            let unit = UNITS.iter().find(|u| self.at(u)).copied().unwrap_or("");
            self.pos += unit.len();
            if self.peek().is_some_and(is_ident_char) {
                return None;
            }
            unit_scale(unit)
        };
        let value = match num.replace('_', "").parse::<f64>() {
            Ok(v) => v * scale,
            Err(_) => {
                self.bad = true;
                0.0
            }
        };
        if !value.is_finite() || value > MAX_EXACT {
            self.bad = true;
        }
        let text = self.text[start..self.pos].to_string();
        Some(Expr { kind: ExprKind::Number { value, unit, text }, span: self.span(start, self.pos) })
    }

    /// `string`: text, escapes and `{expr}` interpolations between double quotes.
    fn string(&mut self) -> Option<Expr> {
        let start = self.pos;
        self.lit("\"");
        let mut parts: Vec<StrPart> = vec![];
        let push_text = |parts: &mut Vec<StrPart>, t: &str| match parts.last_mut() {
            Some(StrPart::Text(last)) => last.push_str(t),
            _ => parts.push(StrPart::Text(t.to_string())),
        };
        loop {
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    break;
                }
                b'\\' => {
                    let c = self.text[self.pos + 1..].chars().next()?;
                    self.pos += 1 + c.len_utf8();
                    let t = match c {
                        'n' => "\n",
                        't' => "\t",
                        '\\' => "\\",
                        '"' => "\"",
                        '{' => "{",
                        '}' => "}",
                        _ => {
                            self.bad = true;
                            ""
                        }
                    };
                    push_text(&mut parts, t);
                }
                b'{' => {
                    self.pos += 1;
                    self.skip();
                    let e = self.expr()?;
                    self.skip();
                    if !self.lit("}") {
                        return None;
                    }
                    parts.push(StrPart::Interp(e));
                }
                b'\n' | b'\r' => return None,
                _ => {
                    let s = self.pos;
                    while !matches!(self.peek(), None | Some(b'"' | b'\\' | b'{' | b'\n' | b'\r')) {
                        self.pos += 1;
                    }
                    push_text(&mut parts, &self.text[s..self.pos]);
                }
            }
        }
        Some(Expr { kind: ExprKind::Str(parts), span: self.span(start, self.pos) })
    }

    /// A string without interpolation (imports, labels, reasons); one with it is an error.
    fn str_lit(&mut self) -> Option<StrLit> {
        let e = self.string_at()?;
        let mut value = String::new();
        if let ExprKind::Str(parts) = e.kind {
            for part in parts {
                match part {
                    StrPart::Text(t) => value.push_str(&t),
                    StrPart::Interp(_) => self.bad = true,
                }
            }
        }
        Some(StrLit { value, span: e.span })
    }

    fn string_at(&mut self) -> Option<Expr> {
        if self.peek() != Some(b'"') {
            return None;
        }
        self.attempt(Self::string)
    }

    /// `raw_string`: `'''...'''` (any text) or `'...'` (one line).
    fn raw_string(&mut self) -> Option<ExprKind> {
        if self.at("'''") {
            if let Some(n) = self.text[self.pos + 3..].find("'''") {
                let value = self.text[self.pos + 3..self.pos + 3 + n].to_string();
                self.pos += n + 6;
                return Some(ExprKind::Raw { value, long: true });
            }
        }
        let s = self.pos + 1;
        let mut e = s;
        while !matches!(self.b.get(e), None | Some(b'\'' | b'\n' | b'\r')) {
            e += 1;
        }
        if self.b.get(e) != Some(&b'\'') {
            return None;
        }
        self.pos = e + 1;
        Some(ExprKind::Raw { value: self.text[s..e].to_string(), long: false })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every `.nixl` file under `dir`, recursively.
    fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                files(&p, out);
            } else if p.extension().is_some_and(|x| x == "nixl") {
                out.push(p);
            }
        }
    }

    /// The fast path's tree, when it takes the text, is pest's tree node for node.
    pub(crate) fn agrees_with_pest(text: &str) -> Option<bool> {
        let fast = super::parse(3, text)?;
        let (pest, diags) = crate::syntax::parser::parse_with_pest(3, text);
        let json = |items: &Vec<crate::syntax::ast::Stmt>| serde_json::to_string(items).expect("trees serialize");
        Some(diags.is_empty() && json(&fast) == json(&pest.items))
    }

    #[test]
    fn every_example_stdlib_and_golden_file_parses_as_pest_parses_it() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut all = vec![];
        for dir in ["examples", "stdlib", "tests"] {
            files(&root.join(dir), &mut all);
        }
        assert!(all.len() > 100, "the corpus was found ({} files)", all.len());
        let mut taken = 0;
        for path in &all {
            // Some invalid inputs are not UTF-8 on purpose; the loader reports those.
            let Ok(text) = std::fs::read_to_string(path) else { continue };
            if !crate::syntax::scan::scan(3, &text).diags.is_empty() {
                continue;
            }
            let must = path.starts_with(root.join("examples")) || path.starts_with(root.join("stdlib"));
            match agrees_with_pest(&text) {
                Some(same) => {
                    assert!(same, "{}: the fast path's tree differs from pest's", path.display());
                    taken += 1;
                }
                None => assert!(!must, "{}: the fast path gave up on a well-formed example", path.display()),
            }
        }
        assert!(taken > 50, "the fast path took {taken} files");
    }

    #[test]
    fn whitespace_comments_and_every_kind_of_node_match_pest() {
        let cases = [
            "let a = 1   # trailing\nlet b = x ? 1 : 2  # c\n",
            "e \"n\" extends p in \"L\" {\n  factor f = [1K, 2M, 3GiB, 4Gbps, 5min, 6us, 1.5e3, 1_000]\n  x = -a.b (1, k = 2) { y = not z }\n}\n",
            "b {\n  when a == 1 and b != 2 or c in [1] then run x because \"why\"\n  prune p >= 3 % 2 ^ 4 because \"r\"\n  set s = (1, 2,)\n  w = when_x\n}\n",
            "b { s = \"a\\n{x}\\{ \\\" {y ? 1 : 2} z\", r = 'raw', l = '''long\n'''; m = $3.5 }\n",
            "b { t = (a), u = (a,), v = [\n 1,\n 2,\n], rec = {\n a = 1,\n}\n}\n",
            "\u{FEFF}let a = none\nlet b = true\nlet c = false\r\nlet d = nonex\rlet e = f()\n",
            "b {\n  q = a -\n  b\n  r = c ?\n d :\n e\n}\n",
        ];
        for text in cases {
            assert_eq!(agrees_with_pest(text), Some(true), "{text:?}");
        }
    }

    #[test]
    fn what_pest_reports_is_left_to_pest() {
        let cases = [
            "let a = \"\\q\"\n",
            "import \"x{y}.nixl\"\n",
            "let a = 1e400\n",
            "b { = }\n",
            "a = 1\n",
            "let a = 5Ki\n",
            "b { x = 1 2 }\n",
        ];
        for text in cases {
            assert_eq!(super::parse(3, text).map(|_| ()), None, "{text:?}");
        }
    }
}
