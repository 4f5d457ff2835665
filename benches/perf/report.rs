//! The final summaries, as text or as one JSON line.

use std::fmt::Write;

use crate::histogram::Histogram;
use crate::json::Json;
use crate::sampler::Usage;

/// Results of a producer/consumer run.
pub struct LoadSummary {
    /// Messages published.
    pub published: u64,
    /// Publisher confirms (acks) received.
    pub confirmed: u64,
    /// Publisher nacks received.
    pub nacked: u64,
    /// Messages delivered to consumers.
    pub consumed: u64,
    /// Seconds producers were publishing.
    pub publish_secs: f64,
    /// Seconds consumers were consuming.
    pub consume_secs: f64,
    /// End-to-end latencies, nanoseconds.
    pub latency: Histogram,
    /// Ready messages left in the queues, measured after a producer-only run.
    pub backlog: Option<u64>,
    /// CPU and memory.
    pub usage: Usage,
}

/// Results of a connection-mode run.
pub struct ConnectionSummary {
    /// Connections attempted.
    pub requested: usize,
    /// Connections that opened with all their channels.
    pub opened: usize,
    /// Channels per connection.
    pub channels_per_connection: u16,
    /// Seconds to open them all.
    pub open_secs: f64,
    /// Seconds to close them all.
    pub close_secs: f64,
    /// Connections whose close handshake failed.
    pub close_failures: usize,
    /// Broker RSS before opening, KiB.
    pub rss_before_kib: Option<u64>,
    /// Broker RSS while holding them, KiB.
    pub rss_held_kib: Option<u64>,
    /// CPU and memory.
    pub usage: Usage,
}

fn rate(count: u64, secs: f64) -> f64 {
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

impl LoadSummary {
    fn publish_rate(&self) -> f64 {
        rate(self.published, self.publish_secs)
    }

    fn consume_rate(&self) -> f64 {
        rate(self.consumed, self.consume_secs)
    }

    /// Broker CPU µs per delivered message (per published one when nothing was consumed).
    fn broker_us_per_msg(&self) -> Option<f64> {
        let messages = if self.consumed > 0 {
            self.consumed
        } else {
            self.published
        };
        let cpu = self.usage.broker_cpu_secs?;
        (messages > 0).then(|| cpu * 1e6 / messages as f64)
    }

    fn latency_us(&self, q: f64) -> Option<f64> {
        (self.latency.count() > 0).then(|| self.latency.quantile(q) as f64 / 1e3)
    }

    /// Multi-line human-readable summary.
    pub fn text(&self) -> String {
        let mut s = String::new();
        if self.publish_secs > 0.0 {
            let _ = writeln!(
                s,
                "published   {:>12} msgs in {:7.2} s = {:>10.0} msg/s",
                self.published,
                self.publish_secs,
                self.publish_rate()
            );
        }
        if self.confirmed + self.nacked > 0 {
            let _ = writeln!(
                s,
                "confirmed   {:>12} msgs, {} nacked",
                self.confirmed, self.nacked
            );
        }
        if self.consume_secs > 0.0 {
            let _ = writeln!(
                s,
                "consumed    {:>12} msgs in {:7.2} s = {:>10.0} msg/s",
                self.consumed,
                self.consume_secs,
                self.consume_rate()
            );
        }
        if let Some(backlog) = self.backlog {
            let _ = writeln!(s, "queued      {backlog:>12} msgs left in the queues");
        }
        if self.latency.count() > 0 {
            let q = |q| format_us(self.latency.quantile(q));
            let _ = writeln!(
                s,
                "latency     p50 {}  p99 {}  p99.9 {}  max {}",
                q(0.5),
                q(0.99),
                q(0.999),
                format_us(self.latency.max())
            );
        }
        let per = if self.consumed > 0 {
            "delivered message"
        } else {
            "published message"
        };
        s.push_str(&self.usage.text(self.broker_us_per_msg(), per));
        s
    }

    /// The summary as one JSON object.
    pub fn json(&self) -> String {
        Json::default()
            .str("mode", "load")
            .int("published", Some(self.published))
            .int("confirmed", Some(self.confirmed))
            .int("nacked", Some(self.nacked))
            .int("consumed", Some(self.consumed))
            .num("publish_secs", Some(self.publish_secs))
            .num("consume_secs", Some(self.consume_secs))
            .num("publish_rate", Some(self.publish_rate()))
            .num("consume_rate", Some(self.consume_rate()))
            .int("backlog", self.backlog)
            .num("latency_p50_us", self.latency_us(0.5))
            .num("latency_p99_us", self.latency_us(0.99))
            .num("latency_p999_us", self.latency_us(0.999))
            .num(
                "latency_max_us",
                (self.latency.count() > 0).then(|| self.latency.max() as f64 / 1e3),
            )
            .with(|j| usage_json(j, &self.usage))
            .num("broker_cpu_us_per_msg", self.broker_us_per_msg())
            .finish()
    }
}

impl ConnectionSummary {
    /// Broker memory per held connection, KiB.
    fn kib_per_connection(&self) -> Option<f64> {
        let grown = self.rss_held_kib? as f64 - self.rss_before_kib? as f64;
        (self.opened > 0).then(|| grown / self.opened as f64)
    }

    /// Multi-line human-readable summary.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "opened      {}/{} connections x {} channels in {:.2} s = {:.0} conn/s",
            self.opened,
            self.requested,
            self.channels_per_connection,
            self.open_secs,
            rate(self.opened as u64, self.open_secs)
        );
        let _ = writeln!(
            s,
            "closed      {} in {:.2} s = {:.0} conn/s ({} failed)",
            self.opened,
            self.close_secs,
            rate(self.opened as u64, self.close_secs),
            self.close_failures
        );
        if let (Some(before), Some(held), Some(per)) = (
            self.rss_before_kib,
            self.rss_held_kib,
            self.kib_per_connection(),
        ) {
            let _ = writeln!(
                s,
                "broker rss  {} before, {} held = {per:.1} KiB per connection",
                format_kib(before),
                format_kib(held)
            );
        }
        s.push_str(&self.usage.text(None, ""));
        s
    }

    /// The summary as one JSON object.
    pub fn json(&self) -> String {
        Json::default()
            .str("mode", "connections")
            .int("requested", Some(self.requested as u64))
            .int("opened", Some(self.opened as u64))
            .int(
                "channels_per_connection",
                Some(self.channels_per_connection.into()),
            )
            .num("open_secs", Some(self.open_secs))
            .num("open_rate", Some(rate(self.opened as u64, self.open_secs)))
            .num("close_secs", Some(self.close_secs))
            .num(
                "close_rate",
                Some(rate(self.opened as u64, self.close_secs)),
            )
            .int("close_failures", Some(self.close_failures as u64))
            .int("broker_rss_before_kib", self.rss_before_kib)
            .int("broker_rss_held_kib", self.rss_held_kib)
            .num("broker_kib_per_connection", self.kib_per_connection())
            .with(|j| usage_json(j, &self.usage))
            .finish()
    }
}

