//! Loading a file and everything it imports: relative files and the standard
//! library embedded in the binary. Cycles are reported with the whole chain.

use crate::diagnostics::{Code, Diagnostic, FileId, OrHelp, SourceMap, Span};
use crate::syntax::{self, ast};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The standard library, compiled into the binary so nixl works from any directory.
pub const STDLIB: &[(&str, &str)] = &[
    ("std/aws", include_str!("../../stdlib/aws.nixl")),
    ("std/models", include_str!("../../stdlib/models.nixl")),
    ("std/vllm", include_str!("../../stdlib/vllm.nixl")),
    ("std/tools", include_str!("../../stdlib/tools.nixl")),
];

/// The standard library's syntax trees, parsed by build.rs (bincode), by module.
const STDLIB_TREES: &[(&str, &[u8])] = &[
    ("std/aws", include_bytes!(concat!(env!("OUT_DIR"), "/std_aws.tree"))),
    ("std/models", include_bytes!(concat!(env!("OUT_DIR"), "/std_models.tree"))),
    ("std/vllm", include_bytes!(concat!(env!("OUT_DIR"), "/std_vllm.tree"))),
    ("std/tools", include_bytes!(concat!(env!("OUT_DIR"), "/std_tools.tree"))),
];

/// The tree of a standard library module, its spans in `file`: decoded, not parsed.
fn stdlib_tree(key: &str, file: FileId) -> Option<ast::File> {
    let (_, bytes) = STDLIB_TREES.iter().find(|(k, _)| *k == key)?;
    crate::diagnostics::deserialize_spans_into(file, || bincode::deserialize(bytes).ok())
}

