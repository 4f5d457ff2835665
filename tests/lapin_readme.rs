//! lapin's README example, step for step, against Warren: connect, declare the
//! durable queue `hello`, publish "Hello, world!" and wait for its confirm,
//! consume it with the consumer tag `my_consumer`, and ack it.

mod common;

use std::time::Duration;

use futures_lite::stream::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::time::timeout;

#[tokio::test]
async fn lapin_readme_example_runs_unchanged() {
    let broker = common::TestBroker::start();
    let conn = Connection::connect(broker.url(), ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = conn.create_channel().await.expect("channel");
    channel
        .queue_declare(
            "hello".into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await
        .expect("declare hello");
    let confirm = channel
        .basic_publish(
            "".into(),
            "hello".into(),
            BasicPublishOptions::default(),
            b"Hello, world!",
            BasicProperties::default(),
        )
        .await
        .expect("publish");
    confirm.await.expect("publish settled");
    let mut consumer = channel
        .basic_consume(
            "hello".into(),
            "my_consumer".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let delivery = timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a delivery within 10 s")
        .expect("consumer still open")
        .expect("delivery");
    assert_eq!(delivery.data, b"Hello, world!");
    delivery.ack(BasicAckOptions::default()).await.expect("ack");
    // The example loops on; the test stops here and leaves a shared broker clean.
    channel
        .queue_delete("hello".into(), QueueDeleteOptions::default())
        .await
        .expect("delete hello");
}
