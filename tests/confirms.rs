//! Publisher confirms: confirm.select, an ack for every publish (routed or not) with delivery tags counting up from 1, and basic.return before the ack for unroutable mandatory messages.

mod common;

use common::lapin::{WAIT, amqp_error, confirming, ok, publish_with, temp_queue};
use common::raw::{
    Frame, RawClient, Reader, basic_publish, content_body, content_header, login_of, method_frame,
    put_short_str,
};
use lapin::{
    BasicProperties, Channel, Confirmation, ExchangeKind,
    options::{
        BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
        QueueDeclareOptions,
    },
    types::FieldTable,
};
use tokio::time::timeout;

/// Publishes `body` with the mandatory flag as given and returns the pending confirm.
async fn publish(
    ch: &Channel,
    exchange: &str,
    key: &str,
    mandatory: bool,
    body: &str,
) -> lapin::PublisherConfirm {
    let options = BasicPublishOptions {
        mandatory,
        ..Default::default()
    };
    let props = BasicProperties::default();
    publish_with(ch, exchange, key, options, body.as_bytes(), props).await
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

/// A raw client with the few steps of publisher confirms the tests below take by hand.
struct Raw {
    client: RawClient,
}

impl Raw {
    async fn connect(broker: &common::TestBroker) -> Raw {
        let mut client = RawClient::connect_within(broker.addr(), WAIT).await;
        client.handshake(&login_of(broker.url())).await;
        Raw { client }
    }

    async fn open_confirm_channel(&mut self, channel: u16) {
        self.client.open_channel(channel).await;
        self.client.send(&method_frame(channel, 85, 10, &[0])).await;
        self.client.expect_method(channel, 85, 11).await; // confirm.select-ok
    }

    async fn declare_exclusive_queue(&mut self, channel: u16) -> String {
        let mut args = 0u16.to_be_bytes().to_vec();
        put_short_str(&mut args, "");
        args.push(0b0000_0100); // exclusive
        args.extend_from_slice(&0u32.to_be_bytes());
        self.client
            .send(&method_frame(channel, 50, 10, &args))
            .await;
        let declare_ok = self.client.expect_method(channel, 50, 11).await;
        Reader::new(&declare_ok, "queue.declare-ok").short_str()
    }

    async fn publish(&mut self, channel: u16, exchange: &str, key: &str, body: &[u8]) {
        self.client
            .send(&basic_publish(channel, exchange, key))
            .await;
        self.client
            .send(&content_header(channel, 60, body.len() as u64))
            .await;
        if !body.is_empty() {
            self.client.send(&content_body(channel, body)).await;
        }
    }

    /// Collects basic.ack frames on `channel` until tags 1..=n are all confirmed.
    /// Returns the (delivery_tag, multiple) pairs as received.
    async fn acks(&mut self, channel: u16, n: u64) -> Vec<(u64, bool)> {
        let mut confirmed = vec![false; n as usize + 1];
        let mut seen = Vec::new();
        while !confirmed[1..].iter().all(|c| *c) {
            match self.client.read_frame(WAIT).await {
                Ok(Frame::Method {
                    channel: c,
                    class: 60,
                    method: 80,
                    args,
                }) if c == channel => {
                    let mut ack = Reader::new(&args, "basic.ack");
                    let (tag, multiple) = (ack.u64(), ack.u8() & 1 != 0);
                    assert!((1..=n).contains(&tag), "ack for unknown tag {tag}");
                    if multiple {
                        for done in &mut confirmed[1..=tag as usize] {
                            *done = true;
                        }
                    } else {
                        assert!(!confirmed[tag as usize], "tag {tag} confirmed twice");
                        confirmed[tag as usize] = true;
                    }
                    seen.push((tag, multiple));
                }
                Ok(Frame::Method {
                    channel: c,
                    class: 60,
                    method: 120,
                    ..
                }) => panic!("unexpected nack on channel {c}"),
                Ok(other) => panic!("unexpected {other}"),
                Err(end) => panic!("expected basic.ack on channel {channel}, got {end:?}"),
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
