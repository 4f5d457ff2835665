//! Dead lettering: the message a queue republishes to its dead-letter exchange.
//!
//! As in RabbitMQ, the republished message records its history in the
//! `x-death` header: one table per (queue, reason), most recent first, whose
//! `count` grows each time the message dies the same way in the same queue.
//! `x-first-death-*` name the first death and `x-last-death-*` the latest
//! (current RabbitMQ; 3.10 set only the first). A per-message `expiration` is
//! removed and kept as `original-expiration`, so the copy does not expire again
//! for the same reason.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use amq_protocol::types::FieldArray;

use crate::broker::arguments::as_integer;
use crate::broker::message::{Message, encode_properties, without_expiration, without_header};
use crate::broker::queue_settings::DeadLetterTarget;
use crate::protocol::{AMQPValue, FieldTable};

/// Why a message left its queue for the dead-letter exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Rejected or nacked without requeue.
    Rejected,
    /// Its TTL ran out.
    Expired,
    /// Dropped or refused by a length limit.
    Maxlen,
    /// Redelivered more often than a quorum queue's delivery limit.
    DeliveryLimit,
}

impl Reason {
    /// The reason as `x-death` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rejected => "rejected",
            Reason::Expired => "expired",
            Reason::Maxlen => "maxlen",
            Reason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// The copy of `message` that `queue` republishes to `target` because of `reason`.
pub fn dead_lettered(
    message: &Message,
    reason: Reason,
    queue: &str,
    target: &DeadLetterTarget,
) -> Message {
    let mut properties = message.decode_properties().unwrap_or_default();
    // A quorum queue's delivery count describes deliveries from that queue only.
    let mut headers = without_header(
        &properties.headers().clone().unwrap_or_default(),
        "x-delivery-count",
    );
    let original_expiration = properties.expiration().clone();
    record_death(
        &mut headers,
        message,
        reason,
        queue,
        original_expiration.as_ref().map(|e| e.as_str()),
    );
    properties = properties.with_headers(headers);
    if original_expiration.is_some() {
        properties = without_expiration(&properties);
    }
    let routing_key = target
        .routing_key
        .clone()
        .unwrap_or_else(|| message.routing_key.clone());
    Message {
        // Without a dead-letter routing key, BCC keys still route the copy.
        bcc: target
            .routing_key
            .is_none()
            .then(|| message.bcc.clone())
            .flatten(),
        ..Message::new(
            target.exchange.clone(),
            routing_key,
            encode_properties(&properties).unwrap_or_else(|| message.properties.clone()),
            message.body.clone(),
        )
    }
}

/// Adds this death to the message's headers.
fn record_death(
    headers: &mut FieldTable,
    message: &Message,
    reason: Reason,
    queue: &str,
    original_expiration: Option<&str>,
) {
    let text = |s: &str| AMQPValue::LongString(s.into());
    let mut deaths: Vec<AMQPValue> = match headers.inner().get("x-death") {
        Some(AMQPValue::FieldArray(array)) => array.as_slice().to_vec(),
        _ => Vec::new(),
    };
    let same = deaths.iter().position(|death| {
        let AMQPValue::FieldTable(death) = death else {
            return false;
        };
        field_is(death, "queue", queue) && field_is(death, "reason", reason.as_str())
    });
    let death = match same.map(|at| deaths.remove(at)) {
        Some(AMQPValue::FieldTable(mut death)) => {
            let count = death.inner().get("count").and_then(as_integer).unwrap_or(0);
            death.insert("count".into(), AMQPValue::LongLongInt(count + 1));
            death
        }
        _ => {
            let mut death = FieldTable::default();
            death.insert("count".into(), AMQPValue::LongLongInt(1));
            death.insert("reason".into(), text(reason.as_str()));
            death.insert("queue".into(), text(queue));
            let seconds = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            death.insert("time".into(), AMQPValue::Timestamp(seconds));
            death.insert("exchange".into(), text(&message.exchange));
            // The keys it was published with: routing key and CC, never BCC.
            let mut keys = vec![text(&message.routing_key)];
            keys.extend(message.cc_keys().iter().map(|k| text(k)));
            let keys: FieldArray = keys.into();
            death.insert("routing-keys".into(), AMQPValue::FieldArray(keys));
            if let Some(expiration) = original_expiration {
                death.insert("original-expiration".into(), text(expiration));
            }
            death
        }
    };
    deaths.insert(0, AMQPValue::FieldTable(death));
    headers.insert("x-death".into(), AMQPValue::FieldArray(deaths.into()));
    if !headers.contains_key("x-first-death-reason") {
        headers.insert("x-first-death-reason".into(), text(reason.as_str()));
        headers.insert("x-first-death-queue".into(), text(queue));
        headers.insert("x-first-death-exchange".into(), text(&message.exchange));
    }
    headers.insert("x-last-death-reason".into(), text(reason.as_str()));
    headers.insert("x-last-death-queue".into(), text(queue));
    headers.insert("x-last-death-exchange".into(), text(&message.exchange));
}

fn field_is(table: &FieldTable, key: &str, expected: &str) -> bool {
    match table.inner().get(key) {
        Some(AMQPValue::LongString(s)) => s.as_bytes() == expected.as_bytes(),
        Some(AMQPValue::ShortString(s)) => s.as_str() == expected,
        _ => false,
    }
}

/// Whether a dead-lettered message reaching `queue` would go round a cycle
/// with no client rejection in it; RabbitMQ drops it for that queue then.
pub fn is_cycle(message: &Message, queue: &str) -> bool {
    let Some(headers) = message.headers() else {
        return false;
    };
    let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death") else {
        return false;
    };
    // Deaths are most recent first: walk back to the last death in `queue`.
    for death in deaths.as_slice() {
        let AMQPValue::FieldTable(death) = death else {
            return false;
        };
        if field_is(death, "reason", Reason::Rejected.as_str()) {
            return false;
        }
        if field_is(death, "queue", queue) {
            return true;
        }
    }
    false
}

