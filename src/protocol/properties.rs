//! Reading single fields straight from encoded basic properties.
//!
//! Queues need a message's delivery mode and priority on every publish; these
//! readers skip the fields before the one asked for instead of decoding the
//! whole property set.

/// Flag bit of each basic property, in wire order (AMQP 0-9-1 class 60).
const CONTENT_TYPE: u16 = 1 << 15;
const CONTENT_ENCODING: u16 = 1 << 14;
const HEADERS: u16 = 1 << 13;
const DELIVERY_MODE: u16 = 1 << 12;
const PRIORITY: u16 = 1 << 11;

/// `delivery_mode` (2 is persistent), if set.
pub fn delivery_mode(properties: &[u8]) -> Option<u8> {
    octet_after_headers(properties, DELIVERY_MODE, 0)
}

/// `priority`, if set.
pub fn priority(properties: &[u8]) -> Option<u8> {
    let flags = flags(properties)?;
    let skip = usize::from(flags & DELIVERY_MODE != 0);
    octet_after_headers(properties, PRIORITY, skip)
}

fn flags(properties: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([
        *properties.first()?,
        *properties.get(1)?,
    ]))
}

/// The octet field `flag`, which follows the headers table and `skip` octet fields.
fn octet_after_headers(properties: &[u8], flag: u16, skip: usize) -> Option<u8> {
    let flags = flags(properties)?;
    if flags & flag == 0 {
        return None;
    }
    let mut at = 2;
    for string in [CONTENT_TYPE, CONTENT_ENCODING] {
        if flags & string != 0 {
            at += 1 + *properties.get(at)? as usize;
        }
    }
    if flags & HEADERS != 0 {
        let len = u32::from_be_bytes(properties.get(at..at + 4)?.try_into().ok()?);
        at += 4 + len as usize;
    }
    properties.get(at + skip).copied()
}

#[cfg(test)]
mod tests {
    use amq_protocol::protocol::basic::{AMQPProperties, gen_properties};

    use super::*;
    use crate::protocol::{AMQPValue, FieldTable};

    fn encode(properties: &AMQPProperties) -> Vec<u8> {
        cookie_factory::r#gen(gen_properties(properties), Vec::new())
            .unwrap()
            .0
    }

    #[test]
    fn fields_are_found_behind_earlier_properties() {
        let mut headers = FieldTable::default();
        headers.insert("k".into(), AMQPValue::LongString("v".into()));
        let full = AMQPProperties::default()
            .with_content_type("text/plain".into())
            .with_headers(headers)
            .with_delivery_mode(2)
            .with_priority(7);
        assert_eq!(delivery_mode(&encode(&full)), Some(2));
        assert_eq!(priority(&encode(&full)), Some(7));
        let only_priority = AMQPProperties::default().with_priority(3);
        assert_eq!(priority(&encode(&only_priority)), Some(3));
        assert_eq!(delivery_mode(&encode(&only_priority)), None);
        assert_eq!(delivery_mode(&[0, 0]), None);
        assert_eq!(priority(&[]), None);
    }
}
