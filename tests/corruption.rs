//! Damaged data directories: the broker starts, says what it found, and
//! serves every intact message.
//!
//! Each test fills a data directory through a clean run of the real `warren`
//! binary (see `common/process.rs`), stops it with SIGTERM, damages the files
//! the way disks and crashes do, starts the broker again and checks its log
//! (captured from the child) and what it serves:
//!
//! - (a) a segment cut off mid-record, or followed by zeroes: a warning about
//!   the truncation, every record before the damage served, and the file cut
//!   back to its last intact record;
//! - (b) bytes flipped inside a record in the middle of a segment (payload,
//!   length field): an error, the records before and after served, the
//!   damaged one gone;
//! - (c) a deleted segment file: its messages are gone, every other segment
//!   and all definitions are served; a deleted segment's leftover ack file
//!   must not settle messages later written under the same segment number;
//! - (d) garbage in an ack file, or a torn ack record: the broker starts; a
//!   damaged ack can only bring a message back, never lose one;
//! - (e) definitions.json corrupt: the broker starts without definitions,
//!   says why, moves the file aside and leaves the message store untouched, so
//!   restoring the file brings every message back; definitions.json missing:
//!   the broker starts as a fresh one and says so when stored messages belong
//!   to queues it does not know; a damaged clean-shutdown marker counts as an
//!   unclean stop;
//! - (f) a damaged record whose body contains bytes that look like a record
//!   must not turn into a message;
//! - (g) a paged-out message that cannot be read back for a moment (out of
//!   file descriptors) must stay in its queue.

#[path = "common/process.rs"]
mod process;

use std::fs::OpenOptions;
use std::path::Path;

use lapin::ExchangeKind;
use lapin::options::BasicAckOptions;
use process::*;

const EXCHANGE: &str = "corrupt.x";
const QUEUE: &str = "corrupt.q";

/// The body of message `i`: its index, then filler so records have some size.
fn body(i: usize) -> Vec<u8> {
    let mut body = format!("message-{i:04}|").into_bytes();
    body.resize(200 + (i * 37) % 300, b'a' + (i % 26) as u8);
    body
}

/// Declares the durable topology and publishes `bodies` persistently (confirmed).
async fn publish(broker: &Broker, bodies: &[Vec<u8>]) {
    let connection = broker.connect().await;
    let channel = confirm_channel(&connection).await;
    declare_exchange(&channel, EXCHANGE, ExchangeKind::Direct, true).await;
    declare_durable_queue(&channel, QUEUE).await;
    bind(&channel, QUEUE, EXCHANGE, "key").await;
    for body in bodies {
        publish_confirmed(&channel, EXCHANGE, "key", body, persistent()).await;
    }
}

/// A data directory holding `count` persistent messages in one segment, cleanly stopped.
async fn populated(label: &str, count: usize) -> (DataDir, Vec<Vec<u8>>) {
    let dir = DataDir::new(label);
    let bodies: Vec<Vec<u8>> = (0..count).map(body).collect();
    let mut broker = Broker::start(&dir);
    publish(&broker, &bodies).await;
    broker.stop_cleanly();
    (dir, bodies)
}

/// The records of a segment file as (offset, total length including the 8-byte header).
fn records(path: &Path) -> Vec<(usize, usize)> {
    let data = std::fs::read(path).expect("read segment");
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= data.len() {
        let len = u32::from_be_bytes(data[at..at + 4].try_into().expect("4 bytes")) as usize;
        if at + 8 + len > data.len() {
            break;
        }
        out.push((at, 8 + len));
        at += 8 + len;
    }
    assert_eq!(at, data.len(), "segment {} does not parse", path.display());
    out
}

