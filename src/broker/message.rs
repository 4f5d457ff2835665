//! A published message as queues hold it.
//!
//! The body and the encoded properties are `Bytes` slices of the publisher's
//! read buffer: a message routed to ten queues is one allocation shared ten
//! times, and it is written to consumers exactly as it arrived.

use std::sync::Arc;

use amq_protocol::protocol::basic::{AMQPProperties, parse_properties};
use bytes::Bytes;

use crate::protocol::FieldTable;

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
}

impl Message {
    /// Decodes the properties; `None` if the publisher sent an undecodable set.
    pub fn decode_properties(&self) -> Option<AMQPProperties> {
        parse_properties(&self.properties[..]).ok().map(|(_, p)| p)
    }

    /// The headers table, if the message has one.
    pub fn headers(&self) -> Option<FieldTable> {
        self.decode_properties()?.headers().clone()
    }
}

/// A message in a queue: its place in the queue and whether it was delivered before.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    /// Position in the queue's order; requeued messages go back to it.
    pub seq: u64,
    /// The shared message.
    pub message: Arc<Message>,
    /// Set once the message has been delivered and returned.
    pub redelivered: bool,
}
