//! Publishing and consuming: message properties and header tables delivered unchanged, large bodies, basic.return, round-robin, basic.get, consumer cancellation and consumer tags.

mod common;

use common::lapin::{
    consume, counts, expect_error, ok, publish, publish_with, setup, table, temp_queue,
};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind,
    message::BasicReturnMessage,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions,
        BasicPublishOptions, ExchangeDeclareOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString},
};

/// A synchronous round trip on `ch`: everything the broker sent on the channel before its
/// reply (basic.return in particular) has been received once this returns.
async fn round_trip(ch: &Channel) {
    ok(ch.exchange_declare(
        "amq.direct".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await;
}

/// basic.return messages received so far on a channel without publisher confirms.
async fn returned(ch: &Channel) -> Vec<BasicReturnMessage> {
    round_trip(ch).await;
    ok(ch.wait_for_confirms()).await
}

/// A header table using every field type lapin can encode, nested tables and arrays included.
fn every_field_type() -> FieldTable {
    let nested = table(&[
        ("inner-string", AMQPValue::LongString("deep".into())),
        ("inner-int", AMQPValue::LongInt(-7)),
        (
            "inner-table",
            AMQPValue::FieldTable(table(&[("leaf", AMQPValue::Boolean(false))])),
        ),
    ]);
    let array = FieldArray::from(vec![
        AMQPValue::LongString("one".into()),
        AMQPValue::LongInt(2),
        AMQPValue::Boolean(true),
        AMQPValue::Double(3.5),
        AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::ShortShortInt(-1)])),
        AMQPValue::FieldTable(table(&[("in-array", AMQPValue::Void)])),
        AMQPValue::Void,
    ]);
    table(&[
        ("bool-true", AMQPValue::Boolean(true)),
        ("bool-false", AMQPValue::Boolean(false)),
        ("i8", AMQPValue::ShortShortInt(i8::MIN)),
        ("u8", AMQPValue::ShortShortUInt(u8::MAX)),
        ("i16", AMQPValue::ShortInt(i16::MIN)),
        ("u16", AMQPValue::ShortUInt(u16::MAX)),
        ("i32", AMQPValue::LongInt(i32::MIN)),
        ("u32", AMQPValue::LongUInt(u32::MAX)),
        ("i64", AMQPValue::LongLongInt(i64::MIN)),
        ("f32", AMQPValue::Float(1.5)),
        ("f64", AMQPValue::Double(-2.25e10)),
        (
            "decimal",
            AMQPValue::DecimalValue(DecimalValue {
                scale: 3,
                value: 123_456,
            }),
        ),
        ("string", AMQPValue::LongString("héllo wörld".into())),
        ("empty-string", AMQPValue::LongString("".into())),
        (
            "binary-string",
            AMQPValue::LongString(LongString::from(vec![0u8, 0xff, 0x7f, 0x80])),
        ),
        ("timestamp", AMQPValue::Timestamp(1_700_000_000)),
        (
            "bytes",
            AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 2, 0xfe, 0xff])),
        ),
        ("void", AMQPValue::Void),
        ("array", AMQPValue::FieldArray(array)),
        ("empty-array", AMQPValue::FieldArray(FieldArray::default())),
        ("table", AMQPValue::FieldTable(nested)),
        ("empty-table", AMQPValue::FieldTable(FieldTable::default())),
    ])
}

fn all_properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(every_field_type())
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id("corr-42".into())
        .with_reply_to("reply-queue".into())
        .with_expiration("600000".into())
        .with_message_id("msg-1".into())
        .with_timestamp(1_699_999_999)
        .with_type("order.created".into())
        // RabbitMQ checks user_id against the authenticated user.
        .with_user_id("guest".into())
        .with_app_id("warren-tests".into())
        .with_cluster_id("cluster-x".into())
}