/// Where `needle` starts in `data`.
fn find(data: &[u8], needle: &[u8]) -> usize {
    data.windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

fn flip_byte(path: &Path, offset: usize) {
    let mut data = std::fs::read(path).expect("read file");
    data[offset] ^= 0x5A;
    std::fs::write(path, data).expect("write file");
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").len()
}

/// The bodies in the queue (as [`summaries`]), taken with auto-ack.
async fn served(broker: &Broker) -> Vec<String> {
    let connection = broker.connect().await;
    let channel = confirm_channel(&connection).await;
    summaries(&drain_bodies(&channel, QUEUE).await)
}

/// Asserts that some line of the output has `level` and mentions `needle`.
fn assert_logged(broker: &Broker, level: &str, needle: &str) {
    let output = broker.output();
    assert!(
        output
            .lines()
            .any(|l| l.contains(level) && l.contains(needle)),
        "expected a {level} line mentioning {needle:?}; output:\n{output}"
    );
}

// ---------------------------------------------------------------------------
// (a) Torn tails.

/// The last record cut in half (a crash mid-write): a warning, the file cut
/// back to the last intact record, every earlier message served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_truncated_mid_record_keeps_every_intact_message() {
    let (dir, bodies) = populated("corrupt-torn", 20).await;
    let segment = dir.segments().pop().expect("a segment");
    let records = records(&segment);
    assert_eq!(records.len(), 20);
    let (last, len) = records[19];
    let file = OpenOptions::new().write(true).open(&segment).expect("open");
    file.set_len((last + len / 2) as u64).expect("truncate");
    drop(file);

    let mut broker = Broker::start(&dir);
    assert_logged(&broker, "WARN", "truncated");
    // Recovery is over once the broker listens; check before consuming, as a
    // fully settled segment is deleted.
    assert_eq!(file_len(&segment), last as u64, "torn tail not cut off");
    assert_eq!(served(&broker).await, summaries(&bodies[..19]));
    broker.stop_cleanly();
}

/// A record header cut short (fewer than 8 bytes of it on disk).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_truncated_inside_a_record_header() {
    let (dir, bodies) = populated("corrupt-torn-header", 5).await;
    let segment = dir.segments().pop().expect("a segment");
    let (last, _) = records(&segment)[4];
    let file = OpenOptions::new().write(true).open(&segment).expect("open");
    file.set_len((last + 3) as u64).expect("truncate");
    drop(file);

    let mut broker = Broker::start(&dir);
    assert_logged(&broker, "WARN", "truncated");
    assert_eq!(served(&broker).await, summaries(&bodies[..4]));
    broker.stop_cleanly();
}

/// Zeroes after the last record (a file extended but never written, as some
/// filesystems leave it after a power cut): all messages intact, tail cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zeroes_after_the_last_record_are_cut_off() {
    let (dir, bodies) = populated("corrupt-zeroes", 5).await;
    let segment = dir.segments().pop().expect("a segment");
    let intact = file_len(&segment);
    let mut data = std::fs::read(&segment).expect("read");
    data.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&segment, data).expect("write");

    let mut broker = Broker::start(&dir);
    assert_logged(&broker, "WARN", "truncated");
    assert_eq!(file_len(&segment), intact, "zeroes not cut off");
    assert_eq!(served(&broker).await, summaries(&bodies));
    broker.stop_cleanly();
}

/// After a tail truncation the broker keeps working: new messages are kept
/// after the surviving ones, across another restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_keeps_working_after_a_truncated_tail() {
    let (dir, bodies) = populated("corrupt-torn-continue", 6).await;
    let segment = dir.segments().pop().expect("a segment");
    let (last, len) = records(&segment)[5];
    let file = OpenOptions::new().write(true).open(&segment).expect("open");
    file.set_len((last + len - 1) as u64).expect("truncate");
    drop(file);

    let mut broker = Broker::start(&dir);
    let more: Vec<Vec<u8>> = (100..103).map(body).collect();
    publish(&broker, &more).await;
    broker.stop_cleanly();
    let mut broker = Broker::start(&dir);
    let expected: Vec<Vec<u8>> = bodies[..5].iter().chain(&more).cloned().collect();
    assert_eq!(served(&broker).await, summaries(&expected));
    broker.stop_cleanly();
}

// ---------------------------------------------------------------------------
// (b) Damage in the middle of a segment.

