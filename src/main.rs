//! The `nixl` command line: argument parsing and dispatch only.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod cli;
mod cli_results;
mod cli_run;

#[derive(Parser)]
#[command(name = "nixl", version, about = "Declarative benchmarking of disaggregated LLM inference on GPU clusters")]
#[command(long_about = "nixl reads a .nixl file that declares a GPU stack, the setup of its nodes, an experiment \
(factors, layers, pruning rules) and its analyses, and plans, applies and destroys it.\n\n\
Start with `nixl check FILE` for diagnostics and `nixl plan FILE` to see what apply would do.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and check files; print every diagnostic. Exits 1 on any error.
    Check {
        /// The .nixl files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// How to print diagnostics: auto (graphical on a terminal), graphical, plain, json.
        #[arg(long, value_enum, default_value = "auto")]
        format: nixl::render::Format,
    },
    /// Print one pattern's resolved settings, restart key, KV size and estimate.
    Show {
        file: PathBuf,
        /// The pattern id, e.g. p2-efa-12k-c1.
        pattern: String,
        /// The experiment, when the file declares several (default: the last one declared).
        #[arg(long)]
        experiment: Option<String>,
    },
    /// Show what apply would do: actions, order, server launches, time and cost.
    ///
    /// Works offline: it plans against the state file alone. Exit codes: 0 success,
    /// 1 error, and with --detailed-exitcode 2 when changes are pending.
    Plan {
        /// The .nixl file (default: `file` in ./nixl.toml).
        file: Option<PathBuf>,
        /// The experiment, when the file declares several (default: the last one declared).
        #[arg(long)]
        experiment: Option<String>,
        /// State file (default: .nixl/<experiment>/state.json beside the file, or `state_dir` in nixl.toml).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Print the plan as JSON (schema: docs/plan-json.md).
        #[arg(long)]
        json: bool,
        /// Save the plan; `nixl apply PLAN` then performs exactly it.
        #[arg(long, value_name = "PLAN")]
        out: Option<PathBuf>,
        /// Exit 0 when nothing is to do, 2 when changes are pending, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Print the action graph as DOT, one cluster per server launch.
    Graph {
        /// The .nixl file (default: `file` in ./nixl.toml).
        file: Option<PathBuf>,
        /// The experiment, when the file declares several (default: the last one declared).
        #[arg(long)]
        experiment: Option<String>,
        /// State file (default: .nixl/<experiment>/state.json beside the file, or `state_dir` in nixl.toml).
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Create what is missing, set up the nodes, run the patterns, keep the results.
    ///
    /// FILE is a .nixl file (planned afresh and confirmed) or a plan saved with
    /// `nixl plan --out`, which is applied exactly, or refused if the file or the
    /// state changed since. Every finished action is recorded at once; an
    /// interrupted apply resumes where it stopped.
    Apply {
        /// The .nixl file (default: `file` in ./nixl.toml).
        file: Option<PathBuf>,
        /// The experiment, when the file declares several (default: the last one declared).
        #[arg(long)]
        experiment: Option<String>,
        /// State file (default: .nixl/<experiment>/state.json beside the file, or `state_dir` in nixl.toml).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Where to run: aws (the stack's region) or local (this machine).
        /// Default: `provider` in nixl.toml beside the file, else aws.
        #[arg(long, value_enum)]
        provider: Option<cli_run::ProviderKind>,
        /// Skip the confirmation prompt.
        #[arg(long)]
        auto_approve: bool,
        /// When no zone has capacity, start a new round over every zone after the
        /// stack's `retry_interval` (default 30s, jittered), until the nodes are up.
        #[arg(long)]
        retry_until_up: bool,
        /// Run only this (pattern id, layer name or `group:N`) and what it needs; repeatable.
        #[arg(long = "target", value_name = "ID")]
        targets: Vec<String>,
        /// Run this again even if it is done; repeatable.
        #[arg(long = "replace", value_name = "ID")]
        replace: Vec<String>,
    },
    /// Remove everything apply created: bucket contents, nodes, the stack. Results stay on disk.
    Destroy {
        /// The .nixl file (default: `file` in ./nixl.toml).
        file: Option<PathBuf>,
        /// The experiment, when the file declares several (default: the last one declared).
        #[arg(long)]
        experiment: Option<String>,
        /// State file (default: .nixl/<experiment>/state.json beside the file, or `state_dir` in nixl.toml).
        #[arg(long)]
        state: Option<PathBuf>,
        /// aws or local; default: `provider` in nixl.toml beside the file, else aws.
        #[arg(long, value_enum)]
        provider: Option<cli_run::ProviderKind>,
        /// Skip the confirmation prompt.
        #[arg(long)]
        auto_approve: bool,
    },
    /// Print the CloudFormation template of the stack's base resources.
    ExportCfn {
        /// The .nixl file (default: `file` in ./nixl.toml).
        file: Option<PathBuf>,
        /// The experiment, when the file declares several (default: the last one declared).
        #[arg(long)]
        experiment: Option<String>,
    },
    /// Per layer: done, failed, pending and ad-hoc patterns, last errors, time used and left.
    Status {
        /// The .nixl file (default: `file` in ./nixl.toml).
        file: Option<PathBuf>,
        /// The experiment, when the file declares several (default: the last one declared).
        #[arg(long)]
        experiment: Option<String>,
        /// State file (default: .nixl/<experiment>/state.json beside the file, or `state_dir` in nixl.toml).
        #[arg(long)]
        state: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Every stored result with its metrics.
    Results {
        /// The .nixl file (default: `file` in ./nixl.toml).
        file: Option<PathBuf>,
        /// The experiment, when the file declares several (default: the last one declared).
        #[arg(long)]
        experiment: Option<String>,
        /// State file (default: .nixl/<experiment>/state.json beside the file, or `state_dir` in nixl.toml).
        #[arg(long)]
        state: Option<PathBuf>,
        /// table, csv or json.
        #[arg(long, default_value = "table")]
        format: String,
        /// Only this layer.
        #[arg(long)]
        layer: Option<String>,
        /// Log the results to MLflow (MLFLOW_TRACKING_URI or the file's `mlflow.tracking_uri`);
        /// runs already there are not duplicated.
        #[arg(long)]
        push: bool,
    },
    /// Write a self-contained HTML report: plots, the pattern table, the analyses' verdicts.
    Report {
        file: PathBuf,
        #[arg(long)]
        experiment: Option<String>,
        /// Directory of report.html (default: .nixl/reports/<experiment> beside the file).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Remove a lock left by an apply or destroy that died.
    ForceUnlock {
        /// The .nixl file (default: `file` in ./nixl.toml).
        file: Option<PathBuf>,
        /// The experiment, when the file declares several (default: the last one declared).
        #[arg(long)]
        experiment: Option<String>,
        /// State file (default: .nixl/<experiment>/state.json beside the file, or `state_dir` in nixl.toml).
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Rewrite files in the canonical format, comments kept.
    ///
    /// With --check, change nothing and exit 1 if any file would change (as `terraform fmt -check`).
    Fmt {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        check: bool,
    },
    /// Run the language server for editors, over stdin and stdout.
    ///
    /// Speaks the Language Server Protocol: diagnostics as you type (the same checks as
    /// `nixl check`, for the file and the open files importing it), hover, completion, go to
    /// definition, references, document symbols and formatting (as `nixl fmt`). Editors start
    /// it themselves; see docs/editors.md for VS Code and Neovim. It prints nothing else on
    /// stdout, so it is not meant to be run by hand.
    Lsp,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands on one campaign take FILE, or the `file` named in ./nixl.toml.
    macro_rules! file {
        ($f:expr) => {
            match cli::file_or_default($f) {
                Ok(f) => f,
                Err(code) => return code,
            }
        };
    }
    match cli.command {
        Command::Check { files, format } => cli::check(&files, format),
        Command::Plan { file, experiment, state, json, out, detailed_exitcode } => {
            let file = file!(file);
            let args = cli::PlanArgs { file: &file, experiment: experiment.as_deref(), state: state.as_deref() };
            cli::plan(&args, json, out.as_deref(), detailed_exitcode)
        }
        Command::Graph { file, experiment, state } => {
            let file = file!(file);
            cli::graph(&cli::PlanArgs { file: &file, experiment: experiment.as_deref(), state: state.as_deref() })
        }
        Command::Apply { file, experiment, state, provider, auto_approve, retry_until_up, targets, replace } => {
            let file = file!(file);
            let plan = cli::PlanArgs { file: &file, experiment: experiment.as_deref(), state: state.as_deref() };
            cli_run::apply(&cli_run::ApplyArgs { plan, provider, retry_until_up, auto_approve, targets, replace })
        }
        Command::ExportCfn { file, experiment } => cli_run::export_cfn(&file!(file), experiment.as_deref()),
        Command::Destroy { file, experiment, state, provider, auto_approve } => {
            let file = file!(file);
            cli_run::destroy(
                &cli::PlanArgs { file: &file, experiment: experiment.as_deref(), state: state.as_deref() },
                provider,
                auto_approve,
            )
        }
        Command::Status { file, experiment, state, json } => {
            let file = file!(file);
            cli_run::status(&cli::PlanArgs { file: &file, experiment: experiment.as_deref(), state: state.as_deref() }, json)
        }
        Command::Results { file, experiment, state, format, layer, push } => {
            let file = file!(file);
            cli_run::results(
                &cli::PlanArgs { file: &file, experiment: experiment.as_deref(), state: state.as_deref() },
                &format,
                layer.as_deref(),
                push,
            )
        }
        Command::Report { file, experiment, out } => cli_results::report(&file, experiment.as_deref(), out.as_deref()),
        Command::ForceUnlock { file, experiment, state } => {
            let file = file!(file);
            cli_run::force_unlock(&cli::PlanArgs { file: &file, experiment: experiment.as_deref(), state: state.as_deref() })
        }
        Command::Fmt { files, check } => cli::fmt(&files, check),
        Command::Show { file, pattern, experiment } => cli::show(&file, &pattern, experiment.as_deref()),
        Command::Lsp => match nixl::lsp::run_stdio() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: nixl lsp: {e}");
                ExitCode::from(1)
            }
        },
    }
}
