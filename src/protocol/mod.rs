//! Bytes ⇄ frames.
//!
//! Warren splits frames itself over a `BytesMut` so that body payloads move on
//! as shared `Bytes` without a copy; amq-protocol decodes and encodes only the
//! method and content-header payloads. `basic.deliver` and content frames are
//! encoded here by hand because they are the hot path.

pub mod encode;
pub mod frame;
pub mod properties;

pub use amq_protocol::protocol::AMQPClass as Method;
pub use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};

/// The protocol header a 0-9-1 client opens with, and that Warren answers a wrong one with.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
