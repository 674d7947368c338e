//! Statistics for the analyses, written here to keep dependencies few:
//! Hartigan's dip test (algorithm AS 217), a seeded percentile bootstrap,
//! Pearson and Spearman correlation. Deterministic: the same data gives the
//! same figures on every run, so stored analyses and MLflow values are stable.

/// splitmix64: a tiny, well-mixed generator; seeded so analyses are repeatable.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        // The modulo bias is below 2^-40 for the sample sizes used here.
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.iter().sum::<f64>() / v.len() as f64
}

/// Quantile with linear interpolation between order statistics (R's type 7, numpy's default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(f64::total_cmp);
    s
}

/// The dip statistic of a sample (Hartigan & Hartigan 1985), computed with
/// P. M. Hartigan's algorithm AS 217, and the indices (into the sorted sample)
/// of the modal interval. Non-finite values are ignored.
pub fn dip(sample: &[f64]) -> (f64, usize, usize) {
    let x = sorted(sample);
    let n = x.len();
    if n < 4 || x[0] == x[n - 1] {
        return (0.0, 0, n.saturating_sub(1));
    }
    // 1-based indices below follow the algorithm's description.
    let xs = |i: usize| x[i - 1];
    // Change points of the greatest convex minorant (mn) and least concave majorant (mj).
    let mut mn = vec![0usize; n + 1];
    mn[1] = 1;
    for j in 2..=n {
        mn[j] = j - 1;
        loop {
            let a = mn[j];
            let b = mn[a];
            if a == 1 || (xs(j) - xs(a)) * ((a - b) as f64) < (xs(a) - xs(b)) * ((j - a) as f64) {
                break;
            }
            mn[j] = b;
        }
    }
    let mut mj = vec![0usize; n + 1];
    mj[n] = n;
    for k in (1..n).rev() {
        mj[k] = k + 1;
        loop {
            let a = mj[k];
            let b = mj[a];
            if a == n || (xs(k) - xs(a)) * (a as f64 - b as f64) < (xs(a) - xs(b)) * (k as f64 - a as f64) {
                break;
            }
            mj[k] = b;
        }
    }
    let (mut low, mut high) = (1usize, n);
    // Work with n * dip until the end; start at the trivial bound 1.
    let mut d_n = 1.0f64;
    let mut gcm = vec![0usize; n + 2];
    let mut lcm = vec![0usize; n + 2];
    loop {
        gcm[1] = high;
        let mut ic = 1;
        while gcm[ic] > low {
            gcm[ic + 1] = mn[gcm[ic]];
            ic += 1;
        }
        let icx = ic;
        lcm[1] = low;
        ic = 1;
        while lcm[ic] < high {
            lcm[ic + 1] = mj[lcm[ic]];
            ic += 1;
        }
        let icv = ic;
        let (mut ig, mut ih) = (icx, icv);
        let (mut ix, mut iv) = (icx - 1, 2usize);
        // The largest distance between the GCM and the LCM from low to high.
        let mut d = 0.0f64;
        if icx != 2 || icv != 2 {
            loop {
                let gx = gcm[ix];
                let lv = lcm[iv];
                if gx > lv {
                    let g1 = gcm[ix + 1];
                    let dx = (lv as f64 - g1 as f64 + 1.0) - (xs(lv) - xs(g1)) * (gx - g1) as f64 / (xs(gx) - xs(g1));
                    iv += 1;
                    if dx >= d {
                        d = dx;
                        ig = ix + 1;
                        ih = iv - 1;
                    }
                } else {
                    let l1 = lcm[iv - 1];
                    let dx = (xs(gx) - xs(l1)) * (lv - l1) as f64 / (xs(lv) - xs(l1)) - (gx as f64 - l1 as f64 - 1.0);
                    ix -= 1;
                    if dx >= d {
                        d = dx;
                        ig = ix + 1;
                        ih = iv;
                    }
                }
                ix = ix.max(1);
                iv = iv.min(icv);
                if gcm[ix] == lcm[iv] {
                    break;
                }
            }
        } else {
            d = 1.0;
        }
        if d < d_n {
            break;
        }
        // The dips of the convex minorant and the concave majorant on this interval.
        let mut dip_l = 0.0f64;
        for j in ig..icx {
            let (jb, je) = (gcm[j + 1], gcm[j]);
            let mut t_max = 1.0f64;
            if je - jb > 1 && xs(je) != xs(jb) {
                let c = (je - jb) as f64 / (xs(je) - xs(jb));
                for jr in jb..=je {
                    t_max = t_max.max((jr - jb + 1) as f64 - (xs(jr) - xs(jb)) * c);
                }
            }
            dip_l = dip_l.max(t_max);
        }
        let mut dip_u = 0.0f64;
        for k in ih..icv {
            let (kb, ke) = (lcm[k], lcm[k + 1]);
            let mut t_max = 1.0f64;
            if ke - kb > 1 && xs(ke) != xs(kb) {
                let c = (ke - kb) as f64 / (xs(ke) - xs(kb));
                for kr in kb..=ke {
                    t_max = t_max.max((xs(kr) - xs(kb)) * c - (kr as f64 - kb as f64 - 1.0));
                }
            }
            dip_u = dip_u.max(t_max);
        }
        d_n = d_n.max(dip_l.max(dip_u));
        // No change in the modal interval: done (the check that keeps unimodal data from looping).
        if low == gcm[ig] && high == lcm[ih] {
            break;
        }
        low = gcm[ig];
        high = lcm[ih];
    }
    (d_n / (2.0 * n as f64), low - 1, high - 1)
}

