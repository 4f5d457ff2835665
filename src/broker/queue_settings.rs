//! A queue's declared `x-…` arguments, validated as RabbitMQ validates them.
//!
//! RabbitMQ checks each known argument's type and value on every non-passive
//! `queue.declare` and refuses a bad one with 406 and the Erlang term of the
//! problem, e.g. `invalid arg 'x-max-length' for queue 'q' in vhost '/':
//! {value_negative,-1}`. Arguments that belong to another queue type are refused
//! too (current RabbitMQ; 3.10 ignored them). Unknown arguments are kept and ignored.

use std::sync::Arc;
use std::time::Duration;

use crate::broker::arguments::{as_integer, type_name};
use crate::error::{AmqpError, AmqpResult};
use crate::protocol::{AMQPValue, FieldTable};

/// RabbitMQ's largest TTL or expiry: ten years, in milliseconds.
const MAX_EXPIRY_MS: i64 = 315_360_000_000;
/// RabbitMQ's largest `x-max-priority`.
const MAX_PRIORITY: i64 = 255;
/// Redeliveries a quorum queue allows before dead-lettering (RabbitMQ 4.x default).
const DEFAULT_DELIVERY_LIMIT: u64 = 20;

/// What a queue does when a publish would take it past its length limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Drop (dead-letter) the oldest messages to make room.
    #[default]
    DropHead,
    /// Refuse the new message (nacked to confirming publishers).
    RejectPublish,
    /// Refuse the new message and dead-letter it.
    RejectPublishDlx,
}

/// The queue implementation a declaration asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueKind {
    /// A classic queue.
    #[default]
    Classic,
    /// A quorum queue: on one node, a durable queue that counts deliveries.
    Quorum,
}

impl QueueKind {
    /// The type's name, as `x-queue-type` and the management API give it.
    pub fn name(self) -> &'static str {
        match self {
            QueueKind::Classic => "classic",
            QueueKind::Quorum => "quorum",
        }
    }

    /// RabbitMQ's module name for the type, as its error texts show it.
    fn module(self) -> &'static str {
        match self {
            QueueKind::Classic => "rabbit_classic_queue",
            QueueKind::Quorum => "rabbit_quorum_queue",
        }
    }
}

/// Where a queue's dead letters go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterTarget {
    /// The exchange (`""` is the default exchange).
    pub exchange: Arc<str>,
    /// Replaces the message's routing keys when set.
    pub routing_key: Option<Arc<str>>,
}

/// A queue's validated arguments.
#[derive(Debug, Clone, Default)]
pub struct QueueSettings {
    /// `x-message-ttl`: how long a message may wait in the queue.
    pub message_ttl: Option<Duration>,
    /// `x-expires`: how long the queue may stay unused before it is deleted.
    pub expires: Option<Duration>,
    /// `x-max-length`: ready messages allowed.
    pub max_length: Option<u64>,
    /// `x-max-length-bytes`: body bytes of ready messages allowed.
    pub max_length_bytes: Option<u64>,
    /// `x-overflow`.
    pub overflow: Overflow,
    /// `x-dead-letter-exchange` and `x-dead-letter-routing-key`.
    pub dead_letter: Option<DeadLetterTarget>,
    /// `x-max-priority`: the highest message priority the queue orders by.
    pub max_priority: Option<u8>,
    /// `x-single-active-consumer`.
    pub single_active_consumer: bool,
    /// `x-queue-type`.
    pub kind: QueueKind,
    /// `x-delivery-limit` of a quorum queue.
    pub delivery_limit: Option<u64>,
    /// `x-consumer-timeout`: how long a delivery may stay unacknowledged.
    pub consumer_timeout: Option<Duration>,
}

/// Arguments only classic queues take.
const CLASSIC_ONLY: &[&str] = &[
    "x-max-priority",
    "x-queue-mode",
    "x-queue-version",
    "x-queue-master-locator",
];
/// Arguments only quorum (or stream) queues take.
const QUORUM_ONLY: &[&str] = &[
    "x-delivery-limit",
    "x-dead-letter-strategy",
    "x-quorum-initial-group-size",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-member-placement-tag",
    "x-initial-cluster-size",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-stream-filter-size-bytes",
];

