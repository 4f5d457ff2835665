//! A queue's ready messages, in delivery order, with the bodies of a long tail
//! paged out to the store.
//!
//! Past `in_memory_limit` messages, a persistent message that the store holds
//! is kept only as its location: the body lives on disk and is read back when
//! the message reaches the head and is delivered. A backlog of millions of
//! messages then costs a few dozen bytes each in memory, as with RabbitMQ's
//! lazy and v2 classic queues.
//!
//! A priority queue keeps one list per priority level and delivers from the
//! highest non-empty one; a plain queue has a single level.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::broker::deadline::Deadline;
use crate::broker::message::{Message, QueuedMessage};
use crate::broker::queue::Persistence;
use crate::store::Location;

/// The ready messages of one queue.
#[derive(Debug)]
pub struct ReadyList {
    /// One list per priority level, lowest first.
    levels: Vec<VecDeque<Slot>>,
    len: usize,
    body_bytes: u64,
    in_memory_limit: usize,
}

/// A ready message: its queue-local facts, and the message or where it is stored.
#[derive(Debug)]
pub struct Slot {
    /// The queue-local facts, as they travel with a delivery.
    pub entry: Entry,
    /// The message, or where the store keeps it.
    pub held: Held,
}

/// What a queue knows of one of its messages besides the message itself.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Position in the queue's order; requeued messages go back to it.
    pub seq: u64,
    /// When the message expires in this queue (the earlier of its own TTL and the queue's).
    pub expires_at: Option<Deadline>,
    /// Body size, for byte limits.
    pub body_len: u32,
    /// Priority level in this queue (0 in a plain queue).
    pub priority: u8,
    /// Set once the message has been delivered and returned.
    pub redelivered: bool,
    /// How many times it was delivered and returned (quorum queues' delivery count).
    pub returns: u32,
}

/// A message body in memory, or only its place in the store.
#[derive(Debug)]
pub enum Held {
    /// In memory.
    Loaded(Arc<Message>),
    /// On disk only.
    Paged(Location),
}

impl Slot {
    /// Where the store keeps the message, if it does.
    pub fn location(&self) -> Option<Location> {
        match &self.held {
            Held::Loaded(message) => message.stored,
            Held::Paged(location) => Some(*location),
        }
    }

    fn is_expired(&self, now: Deadline) -> bool {
        self.entry.expires_at.is_some_and(|at| at.has_passed(now))
    }
}

impl ReadyList {
    /// An empty list with `max_priority + 1` levels that pages out stored
    /// messages beyond `in_memory_limit`.
    pub fn new(max_priority: u8, in_memory_limit: usize) -> ReadyList {
        ReadyList {
            levels: (0..=max_priority).map(|_| VecDeque::new()).collect(),
            len: 0,
            body_bytes: 0,
            in_memory_limit,
        }
    }

    /// Number of ready messages.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Total body bytes of the ready messages.
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// Whether there are no ready messages.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The level a message of `priority` goes to: capped at the highest level.
    pub fn level_of(&self, priority: u8) -> u8 {
        priority.min((self.levels.len() - 1) as u8)
    }

    /// Appends a message, paging it out if the list is long and the store holds it.
    pub fn push_back(&mut self, entry: Entry, message: Arc<Message>) {
        let held = match message.stored {
            Some(location) if self.len >= self.in_memory_limit => Held::Paged(location),
            _ => Held::Loaded(message),
        };
        self.push(Slot { entry, held }, false);
    }

    /// Appends a message known only by its location (recovery of a long queue).
    pub fn push_paged(&mut self, entry: Entry, location: Location) {
        self.push(
            Slot {
                entry,
                held: Held::Paged(location),
            },
            false,
        );
    }

    /// Puts a delivered message back at its original place.
    pub fn insert_in_order(&mut self, message: QueuedMessage) {
        let slot = Slot {
            entry: message.entry,
            held: Held::Loaded(message.message),
        };
        self.push(slot, true);
    }

