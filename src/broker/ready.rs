//! A queue's ready messages, with the bodies of a long tail paged out to the store.
//!
//! Past `in_memory_limit` messages, a persistent message that the store holds
//! is kept only as its location (plus its expiry): the body lives on disk and
//! is read back when the message reaches the head and is delivered. A backlog
//! of millions of messages then costs a few dozen bytes each in memory, as
//! with RabbitMQ's lazy and v2 classic queues.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::broker::message::{Message, QueuedMessage};
use crate::broker::queue::Persistence;
use crate::store::Location;

/// The ready messages of one queue, in order.
#[derive(Debug)]
pub struct ReadyList {
    slots: VecDeque<Slot>,
    in_memory_limit: usize,
}

#[derive(Debug)]
struct Slot {
    seq: u64,
    redelivered: bool,
    held: Held,
}

#[derive(Debug)]
enum Held {
    Loaded(Arc<Message>),
    Paged {
        location: Location,
        expires_at: Option<Instant>,
    },
}

impl Slot {
    fn location(&self) -> Option<Location> {
        match &self.held {
            Held::Loaded(message) => message.stored,
            Held::Paged { location, .. } => Some(*location),
        }
    }

    fn is_expired(&self, now: Instant) -> bool {
        match &self.held {
            Held::Loaded(message) => message.is_expired(now),
            Held::Paged { expires_at, .. } => expires_at.is_some_and(|at| at <= now),
        }
    }
}

impl ReadyList {
    /// An empty list that pages out stored messages beyond `in_memory_limit`.
    pub fn new(in_memory_limit: usize) -> ReadyList {
        ReadyList {
            slots: VecDeque::new(),
            in_memory_limit,
        }
    }

    /// Number of ready messages.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no ready messages.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Appends a message, paging it out if the list is long and the store holds it.
    pub fn push_back(&mut self, seq: u64, message: Arc<Message>, redelivered: bool) {
        let held = match message.stored {
            Some(location) if self.slots.len() >= self.in_memory_limit => Held::Paged {
                location,
                expires_at: message.expires_at,
            },
            _ => Held::Loaded(message),
        };
        self.slots.push_back(Slot {
            seq,
            redelivered,
            held,
        });
    }

    /// Appends a message known only by its location (recovery of a long queue).
    pub fn push_paged(&mut self, seq: u64, location: Location, redelivered: bool) {
        let held = Held::Paged {
            location,
            expires_at: None,
        };
        self.slots.push_back(Slot {
            seq,
            redelivered,
            held,
        });
    }

    /// Puts a delivered message back at its original place.
    pub fn insert_in_order(&mut self, message: QueuedMessage) {
        let at = self.slots.partition_point(|s| s.seq < message.seq);
        let slot = Slot {
            seq: message.seq,
            redelivered: message.redelivered,
            held: Held::Loaded(message.message),
        };
        self.slots.insert(at, slot);
    }

    /// Takes the head message, reading its body back from the store if it was paged out.
    /// A body found corrupt is logged and settled, and the next message is taken;
    /// any other read failure (e.g. out of file descriptors) leaves the message
    /// at the head for a later attempt and returns `None`.
    pub fn pop_front(&mut self, persistence: Option<&Persistence>) -> Option<QueuedMessage> {
        loop {
            let slot = self.slots.pop_front()?;
            let message = match slot.held {
                Held::Loaded(message) => message,
                Held::Paged {
                    location,
                    expires_at,
                } => {
                    let Some(persistence) = persistence else {
                        continue;
                    };
                    match persistence.store.read(location) {
                        Ok(stored) => {
                            let message = Message::recovered(&stored, location);
                            // A recovered message's expiry is known only once it is read.
                            if message.is_expired(Instant::now()) {
                                persistence.store.ack(persistence.id, location);
                                continue;
                            }
                            Arc::new(message)
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                            tracing::error!(?location, error = %e, "paged-out message is corrupt; dropped");
                            persistence.store.ack(persistence.id, location);
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!(?location, error = %e, "cannot read a paged-out message yet");
                            let held = Held::Paged {
                                location,
                                expires_at,
                            };
                            self.slots.push_front(Slot { held, ..slot });
                            return None;
                        }
                    }
                }
            };
            return Some(QueuedMessage {
                seq: slot.seq,
                message,
                redelivered: slot.redelivered,
            });
        }
    }

    /// Removes expired messages at the head; returns the store locations of those removed.
    pub fn drop_expired_head(&mut self, now: Instant) -> Vec<Location> {
        let mut dropped = Vec::new();
        while let Some(slot) = self.slots.pop_front_if(|s| s.is_expired(now)) {
            dropped.extend(slot.location());
        }
        dropped
    }

    /// Removes every message; returns the store locations of those removed.
    pub fn clear(&mut self) -> Vec<Location> {
        self.slots.drain(..).filter_map(|s| s.location()).collect()
    }

    /// Store locations of the messages that were delivered before.
    pub fn redelivered_locations(&self) -> Vec<Location> {
        self.slots
            .iter()
            .filter(|s| s.redelivered)
            .filter_map(Slot::location)
            .collect()
    }
}
