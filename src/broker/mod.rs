//! The messaging model: vhosts, exchanges and routing, queues and dispatch.
//!
//! Nothing here knows about sockets or frames. Connections reach the model
//! through [`Broker`], get [`AmqpError`](crate::error::AmqpError) values back,
//! and receive deliveries through their [`mailbox::Mailbox`]. Durable
//! definitions and persistent messages go to the [`store`](crate::store).

mod admin;
pub mod alarms;
pub mod arguments;
pub mod connections;
pub mod dead_letter;
pub mod deadline;
pub mod exchange;
pub mod headers;
pub mod mailbox;
pub mod message;
pub mod names;
pub mod queue;
pub mod queue_settings;
pub mod ready;
pub mod topic;
pub mod vhost;

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::RwLock;

use crate::auth::{Access, AccessControl, DefaultUser};
use crate::broker::alarms::Alarms;
use crate::broker::connections::{ConnectionDetails, Connections, Registration};
use crate::broker::message::Message;
use crate::broker::queue::ConnectionId;
use crate::broker::queue::RecoveredMessage;
use crate::broker::vhost::{Durability, VHost};
use crate::error::{AmqpError, AmqpResult};
use crate::store::definitions::DefinitionStore;
use crate::store::record::QueueId;
use crate::store::{Location, Store, SyncPolicy};

/// Marker written by a clean shutdown, listing the stored messages that were
/// delivered before. Without it, the broker stopped uncleanly and every
/// recovered message may have been delivered, so all come back redelivered.
const CLEAN_SHUTDOWN: &str = "clean-shutdown.json";

/// The whole broker state shared by all connections.
pub struct Broker {
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    access: Arc<AccessControl>,
    connections: Arc<Connections>,
    next_connection: AtomicU64,
    durability: Durability,
    store: Arc<Store>,
    alarms: Arc<Alarms>,
    data_dir: PathBuf,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// Opens the broker on its data directory, restoring users, vhosts,
    /// durable definitions and persistent messages. On the first start, as
    /// RabbitMQ does, it creates the vhost `/` and `default_user` with full
    /// permissions there.
    pub fn open(
        data_dir: &Path,
        default_user: &DefaultUser,
        policy: SyncPolicy,
        in_memory_limit: usize,
        disk_free_limit: u64,
        memory_limit: u64,
    ) -> io::Result<Arc<Broker>> {
        let started = Instant::now();
        std::fs::create_dir_all(data_dir)?;
        let saved = Arc::new(DefinitionStore::open(data_dir)?);
        // Files written before users were stored count as a first start too:
        // they knew only `/` and the configured user.
        let first_start = saved.access().0.is_none();
        if first_start {
            saved.add_vhost("/");
        }
        let access = Arc::new(AccessControl::restore(
            saved.clone(),
            first_start.then_some(default_user),
        ));
        let clean = take_clean_shutdown(data_dir);
        let (store, recovered) = Store::open(&data_dir.join("messages"), policy, in_memory_limit)?;
        saved.reserve_queue_ids(recovered.keys().copied().max().unwrap_or(0));
        let mut shared: HashMap<Location, Arc<Message>> = HashMap::new();
        let mut messages: HashMap<QueueId, Vec<RecoveredMessage>> = HashMap::new();
        let mut count = 0usize;
        for (queue, list) in recovered {
            let restored = messages.entry(queue).or_default();
            for item in list {
                let message = item.message.map(|stored| {
                    shared
                        .entry(item.location)
                        .or_insert_with(|| Arc::new(Message::recovered(&stored, item.location)))
                        .clone()
                });
                let redelivered = clean
                    .as_ref()
                    .is_none_or(|set| set.contains(&(queue, item.location)));
                restored.push(RecoveredMessage {
                    location: item.location,
                    message,
                    summary: item.summary,
                    redelivered,
                });
                count += 1;
            }
        }
        let durability = Durability {
            store: store.clone(),
            saved: saved.clone(),
            in_memory_limit,
        };
        let mut vhosts = HashMap::new();
        for (name, definitions) in saved.vhosts() {
            let vhost = VHost::recover(&name, durability.clone(), &definitions, &mut messages);
            vhosts.insert(name, vhost);
        }
        let orphaned: usize = messages.values().map(Vec::len).sum();
        if orphaned > 0 && saved.loaded() {
            // Messages of queues deleted before their acks reached disk.
            tracing::warn!(
                messages = orphaned,
                "stored messages belong to no durable queue and are discarded"
            );
            for (queue, orphans) in messages {
                for orphan in orphans {
                    store.ack(queue, orphan.location);
                }
            }
        } else if orphaned > 0 {
            // Without trustworthy definitions, keep them: restoring the file brings them back.
            tracing::warn!(
                messages = orphaned,
                "stored messages belong to no known queue (definitions missing or damaged); \
                 kept on disk"
            );
        }
        tracing::info!(
            messages = count,
            clean = clean.is_some(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "recovered data directory"
        );
        Ok(Arc::new(Broker {
            vhosts: RwLock::new(vhosts),
            access,
            connections: Arc::default(),
            next_connection: AtomicU64::new(1),
            durability,
            store,
            alarms: Alarms::new(disk_free_limit, memory_limit),
            data_dir: data_dir.to_path_buf(),
        }))
    }

    /// A vhost by name.
    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.read().get(name).cloned()
    }

