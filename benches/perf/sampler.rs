//! CPU and memory sampling over a run: this process and the broker.
//!
//! CPU is a difference of /proc counters between two instants; the broker's
//! RSS is sampled every second in the background so its peak is caught even
//! when it falls again before the run ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::procfs::Process;

/// Samples CPU at start and end, and the broker's RSS every second for its peak.
pub struct Sampler {
    broker: Option<Process>,
    started: Instant,
    client_cpu: Option<f64>,
    broker_cpu: Option<f64>,
    rss: Arc<RssPeak>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct RssPeak {
    last: AtomicU64,
    peak: AtomicU64,
}

impl RssPeak {
    fn sample(&self, broker: Process) {
        if let Some(kib) = broker.rss_kib() {
            self.last.store(kib, Relaxed);
            self.peak.fetch_max(kib, Relaxed);
        }
    }
}

/// CPU and memory used over a run.
pub struct Usage {
    /// Wall-clock seconds sampled.
    pub secs: f64,
    /// This process's user+system CPU seconds.
    pub client_cpu_secs: Option<f64>,
    /// The broker's user+system CPU seconds.
    pub broker_cpu_secs: Option<f64>,
    /// Highest broker RSS sampled, KiB.
    pub broker_rss_peak_kib: Option<u64>,
    /// Broker RSS at the end, KiB.
    pub broker_rss_end_kib: Option<u64>,
}

impl Sampler {
    /// Starts sampling now.
    pub fn start(broker: Option<Process>) -> Self {
        let rss = Arc::new(RssPeak::default());
        let task = tokio::spawn({
            let rss = rss.clone();
            async move {
                let Some(broker) = broker else { return };
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    rss.sample(broker);
                }
            }
        });
        Sampler {
            broker,
            started: Instant::now(),
            client_cpu: Process::This.cpu_seconds(),
            broker_cpu: broker.and_then(Process::cpu_seconds),
            rss,
            task,
        }
    }

    /// The broker's RSS at the last sample, KiB.
    pub fn broker_rss_kib(&self) -> Option<u64> {
        self.broker?;
        Some(self.rss.last.load(Relaxed)).filter(|&kib| kib > 0)
    }

    /// The usage since `start`; sampling goes on until the sampler is dropped.
    pub fn usage(&self) -> Usage {
        if let Some(broker) = self.broker {
            self.rss.sample(broker);
        }
        let delta = |before: Option<f64>, after: Option<f64>| Some(after? - before?);
        Usage {
            secs: self.started.elapsed().as_secs_f64(),
            client_cpu_secs: delta(self.client_cpu, Process::This.cpu_seconds()),
            broker_cpu_secs: delta(self.broker_cpu, self.broker.and_then(Process::cpu_seconds)),
            broker_rss_peak_kib: self.broker.map(|_| self.rss.peak.load(Relaxed)),
            broker_rss_end_kib: self.broker.map(|_| self.rss.last.load(Relaxed)),
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}
