//! Dead lettering: messages rejected, nacked, expired or pushed out by `x-max-length` are
//! republished to `x-dead-letter-exchange` (with `x-dead-letter-routing-key` if set), carrying
//! an `x-death` history and `x-first-death-*` headers; fully automatic cycles are dropped.

mod common;

use common::lapin::{
    Inbox, confirming, consume, counts, exclusive_queue, int, invalid_arg, is_rabbitmq_before, ok,
    publish_confirmed, publish_with, refused_declare, table, text,
};
use common::x_death::{Death, death_of, deaths, first_death, last_death};
use lapin::{
    BasicProperties, Channel, ExchangeKind,
    message::Delivery,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions,
        BasicRejectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable},
};

/// Arguments that dead-letter into `queue` through the default exchange.
fn dead_letter_to(queue: &str) -> Vec<(&'static str, AMQPValue)> {
    vec![
        ("x-dead-letter-exchange", text("")),
        ("x-dead-letter-routing-key", text(queue)),
    ]
}

/// A consumer that acknowledges automatically, to watch where messages end up.
async fn watch(ch: &Channel, queue: &str) -> Inbox {
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    consume(ch, queue, "", no_ack).await
}

/// An auto-delete exchange of `kind`, gone with the last queue bound to it.
async fn exchange(ch: &Channel, prefix: &str, kind: ExchangeKind) -> String {
    let name = common::unique(prefix);
    let options = ExchangeDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    ok(ch.exchange_declare(name.as_str().into(), kind, options, FieldTable::default())).await;
    name
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    ok(ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await;
}

/// Checks the headers that name where `delivery` died first (and, on brokers that record it,
/// last). RabbitMQ 3.13 added `x-last-death-*`; Warren follows current RabbitMQ.
async fn assert_named_deaths(
    broker: &common::TestBroker,
    delivery: &Delivery,
    first: (&str, &str, &str),
    last: (&str, &str, &str),
) {
    assert_eq!(first_death(delivery), death_of(first.0, first.1, first.2));
    if is_rabbitmq_before(broker, 3, 13).await {
        assert_eq!(last_death(delivery), None);
    } else {
        assert_eq!(last_death(delivery), death_of(last.0, last.1, last.2));
    }
}

#[tokio::test]
async fn rejected_message_goes_to_the_dead_letter_exchange_with_its_routing_key() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let dlx = exchange(&ch, "dlx-direct", ExchangeKind::Direct).await;
    let source = exclusive_queue(&ch, "dl-source", &[("x-dead-letter-exchange", text(&dlx))]).await;
    let dead = exclusive_queue(&ch, "dl-target", &[]).await;
    // No x-dead-letter-routing-key: the message keeps the key it was published with.
    bind(&ch, &dead, &dlx, &source).await;
    let mut dead_inbox = watch(&ch, &dead).await;

    let props = BasicProperties::default()
        .with_headers(table(&[("app", text("kept"))]))
        .with_correlation_id("c-1".into());
    let confirm = publish_with(
        &ch,
        "",
        &source,
        BasicPublishOptions::default(),
        b"refused",
        props,
    )
    .await;
    assert!(ok(confirm).await.is_ack());
    let reader = ok(conn.create_channel()).await;
    let mut inbox = consume(&reader, &source, "", BasicConsumeOptions::default()).await;
    let first = inbox.next().await;
    assert!(ok(first.reject(BasicRejectOptions { requeue: false })).await);

    let got = dead_inbox.next().await;
    assert_eq!(got.data, b"refused");
    assert_eq!(got.exchange.as_str(), dlx);
    assert_eq!(got.routing_key.as_str(), source);
    assert!(!got.redelivered, "a dead-lettered message is a new message");
    assert_eq!(
        got.properties.correlation_id().as_ref().map(|c| c.as_str()),
        Some("c-1")
    );
    assert_eq!(
        common::lapin::header(&got, "app"),
        Some(&text("kept")),
        "the message's own headers stay"
    );
    assert_eq!(
        deaths(&got),
        [Death::new(1, "rejected", &source, "", &[&source])]
    );
    assert_named_deaths(
        &broker,
        &got,
        ("rejected", &source, ""),
        ("rejected", &source, ""),
    )
    .await;
    assert_eq!(counts(&ch, &source).await.0, 0);
}

