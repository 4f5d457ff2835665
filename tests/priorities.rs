//! Priorities: `x-max-priority` queues deliver higher-priority messages first (priorities above
//! the maximum count as the maximum), and the `x-priority` consume argument makes a queue prefer
//! higher-priority consumers while they have room.

mod common;

use common::lapin::{
    confirming, consume, drain, exclusive_queue, int, invalid_arg, ok, owned, publish,
    publish_confirmed, publish_with, refused_declare, setup, table, text,
};
use lapin::{
    BasicProperties, Channel,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions,
        BasicQosOptions, QueueDeclareOptions,
    },
    types::AMQPValue,
};

/// Publishes (body, priority) pairs in order, each confirmed; `None` sends no priority.
async fn publish_prioritised(ch: &Channel, queue: &str, messages: &[(&str, Option<u8>)]) {
    for (body, priority) in messages {
        let props = match priority {
            Some(p) => BasicProperties::default().with_priority(*p),
            None => BasicProperties::default(),
        };
        let confirm = publish_with(
            ch,
            "",
            queue,
            BasicPublishOptions::default(),
            body.as_bytes(),
            props,
        )
        .await;
        assert!(ok(confirm).await.is_ack());
    }
}

#[tokio::test]
async fn higher_priority_messages_are_delivered_first() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let queue = exclusive_queue(&ch, "prio", &[("x-max-priority", int(5))]).await;
    publish_prioritised(
        &ch,
        &queue,
        &[
            ("low", Some(0)),
            ("high", Some(5)),
            ("unset", None),
            ("mid", Some(3)),
            ("high-2", Some(5)),
            ("one", Some(1)),
        ],
    )
    .await;
    // Equal priorities keep publish order; no priority counts as 0.
    assert_eq!(
        drain(&ch, &queue).await,
        owned(&[
            ("high", false),
            ("high-2", false),
            ("mid", false),
            ("one", false),
            ("low", false),
            ("unset", false),
        ])
    );
}

#[tokio::test]
async fn priorities_above_the_maximum_count_as_the_maximum() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let queue = exclusive_queue(&ch, "prio-cap", &[("x-max-priority", int(2))]).await;
    publish_prioritised(
        &ch,
        &queue,
        &[
            ("a", Some(2)),
            ("b", Some(9)),
            ("c", Some(1)),
            ("d", Some(2)),
        ],
    )
    .await;
    let first = ok(ch.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("a message");
    assert_eq!(first.delivery.data, b"a");
    // b ranks with the 2s, in publish order, and keeps the priority it was sent with.
    let second = ok(ch.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("a message");
    assert_eq!(second.delivery.data, b"b");
    assert_eq!(*second.delivery.properties.priority(), Some(9));
    assert_eq!(
        drain(&ch, &queue).await,
        owned(&[("d", false), ("c", false)])
    );
}

#[tokio::test]
async fn without_max_priority_the_priority_property_is_ignored() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let queue = exclusive_queue(&ch, "prio-none", &[]).await;
    publish_prioritised(&ch, &queue, &[("a", Some(0)), ("b", Some(9)), ("c", None)]).await;
    assert_eq!(
        drain(&ch, &queue).await,
        owned(&[("a", false), ("b", false), ("c", false)])
    );
}

#[tokio::test]
async fn requeued_messages_keep_their_priority() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let queue = exclusive_queue(&ch, "prio-requeue", &[("x-max-priority", int(5))]).await;
    publish_prioritised(&ch, &queue, &[("high", Some(5))]).await;
    let reader = ok(conn.create_channel()).await;
    ok(reader.basic_get(queue.as_str().into(), BasicGetOptions::default()))
        .await
        .expect("a message");
    publish_prioritised(&ch, &queue, &[("low", Some(1)), ("mid", Some(3))]).await;
    // Closing the channel requeues "high" ahead of everything published since.
    ok(reader.close(200, "OK".into())).await;
    let mut inbox = consume(&ch, &queue, "", BasicConsumeOptions::default()).await;
    let got = inbox.take(3).await;
    let bodies: Vec<_> = got.iter().map(|(b, r, _)| (b.as_str(), *r)).collect();
    assert_eq!(bodies, [("high", true), ("mid", false), ("low", false)]);
}

#[tokio::test]
async fn the_higher_priority_consumer_is_preferred_while_it_has_room() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let queue = exclusive_queue(&ch, "consumer-prio", &[]).await;
    // The low-priority consumer subscribes first, so order of subscription cannot explain
    // the result.
    let low_ch = ok(conn.create_channel()).await;
    let mut low = consume_with_priority(&low_ch, &queue, 1).await;
    let high_ch = ok(conn.create_channel()).await;
    ok(high_ch.basic_qos(2, BasicQosOptions::default())).await;
    let mut high = consume_with_priority(&high_ch, &queue, 10).await;

    for body in ["m1", "m2", "m3", "m4"] {
        publish_confirmed(&ch, &queue, body).await;
    }
    // The high-priority consumer takes what its prefetch allows; the rest overflows.
    let to_high = high.take(2).await;
    assert_eq!(bodies(&to_high), ["m1", "m2"]);
    assert_eq!(bodies(&low.take(2).await), ["m3", "m4"]);

    // Once it has room again, it is preferred again. Publishing on the channel that acked
    // orders the publish after the ack.
    ok(high_ch.basic_ack(to_high[0].2, BasicAckOptions::default())).await;
    publish(&high_ch, &queue, "m5").await;
    assert_eq!(high.next().await.data, b"m5");
    low.quiet().await;
}

/// A manual-ack consumer on `queue` with the `x-priority` consume argument.
async fn consume_with_priority(ch: &Channel, queue: &str, priority: i32) -> common::lapin::Inbox {
    let consumer = ok(ch.basic_consume(
        queue.into(),
        "".into(),
        BasicConsumeOptions::default(),
        table(&[("x-priority", int(priority))]),
    ))
    .await;
    common::lapin::Inbox::new(consumer)
}

fn bodies(taken: &[(String, bool, u64)]) -> Vec<&str> {
    taken.iter().map(|(b, _, _)| b.as_str()).collect()
}

#[tokio::test]
async fn invalid_priority_arguments_are_refused() {
    let broker = common::TestBroker::start();
    let (conn, _ch) = setup(&broker).await;
    let queue = common::unique("prio-invalid");
    let cases: [(AMQPValue, &str); 3] = [
        (int(256), "{max_value_exceeded,256}"),
        (int(-1), "{value_negative,-1}"),
        (text("5"), "\"expected integer, got longstr\""),
    ];
    for (value, detail) in cases {
        assert_eq!(
            refused_declare(
                &conn,
                &queue,
                QueueDeclareOptions::exclusive(),
                &[("x-max-priority", value.clone())]
            )
            .await,
            invalid_arg(&queue, "x-max-priority", detail),
            "x-max-priority = {value:?}"
        );
    }

    // A consumer priority must be an integer too.
    let ch = ok(conn.create_channel()).await;
    let queue = exclusive_queue(&ch, "prio-consumer-invalid", &[]).await;
    let refused = common::lapin::expect_error(ch.basic_consume(
        queue.as_str().into(),
        "".into(),
        BasicConsumeOptions::default(),
        table(&[("x-priority", text("high"))]),
    ))
    .await;
    assert_eq!(
        refused,
        invalid_arg(&queue, "x-priority", "\"expected integer, got longstr\"")
    );
}
