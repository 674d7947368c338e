//! Analyses declared in the file, computed on the local machine from stored results.

use super::{decisions, pareto, stats, Correction, Interval, IntervalMethod, ResultRecord, ResultTest};
use crate::check::analysis::{latency_key, DEFAULT_LATENCY};
use crate::check::value::Value;
use std::collections::BTreeMap;
use std::fmt;

/// Why an analysis produced no figures. Each variant is one cause; Display is the message apply reports.
#[derive(Clone, Debug, PartialEq)]
pub enum AnalysisError {
    /// `compare` without `a`/`b` and fewer than two input layers.
    NeedsTwoLayers,
    /// `compare` found no pair of results of layers `a` and `b` at the same levels with metric `key`.
    NoMatchingLevels { a: String, b: String, key: String },
    /// `disaggregation_overhead` found no disaggregated result with a unified one at the same levels.
    NoProxyPairs,
    /// `tpot_spread`: an input layer has no `tpot_mean` result.
    NoTpotResults { layer: String },
    /// `tpot_separation`: too few per-request inter-token latencies to cluster.
    NoItlSamples { found: usize },
    /// The analysis declares metrics its method does not produce.
    MissingMetrics { missing: Vec<String>, produced: Vec<String> },
    /// `mean`: an input layer has no result with the metric.
    NoResults { metric: String, layer: String },
    /// `correlation` without `with = METRIC`.
    NeedsWith,
    /// `correlation` found fewer than three varying pairs.
    TooFewPairs { x: String, y: String, found: usize },
    /// `dip_test`: no per-request samples and fewer than four results to pool.
    NoSamples { metric: String, key: String },
    /// `dip_test` had no set of values to test.
    NothingToTest,
    /// The method's `function` is not one nixl computes.
    UnknownMethod(String),
    /// `pareto` found no E2E result with the latency, a throughput and the GPUs it served with.
    NoFrontPoints { latency: String },
}

impl fmt::Display for AnalysisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnalysisError::NeedsTwoLayers => write!(f, "compare needs two layers"),
            AnalysisError::NoMatchingLevels { a, b, key } => {
                write!(f, "no results of `{a}` and `{b}` at matching levels with `{key}`")
            }
            AnalysisError::NoProxyPairs => {
                write!(f, "disaggregation_overhead needs disaggregated and unified TTFT results at matching levels")
            }
            AnalysisError::NoTpotResults { layer } => write!(f, "no TPOT results in `{layer}`"),
            AnalysisError::NoItlSamples { found } => {
                write!(f, "tpot_separation needs 20 or more per-request inter-token latencies (`itl_ms` samples), found {found}")
            }
            AnalysisError::MissingMetrics { missing, produced } => {
                write!(f, "the analysis declares {} but its method produced only {}", missing.join(", "), produced.join(", "))
            }
            AnalysisError::NoResults { metric, layer } => write!(f, "no `{metric}` results in `{layer}`"),
            AnalysisError::NeedsWith => write!(f, "correlation needs `with = METRIC`"),
            AnalysisError::TooFewPairs { x, y, found } => {
                write!(f, "correlation needs 3 or more varying pairs of `{x}` and `{y}`, found {found}")
            }
            AnalysisError::NoSamples { metric, key } => {
                write!(f, "dip_test needs per-request `{metric}` samples or 4 or more `{key}` results")
            }
            AnalysisError::NothingToTest => write!(f, "nothing to test"),
            AnalysisError::UnknownMethod(m) => write!(f, "unknown analysis method `{m}`"),
            AnalysisError::NoFrontPoints { latency } => write!(
                f,
                "pareto needs E2E results with `{latency}`, `throughput_tps` and a `tp` setting in its input layers, found none"
            ),
        }
    }
}

impl std::error::Error for AnalysisError {}

