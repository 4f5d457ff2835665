//! Helpers for the lapin end-to-end tests: every broker operation bounded by
//! [`WAIT`], AMQP errors as (reply code, reply text), a consumer inbox that
//! keeps deliveries in arrival order, and the declare, publish, consume and
//! drain steps most tests share.
#![allow(dead_code)]

use std::{future::Future, time::Duration};

use lapin::{
    BasicProperties, Channel, Connection, Consumer, ErrorKind, PublisherConfirm, Queue,
    message::{Delivery, DeliveryResult},
    options::{
        BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
        QueueDeclareOptions,
    },
    protocol::{AMQPClass, connection},
    types::{AMQPValue, FieldTable, LongString, ShortString},
};
use tokio::{sync::mpsc, time::timeout};

use super::TestBroker;
use super::raw::{Frame, PROTOCOL_HEADER, RawClient, method_payload};

/// How long a single broker operation may take, so a silent broker fails the test instead of hanging it.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long to watch for something that must not happen.
pub const QUIET: Duration = Duration::from_millis(300);

/// The reply code and reply text of an AMQP error, the form the tests compare against RabbitMQ's.
pub fn amqp_error(err: &lapin::Error) -> (u16, String) {
    match err.kind() {
        ErrorKind::ProtocolError(e) => (e.get_id(), e.get_message().to_string()),
        other => panic!("expected an AMQP protocol error, got {other:?}"),
    }
}

/// Awaits `op` and expects it to fail with an AMQP error, returning its code and text.
pub async fn expect_error<T: std::fmt::Debug>(
    op: impl Future<Output = lapin::Result<T>>,
) -> (u16, String) {
    match timeout(WAIT, op).await.expect("operation timed out") {
        Ok(v) => panic!("expected an AMQP error, got Ok({v:?})"),
        Err(err) => amqp_error(&err),
    }
}

/// Awaits `op` within the timeout and unwraps it.
pub async fn ok<T>(op: impl Future<Output = lapin::Result<T>>) -> T {
    timeout(WAIT, op)
        .await
        .expect("operation timed out")
        .expect("operation failed")
}

/// Deliveries of one consumer, collected in arrival order.
pub struct Inbox {
    rx: mpsc::UnboundedReceiver<DeliveryResult>,
    consumer: Consumer,
}

impl Inbox {
    /// Takes over `consumer`'s deliveries, which lapin would otherwise drop without a delegate.
    pub fn new(consumer: Consumer) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        // The delegate runs synchronously as each delivery completes, so order is preserved.
        consumer.set_delegate(move |delivery: DeliveryResult| {
            let _ = tx.send(delivery);
            std::future::ready(())
        });
        Self { rx, consumer }
    }

    /// The consumer tag, to cancel the consumer or name it in a failure.
    pub fn tag(&self) -> ShortString {
        self.consumer.tag()
    }

    /// The next thing that happens to the consumer: a delivery, a cancel or a channel error.
    pub async fn event(&mut self) -> DeliveryResult {
        match timeout(WAIT, self.rx.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => panic!("consumer dropped its delegate"),
            Err(_) => panic!(
                "nothing happened to consumer {:?} within {WAIT:?}",
                self.tag()
            ),
        }
    }

    /// The next delivery; anything else fails the test.
    pub async fn next(&mut self) -> Delivery {
        match self.event().await {
            Ok(Some(delivery)) => delivery,
            other => panic!("expected a delivery, got {other:?}"),
        }
    }

    /// The next `n` deliveries, as (body, redelivered, delivery tag).
    pub async fn take(&mut self, n: usize) -> Vec<(String, bool, u64)> {
        let mut out = Vec::new();
        for _ in 0..n {
            let d = self.next().await;
            out.push((
                String::from_utf8(d.data.clone()).expect("utf-8 body"),
                d.redelivered,
                d.delivery_tag,
            ));
        }
        out
    }

    /// Expects the consumer to end without an error, cancelled by the broker or by the client.
    pub async fn cancelled(&mut self) {
        // The broker's basic.cancel reaches the delegate as `Ok(None)`; when the client cancels,
        // lapin drops the delegate as it sends basic.cancel.
        match timeout(WAIT, self.rx.recv()).await {
            Ok(None | Some(Ok(None))) => {}
            Ok(Some(other)) => panic!("expected the consumer to be cancelled, got {other:?}"),
            Err(_) => panic!(
                "consumer {:?} was not cancelled within {WAIT:?}",
                self.tag()
            ),
        }
    }

    /// Expects the channel (or connection) to be closed by the broker: the reply code and text.
    pub async fn closed(&mut self) -> (u16, String) {
        match self.event().await {
            Err(err) => amqp_error(&err),
            other => panic!("expected the channel to be closed, got {other:?}"),
        }
    }

    /// Asserts that nothing arrives for a short while.
    pub async fn quiet(&mut self) {
        tokio::time::sleep(QUIET).await;
        if let Ok(event) = self.rx.try_recv() {
            panic!("unexpected event on consumer {:?}: {event:?}", self.tag());
        }
    }
}

