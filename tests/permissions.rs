//! Per-vhost permissions, enforced on every AMQP method as RabbitMQ enforces
//! them: which permission each method needs on which resource, the order of
//! the checks, and RabbitMQ's exact 403 texts.
//!
//! The user and its permissions are created through the broker's API, so
//! these tests drive the in-process broker only. Every expectation here was
//! checked against RabbitMQ 3.10.8 with a user given the same patterns
//! (`rabbitmqctl set_permissions`), except where a test says otherwise.

mod common;

use std::future::Future;

use common::lapin::{Inbox, expect_error, ok};
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeBindOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, ExchangeUnbindOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use warren::testing::InProcessServer;

const USER: &str = "alice";
const PASSWORD: &str = "alice-secret";
/// Alice may configure `ok-*` and `c-*`, write `ok-*` and `w*`, read `ok-*` and `r*`.
const CONFIGURE: &str = "^(ok-|c-)";
const WRITE: &str = "^(ok-|w)";
const READ: &str = "^(ok-|r)";

/// A broker with alice's permissions on `/`, and queues and exchanges
/// (declared by guest) that alice may only write (`w-`), only read (`r-`) or
/// not touch at all (`no-`).
struct Fixture {
    server: InProcessServer,
    alice: Connection,
}

async fn connect(server: &InProcessServer, user: &str, password: &str) -> Connection {
    let url = format!("amqp://{user}:{password}@{}/%2f", server.addr());
    ok(Connection::connect(&url, ConnectionProperties::default())).await
}

async fn fixture() -> Fixture {
    let server = InProcessServer::start();
    let broker = server.broker();
    broker.add_user(USER, PASSWORD, &[]).unwrap();
    broker
        .set_permissions(USER, "/", CONFIGURE, WRITE, READ)
        .unwrap();
    let guest = connect(&server, "guest", "guest").await;
    let ch = ok(guest.create_channel()).await;
    for queue in ["w-q", "r-q", "no-q"] {
        ok(ch.queue_declare(
            queue.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        ))
        .await;
    }
    for exchange in ["w-x", "r-x", "no-x"] {
        ok(ch.exchange_declare(
            exchange.into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        ))
        .await;
    }
    ok(guest.close(200, "fixtures ready".into())).await;
    let alice = connect(&server, USER, PASSWORD).await;
    Fixture { server, alice }
}

impl Fixture {
    async fn channel(&self) -> Channel {
        ok(self.alice.create_channel()).await
    }

    /// Runs `op` on a fresh channel of alice's and expects it to succeed.
    async fn allowed<T, F: Future<Output = lapin::Result<T>>>(
        &self,
        op: impl FnOnce(Channel) -> F,
    ) {
        ok(op(self.channel().await)).await;
    }

    /// Runs `op` on a fresh channel of alice's and returns the error closing it.
    async fn refused<T: std::fmt::Debug, F: Future<Output = lapin::Result<T>>>(
        &self,
        op: impl FnOnce(Channel) -> F,
    ) -> (u16, String) {
        expect_error(op(self.channel().await)).await
    }
}

/// RabbitMQ's 403 for alice on a resource of `/`.
fn denied(kind: &str, name: &str) -> (u16, String) {
    (
        403,
        format!(
            "ACCESS_REFUSED - access to {kind} '{name}' in vhost '/' refused for user '{USER}'"
        ),
    )
}

async fn declare_queue(
    ch: Channel,
    name: &str,
    arguments: FieldTable,
) -> lapin::Result<lapin::Queue> {
    ch.queue_declare(name.into(), QueueDeclareOptions::default(), arguments)
        .await
}

fn dead_letter_to(exchange: &str) -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(exchange.into()),
    );
    arguments
}

#[tokio::test]
async fn queue_declare_needs_configure_on_the_queue() {
    let f = fixture().await;
    f.allowed(|ch| declare_queue(ch, "ok-q", FieldTable::default()))
        .await;
    assert_eq!(
        f.refused(|ch| declare_queue(ch, "no-q", FieldTable::default()))
            .await,
        denied("queue", "no-q")
    );
    // Passive declarations need no permission.
    f.allowed(|ch| async move {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        ch.queue_declare("no-q".into(), passive, FieldTable::default())
            .await
    })
    .await;
    // A server-named queue is checked under the name the server chose.
    let (code, text) = f
        .refused(|ch| declare_queue(ch, "", FieldTable::default()))
        .await;
    assert_eq!(code, 403);
    assert!(
        text.starts_with("ACCESS_REFUSED - access to queue 'amq.gen-")
            && text.ends_with("' in vhost '/' refused for user 'alice'"),
        "{text}"
    );
}

