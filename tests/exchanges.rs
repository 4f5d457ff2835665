//! Exchanges: declaration and its error replies, protected and internal exchanges, deletion, and routing through direct, fanout, topic, headers and exchange-to-exchange bindings.

mod common;

use common::lapin::{
    Inbox, connection_start, consume, expect_error, ok, publish_with, setup, table, temp_queue,
};
use lapin::{
    BasicProperties, Channel, ExchangeKind,
    options::{BasicPublishOptions, ExchangeDeclareOptions, ExchangeDeleteOptions},
    types::{AMQPValue, FieldTable},
};

fn plain() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions::default()
}

fn passive() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    }
}

async fn declare(
    ch: &Channel,
    name: &str,
    kind: ExchangeKind,
    options: ExchangeDeclareOptions,
) -> lapin::Result<()> {
    ch.exchange_declare(name.into(), kind, options, FieldTable::default())
        .await
}

async fn delete(ch: &Channel, name: &str) {
    ok(ch.exchange_delete(name.into(), ExchangeDeleteOptions::default())).await;
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str, args: FieldTable) {
    ok(ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        Default::default(),
        args,
    ))
    .await;
}

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &str, props: BasicProperties) {
    let options = BasicPublishOptions::default();
    publish_with(ch, exchange, key, options, body.as_bytes(), props).await;
}

/// Takes every ready message from `queue` (auto-ack) and returns the bodies in order.
///
/// basic.get on the publishing channel is ordered after the publishes, so nothing is missed.
async fn drain(ch: &Channel, queue: &str) -> Vec<String> {
    let drained = common::lapin::drain(ch, queue).await;
    drained.into_iter().map(|(body, _)| body).collect()
}

/// Watches `ch` for a broker-initiated channel.close: lapin hands the close reason to every
/// consumer of the channel, so a consumer on a private queue reports it.
async fn watch(ch: &Channel) -> Inbox {
    let queue = temp_queue(ch).await;
    consume(ch, &queue, "", Default::default()).await
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

#[tokio::test]
async fn every_exchange_type_can_be_declared_checked_and_deleted() {
    let broker = common::TestBroker::start();
    let (conn, mut ch) = setup(&broker).await;
    for kind in [
        ExchangeKind::Direct,
        ExchangeKind::Fanout,
        ExchangeKind::Topic,
        ExchangeKind::Headers,
    ] {
        let name = common::unique("ex-kind");
        ok(declare(&ch, &name, kind.clone(), plain())).await;
        // Redeclaring with identical properties is a no-op.
        ok(declare(&ch, &name, kind.clone(), plain())).await;
        ok(declare(&ch, &name, kind.clone(), passive())).await;
        delete(&ch, &name).await;
        let err = expect_error(declare(&ch, &name, kind, passive())).await;
        assert_eq!(
            err,
            (
                404,
                format!("NOT_FOUND - no exchange '{name}' in vhost '/'")
            )
        );
        assert!(!ch.status().connected(), "a 404 closes the channel");
        ch = ok(conn.create_channel()).await;
    }
}

#[tokio::test]
async fn durable_and_auto_delete_exchanges_can_be_declared() {
    let broker = common::TestBroker::start();
    let (_conn, ch) = setup(&broker).await;
    let durable = common::unique("ex-durable");
    let options = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ok(declare(&ch, &durable, ExchangeKind::Topic, options)).await;
    ok(declare(&ch, &durable, ExchangeKind::Topic, options)).await;
    delete(&ch, &durable).await;

    let auto = common::unique("ex-auto");
    let options = ExchangeDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    ok(declare(&ch, &auto, ExchangeKind::Direct, options)).await;
    // An auto-delete exchange that never had a binding stays until it is deleted.
    ok(declare(&ch, &auto, ExchangeKind::Direct, passive())).await;
    delete(&ch, &auto).await;
}

#[tokio::test]
async fn passive_declare_of_a_missing_exchange_is_not_found() {
    let broker = common::TestBroker::start();
    let (conn, ch) = setup(&broker).await;
    let name = common::unique("ex-missing");
    assert_eq!(
        expect_error(declare(&ch, &name, ExchangeKind::Direct, passive())).await,
        (
            404,
            format!("NOT_FOUND - no exchange '{name}' in vhost '/'")
        )
    );
    // A passive declare only checks existence: the type and flags it carries are ignored.
    let ch = ok(conn.create_channel()).await;
    let existing = common::unique("ex-passive-kind");
    ok(declare(&ch, &existing, ExchangeKind::Direct, plain())).await;
    ok(declare(
        &ch,
        &existing,
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            passive: true,
            durable: true,
            ..Default::default()
        },
    ))
    .await;
    delete(&ch, &existing).await;
}

