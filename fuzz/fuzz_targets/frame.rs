//! Arbitrary bytes through Warren's frame splitter and payload decoders.
//!
//! The input is read as a client's byte stream, cut into reads of varying
//! size as a socket delivers them. After each read the buffer is split into
//! frames the way the connection task does, and each frame's payload goes
//! through the decoder the session applies to its type. Whatever the bytes,
//! each step must end in a frame, "need more bytes" or an error value: a
//! panic or a hang is a bug.
//!
//! Input layout: byte 0 picks the negotiated frame_max, byte 1 the read size;
//! the rest is the stream.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use warren::broker::message::Message;
use warren::protocol::frame::{
    FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD, FRAME_OVERHEAD, Frame,
    PROPERTIES_OFFSET, decode_content_header, decode_method, split_frame,
};
use warren::protocol::{Method, encode, properties};

/// frame_max values the server splits with: none (while refusing a
/// handshake), the spec minimum (before tune-ok), and Warren's default.
const FRAME_MAXES: [u32; 3] = [0, 4096, 131_072];

fuzz_target!(|data: &[u8]| {
    let [select, read_size, stream @ ..] = data else {
        return;
    };
    let frame_max = FRAME_MAXES[usize::from(*select) % FRAME_MAXES.len()];
    let read_size = usize::from(*read_size).max(1);
    let mut buf = BytesMut::new();
    for read in stream.chunks(read_size) {
        buf.extend_from_slice(read);
        loop {
            let before = buf.len();
            match split_frame(&mut buf, frame_max) {
                Ok(Some(frame)) => {
                    check_frame(&frame, frame_max, before - buf.len());
                    decode_as_the_session_does(&frame);
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before, "waiting for more bytes consumed some");
                    break;
                }
                // The connection closes: nothing after this is read.
                Err(_) => return,
            }
        }
    }
});

/// A returned frame is one of the known kinds, within frame_max, and took
/// exactly its own bytes off the buffer.
fn check_frame(frame: &Frame, frame_max: u32, consumed: usize) {
    assert_eq!(consumed, frame.payload.len() + FRAME_OVERHEAD);
    assert!(frame_max == 0 || consumed <= frame_max as usize);
    assert!(matches!(
        frame.kind,
        FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT
    ));
    assert!(frame.kind != FRAME_HEARTBEAT || frame.payload.is_empty());
}

fn decode_as_the_session_does(frame: &Frame) {
    match frame.kind {
        FRAME_METHOD => {
            if let Ok(method) = decode_method(&frame.payload) {
                reencodes_to_itself(&method);
            }
        }
        FRAME_HEADER if decode_content_header(&frame.payload).is_ok() => {
            read_properties(frame.payload.slice(PROPERTIES_OFFSET..));
        }
        _ => {}
    }
}

/// A decoded method encodes (as Warren's replies are encoded) to a frame that
/// decodes and encodes to the same bytes again: what Warren echoes back from a
/// client (names, argument tables) survives. Bytes are compared rather than
/// methods because a NaN in a table never equals itself.
fn reencodes_to_itself(method: &Method) {
    let once = encode_frame(method);
    let again = decode_method(&once[7..once.len() - 1]).expect("Warren's own method decodes");
    assert_eq!(encode_frame(&again), once);
}

fn encode_frame(method: &Method) -> BytesMut {
    let mut out = BytesMut::new();
    encode::method(&mut out, 1, method);
    out
}

/// The property reads a publish makes: persistence and priority straight from
/// the bytes, then the user_id / expiration checks and CC/BCC routing keys.
fn read_properties(encoded: bytes::Bytes) {
    let _ = properties::delivery_mode(&encoded);
    let _ = properties::priority(&encoded);
    let mut message = Message::new(
        "amq.direct".into(),
        "key".into(),
        encoded,
        Default::default(),
    );
    let _ = message.check_properties("guest");
    let _ = message.take_sender_keys();
    let _ = message.headers();
}
