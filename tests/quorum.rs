//! Queue types: `x-queue-type` quorum (durable, non-exclusive, not auto-delete; redeliveries
//! counted in `x-delivery-count` and limited by `x-delivery-limit`), classic accepted, and
//! unknown types refused, with RabbitMQ's texts.

mod common;

use common::lapin::{
    Inbox, confirming, consume, counts, declare_with, exclusive_queue, int, invalid_arg, ok,
    publish_confirmed, refused_declare, setup, text,
};
use common::x_death::{Death, deaths};
use lapin::{
    Channel,
    message::Delivery,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicRejectOptions, QueueDeclareOptions,
        QueueDeleteOptions,
    },
    types::AMQPValue,
};

const QUORUM: (&str, &str) = ("x-queue-type", "quorum");

/// Declares a durable quorum queue named after `prefix` with `args`; the test deletes it.
async fn quorum_queue(ch: &Channel, prefix: &str, args: &[(&str, AMQPValue)]) -> String {
    let name = common::unique(prefix);
    let mut all = vec![(QUORUM.0, text(QUORUM.1))];
    all.extend_from_slice(args);
    ok(declare_with(
        ch,
        &name,
        QueueDeclareOptions::durable(),
        &all,
    ))
    .await;
    name
}

async fn delete(ch: &Channel, queue: &str) {
    ok(ch.queue_delete(queue.into(), QueueDeleteOptions::default())).await;
}

/// The `x-delivery-count` header: how often the message was returned to the queue.
fn delivery_count(delivery: &Delivery) -> Option<i64> {
    common::lapin::header(delivery, "x-delivery-count").map(|value| match value {
        AMQPValue::LongLongInt(n) => *n,
        other => panic!("x-delivery-count must be a long, got {other:?}"),
    })
}

/// Rejects `delivery` back into its queue.
async fn requeue(delivery: &Delivery) {
    assert!(ok(delivery.reject(BasicRejectOptions { requeue: true })).await);
}

#[tokio::test]
async fn quorum_queues_must_be_durable_shared_and_kept() {
    let broker = common::TestBroker::start();
    let (conn, _ch) = setup(&broker).await;
    let name = common::unique("qq-invalid");
    let invalid = |property: &str| {
        (
            406,
            format!(
                "PRECONDITION_FAILED - invalid property '{property}' for queue '{name}' in vhost '/'"
            ),
        )
    };
    let args = [(QUORUM.0, text(QUORUM.1))];
    let refuse = |options| refused_declare(&conn, &name, options, &args);
    assert_eq!(
        refuse(QueueDeclareOptions::durable().auto_delete()).await,
        invalid("auto-delete")
    );
    assert_eq!(
        refuse(QueueDeclareOptions {
            durable: true,
            exclusive: true,
            ..Default::default()
        })
        .await,
        invalid("exclusive-owner")
    );
    // Auto-delete is checked before exclusivity, and exclusivity before durability.
    assert_eq!(
        refuse(QueueDeclareOptions::exclusive().auto_delete()).await,
        invalid("auto-delete")
    );
    assert_eq!(
        refuse(QueueDeclareOptions::exclusive()).await,
        invalid("exclusive-owner")
    );
    // RabbitMQ 4.3 refuses every transient non-exclusive queue before looking at its type
    // (541, deprecated feature `transient_nonexcl_queues`). Where such queues are permitted,
    // as in Warren and in RabbitMQ up to 4.2, the quorum check answers.
    assert_eq!(
        refuse(QueueDeclareOptions::default()).await,
        invalid("non-durable")
    );
}

