//! Connection-level behaviour: handshake, advertised capabilities, negotiated limits, authentication and vhost refusal, channel lifecycle and connection close.

mod common;

use common::lapin::{WAIT, amqp_error, connection_start};
use lapin::{
    Connection, ConnectionProperties, ErrorKind, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};
use tokio::time::timeout;

/// Connects with `url` and expects the broker to refuse the connection.
async fn refused(url: &str) -> (u16, String) {
    let res = timeout(
        WAIT,
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
    .expect("connection attempt timed out");
    match res {
        Ok(conn) => panic!("connection to {url} was accepted: {conn:?}"),
        Err(err) => amqp_error(&err),
    }
}

#[tokio::test]
async fn connect_negotiates_rabbitmq_defaults() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    assert!(conn.status().connected());
    assert_eq!(conn.status().vhost().as_str(), "/");
    assert_eq!(conn.status().username(), "guest");

    // The client proposes 0 ("no preference") for everything, so these are the server's Tune values.
    let config = conn.configuration();
    assert_eq!(config.channel_max(), 2047, "channel_max");
    assert_eq!(config.frame_max(), 131_072, "frame_max");
    assert_eq!(config.heartbeat(), 60, "heartbeat");

    conn.close(200, "OK".into())
        .await
        .expect("connection.close");
    assert!(!conn.status().connected());
}

#[tokio::test]
async fn client_can_lower_the_negotiated_limits() {
    let broker = common::TestBroker::start();
    let url = format!("{}?channel_max=16&frame_max=8192&heartbeat=5", broker.url());
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("connect with lower limits");
    let config = conn.configuration();
    assert_eq!(config.channel_max(), 16);
    assert_eq!(config.frame_max(), 8192);
    assert_eq!(config.heartbeat(), 5);

    // The connection is usable under the lowered limits.
    let ch = conn.create_channel().await.expect("channel");
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions::exclusive(),
            FieldTable::default(),
        )
        .await
        .expect("declare");
    assert!(q.name().as_str().starts_with("amq.gen-"));
    conn.close(200, "OK".into()).await.expect("close");
}

#[tokio::test]
async fn connection_start_advertises_core_capabilities() {
    let broker = common::TestBroker::start();
    // `connection_start` checks that it arrives in a method frame on channel 0.
    let start = connection_start(&broker).await;

    assert_eq!((start.version_major, start.version_minor), (0, 9));
    let mechanisms = String::from_utf8_lossy(start.mechanisms.as_bytes()).to_string();
    assert!(
        mechanisms.split(' ').any(|m| m == "PLAIN"),
        "mechanisms {mechanisms:?} must include PLAIN"
    );
    let locales = String::from_utf8_lossy(start.locales.as_bytes()).to_string();
    assert!(
        locales.split(' ').any(|l| l == "en_US"),
        "locales {locales:?} must include en_US"
    );

    let props = start.server_properties.inner();
    for key in ["product", "version"] {
        assert!(
            matches!(props.get(key), Some(AMQPValue::LongString(_))),
            "server property {key} must be a long string, got {:?}",
            props.get(key)
        );
    }
    let Some(AMQPValue::FieldTable(capabilities)) = props.get("capabilities") else {
        panic!("server properties lack a capabilities table: {props:?}");
    };
    for capability in [
        "publisher_confirms",
        "basic.nack",
        "consumer_cancel_notify",
        "per_consumer_qos",
        "authentication_failure_close",
    ] {
        assert_eq!(
            capabilities.inner().get(capability),
            Some(&AMQPValue::Boolean(true)),
            "capability {capability}"
        );
    }
}

#[tokio::test]
async fn bad_password_is_refused_with_access_refused() {
    let broker = common::TestBroker::start();
    let url = format!("amqp://guest:not-the-password@{}/%2f", broker.addr());
    // The client advertises authentication_failure_close, so the broker must say why it refuses.
    assert_eq!(
        refused(&url).await,
        (
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.".to_string()
        )
    );

    // The broker is unharmed by the failed attempt.
    let conn = broker.connect().await;
    assert!(conn.status().connected());
}

