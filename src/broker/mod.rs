//! The messaging model: vhosts, exchanges and routing, queues and dispatch.
//!
//! Nothing here knows about sockets or frames. Connections reach the model
//! through [`Broker`], get [`AmqpError`](crate::error::AmqpError) values back,
//! and receive deliveries through their [`mailbox::Mailbox`].

pub mod arguments;
pub mod exchange;
pub mod headers;
pub mod mailbox;
pub mod message;
pub mod names;
pub mod queue;
pub mod topic;
pub mod vhost;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::auth::Users;
use crate::broker::queue::ConnectionId;
use crate::broker::vhost::VHost;

/// The whole broker state shared by all connections.
#[derive(Debug)]
pub struct Broker {
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    users: Users,
    next_connection: AtomicU64,
}

impl Broker {
    /// A broker with the default vhost `/` and the given users.
    pub fn new(users: Users) -> Arc<Broker> {
        let mut vhosts = HashMap::new();
        vhosts.insert("/".to_string(), Arc::new(VHost::new("/")));
        Arc::new(Broker {
            vhosts: RwLock::new(vhosts),
            users,
            next_connection: AtomicU64::new(1),
        })
    }

    /// A vhost by name.
    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.read().get(name).cloned()
    }

    /// The user database.
    pub fn users(&self) -> &Users {
        &self.users
    }

    /// A fresh identity for a new connection.
    pub fn next_connection_id(&self) -> ConnectionId {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }
}
