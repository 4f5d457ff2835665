//! Resource alarms: below the free-disk limit or above the memory high
//! watermark, publishing connections are told (connection.blocked) and no
//! longer read until the alarm clears; consumers go on.
//!
//! Runs only against the in-process broker: the tests move the broker's limits.

mod common;

use std::time::Duration;

use common::lapin::WAIT;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, PublisherConfirm};
use tokio::time::timeout;
use warren::testing::InProcessServer;

/// Publishes `body` to `alarm-q` and returns the pending confirm.
async fn publish(channel: Channel, body: &'static [u8]) -> PublisherConfirm {
    channel
        .basic_publish(
            "".into(),
            "alarm-q".into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn publishers_are_blocked_below_the_disk_limit_and_resume_when_space_returns() {
    // No disk has this much free space, so the alarm goes off at the first sample.
    let server = InProcessServer::start_with(|config| config.disk_free_limit = u64::MAX);
    blocked_publishers_resume_when_the_alarm_clears(&server, || {
        server.broker().alarms().set_disk_free_limit(0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn publishers_are_blocked_above_the_memory_watermark_and_resume_below_it() {
    // Any process uses more than one byte, so the alarm goes off at the first sample.
    let server = InProcessServer::start_with(|config| config.memory_high_watermark_bytes = 1);
    blocked_publishers_resume_when_the_alarm_clears(&server, || {
        server.broker().alarms().set_memory_limit(u64::MAX)
    })
    .await;
}

/// With an alarm set, a publisher is blocked while a consumer still drains;
/// once `clear` lifts the alarm, the held publish is confirmed.
async fn blocked_publishers_resume_when_the_alarm_clears(
    server: &InProcessServer,
    clear: impl FnOnce(),
) {
    let mut alarm = server.broker().alarms().state();
    timeout(WAIT, alarm.wait_for(|state| state.is_set()))
        .await
        .expect("alarm set")
        .expect("alarms alive");

    let url = format!("amqp://guest:guest@{}/%2f", server.addr());
    let publisher = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = publisher.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    channel
        .queue_declare(
            "alarm-q".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    // The first publish is read before the connection counts as a publisher.
    timeout(WAIT, publish(channel.clone(), b"first").await)
        .await
        .expect("first confirm")
        .unwrap();
    assert!(
        common::eventually(WAIT, || publisher.status().blocked()).await,
        "timed out waiting until the publisher is told it is blocked"
    );
    // lapin itself holds publishes while blocked, so publish from a task.
    let second = publish(channel.clone(), b"second");
    let mut second = tokio::spawn(async move { second.await.await });
    assert!(
        timeout(Duration::from_millis(500), &mut second)
            .await
            .is_err(),
        "a blocked connection's publish must not be confirmed"
    );

    // Consumers are not blocked: the queue still drains.
    let consumer = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let reader = consumer.create_channel().await.unwrap();
    let got = reader
        .basic_get("alarm-q".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("first message");
    assert_eq!(got.delivery.data, b"first");

    clear();
    timeout(WAIT, second)
        .await
        .expect("confirm after the alarm clears")
        .expect("publishing task")
        .expect("confirmed");
    assert!(
        common::eventually(WAIT, || !publisher.status().blocked()).await,
        "timed out waiting until the publisher is unblocked"
    );
}