/// A connection to `broker` and one channel on it, the starting point of most tests.
pub async fn setup(broker: &TestBroker) -> (Connection, Channel) {
    let conn = broker.connect().await;
    let ch = ok(conn.create_channel()).await;
    (conn, ch)
}

/// A channel in publisher-confirm mode, so a publish can be awaited until the broker has it.
pub async fn confirming(conn: &Connection) -> Channel {
    let ch = ok(conn.create_channel()).await;
    ok(ch.confirm_select(ConfirmSelectOptions::default())).await;
    assert!(ch.status().confirm());
    ch
}

/// A server-named exclusive queue, removed with its connection.
pub async fn temp_queue(ch: &Channel) -> String {
    ok(ch.queue_declare(
        "".into(),
        QueueDeclareOptions::exclusive(),
        FieldTable::default(),
    ))
    .await
    .name()
    .to_string()
}

/// Publishes one message with every parameter explicit and returns its pending confirm.
pub async fn publish_with(
    ch: &Channel,
    exchange: &str,
    key: &str,
    options: BasicPublishOptions,
    body: &[u8],
    props: BasicProperties,
) -> PublisherConfirm {
    ok(ch.basic_publish(exchange.into(), key.into(), options, body, props)).await
}

/// Publishes `body` to `queue` through the default exchange, without waiting for a confirm.
pub async fn publish(ch: &Channel, queue: &str, body: impl AsRef<[u8]>) {
    publish_with(
        ch,
        "",
        queue,
        BasicPublishOptions::default(),
        body.as_ref(),
        BasicProperties::default(),
    )
    .await;
}

/// Publishes to `queue` on a confirm-mode channel and waits for the ack, so the message is queued before the next step.
pub async fn publish_confirmed(ch: &Channel, queue: &str, body: &str) {
    // RabbitMQ prioritises the queue-stat request behind a declare-ok over queued publishes, so
    // without the confirm a declare-ok right after a publish may not count it yet.
    let confirm = publish_with(
        ch,
        "",
        queue,
        BasicPublishOptions::default(),
        body.as_bytes(),
        BasicProperties::default(),
    )
    .await;
    let confirmation = ok(confirm).await;
    assert!(
        confirmation.is_ack(),
        "publish not confirmed: {confirmation:?}"
    );
}

/// A consumer on `queue` (tag "" lets the broker choose one) whose deliveries land in an [`Inbox`].
pub async fn consume(ch: &Channel, queue: &str, tag: &str, options: BasicConsumeOptions) -> Inbox {
    Inbox::new(ok(ch.basic_consume(queue.into(), tag.into(), options, FieldTable::default())).await)
}

/// Takes every ready message through `ch` with auto-ack, (body, redelivered) in order: after `ch`'s own publishes and acks.
pub async fn drain(ch: &Channel, queue: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    while let Some(msg) = ok(ch.basic_get(queue.into(), BasicGetOptions { no_ack: true })).await {
        out.push((
            String::from_utf8(msg.delivery.data.clone()).expect("utf-8 body"),
            msg.delivery.redelivered,
        ));
    }
    out
}

/// (body, redelivered) pairs as [`drain`] returns them, so expectations read as literals.
pub fn owned(pairs: &[(&str, bool)]) -> Vec<(String, bool)> {
    pairs.iter().map(|(b, r)| (b.to_string(), *r)).collect()
}

/// A passive queue.declare, which reports on `queue` without creating or changing it.
async fn declare_passive(ch: &Channel, queue: &str) -> lapin::Result<Queue> {
    let options = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    ch.queue_declare(queue.into(), options, FieldTable::default())
        .await
}

/// (message_count, consumer_count) as reported by a passive declare on `ch`.
pub async fn counts(ch: &Channel, queue: &str) -> (u32, u32) {
    let q = ok(declare_passive(ch, queue)).await;
    (q.message_count(), q.consumer_count())
}

/// Whether `queue` exists, checked with a passive declare on a fresh channel (a miss closes it).
pub async fn queue_exists(conn: &Connection, queue: &str) -> bool {
    let ch = ok(conn.create_channel()).await;
    let declared = timeout(WAIT, declare_passive(&ch, queue))
        .await
        .expect("declare timed out");
    match declared {
        Ok(_) => true,
        Err(err) => {
            assert_eq!(
                amqp_error(&err),
                (404, format!("NOT_FOUND - no queue '{queue}' in vhost '/'"))
            );
            false
        }
    }
}

/// A field table from (key, value) pairs, for header bindings and message headers alike.
pub fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

