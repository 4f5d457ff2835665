//! Frame splitting and payload decoding.
//!
//! A frame is `type:u8 channel:u16 size:u32 payload[size] 0xCE`. [`split_frame`]
//! checks that a whole frame is buffered before touching it, so a partial read
//! never errors and any byte sequence yields either a frame, "need more", or a
//! connection exception — never a panic.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::{AmqpError, AmqpResult};
use crate::protocol::Method;

/// Frame type octet of a method frame.
pub const FRAME_METHOD: u8 = 1;
/// Frame type octet of a content header frame.
pub const FRAME_HEADER: u8 = 2;
/// Frame type octet of a content body frame.
pub const FRAME_BODY: u8 = 3;
/// Frame type octet of a heartbeat frame.
pub const FRAME_HEARTBEAT: u8 = 8;
/// The octet that ends every frame.
pub const FRAME_END: u8 = 0xCE;
/// Bytes of framing around a payload: 7 of header, 1 frame-end.
pub const FRAME_OVERHEAD: usize = 8;

/// One frame, its payload shared with the read buffer it came from.
#[derive(Debug)]
pub struct Frame {
    /// Frame type octet.
    pub kind: u8,
    /// Channel number.
    pub channel: u16,
    /// Payload without header and frame-end.
    pub payload: Bytes,
}

/// Takes one whole frame off the front of `buf`, or returns `None` until one is buffered.
///
/// `frame_max` is the negotiated maximum frame size including framing (0 = no
/// limit). An oversized frame is refused from its header alone, so a peer can
/// never make the broker buffer more than `frame_max` bytes for one frame.
pub fn split_frame(buf: &mut BytesMut, frame_max: u32) -> AmqpResult<Option<Frame>> {
    if buf.len() < 7 {
        return Ok(None);
    }
    let kind = buf[0];
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
    let payload_max = (frame_max as usize).saturating_sub(FRAME_OVERHEAD);
    if frame_max != 0 && size > payload_max {
        return Err(AmqpError::frame_error(format!(
            "type {kind}, all octets = <<>>: {{frame_too_large,{size},{payload_max}}}"
        )));
    }
    if buf.len() < size + FRAME_OVERHEAD {
        buf.reserve(size + FRAME_OVERHEAD - buf.len());
        return Ok(None);
    }
    let payload = &buf[7..7 + size];
    if buf[7 + size] != FRAME_END {
        return Err(AmqpError::frame_error(format!(
            "type {kind}, {}: {{invalid_frame_end_marker,{}}}",
            describe_octets(payload),
            buf[7 + size]
        )));
    }
    let known = matches!(kind, FRAME_METHOD | FRAME_HEADER | FRAME_BODY)
        || (kind == FRAME_HEARTBEAT && size == 0);
    if !known {
        return Err(AmqpError::frame_error(format!(
            "type {kind}, {}: unknown_frame",
            describe_octets(payload)
        )));
    }
    buf.advance(7);
    let payload = buf.split_to(size).freeze();
    buf.advance(1);
    Ok(Some(Frame {
        kind,
        channel,
        payload,
    }))
}

/// Quotes a payload as RabbitMQ does in frame errors: at most 16 octets, as an Erlang binary.
pub fn describe_octets(payload: &[u8]) -> String {
    if payload.len() <= 16 {
        format!("all octets = {}", erlang_binary(payload))
    } else {
        format!("first 16 octets = {}", erlang_binary(&payload[..16]))
    }
}

/// Renders bytes as an Erlang binary: `<<"text">>` when printable, `<<0,50>>` otherwise.
fn erlang_binary(bytes: &[u8]) -> String {
    if !bytes.is_empty() && bytes.iter().all(|&b| (32..127).contains(&b)) {
        format!("<<\"{}\">>", String::from_utf8_lossy(bytes))
    } else {
        let octets: Vec<String> = bytes.iter().map(u8::to_string).collect();
        format!("<<{}>>", octets.join(","))
    }
}

