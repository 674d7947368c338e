//! Results: statistics against published reference values, rules firing on the
//! local provider, the HTML report (also rendered in headless Chromium), and
//! logging to a real MLflow server.

use crate::local::{copy_examples, text, PORTS};
use crate::mlflow::{block, pairs, runs, start_mlflow};
use crate::support::nixl;
use nixl::results::stats;
use std::path::Path;
use std::process::{Command, Stdio};

/// Samples both sides compute the same way (integer arithmetic, then one division).
fn uniformish() -> Vec<f64> {
    (1..=50).map(|i| ((i * 7919) % 1000) as f64 / 1000.0).collect()
}
fn two_groups() -> Vec<f64> {
    let a = (1..=40).map(|i| 100.0 + ((i * 37) % 101) as f64 / 10.0);
    let b = (1..=40).map(|i| 160.0 + ((i * 53) % 97) as f64 / 10.0);
    a.chain(b).collect()
}
fn bell() -> Vec<f64> {
    let u = |i: u64, m: u64| ((i * m) % 1000) as f64 / 1000.0;
    (1..=100).map(|i| 50.0 + 10.0 * (u(i, 7919) + u(i, 104729) + u(i, 1299709) - 1.5)).collect()
}

/// Reference values from the PyPI package `diptest` 0.12.0 (a port of Maechler's
/// R package `diptest`, algorithm AS 217), computed once with
/// `diptest.diptest(np.array(x))`: (dip, p-value by its interpolation table).
#[test]
fn dip_test_matches_the_diptest_package() {
    let cases = [
        ("uniformish", uniformish(), 0.01851851851851855, 1.0),
        ("two groups", two_groups(), 0.20944816053511706, 0.0),
        ("bell", bell(), 0.030774647887324022, 0.7509864386481964),
    ];
    for (name, x, dip_ref, p_ref) in cases {
        let (d, p) = stats::dip_test(&x, 4000);
        assert!((d - dip_ref).abs() < 1e-12, "{name}: dip {d} vs {dip_ref}");
        // Our p-value is simulated (4000 uniform samples), theirs interpolated from a table.
        assert!((p - p_ref).abs() < 0.04, "{name}: p {p} vs {p_ref}");
    }
    // The two-component split of the two groups separates them exactly.
    let s = stats::two_component_split(&two_groups()).unwrap();
    assert_eq!((s.low_n, s.high_n), (40, 40));
}

/// Reference: SciPy 1.17.1 `scipy.stats.bootstrap((d,), np.mean, n_resamples=99999,
/// method="percentile", confidence_level=0.95, random_state=1)` on these differences
/// gives [0.13, 2.2133]. Different generators, so agreement is up to resampling noise.
#[test]
fn bootstrap_interval_matches_scipy() {
    let d: Vec<f64> = (1..=30).map(|i| ((i * 37) % 101) as f64 / 10.0 - 4.0).collect();
    assert!((stats::mean(&d) - 1.166666666666667).abs() < 1e-12);
    let (lo, hi) = stats::bootstrap_ci(&d, 20_000, 7, stats::mean).unwrap();
    assert!((lo - 0.13).abs() < 0.06, "low {lo}");
    assert!((hi - 2.2133333333333334).abs() < 0.06, "high {hi}");
    // Seeded: the same call gives the same interval.
    assert_eq!(stats::bootstrap_ci(&d, 20_000, 7, stats::mean), Some((lo, hi)));
}

/// Reference: SciPy 1.17.1 `pearsonr` and `spearmanr` on x = 1..8, y = x^2 with one tie.
#[test]
fn correlations_match_scipy() {
    let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    let y = [1.0, 4.0, 9.0, 16.0, 16.0, 36.0, 49.0, 64.0];
    let r = stats::pearson(&x, &y).unwrap();
    let rho = stats::spearman(&x, &y).unwrap();
    assert!((r - PEARSON_REF).abs() < 1e-12, "{r}");
    assert!((rho - SPEARMAN_REF).abs() < 1e-12, "{rho}");
}
const PEARSON_REF: f64 = 0.9539529720669739;
const SPEARMAN_REF: f64 = 0.9940297973880048;

