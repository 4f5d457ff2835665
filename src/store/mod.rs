//! Persistence of messages: append-only segments with group commit.
//!
//! Publishing a persistent message to durable queues appends one record to the
//! active segment's buffer (under a short lock) and returns its [`Location`]
//! and a ticket. A dedicated sync thread writes whatever is buffered and
//! fsyncs once for the whole batch, then publishes the highest ticket now on
//! disk; publisher confirms wait for it. Acks append fixed-size records to the
//! settled segment's ack file. Each segment counts its unsettled (queue,
//! message) pairs, and a segment whose count reaches zero is deleted with its
//! ack file. Record formats are in [`record`], recovery in [`segment`].

pub mod definitions;
pub mod record;
pub mod segment;
pub mod stats;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use crate::store::record::{
    MAX_RECORD, MessageParts, QueueId, RECORD_HEADER, StoredMessage, decode_message, encode_ack,
    encode_message, record_crc,
};
use crate::store::segment::{ack_path, list_segments, read_acks, read_segment, segment_path};
use crate::store::stats::StoreStats;
use std::os::unix::fs::FileExt;

/// Where a message record lives.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Location {
    /// Segment number.
    pub segment: u32,
    /// Byte offset of the record in the segment.
    pub offset: u32,
}

/// A position in the store's write order; confirms wait until it is on disk.
pub type Ticket = u64;

/// When the sync thread fsyncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// After every batch of writes: nothing is confirmed before it is on disk.
    EveryBatch,
    /// At most once per interval: fewer fsyncs, confirms wait up to the interval.
    Interval(Duration),
}

/// Segments roll over past this size.
const SEGMENT_SIZE: u64 = 64 << 20;

/// A message recovered at start-up, in its queue's order.
#[derive(Debug)]
pub struct Recovered {
    /// Where it is stored.
    pub location: Location,
    /// The message (shared by all queues it was routed to); `None` when it
    /// was beyond the queue's in-memory limit and stays on disk until needed.
    pub message: Option<Arc<StoredMessage>>,
    /// What the queue must know even of a message left on disk: body size, expiry, priority.
    pub summary: Summary,
}

/// The facts a queue keeps about a message whose body stays on disk.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Body size in bytes.
    pub body_len: u32,
    /// Absolute expiry in Unix milliseconds (0: never).
    pub expires_at_ms: u64,
    /// The `priority` property (0 if unset).
    pub priority: u8,
}

/// Message bytes not yet on disk: segment, file offset of the first byte, bytes.
type PendingBytes = (u32, u64, Vec<u8>);

/// Each durable queue's recovered messages, by queue identity.
pub type RecoveredQueues = HashMap<QueueId, Vec<Recovered>>;

/// The message store.
pub struct Store {
    dir: PathBuf,
    state: Mutex<State>,
    wake: Condvar,
    synced: watch::Sender<Ticket>,
    policy: SyncPolicy,
    thread: Mutex<Option<JoinHandle<()>>>,
    stats: StoreStats,
}

#[derive(Default)]
struct State {
    active: u32,
    active_len: u64,
    next_ticket: Ticket,
    /// Unsettled (queue, message) pairs per segment.
    live: HashMap<u32, u64>,
    /// Message bytes waiting for the sync thread: segment, file offset of the first byte, bytes.
    pending_messages: Vec<PendingBytes>,
    /// The batch the sync thread is writing now; still readable until it is on disk.
    writing: Arc<Vec<PendingBytes>>,
    /// Ack bytes waiting for the sync thread, per segment.
    pending_acks: HashMap<u32, Vec<u8>>,
    /// Segments whose last pair was settled, to delete after pending writes.
    dead: Vec<u32>,
    /// Files open for reading paged-out messages back.
    readers: HashMap<u32, Arc<File>>,
    stopping: bool,
}

