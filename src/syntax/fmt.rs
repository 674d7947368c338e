//! The canonical formatter: syntax tree plus source text back to text.
//!
//! The style is fixed (like `terraform fmt`): two-space indentation, one
//! statement per line, single spaces around operators, at most one blank line
//! where the source had any. As in `terraform fmt`, `=` lines up over a run of
//! attributes (or of `let`/`set`, or of `factor`, or of record fields) not
//! broken by a blank line or another statement; own-line comments do not break
//! a run, and a multi-line statement ends it. Trailing comments on consecutive
//! one-line statements or items line up two spaces past the longest. Layout
//! choices are read from the source only where the output preserves them
//! (whether a list was written over several lines, whether a block was on one
//! line, where blank lines were), so formatting is idempotent.
//!
//! Comments are not in the tree: they are placed by position. An own-line
//! comment stays before the statement or list item that follows it, a trailing
//! comment stays at the end of the line of the statement or item it follows.
//! A comment inside an expression that is printed on one line (a binary
//! operator continued over lines, say) moves above its item or statement.

use super::ast::*;
use layout::{align, comment_gaps, indent, line_width, pad_at, render, Align, Entry, Slot};

mod layout;

const INDENT: &str = "  ";

/// Formats a parsed file. A file with syntax errors is returned unchanged.
pub fn format(file: &File, source: &str) -> String {
    if has_error(&file.items) {
        return source.to_string();
    }
    let mut p = Printer { src: source, comments: &file.comments, used: vec![false; file.comments.len()] };
    let (_, entries) = p.region(&file.items, 0, source.len(), 0, false);
    let mut out = render(&entries, 0);
    // Every comment is placed above; this only guards against losing one.
    for (i, c) in file.comments.iter().enumerate() {
        if !p.used[i] {
            out.push_str(c.text.trim_end());
            out.push('\n');
        }
    }
    out
}

/// One expression in canonical form, for messages (a rule's condition when it fires).
pub fn expr_text(e: &Expr) -> String {
    // The printer reads layout from the source; blank text of the same length has none.
    let blank = " ".repeat(e.span.end as usize + 1);
    let mut p = Printer { src: &blank, comments: &[], used: vec![] };
    p.expr(e, 0)
}

fn has_error(stmts: &[Stmt]) -> bool {
    stmts.iter().any(|s| match &s.kind {
        StmtKind::Error(_) => true,
        StmtKind::Block(b) => has_error(&b.body),
        _ => false,
    })
}

/// An element of a bracketed sequence.
enum Item<'a> {
    Expr(&'a Expr),
    Field(&'a Field),
    Arg(&'a Arg),
}

impl Item<'_> {
    fn start(&self) -> usize {
        match self {
            Item::Expr(e) => e.span.start as usize,
            Item::Field(f) => f.name.span.start as usize,
            Item::Arg(a) => a.name.as_ref().map(|n| n.span.start).unwrap_or(a.value.span.start) as usize,
        }
    }
    fn end(&self) -> usize {
        match self {
            Item::Expr(e) => e.span.end as usize,
            Item::Field(f) => f.value.span.end as usize,
            Item::Arg(a) => a.value.span.end as usize,
        }
    }
    fn name(&self) -> Option<&str> {
        match self {
            Item::Expr(_) => None,
            Item::Field(f) => Some(&f.name.name),
            Item::Arg(a) => a.name.as_ref().map(|n| n.name.as_str()),
        }
    }
}

/// A line inside a multi-line sequence.
enum SeqLine {
    Comment(String),
    Item { text: String, name: Option<usize>, trailing: Option<String> },
}

/// Bracket style of a sequence.
struct Brackets {
    open: &'static str,
    close: &'static str,
    /// `{ a = 1 }` rather than `[a]`.
    spaced: bool,
    /// A one-element tuple keeps its comma: `(a,)`.
    single_comma: bool,
}

struct Printer<'a> {
    src: &'a str,
    comments: &'a [Comment],
    used: Vec<bool>,
}