/// A method as the file writes it, from its evaluated form: `compare(ttft, a = L2-EFA, b = L1-Unified)`.
pub fn method_text(method: &Value) -> String {
    let func = method.field("function").and_then(Value::as_str).unwrap_or("");
    let mut args: Vec<String> = match method.field("args") {
        Some(Value::List(a)) => a.iter().map(Value::interpolated).collect(),
        _ => vec![],
    };
    if let Value::Record(named) = method {
        let named = named.iter().filter(|(k, _)| *k != "function" && *k != "args");
        args.extend(named.map(|(k, v)| format!("{k} = {}", v.interpolated())));
    }
    format!("{func}({})", args.join(", "))
}

/// What an analysis produced: its figures, the intervals among them with their n
/// and method, and the test of each result when it tests many.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    pub metrics: BTreeMap<String, f64>,
    pub intervals: Vec<Interval>,
    pub tests: Vec<ResultTest>,
    /// A `pareto` front's pattern ids, by increasing throughput per GPU.
    pub front: Vec<String>,
}

/// What an analysis produced, or why it could not.
pub fn run(method: &Value, inputs: &[String], results: &[ResultRecord]) -> Result<Outcome, AnalysisError> {
    let func = method.field("function").and_then(Value::as_str).unwrap_or("");
    let args: Vec<Value> = match method.field("args") {
        Some(Value::List(a)) => a.clone(),
        _ => vec![],
    };
    fn of<'r>(results: &'r [ResultRecord], layer: &'r str) -> impl Iterator<Item = &'r ResultRecord> {
        results.iter().filter(move |r| r.layer == layer)
    }
    let metric_arg = |default: &str| args.first().map(Value::interpolated).unwrap_or_else(|| default.to_string());
    let mut outcome = Outcome::default();
    let out = &mut outcome.metrics;
    match func {
        "compare" => {
            let key = metric_key(&metric_arg("ttft"));
            let a = method.field("a").map(Value::interpolated).or_else(|| inputs.first().cloned());
            let b = method.field("b").map(Value::interpolated).or_else(|| inputs.get(1).cloned());
            let (Some(a), Some(b)) = (a, b) else { return Err(AnalysisError::NeedsTwoLayers) };
            let pairs = matched(of(results, &a), &|r| r.layer == b, results, &key, &key);
            if pairs.is_empty() {
                return Err(AnalysisError::NoMatchingLevels { a, b, key });
            }
            outcome.intervals = differences(out, &key, &pairs);
        }
        // The seed's "proxy overhead" timed the proxy itself; this is what results can
        // tell: TTFT a disaggregated layer adds over unified serving at the same levels
        // (the proxy hop, the producer's prefill round trip and the KV transfer).
        "disaggregation_overhead" => {
            let pairs = matched(
                inputs.iter().flat_map(|l| of(results, l)),
                &|r| r.settings.get("mode").and_then(|m| m.as_str()) == Some(crate::check::model::Mode::Unified.as_str()),
                results,
                "ttft_mean",
                "ttft_mean",
            );
            if pairs.is_empty() {
                return Err(AnalysisError::NoProxyPairs);
            }
            outcome.intervals = differences(out, "ttft_mean", &pairs);
            out.insert("disaggregation_overhead_ms".into(), stats::mean(&pairs.iter().map(|(x, y)| x - y).collect::<Vec<_>>()));
        }
        "tpot_separation" => tpot_separation(inputs, results, out)?,
        "tpot_spread" => {
            for l in inputs {
                let v: Vec<f64> = of(results, l).filter_map(|r| r.metrics.get("tpot_mean").copied()).collect();
                if v.is_empty() {
                    return Err(AnalysisError::NoTpotResults { layer: l.clone() });
                }
                out.insert(format!("tpot_mean_{}", slug(l)), mean(&v));
            }
            let means: Vec<f64> = out.values().copied().collect();
            let spread =
                means.iter().cloned().fold(f64::NEG_INFINITY, f64::max) - means.iter().cloned().fold(f64::INFINITY, f64::min);
            out.insert("tpot_spread_ms".into(), spread);
            let limit = method.field("limit").and_then(Value::as_f64).map(|s| s * 1000.0).unwrap_or(15.0);
            out.insert("backend_independent".into(), if spread <= limit { 1.0 } else { 0.0 });
        }
        "mean" => {
            let metric = metric_key(&metric_arg("ttft"));
            for l in inputs {
                let v: Vec<f64> = of(results, l).filter_map(|r| r.metrics.get(&metric).copied()).collect();
                if v.is_empty() {
                    return Err(AnalysisError::NoResults { metric, layer: l.clone() });
                }
                out.insert(format!("{metric}_{}", slug(l)), mean(&v));
            }
        }
        "dip_test" => {
            let metric = metric_arg("ttft");
            let alpha = method.field("alpha").and_then(Value::as_f64).unwrap_or(0.05);
            let mut recs: Vec<&ResultRecord> = inputs.iter().flat_map(|l| of(results, l)).collect();
            recs.sort_by(|a, b| a.id.cmp(&b.id));
            (*out, outcome.tests) = bimodality(&recs, &metric, alpha)?;
        }
        "correlation" => {
            let x = metric_key(&metric_arg("ttft"));
            let y = method.field("with").map(|v| metric_key(&v.interpolated())).ok_or(AnalysisError::NeedsWith)?;
            let mine: Vec<&ResultRecord> = inputs.iter().flat_map(|l| of(results, l)).collect();
            // Both figures in one result, else results of different layers at the same levels.
            let mut pairs: Vec<(f64, f64)> =
                mine.iter().filter_map(|r| Some((*r.metrics.get(&x)?, *r.metrics.get(&y)?))).collect();
            if pairs.len() < 3 {
                pairs = matched(mine.iter().copied(), &|r| inputs.contains(&r.layer), results, &x, &y).into_iter().collect();
            }
            let (xs, ys): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
            let r = stats::pearson(&xs, &ys).ok_or_else(|| AnalysisError::TooFewPairs {
                x: x.clone(),
                y: y.clone(),
                found: xs.len(),
            })?;
            out.insert("pearson".into(), r);
            if let Some(rho) = stats::spearman(&xs, &ys) {
                out.insert("spearman".into(), rho);
            }
            out.insert("pairs".into(), xs.len() as f64);
        }
        "pareto" => {
            let latency = args.first().map(Value::interpolated);
            let latency = latency.as_deref().and_then(latency_key).unwrap_or(DEFAULT_LATENCY);
            outcome.front = pareto_front(inputs, results, latency, out)?;
        }
        other => return Err(AnalysisError::UnknownMethod(other.to_string())),
    }
    Ok(outcome)
}