/// A flipped byte in the payload of a middle record: an error log, that one
/// message gone, everything before and after it served in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_in_a_middle_record_loses_only_that_record() {
    let (dir, bodies) = populated("corrupt-middle", 20).await;
    let segment = dir.segments().pop().expect("a segment");
    let data = std::fs::read(&segment).expect("read");
    // Damage the body of message 7, well inside its record.
    let at = find(&data, b"message-0007|") + 40;
    flip_byte(&segment, at);

    let mut broker = Broker::start(&dir);
    assert_logged(&broker, "ERROR", "corrupt");
    let expected: Vec<Vec<u8>> = bodies
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 7)
        .map(|(_, b)| b.clone())
        .collect();
    assert_eq!(served(&broker).await, summaries(&expected));
    broker.stop_cleanly();

    // The survivors were acked (auto-ack above): nothing comes back, and the
    // damaged record is not resurrected either.
    let mut broker = Broker::start(&dir);
    assert!(served(&broker).await.is_empty());
    broker.stop_cleanly();
}

/// A damaged length field in a middle record (it now points far beyond the
/// record): the same outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_length_field_in_a_middle_record_loses_only_that_record() {
    let (dir, bodies) = populated("corrupt-length", 12).await;
    let segment = dir.segments().pop().expect("a segment");
    let (offset, _) = records(&segment)[4];
    // The most significant length byte: the length becomes ~1.5 GB.
    flip_byte(&segment, offset);

    let mut broker = Broker::start(&dir);
    assert_logged(&broker, "ERROR", "corrupt");
    let expected: Vec<Vec<u8>> = bodies
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 4)
        .map(|(_, b)| b.clone())
        .collect();
    assert_eq!(served(&broker).await, summaries(&expected));
    broker.stop_cleanly();
}

// ---------------------------------------------------------------------------
// (c) Missing segments.

/// Each start opens a new segment, so two runs give two segments. Deleting
/// the first loses its messages only; definitions and the second remain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_segment_loses_only_its_own_messages() {
    let dir = DataDir::new("corrupt-deleted-segment");
    let first: Vec<Vec<u8>> = (0..5).map(body).collect();
    let second: Vec<Vec<u8>> = (5..10).map(body).collect();
    for bodies in [&first, &second] {
        let mut broker = Broker::start(&dir);
        publish(&broker, bodies).await;
        broker.stop_cleanly();
    }
    let segments = dir.segments();
    assert_eq!(segments.len(), 2, "one segment per run: {segments:?}");
    std::fs::remove_file(&segments[0]).expect("delete segment");
    let ack = segments[0].with_extension("ack");
    let _ = std::fs::remove_file(ack);

    let mut broker = Broker::start(&dir);
    assert_eq!(served(&broker).await, summaries(&second));
    // The definitions are all there: the binding still routes.
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        publish_confirmed(&channel, EXCHANGE, "key", b"after", persistent()).await;
        assert_eq!(drain_bodies(&channel, QUEUE).await, vec![b"after".to_vec()]);
    }
    broker.stop_cleanly();
}

/// The only segment deleted: the broker starts with the queue empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_only_segment_leaves_an_empty_queue() {
    let (dir, _) = populated("corrupt-only-segment", 5).await;
    for segment in dir.segments() {
        std::fs::remove_file(segment).expect("delete segment");
    }
    let mut broker = Broker::start(&dir);
    let connection = broker.connect().await;
    assert!(queue_exists(&connection, QUEUE).await);
    assert!(exchange_exists(&connection, EXCHANGE).await);
    assert!(served(&broker).await.is_empty());
    drop(connection);
    broker.stop_cleanly();
}

/// A segment deleted without its ack file (what a crash between the two
/// unlinks of a settled segment leaves behind, or an operator deleting the
/// .seg). When the store later writes a new segment with the same number,
/// the stale ack records must not settle the new messages at the same
/// offsets: they were confirmed and never acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_ack_file_does_not_settle_new_messages_in_a_reused_segment() {
    let dir = DataDir::new("corrupt-stale-ack");
    // Same-sized bodies, so the new records sit at the old records' offsets.
    let old: Vec<Vec<u8>> = (0..4).map(|i| format!("old-{i}").into_bytes()).collect();
    let new: Vec<Vec<u8>> = (0..4).map(|i| format!("new-{i}").into_bytes()).collect();
    let mut broker = Broker::start(&dir);
    publish(&broker, &old).await;
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        // Ack old-0 and old-1: ack records for the offsets of the first two records.
        let got = get_all(&channel, QUEUE, false).await;
        assert_eq!(got.len(), 4);
        for delivery in &got[..2] {
            ok("basic.ack", delivery.acker.ack(BasicAckOptions::default())).await;
        }
        ok("channel.close", channel.close(200, "bye".into())).await;
    }
    broker.stop_cleanly();
    let segments = dir.segments();
    assert_eq!(segments.len(), 1);
    assert_eq!(
        file_len(&segments[0].with_extension("ack")),
        2 * 16,
        "two acks on disk"
    );
    // The .seg goes, its .ack stays.
    std::fs::remove_file(&segments[0]).expect("delete segment");

    // The store has no segment now, so the next one written reuses the number.
    let mut broker = Broker::start(&dir);
    publish(&broker, &new).await;
    broker.stop_cleanly();
    let mut broker = Broker::start(&dir);
    assert_eq!(
        served(&broker).await,
        summaries(&new),
        "confirmed, never-acked messages were settled by a stale ack file"
    );
    broker.stop_cleanly();
}

