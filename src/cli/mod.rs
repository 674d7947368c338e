//! The `nixl` command line, in the manner of terraform's: one file per
//! command, the arguments every command shares in `args.rs`, output streams in
//! `output.rs`. A command parses nothing itself: it calls the pipeline
//! (`nixl::pipeline`), the planner and the executor, and turns their typed
//! errors into diagnostics or messages here, at the boundary.

mod apply;
mod args;
mod check;
mod destroy;
mod export;
mod fmt;
mod iam_policy;
mod output;
mod plan;
mod refresh;
mod report;
mod results;
mod show;
mod status;
mod unlock;

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "nixl", version, about = "Declarative benchmarking of disaggregated LLM inference on GPU clusters")]
#[command(long_about = "nixl reads a .nixl file that declares a GPU stack, the setup of its nodes, an experiment \
(factors, layers, pruning rules) and its analyses, and plans, applies and destroys it.\n\n\
Start with `nixl check FILE` for diagnostics and `nixl plan FILE` to see what apply would do. \
Commands that take a FILE use the `file` named in ./nixl.toml when none is given.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and check files; print every diagnostic. Exits 1 on any error.
    #[command(visible_alias = "validate")]
    Check(check::Args),
    /// Rewrite files in the canonical format, comments kept.
    ///
    /// With --check, change nothing and exit 1 if any file would change (as `terraform fmt -check`).
    Fmt(fmt::Args),
    /// Show a pattern's resolved settings, a file's patterns, or a saved plan.
    ///
    /// `nixl show [FILE] PATTERN` prints one pattern's settings, launch, KV size and estimate;
    /// `nixl show FILE.nixl` the experiment's pattern table; `nixl show PLANFILE` a plan saved
    /// with `nixl plan --out` (as `terraform show`).
    Show(show::Args),
    /// Show what apply would do: actions, order, server launches, time and cost.
    ///
    /// Works offline: it plans against the state file alone; with --refresh it first asks the
    /// provider whether the recorded nodes still run as recorded (the state is not written).
    /// Exit codes: 0 success, 1 error, and with --detailed-exitcode 2 when changes are pending.
    Plan(plan::Args),
    /// Print the action graph as DOT, one cluster per server launch.
    Graph(plan::GraphArgs),
    /// Create what is missing, set up the nodes, run the patterns, keep the results.
    ///
    /// FILE is a .nixl file (planned afresh and confirmed) or a plan saved with
    /// `nixl plan --out`, which is applied exactly, or refused if the file or the
    /// state changed since. Every finished action is recorded at once; an
    /// interrupted apply resumes where it stopped.
    Apply(apply::Args),
    /// Remove everything apply created: bucket contents, nodes, the stack. Results stay on disk.
    Destroy(destroy::Args),
    /// Print the CloudFormation template of the stack's base resources.
    ExportCfn(export::Args),
    /// Print the IAM policy an operator needs to apply and destroy the stack, as JSON.
    ///
    /// Scoped to the stack's name, region, tag and the names CloudFormation derives from
    /// them (`<stack>-Role-*`, `<stack>-bucket-*`); docs/running.md explains each statement.
    IamPolicy(iam_policy::Args),
    /// Per layer: done, failed, pending and ad-hoc patterns, last errors, time used and left.
    Status(status::Args),
    /// Every stored result with its metrics, or push them to MLflow.
    Results(results::Args),
    /// Write a self-contained HTML report: plots, the pattern table, the analyses' verdicts.
    Report(report::Args),
    /// Remove a lock left by an apply or destroy that died.
    ForceUnlock(unlock::Args),
    /// Run the language server for editors, over stdin and stdout.
    ///
    /// Speaks the Language Server Protocol: diagnostics as you type (the same checks as
    /// `nixl check`, for the file and the open files importing it), hover, completion, go to
    /// definition, references, document symbols and formatting (as `nixl fmt`). Editors start
    /// it themselves; see docs/editors.md for VS Code and Neovim. It prints nothing else on
    /// stdout, so it is not meant to be run by hand.
    Lsp,
    /// Print nixl's version.
    Version,
}

pub fn main() -> ExitCode {
    let argv = args::long_flags_with_one_dash(std::env::args_os().collect(), &Cli::command());
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            // Help and version go to stdout like any output (a closed pipe ends quietly).
            if !e.use_stderr() {
                output::out(&e.render().to_string());
                return ExitCode::SUCCESS;
            }
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Check(a) => check::run(&a),
        Command::Fmt(a) => fmt::run(&a),
        Command::Show(a) => show::run(&a),
        Command::Plan(a) => plan::run(&a),
        Command::Graph(a) => plan::graph(&a),
        Command::Apply(a) => apply::run(&a),
        Command::Destroy(a) => destroy::run(&a),
        Command::ExportCfn(a) => export::run(&a),
        Command::IamPolicy(a) => iam_policy::run(&a),
        Command::Status(a) => status::run(&a),
        Command::Results(a) => results::run(&a),
        Command::Report(a) => report::run(&a),
        Command::ForceUnlock(a) => unlock::run(&a),
        Command::Lsp => match nixl::lsp::run_stdio() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => output::fail(&format!("nixl lsp: {e}")),
        },
        Command::Version => {
            output::out(&format!("nixl {}\n", env!("CARGO_PKG_VERSION")));
            ExitCode::SUCCESS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// `--help` explains every argument of every command.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let builtin = matches!(a.get_id().as_str(), "help" | "version");
                if !builtin && a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {}", a.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (the command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = vec![];
        walk(&Cli::command(), "nixl", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
        Cli::command().debug_assert();
    }
}
