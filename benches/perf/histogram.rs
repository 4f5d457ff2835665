//! A log-bucketed latency histogram (HdrHistogram-style, fixed precision).
//!
//! Values below 2^(B+1) get a bucket each; above that every power of two is cut
//! into 2^B buckets, so any recorded value is reported within 1/2^B (1.6 %) of
//! its true value, with a fixed 30 KiB table and O(1) recording. Each consumer
//! keeps its own and they are merged at the end, so recording needs no lock.

/// Sub-bucket bits: 2^6 buckets per power of two.
const B: u32 = 6;
const SUB: u64 = 1 << B;
const BUCKETS: usize = ((64 - B as usize) * SUB as usize) + SUB as usize;

/// Counts of values (nanoseconds) in log-spaced buckets.
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }

    /// Records one value.
    pub fn record(&mut self, value: u64) {
        self.counts[index(value)] += 1;
        self.total += 1;
        self.max = self.max.max(value);
    }

    /// Adds every value recorded in `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest value recorded (exact).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1): the highest value of the bucket the
    /// q-th value fell in, never above the true maximum; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return highest_in(i).min(self.max);
            }
        }
        self.max
    }
}

/// The bucket of `value`.
fn index(value: u64) -> usize {
    if value < 2 * SUB {
        return value as usize;
    }
    let exp = 63 - value.leading_zeros();
    let mantissa = value >> (exp - B);
    ((exp - B) as u64 * SUB + mantissa) as usize
}

/// The largest value that falls in bucket `i`.
fn highest_in(i: usize) -> u64 {
    let i = i as u64;
    if i < 2 * SUB {
        return i;
    }
    let shift = (i >> B) - 1;
    let mantissa = i - shift * SUB;
    ((mantissa + 1) << shift).wrapping_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_bounded() {
        let mut previous = 0;
        for v in (0..200_000u64).chain([u64::MAX / 3, u64::MAX]) {
            let i = index(v);
            assert!(i >= previous && i < BUCKETS, "value {v} index {i}");
            assert!(highest_in(i) >= v, "value {v} above its bucket");
            previous = i;
        }
        for v in [1_000u64, 123_456, 9_876_543_210] {
            let err = (highest_in(index(v)) - v) as f64 / v as f64;
            assert!(err <= 1.0 / SUB as f64, "value {v} error {err}");
        }
    }

    #[test]
    fn quantiles_of_a_uniform_range() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 1_000);
        }
        let near = |got: u64, want: u64| (got as f64 - want as f64).abs() / want as f64 <= 0.02;
        assert!(near(h.quantile(0.5), 5_000_000), "{}", h.quantile(0.5));
        assert!(near(h.quantile(0.99), 9_900_000), "{}", h.quantile(0.99));
        assert_eq!(h.quantile(1.0), 10_000_000);
        let mut other = Histogram::new();
        other.record(20_000_000);
        h.merge(&other);
        assert_eq!((h.count(), h.max()), (10_001, 20_000_000));
    }
}
