//! Acknowledgements: ack, nack and reject (multiple, requeue), redelivery order and flag, delivery-tag errors, prefetch limits, requeue on channel close and basic.recover.

mod common;

use common::lapin::{Inbox, confirming, consume, drain, ok, owned, publish_confirmed, temp_queue};
use lapin::{
    Channel, Connection,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicQosOptions,
        BasicRecoverOptions, BasicRejectOptions, QueueDeclareOptions,
    },
    types::FieldTable,
};

/// A connection, a confirm-mode channel for publishing and a server-named exclusive queue.
struct Fixture {
    conn: Connection,
    publisher: Channel,
    queue: String,
}

impl Fixture {
    async fn new(broker: &common::TestBroker) -> Self {
        let conn = broker.connect().await;
        let publisher = confirming(&conn).await;
        let queue = temp_queue(&publisher).await;
        Self {
            conn,
            publisher,
            queue,
        }
    }

    /// Publishes `bodies` in order and waits until the broker has confirmed every one.
    async fn publish(&self, bodies: &[&str]) {
        for body in bodies {
            publish_confirmed(&self.publisher, &self.queue, body).await;
        }
    }

    async fn channel(&self) -> Channel {
        ok(self.conn.create_channel()).await
    }

    /// A manual-ack consumer on the queue.
    async fn consume(&self, ch: &Channel) -> Inbox {
        consume(ch, &self.queue, "", BasicConsumeOptions::default()).await
    }

    /// Ready messages left in the queue, as (body, redelivered), taken with auto-ack.
    async fn remaining(&self) -> Vec<(String, bool)> {
        self.remaining_via(&self.publisher).await
    }

    /// Waits for `expected.len()` messages through a new consumer, then checks that nothing
    /// else is left. Messages held through basic.get return to the queue once their channel
    /// is gone; RabbitMQ does that right after channel.close-ok, so they are awaited rather
    /// than fetched at once.
    async fn requeued(&self, expected: &[&str]) -> Vec<(String, bool)> {
        let ch = self.channel().await;
        let no_ack = BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        };
        let mut inbox = consume(&ch, &self.queue, "", no_ack).await;
        let got = inbox.take(expected.len()).await;
        inbox.quiet().await;
        got.into_iter()
            .map(|(body, redelivered, _)| (body, redelivered))
            .collect()
    }

    /// Like `remaining`, through `ch`: basic.get there is ordered after that channel's acks.
    async fn remaining_via(&self, ch: &Channel) -> Vec<(String, bool)> {
        drain(ch, &self.queue).await
    }
}

fn bodies(taken: &[(String, bool, u64)]) -> Vec<&str> {
    taken.iter().map(|(b, _, _)| b.as_str()).collect()
}

#[tokio::test]
async fn acked_messages_are_gone_for_good() {
    let broker = common::TestBroker::start();
    let f = Fixture::new(&broker).await;
    f.publish(&["a", "b"]).await;
    let ch = f.channel().await;
    let mut inbox = f.consume(&ch).await;
    let a = inbox.next().await;
    let b = inbox.next().await;
    assert!(ok(a.ack(BasicAckOptions::default())).await);
    assert!(ok(b.ack(BasicAckOptions::default())).await);
    // Closing the channel would requeue anything still unacked; nothing is.
    ok(ch.close(200, "OK".into())).await;
    assert_eq!(f.remaining().await, owned(&[]));
}

#[tokio::test]
async fn ack_multiple_settles_everything_up_to_the_tag() {
    let broker = common::TestBroker::start();
    let f = Fixture::new(&broker).await;
    f.publish(&["m1", "m2", "m3", "m4"]).await;
    let ch = f.channel().await;
    let mut inbox = f.consume(&ch).await;
    let got = inbox.take(4).await;
    assert_eq!(bodies(&got), ["m1", "m2", "m3", "m4"]);
    assert_eq!(got.iter().map(|d| d.2).collect::<Vec<_>>(), [1, 2, 3, 4]);
    ok(ch.basic_ack(3, BasicAckOptions { multiple: true })).await;
    ok(ch.close(200, "OK".into())).await;
    assert_eq!(f.remaining().await, owned(&[("m4", true)]));
}

#[tokio::test]
async fn ack_multiple_with_tag_zero_settles_everything() {
    let broker = common::TestBroker::start();
    let f = Fixture::new(&broker).await;
    f.publish(&["m1", "m2", "m3"]).await;
    let ch = f.channel().await;
    let mut inbox = f.consume(&ch).await;
    inbox.take(3).await;
    ok(ch.basic_ack(0, BasicAckOptions { multiple: true })).await;
    ok(ch.close(200, "OK".into())).await;
    assert_eq!(f.remaining().await, owned(&[]));
}