impl Store {
    /// Opens (or creates) the store in `dir`, returning each queue's recovered
    /// messages in order; only the first `in_memory_limit` of each queue keep their bodies.
    pub fn open(
        dir: &Path,
        policy: SyncPolicy,
        in_memory_limit: usize,
    ) -> io::Result<(Arc<Store>, RecoveredQueues)> {
        std::fs::create_dir_all(dir)?;
        let mut by_queue: HashMap<QueueId, Vec<Recovered>> = HashMap::new();
        let mut live = HashMap::new();
        let segments = list_segments(dir)?;
        for &number in &segments {
            let acked: std::collections::HashSet<(QueueId, u32)> =
                read_acks(&ack_path(dir, number))?.into_iter().collect();
            let mut count = 0u64;
            for found in read_segment(&segment_path(dir, number))? {
                let message = Arc::new(found.message);
                let summary = Summary {
                    body_len: message.body.len() as u32,
                    expires_at_ms: message.expires_at_ms,
                    priority: crate::protocol::properties::priority(&message.properties)
                        .unwrap_or(0),
                };
                for &queue in &message.queues {
                    if acked.contains(&(queue, found.offset)) {
                        continue;
                    }
                    count += 1;
                    let recovered = by_queue.entry(queue).or_default();
                    let keep = recovered.len() < in_memory_limit;
                    recovered.push(Recovered {
                        location: Location {
                            segment: number,
                            offset: found.offset,
                        },
                        message: keep.then(|| message.clone()),
                        summary,
                    });
                }
            }
            live.insert(number, count);
        }
        let active = segments.last().map_or(0, |n| n + 1);
        let (synced, _) = watch::channel(0);
        let store = Arc::new(Store {
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                active,
                live,
                ..State::default()
            }),
            wake: Condvar::new(),
            synced,
            policy,
            thread: Mutex::new(None),
            stats: StoreStats::default(),
        });
        let worker = store.clone();
        let handle = std::thread::Builder::new()
            .name("warren-store-sync".into())
            .spawn(move || worker.sync_loop())?;
        *store.thread.lock() = Some(handle);
        Ok((store, by_queue))
    }

    /// Appends a message routed to `queues`; returns where it lives and its ticket.
    pub fn publish(&self, queues: &[QueueId], message: &MessageParts) -> (Location, Ticket) {
        let mut state = self.state.lock();
        if state.active_len >= SEGMENT_SIZE {
            let full = state.active;
            if state.live.get(&full) == Some(&0) {
                state.live.remove(&full);
                state.dead.push(full);
            }
            state.active += 1;
            state.active_len = 0;
        }
        let segment = state.active;
        let base = state.active_len;
        let offset = base as u32;
        let buffer = match state.pending_messages.last_mut() {
            Some((number, _, buffer)) if *number == segment => buffer,
            _ => {
                state
                    .pending_messages
                    .push((segment, base, Vec::with_capacity(64 * 1024)));
                &mut state.pending_messages.last_mut().expect("just pushed").2
            }
        };
        let before = buffer.len();
        encode_message(buffer, offset, queues, message);
        let written = (buffer.len() - before) as u64;
        let location = Location { segment, offset };
        state.active_len += written;
        *state.live.entry(segment).or_default() += queues.len() as u64;
        state.next_ticket += 1;
        let ticket = state.next_ticket;
        drop(state);
        self.wake.notify_one();
        (location, ticket)
    }

    /// Reads a message back (a body paged out of memory), from the write
    /// buffer if the sync thread has not written it yet.
    pub fn read(&self, at: Location) -> io::Result<StoredMessage> {
        let file = {
            let state = self.state.lock();
            let offset = u64::from(at.offset);
            let unwritten = state.pending_messages.iter().chain(state.writing.iter());
            for (segment, base, bytes) in unwritten {
                if *segment == at.segment && offset >= *base && offset < *base + bytes.len() as u64
                {
                    return decode_at(&bytes[(offset - base) as usize..], at.offset);
                }
            }
            match state.readers.get(&at.segment) {
                Some(file) => file.clone(),
                None => {
                    drop(state);
                    let file = Arc::new(File::open(segment_path(&self.dir, at.segment))?);
                    self.state.lock().readers.insert(at.segment, file.clone());
                    file
                }
            }
        };
        let mut header = [0u8; RECORD_HEADER];
        file.read_exact_at(&mut header, u64::from(at.offset))?;
        let len = u32::from_be_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        if len > MAX_RECORD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "record length out of range",
            ));
        }
        let mut record = vec![0u8; RECORD_HEADER + len];
        file.read_exact_at(&mut record, u64::from(at.offset))?;
        decode_at(&record, at.offset)
    }

    /// Settles a (queue, message) pair for good.
    pub fn ack(&self, queue: QueueId, at: Location) {
        let mut state = self.state.lock();
        let remaining = state.live.get_mut(&at.segment).map(|count| {
            *count = count.saturating_sub(1);
            *count
        });
        match remaining {
            Some(0) if at.segment != state.active => {
                state.live.remove(&at.segment);
                state.pending_acks.remove(&at.segment);
                state.dead.push(at.segment);
            }
            Some(_) => encode_ack(
                state.pending_acks.entry(at.segment).or_default(),
                queue,
                at.offset,
            ),
            None => {}
        }
        drop(state);
        self.wake.notify_one();
    }

    /// The highest ticket known to be on disk.
    pub fn synced(&self) -> watch::Receiver<Ticket> {
        self.synced.subscribe()
    }

    /// Writes and syncs everything pending and stops the sync thread (clean shutdown).
    pub fn close(&self) {
        self.state.lock().stopping = true;
        self.wake.notify_one();
        if let Some(handle) = self.thread.lock().take() {
            let _ = handle.join();
        }
    }

    /// Puts a batch that could not be written back in front of newer writes.
    fn requeue(&self, batch: Arc<Vec<PendingBytes>>, acks: HashMap<u32, Vec<u8>>, dead: Vec<u32>) {
        let mut state = self.state.lock();
        state.writing = Arc::default();
        let mut messages = Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone());
        messages.append(&mut state.pending_messages);
        state.pending_messages = messages;
        for (segment, mut bytes) in acks {
            if let Some(newer) = state.pending_acks.remove(&segment) {
                bytes.extend_from_slice(&newer);
            }
            state.pending_acks.insert(segment, bytes);
        }
        state.dead.extend(dead);
    }

    /// What the sync thread measured.
    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    fn sync_loop(&self) {
        let mut files = Files::new(&self.dir);
        // Every stored message takes one ticket: a batch commits those since the last.
        let mut last_ticket = self.state.lock().next_ticket;
        loop {
            let (messages, acks, dead, ticket, stopping) = {
                let mut state = self.state.lock();
                while state.pending_messages.is_empty()
                    && state.pending_acks.is_empty()
                    && state.dead.is_empty()
                    && !state.stopping
                {
                    self.wake.wait(&mut state);
                }
                let batch = Arc::new(std::mem::take(&mut state.pending_messages));
                state.writing = batch.clone();
                (
                    batch,
                    std::mem::take(&mut state.pending_acks),
                    std::mem::take(&mut state.dead),
                    state.next_ticket,
                    state.stopping,
                )
            };
            let wrote_messages = !messages.is_empty();
            let started = std::time::Instant::now();
            if let Err(e) = files.write(&messages, &acks, stopping) {
                // Files were cut back to their length before the batch, so the
                // store stays intact; the batch goes back in front and nothing
                // in it is confirmed until a retry succeeds (e.g. disk freed).
                tracing::error!(error = %e, "store write failed; retrying, confirms held back");
                self.requeue(messages, acks, dead);
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            if wrote_messages {
                self.stats
                    .fsync_seconds
                    .observe(started.elapsed().as_secs_f64());
                self.stats
                    .group_commit_size
                    .observe((ticket - last_ticket) as f64);
                last_ticket = ticket;
                self.state.lock().writing = Arc::default();
                self.synced.send_replace(ticket);
            }
            for segment in dead {
                self.state.lock().readers.remove(&segment);
                files.delete(segment);
            }
            if stopping {
                return;
            }
            if let SyncPolicy::Interval(interval) = self.policy {
                std::thread::sleep(interval);
            }
        }
    }
}

