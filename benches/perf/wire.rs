//! Hot-path framing over plain byte slices.
//!
//! The client reads big chunks and walks every whole frame in place, without
//! allocating or reference-counting per frame (warren's `split_frame` hands out
//! shared `Bytes`, which a broker needs and a counter does not). Publishes are
//! stamped copies of one pre-encoded message, so producing costs a memcpy and
//! an 8-byte store per message.

use bytes::BytesMut;

use warren::protocol::Method;
use warren::protocol::encode;
use warren::protocol::frame::{FRAME_BODY, FRAME_END, FRAME_OVERHEAD};

/// One frame borrowed from the read buffer.
pub struct RawFrame<'a> {
    /// Frame type octet.
    pub kind: u8,
    /// Channel number.
    pub channel: u16,
    /// Payload without framing.
    pub payload: &'a [u8],
}

/// Reads the frame at the front of `buf`: the frame and its length on the
/// wire, `None` until it is all buffered, or an error on a bad frame end.
pub fn scan(buf: &[u8]) -> Result<Option<(RawFrame<'_>, usize)>, String> {
    if buf.len() < 7 {
        return Ok(None);
    }
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
    let len = size + FRAME_OVERHEAD;
    if buf.len() < len {
        return Ok(None);
    }
    if buf[len - 1] != FRAME_END {
        return Err(format!("bad frame end {:#x}", buf[len - 1]));
    }
    let frame = RawFrame {
        kind: buf[0],
        channel: u16::from_be_bytes([buf[1], buf[2]]),
        payload: &buf[7..len - 1],
    };
    Ok(Some((frame, len)))
}

/// Class and method ids of a method payload.
pub fn method_id(payload: &[u8]) -> (u16, u16) {
    match payload {
        [c0, c1, m0, m1, ..] => (
            u16::from_be_bytes([*c0, *c1]),
            u16::from_be_bytes([*m0, *m1]),
        ),
        _ => (0, 0),
    }
}

/// `basic.deliver` ids.
pub const BASIC_DELIVER: (u16, u16) = (60, 60);
/// `basic.ack` ids.
pub const BASIC_ACK: (u16, u16) = (60, 80);
/// `basic.nack` ids.
pub const BASIC_NACK: (u16, u16) = (60, 120);

/// The delivery tag of a `basic.deliver` payload.
pub fn deliver_tag(payload: &[u8]) -> Option<u64> {
    let tag_len = *payload.get(4)? as usize;
    let at = 5 + tag_len;
    Some(u64::from_be_bytes(
        payload.get(at..at + 8)?.try_into().ok()?,
    ))
}

/// Delivery tag and `multiple` bit of a `basic.ack` or `basic.nack` payload.
pub fn ack_fields(payload: &[u8]) -> Option<(u64, bool)> {
    let tag = u64::from_be_bytes(payload.get(4..12)?.try_into().ok()?);
    Some((tag, payload.get(12)? & 1 == 1))
}

/// Body size announced by a content header payload.
pub fn body_size(payload: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(payload.get(4..12)?.try_into().ok()?))
}

/// One encoded `basic.publish` + header + body, copied per message.
pub struct PublishTemplate {
    bytes: Vec<u8>,
    /// Offset of the first body byte, where the send timestamp goes.
    stamp_at: usize,
}

impl PublishTemplate {
    /// Encodes `publish` with a body of `size` bytes (at least 8).
    pub fn new(
        channel: u16,
        publish: &Method,
        persistent: bool,
        size: usize,
        frame_max: u32,
    ) -> Self {
        let mut out = BytesMut::new();
        encode::method(&mut out, channel, publish);
        // Property flags: only delivery-mode (bit 12), 2 = persistent, 1 = transient.
        let properties = [0x10, 0x00, if persistent { 2 } else { 1 }];
        encode::content(&mut out, channel, &properties, &vec![0; size], frame_max);
        let mut at = 0;
        let stamp_at = loop {
            let (frame, len) = scan(&out[at..])
                .ok()
                .flatten()
                .expect("the template is whole frames");
            if frame.kind == FRAME_BODY {
                break at + 7;
            }
            at += len;
        };
        PublishTemplate {
            bytes: out.to_vec(),
            stamp_at,
        }
    }

    /// Encoded length of one message.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Appends one message carrying send time `stamp_ns` in its first body bytes.
    pub fn append(&self, out: &mut BytesMut, stamp_ns: u64) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        out[start + self.stamp_at..start + self.stamp_at + 8]
            .copy_from_slice(&stamp_ns.to_be_bytes());
    }
}

/// The send timestamp in a first body frame, if it is long enough to hold one.
pub fn stamp(body: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(body.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::{AMQPClass, basic};
    use warren::protocol::frame::{FRAME_HEADER, FRAME_METHOD, decode_method};

    fn publish() -> Method {
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "ex".into(),
            routing_key: "rk".into(),
            ..Default::default()
        }))
    }

    #[test]
    fn template_frames_decode_and_carry_the_stamp() {
        let t = PublishTemplate::new(3, &publish(), true, 40, 4096);
        let mut out = BytesMut::new();
        t.append(&mut out, 0xDEAD_BEEF);
        t.append(&mut out, 7);
        assert_eq!(out.len(), 2 * t.len());
        let mut at = 0;
        let mut kinds = vec![];
        let mut stamps = vec![];
        while let Some((f, len)) = scan(&out[at..]).unwrap() {
            assert_eq!(f.channel, 3);
            match f.kind {
                FRAME_METHOD => assert!(matches!(
                    decode_method(f.payload).unwrap(),
                    AMQPClass::Basic(basic::AMQPMethod::Publish(_))
                )),
                FRAME_HEADER => assert_eq!(body_size(f.payload), Some(40)),
                _ => stamps.push(stamp(f.payload).unwrap()),
            }
            kinds.push(f.kind);
            at += len;
        }
        assert_eq!(kinds, [1, 2, 3, 1, 2, 3]);
        assert_eq!(stamps, [0xDEAD_BEEF, 7]);
    }

    #[test]
    fn parses_hand_encoded_deliver_and_ack() {
        let mut out = BytesMut::new();
        encode::deliver(&mut out, 1, "ctag", 99, false, "ex", "rk");
        encode::basic_ack(&mut out, 1, 12, true);
        let (deliver, len) = scan(&out).unwrap().unwrap();
        assert_eq!(method_id(deliver.payload), BASIC_DELIVER);
        assert_eq!(deliver_tag(deliver.payload), Some(99));
        let (ack, _) = scan(&out[len..]).unwrap().unwrap();
        assert_eq!(method_id(ack.payload), BASIC_ACK);
        assert_eq!(ack_fields(ack.payload), Some((12, true)));
        assert!(scan(&out[..len - 1]).unwrap().is_none());
    }
}