#[tokio::test]
async fn nack_multiple_with_requeue_redelivers_in_original_order() {
    let broker = common::TestBroker::start();
    let f = Fixture::new(&broker).await;
    f.publish(&["m1", "m2", "m3", "m4"]).await;
    let ch = f.channel().await;
    let mut inbox = f.consume(&ch).await;
    assert_eq!(bodies(&inbox.take(4).await), ["m1", "m2", "m3", "m4"]);
    ok(ch.basic_nack(
        3,
        BasicNackOptions {
            multiple: true,
            requeue: true,
        },
    ))
    .await;
    // The consumer gets them again, flagged as redelivered, with new delivery tags.
    let again = inbox.take(3).await;
    assert_eq!(
        again,
        [
            ("m1".to_string(), true, 5),
            ("m2".to_string(), true, 6),
            ("m3".to_string(), true, 7),
        ]
    );
    ok(ch.basic_ack(0, BasicAckOptions { multiple: true })).await;
    inbox.quiet().await;
}

#[tokio::test]
async fn nack_and_reject_without_requeue_drop_messages() {
    let broker = common::TestBroker::start();
    let f = Fixture::new(&broker).await;
    f.publish(&["m1", "m2", "m3", "m4"]).await;
    let ch = f.channel().await;
    let mut inbox = f.consume(&ch).await;
    inbox.take(4).await;
    ok(ch.basic_reject(1, BasicRejectOptions { requeue: false })).await;
    ok(ch.basic_nack(
        3,
        BasicNackOptions {
            multiple: true,
            requeue: false,
        },
    ))
    .await;
    // Only m4 was still unacked when the channel closed.
    ok(ch.close(200, "OK".into())).await;
    assert_eq!(f.remaining().await, owned(&[("m4", true)]));
}

#[tokio::test]
async fn reject_with_requeue_redelivers() {
    let broker = common::TestBroker::start();
    let f = Fixture::new(&broker).await;
    f.publish(&["only"]).await;
    let ch = f.channel().await;
    let mut inbox = f.consume(&ch).await;
    let first = inbox.next().await;
    assert!(!first.redelivered);
    assert!(ok(first.reject(BasicRejectOptions { requeue: true })).await);
    let second = inbox.next().await;
    assert_eq!(second.data, b"only");
    assert!(second.redelivered);
    assert_eq!(second.delivery_tag, 2);
    assert!(
        ok(second.nack(BasicNackOptions {
            multiple: false,
            requeue: true
        }))
        .await
    );
    let third = inbox.next().await;
    assert!(third.redelivered);
    assert_eq!(third.delivery_tag, 3);
    assert!(ok(third.ack(BasicAckOptions::default())).await);
    inbox.quiet().await;
}

#[tokio::test]
async fn requeued_messages_go_back_to_their_original_position() {
    let broker = common::TestBroker::start();
    let f = Fixture::new(&broker).await;
    f.publish(&["m1", "m2", "m3", "m4", "m5"]).await;
    let ch = f.channel().await;
    let mut taken = Vec::new();
    for _ in 0..3 {
        let msg = ok(ch.basic_get(f.queue.as_str().into(), BasicGetOptions::default()))
            .await
            .expect("message");
        taken.push(msg.delivery.delivery_tag);
    }
    assert_eq!(taken, [1, 2, 3]);
    // Requeue out of order: m3 first, then m1. They go back ahead of m4 and m5, in publish
    // order, not in the order they were returned.
    ok(ch.basic_reject(3, BasicRejectOptions { requeue: true })).await;
    ok(ch.basic_reject(1, BasicRejectOptions { requeue: true })).await;
    let rest = f.remaining_via(&ch).await;
    assert_eq!(
        rest,
        owned(&[("m1", true), ("m3", true), ("m4", false), ("m5", false)])
    );
    // m2 is still unacked on `ch`; closing the channel requeues it.
    ok(ch.close(200, "OK".into())).await;
    assert_eq!(f.requeued(&["m2"]).await, owned(&[("m2", true)]));
}

#[tokio::test]
async fn unknown_delivery_tag_is_a_precondition_failure() {
    let broker = common::TestBroker::start();
    let f = Fixture::new(&broker).await;
    f.publish(&["m1"]).await;
    let ch = f.channel().await;
    let mut inbox = f.consume(&ch).await;
    assert_eq!(inbox.next().await.delivery_tag, 1);
    // basic.ack has no reply; the channel.close reaches the consumer on that channel.
    ok(ch.basic_ack(99, BasicAckOptions::default())).await;
    assert_eq!(
        inbox.closed().await,
        (
            406,
            "PRECONDITION_FAILED - unknown delivery tag 99".to_string()
        )
    );
    assert!(f.conn.status().connected());
    // The unacked message went back to the queue when the channel was closed.
    assert_eq!(f.remaining().await, owned(&[("m1", true)]));
}