// ---------------------------------------------------------------------------
// (d) Damaged ack files.

/// Garbage in an ack file: the broker starts and warns; every message whose
/// ack record was destroyed may come back, none that was unacked is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_ack_file_only_brings_messages_back() {
    let (dir, bodies) = populated("corrupt-ack-garbage", 10).await;
    let segment = dir.segments().pop().expect("a segment");
    // Ack the first three in a second run; they go to that segment's ack file.
    let mut broker = Broker::start(&dir);
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        let got = get_all(&channel, QUEUE, false).await;
        for delivery in &got[..3] {
            ok("basic.ack", delivery.acker.ack(BasicAckOptions::default())).await;
        }
        ok("channel.close", channel.close(200, "bye".into())).await;
    }
    broker.stop_cleanly();
    let ack = segment.with_extension("ack");
    assert_eq!(file_len(&ack), 3 * 16, "three ack records");
    // Overwrite the middle record with garbage and add a torn half record.
    let mut data = std::fs::read(&ack).expect("read acks");
    for byte in &mut data[16..32] {
        *byte = 0xA5;
    }
    data.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7]);
    std::fs::write(&ack, data).expect("write acks");

    let mut broker = Broker::start(&dir);
    assert_logged(&broker, "WARN", "ack");
    let got = served(&broker).await;
    // message-0001's ack was destroyed: it is back; 0 and 2 stay acked.
    let expected: Vec<Vec<u8>> = std::iter::once(bodies[1].clone())
        .chain(bodies[3..].iter().cloned())
        .collect();
    assert_eq!(got, summaries(&expected));
    broker.stop_cleanly();
}

/// An ack file of pure garbage (not even whole records).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_file_of_pure_garbage() {
    let (dir, bodies) = populated("corrupt-ack-pure", 4).await;
    let segment = dir.segments().pop().expect("a segment");
    let garbage: Vec<u8> = (0..1000u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(segment.with_extension("ack"), garbage).expect("write acks");
    let mut broker = Broker::start(&dir);
    assert_eq!(served(&broker).await, summaries(&bodies));
    broker.stop_cleanly();
}

// ---------------------------------------------------------------------------
// (e) Definitions and the clean-shutdown marker.

/// A corrupt definitions.json: Warren still starts (it always does), logs an
/// error naming the file, moves it aside, and leaves the message store exactly
/// as it was: the stored messages belong to no known queue now, and are kept
/// rather than discarded, so that restoring the file brings everything back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_definitions_start_empty_and_keep_the_store() {
    let (dir, bodies) = populated("corrupt-definitions", 5).await;
    let good = std::fs::read(dir.definitions()).expect("read definitions");
    let before: Vec<(std::path::PathBuf, Vec<u8>)> = dir
        .segments()
        .into_iter()
        .chain(dir.ack_files())
        .map(|p| {
            let data = std::fs::read(&p).expect("read");
            (p, data)
        })
        .collect();
    std::fs::write(dir.definitions(), &good[..good.len() / 2]).expect("write definitions");

    let mut broker = Broker::start(&dir);
    let output = broker.output();
    assert!(
        output
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("definitions.json")),
        "the error should name the file; output:\n{output}"
    );
    assert!(
        dir.path().join("definitions.json.corrupt").exists(),
        "the damaged file is kept for the operator"
    );
    {
        let connection = broker.connect().await;
        assert!(!queue_exists(&connection, QUEUE).await);
    }
    broker.stop_cleanly();
    for (path, data) in &before {
        assert!(
            std::fs::read(path).is_ok_and(|now| now == *data),
            "{} changed",
            path.display()
        );
    }
    // Repaired, everything is back.
    std::fs::write(dir.definitions(), &good).expect("restore definitions");
    let mut broker = Broker::start(&dir);
    assert_eq!(served(&broker).await, summaries(&bodies));
    broker.stop_cleanly();
}

