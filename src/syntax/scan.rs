//! A lexical pre-scan before pest: delimiter balance, nesting depth and the
//! comments the formatter needs. It knows strings and comments, nothing more.
//! Running it first means unbalanced input gets one precise diagnostic and
//! hostile nesting never reaches the recursive parser.

use super::ast::Comment;
use crate::diagnostics::{Code, Diagnostic, FileId, Span};

/// Brackets, braces and parentheses nested deeper than this are refused.
pub const MAX_NESTING: usize = 64;
/// Conditionals (`? :`) in one statement: each nests the parser one level deeper,
/// so a long chain is refused here, the same way whatever the build and the stack.
pub const MAX_CONDITIONALS: usize = 100;

#[derive(PartialEq)]
enum Mode {
    Code,
    Str,
    RawShort,
    RawLong,
}

struct Open {
    ch: u8,
    at: usize,
    /// A `{` that opened an interpolation inside a string.
    interp: bool,
}

pub struct Scan {
    pub comments: Vec<Comment>,
    pub diags: Vec<Diagnostic>,
}

pub fn scan(file: FileId, text: &str) -> Scan {
    let b = text.as_bytes();
    let sp = |s: usize, e: usize| Span::new(file, s, e);
    let mut comments = vec![];
    let mut stack: Vec<Open> = vec![];
    let mut mode = Mode::Code;
    let mut mode_start = 0;
    let mut line_has_code = false;
    let mut conditionals = 0;
    let mut i = 0;
    let fail = |d: Diagnostic, comments: Vec<Comment>| Scan { comments, diags: vec![d] };
    while i < b.len() {
        let c = b[i];
        match mode {
            Mode::Code => match c {
                b'#' => {
                    let end = text[i..].find('\n').map(|n| i + n).unwrap_or(b.len());
                    let body = text[i..end].trim_end_matches('\r');
                    comments.push(Comment { text: body.to_string(), span: sp(i, i + body.len()), trailing: line_has_code });
                    i = end;
                    continue;
                }
                b'\n' => {
                    line_has_code = false;
                    // A statement ends at a newline outside lists and calls.
                    if stack.last().is_none_or(|o| o.ch == b'{') {
                        conditionals = 0;
                    }
                }
                b'?' => {
                    line_has_code = true;
                    conditionals += 1;
                    if conditionals > MAX_CONDITIONALS {
                        let d = Diagnostic::error(
                            Code::Limit,
                            sp(i, i + 1),
                            format!("more than {MAX_CONDITIONALS} conditionals (`? :`) in one statement"),
                        )
                        .help("split the chain with `let`, or look the value up in a record");
                        return fail(d, comments);
                    }
                }
                b'"' => {
                    mode = Mode::Str;
                    mode_start = i;
                    line_has_code = true;
                }
                b'\'' => {
                    line_has_code = true;
                    mode_start = i;
                    if b[i..].starts_with(b"'''") {
                        mode = Mode::RawLong;
                        i += 3;
                        continue;
                    }
                    mode = Mode::RawShort;
                }
                b'{' | b'[' | b'(' => {
                    line_has_code = true;
                    if stack.len() >= MAX_NESTING {
                        let d = Diagnostic::error(Code::Limit, sp(i, i + 1), format!("nesting deeper than {MAX_NESTING} levels"))
                            .help("flatten the structure, or name inner parts with `let`");
                        return fail(d, comments);
                    }
                    stack.push(Open { ch: c, at: i, interp: false });
                }
                b'}' | b']' | b')' => {
                    line_has_code = true;
                    let want = match c {
                        b'}' => b'{',
                        b']' => b'[',
                        _ => b'(',
                    };
                    match stack.pop() {
                        None => {
                            let d =
                                Diagnostic::error(Code::Delimiter, sp(i, i + 1), format!("unexpected closing `{}`", c as char))
                                    .label("nothing is open here")
                                    .help("remove it, or add the opening delimiter it closes");
                            return fail(d, comments);
                        }
                        Some(o) if o.ch != want => {
                            let d = Diagnostic::error(
                                Code::Delimiter,
                                sp(i, i + 1),
                                format!("mismatched closing `{}`: `{}` is still open", c as char, o.ch as char),
                            )
                            .with(sp(o.at, o.at + 1), "opened here")
                            .help(format!("close `{}` with `{}` first", o.ch as char, closer(o.ch)));
                            return fail(d, comments);
                        }
                        Some(o) => {
                            if o.interp {
                                mode = Mode::Str;
                            }
                        }
                    }
                }
                b' ' | b'\t' | b'\r' => {}
                _ => line_has_code = true,
            },
            Mode::Str => match c {
                b'\\' => {
                    i += 2;
                    continue;
                }
                b'"' => mode = Mode::Code,
                b'\n' => {
                    let d = Diagnostic::error(Code::Literal, sp(mode_start, i), "unterminated string")
                        .help("close the string with `\"` on the same line; use '''...''' for text over several lines");
                    return fail(d, comments);
                }
                b'{' => {
                    if stack.len() >= MAX_NESTING {
                        let d = Diagnostic::error(Code::Limit, sp(i, i + 1), format!("nesting deeper than {MAX_NESTING} levels"));
                        return fail(d, comments);
                    }
                    stack.push(Open { ch: b'{', at: i, interp: true });
                    mode = Mode::Code;
                }
                _ => {}
            },
            Mode::RawShort => match c {
                b'\'' => mode = Mode::Code,
                b'\n' => {
                    let d = Diagnostic::error(Code::Literal, sp(mode_start, i), "unterminated string")
                        .help("close the string with `'` on the same line; use '''...''' for text over several lines");
                    return fail(d, comments);
                }
                _ => {}
            },
            Mode::RawLong => {
                if b[i..].starts_with(b"'''") {
                    mode = Mode::Code;
                    i += 3;
                    continue;
                }
            }
        }
        i += 1;
    }
    if mode != Mode::Code {
        let d = Diagnostic::error(Code::Literal, sp(mode_start, b.len()), "unterminated string")
            .help("close the string before the end of the file");
        return fail(d, comments);
    }
    if let Some(o) = stack.last() {
        let d = Diagnostic::error(Code::Delimiter, sp(o.at, o.at + 1), format!("unclosed `{}`", o.ch as char))
            .label("opened here and never closed")
            .help(format!("add `{}` where the {} ends", closer(o.ch), if o.ch == b'{' { "block" } else { "list" }));
        return fail(d, comments);
    }
    Scan { comments, diags: vec![] }
}