#[tokio::test]
async fn nack_and_reject_of_unknown_tags_fail_the_same_way() {
    let broker = common::TestBroker::start();
    let f = Fixture::new(&broker).await;

    let ch = f.channel().await;
    let mut watch = f.consume(&ch).await;
    ok(ch.basic_nack(
        7,
        BasicNackOptions {
            multiple: false,
            requeue: true,
        },
    ))
    .await;
    assert_eq!(
        watch.closed().await,
        (
            406,
            "PRECONDITION_FAILED - unknown delivery tag 7".to_string()
        )
    );

    let ch = f.channel().await;
    let mut watch = f.consume(&ch).await;
    ok(ch.basic_reject(8, BasicRejectOptions { requeue: false })).await;
    assert_eq!(
        watch.closed().await,
        (
            406,
            "PRECONDITION_FAILED - unknown delivery tag 8".to_string()
        )
    );

    // ack multiple of a tag never delivered on this channel.
    let ch = f.channel().await;
    let mut watch = f.consume(&ch).await;
    ok(ch.basic_ack(3, BasicAckOptions { multiple: true })).await;
    assert_eq!(
        watch.closed().await,
        (
            406,
            "PRECONDITION_FAILED - unknown delivery tag 3".to_string()
        )
    );
}

#[tokio::test]
async fn double_ack_is_a_precondition_failure() {
    let broker = common::TestBroker::start();
    let f = Fixture::new(&broker).await;
    f.publish(&["once"]).await;
    let ch = f.channel().await;
    let mut inbox = f.consume(&ch).await;
    let d = inbox.next().await;
    ok(ch.basic_ack(d.delivery_tag, BasicAckOptions::default())).await;
    ok(ch.basic_ack(d.delivery_tag, BasicAckOptions::default())).await;
    assert_eq!(
        inbox.closed().await,
        (
            406,
            "PRECONDITION_FAILED - unknown delivery tag 1".to_string()
        )
    );
    // The first ack stood: the message does not come back.
    assert_eq!(f.remaining().await, owned(&[]));
}

#[tokio::test]
async fn delivery_tags_belong_to_their_channel() {
    let broker = common::TestBroker::start();
    let f = Fixture::new(&broker).await;
    f.publish(&["m1"]).await;
    let ch = f.channel().await;
    let mut inbox = f.consume(&ch).await;
    let d = inbox.next().await;
    // Acking tag 1 on a channel that never delivered it is an unknown tag there.
    let other = f.channel().await;
    let mut watch = f.consume(&other).await;
    ok(other.basic_ack(d.delivery_tag, BasicAckOptions::default())).await;
    assert_eq!(
        watch.closed().await,
        (
            406,
            "PRECONDITION_FAILED - unknown delivery tag 1".to_string()
        )
    );
    // The delivering channel is unaffected and can still ack it.
    assert!(ok(d.ack(BasicAckOptions::default())).await);
    ok(ch.close(200, "OK".into())).await;
    assert_eq!(f.remaining().await, owned(&[]));
}

#[tokio::test]
async fn prefetch_limits_unacked_deliveries_per_consumer() {
    let broker = common::TestBroker::start();
    let f = Fixture::new(&broker).await;
    f.publish(&["m1", "m2", "m3", "m4", "m5", "m6", "m7"]).await;
    let ch = f.channel().await;
    ok(ch.basic_qos(2, BasicQosOptions::default())).await;
    let mut a = f.consume(&ch).await;
    let mut b = f.consume(&ch).await;
    // Each consumer gets its own window of two.
    let first_a = a.take(2).await;
    let first_b = b.take(2).await;
    a.quiet().await;
    b.quiet().await;
    let mut seen: Vec<&str> = bodies(&first_a);
    seen.extend(bodies(&first_b));
    seen.sort_unstable();
    assert_eq!(seen, ["m1", "m2", "m3", "m4"]);

    // Acking one frees one slot for that consumer only.
    ok(ch.basic_ack(first_a[0].2, BasicAckOptions::default())).await;
    let more = a.take(1).await;
    assert_eq!(bodies(&more), ["m5"]);
    a.quiet().await;
    b.quiet().await;

    // Acking both of b's frees two slots for b.
    ok(ch.basic_ack(first_b[1].2, BasicAckOptions { multiple: false })).await;
    ok(ch.basic_ack(first_b[0].2, BasicAckOptions { multiple: false })).await;
    assert_eq!(bodies(&b.take(2).await), ["m6", "m7"]);
}

#[tokio::test]
async fn prefetch_zero_means_unlimited() {
    let broker = common::TestBroker::start();
    let f = Fixture::new(&broker).await;
    let many: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    f.publish(&refs).await;
    let ch = f.channel().await;
    ok(ch.basic_qos(0, BasicQosOptions::default())).await;
    let mut inbox = f.consume(&ch).await;
    assert_eq!(bodies(&inbox.take(50).await), refs);
}

