//! A queue: its ready messages, its consumers, and dispatch between them.
//!
//! All of a queue's mutable state sits behind one lock, taken by whichever task
//! publishes to, consumes from or settles messages of the queue. Dispatch runs
//! inside that lock: it hands ready messages to consumers that have prefetch
//! credit and whose connection is not congested — the highest consumer
//! priority first, round-robin among equals, or only the first consumer of a
//! single-active-consumer queue.
//!
//! Messages that die in the queue (expired, dropped by a length limit,
//! rejected, or past a delivery limit) are collected under the lock and
//! republished to the dead-letter exchange after it is released, so that
//! queues dead-lettering into each other never hold two queue locks at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};

use crate::broker::dead_letter::{DeadLetter, Reason};
use crate::broker::deadline::{Deadline, earliest};
use crate::broker::mailbox::{Credit, Mailbox};
use crate::broker::message::{Message, QueuedMessage};
use crate::broker::queue_settings::{Overflow, QueueKind, QueueSettings};
use crate::broker::ready::{Entry, Held, ReadyList, Slot};
use crate::broker::vhost::VHost;
use crate::error::{AmqpError, AmqpResult};
use crate::protocol::{AMQPValue, FieldTable, properties};
use crate::store::record::QueueId;
use crate::store::{Location, Store, Summary};

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
    /// The arguments, validated.
    pub settings: QueueSettings,
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

impl Persistence {
    /// Reads a paged-out message back from the store.
    pub fn read(&self, location: Location) -> std::io::Result<Arc<Message>> {
        let stored = self.store.read(location)?;
        Ok(Arc::new(Message::recovered(&stored, location)))
    }
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
    /// `x-priority`: consumers of higher priority are served first.
    pub priority: i64,
}

/// What became of a message published to a queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// Taken.
    Accepted,
    /// Taken, but the queue has consumers and is growing past its flow
    /// limit: the publisher should pause.
    Crowded,
    /// Refused by the queue's length limit (`x-overflow` reject-publish).
    Rejected,
}

/// A message queue.
pub struct Queue {
    /// The queue's declared properties.
    pub config: QueueConfig,
    /// The vhost, for dead lettering and for deleting an expired queue.
    vhost: Weak<VHost>,
    state: Mutex<QueueState>,
    drained: tokio::sync::Notify,
    /// Deliveries acknowledged, and deliveries settled in any way; counted
    /// per batch of settlements, outside the lock that acks never take.
    acked: AtomicU64,
    settled: AtomicU64,
}

/// Message counters of a queue since it was created, kept under its lock
/// (so counting costs no more than the work it counts).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MessageCounters {
    /// Messages the queue took.
    pub published: u64,
    /// Deliveries to consumers and `basic.get` answers.
    pub delivered: u64,
    /// Deliveries acknowledged.
    pub acked: u64,
}

impl std::ops::AddAssign for MessageCounters {
    fn add_assign(&mut self, other: MessageCounters) {
        self.published += other.published;
        self.delivered += other.delivered;
        self.acked += other.acked;
    }
}

/// What the management API shows of a queue at one moment.
#[derive(Debug, Clone, Copy)]
pub struct QueueStats {
    /// Messages waiting for a consumer.
    pub ready: u64,
    /// Messages delivered and not yet settled.
    pub unacked: u64,
    /// Bytes of the ready messages' bodies.
    pub ready_bytes: u64,
    /// Attached consumers.
    pub consumers: u32,
    /// Counters since the queue was created.
    pub counters: MessageCounters,
}

