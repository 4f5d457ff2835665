//! Rate limiting for one producer.
//!
//! Messages are due at evenly spaced instants from the start; a producer that
//! fell behind (a stalled broker) may catch up by at most a tenth of a second's
//! worth, so a limited run never turns into a burst test.

use std::time::{Duration, Instant};

/// When the next messages of a rate-limited producer are due.
pub struct Pacer {
    start: Instant,
    rate: f64,
}

impl Pacer {
    /// A pacer for `rate` messages per second, starting now.
    pub fn new(rate: u32) -> Self {
        Pacer {
            start: Instant::now(),
            rate: f64::from(rate.max(1)),
        }
    }

    /// How many messages may go now, given `sent` so far.
    pub fn allowed(&mut self, sent: u64, now: Instant) -> u64 {
        let due = (now.duration_since(self.start).as_secs_f64() * self.rate) as u64;
        let max_lag = (self.rate / 10.0).max(1.0) as u64;
        if due > sent + max_lag {
            self.start = now - Duration::from_secs_f64((sent + max_lag) as f64 / self.rate);
            return max_lag;
        }
        due.saturating_sub(sent)
    }

    /// When message number `sent + 1` is due.
    pub fn next_due(&self, sent: u64) -> Instant {
        self.start + Duration::from_secs_f64((sent + 1) as f64 / self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_messages_and_caps_catch_up() {
        let mut p = Pacer::new(1000);
        let t0 = p.start;
        assert_eq!(p.allowed(0, t0), 0);
        assert_eq!(p.next_due(0), t0 + Duration::from_millis(1));
        assert_eq!(p.allowed(0, t0 + Duration::from_millis(5)), 5);
        assert_eq!(p.allowed(5, t0 + Duration::from_millis(5)), 0);
        // Two seconds of stall: only 100 (a tenth of a second) may go at once.
        assert_eq!(p.allowed(5, t0 + Duration::from_secs(2)), 100);
        assert_eq!(p.allowed(105, t0 + Duration::from_secs(2)), 0);
    }
}