#[tokio::test]
async fn all_properties_and_header_types_are_delivered_unchanged() {
    let broker = common::TestBroker::start();
    let (_conn, ch) = setup(&broker).await;
    let queue = temp_queue(&ch).await;
    let props = all_properties();
    // A sparse property set and an empty one exercise the property flags.
    let sparse = BasicProperties::default()
        .with_priority(0)
        .with_timestamp(0)
        .with_headers(FieldTable::default());
    for (body, p) in [
        (&b"by-get"[..], &props),
        (b"{\"id\":1}", &props),
        (b"sparse", &sparse),
        (b"bare", &BasicProperties::default()),
    ] {
        publish_with(
            &ch,
            "",
            &queue,
            BasicPublishOptions::default(),
            body,
            p.clone(),
        )
        .await;
    }

    // basic.get-ok carries the content header unchanged ...
    let got = ok(ch.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("get-ok");
    assert_eq!(got.delivery.data, b"by-get");
    assert_eq!(got.delivery.properties, props);

    // ... and so does basic.deliver.
    let mut inbox = consume(
        &ch,
        &queue,
        "",
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    let full = inbox.next().await;
    assert_eq!(full.data, b"{\"id\":1}");
    assert_eq!(full.properties, props);
    let got = inbox.next().await;
    assert_eq!(got.data, b"sparse");
    assert_eq!(got.properties, sparse);
    let got = inbox.next().await;
    assert_eq!(got.data, b"bare");
    assert_eq!(got.properties, BasicProperties::default());
}

#[tokio::test]
async fn user_id_must_match_the_authenticated_user() {
    let broker = common::TestBroker::start();
    let (_conn, ch) = setup(&broker).await;
    let queue = temp_queue(&ch).await;
    let mut watch = consume(&ch, &queue, "", BasicConsumeOptions::default()).await;
    publish_with(
        &ch,
        "",
        &queue,
        BasicPublishOptions::default(),
        b"x",
        BasicProperties::default().with_user_id("mallory".into()),
    )
    .await;
    assert_eq!(
        watch.closed().await,
        (
            406,
            "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was 'guest'".to_string()
        )
    );
}

/// A body whose bytes depend on their position, so misordered or lost frames are detected.
fn patterned(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 31 + seed * 7 + i / 251) % 256) as u8)
        .collect()
}

#[tokio::test]
async fn large_bodies_span_many_frames_intact() {
    let broker = common::TestBroker::start();
    let (conn, ch) = setup(&broker).await;
    let frame_max = conn.configuration().frame_max() as usize;
    let queue = temp_queue(&ch).await;
    // 1 MiB, plus sizes around the body-frame boundary (frame_max minus 8 bytes of overhead).
    let sizes = [
        1024 * 1024,
        frame_max - 8,
        frame_max - 7,
        frame_max - 9,
        2 * (frame_max - 8),
        0,
        1,
        3 * 1024 * 1024 + 17,
    ];
    for (seed, size) in sizes.iter().enumerate() {
        publish(&ch, &queue, &patterned(*size, seed)).await;
    }
    let mut inbox = consume(
        &ch,
        &queue,
        "",
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    for (seed, size) in sizes.iter().enumerate() {
        let got = inbox.next().await;
        assert_eq!(got.data.len(), *size, "body #{seed} length");
        assert!(
            got.data == patterned(*size, seed),
            "body #{seed} ({size} bytes) corrupted"
        );
    }
}

#[tokio::test]
async fn deliveries_respect_a_small_negotiated_frame_max() {
    let broker = common::TestBroker::start();
    let (_conn, ch) = setup(&broker).await;
    // Shared by two connections, so not exclusive; durable because RabbitMQ 4.3 refuses
    // transient non-exclusive queues by default.
    let queue = common::unique("pc-small-frames");
    ok(ch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions::durable(),
        FieldTable::default(),
    ))
    .await;
    let small = Connection::connect(
        &format!("{}?frame_max=4096", broker.url()),
        ConnectionProperties::default(),
    )
    .await
    .expect("connect with frame_max=4096");
    assert_eq!(small.configuration().frame_max(), 4096);
    let small_ch = ok(small.create_channel()).await;
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };

    // Published with 128 KiB frames, delivered within the consumer's 4 KiB frames.
    let body = patterned(200_000, 3);
    let mut small_inbox = consume(&small_ch, &queue, "", no_ack).await;
    publish(&ch, &queue, &body).await;
    assert!(small_inbox.next().await.data == body, "body corrupted");
    ok(small_ch.basic_cancel(small_inbox.tag(), BasicCancelOptions::default())).await;

    // And the other way round.
    let mut big_inbox = consume(&ch, &queue, "", no_ack).await;
    publish(&small_ch, &queue, &body).await;
    assert!(big_inbox.next().await.data == body, "body corrupted");
    ok(ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default())).await;
}