#[derive(Debug)]
struct QueueState {
    ready: ReadyList,
    next_seq: u64,
    consumers: Vec<Consumer>,
    next_consumer: usize,
    deleted: bool,
    /// Dead messages to republish once the lock is released.
    dead_letters: Vec<DeadLetter>,
    /// When the pending expiry timer fires, if one is pending.
    expiry_timer: Option<Deadline>,
    /// Last time the queue was used, for `x-expires`.
    last_used: Instant,
    /// An `x-expires` watcher task is running.
    expires_watcher: bool,
    /// Messages the queue took, and deliveries it made.
    published: u64,
    delivered: u64,
    /// Deliveries that await a settlement, and those put back in the
    /// queue; what awaits one now is the difference less `Queue::settled`.
    awaiting_settlement: u64,
    returned: u64,
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

/// A message a durable queue recovered at start-up.
#[derive(Debug)]
pub struct RecoveredMessage {
    /// Where it is stored.
    pub location: Location,
    /// The message, when its body is kept in memory.
    pub message: Option<Arc<Message>>,
    /// What the queue must know of it even when its body stays on disk.
    pub summary: Summary,
    /// Whether it had been delivered before.
    pub redelivered: bool,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

/// The guard of a queue's state; dead letters collected under it are
/// republished when it is dropped.
struct Locked<'q> {
    queue: &'q Arc<Queue>,
    state: Option<MutexGuard<'q, QueueState>>,
}

impl std::ops::Deref for Locked<'_> {
    type Target = QueueState;
    fn deref(&self) -> &QueueState {
        self.state.as_ref().expect("held until drop")
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut QueueState {
        self.state.as_mut().expect("held until drop")
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let Some(mut state) = self.state.take() else {
            return;
        };
        self.queue.schedule_expiry(&mut state);
        let letters = std::mem::take(&mut state.dead_letters);
        drop(state);
        if !letters.is_empty() {
            self.queue.republish(letters);
        }
    }
}

impl Queue {
    /// A new empty queue of `vhost`.
    pub fn new(config: QueueConfig, vhost: Weak<VHost>) -> Arc<Queue> {
        let in_memory_limit = config
            .persistence
            .as_ref()
            .map_or(usize::MAX, |p| p.in_memory_limit);
        let max_priority = config.settings.max_priority.unwrap_or(0);
        let state = QueueState {
            ready: ReadyList::new(max_priority, in_memory_limit),
            next_seq: 0,
            consumers: Vec::new(),
            next_consumer: 0,
            deleted: false,
            dead_letters: Vec::new(),
            expiry_timer: None,
            last_used: Instant::now(),
            expires_watcher: false,
            published: 0,
            delivered: 0,
            awaiting_settlement: 0,
            returned: 0,
        };
        let queue = Arc::new(Queue {
            config,
            vhost,
            state: Mutex::new(state),
            drained: tokio::sync::Notify::new(),
            acked: AtomicU64::new(0),
            settled: AtomicU64::new(0),
        });
        queue.watch_expires(&mut queue.state.lock());
        queue
    }

