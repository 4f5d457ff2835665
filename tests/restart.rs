//! Clean restarts: what a SIGTERM-and-start-again on the same data directory
//! keeps, and what it drops.
//!
//! Each test runs the real `warren` binary as a child process (see
//! `common/process.rs`), talks to it with lapin, stops it with SIGTERM and
//! starts it again on the same data directory. Covered:
//!
//! - persistent messages in durable queues come back byte for byte: bodies
//!   (empty, binary, multi-frame), every basic property and every header
//!   field type, exchange and routing key, in publish order, and survive a
//!   second restart;
//! - durable exchanges (type, flags), durable queues (arguments, flags),
//!   queue and exchange-to-exchange bindings survive; unbinding and queue
//!   deletion survive too; non-durable queues, exchanges and bindings do not;
//! - transient messages in a durable queue, and persistent messages in a
//!   non-durable queue, are neither recovered nor written to disk;
//! - acked (and purged) messages stay gone; delivered-but-unacked ones come
//!   back `redelivered = true`, never-delivered ones `redelivered = false`,
//!   and those flags survive a further clean restart, while a kill -9 makes
//!   every recovered message `redelivered = true`;
//! - rejected and nacked (without requeue) messages stay gone, recovered
//!   (basic.recover) ones come back redelivered;
//! - a message routed to two durable queues comes back in both, and an ack in
//!   one queue does not settle it in the other;
//! - queues longer than the broker's in-memory limit (bodies paged out to the
//!   store) recover the same way, and paged-out messages read back while the
//!   store is still writing them are never dropped;
//! - a per-message TTL keeps running across a restart, as in RabbitMQ.

#[path = "common/process.rs"]
mod process;

use lapin::options::{
    BasicAckOptions, ExchangeBindOptions, ExchangeDeclareOptions, QueueDeclareOptions,
    QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, DecimalValue, FieldArray, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use process::*;
use std::time::Duration;

/// Declares a queue with explicit flags and arguments.
async fn declare_queue(
    channel: &Channel,
    name: &str,
    options: QueueDeclareOptions,
    arguments: FieldTable,
) {
    ok(
        &format!("declare queue {name}"),
        channel.queue_declare(name.into(), options, arguments),
    )
    .await;
}

/// The reply code of a declaration that is expected to fail (on its own channel).
async fn declare_queue_error(
    connection: &Connection,
    name: &str,
    options: QueueDeclareOptions,
    arguments: FieldTable,
) -> Option<u16> {
    let channel = ok("channel.open", connection.create_channel()).await;
    let result = tokio::time::timeout(
        OP_TIMEOUT,
        channel.queue_declare(name.into(), options, arguments),
    )
    .await
    .expect("queue.declare timed out");
    result.err().as_ref().and_then(reply_code)
}

/// Every header field type the AMQP 0-9-1 table encoding has (as lapin writes them).
fn all_field_types(index: u32) -> FieldTable {
    let mut nested = FieldTable::default();
    nested.insert("inner".into(), AMQPValue::LongString("deep".into()));
    nested.insert("n".into(), AMQPValue::LongLongInt(-1));
    let mut headers = FieldTable::default();
    for (key, value) in [
        ("bool", AMQPValue::Boolean(true)),
        ("i8", AMQPValue::ShortShortInt(-5)),
        ("u8", AMQPValue::ShortShortUInt(250)),
        ("i16", AMQPValue::ShortInt(-300)),
        ("u16", AMQPValue::ShortUInt(60_000)),
        ("i32", AMQPValue::LongInt(-70_000)),
        ("u32", AMQPValue::LongUInt(4_000_000_000)),
        ("i64", AMQPValue::LongLongInt(-(1 << 40))),
        ("f32", AMQPValue::Float(1.5)),
        ("f64", AMQPValue::Double(-2.25)),
        (
            "decimal",
            AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 12_345,
            }),
        ),
        ("string", AMQPValue::LongString("héllo, wörld".into())),
        (
            "array",
            AMQPValue::FieldArray(FieldArray::from(vec![
                AMQPValue::LongInt(1),
                AMQPValue::LongString("two".into()),
                AMQPValue::Boolean(false),
            ])),
        ),
        ("timestamp", AMQPValue::Timestamp(1_700_000_000)),
        ("table", AMQPValue::FieldTable(nested)),
        (
            "bytes",
            AMQPValue::ByteArray(vec![0u8, 1, 0xCE, 255].into()),
        ),
        ("void", AMQPValue::Void),
        ("index", AMQPValue::LongUInt(index)),
    ] {
        headers.insert(key.into(), value);
    }
    headers
}

