//! Consumer timeouts: a delivery left unacknowledged longer than the broker's
//! `consumer_timeout` (or its queue's `x-consumer-timeout`) closes the channel
//! with RabbitMQ's 406, and the message goes back to its queue.
//!
//! Runs only against the in-process broker: the shared RabbitMQ cannot be
//! given a short timeout, and 3.10 ignores `x-consumer-timeout`.

mod common;

use common::lapin::{Inbox, ok, publish, table};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};
use warren::testing::InProcessServer;

async fn connect(server: &InProcessServer) -> Connection {
    let url = format!("amqp://guest:guest@{}/%2f", server.addr());
    Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap()
}

async fn declare(ch: &Channel, name: &str, arguments: FieldTable) {
    ok(ch.queue_declare(name.into(), QueueDeclareOptions::default(), arguments)).await;
}

async fn consume(ch: &Channel, queue: &str) -> Inbox {
    Inbox::new(
        ok(ch.basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ))
        .await,
    )
}

/// Expects the channel of `inbox` to be closed for an ack timeout of `ms`, and
/// the message to be back in `queue`, marked redelivered.
async fn expect_timed_out(conn: &Connection, inbox: &mut Inbox, queue: &str, ms: u64) {
    let (code, text) = inbox.closed().await;
    assert_eq!(code, 406);
    assert_eq!(
        text,
        format!(
            "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value \
             used: {ms} ms. This timeout value can be configured, see consumers doc guide to learn more"
        )
    );
    let other = ok(conn.create_channel()).await;
    let again = ok(other.basic_get(queue.into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("the unacknowledged message is back in its queue");
    assert!(again.delivery.redelivered);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unacknowledged_delivery_times_out_the_channel() {
    let server = InProcessServer::start_with(|config| config.consumer_timeout_ms = 300);
    let conn = connect(&server).await;
    let ch = ok(conn.create_channel()).await;
    declare(&ch, "slow", FieldTable::default()).await;
    publish(&ch, "slow", "work").await;
    let mut inbox = consume(&ch, "slow").await;
    inbox.next().await;
    expect_timed_out(&conn, &mut inbox, "slow", 300).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queue_argument_overrides_the_broker_timeout() {
    // The broker's default is 30 minutes; the queue asks for 200 ms.
    let server = InProcessServer::start();
    let conn = connect(&server).await;
    let ch = ok(conn.create_channel()).await;
    let arguments = table(&[("x-consumer-timeout", AMQPValue::LongInt(200))]);
    declare(&ch, "impatient", arguments).await;
    publish(&ch, "impatient", "work").await;
    let mut inbox = consume(&ch, "impatient").await;
    inbox.next().await;
    expect_timed_out(&conn, &mut inbox, "impatient", 200).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_acknowledged_in_time_keep_the_channel_open() {
    let server = InProcessServer::start_with(|config| config.consumer_timeout_ms = 300);
    let conn = connect(&server).await;
    let ch = ok(conn.create_channel()).await;
    declare(&ch, "prompt", FieldTable::default()).await;
    let mut inbox = consume(&ch, "prompt").await;
    for n in 0..3 {
        publish(&ch, "prompt", format!("m{n}")).await;
        let delivery = inbox.next().await;
        ok(delivery.ack(BasicAckOptions::default())).await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Well past the timeout since the first delivery, the channel still works.
    inbox.quiet().await;
    assert!(ch.status().connected());
}