fn apply(dir: &Path, file: &str, env: &[(&str, &str)]) -> String {
    let mut c = nixl();
    c.current_dir(dir).args(["apply", file, "--provider", "local", "--auto-approve"]);
    c.env_remove("MLFLOW_TRACKING_URI");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    t
}

fn destroy(dir: &Path, file: &str) {
    let _ = nixl().current_dir(dir).args(["destroy", file, "--provider", "local", "--auto-approve"]).output();
}

#[test]
fn a_rule_fires_on_bimodal_ttft_and_its_adhoc_pattern_runs_in_the_same_apply() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = copy_examples("rules");
    let plan = nixl().current_dir(&dir).args(["plan", "local-rules.nixl"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&plan.stdout).contains("+ rules-ll-latency-probe"), "ad hoc, not scheduled");
    let t = apply(&dir, "local-rules.nixl", &[]);
    assert!(t.contains("rule fired: when bimodal(\"ttft-bimodality\")"), "{t}");
    assert!(t.contains("because \"a bimodal TTFT calls for a transfer-level probe\""), "{t}");
    assert!(t.contains("running what a rule added: rules-ll-latency-probe"), "{t}");
    assert!(t.contains("] + rules-ll-latency-probe"), "{t}");
    let store = nixl::results::Store::new(&dir.join(".nixl/results/rules"));
    let dip = store.get("rules-analysis-ttft-bimodality").expect("dip test result");
    assert_eq!(dip.metrics["bimodal"], 1.0, "{:?}", dip.metrics);
    assert!(dip.metrics["p_value"] < 0.05);
    assert!(dip.metrics["phase_b_mean"] > 1.5 * dip.metrics["phase_a_mean"], "{:?}", dip.metrics);
    let probe = store.get("rules-ll-latency-probe").expect("the rule's pattern ran");
    assert_eq!(probe.metrics["latency_us"], 12.5);
    // The next plan keeps the pattern the rule ran: nothing to do, nothing forgotten.
    let plan = nixl().current_dir(&dir).args(["plan", "local-rules.nixl", "--detailed-exitcode"]).output().unwrap();
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    destroy(&dir, "local-rules.nixl");
}

fn svg_count(html: &str) -> usize {
    html.matches("<svg class=\"plot\"").count()
}

/// The report of a local run with a rule that fired: provenance header, the synthetic
/// banner, a line per layer, the analyses' intervals with n and method, a histogram
/// with a count axis for every flagged result; rendered in Chromium, screenshot kept
/// as target/report-screenshot.png.
#[test]
fn the_report_of_a_local_run_has_provenance_plots_and_renders_in_chromium() {
    let dir = {
        let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
        let dir = copy_examples("report");
        apply(&dir, "local-rules.nixl", &[]);
        destroy(&dir, "local-rules.nixl");
        dir
    };
    let out_dir = dir.join("out");
    let out = nixl().current_dir(&dir).args(["report", "local-rules.nixl", "--out"]).arg(&out_dir).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(svg_count(&html) >= 2, "{html}");
    // TTFT and TPOT lines for both E2E layers; concurrency has one level and says so.
    assert!(html.contains(">L1-Unified<") && html.contains(">L2-EFA<"), "{html}");
    assert!(html.contains("concurrency = 4"));
    assert!(html.matches("<path class=\"series\"").count() >= 4);
    assert!(html.contains("rules-analysis-efa-vs-unified") && html.contains("95% CI"));
    assert!(html.contains("n = 3, Student t"), "the interval says its n and method");
    assert!(html.contains("rules-efa-12k-c4"));
    let dom = chromium_renders(&out_dir.join("report.html"), &dir);
    let provenance = dom.split("id=\"provenance\"").nth(1).expect("a provenance header").split("</table>").next().unwrap();
    for want in ["Qwen/Qwen2.5-7B-Instruct", "Provider", ">local<", "Instance type (as launched)", "vLLM", "NIXL", "0.1.0"] {
        assert!(provenance.contains(want), "{want} missing from the header: {provenance}");
    }
    let banner = dom.split("id=\"synthetic-banner\"").nth(1).expect("the synthetic banner");
    assert!(banner.contains(nixl::results::report::SYNTHETIC_BANNER), "{banner}");
    // Every flagged result has its histogram, with a count axis.
    let dip = nixl::results::Store::new(&dir.join(".nixl/results/rules")).get("rules-analysis-ttft-bimodality").unwrap();
    let flagged: Vec<&str> = dip.tests.iter().filter(|t| t.flagged).filter_map(|t| t.result.as_deref()).collect();
    assert!(!flagged.is_empty());
    for id in flagged {
        assert!(dom.contains(&format!("{id}: bimodal")), "no histogram of {id}");
    }
    assert!(dom.contains("class=\"count\""), "histograms have a count axis");
    decisions_match_a_hand_computation(&dir, &dom);
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/report-screenshot.png");
    if dir.join("report.png").exists() {
        std::fs::copy(dir.join("report.png"), &shot).unwrap();
    }
}