#[tokio::test]
async fn nacked_messages_are_dead_lettered_in_order_with_the_configured_routing_key() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let dead = exclusive_queue(&ch, "dl-nack-target", &[]).await;
    let source = exclusive_queue(&ch, "dl-nack-source", &dead_letter_to(&dead)).await;
    let mut dead_inbox = watch(&ch, &dead).await;
    for body in ["n1", "n2", "n3"] {
        publish_confirmed(&ch, &source, body).await;
    }
    let reader = ok(conn.create_channel()).await;
    let mut inbox = consume(&reader, &source, "", BasicConsumeOptions::default()).await;
    inbox.take(3).await;
    // n3 is requeued, so only n1 and n2 die.
    ok(reader.basic_nack(
        3,
        BasicNackOptions {
            multiple: false,
            requeue: true,
        },
    ))
    .await;
    ok(reader.basic_nack(
        2,
        BasicNackOptions {
            multiple: true,
            requeue: false,
        },
    ))
    .await;

    for body in ["n1", "n2"] {
        let got = dead_inbox.next().await;
        assert_eq!(got.data, body.as_bytes());
        assert_eq!(got.exchange.as_str(), "");
        assert_eq!(
            got.routing_key.as_str(),
            dead,
            "x-dead-letter-routing-key replaces the key"
        );
        // The history keeps the key the message had before it died.
        assert_eq!(
            deaths(&got),
            [Death::new(1, "rejected", &source, "", &[&source])]
        );
    }
    dead_inbox.quiet().await;
    let again = inbox.next().await;
    assert_eq!(
        (again.data.as_slice(), again.redelivered),
        (&b"n3"[..], true)
    );
    assert!(deaths(&again).is_empty(), "a requeued message has not died");
}

#[tokio::test]
async fn expired_messages_are_dead_lettered_with_their_original_expiration() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let dead = exclusive_queue(&ch, "dl-expired-target", &[]).await;
    let mut args = dead_letter_to(&dead);
    args.push(("x-message-ttl", int(30)));
    let source = exclusive_queue(&ch, "dl-expired-source", &args).await;
    let mut dead_inbox = watch(&ch, &dead).await;

    publish_confirmed(&ch, &source, "queue-ttl").await;
    let with_expiration = BasicProperties::default().with_expiration("600000".into());
    let confirm = publish_with(
        &ch,
        "",
        &source,
        BasicPublishOptions::default(),
        b"per-message",
        with_expiration,
    )
    .await;
    assert!(ok(confirm).await.is_ack());

    let got = dead_inbox.next().await;
    assert_eq!(got.data, b"queue-ttl");
    assert_eq!(
        deaths(&got),
        [Death::new(1, "expired", &source, "", &[&source])]
    );
    assert_named_deaths(
        &broker,
        &got,
        ("expired", &source, ""),
        ("expired", &source, ""),
    )
    .await;
    // A message that had an expiration loses it, so it does not expire again where it lands;
    // x-death keeps the value.
    let got = dead_inbox.next().await;
    assert_eq!(got.data, b"per-message");
    assert_eq!(*got.properties.expiration(), None);
    assert_eq!(
        deaths(&got),
        [Death::new(1, "expired", &source, "", &[&source]).with_original_expiration("600000")]
    );
}

#[tokio::test]
async fn messages_pushed_out_by_max_length_die_with_reason_maxlen() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let dead = exclusive_queue(&ch, "dl-maxlen-target", &[]).await;
    let mut args = dead_letter_to(&dead);
    args.push(("x-max-length", int(1)));
    let source = exclusive_queue(&ch, "dl-maxlen-source", &args).await;
    let mut dead_inbox = watch(&ch, &dead).await;
    for body in ["m1", "m2", "m3"] {
        publish_confirmed(&ch, &source, body).await;
    }
    // The oldest go, in order; the newest stays.
    for body in ["m1", "m2"] {
        let got = dead_inbox.next().await;
        assert_eq!(got.data, body.as_bytes());
        assert_eq!(
            deaths(&got),
            [Death::new(1, "maxlen", &source, "", &[&source])]
        );
    }
    dead_inbox.quiet().await;
    assert_eq!(counts(&ch, &source).await.0, 1);
}

