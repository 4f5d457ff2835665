//! Publisher confirms: confirm.select, an ack for every publish (routed or not) with delivery tags counting up from 1, and basic.return before the ack for unroutable mandatory messages.

mod common;

use std::{future::Future, time::Duration};

use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ErrorKind, ExchangeKind,
    options::{
        BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
        QueueDeclareOptions,
    },
    protocol::{AMQPClass, basic, channel, confirm, connection, queue},
    types::FieldTable,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

const WAIT: Duration = Duration::from_secs(10);

/// The reply code and reply text of an AMQP error.
fn amqp_error(err: &lapin::Error) -> (u16, String) {
    match err.kind() {
        ErrorKind::ProtocolError(e) => (e.get_id(), e.get_message().to_string()),
        other => panic!("expected an AMQP protocol error, got {other:?}"),
    }
}

/// Awaits `op` within the timeout and unwraps it.
async fn ok<T>(op: impl Future<Output = lapin::Result<T>>) -> T {
    timeout(WAIT, op)
        .await
        .expect("operation timed out")
        .expect("operation failed")
}

async fn confirming(conn: &Connection) -> Channel {
    let ch = ok(conn.create_channel()).await;
    ok(ch.confirm_select(ConfirmSelectOptions::default())).await;
    assert!(ch.status().confirm());
    ch
}

async fn temp_queue(ch: &Channel) -> String {
    ok(ch.queue_declare(
        "".into(),
        QueueDeclareOptions::exclusive(),
        FieldTable::default(),
    ))
    .await
    .name()
    .to_string()
}

async fn publish(
    ch: &Channel,
    exchange: &str,
    key: &str,
    mandatory: bool,
    body: &str,
) -> lapin::PublisherConfirm {
    ok(ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions {
            mandatory,
            ..Default::default()
        },
        body.as_bytes(),
        BasicProperties::default(),
    ))
    .await
}

#[tokio::test]
async fn every_publish_is_acked_routed_or_not() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let queue = temp_queue(&ch).await;
    let empty_fanout = common::unique("cf-empty-fanout");
    ok(ch.exchange_declare(
        empty_fanout.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await;

    let mut pending = Vec::new();
    for i in 0..30 {
        let confirm = match i % 3 {
            0 => publish(&ch, "", &queue, false, &format!("routed-{i}")).await,
            1 => {
                publish(
                    &ch,
                    "amq.direct",
                    &common::unique("unbound"),
                    false,
                    "unroutable",
                )
                .await
            }
            _ => publish(&ch, &empty_fanout, "", false, "no-queues").await,
        };
        pending.push(confirm);
    }
    for (i, confirm) in pending.into_iter().enumerate() {
        let confirmation = ok(confirm).await;
        assert_eq!(confirmation, Confirmation::Ack(None), "publish #{i}");
    }
    assert!(ok(ch.wait_for_confirms()).await.is_empty());
    // The routed ones are in the queue, in order.
    for i in (0..30).step_by(3) {
        let msg = ok(ch.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }))
            .await
            .expect("routed message");
        assert_eq!(msg.delivery.data, format!("routed-{i}").as_bytes());
    }
    ok(ch.exchange_delete(empty_fanout.as_str().into(), Default::default())).await;
}

#[tokio::test]
async fn confirm_select_is_idempotent() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    ok(ch.confirm_select(ConfirmSelectOptions::default())).await;
    let queue = temp_queue(&ch).await;
    assert!(
        ok(publish(&ch, "", &queue, false, "x").await)
            .await
            .is_ack()
    );
}

#[tokio::test]
async fn persistent_messages_to_a_durable_queue_are_acked() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let name = common::unique("cf-durable");
    ok(ch.queue_declare(
        name.as_str().into(),
        QueueDeclareOptions::durable(),
        FieldTable::default(),
    ))
    .await;
    for i in 0..5 {
        let confirm = ok(ch.basic_publish(
            "".into(),
            name.as_str().into(),
            BasicPublishOptions::default(),
            format!("p{i}").as_bytes(),
            BasicProperties::default().with_delivery_mode(2),
        ))
        .await;
        assert_eq!(ok(confirm).await, Confirmation::Ack(None));
    }
    assert_eq!(
        ok(ch.queue_delete(name.as_str().into(), Default::default())).await,
        5
    );
}