#[tokio::test]
async fn unknown_user_is_refused_with_access_refused() {
    let broker = common::TestBroker::start();
    let url = format!("amqp://no-such-user:guest@{}/%2f", broker.addr());
    assert_eq!(
        refused(&url).await,
        (
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.".to_string()
        )
    );
}

#[tokio::test]
async fn unknown_vhost_is_refused_with_not_allowed() {
    let broker = common::TestBroker::start();
    let url = format!("amqp://guest:guest@{}/nope", broker.addr());
    assert_eq!(
        refused(&url).await,
        (530, "NOT_ALLOWED - vhost nope not found".to_string())
    );
}

#[tokio::test]
async fn many_channels_share_one_connection() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let mut channels = Vec::new();
    for _ in 0..100 {
        channels.push(conn.create_channel().await.expect("open channel"));
    }
    let mut ids: Vec<u16> = channels.iter().map(|c| c.id()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 100, "channel ids must be distinct");
    assert!(ids.iter().all(|&id| (1..=2047).contains(&id)));

    // Every channel does a round trip of its own, interleaved with the others.
    let names: Vec<String> = (0..channels.len())
        .map(|_| common::unique("conn-many"))
        .collect();
    for (ch, name) in channels.iter().zip(&names) {
        let q = ch
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions::exclusive(),
                FieldTable::default(),
            )
            .await
            .expect("declare on channel");
        assert_eq!(q.name().as_str(), name);
    }
    for ch in &channels {
        ch.close(200, "OK".into()).await.expect("close channel");
        assert!(!ch.status().connected());
    }
    conn.close(200, "OK".into())
        .await
        .expect("close connection");
}

#[tokio::test]
async fn closed_channel_can_be_replaced() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let exchange = common::unique("conn-reopen");
    ch.exchange_declare(
        exchange.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("declare");
    ch.close(200, "OK".into()).await.expect("channel.close");
    assert!(!ch.status().connected());

    // The closed channel refuses work locally; a new one on the same connection works.
    let err = ch
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect_err("closed channel must not be usable");
    assert!(
        matches!(err.kind(), ErrorKind::InvalidChannelState(..)),
        "{err:?}"
    );

    let again = conn.create_channel().await.expect("reopen channel");
    assert!(again.status().connected());
    again
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("passive declare on the new channel");
    again
        .exchange_delete(exchange.as_str().into(), Default::default())
        .await
        .expect("delete");
    conn.close(200, "OK".into()).await.expect("close");
}

#[tokio::test]
async fn channel_close_with_custom_reply_is_accepted() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    // A client may close with any code/text; the broker answers close-ok.
    ch.close(200, "client going away".into())
        .await
        .expect("channel.close-ok");
    let other = conn.create_channel().await.expect("channel");
    assert!(other.status().connected());
    conn.close(200, "OK".into()).await.expect("close");
}

#[tokio::test]
async fn connection_close_ends_every_channel() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let a = conn.create_channel().await.expect("channel a");
    let b = conn.create_channel().await.expect("channel b");
    conn.close(200, "Goodbye".into())
        .await
        .expect("connection.close-ok");
    assert!(!conn.status().connected());
    assert!(!a.status().connected());
    assert!(!b.status().connected());
    let err = conn
        .create_channel()
        .await
        .expect_err("closed connection must not open channels");
    assert!(
        matches!(err.kind(), ErrorKind::InvalidConnectionState(_)),
        "{err:?}"
    );

    // Other connections are unaffected.
    let other = broker.connect().await;
    let ch = other
        .create_channel()
        .await
        .expect("channel on a new connection");
    assert!(ch.status().connected());
    other.close(200, "OK".into()).await.expect("close");
}

#[tokio::test]
async fn access_request_is_accepted_for_old_clients() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    // access.request is a no-op kept for AMQP 0-8 clients; RabbitMQ answers access.request-ok.
    ch.access_request("/data".into(), Default::default())
        .await
        .expect("access.request-ok");
    assert!(ch.status().connected());
    conn.close(200, "OK".into()).await.expect("close");
}
