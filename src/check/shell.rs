//! Shell scripts from templates, safe by construction. The text a template writes is shell;
//! every value it interpolates (`{here}`, a setting, a factor level, a setup `let`) is data,
//! quoted by [`shell_quote`] for where it stands in the script (outside quotes, inside '...',
//! inside "...", inside `$(...)`), so no folder name or value can change what a script does.
//! What the template's own literals choose (`{mode == unified ? "a" : "b"}`) is shell again, and
//! so is a fragment nixl builds as shell itself ([`Value::Shell`], `{serve_args}`), pasted as it
//! is. A list interpolates as one quoted word per item (`for p in {streams}`). A safe value
//! (letters, digits and `-_./:=,@%+`) is written as it is, so ordinary scripts read as before.
//!
//! Each item of a list template is a command of its own: the quoting context starts afresh with
//! it. Here-documents are not followed: a value interpolated into one is quoted as on a command
//! line (it arrives with its quotes; no command runs either way).

use super::value::{Eval, Value};
use crate::diagnostics::{Code, Diagnostic};
use crate::syntax::ast::{Expr, ExprKind, StrPart};

/// Quotes a value for the shell: unchanged when every character is safe, else in single quotes
/// with embedded single quotes written `'\''`. The one quoting function of every script nixl sends.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

type R<T> = Result<T, Box<Diagnostic>>;

/// Renders templates as scripts, evaluating what they interpolate with `eval`.
pub struct Renderer<'a> {
    pub eval: &'a Eval<'a>,
}

impl Renderer<'_> {
    /// A template as one script: a string, a list of commands (one per line), or any other
    /// expression whose value is the script (a `let` holding a command is the author's shell).
    pub fn script(&self, e: &Expr) -> R<String> {
        if let ExprKind::List(items) = &e.kind {
            return Ok(items.iter().map(|i| self.script(i)).collect::<R<Vec<_>>>()?.join("\n"));
        }
        let mut out = Script::default();
        self.shell(e, &mut out)?;
        Ok(out.text)
    }

    /// `e` as shell text: string literals, the branch a condition chooses, or the value's text.
    fn shell(&self, e: &Expr, out: &mut Script) -> R<()> {
        match &e.kind {
            ExprKind::Str(parts) => {
                for p in parts {
                    match p {
                        StrPart::Text(t) => out.shell(t),
                        StrPart::Interp(x) => self.interpolate(x, out)?,
                    }
                }
                Ok(())
            }
            ExprKind::Raw { value, .. } => {
                out.shell(value);
                Ok(())
            }
            ExprKind::Paren(x) => self.shell(x, out),
            ExprKind::Ternary(c, a, b) => self.shell(self.choose(c, a, b)?, out),
            _ => match self.eval.eval(e)? {
                Value::List(items) => {
                    out.shell(&items.iter().map(Value::interpolated).collect::<Vec<_>>().join("\n"));
                    Ok(())
                }
                v => {
                    out.shell(&v.interpolated());
                    Ok(())
                }
            },
        }
    }

    /// What `{x}` puts into the script: a literal (or the literal a condition chooses) is shell,
    /// a fragment nixl built as shell is pasted, any other value is quoted where it stands.
    fn interpolate(&self, x: &Expr, out: &mut Script) -> R<()> {
        match &x.kind {
            ExprKind::Str(_) | ExprKind::Raw { .. } => self.shell(x, out),
            ExprKind::Paren(inner) => self.interpolate(inner, out),
            ExprKind::Ternary(c, a, b) => self.interpolate(self.choose(c, a, b)?, out),
            _ => {
                match self.eval.eval(x)? {
                    Value::Shell(s) => out.shell(&s),
                    Value::List(items) => {
                        let words: Vec<String> = items.iter().map(|v| out.quoted(&v.interpolated())).collect();
                        out.text.push_str(&words.join(" "));
                    }
                    v => {
                        let q = out.quoted(&v.interpolated());
                        out.text.push_str(&q);
                    }
                }
                Ok(())
            }
        }
    }

    /// The branch of `c ? a : b` the condition chooses (as the evaluator would).
    fn choose<'e>(&self, c: &Expr, a: &'e Expr, b: &'e Expr) -> R<&'e Expr> {
        match self.eval.eval(c)? {
            Value::Bool(true) => Ok(a),
            Value::Bool(false) => Ok(b),
            other => Err(Box::new(Diagnostic::error(
                Code::Type,
                c.span,
                format!("a condition must be a boolean, found {}", other.type_name()),
            ))),
        }
    }
}

