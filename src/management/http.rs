//! The HTTP side of an API call: the parsed request, the JSON reply, and
//! RabbitMQ's error bodies.

use std::collections::HashMap;

use bytes::Bytes;
use hyper::{HeaderMap, Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::auth::AdminError;
use crate::error::{AmqpError, ReplyCode};

/// An API request, its path split into percent-decoded segments after `/api`.
pub struct Request {
    /// The HTTP method.
    pub method: Method,
    /// Path segments after `/api/`, decoded (`%2F` becomes `/`).
    pub path: Vec<String>,
    /// Query parameters, decoded.
    pub query: HashMap<String, String>,
    /// Request headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Request {
    /// The body as JSON of type `T`, or RabbitMQ's 400 for bad JSON. An empty
    /// body counts as `{}`, as RabbitMQ takes it.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &self.body
        };
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A successful reply.
#[derive(Debug)]
pub enum Reply {
    /// 200 with a JSON body.
    Json(Value),
    /// 201 Created, no body (a PUT or POST that made something new).
    Created,
    /// 204 No Content (a change, or a PUT of what existed).
    NoContent,
    /// Another status with a JSON body (failed health checks).
    Status(StatusCode, Value),
}

impl Reply {
    /// 201 for a PUT that created its object, 204 for one that found it existing.
    pub fn created_unless(existed: bool) -> Reply {
        match existed {
            true => Reply::NoContent,
            false => Reply::Created,
        }
    }
}

/// A failed call, with RabbitMQ's status and JSON body.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The `error` field.
    pub error: &'static str,
    /// The `reason` field.
    pub reason: String,
}

impl ApiError {
    /// 404 for a missing object, in RabbitMQ's words.
    pub fn not_found() -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            error: "Object Not Found",
            reason: "Not Found".into(),
        }
    }

    /// 400 with `reason`.
    pub fn bad_request(reason: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: "bad_request",
            reason: reason.into(),
        }
    }

    /// 401 for credentials that do not log in (RabbitMQ 3.10's reason).
    pub fn not_authenticated() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            error: "not_authorized",
            reason: "Login failed".into(),
        }
    }

    /// 401 for a logged-in user who may not do this (RabbitMQ answers 401, not 403).
    pub fn not_authorised(reason: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            error: "not_authorised",
            reason: reason.into(),
        }
    }

    /// 405 for a method the resource does not have.
    pub fn method_not_allowed() -> ApiError {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            error: "method_not_allowed",
            reason: "Method Not Allowed".into(),
        }
    }

    /// The JSON body RabbitMQ sends with the error.
    pub fn body(&self) -> Value {
        json!({"error": self.error, "reason": self.reason})
    }
}

impl From<AmqpError> for ApiError {
    /// A refused operation in RabbitMQ's HTTP terms: a missing object is
    /// 404, a refused permission 401, anything else 400; the reason is the
    /// AMQP reply text without its `CODE - ` prefix.
    fn from(error: AmqpError) -> ApiError {
        let prefix = format!("{} - ", error.code.name());
        let reason = error
            .text
            .strip_prefix(&prefix)
            .unwrap_or(&error.text)
            .to_string();
        match error.code {
            ReplyCode::NotFound => ApiError::not_found(),
            ReplyCode::AccessRefused => ApiError::not_authorised(reason),
            _ => ApiError::bad_request(reason),
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(error: AdminError) -> ApiError {
        match error {
            AdminError::NoSuchUser(_) | AdminError::NoSuchVHost(_) => ApiError::not_found(),
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

/// What an API handler returns.
pub type ApiResult = Result<Reply, ApiError>;

/// Decodes `%XX` escapes (and `+` in query strings when `plus_is_space`).
pub fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a query string into decoded parameters.
pub fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key, true), percent_decode(value, true))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_vhost_slash_and_leaves_bad_escapes() {
        assert_eq!(percent_decode("%2F", false), "/");
        assert_eq!(percent_decode("a%2fb%20c", false), "a/b c");
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("%zz", false), "%zz");
        assert_eq!(percent_decode("a+b", true), "a b");
        assert_eq!(percent_decode("a+b", false), "a+b");
    }
}