/// Every parsed file, in dependency order (imports before importers).
pub struct Loaded {
    pub sources: SourceMap,
    pub files: Vec<(FileId, ast::File)>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Where file text comes from; tests and the language server supply their own.
pub trait Loader {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>>;
    /// Parses one loaded file. The language server overrides this to reuse the
    /// trees of unchanged parts of a file (`lsp::reparse`); the result is the same.
    fn parse(&self, file: FileId, text: &str) -> (ast::File, Vec<Diagnostic>) {
        syntax::parse(file, text)
    }
}

pub struct FsLoader;

impl Loader for FsLoader {
    /// Only regular files, and no more than the parser takes: /dev/zero, a FIFO or a
    /// growing log would otherwise be read until memory runs out or forever.
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        use std::io::{Error, ErrorKind, Read};
        // stat before open: opening a FIFO blocks until something writes to it.
        let meta = std::fs::metadata(path)?;
        if !meta.is_file() {
            return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
        }
        let file = std::fs::File::open(path)?;
        let limit = syntax::parser::MAX_FILE_BYTES as u64;
        if meta.len() > limit {
            return Err(Error::new(ErrorKind::FileTooLarge, format!("{} bytes, more than the limit of {limit}", meta.len())));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(limit + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > limit {
            return Err(Error::new(ErrorKind::FileTooLarge, format!("more than the limit of {limit} bytes")));
        }
        Ok(bytes)
    }
}

pub fn load(entry: &Path, loader: &dyn Loader) -> Loaded {
    let mut l = Loading {
        loader,
        sources: SourceMap::default(),
        files: vec![],
        diagnostics: vec![],
        done: HashMap::new(),
        stack: vec![],
        root: project_root(entry),
    };
    l.visit_path(entry, None);
    Loaded { sources: l.sources, files: l.files, diagnostics: l.diagnostics }
}

/// Loads one in-memory text as the entry (the language server's open buffer).
pub fn load_text(name: &str, text: &str, loader: &dyn Loader) -> Loaded {
    let mut l = Loading {
        loader,
        sources: SourceMap::default(),
        files: vec![],
        diagnostics: vec![],
        done: HashMap::new(),
        stack: vec![],
        root: project_root(Path::new(name)),
    };
    l.visit_text(name.to_string(), text.to_string(), Path::new(name).parent().map(Path::to_path_buf), false);
    Loaded { sources: l.sources, files: l.files, diagnostics: l.diagnostics }
}

struct Loading<'a> {
    loader: &'a dyn Loader,
    sources: SourceMap,
    files: Vec<(FileId, ast::File)>,
    diagnostics: Vec<Diagnostic>,
    /// Files finished or in progress, by canonical key.
    done: HashMap<String, FileId>,
    /// The import chain being loaded, for cycle reports.
    stack: Vec<(String, Option<Span>)>,
    /// Imports stay inside this directory (normalized): see [`project_root`].
    root: String,
}

/// The project an entry file belongs to: the nearest directory above it that holds a
/// nixl.toml, else its own directory. Imports outside it are refused, so a file cannot
/// pull in (and a diagnostic quote) files of the rest of the machine; a nixl.toml higher
/// up widens the project.
fn project_root(entry: &Path) -> String {
    let dir = entry.parent().unwrap_or(Path::new(""));
    let mut probe = Some(dir);
    while let Some(d) = probe {
        let here = if d.as_os_str().is_empty() { Path::new(".") } else { d };
        if here.join("nixl.toml").is_file() {
            return normalize(d);
        }
        probe = d.parent();
    }
    normalize(dir)
}

/// Whether a normalized path lies inside a normalized directory.
fn inside(path: &str, root: &str) -> bool {
    if root.is_empty() {
        return !path.starts_with('/') && !path.starts_with("../") && path != "..";
    }
    path.starts_with(&format!("{}/", root.trim_end_matches('/'))) || root == "/"
}

impl Loading<'_> {
    fn visit_path(&mut self, path: &Path, from: Option<Span>) {
        let key = path.to_string_lossy().to_string();
        let bytes = match self.loader.read(path) {
            Ok(b) => b,
            Err(e) => {
                let span = from.unwrap_or_default();
                let code = if e.kind() == std::io::ErrorKind::FileTooLarge { Code::Limit } else { Code::ImportNotFound };
                let d = Diagnostic::error(code, span, format!("cannot read `{key}`: {e}"));
                self.report_unreadable(d, from, &key);
                return;
            }
        };
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let text = String::from_utf8_lossy(e.as_bytes()).to_string();
                let id = self.sources.add(key.clone(), text);
                self.diagnostics.push(
                    Diagnostic::error(
                        Code::Encoding,
                        Span::new(id, at, at),
                        format!("`{key}` is not UTF-8 text (invalid byte at offset {at})"),
                    )
                    .help("nixl files are UTF-8 text; is this the right file?"),
                );
                return;
            }
        };
        self.visit_text(key, text, path.parent().map(Path::to_path_buf), false);
    }

    fn report_unreadable(&mut self, d: Diagnostic, from: Option<Span>, key: &str) {
        if from.is_none() {
            // The entry file itself: a source entry so the diagnostic can be printed.
            let id = self.sources.add(key.to_string(), String::new());
            let mut d = d;
            d.primary.span = Span::new(id, 0, 0);
            self.diagnostics.push(d);
        } else {
            self.diagnostics.push(d.help("import paths are relative to the importing file; the standard library is `std/aws`, `std/models`, `std/vllm`, `std/tools`"));
        }
    }

    /// Loads one file's text; a standard library module (`std`) is decoded from the tree
    /// built at compile time rather than parsed.
    fn visit_text(&mut self, key: String, text: String, dir: Option<PathBuf>, std: bool) {
        let id = self.sources.add(key.clone(), text.clone());
        self.done.insert(key.clone(), id);
        let file = match std.then(|| stdlib_tree(&key, id)).flatten() {
            Some(tree) => tree,
            None => {
                let (file, diags) = self.loader.parse(id, &text);
                self.diagnostics.extend(diags);
                file
            }
        };
        for stmt in &file.items {
            if let ast::StmtKind::Import(target) = &stmt.kind {
                self.visit_import(&key, target, dir.as_deref());
            }
        }
        self.files.push((id, file));
    }

    fn visit_import(&mut self, importer: &str, target: &ast::StrLit, dir: Option<&Path>) {
        let (key, std_text) = if let Some(name) = target.value.strip_prefix("std/") {
            let key = format!("std/{}", name.trim_end_matches(".nixl"));
            match STDLIB.iter().find(|(k, _)| *k == key) {
                Some((_, text)) => (key, Some(*text)),
                None => {
                    let names: Vec<&str> = STDLIB.iter().map(|(k, _)| *k).collect();
                    let mut d = Diagnostic::error(
                        Code::ImportNotFound,
                        target.span,
                        format!("no standard library module `{}`", target.value),
                    );
                    d = d.help(
                        crate::diagnostics::did_you_mean(&key, names.iter().copied())
                            .or_help(|| format!("the standard library has {}", names.join(", "))),
                    );
                    self.diagnostics.push(d);
                    return;
                }
            }
        } else {
            if !target.value.ends_with(".nixl") {
                self.diagnostics.push(
                    Diagnostic::error(Code::ImportNotFound, target.span, format!("`{}` is not a .nixl file", target.value)).help(
                        "an import names a .nixl file (`import \"./setup.nixl\"`) or a standard library module (`std/vllm`)",
                    ),
                );
                return;
            }
            let p = dir.map(|d| d.join(&target.value)).unwrap_or_else(|| PathBuf::from(&target.value));
            let key = normalize(&p);
            if !inside(&key, &self.root) {
                let root = if self.root.is_empty() { "." } else { self.root.as_str() };
                self.diagnostics.push(
                    Diagnostic::error(
                        Code::ImportNotFound,
                        target.span,
                        format!("`{}` is outside the project (`{root}`)", target.value),
                    )
                    .help("imports stay inside the project's directory; a nixl.toml in a directory above both widens it"),
                );
                return;
            }
            (key, None)
        };
        if self.stack_contains(&key) || key == importer {
            let mut chain: Vec<&str> = self.stack.iter().map(|(k, _)| k.as_str()).collect();
            chain.push(importer);
            let start = chain.iter().position(|k| *k == key).unwrap_or(0);
            let mut shown: Vec<&str> = chain[start..].to_vec();
            shown.push(&key);
            self.diagnostics.push(
                Diagnostic::error(Code::ImportCycle, target.span, format!("import cycle: {}", shown.join(" -> ")))
                    .help("move what both files need into a third file that imports neither"),
            );
            return;
        }
        if self.done.contains_key(&key) {
            return;
        }
        self.stack.push((importer.to_string(), Some(target.span)));
        match std_text {
            Some(text) => self.visit_text(key, text.to_string(), None, true),
            None => self.visit_path(Path::new(&key), Some(target.span)),
        }
        self.stack.pop();
    }

    fn stack_contains(&self, key: &str) -> bool {
        self.stack.iter().any(|(k, _)| k == key)
    }
}

