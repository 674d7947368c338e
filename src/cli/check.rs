//! `nixl check` (and its terraform name, `nixl validate`): every diagnostic of
//! every file, from the same pipeline the planner and the editor use.

use super::{args, output};
use nixl::diagnostics::render::{self, Format};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The .nixl files to check (default: `file` in ./nixl.toml).
    pub files: Vec<PathBuf>,
    /// How to print diagnostics: auto (graphical on a terminal), graphical, plain, json (one array for all files, on stdout).
    #[arg(long, value_enum, default_value = "auto")]
    pub format: Format,
}

pub fn run(a: &Args) -> ExitCode {
    let files = match args::files_or_default(&a.files) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let mut failed = false;
    let mut json: Vec<serde_json::Value> = vec![];
    for path in &files {
        let loaded = nixl::pipeline::load_with(path, &nixl::check::imports::FsLoader);
        failed |= loaded.check.has_errors();
        match a.format {
            Format::Json => json.extend(render::json_items(&loaded.check.diagnostics, &loaded.check.sources)),
            f => {
                output::diagnostics(&loaded.check.diagnostics, &loaded.check.sources, f);
            }
        }
    }
    if a.format == Format::Json {
        output::out(&(serde_json::to_string_pretty(&json).expect("diagnostics serialise") + "\n"));
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