/// Persistent properties with every basic property set.
fn full_properties(index: u32) -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/x-warren-test".into())
        .with_content_encoding("identity".into())
        .with_headers(all_field_types(index))
        .with_delivery_mode(2)
        .with_priority((index % 10) as u8)
        .with_correlation_id(format!("correlation-{index}").into())
        .with_reply_to("some.reply.queue".into())
        // A day: long enough not to expire during the test.
        .with_expiration("86400000".into())
        .with_message_id(format!("message-{index}").into())
        .with_timestamp(1_700_000_000 + u64::from(index))
        .with_type("test.kind".into())
        // RabbitMQ (and Warren) require user_id to name the authenticated user.
        .with_user_id("guest".into())
        .with_app_id("warren-restart-tests".into())
        .with_cluster_id("cluster-id".into())
}

/// Bodies that stress the record format: empty, every byte value, larger than
/// frame_max (several body frames), and plain text.
fn bodies() -> Vec<Vec<u8>> {
    let mut big = Vec::with_capacity(300_000);
    let mut x = 0x9E37_79B9u32;
    while big.len() < 300_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        big.extend_from_slice(&x.to_le_bytes());
    }
    vec![
        Vec::new(),
        (0..=255u8).collect(),
        big,
        b"plain text body".to_vec(),
        vec![0xCE; 10],
    ]
}

/// Checks the ready messages of `queue` against what was published, in order.
fn assert_same_messages(
    got: &[lapin::message::Delivery],
    expected: &[(Vec<u8>, BasicProperties)],
    exchange: &str,
    routing_key: &str,
    redelivered: bool,
) {
    assert_eq!(got.len(), expected.len(), "message count");
    for (i, (delivery, (body, properties))) in got.iter().zip(expected).enumerate() {
        assert!(delivery.data == *body, "body of message {i} differs");
        assert_eq!(
            delivery.properties, *properties,
            "properties of message {i}"
        );
        assert_eq!(delivery.exchange.as_str(), exchange, "exchange of {i}");
        assert_eq!(
            delivery.routing_key.as_str(),
            routing_key,
            "routing key of {i}"
        );
        assert_eq!(delivery.redelivered, redelivered, "redelivered of {i}");
    }
}

/// Persistent messages come back exactly as published, in order, across two
/// clean restarts; once acked they are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_messages_come_back_byte_for_byte_in_order() {
    let dir = DataDir::new("restart-bytes");
    let mut broker = Broker::start(&dir);
    let expected: Vec<(Vec<u8>, BasicProperties)> = bodies()
        .into_iter()
        .enumerate()
        .map(|(i, body)| (body, full_properties(i as u32)))
        .collect();
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        declare_exchange(&channel, "bytes.x", ExchangeKind::Direct, true).await;
        declare_durable_queue(&channel, "bytes.q").await;
        bind(&channel, "bytes.q", "bytes.x", "bytes.key").await;
        for (body, properties) in &expected {
            publish_confirmed(&channel, "bytes.x", "bytes.key", body, properties.clone()).await;
        }
    }
    broker.stop_cleanly();

    // First restart: everything is there, never delivered.
    let mut broker = Broker::start(&dir);
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        // Take them without acking, then close the channel: they go back
        // (redelivered) before the next restart.
        let got = get_all(&channel, "bytes.q", false).await;
        assert_same_messages(&got, &expected, "bytes.x", "bytes.key", false);
        ok("channel.close", channel.close(200, "bye".into())).await;
    }
    broker.stop_cleanly();

    // Second restart: the same messages, now marked redelivered; ack them all.
    let mut broker = Broker::start(&dir);
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        let got = get_all(&channel, "bytes.q", false).await;
        assert_same_messages(&got, &expected, "bytes.x", "bytes.key", true);
        for delivery in &got {
            ok("basic.ack", delivery.acker.ack(BasicAckOptions::default())).await;
        }
        // basic.get after the acks is ordered behind them on this channel.
        assert!(get_all(&channel, "bytes.q", true).await.is_empty());
    }
    broker.stop_cleanly();

    // Third restart: acked means gone.
    let mut broker = Broker::start(&dir);
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        assert!(
            get_all(&channel, "bytes.q", true).await.is_empty(),
            "acked messages came back"
        );
    }
    broker.stop_cleanly();
}

