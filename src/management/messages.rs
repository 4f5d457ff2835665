//! Messages through the API: publishing to an exchange (`/publish`) and
//! taking messages from a queue (`/get`), with properties and payloads in
//! RabbitMQ's JSON shape.

use std::sync::Arc;

use amq_protocol::protocol::basic::AMQPProperties;
use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::broker::message::{Message, encode_properties};
use crate::broker::queue::Queue;
use crate::broker::vhost::VHost;
use crate::management::http::{ApiError, ApiResult, Reply};
use crate::management::json::{json_to_table, table_to_json};
use crate::protocol::ShortString;

/// The body of `POST /api/exchanges/{vhost}/{name}/publish`.
#[derive(Debug, Deserialize)]
pub struct Publish {
    routing_key: String,
    payload: String,
    #[serde(default = "string_encoding")]
    payload_encoding: String,
    #[serde(default)]
    properties: Map<String, Value>,
}

fn string_encoding() -> String {
    "string".into()
}

/// Routes a message as a client publish would; replies `{"routed": bool}`.
pub fn publish(vhost: &VHost, exchange: &str, user: &str, publish: Publish) -> ApiResult {
    let body = match publish.payload_encoding.as_str() {
        "string" => Bytes::from(publish.payload.into_bytes()),
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(publish.payload.as_bytes())
            .map(Bytes::from)
            .map_err(|_| ApiError::bad_request("payload_not_base64"))?,
        _ => return Err(ApiError::bad_request("invalid_encoding")),
    };
    let properties = encode_properties(&properties_from_json(&publish.properties)?)
        .ok_or_else(|| ApiError::bad_request("invalid properties"))?;
    let mut message = Message::new(
        Arc::from(exchange),
        Arc::from(publish.routing_key.as_str()),
        properties,
        body,
    );
    let sender_keys = message.take_sender_keys();
    let mut queues = Vec::new();
    vhost.route(exchange, &message, &sender_keys, &mut queues)?;
    message.check_properties(user)?;
    let routed = !queues.is_empty();
    if routed {
        vhost.enqueue(message, &queues);
    }
    Ok(Reply::Json(json!({ "routed": routed })))
}

/// The body of `POST /api/queues/{vhost}/{name}/get`.
#[derive(Debug, Deserialize)]
pub struct Get {
    #[serde(deserialize_with = "crate::management::json::lenient_u64")]
    count: u64,
    ackmode: String,
    #[serde(default = "auto_encoding")]
    encoding: String,
    #[serde(
        default,
        deserialize_with = "crate::management::json::lenient_option_u64"
    )]
    truncate: Option<u64>,
}

fn auto_encoding() -> String {
    "auto".into()
}

/// Takes up to `count` messages, then requeues, acks or rejects them as `ackmode` says.
pub fn get(queue: &Arc<Queue>, get: Get) -> ApiResult {
    let (requeue, rejected) = match get.ackmode.as_str() {
        "ack_requeue_true" | "reject_requeue_true" => (true, false),
        "ack_requeue_false" => (false, false),
        "reject_requeue_false" => (false, true),
        other => return Err(ApiError::bad_request(format!("Unknown ackmode: {other}"))),
    };
    if !matches!(get.encoding.as_str(), "auto" | "base64") {
        return Err(ApiError::bad_request(
            "Unsupported encoding. Please use auto or base64.",
        ));
    }
    let mut taken = Vec::new();
    let mut shown = Vec::new();
    while (taken.len() as u64) < get.count {
        let Some((message, left)) = queue.get(false) else {
            break;
        };
        shown.push(describe(
            &message.message,
            message.redelivered(),
            left,
            &get,
        ));
        taken.push(message);
    }
    if requeue {
        queue.requeue(taken);
    } else {
        queue.settle(&taken, rejected);
    }
    Ok(Reply::Json(Value::Array(shown)))
}

