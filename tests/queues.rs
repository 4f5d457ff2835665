//! Queues: server-named and passive declares, declare-ok counts, exclusivity, auto-delete, equivalence checks, purge, conditional delete and bindings.

mod common;

use std::time::Duration;

use common::lapin::{
    confirming, consume, counts, expect_error, ok, publish_confirmed, queue_exists,
};
use lapin::{
    BasicProperties, Channel, Connection, Queue,
    options::{
        BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions,
        QueueDeclareOptions, QueueDeleteOptions,
    },
    types::FieldTable,
};

// Queues in these tests are exclusive or durable: RabbitMQ 4.3 refuses transient
// non-exclusive queues by default (deprecated feature `transient_nonexcl_queues`).

async fn setup(broker: &common::TestBroker) -> (Connection, Channel) {
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    (conn, ch)
}

fn passive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        passive: true,
        ..Default::default()
    }
}

async fn declare(ch: &Channel, name: &str, options: QueueDeclareOptions) -> lapin::Result<Queue> {
    ch.queue_declare(name.into(), options, FieldTable::default())
        .await
}

#[tokio::test]
async fn server_named_queue_gets_an_amq_gen_name() {
    let broker = common::TestBroker::start();
    let (_conn, ch) = setup(&broker).await;
    let a = ok(declare(&ch, "", QueueDeclareOptions::exclusive())).await;
    let b = ok(declare(&ch, "", QueueDeclareOptions::exclusive())).await;
    for q in [&a, &b] {
        assert!(
            q.name().as_str().starts_with("amq.gen-") && q.name().as_str().len() > "amq.gen-".len(),
            "server-generated name {:?}",
            q.name()
        );
        assert_eq!((q.message_count(), q.consumer_count()), (0, 0));
    }
    assert_ne!(a.name(), b.name(), "server-generated names are unique");
    // The generated name is a real queue name: it can be used like any other.
    publish_confirmed(&ch, a.name().as_str(), "hello").await;
    assert_eq!(counts(&ch, a.name().as_str()).await, (1, 0));
}

#[tokio::test]
async fn passive_declare_of_a_missing_queue_is_not_found() {
    let broker = common::TestBroker::start();
    let (conn, ch) = setup(&broker).await;
    let name = common::unique("q-missing");
    assert_eq!(
        expect_error(declare(&ch, &name, passive())).await,
        (404, format!("NOT_FOUND - no queue '{name}' in vhost '/'"))
    );
    assert!(!ch.status().connected(), "the channel is closed");
    assert!(conn.status().connected(), "the connection survives");
    // The amq. prefix does not matter to a passive declare: it is only an existence check.
    let ch = ok(conn.create_channel()).await;
    assert_eq!(
        expect_error(declare(&ch, "amq.no-such-queue", passive())).await,
        (
            404,
            "NOT_FOUND - no queue 'amq.no-such-queue' in vhost '/'".to_string()
        )
    );
}

#[tokio::test]
async fn amq_prefix_is_reserved_for_queue_names() {
    let broker = common::TestBroker::start();
    let (_conn, ch) = setup(&broker).await;
    let name = format!("amq.{}", common::unique("q-reserved"));
    assert_eq!(
        expect_error(declare(&ch, &name, QueueDeclareOptions::exclusive())).await,
        (
            403,
            format!("ACCESS_REFUSED - queue name '{name}' contains reserved prefix 'amq.*'")
        )
    );
}

