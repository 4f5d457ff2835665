//! Exchange, queues and bindings, declared by the tool itself.
//!
//! Producer i publishes for queue i mod N and consumer i reads queue i mod N,
//! so N > 1 gives one queue per producer/consumer pair. Queues are deleted
//! first when the run publishes (stale messages or a different durability
//! would skew it) and deleted afterwards when it consumed; a producer-only
//! run therefore leaves its backlog for a later --drain run.

use amq_protocol::protocol::{AMQPClass, basic, exchange, queue};

use crate::Result;
use crate::cli::{ExchangeKind, Flags};
use crate::conn::{Conn, unexpected};
use warren::protocol::Method;

/// Channel the control connection uses.
const CHANNEL: u16 = 1;

/// Names and keys of one run's topology.
pub struct Topology {
    exchange: String,
    kind: ExchangeKind,
    key: String,
    queues: Vec<String>,
    durable: bool,
}

impl Topology {
    /// The topology the flags describe.
    pub fn new(flags: &Flags) -> Self {
        let kind = flags.exchange_type;
        Topology {
            exchange: flags
                .exchange
                .clone()
                .unwrap_or_else(|| format!("warren-perf-{}", kind.as_str())),
            kind,
            key: flags.routing_key.clone(),
            queues: (0..flags.queues)
                .map(|i| format!("{}{i}", flags.queue_prefix))
                .collect(),
            durable: flags.persistent,
        }
    }

    /// Queue consumer `i` reads.
    pub fn queue_for(&self, i: usize) -> &str {
        &self.queues[i % self.queues.len()]
    }

    /// How many queues one published message lands in.
    pub fn fan_out(&self) -> u64 {
        match self.kind {
            ExchangeKind::Fanout => self.queues.len() as u64,
            ExchangeKind::Direct | ExchangeKind::Topic => 1,
        }
    }

    /// The `basic.publish` producer `i` sends.
    pub fn publish_for(&self, i: usize) -> Method {
        let q = i % self.queues.len();
        let routing_key = match self.kind {
            ExchangeKind::Direct => format!("{}.{q}", self.key),
            ExchangeKind::Topic => format!("{}.{q}.msg", self.key),
            ExchangeKind::Fanout => self.key.clone(),
        };
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: self.exchange.as_str().into(),
            routing_key: routing_key.into(),
            ..Default::default()
        }))
    }

    /// Binding key of queue number `q`.
    fn binding_key(&self, q: usize) -> String {
        match self.kind {
            ExchangeKind::Direct => format!("{}.{q}", self.key),
            ExchangeKind::Topic => format!("{}.{q}.#", self.key),
            ExchangeKind::Fanout => String::new(),
        }
    }

    /// Declares everything; `fresh` deletes the queues first.
    pub async fn declare(&self, ctl: &mut Conn, fresh: bool) -> Result<()> {
        let declare = exchange::Declare {
            exchange: self.exchange.as_str().into(),
            kind: self.kind.as_str().into(),
            ..Default::default()
        };
        expect_ok(
            ctl,
            AMQPClass::Exchange(exchange::AMQPMethod::Declare(declare)),
        )
        .await?;
        for (q, name) in self.queues.iter().enumerate() {
            if fresh {
                self.delete(ctl, name).await?;
            }
            self.declare_queue(ctl, name, false).await?;
            let bind = queue::Bind {
                queue: name.as_str().into(),
                exchange: self.exchange.as_str().into(),
                routing_key: self.binding_key(q).into(),
                ..Default::default()
            };
            expect_ok(ctl, AMQPClass::Queue(queue::AMQPMethod::Bind(bind))).await?;
        }
        Ok(())
    }

    /// Messages currently ready in all the queues.
    pub async fn depth(&self, ctl: &mut Conn) -> Result<u64> {
        let mut total = 0;
        for name in &self.queues {
            total += u64::from(self.declare_queue(ctl, name, true).await?);
        }
        Ok(total)
    }

    /// Deletes the queues.
    pub async fn delete_all(&self, ctl: &mut Conn) -> Result<()> {
        for name in &self.queues {
            self.delete(ctl, name).await?;
        }
        Ok(())
    }

    /// Declares one queue (or checks it, `passive`); returns its message count.
    async fn declare_queue(&self, ctl: &mut Conn, name: &str, passive: bool) -> Result<u32> {
        let declare = queue::Declare {
            queue: name.into(),
            passive,
            durable: self.durable,
            ..Default::default()
        };
        match ctl
            .call(
                CHANNEL,
                AMQPClass::Queue(queue::AMQPMethod::Declare(declare)),
            )
            .await?
        {
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => Ok(ok.message_count),
            other => Err(unexpected(&other, "queue.declare-ok")),
        }
    }

    async fn delete(&self, ctl: &mut Conn, name: &str) -> Result<()> {
        let delete = queue::Delete {
            queue: name.into(),
            ..Default::default()
        };
        expect_ok(ctl, AMQPClass::Queue(queue::AMQPMethod::Delete(delete))).await
    }
}

/// Opens the control connection's channel.
pub async fn control(ctl: &mut Conn) -> Result<()> {
    ctl.open_channel(CHANNEL).await
}

/// Calls a method whose reply carries nothing we need, checking it is the `-ok`.
async fn expect_ok(ctl: &mut Conn, method: Method) -> Result<()> {
    let wanted = format!("{method:?}");
    let reply = ctl.call(CHANNEL, method).await?;
    let ok = matches!(
        reply,
        AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(_))
            | AMQPClass::Queue(queue::AMQPMethod::BindOk(_) | queue::AMQPMethod::DeleteOk(_))
    );
    if ok {
        Ok(())
    } else {
        Err(unexpected(&reply, &format!("the reply to {wanted}")))
    }
}
