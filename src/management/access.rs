//! Who is calling: HTTP basic authentication against Warren's users, and
//! the user tags RabbitMQ's management API requires.

use std::net::IpAddr;

use base64::Engine;

use crate::broker::Broker;
use crate::management::http::{ApiError, Request};

/// A logged-in API user.
#[derive(Debug, Clone)]
pub struct Caller {
    /// User name.
    pub name: String,
    /// The user's tags.
    pub tags: Vec<String>,
}

impl Caller {
    fn has(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// Administrators may manage users, vhosts, permissions and definitions.
    pub fn is_admin(&self) -> bool {
        self.has("administrator")
    }

    /// Monitoring users (and administrators) see every vhost's objects.
    pub fn is_monitor(&self) -> bool {
        self.is_admin() || self.has("monitoring")
    }

    /// Any of the tags that give access to the management API at all.
    fn is_management_user(&self) -> bool {
        self.is_monitor() || self.has("management") || self.has("policymaker")
    }

    /// RabbitMQ's check for administrator-only resources.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.is_admin() {
            true => Ok(()),
            false => Err(ApiError::not_authorised("Not administrator user")),
        }
    }

    /// RabbitMQ's check for broker-wide monitoring resources.
    pub fn require_monitor(&self) -> Result<(), ApiError> {
        match self.is_monitor() {
            true => Ok(()),
            false => Err(ApiError::not_authorised("Not monitor user")),
        }
    }

    /// RabbitMQ's check for resources of one vhost: administrators, or users
    /// with permissions there (monitors may also read).
    pub fn require_vhost(&self, broker: &Broker, vhost: &str, read: bool) -> Result<(), ApiError> {
        if self.is_admin()
            || (read && self.is_monitor())
            || broker.access_control().may_open(&self.name, vhost)
        {
            return Ok(());
        }
        Err(ApiError::not_authorised(
            "User not authorised to access virtual host",
        ))
    }

    /// Whether the caller may see objects of `vhost` in a broker-wide list.
    pub fn sees_vhost(&self, broker: &Broker, vhost: &str) -> bool {
        self.is_monitor() || broker.access_control().may_open(&self.name, vhost)
    }
}

/// Logs the caller in from the `Authorization: Basic` header.
pub fn authenticate(broker: &Broker, request: &Request, peer: IpAddr) -> Result<Caller, ApiError> {
    let (name, password) = request
        .header("authorization")
        .and_then(basic_credentials)
        .ok_or_else(ApiError::not_authenticated)?;
    broker
        .access_control()
        .authenticate(&name, &password, peer)
        .map_err(|_| ApiError::not_authenticated())?;
    let tags = broker
        .users()
        .into_iter()
        .find(|u| u.name == name)
        .map(|u| u.tags)
        .unwrap_or_default();
    let caller = Caller { name, tags };
    if !caller.is_management_user() {
        return Err(ApiError::not_authorised("Not management user"));
    }
    Ok(caller)
}

/// The user and password of a `Basic` authorization header.
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}