#[tokio::test]
async fn deliveries_keep_publish_order_and_number_tags_from_one() {
    let broker = common::TestBroker::start();
    let (_conn, ch) = setup(&broker).await;
    let queue = temp_queue(&ch).await;
    for i in 0..20 {
        publish(&ch, &queue, format!("m{i}").as_bytes()).await;
    }
    let mut inbox = consume(&ch, &queue, "", BasicConsumeOptions::default()).await;
    for i in 0..20u64 {
        let d = inbox.next().await;
        assert_eq!(d.data, format!("m{i}").as_bytes());
        assert_eq!(
            d.delivery_tag,
            i + 1,
            "delivery tags count from 1 per channel"
        );
        assert!(!d.redelivered);
        assert_eq!(d.exchange.as_str(), "");
        assert_eq!(d.routing_key.as_str(), queue);
    }
    ok(ch.basic_ack(20, BasicAckOptions { multiple: true })).await;
    inbox.quiet().await;
}

#[tokio::test]
async fn mandatory_unroutable_message_is_returned_with_no_route() {
    let broker = common::TestBroker::start();
    let (_conn, ch) = setup(&broker).await;
    let key = common::unique("nobody-listens");
    let props = BasicProperties::default()
        .with_message_id("ret-1".into())
        .with_headers(table(&[("h", AMQPValue::LongInt(1))]));
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    publish_with(&ch, "amq.direct", &key, mandatory, b"bounce", props.clone()).await;
    let missing_queue = common::unique("no-such-queue");
    publish_with(
        &ch,
        "",
        &missing_queue,
        mandatory,
        b"bounce-2",
        BasicProperties::default(),
    )
    .await;
    // Without mandatory an unroutable message is silently dropped.
    publish_with(
        &ch,
        "amq.direct",
        &key,
        BasicPublishOptions::default(),
        b"dropped",
        BasicProperties::default(),
    )
    .await;
    // A routable mandatory message is not returned.
    let queue = temp_queue(&ch).await;
    publish_with(
        &ch,
        "",
        &queue,
        mandatory,
        b"routed",
        BasicProperties::default(),
    )
    .await;

    let returns = returned(&ch).await;
    assert_eq!(returns.len(), 2, "{returns:?}");
    let first = &returns[0];
    assert_eq!(first.reply_code, 312);
    assert_eq!(first.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(first.delivery.exchange.as_str(), "amq.direct");
    assert_eq!(first.delivery.routing_key.as_str(), key);
    assert_eq!(first.delivery.data, b"bounce");
    assert_eq!(first.delivery.properties, props);
    let second = &returns[1];
    assert_eq!(
        (second.reply_code, second.reply_text.as_str()),
        (312, "NO_ROUTE")
    );
    assert_eq!(second.delivery.exchange.as_str(), "");
    assert_eq!(second.delivery.routing_key.as_str(), missing_queue);
    assert_eq!(second.delivery.data, b"bounce-2");

    let got = ok(ch.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("routed message");
    assert_eq!(got.delivery.data, b"routed");
    assert!(ch.status().connected());
}

#[tokio::test]
async fn publishing_to_a_missing_exchange_closes_only_that_channel() {
    let broker = common::TestBroker::start();
    let (conn, ch) = setup(&broker).await;
    let bystander = ok(conn.create_channel()).await;
    let queue = temp_queue(&ch).await;
    // basic.publish has no reply: the channel.close reaches lapin's consumers on the channel.
    let mut watch = consume(&ch, &queue, "", BasicConsumeOptions::default()).await;
    let missing = common::unique("no-such-exchange");
    publish_with(
        &ch,
        &missing,
        "rk",
        BasicPublishOptions::default(),
        b"lost",
        BasicProperties::default(),
    )
    .await;
    assert_eq!(
        watch.closed().await,
        (
            404,
            format!("NOT_FOUND - no exchange '{missing}' in vhost '/'")
        )
    );
    assert!(conn.status().connected());
    let q2 = temp_queue(&bystander).await;
    publish(&bystander, &q2, b"fine").await;
    let got = ok(bystander.basic_get(q2.as_str().into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("message");
    assert_eq!(got.delivery.data, b"fine");
}

#[tokio::test]
async fn messages_are_dealt_round_robin_to_consumers() {
    let broker = common::TestBroker::start();
    let (conn, ch) = setup(&broker).await;
    let queue = temp_queue(&ch).await;
    let ch_a = ok(conn.create_channel()).await;
    let ch_b = ok(conn.create_channel()).await;
    let mut a = consume(
        &ch_a,
        &queue,
        "consumer-a",
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    let mut b = consume(
        &ch_b,
        &queue,
        "consumer-b",
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    for i in 0..6 {
        publish(&ch, &queue, format!("m{i}").as_bytes()).await;
    }
    for i in [0, 2, 4] {
        assert_eq!(a.next().await.data, format!("m{i}").as_bytes());
    }
    for i in [1, 3, 5] {
        assert_eq!(b.next().await.data, format!("m{i}").as_bytes());
    }
    a.quiet().await;
    b.quiet().await;
}

#[tokio::test]
async fn basic_get_reports_remaining_messages_and_get_empty() {
    let broker = common::TestBroker::start();
    let (_conn, ch) = setup(&broker).await;
    let queue = temp_queue(&ch).await;
    assert!(
        ok(ch.basic_get(queue.as_str().into(), BasicGetOptions::default()))
            .await
            .is_none()
    );
    for body in ["a", "b", "c"] {
        publish(&ch, &queue, body.as_bytes()).await;
    }
    for (i, (body, remaining)) in [("a", 2), ("b", 1), ("c", 0)].into_iter().enumerate() {
        let msg = ok(ch.basic_get(queue.as_str().into(), BasicGetOptions::default()))
            .await
            .expect("get-ok");
        assert_eq!(msg.delivery.data, body.as_bytes());
        assert_eq!(msg.message_count, remaining, "get-ok message_count");
        assert_eq!(msg.delivery.delivery_tag, i as u64 + 1);
        assert!(!msg.delivery.redelivered);
        assert_eq!(msg.delivery.exchange.as_str(), "");
        assert_eq!(msg.delivery.routing_key.as_str(), queue);
    }
    assert!(
        ok(ch.basic_get(queue.as_str().into(), BasicGetOptions::default()))
            .await
            .is_none()
    );
    ok(ch.basic_ack(3, BasicAckOptions { multiple: true })).await;
    assert!(
        ok(ch.basic_get(queue.as_str().into(), BasicGetOptions::default()))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn deleting_a_queue_cancels_its_consumers() {
    let broker = common::TestBroker::start();
    let (conn, ch) = setup(&broker).await;
    let name = common::unique("pc-cancel-notify");
    ok(ch.queue_declare(
        name.as_str().into(),
        QueueDeclareOptions::exclusive(),
        FieldTable::default(),
    ))
    .await;
    let mut inbox = consume(&ch, &name, "", BasicConsumeOptions::default()).await;
    publish(&ch, &name, b"before").await;
    let d = inbox.next().await;
    assert_eq!(d.data, b"before");

    let other = ok(conn.create_channel()).await;
    ok(other.queue_delete(name.as_str().into(), QueueDeleteOptions::default())).await;
    // lapin advertises consumer_cancel_notify, so the broker sends basic.cancel.
    inbox.cancelled().await;
    // The consumer's channel stays open and usable.
    assert!(ch.status().connected());
    let q = temp_queue(&ch).await;
    publish(&ch, &q, b"after").await;
    assert!(
        ok(ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn client_cancel_stops_deliveries() {
    let broker = common::TestBroker::start();
    let (_conn, ch) = setup(&broker).await;
    let queue = temp_queue(&ch).await;
    let mut inbox = consume(
        &ch,
        &queue,
        "",
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    publish(&ch, &queue, b"one").await;
    assert_eq!(inbox.next().await.data, b"one");
    ok(ch.basic_cancel(inbox.tag(), BasicCancelOptions::default())).await;
    inbox.cancelled().await;
    assert_eq!(counts(&ch, &queue).await.1, 0);
    // A message published now stays in the queue.
    publish(&ch, &queue, b"two").await;
    let got = ok(ch.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("message kept in the queue");
    assert_eq!(got.delivery.data, b"two");
    // Cancelling an unknown consumer tag is not an error.
    ok(ch.basic_cancel("no-such-consumer".into(), BasicCancelOptions::default())).await;
    assert!(ch.status().connected());
}

#[tokio::test]
async fn exclusive_consumer_shuts_out_others() {
    let broker = common::TestBroker::start();
    let (conn, ch) = setup(&broker).await;
    let queue = temp_queue(&ch).await;
    let _exclusive = consume(
        &ch,
        &queue,
        "",
        BasicConsumeOptions {
            exclusive: true,
            ..Default::default()
        },
    )
    .await;
    let in_use = (
        403,
        format!("ACCESS_REFUSED - queue '{queue}' in vhost '/' in exclusive use"),
    );

    let other = ok(conn.create_channel()).await;
    assert_eq!(
        expect_error(other.basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default()
        ))
        .await,
        in_use
    );
    // A second consumer on the same channel is refused too.
    assert_eq!(
        expect_error(ch.basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default()
        ))
        .await,
        in_use
    );

    // An exclusive consume on a queue that already has a consumer is refused as well.
    let ch = ok(conn.create_channel()).await;
    let busy = temp_queue(&ch).await;
    let _plain = consume(&ch, &busy, "", BasicConsumeOptions::default()).await;
    let other = ok(conn.create_channel()).await;
    assert_eq!(
        expect_error(other.basic_consume(
            busy.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default()
        ))
        .await,
        (
            403,
            format!("ACCESS_REFUSED - queue '{busy}' in vhost '/' in exclusive use")
        )
    );
}

#[tokio::test]
async fn consumer_tags_are_generated_or_echoed() {
    let broker = common::TestBroker::start();
    let (_conn, ch) = setup(&broker).await;
    let queue = temp_queue(&ch).await;
    let a = consume(&ch, &queue, "", BasicConsumeOptions::default()).await;
    let b = consume(&ch, &queue, "", BasicConsumeOptions::default()).await;
    for tag in [a.tag(), b.tag()] {
        assert!(
            tag.as_str().starts_with("amq.ctag-") && tag.as_str().len() > "amq.ctag-".len(),
            "server-generated consumer tag {tag:?}"
        );
    }
    assert_ne!(a.tag(), b.tag());
    let mine = consume(&ch, &queue, "my-own-tag", BasicConsumeOptions::default()).await;
    assert_eq!(mine.tag().as_str(), "my-own-tag");
}

#[tokio::test]
async fn reusing_a_consumer_tag_on_a_channel_is_a_connection_error() {
    let broker = common::TestBroker::start();
    let (conn, ch) = setup(&broker).await;
    let queue = temp_queue(&ch).await;
    let _first = consume(&ch, &queue, "dup", BasicConsumeOptions::default()).await;
    assert_eq!(
        expect_error(ch.basic_consume(
            queue.as_str().into(),
            "dup".into(),
            BasicConsumeOptions::default(),
            FieldTable::default()
        ))
        .await,
        (
            530,
            "NOT_ALLOWED - attempt to reuse consumer tag 'dup'".to_string()
        )
    );
    assert!(
        !conn.status().connected(),
        "NOT_ALLOWED closes the connection"
    );
}

#[tokio::test]
async fn the_same_consumer_tag_may_be_used_on_different_channels() {
    let broker = common::TestBroker::start();
    let (conn, ch) = setup(&broker).await;
    let queue = temp_queue(&ch).await;
    let other = ok(conn.create_channel()).await;
    let a = consume(&ch, &queue, "shared-tag", BasicConsumeOptions::default()).await;
    let b = consume(&other, &queue, "shared-tag", BasicConsumeOptions::default()).await;
    assert_eq!(a.tag(), b.tag());
    assert!(ch.status().connected() && other.status().connected());
}

#[tokio::test]
async fn no_ack_deliveries_are_settled_on_send() {
    let broker = common::TestBroker::start();
    let (conn, ch) = setup(&broker).await;
    let queue = temp_queue(&ch).await;
    let consumer_ch = ok(conn.create_channel()).await;
    let mut inbox = consume(
        &consumer_ch,
        &queue,
        "",
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    for i in 0..3 {
        publish(&ch, &queue, format!("m{i}").as_bytes()).await;
    }
    for i in 0..3 {
        assert_eq!(inbox.next().await.data, format!("m{i}").as_bytes());
    }
    // Nothing is left to return when the consuming channel closes.
    ok(consumer_ch.close(200, "OK".into())).await;
    assert!(
        ok(ch.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }))
            .await
            .is_none()
    );
}
