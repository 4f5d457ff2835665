//! `/api/definitions`: every user, vhost, permission and durable exchange,
//! queue and binding, exported and imported in RabbitMQ's format, so that
//! definitions move between RabbitMQ and Warren both ways.

use hyper::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::auth::{Authorize, Permission, ResourceKind};
use crate::broker::exchange::Destination;
use crate::broker::vhost::{ExchangeDeclare, QueueDeclare};
use crate::error::AmqpResult;
use crate::management::access::Caller;
use crate::management::http::{ApiError, ApiResult, Reply, Request};
use crate::management::json::{json_to_table, table_to_json};
use crate::management::{NO_CONNECTION, State};
use crate::store::definitions::{PermissionDefinition, UserDefinition};

/// Routes `/api/definitions`.
pub fn handle(state: &State, caller: &Caller, request: &Request, path: &[&str]) -> ApiResult {
    caller.require_admin()?;
    match (&request.method, path) {
        (&Method::GET, []) => Ok(Reply::Json(export(state))),
        (&Method::POST, []) => {
            import(state, &request.json()?)?;
            Ok(Reply::NoContent)
        }
        (_, []) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::not_found()),
    }
}

/// RabbitMQ's definitions document; parts Warren has no use for (policies,
/// parameters) are accepted and exported empty.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Definitions {
    #[serde(default)]
    users: Vec<UserDefinition>,
    #[serde(default)]
    vhosts: Vec<VHostEntry>,
    #[serde(default)]
    permissions: Vec<PermissionDefinition>,
    #[serde(default)]
    queues: Vec<QueueEntry>,
    #[serde(default)]
    exchanges: Vec<ExchangeEntry>,
    #[serde(default)]
    bindings: Vec<BindingEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct VHostEntry {
    name: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct QueueEntry {
    name: String,
    vhost: String,
    #[serde(default = "yes")]
    durable: bool,
    #[serde(default)]
    auto_delete: bool,
    #[serde(default)]
    arguments: Map<String, Value>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ExchangeEntry {
    name: String,
    vhost: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default = "yes")]
    durable: bool,
    #[serde(default)]
    auto_delete: bool,
    #[serde(default)]
    internal: bool,
    #[serde(default)]
    arguments: Map<String, Value>,
}

#[derive(Debug, Serialize, Deserialize)]
struct BindingEntry {
    source: String,
    vhost: String,
    destination: String,
    destination_type: String,
    #[serde(default)]
    routing_key: String,
    #[serde(default)]
    arguments: Map<String, Value>,
}

fn yes() -> bool {
    true
}

fn export(state: &State) -> Value {
    let broker = &state.broker;
    let mut definitions = Definitions {
        users: broker.users(),
        permissions: broker.permissions(),
        ..Definitions::default()
    };
    for vhost in broker.vhost_names().iter().filter_map(|n| broker.vhost(n)) {
        let name = vhost.name().to_string();
        definitions.vhosts.push(VHostEntry { name: name.clone() });
        let queues: Vec<_> = vhost
            .queues()
            .into_iter()
            .filter(|q| q.config.durable && q.config.exclusive_owner.is_none())
            .collect();
        let exchanges: Vec<_> = vhost
            .exchanges()
            .into_iter()
            .filter(|x| x.durable && !x.name.starts_with("amq."))
            .collect();
        let exported_queue = |n: &str| queues.iter().any(|q| q.name() == n);
        let exported_exchange =
            |n: &str| n.starts_with("amq.") || exchanges.iter().any(|x| &*x.name == n);
        for (source, binding) in vhost.bindings() {
            let (destination, destination_type, exported) = match &binding.destination {
                Destination::Queue(q) => (q, "queue", exported_queue(q)),
                Destination::Exchange(x) => (x, "exchange", exported_exchange(x)),
            };
            if exported && exported_exchange(&source) {
                definitions.bindings.push(BindingEntry {
                    source: source.to_string(),
                    vhost: name.clone(),
                    destination: destination.to_string(),
                    destination_type: destination_type.to_string(),
                    routing_key: binding.routing_key.to_string(),
                    arguments: object(table_to_json(&binding.arguments)),
                });
            }
        }
        definitions.queues.extend(queues.iter().map(|q| QueueEntry {
            name: q.name().to_string(),
            vhost: name.clone(),
            durable: true,
            auto_delete: q.config.auto_delete,
            arguments: object(table_to_json(&q.config.arguments)),
        }));
        definitions
            .exchanges
            .extend(exchanges.iter().map(|x| ExchangeEntry {
                name: x.name.to_string(),
                vhost: name.clone(),
                kind: x.kind.name().to_string(),
                durable: true,
                auto_delete: x.auto_delete,
                internal: x.internal,
                arguments: object(table_to_json(&x.arguments)),
            }));
    }
    let mut document = serde_json::to_value(&definitions).unwrap_or_default();
    if let Value::Object(fields) = &mut document {
        let version = env!("CARGO_PKG_VERSION");
        fields.insert("rabbit_version".into(), json!(version));
        fields.insert("rabbitmq_version".into(), json!(version));
        fields.insert("product_name".into(), json!("Warren"));
        fields.insert("product_version".into(), json!(version));
        for empty in [
            "topic_permissions",
            "parameters",
            "global_parameters",
            "policies",
        ] {
            fields.insert(empty.into(), json!([]));
        }
    }
    document
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Imports are not subject to the importing user's AMQP permissions, as in RabbitMQ.
struct Unrestricted;

impl Authorize for Unrestricted {
    fn authorize(&mut self, _: ResourceKind, _: &str, _: Permission) -> AmqpResult<()> {
        Ok(())
    }
}

/// Creates what the document describes, in dependency order: vhosts and
/// users, permissions, exchanges, queues, then bindings.
fn import(state: &State, definitions: &Definitions) -> Result<(), ApiError> {
    let broker = &state.broker;
    for vhost in &definitions.vhosts {
        if broker.vhost(&vhost.name).is_none() {
            broker.add_vhost(&vhost.name)?;
        }
    }
    for user in &definitions.users {
        broker.put_user(user)?;
    }
    for p in &definitions.permissions {
        broker.set_permissions(&p.user, &p.vhost, &p.configure, &p.write, &p.read)?;
    }
    for x in &definitions.exchanges {
        let declare = ExchangeDeclare {
            name: x.name.clone(),
            kind: x.kind.clone(),
            passive: false,
            durable: x.durable,
            auto_delete: x.auto_delete,
            internal: x.internal,
            arguments: json_to_table(&x.arguments),
        };
        state
            .vhost(&x.vhost)?
            .declare_exchange(declare, &mut Unrestricted)?;
    }
    for q in &definitions.queues {
        let declare = QueueDeclare {
            name: q.name.clone(),
            passive: false,
            durable: q.durable,
            exclusive: false,
            auto_delete: q.auto_delete,
            arguments: json_to_table(&q.arguments),
        };
        state
            .vhost(&q.vhost)?
            .declare_queue(declare, NO_CONNECTION, &mut Unrestricted)?;
    }
    for b in &definitions.bindings {
        let destination = match b.destination_type.as_str() {
            "queue" => Destination::Queue(b.destination.as_str().into()),
            "exchange" => Destination::Exchange(b.destination.as_str().into()),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown destination_type '{other}'"
                )));
            }
        };
        state.vhost(&b.vhost)?.bind(
            &b.source,
            destination,
            &b.routing_key,
            json_to_table(&b.arguments),
            NO_CONNECTION,
        )?;
    }
    Ok(())
}