/// A missing definitions.json: the broker starts as a fresh broker (the
/// default vhost and `amq.*` exchanges), and the old queue is unknown. Its
/// stored messages belong to no known queue now; that must at least be
/// logged (warning or error), and a queue declared afterwards never inherits them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_definitions_start_a_fresh_broker() {
    let (dir, _) = populated("corrupt-no-definitions", 3).await;
    std::fs::remove_file(dir.definitions()).expect("delete definitions");
    let mut broker = Broker::start(&dir);
    let output = broker.output();
    assert!(
        output
            .lines()
            .any(|l| l.contains("WARN") || l.contains("ERROR")),
        "3 stored messages of unknown queues were passed over without a word; output:\n{output}"
    );
    {
        let connection = broker.connect().await;
        assert!(!queue_exists(&connection, QUEUE).await);
        assert!(exchange_exists(&connection, "amq.direct").await);
        let channel = confirm_channel(&connection).await;
        declare_durable_queue(&channel, "fresh.q").await;
        publish_confirmed(&channel, "", "fresh.q", b"fresh", persistent()).await;
    }
    broker.stop_cleanly();
    let mut broker = Broker::start(&dir);
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        assert_eq!(
            drain_bodies(&channel, "fresh.q").await,
            vec![b"fresh".to_vec()]
        );
    }
    broker.stop_cleanly();
}

/// A damaged clean-shutdown marker counts as an unclean stop: the broker
/// starts and every recovered message is marked redelivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_clean_shutdown_marker_means_unclean_stop() {
    let (dir, bodies) = populated("corrupt-marker", 3).await;
    let marker = dir.path().join("clean-shutdown.json");
    assert!(marker.exists(), "a clean stop leaves its marker");
    std::fs::write(&marker, b"{not json").expect("write marker");
    let mut broker = Broker::start(&dir);
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        let got = get_all(&channel, QUEUE, true).await;
        assert_eq!(
            got.iter().map(|d| d.data.clone()).collect::<Vec<_>>(),
            bodies
        );
        assert!(got.iter().all(|d| d.redelivered), "all redelivered");
    }
    broker.stop_cleanly();
}

// ---------------------------------------------------------------------------
// (f) Record look-alikes inside bodies.

/// The exact record the store writes for `body` published persistently to
/// `queue`, taken from a scratch data directory where `queues` were declared
/// in this order. Queue identities follow declaration order, so the record
/// names the same queue in another directory declared the same way, and the
/// test never has to know the record format.
async fn real_record(queues: &[&str], queue: &str, body: &[u8]) -> (Vec<u8>, u64) {
    let scratch = DataDir::new("corrupt-scratch");
    let mut broker = Broker::start(&scratch);
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        for name in queues {
            declare_durable_queue(&channel, name).await;
        }
        publish_confirmed(&channel, "", queue, body, persistent()).await;
    }
    broker.stop_cleanly();
    let segment = scratch.segments().pop().expect("a segment");
    let data = std::fs::read(&segment).expect("read segment");
    let (at, len) = records(&segment)[0];
    (data[at..at + len].to_vec(), queue_id(&scratch, queue))
}

