//! Open documents: their text, kept up to date by incremental changes, and the
//! loader that lets imports see unsaved buffers before the disk.

use super::convert::LineIndex;
use super::reparse::ParseCache;
use crate::check::imports::{Loader, STDLIB};
use crate::diagnostics::{Diagnostic, FileId};
use crate::syntax::ast;
use lsp_types::{TextDocumentContentChangeEvent, Url};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub struct Document {
    pub text: String,
    pub version: i32,
}

#[derive(Default)]
pub struct Documents {
    docs: HashMap<Url, Document>,
}

impl Documents {
    pub fn open(&mut self, uri: Url, text: String, version: i32) {
        self.docs.insert(uri, Document { text, version });
    }
    pub fn close(&mut self, uri: &Url) {
        self.docs.remove(uri);
    }
    pub fn get(&self, uri: &Url) -> Option<&Document> {
        self.docs.get(uri)
    }
    pub fn uris(&self) -> impl Iterator<Item = &Url> {
        self.docs.keys()
    }

    /// Applies changes in order; a change without a range replaces the whole text.
    pub fn change(&mut self, uri: &Url, version: i32, changes: Vec<TextDocumentContentChangeEvent>) -> bool {
        let Some(doc) = self.docs.get_mut(uri) else {
            return false;
        };
        for c in changes {
            apply_change(&mut doc.text, c);
        }
        doc.version = version;
        true
    }

    /// The open buffer at a file path, if any.
    fn text_at(&self, path: &Path) -> Option<&str> {
        let path = normalize(path);
        self.docs
            .iter()
            .find(|(u, _)| u.to_file_path().ok().map(|p| normalize(&p)).as_ref() == Some(&path))
            .map(|(_, d)| d.text.as_str())
    }
}

/// One incremental edit. Positions are clamped, so a confused client cannot make us panic.
pub fn apply_change(text: &mut String, c: TextDocumentContentChangeEvent) {
    match c.range {
        None => *text = c.text,
        Some(r) => {
            let idx = LineIndex::new(text.as_str());
            let start = idx.offset(r.start);
            let end = idx.offset(r.end).max(start);
            text.replace_range(start..end, &c.text);
        }
    }
}

/// `a//b/./x/../c` as `a/b/c`: the import loader's keys and editor paths compare equal.
pub fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// Reads open buffers first, then the disk: an importer sees what the editor shows.
/// Parses through the chunk cache, so an edit re-parses only what it touched.
pub struct BufferLoader<'a> {
    pub docs: &'a Documents,
    pub cache: &'a ParseCache,
}

impl Loader for BufferLoader<'_> {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        match self.docs.text_at(path) {
            Some(t) => Ok(t.as_bytes().to_vec()),
            None => std::fs::read(path),
        }
    }
    fn parse(&self, file: FileId, text: &str) -> (ast::File, Vec<Diagnostic>) {
        self.cache.parse(file, text)
    }
}

/// The name a document is checked under: its path, so relative imports resolve.
pub fn name_of(uri: &Url) -> String {
    match uri.to_file_path() {
        Ok(p) => p.to_string_lossy().to_string(),
        Err(()) => uri.to_string(),
    }
}

/// The URI of a file of the source map. Standard-library modules are written once
/// to a cache directory so that "go to definition" can open them.
pub fn uri_of_name(name: &str, entry_uri: &Url, entry_name: &str) -> Option<Url> {
    if name == entry_name {
        return Some(entry_uri.clone());
    }
    if let Some((_, text)) = STDLIB.iter().find(|(k, _)| *k == name) {
        return stdlib_path(name, text).and_then(|p| Url::from_file_path(p).ok());
    }
    let p = Path::new(name);
    let p = if p.is_absolute() { normalize(p) } else { std::env::current_dir().ok()?.join(p) };
    Url::from_file_path(p).ok()
}

/// `<tmp>/nixl-stdlib-<version>/aws.nixl`, written if missing or different.
fn stdlib_path(name: &str, text: &str) -> Option<PathBuf> {
    let dir = std::env::temp_dir().join(format!("nixl-stdlib-{}", env!("CARGO_PKG_VERSION")));
    let file = dir.join(format!("{}.nixl", name.trim_start_matches("std/")));
    if std::fs::read_to_string(&file).ok().as_deref() != Some(text) {
        // Written beside and renamed, so a concurrent reader never sees half a file.
        std::fs::create_dir_all(&dir).ok()?;
        static WRITES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".{}.{n}.{}", std::process::id(), name.trim_start_matches("std/")));
        std::fs::write(&tmp, text).ok()?;
        std::fs::rename(&tmp, &file).ok()?;
    }
    Some(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lsp_types::{Position, Range};

    #[test]
    fn incremental_edits() {
        let mut t = "stack \"s\" {\n  zones = [\"a\"]\n}\n".to_string();
        let edit = |sl, sc, el, ec, s: &str| TextDocumentContentChangeEvent {
            range: Some(Range::new(Position::new(sl, sc), Position::new(el, ec))),
            range_length: None,
            text: s.to_string(),
        };
        apply_change(&mut t, edit(1, 12, 1, 13, "b"));
        assert_eq!(t, "stack \"s\" {\n  zones = [\"b\"]\n}\n");
        apply_change(&mut t, edit(3, 0, 3, 0, "# end\n"));
        assert!(t.ends_with("}\n# end\n"));
        // Garbage ranges are clamped, never a panic.
        apply_change(&mut t, edit(9, 9, 2, 0, "x"));
        assert!(t.ends_with('x'));
    }
}