#[tokio::test]
async fn redeclaring_with_different_properties_is_a_precondition_failure() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = ok(conn.create_channel()).await;
    let name = common::unique("ex-inequiv");
    ok(declare(&ch, &name, ExchangeKind::Direct, plain())).await;

    let cases: [(ExchangeKind, ExchangeDeclareOptions, String); 4] = [
        (
            ExchangeKind::Fanout,
            plain(),
            format!(
                "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{name}' in vhost '/': received 'fanout' but current is 'direct'"
            ),
        ),
        (
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            format!(
                "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange '{name}' in vhost '/': received 'true' but current is 'false'"
            ),
        ),
        (
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            format!(
                "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for exchange '{name}' in vhost '/': received 'true' but current is 'false'"
            ),
        ),
        (
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                internal: true,
                ..Default::default()
            },
            format!(
                "PRECONDITION_FAILED - inequivalent arg 'internal' for exchange '{name}' in vhost '/': received 'true' but current is 'false'"
            ),
        ),
    ];
    for (kind, options, text) in cases {
        let ch = ok(conn.create_channel()).await;
        assert_eq!(
            expect_error(declare(&ch, &name, kind, options)).await,
            (406, text)
        );
    }
    // The failed redeclarations left the exchange as it was.
    let ch = ok(conn.create_channel()).await;
    ok(declare(&ch, &name, ExchangeKind::Direct, plain())).await;
    delete(&ch, &name).await;
}

#[tokio::test]
async fn amq_prefix_is_reserved_for_new_exchanges() {
    let broker = common::TestBroker::start();
    let (conn, ch) = setup(&broker).await;
    let name = format!("amq.{}", common::unique("ex-reserved"));
    assert_eq!(
        expect_error(declare(&ch, &name, ExchangeKind::Direct, plain())).await,
        (
            403,
            format!("ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'")
        )
    );
    // A passive declare of such a name is a plain existence check.
    let ch = ok(conn.create_channel()).await;
    assert_eq!(
        expect_error(declare(&ch, &name, ExchangeKind::Direct, passive())).await,
        (
            404,
            format!("NOT_FOUND - no exchange '{name}' in vhost '/'")
        )
    );
    // The reservation only applies on creation: redeclaring an existing amq.* exchange with
    // its own properties is allowed.
    let ch = ok(conn.create_channel()).await;
    ok(declare(
        &ch,
        "amq.direct",
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
    ))
    .await;
}

#[tokio::test]
async fn standard_exchanges_exist() {
    let broker = common::TestBroker::start();
    let (_conn, ch) = setup(&broker).await;
    for (name, kind) in [
        ("amq.direct", ExchangeKind::Direct),
        ("amq.fanout", ExchangeKind::Fanout),
        ("amq.topic", ExchangeKind::Topic),
        ("amq.headers", ExchangeKind::Headers),
        ("amq.match", ExchangeKind::Headers),
    ] {
        ok(declare(&ch, name, kind, passive())).await;
    }
}