/// The store identity of a durable queue, from definitions.json.
fn queue_id(dir: &DataDir, name: &str) -> u64 {
    let text = std::fs::read_to_string(dir.definitions()).expect("read definitions");
    let json: serde_json::Value = serde_json::from_str(&text).expect("definitions are JSON");
    json["vhosts"]["/"]["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .find(|q| q["name"] == name)
        .and_then(|q| q["id"].as_u64())
        .expect("queue id")
}

/// Publishes a "carrier" message whose body holds a genuine record for
/// victim.q (a queue nobody publishes to), damages the carrier's record at
/// `damage` bytes from its start, restarts, and checks that the look-alike
/// did not become a message while the records around the carrier survived.
async fn look_alike_survives_damage(label: &str, damage: usize) {
    let (forged, forged_queue) = real_record(&["victim.q"], "victim.q", b"FORGED MESSAGE").await;
    let dir = DataDir::new(label);
    let mut broker = Broker::start(&dir);
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        declare_durable_queue(&channel, "victim.q").await;
    }
    assert_eq!(
        queue_id(&dir, "victim.q"),
        forged_queue,
        "same queue identity"
    );
    let mut carrier = b"carrier|".to_vec();
    carrier.extend_from_slice(&forged);
    carrier.extend_from_slice(b"|end of carrier");
    publish(&broker, &[body(0), carrier, body(2)]).await;
    broker.stop_cleanly();
    let segment = dir.segments().pop().expect("a segment");
    let (carrier_at, _) = records(&segment)[1];
    flip_byte(&segment, carrier_at + damage);

    let mut broker = Broker::start(&dir);
    assert_logged(&broker, "ERROR", "corrupt");
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        let victim = drain_bodies(&channel, "victim.q").await;
        assert!(
            victim.is_empty(),
            "a message appeared in victim.q, which nobody published to: {:?}",
            summaries(&victim)
        );
        assert_eq!(
            summaries(&drain_bodies(&channel, QUEUE).await),
            summaries(&[body(0), body(2)])
        );
    }
    broker.stop_cleanly();
}

/// The carrier's CRC damaged: its length still leads to the next record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_look_alike_is_not_recovered_when_a_crc_is_damaged() {
    look_alike_survives_damage("corrupt-lookalike-crc", 4).await;
}

/// The carrier's length damaged: the reader must search for the next record,
/// and must not take the look-alike inside the carrier's body for one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_look_alike_is_not_recovered_when_a_length_is_damaged() {
    look_alike_survives_damage("corrupt-lookalike-length", 0).await;
}

// ---------------------------------------------------------------------------
// (g) Read errors.

/// A paged-out message whose body cannot be read back for a moment (here:
/// the broker has run out of file descriptors, as under a connection storm)
/// must stay in its queue. Treating the failed read as corruption and
/// settling the message loses confirmed messages for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_read_failure_does_not_drop_paged_out_messages() {
    let dir = DataDir::new("corrupt-emfile");
    // One message per queue in memory: the rest are read back from the store.
    let env = [("WARREN_QUEUE_IN_MEMORY_LIMIT", "1")];
    let mut broker = Broker::start_with_limits(&dir, &env, Some(64));
    let bodies: Vec<Vec<u8>> = (0..5).map(body).collect();
    let connection = broker.connect().await;
    let channel = confirm_channel(&connection).await;
    declare_durable_queue(&channel, "emfile.q").await;
    for body in &bodies {
        publish_confirmed(&channel, "", "emfile.q", body, persistent()).await;
    }

    // Use up the broker's descriptors with idle sockets (the kernel completes
    // the connections; the broker accepts until it hits its limit).
    let mut hogs = Vec::new();
    for _ in 0..100 {
        hogs.push(std::net::TcpStream::connect(broker.addr()).expect("connect"));
    }
    assert!(
        broker.wait_for_output("accept failed", std::time::Duration::from_secs(10)),
        "the broker never ran out of descriptors; output:\n{}",
        broker.output()
    );
    // Take what the broker will give now, without acking anything.
    let during = get_all(&channel, "emfile.q", false).await;
    drop(hogs);
    broker.stop_cleanly();
    let log = broker.output();
    drop((channel, connection));

    let mut broker = Broker::start(&dir);
    let after = {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        drain_bodies(&channel, "emfile.q").await
    };
    broker.stop_cleanly();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(
        after.len(),
        bodies.len(),
        "{} of {} confirmed, never-acked messages lost ({} delivered while out of \
         descriptors); broker errors:\n{}",
        bodies.len() - after.len(),
        bodies.len(),
        during.len(),
        errors.join("\n")
    );
    assert_eq!(summaries(&after), summaries(&bodies));
}
