//! `nixl plan` and `nixl graph`: the campaign against its state, as text, JSON or DOT.

use super::args::{self, CampaignArgs};
use super::output;
use nixl::diagnostics::render::Format;
use nixl::pipeline::Loaded;
use nixl::plan::{view, Plan};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub campaign: CampaignArgs,
    /// Print the plan as one JSON document on stdout (diagnostics go to stderr); see docs/planning.md.
    #[arg(long)]
    pub json: bool,
    /// Save the plan; `nixl apply PLAN` then performs exactly it.
    #[arg(long, value_name = "PLAN")]
    pub out: Option<PathBuf>,
    /// Exit 0 when nothing is to do, 2 when changes are pending, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Ask the provider (the one the state records, else `provider` in nixl.toml, else aws)
    /// whether the recorded nodes still run as recorded, and plan from what it finds: nodes gone
    /// or changed outside nixl are launched and set up again; stopped ones are shown. The state
    /// file is not written.
    #[arg(long)]
    pub refresh: bool,
    #[command(flatten)]
    pub select: Selection,
}

/// `--target` and `--replace`, shared by plan and apply.
#[derive(clap::Args, Clone, Default)]
pub struct Selection {
    /// Plan only this and what it needs: an action id (p2-efa-12k-c1, setup.node1.05-nixl),
    /// a layer name, or `group:N` for server launch N as numbered in the plan; repeatable.
    #[arg(long = "target", value_name = "ID")]
    pub targets: Vec<String>,
    /// Run this again even if it is done (same forms as --target); repeatable.
    #[arg(long = "replace", value_name = "ID")]
    pub replace: Vec<String>,
}

#[derive(clap::Args)]
pub struct GraphArgs {
    #[command(flatten)]
    pub campaign: CampaignArgs,
}

/// A campaign loaded and planned against its state, and the file it came from.
pub struct Planned {
    pub loaded: Loaded,
    pub plan: Plan,
    pub file: PathBuf,
}

/// Loads, checks, resolves and plans (from the state alone, or with what the provider finds of
/// the nodes when `refresh`); diagnostics are printed on stderr. Err is an exit code.
pub fn make(c: &CampaignArgs, select: &Selection, format: Format, refresh: bool) -> Result<Planned, ExitCode> {
    let opened = args::open(&c.target, format)?;
    let state = nixl::state::State::load(&opened.state_path(c.state.as_deref())).map_err(|e| output::fail(&e.to_string()))?;
    let inputs = nixl::plan::Inputs {
        model: &opened.loaded.check.model,
        campaign: opened.campaign(),
        state: &state,
        source_hash: &opened.loaded.source_hash(),
        stack_changes: &nixl::provider::aws::template::changes,
        targets: &select.targets,
        replace: &select.replace,
    };
    let planned = if refresh {
        nixl::plan::build_refreshed(&inputs, super::refresh::ask(&opened, &state)?)
    } else {
        nixl::plan::build(&inputs)
    };
    let mut plan = planned.map_err(|e| output::fail(&e.to_string()))?;
    plan.source = opened.file.to_string_lossy().to_string();
    Ok(Planned { loaded: opened.loaded, plan, file: opened.file })
}

/// The design's tables printed with the plan: the reduction against the parent
/// experiment, and how each optimal design was found (starts, seed, efficiency).
pub fn reduction(p: &Planned) -> Option<String> {
    use nixl::design::tables;
    let campaign = p.loaded.campaign(Some(&p.plan.experiment)).ok()?;
    let reduction =
        p.loaded.parent(campaign).map(|parent| tables::render_reduction(&tables::reduction(&parent.design, &campaign.design)));
    let optimal = tables::optimal_table(&campaign.design);
    match (reduction, optimal.is_empty()) {
        (None, true) => None,
        (r, _) => Some(format!("{}{optimal}", r.map(|r| r + "\n").unwrap_or_default()).trim_end().to_string()),
    }
}