impl Printer<'_> {
    /// Unused comments starting in `from..to`, in source order, marked used.
    fn take(&mut self, from: usize, to: usize) -> Vec<String> {
        let mut out = vec![];
        let first = self.comments.partition_point(|c| (c.span.start as usize) < from);
        for i in first..self.comments.len() {
            let c = &self.comments[i];
            if c.span.start as usize >= to {
                break;
            }
            if !self.used[i] {
                self.used[i] = true;
                out.push(c.text.trim_end().to_string());
            }
        }
        out
    }

    /// The first unused comment in `from..to` if it is on the line where `from`
    /// is (a trailing comment), marked used; returns its text and end.
    fn take_trailing(&mut self, from: usize, to: usize) -> Option<(String, usize)> {
        let first = self.comments.partition_point(|c| (c.span.start as usize) < from);
        let i = (first..self.comments.len()).find(|&i| !self.used[i])?;
        let c = &self.comments[i];
        let start = c.span.start as usize;
        if start >= to || self.src[from..start].contains('\n') {
            return None;
        }
        self.used[i] = true;
        Some((c.text.trim_end().to_string(), c.span.end as usize))
    }

    /// The first unused comment in `from..to`, without taking it.
    fn peek(&self, from: usize, to: usize) -> Option<&Comment> {
        let first = self.comments.partition_point(|c| (c.span.start as usize) < from);
        (first..self.comments.len()).find(|&i| !self.used[i]).map(|i| &self.comments[i]).filter(|c| (c.span.start as usize) < to)
    }

    /// `end` moved back over trailing spaces and comments, which the spans
    /// of some nodes (those ending in an optional part) take in.
    fn trim_end(&self, start: usize, mut end: usize) -> usize {
        loop {
            let t = self.src[start..end].trim_end_matches([' ', '\t', '\u{FEFF}']);
            end = start + t.len();
            let i = self.comments.partition_point(|c| (c.span.end as usize) < end);
            match self.comments.get(i) {
                Some(c) if c.span.end as usize == end && c.span.start as usize >= start => end = c.span.start as usize,
                _ => return end,
            }
        }
    }

    fn blank_between(&self, from: usize, to: usize) -> bool {
        self.src.get(from..to).is_some_and(|t| t.matches('\n').count() >= 2)
    }

    /// The statements of a file or block body between `start` and `end`, with
    /// the comments among them. With `header`, a comment on the line of the
    /// opening brace is returned separately, to stay on that line.
    fn region(&mut self, stmts: &[Stmt], start: usize, end: usize, level: usize, header: bool) -> (Option<String>, Vec<Entry>) {
        let mut entries = vec![];
        let mut last = start;
        let mut first = true;
        let mut header_comment = None;
        if header {
            let stop = stmts.first().map(|s| s.span.start as usize).unwrap_or(end);
            if let Some((t, e)) = self.take_trailing(start, stop) {
                header_comment = Some(t);
                last = e;
            }
        }
        for (i, s) in stmts.iter().enumerate() {
            let s_start = s.span.start as usize;
            let s_end = self.trim_end(s_start, s.span.end as usize);
            self.own_line_comments(last, s_start, &mut entries, &mut first, &mut last);
            if !first && self.blank_between(last, s_start) {
                entries.push(Entry::Blank);
            }
            let (text, align) = self.stmt(s, level);
            for c in self.take(s_start, s_end) {
                entries.push(Entry::Comment(c));
            }
            last = s_end;
            let next = stmts.get(i + 1).map(|n| n.span.start as usize).unwrap_or(end);
            let trailing = self.take_trailing(s_end, next).map(|(t, e)| {
                last = e;
                t
            });
            entries.push(Entry::Stmt { text, align, trailing });
            first = false;
        }
        self.own_line_comments(last, end, &mut entries, &mut first, &mut last);
        (header_comment, entries)
    }

    /// Comments in `from..to` as lines of their own, keeping a blank line
    /// before one where the source had any.
    fn own_line_comments(&mut self, from: usize, to: usize, entries: &mut Vec<Entry>, first: &mut bool, last: &mut usize) {
        let mut pos = from;
        while let Some(c) = self.peek(pos, to) {
            let (c_start, c_end) = (c.span.start as usize, c.span.end as usize);
            if !*first && self.blank_between(*last, c_start) {
                entries.push(Entry::Blank);
            }
            let text = self.take(c_start, c_start + 1);
            entries.extend(text.into_iter().map(Entry::Comment));
            *first = false;
            *last = c_end;
            pos = c_end;
        }
    }

    fn stmt(&mut self, s: &Stmt, level: usize) -> (String, Option<Align>) {
        // `let` and `set` line up with each other; `factor` and attributes among themselves.
        let assign = |key: u8, kw: &str, name: &Ident, value: String| {
            let at = kw.len() + name.name.len();
            (format!("{kw}{} = {value}", name.name), Some(Align { key, at, width: at }))
        };
        match &s.kind {
            StmtKind::Import(path) => (format!("import {}", self.str_lit(path)), None),
            StmtKind::Let(n, e) => {
                let v = self.expr(e, level);
                assign(1, "let ", n, v)
            }
            StmtKind::Set(n, e) => {
                let v = self.expr(e, level);
                assign(1, "set ", n, v)
            }
            StmtKind::Factor(n, e) => {
                let v = self.expr(e, level);
                assign(2, "factor ", n, v)
            }
            StmtKind::Attr(n, e) => {
                let v = self.expr(e, level);
                assign(3, "", n, v)
            }
            StmtKind::Prune { cond, reason } => {
                let c = self.expr(cond, level);
                (format!("prune {c} because {}", self.str_lit(reason)), None)
            }
            StmtKind::When { cond, action, reason } => {
                let c = self.expr(cond, level);
                let a = self.expr(action, level);
                match reason {
                    Some(r) => (format!("when {c} then run {a} because {}", self.str_lit(r)), None),
                    None => (format!("when {c} then run {a}"), None),
                }
            }
            StmtKind::Block(b) => (self.block(b, level), None),
            StmtKind::Error(t) => (t.clone(), None),
        }
    }

    fn block(&mut self, b: &Block, level: usize) -> String {
        let mut h = b.kind.name.clone();
        for l in &b.labels {
            h.push(' ');
            match l {
                BlockLabel::Str(s) => h.push_str(&self.str_lit(s)),
                BlockLabel::Ident(i) => h.push_str(&i.name),
            }
        }
        if let Some(x) = &b.extends {
            h.push_str(" extends ");
            h.push_str(&x.name);
        }
        if let Some(l) = &b.in_layer {
            h.push_str(" in ");
            h.push_str(&self.str_lit(l));
        }
        let (start, end) = (b.body_span.start as usize, b.body_span.end as usize);
        let one_line = !self.src[start..end].contains('\n') && self.peek(start, end).is_none();
        if b.body.is_empty() && self.peek(start, end).is_none() {
            h.push_str(" {}");
            return h;
        }
        if one_line {
            let parts: Vec<String> = b.body.iter().map(|s| self.stmt(s, level).0).collect();
            h.push_str(" { ");
            h.push_str(&parts.join(", "));
            h.push_str(" }");
            return h;
        }
        let (hc, entries) = self.region(&b.body, start + 1, end.saturating_sub(1), level + 1, true);
        h.push_str(" {");
        if let Some(c) = hc {
            h.push_str("  ");
            h.push_str(&c);
        }
        h.push('\n');
        h.push_str(&render(&entries, level + 1));
        h.push_str(&indent(level));
        h.push('}');
        h
    }

    /// A string that cannot hold interpolation: re-escaped from its value,
    /// or verbatim if it holds one anyway (an error reported by the parser).
    fn str_lit(&self, s: &StrLit) -> String {
        let raw = &self.src[s.span.range()];
        if has_interp(raw) {
            return raw.to_string();
        }
        let mut out = String::from("\"");
        escape_into(&mut out, &s.value);
        out.push('"');
        out
    }

    /// An expression whose first line continues a line at `level`.
    fn expr(&mut self, e: &Expr, level: usize) -> String {
        match &e.kind {
            ExprKind::None => "none".into(),
            ExprKind::Bool(b) => b.to_string(),
            ExprKind::Number { text, .. } => text.clone(),
            ExprKind::Str(parts) => {
                let mut out = String::from("\"");
                for p in parts {
                    match p {
                        StrPart::Text(t) => escape_into(&mut out, t),
                        StrPart::Interp(x) => {
                            out.push('{');
                            out.push_str(&self.expr(x, level));
                            out.push('}');
                        }
                    }
                }
                out.push('"');
                out
            }
            ExprKind::Raw { value, long } => {
                let q = if *long { "'''" } else { "'" };
                format!("{q}{value}{q}")
            }
            ExprKind::List(items) => {
                let items: Vec<Item> = items.iter().map(Item::Expr).collect();
                let br = Brackets { open: "[", close: "]", spaced: false, single_comma: false };
                self.seq(&br, &items, e.span.start as usize, e.span.end as usize, level)
            }
            ExprKind::Tuple(items) => {
                let items: Vec<Item> = items.iter().map(Item::Expr).collect();
                let br = Brackets { open: "(", close: ")", spaced: false, single_comma: true };
                self.seq(&br, &items, e.span.start as usize, e.span.end as usize, level)
            }
            ExprKind::Record(fields) => {
                let items: Vec<Item> = fields.iter().map(Item::Field).collect();
                self.seq(&RECORD, &items, e.span.start as usize, e.span.end as usize, level)
            }
            ExprKind::Name(i) => i.name.clone(),
            ExprKind::Member(base, field) => {
                let b = self.expr(base, level);
                format!("{b}.{}", field.name)
            }
            ExprKind::Call(callee, args) => {
                let c = self.expr(callee, level);
                let items: Vec<Item> = args.iter().map(Item::Arg).collect();
                let br = Brackets { open: "(", close: ")", spaced: false, single_comma: false };
                let a = self.seq(&br, &items, callee.span.end as usize, e.span.end as usize, level);
                c + &a
            }
            ExprKind::With(base, fields) => {
                let b = self.expr(base, level);
                let items: Vec<Item> = fields.iter().map(Item::Field).collect();
                let r = self.seq(&RECORD, &items, base.span.end as usize, e.span.end as usize, level);
                format!("{b} {r}")
            }
            ExprKind::Unary(op, x) => {
                let x = self.expr(x, level);
                match op {
                    UnOp::Not => format!("not {x}"),
                    UnOp::Neg => format!("-{x}"),
                }
            }
            ExprKind::Binary(op, l, r) => {
                let l = self.expr(l, level);
                let r = self.expr(r, level);
                format!("{l} {} {r}", op.symbol())
            }
            ExprKind::Ternary(c, a, b) => {
                let c = self.expr(c, level);
                let a = self.expr(a, level);
                let b = self.expr(b, level);
                format!("{c} ? {a} : {b}")
            }
            ExprKind::Paren(x) => format!("({})", self.expr(x, level)),
        }
    }

    fn item(&mut self, it: &Item, level: usize) -> String {
        match it {
            Item::Expr(e) => self.expr(e, level),
            Item::Field(f) => format!("{} = {}", f.name.name, self.expr(&f.value, level)),
            Item::Arg(a) => {
                let v = self.expr(&a.value, level);
                match &a.name {
                    Some(n) => format!("{} = {v}", n.name),
                    None => v,
                }
            }
        }
    }

    /// A bracketed sequence between source offsets `start` (at or before the
    /// opening bracket) and `end` (after the closing one). It is printed one
    /// item per line when the source broke a line between its items or
    /// brackets (not only inside an item), and on one line otherwise.
    fn seq(&mut self, br: &Brackets, items: &[Item], start: usize, end: usize, level: usize) -> String {
        let bounds: Vec<(usize, usize)> = items.iter().map(|it| (it.start(), self.trim_end(it.start(), it.end()))).collect();
        let mut prev = start;
        let mut multiline = false;
        for &(s, e) in &bounds {
            multiline |= self.src[prev..s].contains('\n');
            prev = e;
        }
        multiline |= self.src[prev..end].contains('\n');
        if !multiline {
            if items.is_empty() {
                return format!("{}{}", br.open, br.close);
            }
            let texts: Vec<String> = items.iter().map(|it| self.item(it, level)).collect();
            let mut inner = texts.join(", ");
            if br.single_comma && items.len() == 1 {
                inner.push(',');
            }
            let sp = if br.spaced { " " } else { "" };
            return format!("{}{sp}{inner}{sp}{}", br.open, br.close);
        }

        let mut out = String::from(br.open);
        let mut last = start;
        let stop = bounds.first().map(|b| b.0).unwrap_or(end);
        if let Some((t, e)) = self.take_trailing(start, stop) {
            out.push_str("  ");
            out.push_str(&t);
            last = e;
        }
        let mut lines = vec![];
        for (k, it) in items.iter().enumerate() {
            let (it_start, it_end) = bounds[k];
            lines.extend(self.take(last, it_start).into_iter().map(SeqLine::Comment));
            let text = self.item(it, level + 1);
            lines.extend(self.take(it_start, it_end).into_iter().map(SeqLine::Comment));
            last = it_end;
            let next = bounds.get(k + 1).map(|b| b.0).unwrap_or(end);
            let trailing = self.take_trailing(last, next).map(|(t, e)| {
                last = e;
                t
            });
            lines.push(SeqLine::Item { text, name: it.name().map(|n| n.len()), trailing });
        }
        lines.extend(self.take(last, end).into_iter().map(SeqLine::Comment));

        let slots: Vec<Slot> = lines
            .iter()
            .map(|l| match l {
                SeqLine::Comment(_) => Slot::Skip,
                SeqLine::Item { name: Some(w), text, .. } => Slot::Item { key: 0, width: *w, multiline: text.contains('\n') },
                SeqLine::Item { name: None, .. } => Slot::Break,
            })
            .collect();
        let pads = align(&slots);
        let texts: Vec<Option<String>> = lines
            .iter()
            .zip(pads)
            .map(|(l, pad)| match l {
                SeqLine::Comment(_) => None,
                SeqLine::Item { text, name, .. } => Some(pad_at(text, name.unwrap_or(0), pad) + ","),
            })
            .collect();
        let widths: Vec<Option<usize>> = lines
            .iter()
            .zip(&texts)
            .map(|(l, t)| match (l, t) {
                (SeqLine::Item { trailing: Some(_), .. }, Some(t)) => line_width(t),
                _ => None,
            })
            .collect();
        let gaps = comment_gaps(&widths);
        let ind = indent(level + 1);
        for ((l, text), gap) in lines.iter().zip(texts).zip(gaps) {
            out.push('\n');
            out.push_str(&ind);
            match l {
                SeqLine::Comment(c) => out.push_str(c),
                SeqLine::Item { trailing, .. } => {
                    out.push_str(&text.unwrap_or_default());
                    if let Some(t) = trailing {
                        out.push_str(&" ".repeat(gap));
                        out.push_str(t);
                    }
                }
            }
        }
        out.push('\n');
        out.push_str(&indent(level));
        out.push_str(br.close);
        out
    }
}

const RECORD: Brackets = Brackets { open: "{", close: "}", spaced: true, single_comma: false };

fn escape_into(out: &mut String, t: &str) {
    for ch in t.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '{' => out.push_str("\\{"),
            '}' => out.push_str("\\}"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
}

/// Whether a string literal's source text holds an unescaped `{`.
fn has_interp(raw: &str) -> bool {
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '{' => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests;