#[tokio::test]
async fn global_qos_limits_a_channels_consumer() {
    let broker = common::TestBroker::start();
    let f = Fixture::new(&broker).await;
    f.publish(&["m1", "m2", "m3", "m4", "m5"]).await;
    let ch = f.channel().await;
    // RabbitMQ up to 4.2 applies a global limit to the whole channel, shared by its consumers;
    // 4.3 denies the deprecated global QoS by default and treats it as a per-consumer limit.
    // With a single consumer both readings agree, so that is all this test pins down.
    ok(ch.basic_qos(3, BasicQosOptions { global: true })).await;
    let mut inbox = f.consume(&ch).await;
    let got = inbox.take(3).await;
    assert_eq!(bodies(&got), ["m1", "m2", "m3"]);
    inbox.quiet().await;
    ok(ch.basic_ack(got[2].2, BasicAckOptions { multiple: true })).await;
    assert_eq!(bodies(&inbox.take(2).await), ["m4", "m5"]);
}

#[tokio::test]
async fn unacked_messages_are_requeued_when_the_channel_closes() {
    let broker = common::TestBroker::start();
    let f = Fixture::new(&broker).await;
    f.publish(&["m1", "m2", "m3", "m4"]).await;
    let ch = f.channel().await;
    let mut inbox = f.consume(&ch).await;
    let got = inbox.take(4).await;
    ok(ch.basic_ack(got[1].2, BasicAckOptions::default())).await;
    ok(ch.close(200, "OK".into())).await;

    // Another consumer gets the rest, in order, flagged as redelivered.
    let ch2 = f.channel().await;
    let mut again = f.consume(&ch2).await;
    assert_eq!(
        again.take(3).await,
        [
            ("m1".to_string(), true, 1),
            ("m3".to_string(), true, 2),
            ("m4".to_string(), true, 3),
        ]
    );
    again.quiet().await;
}

#[tokio::test]
async fn unacked_messages_are_requeued_when_the_connection_closes() {
    let broker = common::TestBroker::start();
    let f = Fixture::new(&broker).await;
    // A durable queue outlives the consuming connection; the fixture's exclusive one would not
    // be reachable from it.
    let name = common::unique("acks-conn-close");
    ok(f.publisher.queue_declare(
        name.as_str().into(),
        QueueDeclareOptions::durable(),
        FieldTable::default(),
    ))
    .await;
    for body in ["m1", "m2"] {
        publish_confirmed(&f.publisher, &name, body).await;
    }
    let consumer_conn = broker.connect().await;
    let ch = ok(consumer_conn.create_channel()).await;
    let mut inbox = consume(&ch, &name, "", BasicConsumeOptions::default()).await;
    inbox.take(2).await;
    ok(consumer_conn.close(200, "OK".into())).await;

    let left = drain(&f.publisher, &name).await;
    assert_eq!(left, owned(&[("m1", true), ("m2", true)]));
    ok(f.publisher
        .queue_delete(name.as_str().into(), Default::default()))
    .await;
}

#[tokio::test]
async fn basic_recover_with_requeue_redelivers_unacked_messages() {
    let broker = common::TestBroker::start();
    let f = Fixture::new(&broker).await;
    f.publish(&["m1", "m2", "m3"]).await;
    let ch = f.channel().await;
    let mut inbox = f.consume(&ch).await;
    let got = inbox.take(3).await;
    ok(ch.basic_ack(got[0].2, BasicAckOptions::default())).await;
    ok(ch.basic_recover(BasicRecoverOptions { requeue: true })).await;
    assert_eq!(
        inbox.take(2).await,
        [("m2".to_string(), true, 4), ("m3".to_string(), true, 5)]
    );
    ok(ch.basic_ack(5, BasicAckOptions { multiple: true })).await;
    inbox.quiet().await;
    ok(ch.close(200, "OK".into())).await;
    assert_eq!(f.remaining().await, owned(&[]));
}

#[tokio::test]
async fn basic_get_messages_are_acked_like_deliveries() {
    let broker = common::TestBroker::start();
    let f = Fixture::new(&broker).await;
    f.publish(&["m1", "m2"]).await;
    let ch = f.channel().await;
    let m1 = ok(ch.basic_get(f.queue.as_str().into(), BasicGetOptions::default()))
        .await
        .expect("m1");
    let m2 = ok(ch.basic_get(f.queue.as_str().into(), BasicGetOptions::default()))
        .await
        .expect("m2");
    assert_eq!((m1.delivery.delivery_tag, m2.delivery.delivery_tag), (1, 2));
    assert!(ok(m2.delivery.ack(BasicAckOptions::default())).await);
    ok(ch.close(200, "OK".into())).await;
    assert_eq!(f.requeued(&["m1"]).await, owned(&[("m1", true)]));
}
