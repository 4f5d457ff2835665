//! `/api/vhosts`: list, show, create and delete virtual hosts.

use hyper::Method;
use serde_json::{Value, json};

use crate::broker::vhost::VHost;
use crate::management::State;
use crate::management::access::Caller;
use crate::management::http::{ApiError, ApiResult, Reply, Request};
use crate::management::json::message_stats;
use crate::management::queues::put_messages;
use crate::management::rates::MessageRates;

/// Routes `/api/vhosts/...`.
pub fn handle(state: &State, caller: &Caller, request: &Request, path: &[&str]) -> ApiResult {
    match (&request.method, path) {
        (&Method::GET, []) => {
            let all = state.visible_vhosts(caller, None)?;
            Ok(Reply::Json(Value::Array(
                all.iter().map(|v| describe(v)).collect(),
            )))
        }
        (&Method::GET, [name]) => Ok(Reply::Json(describe(
            &*state.vhost_for(caller, name, true)?,
        ))),
        (&Method::PUT, [name]) => {
            caller.require_admin()?;
            if state.broker.vhost(name).is_some() {
                return Ok(Reply::NoContent);
            }
            state.broker.add_vhost(name)?;
            Ok(Reply::Created)
        }
        (&Method::DELETE, [name]) => {
            caller.require_admin()?;
            state.broker.delete_vhost(name)?;
            Ok(Reply::NoContent)
        }
        (_, [] | [_]) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::not_found()),
    }
}

fn describe(vhost: &VHost) -> Value {
    let (mut ready, mut unacked) = (0, 0);
    for queue in vhost.queues() {
        let stats = queue.stats();
        ready += stats.ready;
        unacked += stats.unacked;
    }
    let mut object = json!({
        "name": vhost.name(),
        "description": "",
        "tags": [],
        "default_queue_type": "classic",
        "tracing": false,
        "message_stats": message_stats(vhost.message_counters(), MessageRates::default()),
    });
    put_messages(
        object.as_object_mut().expect("built as an object"),
        ready,
        unacked,
    );
    object
}
