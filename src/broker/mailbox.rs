//! The hand-off from queues to a connection.
//!
//! Queues dispatch on whatever task touches them (a publisher's connection, a
//! consumer's ack) and post deliveries into the consuming connection's
//! [`Mailbox`]. The mailbox counts what it holds; past [`Mailbox::HIGH_WATER`]
//! it is congested and queues stop dispatching to it, parking themselves as
//! waiters. The connection stops draining its mailbox while its socket is not
//! keeping up, so a slow consumer holds messages in its queue, not in memory
//! buffers, and never slows anyone else.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::broker::message::QueuedMessage;
use crate::broker::queue::Queue;

/// What queues tell a connection.
#[derive(Debug)]
pub enum Event {
    /// A message for one of the connection's consumers.
    Deliver {
        /// Channel of the consumer.
        channel: u16,
        /// Consumer tag.
        consumer_tag: Arc<str>,
        /// The queue the message came from (for ack and requeue).
        queue: Arc<Queue>,
        /// The message.
        message: QueuedMessage,
        /// Prefetch credit taken for it; `None` for a no-ack consumer.
        credit: Option<Arc<Credit>>,
    },
    /// The queue a consumer was attached to is gone (consumer_cancel_notify).
    ConsumerCancelled {
        /// Channel of the consumer.
        channel: u16,
        /// Consumer tag.
        consumer_tag: Arc<str>,
    },
}

/// A connection's inbound event queue with congestion tracking.
#[derive(Debug)]
pub struct Mailbox {
    sender: mpsc::UnboundedSender<Event>,
    held: AtomicUsize,
    waiting_queues: Mutex<Vec<Weak<Queue>>>,
}

impl Mailbox {
    /// Events held before queues stop dispatching to this connection.
    pub const HIGH_WATER: usize = 2048;
    /// Events held below which parked queues are woken again.
    pub const LOW_WATER: usize = 512;

    /// A mailbox and the receiving end its connection drains.
    pub fn new() -> (Arc<Mailbox>, mpsc::UnboundedReceiver<Event>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mailbox = Mailbox {
            sender,
            held: AtomicUsize::new(0),
            waiting_queues: Mutex::new(Vec::new()),
        };
        (Arc::new(mailbox), receiver)
    }

    /// Posts a delivery. If the connection is gone, the message comes back.
    pub fn deliver(
        &self,
        channel: u16,
        consumer_tag: Arc<str>,
        queue: Arc<Queue>,
        message: QueuedMessage,
        credit: Option<Arc<Credit>>,
    ) -> Result<(), QueuedMessage> {
        let event = Event::Deliver {
            channel,
            consumer_tag,
            queue,
            message,
            credit,
        };
        self.post(event).map_err(|event| match event {
            Event::Deliver { message, .. } => message,
            Event::ConsumerCancelled { .. } => unreachable!("a delivery was posted"),
        })
    }

    /// Tells the connection that a consumer's queue is gone.
    pub fn cancel(&self, channel: u16, consumer_tag: Arc<str>) {
        // A closed connection has dropped its consumers already.
        let _ = self.post(Event::ConsumerCancelled {
            channel,
            consumer_tag,
        });
    }

    fn post(&self, event: Event) -> Result<(), Event> {
        self.held.fetch_add(1, Ordering::AcqRel);
        self.sender.send(event).map_err(|e| {
            self.held.fetch_sub(1, Ordering::AcqRel);
            e.0
        })
    }

    /// True if the mailbox is congested; the queue is then parked until it drains.
    pub fn park_if_congested(&self, queue: &Arc<Queue>) -> bool {
        let mut waiting = self.waiting_queues.lock();
        if self.held.load(Ordering::Acquire) < Self::HIGH_WATER {
            return false;
        }
        if !waiting.iter().any(|w| w.as_ptr() == Arc::as_ptr(queue)) {
            waiting.push(Arc::downgrade(queue));
        }
        true
    }

    /// Called by the connection after taking `n` events; wakes parked queues once drained.
    pub fn taken(&self, n: usize) {
        let held = self.held.fetch_sub(n, Ordering::AcqRel) - n;
        if held >= Self::LOW_WATER {
            return;
        }
        let parked = std::mem::take(&mut *self.waiting_queues.lock());
        for queue in parked.iter().filter_map(Weak::upgrade) {
            queue.dispatch();
        }
    }
}

/// A connection's mailbox, created when the connection's first consumer needs
/// it: the event queue behind a mailbox allocates a few KiB from the start,
/// which a connection that only publishes, or sits idle, never needs.
#[derive(Debug, Default)]
pub struct LazyMailbox {
    mailbox: Option<Arc<Mailbox>>,
    receiver: Option<mpsc::UnboundedReceiver<Event>>,
}

impl LazyMailbox {
    /// The mailbox, created on first use; the connection then collects its
    /// receiving end with [`LazyMailbox::take_receiver`].
    pub fn get(&mut self) -> &Arc<Mailbox> {
        self.mailbox.get_or_insert_with(|| {
            let (mailbox, receiver) = Mailbox::new();
            self.receiver = Some(receiver);
            mailbox
        })
    }

    /// The receiving end of a mailbox created since the last call.
    pub fn take_receiver(&mut self) -> Option<mpsc::UnboundedReceiver<Event>> {
        self.receiver.take()
    }

    /// See [`Mailbox::taken`]; nothing to do before the mailbox exists.
    pub fn taken(&self, n: usize) {
        if let Some(mailbox) = &self.mailbox {
            mailbox.taken(n);
        }
    }
}

/// Prefetch accounting of one consumer, shared by its queue and its channel.
#[derive(Debug)]
pub struct Credit {
    limit: u32,
    in_flight: AtomicU32,
    channel: Arc<ChannelCredit>,
}

/// Prefetch accounting shared by every consumer of one channel.
#[derive(Debug, Default)]
pub struct ChannelCredit {
    limit: AtomicU32,
    in_flight: AtomicU32,
}

impl ChannelCredit {
    /// Sets the channel-wide prefetch limit (`basic.qos` with global; 0 = none).
    pub fn set_limit(&self, limit: u32) {
        self.limit.store(limit, Ordering::Release);
    }
}

impl Credit {
    /// Credit for a consumer with per-consumer limit `limit` (0 = none) on a channel.
    pub fn new(limit: u32, channel: Arc<ChannelCredit>) -> Credit {
        Credit {
            limit,
            in_flight: AtomicU32::new(0),
            channel,
        }
    }

    /// Takes room for one unacknowledged delivery, if both limits allow it.
    pub fn try_acquire(&self) -> bool {
        let channel_limit = self.channel.limit.load(Ordering::Acquire);
        if !acquire(&self.channel.in_flight, channel_limit) {
            return false;
        }
        if !acquire(&self.in_flight, self.limit) {
            self.channel.in_flight.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Gives back room for `n` settled deliveries.
    pub fn release(&self, n: u32) {
        self.in_flight.fetch_sub(n, Ordering::AcqRel);
        self.channel.in_flight.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Increments `counter` unless it has reached `limit` (0 = unlimited).
fn acquire(counter: &AtomicU32, limit: u32) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (limit == 0 || n < limit).then_some(n + 1)
        })
        .is_ok()
}
