//! `nixl fmt`: the canonical layout, comments kept; a file that does not parse is never rewritten.

use super::{args, output};
use nixl::diagnostics::render::Format;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The .nixl files to format (default: `file` in ./nixl.toml).
    pub files: Vec<PathBuf>,
    /// Change nothing; list the files that would change and exit 1 if any would.
    #[arg(long)]
    pub check: bool,
}

pub fn run(a: &Args) -> ExitCode {
    let files = match args::files_or_default(&a.files) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let mut code = ExitCode::SUCCESS;
    for path in &files {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                code = output::fail(&format!("cannot read `{}`: {e}", path.display()));
                continue;
            }
        };
        let mut sources = nixl::diagnostics::SourceMap::default();
        let id = sources.add(path.to_string_lossy().to_string(), text.clone());
        let (file, diags) = nixl::syntax::parse(id, &text);
        if !diags.is_empty() {
            // Never rewrite a file that does not parse: say why instead.
            output::diagnostics(&diags, &sources, Format::Auto);
            code = ExitCode::from(1);
            continue;
        }
        let formatted = nixl::syntax::fmt::format(&file, &text);
        if formatted == text {
            continue;
        }
        if a.check {
            output::out(&format!("{}\n", path.display()));
            code = ExitCode::from(1);
        } else if let Err(e) = nixl::state::write_atomic(path, formatted.as_bytes()) {
            code = output::fail(&format!("cannot write `{}`: {e}", path.display()));
        }
    }
    code
}
