//! The headers RabbitMQ adds to a dead-lettered message (`x-death`, `x-first-death-*`,
//! `x-last-death-*`), read strictly: every test that looks at them also checks their layout
//! and field types, since clients match on both.
#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::{
    message::Delivery,
    types::{AMQPValue, FieldTable},
};

use super::lapin::header;

/// One entry of the `x-death` array: how often a message died in one queue for one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Death {
    pub count: i64,
    pub reason: String,
    pub queue: String,
    /// The exchange the message had been published to before it died.
    pub exchange: String,
    /// Its routing keys then, CC keys included.
    pub routing_keys: Vec<String>,
    /// Its `expiration` property, which dead-lettering removes from the message.
    pub original_expiration: Option<String>,
}

impl Death {
    /// An entry without `original-expiration`.
    pub fn new(count: i64, reason: &str, queue: &str, exchange: &str, keys: &[&str]) -> Self {
        Self {
            count,
            reason: reason.to_string(),
            queue: queue.to_string(),
            exchange: exchange.to_string(),
            routing_keys: keys.iter().map(|k| k.to_string()).collect(),
            original_expiration: None,
        }
    }

    /// The same entry for a message that carried `expiration`.
    pub fn with_original_expiration(mut self, expiration: &str) -> Self {
        self.original_expiration = Some(expiration.to_string());
        self
    }
}

/// How far the broker's `time` may be from this machine's clock.
const CLOCK_SLACK: Duration = Duration::from_secs(300);

/// The `x-death` entries of `delivery`, most recent first; empty if it never died.
///
/// Each entry must be a table of exactly `count` (long), `reason`, `queue`, `exchange`
/// (long strings), `time` (a timestamp in seconds, close to now), `routing-keys` (an array of
/// long strings) and, only for messages that had one, `original-expiration` (a long string).
pub fn deaths(delivery: &Delivery) -> Vec<Death> {
    let Some(value) = header(delivery, "x-death") else {
        return Vec::new();
    };
    let AMQPValue::FieldArray(entries) = value else {
        panic!("x-death must be an array, got {value:?}");
    };
    entries
        .as_slice()
        .iter()
        .map(|entry| match entry {
            AMQPValue::FieldTable(t) => death(t),
            other => panic!("x-death entries must be tables, got {other:?}"),
        })
        .collect()
}

fn death(entry: &FieldTable) -> Death {
    let mut keys: Vec<&str> = entry.inner().keys().map(|k| k.as_str()).collect();
    keys.sort_unstable();
    let mut expected = vec![
        "count",
        "exchange",
        "queue",
        "reason",
        "routing-keys",
        "time",
    ];
    if entry.contains_key("original-expiration") {
        expected.push("original-expiration");
        expected.sort_unstable();
    }
    assert_eq!(keys, expected, "x-death entry fields: {entry:?}");

    let field = |key: &str| &entry.inner()[key];
    let count = match field("count") {
        AMQPValue::LongLongInt(n) => *n,
        other => panic!("x-death count must be a long, got {other:?}"),
    };
    match field("time") {
        AMQPValue::Timestamp(seconds) => assert_recent(*seconds),
        other => panic!("x-death time must be a timestamp, got {other:?}"),
    }
    let routing_keys = match field("routing-keys") {
        AMQPValue::FieldArray(keys) => keys.as_slice().iter().map(long_string).collect(),
        other => panic!("x-death routing-keys must be an array, got {other:?}"),
    };
    Death {
        count,
        reason: long_string(field("reason")),
        queue: long_string(field("queue")),
        exchange: long_string(field("exchange")),
        routing_keys,
        original_expiration: entry.inner().get("original-expiration").map(long_string),
    }
}

/// The `x-first-death-*` headers as (reason, queue, exchange): where the message died first.
pub fn first_death(delivery: &Delivery) -> Option<(String, String, String)> {
    named_death(delivery, "first")
}

/// The `x-last-death-*` headers as (reason, queue, exchange), which RabbitMQ 3.13 added.
pub fn last_death(delivery: &Delivery) -> Option<(String, String, String)> {
    named_death(delivery, "last")
}

fn named_death(delivery: &Delivery, which: &str) -> Option<(String, String, String)> {
    let part = |field: &str| header(delivery, &format!("x-{which}-death-{field}")).map(long_string);
    match (part("reason"), part("queue"), part("exchange")) {
        (Some(reason), Some(queue), Some(exchange)) => Some((reason, queue, exchange)),
        (None, None, None) => None,
        partial => panic!("x-{which}-death-* headers must come together, got {partial:?}"),
    }
}

/// (reason, queue, exchange) as [`first_death`] and [`last_death`] return them.
pub fn death_of(reason: &str, queue: &str, exchange: &str) -> Option<(String, String, String)> {
    Some((reason.to_string(), queue.to_string(), exchange.to_string()))
}

fn long_string(value: &AMQPValue) -> String {
    match value {
        AMQPValue::LongString(s) => String::from_utf8(s.as_bytes().to_vec()).expect("utf-8"),
        other => panic!("expected a long string, got {other:?}"),
    }
}

fn assert_recent(seconds: u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    assert!(
        now.abs_diff(seconds) <= CLOCK_SLACK.as_secs(),
        "x-death time {seconds} is not close to now ({now}): it must be in seconds"
    );
}
