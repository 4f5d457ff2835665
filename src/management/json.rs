//! AMQP field tables as the JSON RabbitMQ's management API shows and takes,
//! and the `{"rate": R}` details of its counters.

use serde::Deserialize;
use serde_json::{Map, Number, Value, json};

use crate::broker::queue::MessageCounters;
use crate::management::http::ApiError;
use crate::management::rates::MessageRates;
use crate::protocol::{AMQPValue, FieldTable, LongString};

/// A field table as a JSON object, values in their natural JSON type.
pub fn table_to_json(table: &FieldTable) -> Value {
    Value::Object(
        table
            .inner()
            .iter()
            .map(|(key, value)| (key.as_str().to_string(), value_to_json(value)))
            .collect(),
    )
}

fn value_to_json(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(n) => json!(n),
        AMQPValue::ShortShortUInt(n) => json!(n),
        AMQPValue::ShortInt(n) => json!(n),
        AMQPValue::ShortUInt(n) => json!(n),
        AMQPValue::LongInt(n) => json!(n),
        AMQPValue::LongUInt(n) => json!(n),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::Timestamp(n) => json!(n),
        AMQPValue::Float(x) => json!(x),
        AMQPValue::Double(x) => json!(x),
        AMQPValue::DecimalValue(d) => json!(f64::from(d.value) / 10f64.powi(i32::from(d.scale))),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::LongString(s) => json!(String::from_utf8_lossy(s.as_bytes())),
        AMQPValue::ByteArray(b) => json!(String::from_utf8_lossy(b.as_slice())),
        AMQPValue::FieldArray(items) => {
            Value::Array(items.as_slice().iter().map(value_to_json).collect())
        }
        AMQPValue::FieldTable(table) => table_to_json(table),
        AMQPValue::Void => Value::Null,
    }
}

/// A JSON object (e.g. declaration arguments) as a field table: strings
/// become long strings and integers 64-bit integers, as RabbitMQ converts them.
pub fn json_to_table(object: &Map<String, Value>) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in object {
        table.insert(key.as_str().into(), json_to_value(value));
    }
    table
}

fn json_to_value(value: &Value) -> AMQPValue {
    match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => number_to_value(n),
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
        Value::Array(items) => {
            AMQPValue::FieldArray(items.iter().map(json_to_value).collect::<Vec<_>>().into())
        }
        Value::Object(object) => AMQPValue::FieldTable(json_to_table(object)),
    }
}

fn number_to_value(n: &Number) -> AMQPValue {
    match (n.as_i64(), n.as_f64()) {
        (Some(i), _) => AMQPValue::LongLongInt(i),
        (None, Some(x)) => AMQPValue::Double(x),
        (None, None) => AMQPValue::Void,
    }
}

/// Adds `name` and `name_details: {"rate": rate}` to `object`, as RabbitMQ
/// reports each message counter.
pub fn put_counter(object: &mut Map<String, Value>, name: &str, count: u64, rate: f64) {
    object.insert(name.to_string(), json!(count));
    object.insert(format!("{name}_details"), json!({ "rate": rate }));
}

/// RabbitMQ's `message_stats` object: publish, deliver_get and ack counters with rates.
pub fn message_stats(counters: MessageCounters, rates: MessageRates) -> Value {
    let mut stats = Map::new();
    put_counter(&mut stats, "publish", counters.published, rates.publish);
    put_counter(
        &mut stats,
        "deliver_get",
        counters.delivered,
        rates.deliver_get,
    );
    put_counter(&mut stats, "ack", counters.acked, rates.ack);
    Value::Object(stats)
}

/// An integer given as a JSON number or as text (as `rabbitmqadmin` sends them).
pub fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A flag given as a JSON boolean or as the text `true`/`false`; `default` when absent.
pub fn flag(object: &Map<String, Value>, name: &str, default: bool) -> Result<bool, ApiError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" => Ok(false),
        Some(_) => Err(ApiError::bad_request(format!(
            "{name} must be true or false"
        ))),
    }
}

/// The `arguments` object of a declaration, empty when absent.
pub fn arguments(object: &Map<String, Value>) -> Result<FieldTable, ApiError> {
    match object.get("arguments") {
        None | Some(Value::Null) => Ok(FieldTable::default()),
        Some(Value::Object(arguments)) => Ok(json_to_table(arguments)),
        Some(Value::Array(empty)) if empty.is_empty() => Ok(FieldTable::default()),
        Some(_) => Err(ApiError::bad_request("arguments must be an object")),
    }
}

/// Deserializes a count given as a number or as text.
pub fn lenient_u64<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value = Value::deserialize(deserializer)?;
    integer(&value)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| serde::de::Error::custom("expected a non-negative integer"))
}

/// Like [`lenient_u64`], for an optional field (`""` and `null` are absent).
pub fn lenient_option_u64<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        other => integer(&other)
            .and_then(|n| u64::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("expected a non-negative integer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip_through_json() {
        let input = json!({"x-message-ttl": 60000, "x-queue-type": "classic", "flag": true});
        let table = json_to_table(input.as_object().unwrap());
        assert_eq!(
            table.inner().get("x-message-ttl"),
            Some(&AMQPValue::LongLongInt(60000))
        );
        assert_eq!(table_to_json(&table), input);
    }
}