impl QueueSettings {
    /// Validates the arguments of a declaration of `resource` (`queue 'q' in vhost '/'`).
    pub fn parse(arguments: &FieldTable, resource: &str) -> AmqpResult<QueueSettings> {
        let args = Args {
            table: arguments,
            resource,
        };
        let kind = match args.get("x-queue-type") {
            None => QueueKind::Classic,
            Some(value) => match string(value) {
                Ok("classic") => QueueKind::Classic,
                Ok("quorum") => QueueKind::Quorum,
                Ok(other) => {
                    return Err(args.invalid(
                        "x-queue-type",
                        format!("\"unsupported queue type '{other}'\""),
                    ));
                }
                Err(problem) => return Err(args.invalid("x-queue-type", problem)),
            },
        };
        let foreign = match kind {
            QueueKind::Classic => QUORUM_ONLY,
            QueueKind::Quorum => CLASSIC_ONLY,
        };
        if let Some((key, _)) = arguments
            .inner()
            .iter()
            .find(|(key, _)| foreign.contains(&key.as_str()))
        {
            return Err(AmqpError::precondition_failed(format!(
                "invalid arg '{key}' for {resource} of queue type {}",
                kind.module()
            )));
        }
        let ttl = |key| -> AmqpResult<Option<i64>> {
            args.integer(key, |v| match v {
                v if v < 0 => Err(format!("{{value_negative,{v}}}")),
                v if v > MAX_EXPIRY_MS => Err(format!("{{value_too_large,{v}}}")),
                _ => Ok(()),
            })
        };
        let message_ttl = ttl("x-message-ttl")?;
        let expires = match args.get("x-expires") {
            Some(value) if integer(value) == Ok(0) => {
                return Err(args.invalid("x-expires", "{value_zero,0}"));
            }
            _ => ttl("x-expires")?,
        };
        let consumer_timeout = args.non_negative("x-consumer-timeout")?;
        let max_length = args.non_negative("x-max-length")?;
        let max_length_bytes = args.non_negative("x-max-length-bytes")?;
        let max_priority = args.integer("x-max-priority", |v| match v {
            v if v < 0 => Err(format!("{{value_negative,{v}}}")),
            v if v > MAX_PRIORITY => Err(format!("{{max_value_exceeded,{v}}}")),
            _ => Ok(()),
        })?;
        let overflow = match args.get("x-overflow") {
            None => Overflow::DropHead,
            Some(value) => match string(value) {
                Ok("drop-head") => Overflow::DropHead,
                Ok("reject-publish") => Overflow::RejectPublish,
                Ok("reject-publish-dlx") => Overflow::RejectPublishDlx,
                Ok(_) => return Err(args.invalid("x-overflow", "invalid_overflow")),
                Err(problem) => return Err(args.invalid("x-overflow", problem)),
            },
        };
        let dead_letter_exchange = match args.get("x-dead-letter-exchange") {
            None => None,
            // RabbitMQ's channel checks this one before the queue's validators, in its own words.
            Some(value) => Some(string(value).map_err(|_| {
                AmqpError::precondition_failed(format!(
                    "invalid type '{}' for arg 'x-dead-letter-exchange' in {resource}",
                    type_name(value)
                ))
            })?),
        };
        let dead_letter_routing_key = match args.get("x-dead-letter-routing-key") {
            None => None,
            Some(value) => {
                let key =
                    string(value).map_err(|p| args.invalid("x-dead-letter-routing-key", p))?;
                if dead_letter_exchange.is_none() {
                    return Err(args.invalid(
                        "x-dead-letter-routing-key",
                        "routing_key_but_no_dlx_defined",
                    ));
                }
                Some(Arc::from(key))
            }
        };
        let single_active_consumer = match args.get("x-single-active-consumer") {
            None => false,
            Some(AMQPValue::Boolean(on)) => *on,
            Some(other) => {
                return Err(args.invalid(
                    "x-single-active-consumer",
                    format!("{{unacceptable_type,{}}}", type_name(other)),
                ));
            }
        };
        let delivery_limit = match kind {
            QueueKind::Classic => None,
            // A negative limit means unlimited, as in RabbitMQ.
            QueueKind::Quorum => match args.integer("x-delivery-limit", |_| Ok(()))? {
                Some(limit) => u64::try_from(limit).ok(),
                None => Some(DEFAULT_DELIVERY_LIMIT),
            },
        };
        let millis = |ms: Option<i64>| ms.map(|ms| Duration::from_millis(ms as u64));
        Ok(QueueSettings {
            message_ttl: millis(message_ttl),
            expires: millis(expires),
            max_length: max_length.map(|v| v as u64),
            max_length_bytes: max_length_bytes.map(|v| v as u64),
            overflow,
            dead_letter: dead_letter_exchange.map(|exchange| DeadLetterTarget {
                exchange: Arc::from(exchange),
                routing_key: dead_letter_routing_key,
            }),
            max_priority: max_priority.map(|v| v as u8),
            single_active_consumer,
            kind,
            delivery_limit,
            consumer_timeout: millis(consumer_timeout),
        })
    }

    /// Whether the queue has a length limit of either kind.
    pub fn has_length_limit(&self) -> bool {
        self.max_length.is_some() || self.max_length_bytes.is_some()
    }
}

/// The arguments of one declaration, for lookups and RabbitMQ-style errors.
struct Args<'a> {
    table: &'a FieldTable,
    resource: &'a str,
}

impl Args<'_> {
    fn get(&self, key: &str) -> Option<&AMQPValue> {
        self.table.inner().get(key)
    }

    fn invalid(&self, key: &str, problem: impl std::fmt::Display) -> AmqpError {
        AmqpError::precondition_failed(format!(
            "invalid arg '{key}' for {}: {problem}",
            self.resource
        ))
    }

    /// An integer argument, checked by `check` (which returns the Erlang term of a problem).
    fn integer(
        &self,
        key: &str,
        check: impl Fn(i64) -> Result<(), String>,
    ) -> AmqpResult<Option<i64>> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let value = integer(value).map_err(|problem| self.invalid(key, problem))?;
        check(value).map_err(|problem| self.invalid(key, problem))?;
        Ok(Some(value))
    }

    fn non_negative(&self, key: &str) -> AmqpResult<Option<i64>> {
        self.integer(key, |v| {
            if v < 0 {
                Err(format!("{{value_negative,{v}}}"))
            } else {
                Ok(())
            }
        })
    }
}