/// Decodes a method frame's payload.
pub fn decode_method(payload: &[u8]) -> AmqpResult<Method> {
    let cannot_decode = || {
        AmqpError::frame_error(format!(
            "cannot decode {}",
            erlang_binary(payload.get(4..).unwrap_or_default())
        ))
    };
    if payload.len() < 4 {
        return Err(cannot_decode());
    }
    let class_id = u16::from_be_bytes([payload[0], payload[1]]);
    let method_id = u16::from_be_bytes([payload[2], payload[3]]);
    match amq_protocol::protocol::parse_class(payload) {
        Ok((_, method)) => Ok(method),
        Err(_) if is_known_method(class_id, method_id) => {
            Err(cannot_decode().in_method(class_id, method_id))
        }
        Err(_) => {
            Err(AmqpError::command_invalid("unimplemented method").in_method(class_id, method_id))
        }
    }
}

/// Whether the class and method ids name a method of AMQP 0-9-1.
fn is_known_method(class_id: u16, method_id: u16) -> bool {
    let methods: &[u16] = match class_id {
        10 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51, 60, 61],
        20 => &[10, 11, 20, 21, 40, 41],
        30 => &[10, 11],
        40 => &[10, 11, 20, 21, 30, 31, 40, 51],
        50 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51],
        60 => &[
            10, 11, 20, 21, 30, 31, 40, 50, 60, 70, 71, 72, 80, 90, 100, 110, 111, 120,
        ],
        85 => &[10, 11],
        90 => &[10, 11, 20, 21, 30, 31],
        _ => &[],
    };
    methods.contains(&method_id)
}

/// The fixed part of a content header payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentHeader {
    /// Class of the content (60 for basic).
    pub class_id: u16,
    /// Total body size announced by the publisher.
    pub body_size: u64,
}

/// Offset of the property flags within a content header payload.
pub const PROPERTIES_OFFSET: usize = 12;

/// Reads the class and body size of a content header payload; properties stay encoded.
pub fn decode_content_header(payload: &[u8]) -> AmqpResult<ContentHeader> {
    if payload.len() < PROPERTIES_OFFSET + 2 {
        return Err(AmqpError::frame_error(format!(
            "cannot decode {}",
            erlang_binary(payload)
        )));
    }
    let class_id = u16::from_be_bytes([payload[0], payload[1]]);
    let body_size = u64::from_be_bytes(payload[4..12].try_into().expect("8 bytes"));
    Ok(ContentHeader {
        class_id,
        body_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![kind];
        v.extend_from_slice(&channel.to_be_bytes());
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v.push(FRAME_END);
        v
    }

    #[test]
    fn splits_whole_frames_and_waits_for_partial_ones() {
        let bytes = [frame(1, 3, b"abcd"), frame(3, 3, b"xy")].concat();
        let mut buf = BytesMut::from(&bytes[..bytes.len() - 1]);
        let first = split_frame(&mut buf, 0).unwrap().unwrap();
        assert_eq!(
            (first.kind, first.channel, &first.payload[..]),
            (1, 3, &b"abcd"[..])
        );
        assert!(split_frame(&mut buf, 0).unwrap().is_none());
        buf.extend_from_slice(&[FRAME_END]);
        let second = split_frame(&mut buf, 0).unwrap().unwrap();
        assert_eq!(&second.payload[..], b"xy");
        assert!(buf.is_empty());
    }

    #[test]
    fn rejects_bad_frame_end_type_and_size() {
        let mut bad_end = frame(1, 0, b"ab");
        *bad_end.last_mut().unwrap() = 0;
        let err = split_frame(&mut BytesMut::from(&bad_end[..]), 0).unwrap_err();
        assert_eq!(err.code as u16, 501);
        let err = split_frame(&mut BytesMut::from(&frame(9, 0, b"")[..]), 0).unwrap_err();
        assert_eq!(err.code as u16, 501);
        let err = split_frame(&mut BytesMut::from(&frame(3, 1, &[0; 100])[..]), 64).unwrap_err();
        assert_eq!(err.code as u16, 501);
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        let mut seed: u32 = 7;
        for _ in 0..2000 {
            let len = (seed % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (seed >> 16) as u8
                })
                .collect();
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(f)) = split_frame(&mut buf, 4096) {
                let _ = decode_method(&f.payload);
                let _ = decode_content_header(&f.payload);
            }
        }
    }
}
