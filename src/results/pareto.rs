//! Pareto fronts of latency against throughput per GPU: the patterns that no other
//! pattern beats on both counts. The report draws them and the `pareto(...)` analysis
//! records them, so both read one definition.

/// One E2E result as a front sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub id: String,
    /// Lower is better.
    pub latency_ms: f64,
    /// Higher is better.
    pub tps_per_gpu: f64,
}

impl Point {
    fn usable(&self) -> bool {
        self.latency_ms.is_finite() && self.tps_per_gpu.is_finite()
    }

    /// At least as good on both counts and better on one.
    pub fn dominates(&self, other: &Point) -> bool {
        self.latency_ms <= other.latency_ms
            && self.tps_per_gpu >= other.tps_per_gpu
            && (self.latency_ms < other.latency_ms || self.tps_per_gpu > other.tps_per_gpu)
    }
}

/// Indices of the points on the front, by increasing throughput per GPU (then latency,
/// then id, so the order never depends on the input's). Points equal on both counts are
/// all on it or all off it: neither dominates the other. A point with a figure that is
/// not a number is left out. Quadratic, which is nothing for a campaign's results.
pub fn front(points: &[Point]) -> Vec<usize> {
    let mut on: Vec<usize> = (0..points.len())
        .filter(|&i| points[i].usable())
        .filter(|&i| !points.iter().any(|q| q.usable() && q.dominates(&points[i])))
        .collect();
    on.sort_by(|&a, &b| {
        let (p, q) = (&points[a], &points[b]);
        p.tps_per_gpu.total_cmp(&q.tps_per_gpu).then(p.latency_ms.total_cmp(&q.latency_ms)).then(p.id.cmp(&q.id))
    });
    on
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str, latency_ms: f64, tps_per_gpu: f64) -> Point {
        Point { id: id.into(), latency_ms, tps_per_gpu }
    }

    fn ids(points: &[Point]) -> Vec<&str> {
        front(points).into_iter().map(|i| points[i].id.as_str()).collect()
    }

    #[test]
    fn dominated_points_are_off_the_front_and_the_rest_ordered_by_throughput() {
        // c beats b on both; a is fastest, d has the most throughput; e is worse than d on both.
        let pts = [p("a", 100.0, 50.0), p("b", 300.0, 80.0), p("c", 250.0, 90.0), p("d", 600.0, 200.0), p("e", 700.0, 150.0)];
        assert_eq!(ids(&pts), ["a", "c", "d"]);
        assert!(pts[2].dominates(&pts[1]) && !pts[1].dominates(&pts[2]));
    }

    #[test]
    fn ties_on_both_counts_are_kept_together_and_a_tie_on_one_is_decided_by_the_other() {
        let pts = [p("x", 100.0, 50.0), p("y", 100.0, 50.0), p("z", 100.0, 40.0)];
        // x and y are the same point: neither dominates; z has equal latency but less throughput.
        assert_eq!(ids(&pts), ["x", "y"]);
        assert!(!pts[0].dominates(&pts[1]));
        let same_throughput = [p("slow", 200.0, 60.0), p("fast", 150.0, 60.0)];
        assert_eq!(ids(&same_throughput), ["fast"]);
    }

    #[test]
    fn a_single_point_is_its_own_front_and_nothing_usable_is_an_empty_one() {
        assert_eq!(ids(&[p("only", 10.0, 1.0)]), ["only"]);
        assert!(front(&[]).is_empty());
        assert_eq!(ids(&[p("nan", f64::NAN, 1.0), p("ok", 50.0, 0.5)]), ["ok"]);
    }
}
