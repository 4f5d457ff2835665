//! A published message as queues hold it.
//!
//! The body and the encoded properties are `Bytes` slices of the publisher's
//! read buffer: a message routed to ten queues is one allocation shared ten
//! times, and it is written to consumers exactly as it arrived.

use std::sync::Arc;
use std::time::Duration;

use amq_protocol::protocol::basic::{AMQPProperties, gen_properties, parse_properties};
use bytes::Bytes;

use crate::broker::deadline::Deadline;
use crate::broker::ready::Entry;
use crate::error::{AmqpError, AmqpResult};
use crate::protocol::{AMQPValue, FieldTable, properties};
use crate::store::Location;
use crate::store::record::StoredMessage;

/// Property flag bits (AMQP 0-9-1 basic class) that publish-time checks look at.
const FLAG_EXPIRATION: u16 = 1 << 8;
const FLAG_USER_ID: u16 = 1 << 4;

/// RabbitMQ's largest accepted TTL, in milliseconds.
const MAX_EXPIRY: i64 = u32::MAX as i64;

/// An immutable published message.
#[derive(Debug)]
pub struct Message {
    /// Exchange it was published to.
    pub exchange: Arc<str>,
    /// Routing key it was published with.
    pub routing_key: Arc<str>,
    /// Property flags and values, exactly as the publisher encoded them.
    pub properties: Bytes,
    /// The body, reassembled from its frames.
    pub body: Bytes,
    /// When the message expires (its `expiration` property), if ever.
    pub expires_at: Option<Deadline>,
    /// Where the message store holds it (persistent messages in durable queues).
    pub stored: Option<Location>,
    /// Routing keys from a `BCC` header, which is removed at publish but
    /// still routes the message when it is dead-lettered.
    pub bcc: Option<Box<[String]>>,
}

/// The header naming extra routing keys that consumers see.
const CC: &str = "CC";
/// The header naming extra routing keys that consumers do not see.
const BCC: &str = "BCC";

impl Message {
    /// A message as published, not yet routed, stored or given an expiry.
    pub fn new(
        exchange: Arc<str>,
        routing_key: Arc<str>,
        properties: Bytes,
        body: Bytes,
    ) -> Message {
        Message {
            exchange,
            routing_key,
            properties,
            body,
            expires_at: None,
            stored: None,
            bcc: None,
        }
    }

    /// RabbitMQ's sender-selected distribution: the keys of the `CC` and
    /// `BCC` headers route the message besides its routing key. `BCC` is
    /// removed from the headers here, so consumers never see it.
    pub fn take_sender_keys(&mut self) -> Vec<String> {
        if !self.may_name_keys() {
            return Vec::new();
        }
        let Some(mut properties) = self.decode_properties() else {
            return Vec::new();
        };
        let Some(mut headers) = properties.headers().clone() else {
            return Vec::new();
        };
        let mut keys = self.cc_keys();
        if let Some(bcc) = headers.inner().get(BCC).map(keys_of) {
            keys.extend(bcc.iter().cloned());
            self.bcc = Some(bcc.into_boxed_slice());
            headers = without_header(&headers, BCC);
            properties = properties.with_headers(headers);
            if let Some(encoded) = encode_properties(&properties) {
                self.properties = encoded;
            }
        }
        keys
    }

    /// The keys of the `CC` header.
    pub fn cc_keys(&self) -> Vec<String> {
        if !self.may_name_keys() {
            return Vec::new();
        }
        self.headers()
            .and_then(|h| h.inner().get(CC).map(keys_of))
            .unwrap_or_default()
    }

    /// Every key the message was routed by: its routing key, `CC` and `BCC`.
    pub fn all_routing_keys(&self) -> Vec<String> {
        let mut keys = vec![self.routing_key.to_string()];
        keys.extend(self.cc_keys());
        keys.extend(self.bcc.iter().flatten().cloned());
        keys
    }

    /// A cheap test that skips decoding for the many messages without `CC`/`BCC`.
    fn may_name_keys(&self) -> bool {
        self.properties.windows(2).any(|w| w == CC.as_bytes())
    }

    /// Decodes the properties; `None` if the publisher sent an undecodable set.
    pub fn decode_properties(&self) -> Option<AMQPProperties> {
        parse_properties(&self.properties[..]).ok().map(|(_, p)| p)
    }

    /// A message read back from the store.
    pub fn recovered(stored: &StoredMessage, location: Location) -> Message {
        Message {
            expires_at: Deadline::of_unix_ms(stored.expires_at_ms),
            stored: Some(location),
            ..Message::new(
                Arc::from(stored.exchange.as_str()),
                Arc::from(stored.routing_key.as_str()),
                stored.properties.clone(),
                stored.body.clone(),
            )
        }
    }

    /// RabbitMQ's publish-time property checks: `user_id` must name the
    /// publishing user, and `expiration` must be a TTL in milliseconds.
    /// Sets [`Message::expires_at`] from the expiration.
    pub fn check_properties(&mut self, user: &str) -> AmqpResult<()> {
        let flags = match self.properties.get(..2) {
            Some(&[high, low]) => u16::from_be_bytes([high, low]),
            _ => return Ok(()),
        };
        if flags & (FLAG_EXPIRATION | FLAG_USER_ID) == 0 {
            return Ok(());
        }
        let Some(properties) = self.decode_properties() else {
            return Ok(());
        };
        if let Some(claimed) = properties.user_id()
            && claimed.as_str() != user
        {
            return Err(AmqpError::precondition_failed(format!(
                "user_id property set to '{claimed}' but authenticated user was '{user}'"
            )));
        }
        if let Some(expiration) = properties.expiration() {
            let ttl = parse_expiration(expiration.as_str()).map_err(|reason| {
                AmqpError::precondition_failed(format!(
                    "invalid expiration '{expiration}': {reason}"
                ))
            })?;
            self.expires_at = Some(Deadline::after(Duration::from_millis(ttl)));
        }
        Ok(())
    }

