//! The open client connections: counted against the broker-wide and
//! per-vhost connection limits, described for the management API, and
//! reachable so that the broker can close them (when their vhost or user is
//! deleted, or an operator asks).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::broker::queue::ConnectionId;
use crate::error::{AmqpError, AmqpResult};
use crate::protocol::FieldTable;

/// What the handshake learnt about a connection, as the management API shows it.
#[derive(Debug, Clone)]
pub struct ConnectionDetails {
    /// The client's address.
    pub peer: SocketAddr,
    /// The broker's address the client connected to.
    pub local: SocketAddr,
    /// The client's `client-properties` from connection.start-ok.
    pub client_properties: FieldTable,
    /// The SASL mechanism the client logged in with.
    pub auth_mechanism: String,
    /// Negotiated limits.
    pub frame_max: u32,
    /// Negotiated channel limit.
    pub channel_max: u16,
    /// Negotiated heartbeat, seconds.
    pub heartbeat: u16,
}

/// An open connection as the management API lists it.
#[derive(Debug)]
pub struct ConnectionInfo {
    /// The broker's identity for the connection.
    pub id: ConnectionId,
    /// RabbitMQ's connection name: `peer_ip:peer_port -> local_ip:local_port`.
    pub name: String,
    /// The logged-in user.
    pub user: Arc<str>,
    /// The vhost it opened.
    pub vhost: Arc<str>,
    /// What the handshake negotiated.
    pub details: ConnectionDetails,
    /// When it opened, milliseconds since the Unix epoch.
    pub connected_at: u64,
    /// The numbers of its open channels.
    pub channels: Mutex<BTreeSet<u16>>,
    /// Messages it published.
    pub received: AtomicU64,
}

/// One open connection, as the registry knows it.
struct Entry {
    info: Arc<ConnectionInfo>,
    /// Set to the reason when the broker closes the connection.
    close: watch::Sender<Option<Arc<str>>>,
}

/// Every open connection.
#[derive(Default)]
pub struct Connections {
    open: Mutex<HashMap<ConnectionId, Entry>>,
    /// Most connections open at once on the whole broker, if limited.
    max: Mutex<Option<u32>>,
    /// Messages published by every connection since the broker started.
    received: AtomicU64,
}

/// RabbitMQ's name for a connection from `peer` to `local`.
pub fn connection_name(peer: SocketAddr, local: SocketAddr) -> String {
    format!(
        "{}:{} -> {}:{}",
        peer.ip(),
        peer.port(),
        local.ip(),
        local.port()
    )
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
        details: ConnectionDetails,
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
        admit(open.values().filter(|e| &*e.info.vhost == vhost).count())?;
        let (close, closed) = watch::channel(None);
        let connected_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let info = Arc::new(ConnectionInfo {
            id,
            name: connection_name(details.peer, details.local),
            user: Arc::from(user),
            vhost: Arc::from(vhost),
            details,
            connected_at,
            channels: Mutex::default(),
            received: AtomicU64::new(0),
        });
        open.insert(
            id,
            Entry {
                info: info.clone(),
                close,
            },
        );
        Ok(Registration {
            info,
            id,
            connections: self.clone(),
            closed,
        })
    }

    /// How many connections are open.
    pub fn count(&self) -> usize {
        self.open.lock().len()
    }

    /// Every open connection, sorted by name.
    pub fn list(&self) -> Vec<Arc<ConnectionInfo>> {
        let mut all: Vec<Arc<ConnectionInfo>> =
            self.open.lock().values().map(|e| e.info.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Messages published by every connection since the broker started.
    pub fn received_total(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Asks the connection called `name` to close with 320 CONNECTION_FORCED
    /// and `reason`; false if there is none.
    pub fn close_named(&self, name: &str, reason: &str) -> bool {
        let mut found = false;
        self.close_where(
            |e| {
                let matches = e.info.name == name;
                found |= matches;
                matches
            },
            reason,
        );
        found
    }

    /// Asks every connection to `vhost` to close with 320 CONNECTION_FORCED and `reason`.
    pub fn close_in_vhost(&self, vhost: &str, reason: &str) {
        self.close_where(|e| &*e.info.vhost == vhost, reason);
    }

    /// Asks every connection of `user` to close with 320 CONNECTION_FORCED and `reason`.
    pub fn close_of_user(&self, user: &str, reason: &str) {
        self.close_where(|e| &*e.info.user == user, reason);
    }

    fn close_where(&self, mut matches: impl FnMut(&Entry) -> bool, reason: &str) {
        let reason: Arc<str> = Arc::from(reason);
        for entry in self.open.lock().values().filter(|e| matches(e)) {
            entry.close.send_replace(Some(reason.clone()));
        }
    }
}

/// A connection's place in the registry, released when it is dropped.
pub struct Registration {
    id: ConnectionId,
    info: Arc<ConnectionInfo>,
    connections: Arc<Connections>,
    closed: watch::Receiver<Option<Arc<str>>>,
}

impl Registration {
    /// The connection's identity.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// Records the connection's open channels after they changed.
    pub fn set_channels(&self, numbers: impl IntoIterator<Item = u16>) {
        *self.info.channels.lock() = numbers.into_iter().collect();
    }

    /// Counts `n` messages the connection published (once per batch of frames).
    pub fn count_received(&self, n: u64) {
        if n > 0 {
            self.info.received.fetch_add(n, Ordering::Relaxed);
            self.connections.received.fetch_add(n, Ordering::Relaxed);
        }
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
