//! The crash test: SIGKILL the broker at random moments under load, restart
//! it on the same data directory, and check that no confirmed message was lost.
//!
//! Each cycle starts `warren` (the real binary, see `common/process.rs`) on
//! the same data directory, runs several publisher connections (persistent
//! messages with publisher confirms, each routed to 2–3 durable queues) and
//! several consumer connections (manual acks, assorted prefetch, some slow,
//! a few requeueing nacks), kills the broker with SIGKILL after a random
//! delay, restarts it and checks everything left in the queues against a
//! model the test keeps:
//!
//! - lost: a (queue, message) pair whose publish was confirmed and for which
//!   no ack was sent before the kill, but that is not in its queue: must be 0;
//! - corrupt: a body whose checksum fails, or a message in a queue it was not
//!   routed to, or one that was gone and came back: must be 0;
//! - order: per queue, each producer's messages appear in increasing sequence;
//! - redelivered: after an unclean stop every recovered message must carry
//!   `redelivered = true` (Warren's documented rule; RabbitMQ's weaker rule,
//!   "delivered before implies redelivered", follows from it); every fourth
//!   cycle ends with a clean stop (SIGTERM) under the same load instead, and
//!   then the weaker rule applies; while the broker is up, a message
//!   delivered before must come again with the flag set;
//! - atomicity: a message routed to several queues is one record, so one never
//!   acked anywhere is recovered in all of its queues or in none;
//! - duplicates: pairs recovered although their ack was sent before the kill
//!   (at-least-once, allowed, always with `redelivered = true`) are counted.
//!
//! The check takes every recovered message with basic.get, acks a random
//! half of them (more acks for the next crash to race with) and leaves the
//! rest for the next cycle's consumers. After the last cycle the broker is
//! stopped cleanly and checked once more.
//!
//! "Ack sent before the kill" is decided under the model's lock: the kill
//! first flips `killed` under that lock, and consumers mark a pair acked only
//! while `killed` is false, before handing the ack to lapin. Confirms that
//! arrive after the flip still count: the broker sent them before it died.
//!
//! Environment:
//!
//! - `WARREN_CRASH_CYCLES`: number of cycles (default 3, so CI stays fast).
//! - `WARREN_CRASH_SEED`: the seed of the test's RNG (printed at the start).
//!   It reproduces every random decision (routes, payloads, consumer
//!   settings, kill delays); thread scheduling is not reproducible, so a
//!   failure may need a few runs with its seed.
//!
//! Besides the loop, deterministic tests kill the broker right after one of
//! its promises: a publisher confirm (under both sync policies), a
//! tx.commit-ok, and the -ok of durable declarations, a binding and a delete.
//!
//! A longer run, e.g. before a release (about 2 s per cycle in release mode):
//!
//! ```text
//! WARREN_CRASH_CYCLES=200 cargo test --release --test crash -- --nocapture
//! ```

#[path = "common/process.rs"]
mod process;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::message::DeliveryResult;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ExchangeKind};
use process::*;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const EXCHANGE: &str = "crash.direct";
const QUEUES: [&str; 4] = ["crash.q0", "crash.q1", "crash.q2", "crash.q3"];
/// Routing keys and the queues each reaches: every message goes to 2–3 queues.
const ROUTES: [(&str, &[usize]); 4] = [
    ("k01", &[0, 1]),
    ("k123", &[1, 2, 3]),
    ("k20", &[2, 0]),
    ("k301", &[3, 0, 1]),
];
const PUBLISHERS: usize = 3;
const CONSUMERS: usize = 3;
/// Publishes in flight per publisher before it waits for the oldest confirm.
const CONFIRM_WINDOW: usize = 32;
/// Messages per publisher per cycle, so a cycle's check stays short.
const MAX_PER_PUBLISHER: u64 = 1500;
/// Body layout: magic, producer, sequence, route, payload length, payload, CRC-32.
const MAGIC: &[u8; 4] = b"WCT1";

