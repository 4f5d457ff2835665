//! The open client connections: counted against the broker-wide and
//! per-vhost connection limits, and reachable so that the broker can close
//! them (when their vhost or user is deleted).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::broker::queue::ConnectionId;
use crate::error::{AmqpError, AmqpResult};

/// One open connection, as the registry knows it.
struct Entry {
    user: Arc<str>,
    vhost: Arc<str>,
    /// Set to the reason when the broker closes the connection.
    close: watch::Sender<Option<Arc<str>>>,
}

/// Every open connection.
#[derive(Default)]
pub struct Connections {
    open: Mutex<HashMap<ConnectionId, Entry>>,
    /// Most connections open at once on the whole broker, if limited.
    max: Mutex<Option<u32>>,
}

impl Connections {
    /// Limits how many connections may be open at once (RabbitMQ's
    /// `connection_max`); connections beyond it are refused at connection.open.
    pub fn set_max(&self, max: Option<u32>) {
        *self.max.lock() = max;
    }

    /// Registers a connection of `user` to `vhost` if the broker-wide limit
    /// and then `admit`, given how many connections the vhost has, let it
    /// in. The checks and the registration are one step, so concurrent
    /// connections cannot overshoot a limit together.
    pub fn admit(
        self: &Arc<Self>,
        id: ConnectionId,
        user: &str,
        vhost: &str,
        admit: impl FnOnce(usize) -> AmqpResult<()>,
    ) -> AmqpResult<Registration> {
        let mut open = self.open.lock();
        if let Some(max) = *self.max.lock()
            && open.len() >= max as usize
        {
            // The text of RabbitMQ 3.12 and later; 3.10 left such sockets waiting unaccepted.
            return Err(AmqpError::not_allowed(format!(
                "connection refused: node connection limit ({max}) is reached"
            )));
        }
        admit(open.values().filter(|e| &*e.vhost == vhost).count())?;
        let (close, closed) = watch::channel(None);
        let entry = Entry {
            user: Arc::from(user),
            vhost: Arc::from(vhost),
            close,
        };
        open.insert(id, entry);
        Ok(Registration {
            id,
            connections: self.clone(),
            closed,
        })
    }

    /// How many connections are open.
    pub fn count(&self) -> usize {
        self.open.lock().len()
    }

    /// Asks every connection to `vhost` to close with 320 CONNECTION_FORCED and `reason`.
    pub fn close_in_vhost(&self, vhost: &str, reason: &str) {
        self.close_where(|e| &*e.vhost == vhost, reason);
    }

    /// Asks every connection of `user` to close with 320 CONNECTION_FORCED and `reason`.
    pub fn close_of_user(&self, user: &str, reason: &str) {
        self.close_where(|e| &*e.user == user, reason);
    }

    fn close_where(&self, matches: impl Fn(&Entry) -> bool, reason: &str) {
        let reason: Arc<str> = Arc::from(reason);
        for entry in self.open.lock().values().filter(|e| matches(e)) {
            entry.close.send_replace(Some(reason.clone()));
        }
    }
}

/// A connection's place in the registry, released when it is dropped.
pub struct Registration {
    id: ConnectionId,
    connections: Arc<Connections>,
    closed: watch::Receiver<Option<Arc<str>>>,
}

impl Registration {
    /// The connection's identity.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// Resolves with the reason once the broker asks this connection to close.
    pub async fn closed_by_broker(&mut self) -> Arc<str> {
        let reason = self
            .closed
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|r| r.clone());
        match reason {
            Some(reason) => reason,
            // The registry never drops a sender before its registration.
            None => std::future::pending().await,
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.connections.open.lock().remove(&self.id);
    }
}
