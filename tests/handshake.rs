//! Raw-socket handshake tests: connection.start / tune / open, login failures,
//! heartbeats, channel_max and the client-initiated close, answered as RabbitMQ
//! 3.x answers them.
//!
//! Each test drives AMQP 0-9-1 by hand over a plain `TcpStream` (see
//! `common::raw`), every read bounded by a timeout. They run against the
//! in-process Warren, or against the broker named by `WARREN_TEST_URL`
//! (e.g. RabbitMQ) to check the expectations themselves.

mod common;

use std::time::Duration;

use common::raw::*;
use tokio::time::Instant;

/// A password no test broker accepts.
const WRONG_PASSWORD: &str = "definitely-not-the-password";

/// Connects a raw client to a fresh broker and returns both with the login to use.
async fn connect() -> (common::TestBroker, RawClient, Login) {
    let broker = common::TestBroker::start();
    let client = RawClient::connect(&broker).await;
    let login = login_of(broker.url());
    (broker, client, login)
}

/// Client properties announcing `authentication_failure_close`.
fn properties_with_auth_failure_close() -> Vec<u8> {
    let capabilities = Table(vec![(
        "authentication_failure_close".to_string(),
        Value::Bool(true),
    )]);
    encode_table(&[("capabilities", Value::Table(capabilities))])
}

/// connection.start: version 0-9, PLAIN and AMQPLAIN, en_US, and the
/// capabilities and informational properties RabbitMQ's clients look at.
#[tokio::test]
async fn connection_start_describes_the_server() {
    bounded(async {
        let (_broker, mut client, _login) = connect().await;
        let start = client.expect_start().await;
        assert_eq!((start.version_major, start.version_minor), (0, 9));
        let mechanisms: Vec<&str> = start.mechanisms.split(' ').collect();
        for mechanism in ["PLAIN", "AMQPLAIN"] {
            assert!(
                mechanisms.contains(&mechanism),
                "mechanisms {:?} lack {mechanism}",
                start.mechanisms
            );
        }
        assert_eq!(start.locales, "en_US");

        let properties = &start.server_properties;
        let Some(Value::Table(capabilities)) = properties.get("capabilities") else {
            panic!("no capabilities table in {properties:?}");
        };
        for capability in [
            "publisher_confirms",
            "exchange_exchange_bindings",
            "basic.nack",
            "consumer_cancel_notify",
            "per_consumer_qos",
            "authentication_failure_close",
        ] {
            assert_eq!(
                capabilities.get(capability),
                Some(&Value::Bool(true)),
                "capability {capability} in {capabilities:?}"
            );
        }
        // RabbitMQ sends all of these as long strings (type 'S').
        for key in [
            "product",
            "version",
            "platform",
            "copyright",
            "information",
            "cluster_name",
        ] {
            assert!(
                matches!(properties.get(key), Some(Value::LongStr(s)) if !s.is_empty()),
                "server property {key} missing or not a long string in {properties:?}"
            );
        }
    })
    .await;
}

/// connection.tune offers RabbitMQ's defaults: channel_max 2047, frame_max 131072, heartbeat 60.
#[tokio::test]
async fn connection_tune_offers_rabbitmq_defaults() {
    bounded(async {
        let (_broker, mut client, login) = connect().await;
        client.expect_start().await;
        client
            .send(&connection_start_ok(&login.user, &login.password))
            .await;
        let tune = client.expect_tune().await;
        assert_eq!(
            tune,
            Tune {
                channel_max: 2047,
                frame_max: 131_072,
                heartbeat: 60,
            }
        );
        client
            .finish_handshake(
                Tune {
                    heartbeat: 0,
                    ..tune
                },
                &login.vhost,
            )
            .await;
        client.close().await;
    })
    .await;
}

/// AMQPLAIN (a LOGIN/PASSWORD table without its length prefix) logs in.
#[tokio::test]
async fn amqplain_login_opens_the_connection() {
    bounded(async {
        let (_broker, mut client, login) = connect().await;
        client.expect_start().await;
        let empty = encode_table(&[]);
        let response = amqplain_response(&login.user, &login.password);
        client
            .send(&connection_start_ok_with(&empty, "AMQPLAIN", &response))
            .await;
        let tune = client.expect_tune().await;
        client
            .finish_handshake(
                Tune {
                    heartbeat: 0,
                    ..tune
                },
                &login.vhost,
            )
            .await;
        client.open_channel(1).await;
        client.close().await;
    })
    .await;
}

