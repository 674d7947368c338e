//! Command implementations: thin glue from arguments to the pipeline stages.

use nixl::check::CheckOutput;
use nixl::design::Design;
use nixl::render::{self, Format};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

pub use nixl::pipeline::{load, Loaded};

/// Prints diagnostics; returns true when any is an error.
pub fn report(out: &CheckOutput, format: Format) -> bool {
    if !out.diagnostics.is_empty() {
        let text = render::render(&out.diagnostics, &out.sources, format, color());
        if format == Format::Json {
            print!("{text}");
        } else {
            eprint!("{text}");
        }
    }
    out.has_errors()
}

pub fn check(files: &[PathBuf], format: Format) -> ExitCode {
    let mut failed = false;
    for path in files {
        let loaded = load(path);
        failed |= report(&loaded.check, format);
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

pub fn pick<'a>(loaded: &'a Loaded, experiment: Option<&str>) -> Result<&'a Design, String> {
    loaded.design(experiment)
}

pub fn show(path: &Path, pattern: &str, experiment: Option<&str>) -> ExitCode {
    let loaded = load(path);
    if report(&loaded.check, Format::Auto) {
        return ExitCode::from(1);
    }
    let design = match pick(&loaded, experiment) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let Some(p) = design.pattern(pattern) else {
        let ids = design.patterns.iter().map(|p| p.id.as_str());
        let hint = nixl::diagnostics::did_you_mean(pattern, ids).unwrap_or_else(|| "`nixl plan` lists the pattern ids".into());
        eprintln!("error: experiment `{}` has no pattern `{pattern}`\n  = help: {hint}", design.experiment);
        return ExitCode::from(1);
    };
    print!("{}", nixl::design::report::show_pattern(&loaded.check.model, design, p));
    ExitCode::SUCCESS
}

/// Options shared by plan, apply and destroy.
pub struct PlanArgs<'a> {
    pub file: &'a Path,
    pub experiment: Option<&'a str>,
    pub state: Option<&'a Path>,
}

/// Where an experiment's state lives unless `--state` says otherwise: `.nixl/<experiment>/state.json` beside the file.
pub fn state_path(file: &Path, experiment: &str, explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    nixl::config::Config::beside(file).state_dir().join(experiment).join("state.json")
}

/// Loads, checks, expands and plans; diagnostics are printed. Err is an exit code.
pub fn make_plan(args: &PlanArgs, format: Format) -> Result<(Loaded, nixl::plan::Plan, Option<String>), ExitCode> {
    let loaded = load(args.file);
    if report(&loaded.check, format) {
        return Err(ExitCode::from(1));
    }
    let design = match pick(&loaded, args.experiment) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitCode::from(1));
        }
    };
    let state_file = state_path(args.file, &design.experiment, args.state);
    let state = match nixl::state::State::load(&state_file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitCode::from(1));
        }
    };
    let mut diags = vec![];
    let mut plan = nixl::plan::build(&loaded.check.model, design, &state, &loaded.source_hash(), &mut diags);
    plan.source = args.file.to_string_lossy().to_string();
    if !diags.is_empty() {
        let text = render::render(&diags, &loaded.check.sources, format, color());
        eprint!("{text}");
        if diags.iter().any(|d| d.is_error()) {
            return Err(ExitCode::from(1));
        }
    }
    let reduction = design
        .extends
        .as_ref()
        .and_then(|parent| loaded.designs.iter().find(|d| &d.experiment == parent))
        .map(|parent| nixl::design::report::render_reduction(&nixl::design::report::reduction(parent, design)));
    Ok((loaded, plan, reduction))
}

