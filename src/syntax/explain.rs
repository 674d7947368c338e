//! Explaining syntax errors: an error node's text is parsed again strictly and
//! pest's expectations are put in words ("expected `=` after `name`", "`é`
//! cannot be part of a name"). Moved unchanged from `parser.rs`.

use super::parser::{NixlParser, Rule};
use crate::diagnostics::{Code, Diagnostic, FileId, Span};
use pest::Parser;

/// Serialises strict re-parses: pest's error detail is a process-wide switch, and it is
/// only worth its cost when explaining an error.
static DETAIL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn strict_parse(rule: Rule, text: &str) -> Result<(), pest::error::Error<Rule>> {
    let _guard = DETAIL.lock().unwrap_or_else(|e| e.into_inner());
    pest::set_error_detail(true);
    let r = NixlParser::parse(rule, text).map(|_| ());
    pest::set_error_detail(false);
    r
}

/// Explains an error node by parsing its text strictly and naming what was expected.
pub(super) fn explain_error_node(file: FileId, span: Span, text: &str, top: bool) -> Diagnostic {
    let rule = if top { Rule::strict_item } else { Rule::strict_stmt };
    let err = match strict_parse(rule, text) {
        Err(e) => e,
        Ok(_) => {
            // It parses as a statement, just not here.
            let first = text.split_whitespace().next().unwrap_or("");
            let msg = if top {
                format!("`{first}` cannot stand at the top level of a file")
            } else {
                format!("`{first}` is not allowed inside a block")
            };
            let help = if top {
                "only `import`, `let` and blocks such as `stack`, `setup` and `experiment` stand at the top level; move this into a block"
            } else {
                "`import` is only allowed at the top level of a file"
            };
            return Diagnostic::error(Code::Syntax, span, msg).help(help);
        }
    };
    // `name value` is almost always a forgotten `=`: say so when adding it would parse.
    if let Some(name_end) = missing_equals(text, rule) {
        let at = Span::new(file, span.start as usize + name_end, span.start as usize + name_end);
        let name = text[..name_end].trim();
        return Diagnostic::error(Code::Syntax, at, format!("expected `=` after `{name}`"))
            .with(span, "this statement was skipped")
            .help(format!("write `{name} = value`"));
    }
    let (offset, msg) = describe_error(&err, text);
    let start = span.start as usize + offset;
    let at = Span::new(file, start, (start + next_char_len(text, offset)).max(start));
    let first_word = text.split_whitespace().next().unwrap_or("");
    let help = if top
        && !matches!(first_word, "let" | "import")
        && text.trim_start().starts_with(|c: char| c.is_alphabetic())
        && text.contains('=')
        && !text.contains('{')
    {
        "attributes belong inside a block; at the top level use `let name = value`".to_string()
    } else {
        "each statement is `name = value`, `kind \"label\" { ... }`, or a `let`, `set`, `factor`, `prune` or `when` statement"
            .to_string()
    };
    Diagnostic::error(Code::Syntax, at, msg).with(span, "this statement was skipped").help(help)
}

/// The end of the leading name if `text` parses once `=` follows that name.
fn missing_equals(text: &str, rule: Rule) -> Option<usize> {
    let trimmed = text.trim_start();
    let lead = text.len() - trimmed.len();
    let name_len = trimmed.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
    if name_len == 0 {
        return None;
    }
    let rest = &trimmed[name_len..];
    if rest.trim_start().starts_with('=') || rest.trim_start().starts_with('{') {
        return None;
    }
    let fixed = format!("{} = {}", &trimmed[..name_len], rest.trim_start());
    let ok = NixlParser::parse(Rule::strict_stmt, &fixed).is_ok()
        || (rule == Rule::strict_item && NixlParser::parse(Rule::strict_item, &format!("let {fixed}")).is_ok());
    ok.then_some(lead + name_len)
}

fn next_char_len(text: &str, offset: usize) -> usize {
    text[offset.min(text.len())..].chars().next().map(|c| if c == '\n' { 0 } else { c.len_utf8() }).unwrap_or(0)
}