/// A refused PLAIN login is reported with connection.close 403 to a client that
/// announced `authentication_failure_close`, and the socket then closes (no
/// close-ok needed; RabbitMQ closes it 3 s later).
#[tokio::test]
async fn bad_password_with_auth_failure_close_is_403_then_close() {
    bounded(async {
        let (_broker, mut client, login) = connect().await;
        client.expect_start().await;
        let properties = properties_with_auth_failure_close();
        let response = plain_response(&login.user, WRONG_PASSWORD);
        client
            .send(&connection_start_ok_with(&properties, "PLAIN", &response))
            .await;
        let text = "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. \
                    For details see the broker logfile.";
        let close = client.expect_connection_close(403, text, (0, 0)).await;
        assert_eq!(close.text, text);
        client.expect_closed(CLOSE_TIMEOUT).await;
    })
    .await;
}

/// The same with AMQPLAIN names AMQPLAIN in the text.
#[tokio::test]
async fn bad_password_with_amqplain_names_amqplain() {
    bounded(async {
        let (_broker, mut client, login) = connect().await;
        client.expect_start().await;
        let properties = properties_with_auth_failure_close();
        let response = amqplain_response(&login.user, WRONG_PASSWORD);
        client
            .send(&connection_start_ok_with(
                &properties,
                "AMQPLAIN",
                &response,
            ))
            .await;
        let text = "ACCESS_REFUSED - Login was refused using authentication mechanism AMQPLAIN. \
                    For details see the broker logfile.";
        let close = client.expect_connection_close(403, text, (0, 0)).await;
        assert_eq!(close.text, text);
        client.expect_closed(CLOSE_TIMEOUT).await;
    })
    .await;
}

/// Without `authentication_failure_close` a refused login gets no frame at all:
/// the socket just closes (RabbitMQ: after 3 s).
#[tokio::test]
async fn bad_password_without_capability_just_closes() {
    bounded(async {
        let (_broker, mut client, login) = connect().await;
        client.expect_start().await;
        client
            .send(&connection_start_ok(&login.user, WRONG_PASSWORD))
            .await;
        client.expect_closed_silently(CLOSE_TIMEOUT).await;
    })
    .await;
}

/// Opening a vhost that does not exist is 530 NOT_ALLOWED blaming connection.open
/// (the vhost name is not quoted); the socket closes once close-ok is sent.
#[tokio::test]
async fn unknown_vhost_is_530_not_allowed() {
    bounded(async {
        let (_broker, mut client, login) = connect().await;
        client.expect_start().await;
        client
            .send(&connection_start_ok(&login.user, &login.password))
            .await;
        let tune = client.expect_tune().await;
        client
            .send(&connection_tune_ok(tune.channel_max, tune.frame_max, 0))
            .await;
        client.send(&connection_open("nosuchvhost")).await;
        let text = "NOT_ALLOWED - vhost nosuchvhost not found";
        let close = client.expect_connection_close(530, text, (10, 40)).await;
        assert_eq!(close.text, text);
        client.finish_close().await;
    })
    .await;
}

/// With heartbeat=1 negotiated and a client that stays silent, the broker sends
/// heartbeats, then drops the socket (RabbitMQ: after ~3 s; Warren: after 2–3
/// intervals) without sending connection.close.
#[tokio::test]
async fn silent_client_gets_heartbeats_then_is_dropped_without_close() {
    bounded(async {
        let (_broker, mut client, login) = connect().await;
        client
            .handshake_with(&login, |tune| Tune {
                heartbeat: 1,
                ..tune
            })
            .await;
        let opened = Instant::now();
        let mut heartbeats = 0;
        let dropped_after = loop {
            match client.read_any_frame(Duration::from_secs(10)).await {
                Ok(Frame::Other {
                    kind: FRAME_HEARTBEAT,
                    channel: 0,
                }) => heartbeats += 1,
                Ok(Frame::Method {
                    channel: 0,
                    class: 10,
                    method: 50,
                    args,
                }) => panic!(
                    "broker sent connection.close {:?} instead of just dropping the socket",
                    parse_close(&args)
                ),
                Ok(frame) => panic!("unexpected {frame} while silent"),
                Err(ReadEnd::Closed) => break opened.elapsed(),
                Err(ReadEnd::TimedOut) => panic!(
                    "broker kept a silent heartbeat=1 connection open for {:?}",
                    opened.elapsed()
                ),
            }
        };
        assert!(heartbeats >= 1, "no heartbeat arrived before the drop");
        assert!(
            dropped_after >= Duration::from_millis(1500) && dropped_after <= Duration::from_secs(5),
            "silent client dropped after {dropped_after:?} (expected ~2-3 s)"
        );
    })
    .await;
}

