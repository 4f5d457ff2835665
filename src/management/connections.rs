//! `/api/connections`, `/api/channels` and `/api/consumers`: the clients
//! connected now, and closing a connection as an operator.

use std::collections::HashMap;
use std::sync::Arc;

use hyper::Method;
use serde_json::{Value, json};

use crate::broker::connections::ConnectionInfo;
use crate::management::State;
use crate::management::access::Caller;
use crate::management::http::{ApiError, ApiResult, Reply, Request};
use crate::management::json::table_to_json;
use crate::management::overview::NODE_NAME;

/// The reason a connection closed through the API is given, unless the
/// request's `X-Reason` header gives another (RabbitMQ's default).
const DEFAULT_CLOSE_REASON: &str = "Closed via management plugin";

/// Routes `/api/connections/...`, `/api/channels` and `/api/consumers/...` (the whole path).
pub fn handle(state: &State, caller: &Caller, request: &Request, path: &[&str]) -> ApiResult {
    let visible = |c: &ConnectionInfo| caller.is_monitor() || *c.user == caller.name;
    let connections = state.broker.connections().list();
    match (&request.method, path) {
        (&Method::GET, ["connections"]) => Ok(Reply::Json(Value::Array(
            connections
                .iter()
                .filter(|c| visible(c))
                .map(|c| describe(c))
                .collect(),
        ))),
        (method, ["connections", name, rest @ ..]) => {
            let connection = connections
                .iter()
                .find(|c| c.name == *name)
                .ok_or_else(ApiError::not_found)?;
            let may = match *method {
                Method::DELETE => caller.is_admin() || *connection.user == caller.name,
                _ => visible(connection),
            };
            if !may {
                return Err(ApiError::not_authorised(
                    "User not authorised to access object",
                ));
            }
            match (method, rest) {
                (&Method::GET, []) => Ok(Reply::Json(describe(connection))),
                (&Method::GET, ["channels"]) => {
                    Ok(Reply::Json(Value::Array(channels_of(state, connection))))
                }
                (&Method::DELETE, []) => {
                    let reason = request.header("x-reason").unwrap_or(DEFAULT_CLOSE_REASON);
                    state.broker.connections().close_named(name, reason);
                    Ok(Reply::NoContent)
                }
                (_, []) => Err(ApiError::method_not_allowed()),
                _ => Err(ApiError::not_found()),
            }
        }
        (&Method::GET, ["channels"]) => Ok(Reply::Json(Value::Array(
            connections
                .iter()
                .filter(|c| visible(c))
                .flat_map(|c| channels_of(state, c))
                .collect(),
        ))),
        (&Method::GET, ["consumers", only @ ..]) if only.len() <= 1 => {
            consumers(state, caller, only.first().copied(), &connections)
        }
        (_, ["connections" | "channels" | "consumers"]) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::not_found()),
    }
}

fn describe(c: &ConnectionInfo) -> Value {
    let details = &c.details;
    json!({
        "name": c.name,
        "node": NODE_NAME,
        "vhost": &*c.vhost,
        "user": &*c.user,
        "state": "running",
        "type": "network",
        "protocol": "AMQP 0-9-1",
        "ssl": false,
        "channels": c.channels.lock().len(),
        "peer_host": details.peer.ip().to_string(),
        "peer_port": details.peer.port(),
        "host": details.local.ip().to_string(),
        "port": details.local.port(),
        "auth_mechanism": details.auth_mechanism,
        "client_properties": table_to_json(&details.client_properties),
        "connected_at": c.connected_at,
        "frame_max": details.frame_max,
        "channel_max": details.channel_max,
        "timeout": details.heartbeat,
    })
}

/// What identifies a channel in channel and consumer objects.
fn channel_details(c: &ConnectionInfo, number: u16) -> Value {
    json!({
        "name": format!("{} ({number})", c.name),
        "number": number,
        "connection_name": c.name,
        "peer_host": c.details.peer.ip().to_string(),
        "peer_port": c.details.peer.port(),
        "user": &*c.user,
    })
}

fn channels_of(state: &State, c: &ConnectionInfo) -> Vec<Value> {
    let mut consumers: HashMap<u16, usize> = HashMap::new();
    if let Some(vhost) = state.broker.vhost(&c.vhost) {
        for queue in vhost.queues() {
            for consumer in queue.consumers().iter().filter(|k| k.connection == c.id) {
                *consumers.entry(consumer.channel).or_default() += 1;
            }
        }
    }
    let numbers: Vec<u16> = c.channels.lock().iter().copied().collect();
    numbers
        .into_iter()
        .map(|number| {
            json!({
                "name": format!("{} ({number})", c.name),
                "number": number,
                "node": NODE_NAME,
                "vhost": &*c.vhost,
                "user": &*c.user,
                "state": "running",
                "consumer_count": consumers.get(&number).copied().unwrap_or(0),
                "connection_details": {
                    "name": c.name,
                    "peer_host": c.details.peer.ip().to_string(),
                    "peer_port": c.details.peer.port(),
                },
            })
        })
        .collect()
}

fn consumers(
    state: &State,
    caller: &Caller,
    vhost: Option<&str>,
    connections: &[Arc<ConnectionInfo>],
) -> ApiResult {
    let by_id: HashMap<u64, &Arc<ConnectionInfo>> = connections.iter().map(|c| (c.id, c)).collect();
    let mut all = Vec::new();
    for vhost in state.visible_vhosts(caller, vhost)? {
        for queue in vhost.queues() {
            for consumer in queue.consumers() {
                let channel = by_id
                    .get(&consumer.connection)
                    .map_or(Value::Null, |c| channel_details(c, consumer.channel));
                all.push(json!({
                    "consumer_tag": &*consumer.tag,
                    "channel_details": channel,
                    "queue": {"name": queue.name(), "vhost": vhost.name()},
                    "ack_required": !consumer.no_ack,
                    "exclusive": consumer.exclusive,
                    "priority": consumer.priority,
                    "active": true,
                    "activity_status": "up",
                    "arguments": {},
                }));
            }
        }
    }
    Ok(Reply::Json(Value::Array(all)))
}