/// The front of the input layers' E2E results, latency against throughput per GPU:
/// `front_size`, `points`, and per input layer `front_size_<layer>` (its own front).
fn pareto_front(
    inputs: &[String],
    results: &[ResultRecord],
    latency: &str,
    out: &mut BTreeMap<String, f64>,
) -> Result<Vec<String>, AnalysisError> {
    let point = |r: &ResultRecord| -> Option<pareto::Point> {
        let tps_per_gpu = r.metrics.get("throughput_tps")? / decisions::gpus(r)?;
        Some(pareto::Point { id: r.id.clone(), latency_ms: *r.metrics.get(latency)?, tps_per_gpu })
    };
    let of_layer = |l: &String| -> Vec<pareto::Point> {
        results.iter().filter(|r| &r.layer == l && decisions::is_e2e(r)).filter_map(point).collect()
    };
    let all: Vec<pareto::Point> = inputs.iter().flat_map(of_layer).collect();
    let on = pareto::front(&all);
    if on.is_empty() {
        return Err(AnalysisError::NoFrontPoints { latency: latency.to_string() });
    }
    out.insert("front_size".into(), on.len() as f64);
    out.insert("points".into(), all.len() as f64);
    for l in inputs {
        out.insert(format!("front_size_{}", slug(l)), pareto::front(&of_layer(l)).len() as f64);
    }
    Ok(on.into_iter().map(|i| all[i].id.clone()).collect())
}

/// The stored metric a short name stands for: `ttft` is `ttft_mean`, `e2e` is `e2e_latency_mean`.
pub(crate) fn metric_key(m: &str) -> String {
    match m {
        "ttft" | "tpot" => format!("{m}_mean"),
        "e2e" => "e2e_latency_mean".into(),
        "throughput" => "throughput_tps".into(),
        other => other.to_string(),
    }
}