pub fn plan(args: &PlanArgs, json: bool, out: Option<&Path>, detailed: bool) -> ExitCode {
    let (_, plan, reduction) = match make_plan(args, if json { Format::Json } else { Format::Auto }) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if json {
        print!("{}", nixl::plan::render::json(&plan));
    } else {
        let color = std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
        print!("{}", nixl::plan::render::text(&plan, reduction.as_deref(), color));
    }
    if let Some(out) = out {
        if let Err(e) = nixl::state::write_atomic(out, nixl::plan::render::json(&plan).as_bytes()) {
            eprintln!("error: cannot write the plan to `{}`: {e}", out.display());
            return ExitCode::from(1);
        }
        if !json {
            println!(
                "\nSaved the plan to {}. To perform exactly these actions, run: nixl apply {}",
                out.display(),
                out.display()
            );
        }
    }
    if detailed && plan.summary.has_changes() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

pub fn graph(args: &PlanArgs) -> ExitCode {
    match make_plan(args, Format::Auto) {
        Ok((_, plan, _)) => {
            print!("{}", nixl::plan::render::dot(&plan));
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// Reads a saved plan and checks it still applies: same sources, same state.
pub fn load_saved_plan(path: &Path, state_override: Option<&Path>) -> Result<(nixl::plan::Plan, Loaded), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read saved plan `{}`: {e}", path.display()))?;
    let plan: nixl::plan::Plan =
        serde_json::from_str(&text).map_err(|e| format!("`{}` is not a saved nixl plan: {e}", path.display()))?;
    if plan.format != nixl::plan::PLAN_FORMAT {
        return Err(format!(
            "saved plan `{}` has format {}, this nixl reads {}",
            path.display(),
            plan.format,
            nixl::plan::PLAN_FORMAT
        ));
    }
    let source = Path::new(&plan.source);
    let loaded = load(source);
    if loaded.check.has_errors() {
        return Err(format!("`{}` no longer checks cleanly; run `nixl plan` again", plan.source));
    }
    if loaded.source_hash() != plan.source_hash {
        return Err(format!(
            "the saved plan is stale: `{}` (or a file it imports) changed since the plan was made. Run `nixl plan {} --out {}` again and review it",
            plan.source,
            plan.source,
            path.display()
        ));
    }
    let state_file = state_path(source, &plan.experiment, state_override);
    let state = nixl::state::State::load(&state_file).map_err(|e| e.to_string())?;
    if state.serial != plan.state_serial || nixl::state::content_hash(&state.actions) != plan.state_hash {
        return Err(format!(
            "the saved plan is stale: the state `{}` changed since the plan was made (serial {} then, {} now). Run `nixl plan` again",
            state_file.display(),
            plan.state_serial,
            state.serial
        ));
    }
    Ok((plan, loaded))
}

/// Whether a path names a saved plan rather than a .nixl file.
pub fn is_saved_plan(path: &Path) -> bool {
    if path.extension().is_some_and(|e| e == "nixl") {
        return false;
    }
    std::fs::read(path).map(|b| b.first() == Some(&b'{')).unwrap_or(false)
}

pub fn fmt(files: &[PathBuf], check: bool) -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    for path in files {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read `{}`: {e}", path.display());
                code = ExitCode::from(1);
                continue;
            }
        };
        let mut sources = nixl::diagnostics::SourceMap::default();
        let id = sources.add(path.to_string_lossy().to_string(), text.clone());
        let (file, diags) = nixl::syntax::parse(id, &text);
        if !diags.is_empty() {
            // Never rewrite a file that does not parse: say why instead.
            eprint!("{}", render::render(&diags, &sources, Format::Auto, color()));
            code = ExitCode::from(1);
            continue;
        }
        let formatted = nixl::syntax::fmt::format(&file, &text);
        if formatted == text {
            continue;
        }
        if check {
            println!("{}", path.display());
            code = ExitCode::from(1);
        } else if let Err(e) = nixl::state::write_atomic(path, formatted.as_bytes()) {
            eprintln!("error: cannot write `{}`: {e}", path.display());
            code = ExitCode::from(1);
        }
    }
    code
}

/// FILE as given, else the `file` that ./nixl.toml names.
pub fn file_or_default(file: Option<PathBuf>) -> Result<PathBuf, ExitCode> {
    if let Some(f) = file {
        return Ok(f);
    }
    match nixl::config::Config::load(Path::new(".")) {
        Ok(c) => c.file.map(|f| c.dir.join(f)).ok_or_else(|| {
            eprintln!("error: no FILE given, and ./nixl.toml names no `file`");
            ExitCode::from(2)
        }),
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(2))
        }
    }
}

/// The runtime apply, destroy and MLflow pushes run on: two workers, as the machine has.
pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(|e| {
        eprintln!("error: cannot start the runtime: {e}");
        ExitCode::from(1)
    })
}
