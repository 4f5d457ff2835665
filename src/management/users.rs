//! `/api/users` and `/api/permissions`: Warren's users, their passwords and
//! tags, and what they may do in each vhost. Administrators only.

use hyper::Method;
use serde_json::{Map, Value, json};

use crate::management::State;
use crate::management::access::Caller;
use crate::management::http::{ApiError, ApiResult, Reply, Request};
use crate::store::definitions::{PermissionDefinition, UserDefinition};

/// The algorithm a `password_hash` without one is taken to use, as in RabbitMQ.
const DEFAULT_HASHING_ALGORITHM: &str = "rabbit_password_hashing_sha256";

/// Routes `/api/users/...` and `/api/permissions/...` (the whole path).
pub fn handle(state: &State, caller: &Caller, request: &Request, path: &[&str]) -> ApiResult {
    caller.require_admin()?;
    let broker = &state.broker;
    match (&request.method, path) {
        (&Method::GET, ["users"]) => Ok(Reply::Json(Value::Array(
            broker.users().iter().map(describe_user).collect(),
        ))),
        (&Method::GET, ["users", name]) => {
            let user = broker
                .users()
                .into_iter()
                .find(|u| u.name == *name)
                .ok_or_else(ApiError::not_found)?;
            Ok(Reply::Json(describe_user(&user)))
        }
        (&Method::PUT, ["users", name]) => put_user(state, request, name),
        (&Method::DELETE, ["users", name]) => {
            broker.delete_user(name)?;
            Ok(Reply::NoContent)
        }
        (&Method::GET, ["users", name, "permissions"]) => {
            permissions_where(state, |p| p.user == *name)
        }
        (&Method::GET, ["permissions"]) => permissions_where(state, |_| true),
        (&Method::GET, ["permissions", vhost, user]) => {
            let found = broker
                .permissions()
                .into_iter()
                .find(|p| p.vhost == *vhost && p.user == *user)
                .ok_or_else(ApiError::not_found)?;
            Ok(Reply::Json(describe_permission(&found)))
        }
        (&Method::PUT, ["permissions", vhost, user]) => {
            if !broker.users().iter().any(|u| u.name == *user) {
                return Err(ApiError::not_found());
            }
            let body: Map<String, Value> = request.json()?;
            let pattern = |name: &str| {
                body.get(name)
                    .and_then(Value::as_str)
                    .ok_or_else(|| ApiError::bad_request(format!("{name} is missing")))
            };
            let existed = broker
                .permissions()
                .iter()
                .any(|p| p.vhost == *vhost && p.user == *user);
            broker.set_permissions(
                user,
                vhost,
                pattern("configure")?,
                pattern("write")?,
                pattern("read")?,
            )?;
            Ok(Reply::created_unless(existed))
        }
        (&Method::DELETE, ["permissions", vhost, user]) => {
            if !broker
                .permissions()
                .iter()
                .any(|p| p.vhost == *vhost && p.user == *user)
            {
                return Err(ApiError::not_found());
            }
            broker.clear_permissions(user, vhost)?;
            Ok(Reply::NoContent)
        }
        (_, ["users" | "permissions"] | ["users", _] | ["permissions", _, _]) => {
            Err(ApiError::method_not_allowed())
        }
        _ => Err(ApiError::not_found()),
    }
}

fn describe_user(user: &UserDefinition) -> Value {
    json!({
        "name": user.name,
        "password_hash": user.password_hash,
        "hashing_algorithm": user.hashing_algorithm,
        "tags": user.tags,
        "limits": {},
    })
}

fn describe_permission(p: &PermissionDefinition) -> Value {
    json!({
        "user": p.user,
        "vhost": p.vhost,
        "configure": p.configure,
        "write": p.write,
        "read": p.read,
    })
}

fn permissions_where(state: &State, keep: impl Fn(&PermissionDefinition) -> bool) -> ApiResult {
    Ok(Reply::Json(Value::Array(
        state
            .broker
            .permissions()
            .iter()
            .filter(|p| keep(p))
            .map(describe_permission)
            .collect(),
    )))
}

/// Tags as a list or as RabbitMQ's comma-separated text.
fn tags(body: &Map<String, Value>) -> Vec<String> {
    match body.get("tags") {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        Some(Value::String(text)) => text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

/// Creates or updates a user from a password, or a password hash and its algorithm.
fn put_user(state: &State, request: &Request, name: &str) -> ApiResult {
    let broker = &state.broker;
    let body: Map<String, Value> = request.json()?;
    let tags = tags(&body);
    let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let existing = broker.users().into_iter().find(|u| u.name == name);
    match (body.get("password"), body.get("password_hash"), &existing) {
        (Some(Value::String(password)), _, None) => broker.add_user(name, password, &tag_refs)?,
        (Some(Value::String(password)), _, Some(_)) => {
            broker.change_password(name, password)?;
            broker.set_user_tags(name, &tag_refs)?;
        }
        (_, Some(Value::String(hash)), _) => broker.put_user(&UserDefinition {
            name: name.to_string(),
            password_hash: hash.clone(),
            hashing_algorithm: body
                .get("hashing_algorithm")
                .and_then(Value::as_str)
                .unwrap_or(DEFAULT_HASHING_ALGORITHM)
                .to_string(),
            tags,
        })?,
        (_, _, Some(_)) => broker.set_user_tags(name, &tag_refs)?,
        (_, _, None) => {
            return Err(ApiError::bad_request(
                "Either password or password_hash must be given",
            ));
        }
    }
    Ok(Reply::created_unless(existing.is_some()))
}