impl Usage {
    fn text(&self, broker_per_msg: Option<f64>, per_what: &str) -> String {
        let mut s = String::new();
        if let Some(cpu) = self.client_cpu_secs {
            let _ = writeln!(
                s,
                "client cpu  {cpu:.2} s = {:.0} % of one core",
                100.0 * cpu / self.secs.max(1e-9)
            );
        }
        if let Some(cpu) = self.broker_cpu_secs {
            let _ = write!(
                s,
                "broker cpu  {cpu:.2} s = {:.0} % of one core",
                100.0 * cpu / self.secs.max(1e-9)
            );
            match broker_per_msg {
                Some(us) => {
                    let _ = writeln!(s, ", {us:.2} µs per {per_what}");
                }
                None => s.push('\n'),
            }
        }
        if let (Some(peak), Some(end)) = (self.broker_rss_peak_kib, self.broker_rss_end_kib) {
            let _ = writeln!(
                s,
                "broker rss  peak {}, end {}",
                format_kib(peak),
                format_kib(end)
            );
        }
        s
    }
}

/// Microseconds (or milliseconds when large) from nanoseconds.
fn format_us(ns: u64) -> String {
    if ns >= 10_000_000 {
        format!("{:.1} ms", ns as f64 / 1e6)
    } else {
        format!("{:.1} µs", ns as f64 / 1e3)
    }
}

/// MiB from KiB.
pub fn format_kib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Appends the usage fields.
fn usage_json(json: Json, u: &Usage) -> Json {
    json.num("secs", Some(u.secs))
        .num("client_cpu_secs", u.client_cpu_secs)
        .num(
            "client_cpu_pct",
            u.client_cpu_secs.map(|c| 100.0 * c / u.secs.max(1e-9)),
        )
        .num("broker_cpu_secs", u.broker_cpu_secs)
        .int("broker_rss_peak_kib", u.broker_rss_peak_kib)
        .int("broker_rss_end_kib", u.broker_rss_end_kib)
}