/// Durable exchanges, queues and bindings survive with their types, flags
/// and arguments; unbinding and deletion survive too; non-durable ones vanish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_definitions_survive_and_transient_ones_do_not() {
    let dir = DataDir::new("restart-definitions");
    let mut broker = Broker::start(&dir);
    let mut max_length = FieldTable::default();
    max_length.insert("x-max-length".into(), AMQPValue::LongInt(1000));
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        declare_exchange(&channel, "defs.topic", ExchangeKind::Topic, true).await;
        declare_exchange(&channel, "defs.fanout", ExchangeKind::Fanout, true).await;
        declare_exchange(&channel, "defs.gone-later", ExchangeKind::Direct, true).await;
        declare_exchange(&channel, "defs.transient-x", ExchangeKind::Direct, false).await;
        declare_queue(
            &channel,
            "defs.q",
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            max_length.clone(),
        )
        .await;
        declare_queue(
            &channel,
            "defs.auto",
            QueueDeclareOptions {
                durable: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
        declare_durable_queue(&channel, "defs.deleted-q").await;
        declare_queue(
            &channel,
            "defs.transient-q",
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
        bind(&channel, "defs.q", "defs.topic", "a.*").await;
        bind(&channel, "defs.q", "defs.topic", "unbound.later").await;
        bind(&channel, "defs.transient-q", "defs.topic", "a.*").await;
        bind(&channel, "defs.q", "defs.transient-x", "t").await;
        // Exchange-to-exchange: defs.fanout -> defs.topic.
        ok(
            "exchange.bind",
            channel.exchange_bind(
                "defs.topic".into(),
                "defs.fanout".into(),
                "".into(),
                ExchangeBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await;
        ok(
            "queue.unbind",
            channel.queue_unbind(
                "defs.q".into(),
                "defs.topic".into(),
                "unbound.later".into(),
                FieldTable::default(),
            ),
        )
        .await;
        ok(
            "queue.delete",
            channel.queue_delete("defs.deleted-q".into(), QueueDeleteOptions::default()),
        )
        .await;
        ok(
            "exchange.delete",
            channel.exchange_delete("defs.gone-later".into(), Default::default()),
        )
        .await;
    }
    broker.stop_cleanly();

    let mut broker = Broker::start(&dir);
    {
        let connection = broker.connect().await;
        for name in ["defs.topic", "defs.fanout"] {
            assert!(exchange_exists(&connection, name).await, "exchange {name}");
        }
        for name in ["defs.gone-later", "defs.transient-x"] {
            assert!(!exchange_exists(&connection, name).await, "exchange {name}");
        }
        for name in ["defs.q", "defs.auto"] {
            assert!(queue_exists(&connection, name).await, "queue {name}");
        }
        for name in ["defs.deleted-q", "defs.transient-q"] {
            assert!(!queue_exists(&connection, name).await, "queue {name}");
        }
        // The exchange kept its type: redeclaring it as direct is inequivalent.
        let channel = ok("channel.open", connection.create_channel()).await;
        let redeclared = tokio::time::timeout(
            OP_TIMEOUT,
            channel.exchange_declare(
                "defs.topic".into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await
        .expect("exchange.declare timed out");
        assert_eq!(redeclared.err().as_ref().and_then(reply_code), Some(406));
        // The queues kept their arguments and flags.
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        assert_eq!(
            declare_queue_error(&connection, "defs.q", durable, FieldTable::default()).await,
            Some(406),
            "x-max-length was lost"
        );
        assert_eq!(
            declare_queue_error(&connection, "defs.q", durable, max_length.clone()).await,
            None
        );
        assert_eq!(
            declare_queue_error(&connection, "defs.auto", durable, FieldTable::default()).await,
            Some(406),
            "auto_delete was lost"
        );

        // Bindings: a.* routes, the unbound key does not, and the
        // exchange-to-exchange binding forwards from defs.fanout.
        let channel = confirm_channel(&connection).await;
        publish_confirmed(&channel, "defs.topic", "a.b", b"via topic", persistent()).await;
        publish_confirmed(
            &channel,
            "defs.topic",
            "unbound.later",
            b"nowhere",
            persistent(),
        )
        .await;
        publish_confirmed(&channel, "defs.fanout", "a.c", b"via fanout", persistent()).await;
        assert_eq!(
            summaries(&drain_bodies(&channel, "defs.q").await),
            summaries(&[&b"via topic"[..], b"via fanout"])
        );
    }
    broker.stop_cleanly();
}

/// Only persistent messages survive in a durable queue; transient ones are
/// dropped, and never reach the disk at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_messages_in_a_durable_queue_are_gone() {
    let dir = DataDir::new("restart-transient");
    let mut broker = Broker::start(&dir);
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        declare_durable_queue(&channel, "mixed.q").await;
        for i in 0..10 {
            let (body, properties) = if i % 2 == 0 {
                (format!("persistent-{i}"), persistent())
            } else if i % 3 == 0 {
                // delivery_mode 1 said explicitly...
                (
                    format!("transient-marker-{i}"),
                    BasicProperties::default().with_delivery_mode(1),
                )
            } else {
                // ...or left out.
                (format!("transient-marker-{i}"), BasicProperties::default())
            };
            publish_confirmed(&channel, "", "mixed.q", body.as_bytes(), properties).await;
        }
    }
    broker.stop_cleanly();
    assert!(
        !bytes_on_disk(dir.path(), b"transient-marker-"),
        "a transient message was written to disk"
    );
    assert!(bytes_on_disk(dir.path(), b"persistent-0"));

    let mut broker = Broker::start(&dir);
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        let expected: Vec<Vec<u8>> = (0..10)
            .step_by(2)
            .map(|i| format!("persistent-{i}").into_bytes())
            .collect();
        assert_eq!(
            summaries(&drain_bodies(&channel, "mixed.q").await),
            summaries(&expected)
        );
    }
    broker.stop_cleanly();
}

/// A persistent message routed only to a non-durable queue is confirmed but
/// not written to disk, and the queue is gone after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_message_in_a_non_durable_queue_is_not_persisted() {
    let dir = DataDir::new("restart-nondurable");
    let mut broker = Broker::start(&dir);
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        declare_queue(
            &channel,
            "nondurable.q",
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
        publish_confirmed(
            &channel,
            "",
            "nondurable.q",
            b"persistent-but-nondurable-queue",
            persistent(),
        )
        .await;
    }
    broker.stop_cleanly();
    assert!(
        !bytes_on_disk(dir.path(), b"persistent-but-nondurable-queue"),
        "a message in a non-durable queue was written to disk"
    );
    let mut broker = Broker::start(&dir);
    {
        let connection = broker.connect().await;
        assert!(!queue_exists(&connection, "nondurable.q").await);
    }
    broker.stop_cleanly();
}

/// Acked messages stay gone; delivered-but-unacked ones (their connection
/// still open at shutdown) come back redelivered, never-delivered ones not;
/// the flags survive another clean restart, and after kill -9 all are set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_and_redelivered_flags_survive_restarts() {
    let dir = DataDir::new("restart-acks");
    let mut broker = Broker::start(&dir);
    // Connections stay open across the SIGTERM on purpose: the broker closes
    // them, and must requeue their unacked deliveries before it records them.
    let connection = broker.connect().await;
    let channel = confirm_channel(&connection).await;
    declare_durable_queue(&channel, "acks.q").await;
    for i in 0..10 {
        publish_confirmed(
            &channel,
            "",
            "acks.q",
            format!("m{i}").as_bytes(),
            persistent(),
        )
        .await;
    }
    // Take m0..m7; ack m0, m1, m2, m5, m7; m3, m4, m6 stay unacked; m8, m9 never delivered.
    let mut taken = Vec::new();
    for _ in 0..8 {
        let got = ok(
            "basic.get",
            channel.basic_get(
                "acks.q".into(),
                lapin::options::BasicGetOptions { no_ack: false },
            ),
        )
        .await
        .expect("a message");
        taken.push(got.delivery);
    }
    for i in [0, 1, 2, 5, 7] {
        ok("basic.ack", taken[i].acker.ack(BasicAckOptions::default())).await;
    }
    // A round trip on the channel after the acks: they have been processed.
    ok(
        "passive declare",
        channel.queue_declare(
            "acks.q".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await;
    broker.stop_cleanly();
    drop((channel, connection, taken));

    let expected = [
        ("m3", true),
        ("m4", true),
        ("m6", true),
        ("m8", false),
        ("m9", false),
    ];
    let summary = |got: &[lapin::message::Delivery]| -> Vec<(String, bool)> {
        got.iter()
            .map(|d| (String::from_utf8_lossy(&d.data).into_owned(), d.redelivered))
            .collect()
    };
    let expected_vec: Vec<(String, bool)> =
        expected.iter().map(|(b, r)| (b.to_string(), *r)).collect();

    // Restart 1: only count. Reading them (even requeueing them) would set
    // the flags, and restart 2 checks that they crossed this restart intact.
    let mut broker = Broker::start(&dir);
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        let declared = ok(
            "passive declare",
            channel.queue_declare(
                "acks.q".into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await;
        assert_eq!(declared.message_count(), 5, "acked messages came back");
    }
    broker.stop_cleanly();

    // Restart 2: the flags were carried through restart 1 untouched.
    let mut broker = Broker::start(&dir);
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        let got = get_all(&channel, "acks.q", false).await;
        assert_eq!(summary(&got), expected_vec);
        // Leave them unacked and kill the broker: an unclean stop.
        broker.kill();
    }

    // Restart 3 after kill -9: every recovered message may have been delivered.
    let mut broker = Broker::start(&dir);
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        let got = get_all(&channel, "acks.q", false).await;
        let all_redelivered: Vec<(String, bool)> = expected
            .iter()
            .map(|(b, _)| (b.to_string(), true))
            .collect();
        assert_eq!(summary(&got), all_redelivered);
        // Ack the first two only; the rest go back on close.
        for delivery in &got[..2] {
            ok("basic.ack", delivery.acker.ack(BasicAckOptions::default())).await;
        }
        ok("channel.close", channel.close(200, "bye".into())).await;
    }
    broker.stop_cleanly();

    // Restart 4: acks of recovered messages (written to the old segment's ack
    // file) hold.
    let mut broker = Broker::start(&dir);
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        let got = get_all(&channel, "acks.q", true).await;
        assert_eq!(
            summary(&got),
            vec![
                ("m6".to_string(), true),
                ("m8".to_string(), true),
                ("m9".to_string(), true)
            ]
        );
    }
    broker.stop_cleanly();
}

