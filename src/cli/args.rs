//! Arguments every command shares (flattened into each), and the steps every
//! campaign command starts with: find the file (FILE, else `file` in
//! ./nixl.toml), load and check it, choose the experiment, find its state.

use super::output;
use nixl::design::Campaign;
use nixl::diagnostics::render::Format;
use nixl::pipeline::Loaded;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// FILE and --experiment: which campaign a command is about.
#[derive(clap::Args, Clone, Debug)]
pub struct FileArgs {
    /// The .nixl file (default: `file` in ./nixl.toml).
    pub file: Option<PathBuf>,
    /// The experiment, when the file declares several (default: the last one declared).
    #[arg(long)]
    pub experiment: Option<String>,
}

/// FILE, --experiment and --state: a campaign and its state.
#[derive(clap::Args, Clone, Debug)]
pub struct CampaignArgs {
    #[command(flatten)]
    pub target: FileArgs,
    /// State file (default: .nixl/<experiment>/state.json beside the file, or under `state_dir` in nixl.toml).
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
}

/// A file found, loaded and checked, and the campaign the command is about.
pub struct Opened {
    pub file: PathBuf,
    pub loaded: Loaded,
    index: usize,
}

impl Opened {
    pub fn campaign(&self) -> &Campaign {
        &self.loaded.campaigns[self.index]
    }

    /// The campaign's state file, unless `--state` names another.
    pub fn state_path(&self, explicit: Option<&Path>) -> PathBuf {
        state_path(&self.file, self.campaign().name(), explicit)
    }
}

/// The steps every campaign command starts with; diagnostics and errors are printed.
pub fn open(a: &FileArgs, format: Format) -> Result<Opened, ExitCode> {
    let file = file_or_default(a.file.as_deref())?;
    let loaded = nixl::pipeline::load_for(&file, &nixl::check::imports::FsLoader, a.experiment.as_deref());
    if output::diagnostics(&loaded.check.diagnostics, &loaded.check.sources, format) {
        return Err(ExitCode::from(1));
    }
    let name = campaign(&loaded, a.experiment.as_deref())?.name().to_string();
    let index = loaded.campaigns.iter().position(|c| c.name() == name).unwrap_or_default();
    Ok(Opened { file, loaded, index })
}

/// FILE as given, else the `file` that ./nixl.toml names.
pub fn file_or_default(file: Option<&Path>) -> Result<PathBuf, ExitCode> {
    if let Some(f) = file {
        return Ok(f.to_path_buf());
    }
    match nixl::config::Config::load(Path::new(".")) {
        Ok(c) => c.file.map(|f| c.dir.join(f)).ok_or_else(|| {
            output::err("error: no FILE given, and ./nixl.toml names no `file`\n");
            ExitCode::from(2)
        }),
        Err(e) => {
            output::err(&format!("error: {e}\n"));
            Err(ExitCode::from(2))
        }
    }
}

/// Files as given, else the one ./nixl.toml names (check, fmt).
pub fn files_or_default(files: &[PathBuf]) -> Result<Vec<PathBuf>, ExitCode> {
    if files.is_empty() {
        file_or_default(None).map(|f| vec![f])
    } else {
        Ok(files.to_vec())
    }
}

/// A file loaded and checked; diagnostics printed on stderr. Err when any is an error.
pub fn load(file: &Path, format: Format) -> Result<Loaded, ExitCode> {
    let loaded = nixl::pipeline::load_with(file, &nixl::check::imports::FsLoader);
    if output::diagnostics(&loaded.check.diagnostics, &loaded.check.sources, format) {
        return Err(ExitCode::from(1));
    }
    Ok(loaded)
}

/// The experiment asked for, or the file's own; an unknown name lists the ones there are.
pub fn campaign<'l>(loaded: &'l Loaded, experiment: Option<&str>) -> Result<&'l Campaign, ExitCode> {
    loaded.campaign(experiment).map_err(|e| output::fail(&e.to_string()))
}

/// Where an experiment's state lives unless `--state` says otherwise: `.nixl/<experiment>/state.json` beside the file.
pub fn state_path(file: &Path, experiment: &str, explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    config(file).state_dir().join(experiment).join("state.json")
}

/// `nixl.toml` beside the file; one that cannot be read is said and the defaults used.
pub fn config(file: &Path) -> nixl::config::Config {
    nixl::config::Config::beside(file).unwrap_or_else(|e| {
        output::err(&format!("warning: {e}; using defaults\n"));
        nixl::config::Config::defaults_beside(file)
    })
}

/// The directory of the file, absolute.
pub fn dir_of(file: &Path) -> PathBuf {
    let d = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf())
}

/// `.nixl/results/<experiment>` beside the file.
pub fn results_dir(file: &Path, experiment: &str) -> PathBuf {
    dir_of(file).join(".nixl").join("results").join(experiment)
}

/// The runtime apply, destroy and MLflow pushes run on: two workers, as the machine has.
pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| output::fail(&format!("cannot start the runtime: {e}")))
}

/// Terraform's single-dash long flags (`-auto-approve`, `-target=x`) read as
/// `--auto-approve`, with a note, for the long flags nixl has; anything else is left to clap.
pub fn long_flags_with_one_dash(argv: Vec<OsString>, cmd: &clap::Command) -> Vec<OsString> {
    let mut longs: Vec<String> = vec![];
    collect_longs(cmd, &mut longs);
    argv.into_iter()
        .enumerate()
        .map(|(i, a)| {
            let Some(s) = a.to_str().filter(|_| i > 0) else { return a };
            let Some(rest) = s.strip_prefix('-').filter(|r| !r.starts_with('-') && r.len() > 1) else { return a };
            let name = rest.split('=').next().unwrap_or(rest);
            if longs.iter().any(|l| l == name) {
                output::err(&format!("note: `{s}` is read as `-{s}`\n"));
                OsString::from(format!("-{s}"))
            } else {
                a
            }
        })
        .collect()
}

fn collect_longs(cmd: &clap::Command, out: &mut Vec<String>) {
    for a in cmd.get_arguments() {
        if let Some(l) = a.get_long() {
            out.push(l.to_string());
        }
    }
    for sub in cmd.get_subcommands() {
        collect_longs(sub, out);
    }
}

/// Prints what one function renders from the file's stack (`export-cfn`, `iam-policy`).
pub fn print_for_stack(a: &FileArgs, render: impl Fn(&Campaign, &nixl::check::model::Stack) -> String) -> ExitCode {
    let opened = match open(a, Format::Auto) {
        Ok(o) => o,
        Err(code) => return code,
    };
    match &opened.campaign().stack {
        Some(stack) => {
            super::output::out(&format!("{}\n", render(opened.campaign(), stack)));
            ExitCode::SUCCESS
        }
        None => super::output::fail("the file declares no stack"),
    }
}