    fn push(&mut self, slot: Slot, in_order: bool) {
        self.len += 1;
        self.body_bytes += u64::from(slot.entry.body_len);
        let level = &mut self.levels[usize::from(slot.entry.priority)];
        if in_order {
            let at = level.partition_point(|s| s.entry.seq < slot.entry.seq);
            level.insert(at, slot);
        } else {
            level.push_back(slot);
        }
    }

    /// The highest non-empty level.
    fn head_level(&mut self) -> Option<&mut VecDeque<Slot>> {
        self.levels.iter_mut().rev().find(|level| !level.is_empty())
    }

    /// Takes the head slot as it is, without reading a paged-out body.
    pub fn pop_slot(&mut self) -> Option<Slot> {
        let slot = self.head_level()?.pop_front()?;
        self.len -= 1;
        self.body_bytes -= u64::from(slot.entry.body_len);
        Some(slot)
    }

    fn push_front(&mut self, slot: Slot) {
        self.len += 1;
        self.body_bytes += u64::from(slot.entry.body_len);
        self.levels[usize::from(slot.entry.priority)].push_front(slot);
    }

    /// Takes the head message, reading its body back from the store if it was paged out.
    /// A body found corrupt is logged and settled, and the next message is taken;
    /// any other read failure (e.g. out of file descriptors) leaves the message
    /// at the head for a later attempt and returns `None`.
    pub fn pop_front(&mut self, persistence: Option<&Persistence>) -> Option<QueuedMessage> {
        loop {
            let slot = self.pop_slot()?;
            let message = match slot.held {
                Held::Loaded(message) => message,
                Held::Paged(location) => {
                    let Some(persistence) = persistence else {
                        continue;
                    };
                    match persistence.read(location) {
                        Ok(message) => message,
                        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                            tracing::error!(?location, error = %e, "paged-out message is corrupt; dropped");
                            persistence.store.ack(persistence.id, location);
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!(?location, error = %e, "cannot read a paged-out message yet");
                            self.push_front(Slot {
                                entry: slot.entry,
                                held: Held::Paged(location),
                            });
                            return None;
                        }
                    }
                }
            };
            return Some(QueuedMessage {
                entry: slot.entry,
                message,
            });
        }
    }

    /// Removes expired messages at the head of each level.
    pub fn take_expired(&mut self, now: Deadline) -> Vec<Slot> {
        let mut expired = Vec::new();
        for level in &mut self.levels {
            while let Some(slot) = level.pop_front_if(|s| s.is_expired(now)) {
                self.len -= 1;
                self.body_bytes -= u64::from(slot.entry.body_len);
                expired.push(slot);
            }
        }
        expired
    }

    /// How many messages would be left after [`ReadyList::take_expired`]
    /// at `now`: the count clients are told.
    pub fn unexpired_len(&self, now: Deadline) -> usize {
        let expired: usize = self
            .levels
            .iter()
            .map(|level| level.iter().take_while(|s| s.is_expired(now)).count())
            .sum();
        self.len() - expired
    }

    /// When the earliest head message expires, if any does.
    pub fn next_expiry(&self) -> Option<Deadline> {
        self.levels
            .iter()
            .filter_map(|level| level.front()?.entry.expires_at)
            .min()
    }

    /// Removes every message.
    pub fn clear(&mut self) -> Vec<Slot> {
        self.len = 0;
        self.body_bytes = 0;
        self.levels.iter_mut().flat_map(|l| l.drain(..)).collect()
    }

    /// Store locations of the messages that were delivered before.
    pub fn redelivered_locations(&self) -> Vec<Location> {
        self.levels
            .iter()
            .flatten()
            .filter(|s| s.entry.redelivered)
            .filter_map(Slot::location)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{Entry, Slot};

    #[test]
    fn ready_slots_stay_small() {
        // One of each per ready message: a backlog of millions pays for every byte.
        assert!(size_of::<Entry>() <= 32, "{}", size_of::<Entry>());
        assert!(size_of::<Slot>() <= 48, "{}", size_of::<Slot>());
    }
}