    /// Whether the publisher asked for persistence (delivery_mode 2).
    pub fn is_persistent(&self) -> bool {
        properties::delivery_mode(&self.properties) == Some(2)
    }

    /// The expiry as milliseconds since the Unix epoch (0: never), for the store.
    pub fn expires_at_unix_ms(&self) -> u64 {
        self.expires_at.map_or(0, Deadline::unix_ms)
    }

    /// Whether the message's TTL has run out.
    pub fn is_expired(&self, now: Deadline) -> bool {
        self.expires_at.is_some_and(|at| at.has_passed(now))
    }

    /// A copy of the message with one header set (the body is shared, not copied).
    pub fn with_header(&self, key: &str, value: AMQPValue) -> Message {
        let mut properties = self.decode_properties().unwrap_or_default();
        let mut headers = properties.headers().clone().unwrap_or_default();
        headers.insert(key.into(), value);
        properties = properties.with_headers(headers);
        Message {
            properties: encode_properties(&properties).unwrap_or_else(|| self.properties.clone()),
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
            body: self.body.clone(),
            expires_at: self.expires_at,
            stored: self.stored,
            bcc: self.bcc.clone(),
        }
    }

    /// The headers table, if the message has one.
    pub fn headers(&self) -> Option<FieldTable> {
        self.decode_properties()?.headers().clone()
    }
}

/// A message taken from a queue for delivery, with its queue-local facts.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    /// Its place, expiry, priority and redelivery state in the queue.
    pub entry: Entry,
    /// The shared message.
    pub message: Arc<Message>,
}

impl QueuedMessage {
    /// Whether the message was delivered before.
    pub fn redelivered(&self) -> bool {
        self.entry.redelivered
    }
}

/// The same properties without `expiration` (amq-protocol offers no way to unset one field).
pub fn without_expiration(p: &AMQPProperties) -> AMQPProperties {
    let mut out = AMQPProperties::default();
    macro_rules! copy {
        ($($get:ident => $with:ident),*) => {
            $(if let Some(value) = p.$get().clone() {
                out = out.$with(value);
            })*
        };
    }
    copy!(
        content_type => with_content_type,
        content_encoding => with_content_encoding,
        headers => with_headers,
        delivery_mode => with_delivery_mode,
        priority => with_priority,
        correlation_id => with_correlation_id,
        reply_to => with_reply_to,
        message_id => with_message_id,
        timestamp => with_timestamp,
        kind => with_type,
        user_id => with_user_id,
        app_id => with_app_id,
        cluster_id => with_cluster_id
    );
    out
}

/// The table without `key` (amq-protocol's tables offer no removal).
pub fn without_header(table: &FieldTable, key: &str) -> FieldTable {
    let mut entries = table.inner().clone();
    entries.remove(key);
    entries.into()
}

/// The strings of a `CC`/`BCC` header (an array of strings, or one string).
fn keys_of(value: &AMQPValue) -> Vec<String> {
    let text = |v: &AMQPValue| match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    };
    match value {
        AMQPValue::FieldArray(array) => array.as_slice().iter().filter_map(text).collect(),
        other => text(other).into_iter().collect(),
    }
}

/// Encodes a property set as a content header carries it.
pub fn encode_properties(properties: &AMQPProperties) -> Option<Bytes> {
    cookie_factory::r#gen(gen_properties(properties), Vec::new())
        .ok()
        .map(|(bytes, _)| bytes.into())
}

/// Parses an `expiration` property as RabbitMQ does, with its error terms as reasons.
fn parse_expiration(text: &str) -> Result<u64, String> {
    let digits_end = text
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+'))))
        .map_or(text.len(), |(i, _)| i);
    let (number, rest) = text.split_at(digits_end);
    let value: i64 = match number.parse() {
        Ok(value) => value,
        Err(_) if number.trim_start_matches(['-', '+']).is_empty() => {
            return Err("no_integer".to_string());
        }
        Err(_) => return Err(format!("{{value_too_large,{number}}}")),
    };
    if !rest.is_empty() {
        return Err(format!("{{leftover_string,\"{rest}\"}}"));
    }
    if value < 0 {
        return Err(format!("{{value_negative,{value}}}"));
    }
    if value > MAX_EXPIRY {
        return Err(format!("{{value_too_large,{value}}}"));
    }
    Ok(value as u64)
}

#[cfg(test)]
mod tests {
    use super::{Message, parse_expiration};

    #[test]
    fn a_message_and_its_arc_header_fit_a_160_byte_allocation() {
        // glibc rounds an `Arc<Message>` (16 bytes of counts + the message)
        // up to a 16-byte multiple plus 8 bytes of chunk header: 136 bytes
        // of message make a 160-byte chunk, 144 would make a 176-byte one.
        assert!(size_of::<Message>() <= 136, "{}", size_of::<Message>());
    }

    #[test]
    fn expirations_parse_as_rabbitmq_reports_them() {
        assert_eq!(parse_expiration("0"), Ok(0));
        assert_eq!(parse_expiration("60000"), Ok(60000));
        assert_eq!(parse_expiration("soon"), Err("no_integer".into()));
        assert_eq!(parse_expiration("-1"), Err("{value_negative,-1}".into()));
        assert_eq!(
            parse_expiration("5x"),
            Err("{leftover_string,\"x\"}".into())
        );
        assert_eq!(
            parse_expiration("4294967296"),
            Err("{value_too_large,4294967296}".into())
        );
    }
}