#[tokio::test]
async fn declare_ok_reports_ready_messages_and_consumers() {
    let broker = common::TestBroker::start();
    let (_conn, ch) = setup(&broker).await;
    let name = common::unique("q-counts");
    let q = ok(declare(&ch, &name, QueueDeclareOptions::exclusive())).await;
    assert_eq!(q.name().as_str(), name);
    assert_eq!((q.message_count(), q.consumer_count()), (0, 0));

    for body in ["a", "b", "c"] {
        publish_confirmed(&ch, &name, body).await;
    }
    assert_eq!(counts(&ch, &name).await, (3, 0));
    // A non-passive redeclare with the same properties reports the same counts.
    let again = ok(declare(&ch, &name, QueueDeclareOptions::exclusive())).await;
    assert_eq!((again.message_count(), again.consumer_count()), (3, 0));

    // message_count counts ready messages only: one is now out for delivery, unacked.
    ok(ch.basic_qos(1, Default::default())).await;
    let mut inbox = consume(&ch, &name, "", BasicConsumeOptions::default()).await;
    assert_eq!(inbox.next().await.data, b"a");
    assert_eq!(counts(&ch, &name).await, (2, 1));

    ok(ch.basic_cancel(inbox.tag(), BasicCancelOptions::default())).await;
    assert_eq!(counts(&ch, &name).await.1, 0);
}