fn same_levels(a: &ResultRecord, b: &ResultRecord) -> bool {
    ["prompt", "concurrency"].iter().all(|k| a.settings.get(*k) == b.settings.get(*k))
}

fn slug(s: &str) -> String {
    s.to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "_")
}

pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Bootstrap resamples of an analysis: enough for a stable 95% interval, quick on two cores.
pub const BOOTSTRAP_REPS: usize = 10_000;
/// Simulations behind a dip test's p-value.
pub const DIP_SIMS: usize = 2_000;

/// Value pairs (x of `left`, y of a matching record) at the same prompt and concurrency.
fn matched<'r>(
    left: impl Iterator<Item = &'r ResultRecord>,
    right: &dyn Fn(&ResultRecord) -> bool,
    all: &'r [ResultRecord],
    x: &str,
    y: &str,
) -> Vec<(f64, f64)> {
    let mut out = vec![];
    for ra in left {
        for rb in all.iter().filter(|r| r.id != ra.id && right(r)) {
            if same_levels(ra, rb) {
                if let (Some(a), Some(b)) = (ra.metrics.get(x), rb.metrics.get(y)) {
                    out.push((*a, *b));
                }
            }
        }
    }
    out
}

/// Under this many values a percentile bootstrap is too narrow (3 pairs gave an interval
/// excluding zero where the t interval includes it): Student's t instead.
pub const BOOTSTRAP_MIN_N: usize = 20;

/// A 95% interval of the mean of `values`, by the method their number allows; None under two.
fn interval_of_mean(quantity: String, values: &[f64], reference: f64, seed: u64) -> Option<Interval> {
    let n = values.len();
    let (method, (low, high)) = if n >= BOOTSTRAP_MIN_N {
        let m = IntervalMethod::BootstrapPercentile { resamples: BOOTSTRAP_REPS };
        (m, stats::bootstrap_ci(values, BOOTSTRAP_REPS, seed, stats::mean)?)
    } else {
        (IntervalMethod::StudentT, stats::t_interval(values)?)
    };
    Some(Interval { quantity, estimate: mean(values), low, high, reference, n, method })
}

/// Mean difference and ratio of pairs, with their 95% intervals (also as `_ci_low`/`_ci_high` figures).
fn differences(out: &mut BTreeMap<String, f64>, key: &str, pairs: &[(f64, f64)]) -> Vec<Interval> {
    let diffs: Vec<f64> = pairs.iter().map(|(x, y)| x - y).collect();
    let ratios: Vec<f64> = pairs.iter().filter(|(_, y)| *y != 0.0).map(|(x, y)| x / y).collect();
    out.insert(format!("{key}_diff_mean"), mean(&diffs));
    if !ratios.is_empty() {
        out.insert(format!("{key}_ratio_mean"), mean(&ratios));
    }
    out.insert("pairs".into(), diffs.len() as f64);
    let intervals: Vec<Interval> =
        [interval_of_mean(format!("{key}_diff"), &diffs, 0.0, 1), interval_of_mean(format!("{key}_ratio"), &ratios, 1.0, 2)]
            .into_iter()
            .flatten()
            .collect();
    for i in &intervals {
        out.insert(format!("{}_ci_low", i.quantity), i.low);
        out.insert(format!("{}_ci_high", i.quantity), i.high);
    }
    intervals
}

