//! A queue: its ready messages, its consumers, and dispatch between them.
//!
//! All of a queue's mutable state sits behind one lock, taken by whichever task
//! publishes to, consumes from or settles messages of the queue. Dispatch runs
//! inside that lock: it hands ready messages round-robin to consumers that have
//! prefetch credit and whose connection is not congested.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::broker::mailbox::{Credit, Mailbox};
use crate::broker::message::{Message, QueuedMessage};
use crate::broker::ready::ReadyList;
use crate::error::{AmqpError, AmqpResult};
use crate::protocol::FieldTable;
use crate::store::record::QueueId;
use crate::store::{Location, Store};

/// Ready messages in a consumed queue past which its publishers are paused:
/// a queue growing faster than its consumers drain it slows its publishers
/// down (TCP backpressure) instead of filling memory.
const FLOW_HIGH: usize = 8192;
/// Ready messages below which paused publishers are woken.
const FLOW_LOW: usize = FLOW_HIGH / 2;

/// The identity of a connection, for exclusive queues and consumers.
pub type ConnectionId = u64;

/// Declared properties of a queue, fixed at creation.
#[derive(Clone)]
pub struct QueueConfig {
    /// Queue name.
    pub name: Arc<str>,
    /// Vhost name, for error texts.
    pub vhost: Arc<str>,
    /// Survives a broker restart.
    pub durable: bool,
    /// The owning connection of an exclusive queue.
    pub exclusive_owner: Option<ConnectionId>,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// Declared arguments (`x-…`).
    pub arguments: FieldTable,
    /// The store keeping this durable queue's persistent messages.
    pub persistence: Option<Persistence>,
}

/// A durable queue's link to the message store.
#[derive(Clone)]
pub struct Persistence {
    /// The queue's identity in the store.
    pub id: QueueId,
    /// The store.
    pub store: Arc<Store>,
    /// Ready messages whose bodies stay in memory; past it they are paged out.
    pub in_memory_limit: usize,
}

/// A consumer attached to a queue.
#[derive(Debug, Clone)]
pub struct Consumer {
    /// Consumer tag, unique per channel.
    pub tag: Arc<str>,
    /// Channel the consumer lives on.
    pub channel: u16,
    /// Connection the consumer lives on.
    pub connection: ConnectionId,
    /// Where deliveries go.
    pub mailbox: Arc<Mailbox>,
    /// Prefetch accounting.
    pub credit: Arc<Credit>,
    /// Deliveries are settled on sending.
    pub no_ack: bool,
    /// No other consumer may attach while this one is here.
    pub exclusive: bool,
}

/// A message queue.
pub struct Queue {
    /// The queue's declared properties.
    pub config: QueueConfig,
    state: Mutex<QueueState>,
    drained: tokio::sync::Notify,
}

#[derive(Debug)]
struct QueueState {
    ready: ReadyList,
    next_seq: u64,
    consumers: Vec<Consumer>,
    next_consumer: usize,
    deleted: bool,
}

impl QueueState {
    /// Drops expired messages from the head, where RabbitMQ expires them.
    fn drop_expired_head(&mut self, persistence: Option<&Persistence>) {
        let dropped = self.ready.drop_expired_head(std::time::Instant::now());
        forget_all(persistence, dropped);
    }
}

/// Tells the store a message has left a durable queue for good.
fn forget(persistence: Option<&Persistence>, message: &QueuedMessage) {
    forget_all(persistence, message.message.stored);
}

/// Tells the store that messages at these locations left a durable queue for good.
fn forget_all(persistence: Option<&Persistence>, locations: impl IntoIterator<Item = Location>) {
    if let Some(persistence) = persistence {
        for location in locations {
            persistence.store.ack(persistence.id, location);
        }
    }
}