fn closer(c: u8) -> char {
    match c {
        b'{' => '}',
        b'[' => ']',
        _ => ')',
    }
}

/// A line that can only begin a new top-level item: `import "`, `let x`, or a
/// block header `kind label`/`kind {`. Keywords cannot continue an expression.
/// The language server cuts files into chunks here, and the parser resumes
/// here after a block that was never closed.
pub fn starts_item(line: &str) -> bool {
    if line.starts_with("import ") || line.starts_with("let ") {
        return true;
    }
    let word = line.bytes().take_while(|c| c.is_ascii_alphanumeric() || *c == b'_').count();
    if word == 0 || line.as_bytes()[0].is_ascii_digit() || !line[word..].starts_with(' ') {
        return false;
    }
    let rest = line[word..].trim_start_matches(' ');
    rest.starts_with('"') || rest.starts_with('{') || rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
}

/// Where parsing can resume after a delimiter error: every line that starts at
/// column 0 with a top-level item, whatever the nesting before it (an unclosed
/// block is the usual reason to be here). Lines inside a `'''` string are skipped.
/// Returns the chunk ranges covering the text.
pub fn resync_chunks(text: &str) -> Vec<(usize, usize)> {
    let mut starts = vec![0];
    let mut in_long = false;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if !in_long && at > 0 && starts_item(line) {
            starts.push(at);
        }
        // A line with an odd number of `'''` opens or closes a long string.
        if line.matches("'''").count() % 2 == 1 {
            in_long = !in_long;
        }
        at += line.len();
    }
    starts.push(text.len());
    starts.windows(2).map(|w| (w[0], w[1])).filter(|(s, e)| s < e).collect()
}