/// Rejecting without requeue (basic.reject, basic.nack with multiple)
/// settles for good; basic.recover puts messages back, marked redelivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_messages_stay_gone_and_recovered_ones_come_back() {
    let dir = DataDir::new("restart-reject");
    let mut broker = Broker::start(&dir);
    let connection = broker.connect().await;
    let channel = confirm_channel(&connection).await;
    declare_durable_queue(&channel, "reject.q").await;
    for i in 0..6 {
        publish_confirmed(
            &channel,
            "",
            "reject.q",
            format!("r{i}").as_bytes(),
            persistent(),
        )
        .await;
    }
    let got = get_all(&channel, "reject.q", false).await;
    assert_eq!(got.len(), 6);
    // r0: rejected; r1..r2: nacked with multiple (tag of r2); r3: acked;
    // r4, r5: recovered (requeued) with basic.recover.
    ok(
        "basic.reject",
        got[0]
            .acker
            .reject(lapin::options::BasicRejectOptions { requeue: false }),
    )
    .await;
    ok(
        "basic.nack",
        got[2].acker.nack(lapin::options::BasicNackOptions {
            multiple: true,
            requeue: false,
        }),
    )
    .await;
    ok("basic.ack", got[3].acker.ack(BasicAckOptions::default())).await;
    ok(
        "basic.recover",
        channel.basic_recover(lapin::options::BasicRecoverOptions { requeue: true }),
    )
    .await;
    broker.stop_cleanly();
    drop((got, channel, connection));

    let mut broker = Broker::start(&dir);
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        let left: Vec<(String, bool)> = get_all(&channel, "reject.q", true)
            .await
            .iter()
            .map(|d| (String::from_utf8_lossy(&d.data).into_owned(), d.redelivered))
            .collect();
        assert_eq!(
            left,
            vec![("r4".to_string(), true), ("r5".to_string(), true)]
        );
    }
    broker.stop_cleanly();
}