#[tokio::test]
async fn default_exchange_cannot_be_declared_deleted_or_bound() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let text = "ACCESS_REFUSED - operation not permitted on the default exchange".to_string();

    let ch = ok(conn.create_channel()).await;
    assert_eq!(
        expect_error(ch.exchange_delete("".into(), ExchangeDeleteOptions::default())).await,
        (403, text.clone())
    );
    let ch = ok(conn.create_channel()).await;
    assert_eq!(
        expect_error(declare(&ch, "", ExchangeKind::Direct, plain())).await,
        (403, text.clone())
    );
    // RabbitMQ refuses even a passive declare of the default exchange.
    let ch = ok(conn.create_channel()).await;
    assert_eq!(
        expect_error(declare(&ch, "", ExchangeKind::Direct, passive())).await,
        (403, text.clone())
    );
    let ch = ok(conn.create_channel()).await;
    let queue = temp_queue(&ch).await;
    assert_eq!(
        expect_error(ch.queue_bind(
            queue.as_str().into(),
            "".into(),
            "key".into(),
            Default::default(),
            FieldTable::default()
        ))
        .await,
        (403, text.clone())
    );
    let ch = ok(conn.create_channel()).await;
    assert_eq!(
        expect_error(ch.queue_unbind(
            queue.as_str().into(),
            "".into(),
            "key".into(),
            FieldTable::default()
        ))
        .await,
        (403, text.clone())
    );
    let ch = ok(conn.create_channel()).await;
    assert_eq!(
        expect_error(ch.exchange_bind(
            "amq.fanout".into(),
            "".into(),
            "key".into(),
            Default::default(),
            FieldTable::default()
        ))
        .await,
        (403, text.clone())
    );
    let ch = ok(conn.create_channel()).await;
    assert_eq!(
        expect_error(ch.exchange_bind(
            "".into(),
            "amq.fanout".into(),
            "key".into(),
            Default::default(),
            FieldTable::default()
        ))
        .await,
        (403, text)
    );
}

#[tokio::test]
async fn system_exchanges_cannot_be_deleted() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    for name in ["amq.direct", "amq.topic"] {
        let ch = ok(conn.create_channel()).await;
        assert_eq!(
            expect_error(ch.exchange_delete(name.into(), ExchangeDeleteOptions::default())).await,
            (
                403,
                format!(
                    "ACCESS_REFUSED - deletion of system exchange '{name}' in vhost '/' not allowed"
                )
            )
        );
    }
    let ch = ok(conn.create_channel()).await;
    ok(declare(&ch, "amq.direct", ExchangeKind::Direct, passive())).await;
}

#[tokio::test]
async fn delete_if_unused_refuses_an_exchange_with_bindings() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = ok(conn.create_channel()).await;
    let name = common::unique("ex-in-use");
    ok(declare(&ch, &name, ExchangeKind::Direct, plain())).await;
    let queue = temp_queue(&ch).await;
    bind(&ch, &queue, &name, "k", FieldTable::default()).await;

    let if_unused = ExchangeDeleteOptions {
        if_unused: true,
        ..Default::default()
    };
    assert_eq!(
        expect_error(ch.exchange_delete(name.as_str().into(), if_unused)).await,
        (
            406,
            format!("PRECONDITION_FAILED - exchange '{name}' in vhost '/' in use")
        )
    );

    // Being the source of an exchange-to-exchange binding also counts as in use.
    let ch = ok(conn.create_channel()).await;
    ok(ch.queue_unbind(
        queue.as_str().into(),
        name.as_str().into(),
        "k".into(),
        FieldTable::default(),
    ))
    .await;
    ok(ch.exchange_bind(
        "amq.fanout".into(),
        name.as_str().into(),
        "k".into(),
        Default::default(),
        FieldTable::default(),
    ))
    .await;
    assert_eq!(
        expect_error(ch.exchange_delete(name.as_str().into(), if_unused)).await,
        (
            406,
            format!("PRECONDITION_FAILED - exchange '{name}' in vhost '/' in use")
        )
    );

    let ch = ok(conn.create_channel()).await;
    ok(ch.exchange_unbind(
        "amq.fanout".into(),
        name.as_str().into(),
        "k".into(),
        Default::default(),
        FieldTable::default(),
    ))
    .await;
    ok(ch.exchange_delete(name.as_str().into(), if_unused)).await;
    let err = expect_error(declare(&ch, &name, ExchangeKind::Direct, passive())).await;
    assert_eq!(err.0, 404);
}

#[tokio::test]
async fn deleting_a_missing_exchange_succeeds() {
    let broker = common::TestBroker::start();
    let (_conn, ch) = setup(&broker).await;
    // exchange.delete is idempotent in RabbitMQ 3.x and 4.x.
    delete(&ch, &common::unique("ex-never-declared")).await;
    assert!(ch.status().connected());
}

