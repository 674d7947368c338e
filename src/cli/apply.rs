//! `nixl apply`: plan (or read a saved plan), confirm, run through the
//! provider, summarise; infrastructure failures become diagnostics on the
//! attribute of the file that caused them.

use super::args::{self, CampaignArgs};
use super::output;
use super::plan::{self, Selection};
use nixl::design::Campaign;
use nixl::diagnostics::render::Format;
use nixl::plan::Plan;
use nixl::progress::{Sink, Terminal};
use nixl::provider::aws::{AwsOptions, AwsProvider};
use nixl::provider::local::LocalProvider;
use nixl::state::lock::Lock;
use nixl::state::State;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderKind {
    /// EC2, CloudFormation, SSM and S3 in the stack's region.
    Aws,
    /// Directories and processes on this machine (`.nixl/<experiment>/local`).
    Local,
}

impl ProviderKind {
    /// The name the state records (`aws`, `local`), as the providers name themselves.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Aws => "aws",
            ProviderKind::Local => "local",
        }
    }
}

/// Where apply and destroy act, and whether they ask first.
#[derive(clap::Args)]
pub struct Acting {
    /// Where to run: aws (the stack's region) or local (this machine).
    /// Default: `provider` in nixl.toml beside the file, else aws.
    #[arg(long, value_enum)]
    pub provider: Option<ProviderKind>,
    /// Skip the confirmation prompt.
    #[arg(long)]
    pub auto_approve: bool,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub campaign: CampaignArgs,
    #[command(flatten)]
    pub acting: Acting,
    /// When no zone has capacity, start a new round over every zone after the
    /// stack's `retry_interval` (default 30s, jittered), until the nodes are up.
    #[arg(long)]
    pub retry_until_up: bool,
    #[command(flatten)]
    pub select: Selection,
    /// How to print diagnostics (an infrastructure failure points at the attribute to change):
    /// auto (graphical on a terminal), graphical, plain, json.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: Format,
}

/// The flag, else `provider` in nixl.toml, else AWS.
pub fn provider_kind(flag: Option<ProviderKind>, config: &nixl::config::Config) -> ProviderKind {
    if let Some(k) = flag {
        return k;
    }
    match config.provider {
        Some(nixl::config::ProviderKind::Local) => ProviderKind::Local,
        Some(nixl::config::ProviderKind::Aws) | None => ProviderKind::Aws,
    }
}

/// `.nixl/<experiment>/local` beside the file: the local provider's nodes.
pub fn local_root(file: &Path, experiment: &str) -> PathBuf {
    args::dir_of(file).join(".nixl").join(experiment).join("local")
}

/// Takes the lock; one left by a process that is gone is taken over, with a warning naming it.
pub fn lock(state_path: &Path, command: &str) -> Result<Lock, ExitCode> {
    let l = Lock::acquire(state_path, command).map_err(|e| output::fail(&e.to_string()))?;
    if let Some(h) = &l.took_over {
        output::err(&format!("warning: taking over a stale lock left by {h} (that process is gone)\n"));
    }
    Ok(l)
}

/// Takes the state's lock and reads the state, claimed for the provider that acts on it:
/// another provider's state is refused (a local node is a directory, not an instance).
pub fn locked_state(path: &Path, command: &str, kind: ProviderKind) -> Result<(Lock, State), ExitCode> {
    let lock = lock(path, command)?;
    let mut state = State::load(path).map_err(|e| output::fail(&e.to_string()))?;
    state.claim(kind.name(), path).map_err(|e| output::fail(&e.to_string()))?;
    Ok((lock, state))
}

/// Asks on the terminal; only "yes" goes ahead. Without a terminal, --auto-approve is required.
pub fn confirm(question: &str, auto_approve: bool) -> bool {
    if auto_approve {
        return true;
    }
    if !std::io::stdin().is_terminal() {
        output::err("error: refusing to proceed without confirmation: input is not a terminal; pass --auto-approve\n");
        return false;
    }
    output::out(&format!("{question}\n  Only 'yes' will be accepted: "));
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    line.trim() == "yes"
}

/// A saved plan as it is, or a fresh plan shown for confirmation.
fn plan_to_apply(a: &Args) -> Result<(nixl::pipeline::Loaded, Plan, PathBuf, bool), ExitCode> {
    let given = a.campaign.target.file.as_deref().filter(|f| plan::is_saved_plan(f));
    if let Some(saved) = given {
        if !a.select.targets.is_empty() || !a.select.replace.is_empty() {
            return Err(output::fail("a saved plan is applied exactly: give --target and --replace to `nixl plan --out`"));
        }
        let (plan, loaded) = plan::load_saved(saved, a.campaign.state.as_deref()).map_err(|e| output::fail(&e.to_string()))?;
        let file = PathBuf::from(&plan.source);
        return Ok((loaded, plan, file, true));
    }
    let p = plan::make(&a.campaign, &a.select, a.format, false)?;
    output::out(&nixl::plan::view::text(&p.plan, None, output::color_stdout()));
    Ok((p.loaded, p.plan, p.file, false))
}

