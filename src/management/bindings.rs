//! `/api/bindings`: list bindings, bind an exchange to a queue or an
//! exchange, and unbind by RabbitMQ's `properties_key`.

use std::sync::Arc;

use hyper::Method;
use serde_json::{Map, Value, json};

use crate::broker::exchange::{Binding, Destination};
use crate::broker::vhost::VHost;
use crate::management::access::Caller;
use crate::management::http::{ApiError, ApiResult, Reply, Request};
use crate::management::json::{self, table_to_json};
use crate::management::{NO_CONNECTION, State, exchanges};
use crate::protocol::FieldTable;

/// Routes `/api/bindings/...`.
pub fn handle(state: &State, caller: &Caller, request: &Request, path: &[&str]) -> ApiResult {
    match (&request.method, path) {
        (&Method::GET, []) => {
            let mut all = Vec::new();
            for vhost in state.visible_vhosts(caller, None)? {
                all.extend(describe_all(&vhost, |_, _| true));
            }
            Ok(Reply::Json(Value::Array(all)))
        }
        (&Method::GET, [vhost]) => {
            let vhost = state.vhost_for(caller, vhost, true)?;
            list_where(&vhost, |_, _| true)
        }
        (
            method,
            [
                vhost,
                "e",
                source,
                kind @ ("q" | "e"),
                destination,
                rest @ ..,
            ],
        ) => {
            let vhost = state.vhost_for(caller, vhost, method == Method::GET)?;
            let source = exchanges::from_path(source);
            let destination = match *kind {
                "q" => Destination::Queue(Arc::from(*destination)),
                _ => Destination::Exchange(Arc::from(exchanges::from_path(destination))),
            };
            let between = |s: &str, b: &Binding| s == source && b.destination == destination;
            match (method, rest) {
                (&Method::GET, []) => list_where(&vhost, between),
                (&Method::POST, []) => {
                    let body: Map<String, Value> = request.json()?;
                    let routing_key = body
                        .get("routing_key")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    check_permissions(state, caller, &vhost, source, &destination)?;
                    let arguments = json::arguments(&body)?;
                    vhost.bind(source, destination, routing_key, arguments, NO_CONNECTION)?;
                    Ok(Reply::Created)
                }
                (&Method::GET | &Method::DELETE, [key]) => {
                    let found = vhost
                        .bindings()
                        .into_iter()
                        .find(|(s, b)| between(s, b) && properties_key(b) == *key)
                        .ok_or_else(ApiError::not_found)?;
                    if method == Method::GET {
                        return Ok(Reply::Json(describe(&vhost, &found.0, &found.1)));
                    }
                    check_permissions(state, caller, &vhost, source, &destination)?;
                    let (_, binding) = found;
                    vhost.unbind(
                        source,
                        binding.destination,
                        &binding.routing_key,
                        binding.arguments,
                        NO_CONNECTION,
                    )?;
                    Ok(Reply::NoContent)
                }
                (_, [] | [_]) => Err(ApiError::method_not_allowed()),
                _ => Err(ApiError::not_found()),
            }
        }
        (_, [] | [_]) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::not_found()),
    }
}

/// As with `queue.bind`: write on the destination, read on the source.
fn check_permissions(
    state: &State,
    caller: &Caller,
    vhost: &VHost,
    source: &str,
    destination: &Destination,
) -> Result<(), ApiError> {
    use crate::auth::{Permission, ResourceKind};
    let access = state.access(caller, vhost.name());
    let (kind, name) = match destination {
        Destination::Queue(name) => (ResourceKind::Queue, name),
        Destination::Exchange(name) => (ResourceKind::Exchange, name),
    };
    access.check(kind, name, Permission::Write)?;
    access.check(ResourceKind::Exchange, source, Permission::Read)?;
    Ok(())
}

/// Whether a binding leads to the queue `name`.
pub fn leads_to_queue(binding: &Binding, name: &str) -> bool {
    matches!(&binding.destination, Destination::Queue(q) if &**q == name)
}

/// The bindings of `vhost` that `keep` selects, as a JSON list.
pub fn list_where(vhost: &VHost, keep: impl Fn(&str, &Binding) -> bool) -> ApiResult {
    Ok(Reply::Json(Value::Array(describe_all(vhost, keep))))
}

/// Every binding of `vhost` that `keep` selects, the default exchange's
/// implicit ones first (RabbitMQ lists a binding from `""` to every queue).
fn describe_all(vhost: &VHost, keep: impl Fn(&str, &Binding) -> bool) -> Vec<Value> {
    let implicit = vhost.queues().into_iter().map(|queue| {
        let name: Arc<str> = queue.config.name.clone();
        let binding = Binding {
            destination: Destination::Queue(name.clone()),
            routing_key: name,
            arguments: FieldTable::default(),
        };
        (Arc::from(""), binding)
    });
    implicit
        .chain(vhost.bindings())
        .filter(|(source, binding)| keep(source, binding))
        .map(|(source, binding)| describe(vhost, &source, &binding))
        .collect()
}

fn describe(vhost: &VHost, source: &str, binding: &Binding) -> Value {
    let (destination, destination_type) = match &binding.destination {
        Destination::Queue(name) => (name, "queue"),
        Destination::Exchange(name) => (name, "exchange"),
    };
    json!({
        "source": source,
        "vhost": vhost.name(),
        "destination": &**destination,
        "destination_type": destination_type,
        "routing_key": &*binding.routing_key,
        "arguments": table_to_json(&binding.arguments),
        "properties_key": properties_key(binding),
    })
}

/// RabbitMQ's key for one binding between two ends: `~` for an empty key
/// without arguments, the routing key itself without arguments, else the
/// key and a digest of the arguments.
fn properties_key(binding: &Binding) -> String {
    let key = &*binding.routing_key;
    if binding.arguments.inner().is_empty() {
        return match key {
            "" => "~".to_string(),
            key => key.to_string(),
        };
    }
    let digest = crc32fast::hash(table_to_json(&binding.arguments).to_string().as_bytes());
    format!("{key}~{digest:08x}")
}