#[tokio::test]
async fn exclusive_queue_is_locked_to_its_connection() {
    let broker = common::TestBroker::start();
    let (_owner, owner_ch) = setup(&broker).await;
    let name = common::unique("q-exclusive");
    ok(declare(&owner_ch, &name, QueueDeclareOptions::exclusive())).await;
    publish_confirmed(&owner_ch, &name, "mine").await;

    let other = broker.connect().await;
    let locked = (
        405,
        format!(
            "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{name}' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration."
        ),
    );

    let ch = ok(other.create_channel()).await;
    assert_eq!(
        expect_error(declare(&ch, &name, QueueDeclareOptions::exclusive())).await,
        locked
    );
    let ch = ok(other.create_channel()).await;
    assert_eq!(
        expect_error(declare(&ch, &name, QueueDeclareOptions::default())).await,
        locked
    );
    let ch = ok(other.create_channel()).await;
    assert_eq!(expect_error(declare(&ch, &name, passive())).await, locked);
    let ch = ok(other.create_channel()).await;
    assert_eq!(
        expect_error(ch.basic_consume(
            name.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default()
        ))
        .await,
        locked
    );
    let ch = ok(other.create_channel()).await;
    assert_eq!(
        expect_error(ch.basic_get(name.as_str().into(), BasicGetOptions::default())).await,
        locked
    );
    let ch = ok(other.create_channel()).await;
    assert_eq!(
        expect_error(ch.queue_purge(name.as_str().into(), Default::default())).await,
        locked
    );
    let ch = ok(other.create_channel()).await;
    assert_eq!(
        expect_error(ch.queue_bind(
            name.as_str().into(),
            "amq.fanout".into(),
            "".into(),
            Default::default(),
            FieldTable::default()
        ))
        .await,
        locked
    );
    let ch = ok(other.create_channel()).await;
    assert_eq!(
        expect_error(ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default())).await,
        locked
    );

    // Publishing to it from another connection is allowed.
    let got = ok(owner_ch.basic_get(name.as_str().into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("first message");
    assert_eq!(got.delivery.data, b"mine");
    let mut inbox = consume(
        &owner_ch,
        &name,
        "",
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    let ch = confirming(&other).await;
    publish_confirmed(&ch, &name, "theirs").await;
    assert_eq!(inbox.next().await.data, b"theirs");
}

#[tokio::test]
async fn exclusive_queue_is_deleted_when_its_connection_closes() {
    let broker = common::TestBroker::start();
    let (owner, ch) = setup(&broker).await;
    let name = common::unique("q-exclusive-gone");
    ok(declare(&ch, &name, QueueDeclareOptions::exclusive())).await;
    publish_confirmed(&ch, &name, "left behind").await;
    let observer = broker.connect().await;
    // While the owner lives, the queue exists but is locked.
    let probe = ok(observer.create_channel()).await;
    assert_eq!(expect_error(declare(&probe, &name, passive())).await.0, 405);

    // RabbitMQ deletes exclusive queues before it sends connection.close-ok.
    ok(owner.close(200, "OK".into())).await;
    assert!(
        !queue_exists(&observer, &name).await,
        "exclusive queue outlived its connection"
    );
}

#[tokio::test]
async fn auto_delete_queue_goes_when_its_last_consumer_cancels() {
    let broker = common::TestBroker::start();
    let (conn, ch) = setup(&broker).await;
    let name = common::unique("q-auto-delete");
    ok(declare(
        &ch,
        &name,
        QueueDeclareOptions::exclusive().auto_delete(),
    ))
    .await;

    // Never having had a consumer, it stays.
    assert!(queue_exists(&conn, &name).await);

    let first = consume(&ch, &name, "", BasicConsumeOptions::default()).await;
    let second = consume(&ch, &name, "", BasicConsumeOptions::default()).await;
    ok(ch.basic_cancel(first.tag(), BasicCancelOptions::default())).await;
    assert_eq!(
        counts(&ch, &name).await,
        (0, 1),
        "one consumer left, queue kept"
    );

    ok(ch.basic_cancel(second.tag(), BasicCancelOptions::default())).await;
    // RabbitMQ sends basic.cancel-ok before the queue process deletes itself, so the deletion
    // is observed by polling (bounded); there is no event to wait for.
    let mut gone = false;
    for _ in 0..100 {
        if !queue_exists(&conn, &name).await {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "auto-delete queue survived its last consumer");
}

#[tokio::test]
async fn redeclaring_with_different_properties_is_refused() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = ok(conn.create_channel()).await;
    let name = common::unique("q-inequiv");
    ok(declare(&ch, &name, QueueDeclareOptions::durable())).await;

    let ch = ok(conn.create_channel()).await;
    assert_eq!(
        expect_error(declare(&ch, &name, QueueDeclareOptions::default())).await,
        (
            406,
            format!(
                "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{name}' in vhost '/': received 'false' but current is 'true'"
            )
        )
    );
    let ch = ok(conn.create_channel()).await;
    assert_eq!(
        expect_error(declare(
            &ch,
            &name,
            QueueDeclareOptions::durable().auto_delete()
        ))
        .await,
        (
            406,
            format!(
                "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue '{name}' in vhost '/': received 'true' but current is 'false'"
            )
        )
    );
    // A mismatch on exclusivity is reported as a lock, not as an inequivalent argument.
    let ch = ok(conn.create_channel()).await;
    assert_eq!(
        expect_error(declare(
            &ch,
            &name,
            QueueDeclareOptions {
                durable: true,
                exclusive: true,
                ..Default::default()
            }
        ))
        .await,
        (
            405,
            format!(
                "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{name}' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration."
            )
        )
    );
    // A passive declare ignores the flags it carries.
    let ch = ok(conn.create_channel()).await;
    ok(declare(
        &ch,
        &name,
        QueueDeclareOptions {
            passive: true,
            auto_delete: true,
            ..Default::default()
        },
    ))
    .await;
    ok(ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default())).await;
}

#[tokio::test]
async fn purge_returns_the_number_of_ready_messages_removed() {
    let broker = common::TestBroker::start();
    let (conn, ch) = setup(&broker).await;
    let name = common::unique("q-purge");
    ok(declare(&ch, &name, QueueDeclareOptions::exclusive())).await;
    for i in 0..5 {
        publish_confirmed(&ch, &name, &format!("m{i}")).await;
    }
    assert_eq!(counts(&ch, &name).await, (5, 0));
    // One message is delivered but not acknowledged: purge leaves it alone.
    let taker = ok(conn.create_channel()).await;
    let held = ok(taker.basic_get(name.as_str().into(), BasicGetOptions::default()))
        .await
        .expect("a message");
    assert_eq!(held.delivery.data, b"m0");

    assert_eq!(
        ok(ch.queue_purge(name.as_str().into(), Default::default())).await,
        4
    );
    assert_eq!(
        ok(ch.queue_purge(name.as_str().into(), Default::default())).await,
        0
    );
    assert_eq!(counts(&ch, &name).await, (0, 0));

    // Closing the channel that held it returns the unacked message to the queue. RabbitMQ
    // requeues basic.get messages right after channel.close-ok, so it is awaited.
    ok(taker.close(200, "OK".into())).await;
    let mut inbox = consume(&ch, &name, "", BasicConsumeOptions::default()).await;
    let back = inbox.next().await;
    assert_eq!(back.data, b"m0");
    assert!(back.redelivered);
}

#[tokio::test]
async fn conditional_delete_is_refused_for_non_empty_or_used_queues() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let full = common::unique("q-full");
    let used = common::unique("q-used");
    ok(declare(&ch, &full, QueueDeclareOptions::exclusive())).await;
    ok(declare(&ch, &used, QueueDeclareOptions::exclusive())).await;
    for body in ["1", "2", "3"] {
        publish_confirmed(&ch, &full, body).await;
    }
    let consumer_ch = ok(conn.create_channel()).await;
    let _inbox = consume(&consumer_ch, &used, "", BasicConsumeOptions::default()).await;

    assert_eq!(
        expect_error(ch.queue_delete(
            full.as_str().into(),
            QueueDeleteOptions {
                if_empty: true,
                ..Default::default()
            }
        ))
        .await,
        (
            406,
            format!("PRECONDITION_FAILED - queue '{full}' in vhost '/' not empty")
        )
    );
    let ch = ok(conn.create_channel()).await;
    assert_eq!(
        expect_error(ch.queue_delete(
            used.as_str().into(),
            QueueDeleteOptions {
                if_unused: true,
                ..Default::default()
            }
        ))
        .await,
        (
            406,
            format!("PRECONDITION_FAILED - queue '{used}' in vhost '/' in use")
        )
    );

    // The conditions hold the other way round, so these deletes succeed.
    let ch = ok(conn.create_channel()).await;
    assert_eq!(
        ok(ch.queue_delete(
            full.as_str().into(),
            QueueDeleteOptions {
                if_unused: true,
                ..Default::default()
            }
        ))
        .await,
        3,
        "delete-ok carries the number of messages deleted"
    );
    assert_eq!(
        ok(ch.queue_delete(
            used.as_str().into(),
            QueueDeleteOptions {
                if_empty: true,
                ..Default::default()
            }
        ))
        .await,
        0
    );
    assert!(!queue_exists(&conn, &full).await);
    assert!(!queue_exists(&conn, &used).await);
}

