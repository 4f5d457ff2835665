//! Time to live: queue-wide `x-message-ttl` (0 included), the per-message `expiration`
//! property and which of the two wins, expired messages leaving message_count, `x-expires`
//! deleting unused queues, and RabbitMQ's refusals of invalid values.

mod common;

use std::time::Duration;

use common::lapin::{
    assert_invalid_args, confirming, consume, counts, declare_with, drain, exclusive_queue, int,
    ok, owned, publish_confirmed, publish_with, routes_to, setup, text, wait_until,
};
use lapin::{
    BasicProperties, Channel,
    options::{BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions},
    types::AMQPValue,
};

/// Publishes `body` to `queue` with the `expiration` property and waits for the confirm.
async fn publish_expiring(ch: &Channel, queue: &str, body: &str, expiration: &str) {
    let confirm = publish_with(
        ch,
        "",
        queue,
        BasicPublishOptions::default(),
        body.as_bytes(),
        BasicProperties::default().with_expiration(expiration.into()),
    )
    .await;
    assert!(ok(confirm).await.is_ack());
}

/// Waits until `queue` reports exactly `ready` messages.
async fn wait_for_count(ch: &Channel, queue: &str, ready: u32) {
    wait_until(
        &format!("{queue} down to {ready} messages"),
        || async move { counts(ch, queue).await.0 == ready },
    )
    .await;
}

/// Waits until `queue` is gone, probing with publishes that do not renew its lease.
async fn wait_until_expired(ch: &Channel, queue: &str) {
    wait_until(&format!("{queue} to expire"), || async move {
        !routes_to(ch, queue).await
    })
    .await;
}

#[tokio::test]
async fn queue_ttl_expires_messages_and_message_count_drops_them() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let queue = exclusive_queue(&ch, "ttl-queue", &[("x-message-ttl", int(50))]).await;
    publish_confirmed(&ch, &queue, "old-1").await;
    publish_confirmed(&ch, &queue, "old-2").await;
    // Once expired, they no longer count as ready.
    wait_for_count(&ch, &queue, 0).await;
    assert_eq!(drain(&ch, &queue).await, owned(&[]));

    // The TTL runs from the moment each message is queued, not from the queue's declaration.
    publish_confirmed(&ch, &queue, "fresh").await;
    assert_eq!(drain(&ch, &queue).await, owned(&[("fresh", false)]));
}

#[tokio::test]
async fn ttl_zero_delivers_only_to_a_waiting_consumer() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let queue = exclusive_queue(&ch, "ttl-zero", &[("x-message-ttl", int(0))]).await;
    // Nobody can take it at once, so it expires on arrival.
    publish_confirmed(&ch, &queue, "unseen").await;
    assert_eq!(counts(&ch, &queue).await, (0, 0));
    assert_eq!(drain(&ch, &queue).await, owned(&[]));

    // A consumer with room takes it as it arrives.
    let reader = ok(conn.create_channel()).await;
    let mut inbox = consume(&reader, &queue, "", BasicConsumeOptions::default()).await;
    publish_confirmed(&ch, &queue, "seen").await;
    assert_eq!(inbox.next().await.data, b"seen");
    inbox.quiet().await;
}

#[tokio::test]
async fn expiration_zero_delivers_only_to_a_waiting_consumer() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let queue = exclusive_queue(&ch, "expiration-zero", &[]).await;
    publish_expiring(&ch, &queue, "unseen", "0").await;
    publish_confirmed(&ch, &queue, "kept").await;
    assert_eq!(drain(&ch, &queue).await, owned(&[("kept", false)]));

    let reader = ok(conn.create_channel()).await;
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut inbox = consume(&reader, &queue, "", no_ack).await;
    publish_expiring(&ch, &queue, "seen", "0").await;
    let got = inbox.next().await;
    assert_eq!(got.data, b"seen");
    // The property is delivered as published.
    assert_eq!(
        got.properties.expiration().as_ref().map(|e| e.as_str()),
        Some("0")
    );
}

#[tokio::test]
async fn per_message_expiration_expires_only_that_message() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let queue = exclusive_queue(&ch, "expiration", &[]).await;
    publish_expiring(&ch, &queue, "short-lived", "30").await;
    publish_confirmed(&ch, &queue, "lasting").await;
    wait_for_count(&ch, &queue, 1).await;
    assert_eq!(drain(&ch, &queue).await, owned(&[("lasting", false)]));
}

