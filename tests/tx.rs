//! Transactions: tx.select, publishes held back until tx.commit, tx.rollback discarding them, acknowledgements inside transactions and the tx error replies.

mod common;

use common::lapin::{consume, counts, drain, expect_error, ok, owned, publish, temp_queue};
use lapin::{
    Connection,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicRejectOptions,
        ConfirmSelectOptions,
    },
};

/// A connection with a server-named exclusive queue.
async fn setup(broker: &common::TestBroker) -> (Connection, String) {
    let conn = broker.connect().await;
    let ch = ok(conn.create_channel()).await;
    let queue = temp_queue(&ch).await;
    (conn, queue)
}

#[tokio::test]
async fn publishes_stay_invisible_until_commit() {
    let broker = common::TestBroker::start();
    let (conn, queue) = setup(&broker).await;
    let tx = ok(conn.create_channel()).await;
    ok(tx.tx_select()).await;
    for body in ["m1", "m2", "m3"] {
        publish(&tx, &queue, body).await;
    }
    // basic.get on the same channel is processed after the publishes: they are held back.
    assert_eq!(drain(&tx, &queue).await, owned(&[]));
    assert_eq!(counts(&tx, &queue).await.0, 0);

    ok(tx.tx_commit()).await;
    // After commit-ok the messages are in the queue for everyone, in publish order.
    let observer = ok(conn.create_channel()).await;
    assert_eq!(
        drain(&observer, &queue).await,
        owned(&[("m1", false), ("m2", false), ("m3", false)])
    );
}

#[tokio::test]
async fn rollback_discards_publishes() {
    let broker = common::TestBroker::start();
    let (conn, queue) = setup(&broker).await;
    let tx = ok(conn.create_channel()).await;
    ok(tx.tx_select()).await;
    publish(&tx, &queue, "discarded-1").await;
    publish(&tx, &queue, "discarded-2").await;
    ok(tx.tx_rollback()).await;
    // Committing the (now empty) transaction publishes nothing.
    ok(tx.tx_commit()).await;
    assert_eq!(drain(&tx, &queue).await, owned(&[]));

    // The channel stays transactional: a new transaction works as usual.
    publish(&tx, &queue, "kept").await;
    ok(tx.tx_commit()).await;
    let observer = ok(conn.create_channel()).await;
    assert_eq!(drain(&observer, &queue).await, owned(&[("kept", false)]));
}

#[tokio::test]
async fn each_commit_starts_a_new_transaction() {
    let broker = common::TestBroker::start();
    let (conn, queue) = setup(&broker).await;
    let tx = ok(conn.create_channel()).await;
    ok(tx.tx_select()).await;
    // tx.select on a transactional channel is a no-op.
    ok(tx.tx_select()).await;
    let observer = ok(conn.create_channel()).await;
    for round in 0..3 {
        publish(&tx, &queue, &format!("round-{round}")).await;
        assert_eq!(drain(&tx, &queue).await, owned(&[]));
        ok(tx.tx_commit()).await;
        assert_eq!(
            drain(&observer, &queue).await,
            owned(&[(&format!("round-{round}"), false)])
        );
    }
}

#[tokio::test]
async fn acks_take_effect_at_commit_and_are_undone_by_rollback() {
    let broker = common::TestBroker::start();
    let (conn, queue) = setup(&broker).await;
    // Ack inside a transaction, then roll back: the ack is forgotten and m1 stays unacked,
    // so closing the channel puts it back.
    let tx = ok(conn.create_channel()).await;
    publish(&tx, &queue, "m1").await;
    publish(&tx, &queue, "m2").await;
    ok(tx.tx_select()).await;
    let m1 = ok(tx.basic_get(queue.as_str().into(), BasicGetOptions::default()))
        .await
        .expect("m1");
    assert_eq!(m1.delivery.data, b"m1");
    ok(tx.basic_ack(m1.delivery.delivery_tag, BasicAckOptions::default())).await;
    ok(tx.tx_rollback()).await;
    ok(tx.close(200, "OK".into())).await;

    // Ack inside a transaction, then commit: the ack sticks. m1 is awaited through a consumer
    // because RabbitMQ requeues basic.get messages just after channel.close-ok.
    let tx = ok(conn.create_channel()).await;
    ok(tx.tx_select()).await;
    ok(tx.basic_qos(1, Default::default())).await;
    let mut inbox = consume(&tx, &queue, "", BasicConsumeOptions::default()).await;
    let again = inbox.next().await;
    assert_eq!(again.data, b"m1");
    assert!(again.redelivered);
    // Stop the consumer so that m2 stays in the queue, then settle m1 in a transaction.
    ok(tx.basic_cancel(inbox.tag(), Default::default())).await;
    ok(tx.basic_ack(again.delivery_tag, BasicAckOptions::default())).await;
    ok(tx.tx_commit()).await;
    ok(tx.close(200, "OK".into())).await;

    let observer = ok(conn.create_channel()).await;
    assert_eq!(drain(&observer, &queue).await, owned(&[("m2", false)]));
}

#[tokio::test]
async fn rejects_with_requeue_wait_for_commit() {
    let broker = common::TestBroker::start();
    let (conn, queue) = setup(&broker).await;
    let tx = ok(conn.create_channel()).await;
    publish(&tx, &queue, "m1").await;
    publish(&tx, &queue, "m2").await;
    ok(tx.tx_select()).await;
    let m1 = ok(tx.basic_get(queue.as_str().into(), BasicGetOptions::default()))
        .await
        .expect("m1");
    ok(tx.basic_reject(
        m1.delivery.delivery_tag,
        BasicRejectOptions { requeue: true },
    ))
    .await;
    // Not requeued yet: the next message is m2.
    let m2 = ok(tx.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("m2");
    assert_eq!(m2.delivery.data, b"m2");
    assert!(
        ok(tx.basic_get(queue.as_str().into(), BasicGetOptions::default()))
            .await
            .is_none()
    );
    ok(tx.tx_commit()).await;
    assert_eq!(drain(&tx, &queue).await, owned(&[("m1", true)]));
}

#[tokio::test]
async fn commit_or_rollback_without_select_is_refused() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let text = (
        406,
        "PRECONDITION_FAILED - channel is not transactional".to_string(),
    );
    let ch = ok(conn.create_channel()).await;
    assert_eq!(expect_error(ch.tx_commit()).await, text);
    let ch = ok(conn.create_channel()).await;
    assert_eq!(expect_error(ch.tx_rollback()).await, text);
    assert!(conn.status().connected());
}

#[tokio::test]
async fn tx_select_on_a_confirm_channel_is_refused() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = ok(conn.create_channel()).await;
    ok(ch.confirm_select(ConfirmSelectOptions::default())).await;
    assert_eq!(
        expect_error(ch.tx_select()).await,
        (
            406,
            "PRECONDITION_FAILED - cannot switch from confirm to tx mode".to_string()
        )
    );
}

#[tokio::test]
async fn uncommitted_publishes_are_dropped_when_the_channel_closes() {
    let broker = common::TestBroker::start();
    let (conn, queue) = setup(&broker).await;
    let tx = ok(conn.create_channel()).await;
    ok(tx.tx_select()).await;
    publish(&tx, &queue, "never").await;
    ok(tx.close(200, "OK".into())).await;
    let observer = ok(conn.create_channel()).await;
    assert_eq!(drain(&observer, &queue).await, owned(&[]));
}
