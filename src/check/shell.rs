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
//! it. Where the shell would read any quoting of its own (a here-document's body, inside
//! `${...}`), a value that is not safe as it is refused (E0606) instead of guessed at.

mod lexer;

use super::value::{Eval, Value};
use crate::diagnostics::{Code, Diagnostic};
use crate::syntax::ast::{Expr, ExprKind, StrPart};
use lexer::{Frame, Lexer};

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
                let refused = |place: &str| {
                    Box::new(
                        Diagnostic::error(Code::Render, x.span, format!("this value cannot be quoted safely inside {place}"))
                            .label("holds characters the shell would read there")
                            .help("set a variable before it (`V={...}` on a line of its own) and use `\"$V\"` there"),
                    )
                };
                match self.eval.eval(x)? {
                    Value::Shell(s) => out.shell(&s),
                    Value::List(items) => {
                        let words = items.iter().map(|v| out.quoted(&v.interpolated())).collect::<Result<Vec<_>, _>>();
                        out.text.push_str(&words.map_err(refused)?.join(" "));
                    }
                    v => {
                        let q = out.quoted(&v.interpolated()).map_err(refused)?;
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
    /// Ranges of `text` that are shell the lexer has not read yet. It reads them only when a
    /// value needs quoting: most values are safe as they are, and most scripts are then
    /// never lexed (`nixl check` renders every pattern's commands).
    unread: Vec<(usize, usize)>,
}

impl Script {
    /// Appends shell text (the template's own).
    fn shell(&mut self, t: &str) {
        let start = self.text.len();
        self.text.push_str(t);
        self.unread.push((start, self.text.len()));
    }

    /// Where the script stands after all the shell text so far (values are not shell).
    fn top(&mut self) -> &Frame {
        for (s, e) in self.unread.drain(..) {
            self.lexer.feed(&self.text[s..e]);
        }
        self.lexer.top()
    }

    /// A value quoted for the place the script has reached. Outside quotes it is
    /// [`shell_quote`]d; inside quotes the quotes are closed around it and opened again
    /// (`'a '"'"'...` reads as one word), so the value is always single-quoted data. In a comment
    /// its newlines are written `\n`, so the comment stays one line. A here-document's body and
    /// `${...}` have no quoting that is safe for every value: there, only a safe value goes (Err
    /// says where it stands).
    fn quoted(&mut self, value: &str) -> Result<String, &'static str> {
        let q = shell_quote(value);
        if q == value {
            return Ok(q);
        }
        match self.top() {
            Frame::Bare { .. } | Frame::Backtick => Ok(q),
            Frame::Single => Ok(format!("'{q}'")),
            Frame::Double => Ok(format!("\"{q}\"")),
            Frame::AnsiC => Ok(format!("'{q}$'")),
            Frame::Comment => Ok(q.replace('\n', "\\n")),
            Frame::HereDoc { .. } => Err("a here-document's body"),
            Frame::Param { .. } => Err("a `${...}` expansion"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// `template` (a nixl string literal) rendered with `v` bound to `value`.
    fn render(template: &str, value: &str) -> R<String> {
        let (file, diags) = crate::syntax::parse(0, &format!("let t = {template}\n"));
        assert!(diags.is_empty(), "{diags:?}");
        let crate::syntax::ast::StmtKind::Let(_, e) = &file.items[0].kind else { panic!("a let") };
        let scope: BTreeMap<String, Value> = [("v".to_string(), Value::Str(value.into()))].into();
        let eval = Eval { scope: &scope, kv_bytes_per_token: None };
        Renderer { eval: &eval }.script(e)
    }

    fn bash(script: &str) -> String {
        let out = std::process::Command::new("bash").arg("-c").arg(script).output().unwrap();
        assert!(out.status.success(), "{script}\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn a_value_arrives_whole_in_ansi_c_quotes_and_stays_in_its_comment() {
        let hostile = "a'b\n$(echo INJECTED)";
        assert_eq!(bash(&render("\"printf '%s' $'x{v}y'\"", hostile).unwrap()), format!("x{hostile}y"));
        let commented = render("\"echo kept # about {v}\"", hostile).unwrap();
        assert_eq!(commented.lines().count(), 1, "{commented}");
        assert_eq!(bash(&commented), "kept\n");
    }

    #[test]
    fn a_here_document_or_parameter_expansion_takes_only_a_safe_value() {
        let doc = r#""cat <<EOF\nport={v}\nEOF""#;
        assert_eq!(bash(&render(doc, "8100").unwrap()), "port=8100\n");
        let refused = render(doc, "$(echo INJECTED)").unwrap_err();
        assert_eq!(refused.code, Code::Render);
        assert!(refused.message.contains("a here-document's body"), "{}", refused.message);
        let param = r#""echo \"$\{X:-{v}\}\"""#;
        assert_eq!(bash(&render(param, "safe").unwrap()), "safe\n");
        assert!(render(param, "a b").unwrap_err().message.contains("`${...}`"));
        // After the document, the command line again.
        let after = r#""cat <<'EOF'\nit's\nEOF\nprintf '%s' {v}""#;
        assert_eq!(bash(&render(after, "a b").unwrap()), "it's\na b");
    }

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(shell_quote("0.16.0"), "0.16.0");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