#[tokio::test]
async fn expired_messages_behind_the_head_are_never_delivered() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let queue = exclusive_queue(&ch, "expiration-behind", &[]).await;
    publish_confirmed(&ch, &queue, "first").await;
    publish_expiring(&ch, &queue, "expiring", "20").await;
    publish_confirmed(&ch, &queue, "last").await;
    // Nothing announces the expiry of a message that is not at the head, so time is let pass.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        drain(&ch, &queue).await,
        owned(&[("first", false), ("last", false)])
    );
}

#[tokio::test]
async fn the_lower_of_queue_ttl_and_expiration_wins() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let long_queue_ttl = exclusive_queue(&ch, "ttl-long", &[("x-message-ttl", int(600_000))]).await;
    let short_queue_ttl = exclusive_queue(&ch, "ttl-short", &[("x-message-ttl", int(30))]).await;
    publish_expiring(&ch, &long_queue_ttl, "message-ttl-wins", "30").await;
    publish_expiring(&ch, &short_queue_ttl, "queue-ttl-wins", "600000").await;
    wait_for_count(&ch, &long_queue_ttl, 0).await;
    wait_for_count(&ch, &short_queue_ttl, 0).await;

    // Without a shorter per-message value, the long queue TTL keeps the message.
    publish_confirmed(&ch, &long_queue_ttl, "kept").await;
    assert_eq!(drain(&ch, &long_queue_ttl).await, owned(&[("kept", false)]));
}

#[tokio::test]
async fn x_expires_deletes_a_queue_nobody_uses() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let queue = exclusive_queue(&ch, "expires", &[("x-expires", int(100))]).await;
    // Messages do not keep a queue alive: publishing is not a use.
    publish_confirmed(&ch, &queue, "left behind").await;
    wait_until_expired(&ch, &queue).await;
}

#[tokio::test]
async fn a_consumer_keeps_an_expiring_queue_alive() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let queue = exclusive_queue(&ch, "expires-consumed", &[("x-expires", int(50))]).await;
    let reader = ok(conn.create_channel()).await;
    let mut inbox = consume(&reader, &queue, "", BasicConsumeOptions::default()).await;
    // QUIET spans several leases: the queue is not deleted, so the consumer is not cancelled.
    inbox.quiet().await;
    assert!(
        routes_to(&ch, &queue).await,
        "queue expired under its consumer"
    );

    ok(reader.basic_cancel(inbox.tag(), BasicCancelOptions::default())).await;
    // Unused again, it expires.
    wait_until_expired(&ch, &queue).await;
}

#[tokio::test]
async fn invalid_ttl_arguments_are_refused() {
    let broker = common::TestBroker::start();
    let (conn, _ch) = setup(&broker).await;
    let queue = common::unique("ttl-invalid");
    let cases: [(&str, AMQPValue, &str); 7] = [
        ("x-message-ttl", int(-1), "{value_negative,-1}"),
        (
            "x-message-ttl",
            AMQPValue::LongLongInt(315_360_000_001),
            "{value_too_large,315360000001}",
        ),
        (
            "x-message-ttl",
            text("60000"),
            "\"expected integer, got longstr\"",
        ),
        ("x-expires", int(0), "{value_zero,0}"),
        ("x-expires", int(-10), "{value_negative,-10}"),
        (
            "x-expires",
            AMQPValue::LongLongInt(315_360_000_001),
            "{value_too_large,315360000001}",
        ),
        (
            "x-expires",
            AMQPValue::Boolean(true),
            "\"expected integer, got bool\"",
        ),
    ];
    assert_invalid_args(&conn, &queue, &cases).await;
    // The largest accepted value is ten years in milliseconds.
    let ch = ok(conn.create_channel()).await;
    let ten_years = AMQPValue::LongLongInt(315_360_000_000);
    ok(declare_with(
        &ch,
        &queue,
        QueueDeclareOptions::exclusive(),
        &[
            ("x-message-ttl", ten_years.clone()),
            ("x-expires", ten_years),
        ],
    ))
    .await;
}
