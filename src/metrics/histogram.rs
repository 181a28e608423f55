//! A fixed-bucket histogram, the Prometheus kind: constant memory however many
//! observations, mergeable across isolates, exposable as cumulative buckets.

use crate::{Error, Result};

/// Counts of observations per upper bound (`le`), plus sum, count, min and max.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: Vec<f64>,
    /// `counts[i]` = observations in `(bounds[i-1], bounds[i]]`; the last one is
    /// the `+Inf` bucket (above every bound).
    counts: Vec<u64>,
    sum: f64,
    count: u64,
    min: f64,
    max: f64,
}

/// The default latency buckets, in milliseconds: 0.1 ms to 10 s.
pub const LATENCY_MS_BOUNDS: [f64; 16] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10_000.0,
];

impl Histogram {
    /// A histogram with these upper bounds. They are sorted and deduplicated, and
    /// non-finite values dropped (`+Inf` is always implied), so any slice works.
    pub fn new(bounds: &[f64]) -> Self {
        let mut b: Vec<f64> = bounds.iter().copied().filter(|v| v.is_finite()).collect();
        crate::sort::sort_by(&mut b, f64::total_cmp);
        b.dedup();
        let n = b.len() + 1;
        Histogram {
            bounds: b,
            counts: vec![0; n],
            sum: 0.0,
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// [`LATENCY_MS_BOUNDS`].
    pub fn latency_ms() -> Self {
        Self::new(&LATENCY_MS_BOUNDS)
    }

    /// Records one value. NaN is ignored (it belongs in no bucket).
    pub fn observe(&mut self, v: f64) {
        if v.is_nan() {
            return;
        }
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i] += 1;
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// The finite upper bounds (the `+Inf` bucket is implied).
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// `(upper bound, cumulative count)` for every bucket, ending with
    /// `(+Inf, count)` — what the exposition prints.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let mut acc = 0;
        self.bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.counts.iter())
            .map(move |(b, c)| {
                acc += c;
                (b, acc)
            })
    }