/// A message routed to two durable queues is one record on disk: it comes
/// back in both, and settling it in one queue leaves it in the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_in_two_durable_queues_comes_back_in_both() {
    let dir = DataDir::new("restart-fanout");
    let mut broker = Broker::start(&dir);
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        declare_exchange(&channel, "two.fanout", ExchangeKind::Fanout, true).await;
        for queue in ["two.a", "two.b"] {
            declare_durable_queue(&channel, queue).await;
            bind(&channel, queue, "two.fanout", "").await;
        }
        declare_queue(
            &channel,
            "two.transient",
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
        bind(&channel, "two.transient", "two.fanout", "").await;
        for i in 0..3 {
            publish_confirmed(
                &channel,
                "two.fanout",
                "",
                format!("f{i}").as_bytes(),
                persistent(),
            )
            .await;
        }
    }
    broker.stop_cleanly();

    let bodies = |v: &[&str]| v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
    let mut broker = Broker::start(&dir);
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        assert!(!queue_exists(&connection, "two.transient").await);
        let in_a = get_all(&channel, "two.a", false).await;
        assert_eq!(
            in_a.iter().map(|d| d.data.clone()).collect::<Vec<_>>(),
            bodies(&["f0", "f1", "f2"])
        );
        // Settle f1 in two.a only (and f0, f2 go back on close).
        ok("basic.ack", in_a[1].acker.ack(BasicAckOptions::default())).await;
        ok("channel.close", channel.close(200, "bye".into())).await;
        let channel = confirm_channel(&connection).await;
        // two.b still holds all three; take them for good (auto-ack).
        let in_b = get_all(&channel, "two.b", true).await;
        assert_eq!(
            in_b.iter().map(|d| d.data.clone()).collect::<Vec<_>>(),
            bodies(&["f0", "f1", "f2"])
        );
    }
    broker.stop_cleanly();

    let mut broker = Broker::start(&dir);
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        assert_eq!(
            summaries(&drain_bodies(&channel, "two.a").await),
            summaries(&bodies(&["f0", "f2"]))
        );
        assert!(drain_bodies(&channel, "two.b").await.is_empty());
    }
    broker.stop_cleanly();
}

/// A deleted durable queue stays deleted, and its messages do not leak into a
/// new queue of the same name; a purge is permanent too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_and_purged_queues_stay_that_way() {
    let dir = DataDir::new("restart-delete");
    let mut broker = Broker::start(&dir);
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        for queue in ["del.gone", "del.reborn", "del.purged"] {
            declare_durable_queue(&channel, queue).await;
            for i in 0..3 {
                publish_confirmed(
                    &channel,
                    "",
                    queue,
                    format!("old-{queue}-{i}").as_bytes(),
                    persistent(),
                )
                .await;
            }
        }
        for queue in ["del.gone", "del.reborn"] {
            let count = ok(
                "queue.delete",
                channel.queue_delete(queue.into(), QueueDeleteOptions::default()),
            )
            .await;
            assert_eq!(count, 3);
        }
        let purged = ok(
            "queue.purge",
            channel.queue_purge("del.purged".into(), QueuePurgeOptions::default()),
        )
        .await;
        assert_eq!(purged, 3);
        declare_durable_queue(&channel, "del.reborn").await;
        publish_confirmed(&channel, "", "del.reborn", b"new", persistent()).await;
    }
    broker.stop_cleanly();

    let mut broker = Broker::start(&dir);
    {
        let connection = broker.connect().await;
        assert!(!queue_exists(&connection, "del.gone").await);
        let channel = confirm_channel(&connection).await;
        assert_eq!(
            summaries(&drain_bodies(&channel, "del.reborn").await),
            summaries(&[b"new"])
        );
        assert!(drain_bodies(&channel, "del.purged").await.is_empty());
    }
    broker.stop_cleanly();
}