/// An integer of any width, or RabbitMQ's complaint about the type.
pub fn integer(value: &AMQPValue) -> Result<i64, String> {
    as_integer(value).ok_or_else(|| format!("\"expected integer, got {}\"", type_name(value)))
}

/// A string argument, or RabbitMQ's complaint about the type.
fn string(value: &AMQPValue) -> Result<&str, String> {
    match value {
        AMQPValue::LongString(s) => {
            std::str::from_utf8(s.as_bytes()).map_err(|_| "{unacceptable_type,longstr}".into())
        }
        AMQPValue::ShortString(s) => Ok(s.as_str()),
        other => Err(format!("{{unacceptable_type,{}}}", type_name(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, AMQPValue)]) -> AmqpResult<QueueSettings> {
        let mut table = FieldTable::default();
        for (key, value) in pairs {
            table.insert((*key).into(), value.clone());
        }
        QueueSettings::parse(&table, "queue 'q' in vhost '/'")
    }

    fn refusal(pairs: &[(&str, AMQPValue)]) -> String {
        parse(pairs)
            .expect_err("must be refused")
            .reply_text()
            .to_string()
    }

    #[test]
    fn valid_arguments_are_read() {
        let settings = parse(&[
            ("x-message-ttl", AMQPValue::LongInt(100)),
            ("x-max-length", AMQPValue::LongLongInt(5)),
            ("x-overflow", AMQPValue::LongString("reject-publish".into())),
            (
                "x-dead-letter-exchange",
                AMQPValue::LongString("dlx".into()),
            ),
            (
                "x-dead-letter-routing-key",
                AMQPValue::LongString("rk".into()),
            ),
            ("x-max-priority", AMQPValue::ShortShortUInt(10)),
        ])
        .unwrap();
        assert_eq!(settings.message_ttl, Some(Duration::from_millis(100)));
        assert_eq!(settings.max_length, Some(5));
        assert_eq!(settings.overflow, Overflow::RejectPublish);
        assert_eq!(settings.max_priority, Some(10));
        let target = settings.dead_letter.unwrap();
        assert_eq!(&*target.exchange, "dlx");
        assert_eq!(target.routing_key.as_deref(), Some("rk"));
    }

    #[test]
    fn bad_values_are_refused_with_rabbitmq_terms() {
        let prefix = "PRECONDITION_FAILED - invalid arg";
        for (args, expected) in [
            (
                vec![("x-message-ttl", AMQPValue::LongInt(-1))],
                "'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-1}",
            ),
            (
                vec![("x-message-ttl", AMQPValue::LongString("1".into()))],
                "'x-message-ttl' for queue 'q' in vhost '/': \"expected integer, got longstr\"",
            ),
            (
                vec![("x-expires", AMQPValue::LongInt(0))],
                "'x-expires' for queue 'q' in vhost '/': {value_zero,0}",
            ),
            (
                vec![("x-max-priority", AMQPValue::LongInt(256))],
                "'x-max-priority' for queue 'q' in vhost '/': {max_value_exceeded,256}",
            ),
            (
                vec![("x-overflow", AMQPValue::LongString("nope".into()))],
                "'x-overflow' for queue 'q' in vhost '/': invalid_overflow",
            ),
            (
                vec![(
                    "x-dead-letter-routing-key",
                    AMQPValue::LongString("k".into()),
                )],
                "'x-dead-letter-routing-key' for queue 'q' in vhost '/': routing_key_but_no_dlx_defined",
            ),
            (
                vec![("x-queue-type", AMQPValue::LongString("stream".into()))],
                "'x-queue-type' for queue 'q' in vhost '/': \"unsupported queue type 'stream'\"",
            ),
            (
                vec![
                    ("x-queue-type", AMQPValue::LongString("quorum".into())),
                    ("x-max-priority", AMQPValue::LongInt(5)),
                ],
                "'x-max-priority' for queue 'q' in vhost '/' of queue type rabbit_quorum_queue",
            ),
        ] {
            assert_eq!(refusal(&args), format!("{prefix} {expected}"));
        }
    }

    #[test]
    fn quorum_queues_default_to_a_delivery_limit() {
        let quorum = parse(&[("x-queue-type", AMQPValue::LongString("quorum".into()))]).unwrap();
        assert_eq!(quorum.delivery_limit, Some(DEFAULT_DELIVERY_LIMIT));
        let unlimited = parse(&[
            ("x-queue-type", AMQPValue::LongString("quorum".into())),
            ("x-delivery-limit", AMQPValue::LongInt(-1)),
        ])
        .unwrap();
        assert_eq!(unlimited.delivery_limit, None);
    }
}
