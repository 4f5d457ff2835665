//! Message rates: the counters of every queue (and of the whole broker)
//! sampled at a fixed interval, each rate the change between the last two
//! samples per second, as RabbitMQ's management API reports them.

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::Mutex;

use crate::broker::Broker;
use crate::broker::queue::MessageCounters;

/// Per-second rates of the message counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct MessageRates {
    /// Messages published.
    pub publish: f64,
    /// Deliveries and gets.
    pub deliver_get: f64,
    /// Acknowledgements.
    pub ack: f64,
}

/// Broker-wide message counters.
pub fn broker_counters(broker: &Broker) -> MessageCounters {
    let mut total = MessageCounters::default();
    for name in broker.vhost_names() {
        if let Some(vhost) = broker.vhost(&name) {
            total += vhost.message_counters();
        }
    }
    // Published counts what clients sent, routed or not, as RabbitMQ's overview does.
    total.published = broker.connections().received_total();
    total
}

#[derive(Debug, Default)]
struct Sampled {
    at: Option<Instant>,
    /// The last sample of each queue (by vhost and name) and of the broker (by empty names).
    counters: HashMap<(String, String), MessageCounters>,
    rates: HashMap<(String, String), MessageRates>,
}

/// The latest samples and the rates between them.
#[derive(Debug, Default)]
pub struct Rates {
    sampled: Mutex<Sampled>,
}

impl Rates {
    /// Takes a sample of every queue and of the broker.
    pub fn sample(&self, broker: &Broker) {
        let now = Instant::now();
        let mut counters = HashMap::new();
        counters.insert((String::new(), String::new()), broker_counters(broker));
        for vhost_name in broker.vhost_names() {
            let Some(vhost) = broker.vhost(&vhost_name) else {
                continue;
            };
            for queue in vhost.queues() {
                counters.insert(
                    (vhost_name.clone(), queue.name().to_string()),
                    queue.stats().counters,
                );
            }
        }
        let mut sampled = self.sampled.lock();
        let elapsed = sampled.at.map(|at| now.duration_since(at).as_secs_f64());
        let rates = counters
            .iter()
            .filter_map(|(key, now)| {
                let before = sampled.counters.get(key)?;
                let seconds = elapsed.filter(|s| *s > 0.0)?;
                let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / seconds;
                let rates = MessageRates {
                    publish: rate(now.published, before.published),
                    deliver_get: rate(now.delivered, before.delivered),
                    ack: rate(now.acked, before.acked),
                };
                Some((key.clone(), rates))
            })
            .collect();
        *sampled = Sampled {
            at: Some(now),
            counters,
            rates,
        };
    }

    /// The rates of a queue (zero until it has been sampled twice).
    pub fn of_queue(&self, vhost: &str, queue: &str) -> MessageRates {
        let key = (vhost.to_string(), queue.to_string());
        self.sampled
            .lock()
            .rates
            .get(&key)
            .copied()
            .unwrap_or_default()
    }

    /// The broker-wide rates.
    pub fn of_broker(&self) -> MessageRates {
        self.of_queue("", "")
    }
}