#[tokio::test]
async fn mandatory_unroutable_is_returned_before_its_ack() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let queue = temp_queue(&ch).await;
    let key = common::unique("cf-nobody");

    let routed = publish(&ch, "", &queue, true, "routed").await;
    let bounced = publish(&ch, "amq.direct", &key, true, "bounced").await;
    let after = publish(&ch, "", &queue, true, "after").await;

    assert_eq!(ok(routed).await, Confirmation::Ack(None));
    // lapin attaches a basic.return to the confirm that follows it, so a returned message
    // inside the Ack means the broker sent basic.return first, as RabbitMQ does.
    match ok(bounced).await {
        Confirmation::Ack(Some(ret)) => {
            assert_eq!(ret.reply_code, 312);
            assert_eq!(ret.reply_text.as_str(), "NO_ROUTE");
            assert_eq!(ret.delivery.exchange.as_str(), "amq.direct");
            assert_eq!(ret.delivery.routing_key.as_str(), key);
            assert_eq!(ret.delivery.data, b"bounced");
        }
        other => panic!("expected an ack carrying the returned message, got {other:?}"),
    }
    assert_eq!(ok(after).await, Confirmation::Ack(None));
}

#[tokio::test]
async fn confirms_are_counted_per_channel() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let a = confirming(&conn).await;
    let b = confirming(&conn).await;
    let queue = temp_queue(&a).await;
    // Interleaved publishes on two channels: each channel's confirms are its own.
    let mut pending = Vec::new();
    for i in 0..10 {
        let ch = if i % 2 == 0 { &a } else { &b };
        pending.push(publish(ch, "", &queue, false, &format!("m{i}")).await);
    }
    for confirm in pending {
        assert!(ok(confirm).await.is_ack());
    }
}

#[tokio::test]
async fn publishing_to_a_missing_exchange_fails_the_pending_confirm() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    let missing = common::unique("cf-missing");
    let confirm = publish(&ch, &missing, "rk", false, "lost").await;
    let err = timeout(WAIT, confirm)
        .await
        .expect("confirm timed out")
        .expect_err("the channel is closed instead of confirming");
    assert_eq!(
        amqp_error(&err),
        (
            404,
            format!("NOT_FOUND - no exchange '{missing}' in vhost '/'")
        )
    );
    assert!(conn.status().connected());
}