// ---------------------------------------------------------------------------
// A small seeded RNG (SplitMix64): no extra crates, reproducible from the seed.

#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// An independent generator for a task, derived from this one.
    fn fork(&mut self) -> Rng {
        Rng(self.next_u64())
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

// ---------------------------------------------------------------------------
// Message bodies.

/// A message's identity: (producer, sequence number).
type MessageId = (u32, u64);

fn encode_body(producer: u32, seq: u64, route: u8, rng: &mut Rng) -> Vec<u8> {
    // Mostly small, some medium, a few large (several frames).
    let len = match rng.below(100) {
        0..70 => rng.below(256),
        70..96 => 256 + rng.below(8 * 1024),
        _ => 64 * 1024 + rng.below(200 * 1024),
    } as usize;
    let mut body = Vec::with_capacity(len + 25);
    body.extend_from_slice(MAGIC);
    body.extend_from_slice(&producer.to_be_bytes());
    body.extend_from_slice(&seq.to_be_bytes());
    body.push(route);
    body.extend_from_slice(&(len as u32).to_be_bytes());
    let start = body.len();
    body.resize(start + len, 0);
    rng.fill(&mut body[start..]);
    let crc = crc32fast::hash(&body);
    body.extend_from_slice(&crc.to_be_bytes());
    body
}

/// The identity and route of a body, or why it is corrupt.
fn decode_body(body: &[u8]) -> Result<(MessageId, u8), String> {
    if body.len() < 25 {
        return Err(format!("body of {} bytes is too short", body.len()));
    }
    let (content, crc) = body.split_at(body.len() - 4);
    if crc32fast::hash(content).to_be_bytes() != crc {
        return Err(format!(
            "checksum mismatch in a body of {} bytes",
            body.len()
        ));
    }
    if &content[..4] != MAGIC {
        return Err("bad magic".into());
    }
    let producer = u32::from_be_bytes(content[4..8].try_into().expect("4 bytes"));
    let seq = u64::from_be_bytes(content[8..16].try_into().expect("8 bytes"));
    let route = content[16];
    let len = u32::from_be_bytes(content[17..21].try_into().expect("4 bytes")) as usize;
    if content.len() != 21 + len || usize::from(route) >= ROUTES.len() {
        return Err("inconsistent length or route".into());
    }
    Ok(((producer, seq), route))
}

// ---------------------------------------------------------------------------
// The model.

/// What the test knows about one (queue, message) pair.
#[derive(Debug, Clone, Copy, Default)]
struct Pair {
    /// The broker confirmed the publish (or recovered the message: on disk).
    confirmed: bool,
    /// An ack was handed to the client library before the kill.
    ack_sent: bool,
    /// The broker delivered it at least once.
    delivered: bool,
}

/// Counts of one cycle (pairs of queue and message).
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    published: u64,
    confirmed: u64,
    nacked: u64,
    delivered: u64,
    acks_sent: u64,
    check_acks: u64,
    recovered: u64,
    duplicates: u64,
    lost: u64,
    unconfirmed_recovered: u64,
    unconfirmed_gone: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.published += other.published;
        self.confirmed += other.confirmed;
        self.nacked += other.nacked;
        self.delivered += other.delivered;
        self.acks_sent += other.acks_sent;
        self.check_acks += other.check_acks;
        self.recovered += other.recovered;
        self.duplicates += other.duplicates;
        self.lost += other.lost;
        self.unconfirmed_recovered += other.unconfirmed_recovered;
        self.unconfirmed_gone += other.unconfirmed_gone;
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "published={} confirmed={} nacked={} delivered={} acks_sent={} check_acks={} \
             recovered={} duplicates={} lost={} unconfirmed_recovered={} unconfirmed_gone={}",
            self.published,
            self.confirmed,
            self.nacked,
            self.delivered,
            self.acks_sent,
            self.check_acks,
            self.recovered,
            self.duplicates,
            self.lost,
            self.unconfirmed_recovered,
            self.unconfirmed_gone
        )
    }
}