#[tokio::test]
async fn deleting_an_exchange_removes_its_bindings() {
    let broker = common::TestBroker::start();
    let (_conn, ch) = setup(&broker).await;
    let name = common::unique("ex-delete-bindings");
    ok(declare(&ch, &name, ExchangeKind::Fanout, plain())).await;
    let queue = temp_queue(&ch).await;
    bind(&ch, &queue, &name, "", FieldTable::default()).await;
    publish(&ch, &name, "", "before", BasicProperties::default()).await;
    delete(&ch, &name).await;
    // Recreating it yields an exchange without the old binding.
    ok(declare(&ch, &name, ExchangeKind::Fanout, plain())).await;
    publish(&ch, &name, "", "after", BasicProperties::default()).await;
    assert_eq!(drain(&ch, &queue).await, ["before"]);
    delete(&ch, &name).await;
}

#[tokio::test]
async fn auto_delete_exchange_goes_when_its_last_binding_goes() {
    let broker = common::TestBroker::start();
    let (conn, ch) = setup(&broker).await;
    let name = common::unique("ex-auto-delete");
    ok(declare(
        &ch,
        &name,
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
    ))
    .await;
    let q1 = temp_queue(&ch).await;
    let q2 = temp_queue(&ch).await;
    bind(&ch, &q1, &name, "a", FieldTable::default()).await;
    bind(&ch, &q2, &name, "b", FieldTable::default()).await;

    ok(ch.queue_unbind(
        q1.as_str().into(),
        name.as_str().into(),
        "a".into(),
        FieldTable::default(),
    ))
    .await;
    ok(declare(&ch, &name, ExchangeKind::Direct, passive())).await;

    // Removing the last binding deletes the exchange before unbind-ok is sent.
    ok(ch.queue_unbind(
        q2.as_str().into(),
        name.as_str().into(),
        "b".into(),
        FieldTable::default(),
    ))
    .await;
    assert_eq!(
        expect_error(declare(&ch, &name, ExchangeKind::Direct, passive())).await,
        (
            404,
            format!("NOT_FOUND - no exchange '{name}' in vhost '/'")
        )
    );
    drop(conn);
}

#[tokio::test]
async fn internal_exchange_refuses_publishes_but_routes_from_other_exchanges() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = ok(conn.create_channel()).await;
    let internal = common::unique("ex-internal");
    let front = common::unique("ex-front");
    ok(declare(
        &ch,
        &internal,
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            internal: true,
            ..Default::default()
        },
    ))
    .await;
    ok(declare(&ch, &front, ExchangeKind::Fanout, plain())).await;
    let queue = temp_queue(&ch).await;
    bind(&ch, &queue, &internal, "", FieldTable::default()).await;
    ok(ch.exchange_bind(
        internal.as_str().into(),
        front.as_str().into(),
        "".into(),
        Default::default(),
        FieldTable::default(),
    ))
    .await;

    publish(&ch, &front, "rk", "via-front", BasicProperties::default()).await;
    assert_eq!(drain(&ch, &queue).await, ["via-front"]);

    // A direct publish to the internal exchange is a channel error. basic.publish has no reply,
    // so the channel.close is observed through a consumer on the same channel.
    let bad = ok(conn.create_channel()).await;
    let mut watch = watch(&bad).await;
    publish(&bad, &internal, "rk", "direct", BasicProperties::default()).await;
    assert_eq!(
        watch.closed().await,
        (
            403,
            format!(
                "ACCESS_REFUSED - cannot publish to internal exchange '{internal}' in vhost '/'"
            )
        )
    );
    assert_eq!(drain(&ch, &queue).await, Vec::<String>::new());

    delete(&ch, &front).await;
    delete(&ch, &internal).await;
}

/// The broker's `product` and `version` server properties, from its connection.start.
async fn server_identity(broker: &common::TestBroker) -> (String, String) {
    let start = connection_start(broker).await;
    let property = |key: &str| match start.server_properties.inner().get(key) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        _ => String::new(),
    };
    (property("product"), property("version"))
}

/// Whether the broker is a RabbitMQ older than 3.13.
async fn is_rabbitmq_before_3_13(broker: &common::TestBroker) -> bool {
    let (product, version) = server_identity(broker).await;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    product == "RabbitMQ" && (major, minor) < (3, 13)
}

