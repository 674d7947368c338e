//! apply, destroy, status, results and force-unlock: the commands that touch the state.

use crate::cli::{self, PlanArgs};
use nixl::check::model::{Model, Stack};
use nixl::plan::{Change, Kind, Plan};
use nixl::provider::aws::{AwsOptions, AwsProvider};
use nixl::provider::local::LocalProvider;
use nixl::provider::Provider;
use nixl::state::lock::{Lock, LockError};
use nixl::state::State;
use std::io::{BufRead, IsTerminal, Write};
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

/// The stack an experiment runs on: the one it names, or the file's first.
pub fn stack_of<'m>(model: &'m Model, experiment: &str) -> Option<&'m Stack> {
    let exp = model.experiments.iter().find(|e| e.name == experiment);
    match exp.and_then(|e| e.stack.clone()) {
        Some(s) => model.stacks.iter().find(|x| x.name == s),
        None => model.stacks.first(),
    }
}

/// The flag, else `provider` in nixl.toml, else AWS.
fn provider_kind(flag: Option<ProviderKind>, file: &Path) -> ProviderKind {
    if let Some(k) = flag {
        return k;
    }
    match nixl::config::Config::beside(file).provider {
        Some(nixl::config::ProviderKind::Local) => ProviderKind::Local,
        _ => ProviderKind::Aws,
    }
}

fn dir_of(file: &Path) -> PathBuf {
    let d = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf())
}

pub fn dir_of_file(file: &Path) -> PathBuf {
    dir_of(file)
}

pub fn results_dir(file: &Path, experiment: &str) -> PathBuf {
    dir_of(file).join(".nixl").join("results").join(experiment)
}

fn local_root(file: &Path, experiment: &str) -> PathBuf {
    dir_of(file).join(".nixl").join(experiment).join("local")
}

/// Takes the lock; a lock left by a process that no longer runs on this host is taken over.
fn lock(state_path: &Path, command: &str) -> Result<Lock, ExitCode> {
    match Lock::acquire(state_path, command) {
        Ok(l) => Ok(l),
        Err(LockError::Held(p, Some(h)))
            if h.host == nixl::state::lock::hostname() && !Path::new(&format!("/proc/{}", h.pid)).exists() =>
        {
            eprintln!("warning: taking over a stale lock left by {h} (that process is gone)");
            let _ = std::fs::remove_file(&p);
            Lock::acquire(state_path, command).map_err(|e| {
                eprintln!("error: {e}");
                ExitCode::from(1)
            })
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(1))
        }
    }
}

fn confirm(question: &str, auto_approve: bool) -> bool {
    if auto_approve {
        return true;
    }
    if !std::io::stdin().is_terminal() {
        eprintln!("error: refusing to proceed without confirmation: input is not a terminal; pass --auto-approve");
        return false;
    }
    print!("{question}\n  Only 'yes' will be accepted: ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    line.trim() == "yes"
}

pub struct ApplyArgs<'a> {
    pub plan: PlanArgs<'a>,
    pub provider: Option<ProviderKind>,
    pub retry_until_up: bool,
    pub auto_approve: bool,
    pub targets: Vec<String>,
    pub replace: Vec<String>,
}