    /// Users and permissions.
    pub fn access_control(&self) -> &Arc<AccessControl> {
        &self.access
    }

    /// The open client connections.
    pub fn connections(&self) -> &Arc<Connections> {
        &self.connections
    }

    /// Admits a logged-in `user` to `vhost` (connection.open), with
    /// RabbitMQ's checks in its order: the broker-wide connection limit (see
    /// [`Connections::set_max`]), the vhost's existence and connection
    /// limit, then the user's access to it.
    /// The connection counts as open until the registration is dropped.
    pub fn open_connection(
        &self,
        user: &str,
        vhost_name: &str,
        details: ConnectionDetails,
    ) -> AmqpResult<(Arc<VHost>, Access, Registration)> {
        let vhost = self.vhost(vhost_name);
        let id = self.next_connection_id();
        let registration = self
            .connections
            .admit(id, user, vhost_name, details, |in_vhost| {
                let Some(vhost) = &vhost else {
                    return Err(AmqpError::not_allowed(format!(
                        "vhost {vhost_name} not found"
                    )));
                };
                if let Some(max) = vhost.limits().max_connections
                    && in_vhost >= max as usize
                {
                    return Err(AmqpError::not_allowed(format!(
                        "access to vhost '{vhost_name}' refused for user '{user}': \
                     connection limit ({max}) is reached"
                    )));
                }
                if !self.access.may_open(user, vhost_name) {
                    return Err(AmqpError::not_allowed(format!(
                        "access to vhost '{vhost_name}' refused for user '{user}'"
                    )));
                }
                Ok(())
            })?;
        let vhost = vhost.expect("admitted only to an existing vhost");
        let access = Access::new(self.access.clone(), user, vhost_name);
        Ok((vhost, access, registration))
    }

    /// What the message store measured about its writes.
    pub fn store_stats(&self) -> &crate::store::stats::StoreStats {
        self.store.stats()
    }

    /// The resource alarms (publishers are blocked while one is set).
    pub fn alarms(&self) -> &Arc<Alarms> {
        &self.alarms
    }

    /// A fresh identity for a new connection.
    pub fn next_connection_id(&self) -> ConnectionId {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// Clean shutdown, after every connection has closed: flush the store and
    /// record which stored messages had been delivered.
    pub fn shutdown(&self) {
        let redelivered: Vec<(QueueId, Location)> = self
            .vhosts
            .read()
            .values()
            .flat_map(|v| v.redelivered_messages())
            .collect();
        self.store.close();
        let path = self.data_dir.join(CLEAN_SHUTDOWN);
        let written = serde_json::to_vec(&redelivered)
            .map_err(io::Error::other)
            .and_then(|bytes| std::fs::write(&path, bytes));
        if let Err(e) = written {
            tracing::error!(path = %path.display(), error = %e, "cannot record clean shutdown");
        }
    }
}

/// Reads and removes the clean-shutdown marker; `None` after an unclean stop.
fn take_clean_shutdown(data_dir: &Path) -> Option<HashSet<(QueueId, Location)>> {
    let path = data_dir.join(CLEAN_SHUTDOWN);
    let bytes = std::fs::read(&path).ok()?;
    // The marker must be gone for good before anything is delivered, or a
    // later crash would be mistaken for a clean stop.
    let removed =
        std::fs::remove_file(&path).and_then(|()| std::fs::File::open(data_dir)?.sync_all());
    if let Err(e) = removed {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove clean-shutdown marker");
    }
    let list: Vec<(QueueId, Location)> = serde_json::from_slice(&bytes).ok()?;
    Some(list.into_iter().collect())
}
