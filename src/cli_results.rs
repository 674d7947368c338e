//! `results --push` and `report`: what is done with stored results.

use crate::cli;
use crate::cli_run::{dir_of_file, results_dir};
use nixl::check::Model;
use nixl::design::Design;
use nixl::results::{mlflow, report, rules::Fired, ResultRecord, Store};
use std::path::Path;
use std::process::ExitCode;

/// The experiment's MLflow target, if a tracking URI is set (environment or file).
pub fn mlflow_target(model: &Model, design: &Design, file: &Path) -> Option<mlflow::Target> {
    let exp = nixl::design::merge::merged(model, &design.experiment, &mut vec![])?;
    mlflow::target(&exp.mlflow, &design.experiment, &results_dir(file, &design.experiment))
}

pub fn push(model: &Model, design: &Design, file: &Path, records: &[ResultRecord]) -> ExitCode {
    let Some(t) = mlflow_target(model, design, file) else {
        eprintln!(
            "error: no MLflow server: set MLFLOW_TRACKING_URI or `mlflow = {{ tracking_uri = \"...\" }}` in the experiment"
        );
        return ExitCode::from(1);
    };
    let rt = match cli::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(mlflow::push(&t, records)) {
        Ok((created, existing, failed)) => {
            println!(
                "MLflow experiment {} at {}: {created} run(s) logged, {existing} already there, {} failed.",
                t.experiment,
                t.uri,
                failed.len()
            );
            for (id, e) in &failed {
                println!("  {id}: {e}");
            }
            if failed.is_empty() {
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

pub fn report(file: &Path, experiment: Option<&str>, out: Option<&Path>) -> ExitCode {
    let loaded = cli::load(file);
    if cli::report(&loaded.check, nixl::render::Format::Auto) {
        return ExitCode::from(1);
    }
    let design = match loaded.design(experiment) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let dir = results_dir(file, &design.experiment);
    let records = Store::new(&dir).all();
    let fired: Vec<Fired> = std::fs::read_to_string(dir.join("fired-rules.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let out_dir = out.map(Path::to_path_buf).unwrap_or_else(|| dir_of_file(file).join(".nixl/reports").join(&design.experiment));
    let html = report::html(&design.experiment, &records, &fired);
    let path = out_dir.join("report.html");
    if let Err(e) = std::fs::create_dir_all(&out_dir).and_then(|_| std::fs::write(&path, html)) {
        eprintln!("error: cannot write {}: {e}", path.display());
        return ExitCode::from(1);
    }
    println!("Report of {} results written to {}", records.len(), path.display());
    ExitCode::SUCCESS
}