pub fn apply(args: &ApplyArgs) -> ExitCode {
    // A saved plan is applied exactly, or refused when stale.
    let (loaded, plan, file) = if cli::is_saved_plan(args.plan.file) {
        match cli::load_saved_plan(args.plan.file, args.plan.state) {
            Ok((plan, loaded)) => {
                let file = PathBuf::from(&plan.source);
                (loaded, plan, file)
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        match cli::make_plan(&args.plan, nixl::render::Format::Auto) {
            Ok((loaded, plan, _)) => {
                let color = std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
                print!("{}", nixl::plan::render::text(&plan, None, color));
                (loaded, plan, args.plan.file.to_path_buf())
            }
            Err(code) => return code,
        }
    };
    let pending = plan.actions.iter().any(|a| a.change != Change::NoOp) || !args.replace.is_empty();
    if !pending {
        println!("\nNothing to do.");
        return ExitCode::SUCCESS;
    }
    if !cli::is_saved_plan(args.plan.file) && !confirm("\nDo you want to perform these actions?", args.auto_approve) {
        println!("Apply cancelled.");
        return ExitCode::from(1);
    }
    let Ok(design) = loaded.design(Some(&plan.experiment)) else {
        eprintln!("error: experiment `{}` is no longer in the file", plan.experiment);
        return ExitCode::from(1);
    };
    let state_path = cli::state_path(&file, &plan.experiment, args.plan.state);
    let _lock = match lock(&state_path, "apply") {
        Ok(l) => l,
        Err(code) => return code,
    };
    let state = match State::load(&state_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    // Before the runtime starts threads: the SDK reads these from the environment.
    nixl::config::Config::beside(&file).export_env();
    let interrupted = Arc::new(AtomicBool::new(false));
    let opts = nixl::apply::Options {
        state_path: state_path.clone(),
        results_dir: results_dir(&file, &plan.experiment),
        here: dir_of(&file),
        targets: args.targets.clone(),
        replace: args.replace.clone(),
        interrupted: interrupted.clone(),
        mlflow: crate::cli_results::mlflow_target(&loaded.check.model, design, &file),
    };
    let rt = match cli::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let outcome = rt.block_on(async {
        let flag = interrupted.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\nInterrupt received: finishing the current action, then stopping (Ctrl-C again to abort).");
                flag.store(true, Ordering::SeqCst);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        match provider_kind(args.provider, &file) {
            ProviderKind::Local => {
                let p = LocalProvider::new(&local_root(&file, &plan.experiment), &dir_of(&file));
                nixl::apply::run(&p, &loaded.check.model, design, &plan, state, &opts).await
            }
            ProviderKind::Aws => {
                let Some(stack) = stack_of(&loaded.check.model, &plan.experiment) else {
                    return Err("the experiment has no stack to run on".to_string());
                };
                let aws_opts = AwsOptions { retry_until_up: args.retry_until_up, ..AwsOptions::default() };
                let p = AwsProvider::new(&stack.region, aws_opts).await;
                nixl::apply::run(&p, &loaded.check.model, design, &plan, state, &opts).await
            }
        }
    });
    match outcome {
        Ok(o) => {
            println!(
                "\nApply {}: {} done, {} failed, {} skipped, {} server launches.",
                if o.interrupted {
                    "interrupted"
                } else if o.failed.is_empty() {
                    "complete"
                } else {
                    "finished with failures"
                },
                o.done,
                o.failed.len(),
                o.skipped,
                o.launches
            );
            for (id, e) in &o.failed {
                println!("  failed {id}: {}", e.lines().next().unwrap_or(""));
            }
            // Infrastructure failures point at the stack block that asked for it.
            if let Some((_, e)) = o.failed.iter().find(|(id, _)| id == "stack" || id == "nodes") {
                if let Some(stack) = stack_of(&loaded.check.model, &plan.experiment) {
                    let d = infra_diagnostic(stack, e);
                    let color = std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal();
                    eprint!("{}", nixl::render::render(&[d], &loaded.check.sources, nixl::render::Format::Auto, color));
                }
            }
            if o.failed.is_empty() && !o.interrupted {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

pub fn destroy(args: &PlanArgs, provider: Option<ProviderKind>, auto_approve: bool) -> ExitCode {
    let loaded = cli::load(args.file);
    if cli::report(&loaded.check, nixl::render::Format::Auto) {
        return ExitCode::from(1);
    }
    let Ok(design) = loaded.design(args.experiment) else {
        eprintln!("error: the file declares no experiment");
        return ExitCode::from(1);
    };
    let state_path = cli::state_path(args.file, &design.experiment, args.state);
    let _lock = match lock(&state_path, "destroy") {
        Ok(l) => l,
        Err(code) => return code,
    };
    let mut state = match State::load(&state_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let Some(stack) = stack_of(&loaded.check.model, &design.experiment) else {
        eprintln!("error: the experiment has no stack");
        return ExitCode::from(1);
    };
    let nodes: Vec<nixl::provider::NodeInfo> = state
        .resources
        .iter()
        .filter(|(k, _)| k.starts_with("node."))
        .map(|(k, r)| nixl::provider::NodeInfo {
            name: k.trim_start_matches("node.").into(),
            id: r.id.clone(),
            private_ip: r.attributes.get("private_ip").cloned().unwrap_or_default(),
            zone: None,
            instance_type: None,
        })
        .collect();
    println!("nixl will destroy stack \"{}\": {} node(s) and the base resources. Results stay on disk.", stack.name, nodes.len());
    if !confirm("Do you really want to destroy everything this experiment created?", auto_approve) {
        println!("Destroy cancelled.");
        return ExitCode::from(1);
    }
    let info = state.resources.get("stack").map(|r| nixl::provider::StackInfo {
        id: r.id.clone(),
        bucket: r.attributes.get("bucket").cloned(),
        outputs: r.attributes.clone(),
    });
    nixl::config::Config::beside(args.file).export_env();
    let rt = match cli::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = rt.block_on(async {
        match provider_kind(provider, args.file) {
            ProviderKind::Local => {
                let p = LocalProvider::new(&local_root(args.file, &design.experiment), &dir_of(args.file));
                Provider::destroy(&p, stack, info.as_ref(), &nodes).await.map_err(|e| e.to_string())
            }
            ProviderKind::Aws => {
                let p = AwsProvider::new(&stack.region, AwsOptions::default()).await;
                Provider::destroy(&p, stack, info.as_ref(), &nodes).await.map_err(|e| e.to_string())
            }
        }
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    // Everything that lived on the nodes is gone with them; results and their records stay.
    state.resources.clear();
    state.actions.retain(|id, _| !(id == "stack" || id == "nodes" || id.starts_with("setup.")));
    if let Err(e) = state.save(&state_path) {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    println!("Destroy complete.");
    ExitCode::SUCCESS
}

pub fn force_unlock(args: &PlanArgs) -> ExitCode {
    let loaded = cli::load(args.file);
    let Ok(design) = loaded.design(args.experiment) else {
        eprintln!("error: the file declares no experiment");
        return ExitCode::from(1);
    };
    let state_path = cli::state_path(args.file, &design.experiment, args.state);
    match Lock::force_unlock(&state_path) {
        Ok(Some(h)) => {
            println!("Removed the lock held by {h}.");
            ExitCode::SUCCESS
        }
        Ok(None) => {
            println!("Removed an unreadable lock.");
            ExitCode::SUCCESS
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("The state `{}` is not locked.", state_path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot remove the lock: {e}");
            ExitCode::from(1)
        }
    }
}

#[derive(serde::Serialize)]
struct LayerStatus {
    layer: String,
    done: usize,
    failed: usize,
    pending: usize,
    adhoc: usize,
    errors: Vec<(String, String)>,
}

pub fn status(args: &PlanArgs, json: bool) -> ExitCode {
    let (loaded, plan, _) = match cli::make_plan(args, nixl::render::Format::Auto) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let design = loaded.design(Some(&plan.experiment)).expect("planned experiment");
    let state = State::load(&cli::state_path(args.file, &plan.experiment, args.state)).unwrap_or_default();
    let mut rows: Vec<LayerStatus> = vec![];
    let mut used = 0.0;
    for l in &design.layers {
        let mut row = LayerStatus { layer: l.name.clone(), done: 0, failed: 0, pending: 0, adhoc: 0, errors: vec![] };
        for p in design.patterns.iter().filter(|p| design.layers[p.layer as usize].name == l.name) {
            if p.adhoc {
                row.adhoc += 1;
                continue;
            }
            let a = plan.actions.iter().find(|a| a.id == p.id);
            let rec = state.actions.get(&p.id);
            match (a.map(|a| a.change), rec) {
                (Some(Change::NoOp), r) => {
                    row.done += 1;
                    used += r.and_then(|r| r.seconds).unwrap_or(0.0);
                }
                (_, Some(r)) if r.status == nixl::state::Status::Failed => {
                    row.failed += 1;
                    row.errors.push((p.id.clone(), r.error.clone().unwrap_or_default().lines().next().unwrap_or("").to_string()));
                }
                _ => row.pending += 1,
            }
        }
        rows.push(row);
    }
    let remaining = plan.estimate.wall_seconds;
    if json {
        let v = serde_json::json!({ "experiment": plan.experiment, "layers": rows, "seconds_used": used, "seconds_remaining_estimate": remaining });
        println!("{}", serde_json::to_string_pretty(&v).expect("status serialises"));
        return ExitCode::SUCCESS;
    }
    print!("{}", status_text(&plan, &rows, used, remaining));
    ExitCode::SUCCESS
}

fn status_text(plan: &Plan, rows: &[LayerStatus], used: f64, remaining: f64) -> String {
    use nixl::check::value::fmt_duration;
    let w = rows.iter().map(|r| r.layer.len()).max().unwrap_or(5).max(5);
    let mut s = format!(
        "Experiment {}\n\n  {:<w$}  {:>5}  {:>6}  {:>7}  {:>6}\n",
        plan.experiment, "layer", "done", "failed", "pending", "ad hoc"
    );
    let mut t = (0, 0, 0, 0);
    for r in rows {
        s += &format!("  {:<w$}  {:>5}  {:>6}  {:>7}  {:>6}\n", r.layer, r.done, r.failed, r.pending, r.adhoc);
        t = (t.0 + r.done, t.1 + r.failed, t.2 + r.pending, t.3 + r.adhoc);
    }
    s += &format!("  {:<w$}  {:>5}  {:>6}  {:>7}  {:>6}\n", "total", t.0, t.1, t.2, t.3);
    let errors: Vec<&(String, String)> = rows.iter().flat_map(|r| r.errors.iter()).collect();
    if !errors.is_empty() {
        s += "\nLast errors:\n";
        for (id, e) in errors {
            s += &format!("  {id}: {e}\n");
        }
    }
    let infra = plan.actions.iter().filter(|a| matches!(a.kind, Kind::Stack | Kind::Nodes) && a.change == Change::NoOp).count();
    s += &format!(
        "\nInfrastructure: {}. Time used: {}. Estimated remaining: {}.\n",
        if infra == 2 { "up" } else { "not created" },
        fmt_duration(used),
        fmt_duration(remaining)
    );
    s
}

pub fn results(args: &PlanArgs, format: &str, layer: Option<&str>, push: bool) -> ExitCode {
    let loaded = cli::load(args.file);
    if cli::report(&loaded.check, nixl::render::Format::Auto) {
        return ExitCode::from(1);
    }
    let Ok(design) = loaded.design(args.experiment) else {
        eprintln!("error: the file declares no experiment");
        return ExitCode::from(1);
    };
    let store = nixl::results::Store::new(&results_dir(args.file, &design.experiment));
    let records: Vec<_> = store.all().into_iter().filter(|r| layer.is_none_or(|l| r.layer == l)).collect();
    if push {
        return crate::cli_results::push(&loaded.check.model, design, args.file, &records);
    }
    match format {
        "json" => println!("{}", serde_json::to_string_pretty(&records).expect("records serialise")),
        "csv" => {
            let mut keys: Vec<String> = records.iter().flat_map(|r| r.metrics.keys().cloned()).collect();
            keys.sort();
            keys.dedup();
            println!("id,layer,{}", keys.join(","));
            for r in &records {
                let vals: Vec<String> =
                    keys.iter().map(|k| r.metrics.get(k).map(|v| format!("{v:.4}")).unwrap_or_default()).collect();
                println!("{},{},{}", r.id, r.layer, vals.join(","));
            }
        }
        _ => {
            if records.is_empty() {
                println!("No results yet for experiment {}.", design.experiment);
            }
            for r in &records {
                let m: Vec<String> = r.metrics.iter().map(|(k, v)| format!("{k}={v:.2}")).collect();
                println!("{:<36} {:<14} {}", r.id, r.layer, m.join("  "));
            }
        }
    }
    ExitCode::SUCCESS
}

pub fn export_cfn(file: &Path, experiment: Option<&str>) -> ExitCode {
    let loaded = cli::load(file);
    if cli::report(&loaded.check, nixl::render::Format::Auto) {
        return ExitCode::from(1);
    }
    let name = loaded.design(experiment).map(|d| d.experiment.clone()).unwrap_or_default();
    match stack_of(&loaded.check.model, &name) {
        Some(stack) => {
            println!("{}", nixl::provider::aws::template::template_body(stack));
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("error: the file declares no stack");
            ExitCode::from(1)
        }
    }
}

/// A provider failure as a diagnostic on the stack block, with what to do about it.
fn infra_diagnostic(stack: &Stack, error: &str) -> nixl::diagnostics::Diagnostic {
    use nixl::diagnostics::{Code, Diagnostic};
    let first = error.lines().next().unwrap_or(error).to_string();
    let (code, help) = if first.contains("capacity") {
        (
            Code::NoCapacity,
            "add zones or instance types with the same GPUs to `zones` and `instance_type`, or run apply with --retry-until-up",
        )
    } else if first.starts_with("account limit") {
        (
            Code::CloudRefused,
            "request a higher quota (Service Quotas: Running On-Demand G and VT instances) or use fewer or smaller nodes",
        )
    } else if first.starts_with("credentials") {
        (Code::CloudRefused, "check the AWS credentials (AWS_PROFILE, `aws sso login`) and that the region and subnet exist")
    } else {
        (
            Code::CloudRefused,
            "the message above is AWS's own; fix the stack block or the account, then run apply again: finished work is kept",
        )
    };
    Diagnostic::error(code, stack.span, first).label(format!("stack \"{}\" declared here", stack.name)).help(help)
}