#[tokio::test]
async fn confirm_select_on_a_transactional_channel_is_refused() {
    let broker = common::TestBroker::start();
    let conn = broker.connect().await;
    let ch = ok(conn.create_channel()).await;
    ok(ch.tx_select()).await;
    let err = timeout(WAIT, ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select timed out")
        .expect_err("confirm.select after tx.select");
    assert_eq!(
        amqp_error(&err),
        (
            406,
            "PRECONDITION_FAILED - cannot switch from tx to confirm mode".to_string()
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Raw-socket check of the confirm delivery tags themselves, which lapin does not expose.

/// A bare AMQP 0-9-1 client speaking just enough of the protocol for the test below.
struct Raw {
    sock: TcpStream,
}

fn short_str(out: &mut Vec<u8>, s: &str) {
    out.push(u8::try_from(s.len()).expect("short string over 255 bytes"));
    out.extend_from_slice(s.as_bytes());
}

fn long_str(out: &mut Vec<u8>, s: &[u8]) {
    let len = u32::try_from(s.len()).expect("long string too long");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s);
}

fn method(class: u16, method: u16) -> Vec<u8> {
    let mut out = class.to_be_bytes().to_vec();
    out.extend_from_slice(&method.to_be_bytes());
    out
}

/// Credentials and vhost from an `amqp://user:pass@host:port/vhost` URL.
fn credentials(url: &str) -> (String, String, String) {
    let rest = url.split("://").nth(1).expect("scheme");
    let (userinfo, hostpath) = rest.rsplit_once('@').expect("credentials in url");
    let (user, pass) = userinfo.split_once(':').expect("user:pass");
    let vhost = hostpath.split_once('/').map(|(_, v)| v).unwrap_or("");
    let vhost = vhost.split('?').next().unwrap_or("");
    let vhost = if vhost.is_empty() {
        "/".to_string()
    } else {
        vhost.replace("%2f", "/").replace("%2F", "/")
    };
    (user.to_string(), pass.to_string(), vhost)
}

impl Raw {
    async fn connect(broker: &common::TestBroker) -> Raw {
        let sock = timeout(WAIT, TcpStream::connect(broker.addr()))
            .await
            .expect("tcp connect timed out")
            .expect("tcp connect");
        let mut raw = Raw { sock };
        raw.sock
            .write_all(b"AMQP\x00\x00\x09\x01")
            .await
            .expect("protocol header");
        match raw.method().await {
            (0, AMQPClass::Connection(connection::AMQPMethod::Start(_))) => {}
            other => panic!("expected connection.start, got {other:?}"),
        }
        let (user, pass, vhost) = credentials(broker.url());
        let mut start_ok = method(10, 11);
        start_ok.extend_from_slice(&0u32.to_be_bytes()); // empty client-properties
        short_str(&mut start_ok, "PLAIN");
        long_str(&mut start_ok, format!("\0{user}\0{pass}").as_bytes());
        short_str(&mut start_ok, "en_US");
        raw.send(1, 0, &start_ok).await;
        let tune = match raw.method().await {
            (0, AMQPClass::Connection(connection::AMQPMethod::Tune(tune))) => tune,
            other => panic!("expected connection.tune, got {other:?}"),
        };
        let mut tune_ok = method(10, 31);
        tune_ok.extend_from_slice(&tune.channel_max.to_be_bytes());
        tune_ok.extend_from_slice(&tune.frame_max.to_be_bytes());
        tune_ok.extend_from_slice(&0u16.to_be_bytes()); // no heartbeats
        raw.send(1, 0, &tune_ok).await;
        let mut open = method(10, 40);
        short_str(&mut open, &vhost);
        short_str(&mut open, "");
        open.push(0);
        raw.send(1, 0, &open).await;
        match raw.method().await {
            (0, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))) => {}
            other => panic!("expected connection.open-ok, got {other:?}"),
        }
        raw
    }

    async fn send(&mut self, kind: u8, channel: u16, payload: &[u8]) {
        let mut frame = vec![kind];
        frame.extend_from_slice(&channel.to_be_bytes());
        let size = u32::try_from(payload.len()).expect("frame too large");
        frame.extend_from_slice(&size.to_be_bytes());
        frame.extend_from_slice(payload);
        frame.push(0xCE);
        timeout(WAIT, self.sock.write_all(&frame))
            .await
            .expect("write timed out")
            .expect("write frame");
    }

    /// Reads the next method frame (skipping heartbeats) and parses it.
    async fn method(&mut self) -> (u16, AMQPClass) {
        loop {
            let mut header = [0u8; 7];
            timeout(WAIT, self.sock.read_exact(&mut header))
                .await
                .expect("frame header timed out")
                .expect("read frame header");
            let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]) as usize;
            let mut payload = vec![0u8; size + 1];
            timeout(WAIT, self.sock.read_exact(&mut payload))
                .await
                .expect("frame payload timed out")
                .expect("read frame payload");
            assert_eq!(payload.pop(), Some(0xCE), "frame-end octet");
            match header[0] {
                1 => {
                    let channel = u16::from_be_bytes([header[1], header[2]]);
                    let (_, class) =
                        lapin::protocol::parse_class(payload.as_slice()).expect("parse method");
                    return (channel, class);
                }
                8 => continue,
                other => panic!("unexpected frame type {other}"),
            }
        }
    }

    async fn open_confirm_channel(&mut self, channel: u16) {
        let mut open = method(20, 10);
        short_str(&mut open, "");
        self.send(1, channel, &open).await;
        match self.method().await {
            (c, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))) if c == channel => {}
            other => panic!("expected channel.open-ok, got {other:?}"),
        }
        let mut select = method(85, 10);
        select.push(0);
        self.send(1, channel, &select).await;
        match self.method().await {
            (c, AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_))) if c == channel => {}
            other => panic!("expected confirm.select-ok, got {other:?}"),
        }
    }

    async fn declare_exclusive_queue(&mut self, channel: u16) -> String {
        let mut declare = method(50, 10);
        declare.extend_from_slice(&0u16.to_be_bytes());
        short_str(&mut declare, "");
        declare.push(0b0000_0100); // exclusive
        declare.extend_from_slice(&0u32.to_be_bytes());
        self.send(1, channel, &declare).await;
        match self.method().await {
            (c, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok))) if c == channel => {
                ok.queue.to_string()
            }
            other => panic!("expected queue.declare-ok, got {other:?}"),
        }
    }

    async fn publish(&mut self, channel: u16, exchange: &str, key: &str, body: &[u8]) {
        let mut publish = method(60, 40);
        publish.extend_from_slice(&0u16.to_be_bytes());
        short_str(&mut publish, exchange);
        short_str(&mut publish, key);
        publish.push(0);
        self.send(1, channel, &publish).await;
        let mut header = 60u16.to_be_bytes().to_vec();
        header.extend_from_slice(&0u16.to_be_bytes());
        header.extend_from_slice(&(body.len() as u64).to_be_bytes());
        header.extend_from_slice(&0u16.to_be_bytes()); // no properties
        self.send(2, channel, &header).await;
        if !body.is_empty() {
            self.send(3, channel, body).await;
        }
    }

    /// Collects basic.ack frames on `channel` until tags 1..=n are all confirmed.
    /// Returns the (delivery_tag, multiple) pairs as received.
    async fn acks(&mut self, channel: u16, n: u64) -> Vec<(u64, bool)> {
        let mut confirmed = vec![false; n as usize + 1];
        let mut seen = Vec::new();
        while !confirmed[1..].iter().all(|c| *c) {
            match self.method().await {
                (c, AMQPClass::Basic(basic::AMQPMethod::Ack(ack))) if c == channel => {
                    let tag = ack.delivery_tag;
                    assert!((1..=n).contains(&tag), "ack for unknown tag {tag}");
                    if ack.multiple {
                        for done in &mut confirmed[1..=tag as usize] {
                            *done = true;
                        }
                    } else {
                        assert!(!confirmed[tag as usize], "tag {tag} confirmed twice");
                        confirmed[tag as usize] = true;
                    }
                    seen.push((tag, ack.multiple));
                }
                (c, AMQPClass::Basic(basic::AMQPMethod::Nack(nack))) => {
                    panic!("unexpected nack on channel {c}: {nack:?}")
                }
                other => panic!("unexpected method {other:?}"),
            }
        }
        seen
    }
}

