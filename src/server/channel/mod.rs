//! One AMQP channel: its state, and the dispatch of methods to their handlers.
//! Publishing (content assembly, routing, confirms, transactions) is in
//! `publish`; consuming (consumers, deliveries, acks) in `consume`.
//!
//! A channel lives inside its connection's task and is never shared, so none
//! of its state needs a lock. It talks to the broker through the vhost and its
//! queues, and writes replies into the connection's outbound buffer.

mod consume;
mod direct_reply;
mod publish;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amq_protocol::protocol::{AMQPClass, access, basic, channel, confirm, exchange, queue, tx};
use bytes::{Bytes, BytesMut};

use crate::auth::{Access, Permission, PermissionCache, ResourceKind};
use crate::broker::exchange::Destination;
use crate::broker::mailbox::{ChannelCredit, Credit, LazyMailbox};
use crate::broker::message::{Message, QueuedMessage};
use crate::broker::names;
use crate::broker::queue::{ConnectionId, Consumer, ConsumerRemoval, Queue};
use crate::broker::vhost::{Enqueueing, ExchangeDeclare, QueueDeclare, VHost};
use crate::error::{AmqpError, AmqpResult, ReplyCode};
use crate::protocol::frame::{ContentHeader, PROPERTIES_OFFSET};
use crate::protocol::{Method, ShortString, encode};
use crate::store::Ticket;

/// What a channel needs from its connection while handling a method.
pub struct Context<'a> {
    /// The connection's identity (exclusive queues and consumers).
    pub connection: ConnectionId,
    /// The vhost the connection opened.
    pub vhost: &'a Arc<VHost>,
    /// Where this connection's deliveries arrive (created by its first consumer).
    pub mailbox: &'a mut LazyMailbox,
    /// The outbound buffer.
    pub out: &'a mut BytesMut,
    /// Negotiated frame size limit.
    pub frame_max: u32,
    /// Largest message body accepted.
    pub max_message_size: u64,
    /// The authenticated user in this vhost: permissions, and `user_id` properties.
    pub access: &'a Access,
    /// The highest store ticket on disk.
    pub synced: Ticket,
    /// Set to a queue that asks its publishers to pause (growing faster than it drains).
    pub crowded: &'a mut Option<Arc<Queue>>,
    /// When the frames or events being handled arrived.
    pub now: Instant,
    /// Messages published since the connection last collected the count.
    pub received: &'a mut u64,
}

/// A consumer as its channel sees it.
struct ChannelConsumer {
    queue: Arc<Queue>,
}

/// A delivery awaiting ack, nack or reject.
struct Unacked {
    queue: Arc<Queue>,
    message: QueuedMessage,
    /// Prefetch credit to give back; `None` for `basic.get`.
    credit: Option<Arc<Credit>>,
    /// When it was sent, for the consumer timeout.
    delivered_at: Instant,
}

/// A publish whose content is still arriving.
struct PendingPublish {
    exchange: ShortString,
    routing_key: ShortString,
    mandatory: bool,
    header: Option<(ContentHeader, Bytes)>,
    body: Vec<Bytes>,
    received: u64,
}

/// A message routed but not yet handed to its queues (inside a transaction).
struct Routed {
    message: Message,
    queues: Vec<Arc<Queue>>,
    mandatory: bool,
}

/// Publisher-confirm bookkeeping: confirms are coalesced per batch of frames,
/// and a persistent message is confirmed only once the store has synced it.
#[derive(Default)]
struct Confirms {
    /// Sequence number of the last publish received.
    published: u64,
    /// Highest sequence number confirmed so far.
    confirmed: u64,
    /// Publishes whose confirm cannot be a plain ack right away, in order.
    waiting: VecDeque<WaitingConfirm>,
}

/// A publish waiting for the store (ack once its ticket is on disk) or refused by a queue (nack).
struct WaitingConfirm {
    seq: u64,
    ticket: Ticket,
    nack: bool,
}

/// Work a transaction holds until commit.
#[derive(Default)]
struct Transaction {
    publishes: Vec<Routed>,
    /// Acks, nacks and rejects, in the order they came.
    settlements: Vec<(Settlement, Vec<(u64, Unacked)>)>,
}