/// The seed's TPOT separation: each request's inter-token latencies are either a decode
/// step (GPU compute) or a step that waited for the batch. Clustering all inter-token
/// latencies of the input layers in two at their widest gap gives the compute time
/// (the low cluster's mean), the average wait per token (the overall mean above it)
/// and the compute share of TPOT.
fn tpot_separation(inputs: &[String], results: &[ResultRecord], out: &mut BTreeMap<String, f64>) -> Result<(), AnalysisError> {
    let itls: Vec<f64> = results
        .iter()
        .filter(|r| inputs.contains(&r.layer))
        .filter_map(|r| r.samples.get("itl_ms"))
        .flatten()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    if itls.len() < 20 {
        return Err(AnalysisError::NoItlSamples { found: itls.len() });
    }
    let all = mean(&itls);
    let split = stats::two_component_split(&itls).ok_or(AnalysisError::NoItlSamples { found: itls.len() })?;
    out.insert("gpu_compute_time_ms".into(), split.low_mean);
    out.insert("batch_wait_time_ms".into(), (all - split.low_mean).max(0.0));
    out.insert("gpu_compute_ratio".into(), if all > 0.0 { split.low_mean / all } else { 1.0 });
    out.insert("itl_samples".into(), itls.len() as f64);
    Ok(())
}

/// The samples a dip test reads from one result: per-request values when the
/// tool reported them (ttft -> ttft_ms), none otherwise; with their name in the record.
pub fn samples_of<'r>(r: &'r ResultRecord, metric: &str) -> Option<(&'r str, &'r Vec<f64>)> {
    let named = format!("{metric}_ms");
    r.samples
        .get_key_value(&named)
        .or_else(|| r.samples.get_key_value(metric))
        .filter(|(_, v)| v.len() >= 4)
        .map(|(k, v)| (k.as_str(), v))
}