/// The sync thread's open files.
struct Files {
    dir: PathBuf,
    segments: HashMap<u32, File>,
    acks: HashMap<u32, File>,
}

impl Files {
    fn new(dir: &Path) -> Files {
        Files {
            dir: dir.to_path_buf(),
            segments: HashMap::new(),
            acks: HashMap::new(),
        }
    }

    /// Appends the batch and fsyncs the segments written (ack files too when `all`).
    /// On failure every file touched is cut back to its length before the batch.
    fn write(
        &mut self,
        messages: &[PendingBytes],
        acks: &HashMap<u32, Vec<u8>>,
        all: bool,
    ) -> io::Result<()> {
        let mut lengths: Vec<(bool, u32, u64)> = Vec::new();
        let result = self.try_write(messages, acks, all, &mut lengths);
        if result.is_err() {
            for (is_segment, number, len) in lengths {
                let files = if is_segment {
                    &self.segments
                } else {
                    &self.acks
                };
                if let Some(file) = files.get(&number) {
                    let _ = file.set_len(len);
                }
            }
        }
        result
    }

    fn try_write(
        &mut self,
        messages: &[PendingBytes],
        acks: &HashMap<u32, Vec<u8>>,
        all: bool,
        lengths: &mut Vec<(bool, u32, u64)>,
    ) -> io::Result<()> {
        for (segment, _, bytes) in messages {
            let file = open_append(
                &mut self.segments,
                segment_path(&self.dir, *segment),
                *segment,
            )?;
            if !lengths.iter().any(|&(s, n, _)| s && n == *segment) {
                lengths.push((true, *segment, file.metadata()?.len()));
            }
            file.write_all(bytes)?;
        }
        for &(_, segment, _) in lengths.iter() {
            self.segments[&segment].sync_data()?;
        }
        for (segment, bytes) in acks {
            let file = open_append(&mut self.acks, ack_path(&self.dir, *segment), *segment)?;
            lengths.push((false, *segment, file.metadata()?.len()));
            file.write_all(bytes)?;
        }
        if all {
            for file in self.acks.values() {
                file.sync_data()?;
            }
        }
        Ok(())
    }