fn describe(message: &Message, redelivered: bool, left: u32, get: &Get) -> Value {
    let body = &message.body[..get
        .truncate
        .map_or(message.body.len(), |t| message.body.len().min(t as usize))];
    let (payload, encoding) = match (get.encoding.as_str(), std::str::from_utf8(body)) {
        ("auto", Ok(text)) => (text.to_string(), "string"),
        _ => (
            base64::engine::general_purpose::STANDARD.encode(body),
            "base64",
        ),
    };
    json!({
        "payload_bytes": message.body.len(),
        "redelivered": redelivered,
        "exchange": &*message.exchange,
        "routing_key": &*message.routing_key,
        "message_count": left,
        "properties": message
            .decode_properties()
            .map_or(json!([]), |p| properties_to_json(&p)),
        "payload": payload,
        "payload_encoding": encoding,
    })
}

/// Message properties as RabbitMQ shows them: only those set, and `[]` when none is.
fn properties_to_json(p: &AMQPProperties) -> Value {
    let mut out = Map::new();
    let mut text = |name: &str, value: &Option<ShortString>| {
        if let Some(value) = value {
            out.insert(name.into(), json!(value.as_str()));
        }
    };
    text("content_type", p.content_type());
    text("content_encoding", p.content_encoding());
    text("correlation_id", p.correlation_id());
    text("reply_to", p.reply_to());
    text("expiration", p.expiration());
    text("message_id", p.message_id());
    text("type", p.kind());
    text("user_id", p.user_id());
    text("app_id", p.app_id());
    text("cluster_id", p.cluster_id());
    if let Some(headers) = p.headers() {
        out.insert("headers".into(), table_to_json(headers));
    }
    let numbers = [
        ("delivery_mode", p.delivery_mode().map(u64::from)),
        ("priority", p.priority().map(u64::from)),
        ("timestamp", *p.timestamp()),
    ];
    for (name, value) in numbers {
        if let Some(value) = value {
            out.insert(name.into(), json!(value));
        }
    }
    match out.is_empty() {
        true => json!([]),
        false => Value::Object(out),
    }
}

/// Message properties from their JSON form; unknown names are refused, as RabbitMQ does.
fn properties_from_json(json: &Map<String, Value>) -> Result<AMQPProperties, ApiError> {
    let mut p = AMQPProperties::default();
    for (name, value) in json {
        let text = || -> Result<ShortString, ApiError> {
            match value {
                Value::String(s) => Ok(s.as_str().into()),
                other => Ok(other.to_string().into()),
            }
        };
        let small = || -> Result<u8, ApiError> {
            crate::management::json::integer(value)
                .and_then(|n| u8::try_from(n).ok())
                .ok_or_else(|| ApiError::bad_request(format!("invalid {name}")))
        };
        p = match name.as_str() {
            "content_type" => p.with_content_type(text()?),
            "content_encoding" => p.with_content_encoding(text()?),
            "correlation_id" => p.with_correlation_id(text()?),
            "reply_to" => p.with_reply_to(text()?),
            "expiration" => p.with_expiration(text()?),
            "message_id" => p.with_message_id(text()?),
            "type" => p.with_type(text()?),
            "user_id" => p.with_user_id(text()?),
            "app_id" => p.with_app_id(text()?),
            "cluster_id" => p.with_cluster_id(text()?),
            "delivery_mode" => p.with_delivery_mode(small()?),
            "priority" => p.with_priority(small()?),
            "timestamp" => p.with_timestamp(
                crate::management::json::integer(value)
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or_else(|| ApiError::bad_request("invalid timestamp"))?,
            ),
            "headers" => match value {
                Value::Object(headers) => p.with_headers(json_to_table(headers)),
                _ => return Err(ApiError::bad_request("headers must be an object")),
            },
            other => return Err(ApiError::bad_request(format!("invalid property: {other}"))),
        };
    }
    Ok(p)
}
