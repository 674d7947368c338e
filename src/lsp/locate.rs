//! What is under the cursor: the innermost syntax node at a byte offset, with
//! the blocks and the attribute around it. Hover reads this.

use crate::syntax::ast::{Block, BlockLabel, Expr, ExprKind, File, Ident, StmtKind, StrLit, StrPart, Unit};

pub enum Hit<'a> {
    Import(&'a StrLit),
    /// The kind word of a block (`stack`, `layer`...).
    Kind(&'a Block),
    Label(&'a Block, &'a BlockLabel),
    InLayer(&'a StrLit),
    /// The name of an attribute.
    Attr(&'a Ident, &'a Expr),
    /// The name a `let` or `set` defines.
    Let(&'static str, &'a Ident, &'a Expr),
    Factor(&'a Ident, &'a Expr),
    Name(&'a Ident),
    Str(&'a Expr, String),
    Number(&'a Expr, f64, Unit),
}

pub struct At<'a> {
    pub hit: Option<Hit<'a>>,
    /// Enclosing blocks, outermost first.
    pub blocks: Vec<&'a Block>,
    /// The attribute whose value holds the cursor.
    pub attr: Option<&'a Ident>,
}

fn inside(span: crate::diagnostics::Span, offset: u32) -> bool {
    span.start <= offset && offset <= span.end
}

pub fn locate(file: &File, offset: u32) -> At<'_> {
    let mut at = At { hit: None, blocks: vec![], attr: None };
    for s in &file.items {
        if inside(s.span, offset) {
            stmt(&s.kind, offset, &mut at);
        }
    }
    at
}

fn stmt<'a>(kind: &'a StmtKind, offset: u32, at: &mut At<'a>) {
    match kind {
        StmtKind::Import(s) => at.hit = Some(Hit::Import(s)),
        StmtKind::Attr(id, e) | StmtKind::Let(id, e) | StmtKind::Set(id, e) => {
            if inside(id.span, offset) {
                at.hit = Some(match kind {
                    StmtKind::Let(..) => Hit::Let("let", id, e),
                    StmtKind::Set(..) => Hit::Let("set", id, e),
                    _ => Hit::Attr(id, e),
                });
            } else {
                at.attr = Some(id);
                expr(e, offset, at);
            }
        }
        StmtKind::Factor(id, e) => {
            if inside(id.span, offset) {
                at.hit = Some(Hit::Factor(id, e));
            } else {
                at.attr = Some(id);
                expr(e, offset, at);
            }
        }
        StmtKind::Prune { cond, .. } => expr(cond, offset, at),
        StmtKind::When { cond, action, .. } => {
            expr(cond, offset, at);
            expr(action, offset, at);
        }
        StmtKind::Block(b) => block(b, offset, at),
        StmtKind::Error(_) => {}
    }
}

fn block<'a>(b: &'a Block, offset: u32, at: &mut At<'a>) {
    at.blocks.push(b);
    if inside(b.kind.span, offset) {
        at.hit = Some(Hit::Kind(b));
        return;
    }
    if let Some(l) = b.labels.iter().find(|l| inside(l.span(), offset)) {
        at.hit = Some(Hit::Label(b, l));
        return;
    }
    if let Some(e) = b.extends.as_ref().filter(|e| inside(e.span, offset)) {
        at.hit = Some(Hit::Name(e));
        return;
    }
    if let Some(l) = b.in_layer.as_ref().filter(|l| inside(l.span, offset)) {
        at.hit = Some(Hit::InLayer(l));
        return;
    }
    for s in &b.body {
        if inside(s.span, offset) {
            stmt(&s.kind, offset, at);
        }
    }
}

fn expr<'a>(e: &'a Expr, offset: u32, at: &mut At<'a>) {
    if !inside(e.span, offset) {
        return;
    }
    match &e.kind {
        ExprKind::Name(id) => at.hit = Some(Hit::Name(id)),
        ExprKind::Number { value, unit, .. } => at.hit = Some(Hit::Number(e, *value, *unit)),
        ExprKind::Str(parts) => {
            at.hit = e.as_plain_str().map(|s| Hit::Str(e, s));
            for p in parts {
                if let StrPart::Interp(x) = p {
                    expr(x, offset, at);
                }
            }
        }
        ExprKind::Raw { value, .. } => at.hit = Some(Hit::Str(e, value.clone())),
        ExprKind::List(items) | ExprKind::Tuple(items) => items.iter().for_each(|x| expr(x, offset, at)),
        ExprKind::Record(fields) => fields.iter().for_each(|f| expr(&f.value, offset, at)),
        ExprKind::Member(base, _) => expr(base, offset, at),
        ExprKind::Call(f, args) => {
            expr(f, offset, at);
            args.iter().for_each(|a| expr(&a.value, offset, at));
        }
        ExprKind::With(base, fields) => {
            expr(base, offset, at);
            fields.iter().for_each(|f| expr(&f.value, offset, at));
        }
        ExprKind::Unary(_, x) | ExprKind::Paren(x) => expr(x, offset, at),
        ExprKind::Binary(_, a, b) => {
            expr(a, offset, at);
            expr(b, offset, at);
        }
        ExprKind::Ternary(a, b, c) => {
            expr(a, offset, at);
            expr(b, offset, at);
            expr(c, offset, at);
        }
        ExprKind::None | ExprKind::Bool(_) => {}
    }
}