    fn delete(&mut self, segment: u32) {
        self.segments.remove(&segment);
        self.acks.remove(&segment);
        for path in [
            segment_path(&self.dir, segment),
            ack_path(&self.dir, segment),
        ] {
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "cannot delete settled segment");
            }
        }
    }
}

fn open_append(
    files: &mut HashMap<u32, File>,
    path: PathBuf,
    number: u32,
) -> io::Result<&mut File> {
    match files.entry(number) {
        std::collections::hash_map::Entry::Occupied(entry) => Ok(entry.into_mut()),
        std::collections::hash_map::Entry::Vacant(entry) => {
            Ok(entry.insert(OpenOptions::new().create(true).append(true).open(path)?))
        }
    }
}

/// Decodes the message record at the start of `bytes`, checking its CRC.
fn decode_at(bytes: &[u8], offset: u32) -> io::Result<StoredMessage> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let header = bytes
        .get(..RECORD_HEADER)
        .ok_or_else(|| invalid("short record"))?;
    let len = u32::from_be_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_be_bytes(header[4..8].try_into().expect("4 bytes"));
    let payload = bytes
        .get(RECORD_HEADER..RECORD_HEADER + len)
        .ok_or_else(|| invalid("short record"))?;
    if record_crc(offset, payload) != crc {
        return Err(invalid("record checksum mismatch"));
    }
    decode_message(bytes::Bytes::copy_from_slice(payload))
        .ok_or_else(|| invalid("malformed record"))
}
