//! Error isolation: a channel error closes only its channel, methods sent after it are ignored, new channels work, and connection-level errors close every channel of their connection only.

mod common;

use common::lapin::{
    WAIT, amqp_error, consume, expect_error, ok, publish, queue_exists, temp_queue,
};
use lapin::{
    BasicProperties, Channel, ErrorKind,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions,
        BasicRecoverOptions, ChannelFlowOptions, QueueDeclareOptions,
    },
    types::FieldTable,
};
use tokio::time::timeout;

/// Provokes a 404 channel error on `ch` with a passive declare of a queue that does not exist.
async fn fail_channel(ch: &Channel) -> (u16, String) {
    let name = common::unique("err-missing");
    let err = expect_error(ch.queue_declare(
        name.as_str().into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await;
    assert_eq!(
        err,
        (404, format!("NOT_FOUND - no queue '{name}' in vhost '/'"))
    );
    err
}

#[tokio::test]
async fn a_channel_error_leaves_sibling_channels_working() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let busy = ok(conn.create_channel()).await;
    let queue = temp_queue(&busy).await;
    let mut inbox = consume(&busy, &queue, "", BasicConsumeOptions::default()).await;
    publish(&busy, &queue, "before").await;
    let before = inbox.next().await;

    let doomed = ok(conn.create_channel()).await;
    fail_channel(&doomed).await;
    assert!(!doomed.status().connected());
    assert!(conn.status().connected());
    assert!(busy.status().connected());

    // The sibling keeps its consumer, its unacked delivery and its delivery-tag sequence.
    publish(&busy, &queue, "after").await;
    let after = inbox.next().await;
    assert_eq!(after.data, b"after");
    assert_eq!((before.delivery_tag, after.delivery_tag), (1, 2));
    ok(busy.basic_ack(2, BasicAckOptions { multiple: true })).await;
    inbox.quiet().await;
}

#[tokio::test]
async fn a_channel_error_leaves_other_connections_working() {
    let broker = common::TestBroker::start();
    let a = broker.connect().await;
    let b = broker.connect().await;
    let b_ch = ok(b.create_channel()).await;
    let queue = temp_queue(&b_ch).await;
    let mut inbox = consume(&b_ch, &queue, "", BasicConsumeOptions::default()).await;

    let a_ch = ok(a.create_channel()).await;
    fail_channel(&a_ch).await;

    publish(&b_ch, &queue, "still here").await;
    assert_eq!(inbox.next().await.data, b"still here");
    assert!(a.status().connected() && b.status().connected());
}

#[tokio::test]
async fn a_failed_channel_is_dead_but_a_new_one_can_retry() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = ok(conn.create_channel()).await;
    let name = common::unique("err-retry");
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    assert_eq!(
        expect_error(ch.queue_declare(name.as_str().into(), passive, FieldTable::default())).await,
        (404, format!("NOT_FOUND - no queue '{name}' in vhost '/'"))
    );
    // lapin refuses further work on the closed channel without asking the broker.
    let err = timeout(
        WAIT,
        ch.queue_declare(
            name.as_str().into(),
            QueueDeclareOptions::exclusive(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("declare timed out")
    .expect_err("a closed channel");
    assert!(
        matches!(err.kind(), ErrorKind::InvalidChannelState(..)),
        "{err:?}"
    );

    let retry = ok(conn.create_channel()).await;
    ok(retry.queue_declare(
        name.as_str().into(),
        QueueDeclareOptions::exclusive(),
        FieldTable::default(),
    ))
    .await;
    ok(retry.queue_declare(name.as_str().into(), passive, FieldTable::default())).await;
}

#[tokio::test]
async fn methods_pipelined_after_a_failing_one_are_discarded() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = ok(conn.create_channel()).await;
    let missing = common::unique("err-missing-first");
    let would_be_created = common::unique("err-never-created");
    // Both declares are queued together, before the reply to the first can arrive. After a
    // channel error the broker ignores everything on the channel until channel.close-ok.
    let (first, second) = tokio::join!(
        ch.queue_declare(
            missing.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
        ch.queue_declare(
            would_be_created.as_str().into(),
            QueueDeclareOptions::exclusive(),
            FieldTable::default(),
        ),
    );
    assert_eq!(
        amqp_error(&first.expect_err("first declare must fail")),
        (
            404,
            format!("NOT_FOUND - no queue '{missing}' in vhost '/'")
        )
    );
    second.expect_err("the second declare must not succeed");
    assert!(!queue_exists(&conn, &would_be_created).await);
}

#[tokio::test]
async fn repeated_channel_errors_do_not_wear_out_the_connection() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    for _ in 0..50 {
        let ch = ok(conn.create_channel()).await;
        fail_channel(&ch).await;
    }
    assert!(conn.status().connected());
    let ch = ok(conn.create_channel()).await;
    let queue = temp_queue(&ch).await;
    publish(&ch, &queue, "fine").await;
    let got = ok(ch.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("message");
    assert_eq!(got.delivery.data, b"fine");
}

#[tokio::test]
async fn a_channel_error_hands_its_unacked_messages_to_other_consumers() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let owner = ok(conn.create_channel()).await;
    let queue = temp_queue(&owner).await;
    let failing = ok(conn.create_channel()).await;
    let mut doomed = consume(&failing, &queue, "", BasicConsumeOptions::default()).await;
    publish(&owner, &queue, "m1").await;
    publish(&owner, &queue, "m2").await;
    assert_eq!(doomed.next().await.data, b"m1");
    assert_eq!(doomed.next().await.data, b"m2");

    // The failing channel's consumer learns why its channel died.
    fail_channel(&failing).await;
    assert_eq!(doomed.closed().await.0, 404);

    let mut heir = consume(&owner, &queue, "", BasicConsumeOptions::default()).await;
    for body in ["m1", "m2"] {
        let d = heir.next().await;
        assert_eq!(d.data, body.as_bytes());
        assert!(d.redelivered);
    }
}

#[tokio::test]
async fn a_connection_error_closes_every_channel_of_that_connection_only() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let bystander = ok(conn.create_channel()).await;
    let queue = temp_queue(&bystander).await;
    let _consumer = consume(&bystander, &queue, "", BasicConsumeOptions::default()).await;
    let other_conn = broker.connect().await;
    let other_ch = ok(other_conn.create_channel()).await;

    // basic.recover with requeue=false is NOT_IMPLEMENTED, a hard (connection) error.
    let culprit = ok(conn.create_channel()).await;
    assert_eq!(
        expect_error(culprit.basic_recover(BasicRecoverOptions { requeue: false })).await,
        (540, "NOT_IMPLEMENTED - requeue=false".to_string())
    );
    assert!(!conn.status().connected());
    assert!(!bystander.status().connected());
    let err = timeout(
        WAIT,
        bystander.basic_get(queue.as_str().into(), BasicGetOptions::default()),
    )
    .await
    .expect("get timed out")
    .expect_err("the connection is gone");
    assert!(!err.is_amqp_soft_error(), "{err:?}");

    // Other connections are untouched.
    let q = temp_queue(&other_ch).await;
    publish(&other_ch, &q, "ok").await;
    assert!(
        ok(other_ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }))
            .await
            .is_some()
    );
    assert!(other_conn.status().connected());
}

