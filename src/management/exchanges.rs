//! `/api/exchanges`: list, show, declare and delete exchanges, and publish
//! through them.

use hyper::Method;
use serde_json::{Value, json};

use crate::auth::{Permission, ResourceKind};
use crate::broker::exchange::ExchangeConfig;
use crate::broker::vhost::{ExchangeDeclare, VHost};
use crate::management::access::Caller;
use crate::management::http::{ApiError, ApiResult, Reply, Request};
use crate::management::json::{self, table_to_json};
use crate::management::{Declaration, State, bindings, messages};

/// The name the API gives the default exchange in paths.
const DEFAULT_EXCHANGE: &str = "amq.default";

/// An exchange name from a path: `amq.default` is the default exchange `""`.
pub fn from_path(name: &str) -> &str {
    match name {
        DEFAULT_EXCHANGE => "",
        name => name,
    }
}

/// Routes `/api/exchanges/...`.
pub fn handle(state: &State, caller: &Caller, request: &Request, path: &[&str]) -> ApiResult {
    match (&request.method, path) {
        (&Method::GET, [] | [_]) => list(state, caller, path.first().copied()),
        (&Method::GET, [vhost, name]) => {
            let vhost = state.vhost_for(caller, vhost, true)?;
            let name = from_path(name);
            let found = all_of(&vhost)
                .into_iter()
                .find(|x| &*x.name == name)
                .ok_or_else(ApiError::not_found)?;
            Ok(Reply::Json(describe(&vhost, &found)))
        }
        (&Method::PUT, [vhost, name]) => declare(
            state,
            caller,
            state.declaration(caller, request, vhost, from_path(name))?,
        ),
        (&Method::DELETE, [vhost, name]) => {
            let vhost = state.vhost_for(caller, vhost, false)?;
            let name = from_path(name);
            if !all_of(&vhost).iter().any(|x| &*x.name == name) {
                return Err(ApiError::not_found());
            }
            let if_unused = request.query.get("if-unused").is_some_and(|v| v == "true");
            state.as_caller(caller, vhost.name(), |authorize| {
                vhost.delete_exchange(name, if_unused, authorize)
            })?;
            Ok(Reply::NoContent)
        }
        (&Method::POST, [vhost, name, "publish"]) => {
            let vhost = state.vhost_for(caller, vhost, false)?;
            let name = from_path(name);
            state.access(caller, vhost.name()).check(
                ResourceKind::Exchange,
                name,
                Permission::Write,
            )?;
            messages::publish(&vhost, name, &caller.name, request.json()?)
        }
        (
            &Method::GET,
            [
                vhost,
                name,
                "bindings",
                direction @ ("source" | "destination"),
            ],
        ) => {
            let vhost = state.vhost_for(caller, vhost, true)?;
            let name = from_path(name);
            let as_source = *direction == "source";
            bindings::list_where(&vhost, |source, binding| match as_source {
                true => source == name,
                false => matches!(&binding.destination,
                    crate::broker::exchange::Destination::Exchange(x) if &**x == name),
            })
        }
        (_, [] | [_] | [_, _] | [_, _, "publish"]) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::not_found()),
    }
}

/// Every exchange of a vhost, the default exchange first.
fn all_of(vhost: &VHost) -> Vec<ExchangeConfig> {
    let default = ExchangeConfig {
        name: "".into(),
        kind: crate::broker::exchange::ExchangeKind::Direct,
        durable: true,
        auto_delete: false,
        internal: false,
        arguments: Default::default(),
    };
    std::iter::once(default).chain(vhost.exchanges()).collect()
}

fn list(state: &State, caller: &Caller, vhost: Option<&str>) -> ApiResult {
    let mut all = Vec::new();
    for vhost in state.visible_vhosts(caller, vhost)? {
        all.extend(all_of(&vhost).iter().map(|x| describe(&vhost, x)));
    }
    Ok(Reply::Json(Value::Array(all)))
}

fn describe(vhost: &VHost, exchange: &ExchangeConfig) -> Value {
    json!({
        "name": &*exchange.name,
        "vhost": vhost.name(),
        "type": exchange.kind.name(),
        "durable": exchange.durable,
        "auto_delete": exchange.auto_delete,
        "internal": exchange.internal,
        "arguments": table_to_json(&exchange.arguments),
        "user_who_performed_action": "",
    })
}

fn declare(state: &State, caller: &Caller, declaration: Declaration) -> ApiResult {
    let Declaration { vhost, body, name } = declaration;
    let kind = body
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("Missing type"))?;
    let existed = vhost.exchanges().iter().any(|x| *x.name == *name);
    let declare = ExchangeDeclare {
        name,
        kind: kind.to_string(),
        passive: false,
        durable: json::flag(&body, "durable", true)?,
        auto_delete: json::flag(&body, "auto_delete", false)?,
        internal: json::flag(&body, "internal", false)?,
        arguments: json::arguments(&body)?,
    };
    state.as_caller(caller, vhost.name(), |authorize| {
        vhost.declare_exchange(declare, authorize)
    })?;
    Ok(Reply::created_unless(existed))
}