/// The price of g6e.12xlarge in std/aws's catalogue, read from the file, and the stack's two nodes.
fn catalogue_price() -> f64 {
    let aws = std::fs::read_to_string(crate::support::root().join("stdlib/aws.nixl")).unwrap();
    let block = aws.split("instance \"g6e.12xlarge\"").nth(1).unwrap().split('}').next().unwrap();
    let price = block.lines().find(|l| l.trim_start().starts_with("price")).unwrap();
    let price: f64 = price.split('$').nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(price, 10.49, "the figure this test was written against");
    price
}

/// The section of the rendered DOM from `<tag id="ID"` to the tag's end.
pub(crate) fn element<'d>(dom: &'d str, id: &str, end: &str) -> &'d str {
    let from = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the report"));
    let rest = &dom[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

/// Throughput per GPU, $ per million output tokens and the Pareto fronts, computed
/// here by hand from the stored records and the catalogue price, found in the rendered page.
fn decisions_match_a_hand_computation(dir: &Path, dom: &str) {
    let store = nixl::results::Store::new(&dir.join(".nixl/results/rules"));
    let e2e: Vec<nixl::results::ResultRecord> =
        store.all().into_iter().filter(|r| r.metrics.contains_key("throughput_tps")).collect();
    assert_eq!(e2e.len(), 6, "three prompts in each of two E2E layers");
    let (price, nodes) = (catalogue_price(), 2.0);
    struct Hand {
        id: String,
        layer: String,
        per_gpu: f64,
        p99: f64,
        usd_per_mtok: f64,
    }
    let mut hand = vec![];
    for r in &e2e {
        let s = |k: &str| r.settings[k].as_str().unwrap().to_string();
        assert_eq!(s("tp"), "1", "the stand-in server serves with tp = 1");
        // Unified: its tp; disaggregated: prefill tp + decode tp.
        let gpus = if s("mode") == "disaggregated" { 2.0 } else { 1.0 };
        let launch = r.launch.as_ref().expect("apply records the launch a result was measured in");
        let sharing = e2e.iter().filter(|q| q.launch.as_ref() == Some(launch)).count() as f64;
        assert_eq!(sharing, 3.0, "one launch per layer, three patterns each");
        let usd = (r.seconds + launch.startup_seconds / sharing) * nodes * price / 3600.0;
        let tokens = r.metrics["throughput_tps"] * r.metrics["duration_s"];
        hand.push(Hand {
            id: r.id.clone(),
            layer: r.layer.clone(),
            per_gpu: r.metrics["throughput_tps"] / gpus,
            p99: r.metrics["ttft_p99"],
            usd_per_mtok: usd / tokens * 1e6,
        });
    }
    for h in &hand {
        let row = element(dom, &format!("cost-{}", h.id), "</tr>");
        for want in [format!("${:.2}", h.usd_per_mtok), format!("{:.1}", h.per_gpu)] {
            assert!(row.contains(&format!(">{want}<")), "{want} missing for {}: {row}", h.id);
        }
    }
    // The fronts, by hand: no other point at most as slow with at least the throughput, better in one.
    let front = |pts: &[&Hand]| -> Vec<String> {
        let beats = |a: &Hand, b: &Hand| a.p99 <= b.p99 && a.per_gpu >= b.per_gpu && (a.p99 < b.p99 || a.per_gpu > b.per_gpu);
        let mut on: Vec<&&Hand> = pts.iter().filter(|p| !pts.iter().any(|q| beats(q, p))).collect();
        on.sort_by(|a, b| a.per_gpu.total_cmp(&b.per_gpu));
        on.iter().map(|p| p.id.clone()).collect()
    };
    let across = front(&hand.iter().collect::<Vec<_>>());
    let table = element(dom, "front-all", "</table>");
    assert_eq!(table.matches("<tr><td>").count(), across.len(), "{table}");
    assert!(across.iter().all(|id| table.contains(&format!(">{id}<"))), "{across:?} vs {table}");
    assert_eq!(store.get("rules-analysis-latency-front").unwrap().front, across, "the pareto analysis records the same front");
    for layer in ["L1-Unified", "L2-EFA"] {
        let mine: Vec<&Hand> = hand.iter().filter(|h| h.layer == layer).collect();
        let on = front(&mine);
        let cheapest = mine.iter().filter(|h| on.contains(&h.id)).map(|h| h.usd_per_mtok).fold(f64::INFINITY, f64::min);
        let row = element(dom, &format!("layer-cost-{layer}"), "</tr>");
        assert!(row.contains(&format!(">${cheapest:.2}<")), "{layer}: cheapest front point ${cheapest:.2} missing: {row}");
        assert!(row.contains(&format!("<td>{}</td>", on.len())), "{layer}: front of {}: {row}", on.len());
        eprintln!("{layer}: front {on:?}, cheapest on it ${cheapest:.4} per Mtok");
    }
    for h in &hand {
        eprintln!("{}: {:.2} tok/s per GPU, ${:.4} per Mtok", h.id, h.per_gpu, h.usd_per_mtok);
    }
    // Drawn: a front line and ringed points per chart, and the GPU counts the comparison uses.
    assert_eq!(dom.matches("<path class=\"front\"").count(), 3, "per layer and across layers");
    assert!(dom.matches("class=\"front-point\"").count() >= 3);
    let note = element(dom, "equal-gpu-note", "</p>");
    assert!(note.contains("L1-Unified 1 GPU(s)") && note.contains("L2-EFA 2 GPU(s)"), "{note}");
    // `nixl results` prints the same figure.
    let out = nixl().current_dir(dir).args(["results", "local-rules.nixl"]).output().unwrap();
    let first = &hand[0];
    let line = text(&out).lines().find(|l| l.starts_with(&first.id)).map(str::to_string).unwrap_or_default();
    assert!(line.contains(&format!("usd_per_mtok={:.2}", first.usd_per_mtok)), "{line}");
}

/// Opens the page in headless Chromium: no script errors, plots in the DOM, a screenshot
/// with content (`report.png` in `scratch`). Returns the rendered DOM.
pub(crate) fn chromium_renders(page: &Path, scratch: &Path) -> String {
    if std::env::var("NIXL_SKIP_BROWSER_TESTS").as_deref() == Ok("1") {
        eprintln!("skipping the browser check: NIXL_SKIP_BROWSER_TESTS=1");
        return std::fs::read_to_string(page).unwrap();
    }
    let bin = ["chromium", "chromium-browser"].into_iter().find(|b| Command::new(b).arg("--version").output().is_ok());
    let bin = bin.expect("chromium is not installed (apt-get install chromium), or set NIXL_SKIP_BROWSER_TESTS=1");
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let run = |extra: &[String], profile: &str| {
        let profile = scratch.join(profile);
        std::fs::create_dir_all(&profile).unwrap();
        Command::new(bin)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
            .args([
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(&url)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let dom = run(&["--dump-dom".into()], "profile-dom");
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    let log = String::from_utf8_lossy(&dom.stderr);
    assert!(dom.status.success(), "{log}");
    assert!(!log.contains("Uncaught"), "script error in the report:\n{log}");
    assert!(svg_count(&dom_text) >= 2, "the rendered DOM lacks the plots:\n{dom_text}");
    assert!(dom_text.contains("<path class=\"series\""));
    let png = scratch.join("report.png");
    let shot = run(&[format!("--screenshot={}", png.display()), "--window-size=1400,2600".into()], "profile-shot");
    assert!(shot.status.success(), "{}", String::from_utf8_lossy(&shot.stderr));
    let bytes = std::fs::read(&png).expect("chromium wrote no screenshot");
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
    // A blank white page compresses to a few kilobytes; plots, text and tables do not.
    assert!(bytes.len() > 30_000, "the screenshot looks empty ({} bytes)", bytes.len());
    dom_text.into_owned()
}

#[test]
fn results_are_logged_to_a_real_mlflow_server_once() {
    let dir = copy_examples("mlflow");
    let Some(server) = start_mlflow(&dir) else { return };
    let uri = server.uri.clone();
    {
        let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
        let t = apply(&dir, "local-demo.nixl", &[("MLFLOW_TRACKING_URI", &uri)]);
        assert!(t.contains("logged to MLflow run"), "{t}");
        destroy(&dir, "local-demo.nixl");
    }
    let store = nixl::results::Store::new(&dir.join(".nixl/results/demo"));
    let local = store.all();
    assert_eq!(local.len(), 8);
    let found = runs(&uri, "demo");
    assert_eq!(found.len(), local.len(), "one run per result");
    // Names and values read back through the search API.
    let run = found.iter().find(|r| r["info"]["run_name"] == "demo-efa-12k-c4").expect("the pattern's run");
    let rec = store.get("demo-efa-12k-c4").unwrap();
    let metrics = pairs(run, "metrics");
    for name in ["ttft_mean", "ttft_p50", "ttft_p99", "tpot_mean", "tpot_p50", "tpot_p99", "e2e_latency_mean", "throughput_tps"] {
        let v = metrics.get(name).and_then(|v| v.as_f64()).unwrap_or_else(|| panic!("metric {name} missing: {metrics:?}"));
        assert!((v - rec.metrics[name]).abs() < 1e-9 * v.abs().max(1.0), "{name}: {v} vs {}", rec.metrics[name]);
    }
    let tags = pairs(run, "tags");
    // The provenance, read back through the REST API: local figures are marked synthetic.
    let prov = rec.provenance.as_ref().expect("apply records provenance");
    assert_eq!(tags["nixl.provider"], "local");
    assert_eq!(tags["nixl.synthetic"], "true");
    assert_eq!(tags["nixl.instance_type"], prov.instance_type.as_deref().unwrap());
    assert_eq!(tags["nixl.stack"], prov.stack.as_deref().unwrap());
    assert_eq!(tags["nixl.zone"], prov.zone.as_deref().unwrap());
    assert_eq!(tags["nixl.model"], prov.model.as_deref().unwrap());
    assert_eq!(tags["nixl.nixl_cli"], prov.nixl_cli.as_str());
    for (metric, unit) in &rec.units {
        assert_eq!(tags[&format!("nixl.unit.{metric}")], unit.as_str());
    }
    // The run spans the measurement, not the push.
    let (start, end) = nixl::results::mlflow::run_times(&rec).unwrap();
    assert_eq!((run["info"]["start_time"].as_i64(), run["info"]["end_time"].as_i64()), (Some(start), Some(end)));
    assert_eq!(tags["layer"], "L2-EFA");
    assert_eq!(tags["mode"], "disaggregated");
    assert_eq!(tags["transport"], "efa");
    assert_eq!(tags["nixl_hash"], rec.hash.as_str());
    // Per-request samples went up as an artifact.
    let run_id = run["info"]["run_id"].as_str().unwrap();
    let listed = block(async {
        reqwest::get(format!("{uri}/api/2.0/mlflow/artifacts/list?run_id={run_id}")).await.unwrap().text().await.unwrap()
    });
    assert!(listed.contains("samples.json"), "{listed}");
    // So did the raw output, byte for byte.
    assert!(listed.contains(&rec.raw), "{listed}");
    let raw = block(async {
        let url = format!(
            "{uri}/api/2.0/mlflow-artifacts/artifacts/{}/{run_id}/artifacts/{}",
            run["info"]["experiment_id"].as_str().unwrap(),
            rec.raw
        );
        reqwest::get(url).await.unwrap().bytes().await.unwrap()
    });
    assert_eq!(raw.as_ref(), store.raw(&rec).unwrap().as_slice());
    let params = pairs(run, "params");
    assert_eq!(params["pattern_id"], "demo-efa-12k-c4");
    assert_eq!(params["prompt"], "12K");
    assert_eq!(params["model"], prov.model.as_deref().unwrap());
    // An analysis's run shows its method and inputs, not the server's ports.
    let analysis = found.iter().find(|r| r["info"]["run_name"] == "demo-analysis-efa-vs-unified").expect("the analysis run");
    let params = pairs(analysis, "params");
    assert!(params["method"].as_str().unwrap().starts_with("compare("), "{params:?}");
    assert!(params.contains_key("inputs") && !params.contains_key("proxy_port"), "{params:?}");
    // Logging again finds every run: nothing is duplicated.
    let push = nixl()
        .current_dir(&dir)
        .env("MLFLOW_TRACKING_URI", &uri)
        .args(["results", "local-demo.nixl", "--push"])
        .output()
        .unwrap();
    let t = text(&push);
    assert!(push.status.success(), "{t}");
    assert!(t.contains("0 run(s) logged, 8 already there, 0 failed"), "{t}");
    assert_eq!(runs(&uri, "demo").len(), 8);
    // Without a tracking URI, results stay local and --push says why it cannot.
    let none = nixl()
        .current_dir(&dir)
        .env_remove("MLFLOW_TRACKING_URI")
        .args(["results", "local-demo.nixl", "--push"])
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(1));
    assert!(text(&none).contains("MLFLOW_TRACKING_URI"), "{}", text(&none));
}

fn record(id: &str, layer: &str, settings: &[(&str, &str)], metrics: &[(&str, f64)]) -> nixl::results::ResultRecord {
    nixl::results::ResultRecord {
        id: id.into(),
        hash: "h".into(),
        layer: layer.into(),
        kind: if layer == "L4-Analysis" { nixl::results::ResultKind::Analysis } else { nixl::results::ResultKind::Pattern },
        finished_at: String::new(),
        seconds: 1.0,
        settings: settings.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect(),
        metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        samples: Default::default(),
        units: Default::default(),
        raw: String::new(),
        provenance: None,
        intervals: vec![],
        tests: vec![],
        front: vec![],
        launch: None,
    }
}

/// The seed's four criteria as written in examples/phase2.nixl, on made-up results.
#[test]
fn the_seeds_four_rules_in_phase2_fire_on_their_conditions_only() {
    let loaded = nixl::pipeline::load(&crate::support::root().join("examples/phase2.nixl"));
    let design = loaded.design(Some("phase2")).unwrap();
    let rules = nixl::design::merge::merged(&loaded.check.model, "phase2", &mut vec![]).unwrap().rules;
    assert_eq!(rules.len(), 4);
    let fired = |results: &[nixl::results::ResultRecord], parent: &[nixl::results::ResultRecord]| -> Vec<usize> {
        let ctx = nixl::results::rules::Ctx { design, results, parent, scheduled: &[] };
        nixl::results::rules::evaluate(&rules, &ctx).iter().map(|f| f.rule).collect()
    };
    // Nothing measured yet: every condition is undecided, none fires.
    assert!(fired(&[], &[]).is_empty());
    let calm = vec![
        record("a", "L2-EFA", &[], &[("ttft_mean", 1000.0), ("tpot_mean", 20.0)]),
        record("b", "L1-Unified", &[], &[("tpot_mean", 25.0)]),
        record("c1", "L3-TCP", &[("concurrency", "1")], &[("ttft_mean", 1000.0)]),
        record("c16", "L3-TCP", &[("concurrency", "16")], &[("ttft_mean", 2900.0)]),
        record(
            "p2-analysis-bimodality-detection",
            "L4-Analysis",
            &[("analysis", "bimodality-detection")],
            &[("bimodal", 0.0), ("dip", 0.01)],
        ),
    ];
    let phase1 = vec![record("p1", "L2-EFA", &[], &[("ttft_mean", 1200.0)])];
    assert!(fired(&calm, &phase1).is_empty(), "{:?}", fired(&calm, &phase1));
    let mut rough = calm.clone();
    rough[0].metrics.insert("ttft_mean".into(), 1600.0); // 33% above phase 1
    rough[1].metrics.insert("tpot_mean".into(), 36.0); // 16 ms gap
    rough[3].metrics.insert("ttft_mean".into(), 3100.0); // more than 3x c=1
    rough[4].metrics.insert("bimodal".into(), 1.0);
    assert_eq!(fired(&rough, &phase1), vec![0, 1, 2, 3]);
    // Each rule names the ad-hoc pool of its tool.
    let ctx = nixl::results::rules::Ctx { design, results: &rough, parent: &phase1, scheduled: &[] };
    let f = nixl::results::rules::evaluate(&rules, &ctx);
    assert!(!f[2].patterns.is_empty() && f[2].patterns.iter().all(|p| p.contains("fi-pingpong")), "{:?}", f[2].patterns);
    assert!(f[1].reason.contains("15 ms"));
}

/// `probe.nixl`: an ad-hoc TCP layer that the bimodal rule fires; `extra` adds settings to the layer.
pub fn write_probe(dir: &Path, extra: &str) {
    let text = format!(
        r#"import "./local-rules.nixl"

experiment probe extends rules {{
  prefix = "probe"

  layer "L6-TCP-Probe" {{
    new       = true
    mode      = disaggregated
    transport = tcp
    adhoc     = true
{extra}    id        = "{{prefix}}-tcp-{{prompt}}-c{{concurrency}}"
  }}

  when bimodal("ttft-bimodality") then run ["probe-tcp-12k-c4"] because "see whether TCP shows the same two phases"
}}
"#
    );
    std::fs::write(dir.join("probe.nixl"), text).unwrap();
}

#[test]
fn an_adhoc_e2e_pattern_fired_by_a_rule_gets_its_own_server_launch_in_the_same_apply() {
    let _g = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = copy_examples("rules-e2e");
    write_probe(&dir, "");
    let t = apply(&dir, "probe.nixl", &[]);
    assert!(t.contains("adds probe-tcp-12k-c4"), "{t}");
    assert!(t.contains("launch 3 for what rules added: probe-tcp-12k-c4"), "{t}");
    // Two scheduled launches (unified, EFA) and one for the rule's TCP pattern.
    assert!(t.contains("0 failed, 0 skipped, 3 server launches"), "{t}");
    let store = nixl::results::Store::new(&dir.join(".nixl/results/probe"));
    let rec = store.get("probe-tcp-12k-c4").expect("the rule's E2E pattern ran");
    assert!(rec.metrics["ttft_mean"] > 0.0);
    let plan = nixl().current_dir(&dir).args(["plan", "probe.nixl", "--detailed-exitcode"]).output().unwrap();
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    // Status counts the pattern the rule ran as done, the two it did not as ad hoc.
    let status = nixl().current_dir(&dir).args(["status", "probe.nixl", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_else(|_| panic!("{}", text(&status)));
    let probe = v["layers"].as_array().unwrap().iter().find(|l| l["layer"] == "L6-TCP-Probe").unwrap();
    assert_eq!((&probe["done"], &probe["pending"], &probe["adhoc"]), (&1.into(), &0.into(), &2.into()), "{v}");
    destroy(&dir, "probe.nixl");
}

/// A made-up but consistent figure for a pattern's levels: the same in both phases.
fn figure(s: &nixl::results::rules::Scheduled) -> f64 {
    let prompt: f64 = s.settings.get("prompt").and_then(|p| p.trim_end_matches('K').parse().ok()).unwrap_or(1.0);
    let c: f64 = s.settings.get("concurrency").and_then(|c| c.parse().ok()).unwrap_or(1.0);
    100.0 + 10.0 * prompt + 5.0 * c
}

fn records_of(scheduled: &[nixl::results::rules::Scheduled], shift: f64, layer: &str) -> Vec<nixl::results::ResultRecord> {
    scheduled
        .iter()
        .filter(|s| s.settings.contains_key("prompt") && s.settings.contains_key("concurrency"))
        .map(|s| {
            let settings: Vec<(&str, &str)> = s.settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let k = if s.layer == layer { shift } else { 1.0 };
            let mut r = record(&s.id, &s.layer, &settings, &[("ttft_mean", figure(s) * k), ("tpot_mean", 20.0)]);
            r.hash = s.hash.clone();
            r
        })
        .collect()
}

/// Phase 2's four rules, on results of every scheduled pattern: identical phases fire
/// nothing; a 40 % TTFT shift of phase 2's EFA layer fires the 30 % rule once, and
/// only when the last EFA result is in (the first result alone is not a layer's mean).
#[test]
fn phase2_rules_fire_on_final_like_for_like_figures_only() {
    let loaded = nixl::pipeline::load(&crate::support::root().join("examples/phase2.nixl"));
    let model = &loaded.check.model;
    let (p1, p2) = (loaded.campaign(Some("phase1")).unwrap(), loaded.campaign(Some("phase2")).unwrap());
    let (s1, s2) = (nixl::results::rules::scheduled(model, p1), nixl::results::rules::scheduled(model, p2));
    let rules = &p2.experiment.rules;
    let analysis = s2.iter().find(|s| s.analysis.as_deref() == Some("bimodality-detection")).unwrap();
    let mut calm_dip = record(&analysis.id, "L4-Analysis", &[("analysis", "bimodality-detection")], &[("bimodal", 0.0)]);
    calm_dip.hash = analysis.hash.clone();
    let fired = |results: &[nixl::results::ResultRecord], parent: &[nixl::results::ResultRecord]| -> Vec<usize> {
        let ctx = nixl::results::rules::Ctx { design: &p2.design, results, parent, scheduled: &s2 };
        nixl::results::rules::evaluate(rules, &ctx).iter().map(|f| f.rule).collect()
    };
    let phase1 = records_of(&s1, 1.0, "");
    let mut same = records_of(&s2, 1.0, "");
    same.push(calm_dip.clone());
    assert!(same.len() > 30 && phase1.len() > 70, "{} {}", same.len(), phase1.len());
    assert_eq!(fired(&same, &phase1), Vec::<usize>::new(), "identical data must not fire");

    let mut shifted = records_of(&s2, 1.4, "L2-EFA");
    shifted.push(calm_dip);
    // Every EFA result but the last: the layer's mean is not final, the rule waits.
    let last_efa = shifted.iter().rposition(|r| r.layer == "L2-EFA").unwrap();
    let partial: Vec<_> = shifted.iter().enumerate().filter(|(i, _)| *i != last_efa).map(|(_, r)| r.clone()).collect();
    assert_eq!(fired(&partial, &phase1), Vec::<usize>::new());
    let ctx = nixl::results::rules::Ctx { design: &p2.design, results: &partial, parent: &phase1, scheduled: &s2 };
    let why = ctx.eval(&rules[0].cond).unwrap_err();
    assert!(why.is_undecided() && why.to_string().contains("1 of the"), "{why}");
    assert_eq!(fired(&shifted, &phase1), vec![0], "the 30% rule, once");
    // A stale result (settings changed since: another hash) does not count as final.
    let mut stale = shifted.clone();
    stale[last_efa].hash = "old".into();
    assert_eq!(fired(&stale, &phase1), Vec::<usize>::new());
}