/// The dip test: statistic, p-value against the uniform distribution (the
/// least favourable unimodal one) from `sims` seeded simulations of the same size.
/// The p-value counts the observed sample among the simulations ((k + 1) / (sims + 1)),
/// so it is never 0. The null distribution depends only on n and `sims`: it is
/// simulated once per pair and kept, so testing many results costs one simulation.
pub fn dip_test(sample: &[f64], sims: usize) -> (f64, f64) {
    let n = sample.iter().filter(|x| x.is_finite()).count();
    let (d, _, _) = dip(sample);
    if n < 4 || sims == 0 {
        return (d, 1.0);
    }
    let null = null_dips(n, sims);
    // `null` is sorted: the simulations with a dip at least the observed one.
    let at_least = null.len() - null.partition_point(|x| *x < d);
    (d, (at_least + 1) as f64 / (sims + 1) as f64)
}

/// Simulated null dips by (n, sims).
type NullCache = std::sync::Mutex<std::collections::HashMap<(usize, usize), std::sync::Arc<Vec<f64>>>>;

/// Sorted dips of `sims` seeded uniform samples of size n, simulated once per (n, sims).
fn null_dips(n: usize, sims: usize) -> std::sync::Arc<Vec<f64>> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    static CACHE: OnceLock<NullCache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(v) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&(n, sims)) {
        return v.clone();
    }
    let mut rng = Rng::new(0x0064_6970_7465_7374 ^ n as u64);
    let mut buf = vec![0.0; n];
    let mut dips: Vec<f64> = (0..sims)
        .map(|_| {
            buf.iter_mut().for_each(|v| *v = rng.uniform());
            dip(&buf).0
        })
        .collect();
    dips.sort_by(f64::total_cmp);
    let v = Arc::new(dips);
    cache.lock().unwrap_or_else(|e| e.into_inner()).insert((n, sims), v.clone());
    v
}

/// Holm's step-down adjustment of p-values (family-wise error), in the input order.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}

/// A two-component split of a sample at the widest gap between the modal
/// groups: the threshold and each side's count and mean (the seed's phase A/B).
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub threshold: f64,
    pub low_n: usize,
    pub low_mean: f64,
    pub high_n: usize,
    pub high_mean: f64,
}

/// Splits where the within-group sum of squares is least (1-D two-means, exact).
pub fn two_component_split(sample: &[f64]) -> Option<Split> {
    let x = sorted(sample);
    let n = x.len();
    if n < 2 {
        return None;
    }
    let total: f64 = x.iter().sum();
    let mut best: Option<(f64, usize)> = None;
    let mut left = 0.0;
    for k in 1..n {
        left += x[k - 1];
        let right = total - left;
        // Maximising the between-group term is the same as minimising within-group SS.
        let score = left * left / k as f64 + right * right / (n - k) as f64;
        if x[k] > x[k - 1] && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, k));
        }
    }
    let (_, k) = best?;
    Some(Split { threshold: (x[k - 1] + x[k]) / 2.0, low_n: k, low_mean: mean(&x[..k]), high_n: n - k, high_mean: mean(&x[k..]) })
}

/// Percentile bootstrap 95% interval of a statistic of one sample, `reps` seeded resamples.
pub fn bootstrap_ci(sample: &[f64], reps: usize, seed: u64, stat: impl Fn(&[f64]) -> f64) -> Option<(f64, f64)> {
    if sample.is_empty() || reps == 0 {
        return None;
    }
    let mut rng = Rng::new(seed);
    let mut buf = vec![0.0; sample.len()];
    let mut stats = Vec::with_capacity(reps);
    for _ in 0..reps {
        for b in buf.iter_mut() {
            *b = sample[rng.below(sample.len())];
        }
        let s = stat(&buf);
        if s.is_finite() {
            stats.push(s);
        }
    }
    stats.sort_by(f64::total_cmp);
    Some((quantile(&stats, 0.025), quantile(&stats, 0.975)))
}

/// Student's t quantile t(0.975, df) for df 1 to 30, from SciPy 1.17.1 `stats.t.ppf(0.975, df)`.
const T975: [f64; 30] = [
    12.706204736174694,
    4.302652729749462,
    3.1824463052837078,
    2.7764451051977934,
    2.5705818356363146,
    2.4469118511449786,
    2.364624251592784,
    2.306004135204166,
    2.262157162798205,
    2.228138851986274,
    2.200985160091639,
    2.1788128296672284,
    2.1603686564627913,
    2.144786687917804,
    2.131449545559776,
    2.1199052992212546,
    2.1098155778333156,
    2.1009220402410382,
    2.0930240544083087,
    2.085963447265864,
    2.0796138447276795,
    2.0738730679040254,
    2.0686576104190486,
    2.0638985616280245,
    2.0595385527532972,
    2.0555294386428735,
    2.0518305164802846,
    2.0484071417952454,
    2.045229642132703,
    2.0422724563012378,
];