#[tokio::test]
async fn dying_again_in_the_same_queue_counts_up_one_entry() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    // The queue dead-letters into itself. A cycle with a rejection in it is the client's
    // choice, so the broker does not break it.
    let name = common::unique("dl-self");
    ok(common::lapin::declare_with(
        &ch,
        &name,
        QueueDeclareOptions::exclusive(),
        &dead_letter_to(&name),
    ))
    .await;
    publish_confirmed(&ch, &name, "again").await;
    let reader = ok(conn.create_channel()).await;
    let mut inbox = consume(&reader, &name, "", BasicConsumeOptions::default()).await;

    let mut current = inbox.next().await;
    assert!(deaths(&current).is_empty());
    for count in 1..=3 {
        assert!(ok(current.reject(BasicRejectOptions { requeue: false })).await);
        current = inbox.next().await;
        assert_eq!(current.data, b"again");
        assert!(
            !current.redelivered,
            "a dead-lettered message is a new message"
        );
        assert_eq!(
            deaths(&current),
            [Death::new(count, "rejected", &name, "", &[&name])]
        );
        assert_eq!(first_death(&current), death_of("rejected", &name, ""));
    }
    assert!(ok(current.ack(BasicAckOptions::default())).await);
    inbox.quiet().await;
}

#[tokio::test]
async fn a_cycle_of_expiring_queues_is_dropped_with_the_most_recent_death_first() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    // first --expired--> second --expired--> first would go on for ever: the broker drops the
    // message instead of sending it back to `first`. An observer bound to both dead-letter
    // exchanges sees every death.
    let observer = exclusive_queue(&ch, "dl-cycle-observer", &[]).await;
    let to_second = exchange(&ch, "dlx-cycle-a", ExchangeKind::Fanout).await;
    let to_first = exchange(&ch, "dlx-cycle-b", ExchangeKind::Fanout).await;
    let ttl = ("x-message-ttl", int(20));
    let first = exclusive_queue(
        &ch,
        "dl-cycle-first",
        &[("x-dead-letter-exchange", text(&to_second)), ttl.clone()],
    )
    .await;
    let second = exclusive_queue(
        &ch,
        "dl-cycle-second",
        &[("x-dead-letter-exchange", text(&to_first)), ttl],
    )
    .await;
    bind(&ch, &second, &to_second, "").await;
    bind(&ch, &observer, &to_second, "").await;
    bind(&ch, &first, &to_first, "").await;
    bind(&ch, &observer, &to_first, "").await;
    let mut seen = watch(&ch, &observer).await;

    publish_confirmed(&ch, &first, "loop").await;
    let once = seen.next().await;
    assert_eq!(
        deaths(&once),
        [Death::new(1, "expired", &first, "", &[&first])]
    );
    let twice = seen.next().await;
    // Most recent first; each entry keeps the exchange and keys the message had in that queue.
    assert_eq!(
        deaths(&twice),
        [
            Death::new(1, "expired", &second, &to_second, &[&first]),
            Death::new(1, "expired", &first, "", &[&first]),
        ]
    );
    assert_named_deaths(
        &broker,
        &twice,
        ("expired", &first, ""),
        ("expired", &second, &to_second),
    )
    .await;
    // A third death would follow within the TTL if the message had gone back to `first`.
    seen.quiet().await;
    assert_eq!(counts(&ch, &first).await.0, 0);
    assert_eq!(counts(&ch, &second).await.0, 0);
}

#[tokio::test]
async fn invalid_dead_letter_arguments_are_refused() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let queue = common::unique("dl-invalid");
    let cases = [
        (
            vec![("x-dead-letter-routing-key", text("k"))],
            invalid_arg(
                &queue,
                "x-dead-letter-routing-key",
                "routing_key_but_no_dlx_defined",
            ),
        ),
        (
            vec![
                ("x-dead-letter-exchange", text("")),
                ("x-dead-letter-routing-key", AMQPValue::Boolean(true)),
            ],
            invalid_arg(
                &queue,
                "x-dead-letter-routing-key",
                "{unacceptable_type,bool}",
            ),
        ),
        // A dead-letter exchange name that is not a string fails an earlier check, worded
        // differently.
        (
            vec![("x-dead-letter-exchange", int(1))],
            (
                406,
                format!(
                    "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue '{queue}' in vhost '/'"
                ),
            ),
        ),
    ];
    for (args, refusal) in cases {
        assert_eq!(
            refused_declare(&conn, &queue, QueueDeclareOptions::exclusive(), &args).await,
            refusal,
            "{args:?}"
        );
    }
}