/// Dip test per result with per-request samples, or over the results' values when
/// none has samples. Testing many results at once, each at `alpha`, would call some
/// unimodal one bimodal by chance: the p-values are Holm-adjusted (family-wise error
/// at `alpha`), and `bimodal` means an adjusted p-value below it. The most bimodal
/// result is reported with its split; every result's test is kept.
fn bimodality(
    recs: &[&ResultRecord],
    metric: &str,
    alpha: f64,
) -> Result<(BTreeMap<String, f64>, Vec<ResultTest>), AnalysisError> {
    let key = metric_key(metric);
    let mut tested: Vec<(Option<String>, &str, &[f64])> =
        recs.iter().filter_map(|r| samples_of(r, metric).map(|(k, v)| (Some(r.id.clone()), k, v.as_slice()))).collect();
    let pooled: Vec<f64> = recs.iter().filter_map(|r| r.metrics.get(&key).copied()).collect();
    if tested.is_empty() {
        if pooled.len() < 4 {
            return Err(AnalysisError::NoSamples { metric: metric.to_string(), key });
        }
        tested.push((None, key.as_str(), pooled.as_slice()));
    }
    let dips: Vec<(f64, f64)> = tested.iter().map(|t| stats::dip_test(t.2, DIP_SIMS)).collect();
    let raw: Vec<f64> = dips.iter().map(|t| t.1).collect();
    let adjusted = stats::holm(&raw);
    let worst = (0..dips.len())
        .min_by(|&a, &b| adjusted[a].total_cmp(&adjusted[b]).then(dips[b].0.total_cmp(&dips[a].0)))
        .ok_or(AnalysisError::NothingToTest)?;
    let tests: Vec<ResultTest> = tested
        .iter()
        .enumerate()
        .map(|(i, (result, sample, v))| ResultTest {
            result: result.clone(),
            sample: sample.to_string(),
            values: if result.is_none() { v.to_vec() } else { vec![] },
            n: v.len(),
            statistic: dips[i].0,
            p_value: raw[i],
            p_adjusted: adjusted[i],
            correction: Correction::Holm,
            alpha,
            flagged: adjusted[i] < alpha,
            split: stats::two_component_split(v).map(|s| s.threshold),
        })
        .collect();
    let mut out = BTreeMap::new();
    out.insert("dip".into(), dips[worst].0);
    out.insert("p_value".into(), raw[worst]);
    out.insert("p_holm".into(), adjusted[worst]);
    out.insert("bimodal".into(), if adjusted[worst] < alpha { 1.0 } else { 0.0 });
    out.insert("tested".into(), dips.len() as f64);
    out.insert("bimodal_results".into(), tests.iter().filter(|t| t.flagged).count() as f64);
    if let Some(s) = stats::two_component_split(tested[worst].2) {
        out.insert("split_threshold".into(), s.threshold);
        out.insert("phase_a_n".into(), s.low_n as f64);
        out.insert("phase_a_mean".into(), s.low_mean);
        out.insert("phase_b_n".into(), s.high_n as f64);
        out.insert("phase_b_mean".into(), s.high_mean);
    }
    Ok((out, tests))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method(function: &str, extra: &[(&str, Value)]) -> Value {
        let mut m: BTreeMap<String, Value> = extra.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        m.insert("function".into(), Value::Str(function.into()));
        Value::Record(m)
    }

    fn result(id: &str, layer: &str, metrics: &[(&str, f64)]) -> ResultRecord {
        ResultRecord {
            id: id.into(),
            hash: "h".into(),
            layer: layer.into(),
            kind: crate::results::ResultKind::Pattern,
            finished_at: String::new(),
            seconds: 1.0,
            settings: BTreeMap::new(),
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            samples: BTreeMap::new(),
            units: BTreeMap::new(),
            raw: String::new(),
            provenance: None,
            intervals: vec![],
            tests: vec![],
            front: vec![],
            launch: None,
        }
    }

    fn at(mut r: ResultRecord, prompt: &str) -> ResultRecord {
        r.settings.insert("prompt".into(), prompt.into());
        r
    }

    /// Three pairs get Student's t (the 3-pair bootstrap excluded zero where t
    /// does not); twenty or more the percentile bootstrap; each says its n and method.
    #[test]
    fn compare_intervals_say_their_n_and_method() {
        let pairs = |n: usize| -> Vec<ResultRecord> {
            (0..n)
                .flat_map(|i| {
                    let p = format!("{i}");
                    let a = 100.0 + (i * 37 % 11) as f64;
                    [
                        at(result(&format!("a{i}"), "A", &[("ttft_mean", a)]), &p),
                        at(result(&format!("b{i}"), "B", &[("ttft_mean", 100.0)]), &p),
                    ]
                })
                .collect()
        };
        let inputs = ["A".to_string(), "B".to_string()];
        let o = run(&method("compare", &[]), &inputs, &pairs(3)).unwrap();
        let diff = o.intervals.iter().find(|i| i.quantity == "ttft_mean_diff").unwrap();
        assert_eq!((diff.n, diff.method, diff.reference), (3, IntervalMethod::StudentT, 0.0));
        assert_eq!((o.metrics["ttft_mean_diff_ci_low"], o.metrics["ttft_mean_diff_ci_high"]), (diff.low, diff.high));
        assert!(diff.low < diff.estimate && diff.estimate < diff.high);
        let ratio = o.intervals.iter().find(|i| i.quantity == "ttft_mean_ratio").unwrap();
        assert_eq!(ratio.reference, 1.0);
        let o = run(&method("compare", &[]), &inputs, &pairs(BOOTSTRAP_MIN_N)).unwrap();
        assert_eq!(o.intervals[0].method, IntervalMethod::BootstrapPercentile { resamples: BOOTSTRAP_REPS });
        assert_eq!(o.intervals[0].n, BOOTSTRAP_MIN_N);
        let o = run(&method("compare", &[]), &inputs, &pairs(1)).unwrap();
        assert!(o.intervals.is_empty() && !o.metrics.contains_key("ttft_mean_diff_ci_low"), "no interval from one pair");
    }

    /// Every result a dip test read is kept with its raw and Holm-adjusted p-value.
    #[test]
    fn a_dip_test_keeps_every_results_test() {
        let mut recs = vec![];
        for i in 0..5 {
            let mut r = result(&format!("r{i}"), "L", &[]);
            let v: Vec<f64> = if i == 0 {
                (0..40).map(|k| if k % 2 == 0 { 100.0 + k as f64 * 0.1 } else { 300.0 + k as f64 * 0.1 }).collect()
            } else {
                (0..40).map(|k| 100.0 + ((k * 7919) % 97) as f64).collect()
            };
            r.samples.insert("ttft_ms".into(), v);
            recs.push(r);
        }
        let o = run(&method("dip_test", &[]), &["L".into()], &recs).unwrap();
        assert_eq!(o.tests.len(), 5);
        let flagged: Vec<_> = o.tests.iter().filter(|t| t.flagged).map(|t| t.result.clone().unwrap()).collect();
        assert_eq!(flagged, ["r0"]);
        assert!(o.tests.iter().all(|t| t.p_adjusted >= t.p_value && t.sample == "ttft_ms" && t.n == 40));
        assert_eq!(o.metrics["bimodal_results"], 1.0);
    }

    /// Unified on 1 GPU against disaggregated on 2: per GPU, the disaggregated pattern
    /// with twice the throughput only ties, and its worse latency puts it off the front.
    #[test]
    fn pareto_records_its_front_per_gpu_and_per_layer() {
        let e2e = |id: &str, layer: &str, mode: &str, p99: f64, tps: f64| {
            let mut r = result(id, layer, &[("ttft_p99", p99), ("throughput_tps", tps)]);
            r.settings.insert("mode".into(), mode.into());
            r.settings.insert("tp".into(), "1".into());
            r
        };
        let results = [
            e2e("u1", "U", "unified", 100.0, 500.0),
            e2e("u2", "U", "unified", 300.0, 900.0),
            e2e("d1", "D", "disaggregated", 150.0, 1000.0),
            e2e("d2", "D", "disaggregated", 120.0, 800.0),
        ];
        let o = run(&method("pareto", &[]), &["U".into(), "D".into()], &results).unwrap();
        assert_eq!(o.front, ["u1", "u2"], "d1 is 500/GPU at 150 ms: u1 beats it");
        assert_eq!((o.metrics["front_size"], o.metrics["points"]), (2.0, 4.0));
        // Within D alone, d2 (120 ms, 400/GPU) and d1 (150 ms, 500/GPU) trade off: both on its front.
        assert_eq!((o.metrics["front_size_u"], o.metrics["front_size_d"]), (2.0, 2.0));
        let e = run(&method("pareto", &[]), &["X".into()], &results).unwrap_err();
        assert_eq!(
            e.to_string(),
            "pareto needs E2E results with `ttft_p99`, `throughput_tps` and a `tp` setting in its input layers, found none"
        );
    }

    #[test]
    fn a_method_reads_as_written() {
        let m = method("compare", &[("args", Value::List(vec![Value::Sym("ttft".into())])), ("a", Value::Str("L2-EFA".into()))]);
        assert_eq!(method_text(&m), "compare(ttft, a = L2-EFA)");
        assert_eq!(method_text(&method("proxy_overhead", &[])), "proxy_overhead()");
    }

    #[test]
    fn an_unknown_method_is_named_in_its_error() {
        let e = run(&method("median", &[]), &[], &[]).unwrap_err();
        assert_eq!(e, AnalysisError::UnknownMethod("median".into()));
        assert_eq!(e.to_string(), "unknown analysis method `median`");
    }

    #[test]
    fn compare_without_matching_results_names_both_layers_and_the_metric() {
        let e = run(&method("compare", &[]), &["L1".into()], &[]).unwrap_err();
        assert_eq!(e, AnalysisError::NeedsTwoLayers);
        assert_eq!(e.to_string(), "compare needs two layers");
        let results = [result("a", "L1", &[("ttft_mean", 10.0)])];
        let e = run(&method("compare", &[]), &["L1".into(), "L2".into()], &results).unwrap_err();
        assert_eq!(e, AnalysisError::NoMatchingLevels { a: "L1".into(), b: "L2".into(), key: "ttft_mean".into() });
        assert_eq!(e.to_string(), "no results of `L1` and `L2` at matching levels with `ttft_mean`");
    }

    #[test]
    fn a_layer_without_the_metric_is_reported_per_analysis() {
        let e = run(&method("mean", &[]), &["L1".into()], &[]).unwrap_err();
        assert_eq!(e, AnalysisError::NoResults { metric: "ttft_mean".into(), layer: "L1".into() });
        assert_eq!(e.to_string(), "no `ttft_mean` results in `L1`");
        let e = run(&method("tpot_spread", &[]), &["L1".into()], &[]).unwrap_err();
        assert_eq!(e, AnalysisError::NoTpotResults { layer: "L1".into() });
        assert_eq!(e.to_string(), "no TPOT results in `L1`");
        let e = run(&method("disaggregation_overhead", &[]), &["L1".into()], &[]).unwrap_err();
        assert_eq!(e, AnalysisError::NoProxyPairs);
        assert_eq!(e.to_string(), "disaggregation_overhead needs disaggregated and unified TTFT results at matching levels");
    }

    #[test]
    fn correlation_and_dip_test_say_how_much_data_they_need() {
        let e = run(&method("correlation", &[]), &["L1".into()], &[]).unwrap_err();
        assert_eq!(e, AnalysisError::NeedsWith);
        assert_eq!(e.to_string(), "correlation needs `with = METRIC`");
        let results = [result("a", "L1", &[("ttft_mean", 10.0), ("tpot_mean", 2.0)])];
        let with = [("with", Value::Sym("tpot".into()))];
        let e = run(&method("correlation", &with), &["L1".into()], &results).unwrap_err();
        assert_eq!(e, AnalysisError::TooFewPairs { x: "ttft_mean".into(), y: "tpot_mean".into(), found: 0 });
        assert_eq!(e.to_string(), "correlation needs 3 or more varying pairs of `ttft_mean` and `tpot_mean`, found 0");
        let e = run(&method("dip_test", &[]), &["L1".into()], &results).unwrap_err();
        assert_eq!(e, AnalysisError::NoSamples { metric: "ttft".into(), key: "ttft_mean".into() });
        assert_eq!(e.to_string(), "dip_test needs per-request `ttft` samples or 4 or more `ttft_mean` results");
    }
}

