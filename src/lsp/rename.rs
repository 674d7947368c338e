//! Rename and document highlight, both read from the symbol index: every
//! occurrence of the symbol under the cursor (factors, `let`s, layers, patterns,
//! definitions such as templates), in the document, the files it imports, and
//! every open document that imports them (their analyses use the same keys).

use super::analysis::Analysis;
use lsp_types::{DocumentHighlight, DocumentHighlightKind, TextEdit, Url, WorkspaceEdit};
use std::collections::{BTreeSet, HashMap};

/// The edits renaming the symbol under the cursor to `new_name`; Err says why not.
pub fn rename<'a>(
    a: &'a Analysis,
    offset: u32,
    new_name: &str,
    others: impl Iterator<Item = &'a Analysis>,
) -> Result<WorkspaceEdit, String> {
    let o = a.index.at(a.file, offset).ok_or("nothing to rename here")?;
    let key = o.key.clone();
    // String-labelled things (layers, patterns, instances...) are renamed inside their quotes.
    let quoted = !key.starts_with("g:") && !key.starts_with("e:") && !key.starts_with("l:") && !key.starts_with("s:");
    if quoted {
        if new_name.is_empty() || new_name.contains(['"', '{', '}', '\\', '\n']) {
            return Err(format!("`{new_name}` cannot be a label: no quotes, braces, backslashes or newlines"));
        }
    } else if !is_name(new_name) {
        return Err(format!(
            "`{new_name}` is not a name: ASCII letters, digits and `_`, starting with a letter or `_`, and not a keyword"
        ));
    }
    let mut seen: BTreeSet<(String, u32, u32, u32, u32)> = BTreeSet::new();
    let mut changes: HashMap<Url, Vec<TextEdit>> = HashMap::new();
    for an in std::iter::once(a).chain(others) {
        for occ in an.index.all(&key) {
            let Some(loc) = an.location(occ.span) else { continue };
            let r = loc.range;
            if !seen.insert((loc.uri.to_string(), r.start.line, r.start.character, r.end.line, r.end.character)) {
                continue;
            }
            let text = &an.loaded.check.sources.get(occ.span.file).text;
            let old = text.get(occ.span.range()).unwrap_or("");
            // Standard-library definitions are read-only copies: refuse rather than edit them.
            if an.loaded.check.sources.get(occ.span.file).name.starts_with("std/") {
                return Err("this name is defined in the standard library, which cannot be renamed".into());
            }
            let new_text = if old.starts_with('"') { format!("\"{new_name}\"") } else { new_name.to_string() };
            changes.entry(loc.uri).or_default().push(TextEdit::new(r, new_text));
        }
    }
    Ok(WorkspaceEdit { changes: Some(changes), ..Default::default() })
}

fn is_name(s: &str) -> bool {
    const KEYWORDS: [&str; 16] = [
        "import", "let", "set", "factor", "prune", "because", "when", "then", "extends", "in", "and", "or", "not", "true",
        "false", "none",
    ];
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&s)
}

/// Every occurrence of the symbol under the cursor in this document: the definition
/// as a write, uses as reads.
pub fn highlight(a: &Analysis, offset: u32) -> Vec<DocumentHighlight> {
    let Some(o) = a.index.at(a.file, offset) else { return vec![] };
    a.index
        .all(&o.key)
        .filter(|x| x.span.file == a.file)
        .map(|x| DocumentHighlight {
            range: a.lines.range(x.span.start as usize, x.span.end as usize),
            kind: Some(if x.def { DocumentHighlightKind::WRITE } else { DocumentHighlightKind::READ }),
        })
        .collect()
}