#[tokio::test]
async fn a_dead_letter_exchange_needs_read_on_the_queue_and_write_on_the_exchange() {
    let f = fixture().await;
    f.allowed(|ch| declare_queue(ch, "ok-dl", dead_letter_to("w-x")))
        .await;
    assert_eq!(
        f.refused(|ch| declare_queue(ch, "ok-dl2", dead_letter_to("no-x")))
            .await,
        denied("exchange", "no-x")
    );
    assert_eq!(
        f.refused(|ch| declare_queue(ch, "c-dl", dead_letter_to("w-x")))
            .await,
        denied("queue", "c-dl")
    );
    // The default exchange is `amq.default` to permissions.
    assert_eq!(
        f.refused(|ch| declare_queue(ch, "ok-dl3", dead_letter_to("")))
            .await,
        denied("exchange", "amq.default")
    );
}

#[tokio::test]
async fn queue_delete_needs_configure_even_on_a_missing_queue() {
    let f = fixture().await;
    let delete = |name: &'static str| {
        move |ch: Channel| async move {
            ch.queue_delete(name.into(), QueueDeleteOptions::default())
                .await
        }
    };
    assert_eq!(f.refused(delete("no-q")).await, denied("queue", "no-q"));
    assert_eq!(
        f.refused(delete("nothere")).await,
        denied("queue", "nothere")
    );
    f.allowed(|ch| declare_queue(ch, "ok-gone", FieldTable::default()))
        .await;
    f.allowed(delete("ok-gone")).await;
}

#[tokio::test]
async fn purge_get_and_consume_need_read_on_the_queue() {
    let f = fixture().await;
    let purge = |name: &'static str| {
        move |ch: Channel| async move {
            ch.queue_purge(name.into(), QueuePurgeOptions::default())
                .await
        }
    };
    let get = |name: &'static str| {
        move |ch: Channel| async move { ch.basic_get(name.into(), BasicGetOptions::default()).await }
    };
    let consume = |name: &'static str| {
        move |ch: Channel| async move {
            ch.basic_consume(
                name.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map(Inbox::new)
            .map(|inbox| inbox.tag())
        }
    };
    assert_eq!(f.refused(purge("w-q")).await, denied("queue", "w-q"));
    assert_eq!(f.refused(get("w-q")).await, denied("queue", "w-q"));
    // Checked before the queue is looked up: 403, not 404.
    assert_eq!(f.refused(get("nothere")).await, denied("queue", "nothere"));
    assert_eq!(f.refused(consume("w-q")).await, denied("queue", "w-q"));
    f.allowed(purge("r-q")).await;
    f.allowed(get("r-q")).await;
    f.allowed(consume("r-q")).await;
}