/// Turns a pest error into an offset and a message that names expected tokens in words.
pub(super) fn describe_error(e: &pest::error::Error<Rule>, text: &str) -> (usize, String) {
    let offset = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    if let pest::error::ErrorVariant::CustomError { message } = &e.variant {
        return (offset, format!("the parser gave up: {message}"));
    }
    if let Some(msg) = non_ascii_name(text, offset) {
        return (offset, msg);
    }
    let mut words: Vec<String> = vec![];
    let mut add = |w: String| {
        if !words.contains(&w) {
            words.push(w);
        }
    };
    if let pest::error::ErrorVariant::ParsingError { positives, .. } = &e.variant {
        for r in positives {
            if let Some(w) = rule_word(*r) {
                add(w.to_string());
            }
        }
    }
    if let Some(attempts) = e.parse_attempts() {
        for t in attempts.expected_tokens() {
            if let Some(w) = token_word(&t.to_string()) {
                add(w);
            }
        }
    }
    let found = match text[offset.min(text.len())..].chars().next() {
        None | Some('\n') | Some('\r') => "end of line".to_string(),
        Some(c) => format!(
            "`{}`",
            text[offset..]
                .split(|x: char| x.is_whitespace())
                .next()
                .map(|s| s.chars().take(20).collect::<String>())
                .unwrap_or_else(|| c.to_string())
        ),
    };
    words.sort_by_key(|w| word_rank(w));
    let msg = match words.len() {
        0 => format!("unexpected {found}"),
        1 => format!("expected {}, found {found}", words[0]),
        n => {
            let shown: Vec<&String> = words.iter().take(6).collect();
            let (last, head) = shown.split_last().expect("non-empty");
            let head: Vec<&str> = head.iter().map(|s| s.as_str()).collect();
            let more = if n > 6 { ", ..." } else { "" };
            format!("expected {} or {}{more}, found {found}", head.join(", "), last)
        }
    };
    (offset, msg)
}

/// A letter outside ASCII where the parser stopped, usually inside a name: say what names allow.
fn non_ascii_name(text: &str, offset: usize) -> Option<String> {
    let c = text.get(offset..)?.chars().next()?;
    if c.is_ascii() || !(c.is_alphanumeric() || c == '\u{2019}') {
        return None;
    }
    let start = text[..offset].trim_end_matches(|c: char| c.is_alphanumeric() || c == '_').len();
    let word: String = text[start..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    Some(format!(
        "`{c}` cannot be part of a name (in `{word}`): names use ASCII letters, digits and `_`, and start with a letter or `_`; \
         other characters are allowed only inside strings"
    ))
}

fn word_rank(w: &str) -> u8 {
    if w.starts_with('`') {
        0
    } else {
        1
    }
}

fn rule_word(r: Rule) -> Option<&'static str> {
    Some(match r {
        Rule::eq => "`=`",
        Rule::lbrace | Rule::body | Rule::record => "`{`",
        Rule::rbrace => "`}`",
        Rule::rbracket => "`]`",
        Rule::rparen => "`)`",
        Rule::colon => "`:`",
        Rule::qmark => "`?`",
        Rule::comma => "`,`",
        Rule::kw_because => "`because`",
        Rule::kw_then => "`then`",
        Rule::kw_run => "`run`",
        Rule::kw_extends => "`extends`",
        Rule::kw_in => "`in`",
        Rule::ident => "a name",
        Rule::string | Rule::label | Rule::raw_string => "a string",
        Rule::expr | Rule::binary | Rule::unary | Rule::postfixed | Rule::quantity | Rule::number | Rule::list | Rule::paren => {
            "an expression"
        }
        Rule::EOI => "end of line",
        _ => return None,
    })
}

fn token_word(t: &str) -> Option<String> {
    match t {
        "=" | "{" | "}" | "]" | ")" | ":" | "?" | "," | "[" | "(" | "because" | "then" | "run" | "extends" | "in" => {
            Some(format!("`{t}`"))
        }
        _ => None,
    }
}