#[tokio::test]
async fn channel_flow_is_accepted_only_as_active() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = ok(conn.create_channel()).await;
    assert!(ok(ch.channel_flow(ChannelFlowOptions { active: true })).await);
    // RabbitMQ never implemented pausing a channel's deliveries: a hard error.
    assert_eq!(
        expect_error(ch.channel_flow(ChannelFlowOptions { active: false })).await,
        (540, "NOT_IMPLEMENTED - active=false".to_string())
    );
    assert!(!conn.status().connected());
}

#[tokio::test]
async fn immediate_publish_is_a_connection_error() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = ok(conn.create_channel()).await;
    // basic.publish has no reply; in confirm mode lapin fails the pending confirm with the
    // reason the broker gives when it closes the connection.
    ok(ch.confirm_select(Default::default())).await;
    let queue = temp_queue(&ch).await;
    // The immediate flag was dropped in RabbitMQ 3.0; a publish carrying it is refused.
    let confirm = ok(ch.basic_publish(
        "".into(),
        queue.as_str().into(),
        BasicPublishOptions {
            immediate: true,
            ..Default::default()
        },
        b"now",
        BasicProperties::default(),
    ))
    .await;
    let err = timeout(WAIT, confirm)
        .await
        .expect("confirm timed out")
        .expect_err("the publish must be refused");
    assert_eq!(
        amqp_error(&err),
        (540, "NOT_IMPLEMENTED - immediate=true".to_string())
    );
    assert!(!conn.status().connected());
}
