//! `/api/overview`, `/api/whoami`, the health checks and the aliveness test.

use std::sync::Arc;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::broker::message::Message;
use crate::broker::vhost::QueueDeclare;
use crate::management::access::Caller;
use crate::management::http::{ApiError, ApiResult, Reply, Request};
use crate::management::json::message_stats;
use crate::management::queues::put_messages;
use crate::management::rates::broker_counters;
use crate::management::{NO_CONNECTION, State};

/// The node name objects report; Warren is a single node.
pub const NODE_NAME: &str = "warren@localhost";
/// The queue the aliveness test declares, as RabbitMQ names it.
const ALIVENESS_QUEUE: &str = "aliveness-test";

/// Routes the overview, identity and health resources (the whole path).
pub fn handle(state: &State, caller: &Caller, request: &Request, path: &[&str]) -> ApiResult {
    if request.method != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    match path {
        ["overview"] => Ok(Reply::Json(overview(state, caller))),
        ["whoami"] => Ok(Reply::Json(
            json!({"name": caller.name, "tags": caller.tags}),
        )),
        ["health", "checks", "alarms"] => {
            caller.require_monitor()?;
            let alarms = *state.broker.alarms().state().borrow();
            if !alarms.is_set() {
                return Ok(Reply::Json(json!({"status": "ok"})));
            }
            let set: Vec<Value> = [("memory", alarms.memory), ("disk", alarms.disk)]
                .into_iter()
                .filter(|(_, on)| *on)
                .map(|(resource, _)| json!({"node": NODE_NAME, "resource": resource}))
                .collect();
            Ok(Reply::Status(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({
                    "status": "failed",
                    "reason": "resource alarm(s) in effect in the cluster",
                    "alarms": set,
                }),
            ))
        }
        ["health", "checks", "port-listener", port] => {
            caller.require_monitor()?;
            let port: u16 = port
                .parse()
                .map_err(|_| ApiError::bad_request(format!("Invalid port: {port}")))?;
            let ports: Vec<u16> = state.listeners.iter().map(|(_, a)| a.port()).collect();
            if ports.contains(&port) {
                return Ok(Reply::Json(json!({"status": "ok", "port": port})));
            }
            Ok(Reply::Status(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "failed", "reason": "No active listener", "missing": port, "ports": ports}),
            ))
        }
        ["aliveness-test", vhost] => aliveness(state, caller, vhost),
        _ => Err(ApiError::not_found()),
    }
}

fn overview(state: &State, caller: &Caller) -> Value {
    let broker = &state.broker;
    let vhosts = state.visible_vhosts(caller, None).unwrap_or_default();
    let (mut ready, mut unacked, mut queues, mut exchanges, mut consumers) = (0, 0, 0, 0, 0);
    for vhost in &vhosts {
        for queue in vhost.queues() {
            let stats = queue.stats();
            ready += stats.ready;
            unacked += stats.unacked;
            consumers += u64::from(stats.consumers);
            queues += 1;
        }
        // The default exchange is listed too.
        exchanges += vhost.exchanges().len() + 1;
    }
    let connections = broker.connections().list();
    let channels: usize = connections.iter().map(|c| c.channels.lock().len()).sum();
    let mut queue_totals = json!({});
    put_messages(
        queue_totals.as_object_mut().expect("an object"),
        ready,
        unacked,
    );
    let listeners: Vec<Value> = state
        .listeners
        .iter()
        .map(|(protocol, addr)| {
            json!({
                "node": NODE_NAME,
                "protocol": protocol,
                "ip_address": addr.ip().to_string(),
                "port": addr.port(),
            })
        })
        .collect();
    let exchange_types: Vec<Value> = ["direct", "fanout", "headers", "topic"]
        .iter()
        .map(|name| json!({"name": name, "enabled": true}))
        .collect();
    json!({
        "management_version": env!("CARGO_PKG_VERSION"),
        "rates_mode": "basic",
        "product_name": "Warren",
        "product_version": env!("CARGO_PKG_VERSION"),
        "rabbitmq_version": env!("CARGO_PKG_VERSION"),
        "cluster_name": NODE_NAME,
        "node": NODE_NAME,
        "exchange_types": exchange_types,
        "message_stats": message_stats(broker_counters(broker), state.rates.of_broker()),
        "queue_totals": queue_totals,
        "object_totals": {
            "connections": connections.len(),
            "channels": channels,
            "exchanges": exchanges,
            "queues": queues,
            "consumers": consumers,
        },
        "listeners": listeners,
    })
}

/// Declares `aliveness-test`, publishes a message to it and takes it back, as RabbitMQ does.
fn aliveness(state: &State, caller: &Caller, vhost: &str) -> ApiResult {
    let vhost = state.vhost_for(caller, vhost, false)?;
    let declare = QueueDeclare {
        name: ALIVENESS_QUEUE.to_string(),
        passive: false,
        durable: false,
        exclusive: false,
        auto_delete: false,
        arguments: Default::default(),
    };
    state.as_caller(caller, vhost.name(), |authorize| {
        vhost.declare_queue(declare, NO_CONNECTION, authorize)
    })?;
    let queue = vhost.queue(ALIVENESS_QUEUE)?;
    let message = Message::new(
        Arc::from(""),
        Arc::from(ALIVENESS_QUEUE),
        Bytes::new(),
        Bytes::from_static(b"test_message"),
    );
    vhost.enqueue(message, std::slice::from_ref(&queue));
    match queue.get(true) {
        Some(_) => Ok(Reply::Json(json!({"status": "ok"}))),
        None => Ok(Reply::Status(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "failed", "reason": "aliveness test message not received"}),
        )),
    }
}