#[tokio::test]
async fn queue_bind_needs_write_on_the_queue_and_read_on_the_exchange() {
    let f = fixture().await;
    let bind = |queue: &'static str, exchange: &'static str| {
        move |ch: Channel| async move {
            ch.queue_bind(
                queue.into(),
                exchange.into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
        }
    };
    let unbind = |queue: &'static str, exchange: &'static str| {
        move |ch: Channel| async move {
            ch.queue_unbind(
                queue.into(),
                exchange.into(),
                "".into(),
                FieldTable::default(),
            )
            .await
        }
    };
    assert_eq!(f.refused(bind("r-q", "r-x")).await, denied("queue", "r-q"));
    assert_eq!(
        f.refused(bind("w-q", "w-x")).await,
        denied("exchange", "w-x")
    );
    f.allowed(bind("w-q", "r-x")).await;
    assert_eq!(
        f.refused(unbind("r-q", "r-x")).await,
        denied("queue", "r-q")
    );
    assert_eq!(
        f.refused(unbind("w-q", "w-x")).await,
        denied("exchange", "w-x")
    );
    f.allowed(unbind("w-q", "r-x")).await;
    // Write on the queue passes, then the default exchange is refused as such.
    assert_eq!(
        f.refused(bind("w-q", "")).await,
        (
            403,
            "ACCESS_REFUSED - operation not permitted on the default exchange".to_string()
        )
    );
    // With both permissions granted, a missing exchange is a 404.
    assert_eq!(
        f.refused(bind("w-missing", "r-missing")).await,
        (
            404,
            "NOT_FOUND - no exchange 'r-missing' in vhost '/'".to_string()
        )
    );
}

#[tokio::test]
async fn exchange_bind_needs_write_on_the_destination_and_read_on_the_source() {
    let f = fixture().await;
    let bind = |destination: &'static str, source: &'static str| {
        move |ch: Channel| async move {
            ch.exchange_bind(
                destination.into(),
                source.into(),
                "".into(),
                ExchangeBindOptions::default(),
                FieldTable::default(),
            )
            .await
        }
    };
    let unbind = |destination: &'static str, source: &'static str| {
        move |ch: Channel| async move {
            ch.exchange_unbind(
                destination.into(),
                source.into(),
                "".into(),
                ExchangeUnbindOptions::default(),
                FieldTable::default(),
            )
            .await
        }
    };
    assert_eq!(
        f.refused(bind("r-x", "r-x")).await,
        denied("exchange", "r-x")
    );
    assert_eq!(
        f.refused(bind("w-x", "w-x")).await,
        denied("exchange", "w-x")
    );
    f.allowed(bind("w-x", "r-x")).await;
    assert_eq!(
        f.refused(unbind("w-x", "w-x")).await,
        denied("exchange", "w-x")
    );
    f.allowed(unbind("w-x", "r-x")).await;
}

#[tokio::test]
async fn exchange_declare_and_delete_need_configure() {
    let f = fixture().await;
    let declare = |name: &'static str, passive: bool, arguments: FieldTable| {
        move |ch: Channel| async move {
            let options = ExchangeDeclareOptions {
                passive,
                ..Default::default()
            };
            ch.exchange_declare(name.into(), ExchangeKind::Fanout, options, arguments)
                .await
        }
    };
    let delete = |name: &'static str| {
        move |ch: Channel| async move {
            ch.exchange_delete(name.into(), ExchangeDeleteOptions::default())
                .await
        }
    };
    let alternate = |name: &str| {
        let mut arguments = FieldTable::default();
        arguments.insert(
            "alternate-exchange".into(),
            AMQPValue::LongString(name.into()),
        );
        arguments
    };
    assert_eq!(
        f.refused(declare("no-x", false, FieldTable::default()))
            .await,
        denied("exchange", "no-x")
    );
    f.allowed(declare("no-x", true, FieldTable::default()))
        .await;
    f.allowed(declare("ok-x", false, FieldTable::default()))
        .await;
    // A new exchange with an alternate needs read on itself and write on the alternate.
    assert_eq!(
        f.refused(declare("ok-ae", false, alternate("no-x"))).await,
        denied("exchange", "no-x")
    );
    assert_eq!(
        f.refused(declare("c-ae", false, alternate("w-x"))).await,
        denied("exchange", "c-ae")
    );
    f.allowed(declare("ok-ae", false, alternate("w-x"))).await;
    assert_eq!(f.refused(delete("no-x")).await, denied("exchange", "no-x"));
    assert_eq!(
        f.refused(delete("nothere")).await,
        denied("exchange", "nothere")
    );
    f.allowed(delete("ok-x")).await;
}

/// Publishes one message with confirms and waits for its confirm.
async fn publish(ch: Channel, exchange: &str, routing_key: &str) -> lapin::Result<bool> {
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    ch.basic_publish(
        exchange.into(),
        routing_key.into(),
        BasicPublishOptions::default(),
        b"hello",
        BasicProperties::default(),
    )
    .await?
    .await
    .map(|confirmation| confirmation.is_ack())
}

#[tokio::test]
async fn publish_needs_write_on_the_exchange() {
    let f = fixture().await;
    f.allowed(|ch| publish(ch, "w-x", "k")).await;
    assert_eq!(
        f.refused(|ch| publish(ch, "r-x", "k")).await,
        denied("exchange", "r-x")
    );
    // Checked before the exchange is looked up: 403, not 404.
    assert_eq!(
        f.refused(|ch| publish(ch, "nothere", "k")).await,
        denied("exchange", "nothere")
    );
    assert_eq!(
        f.refused(|ch| publish(ch, "amq.direct", "k")).await,
        denied("exchange", "amq.direct")
    );
    // The default exchange needs write on `amq.default`.
    assert_eq!(
        f.refused(|ch| publish(ch, "", "r-q")).await,
        denied("exchange", "amq.default")
    );
    let broker = f.server.broker();
    broker
        .set_permissions(USER, "/", CONFIGURE, "^(ok-|w|amq\\.default$)", READ)
        .unwrap();
    f.allowed(|ch| publish(ch, "", "r-q")).await;
}

/// Changed permissions apply to open channels at once, even for a check the
/// channel has passed before. (RabbitMQ keeps up to 12 passed checks per
/// channel for the channel's life, so there a revoked permission only bites
/// on new channels; Warren is stricter on purpose.)
#[tokio::test]
async fn revoked_permissions_apply_to_open_channels() {
    let f = fixture().await;
    let ch = f.channel().await;
    ok(ch.confirm_select(ConfirmSelectOptions::default())).await;
    let send = |ch: Channel| async move {
        ch.basic_publish(
            "w-x".into(),
            "k".into(),
            BasicPublishOptions::default(),
            b"hello",
            BasicProperties::default(),
        )
        .await?
        .await
    };
    ok(send(ch.clone())).await;
    f.server
        .broker()
        .set_permissions(USER, "/", CONFIGURE, "^ok-", READ)
        .unwrap();
    assert_eq!(expect_error(send(ch)).await, denied("exchange", "w-x"));
}