/// Queues longer than the broker's in-memory limit keep only the head in
/// memory and read the rest back from the store; restarts must not care.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_out_messages_survive_restarts() {
    // A limit of 3 ready messages per queue in memory: most of these 40 are paged out.
    let env = [("WARREN_QUEUE_IN_MEMORY_LIMIT", "3")];
    let dir = DataDir::new("restart-paged");
    let mut broker = Broker::start_with_env(&dir, &env);
    let expected: Vec<(Vec<u8>, BasicProperties)> = (0..40u32)
        .map(|i| {
            let mut body = format!("paged-{i}-").into_bytes();
            body.resize(100 + (i as usize * 997) % 5000, b'a' + (i % 26) as u8);
            (body, full_properties(i))
        })
        .collect();
    let connection = broker.connect().await;
    let channel = confirm_channel(&connection).await;
    declare_durable_queue(&channel, "paged.q").await;
    for (body, properties) in &expected {
        publish_confirmed(&channel, "", "paged.q", body, properties.clone()).await;
    }
    // Deliver the first 10 (unacked at shutdown) and ack the next 5.
    let first = {
        let mut taken = Vec::new();
        for _ in 0..15 {
            let got = ok(
                "basic.get",
                channel.basic_get("paged.q".into(), lapin::options::BasicGetOptions::default()),
            )
            .await
            .expect("a message");
            taken.push(got.delivery);
        }
        taken
    };
    for delivery in &first[10..] {
        ok("basic.ack", delivery.acker.ack(BasicAckOptions::default())).await;
    }
    assert_eq!(
        first.iter().map(|d| d.data.clone()).collect::<Vec<_>>(),
        expected[..15]
            .iter()
            .map(|(b, _)| b.clone())
            .collect::<Vec<_>>()
    );
    ok(
        "passive declare",
        channel.queue_declare(
            "paged.q".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await;
    broker.stop_cleanly();
    drop((channel, connection, first));

    let mut broker = Broker::start_with_env(&dir, &env);
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        let got = get_all(&channel, "paged.q", true).await;
        let remaining: Vec<(Vec<u8>, BasicProperties)> = expected[..10]
            .iter()
            .chain(&expected[15..])
            .cloned()
            .collect();
        assert_eq!(got.len(), remaining.len(), "message count");
        for (i, (delivery, (body, properties))) in got.iter().zip(&remaining).enumerate() {
            assert!(delivery.data == *body, "body of message {i} differs");
            assert_eq!(delivery.properties, *properties, "properties of {i}");
            assert_eq!(delivery.redelivered, i < 10, "redelivered of {i}");
        }
    }
    broker.stop_cleanly();
}

/// A per-message TTL (the `expiration` property) keeps running across a
/// restart, as in RabbitMQ, which stores each persistent message's expiry:
/// once it has passed, the recovered message is dead and is not delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_ttl_still_applies_after_a_restart() {
    let dir = DataDir::new("restart-ttl");
    let mut broker = Broker::start(&dir);
    let published = std::time::Instant::now();
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        declare_durable_queue(&channel, "ttl.q").await;
        let short = persistent().with_expiration("1500".into());
        publish_confirmed(&channel, "", "ttl.q", b"expires", short).await;
        publish_confirmed(&channel, "", "ttl.q", b"stays", persistent()).await;
    }
    broker.stop_cleanly();
    let mut broker = Broker::start(&dir);
    // Waiting for time to pass is the point here, not synchronisation.
    let expired = published + Duration::from_millis(2000);
    tokio::time::sleep(expired.saturating_duration_since(std::time::Instant::now())).await;
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        assert_eq!(
            summaries(&drain_bodies(&channel, "ttl.q").await),
            summaries(&[b"stays"]),
            "a message whose TTL ran out was delivered after the restart"
        );
    }
    broker.stop_cleanly();
}

