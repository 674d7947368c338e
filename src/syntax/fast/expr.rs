//! Expressions and literals of the fast parser: `expr` down to numbers, strings and raw
//! strings, by the grammar's rules and pest's semantics (see the module above).

use super::super::ast::*;
use super::super::parser::{unit_scale, MAX_EXACT};
use super::{is_ident_char, Parser, MAX_DEPTH, UNITS};
use crate::diagnostics::Span;

impl Parser<'_> {
    /// `expr`: a binary expression, possibly the condition of `? :`. Ends after any
    /// whitespace that follows, as pest's `expr` pair does.
    pub(super) fn expr(&mut self) -> Option<Expr> {
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
        Some(super::super::parser::climb(first, &mut rest.into_iter().peekable(), 0))
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
    /// comma too (said by the flag): `call_args`, `list`, `record` and `paren` share this shape.
    fn delimited<T>(&mut self, open: &str, close: &str, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<(Vec<T>, bool)> {
        if !self.lit(open) {
            return None;
        }
        self.nls();
        let mut items = vec![];
        let mut trailing = false;
        if let Some(first) = self.attempt(&mut item) {
            items.push(first);
            self.nls();
            while let Some(x) = self.attempt(|p| {
                p.lit(",").then_some(())?;
                p.nls();
                item(p)
            }) {
                items.push(x);
                self.nls();
            }
            trailing = self.lit(",");
        }
        self.nls();
        self.lit(close).then_some((items, trailing))
    }

    fn call_args(&mut self) -> Option<Vec<Arg>> {
        self.delimited("(", ")", |p| {
            let name = p.attempt(|p| {
                let id = p.ident()?;
                p.skip();
                p.equals()?;
                (!p.at("=")).then_some(id)
            });
            p.skip();
            Some(Arg { name, value: p.expr()? })
        })
        .map(|(args, _)| args)
    }

    fn record_fields(&mut self) -> Option<Vec<Field>> {
        self.delimited("{", "}", |p| {
            let name = p.field_name()?;
            p.skip();
            p.equals()?;
            Some(Field { name, value: p.expr()? })
        })
        .map(|(fields, _)| fields)
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
            b'[' => ExprKind::List(self.delimited("[", "]", Self::expr)?.0),
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
        let (mut items, trailing) = self.delimited("(", ")", Self::expr)?;
        Some(match items.len() {
            0 => return None,
            1 if !trailing => ExprKind::Paren(Box::new(items.remove(0))),
            _ => ExprKind::Tuple(items),
        })
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
    pub(super) fn str_lit(&mut self) -> Option<StrLit> {
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