/// A message waiting to be republished to its queue's dead-letter exchange.
#[derive(Debug)]
pub struct DeadLetter {
    /// The message as it was in the queue.
    pub message: Arc<Message>,
    /// Why it died.
    pub reason: Reason,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(properties: amq_protocol::protocol::basic::AMQPProperties) -> Message {
        Message::new(
            Arc::from("orders"),
            Arc::from("new"),
            encode_properties(&properties).unwrap(),
            bytes::Bytes::from_static(b"body"),
        )
    }

    fn target(exchange: &str, key: Option<&str>) -> DeadLetterTarget {
        DeadLetterTarget {
            exchange: Arc::from(exchange),
            routing_key: key.map(Arc::from),
        }
    }

    fn deaths(message: &Message) -> Vec<FieldTable> {
        match message.headers().unwrap().inner().get("x-death") {
            Some(AMQPValue::FieldArray(a)) => a
                .as_slice()
                .iter()
                .map(|d| match d {
                    AMQPValue::FieldTable(t) => t.clone(),
                    other => panic!("not a table: {other:?}"),
                })
                .collect(),
            other => panic!("no x-death: {other:?}"),
        }
    }

    #[test]
    fn the_first_death_is_recorded_and_expiration_moved() {
        let original = message(Default::default());
        let mut with_ttl = original.decode_properties().unwrap();
        with_ttl = with_ttl.with_expiration("500".into());
        let original = message(with_ttl);
        let dead = dead_lettered(&original, Reason::Expired, "q1", &target("dlx", Some("dl")));
        assert_eq!(&*dead.exchange, "dlx");
        assert_eq!(&*dead.routing_key, "dl");
        assert_eq!(dead.decode_properties().unwrap().expiration(), &None);
        let death = &deaths(&dead)[0];
        assert_eq!(death.inner().get("count"), Some(&AMQPValue::LongLongInt(1)));
        assert!(field_is(death, "reason", "expired"));
        assert!(field_is(death, "queue", "q1"));
        assert!(field_is(death, "exchange", "orders"));
        assert!(field_is(death, "original-expiration", "500"));
        let headers = dead.headers().unwrap();
        assert!(field_is(&headers, "x-first-death-queue", "q1"));
        assert!(field_is(&headers, "x-last-death-reason", "expired"));
    }

    #[test]
    fn repeated_deaths_count_up_and_move_to_the_front() {
        let original = message(Default::default());
        let once = dead_lettered(&original, Reason::Rejected, "q1", &target("", Some("q2")));
        let twice = dead_lettered(&once, Reason::Expired, "q2", &target("", Some("q1")));
        let thrice = dead_lettered(&twice, Reason::Rejected, "q1", &target("", Some("q2")));
        let deaths = deaths(&thrice);
        assert_eq!(deaths.len(), 2);
        assert!(field_is(&deaths[0], "queue", "q1"));
        assert_eq!(
            deaths[0].inner().get("count"),
            Some(&AMQPValue::LongLongInt(2))
        );
        let headers = thrice.headers().unwrap();
        assert!(field_is(&headers, "x-first-death-queue", "q1"));
        assert!(field_is(&headers, "x-last-death-queue", "q1"));
        assert!(field_is(&headers, "x-last-death-reason", "rejected"));
    }

    #[test]
    fn only_automatic_cycles_are_cycles() {
        let original = message(Default::default());
        let expired = dead_lettered(&original, Reason::Expired, "a", &target("", Some("b")));
        assert!(is_cycle(&expired, "a"));
        assert!(!is_cycle(&expired, "b"));
        let rejected = dead_lettered(&original, Reason::Rejected, "a", &target("", Some("b")));
        assert!(!is_cycle(&rejected, "a"));
    }
}
