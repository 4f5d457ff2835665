//! Queue length limits: `x-max-length` and `x-max-length-bytes`, and what `x-overflow` does
//! with the excess: drop the oldest (`drop-head`, the default), refuse the new message with a
//! basic.nack (`reject-publish`), or refuse and dead-letter it (`reject-publish-dlx`).

mod common;

use common::lapin::{
    Inbox, assert_invalid_args, confirming, consume, counts, drain, exclusive_queue, int, ok,
    owned, publish, publish_confirmed, publish_with, setup, text,
};
use common::x_death::{Death, deaths};
use lapin::{
    BasicProperties, Channel, Confirmation,
    options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions},
    types::AMQPValue,
};

/// Publishes `body` to `queue` on the confirm-mode channel `ch` and returns the broker's answer.
async fn confirmation(ch: &Channel, queue: &str, body: &str) -> Confirmation {
    let confirm = publish_with(
        ch,
        "",
        queue,
        BasicPublishOptions::default(),
        body.as_bytes(),
        BasicProperties::default(),
    )
    .await;
    ok(confirm).await
}

/// A consumer that acknowledges automatically, to watch where messages end up.
async fn watch(ch: &Channel, queue: &str) -> Inbox {
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    consume(ch, queue, "", no_ack).await
}

#[tokio::test]
async fn max_length_drops_the_oldest_messages_by_default() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let queue = exclusive_queue(&ch, "maxlen", &[("x-max-length", int(2))]).await;
    for body in ["m1", "m2", "m3", "m4"] {
        publish_confirmed(&ch, &queue, body).await;
    }
    assert_eq!(counts(&ch, &queue).await.0, 2);
    assert_eq!(
        drain(&ch, &queue).await,
        owned(&[("m3", false), ("m4", false)])
    );
}

#[tokio::test]
async fn max_length_counts_only_ready_messages() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let queue = exclusive_queue(&ch, "maxlen-unacked", &[("x-max-length", int(1))]).await;
    let reader = ok(conn.create_channel()).await;
    let mut inbox = consume(&reader, &queue, "", BasicConsumeOptions::default()).await;
    publish_confirmed(&ch, &queue, "held").await;
    assert_eq!(inbox.next().await.data, b"held");
    // "held" is delivered but unacknowledged, so it leaves room for one ready message.
    ok(reader.basic_cancel(inbox.tag(), Default::default())).await;
    publish_confirmed(&ch, &queue, "ready").await;
    assert_eq!(drain(&ch, &queue).await, owned(&[("ready", false)]));
}

#[tokio::test]
async fn max_length_bytes_counts_body_bytes() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let queue = exclusive_queue(&ch, "maxbytes", &[("x-max-length-bytes", int(10))]).await;
    // Headers and properties do not count, only bodies: 4 + 4 fits, 4 + 4 + 4 does not.
    let big_headers = BasicProperties::default()
        .with_headers(common::lapin::table(&[("padding", text(&"x".repeat(100)))]));
    for body in ["aaaa", "bbbb"] {
        let confirm = publish_with(
            &ch,
            "",
            &queue,
            BasicPublishOptions::default(),
            body.as_bytes(),
            big_headers.clone(),
        )
        .await;
        assert!(ok(confirm).await.is_ack());
    }
    assert_eq!(counts(&ch, &queue).await.0, 2);
    publish_confirmed(&ch, &queue, "cccc").await;
    assert_eq!(
        drain(&ch, &queue).await,
        owned(&[("bbbb", false), ("cccc", false)])
    );

    // A message larger than the limit on its own cannot stay either.
    publish_confirmed(&ch, &queue, "small").await;
    publish_confirmed(&ch, &queue, "eleven-byte").await;
    assert_eq!(drain(&ch, &queue).await, owned(&[]));
}

#[tokio::test]
async fn reject_publish_nacks_what_does_not_fit() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let queue = exclusive_queue(
        &ch,
        "overflow-reject",
        &[
            ("x-max-length", int(2)),
            ("x-overflow", text("reject-publish")),
        ],
    )
    .await;
    assert_eq!(
        confirmation(&ch, &queue, "m1").await,
        Confirmation::Ack(None)
    );
    assert_eq!(
        confirmation(&ch, &queue, "m2").await,
        Confirmation::Ack(None)
    );
    assert_eq!(
        confirmation(&ch, &queue, "m3").await,
        Confirmation::Nack(None)
    );
    assert!(ch.status().connected(), "a refusal is not an error");

    // Without confirms the refusal is silent.
    let plain = ok(conn.create_channel()).await;
    publish(&plain, &queue, "m4").await;
    // Draining makes room again.
    assert_eq!(
        drain(&plain, &queue).await,
        owned(&[("m1", false), ("m2", false)])
    );
    assert_eq!(
        confirmation(&ch, &queue, "m5").await,
        Confirmation::Ack(None)
    );
    assert_eq!(drain(&ch, &queue).await, owned(&[("m5", false)]));
}

#[tokio::test]
async fn reject_publish_does_not_dead_letter_but_reject_publish_dlx_does() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let dead = exclusive_queue(&ch, "overflow-dead", &[]).await;
    let mut dead_inbox = watch(&ch, &dead).await;
    let limited = |overflow: &str| {
        vec![
            ("x-max-length", int(1)),
            ("x-overflow", text(overflow)),
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text(&dead)),
        ]
    };
    let plain = exclusive_queue(&ch, "overflow-plain", &limited("reject-publish")).await;
    let dlx = exclusive_queue(&ch, "overflow-dlx", &limited("reject-publish-dlx")).await;
    for queue in [&plain, &dlx] {
        assert_eq!(
            confirmation(&ch, queue, "kept").await,
            Confirmation::Ack(None)
        );
        assert_eq!(
            confirmation(&ch, queue, "refused").await,
            Confirmation::Nack(None)
        );
    }

    let got = dead_inbox.next().await;
    assert_eq!(got.data, b"refused");
    assert_eq!(deaths(&got), [Death::new(1, "maxlen", &dlx, "", &[&dlx])]);
    dead_inbox.quiet().await;
    assert_eq!(drain(&ch, &plain).await, owned(&[("kept", false)]));
    assert_eq!(drain(&ch, &dlx).await, owned(&[("kept", false)]));
}

#[tokio::test]
async fn invalid_length_arguments_are_refused() {
    let broker = common::TestBroker::start();
    let (conn, _ch) = setup(&broker).await;
    let queue = common::unique("maxlen-invalid");
    let cases: [(&str, AMQPValue, &str); 6] = [
        ("x-max-length", int(-1), "{value_negative,-1}"),
        (
            "x-max-length",
            text("10"),
            "\"expected integer, got longstr\"",
        ),
        ("x-max-length-bytes", int(-5), "{value_negative,-5}"),
        (
            "x-max-length-bytes",
            AMQPValue::Double(1.5),
            "\"expected integer, got double\"",
        ),
        ("x-overflow", text("drop-tail"), "invalid_overflow"),
        ("x-overflow", int(1), "{unacceptable_type,signedint}"),
    ];
    assert_invalid_args(&conn, &queue, &cases).await;
    // Zero is a valid limit.
    let ch = ok(conn.create_channel()).await;
    ok(common::lapin::declare_with(
        &ch,
        &queue,
        QueueDeclareOptions::exclusive(),
        &[("x-max-length", int(0)), ("x-max-length-bytes", int(0))],
    ))
    .await;
}
