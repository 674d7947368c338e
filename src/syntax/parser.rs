//! Text to syntax tree: limits and delimiter pre-scan, then the hand-written parser for
//! well-formed text (`fast/`), else pest and a builder that turns pest pairs into the
//! typed AST and error nodes into diagnostics.

use super::ast::*;
use super::explain::{describe_error, explain_error_node};
use super::scan;
use crate::diagnostics::{Code, Diagnostic, FileId, Span};
use pest::iterators::Pair;
use pest::Parser;
use std::sync::Once;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/nixl.pest"]
pub struct NixlParser;

/// Files larger than this are refused with a diagnostic rather than parsed.
pub const MAX_FILE_BYTES: usize = 8 * 1024 * 1024;
/// The largest number literal (in its base unit) kept exactly: 2^53.
pub const MAX_EXACT: f64 = 9_007_199_254_740_992.0;
/// Expressions nested deeper than this (operators, ternaries) are refused.
const MAX_EXPR_DEPTH: usize = 200;

static INIT: Once = Once::new();

fn init_pest() {
    INIT.call_once(|| {
        // Bounds backtracking on hostile input; legitimate files use far fewer calls.
        pest::set_call_limit(std::num::NonZeroUsize::new(200_000_000));
    });
}

/// Parses one file. Always returns a tree (possibly with error nodes) and every syntax diagnostic.
pub fn parse(file: FileId, text: &str) -> (File, Vec<Diagnostic>) {
    parse_with(file, text, true)
}

/// [`parse`] with pest alone, never the hand-written fast path (`fast/`): the reference
/// the tests compare that path with.
#[doc(hidden)]
pub fn parse_with_pest(file: FileId, text: &str) -> (File, Vec<Diagnostic>) {
    parse_with(file, text, false)
}

fn parse_with(file: FileId, text: &str, fast: bool) -> (File, Vec<Diagnostic>) {
    init_pest();
    let whole = Span::new(file, 0, text.len());
    let empty = |diags| (File { items: vec![], comments: vec![], span: whole }, diags);
    if text.len() > MAX_FILE_BYTES {
        let d = Diagnostic::error(
            Code::Limit,
            Span::new(file, 0, 0),
            format!("file is {} bytes, more than the limit of {} bytes", text.len(), MAX_FILE_BYTES),
        )
        .help("split the file with `import`");
        return empty(vec![d]);
    }
    let mut scanned = scan::scan(file, text);
    let mut blanked = None;
    if !scanned.diags.is_empty() {
        match recover(file, text) {
            Some((clean, diags)) => {
                scanned = scan::scan(file, &clean);
                scanned.diags = diags;
                blanked = Some(clean);
            }
            None => return empty(scanned.diags),
        }
    }
    // A well-formed file takes the fast path; anything pest would report goes to pest.
    if fast && blanked.is_none() {
        if let Some(items) = super::fast::parse(file, text) {
            return (File { items, comments: scanned.comments, span: whole }, vec![]);
        }
    }
    let (tree, mut diags) = parse_scanned(file, blanked.as_deref().unwrap_or(text), scanned.comments);
    diags.extend(scanned.diags);
    diags.sort_by_key(|d| d.primary.span.start);
    (File { span: whole, ..tree }, diags)
}

/// Recovery after a delimiter error (an unclosed block, a stray brace): the text
/// is cut where top-level items start at column 0, every chunk that does not
/// scan on its own is reported and blanked out (spaces, newlines kept, so every
/// offset stays), and the rest is parsed and checked as usual. None when the
/// error cannot be confined to chunks.
fn recover(file: FileId, text: &str) -> Option<(String, Vec<Diagnostic>)> {
    let chunks = scan::resync_chunks(text);
    if chunks.len() < 2 {
        return None;
    }
    let mut clean = text.as_bytes().to_vec();
    let mut diags = vec![];
    for (s, e) in chunks {
        let part = scan::scan(file, &text[s..e]);
        if part.diags.is_empty() {
            continue;
        }
        for c in &mut clean[s..e] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
        diags.extend(part.diags.into_iter().map(|d| shift(d, s as u32)));
    }
    let clean = String::from_utf8(clean).ok()?;
    (!diags.is_empty() && scan::scan(file, &clean).diags.is_empty()).then_some((clean, diags))
}

