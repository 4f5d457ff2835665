//! The on-disk record formats.
//!
//! A segment file holds message records, each `len:u32 crc:u32 payload`,
//! where the CRC-32 covers the record's own offset in the segment and then the
//! payload: a record is valid only where it was written, so bytes that look
//! like a record inside a message body are never mistaken for one, even when
//! recovery has to search past damage. A message routed to several durable
//! queues is one record listing all of them. Each segment has an ack file
//! beside it: fixed 16-byte records `queue:u64 offset:u32 crc:u32` naming a
//! (queue, message) pair in that segment that is settled for good. Keeping
//! acks next to the segment they settle lets a fully settled segment be
//! deleted with its ack file, whatever other segments hold.

use bytes::{Buf, BufMut, Bytes};

/// Bytes before a message record's payload: length and CRC.
pub const RECORD_HEADER: usize = 8;
/// Size of one ack record.
pub const ACK_RECORD: usize = 16;
/// The largest message record accepted when reading (guards against garbage lengths).
pub const MAX_RECORD: usize = 1 << 30;

/// Identity of a durable queue in the store (never reused).
pub type QueueId = u64;

/// A message as the store writes and recovers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The durable queues it was routed to.
    pub queues: Vec<QueueId>,
    /// Exchange it was published to.
    pub exchange: String,
    /// Routing key it was published with.
    pub routing_key: String,
    /// Encoded properties, byte for byte as published.
    pub properties: Bytes,
    /// Body.
    pub body: Bytes,
    /// When the message expires, in milliseconds since the Unix epoch (0: never).
    pub expires_at_ms: u64,
}

/// The parts of a message a record is written from.
#[derive(Debug, Clone, Copy)]
pub struct MessageParts<'a> {
    /// Exchange it was published to.
    pub exchange: &'a str,
    /// Routing key it was published with.
    pub routing_key: &'a str,
    /// Encoded properties.
    pub properties: &'a [u8],
    /// Body.
    pub body: &'a [u8],
    /// Expiry in milliseconds since the Unix epoch (0: never), so a TTL keeps running across restarts.
    pub expires_at_ms: u64,
}

/// The checksum of a message record written at `offset`.
pub fn record_crc(offset: u32, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&offset.to_be_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Appends a message record for `message`, routed to `queues` and destined
/// for `offset` in its segment, to `out`.
pub fn encode_message(out: &mut Vec<u8>, offset: u32, queues: &[QueueId], message: &MessageParts) {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER]);
    out.put_u16(queues.len() as u16);
    for queue in queues {
        out.put_u64(*queue);
    }
    out.put_u64(message.expires_at_ms);
    put_short(out, message.exchange.as_bytes());
    put_short(out, message.routing_key.as_bytes());
    out.put_u32(message.properties.len() as u32);
    out.extend_from_slice(message.properties);
    out.put_u32(message.body.len() as u32);
    out.extend_from_slice(message.body);
    let payload = &out[start + RECORD_HEADER..];
    let len = payload.len() as u32;
    let crc = record_crc(offset, payload);
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

fn put_short(out: &mut Vec<u8>, bytes: &[u8]) {
    let bytes = &bytes[..bytes.len().min(255)];
    out.put_u8(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

/// Decodes a message record's payload (its CRC already checked); `None` if malformed.
pub fn decode_message(payload: Bytes) -> Option<StoredMessage> {
    let mut p = payload;
    let count = take_u16(&mut p)? as usize;
    let mut queues = Vec::with_capacity(count);
    for _ in 0..count {
        queues.push(take_u64(&mut p)?);
    }
    let expires_at_ms = take_u64(&mut p)?;
    let exchange = take_short(&mut p)?;
    let routing_key = take_short(&mut p)?;
    let properties = take_long(&mut p)?;
    let body = take_long(&mut p)?;
    p.is_empty().then_some(StoredMessage {
        queues,
        exchange,
        routing_key,
        properties,
        body,
        expires_at_ms,
    })
}

fn take_u16(p: &mut Bytes) -> Option<u16> {
    (p.remaining() >= 2).then(|| p.get_u16())
}

fn take_u64(p: &mut Bytes) -> Option<u64> {
    (p.remaining() >= 8).then(|| p.get_u64())
}

fn take_short(p: &mut Bytes) -> Option<String> {
    let len = *p.first()? as usize;
    if p.remaining() < 1 + len {
        return None;
    }
    p.advance(1);
    String::from_utf8(p.split_to(len).to_vec()).ok()
}

fn take_long(p: &mut Bytes) -> Option<Bytes> {
    if p.remaining() < 4 {
        return None;
    }
    let len = p.get_u32() as usize;
    (p.remaining() >= len).then(|| p.split_to(len))
}

/// Appends an ack record.
pub fn encode_ack(out: &mut Vec<u8>, queue: QueueId, offset: u32) {
    let start = out.len();
    out.put_u64(queue);
    out.put_u32(offset);
    let crc = crc32fast::hash(&out[start..]);
    out.put_u32(crc);
}

/// Decodes one ack record; `None` if its CRC does not match (a torn or damaged write).
pub fn decode_ack(record: &[u8; ACK_RECORD]) -> Option<(QueueId, u32)> {
    let crc = u32::from_be_bytes(record[12..16].try_into().expect("4 bytes"));
    if crc32fast::hash(&record[..12]) != crc {
        return None;
    }
    let queue = u64::from_be_bytes(record[..8].try_into().expect("8 bytes"));
    let offset = u32::from_be_bytes(record[8..12].try_into().expect("4 bytes"));
    Some((queue, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_records_round_trip() {
        let mut out = Vec::new();
        let parts = MessageParts {
            exchange: "ex",
            routing_key: "rk",
            properties: &[0x80, 0, 4, b't', b'e', b'x', b't'],
            body: b"body",
            expires_at_ms: 1234,
        };
        encode_message(&mut out, 4096, &[3, 9], &parts);
        let len = u32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
        let crc = u32::from_be_bytes(out[4..8].try_into().unwrap());
        let payload = Bytes::copy_from_slice(&out[8..8 + len]);
        assert_eq!(record_crc(4096, &payload), crc);
        assert_ne!(
            record_crc(0, &payload),
            crc,
            "a record is bound to its offset"
        );
        let message = decode_message(payload).unwrap();
        assert_eq!(message.queues, vec![3, 9]);
        assert_eq!(message.expires_at_ms, 1234);
        assert_eq!(
            (message.exchange.as_str(), message.routing_key.as_str()),
            ("ex", "rk")
        );
        assert_eq!(&message.body[..], b"body");
    }

    #[test]
    fn ack_records_detect_damage() {
        let mut out = Vec::new();
        encode_ack(&mut out, 7, 4096);
        let mut record: [u8; ACK_RECORD] = out.try_into().unwrap();
        assert_eq!(decode_ack(&record), Some((7, 4096)));
        record[3] ^= 1;
        assert_eq!(decode_ack(&record), None);
    }
}
