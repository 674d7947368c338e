//! Positions and diagnostics in LSP terms.
//!
//! nixl spans are byte offsets; LSP positions are (line, UTF-16 code unit).
//! Everything that crosses the boundary goes through [`LineIndex`], and every
//! diagnostic through [`diagnostic`], the one converter (as Gleam and Nickel do).

use crate::diagnostics::{Diagnostic, FileId, Severity, SourceMap, Span};
use lsp_types::{self as lsp, DiagnosticRelatedInformation, Location, NumberOrString, Position, Range, Url};
use std::collections::HashMap;
use std::sync::Arc;

/// Line starts of one text, for offset <-> position conversion in both directions.
pub struct LineIndex {
    text: Arc<str>,
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: impl Into<Arc<str>>) -> LineIndex {
        let text = text.into();
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    /// The position of a byte offset; offsets past the end or inside a character are clamped.
    pub fn position(&self, offset: usize) -> Position {
        let offset = crate::diagnostics::floor_char_boundary(&self.text, offset.min(self.text.len()));
        let line = self.starts.partition_point(|s| *s <= offset) - 1;
        let col: usize = self.text[self.starts[line]..offset].chars().map(char::len_utf16).sum();
        Position::new(line as u32, col as u32)
    }

    /// The byte offset of a position; a line past the end gives the end of the text and a
    /// character past the end of its line gives the end of the line (as the spec asks).
    pub fn offset(&self, pos: Position) -> usize {
        let Some(&start) = self.starts.get(pos.line as usize) else {
            return self.text.len();
        };
        let end = self.starts.get(pos.line as usize + 1).map(|e| e - 1).unwrap_or(self.text.len());
        let line = self.text[start..end].trim_end_matches('\r');
        let mut units = 0u32;
        for (i, c) in line.char_indices() {
            if units >= pos.character {
                return start + i;
            }
            units += c.len_utf16() as u32;
        }
        start + line.len()
    }

    pub fn range(&self, start: usize, end: usize) -> Range {
        Range::new(self.position(start), self.position(end))
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Line indexes of the files of one analysis, built on first use.
pub struct Positions<'a> {
    sources: &'a SourceMap,
    cache: HashMap<FileId, LineIndex>,
}

impl<'a> Positions<'a> {
    pub fn new(sources: &'a SourceMap) -> Positions<'a> {
        Positions { sources, cache: HashMap::new() }
    }
    pub fn range(&mut self, span: Span) -> Range {
        let sources = self.sources;
        let idx = self.cache.entry(span.file).or_insert_with(|| LineIndex::new(sources.get(span.file).text.clone()));
        idx.range(span.start as usize, span.end as usize)
    }
}

/// One nixl diagnostic as an LSP diagnostic: code, severity, help appended to the
/// message, and every secondary label (the other definition of a duplicate) as related
/// information. `uri_of` maps a file of the source map to its URI.
pub fn diagnostic(d: &Diagnostic, pos: &mut Positions, uri_of: &dyn Fn(FileId) -> Option<Url>) -> lsp::Diagnostic {
    let mut message = d.message.clone();
    if !d.primary.message.is_empty() {
        message.push_str(&format!(" ({})", d.primary.message));
    }
    if let Some(h) = &d.help {
        message.push_str("\nhelp: ");
        message.push_str(h);
    }
    let related: Vec<DiagnosticRelatedInformation> = d
        .secondary
        .iter()
        .filter_map(|l| {
            let uri = uri_of(l.span.file)?;
            Some(DiagnosticRelatedInformation {
                location: Location::new(uri, pos.range(l.span)),
                message: if l.message.is_empty() { "here".to_string() } else { l.message.clone() },
            })
        })
        .collect();
    lsp::Diagnostic {
        range: pos.range(d.primary.span),
        severity: Some(match d.severity {
            Severity::Error => lsp::DiagnosticSeverity::ERROR,
            Severity::Warning => lsp::DiagnosticSeverity::WARNING,
        }),
        code: Some(NumberOrString::String(d.code.to_string())),
        code_description: None,
        source: Some("nixl".to_string()),
        message,
        related_information: if related.is_empty() { None } else { Some(related) },
        tags: None,
        data: suggestion(d).map(|s| serde_json::json!({ "replace": s })),
    }
}

/// The replacement a diagnostic proposes, for the quick fix.
pub fn suggestion(d: &Diagnostic) -> Option<String> {
    d.suggestion.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_round_trip() {
        // "é" is 2 bytes and 1 UTF-16 unit; "𝄞" is 4 bytes and 2 units.
        let idx = LineIndex::new("ab\né𝄞x\r\nlast");
        assert_eq!(idx.position(0), Position::new(0, 0));
        assert_eq!(idx.position(3), Position::new(1, 0));
        assert_eq!(idx.position(5), Position::new(1, 1));
        assert_eq!(idx.position(9), Position::new(1, 3));
        assert_eq!(idx.offset(Position::new(1, 3)), 9);
        assert_eq!(idx.offset(Position::new(1, 99)), 10);
        assert_eq!(idx.offset(Position::new(2, 2)), 14);
        assert_eq!(idx.offset(Position::new(7, 0)), idx.text().len());
        // Inside a character: clamped to its start.
        assert_eq!(idx.position(6), Position::new(1, 1));
    }
}