/// Under the null: campaigns whose every result is unimodal must rarely be called
/// bimodal. 100 seeded campaigns of 24 results x 30 per-request TTFTs (log-normal
/// around 1 s, as a real TTFT spreads) fire at most 5 % of the time.
#[cfg(test)]
mod null_rate {
    use super::*;
    use crate::results::ResultKind;

    fn campaign(seed: u64) -> Vec<ResultRecord> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..24)
            .map(|i| {
                let ttfts: Vec<f64> = (0..30)
                    .map(|_| {
                        let (u1, u2) = (uniform().max(1e-12), uniform());
                        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                        1000.0 * (0.15 * z).exp()
                    })
                    .collect();
                ResultRecord {
                    id: format!("r{i}"),
                    hash: String::new(),
                    layer: "L".into(),
                    kind: ResultKind::Pattern,
                    finished_at: String::new(),
                    seconds: 0.0,
                    settings: BTreeMap::new(),
                    metrics: BTreeMap::new(),
                    samples: [("ttft_ms".to_string(), ttfts)].into_iter().collect(),
                    units: BTreeMap::new(),
                    raw: String::new(),
                    provenance: None,
                    intervals: vec![],
                    tests: vec![],
                    front: vec![],
                    launch: None,
                }
            })
            .collect()
    }

    #[test]
    fn unimodal_campaigns_fire_the_bimodality_test_at_most_five_percent_of_the_time() {
        let mut m = BTreeMap::new();
        m.insert("function".to_string(), Value::Str("dip_test".into()));
        m.insert("metric".to_string(), Value::Str("ttft".into()));
        let method = Value::Record(m);
        let fired =
            (0..100u64).filter(|&seed| run(&method, &["L".into()], &campaign(seed)).unwrap().metrics["bimodal"] >= 1.0).count();
        // Without the correction (any result at p < 0.05) most campaigns would fire.
        let uncorrected = (0..100u64)
            .filter(|&seed| campaign(seed).iter().any(|r| stats::dip_test(&r.samples["ttft_ms"], DIP_SIMS).1 < 0.05))
            .count();
        eprintln!("{fired} of 100 unimodal campaigns called bimodal ({uncorrected} without Holm's correction)");
        assert!(fired <= 5, "{fired} of 100 unimodal campaigns called bimodal");
        assert!(uncorrected > fired, "the correction should matter on this data: {uncorrected} vs {fired}");
    }
}
