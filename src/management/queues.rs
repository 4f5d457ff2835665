//! `/api/queues`: list, show, declare, delete and purge queues, and take
//! messages from them.

use std::sync::Arc;

use hyper::Method;
use serde_json::{Map, Value, json};

use crate::broker::queue::Queue;
use crate::broker::vhost::{QueueDeclare, VHost};
use crate::management::access::Caller;
use crate::management::http::{ApiError, ApiResult, Reply, Request};
use crate::management::json::{self, message_stats, put_counter, table_to_json};
use crate::management::{Declaration, NO_CONNECTION, State, bindings, messages};

/// Routes `/api/queues/...`.
pub fn handle(state: &State, caller: &Caller, request: &Request, path: &[&str]) -> ApiResult {
    match (&request.method, path) {
        (&Method::GET, [] | [_]) => list(state, caller, path.first().copied()),
        (&Method::GET, [vhost, name]) => {
            let vhost = state.vhost_for(caller, vhost, true)?;
            Ok(Reply::Json(describe(state, &vhost, &vhost.queue(name)?)))
        }
        (&Method::PUT, [vhost, name]) => declare(
            state,
            caller,
            state.declaration(caller, request, vhost, name)?,
        ),
        (&Method::DELETE, [vhost, name]) => {
            let vhost = state.vhost_for(caller, vhost, false)?;
            let queue = vhost.queue(name)?;
            if request.query.get("if-empty").is_some_and(|v| v == "true")
                && queue.message_count() > 0
            {
                return Err(ApiError::bad_request(format!(
                    "{} not empty",
                    queue.describe()
                )));
            }
            if request.query.get("if-unused").is_some_and(|v| v == "true") && queue.in_use() {
                return Err(ApiError::bad_request(format!(
                    "{} in use",
                    queue.describe()
                )));
            }
            vhost.remove_queue(&queue);
            Ok(Reply::NoContent)
        }
        (&Method::DELETE, [vhost, name, "contents"]) => {
            let vhost = state.vhost_for(caller, vhost, false)?;
            vhost.queue(name)?.purge();
            Ok(Reply::NoContent)
        }
        (&Method::POST, [vhost, name, "get"]) => {
            let vhost = state.vhost_for(caller, vhost, false)?;
            messages::get(&vhost.queue(name)?, request.json()?)
        }
        (&Method::GET, [vhost, name, "bindings"]) => {
            let vhost = state.vhost_for(caller, vhost, true)?;
            vhost.queue(name)?;
            bindings::list_where(&vhost, |_, b| bindings::leads_to_queue(b, name))
        }
        (_, [] | [_] | [_, _] | [_, _, "contents" | "get" | "bindings"]) => {
            Err(ApiError::method_not_allowed())
        }
        _ => Err(ApiError::not_found()),
    }
}

fn list(state: &State, caller: &Caller, vhost: Option<&str>) -> ApiResult {
    let mut all = Vec::new();
    for vhost in state.visible_vhosts(caller, vhost)? {
        all.extend(vhost.queues().iter().map(|q| describe(state, &vhost, q)));
    }
    Ok(Reply::Json(Value::Array(all)))
}

/// A queue as RabbitMQ's management API shows it.
pub fn describe(state: &State, vhost: &VHost, queue: &Arc<Queue>) -> Value {
    let stats = queue.stats();
    let rates = state.rates.of_queue(vhost.name(), queue.name());
    let config = &queue.config;
    let mut object = json!({
        "name": queue.name(),
        "vhost": vhost.name(),
        "durable": config.durable,
        "auto_delete": config.auto_delete,
        "exclusive": config.exclusive_owner.is_some(),
        "arguments": table_to_json(&config.arguments),
        "type": config.settings.kind.name(),
        "state": "running",
        "node": crate::management::overview::NODE_NAME,
        "consumers": stats.consumers,
        "message_bytes": stats.ready_bytes,
        "message_bytes_ready": stats.ready_bytes,
        "message_stats": message_stats(stats.counters, rates),
    });
    let fields = object.as_object_mut().expect("built as an object");
    put_messages(fields, stats.ready, stats.unacked);
    object
}

/// `messages`, `messages_ready` and `messages_unacknowledged`, with their
/// details (rates of change are not tracked: 0).
pub fn put_messages(object: &mut Map<String, Value>, ready: u64, unacked: u64) {
    put_counter(object, "messages", ready + unacked, 0.0);
    put_counter(object, "messages_ready", ready, 0.0);
    put_counter(object, "messages_unacknowledged", unacked, 0.0);
}

fn declare(state: &State, caller: &Caller, declaration: Declaration) -> ApiResult {
    let Declaration { vhost, body, name } = declaration;
    let existed = vhost.queue(&name).is_ok();
    let declare = QueueDeclare {
        name,
        passive: false,
        durable: json::flag(&body, "durable", true)?,
        exclusive: false,
        auto_delete: json::flag(&body, "auto_delete", false)?,
        arguments: with_queue_type(&body)?,
    };
    state.as_caller(caller, vhost.name(), |authorize| {
        vhost.declare_queue(declare, NO_CONNECTION, authorize)
    })?;
    Ok(Reply::created_unless(existed))
}

/// The declared arguments; RabbitMQ also takes the type as a top-level `queue_type`.
fn with_queue_type(body: &Map<String, Value>) -> Result<crate::protocol::FieldTable, ApiError> {
    let mut arguments = json::arguments(body)?;
    if let Some(kind) = body.get("queue_type").and_then(Value::as_str)
        && !arguments.contains_key("x-queue-type")
    {
        arguments.insert(
            "x-queue-type".into(),
            crate::protocol::AMQPValue::LongString(kind.into()),
        );
    }
    Ok(arguments)
}
