//! Direct reply-to: a client consumes from the pseudo-queue `amq.rabbitmq.reply-to` (no-ack
//! only), publishes requests with that name as `reply_to`, and the broker rewrites it into a
//! name that routes replies straight back to that consumer on that channel.

mod common;

use common::lapin::{Inbox, consume, ok, publish_with, temp_queue};
use lapin::{
    BasicProperties, Channel,
    options::{BasicConsumeOptions, BasicPublishOptions},
};

const REPLY_TO: &str = "amq.rabbitmq.reply-to";

fn no_ack() -> BasicConsumeOptions {
    BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    }
}

/// Publishes `body` to `queue` through the default exchange, asking for replies via direct reply-to.
async fn request(ch: &Channel, queue: &str, body: &str, correlation_id: &str) {
    let props = BasicProperties::default()
        .with_reply_to(REPLY_TO.into())
        .with_correlation_id(correlation_id.into());
    publish_with(
        ch,
        "",
        queue,
        BasicPublishOptions::default(),
        body.as_bytes(),
        props,
    )
    .await;
}

/// A channel that watches a queue of its own, so an error that closes it is observed.
async fn watched_channel(conn: &lapin::Connection) -> (Channel, Inbox) {
    let ch = ok(conn.create_channel()).await;
    let queue = temp_queue(&ch).await;
    let watch = consume(&ch, &queue, "", BasicConsumeOptions::default()).await;
    (ch, watch)
}

#[tokio::test]
async fn rpc_round_trip_over_direct_reply_to() {
    let broker = common::TestBroker::start();
    // The server and the client use separate connections, as RPC peers would.
    let server_conn = broker.connect().await;
    let server_ch = ok(server_conn.create_channel()).await;
    let requests = temp_queue(&server_ch).await;
    let mut server = consume(&server_ch, &requests, "", no_ack()).await;

    let client_conn = broker.connect().await;
    let client_ch = ok(client_conn.create_channel()).await;
    let mut replies = consume(&client_ch, REPLY_TO, "", no_ack()).await;
    request(&client_ch, &requests, "ping-1", "c1").await;
    request(&client_ch, &requests, "ping-2", "c2").await;

    let mut reply_address = None;
    for (body, correlation_id) in [("ping-1", "c1"), ("ping-2", "c2")] {
        let got = server.next().await;
        assert_eq!(got.data, body.as_bytes());
        let reply_to = got
            .properties
            .reply_to()
            .as_ref()
            .expect("reply_to")
            .to_string();
        // The broker substitutes a name that identifies the requesting channel.
        assert!(
            reply_to.starts_with("amq.rabbitmq.reply-to.") && reply_to.len() > REPLY_TO.len() + 1,
            "rewritten reply_to {reply_to:?}"
        );
        assert_eq!(
            got.properties.correlation_id().as_ref().map(|c| c.as_str()),
            Some(correlation_id)
        );
        let reply = BasicProperties::default().with_correlation_id(correlation_id.into());
        let answer = format!("pong-{correlation_id}");
        publish_with(
            &server_ch,
            "",
            &reply_to,
            BasicPublishOptions::default(),
            answer.as_bytes(),
            reply,
        )
        .await;
        reply_address.get_or_insert(reply_to.clone());
        assert_eq!(reply_address.as_deref(), Some(reply_to.as_str()));
    }

    for correlation_id in ["c1", "c2"] {
        let got = replies.next().await;
        assert_eq!(got.data, format!("pong-{correlation_id}").as_bytes());
        assert_eq!(
            got.properties.correlation_id().as_ref().map(|c| c.as_str()),
            Some(correlation_id)
        );
        assert_eq!(got.exchange.as_str(), "");
        assert_eq!(Some(got.routing_key.as_str()), reply_address.as_deref());
    }
    replies.quiet().await;
}

#[tokio::test]
async fn the_reply_consumer_must_not_acknowledge() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = ok(conn.create_channel()).await;
    assert_eq!(
        common::lapin::expect_error(ch.basic_consume(
            REPLY_TO.into(),
            "".into(),
            BasicConsumeOptions::default(),
            Default::default()
        ))
        .await,
        (
            406,
            "PRECONDITION_FAILED - reply consumer cannot acknowledge".to_string()
        )
    );
}

#[tokio::test]
async fn a_channel_has_one_reply_consumer() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = ok(conn.create_channel()).await;
    let _replies = consume(&ch, REPLY_TO, "", no_ack()).await;
    assert_eq!(
        common::lapin::expect_error(ch.basic_consume(
            REPLY_TO.into(),
            "".into(),
            no_ack(),
            Default::default()
        ))
        .await,
        (
            406,
            "PRECONDITION_FAILED - reply consumer already set".to_string()
        )
    );
}

#[tokio::test]
async fn requesting_a_reply_needs_a_reply_consumer_on_the_same_channel() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let target = {
        let ch = ok(conn.create_channel()).await;
        temp_queue(&ch).await
    };
    let no_consumer = (
        406,
        "PRECONDITION_FAILED - fast reply consumer does not exist".to_string(),
    );

    let (ch, mut watch) = watched_channel(&conn).await;
    request(&ch, &target, "orphan", "c1").await;
    assert_eq!(watch.closed().await, no_consumer);

    // A reply consumer on another channel of the same connection does not count.
    let elsewhere = ok(conn.create_channel()).await;
    let _replies = consume(&elsewhere, REPLY_TO, "", no_ack()).await;
    let (ch, mut watch) = watched_channel(&conn).await;
    request(&ch, &target, "orphan", "c2").await;
    assert_eq!(watch.closed().await, no_consumer);
    assert!(conn.status().connected(), "only the channel is closed");
}