#[tokio::test]
async fn unknown_exchange_type_is_refused() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = ok(conn.create_channel()).await;
    let other = ok(conn.create_channel()).await;
    let name = common::unique("ex-badtype");
    let kind = ExchangeKind::Custom("x-no-such-exchange-type".into());
    let err = expect_error(declare(&ch, &name, kind, plain())).await;

    if is_rabbitmq_before_3_13(&broker).await {
        // RabbitMQ up to 3.12 closed the whole connection with a hard COMMAND_INVALID error.
        assert_eq!(
            err,
            (
                503,
                "COMMAND_INVALID - unknown exchange type 'x-no-such-exchange-type'".to_string()
            )
        );
        assert!(!conn.status().connected());
        assert!(!other.status().connected());
    } else {
        // RabbitMQ 3.13 and later (the expected behaviour): a channel error only.
        assert_eq!(
            err,
            (
                406,
                "PRECONDITION_FAILED - unknown exchange type 'x-no-such-exchange-type'".to_string()
            )
        );
        assert!(!ch.status().connected());
        assert!(conn.status().connected());
        assert!(other.status().connected());
    }

    // The exchange was not created.
    let (_conn, ch) = setup(&broker).await;
    assert_eq!(
        expect_error(declare(&ch, &name, ExchangeKind::Direct, passive()))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn default_exchange_routes_to_the_queue_named_by_the_routing_key() {
    let broker = common::TestBroker::start();
    let (_conn, ch) = setup(&broker).await;
    let q1 = temp_queue(&ch).await;
    let q2 = temp_queue(&ch).await;
    publish(&ch, "", q1.as_str(), "one", BasicProperties::default()).await;
    publish(&ch, "", q2.as_str(), "two", BasicProperties::default()).await;
    publish(
        &ch,
        "",
        "no-such-queue-anywhere",
        "lost",
        BasicProperties::default(),
    )
    .await;
    assert_eq!(drain(&ch, &q1).await, ["one"]);
    assert_eq!(drain(&ch, &q2).await, ["two"]);
}

#[tokio::test]
async fn direct_exchange_routes_on_exact_key() {
    let broker = common::TestBroker::start();
    let (_conn, ch) = setup(&broker).await;
    let ex = common::unique("ex-direct");
    ok(declare(&ch, &ex, ExchangeKind::Direct, plain())).await;
    let q1 = temp_queue(&ch).await;
    let q2 = temp_queue(&ch).await;
    bind(&ch, &q1, &ex, "orange", FieldTable::default()).await;
    bind(&ch, &q2, &ex, "black", FieldTable::default()).await;
    bind(&ch, &q2, &ex, "green", FieldTable::default()).await;
    bind(&ch, &q1, &ex, "shared", FieldTable::default()).await;
    bind(&ch, &q2, &ex, "shared", FieldTable::default()).await;
    // A duplicate binding is idempotent: it does not double deliveries.
    bind(&ch, &q1, &ex, "orange", FieldTable::default()).await;

    for (key, body) in [
        ("orange", "m1"),
        ("black", "m2"),
        ("green", "m3"),
        ("shared", "m4"),
        ("Orange", "m5"),
        ("orange.x", "m6"),
        ("", "m7"),
    ] {
        publish(&ch, &ex, key, body, BasicProperties::default()).await;
    }
    assert_eq!(drain(&ch, &q1).await, ["m1", "m4"]);
    assert_eq!(drain(&ch, &q2).await, ["m2", "m3", "m4"]);

    ok(ch.queue_unbind(
        q2.as_str().into(),
        ex.as_str().into(),
        "shared".into(),
        FieldTable::default(),
    ))
    .await;
    publish(&ch, &ex, "shared", "m8", BasicProperties::default()).await;
    assert_eq!(drain(&ch, &q1).await, ["m8"]);
    assert_eq!(drain(&ch, &q2).await, Vec::<String>::new());
    delete(&ch, &ex).await;
}

#[tokio::test]
async fn fanout_exchange_ignores_the_routing_key() {
    let broker = common::TestBroker::start();
    let (_conn, ch) = setup(&broker).await;
    let ex = common::unique("ex-fanout");
    ok(declare(&ch, &ex, ExchangeKind::Fanout, plain())).await;
    let q1 = temp_queue(&ch).await;
    let q2 = temp_queue(&ch).await;
    let q3 = temp_queue(&ch).await;
    bind(&ch, &q1, &ex, "", FieldTable::default()).await;
    bind(&ch, &q2, &ex, "some-key", FieldTable::default()).await;
    publish(&ch, &ex, "anything", "a", BasicProperties::default()).await;
    publish(&ch, &ex, "", "b", BasicProperties::default()).await;
    assert_eq!(drain(&ch, &q1).await, ["a", "b"]);
    assert_eq!(drain(&ch, &q2).await, ["a", "b"]);
    assert_eq!(drain(&ch, &q3).await, Vec::<String>::new());
    delete(&ch, &ex).await;
}

#[tokio::test]
async fn topic_exchange_matches_word_patterns() {
    let broker = common::TestBroker::start();
    let (_conn, ch) = setup(&broker).await;
    let ex = common::unique("ex-topic");
    ok(declare(&ch, &ex, ExchangeKind::Topic, plain())).await;
    let patterns = [
        "*.orange.*",
        "*.*.rabbit",
        "lazy.#",
        "#",
        "a.#.z",
        "exact.key",
        "#.end",
        "*",
    ];
    let mut queues = Vec::new();
    for pattern in patterns {
        let q = temp_queue(&ch).await;
        bind(&ch, &q, &ex, pattern, FieldTable::default()).await;
        queues.push(q);
    }

    // routing key -> which patterns (by index) must match
    let cases: [(&str, &[usize]); 16] = [
        ("quick.orange.rabbit", &[0, 1, 3]),
        ("lazy.orange.elephant", &[0, 2, 3]),
        ("quick.orange.fox", &[0, 3]),
        ("lazy.brown.fox", &[2, 3]),
        ("lazy.pink.rabbit", &[1, 2, 3]),
        ("quick.brown.fox", &[3]),
        ("orange", &[3, 7]),
        ("quick.orange.male.rabbit", &[3]),
        ("lazy.orange.male.rabbit", &[2, 3]),
        ("lazy", &[2, 3, 7]),
        ("a.z", &[4, 3]),
        ("a.b.c.z", &[3, 4]),
        ("exact.key", &[3, 5]),
        ("the.end", &[3, 6]),
        ("end", &[3, 6, 7]),
        ("", &[3]),
    ];
    for (i, (key, _)) in cases.iter().enumerate() {
        publish(&ch, &ex, key, &format!("{i}"), BasicProperties::default()).await;
    }
    for (qi, q) in queues.iter().enumerate() {
        let expected: Vec<String> = cases
            .iter()
            .enumerate()
            .filter(|(_, (_, matches))| matches.contains(&qi))
            .map(|(i, _)| format!("{i}"))
            .collect();
        assert_eq!(
            drain(&ch, q).await,
            expected,
            "pattern {:?} received the wrong messages",
            patterns[qi]
        );
    }
    delete(&ch, &ex).await;
}

#[tokio::test]
async fn headers_exchange_matches_all_or_any() {
    let broker = common::TestBroker::start();
    let (_conn, ch) = setup(&broker).await;
    let ex = common::unique("ex-headers");
    ok(declare(&ch, &ex, ExchangeKind::Headers, plain())).await;
    let all = temp_queue(&ch).await;
    let any = temp_queue(&ch).await;
    let implicit_all = temp_queue(&ch).await;
    let presence = temp_queue(&ch).await;
    bind(
        &ch,
        &all,
        &ex,
        "",
        table(&[
            ("x-match", text("all")),
            ("format", text("pdf")),
            ("type", text("report")),
        ]),
    )
    .await;
    bind(
        &ch,
        &any,
        &ex,
        "",
        table(&[
            ("x-match", text("any")),
            ("format", text("pdf")),
            ("type", text("report")),
        ]),
    )
    .await;
    // Without x-match the default is "all"; the routing key plays no part.
    bind(
        &ch,
        &implicit_all,
        &ex,
        "ignored",
        table(&[("format", text("zip")), ("size", AMQPValue::LongInt(7))]),
    )
    .await;
    // A void value in the binding matches on the presence of the header, whatever its value.
    bind(&ch, &presence, &ex, "", table(&[("flag", AMQPValue::Void)])).await;

    let cases: [(&[(&str, AMQPValue)], &str); 7] = [
        (&[("format", text("pdf")), ("type", text("report"))], "both"),
        (&[("format", text("pdf"))], "format-only"),
        (
            &[("type", text("report")), ("extra", text("x"))],
            "type-extra",
        ),
        (&[("format", text("doc")), ("type", text("log"))], "neither"),
        (
            &[("format", text("zip")), ("size", AMQPValue::LongInt(7))],
            "zip-7",
        ),
        (
            &[("format", text("zip")), ("size", AMQPValue::LongInt(8))],
            "zip-8",
        ),
        (&[("flag", text("anything"))], "flag"),
    ];
    for (hdrs, body) in cases {
        publish(
            &ch,
            &ex,
            "some-key",
            body,
            BasicProperties::default().with_headers(table(hdrs)),
        )
        .await;
    }
    // A message without any headers matches no header binding.
    publish(&ch, &ex, "", "no-headers", BasicProperties::default()).await;

    assert_eq!(drain(&ch, &all).await, ["both"]);
    assert_eq!(
        drain(&ch, &any).await,
        ["both", "format-only", "type-extra"]
    );
    assert_eq!(drain(&ch, &implicit_all).await, ["zip-7"]);
    assert_eq!(drain(&ch, &presence).await, ["flag"]);
    delete(&ch, &ex).await;
}

#[tokio::test]
async fn exchange_to_exchange_bindings_route_and_unbind() {
    let broker = common::TestBroker::start();
    let (_conn, ch) = setup(&broker).await;
    let source = common::unique("ex-e2e-src");
    let dest = common::unique("ex-e2e-dst");
    ok(declare(&ch, &source, ExchangeKind::Topic, plain())).await;
    ok(declare(&ch, &dest, ExchangeKind::Direct, plain())).await;
    let q = temp_queue(&ch).await;
    let direct_q = temp_queue(&ch).await;
    bind(&ch, &q, &dest, "logs.error", FieldTable::default()).await;
    bind(&ch, &direct_q, &source, "logs.error", FieldTable::default()).await;
    ok(ch.exchange_bind(
        dest.as_str().into(),
        source.as_str().into(),
        "logs.*".into(),
        Default::default(),
        FieldTable::default(),
    ))
    .await;

    // The destination sees the original routing key and applies its own bindings.
    publish(&ch, &source, "logs.error", "e1", BasicProperties::default()).await;
    publish(&ch, &source, "logs.info", "i1", BasicProperties::default()).await;
    publish(
        &ch,
        &source,
        "metrics.error",
        "m1",
        BasicProperties::default(),
    )
    .await;
    assert_eq!(drain(&ch, &q).await, ["e1"]);
    assert_eq!(drain(&ch, &direct_q).await, ["e1"]);

    ok(ch.exchange_unbind(
        dest.as_str().into(),
        source.as_str().into(),
        "logs.*".into(),
        Default::default(),
        FieldTable::default(),
    ))
    .await;
    publish(&ch, &source, "logs.error", "e2", BasicProperties::default()).await;
    assert_eq!(drain(&ch, &q).await, Vec::<String>::new());
    assert_eq!(drain(&ch, &direct_q).await, ["e2"]);

    // A message reaching one queue along two paths is delivered to it once.
    ok(ch.exchange_bind(
        dest.as_str().into(),
        source.as_str().into(),
        "#".into(),
        Default::default(),
        FieldTable::default(),
    ))
    .await;
    bind(&ch, &direct_q, &dest, "logs.error", FieldTable::default()).await;
    publish(&ch, &source, "logs.error", "e3", BasicProperties::default()).await;
    assert_eq!(drain(&ch, &direct_q).await, ["e3"]);
    assert_eq!(drain(&ch, &q).await, ["e3"]);

    delete(&ch, &source).await;
    delete(&ch, &dest).await;
}

#[tokio::test]
async fn binding_with_missing_ends_is_not_found() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let missing = common::unique("ex-missing-end");
    let ch = ok(conn.create_channel()).await;
    assert_eq!(
        expect_error(ch.exchange_bind(
            "amq.fanout".into(),
            missing.as_str().into(),
            "k".into(),
            Default::default(),
            FieldTable::default()
        ))
        .await,
        (
            404,
            format!("NOT_FOUND - no exchange '{missing}' in vhost '/'")
        )
    );
    let ch = ok(conn.create_channel()).await;
    assert_eq!(
        expect_error(ch.exchange_bind(
            missing.as_str().into(),
            "amq.fanout".into(),
            "k".into(),
            Default::default(),
            FieldTable::default()
        ))
        .await,
        (
            404,
            format!("NOT_FOUND - no exchange '{missing}' in vhost '/'")
        )
    );
}
