//! Parsed trees kept between runs of the command line. A second `nixl plan` of files that
//! did not change decodes their trees instead of parsing them, as the standard library's
//! are decoded (build.rs): parsing was the largest part of planning phase 2.
//!
//! An entry is named by the hash of the parser's identity (build.rs hashes the grammar and
//! the syntax sources) and of the file's text, so an edited file or another nixl simply
//! misses. Only trees without diagnostics are kept: every diagnostic comes from the parser.
//! Entries are written to a temporary file and renamed, so a concurrent run never reads half
//! of one, and a damaged entry is a miss. The directory keeps the newest `MAX_ENTRIES`.

use super::imports::{FsLoader, Loader};
use crate::diagnostics::{Diagnostic, FileId};
use crate::syntax::{self, ast};
use std::path::{Path, PathBuf};

/// The parser's identity, from build.rs: trees of another parser are never read.
const PARSER_ID: &str = env!("NIXL_PARSER_ID");
/// Entries beyond this many (the oldest first) are removed when one is added.
const MAX_ENTRIES: usize = 64;

/// Reads files from disk like [`FsLoader`], with their trees cached in `dir` (None: no cache).
pub struct CachingLoader {
    dir: Option<PathBuf>,
}

impl CachingLoader {
    /// `$NIXL_CACHE_DIR/trees`, else `$XDG_CACHE_HOME/nixl/trees`, else `~/.cache/nixl/trees`;
    /// `NIXL_CACHE_DIR` set empty turns the cache off.
    pub fn from_env() -> CachingLoader {
        let var = |k: &str| std::env::var_os(k).map(PathBuf::from);
        let base = match var("NIXL_CACHE_DIR") {
            Some(d) if d.as_os_str().is_empty() => None,
            Some(d) => Some(d),
            None => var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache"))).map(|c| c.join("nixl")),
        };
        CachingLoader { dir: base.map(|b| b.join("trees")) }
    }

    pub fn in_dir(dir: &Path) -> CachingLoader {
        CachingLoader { dir: Some(dir.to_path_buf()) }
    }

    fn entry(dir: &Path, text: &str) -> PathBuf {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(PARSER_ID.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        let hex: String = h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect();
        dir.join(format!("{hex}.tree"))
    }

    fn store(dir: &Path, entry: &Path, tree: &ast::File) {
        let Ok(bytes) = bincode::serialize(tree) else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let tmp = entry.with_extension(format!("{}.tmp", std::process::id()));
        if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, entry).is_ok() {
            prune(dir);
        } else {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// Removes the oldest entries beyond `MAX_ENTRIES`.
fn prune(dir: &Path) {
    let Ok(read) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<(std::time::SystemTime, PathBuf)> = read
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "tree"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if entries.len() <= MAX_ENTRIES {
        return;
    }
    entries.sort();
    for (_, path) in &entries[..entries.len() - MAX_ENTRIES] {
        let _ = std::fs::remove_file(path);
    }
}

impl Loader for CachingLoader {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        FsLoader.read(path)
    }

    fn parse(&self, file: FileId, text: &str) -> (ast::File, Vec<Diagnostic>) {
        let Some(dir) = &self.dir else { return syntax::parse(file, text) };
        let entry = Self::entry(dir, text);
        if let Ok(bytes) = std::fs::read(&entry) {
            let decoded: Option<ast::File> =
                crate::diagnostics::deserialize_spans_into(file, || bincode::deserialize(&bytes).ok());
            if let Some(tree) = decoded {
                return (tree, vec![]);
            }
        }
        let (tree, diags) = syntax::parse(file, text);
        if diags.is_empty() {
            Self::store(dir, &entry, &tree);
        }
        (tree, diags)
    }
}