/// `a/./b/../c.nixl` to `a/c.nixl`, without touching the file system.
fn normalize(p: &Path) -> String {
    let mut out: Vec<String> = vec![];
    for c in p.components() {
        match c {
            // The root is put back below: pushed here it would join to `//tmp/...`.
            std::path::Component::CurDir | std::path::Component::RootDir => {}
            std::path::Component::ParentDir if out.last().is_some_and(|l| l != "..") => {
                out.pop();
            }
            other => out.push(other.as_os_str().to_string_lossy().to_string()),
        }
    }
    let s = out.join("/");
    if p.has_root() && !s.starts_with('/') {
        format!("/{s}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_stdlib_trees_built_at_compile_time_are_what_the_parser_makes_of_the_text() {
        for (key, text) in super::STDLIB {
            let decoded = super::stdlib_tree(key, 7).expect("every module's tree decodes");
            let (parsed, diags) = crate::syntax::parse(7, text);
            assert!(diags.is_empty(), "{key} parses cleanly");
            let json = |f: &crate::syntax::ast::File| serde_json::to_string(f).expect("trees serialize");
            assert_eq!(json(&decoded), json(&parsed), "{key}: the embedded tree is stale or wrong");
        }
    }

    #[test]
    fn paths_print_as_written() {
        assert_eq!(super::normalize(std::path::Path::new("/tmp/a/./b/../phase1.nixl")), "/tmp/a/phase1.nixl");
        assert_eq!(super::normalize(std::path::Path::new("examples/../x.nixl")), "x.nixl");
        assert_eq!(super::normalize(std::path::Path::new("../x.nixl")), "../x.nixl");
    }
}