pub fn run(a: &Args) -> ExitCode {
    let p = match make(&a.campaign, &a.select, if a.json { Format::Json } else { Format::Auto }, a.refresh) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if a.json {
        output::out(&view::json(&p.plan));
    } else {
        output::out_with(|w| view::write_text(w, &p.plan, reduction(&p).as_deref(), output::color_stdout()));
    }
    if let Some(out) = &a.out {
        if let Err(code) = save(&p.plan, out, !a.json) {
            return code;
        }
    }
    if a.detailed_exitcode && p.plan.summary.has_changes() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

fn save(plan: &Plan, out: &Path, say: bool) -> Result<(), ExitCode> {
    nixl::state::write_atomic(out, view::json(plan).as_bytes())
        .map_err(|e| output::fail(&format!("cannot write the plan to `{}`: {e}", out.display())))?;
    if say {
        let out = out.display();
        output::out(&format!("\nSaved the plan to {out}. To perform exactly these actions, run: nixl apply {out}\n"));
    }
    Ok(())
}

pub fn graph(a: &GraphArgs) -> ExitCode {
    match make(&a.campaign, &Selection::default(), Format::Auto, false) {
        Ok(p) => {
            output::out(&view::dot(&p.plan));
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// A saved plan that no longer matches its sources or state.
#[derive(Debug)]
pub enum Stale {
    Unreadable(PathBuf, std::io::Error),
    NotAPlan(PathBuf, serde_json::Error),
    Format(PathBuf, u32),
    NoLongerChecks(String),
    SourcesChanged(PathBuf, String),
    State(nixl::state::StateError),
    StateChanged { state: PathBuf, then: u64, now: u64 },
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stale::Unreadable(p, e) => write!(f, "cannot read saved plan `{}`: {e}", p.display()),
            Stale::NotAPlan(p, e) => write!(f, "`{}` is not a saved nixl plan: {e}", p.display()),
            Stale::Format(p, v) => {
                write!(f, "saved plan `{}` has format {v}, this nixl reads {}", p.display(), nixl::plan::PLAN_FORMAT)
            }
            Stale::NoLongerChecks(s) => write!(f, "`{s}` no longer checks cleanly; run `nixl plan` again"),
            Stale::SourcesChanged(p, s) => write!(
                f,
                "the saved plan is stale: `{s}` (or a file it imports) changed since the plan was made. Run `nixl plan {s} --out {}` again and review it",
                p.display()
            ),
            Stale::State(e) => write!(f, "{e}"),
            Stale::StateChanged { state, then, now } => write!(
                f,
                "the saved plan is stale: the state `{}` changed since the plan was made (serial {then} then, {now} now). Run `nixl plan` again",
                state.display()
            ),
        }
    }
}

/// Reads a saved plan and checks it still applies: same sources, same state.
pub fn load_saved(path: &Path, state_override: Option<&Path>) -> Result<(Plan, Loaded), Stale> {
    let text = std::fs::read_to_string(path).map_err(|e| Stale::Unreadable(path.into(), e))?;
    let plan: Plan = serde_json::from_str(&text).map_err(|e| Stale::NotAPlan(path.into(), e))?;
    if plan.format != nixl::plan::PLAN_FORMAT {
        return Err(Stale::Format(path.into(), plan.format));
    }
    let source = Path::new(&plan.source);
    let loaded = nixl::pipeline::load_with(source, &nixl::check::imports::FsLoader);
    if loaded.check.has_errors() {
        return Err(Stale::NoLongerChecks(plan.source.clone()));
    }
    if loaded.source_hash() != plan.source_hash {
        return Err(Stale::SourcesChanged(path.into(), plan.source.clone()));
    }
    let state_file = args::state_path(source, &plan.experiment, state_override);
    let state = nixl::state::State::load(&state_file).map_err(Stale::State)?;
    if state.serial != plan.state_serial || nixl::state::content_hash(&state.actions) != plan.state_hash {
        return Err(Stale::StateChanged { state: state_file, then: plan.state_serial, now: state.serial });
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
