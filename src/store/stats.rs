//! What the sync thread measures about itself, for the Prometheus metrics:
//! how long each batch's writes and fsyncs take, and how many messages one
//! fsync commits together. Recorded once per batch, with relaxed atomics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the fsync duration buckets, seconds.
pub const FSYNC_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
/// Upper bounds of the group commit size buckets, messages.
pub const GROUP_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];

/// A histogram with fixed buckets, filled without locks.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations at or below each bound (not cumulative).
    buckets: Vec<AtomicU64>,
    /// Sum of the observations, in millionths (to keep it an integer).
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// A histogram's state at one moment, buckets cumulative as Prometheus wants them.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound, observations at or below it)`, the last bound being +Inf.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of the observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|&bound| value <= bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros
            .fetch_add((value * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The observations so far.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let count = self.count.load(Ordering::Relaxed);
        let mut cumulative = 0;
        let mut buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .zip(&self.buckets)
            .map(|(&bound, n)| {
                cumulative += n.load(Ordering::Relaxed);
                (bound, cumulative)
            })
            .collect();
        buckets.push((f64::INFINITY, count.max(cumulative)));
        HistogramSnapshot {
            buckets,
            sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count,
        }
    }
}

/// The store's measurements.
#[derive(Debug)]
pub struct StoreStats {
    /// Seconds to write and fsync one batch of messages.
    pub fsync_seconds: Histogram,
    /// Messages made durable by one fsync.
    pub group_commit_size: Histogram,
}

impl Default for StoreStats {
    fn default() -> StoreStats {
        StoreStats {
            fsync_seconds: Histogram::new(FSYNC_BOUNDS),
            group_commit_size: Histogram::new(GROUP_BOUNDS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_end_with_infinity() {
        let stats = StoreStats::default();
        for size in [1.0, 3.0, 3.0, 5000.0] {
            stats.group_commit_size.observe(size);
        }
        let snapshot = stats.group_commit_size.snapshot();
        assert_eq!(snapshot.count, 4);
        assert_eq!(snapshot.sum, 5007.0);
        assert_eq!(snapshot.buckets[0], (1.0, 1));
        assert_eq!(snapshot.buckets[2], (4.0, 3));
        assert_eq!(snapshot.buckets.last(), Some(&(f64::INFINITY, 4)));
    }
}
