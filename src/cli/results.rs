//! `nixl results`: the stored results of a campaign as a table, CSV or JSON,
//! or pushed to MLflow with `--push` (runs already there are not duplicated).

use super::args::{self, CampaignArgs};
use super::output;
use nixl::design::Campaign;
use nixl::diagnostics::render::Format;
use nixl::results::{mlflow, ResultRecord, Store};
use std::path::Path;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ResultsFormat {
    /// One line per result: id, layer, metrics.
    Table,
    /// A header, then one row per result: id, layer, kind, every factor, provenance, every metric.
    Csv,
    /// The stored records, one JSON array.
    Json,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub campaign: CampaignArgs,
    /// How to print the results.
    #[arg(long, value_enum, default_value = "table")]
    pub format: ResultsFormat,
    /// Only the results of this layer.
    #[arg(long)]
    pub layer: Option<String>,
    /// Log the results to MLflow (MLFLOW_TRACKING_URI or the file's `mlflow.tracking_uri`);
    /// runs already there are not duplicated.
    #[arg(long)]
    pub push: bool,
    /// Also the records of patterns the file no longer declares (pruned or removed),
    /// which are otherwise left out.
    #[arg(long)]
    pub all: bool,
}

/// The campaign's MLflow target, if a tracking URI is set (environment or file).
pub fn mlflow_target(campaign: &Campaign, file: &Path) -> Option<mlflow::Target> {
    mlflow::target(&campaign.experiment.mlflow, campaign.name(), &args::results_dir(file, campaign.name()))
}

pub fn run(a: &Args) -> ExitCode {
    let opened = match args::open(&a.campaign.target, Format::Auto) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let (file, campaign) = (&opened.file, opened.campaign());
    if let Some(l) = &a.layer {
        let layers = campaign.design.layers.iter().map(|x| x.name.as_str());
        if !campaign.design.layers.iter().any(|x| &x.name == l) {
            let hint = nixl::diagnostics::did_you_mean(l, layers.clone()).map(|h| h.text);
            let hint = hint.unwrap_or_else(|| format!("its layers are: {}", layers.collect::<Vec<_>>().join(", ")));
            return output::fail(&format!("experiment `{}` has no layer `{l}`; {hint}", campaign.name()));
        }
    }
    let store = Store::new(&args::results_dir(file, campaign.name()));
    let stored: Vec<ResultRecord> = store.all().into_iter().filter(|r| a.layer.as_ref().is_none_or(|l| &r.layer == l)).collect();
    // A pruned pattern's old record is not a result of this design.
    let (records, gone): (Vec<ResultRecord>, Vec<ResultRecord>) =
        stored.into_iter().partition(|r| a.all || campaign.design.pattern(&r.id).is_some());
    if !gone.is_empty() {
        output::err(&format!(
            "note: {} stored result(s) of patterns the file no longer declares are left out (--all shows them)\n",
            gone.len()
        ));
    }
    if a.push {
        return push(campaign, file, &store, &records);
    }
    output::out(&match a.format {
        ResultsFormat::Json => serde_json::to_string_pretty(&records).expect("records serialise") + "\n",
        ResultsFormat::Csv => nixl::results::export::csv(&records, &nixl::results::factors::of_design(&campaign.design)),
        ResultsFormat::Table => {
            table(campaign, &records, &nixl::results::decisions::Pricing::of(&opened.loaded.check.model, campaign))
        }
    });
    ExitCode::SUCCESS
}

/// One line per result: id, layer, metrics; an E2E result also its decision figures
/// (GPUs, throughput per GPU and per user, dollars per million output tokens), computed
/// from the record as the report does.
fn table(campaign: &Campaign, records: &[ResultRecord], pricing: &nixl::results::decisions::Pricing) -> String {
    if records.is_empty() {
        return format!("No results yet for experiment {}.\n", campaign.name());
    }
    let decided = nixl::results::decisions::decisions(records, pricing);
    let mut s = String::new();
    for r in records {
        let mut m: Vec<String> = r.metrics.iter().map(|(k, v)| format!("{k}={v:.2}")).collect();
        if let Some(d) = decided.iter().find(|d| d.id == r.id) {
            let figures = [
                ("gpus", d.gpus),
                ("tps_per_gpu", d.tps_per_gpu),
                ("tps_per_user", d.tps_per_user),
                ("usd_per_mtok", d.cost.as_ref().map(|c| c.usd_per_mtok)),
            ];
            m.extend(figures.iter().filter_map(|(k, v)| v.map(|v| format!("{k}={v:.2}"))));
        }
        s += &format!("{:<36} {:<14} {}\n", r.id, r.layer, m.join("  "));
    }
    s
}

fn push(campaign: &Campaign, file: &Path, store: &Store, records: &[ResultRecord]) -> ExitCode {
    let Some(t) = mlflow_target(campaign, file) else {
        return output::fail(
            "no MLflow server: set MLFLOW_TRACKING_URI or `mlflow = { tracking_uri = \"...\" }` in the experiment",
        );
    };
    let rt = match args::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(mlflow::push(&t, store, records)) {
        Ok(p) => {
            let mut s = format!(
                "MLflow experiment {} at {}: {} run(s) logged, {} already there, {} failed.\n",
                t.experiment,
                t.uri,
                p.written,
                p.existing,
                p.failed.len()
            );
            if let Some(uri) = &p.artifacts_elsewhere {
                s += &format!("MLflow keeps artifacts at {uri}: {}\n", mlflow::Artifacts::NOT_UPLOADED);
            }
            for (id, e) in &p.failed {
                s += &format!("  {id}: {e}\n");
            }
            output::out(&s);
            if p.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => output::fail(&e.to_string()),
    }
}