/// The broker's connection.start as lapin parses it, read off a raw socket (lapin does not expose it).
pub async fn connection_start(broker: &TestBroker) -> connection::Start {
    let mut client = RawClient::connect_within(broker.addr(), WAIT).await;
    client.send(PROTOCOL_HEADER).await;
    let (channel, payload) = match client.read_any_frame(WAIT).await {
        Ok(Frame::Method {
            channel,
            class,
            method,
            args,
        }) => (channel, method_payload(class, method, &args)),
        Ok(other) => panic!("connection.start must arrive in a method frame, got {other}"),
        Err(end) => panic!("no connection.start from the broker: {end:?}"),
    };
    assert_eq!(channel, 0, "connection.start must arrive on channel 0");
    let (_, class) =
        lapin::protocol::parse_class(payload.as_slice()).expect("parse connection.start");
    let AMQPClass::Connection(connection::AMQPMethod::Start(start)) = class else {
        panic!("expected connection.start, got {class:?}");
    };
    start
}

/// A long-string field value, the type RabbitMQ expects for string arguments and headers.
pub fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// A signed 32-bit field value, what most clients send for integer arguments.
pub fn int(value: i32) -> AMQPValue {
    AMQPValue::LongInt(value)
}

/// Declares `queue` with `options` and the arguments `args`.
pub async fn declare_with(
    ch: &Channel,
    queue: &str,
    options: QueueDeclareOptions,
    args: &[(&str, AMQPValue)],
) -> lapin::Result<Queue> {
    ch.queue_declare(queue.into(), options, table(args)).await
}

/// Declares an exclusive queue named after `prefix` with `args` and returns its name.
pub async fn exclusive_queue(ch: &Channel, prefix: &str, args: &[(&str, AMQPValue)]) -> String {
    let name = super::unique(prefix);
    ok(declare_with(
        ch,
        &name,
        QueueDeclareOptions::exclusive(),
        args,
    ))
    .await;
    name
}

/// Expects a declare of `queue` on a fresh channel of `conn` to be refused: the reply code and
/// text. A refused declare must not have created the queue, which is checked too.
pub async fn refused_declare(
    conn: &Connection,
    queue: &str,
    options: QueueDeclareOptions,
    args: &[(&str, AMQPValue)],
) -> (u16, String) {
    let ch = ok(conn.create_channel()).await;
    let refusal = expect_error(declare_with(&ch, queue, options, args)).await;
    assert!(
        !queue_exists(conn, queue).await,
        "refused declare created '{queue}'"
    );
    refusal
}

/// Declares `queue` (exclusive) with each (argument, value) in turn and expects
/// RabbitMQ's refusal with the given reason.
pub async fn assert_invalid_args(
    conn: &Connection,
    queue: &str,
    cases: &[(&str, AMQPValue, &str)],
) {
    for (key, value, detail) in cases {
        assert_eq!(
            refused_declare(
                conn,
                queue,
                QueueDeclareOptions::exclusive(),
                &[(key, value.clone())]
            )
            .await,
            invalid_arg(queue, key, detail),
            "{key} = {value:?}"
        );
    }
}

/// RabbitMQ's refusal of an invalid queue argument; `detail` is the reason as Erlang prints it.
pub fn invalid_arg(queue: &str, key: &str, detail: &str) -> (u16, String) {
    (
        406,
        format!(
            "PRECONDITION_FAILED - invalid arg '{key}' for queue '{queue}' in vhost '/': {detail}"
        ),
    )
}

/// Whether a mandatory publish to `queue` through the default exchange is routed, on the
/// confirm-mode channel `ch`: the broker returns it before the ack if the queue is gone.
/// Unlike a passive declare or basic.get, a publish does not renew an `x-expires` lease.
pub async fn routes_to(ch: &Channel, queue: &str) -> bool {
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let confirm = publish_with(
        ch,
        "",
        queue,
        mandatory,
        b"probe",
        BasicProperties::default(),
    )
    .await;
    let confirmation = ok(confirm).await;
    assert!(
        confirmation.is_ack(),
        "probe not confirmed: {confirmation:?}"
    );
    confirmation.take_message().is_none()
}

/// Polls `check` every 20 ms until it holds, failing the test after [`WAIT`]: for broker state
/// no event announces, such as a message or a queue expiring.
pub async fn wait_until<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The message header `key` of `delivery`, if it has one.
pub fn header<'a>(delivery: &'a Delivery, key: &str) -> Option<&'a AMQPValue> {
    delivery.properties.headers().as_ref()?.inner().get(key)
}

/// Whether `broker` is a RabbitMQ older than `major.minor`, for the few expectations where
/// current RabbitMQ differs from older releases (Warren follows current RabbitMQ).
pub async fn is_rabbitmq_before(broker: &TestBroker, major: u32, minor: u32) -> bool {
    let start = connection_start(broker).await;
    let property = |key: &str| match start.server_properties.inner().get(key) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("server property {key}: {other:?}"),
    };
    if property("product") != "RabbitMQ" {
        return false;
    }
    let version = property("version");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (got_major, got_minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (got_major, got_minor) < (major, minor)
}
