//! Users and authentication.
//!
//! Warren starts with one configured user (guest/guest by default) who may use
//! every vhost. As in RabbitMQ, `guest` may only log in from loopback.

use std::collections::HashMap;
use std::net::IpAddr;

/// A user that may log in.
#[derive(Debug, Clone)]
pub struct User {
    /// Login name.
    pub name: String,
    password: String,
}

/// The user database.
#[derive(Debug, Default)]
pub struct Users {
    users: HashMap<String, User>,
}

/// Why a login failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginError {
    /// Unknown user or wrong password.
    BadCredentials,
    /// The user may only connect from loopback.
    LoopbackOnly,
}

impl Users {
    /// A database holding one user.
    pub fn with_user(name: &str, password: &str) -> Users {
        let mut users = HashMap::new();
        users.insert(
            name.to_string(),
            User {
                name: name.to_string(),
                password: password.to_string(),
            },
        );
        Users { users }
    }

    /// Checks credentials presented from `peer`.
    pub fn authenticate(
        &self,
        name: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<User, LoginError> {
        let user = self
            .users
            .get(name)
            .filter(|u| constant_time_eq(u.password.as_bytes(), password.as_bytes()))
            .ok_or(LoginError::BadCredentials)?;
        if user.name == "guest" && !peer.is_loopback() {
            return Err(LoginError::LoopbackOnly);
        }
        Ok(user.clone())
    }
}

/// Compares without leaking through timing where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
