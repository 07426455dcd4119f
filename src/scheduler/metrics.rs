//! Latency histograms, in the spirit of kube-scheduler's
//! `scheduler_scheduling_attempt_duration_seconds` and `scheduler_e2e_scheduling_duration`
//! (pkg/scheduler/metrics): fixed log-spaced buckets, constant memory however many pods.

use std::time::Duration;

/// Buckets per decade: each bucket spans a factor of 10^(1/20) ≈ 1.12, so a quantile read
/// from the histogram is within about 6% of the true value.
const PER_DECADE: f64 = 20.0;
/// The smallest bucket's upper bound, in nanoseconds (100 ns).
const FLOOR_NS: f64 = 100.0;
/// 100 ns .. 1000 s.
const BUCKETS: usize = 10 * PER_DECADE as usize;

/// A histogram of durations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
    total: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            counts: vec![0; BUCKETS + 1],
            total: 0,
        }
    }
}

impl LatencyHistogram {
    fn bucket(d: Duration) -> usize {
        let ns = d.as_nanos() as f64;
        if ns <= FLOOR_NS {
            return 0;
        }
        let i = ((ns / FLOOR_NS).log10() * PER_DECADE).ceil() as usize;
        i.min(BUCKETS)
    }

    fn upper_bound(i: usize) -> Duration {
        Duration::from_nanos((FLOOR_NS * 10f64.powf(i as f64 / PER_DECADE)) as u64)
    }

    pub fn record(&mut self, d: Duration) {
        self.counts[Self::bucket(d)] += 1;
        self.total += 1;
    }

    /// Number of recorded durations.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0.0..=1.0), as the upper bound of the bucket it falls in; `None`
    /// when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::upper_bound(i));
            }
        }
        Some(Self::upper_bound(BUCKETS))
    }

    /// Add another histogram's counts.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quantiles land within a bucket (≈12%) above the true value.
    #[test]
    fn quantiles_are_within_a_bucket() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.quantile(0.5), None);
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.count(), 1000);
        let median = h.quantile(0.5).unwrap().as_secs_f64() * 1e6;
        assert!((500.0..=500.0 * 1.13).contains(&median), "{median}");
        let p99 = h.quantile(0.99).unwrap().as_secs_f64() * 1e6;
        assert!((990.0..=990.0 * 1.13).contains(&p99), "{p99}");
        h.record(Duration::from_secs(100_000));
        assert!(h.quantile(1.0).unwrap() >= Duration::from_secs(999));
    }
}