fn shift(mut d: Diagnostic, by: u32) -> Diagnostic {
    for l in std::iter::once(&mut d.primary).chain(d.secondary.iter_mut()) {
        l.span.start += by;
        l.span.end += by;
    }
    d
}

/// Parses a text whose delimiters balance.
fn parse_scanned(file: FileId, text: &str, comments: Vec<Comment>) -> (File, Vec<Diagnostic>) {
    let whole = Span::new(file, 0, text.len());
    let empty = |diags| (File { items: vec![], comments: vec![], span: whole }, diags);
    let pairs = match NixlParser::parse(Rule::file, text) {
        Ok(mut p) => p.next().expect("file rule"),
        Err(e) => {
            let (offset, msg) = describe_error(&e, text);
            let at = Span::new(file, offset, (offset + 1).min(text.len()));
            // pest's own limits (call count, recursion depth): input too deeply nested.
            let d = if matches!(e.variant, pest::error::ErrorVariant::CustomError { .. }) {
                Diagnostic::error(Code::Limit, at, format!("input nested too deeply to parse ({msg})"))
                    .help("split deep expressions with `let`: a chain of `? :` nests one level per branch")
            } else {
                Diagnostic::error(Code::Syntax, at, msg)
            };
            return empty(vec![d]);
        }
    };
    let mut b = Builder { file, diags: vec![], depth: 0, deep_until: 0, stmt_end: 0 };
    let mut items = vec![];
    for p in pairs.into_inner() {
        if let Some(s) = b.item(p, true) {
            items.push(s);
        }
    }
    (File { items, comments, span: whole }, b.diags)
}

/// Statements of a block's body written without the braces, as `lsp::reparse` cuts
/// large blocks. Any diagnostic means the cut was not a statement boundary.
pub fn parse_body_piece(file: FileId, text: &str) -> (Vec<Stmt>, Vec<Comment>, Vec<Diagnostic>) {
    init_pest();
    let scanned = scan::scan(file, text);
    if !scanned.diags.is_empty() {
        return (vec![], vec![], scanned.diags);
    }
    let pairs = match NixlParser::parse(Rule::body_piece, text) {
        Ok(mut p) => p.next().expect("body_piece rule"),
        Err(e) => {
            let (offset, msg) = describe_error(&e, text);
            return (vec![], vec![], vec![Diagnostic::error(Code::Syntax, Span::new(file, offset, offset), msg)]);
        }
    };
    let mut b = Builder { file, diags: vec![], depth: 0, deep_until: 0, stmt_end: 0 };
    let stmts = pairs.into_inner().filter_map(|p| b.item(p, false)).collect();
    (stmts, scanned.comments, b.diags)
}

struct Builder {
    file: FileId,
    diags: Vec<Diagnostic>,
    depth: usize,
    /// Nesting over the limit is reported once per expression: not again before this offset.
    deep_until: u32,
    /// The end of the statement being built.
    stmt_end: u32,
}

impl Builder {
    fn span(&self, p: &Pair<Rule>) -> Span {
        let s = p.as_span();
        Span::new(self.file, s.start(), s.end())
    }

    fn ident(&self, p: Pair<Rule>) -> Ident {
        Ident { name: p.as_str().to_string(), span: self.span(&p) }
    }