/// What a consumer removal left behind.
#[derive(Debug, PartialEq, Eq)]
pub enum ConsumerRemoval {
    /// There was no such consumer.
    NotFound,
    /// The consumer is gone; the queue lives on.
    Removed,
    /// The consumer is gone and the auto-delete queue has none left: delete it.
    RemovedLastOfAutoDelete,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

impl Queue {
    /// A new empty queue.
    pub fn new(config: QueueConfig) -> Arc<Queue> {
        let in_memory_limit = config
            .persistence
            .as_ref()
            .map_or(usize::MAX, |p| p.in_memory_limit);
        let state = QueueState {
            ready: ReadyList::new(in_memory_limit),
            next_seq: 0,
            consumers: Vec::new(),
            next_consumer: 0,
            deleted: false,
        };
        Arc::new(Queue {
            config,
            state: Mutex::new(state),
            drained: tokio::sync::Notify::new(),
        })
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Ready messages (not counting those delivered and unacknowledged).
    pub fn message_count(&self) -> u32 {
        let mut state = self.state.lock();
        state.drop_expired_head(self.config.persistence.as_ref());
        state.ready.len() as u32
    }

    /// Attached consumers.
    pub fn consumer_count(&self) -> u32 {
        self.state.lock().consumers.len() as u32
    }

    /// Whether the queue has consumers.
    pub fn in_use(&self) -> bool {
        !self.state.lock().consumers.is_empty()
    }

    /// The exclusivity check RabbitMQ applies to every use of an exclusive queue.
    pub fn check_access(&self, connection: ConnectionId) -> AmqpResult<()> {
        match self.config.exclusive_owner {
            Some(owner) if owner != connection => Err(self.locked()),
            _ => Ok(()),
        }
    }

    /// RabbitMQ's 405 for a queue another connection holds exclusively.
    pub fn locked(&self) -> AmqpError {
        AmqpError::resource_locked(format!(
            "cannot obtain exclusive access to locked queue '{}' in vhost '{}'. It could be \
             originally declared on another connection or the exclusive property value does \
             not match that of the original declaration.",
            self.config.name, self.config.vhost
        ))
    }

    /// Appends a message and dispatches. Returns true when the queue has
    /// consumers but is growing past the flow limit: the publisher should pause.
    pub fn publish(self: &Arc<Self>, message: Arc<Message>) -> bool {
        let mut state = self.state.lock();
        if state.deleted {
            return false;
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.ready.push_back(seq, message, false);
        self.dispatch_locked(&mut state);
        // A message whose TTL ran out while it waited (expiration "0" included)
        // is dropped rather than kept for a later consumer.
        state.drop_expired_head(self.config.persistence.as_ref());
        state.ready.len() >= FLOW_HIGH && !state.consumers.is_empty()
    }

    /// Resolves once the queue drains below its flow limit (or is purged or deleted).
    pub async fn drained(&self) {
        self.drained.notified().await;
    }

    /// Wakes paused publishers when the queue has drained far enough.
    fn note_drained(&self, ready: usize) {
        if ready == FLOW_LOW {
            self.drained.notify_waiters();
        }
    }

    /// Takes the head message for `basic.get`, with the count left behind.
    /// With `no_ack` the message is settled as it leaves.
    pub fn get(&self, no_ack: bool) -> Option<(QueuedMessage, u32)> {
        let mut state = self.state.lock();
        state.drop_expired_head(self.config.persistence.as_ref());
        let message = state.ready.pop_front(self.config.persistence.as_ref())?;
        self.note_drained(state.ready.len());
        if no_ack {
            forget(self.config.persistence.as_ref(), &message);
        }
        Some((message, state.ready.len() as u32))
    }

    /// Settles delivered messages for good (acked, or rejected without requeue).
    pub fn settle<'m>(&self, messages: impl IntoIterator<Item = &'m QueuedMessage>) {
        for message in messages {
            forget(self.config.persistence.as_ref(), message);
        }
    }

    /// Where the store keeps the ready messages that were delivered before.
    pub fn redelivered_locations(&self) -> Vec<Location> {
        self.state.lock().ready.redelivered_locations()
    }

    /// Fills a recovered queue with its messages, in order; `None` is a message left on disk.
    pub fn restore(
        &self,
        messages: impl IntoIterator<Item = (Location, Option<Arc<Message>>, bool)>,
    ) {
        let mut state = self.state.lock();
        for (location, message, redelivered) in messages {
            let seq = state.next_seq;
            state.next_seq += 1;
            match message {
                Some(message) => state.ready.push_back(seq, message, redelivered),
                None => state.ready.push_paged(seq, location, redelivered),
            }
        }
    }

    /// Puts delivered messages back at their original places, marked redelivered.
    pub fn requeue(self: &Arc<Self>, messages: impl IntoIterator<Item = QueuedMessage>) {
        let mut state = self.state.lock();
        for mut message in messages {
            if state.deleted {
                forget(self.config.persistence.as_ref(), &message);
                continue;
            }
            message.redelivered = true;
            state.ready.insert_in_order(message);
        }
        self.dispatch_locked(&mut state);
    }

    /// Attaches a consumer, enforcing exclusive consumption.
    pub fn add_consumer(self: &Arc<Self>, consumer: Consumer) -> AmqpResult<()> {
        let mut state = self.state.lock();
        if state.consumers.iter().any(|c| c.exclusive)
            || (consumer.exclusive && !state.consumers.is_empty())
        {
            return Err(AmqpError::access_refused(format!(
                "queue '{}' in vhost '{}' in exclusive use",
                self.config.name, self.config.vhost
            )));
        }
        state.consumers.push(consumer);
        self.dispatch_locked(&mut state);
        Ok(())
    }

    /// Detaches a consumer.
    pub fn remove_consumer(
        &self,
        connection: ConnectionId,
        channel: u16,
        tag: &str,
    ) -> ConsumerRemoval {
        let mut state = self.state.lock();
        let before = state.consumers.len();
        state
            .consumers
            .retain(|c| !(c.connection == connection && c.channel == channel && &*c.tag == tag));
        if state.consumers.len() == before {
            ConsumerRemoval::NotFound
        } else if state.consumers.is_empty() && self.config.auto_delete && !state.deleted {
            ConsumerRemoval::RemovedLastOfAutoDelete
        } else {
            ConsumerRemoval::Removed
        }
    }

    /// Drops every ready message; returns how many.
    pub fn purge(&self) -> u32 {
        let mut state = self.state.lock();
        let count = state.ready.len() as u32;
        let removed = state.ready.clear();
        forget_all(self.config.persistence.as_ref(), removed);
        self.drained.notify_waiters();
        count
    }

    /// Marks the queue deleted, tells its consumers, and returns its ready count.
    pub fn delete(&self) -> u32 {
        let mut state = self.state.lock();
        state.deleted = true;
        let count = state.ready.len() as u32;
        let removed = state.ready.clear();
        forget_all(self.config.persistence.as_ref(), removed);
        self.drained.notify_waiters();
        for consumer in state.consumers.drain(..) {
            consumer.mailbox.cancel(consumer.channel, consumer.tag);
        }
        count
    }

    /// Hands ready messages to consumers that can take them.
    pub fn dispatch(self: &Arc<Self>) {
        let mut state = self.state.lock();
        state.drop_expired_head(self.config.persistence.as_ref());
        self.dispatch_locked(&mut state);
    }

    fn dispatch_locked(self: &Arc<Self>, state: &mut QueueState) {
        while !state.ready.is_empty() {
            let Some(index) = self.next_consumer_with_room(state) else {
                return;
            };
            let consumer = &state.consumers[index];
            let Some(message) = state.ready.pop_front(self.config.persistence.as_ref()) else {
                consumer.credit.release(u32::from(!consumer.no_ack));
                if !state.ready.is_empty() {
                    // The head could not be read back for now (e.g. out of file
                    // descriptors); nothing else will wake this queue, so retry soon.
                    self.retry_dispatch_later();
                }
                return;
            };
            self.note_drained(state.ready.len());
            let credit = (!consumer.no_ack).then(|| consumer.credit.clone());
            // A no-ack delivery is settled once it is handed over.
            let settled_on_send = consumer.no_ack.then(|| message.clone());
            let delivered = consumer.mailbox.deliver(
                consumer.channel,
                consumer.tag.clone(),
                self.clone(),
                message,
                credit,
            );
            match delivered {
                Ok(()) => {
                    if let Some(message) = settled_on_send {
                        forget(self.config.persistence.as_ref(), &message);
                    }
                    state.next_consumer = index + 1;
                }
                Err(message) => {
                    // The connection is closing and will detach the consumer.
                    if !consumer.no_ack {
                        consumer.credit.release(1);
                    }
                    state.ready.insert_in_order(message);
                    return;
                }
            }
        }
    }

    /// Dispatches again shortly, from a timer task.
    fn retry_dispatch_later(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let queue = self.clone();
        runtime.spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            queue.dispatch();
        });
    }

    /// The next consumer in round-robin order that may receive a message now.
    fn next_consumer_with_room(self: &Arc<Self>, state: &QueueState) -> Option<usize> {
        let count = state.consumers.len();
        (0..count)
            .map(|i| (state.next_consumer + i) % count)
            .find(|&index| {
                let consumer = &state.consumers[index];
                if consumer.mailbox.park_if_congested(self) {
                    return false;
                }
                consumer.no_ack || consumer.credit.try_acquire()
            })
    }
}