/// Waits (bounded) until the store is in the middle of writing a record of
/// `size` bytes that starts at `before` in `segment`. No event says when the
/// sync thread writes, so this watches the file grow; on a fast disk the write
/// may finish between two looks, and then the caller simply tests the message
/// after its write (false is returned, nothing fails here).
async fn wait_for_write_in_progress(segment: &std::path::Path, before: u64, size: usize) -> bool {
    let deadline = std::time::Instant::now() + OP_TIMEOUT;
    while std::time::Instant::now() < deadline {
        let len = std::fs::metadata(segment).expect("stat").len();
        if len > before && len < before + size as u64 {
            return true;
        }
        if len != before {
            return false;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    false
}

/// The race behind a paged-out message read back while the store writes it:
/// the store's sync thread takes the pending bytes out of memory before it
/// writes them, so a read in between finds them neither in memory nor in the
/// file. A 96 MiB message makes that write last long enough to aim at: the
/// test watches the segment file grow (no event tells it when the write
/// starts) and takes the message with basic.get meanwhile. It must be
/// delivered, or at least stay in the queue; it was confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_out_message_read_while_being_written_is_not_dropped() {
    const BIG: usize = 96 << 20;
    let env = [("WARREN_QUEUE_IN_MEMORY_LIMIT", "1")];
    let dir = DataDir::new("restart-paged-race");
    let mut broker = Broker::start_with_env(&dir, &env);
    let connection = broker.connect().await;
    let channel = confirm_channel(&connection).await;
    declare_durable_queue(&channel, "race.q").await;
    // "small" is held in memory, "big" behind it is paged out.
    publish_confirmed(&channel, "", "race.q", b"small|", persistent()).await;
    let segment = dir.segments().pop().expect("the active segment");
    let before = std::fs::metadata(&segment).expect("stat").len();
    let mut big = b"big|".to_vec();
    big.resize(BIG, b'b');
    let confirm = ok(
        "basic.publish",
        channel.basic_publish(
            "".into(),
            "race.q".into(),
            lapin::options::BasicPublishOptions::default(),
            &big,
            persistent(),
        ),
    )
    .await;
    let taker = confirm_channel(&connection).await;
    let small = ok(
        "basic.get",
        taker.basic_get(
            "race.q".into(),
            lapin::options::BasicGetOptions { no_ack: true },
        ),
    )
    .await
    .expect("small");
    assert_eq!(small.delivery.data, b"small|");
    let caught = wait_for_write_in_progress(&segment, before, BIG).await;
    println!("read while the write was in progress: {caught}");
    let got = ok(
        "basic.get",
        taker.basic_get(
            "race.q".into(),
            lapin::options::BasicGetOptions { no_ack: true },
        ),
    )
    .await;
    assert!(
        ok("confirm", confirm).await.is_ack(),
        "big was not confirmed"
    );
    let delivered = got.is_some_and(|g| g.delivery.data.len() == BIG);
    let still_queued = get_all(&taker, "race.q", true).await.len();
    let dropped: Vec<String> = broker
        .output()
        .lines()
        .filter(|l| l.contains("paged-out"))
        .map(str::to_string)
        .collect();
    broker.stop_cleanly();
    assert!(
        delivered || still_queued == 1,
        "the confirmed big message was neither delivered nor kept; broker:\n{}",
        dropped.join("\n")
    );
}

/// The next delivery, or `None` after 30 s (time enough for 96 MiB in a debug build).
async fn next_delivery(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<lapin::message::Delivery>,
) -> Option<lapin::message::Delivery> {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .ok()
        .flatten()
}

/// The same race with a consumer: the paged-out message could not be read
/// when the consumer got credit for it, so it stayed queued; once the write
/// is done, it must still be delivered to that consumer without any other
/// traffic to wake the queue up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_gets_a_paged_out_message_that_was_being_written() {
    const BIG: usize = 96 << 20;
    let env = [("WARREN_QUEUE_IN_MEMORY_LIMIT", "1")];
    let dir = DataDir::new("restart-paged-stall");
    let mut broker = Broker::start_with_env(&dir, &env);
    let connection = broker.connect().await;
    let channel = confirm_channel(&connection).await;
    declare_durable_queue(&channel, "stall.q").await;
    let consumer_channel = ok("channel.open", connection.create_channel()).await;
    ok(
        "basic.qos",
        consumer_channel.basic_qos(1, lapin::options::BasicQosOptions::default()),
    )
    .await;
    let consumer = ok(
        "basic.consume",
        consumer_channel.basic_consume(
            "stall.q".into(),
            "".into(),
            lapin::options::BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    consumer.set_delegate(move |delivery: lapin::message::DeliveryResult| {
        if let Ok(Some(delivery)) = delivery {
            let _ = tx.send(delivery);
        }
        std::future::ready(())
    });
    // first goes straight to the consumer (prefetch 1), second waits in
    // memory, big waits behind it, paged out.
    publish_confirmed(&channel, "", "stall.q", b"first|", persistent()).await;
    publish_confirmed(&channel, "", "stall.q", b"second|", persistent()).await;
    let segment = dir.segments().pop().expect("the active segment");
    let before = std::fs::metadata(&segment).expect("stat").len();
    let mut big = b"big|".to_vec();
    big.resize(BIG, b'b');
    let confirm = ok(
        "basic.publish",
        channel.basic_publish(
            "".into(),
            "stall.q".into(),
            lapin::options::BasicPublishOptions::default(),
            &big,
            persistent(),
        ),
    )
    .await;
    let first = next_delivery(&mut rx).await.expect("first delivered");
    assert_eq!(first.data, b"first|");
    ok("basic.ack", first.acker.ack(BasicAckOptions::default())).await;
    let second = next_delivery(&mut rx).await.expect("second delivered");
    assert_eq!(second.data, b"second|");
    // Free the credit for big while its record is being written (if the
    // write is caught in progress; otherwise big is read back after it).
    let caught = wait_for_write_in_progress(&segment, before, BIG).await;
    println!("ack sent while the write was in progress: {caught}");
    ok("basic.ack", second.acker.ack(BasicAckOptions::default())).await;
    assert!(
        ok("confirm", confirm).await.is_ack(),
        "big was not confirmed"
    );
    let delivered = next_delivery(&mut rx).await.map(|d| d.data.len());
    let log: Vec<String> = broker
        .output()
        .lines()
        .filter(|l| l.contains("paged-out"))
        .map(str::to_string)
        .collect();
    broker.stop_cleanly();
    assert_eq!(
        delivered,
        Some(BIG),
        "the consumer never got the confirmed big message; broker:\n{}",
        log.join("\n")
    );
}

/// Paging under load. With an in-memory limit of 1, a burst of large
/// messages is paged out as it is published, while the store's sync thread
/// writes the burst as one big batch; an acking consumer (prefetch 1) reads
/// each paged-out message back as soon as the previous one is acked, i.e.
/// while that batch is being written. Every confirmed message must reach
/// the consumer, and none may be dropped as unreadable.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paged_out_messages_are_never_dropped_under_load() {
    const BURSTS: usize = 6;
    const BURST: usize = 30;
    const COUNT: usize = BURSTS * BURST;
    let env = [
        ("WARREN_QUEUE_IN_MEMORY_LIMIT", "1"),
        ("WARREN_SYNC_INTERVAL_MS", "20"),
    ];
    let dir = DataDir::new("restart-paged-load");
    let mut broker = Broker::start_with_env(&dir, &env);
    let connection = broker.connect().await;
    let setup = confirm_channel(&connection).await;
    declare_durable_queue(&setup, "load.q").await;

    let consumer_connection = broker.connect().await;
    let consumer_channel = ok("channel.open", consumer_connection.create_channel()).await;
    ok(
        "basic.qos",
        consumer_channel.basic_qos(1, lapin::options::BasicQosOptions::default()),
    )
    .await;
    let consumer = ok(
        "basic.consume",
        consumer_channel.basic_consume(
            "load.q".into(),
            "".into(),
            lapin::options::BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    consumer.set_delegate(move |delivery: lapin::message::DeliveryResult| {
        let tx = tx.clone();
        async move {
            if let Ok(Some(delivery)) = delivery {
                let _ = delivery.acker.ack(BasicAckOptions::default()).await;
                let _ = tx.send(delivery.data);
            }
        }
    });

    let publisher = confirm_channel(&connection).await;
    let mut seen: Vec<Vec<u8>> = Vec::with_capacity(COUNT);
    for burst in 0..BURSTS {
        // The whole burst goes out before any confirm is awaited.
        let mut pending = Vec::with_capacity(BURST);
        for j in 0..BURST {
            let i = burst * BURST + j;
            let mut body = format!("load-{i:05}|").into_bytes();
            body.resize(512 * 1024 + (i * 7919) % 512 * 1024, b'x');
            let confirm = ok(
                "basic.publish",
                publisher.basic_publish(
                    "".into(),
                    "load.q".into(),
                    lapin::options::BasicPublishOptions::default(),
                    &body,
                    persistent(),
                ),
            )
            .await;
            pending.push(confirm);
        }
        for confirm in pending {
            assert!(ok("confirm", confirm).await.is_ack());
        }
        // Let the consumer catch up, so the next burst starts on an empty queue.
        while seen.len() < (burst + 1) * BURST {
            match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
                Ok(Some(body)) => seen.push(body),
                _ => break,
            }
        }
    }
    let dropped = broker
        .output()
        .lines()
        .filter(|l| l.contains("paged-out"))
        .count();
    broker.stop_cleanly();
    drop((
        consumer_channel,
        consumer_connection,
        publisher,
        setup,
        connection,
    ));

    // Whatever the consumer missed must still be in the queue after a restart.
    let mut broker = Broker::start_with_env(&dir, &env);
    {
        let connection = broker.connect().await;
        let channel = confirm_channel(&connection).await;
        seen.extend(drain_bodies(&channel, "load.q").await);
    }
    broker.stop_cleanly();
    let mut indices: Vec<usize> = seen
        .iter()
        .map(|b| {
            let text = String::from_utf8_lossy(&b[5..10]).into_owned();
            text.parse().expect("index")
        })
        .collect();
    indices.sort_unstable();
    indices.dedup();
    let missing: Vec<usize> = (0..COUNT)
        .filter(|i| indices.binary_search(i).is_err())
        .collect();
    assert!(
        missing.is_empty() && dropped == 0,
        "{} of {COUNT} confirmed messages lost (first: {:?}); {dropped} 'paged-out' errors logged",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}