    /// Estimates the `q` quantile (0 ≤ q ≤ 1); `None` when empty or `q` is out of
    /// range.
    ///
    /// Finds the bucket holding the rank `q · count` and interpolates linearly
    /// inside it (as PromQL's `histogram_quantile` does), then clamps to the
    /// smallest and largest values seen. Error bound: the true quantile lies in the
    /// same bucket, so the estimate is off by less than that bucket's width
    /// (`bounds[i] − bounds[i−1]`; the first bucket starts at min(0, min seen)).
    /// In the `+Inf` bucket the estimate is between the last bound and the largest
    /// value seen.
    ///
    /// ```
    /// use edgesync::metrics::Histogram;
    /// let mut h = Histogram::new(&[10.0, 20.0, 30.0]);
    /// for v in 1..=30 { h.observe(v as f64); }
    /// let p50 = h.quantile(0.5).unwrap();
    /// assert!((p50 - 15.0).abs() <= 10.0);
    /// assert_eq!(h.quantile(1.0), Some(30.0));
    /// assert_eq!(Histogram::latency_ms().quantile(0.5), None);
    /// ```
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * self.count as f64;
        let mut below = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            if c == 0 || ((below + c) as f64) < rank {
                below += c;
                continue;
            }
            let lower = if i == 0 { self.min.min(0.0) } else { self.bounds[i - 1] };
            let upper = self.bounds.get(i).copied().unwrap_or(self.max);
            let frac = ((rank - below as f64) / c as f64).clamp(0.0, 1.0);
            let v = lower + (upper - lower) * frac;
            return Some(v.clamp(self.min, self.max));
        }
        Some(self.max)
    }

    /// Adds `other`'s observations. Both must have the same bounds.
    pub fn merge(&mut self, other: &Histogram) -> Result<()> {
        if self.bounds != other.bounds {
            return Err(Error::InvalidArgument(
                "cannot merge histograms with different buckets".into(),
            ));
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_are_upper_inclusive() {
        let mut h = Histogram::new(&[1.0, 2.0, f64::NAN, 1.0, f64::INFINITY]);
        assert_eq!(h.bounds(), [1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 2.0, 3.0, f64::NAN, f64::INFINITY] {
            h.observe(v);
        }
        let c: Vec<_> = h.cumulative().collect();
        assert_eq!(c, [(1.0, 2), (2.0, 4), (f64::INFINITY, 6)]);
        assert_eq!(h.count(), 6);
    }

    #[test]
    fn quantiles_on_uniform_data() {
        let mut h = Histogram::latency_ms();
        for i in 0..10_000 {
            h.observe(i as f64 / 10.0); // 0 .. 999.9 ms
        }
        for (q, exact) in [(0.5, 500.0), (0.9, 900.0), (0.99, 990.0), (0.1, 100.0)] {
            let est = h.quantile(q).unwrap();
            // The bucket holding the true value.
            let i = LATENCY_MS_BOUNDS.partition_point(|b| *b < exact);
            let width = LATENCY_MS_BOUNDS[i] - if i == 0 { 0.0 } else { LATENCY_MS_BOUNDS[i - 1] };
            assert!((est - exact).abs() <= width, "q{q}: {est} vs {exact}");
        }
        // Uniform within buckets: interpolation is nearly exact.
        assert!((h.quantile(0.5).unwrap() - 500.0).abs() < 1.0);
        assert_eq!(h.quantile(0.0), Some(0.0));
        assert_eq!(h.quantile(1.0), Some(999.9));
        assert_eq!(h.quantile(1.5), None);
        assert_eq!(h.quantile(f64::NAN), None);
    }

    #[test]
    fn inf_bucket_and_negative_values() {
        let mut h = Histogram::new(&[10.0]);
        for v in [50.0, 60.0, 70.0] {
            h.observe(v);
        }
        let p = h.quantile(0.5).unwrap();
        assert!((10.0..=70.0).contains(&p));
        assert_eq!(h.quantile(1.0), Some(70.0));
        let mut n = Histogram::new(&[-5.0, 0.0]);
        n.observe(-10.0);
        n.observe(-1.0);
        let p = n.quantile(0.25).unwrap();
        assert!((-10.0..=-5.0).contains(&p));
    }

    #[test]
    fn merge_requires_same_bounds() {
        let mut a = Histogram::new(&[1.0, 2.0]);
        let mut b = Histogram::new(&[1.0, 2.0]);
        a.observe(0.5);
        b.observe(1.5);
        b.observe(9.0);
        a.merge(&b).unwrap();
        assert_eq!(a.count(), 3);
        assert_eq!(a.sum(), 11.0);
        assert_eq!(a.quantile(1.0), Some(9.0));
        let c = Histogram::new(&[1.0]);
        assert_eq!(a.merge(&c).unwrap_err().code(), "INVALID_ARGUMENT");
    }

    proptest! {
        /// The estimate is within one bucket of the exact (nearest-rank) quantile.
        #[test]
        fn estimate_within_bucket(values in proptest::collection::vec(0.0f64..20_000.0, 1..300), q in 0.0f64..=1.0) {
            let mut h = Histogram::latency_ms();
            for v in &values { h.observe(*v); }
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            let exact = sorted[rank - 1];
            let est = h.quantile(q).unwrap();
            let i = LATENCY_MS_BOUNDS.partition_point(|b| *b < exact);
            let lo = if i == 0 { 0.0 } else { LATENCY_MS_BOUNDS[i - 1] };
            let hi = LATENCY_MS_BOUNDS.get(i).copied().unwrap_or(sorted[sorted.len() - 1]);
            prop_assert!(est >= lo - 1e-9 && est <= hi + 1e-9, "{} not in [{}, {}] (exact {})", est, lo, hi, exact);
        }
    }
}