/// t(0.975, df): the table up to 30, then the Cornish-Fisher expansion around the
/// normal quantile (within 1e-4 of SciPy from 31 on).
pub fn t975(df: usize) -> f64 {
    if (1..=30).contains(&df) {
        return T975[df - 1];
    }
    let (z, n) = (1.959963984540054_f64, df.max(1) as f64);
    z + (z.powi(3) + z) / (4.0 * n) + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * n * n)
}

/// Student's t 95% interval of a mean; None under two values.
pub fn t_interval(sample: &[f64]) -> Option<(f64, f64)> {
    let n = sample.len();
    if n < 2 {
        return None;
    }
    let m = mean(sample);
    let var = sample.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = t975(n - 1) * (var / n as f64).sqrt();
    Some((m - half, m + half))
}

/// Pearson's r of paired values; None when either side is constant or too short.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len().min(y.len());
    if n < 3 {
        return None;
    }
    let (mx, my) = (mean(&x[..n]), mean(&y[..n]));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (dx, dy) = (x[i] - mx, y[i] - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return None;
    }
    Some(sxy / (sxx * syy).sqrt())
}

/// Ranks with ties given their average rank (as Spearman's rho needs).
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Spearman's rho: Pearson's r of the ranks.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len().min(y.len());
    pearson(&ranks(&x[..n]), &ranks(&y[..n]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: SciPy 1.17.1 `stats.t.interval(0.95, 7, loc=d.mean(), scale=stats.sem(d))`
    /// on these eight differences, and `stats.t.ppf(0.975, df)` for df 40, 100, 1000.
    #[test]
    fn t_interval_matches_scipy() {
        let d: Vec<f64> = (1..=8).map(|i| ((i * 37) % 101) as f64 / 10.0 - 4.0).collect();
        let (lo, hi) = t_interval(&d).unwrap();
        assert!((lo - -1.2263038379329005).abs() < 1e-9 && (hi - 3.8013038379329007).abs() < 1e-9, "{lo} {hi}");
        for (df, q) in [(40, 2.021075390306273), (100, 1.9839715185235518), (1000, 1.9623390808264083)] {
            assert!((t975(df) - q).abs() < 1e-4, "df {df}: {}", t975(df));
        }
        assert_eq!(t_interval(&[1.0]), None);
    }

    #[test]
    fn split_finds_the_gap_between_two_groups() {
        let s = two_component_split(&[1.0, 2.0, 1.5, 10.0, 11.0, 10.5]).unwrap();
        assert_eq!((s.low_n, s.high_n), (3, 3));
        assert!((s.threshold - 6.0).abs() < 1e-12);
        assert!(two_component_split(&[]).is_none());
    }

    #[test]
    fn correlation_of_a_monotone_curve() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [1.0, 4.0, 9.0, 16.0, 25.0];
        assert!((spearman(&x, &y).unwrap() - 1.0).abs() < 1e-12);
        assert!(pearson(&x, &y).unwrap() < 1.0);
        assert!(pearson(&x, &[2.0; 5]).is_none());
        assert_eq!(ranks(&[3.0, 1.0, 3.0]), vec![2.5, 1.0, 2.5]);
    }

    #[test]
    fn t_interval_of_three_pairs_is_wide() {
        // mean 40, sd 31.6 (n = 3): 40 +- 4.303 * 31.6 / sqrt(3) = [-38.505, 118.505].
        let (lo, hi) = t_interval(&[8.4, 40.0, 71.6]).unwrap();
        assert!((lo + 38.505).abs() < 0.01 && (hi - 118.505).abs() < 0.01, "{lo} {hi}");
        assert_eq!(t_interval(&[1.0]), None);
    }

    #[test]
    fn holm_adjusts_step_down_and_keeps_order() {
        // Textbook case: m = 4, p = .01 .04 .03 .005 -> .03 .06 .06 .02.
        let adj = holm(&[0.01, 0.04, 0.03, 0.005]);
        let want = [0.03, 0.06, 0.06, 0.02];
        assert!(adj.iter().zip(want).all(|(a, w)| (a - w).abs() < 1e-12), "{adj:?}");
        assert_eq!(holm(&[0.5, 0.9]), vec![1.0, 1.0]);
    }

    #[test]
    fn dip_of_tiny_or_constant_samples_is_zero() {
        assert_eq!(dip(&[1.0, 2.0]).0, 0.0);
        assert_eq!(dip(&[5.0; 10]).0, 0.0);
        assert_eq!(dip(&[f64::NAN, 1.0]).0, 0.0);
    }
}