    fn item(&mut self, p: Pair<Rule>, top: bool) -> Option<Stmt> {
        let span = self.span(&p);
        self.stmt_end = span.end;
        let kind = match p.as_rule() {
            Rule::EOI | Rule::lbrace | Rule::rbrace => return None,
            Rule::import_stmt => {
                let s = p.into_inner().nth(1).expect("import string");
                StmtKind::Import(self.str_lit(s))
            }
            Rule::let_stmt | Rule::set_stmt | Rule::factor_stmt | Rule::attribute => {
                let rule = p.as_rule();
                let mut it = p.into_inner().filter(|q| q.as_rule() == Rule::ident || q.as_rule() == Rule::expr);
                let name = self.ident(it.next().expect("name"));
                let value = self.expr(it.next().expect("value"));
                match rule {
                    Rule::let_stmt => StmtKind::Let(name, value),
                    Rule::set_stmt => StmtKind::Set(name, value),
                    Rule::factor_stmt => StmtKind::Factor(name, value),
                    _ => StmtKind::Attr(name, value),
                }
            }
            Rule::prune_stmt => {
                let mut it = p.into_inner().filter(|q| matches!(q.as_rule(), Rule::expr | Rule::string));
                let cond = self.expr(it.next().expect("cond"));
                let reason = self.str_lit(it.next().expect("reason"));
                StmtKind::Prune { cond, reason }
            }
            Rule::when_stmt => {
                let parts: Vec<Pair<Rule>> = p.into_inner().collect();
                let mut it = parts.iter().filter(|q| q.as_rule() == Rule::expr);
                let cond = self.expr(it.next().expect("cond").clone());
                let action = self.expr(it.next().expect("action").clone());
                let reason = parts.iter().find(|q| q.as_rule() == Rule::string).map(|s| self.str_lit(s.clone()));
                StmtKind::When { cond, action, reason }
            }
            Rule::block => StmtKind::Block(self.block(p)),
            Rule::error_top | Rule::error_line | Rule::error_block => {
                let text = p.as_str();
                let d = explain_error_node(self.file, span, text, top);
                self.diags.push(d);
                StmtKind::Error(text.to_string())
            }
            r => unreachable!("unexpected rule {r:?}"),
        };
        Some(Stmt { kind, span })
    }

    fn block(&mut self, p: Pair<Rule>) -> Block {
        let mut kind = None;
        let mut labels = vec![];
        let mut extends = None;
        let mut in_layer = None;
        let mut body = vec![];
        let mut body_span = self.span(&p);
        for q in p.into_inner() {
            match q.as_rule() {
                Rule::ident => kind = Some(self.ident(q)),
                Rule::label => {
                    let l = q.into_inner().next().expect("label");
                    labels.push(match l.as_rule() {
                        Rule::string => BlockLabel::Str(self.str_lit(l)),
                        _ => BlockLabel::Ident(self.ident(l)),
                    });
                }
                Rule::extends => extends = Some(self.ident(q.into_inner().nth(1).expect("extends name"))),
                Rule::in_clause => in_layer = Some(self.str_lit(q.into_inner().nth(1).expect("in string"))),
                Rule::body => {
                    body_span = self.span(&q);
                    for s in q.into_inner() {
                        if let Some(s) = self.item(s, false) {
                            body.push(s);
                        }
                    }
                }
                r => unreachable!("unexpected rule in block {r:?}"),
            }
        }
        Block { kind: kind.expect("block kind"), labels, extends, in_layer, body, body_span }
    }

    fn str_lit(&mut self, p: Pair<Rule>) -> StrLit {
        let span = self.span(&p);
        let e = self.string(p);
        let value = match &e.kind {
            ExprKind::Str(parts) => {
                let mut s = String::new();
                for part in parts {
                    match part {
                        StrPart::Text(t) => s.push_str(t),
                        StrPart::Interp(x) => {
                            self.diags.push(
                                Diagnostic::error(Code::Literal, x.span, "interpolation is not allowed here")
                                    .help("write the text literally, or escape the brace as `\\{`"),
                            );
                        }
                    }
                }
                s
            }
            _ => String::new(),
        };
        StrLit { value, span }
    }

