//! Service-level objectives: `slo = { ttft_p99 = 2s, tpot_p99 = 50ms }` on an experiment or
//! a layer. Each key is a latency and, after an underscore, the statistic the bound holds
//! for over a pattern's successful requests; a bare latency (`ttft = 2s`) bounds every
//! request. A request is good when each of its own latencies is within every bound on that
//! latency, whatever the statistic (vLLM's `--goodput` counts the same way).

use super::value::Value;
use crate::syntax::ast::Unit;

/// The per-request latencies a bound may name, as the benchmark's samples call them.
pub const LATENCIES: [(&str, &str); 3] = [("ttft", "ttft_ms"), ("tpot", "tpot_ms"), ("e2e_latency", "e2e_latency_ms")];

/// What a bound holds for over the pattern's requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stat {
    /// Every request (a bare latency name).
    Each,
    Mean,
    /// A percentile, 0-100.
    Percentile(f64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Bound {
    /// The key as written: `ttft_p99`.
    pub key: String,
    /// The samples' name: `ttft_ms`.
    pub samples: &'static str,
    pub stat: Stat,
    pub limit_ms: f64,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Slo {
    pub bounds: Vec<Bound>,
}

/// What a key may be, for messages.
pub const KEY_FORM: &str = "`ttft`, `tpot` or `e2e_latency`, optionally with `_mean`, `_p50`, `_p90`, `_p95` or `_p99`";

impl Slo {
    /// Reads an `slo` record; the error names the key at fault and says why.
    pub fn from_value(v: &Value) -> Result<Slo, (Option<String>, String)> {
        let Value::Record(fields) = v else {
            return Err((None, format!("`slo` must be a record such as {{ ttft_p99 = 2s }}, found {}", v.type_name())));
        };
        if fields.is_empty() {
            return Err((None, "`slo` names no bound".into()));
        }
        let mut bounds = vec![];
        for (key, value) in fields {
            let (samples, stat) =
                parse_key(key).ok_or_else(|| (Some(key.clone()), format!("`{key}` is not a latency: write {KEY_FORM}")))?;
            let limit_ms = match value {
                Value::Num(x, Unit::Duration) if *x > 0.0 && x.is_finite() => x * 1000.0,
                Value::Num(_, Unit::Duration) => return Err((Some(key.clone()), format!("`{key}` must be above zero"))),
                other => {
                    return Err((
                        Some(key.clone()),
                        format!("`{key}` must be a duration such as 2s or 50ms, found {}", other.type_name()),
                    ))
                }
            };
            bounds.push(Bound { key: key.clone(), samples, stat, limit_ms });
        }
        Ok(Slo { bounds })
    }
}

fn parse_key(key: &str) -> Option<(&'static str, Stat)> {
    for (name, samples) in LATENCIES {
        let Some(rest) = key.strip_prefix(name) else { continue };
        let stat = match rest {
            "" => Stat::Each,
            "_mean" => Stat::Mean,
            "_p50" => Stat::Percentile(50.0),
            "_p90" => Stat::Percentile(90.0),
            "_p95" => Stat::Percentile(95.0),
            "_p99" => Stat::Percentile(99.0),
            _ => continue,
        };
        return Some((samples, stat));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(pairs: &[(&str, Value)]) -> Value {
        Value::Record(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    #[test]
    fn keys_name_a_latency_and_a_statistic() {
        let s =
            Slo::from_value(&rec(&[("ttft_p99", Value::Num(2.0, Unit::Duration)), ("tpot", Value::Num(0.05, Unit::Duration))]))
                .unwrap();
        assert_eq!(s.bounds[0].samples, "tpot_ms");
        assert_eq!(s.bounds[0].stat, Stat::Each);
        assert!((s.bounds[0].limit_ms - 50.0).abs() < 1e-9);
        assert_eq!(s.bounds[1].stat, Stat::Percentile(99.0));
        assert_eq!(s.bounds[1].limit_ms, 2000.0);
    }

    #[test]
    fn a_wrong_key_or_unit_names_the_key() {
        let e = Slo::from_value(&rec(&[("ttft_p42", Value::Num(2.0, Unit::Duration))])).unwrap_err();
        assert_eq!(e.0.as_deref(), Some("ttft_p42"));
        let e = Slo::from_value(&rec(&[("tpot_p99", Value::num(50.0))])).unwrap_err();
        assert!(e.1.contains("duration"), "{}", e.1);
        assert!(Slo::from_value(&Value::num(1.0)).is_err());
    }
}