#[tokio::test]
async fn confirm_tags_count_from_one_and_arrive_in_order() {
    let broker = common::TestBroker::start();
    let mut raw = Raw::connect(&broker).await;
    raw.open_confirm_channel(1).await;
    let queue = raw.declare_exclusive_queue(1).await;
    let n = 50;
    for i in 0..n {
        raw.publish(1, "", &queue, format!("m{i}").as_bytes()).await;
    }
    let acks = raw.acks(1, n).await;
    // One queue confirms in order, so the acks (possibly coalesced with `multiple`) never go
    // backwards.
    for pair in acks.windows(2) {
        assert!(pair[0].0 < pair[1].0, "acks out of order: {acks:?}");
    }

    // A second channel numbers its own publishes from 1 again; unroutable messages are
    // confirmed too.
    raw.open_confirm_channel(2).await;
    for _ in 0..5 {
        raw.publish(2, "amq.direct", "nobody-bound-here", b"x")
            .await;
    }
    let acks = raw.acks(2, 5).await;
    for pair in acks.windows(2) {
        assert!(pair[0].0 < pair[1].0, "acks out of order: {acks:?}");
    }
}

#[tokio::test]
async fn interleaved_routed_and_unroutable_publishes_are_each_confirmed() {
    let broker = common::TestBroker::start();
    let mut raw = Raw::connect(&broker).await;
    raw.open_confirm_channel(1).await;
    let queue = raw.declare_exclusive_queue(1).await;
    let n = 100;
    for i in 0..n {
        if i % 2 == 0 {
            raw.publish(1, "", &queue, b"routed").await;
        } else {
            raw.publish(1, "amq.direct", "nobody-bound-here", b"unroutable")
                .await;
        }
    }
    // Every tag gets an ack (checked inside `acks`). The order is not asserted: RabbitMQ acks an
    // unroutable publish at once, often ahead of earlier routed ones that wait for their
    // queue, and then covers those with a later `multiple` ack.
    let acks = raw.acks(1, n).await;
    assert!(!acks.is_empty());
}