    fn too_deep(&mut self, span: Span) -> Expr {
        if span.start < self.deep_until {
            return Expr { kind: ExprKind::None, span };
        }
        self.deep_until = span.end.max(self.stmt_end);
        self.diags.push(
            Diagnostic::error(Code::Limit, span, format!("expression nested more than {MAX_EXPR_DEPTH} levels deep"))
                .help("split it with `let`"),
        );
        Expr { kind: ExprKind::None, span }
    }

    fn expr(&mut self, p: Pair<Rule>) -> Expr {
        let span = self.span(&p);
        if self.depth > MAX_EXPR_DEPTH {
            return self.too_deep(span);
        }
        self.depth += 1;
        let e = self.expr_inner(p, span);
        self.depth -= 1;
        e
    }

    fn expr_inner(&mut self, p: Pair<Rule>, span: Span) -> Expr {
        match p.as_rule() {
            Rule::expr => {
                let mut it = p.into_inner().filter(|q| matches!(q.as_rule(), Rule::binary | Rule::expr));
                let cond = self.expr(it.next().expect("binary"));
                match (it.next(), it.next()) {
                    (Some(a), Some(b)) => {
                        let a = self.expr(a);
                        let b = self.expr(b);
                        Expr { kind: ExprKind::Ternary(Box::new(cond), Box::new(a), Box::new(b)), span }
                    }
                    _ => cond,
                }
            }
            Rule::binary => self.binary(p),
            Rule::unary => {
                let mut ops = vec![];
                let mut operand = None;
                for q in p.into_inner() {
                    match q.as_rule() {
                        Rule::op_not => ops.push((UnOp::Not, self.span(&q))),
                        Rule::op_neg => ops.push((UnOp::Neg, self.span(&q))),
                        _ => operand = Some(self.expr(q)),
                    }
                }
                if ops.len() > MAX_EXPR_DEPTH {
                    return self.too_deep(span);
                }
                let mut e = operand.expect("operand");
                for (op, s) in ops.into_iter().rev() {
                    let sp = s.to(e.span);
                    e = Expr { kind: ExprKind::Unary(op, Box::new(e)), span: sp };
                }
                e
            }
            Rule::postfixed => {
                let mut it = p.into_inner();
                let mut e = self.expr(it.next().expect("primary"));
                for q in it {
                    let qs = self.span(&q);
                    let sp = e.span.to(qs);
                    e = match q.as_rule() {
                        Rule::member => Expr {
                            kind: ExprKind::Member(Box::new(e), self.ident(q.into_inner().next().expect("member"))),
                            span: sp,
                        },
                        Rule::call_args => {
                            let mut args = vec![];
                            for a in q.into_inner().filter(|a| a.as_rule() == Rule::arg) {
                                let mut name = None;
                                let mut value = None;
                                for x in a.into_inner() {
                                    match x.as_rule() {
                                        Rule::ident => name = Some(self.ident(x)),
                                        Rule::expr => value = Some(self.expr(x)),
                                        _ => {}
                                    }
                                }
                                args.push(Arg { name, value: value.expect("arg value") });
                            }
                            Expr { kind: ExprKind::Call(Box::new(e), args), span: sp }
                        }
                        Rule::with_record => {
                            let rec = self.record_fields(q.into_inner().next().expect("record"));
                            Expr { kind: ExprKind::With(Box::new(e), rec), span: sp }
                        }
                        r => unreachable!("postfix {r:?}"),
                    };
                }
                e
            }
            Rule::none_lit => Expr { kind: ExprKind::None, span },
            Rule::bool_lit => Expr { kind: ExprKind::Bool(p.as_str() == "true"), span },
            Rule::quantity | Rule::money => self.number(p, span),
            Rule::string => self.string(p),
            Rule::raw_string => {
                let long = p.as_str().starts_with("'''");
                let inner = p.into_inner().next().map(|q| q.as_str().to_string()).unwrap_or_default();
                Expr { kind: ExprKind::Raw { value: inner, long }, span }
            }
            Rule::list => {
                let items = p
                    .into_inner()
                    .filter(|q| matches!(q.as_rule(), Rule::expr | Rule::quantity | Rule::string))
                    .map(|q| self.expr(q))
                    .collect();
                Expr { kind: ExprKind::List(items), span }
            }
            Rule::record => Expr { kind: ExprKind::Record(self.record_fields(p)), span },
            Rule::paren => {
                let mut comma = false;
                let mut items = vec![];
                for q in p.into_inner() {
                    match q.as_rule() {
                        Rule::comma => comma = true,
                        Rule::expr => items.push(self.expr(q)),
                        _ => {}
                    }
                }
                if items.len() == 1 && !comma {
                    Expr { kind: ExprKind::Paren(Box::new(items.pop().expect("one"))), span }
                } else {
                    Expr { kind: ExprKind::Tuple(items), span }
                }
            }
            Rule::ident => Expr { kind: ExprKind::Name(self.ident(p)), span },
            r => unreachable!("unexpected expression rule {r:?}"),
        }
    }