/// A client that keeps sending heartbeats (and nothing else) stays connected
/// well past the heartbeat timeout, and its connection still works.
#[tokio::test]
async fn heartbeating_client_stays_connected() {
    bounded(async {
        let (_broker, mut client, login) = connect().await;
        client
            .handshake_with(&login, |tune| Tune {
                heartbeat: 1,
                ..tune
            })
            .await;
        let opened = Instant::now();
        let mut heartbeats = 0;
        while opened.elapsed() < Duration::from_millis(4500) {
            client.send(&heartbeat()).await;
            let tick = Instant::now() + Duration::from_millis(400);
            loop {
                let wait = tick.saturating_duration_since(Instant::now());
                match client.read_any_frame(wait).await {
                    Ok(Frame::Other {
                        kind: FRAME_HEARTBEAT,
                        channel: 0,
                    }) => heartbeats += 1,
                    Ok(frame) => panic!("unexpected {frame} after {:?}", opened.elapsed()),
                    Err(ReadEnd::Closed) => {
                        panic!(
                            "broker dropped a heartbeating client after {:?}",
                            opened.elapsed()
                        )
                    }
                    Err(ReadEnd::TimedOut) => break,
                }
            }
        }
        assert!(heartbeats >= 1, "broker sent no heartbeats in 4.5 s");
        client.open_channel(1).await;
        client.send(&basic_qos(1, 10)).await;
        client.expect_method(1, 60, 11).await; // basic.qos-ok
        client.close().await;
    })
    .await;
}

/// With channel_max=1 negotiated, a second open channel is 530 NOT_ALLOWED
/// (ids 0/0: RabbitMQ's reader refuses it before any channel sees the method).
#[tokio::test]
async fn channel_max_reached_is_530_not_allowed() {
    bounded(async {
        let (_broker, mut client, login) = connect().await;
        client
            .handshake_with(&login, |tune| Tune {
                channel_max: 1,
                heartbeat: 0,
                ..tune
            })
            .await;
        client.open_channel(1).await;
        client.send(&channel_open(2)).await;
        let text = "NOT_ALLOWED - number of channels opened (1) has reached the \
                    negotiated channel_max (1)";
        let close = client.expect_connection_close(530, text, (0, 0)).await;
        assert_eq!(close.text, text);
        client.finish_close().await;
    })
    .await;
}

/// RabbitMQ limits the number of open channels, not channel numbers: with
/// channel_max=1 the first channel may be number 7.
#[tokio::test]
async fn channel_number_above_channel_max_is_allowed_while_count_is_below() {
    bounded(async {
        let (_broker, mut client, login) = connect().await;
        client
            .handshake_with(&login, |tune| Tune {
                channel_max: 1,
                heartbeat: 0,
                ..tune
            })
            .await;
        client.open_channel(7).await;
        client.send(&basic_qos(7, 10)).await;
        client.expect_method(7, 60, 11).await; // basic.qos-ok
        client.close().await;
    })
    .await;
}

/// channel.flow active=false is not implemented by RabbitMQ: 540, a connection error.
#[tokio::test]
async fn channel_flow_active_false_is_540_not_implemented() {
    bounded(async {
        let broker = common::TestBroker::start();
        let mut client = RawClient::open_with_channel(&broker).await;
        client.send(&channel_flow(1, false)).await;
        let text = "NOT_IMPLEMENTED - active=false";
        let close = client.expect_connection_close(540, text, (20, 20)).await;
        assert_eq!(close.text, text);
        client.finish_close().await;
    })
    .await;
}

/// connection.close from the client is answered with close-ok.
#[tokio::test]
async fn client_connection_close_gets_close_ok() {
    bounded(async {
        let broker = common::TestBroker::start();
        let mut client = RawClient::open_with_channel(&broker).await;
        client.send(&connection_close(200, "bye")).await;
        let args = client.expect_method(0, 10, 51).await; // connection.close-ok
        assert!(args.is_empty(), "close-ok carries no arguments: {args:?}");
    })
    .await;
}
