//! `nixl show`: one pattern resolved, an experiment's pattern table, or a
//! saved plan (as `terraform show PLANFILE`), as text or one JSON document.

use super::args;
use super::output;
use super::plan;
use nixl::diagnostics::render::Format;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// [FILE] [PATTERN]: a .nixl file (default: `file` in ./nixl.toml) and a pattern id
    /// (e.g. p2-efa-12k-c1), or a plan saved with `nixl plan --out`.
    #[arg(num_args = 0..=2, value_name = "FILE|PATTERN|PLANFILE")]
    pub what: Vec<String>,
    /// The experiment, when the file declares several (default: the last one declared).
    #[arg(long)]
    pub experiment: Option<String>,
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    /// With a PATTERN: print the exact scripts apply sends for it, per node (its server
    /// launch's start, readiness watch and stop, and its benchmark; or a tool's
    /// commands, the setup steps that install it and the node whose output is read).
    #[arg(long)]
    pub commands: bool,
}

pub fn run(a: &Args) -> ExitCode {
    let (file, pattern): (Option<PathBuf>, Option<&str>) = match a.what.as_slice() {
        [f, p] => (Some(PathBuf::from(f)), Some(p.as_str())),
        [one] if Path::new(one).is_file() => (Some(PathBuf::from(one)), None),
        [one] => (None, Some(one.as_str())),
        _ => (None, None),
    };
    if let (Some(f), None) = (&file, pattern) {
        if plan::is_saved_plan(f) {
            return saved_plan(f, a.json);
        }
    }
    let file = match args::file_or_default(file.as_deref()) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let loaded = match args::load(&file, if a.json { Format::Json } else { Format::Auto }) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let campaign = match args::campaign(&loaded, a.experiment.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let design = &campaign.design;
    let Some(id) = pattern else {
        output::out(&if a.json {
            serde_json::to_string_pretty(&design.patterns).expect("patterns serialise") + "\n"
        } else {
            nixl::design::tables::pattern_table(design)
        });
        return ExitCode::SUCCESS;
    };
    let Some(p) = design.pattern(id) else {
        let ids = design.patterns.iter().map(|p| &*p.id);
        let hint = nixl::diagnostics::did_you_mean(id, ids).unwrap_or_else(|| "`nixl show FILE` lists the pattern ids".into());
        output::err(&format!("error: experiment `{}` has no pattern `{id}`\n  = help: {hint}\n", campaign.name()));
        return ExitCode::from(1);
    };
    if a.commands {
        return commands(&loaded, campaign, p, a.json);
    }
    if a.json {
        let settings: std::collections::BTreeMap<String, String> =
            nixl::design::pattern_settings(&loaded.check.model, campaign, p).into_iter().map(|(k, v)| (k, v.display())).collect();
        let index = design.patterns.iter().position(|x| x.id == p.id);
        let launch = index.and_then(|i| campaign.schedule.launch_of(i)).map(|l| l.number);
        let v = serde_json::json!({ "pattern": p, "launch": launch, "settings": settings });
        output::out(&(serde_json::to_string_pretty(&v).expect("pattern serialises") + "\n"));
    } else {
        output::out(&nixl::design::tables::show_pattern(&loaded.check.model, campaign, p));
    }
    ExitCode::SUCCESS
}

/// The scripts apply sends for one pattern; a template that cannot be rendered is its diagnostic.
fn commands(
    loaded: &nixl::pipeline::Loaded,
    campaign: &nixl::design::Campaign,
    p: &nixl::design::Pattern,
    json: bool,
) -> ExitCode {
    use nixl::design::commands;
    let nodes = campaign.stack.as_ref().map_or(2, |s| s.nodes.len());
    let vars = nixl::design::render::RenderVars::placeholders(nodes, ".").with_model(campaign.design.model.as_ref());
    match commands::for_pattern(&loaded.check.model, campaign, p, &vars) {
        Ok(c) if json => output::out(&(serde_json::to_string_pretty(&c).expect("commands serialise") + "\n")),
        Ok(c) => {
            let names: Vec<String> = campaign.stack.iter().flat_map(|s| s.nodes.iter().map(|n| n.name.clone())).collect();
            output::out(&commands::text(&c, &names));
        }
        Err(d) => return output::fail(&d.message),
    }
    ExitCode::SUCCESS
}

/// A saved plan as `nixl plan` printed it, whether or not it is still fresh (saying which).
fn saved_plan(path: &Path, json: bool) -> ExitCode {
    let plan: nixl::plan::Plan = match std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(p) => p,
        Err(e) => return output::fail(&format!("`{}` is not a saved nixl plan: {e}", path.display())),
    };
    if json {
        output::out(&nixl::plan::view::json(&plan));
    } else {
        output::out(&nixl::plan::view::text(&plan, None, output::color_stdout()));
        if let Err(stale) = plan::load_saved(path, None) {
            output::err(&format!("note: {stale}\n"));
        }
    }
    ExitCode::SUCCESS
}
