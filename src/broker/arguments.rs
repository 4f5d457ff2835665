//! Equivalence of declared arguments, as RabbitMQ checks it on redeclaration.

use std::fmt::Write;

use crate::error::{AmqpError, AmqpResult};
use crate::protocol::{AMQPValue, FieldTable};

/// Queue arguments RabbitMQ compares when a queue is declared again.
pub const QUEUE_EQUIVALENCE_KEYS: &[&str] = &[
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-message-ttl",
    "x-overflow",
    "x-queue-mode",
    "x-queue-type",
    "x-single-active-consumer",
];

/// Fails with RabbitMQ's 406 text if any of `keys` differs between the two tables.
///
/// `resource` is the subject of the text, e.g. `queue 'q' in vhost '/'`.
pub fn assert_equivalent(
    current: &FieldTable,
    requested: &FieldTable,
    keys: &[&str],
    resource: &str,
) -> AmqpResult<()> {
    for key in keys {
        let old = current.inner().get(*key).or_else(|| default_of(key));
        let new = requested.inner().get(*key).or_else(|| default_of(key));
        if !same_value(old, new) {
            // RabbitMQ names the types only when one side has no value.
            let typed = old.is_none() || new.is_none();
            return Err(AmqpError::precondition_failed(format!(
                "inequivalent arg '{key}' for {resource}: received {} but current is {}",
                describe(new, typed),
                describe(old, typed)
            )));
        }
    }
    Ok(())
}

/// The value an absent argument stands for: current RabbitMQ fills in the
/// default queue type before comparing, so `classic` and no type are equivalent.
fn default_of(key: &str) -> Option<&'static AMQPValue> {
    static CLASSIC: std::sync::LazyLock<AMQPValue> =
        std::sync::LazyLock::new(|| AMQPValue::LongString("classic".into()));
    (key == "x-queue-type").then(|| &*CLASSIC)
}

/// Values are equivalent when equal within their type class (all integers are one class).
fn same_value(a: Option<&AMQPValue>, b: Option<&AMQPValue>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => match (as_integer(a), as_integer(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
        (None, None) => true,
        _ => false,
    }
}

/// An integer of any width, or `None` for other types.
pub fn as_integer(value: &AMQPValue) -> Option<i64> {
    Some(match *value {
        AMQPValue::ShortShortInt(v) => v.into(),
        AMQPValue::ShortShortUInt(v) => v.into(),
        AMQPValue::ShortInt(v) => v.into(),
        AMQPValue::ShortUInt(v) => v.into(),
        AMQPValue::LongInt(v) => v.into(),
        AMQPValue::LongUInt(v) => v.into(),
        AMQPValue::LongLongInt(v) => v,
        _ => return None,
    })
}

/// RabbitMQ's rendering of an argument in equivalence errors: `'v'`, or
/// `the value 'v' of type 't'` when `typed`.
fn describe(value: Option<&AMQPValue>, typed: bool) -> String {
    let Some(value) = value else {
        return "none".to_string();
    };
    let shown = match value {
        AMQPValue::Boolean(v) => v.to_string(),
        AMQPValue::ShortShortInt(v) => v.to_string(),
        AMQPValue::ShortShortUInt(v) => v.to_string(),
        AMQPValue::ShortInt(v) => v.to_string(),
        AMQPValue::ShortUInt(v) => v.to_string(),
        AMQPValue::LongInt(v) => v.to_string(),
        AMQPValue::LongUInt(v) => v.to_string(),
        AMQPValue::LongLongInt(v) => v.to_string(),
        AMQPValue::Float(v) => v.to_string(),
        AMQPValue::Double(v) => v.to_string(),
        AMQPValue::ShortString(v) => v.to_string(),
        AMQPValue::LongString(v) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
        AMQPValue::Timestamp(v) => v.to_string(),
        other => {
            let mut s = String::new();
            let _ = write!(s, "{other:?}");
            s
        }
    };
    if typed {
        format!("the value '{shown}' of type '{}'", type_name(value))
    } else {
        format!("'{shown}'")
    }
}

/// The atom RabbitMQ's table parser (`rabbit_binary_parser`) tags a value
/// with; it shows in error texts and decides equality inside arrays and
/// nested tables.
pub fn type_name(value: &AMQPValue) -> &'static str {
    match value {
        AMQPValue::Boolean(_) => "bool",
        AMQPValue::ShortShortInt(_) => "byte",
        AMQPValue::ShortShortUInt(_) => "unsignedbyte",
        AMQPValue::ShortInt(_) => "short",
        AMQPValue::ShortUInt(_) => "unsignedshort",
        AMQPValue::LongInt(_) => "signedint",
        AMQPValue::LongUInt(_) => "unsignedint",
        AMQPValue::LongLongInt(_) => "long",
        AMQPValue::Float(_) => "float",
        AMQPValue::Double(_) => "double",
        AMQPValue::DecimalValue(_) => "decimal",
        // A short string only exists when built in code; it is a string.
        AMQPValue::ShortString(_) | AMQPValue::LongString(_) => "longstr",
        AMQPValue::FieldArray(_) => "array",
        AMQPValue::Timestamp(_) => "timestamp",
        AMQPValue::FieldTable(_) => "table",
        AMQPValue::ByteArray(_) => "binary",
        AMQPValue::Void => "void",
    }
}