/// How a delivery is finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settlement {
    /// Acknowledged: gone for good.
    Ack,
    /// Rejected without requeue: gone, or dead-lettered.
    Discard,
    /// Back to its queue.
    Requeue,
}

/// An open channel.
pub struct Channel {
    id: u16,
    closing: bool,
    publish: Option<PendingPublish>,
    consumers: HashMap<Arc<str>, ChannelConsumer>,
    unacked: BTreeMap<u64, Unacked>,
    next_delivery_tag: u64,
    credit: Arc<ChannelCredit>,
    consumer_prefetch: u32,
    confirms: Option<Confirms>,
    transaction: Option<Transaction>,
    credit_released: bool,
    last_declared_queue: Option<Arc<str>>,
    /// The direct reply-to pseudo-queue this channel consumes from, if any.
    direct_reply: Option<Arc<Queue>>,
    /// The exchange and routing key of the last publish, shared by the
    /// messages that repeat them (most do) instead of allocated for each.
    last_address: (Arc<str>, Arc<str>),
    /// Tickets that pending tx.commit-oks wait for (0: waits only for those before it).
    commits_on_disk: VecDeque<Ticket>,
    /// Permission checks passed, so that repeated ones stay cheap.
    permissions: PermissionCache,
}

impl Channel {
    /// A freshly opened channel.
    pub fn new(id: u16) -> Channel {
        Channel {
            id,
            closing: false,
            publish: None,
            consumers: HashMap::new(),
            unacked: BTreeMap::new(),
            next_delivery_tag: 1,
            credit: Arc::new(ChannelCredit::default()),
            consumer_prefetch: 0,
            confirms: None,
            transaction: None,
            credit_released: false,
            last_declared_queue: None,
            direct_reply: None,
            last_address: (Arc::from(""), Arc::from("")),
            commits_on_disk: VecDeque::new(),
            permissions: PermissionCache::default(),
        }
    }

    /// Whether the server has closed this channel and awaits close-ok.
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// Whether a basic.publish is waiting for its content.
    pub fn is_publishing(&self) -> bool {
        self.publish.is_some()
    }

    /// Handles a method addressed to this channel.
    pub fn handle_method(&mut self, ctx: &mut Context, method: Method) -> AmqpResult<()> {
        if let Some(publish) = &self.publish {
            let expected = match publish.header {
                None => {
                    "expected content header for class 60, got non content header frame instead"
                }
                Some(_) => "expected content body, got non content body frame instead",
            };
            // Reported against the basic.publish whose content was interrupted.
            return Err(AmqpError::unexpected_frame(expected).in_method(60, 40));
        }
        match method {
            AMQPClass::Channel(m) => self.channel_method(ctx, m),
            AMQPClass::Exchange(m) => self.exchange_method(ctx, m),
            AMQPClass::Queue(m) => self.queue_method(ctx, m),
            AMQPClass::Basic(m) => self.basic_method(ctx, m),
            AMQPClass::Confirm(confirm::AMQPMethod::Select(m)) => {
                if self.transaction.is_some() {
                    return Err(AmqpError::precondition_failed(
                        "cannot switch from tx to confirm mode",
                    ));
                }
                self.confirms.get_or_insert_with(Confirms::default);
                self.reply_unless(
                    ctx,
                    m.nowait,
                    AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
                );
                Ok(())
            }
            AMQPClass::Tx(m) => self.tx_method(ctx, m),
            AMQPClass::Access(_) => {
                // Access tickets are long gone; RabbitMQ still answers with ticket 1.
                self.reply(
                    ctx,
                    AMQPClass::Access(access::AMQPMethod::RequestOk(access::RequestOk {})),
                );
                Ok(())
            }
            _ => Err(unimplemented()),
        }
    }

    fn reply(&self, ctx: &mut Context, method: Method) {
        encode::method(ctx.out, self.id, &method);
    }

    /// Replies unless the client asked for no reply (the `nowait` flag).
    fn reply_unless(&self, ctx: &mut Context, nowait: bool, method: Method) {
        if !nowait {
            self.reply(ctx, method);
        }
    }

