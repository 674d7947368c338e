//! `until = ci(METRIC) < FRACTION` on a layer with replicates: apply stops running a
//! pattern's replicates once the 95 % interval of METRIC's mean over the replicates done
//! is narrower than FRACTION of that mean on each side, after at least [`MIN_RUNS`] runs.
//! The plan counts the maximum (`replicates`); skipped replicates are said in the log.

use crate::diagnostics::{Code, Diagnostic, Span};
use crate::syntax::ast::{BinOp, Expr, ExprKind};
use serde::Serialize;

/// Replicates measured before an interval may stop the rest: with fewer, the t interval says little.
pub const MIN_RUNS: usize = 3;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Until {
    /// A metric every E2E result has (`ttft_p50`).
    pub metric: String,
    /// The largest half-width of the interval, as a fraction of the mean.
    pub below: f64,
    pub span: Span,
}

/// Reads `ci(METRIC) < FRACTION`; the diagnostic says what the form is.
pub fn parse(e: &Expr, known: &dyn Fn(&str) -> bool) -> Result<Until, Box<Diagnostic>> {
    let bad = |span: Span, why: &str| {
        Box::new(
            Diagnostic::error(Code::Domain, span, why.to_string())
                .help("write `until = ci(METRIC) < FRACTION`, e.g. `until = ci(ttft_p50) < 0.05` for 5 %"),
        )
    };
    let ExprKind::Binary(BinOp::Lt | BinOp::Le, lhs, rhs) = &e.kind else {
        return Err(bad(e.span, "`until` is a condition on an interval: `ci(METRIC) < FRACTION`"));
    };
    let metric = match &lhs.kind {
        ExprKind::Call(f, args) if f.as_name().is_some_and(|n| n.name == "ci") && args.len() == 1 => {
            args[0].value.as_name().map(|n| (n.name.clone(), n.span))
        }
        _ => None,
    };
    let Some((metric, mspan)) = metric else { return Err(bad(lhs.span, "the left side must be `ci(METRIC)`")) };
    if !known(&metric) {
        return Err(bad(mspan, &format!("`{metric}` is not a metric every pattern's result has")));
    }
    let below = match &rhs.kind {
        ExprKind::Number { value, unit: crate::syntax::ast::Unit::None, .. } if *value > 0.0 && *value < 1.0 => *value,
        _ => return Err(bad(rhs.span, "the bound is a fraction of the mean between 0 and 1 (0.05 for 5 %)")),
    };
    Ok(Until { metric, below, span: e.span })
}

/// Whether the replicates' values are precise enough: the relative half-width, if it is below the bound.
pub fn reached(u: &Until, values: &[f64]) -> Option<f64> {
    if values.len() < MIN_RUNS {
        return None;
    }
    let (lo, hi) = crate::results::stats::t_interval(values)?;
    let mean = crate::results::stats::mean(values);
    let rel = (hi - lo) / 2.0 / mean.abs();
    (rel.is_finite() && rel < u.below).then_some(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn until(below: f64) -> Until {
        Until { metric: "ttft_p50".into(), below, span: Span::default() }
    }

    #[test]
    fn steady_values_stop_after_the_minimum_and_noisy_ones_do_not() {
        assert_eq!(reached(&until(0.05), &[100.0, 101.0]), None, "two runs never stop");
        assert!(reached(&until(0.05), &[100.0, 101.0, 100.5]).is_some());
        assert_eq!(reached(&until(0.05), &[100.0, 160.0, 70.0, 130.0]), None);
    }
}