    fn lock<'q>(self: &'q Arc<Self>) -> Locked<'q> {
        Locked {
            queue: self,
            state: Some(self.state.lock()),
        }
    }

    fn persistence(&self) -> Option<&Persistence> {
        self.config.persistence.as_ref()
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Ready messages (not counting those delivered and unacknowledged, nor expired ones).
    ///
    /// Counting never removes anything, so it is safe under the vhost's lock;
    /// expired messages leave through the expiry timer.
    pub fn message_count(&self) -> u32 {
        let state = self.state.lock();
        state.ready.unexpired_len(Deadline::now()) as u32
    }

    /// Attached consumers.
    pub fn consumer_count(&self) -> u32 {
        self.state.lock().consumers.len() as u32
    }

    /// Message counts and counters, for the management API.
    pub fn stats(&self) -> QueueStats {
        let state = self.state.lock();
        QueueStats {
            ready: state.ready.unexpired_len(Deadline::now()) as u64,
            unacked: state
                .awaiting_settlement
                .saturating_sub(state.returned)
                .saturating_sub(self.settled.load(Ordering::Relaxed)),
            ready_bytes: state.ready.body_bytes(),
            consumers: state.consumers.len() as u32,
            counters: MessageCounters {
                published: state.published,
                delivered: state.delivered,
                acked: self.acked.load(Ordering::Relaxed),
            },
        }
    }

    /// The attached consumers, in attachment order.
    pub fn consumers(&self) -> Vec<Consumer> {
        self.state.lock().consumers.clone()
    }

    /// Whether the queue has consumers.
    pub fn in_use(&self) -> bool {
        !self.state.lock().consumers.is_empty()
    }

    /// Records a use that keeps an `x-expires` queue alive (a redeclaration).
    pub fn touch(&self) {
        self.state.lock().last_used = Instant::now();
    }

    /// The exclusivity check RabbitMQ applies to every use of an exclusive queue.
    pub fn check_access(&self, connection: ConnectionId) -> AmqpResult<()> {
        match self.config.exclusive_owner {
            Some(owner) if owner != connection => Err(self.locked()),
            _ => Ok(()),
        }
    }

    /// `queue 'name' in vhost 'vhost'`, as error texts name it.
    pub fn describe(&self) -> String {
        format!(
            "queue '{}' in vhost '{}'",
            self.config.name, self.config.vhost
        )
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

    /// The queue-local facts of a message arriving now.
    fn entry_for(&self, state: &mut QueueState, message: &Message) -> Entry {
        let seq = state.next_seq;
        state.next_seq += 1;
        let queue_expiry = self.config.settings.message_ttl.map(Deadline::after);
        let priority = properties::priority(&message.properties).unwrap_or(0);
        Entry {
            seq,
            expires_at: earliest(message.expires_at, queue_expiry),
            body_len: message.body.len() as u32,
            priority: state.ready.level_of(priority),
            redelivered: false,
            returns: 0,
        }
    }

    /// Appends a message and dispatches.
    pub fn publish(self: &Arc<Self>, message: Arc<Message>) -> Enqueued {
        let mut state = self.lock();
        if state.deleted {
            return Enqueued::Accepted;
        }
        let settings = &self.config.settings;
        if settings.overflow != Overflow::DropHead && settings.has_length_limit() {
            self.expire_head(&mut state);
            if self.would_overflow(&state, message.body.len()) {
                if settings.overflow == Overflow::RejectPublishDlx {
                    self.kill(&mut state, message, Reason::Maxlen);
                } else {
                    self.forget(message.stored);
                }
                return Enqueued::Rejected;
            }
        }
        let entry = self.entry_for(&mut state, &message);
        state.ready.push_back(entry, message);
        state.published += 1;
        self.dispatch_locked(&mut state);
        self.drop_over_limit(&mut state);
        // A message whose TTL ran out while it waited (a TTL of 0 included)
        // dies rather than waiting for a later consumer.
        self.expire_head(&mut state);
        if state.ready.len() >= FLOW_HIGH && !state.consumers.is_empty() {
            Enqueued::Crowded
        } else {
            Enqueued::Accepted
        }
    }

    fn would_overflow(&self, state: &QueueState, body_len: usize) -> bool {
        let settings = &self.config.settings;
        settings
            .max_length
            .is_some_and(|max| state.ready.len() as u64 >= max)
            || settings
                .max_length_bytes
                .is_some_and(|max| state.ready.body_bytes() + body_len as u64 > max)
    }

    /// `x-overflow` drop-head: the oldest messages die until the queue fits its limits.
    fn drop_over_limit(&self, state: &mut QueueState) {
        let settings = &self.config.settings;
        if settings.overflow != Overflow::DropHead {
            return;
        }
        let over = |state: &QueueState| {
            settings
                .max_length
                .is_some_and(|max| state.ready.len() as u64 > max)
                || settings
                    .max_length_bytes
                    .is_some_and(|max| state.ready.body_bytes() > max)
        };
        let before = state.ready.len();
        while over(state) {
            let Some(slot) = state.ready.pop_slot() else {
                break;
            };
            self.kill_slot(state, slot, Reason::Maxlen);
        }
        self.note_drained_from(before, state.ready.len());
    }

    /// Expired messages at the head die.
    fn expire_head(&self, state: &mut QueueState) {
        let before = state.ready.len();
        for slot in state.ready.take_expired(Deadline::now()) {
            self.kill_slot(state, slot, Reason::Expired);
        }
        self.note_drained_from(before, state.ready.len());
    }

    /// A ready message dies: it is dead-lettered if the queue has a
    /// dead-letter exchange (its body read back if paged out), or dropped.
    fn kill_slot(&self, state: &mut QueueState, slot: Slot, reason: Reason) {
        let message = match slot.held {
            Held::Loaded(message) => message,
            Held::Paged(location) => {
                let readable = self
                    .config
                    .settings
                    .dead_letter
                    .as_ref()
                    .and(self.persistence())
                    .and_then(|p| p.read(location).ok());
                match readable {
                    Some(message) => message,
                    None => return self.forget(Some(location)),
                }
            }
        };
        self.kill(state, message, reason);
    }

    /// A message leaves the queue for good: to the dead-letter exchange
    /// (after the lock is released) or nowhere.
    fn kill(&self, state: &mut QueueState, message: Arc<Message>, reason: Reason) {
        if self.config.settings.dead_letter.is_some() {
            state.dead_letters.push(DeadLetter { message, reason });
        } else {
            self.forget(message.stored);
        }
    }

    /// Tells the store that a message at `location` left this queue for good.
    fn forget(&self, location: Option<Location>) {
        if let (Some(persistence), Some(location)) = (self.persistence(), location) {
            persistence.store.ack(persistence.id, location);
        }
    }

    /// Republishes dead messages to the dead-letter exchange, then lets the store forget them here.
    fn republish(self: &Arc<Self>, letters: Vec<DeadLetter>) {
        let target = self.config.settings.dead_letter.as_ref();
        if let (Some(vhost), Some(target)) = (self.vhost.upgrade(), target) {
            for letter in &letters {
                vhost.dead_letter(&self.config.name, target, &letter.message, letter.reason);
            }
        }
        for letter in letters {
            self.forget(letter.message.stored);
        }
    }

    /// Resolves once the queue drains below its flow limit (or is purged or deleted).
    pub async fn drained(&self) {
        self.drained.notified().await;
    }

    /// Wakes paused publishers when one removal took the queue down to its low flow mark.
    fn note_drained(&self, ready: usize) {
        self.note_drained_from(ready + 1, ready);
    }

    /// Wakes paused publishers when removals took the queue from `before` to
    /// `after` ready messages across its low flow mark.
    fn note_drained_from(&self, before: usize, after: usize) {
        if before > FLOW_LOW && after <= FLOW_LOW {
            self.drained.notify_waiters();
        }
    }

    /// Takes the head message for `basic.get`, with the count left behind.
    /// With `no_ack` the message is settled as it leaves.
    pub fn get(self: &Arc<Self>, no_ack: bool) -> Option<(QueuedMessage, u32)> {
        let mut state = self.lock();
        state.last_used = Instant::now();
        self.expire_head(&mut state);
        let message = state.ready.pop_front(self.persistence())?;
        self.note_drained(state.ready.len());
        state.delivered += 1;
        if no_ack {
            self.forget(message.message.stored);
        } else {
            state.awaiting_settlement += 1;
        }
        // The count reported leaves out what has expired at the new head.
        self.expire_head(&mut state);
        let left = state.ready.len() as u32;
        Some((self.with_delivery_count(message), left))
    }

    /// Settles delivered messages for good: acked, or rejected without requeue
    /// (which dead-letters them as `rejected`).
    pub fn settle(self: &Arc<Self>, messages: &[QueuedMessage], rejected: bool) {
        let settled = messages.len() as u64;
        self.settled.fetch_add(settled, Ordering::Relaxed);
        if !rejected {
            self.acked.fetch_add(settled, Ordering::Relaxed);
        }
        if !rejected || self.config.settings.dead_letter.is_none() {
            for message in messages {
                self.forget(message.message.stored);
            }
            return;
        }
        let mut state = self.lock();
        for message in messages {
            self.kill(&mut state, message.message.clone(), Reason::Rejected);
        }
    }

    /// Where the store keeps the ready messages that were delivered before.
    pub fn redelivered_locations(&self) -> Vec<Location> {
        self.state.lock().ready.redelivered_locations()
    }

    /// Fills a recovered queue with its messages, in order.
    ///
    /// The store keeps each message's own expiry, not when it entered the
    /// queue, so a queue TTL starts again from the restart: a message may
    /// live longer than its TTL across a restart, never shorter.
    pub fn restore(self: &Arc<Self>, messages: impl IntoIterator<Item = RecoveredMessage>) {
        let mut state = self.lock();
        let queue_expiry = self.config.settings.message_ttl.map(Deadline::after);
        for recovered in messages {
            let seq = state.next_seq;
            state.next_seq += 1;
            let summary = recovered.summary;
            let entry = Entry {
                seq,
                expires_at: earliest(Deadline::of_unix_ms(summary.expires_at_ms), queue_expiry),
                body_len: summary.body_len,
                priority: state.ready.level_of(summary.priority),
                redelivered: recovered.redelivered,
                returns: 0,
            };
            match recovered.message {
                Some(message) => state.ready.push_back(entry, message),
                None => state.ready.push_paged(entry, recovered.location),
            }
        }
    }

    /// Puts delivered messages back at their original places, marked
    /// redelivered; past a quorum queue's delivery limit they die instead.
    pub fn requeue(self: &Arc<Self>, messages: impl IntoIterator<Item = QueuedMessage>) {
        let mut state = self.lock();
        self.requeue_locked(&mut state, messages);
        self.dispatch_locked(&mut state);
    }

    fn requeue_locked(
        self: &Arc<Self>,
        state: &mut QueueState,
        messages: impl IntoIterator<Item = QueuedMessage>,
    ) {
        let limit = self.config.settings.delivery_limit;
        for mut message in messages {
            state.returned += 1;
            if state.deleted {
                self.forget(message.message.stored);
                continue;
            }
            message.entry.redelivered = true;
            message.entry.returns += 1;
            if limit.is_some_and(|limit| u64::from(message.entry.returns) > limit) {
                self.kill(state, message.message, Reason::DeliveryLimit);
                continue;
            }
            state.ready.insert_in_order(message);
        }
        // A full drop-head queue drops what is now at its head, requeued or not.
        self.drop_over_limit(state);
    }

    /// Attaches a consumer, enforcing exclusive consumption.
    pub fn add_consumer(self: &Arc<Self>, consumer: Consumer) -> AmqpResult<()> {
        let mut state = self.lock();
        // A single-active-consumer queue refuses exclusive consumers outright, as RabbitMQ does.
        if state.consumers.iter().any(|c| c.exclusive)
            || (consumer.exclusive
                && (!state.consumers.is_empty() || self.config.settings.single_active_consumer))
        {
            return Err(AmqpError::access_refused(format!(
                "queue '{}' in vhost '{}' in exclusive use",
                self.config.name, self.config.vhost
            )));
        }
        state.consumers.push(consumer);
        state.last_used = Instant::now();
        self.dispatch_locked(&mut state);
        Ok(())
    }

    /// Detaches a consumer, putting back `returned` deliveries (of a closing
    /// channel) in the same step, so that a successor sees them first.
    pub fn remove_consumer(
        self: &Arc<Self>,
        connection: ConnectionId,
        channel: u16,
        tag: &str,
        returned: Vec<QueuedMessage>,
    ) -> ConsumerRemoval {
        let mut state = self.lock();
        let returned_any = !returned.is_empty();
        self.requeue_locked(&mut state, returned);
        let before = state.consumers.len();
        state
            .consumers
            .retain(|c| !(c.connection == connection && c.channel == channel && &*c.tag == tag));
        if state.consumers.len() == before {
            return ConsumerRemoval::NotFound;
        }
        state.last_used = Instant::now();
        if state.consumers.is_empty() && self.config.auto_delete && !state.deleted {
            return ConsumerRemoval::RemovedLastOfAutoDelete;
        }
        // As in RabbitMQ, a cancel alone does not dispatch: a single active
        // consumer's successor starts with the next queue event, so that a
        // client cancelling before it closes its channel (pika does) still
        // sees the returned deliveries first.
        if state.consumers.is_empty() {
            self.watch_expires(&mut state);
        } else if returned_any {
            self.dispatch_locked(&mut state);
        }
        ConsumerRemoval::Removed
    }

    /// Drops every ready message; returns how many.
    pub fn purge(&self) -> u32 {
        let mut state = self.state.lock();
        let count = state.ready.len() as u32;
        for slot in state.ready.clear() {
            self.forget(slot.location());
        }
        self.drained.notify_waiters();
        count
    }

    /// Marks the queue deleted, tells its consumers, and returns its ready count.
    pub fn delete(&self) -> u32 {
        let mut state = self.state.lock();
        state.deleted = true;
        let count = state.ready.len() as u32;
        for slot in state.ready.clear() {
            self.forget(slot.location());
        }
        self.drained.notify_waiters();
        for consumer in state.consumers.drain(..) {
            consumer.mailbox.cancel(consumer.channel, consumer.tag);
        }
        count
    }

    /// Hands ready messages to consumers that can take them.
    pub fn dispatch(self: &Arc<Self>) {
        let mut state = self.lock();
        self.expire_head(&mut state);
        self.dispatch_locked(&mut state);
    }

    fn dispatch_locked(self: &Arc<Self>, state: &mut QueueState) {
        while !state.ready.is_empty() {
            let Some(index) = self.next_consumer_with_room(state) else {
                return;
            };
            let consumer = &state.consumers[index];
            let Some(message) = state.ready.pop_front(self.persistence()) else {
                consumer.credit.release(u32::from(!consumer.no_ack));
                if !state.ready.is_empty() {
                    // The head could not be read back for now (e.g. out of file
                    // descriptors); nothing else will wake this queue, so retry soon.
                    self.retry_dispatch_later();
                }
                return;
            };
            self.note_drained(state.ready.len());
            let message = self.with_delivery_count(message);
            let credit = (!consumer.no_ack).then(|| consumer.credit.clone());
            // A no-ack delivery is settled once it is handed over.
            let settled_on_send = consumer.no_ack.then(|| message.message.stored);
            let delivered = consumer.mailbox.deliver(
                consumer.channel,
                consumer.tag.clone(),
                self.clone(),
                message,
                credit,
            );
            match delivered {
                Ok(()) => {
                    state.delivered += 1;
                    match settled_on_send {
                        Some(location) => self.forget(location),
                        None => state.awaiting_settlement += 1,
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

    /// A quorum queue tells consumers how often a message was returned
    /// (`x-delivery-count`), as RabbitMQ does.
    fn with_delivery_count(&self, mut message: QueuedMessage) -> QueuedMessage {
        if self.config.settings.kind != QueueKind::Quorum || message.entry.returns == 0 {
            return message;
        }
        let count = AMQPValue::LongLongInt(i64::from(message.entry.returns));
        message.message = Arc::new(message.message.with_header("x-delivery-count", count));
        message
    }

    /// Dispatches again shortly, from a timer task.
    fn retry_dispatch_later(self: &Arc<Self>) {
        let queue = self.clone();
        spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            queue.dispatch();
        });
    }

    /// The consumer that may receive the next message now: the highest
    /// priority with room, round-robin among equals; with a single active
    /// consumer, only the first attached.
    fn next_consumer_with_room(self: &Arc<Self>, state: &QueueState) -> Option<usize> {
        let consumers = &state.consumers;
        if self.config.settings.single_active_consumer {
            return consumers
                .first()
                .is_some_and(|c| self.has_room(c))
                .then_some(0);
        }
        let count = consumers.len();
        let mut priority = consumers.iter().map(|c| c.priority).max()?;
        loop {
            let found = (0..count)
                .map(|i| (state.next_consumer + i) % count)
                .find(|&i| consumers[i].priority == priority && self.has_room(&consumers[i]));
            if found.is_some() {
                return found;
            }
            priority = consumers
                .iter()
                .map(|c| c.priority)
                .filter(|&p| p < priority)
                .max()?;
        }
    }

    fn has_room(self: &Arc<Self>, consumer: &Consumer) -> bool {
        !consumer.mailbox.park_if_congested(self)
            && (consumer.no_ack || consumer.credit.try_acquire())
    }

    /// Arms a timer for the earliest head expiry, so that expired messages
    /// die (and are dead-lettered) on time even when nothing else touches the queue.
    fn schedule_expiry(self: &Arc<Self>, state: &mut QueueState) {
        let Some(at) = state.ready.next_expiry() else {
            return;
        };
        if state.expiry_timer.is_some_and(|pending| pending <= at) || state.deleted {
            return;
        }
        state.expiry_timer = Some(at);
        let queue = Arc::downgrade(self);
        spawn(async move {
            tokio::time::sleep_until(at.instant().into()).await;
            let Some(queue) = queue.upgrade() else {
                return;
            };
            let mut state = queue.lock();
            if state.expiry_timer == Some(at) {
                state.expiry_timer = None;
            }
            queue.expire_head(&mut state);
            queue.dispatch_locked(&mut state);
        });
    }

    /// With `x-expires`, deletes the queue once it has gone unused for that
    /// long: no consumers, no `basic.get`, no redeclaration.
    fn watch_expires(self: &Arc<Self>, state: &mut QueueState) {
        let Some(expires) = self.config.settings.expires else {
            return;
        };
        if state.expires_watcher {
            return;
        }
        state.expires_watcher = true;
        let queue = Arc::downgrade(self);
        spawn(async move {
            let mut deadline = Instant::now() + expires;
            loop {
                tokio::time::sleep_until(deadline.into()).await;
                let Some(queue) = queue.upgrade() else {
                    return;
                };
                let mut state = queue.state.lock();
                if state.deleted || !state.consumers.is_empty() {
                    state.expires_watcher = false;
                    return;
                }
                deadline = state.last_used + expires;
                if deadline <= Instant::now() {
                    state.expires_watcher = false;
                    drop(state);
                    if let Some(vhost) = queue.vhost.upgrade() {
                        tracing::debug!(queue = %queue.config.name, "unused queue expired");
                        vhost.remove_queue(&queue);
                    }
                    return;
                }
            }
        });
    }
}

/// Runs a timer task on the current runtime (none during offline recovery tools).
fn spawn(task: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(task);
    }
}