/// A script being written, and where its next character stands.
#[derive(Default)]
struct Script {
    text: String,
    lexer: Lexer,
}

impl Script {
    /// Appends shell text (the template's own).
    fn shell(&mut self, t: &str) {
        self.text.push_str(t);
        self.lexer.feed(t);
    }

    /// A value quoted for the place the script has reached. Outside quotes it is
    /// [`shell_quote`]d; inside quotes the quotes are closed around it and opened again
    /// (`'a '"'"'...` reads as one word), so the value is always single-quoted data.
    fn quoted(&self, value: &str) -> String {
        let q = shell_quote(value);
        if q == value {
            return q;
        }
        match self.lexer.top() {
            Frame::Single => format!("'{q}'"),
            Frame::Double => format!("\"{q}\""),
            Frame::Bare { .. } | Frame::Backtick => q,
        }
    }
}

/// Where a character of a script stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Frame {
    /// Outside quotes; `depth` counts parentheses opened inside a `$(` that opened this frame.
    Bare {
        substitution: bool,
        depth: u32,
    },
    Single,
    Double,
    Backtick,
}

/// Follows quotes, escapes, `$(...)` and backticks, enough to know the frame at any point.
#[derive(Debug, Default)]
struct Lexer {
    stack: Vec<Frame>,
    escaped: bool,
    dollar: bool,
}

impl Lexer {
    fn top(&self) -> Frame {
        self.stack.last().copied().unwrap_or(Frame::Bare { substitution: false, depth: 0 })
    }

    fn feed(&mut self, text: &str) {
        for c in text.chars() {
            self.step(c);
        }
    }

    fn step(&mut self, c: char) {
        let dollar = std::mem::take(&mut self.dollar);
        if std::mem::take(&mut self.escaped) {
            return;
        }
        match (self.top(), c) {
            (Frame::Single, '\'') => self.pop(),
            (Frame::Single, _) => {}
            (_, '\\') => self.escaped = true,
            (Frame::Double, '"') => self.pop(),
            (Frame::Backtick, '`') => self.pop(),
            (_, '`') => self.stack.push(Frame::Backtick),
            (Frame::Bare { .. } | Frame::Double, '(') if dollar => self.stack.push(Frame::Bare { substitution: true, depth: 0 }),
            (_, '$') => self.dollar = true,
            (Frame::Double, _) => {}
            (Frame::Bare { .. } | Frame::Backtick, '\'') => self.stack.push(Frame::Single),
            (Frame::Bare { .. } | Frame::Backtick, '"') => self.stack.push(Frame::Double),
            (Frame::Bare { substitution, depth }, '(') => self.set_top(Frame::Bare { substitution, depth: depth + 1 }),
            (Frame::Bare { substitution: true, depth: 0 }, ')') => self.pop(),
            (Frame::Bare { substitution, depth }, ')') => {
                self.set_top(Frame::Bare { substitution, depth: depth.saturating_sub(1) })
            }
            _ => {}
        }
    }

    fn pop(&mut self) {
        self.stack.pop();
    }

    fn set_top(&mut self, f: Frame) {
        match self.stack.last_mut() {
            Some(top) => *top = f,
            None if f != (Frame::Bare { substitution: false, depth: 0 }) => self.stack.push(f),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(shell_quote("0.16.0"), "0.16.0");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    fn frame_after(text: &str) -> Frame {
        let mut l = Lexer::default();
        l.feed(text);
        l.top()
    }

    #[test]
    fn the_lexer_knows_the_frame_at_the_end_of_a_text() {
        assert_eq!(frame_after("echo "), Frame::Bare { substitution: false, depth: 0 });
        assert_eq!(frame_after("echo 'a"), Frame::Single);
        assert_eq!(frame_after("echo 'a' \"b"), Frame::Double);
        assert_eq!(frame_after("echo \"a $(ls "), Frame::Bare { substitution: true, depth: 0 });
        assert_eq!(frame_after("echo \"a $(ls) "), Frame::Double);
        assert_eq!(frame_after("echo \\' "), Frame::Bare { substitution: false, depth: 0 });
        assert_eq!(frame_after("echo \"it\\\" "), Frame::Double);
        assert_eq!(frame_after("x=$((1 + (2 * 3)) "), Frame::Bare { substitution: true, depth: 0 });
        assert_eq!(frame_after("x=$((1 + (2 * 3))) "), Frame::Bare { substitution: false, depth: 0 });
        assert_eq!(frame_after("echo `ls "), Frame::Backtick);
        assert_eq!(frame_after("( cd /tmp "), Frame::Bare { substitution: false, depth: 1 });
    }
}
