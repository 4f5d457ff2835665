//! Counters shared by the producer and consumer tasks and the reporter.
//!
//! Tasks add per batch, not per message, so the atomics cost nothing at
//! millions of messages a second.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};

use tokio::sync::Notify;

/// Totals so far, and the condition that ends a counted run.
pub struct Counters {
    /// Messages written to the socket.
    pub published: AtomicU64,
    /// Publisher confirms received (acks).
    pub confirmed: AtomicU64,
    /// Publisher nacks received.
    pub nacked: AtomicU64,
    /// Messages delivered to consumers.
    pub consumed: AtomicU64,
    /// Producers still publishing.
    pub producers_running: AtomicUsize,
    /// Set when a producer or consumer failed, which ends the run.
    failed: AtomicBool,
    /// Deliveries after which the run is complete (`u64::MAX`: none).
    consume_target: u64,
    /// Woken when a producer finishes or fails, a consumer fails, or the
    /// consume target is reached.
    pub changed: Notify,
}

impl Counters {
    /// Fresh counters for `producers` producers and an optional delivery target.
    pub fn new(producers: usize, consume_target: Option<u64>) -> Self {
        Counters {
            published: AtomicU64::new(0),
            confirmed: AtomicU64::new(0),
            nacked: AtomicU64::new(0),
            consumed: AtomicU64::new(0),
            producers_running: AtomicUsize::new(producers),
            failed: AtomicBool::new(false),
            consume_target: consume_target.unwrap_or(u64::MAX),
            changed: Notify::new(),
        }
    }

    /// Adds deliveries, waking the run when they reach the target.
    pub fn add_consumed(&self, n: u64) {
        let total = self.consumed.fetch_add(n, Relaxed) + n;
        if total >= self.consume_target && total - n < self.consume_target {
            self.changed.notify_one();
        }
    }

    /// Marks one producer as finished.
    pub fn producer_done(&self) {
        self.producers_running.fetch_sub(1, Relaxed);
        self.changed.notify_one();
    }

    /// Records that a task failed (its error comes back through its handle).
    pub fn fail(&self) {
        self.failed.store(true, Relaxed);
        self.changed.notify_one();
    }

    /// Whether a task failed.
    pub fn failed(&self) -> bool {
        self.failed.load(Relaxed)
    }

    /// Whether every producer is done and, given consumers, the target is reached.
    pub fn complete(&self, consumers: bool) -> bool {
        self.producers_running.load(Relaxed) == 0
            && (!consumers || self.consumed.load(Relaxed) >= self.consume_target)
    }

    /// A snapshot of the totals.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            published: self.published.load(Relaxed),
            confirmed: self.confirmed.load(Relaxed),
            nacked: self.nacked.load(Relaxed),
            consumed: self.consumed.load(Relaxed),
        }
    }
}

/// Totals at one instant.
#[derive(Clone, Copy, Default)]
pub struct Snapshot {
    /// Messages published.
    pub published: u64,
    /// Confirms received.
    pub confirmed: u64,
    /// Nacks received.
    pub nacked: u64,
    /// Messages consumed.
    pub consumed: u64,
}