    fn record_fields(&mut self, p: Pair<Rule>) -> Vec<Field> {
        p.into_inner()
            .filter(|q| q.as_rule() == Rule::field)
            .map(|f| {
                let mut it = f.into_inner().filter(|q| matches!(q.as_rule(), Rule::field_name | Rule::expr));
                let name = self.ident(it.next().expect("field name"));
                let value = self.expr(it.next().expect("field value"));
                Field { name, value }
            })
            .collect()
    }

    /// Operators by precedence climbing over the flat `unary (op unary)*` list.
    fn binary(&mut self, p: Pair<Rule>) -> Expr {
        let mut operands = vec![];
        let mut ops = vec![];
        for q in p.into_inner() {
            match q.as_rule() {
                Rule::unary => operands.push(self.expr(q)),
                r => ops.push(binop(r)),
            }
        }
        if ops.len() > 10_000 {
            let span = operands[0].span.to(operands[operands.len() - 1].span);
            return self.too_deep(span);
        }
        let mut operands = operands.into_iter();
        let first = operands.next().expect("operand");
        let rest: Vec<(BinOp, Expr)> = ops.into_iter().zip(operands).collect();
        let mut rest = rest.into_iter().peekable();
        climb(first, &mut rest, 0)
    }

    fn number(&mut self, p: Pair<Rule>, span: Span) -> Expr {
        let text = p.as_str().to_string();
        let money = p.as_rule() == Rule::money;
        let mut num = "";
        let mut unit = "";
        for q in p.into_inner() {
            match q.as_rule() {
                Rule::number => num = q.as_str(),
                Rule::unit => unit = q.as_str(),
                _ => {}
            }
        }
        let value: f64 = match num.replace('_', "").parse() {
            Ok(v) => v,
            Err(_) => {
                self.diags.push(Diagnostic::error(Code::Literal, span, format!("`{num}` is not a valid number")));
                0.0
            }
        };
        let (unit, scale) = if money { (Unit::Money, 1.0) } else { unit_scale(unit) };
        let value = value * scale;
        if !value.is_finite() || value > MAX_EXACT {
            self.diags.push(
                Diagnostic::error(Code::Literal, span, format!("`{text}` is too large"))
                    .help("numbers are kept exactly up to 2^53 (9,007,199,254,740,992 in the base unit)"),
            );
        }
        Expr { kind: ExprKind::Number { value, unit, text }, span }
    }

