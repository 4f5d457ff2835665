//! Prometheus metrics in the text exposition format, under RabbitMQ's
//! metric names where RabbitMQ has one (its `rabbitmq_prometheus` plugin):
//! `/metrics` aggregates queue metrics over all queues, as RabbitMQ does by
//! default, and `/metrics/per-object` labels them by vhost and queue.
//! Warren's own store metrics are `warren_*` histograms.

use std::fmt::Write;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;

use crate::broker::Broker;
use crate::broker::queue::QueueStats;
use crate::management::http::ApiError;
use crate::management::rates::broker_counters;
use crate::management::{error_response, text_response};
use crate::store::stats::HistogramSnapshot;

/// How a per-queue metric is read from a queue's statistics.
type QueueValue = fn(&QueueStats) -> u64;

/// The content type of the text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Answers a request to the Prometheus listener.
pub fn respond(broker: &Broker, path: &str) -> Response<Full<Bytes>> {
    let per_object = match path {
        "/metrics" => false,
        "/metrics/per-object" => true,
        _ => return error_response(&ApiError::not_found()),
    };
    text_response(CONTENT_TYPE, Bytes::from(render(broker, per_object)))
}

/// One metric family being written: its header once, then its samples.
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            let rendered: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.out, "{{{}}}", rendered.join(","));
        }
        let _ = writeln!(self.out, " {}", number(value));
    }
}

fn family<'a>(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    Family { out }
}

/// A label value escaped as the text format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(value: f64) -> String {
    match value {
        v if v == f64::INFINITY => "+Inf".into(),
        v => v.to_string(),
    }
}

/// The whole exposition.
pub fn render(broker: &Broker, per_object: bool) -> String {
    let mut out = String::new();
    let connections = broker.connections().list();
    let channels: usize = connections.iter().map(|c| c.channels.lock().len()).sum();
    let mut queues = Vec::new();
    for name in broker.vhost_names() {
        if let Some(vhost) = broker.vhost(&name) {
            queues.extend(vhost.queues().into_iter().map(|q| (name.clone(), q)));
        }
    }
    let stats: Vec<_> = queues.iter().map(|(_, q)| q.stats()).collect();
    let consumers: u64 = stats.iter().map(|s| u64::from(s.consumers)).sum();
    for (name, help, value) in [
        (
            "rabbitmq_connections",
            "Connections currently open",
            connections.len(),
        ),
        ("rabbitmq_channels", "Channels currently open", channels),
        ("rabbitmq_queues", "Queues available", queues.len()),
    ] {
        family(&mut out, name, "gauge", help).sample(name, &[], value as f64);
    }
    family(
        &mut out,
        "rabbitmq_consumers",
        "gauge",
        "Consumers currently connected",
    )
    .sample("rabbitmq_consumers", &[], consumers as f64);
    let queue_metrics: [(&str, &str, QueueValue); 4] = [
        (
            "rabbitmq_queue_messages_ready",
            "Messages ready to be delivered to consumers",
            |s| s.ready,
        ),
        (
            "rabbitmq_queue_messages_unacked",
            "Messages delivered to consumers but not yet acknowledged",
            |s| s.unacked,
        ),
        (
            "rabbitmq_queue_messages",
            "Sum of ready and unacknowledged messages - total queue depth",
            |s| s.ready + s.unacked,
        ),
        ("rabbitmq_queue_consumers", "Consumers on a queue", |s| {
            u64::from(s.consumers)
        }),
    ];
    for (name, help, value) in queue_metrics {
        let mut samples = family(&mut out, name, "gauge", help);
        if per_object {
            for ((vhost, queue), s) in queues.iter().zip(&stats) {
                samples.sample(
                    name,
                    &[("vhost", vhost), ("queue", queue.name())],
                    value(s) as f64,
                );
            }
        } else {
            let total: u64 = stats.iter().map(value).sum();
            samples.sample(name, &[], total as f64);
        }
    }
    let counters = broker_counters(broker);
    for (name, help, value) in [
        (
            "rabbitmq_global_messages_received_total",
            "Total number of messages received from publishers",
            counters.published,
        ),
        (
            "rabbitmq_global_messages_delivered_total",
            "Total number of messages delivered to consumers",
            counters.delivered,
        ),
        (
            "rabbitmq_global_messages_acknowledged_total",
            "Total number of messages acknowledged by consumers",
            counters.acked,
        ),
    ] {
        family(&mut out, name, "counter", help).sample(
            name,
            &[("protocol", "amqp091")],
            value as f64,
        );
    }
    let store = broker.store_stats();
    histogram(
        &mut out,
        "warren_store_fsync_seconds",
        "Time to write and fsync one batch of persistent messages",
        &store.fsync_seconds.snapshot(),
    );
    histogram(
        &mut out,
        "warren_store_group_commit_size",
        "Persistent messages made durable by one fsync",
        &store.group_commit_size.snapshot(),
    );
    out
}

fn histogram(out: &mut String, name: &str, help: &str, snapshot: &HistogramSnapshot) {
    let mut samples = family(out, name, "histogram", help);
    let bucket = format!("{name}_bucket");
    for (bound, count) in &snapshot.buckets {
        samples.sample(&bucket, &[("le", &number(*bound))], *count as f64);
    }
    samples.sample(&format!("{name}_sum"), &[], snapshot.sum);
    samples.sample(&format!("{name}_count"), &[], snapshot.count as f64);
}