#[tokio::test]
async fn deleting_a_missing_queue_succeeds_with_zero() {
    let broker = common::TestBroker::start();
    let (_conn, ch) = setup(&broker).await;
    // queue.delete is idempotent in RabbitMQ 3.x and 4.x.
    assert_eq!(
        ok(ch.queue_delete(
            common::unique("q-never").as_str().into(),
            QueueDeleteOptions::default()
        ))
        .await,
        0
    );
    assert!(ch.status().connected());
}

#[tokio::test]
async fn durable_queue_can_be_declared_and_deleted() {
    let broker = common::TestBroker::start();
    let (conn, ch) = setup(&broker).await;
    let name = common::unique("q-durable");
    let q = ok(declare(&ch, &name, QueueDeclareOptions::durable())).await;
    assert_eq!(q.name().as_str(), name);
    publish_confirmed(&ch, &name, "x").await;
    assert_eq!(counts(&ch, &name).await, (1, 0));
    // Declaring it again from another connection is fine: it is not exclusive.
    let other = broker.connect().await;
    let och = ok(other.create_channel()).await;
    let again = ok(declare(&och, &name, QueueDeclareOptions::durable())).await;
    assert_eq!(again.message_count(), 1);
    assert_eq!(
        ok(ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default())).await,
        1
    );
    assert!(!queue_exists(&conn, &name).await);
}