#[derive(Default)]
struct Model {
    /// Live pairs: published and not (yet) known to be gone.
    pairs: HashMap<(usize, MessageId), Pair>,
    /// Pairs that were checked and found gone: they must never come back.
    gone: HashSet<(usize, MessageId)>,
    /// Set (under this lock) just before the SIGKILL: no ack counts as sent after it.
    killed: bool,
    counts: Counts,
    /// Violations seen, with enough detail to debug them.
    errors: Vec<String>,
}

type Shared = Arc<Mutex<Model>>;

fn lock(model: &Shared) -> std::sync::MutexGuard<'_, Model> {
    model.lock().expect("model lock")
}

// ---------------------------------------------------------------------------
// Load: publishers and consumers.

async fn publisher(broker_url: String, producer: u32, mut rng: Rng, model: Shared) {
    let Ok(connection) = Connection::connect(&broker_url, Default::default()).await else {
        return;
    };
    let Ok(channel) = connection.create_channel().await else {
        return;
    };
    if channel.confirm_select(Default::default()).await.is_err() {
        return;
    }
    let mut window = std::collections::VecDeque::new();
    for seq in 0..MAX_PER_PUBLISHER {
        let route = rng.below(ROUTES.len() as u64) as u8;
        let (key, queues) = ROUTES[usize::from(route)];
        let body = encode_body(producer, seq, route, &mut rng);
        {
            // Known before it is sent, so a consumer can never see an unknown message.
            let mut model = lock(&model);
            for &queue in queues {
                model
                    .pairs
                    .insert((queue, (producer, seq)), Pair::default());
            }
            model.counts.published += queues.len() as u64;
        }
        let Ok(confirm) = channel
            .basic_publish(
                EXCHANGE.into(),
                key.into(),
                BasicPublishOptions::default(),
                &body,
                persistent(),
            )
            .await
        else {
            return;
        };
        window.push_back(((producer, seq), queues, confirm));
        while window.len() >= CONFIRM_WINDOW || (seq + 1 == MAX_PER_PUBLISHER && !window.is_empty())
        {
            let (id, queues, confirm) = window.pop_front().expect("not empty");
            let Ok(confirmation) = confirm.await else {
                return;
            };
            let mut model = lock(&model);
            if confirmation.is_ack() {
                for &queue in queues {
                    if let Some(pair) = model.pairs.get_mut(&(queue, id)) {
                        pair.confirmed = true;
                    }
                }
                model.counts.confirmed += queues.len() as u64;
            } else {
                model.counts.nacked += queues.len() as u64;
            }
        }
        if rng.chance(2) {
            // Now and then a pause, so that consumers catch up and queues drain.
            tokio::time::sleep(Duration::from_millis(rng.below(20))).await;
        }
    }
}

/// What a consumer does with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Ack,
    Requeue,
    Drop,
}

/// How a consumer connection behaves this cycle.
#[derive(Debug, Clone)]
struct ConsumerPlan {
    queues: Vec<usize>,
    prefetch: u16,
    slow: bool,
}

