//! `nixl report`: a self-contained HTML page of the stored results.

use super::args::{self, FileArgs};
use super::output;
use nixl::diagnostics::render::Format;
use nixl::results::{report, rules::Fired, Store};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: FileArgs,
    /// Directory of report.html (default: .nixl/reports/<experiment> beside the file).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn run(a: &Args) -> ExitCode {
    let opened = match args::open(&a.target, Format::Auto) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let (file, campaign) = (&opened.file, opened.campaign());
    let dir = args::results_dir(file, campaign.name());
    let records = Store::new(&dir).all();
    let fired: Vec<Fired> = std::fs::read_to_string(dir.join(nixl::apply::FIRED_LOG))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let out_dir = a.out.clone().unwrap_or_else(|| args::dir_of(file).join(".nixl/reports").join(campaign.name()));
    let factors = nixl::results::factors::of_design(&campaign.design);
    let generated = nixl::state::lock::now_rfc3339();
    let pricing = nixl::results::decisions::Pricing::of(&opened.loaded.check.model, campaign);
    let html = report::html(&report::Report {
        experiment: campaign.name(),
        factors: &factors,
        results: &records,
        fired: &fired,
        pricing: &pricing,
        generated: &generated,
    });
    let path = out_dir.join("report.html");
    if let Err(e) = std::fs::create_dir_all(&out_dir).and_then(|_| std::fs::write(&path, html)) {
        return output::fail(&format!("cannot write {}: {e}", path.display()));
    }
    output::out(&format!("Report of {} results written to {}\n", records.len(), path.display()));
    ExitCode::SUCCESS
}
