//! One checked document: the pipeline's output (the same `pipeline::load_text`
//! as `nixl check`), its symbol index, and the file-to-URI mapping.

use super::convert::{self, LineIndex, Positions};
use super::docs::{self, normalize};
use super::index::Index;
use crate::check::imports::Loader;
use crate::design::Design;
use crate::diagnostics::{FileId, Span};
use crate::pipeline::{self, Loaded};
use crate::syntax::ast;
use lsp_types::{Location, Url};
use std::path::PathBuf;

pub struct Analysis {
    pub uri: Url,
    pub name: String,
    pub version: i32,
    pub loaded: Loaded,
    pub index: Index,
    /// The document's own file in the source map.
    pub file: FileId,
    pub lines: LineIndex,
}

impl Analysis {
    pub fn run(uri: &Url, text: &str, version: i32, loader: &dyn Loader) -> Analysis {
        let name = docs::name_of(uri);
        let loaded = pipeline::load_text(&name, text, loader);
        let index = Index::build(&loaded.check.files);
        let file = loaded.check.sources.find(&name).unwrap_or(0);
        Analysis { uri: uri.clone(), name, version, loaded, index, file, lines: LineIndex::new(text) }
    }

    pub fn uri_of(&self, file: FileId) -> Option<Url> {
        if file as usize >= self.loaded.check.sources.files().count() {
            return None;
        }
        docs::uri_of_name(&self.loaded.check.sources.get(file).name, &self.uri, &self.name)
    }

    /// Every file this document read, as paths, to find the importers of a changed file.
    pub fn depends_on(&self, path: &std::path::Path) -> bool {
        let path = normalize(path);
        self.loaded.check.sources.files().any(|(id, f)| id != self.file && normalize(&PathBuf::from(&f.name)) == path)
    }

    /// The document's diagnostics in LSP terms. Errors located in an imported file are
    /// shown there by that file's own analysis; here they are summarised on the import.
    pub fn diagnostics(&self) -> Vec<lsp_types::Diagnostic> {
        let sources = &self.loaded.check.sources;
        let mut pos = Positions::new(sources);
        let uri_of = |f: FileId| self.uri_of(f);
        let mut out: Vec<lsp_types::Diagnostic> = self
            .loaded
            .check
            .diagnostics
            .iter()
            .filter(|d| d.primary.span.file == self.file)
            .map(|d| convert::diagnostic(d, &mut pos, &uri_of))
            .collect();
        // The other places of a diagnostic in this file (the first of two definitions) are
        // underlined too, as hints pointing back, since not every editor shows related locations.
        for d in self.loaded.check.diagnostics.iter().filter(|d| d.primary.span.file == self.file) {
            for l in d.secondary.iter().filter(|l| l.span.file == self.file && !l.message.is_empty()) {
                let primary = Location::new(self.uri.clone(), pos.range(d.primary.span));
                out.push(lsp_types::Diagnostic {
                    range: pos.range(l.span),
                    severity: Some(lsp_types::DiagnosticSeverity::HINT),
                    code: Some(lsp_types::NumberOrString::String(d.code.to_string())),
                    source: Some("nixl".into()),
                    message: format!("{}: {}", l.message, d.message),
                    related_information: Some(vec![lsp_types::DiagnosticRelatedInformation {
                        location: primary,
                        message: d.message.clone(),
                    }]),
                    ..Default::default()
                });
            }
        }
        // An imported file with errors: one diagnostic on the import statement, linking there.
        for (import, target) in self.imports() {
            let errors: Vec<_> = self
                .loaded
                .check
                .diagnostics
                .iter()
                .filter(|d| d.is_error() && d.primary.span.file == target && target != self.file)
                .collect();
            if let Some(first) = errors.first() {
                let mut d = convert::diagnostic(first, &mut pos, &uri_of);
                // The fix belongs to the imported file's text, not to this import line.
                d.data = None;
                d.related_information = self.uri_of(target).map(|uri| {
                    vec![lsp_types::DiagnosticRelatedInformation {
                        location: Location::new(uri, pos.range(first.primary.span)),
                        message: first.message.clone(),
                    }]
                });
                d.range = self.lines.range(import.start as usize, import.end as usize);
                d.message = format!("`{}` has {} error(s); the first: {}", sources.get(target).name, errors.len(), d.message);
                out.push(d);
            }
        }
        out
    }

    /// Import statements of the document with the file each loaded.
    pub fn imports(&self) -> Vec<(Span, FileId)> {
        let sources = &self.loaded.check.sources;
        let dir = std::path::Path::new(&self.name).parent().map(|p| p.to_path_buf()).unwrap_or_default();
        let mut out = vec![];
        for s in &self.ast().items {
            if let ast::StmtKind::Import(t) = &s.kind {
                let key = if t.value.starts_with("std/") {
                    t.value.trim_end_matches(".nixl").to_string()
                } else {
                    normalize(&dir.join(&t.value)).to_string_lossy().to_string()
                };
                let found =
                    sources.files().find(|(_, f)| f.name == key || normalize(&PathBuf::from(&f.name)).to_string_lossy() == key);
                if let Some((id, _)) = found {
                    out.push((t.span, id));
                }
            }
        }
        out
    }

    /// The document's syntax tree (empty when the file did not scan).
    pub fn ast(&self) -> &ast::File {
        static EMPTY: std::sync::OnceLock<ast::File> = std::sync::OnceLock::new();
        self.loaded
            .check
            .files
            .iter()
            .find(|(id, _)| *id == self.file)
            .map(|(_, f)| f)
            .unwrap_or_else(|| EMPTY.get_or_init(|| ast::File { items: vec![], comments: vec![], span: Span::default() }))
    }

    pub fn location(&self, span: Span) -> Option<Location> {
        let uri = self.uri_of(span.file)?;
        let range = if span.file == self.file {
            self.lines.range(span.start as usize, span.end as usize)
        } else {
            LineIndex::new(self.loaded.check.sources.get(span.file).text.clone()).range(span.start as usize, span.end as usize)
        };
        Some(Location::new(uri, range))
    }

    /// The expanded design of an experiment, when it expanded without errors.
    pub fn design(&self, experiment: &str) -> Option<&Design> {
        self.campaign(experiment).map(|c| &c.design)
    }

    /// The resolved campaign of an experiment, when it resolved without errors.
    pub fn campaign(&self, experiment: &str) -> Option<&crate::design::Campaign> {
        self.loaded.campaigns.iter().find(|c| c.name() == experiment)
    }
}