async fn consumer(broker_url: String, plan: ConsumerPlan, mut rng: Rng, model: Shared) {
    let Ok(connection) = Connection::connect(&broker_url, Default::default()).await else {
        return;
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, DeliveryResult)>();
    let mut channels: Vec<Channel> = Vec::new();
    for &queue in &plan.queues {
        let Ok(channel) = connection.create_channel().await else {
            return;
        };
        if channel
            .basic_qos(plan.prefetch, BasicQosOptions::default())
            .await
            .is_err()
        {
            return;
        }
        let Ok(consumer) = channel
            .basic_consume(
                QUEUES[queue].into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
        else {
            return;
        };
        let tx = tx.clone();
        // The delegate runs as each delivery completes, in order; the loop
        // below does the (possibly slow) work.
        consumer.set_delegate(move |delivery: DeliveryResult| {
            let _ = tx.send((queue, delivery));
            std::future::ready(())
        });
        channels.push(channel);
    }
    drop(tx);
    while let Some((queue, event)) = rx.recv().await {
        let Ok(Some(delivery)) = event else {
            // Cancelled or the connection died: this consumer is done.
            return;
        };
        if plan.slow {
            // Slow work happens before the decision: once a pair is marked
            // acked, the ack goes to lapin at once.
            tokio::time::sleep(Duration::from_millis(1 + rng.below(15))).await;
        }
        let action = {
            let mut model = lock(&model);
            if model.killed {
                // The broker is dead or dying: nothing this consumer does counts.
                return;
            }
            model.counts.delivered += 1;
            let action = match decode_body(&delivery.data) {
                Err(why) => {
                    let error = format!("live: corrupt delivery from {}: {why}", QUEUES[queue]);
                    model.errors.push(error);
                    Action::Drop
                }
                Ok((id, _)) => match model.pairs.get_mut(&(queue, id)) {
                    None => {
                        let error = format!(
                            "live: {} delivered {id:?}, which it should not hold",
                            QUEUES[queue]
                        );
                        model.errors.push(error);
                        Action::Drop
                    }
                    Some(pair) => {
                        let mut errors = Vec::new();
                        if pair.delivered && !delivery.redelivered {
                            errors.push(format!(
                                "live: {id:?} delivered again from {} with redelivered=false",
                                QUEUES[queue]
                            ));
                        }
                        if pair.ack_sent {
                            errors.push(format!(
                                "live: {id:?} delivered from {} after it was acked",
                                QUEUES[queue]
                            ));
                        }
                        pair.delivered = true;
                        // Marked under the lock, while `killed` is false: this
                        // ack counts as sent before the kill.
                        let action = if rng.chance(3) {
                            Action::Requeue
                        } else {
                            pair.ack_sent = true;
                            Action::Ack
                        };
                        model.errors.extend(errors);
                        action
                    }
                },
            };
            if action == Action::Ack {
                model.counts.acks_sent += 1;
            }
            action
        };
        let settled = match action {
            Action::Ack => delivery.acker.ack(BasicAckOptions::default()).await,
            Action::Requeue | Action::Drop => {
                // Requeue sometimes, to exercise redelivery; drop what the test
                // could not place (already reported) so that it does not loop.
                delivery
                    .acker
                    .nack(BasicNackOptions {
                        requeue: action == Action::Requeue,
                        ..Default::default()
                    })
                    .await
            }
        };
        if settled.is_err() {
            return;
        }
    }
    drop(channels);
}

// ---------------------------------------------------------------------------
// The check after a restart.

/// Every ready message of `queue`, in queue order, held unacknowledged on
/// `channel`: a consumer without prefetch limit takes as many as a passive
/// declare counts (much faster than one basic.get round trip each).
async fn take_all(channel: &Channel, queue: &str) -> Vec<lapin::message::Delivery> {
    let declared = ok(
        "passive queue.declare",
        channel.queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await;
    let count = declared.message_count() as usize;
    if count == 0 {
        return Vec::new();
    }
    let consumer = ok(
        "basic.consume",
        channel.basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    consumer.set_delegate(move |delivery: DeliveryResult| {
        let _ = tx.send(delivery);
        std::future::ready(())
    });
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        match tokio::time::timeout(OP_TIMEOUT, rx.recv()).await {
            Ok(Some(Ok(Some(delivery)))) => out.push(delivery),
            other => panic!(
                "{queue}: expected {count} messages, got {} and then {other:?}",
                out.len()
            ),
        }
    }
    ok(
        "basic.cancel",
        channel.basic_cancel(consumer.tag(), BasicCancelOptions::default()),
    )
    .await;
    out
}

/// Takes every message left in the queues, checks it against the model and
/// updates the model: recovered pairs are on disk again, missing ones gone.
/// `crashed` selects the redelivered rule. Acks a random share of what it took.
async fn check_recovery(broker: &Broker, model: &Shared, crashed: bool, rng: &mut Rng) -> Counts {
    let connection = broker.connect().await;
    let channel = ok("channel.open", connection.create_channel()).await;
    let mut counts = Counts::default();
    let mut present: HashSet<(usize, MessageId)> = HashSet::new();
    let mut taken = Vec::new();
    for (queue, name) in QUEUES.iter().enumerate() {
        let mut last_seq: HashMap<u32, u64> = HashMap::new();
        for delivery in take_all(&channel, name).await {
            let mut model = lock(model);
            let id = match decode_body(&delivery.data) {
                Ok((id, _)) => id,
                Err(why) => {
                    model
                        .errors
                        .push(format!("recovered: corrupt message in {name}: {why}"));
                    continue;
                }
            };
            if !present.insert((queue, id)) {
                model
                    .errors
                    .push(format!("recovered: {id:?} twice in {name}"));
            }
            if let Some(previous) = last_seq.insert(id.0, id.1)
                && previous >= id.1
            {
                model.errors.push(format!(
                    "recovered: order broken in {name}: producer {} seq {} after {previous}",
                    id.0, id.1
                ));
            }
            match model.pairs.get(&(queue, id)).copied() {
                None if model.gone.contains(&(queue, id)) => {
                    model.errors.push(format!(
                        "recovered: {id:?} came back to {name} after it was gone"
                    ));
                }
                None => {
                    model.errors.push(format!(
                        "recovered: {id:?} in {name}, where it was never routed"
                    ));
                }
                Some(pair) => {
                    counts.recovered += 1;
                    let flag_ok = if crashed {
                        delivery.redelivered
                    } else {
                        delivery.redelivered || !pair.delivered
                    };
                    if !flag_ok {
                        model.errors.push(format!(
                            "recovered: {id:?} in {name}: redelivered=false (delivered before: {})",
                            pair.delivered
                        ));
                    }
                    if pair.ack_sent {
                        counts.duplicates += 1;
                        if !delivery.redelivered {
                            model.errors.push(format!(
                                "recovered: acked {id:?} came back to {name} with redelivered=false"
                            ));
                        }
                    }
                    if !pair.confirmed {
                        counts.unconfirmed_recovered += 1;
                    }
                }
            }
            taken.push((queue, id, delivery));
        }
    }
    // Everything was taken (and is held unacked here): the queues are empty.
    for name in QUEUES {
        let extra = ok(
            "basic.get",
            channel.basic_get(name.into(), BasicGetOptions { no_ack: false }),
        )
        .await;
        assert!(
            extra.is_none(),
            "{name} held more than its message count said"
        );
    }
    {
        let mut model = lock(model);
        // A message is one record whatever its queues: never acked anywhere,
        // it is recovered in all of its queues or in none.
        let mut by_message: HashMap<MessageId, (usize, usize, bool)> = HashMap::new();
        for (&(queue, id), pair) in &model.pairs {
            let entry = by_message.entry(id).or_default();
            entry.0 += 1;
            entry.1 += usize::from(present.contains(&(queue, id)));
            entry.2 |= pair.ack_sent;
        }
        for (id, (known, found, acked)) in by_message {
            if !acked && found != 0 && found != known {
                model.errors.push(format!(
                    "recovered: {id:?} in only {found} of its {known} queues, never acked"
                ));
            }
        }
        // Pairs not found: lost if confirmed and never acked, otherwise gone for good.
        let missing: Vec<((usize, MessageId), Pair)> = model
            .pairs
            .iter()
            .filter(|(key, _)| !present.contains(key))
            .map(|(key, pair)| (*key, *pair))
            .collect();
        for (key, pair) in missing {
            if pair.confirmed && !pair.ack_sent {
                counts.lost += 1;
                model.errors.push(format!(
                    "LOST: confirmed {:?} missing from {} (never acked)",
                    key.1, QUEUES[key.0]
                ));
            } else if !pair.confirmed && !pair.ack_sent {
                counts.unconfirmed_gone += 1;
            }
            model.pairs.remove(&key);
            model.gone.insert(key);
        }
        // Everything recovered is on disk now, delivered (to this check) and unacked.
        for key in &present {
            if let Some(pair) = model.pairs.get_mut(key) {
                *pair = Pair {
                    confirmed: true,
                    ack_sent: false,
                    delivered: true,
                };
            }
        }
        model.killed = false;
    }
    // Ack about half; the rest return to their queues (redelivered) when the
    // channel closes, for the next cycle's consumers.
    for (queue, id, delivery) in &taken {
        if rng.chance(50) {
            {
                let mut model = lock(model);
                if let Some(pair) = model.pairs.get_mut(&(*queue, *id)) {
                    pair.ack_sent = true;
                }
            }
            counts.check_acks += 1;
            ok("basic.ack", delivery.acker.ack(BasicAckOptions::default())).await;
        }
    }
    ok("channel.close", channel.close(200, "checked".into())).await;
    let _ = connection.close(200, "checked".into()).await;
    counts
}

/// Declares the durable topology (idempotent: it survives restarts anyway).
async fn declare_topology(broker: &Broker) {
    let connection = broker.connect().await;
    let channel = ok("channel.open", connection.create_channel()).await;
    declare_exchange(&channel, EXCHANGE, ExchangeKind::Direct, true).await;
    for name in QUEUES {
        declare_durable_queue(&channel, name).await;
    }
    for (key, queues) in ROUTES {
        for &queue in queues {
            bind(&channel, QUEUES[queue], EXCHANGE, key).await;
        }
    }
    let _ = connection.close(200, "declared".into()).await;
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

/// Fails the test with the seed and the first violations, if there are any.
/// `log` is what the brokers of the cycle wrote; its warnings and errors are
/// shown with the violations, as they usually explain them.
fn assert_no_errors(model: &Shared, seed: u64, when: &str, log: &str) {
    let model = lock(model);
    if model.errors.is_empty() {
        return;
    }
    let shown: Vec<&String> = model.errors.iter().take(25).collect();
    let notable: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .take(40)
        .collect();
    panic!(
        "{when}: {} violation(s) (seed {seed}, rerun with WARREN_CRASH_SEED={seed}):\n{}\n\
         broker warnings and errors this cycle:\n{}",
        model.errors.len(),
        shown
            .iter()
            .map(|e| format!("  {e}"))
            .collect::<Vec<_>>()
            .join("\n"),
        notable.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn confirmed_messages_survive_repeated_sigkill() {
    let cycles = env_number("WARREN_CRASH_CYCLES").unwrap_or(3);
    let seed = env_number("WARREN_CRASH_SEED").unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970");
        now.as_nanos() as u64 ^ u64::from(std::process::id())
    });
    println!("crash test: {cycles} cycles, seed {seed} (rerun with WARREN_CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let dir = DataDir::new("crash");
    let model: Shared = Arc::default();
    let mut total = Counts::default();
    let started = Instant::now();
    // Vary the store's settings per cycle: group commit on every batch or on
    // an interval, and a small in-memory limit so that queues page bodies out
    // to the store and read them back. The broker started after a kill does
    // the check and then serves the next cycle, so the run never stops
    // cleanly between cycles.
    let settings = |cycle: u64| -> [(&'static str, &'static str); 2] {
        [
            (
                "WARREN_SYNC_INTERVAL_MS",
                if cycle % 3 == 2 { "3" } else { "0" },
            ),
            (
                "WARREN_QUEUE_IN_MEMORY_LIMIT",
                if cycle % 2 == 1 { "16" } else { "4096" },
            ),
        ]
    };
    let mut broker = Broker::start_with_env(&dir, &settings(0));
    declare_topology(&broker).await;

    for cycle in 0..cycles {
        let cycle_started = Instant::now();
        lock(&model).counts = Counts::default();
        let url = broker.url();
        let mut tasks: Vec<JoinHandle<()>> = Vec::new();
        for p in 0..PUBLISHERS {
            let producer = (cycle * 16 + p as u64) as u32;
            tasks.push(tokio::spawn(publisher(
                url.clone(),
                producer,
                rng.fork(),
                model.clone(),
            )));
        }
        for _ in 0..CONSUMERS {
            let mut queues: Vec<usize> = (0..QUEUES.len()).filter(|_| rng.chance(50)).collect();
            if queues.is_empty() {
                queues.push(rng.below(QUEUES.len() as u64) as usize);
            }
            let plan = ConsumerPlan {
                queues,
                prefetch: [1, 5, 20, 100][rng.below(4) as usize],
                slow: rng.chance(35),
            };
            tasks.push(tokio::spawn(consumer(
                url.clone(),
                plan,
                rng.fork(),
                model.clone(),
            )));
        }
        // The random moment: anywhere from connection set-up to well into the load.
        let delay = Duration::from_millis(250 + rng.below(1750));
        tokio::time::sleep(delay).await;
        // Every fourth cycle ends with a clean stop instead, under the same
        // load: SIGTERM must keep as much as SIGKILL, and set the flags right.
        let clean = cycle % 4 == 3;
        lock(&model).killed = true;
        if clean {
            broker.stop_cleanly();
        } else {
            broker.kill();
        }
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = tokio::time::timeout(OP_TIMEOUT, task).await;
        }
        let mut counts = lock(&model).counts;
        let killed_log = broker.output();

        broker = Broker::start_with_env(&dir, &settings(cycle + 1));
        let checked = check_recovery(&broker, &model, !clean, &mut rng).await;
        counts.recovered = checked.recovered;
        counts.duplicates = checked.duplicates;
        counts.lost = checked.lost;
        counts.unconfirmed_recovered = checked.unconfirmed_recovered;
        counts.unconfirmed_gone = checked.unconfirmed_gone;
        counts.check_acks = checked.check_acks;
        total.add(&counts);
        let [(_, sync_interval), (_, in_memory)] = settings(cycle);
        println!(
            "cycle {cycle}: {} after {} ms (sync_interval_ms={sync_interval}, \
             in_memory_limit={in_memory}), {:.1} s: {counts}",
            if clean { "SIGTERM" } else { "SIGKILL" },
            delay.as_millis(),
            cycle_started.elapsed().as_secs_f64()
        );
        let log = format!("{killed_log}\n--- restarted ---\n{}", broker.output());
        assert_no_errors(&model, seed, &format!("cycle {cycle}"), &log);
    }

    // Finally a clean stop and start: nothing lost there either.
    broker.stop_cleanly();
    broker = Broker::start(&dir);
    let last = check_recovery(&broker, &model, false, &mut rng).await;
    println!("after a clean restart: {last}");
    broker.stop_cleanly();
    assert_no_errors(&model, seed, "clean restart", &broker.output());
    println!(
        "total over {cycles} cycles in {:.1} s: {total}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(total.lost, 0, "confirmed messages lost (seed {seed})");
}

// ---------------------------------------------------------------------------
// Deterministic kills right after a promise.

/// The bodies in `queue` after restarting the killed broker (auto-ack).
async fn bodies_after_restart(dir: &DataDir, queue: &str) -> Vec<Vec<u8>> {
    let mut broker = Broker::start(dir);
    let bodies = {
        let connection = broker.connect().await;
        let channel = ok("channel.open", connection.create_channel()).await;
        drain_bodies(&channel, queue).await
    };
    broker.stop_cleanly();
    bodies
}

/// A publisher confirm is a promise that the message is on disk: SIGKILL the
/// instant it arrives, under both sync policies (with a long interval the
/// confirm is late, but the promise is the same).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_confirmed_just_before_sigkill_survives() {
    for interval in ["0", "500"] {
        let dir = DataDir::new("crash-confirm");
        let mut broker = Broker::start_with_env(&dir, &[("WARREN_SYNC_INTERVAL_MS", interval)]);
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        declare_durable_queue(&channel, "confirm.q").await;
        let mut expected = Vec::new();
        for i in 0..20 {
            let body = format!("confirmed-{i}").into_bytes();
            publish_confirmed(&channel, "", "confirm.q", &body, persistent()).await;
            expected.push(body);
        }
        broker.kill();
        drop((channel, connection));
        assert_eq!(
            summaries(&bodies_after_restart(&dir, "confirm.q").await),
            summaries(&expected),
            "sync_interval_ms={interval}"
        );
    }
}

/// tx.commit-ok promises the transaction's persistent publishes are on disk;
/// publishes of a transaction not committed, or rolled back, are not kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_transaction_survives_sigkill() {
    let dir = DataDir::new("crash-tx");
    let mut broker = Broker::start(&dir);
    let connection = broker.connect().await;
    let setup = ok("channel.open", connection.create_channel()).await;
    declare_durable_queue(&setup, "tx.q").await;
    let channel = ok("channel.open", connection.create_channel()).await;
    ok("tx.select", channel.tx_select()).await;
    let publish = |body: &'static str| {
        channel.basic_publish(
            "".into(),
            "tx.q".into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            persistent(),
        )
    };
    ok("publish", publish("rolled-back")).await;
    ok("tx.rollback", channel.tx_rollback()).await;
    for body in ["committed-0", "committed-1", "committed-2"] {
        ok("publish", publish(body)).await;
    }
    ok("tx.commit", channel.tx_commit()).await;
    ok("publish", publish("uncommitted")).await;
    broker.kill();
    drop((channel, setup, connection));
    assert_eq!(
        summaries(&bodies_after_restart(&dir, "tx.q").await),
        summaries(&["committed-0", "committed-1", "committed-2"])
    );
}

/// queue.declare-ok, exchange.declare-ok and queue.bind-ok for durable
/// objects come after the definitions are on disk: SIGKILL right after them
/// loses none (and a deletion acknowledged just before is not undone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_declarations_survive_sigkill_right_after_their_ok() {
    let dir = DataDir::new("crash-declare");
    let mut broker = Broker::start(&dir);
    let connection = broker.connect().await;
    let channel = confirm_channel(&connection).await;
    declare_durable_queue(&channel, "declared.doomed").await;
    declare_exchange(&channel, "declared.x", ExchangeKind::Fanout, true).await;
    declare_durable_queue(&channel, "declared.q").await;
    bind(&channel, "declared.q", "declared.x", "").await;
    ok(
        "queue.delete",
        channel.queue_delete("declared.doomed".into(), Default::default()),
    )
    .await;
    broker.kill();
    drop((channel, connection));

    let mut broker = Broker::start(&dir);
    {
        let connection = broker.connect().await;
        assert!(exchange_exists(&connection, "declared.x").await);
        assert!(queue_exists(&connection, "declared.q").await);
        assert!(!queue_exists(&connection, "declared.doomed").await);
        let channel = confirm_channel(&connection).await;
        publish_confirmed(&channel, "declared.x", "", b"routed", persistent()).await;
        assert_eq!(
            summaries(&drain_bodies(&channel, "declared.q").await),
            summaries(&[b"routed"])
        );
    }
    broker.stop_cleanly();
}
