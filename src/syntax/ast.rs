//! The typed syntax tree. Every node carries its span; nothing is evaluated here.

use crate::diagnostics::Span;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct File {
    pub items: Vec<Stmt>,
    pub comments: Vec<Comment>,
    pub span: Span,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Comment {
    pub text: String,
    pub span: Span,
    /// True when code precedes the comment on its line.
    pub trailing: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum StmtKind {
    Import(StrLit),
    Let(Ident, Expr),
    Set(Ident, Expr),
    Factor(Ident, Expr),
    Prune {
        cond: Expr,
        reason: StrLit,
    },
    When {
        cond: Expr,
        action: Expr,
        /// Why the rule exists, said when it fires.
        reason: Option<StrLit>,
    },
    Attr(Ident, Expr),
    Block(Block),
    /// A statement that did not parse; its diagnostic is already reported.
    Error(String),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StrLit {
    pub value: String,
    pub span: Span,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Block {
    pub kind: Ident,
    pub labels: Vec<BlockLabel>,
    pub extends: Option<Ident>,
    pub in_layer: Option<StrLit>,
    pub body: Vec<Stmt>,
    pub body_span: Span,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum BlockLabel {
    Str(StrLit),
    Ident(Ident),
}

impl BlockLabel {
    pub fn text(&self) -> &str {
        match self {
            BlockLabel::Str(s) => &s.value,
            BlockLabel::Ident(i) => &i.name,
        }
    }
    pub fn span(&self) -> Span {
        match self {
            BlockLabel::Str(s) => s.span,
            BlockLabel::Ident(i) => i.span,
        }
    }
}

impl Block {
    /// The block's name: its first label, if any.
    pub fn name(&self) -> Option<&BlockLabel> {
        self.labels.first()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Unit {
    None,
    Tokens,
    Bytes,
    Duration,
    Bandwidth,
    Money,
}

impl Unit {
    pub fn describe(self) -> &'static str {
        match self {
            Unit::None => "a plain number",
            Unit::Tokens => "tokens",
            Unit::Bytes => "bytes",
            Unit::Duration => "a duration",
            Unit::Bandwidth => "a bandwidth",
            Unit::Money => "money",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    /// `^`: a plain number raised to a power, or a model term's power (`log(prompt)^2`).
    Pow,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        use BinOp::*;
        match self {
            Or => "or",
            And => "and",
            Eq => "==",
            Ne => "!=",
            Lt => "<",
            Le => "<=",
            Gt => ">",
            Ge => ">=",
            In => "in",
            Add => "+",
            Sub => "-",
            Mul => "*",
            Div => "/",
            Mod => "%",
            Pow => "^",
        }
    }
    pub fn precedence(self) -> u8 {
        use BinOp::*;
        match self {
            Or => 1,
            And => 2,
            Eq | Ne | Lt | Le | Gt | Ge | In => 3,
            Add | Sub => 4,
            Mul | Div | Mod => 5,
            Pow => 6,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnOp {
    Not,
    Neg,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum StrPart {
    Text(String),
    Interp(Expr),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Field {
    pub name: Ident,
    pub value: Expr,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ExprKind {
    None,
    Bool(bool),
    /// A number with its unit, already scaled to the base unit (tokens, bytes, seconds, bits/s, dollars).
    Number {
        value: f64,
        unit: Unit,
        text: String,
    },
    Str(Vec<StrPart>),
    /// A raw string: no escapes, no interpolation. `long` is the `'''` form.
    Raw {
        value: String,
        long: bool,
    },
    List(Vec<Expr>),
    Tuple(Vec<Expr>),
    Record(Vec<Field>),
    Name(Ident),
    Member(Box<Expr>, Ident),
    Call(Box<Expr>, Vec<Arg>),
    /// `base { field = value }`: a copy of a record or template with fields overridden.
    With(Box<Expr>, Vec<Field>),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Ternary(Box<Expr>, Box<Expr>, Box<Expr>),
    Paren(Box<Expr>),
}

impl Expr {
    /// The plain text of a string literal without interpolation, if this is one.
    pub fn as_plain_str(&self) -> Option<String> {
        match &self.kind {
            ExprKind::Str(parts) => {
                let mut s = String::new();
                for p in parts {
                    match p {
                        StrPart::Text(t) => s.push_str(t),
                        StrPart::Interp(_) => return None,
                    }
                }
                Some(s)
            }
            ExprKind::Raw { value, .. } => Some(value.clone()),
            _ => None,
        }
    }
    pub fn as_name(&self) -> Option<&Ident> {
        match &self.kind {
            ExprKind::Name(i) => Some(i),
            _ => None,
        }
    }
}