#[tokio::test]
async fn bind_and_unbind_control_routing() {
    let broker = common::TestBroker::start();
    let (_conn, ch) = setup(&broker).await;
    let name = common::unique("q-bind");
    ok(declare(&ch, &name, QueueDeclareOptions::exclusive())).await;
    let key = common::unique("key");
    ok(ch.queue_bind(
        name.as_str().into(),
        "amq.direct".into(),
        key.as_str().into(),
        Default::default(),
        FieldTable::default(),
    ))
    .await;
    ok(ch.basic_publish(
        "amq.direct".into(),
        key.as_str().into(),
        BasicPublishOptions::default(),
        b"bound",
        BasicProperties::default(),
    ))
    .await;
    let got = ok(ch.basic_get(name.as_str().into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("routed message");
    assert_eq!(got.delivery.data, b"bound");
    assert_eq!(got.delivery.exchange.as_str(), "amq.direct");
    assert_eq!(got.delivery.routing_key.as_str(), key);

    ok(ch.queue_unbind(
        name.as_str().into(),
        "amq.direct".into(),
        key.as_str().into(),
        FieldTable::default(),
    ))
    .await;
    ok(ch.basic_publish(
        "amq.direct".into(),
        key.as_str().into(),
        BasicPublishOptions::default(),
        b"unbound",
        BasicProperties::default(),
    ))
    .await;
    assert!(
        ok(ch.basic_get(name.as_str().into(), BasicGetOptions { no_ack: true }))
            .await
            .is_none()
    );
    // Unbinding a binding that does not exist is not an error.
    ok(ch.queue_unbind(
        name.as_str().into(),
        "amq.direct".into(),
        key.as_str().into(),
        FieldTable::default(),
    ))
    .await;
    assert!(ch.status().connected());
}

#[tokio::test]
async fn binding_a_missing_queue_or_exchange_is_not_found() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = ok(conn.create_channel()).await;
    let queue = ok(declare(&ch, "", QueueDeclareOptions::exclusive())).await;
    let missing_q = common::unique("q-missing-bind");
    let missing_x = common::unique("x-missing-bind");

    assert_eq!(
        expect_error(ch.queue_bind(
            missing_q.as_str().into(),
            "amq.direct".into(),
            "k".into(),
            Default::default(),
            FieldTable::default()
        ))
        .await,
        (
            404,
            format!("NOT_FOUND - no queue '{missing_q}' in vhost '/'")
        )
    );
    let ch = ok(conn.create_channel()).await;
    assert_eq!(
        expect_error(ch.queue_bind(
            queue.name().clone(),
            missing_x.as_str().into(),
            "k".into(),
            Default::default(),
            FieldTable::default()
        ))
        .await,
        (
            404,
            format!("NOT_FOUND - no exchange '{missing_x}' in vhost '/'")
        )
    );
    // With both missing, the exchange is reported.
    let ch = ok(conn.create_channel()).await;
    assert_eq!(
        expect_error(ch.queue_bind(
            missing_q.as_str().into(),
            missing_x.as_str().into(),
            "k".into(),
            Default::default(),
            FieldTable::default()
        ))
        .await,
        (
            404,
            format!("NOT_FOUND - no exchange '{missing_x}' in vhost '/'")
        )
    );
}

#[tokio::test]
async fn operations_on_a_missing_queue_are_not_found() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let name = common::unique("q-absent");
    let text = (404, format!("NOT_FOUND - no queue '{name}' in vhost '/'"));
    let ch = ok(conn.create_channel()).await;
    assert_eq!(
        expect_error(ch.basic_consume(
            name.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default()
        ))
        .await,
        text
    );
    let ch = ok(conn.create_channel()).await;
    assert_eq!(
        expect_error(ch.basic_get(name.as_str().into(), BasicGetOptions::default())).await,
        text
    );
    let ch = ok(conn.create_channel()).await;
    assert_eq!(
        expect_error(ch.queue_purge(name.as_str().into(), Default::default())).await,
        text
    );
}
