//! Single active consumer (`x-single-active-consumer`): of all consumers on the queue only the
//! earliest receives; when it goes, the next takes over, and what it left unacknowledged is
//! redelivered to its successor.

mod common;

use common::lapin::{
    Inbox, confirming, consume, exclusive_queue, invalid_arg, ok, publish_confirmed,
    refused_declare, setup, text,
};
use lapin::{
    Channel, Connection,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions,
        QueueDeclareOptions,
    },
    types::AMQPValue,
};

/// A confirm-mode channel for publishing and a single-active-consumer queue.
async fn sac_queue(conn: &Connection) -> (Channel, String) {
    let ch = confirming(conn).await;
    let queue = exclusive_queue(
        &ch,
        "sac",
        &[("x-single-active-consumer", AMQPValue::Boolean(true))],
    )
    .await;
    (ch, queue)
}

/// A manual-ack consumer on its own channel, so closing that channel affects only it.
async fn consumer(conn: &Connection, queue: &str) -> (Channel, Inbox) {
    let ch = ok(conn.create_channel()).await;
    let inbox = consume(&ch, queue, "", BasicConsumeOptions::default()).await;
    (ch, inbox)
}

fn bodies(taken: &[(String, bool, u64)]) -> Vec<(&str, bool)> {
    taken.iter().map(|(b, r, _)| (b.as_str(), *r)).collect()
}

#[tokio::test]
async fn only_the_first_consumer_receives() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let (ch, queue) = sac_queue(&conn).await;
    let (first_ch, mut first) = consumer(&conn, &queue).await;
    let (_second_ch, mut second) = consumer(&conn, &queue).await;
    for body in ["m1", "m2", "m3", "m4"] {
        publish_confirmed(&ch, &queue, body).await;
    }
    let got = first.take(4).await;
    assert_eq!(
        bodies(&got),
        [("m1", false), ("m2", false), ("m3", false), ("m4", false)]
    );
    ok(first_ch.basic_ack(got[3].2, BasicAckOptions { multiple: true })).await;
    second.quiet().await;
}

#[tokio::test]
async fn the_next_consumer_takes_over_when_the_active_one_cancels() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let (ch, queue) = sac_queue(&conn).await;
    let (first_ch, mut first) = consumer(&conn, &queue).await;
    let (_second_ch, mut second) = consumer(&conn, &queue).await;
    let (_third_ch, mut third) = consumer(&conn, &queue).await;
    publish_confirmed(&ch, &queue, "before").await;
    let got = first.next().await;
    assert!(ok(got.ack(BasicAckOptions::default())).await);

    ok(first_ch.basic_cancel(first.tag(), BasicCancelOptions::default())).await;
    publish_confirmed(&ch, &queue, "after").await;
    // The next in subscription order takes over, not any other waiting consumer.
    assert_eq!(second.next().await.data, b"after");
    third.quiet().await;
}

#[tokio::test]
async fn unacknowledged_messages_go_to_the_next_consumer() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let (ch, queue) = sac_queue(&conn).await;
    let first_ch = ok(conn.create_channel()).await;
    ok(first_ch.basic_qos(2, BasicQosOptions::default())).await;
    let mut first = consume(&first_ch, &queue, "", BasicConsumeOptions::default()).await;
    let (_second_ch, mut second) = consumer(&conn, &queue).await;
    for body in ["m1", "m2", "m3", "m4"] {
        publish_confirmed(&ch, &queue, body).await;
    }
    assert_eq!(bodies(&first.take(2).await), [("m1", false), ("m2", false)]);
    // The active consumer's prefetch is full, yet the others still get nothing.
    second.quiet().await;

    // Closing its channel requeues m1 and m2 ahead of m3 and m4, all for the successor.
    ok(first_ch.close(200, "OK".into())).await;
    assert_eq!(
        bodies(&second.take(4).await),
        [("m1", true), ("m2", true), ("m3", false), ("m4", false)]
    );
}

#[tokio::test]
async fn single_active_consumer_must_be_a_boolean() {
    let broker = common::TestBroker::start();
    let (conn, _ch) = setup(&broker).await;
    let queue = common::unique("sac-invalid");
    let cases: [(AMQPValue, &str); 2] = [
        (text("true"), "{unacceptable_type,longstr}"),
        (AMQPValue::LongInt(1), "{unacceptable_type,signedint}"),
    ];
    for (value, detail) in cases {
        assert_eq!(
            refused_declare(
                &conn,
                &queue,
                QueueDeclareOptions::exclusive(),
                &[("x-single-active-consumer", value.clone())]
            )
            .await,
            invalid_arg(&queue, "x-single-active-consumer", detail),
            "x-single-active-consumer = {value:?}"
        );
    }
}
