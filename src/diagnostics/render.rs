//! Rendering diagnostics: miette's graphical report on a terminal, one line
//! per diagnostic otherwise (stable, used by the golden tests), JSON for tools.

use crate::diagnostics::{Diagnostic, Severity, SourceMap};
use miette::{LabeledSpan, NamedSource};
use serde::Serialize;
use std::fmt;

/// How diagnostics are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Graphical on a terminal, plain otherwise.
    Auto,
    Graphical,
    Plain,
    Json,
}

pub fn render(diags: &[Diagnostic], sources: &SourceMap, format: Format, color: bool) -> String {
    let format = match format {
        Format::Auto if color => Format::Graphical,
        Format::Auto => Format::Plain,
        f => f,
    };
    match format {
        Format::Json => serde_json::to_string_pretty(&json_items(diags, sources)).expect("diagnostics serialise") + "\n",
        Format::Plain => diags.iter().map(|d| plain(d, sources)).collect(),
        _ => {
            let handler = miette::GraphicalReportHandler::new_themed(if color {
                miette::GraphicalTheme::unicode()
            } else {
                miette::GraphicalTheme::unicode_nocolor()
            })
            .with_context_lines(1);
            let mut out = String::new();
            for d in diags {
                let report = Report::new(d, sources);
                let _ = handler.render_report(&mut out, &report);
                out.push('\n');
            }
            out
        }
    }
}

/// `file:line:col: error[nixl::E0001]: message`, then `  = help: ...` and secondary locations.
pub fn plain(d: &Diagnostic, sources: &SourceMap) -> String {
    let loc = |span: crate::diagnostics::Span| {
        let (l, c) = sources.line_col(span.file, span.start);
        format!("{}:{l}:{c}", sources.get(span.file).name)
    };
    let sev = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut s = format!("{}: {sev}[{}]: {}\n", loc(d.primary.span), d.code, d.message);
    if !d.primary.message.is_empty() {
        s += &format!("  = note: {}\n", d.primary.message);
    }
    for l in &d.secondary {
        s += &format!("  = {}: {}\n", loc(l.span), l.message);
    }
    if let Some(h) = &d.help {
        s += &format!("  = help: {h}\n");
    }
    s
}

/// Diagnostics as JSON objects, so the diagnostics of several files make one document.
pub fn json_items(diags: &[Diagnostic], sources: &SourceMap) -> Vec<serde_json::Value> {
    diags.iter().map(|d| serde_json::to_value(JsonDiag::new(d, sources)).expect("diagnostic serialises")).collect()
}

#[derive(Serialize)]
struct JsonDiag<'a> {
    code: String,
    severity: Severity,
    message: &'a str,
    file: &'a str,
    line: usize,
    column: usize,
    start: u32,
    end: u32,
    help: Option<&'a str>,
    related: Vec<JsonLabel<'a>>,
}

#[derive(Serialize)]
struct JsonLabel<'a> {
    file: &'a str,
    line: usize,
    column: usize,
    message: &'a str,
}

impl<'a> JsonDiag<'a> {
    fn new(d: &'a Diagnostic, sources: &'a SourceMap) -> Self {
        let (line, column) = sources.line_col(d.primary.span.file, d.primary.span.start);
        JsonDiag {
            code: d.code.to_string(),
            severity: d.severity,
            message: &d.message,
            file: &sources.get(d.primary.span.file).name,
            line,
            column,
            start: d.primary.span.start,
            end: d.primary.span.end,
            help: d.help.as_deref(),
            related: d
                .secondary
                .iter()
                .map(|l| {
                    let (line, column) = sources.line_col(l.span.file, l.span.start);
                    JsonLabel { file: &sources.get(l.span.file).name, line, column, message: &l.message }
                })
                .collect(),
        }
    }
}

/// Adapter from our diagnostic to miette's trait, one source file per report.
struct Report {
    message: String,
    code: String,
    severity: miette::Severity,
    help: Option<String>,
    source: NamedSource<String>,
    labels: Vec<LabeledSpan>,
    related: Vec<Report>,
}

impl Report {
    fn new(d: &Diagnostic, sources: &SourceMap) -> Report {
        let file = d.primary.span.file;
        let src = sources.get(file);
        let mut labels = vec![LabeledSpan::new_primary_with_span(
            Some(d.primary.message.clone()).filter(|m| !m.is_empty()),
            d.primary.span.range(),
        )];
        let mut related = vec![];
        for l in &d.secondary {
            if l.span.file == file {
                labels.push(LabeledSpan::new_with_span(Some(l.message.clone()), l.span.range()));
            } else {
                let other = sources.get(l.span.file);
                related.push(Report {
                    message: l.message.clone(),
                    code: String::new(),
                    severity: miette::Severity::Advice,
                    help: None,
                    source: NamedSource::new(other.name.clone(), other.text.to_string()),
                    labels: vec![LabeledSpan::new_primary_with_span(None, l.span.range())],
                    related: vec![],
                });
            }
        }
        Report {
            message: d.message.clone(),
            code: d.code.to_string(),
            severity: match d.severity {
                Severity::Error => miette::Severity::Error,
                Severity::Warning => miette::Severity::Warning,
            },
            help: d.help.clone(),
            source: NamedSource::new(src.name.clone(), src.text.to_string()),
            labels,
            related,
        }
    }
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        (!self.code.is_empty()).then(|| Box::new(&self.code) as Box<dyn fmt::Display>)
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(self.severity)
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().cloned()))
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        if self.related.is_empty() {
            None
        } else {
            Some(Box::new(self.related.iter().map(|r| r as &dyn miette::Diagnostic)))
        }
    }
}