    fn string(&mut self, p: Pair<Rule>) -> Expr {
        let span = self.span(&p);
        let mut parts: Vec<StrPart> = vec![];
        let push_text = |parts: &mut Vec<StrPart>, t: &str| {
            if let Some(StrPart::Text(last)) = parts.last_mut() {
                last.push_str(t);
            } else {
                parts.push(StrPart::Text(t.to_string()));
            }
        };
        for q in p.into_inner() {
            match q.as_rule() {
                Rule::text => push_text(&mut parts, q.as_str()),
                Rule::escape => {
                    let c = &q.as_str()[1..];
                    let t = match c {
                        "n" => "\n",
                        "t" => "\t",
                        "\\" => "\\",
                        "\"" => "\"",
                        "{" => "{",
                        "}" => "}",
                        _ => {
                            self.diags.push(
                                Diagnostic::error(Code::Literal, self.span(&q), format!("unknown escape `{}`", q.as_str()))
                                    .help("valid escapes are \\n \\t \\\\ \\\" \\{ \\}"),
                            );
                            c
                        }
                    };
                    push_text(&mut parts, t)
                }
                Rule::interp => {
                    let e = q.into_inner().next().expect("interp expr");
                    let e = self.expr(e);
                    parts.push(StrPart::Interp(e));
                }
                _ => {}
            }
        }
        Expr { kind: ExprKind::Str(parts), span }
    }
}

pub(super) fn climb(mut lhs: Expr, rest: &mut std::iter::Peekable<std::vec::IntoIter<(BinOp, Expr)>>, min_prec: u8) -> Expr {
    while let Some((op, _)) = rest.peek() {
        let prec = op.precedence();
        if prec < min_prec {
            break;
        }
        let (op, mut rhs) = rest.next().expect("peeked");
        while let Some((next, _)) = rest.peek() {
            if next.precedence() > prec {
                rhs = climb(rhs, rest, prec + 1);
            } else {
                break;
            }
        }
        let span = lhs.span.to(rhs.span);
        lhs = Expr { kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), span };
    }
    lhs
}

fn binop(r: Rule) -> BinOp {
    match r {
        Rule::op_or => BinOp::Or,
        Rule::op_and => BinOp::And,
        Rule::op_eq => BinOp::Eq,
        Rule::op_ne => BinOp::Ne,
        Rule::op_lt => BinOp::Lt,
        Rule::op_le => BinOp::Le,
        Rule::op_gt => BinOp::Gt,
        Rule::op_ge => BinOp::Ge,
        Rule::op_in => BinOp::In,
        Rule::op_add => BinOp::Add,
        Rule::op_sub => BinOp::Sub,
        Rule::op_mul => BinOp::Mul,
        Rule::op_div => BinOp::Div,
        Rule::op_mod => BinOp::Mod,
        Rule::op_pow => BinOp::Pow,
        r => unreachable!("not an operator: {r:?}"),
    }
}

/// The unit of a suffix and its factor to the base unit.
pub fn unit_scale(unit: &str) -> (Unit, f64) {
    match unit {
        "" => (Unit::None, 1.0),
        "K" => (Unit::Tokens, 1024.0),
        "M" => (Unit::Tokens, 1024.0 * 1024.0),
        "B" => (Unit::Bytes, 1.0),
        "KB" => (Unit::Bytes, 1e3),
        "MB" => (Unit::Bytes, 1e6),
        "GB" => (Unit::Bytes, 1e9),
        "TB" => (Unit::Bytes, 1e12),
        "KiB" => (Unit::Bytes, 1024.0),
        "MiB" => (Unit::Bytes, 1024.0 * 1024.0),
        "GiB" => (Unit::Bytes, 1024.0 * 1024.0 * 1024.0),
        "TiB" => (Unit::Bytes, 1024.0f64.powi(4)),
        "Kbps" => (Unit::Bandwidth, 1e3),
        "Mbps" => (Unit::Bandwidth, 1e6),
        "Gbps" => (Unit::Bandwidth, 1e9),
        "us" => (Unit::Duration, 1e-6),
        "ms" => (Unit::Duration, 1e-3),
        "s" => (Unit::Duration, 1.0),
        "min" => (Unit::Duration, 60.0),
        "h" => (Unit::Duration, 3600.0),
        other => unreachable!("unit {other} not in the grammar"),
    }
}