#[tokio::test]
async fn a_quorum_queue_stores_and_delivers() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let queue = quorum_queue(&ch, "qq-basic", &[]).await;
    publish_confirmed(&ch, &queue, "q1").await;
    publish_confirmed(&ch, &queue, "q2").await;
    assert_eq!(counts(&ch, &queue).await, (2, 0));
    let reader = ok(conn.create_channel()).await;
    let mut inbox = consume(&reader, &queue, "", BasicConsumeOptions::default()).await;
    let got = inbox.take(2).await;
    assert_eq!(
        got.iter()
            .map(|(b, r, _)| (b.as_str(), *r))
            .collect::<Vec<_>>(),
        [("q1", false), ("q2", false)]
    );
    ok(reader.basic_ack(got[1].2, BasicAckOptions { multiple: true })).await;
    delete(&ch, &queue).await;
}

#[tokio::test]
async fn redeliveries_carry_x_delivery_count() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let queue = quorum_queue(&ch, "qq-count", &[]).await;
    publish_confirmed(&ch, &queue, "retry").await;
    let reader = ok(conn.create_channel()).await;
    let mut inbox = consume(&reader, &queue, "", BasicConsumeOptions::default()).await;
    let first = inbox.next().await;
    assert!(!first.redelivered);
    assert_eq!(
        delivery_count(&first),
        None,
        "a first delivery has no count"
    );
    requeue(&first).await;
    // basic.reject counts as a failed delivery in every RabbitMQ release. (Since RabbitMQ 4.3
    // a basic.nack with requeue does not, which is why this test rejects.)
    for expected in 1..=3 {
        let again = inbox.next().await;
        assert!(again.redelivered);
        assert_eq!(delivery_count(&again), Some(expected));
        if expected == 3 {
            assert!(ok(again.ack(BasicAckOptions::default())).await);
        } else {
            requeue(&again).await;
        }
    }
    inbox.quiet().await;
    delete(&ch, &queue).await;
}

#[tokio::test]
async fn delivery_limit_dead_letters_with_reason_delivery_limit() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let dead = exclusive_queue(&ch, "qq-limit-dead", &[]).await;
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut dead_inbox = consume(&ch, &dead, "", no_ack).await;
    let queue = quorum_queue(
        &ch,
        "qq-limit",
        &[
            ("x-delivery-limit", int(2)),
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text(&dead)),
        ],
    )
    .await;
    publish_confirmed(&ch, &queue, "poison").await;
    let reader = ok(conn.create_channel()).await;
    let mut inbox: Inbox = consume(&reader, &queue, "", BasicConsumeOptions::default()).await;
    // Delivered once and redelivered up to the limit; returned once more, it dies.
    for expected in [None, Some(1), Some(2)] {
        let got = inbox.next().await;
        assert_eq!(got.data, b"poison");
        assert_eq!(delivery_count(&got), expected);
        requeue(&got).await;
    }
    let got = dead_inbox.next().await;
    assert_eq!(got.data, b"poison");
    assert_eq!(
        deaths(&got),
        [Death::new(1, "delivery_limit", &queue, "", &[&queue])]
    );
    inbox.quiet().await;
    assert_eq!(counts(&ch, &queue).await.0, 0);
    delete(&ch, &queue).await;
}

#[tokio::test]
async fn classic_is_an_accepted_queue_type() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let queue = exclusive_queue(&ch, "classic-typed", &[("x-queue-type", text("classic"))]).await;
    publish_confirmed(&ch, &queue, "plain").await;
    assert_eq!(counts(&ch, &queue).await, (1, 0));
}

#[tokio::test]
async fn unknown_queue_types_are_refused() {
    let broker = common::TestBroker::start();
    let (conn, _ch) = setup(&broker).await;
    let queue = common::unique("type-invalid");
    let cases: [(AMQPValue, &str); 2] = [
        (text("fifo"), "\"unsupported queue type 'fifo'\""),
        (int(1), "{unacceptable_type,signedint}"),
    ];
    for (value, detail) in cases {
        assert_eq!(
            refused_declare(
                &conn,
                &queue,
                QueueDeclareOptions::durable(),
                &[("x-queue-type", value.clone())]
            )
            .await,
            invalid_arg(&queue, "x-queue-type", detail),
            "x-queue-type = {value:?}"
        );
    }
}