    fn channel_method(&mut self, ctx: &mut Context, method: channel::AMQPMethod) -> AmqpResult<()> {
        match method {
            channel::AMQPMethod::Open(_) => {
                Err(AmqpError::channel_error("second 'channel.open' seen"))
            }
            channel::AMQPMethod::Flow(flow) if flow.active => {
                self.reply(
                    ctx,
                    AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk {
                        active: true,
                    })),
                );
                Ok(())
            }
            // RabbitMQ stopped honouring consumer flow control in 3.3 and refuses it.
            channel::AMQPMethod::Flow(_) => Err(AmqpError::not_implemented("active=false")),
            channel::AMQPMethod::FlowOk(_) => Ok(()),
            // Close and close-ok are handled by the connection, which owns the channel table.
            _ => Err(unimplemented()),
        }
    }

    fn exchange_method(
        &mut self,
        ctx: &mut Context,
        method: exchange::AMQPMethod,
    ) -> AmqpResult<()> {
        match method {
            exchange::AMQPMethod::Declare(d) => {
                let declare = ExchangeDeclare {
                    name: d.exchange.to_string(),
                    kind: d.kind.to_string(),
                    passive: d.passive,
                    durable: d.durable,
                    auto_delete: d.auto_delete,
                    internal: d.internal,
                    arguments: d.arguments,
                };
                ctx.vhost
                    .declare_exchange(declare, &mut self.permissions.for_access(ctx.access))?;
                self.reply_unless(
                    ctx,
                    d.nowait,
                    AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {})),
                );
                Ok(())
            }
            exchange::AMQPMethod::Delete(d) => {
                let mut authorize = self.permissions.for_access(ctx.access);
                ctx.vhost
                    .delete_exchange(d.exchange.as_str(), d.if_unused, &mut authorize)?;
                self.reply_unless(
                    ctx,
                    d.nowait,
                    AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {})),
                );
                Ok(())
            }
            exchange::AMQPMethod::Bind(b) => {
                let destination = Destination::Exchange(Arc::from(b.destination.as_str()));
                self.authorize_binding(ctx, b.source.as_str(), &destination)?;
                let connection = ctx.connection;
                ctx.vhost.bind(
                    b.source.as_str(),
                    destination,
                    b.routing_key.as_str(),
                    b.arguments,
                    connection,
                )?;
                self.reply_unless(
                    ctx,
                    b.nowait,
                    AMQPClass::Exchange(exchange::AMQPMethod::BindOk(exchange::BindOk {})),
                );
                Ok(())
            }
            exchange::AMQPMethod::Unbind(u) => {
                let destination = Destination::Exchange(Arc::from(u.destination.as_str()));
                self.authorize_binding(ctx, u.source.as_str(), &destination)?;
                let connection = ctx.connection;
                ctx.vhost.unbind(
                    u.source.as_str(),
                    destination,
                    u.routing_key.as_str(),
                    u.arguments,
                    connection,
                )?;
                self.reply_unless(
                    ctx,
                    u.nowait,
                    AMQPClass::Exchange(exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {})),
                );
                Ok(())
            }
            _ => Err(unimplemented()),
        }
    }

    fn queue_method(&mut self, ctx: &mut Context, method: queue::AMQPMethod) -> AmqpResult<()> {
        let vhost = ctx.vhost;
        let connection = ctx.connection;
        match method {
            queue::AMQPMethod::Declare(d) => {
                let declare = QueueDeclare {
                    name: d.queue.to_string(),
                    passive: d.passive,
                    durable: d.durable,
                    exclusive: d.exclusive,
                    auto_delete: d.auto_delete,
                    arguments: d.arguments,
                };
                let mut authorize = self.permissions.for_access(ctx.access);
                let declared = vhost.declare_queue(declare, connection, &mut authorize)?;
                self.last_declared_queue = Some(declared.name.clone());
                if !d.nowait {
                    let ok = queue::DeclareOk {
                        queue: (&*declared.name).into(),
                        message_count: declared.message_count,
                        consumer_count: declared.consumer_count,
                    };
                    self.reply(ctx, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)));
                }
                Ok(())
            }
            queue::AMQPMethod::Bind(b) => {
                let queue_name = self.queue_name(b.queue.as_str())?;
                // With both names empty, the routing key is the last declared queue too.
                let routing_key = match (b.queue.as_str(), b.routing_key.as_str()) {
                    ("", "") => queue_name.clone(),
                    (_, key) => Arc::from(key),
                };
                let destination = Destination::Queue(queue_name);
                self.authorize_binding(ctx, b.exchange.as_str(), &destination)?;
                vhost.bind(
                    b.exchange.as_str(),
                    destination,
                    &routing_key,
                    b.arguments,
                    connection,
                )?;
                self.reply_unless(
                    ctx,
                    b.nowait,
                    AMQPClass::Queue(queue::AMQPMethod::BindOk(queue::BindOk {})),
                );
                Ok(())
            }
            queue::AMQPMethod::Unbind(u) => {
                let destination = Destination::Queue(self.queue_name(u.queue.as_str())?);
                self.authorize_binding(ctx, u.exchange.as_str(), &destination)?;
                vhost.unbind(
                    u.exchange.as_str(),
                    destination,
                    u.routing_key.as_str(),
                    u.arguments,
                    connection,
                )?;
                self.reply(
                    ctx,
                    AMQPClass::Queue(queue::AMQPMethod::UnbindOk(queue::UnbindOk {})),
                );
                Ok(())
            }
            queue::AMQPMethod::Purge(p) => {
                let name = self.queue_name(p.queue.as_str())?;
                self.authorize(ctx, ResourceKind::Queue, &name, Permission::Read)?;
                let message_count = vhost.queue_for(&name, connection)?.purge();
                self.reply_unless(
                    ctx,
                    p.nowait,
                    AMQPClass::Queue(queue::AMQPMethod::PurgeOk(queue::PurgeOk { message_count })),
                );
                Ok(())
            }
            queue::AMQPMethod::Delete(d) => {
                let name = self.queue_name(d.queue.as_str())?;
                self.authorize(ctx, ResourceKind::Queue, &name, Permission::Configure)?;
                let message_count =
                    vhost.delete_queue(&name, d.if_unused, d.if_empty, connection)?;
                self.reply_unless(
                    ctx,
                    d.nowait,
                    AMQPClass::Queue(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
                        message_count,
                    })),
                );
                Ok(())
            }
            _ => Err(unimplemented()),
        }
    }

    fn basic_method(&mut self, ctx: &mut Context, method: basic::AMQPMethod) -> AmqpResult<()> {
        match method {
            basic::AMQPMethod::Publish(p) => {
                if p.immediate {
                    return Err(AmqpError::not_implemented("immediate=true"));
                }
                self.publish = Some(PendingPublish {
                    exchange: p.exchange,
                    routing_key: p.routing_key,
                    mandatory: p.mandatory,
                    header: None,
                    body: Vec::new(),
                    received: 0,
                });
                Ok(())
            }
            basic::AMQPMethod::Qos(q) => {
                if q.global {
                    self.credit.set_limit(q.prefetch_count.into());
                    self.credit_released = true;
                } else {
                    self.consumer_prefetch = q.prefetch_count.into();
                }
                self.reply(
                    ctx,
                    AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})),
                );
                Ok(())
            }
            basic::AMQPMethod::Consume(c) => self.consume(ctx, c),
            basic::AMQPMethod::Cancel(c) => {
                // Unacknowledged deliveries stay with the channel, as in RabbitMQ.
                self.cancel_consumer(ctx, c.consumer_tag.as_str(), Vec::new());
                if !c.nowait {
                    let ok = basic::CancelOk {
                        consumer_tag: c.consumer_tag,
                    };
                    self.reply(ctx, AMQPClass::Basic(basic::AMQPMethod::CancelOk(ok)));
                }
                Ok(())
            }
            basic::AMQPMethod::Get(g) => self.get(ctx, g),
            basic::AMQPMethod::Ack(a) => {
                let settled = self.take_unacked(a.delivery_tag, a.multiple)?;
                self.settle_or_hold(settled, Settlement::Ack);
                Ok(())
            }
            basic::AMQPMethod::Nack(n) => self.reject(n.delivery_tag, n.multiple, n.requeue),
            basic::AMQPMethod::Reject(r) => self.reject(r.delivery_tag, false, r.requeue),
            basic::AMQPMethod::RecoverAsync(r) => self.recover(r.requeue),
            basic::AMQPMethod::Recover(r) => {
                self.recover(r.requeue)?;
                self.reply(
                    ctx,
                    AMQPClass::Basic(basic::AMQPMethod::RecoverOk(basic::RecoverOk {})),
                );
                Ok(())
            }
            _ => Err(unimplemented()),
        }
    }

    /// Checks a permission, as RabbitMQ's channels do, through this channel's cache.
    fn authorize(
        &mut self,
        ctx: &Context,
        kind: ResourceKind,
        name: &str,
        permission: Permission,
    ) -> AmqpResult<()> {
        self.permissions.check(ctx.access, kind, name, permission)
    }

    /// RabbitMQ's checks for (un)binding, in its order: write on the
    /// destination, neither end the default exchange, read on the source.
    fn authorize_binding(
        &mut self,
        ctx: &Context,
        source: &str,
        destination: &Destination,
    ) -> AmqpResult<()> {
        let (kind, name) = match destination {
            Destination::Queue(name) => (ResourceKind::Queue, name),
            Destination::Exchange(name) => (ResourceKind::Exchange, name),
        };
        self.authorize(ctx, kind, name, Permission::Write)?;
        if kind == ResourceKind::Exchange {
            VHost::check_not_default_exchange(name)?;
        }
        VHost::check_not_default_exchange(source)?;
        self.authorize(ctx, ResourceKind::Exchange, source, Permission::Read)
    }

    /// Resolves RabbitMQ's shortcut: an empty queue name means the last queue declared here.
    fn queue_name(&self, name: &str) -> AmqpResult<Arc<str>> {
        match (name, &self.last_declared_queue) {
            ("", Some(last)) => Ok(last.clone()),
            ("", None) => Err(AmqpError::not_found("no previously declared queue")),
            (name, _) => Ok(Arc::from(name)),
        }
    }

    /// End of a batch of frames: coalesced confirms, and dispatch where credit came back.
    pub fn end_of_batch(&mut self, ctx: &mut Context) {
        self.flush_confirms(ctx);
        while self
            .commits_on_disk
            .front()
            .is_some_and(|&t| t <= ctx.synced)
        {
            self.commits_on_disk.pop_front();
            self.reply(
                ctx,
                AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})),
            );
        }
        if std::mem::take(&mut self.credit_released) {
            let mut seen: Vec<*const Queue> = Vec::new();
            for consumer in self.consumers.values() {
                if !seen.contains(&Arc::as_ptr(&consumer.queue)) {
                    seen.push(Arc::as_ptr(&consumer.queue));
                    consumer.queue.dispatch();
                }
            }
        }
    }

    /// The timeout that the oldest unacknowledged delivery has outlived, if
    /// it has: its queue's `x-consumer-timeout`, or else `default`.
    pub fn overdue_ack(&self, now: Instant, default: Option<Duration>) -> Option<Duration> {
        if self.closing {
            return None;
        }
        let (_, oldest) = self.unacked.first_key_value()?;
        let timeout = oldest.queue.config.settings.consumer_timeout.or(default)?;
        (now.saturating_duration_since(oldest.delivered_at) > timeout).then_some(timeout)
    }

    /// Marks the channel closed by the server, releasing everything it holds.
    pub fn close_by_server(&mut self, ctx: &mut Context) {
        self.release(ctx);
        self.closing = true;
    }

    /// Releases consumers and requeues unacknowledged deliveries (channel or connection end).
    pub fn release(&mut self, ctx: &mut Context) {
        self.publish = None;
        let unacked = std::mem::take(&mut self.unacked);
        let mut pending: Vec<Unacked> = unacked.into_values().collect();
        if let Some(tx) = self.transaction.take() {
            pending.extend(
                tx.settlements
                    .into_iter()
                    .flat_map(|(_, settled)| settled)
                    .map(|(_, u)| u),
            );
        }
        // Each consumer leaves together with the deliveries its queue gets
        // back, so that a single active consumer's successor sees them first.
        let tags: Vec<Arc<str>> = self.consumers.keys().cloned().collect();
        for tag in tags {
            let queue = self.consumers[&tag].queue.clone();
            let (returned, rest) = pending
                .into_iter()
                .partition(|u| Arc::ptr_eq(&u.queue, &queue));
            pending = rest;
            self.cancel_consumer(ctx, &tag, returned);
        }
        self.settle(pending, Settlement::Requeue);
    }
}

/// RabbitMQ's answer to a method a client may not send (a server-only or unknown one).
fn unimplemented() -> AmqpError {
    AmqpError::command_invalid("unimplemented method")
}
