//! `nixl status`: per layer, what is done, failed and pending, with the last
//! errors, the time used and the time the plan says is left.

use super::args::CampaignArgs;
use super::output;
use super::plan::{self, Selection};
use nixl::address::ActionId;
use nixl::check::value::fmt_duration;
use nixl::diagnostics::render::Format;
use nixl::plan::{Change, Kind, Plan};
use nixl::state::{State, Status};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub campaign: CampaignArgs,
    /// Print the status as one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
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

pub fn run(a: &Args) -> ExitCode {
    let p = match plan::make(&a.campaign, &Selection::default(), if a.json { Format::Json } else { Format::Auto }, false) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let Ok(campaign) = p.loaded.campaign(Some(&p.plan.experiment)) else {
        return output::fail("the planned experiment vanished");
    };
    let state_path = super::args::state_path(&p.file, campaign.name(), a.campaign.state.as_deref());
    let state = match State::load(&state_path) {
        Ok(s) => s,
        Err(e) => return output::fail(&e.to_string()),
    };
    let design = &campaign.design;
    let changes: std::collections::HashMap<&ActionId, nixl::plan::Change> =
        p.plan.actions.iter().map(|a| (&a.id, a.change)).collect();
    let mut rows: Vec<LayerStatus> = vec![];
    let mut used = 0.0;
    for (li, l) in design.layers.iter().enumerate() {
        let mut row = LayerStatus { layer: l.name.clone(), done: 0, failed: 0, pending: 0, adhoc: 0, errors: vec![] };
        for pat in design.patterns.iter().filter(|x| x.layer as usize == li) {
            let id = ActionId::Pattern(pat.id.clone());
            let rec = state.actions.get(&id);
            // An ad-hoc pattern counts as ad hoc until a rule or the user has run it.
            if pat.adhoc && rec.is_none() {
                row.adhoc += 1;
                continue;
            }
            match (changes.get(&id).copied(), rec) {
                (Some(Change::NoOp), r) => {
                    row.done += 1;
                    used += r.and_then(|r| r.seconds).unwrap_or(0.0);
                }
                // An ad-hoc pattern a rule (or `--target`) ran: plans schedule it only when
                // asked again, so it has no action here, yet it is done.
                (None, Some(r)) if pat.adhoc && r.status == Status::Done => {
                    row.done += 1;
                    used += r.seconds.unwrap_or(0.0);
                }
                (_, Some(r)) if r.status == Status::Failed => {
                    row.failed += 1;
                    let first = summary_line(r.error.as_deref().unwrap_or(""));
                    row.errors.push((pat.id.to_string(), first));
                }
                _ => row.pending += 1,
            }
        }
        rows.push(row);
    }
    let remaining = p.plan.estimate.wall_seconds;
    let by_set = done_by_set(&state);
    if a.json {
        let v = serde_json::json!({ "experiment": p.plan.experiment, "layers": rows, "seconds_used": used, "seconds_remaining_estimate": remaining, "done_by_set": by_set });
        output::out(&(serde_json::to_string_pretty(&v).expect("status serialises") + "\n"));
    } else {
        output::out(&(text(&p.plan, &rows, used, remaining) + &sets_line(&by_set)));
    }
    ExitCode::SUCCESS
}

fn text(plan: &Plan, rows: &[LayerStatus], used: f64, remaining: f64) -> String {
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

/// How many done patterns and steps each node set ran (`parallel`), from the records.
fn done_by_set(state: &State) -> std::collections::BTreeMap<u32, usize> {
    let mut by = std::collections::BTreeMap::new();
    for r in state.actions.values().filter(|r| r.status == Status::Done) {
        if let Some(set) = r.set {
            *by.entry(set).or_insert(0) += 1;
        }
    }
    by
}

/// "Node sets: set 1 ran 4, set 2 ran 3" when the campaign ran on several sets; else nothing.
fn sets_line(by_set: &std::collections::BTreeMap<u32, usize>) -> String {
    if by_set.is_empty() {
        return String::new();
    }
    let each: Vec<String> = by_set.iter().map(|(set, n)| format!("set {set} ran {n}")).collect();
    format!("Node sets: {} (patterns and steps done, by the set they ran on).\n", each.join(", "))
}

/// One line for an error: its first, and when that only introduces what follows
/// ("exit code 1 on node1:"), the first line after it that says something.
fn summary_line(error: &str) -> String {
    let mut lines = error.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("").to_string();
    match lines.next() {
        Some(next) if first.ends_with(':') => format!("{first} {next}"),
        _ => first,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_error_that_ends_in_a_colon_shows_what_follows() {
        assert_eq!(super::summary_line("exit code 1 on node1:\n\n  no such file\nmore"), "exit code 1 on node1: no such file");
        assert_eq!(super::summary_line("timed out\nafter 5 s"), "timed out");
        assert_eq!(super::summary_line(""), "");
    }
}