pub fn run(a: &Args) -> ExitCode {
    let (loaded, plan, file, saved) = match plan_to_apply(a) {
        Ok(x) => x,
        Err(code) => return code,
    };
    // Before "Nothing to do": what another provider did is not done here.
    let kind = provider_kind(a.acting.provider, &args::config(&file));
    let state_path = args::state_path(&file, &plan.experiment, a.campaign.state.as_deref());
    if let Err(e) = State::load(&state_path).and_then(|mut s| s.claim(kind.name(), &state_path)) {
        return output::fail(&e.to_string());
    }
    if !plan.actions.iter().any(nixl::plan::target::runs) {
        output::out("\nNothing to do.\n");
        return ExitCode::SUCCESS;
    }
    if !saved && !confirm("\nDo you want to perform these actions?", a.acting.auto_approve) {
        output::out("Apply cancelled.\n");
        return ExitCode::from(1);
    }
    let campaign = match args::campaign(&loaded, Some(&plan.experiment)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let state_path = args::state_path(&file, &plan.experiment, a.campaign.state.as_deref());
    // Before the runtime starts threads: the SDK reads these from the environment.
    // nixl.toml is read once: the provider it names and the environment it sets.
    let config = args::config(&file);
    config.export_env();
    let kind = provider_kind(a.acting.provider, &config);
    let (_lock, state) = match locked_state(&state_path, "apply", kind) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    let opts = nixl::apply::Options {
        state_path: state_path.clone(),
        results_dir: args::results_dir(&file, &plan.experiment),
        here: args::dir_of(&file),
        interrupted: interrupted.clone(),
        mlflow: super::results::mlflow_target(campaign, &file),
    };
    let rt = match args::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let sink: Arc<dyn Sink> = Arc::new(Terminal::stderr());
    let outcome = rt.block_on(async {
        watch_ctrl_c(interrupted.clone());
        let model = &loaded.check.model;
        match kind {
            ProviderKind::Local => {
                let p = LocalProvider::new(&local_root(&file, &plan.experiment), &args::dir_of(&file));
                nixl::apply::run_planned(&p, &*sink, model, campaign, &plan, state, &opts).await.map_err(Failure::Apply)
            }
            ProviderKind::Aws => {
                let region = campaign.stack.as_ref().map(|s| s.region.clone()).unwrap_or_default();
                let aws_opts = AwsOptions {
                    retry_until_up: a.retry_until_up,
                    interrupted: interrupted.clone(),
                    ..AwsOptions::from_config(&config.aws)
                };
                let p = AwsProvider::new(&region, aws_opts, sink.clone()).await.map_err(Failure::Provider)?;
                nixl::apply::run_planned(&p, &*sink, model, campaign, &plan, state, &opts).await.map_err(Failure::Apply)
            }
        }
    });
    match outcome {
        Ok(o) => summarise(&o, campaign, &loaded, a.format),
        Err(Failure::Apply(e @ nixl::apply::ApplyError::Secrets(_))) => {
            // Each at its `secret(...)` in the file, with what to set or create.
            output::diagnostics(&nixl::apply::secret_diagnostics(&e), &loaded.check.sources, a.format);
            output::fail(e.to_string().lines().next().unwrap_or_default())
        }
        Err(e) => output::fail(&e.to_string()),
    }
}

/// Why apply stopped before its summary: the provider could not start (no credentials), or the
/// state could not be written.
enum Failure {
    Provider(nixl::provider::ProviderError),
    Apply(nixl::apply::ApplyError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Provider(e) => write!(f, "{e}"),
            Failure::Apply(e) => write!(f, "{e}"),
        }
    }
}

/// First Ctrl-C: finish the current action, record it, stop. Second: abort.
fn watch_ctrl_c(flag: Arc<AtomicBool>) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            output::err("\nInterrupt received: finishing the current action, then stopping (Ctrl-C again to abort).\n");
            flag.store(true, Ordering::SeqCst);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
}

fn summarise(o: &nixl::apply::Outcome, campaign: &Campaign, loaded: &nixl::pipeline::Loaded, format: Format) -> ExitCode {
    let verdict = if o.interrupted {
        "interrupted"
    } else if o.failed.is_empty() {
        "complete"
    } else {
        "finished with failures"
    };
    let mut text = format!(
        "\nApply {verdict}: {} done, {} failed, {} skipped, {} server launches.\n",
        o.done,
        o.failed.len(),
        o.skipped,
        o.launches
    );
    for (id, e) in &o.failed {
        text += &format!("  failed {id}: {}\n", e.to_string().lines().next().unwrap_or(""));
    }
    output::out(&text);
    let diags: Vec<_> = o.failed.iter().filter_map(|(id, e)| nixl::apply::diagnostic(id, e, campaign)).collect();
    output::diagnostics(&diags, &loaded.check.sources, format);
    if o.failed.is_empty() && !o.interrupted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
