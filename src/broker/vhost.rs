//! A virtual host: its exchanges, queues and bindings, and routing through them.
//!
//! Definitions sit behind one read-write lock: declarations take it for
//! writing, publishes only for reading (to resolve the exchange and the bound
//! queues), and the messages themselves go to the queues after it is released.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};

use crate::auth::{Authorize, Permission, ResourceKind};
use crate::broker::arguments::{QUEUE_EQUIVALENCE_KEYS, assert_equivalent};
use crate::broker::dead_letter::{self, Reason};
use crate::broker::exchange::{Binding, Destination, Exchange, ExchangeConfig, ExchangeKind};
use crate::broker::message::Message;
use crate::broker::names;
use crate::broker::queue::{
    ConnectionId, Enqueued, MessageCounters, Persistence, Queue, QueueConfig, RecoveredMessage,
};
use crate::broker::queue_settings::{DeadLetterTarget, QueueKind, QueueSettings};
use crate::error::{AmqpError, AmqpResult, ReplyCode};
use crate::protocol::FieldTable;
use crate::store::definitions::{
    BindingDefinition, DefinitionStore, ExchangeDefinition, QueueDefinition, VHostDefinitions,
    VHostLimits,
};
use crate::store::record::MessageParts;
use crate::store::record::QueueId;
use crate::store::{Location, Store, Ticket};

/// A virtual host.
pub struct VHost {
    name: Arc<str>,
    /// This vhost, for the queues it creates (dead lettering, expiry).
    me: Weak<VHost>,
    definitions: RwLock<Definitions>,
    /// Direct reply-to pseudo-queues by name; never in the definitions.
    reply_queues: Mutex<HashMap<Arc<str>, Arc<Queue>>>,
    durability: Durability,
    /// The counters of deleted queues, so that the vhost's totals never go back.
    retired: Mutex<MessageCounters>,
}

/// The pseudo-queue an RPC client consumes replies from without declaring a queue.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// What a vhost needs to make its durable objects durable.
#[derive(Clone)]
pub struct Durability {
    /// The message store.
    pub store: Arc<Store>,
    /// The definitions file.
    pub saved: Arc<DefinitionStore>,
    /// Ready messages per durable queue whose bodies stay in memory.
    pub in_memory_limit: usize,
}

impl Durability {
    /// The store link of a new durable queue.
    fn persistence(&self, id: QueueId) -> Persistence {
        Persistence {
            id,
            store: self.store.clone(),
            in_memory_limit: self.in_memory_limit,
        }
    }
}

impl std::fmt::Debug for VHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VHost")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Definitions {
    exchanges: HashMap<Arc<str>, Exchange>,
    queues: HashMap<Arc<str>, Arc<Queue>>,
    limits: VHostLimits,
    /// A durable object or a limit changed since the definitions file was last written.
    unsaved: bool,
}

/// The fields of `exchange.declare` that shape an exchange.
#[derive(Debug, Clone)]
pub struct ExchangeDeclare {
    /// Exchange name.
    pub name: String,
    /// Type name as sent by the client.
    pub kind: String,
    /// Only check that it exists.
    pub passive: bool,
    /// Survives restarts.
    pub durable: bool,
    /// Deleted with its last binding.
    pub auto_delete: bool,
    /// Not publishable by clients.
    pub internal: bool,
    /// Arguments.
    pub arguments: FieldTable,
}

/// The fields of `queue.declare` that shape a queue.
#[derive(Debug, Clone)]
pub struct QueueDeclare {
    /// Queue name; empty asks for a server-generated one.
    pub name: String,
    /// Only check that it exists.
    pub passive: bool,
    /// Survives restarts.
    pub durable: bool,
    /// Owned by the declaring connection.
    pub exclusive: bool,
    /// Deleted with its last consumer.
    pub auto_delete: bool,
    /// Arguments.
    pub arguments: FieldTable,
}

/// What became of a message handed to its queues.
#[derive(Debug, Default)]
pub struct Enqueueing {
    /// The store position confirms must wait for, if the message was stored.
    pub ticket: Option<Ticket>,
    /// A queue that asks its publishers to pause.
    pub crowded: Option<Arc<Queue>>,
    /// A queue refused it (length limit with reject-publish).
    pub rejected: bool,
}

/// What `queue.declare-ok` reports.
#[derive(Debug)]
pub struct DeclaredQueue {
    /// The queue's name.
    pub name: Arc<str>,
    /// Ready messages.
    pub message_count: u32,
    /// Attached consumers.
    pub consumer_count: u32,
}

impl Definitions {
    /// Whether a binding between these ends is saved (both ends durable).
    fn binding_is_durable(&self, source: &str, destination: &Destination) -> bool {
        let exchange_durable =
            |name: &str| self.exchanges.get(name).is_some_and(|x| x.config.durable);
        exchange_durable(source)
            && match destination {
                Destination::Queue(name) => self.queues.get(name).is_some_and(|q| q.config.durable),
                Destination::Exchange(name) => exchange_durable(name),
            }
    }

    /// Deletes an exchange and every binding that leads to it.
    fn remove_exchange(&mut self, name: &str) {
        if let Some(exchange) = self.exchanges.remove(name) {
            self.unsaved |= exchange.config.durable;
            self.remove_bindings_to(Destination::Exchange(exchange.config.name));
        }
    }

    /// Removes every binding to `destination`; auto-delete exchanges left unbound go too.
    fn remove_bindings_to(&mut self, destination: Destination) {
        let mut emptied = Vec::new();
        for (name, exchange) in self.exchanges.iter_mut() {
            if exchange.remove_destination(&destination)
                && exchange.config.auto_delete
                && !exchange.has_bindings()
            {
                emptied.push(name.clone());
            }
        }
        for name in emptied {
            self.remove_exchange(&name);
        }
    }
}

const DEFAULT_EXCHANGES: &[(&str, ExchangeKind)] = &[
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
];

impl VHost {
    /// A vhost with the standard `amq.*` exchanges.
    pub fn new(name: &str, durability: Durability) -> Arc<VHost> {
        let mut definitions = Definitions::default();
        for (name, kind) in DEFAULT_EXCHANGES {
            let config = ExchangeConfig {
                name: Arc::from(*name),
                kind: *kind,
                durable: true,
                auto_delete: false,
                internal: false,
                arguments: FieldTable::default(),
            };
            definitions
                .exchanges
                .insert(config.name.clone(), Exchange::new(config));
        }
        Arc::new_cyclic(|me| VHost {
            name: Arc::from(name),
            me: me.clone(),
            definitions: RwLock::new(definitions),
            reply_queues: Mutex::new(HashMap::new()),
            durability,
            retired: Mutex::default(),
        })
    }

    /// Rebuilds a vhost from its saved definitions; each durable queue takes
    /// its recovered messages out of `messages`.
    pub fn recover(
        name: &str,
        durability: Durability,
        stored: &VHostDefinitions,
        messages: &mut HashMap<QueueId, Vec<RecoveredMessage>>,
    ) -> Arc<VHost> {
        let vhost = VHost::new(name, durability);
        let mut definitions = vhost.definitions.write();
        definitions.limits = stored.limits;
        for x in &stored.exchanges {
            let Ok(kind) = ExchangeKind::parse(&x.kind) else {
                tracing::error!(
                    exchange = x.name,
                    kind = x.kind,
                    "saved exchange has an unknown type; skipped"
                );
                continue;
            };
            let config = ExchangeConfig {
                name: Arc::from(x.name.as_str()),
                kind,
                durable: true,
                auto_delete: x.auto_delete,
                internal: x.internal,
                arguments: x.arguments.clone(),
            };
            definitions
                .exchanges
                .insert(config.name.clone(), Exchange::new(config));
        }
        for q in &stored.queues {
            let settings = QueueSettings::parse(&q.arguments, &vhost.describe("queue", &q.name))
                .unwrap_or_else(|e| {
                    tracing::error!(queue = q.name, error = %e, "saved queue arguments refused; ignored");
                    QueueSettings::default()
                });
            let config = QueueConfig {
                name: Arc::from(q.name.as_str()),
                vhost: vhost.name.clone(),
                durable: true,
                exclusive_owner: None,
                auto_delete: q.auto_delete,
                arguments: q.arguments.clone(),
                settings,
                persistence: Some(vhost.durability.persistence(q.id)),
            };
            let queue = Queue::new(config, vhost.me.clone());
            queue.restore(messages.remove(&q.id).unwrap_or_default());
            definitions.queues.insert(queue.config.name.clone(), queue);
        }
        for b in &stored.bindings {
            let destination = if b.to_exchange {
                Destination::Exchange(Arc::from(b.destination.as_str()))
            } else {
                Destination::Queue(Arc::from(b.destination.as_str()))
            };
            let binding = Binding {
                destination,
                routing_key: Arc::from(b.routing_key.as_str()),
                arguments: b.arguments.clone(),
            };
            if let Some(exchange) = definitions.exchanges.get_mut(b.source.as_str())
                && let Err(e) = exchange.bind(binding)
            {
                tracing::error!(source = b.source, error = %e, "saved binding refused; skipped");
            }
        }
        drop(definitions);
        vhost
    }

    /// Saves the durable part of the definitions if a durable object changed.
    fn persist(&self, definitions: &mut Definitions) {
        if !std::mem::take(&mut definitions.unsaved) {
            return;
        }
        let durable_queue = |name: &str| {
            definitions
                .queues
                .get(name)
                .is_some_and(|q| q.config.durable)
        };
        let durable_exchange = |name: &str| {
            definitions
                .exchanges
                .get(name)
                .is_some_and(|x| x.config.durable)
        };
        let mut saved = VHostDefinitions {
            limits: definitions.limits,
            ..VHostDefinitions::default()
        };
        for exchange in definitions.exchanges.values().filter(|x| x.config.durable) {
            let config = &exchange.config;
            if !DEFAULT_EXCHANGES
                .iter()
                .any(|(name, _)| *name == &*config.name)
            {
                saved.exchanges.push(ExchangeDefinition {
                    name: config.name.to_string(),
                    kind: config.kind.name().to_string(),
                    auto_delete: config.auto_delete,
                    internal: config.internal,
                    arguments: config.arguments.clone(),
                });
            }
            for binding in exchange.bindings() {
                let (to_exchange, destination) = match &binding.destination {
                    Destination::Queue(name) if durable_queue(name) => (false, name),
                    Destination::Exchange(name) if durable_exchange(name) => (true, name),
                    _ => continue,
                };
                saved.bindings.push(BindingDefinition {
                    source: config.name.to_string(),
                    destination: destination.to_string(),
                    to_exchange,
                    routing_key: binding.routing_key.to_string(),
                    arguments: binding.arguments.clone(),
                });
            }
        }
        for queue in definitions.queues.values() {
            if let Some(persistence) = &queue.config.persistence {
                saved.queues.push(QueueDefinition {
                    name: queue.config.name.to_string(),
                    id: persistence.id,
                    auto_delete: queue.config.auto_delete,
                    arguments: queue.config.arguments.clone(),
                });
            }
        }
        // Map iteration order is arbitrary; sorting keeps unchanged definitions equal.
        saved.exchanges.sort_by(|a, b| a.name.cmp(&b.name));
        saved.queues.sort_by(|a, b| a.name.cmp(&b.name));
        saved.bindings.sort_by(|a, b| {
            (&a.source, &a.destination, &a.routing_key).cmp(&(
                &b.source,
                &b.destination,
                &b.routing_key,
            ))
        });
        self.durability.saved.save(&self.name, saved);
    }

    /// The stored messages of durable queues that were delivered before (for a clean shutdown).
    pub fn redelivered_messages(&self) -> Vec<(QueueId, Location)> {
        let definitions = self.definitions.read();
        let mut out = Vec::new();
        for queue in definitions.queues.values() {
            if let Some(persistence) = &queue.config.persistence {
                out.extend(
                    queue
                        .redelivered_locations()
                        .into_iter()
                        .map(|at| (persistence.id, at)),
                );
            }
        }
        out
    }

    /// The message store behind the vhost's durable queues.
    pub fn store(&self) -> &Arc<Store> {
        &self.durability.store
    }

    /// The vhost's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every queue, sorted by name.
    pub fn queues(&self) -> Vec<Arc<Queue>> {
        let mut queues: Vec<Arc<Queue>> =
            self.definitions.read().queues.values().cloned().collect();
        queues.sort_by(|a, b| a.name().cmp(b.name()));
        queues
    }

    /// Every exchange's declared properties, sorted by name.
    pub fn exchanges(&self) -> Vec<ExchangeConfig> {
        let mut exchanges: Vec<ExchangeConfig> = self
            .definitions
            .read()
            .exchanges
            .values()
            .map(|x| x.config.clone())
            .collect();
        exchanges.sort_by(|a, b| a.name.cmp(&b.name));
        exchanges
    }

    /// Every binding with its source exchange, sorted by source, destination and key.
    pub fn bindings(&self) -> Vec<(Arc<str>, Binding)> {
        let definitions = self.definitions.read();
        let mut bindings: Vec<(Arc<str>, Binding)> = definitions
            .exchanges
            .values()
            .flat_map(|x| x.bindings().map(|b| (x.config.name.clone(), b)))
            .collect();
        bindings.sort_by(|(a, x), (b, y)| {
            (a, &x.destination, &x.routing_key).cmp(&(b, &y.destination, &y.routing_key))
        });
        bindings
    }

    /// Message counters of every queue the vhost has had.
    pub fn message_counters(&self) -> MessageCounters {
        let mut total = *self.retired.lock();
        for queue in self.queues() {
            total += queue.stats().counters;
        }
        total
    }

    /// The limits set on the vhost.
    pub fn limits(&self) -> VHostLimits {
        self.definitions.read().limits
    }

    /// Replaces the vhost's limits. Like RabbitMQ, a lower limit only refuses
    /// new connections and queues; existing ones stay.
    pub fn set_limits(&self, limits: VHostLimits) {
        let mut definitions = self.definitions.write();
        definitions.unsaved |= definitions.limits != limits;
        definitions.limits = limits;
        self.persist(&mut definitions);
    }

    /// Deletes every queue (with its messages) and exchange: the vhost is being deleted.
    pub fn delete_everything(&self) {
        let queues: Vec<Arc<Queue>> = self.definitions.read().queues.values().cloned().collect();
        for queue in queues {
            self.remove_queue(&queue);
        }
        for queue in self.reply_queues.lock().drain().map(|(_, q)| q) {
            queue.delete();
        }
        self.definitions.write().exchanges.clear();
    }

    fn describe(&self, kind: &str, name: &str) -> String {
        format!("{kind} '{name}' in vhost '{}'", self.name)
    }

    fn exchange_not_found(&self, name: &str) -> AmqpError {
        AmqpError::not_found(format!("no {}", self.describe("exchange", name)))
    }

    fn queue_not_found(&self, name: &str) -> AmqpError {
        AmqpError::not_found(format!("no {}", self.describe("queue", name)))
    }

    /// Refuses, with RabbitMQ's 403, an operation the default exchange does not allow.
    pub fn check_not_default_exchange(name: &str) -> AmqpResult<()> {
        if name.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        Ok(())
    }

    fn check_name(kind: &str, name: &str) -> AmqpResult<()> {
        if name.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "{kind} name '{name}' contains reserved prefix 'amq.*'"
            )));
        }
        Ok(())
    }

    /// `exchange.declare`: creates the exchange or checks it is equivalent.
    /// As in RabbitMQ, `authorize` is asked for configure on the exchange
    /// (unless passive) and, when an alternate exchange is given for a new
    /// one, for read on the exchange and write on its alternate.
    pub fn declare_exchange(
        &self,
        declare: ExchangeDeclare,
        authorize: &mut dyn Authorize,
    ) -> AmqpResult<()> {
        if declare.passive {
            Self::check_not_default_exchange(&declare.name)?;
            return match self
                .definitions
                .read()
                .exchanges
                .contains_key(declare.name.as_str())
            {
                true => Ok(()),
                false => Err(self.exchange_not_found(&declare.name)),
            };
        }
        let kind = ExchangeKind::parse(&declare.kind)?;
        Self::check_not_default_exchange(&declare.name)?;
        authorize.authorize(ResourceKind::Exchange, &declare.name, Permission::Configure)?;
        let mut definitions = self.definitions.write();
        let Some(existing) = definitions.exchanges.get(declare.name.as_str()) else {
            Self::check_name("exchange", &declare.name)?;
            let config = ExchangeConfig {
                name: Arc::from(declare.name.as_str()),
                kind,
                durable: declare.durable,
                auto_delete: declare.auto_delete,
                internal: declare.internal,
                arguments: declare.arguments,
            };
            let exchange = Exchange::new(config);
            if let Some(alternate) = exchange.alternate_exchange() {
                authorize.authorize(ResourceKind::Exchange, &declare.name, Permission::Read)?;
                authorize.authorize(ResourceKind::Exchange, &alternate, Permission::Write)?;
            }
            definitions.unsaved |= exchange.config.durable;
            definitions
                .exchanges
                .insert(exchange.config.name.clone(), exchange);
            self.persist(&mut definitions);
            return Ok(());
        };
        let current = &existing.config;
        let resource = self.describe("exchange", &declare.name);
        let fields = [
            (
                "type",
                current.kind.name().to_string(),
                kind.name().to_string(),
            ),
            (
                "durable",
                current.durable.to_string(),
                declare.durable.to_string(),
            ),
            (
                "auto_delete",
                current.auto_delete.to_string(),
                declare.auto_delete.to_string(),
            ),
            (
                "internal",
                current.internal.to_string(),
                declare.internal.to_string(),
            ),
        ];
        for (field, current, requested) in fields {
            if current != requested {
                return Err(AmqpError::precondition_failed(format!(
                    "inequivalent arg '{field}' for {resource}: received '{requested}' but current is '{current}'"
                )));
            }
        }
        assert_equivalent(
            &current.arguments,
            &declare.arguments,
            &["alternate-exchange"],
            &resource,
        )
    }

    /// `exchange.delete`; `authorize` is asked for configure on the exchange.
    pub fn delete_exchange(
        &self,
        name: &str,
        if_unused: bool,
        authorize: &mut dyn Authorize,
    ) -> AmqpResult<()> {
        Self::check_not_default_exchange(name)?;
        if name.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "deletion of system {} not allowed",
                self.describe("exchange", name)
            )));
        }
        authorize.authorize(ResourceKind::Exchange, name, Permission::Configure)?;
        let mut definitions = self.definitions.write();
        match definitions.exchanges.get(name) {
            None => Ok(()),
            Some(exchange) if if_unused && exchange.has_bindings() => {
                Err(AmqpError::precondition_failed(format!(
                    "{} in use",
                    self.describe("exchange", name)
                )))
            }
            Some(_) => {
                definitions.remove_exchange(name);
                self.persist(&mut definitions);
                Ok(())
            }
        }
    }

    /// Opens a direct reply-to pseudo-queue for a consuming channel of `connection`.
    pub fn open_reply_queue(&self, connection: ConnectionId) -> Arc<Queue> {
        let token = names::generate("g");
        let name: Arc<str> = Arc::from(format!("{DIRECT_REPLY_TO}.{token}").as_str());
        let config = QueueConfig {
            name: name.clone(),
            vhost: self.name.clone(),
            durable: false,
            exclusive_owner: Some(connection),
            auto_delete: false,
            arguments: FieldTable::default(),
            settings: QueueSettings::default(),
            persistence: None,
        };
        let queue = Queue::new(config, self.me.clone());
        self.reply_queues.lock().insert(name, queue.clone());
        queue
    }

    /// Closes a direct reply-to pseudo-queue; replies sent to it later are unroutable.
    pub fn close_reply_queue(&self, queue: &Arc<Queue>) {
        self.reply_queues.lock().remove(queue.name());
        queue.delete();
    }

    /// `queue.declare`: creates the queue or checks it is equivalent. As in
    /// RabbitMQ, `authorize` is asked for configure on the queue (unless
    /// passive) and, when a new queue names a dead-letter exchange, for read
    /// on the queue and write on that exchange; a new queue must also fit
    /// under the vhost's queue limit.
    pub fn declare_queue(
        &self,
        declare: QueueDeclare,
        connection: ConnectionId,
        authorize: &mut dyn Authorize,
    ) -> AmqpResult<DeclaredQueue> {
        if declare.name.starts_with(DIRECT_REPLY_TO) {
            // As in RabbitMQ, every declaration of a reply-to name is passive,
            // and the pseudo-queue itself always has its one consumer.
            if declare.name == DIRECT_REPLY_TO {
                return Ok(DeclaredQueue {
                    name: Arc::from(DIRECT_REPLY_TO),
                    message_count: 0,
                    consumer_count: 1,
                });
            }
            let queue = self.reply_queues.lock().get(declare.name.as_str()).cloned();
            return queue
                .map(Self::declared)
                .ok_or_else(|| self.queue_not_found(&declare.name));
        }
        if declare.passive {
            let queue = self.queue(&declare.name)?;
            queue.check_access(connection)?;
            queue.touch();
            return Ok(Self::declared(queue));
        }
        let server_named = declare.name.is_empty();
        let name = if server_named {
            names::generate("amq.gen")
        } else {
            Self::check_name("queue", &declare.name)?;
            declare.name
        };
        authorize.authorize(ResourceKind::Queue, &name, Permission::Configure)?;
        let resource = self.describe("queue", &name);
        let owner = declare.exclusive.then_some(connection);
        let durable = declare.durable && !declare.exclusive;
        let mut definitions = self.definitions.write();
        if let Some(queue) = definitions.queues.get(name.as_str()) {
            let config = &queue.config;
            if config.exclusive_owner != owner {
                // RabbitMQ's strict check: the exclusive flag must match too.
                return Err(queue.locked());
            }
            for (field, current, requested) in [
                ("durable", config.durable, durable),
                ("auto_delete", config.auto_delete, declare.auto_delete),
            ] {
                if current != requested {
                    return Err(AmqpError::precondition_failed(format!(
                        "inequivalent arg '{field}' for {resource}: received '{requested}' but current is '{current}'"
                    )));
                }
            }
            assert_equivalent(
                &config.arguments,
                &declare.arguments,
                QUEUE_EQUIVALENCE_KEYS,
                &resource,
            )?;
            queue.touch();
            return Ok(Self::declared(queue.clone()));
        }
        if let Some(max) = definitions.limits.max_queues
            && definitions.queues.len() >= max as usize
        {
            return Err(AmqpError::precondition_failed(format!(
                "cannot declare queue '{name}': queue limit in vhost '{}' ({max}) is reached",
                self.name
            )));
        }
        // As in RabbitMQ, arguments are validated only when the queue is created.
        let settings = QueueSettings::parse(&declare.arguments, &resource)?;
        if let Some(target) = &settings.dead_letter {
            authorize.authorize(ResourceKind::Queue, &name, Permission::Read)?;
            authorize.authorize(ResourceKind::Exchange, &target.exchange, Permission::Write)?;
        }
        if settings.kind == QueueKind::Quorum {
            if server_named {
                return Err(AmqpError::precondition_failed(
                    "Cannot declare a server-named queue for type rabbit_quorum_queue",
                ));
            }
            // RabbitMQ's quorum queue property checks, in its order.
            for (invalid, property) in [
                (declare.auto_delete, "auto-delete"),
                (declare.exclusive, "exclusive-owner"),
                (!declare.durable, "non-durable"),
            ] {
                if invalid {
                    return Err(AmqpError::precondition_failed(format!(
                        "invalid property '{property}' for {resource}"
                    )));
                }
            }
        }
        let persistence = durable.then(|| {
            self.durability
                .persistence(self.durability.saved.next_queue_id())
        });
        let config = QueueConfig {
            name: Arc::from(name.as_str()),
            vhost: self.name.clone(),
            durable,
            exclusive_owner: owner,
            auto_delete: declare.auto_delete,
            arguments: declare.arguments,
            settings,
            persistence,
        };
        let queue = Queue::new(config, self.me.clone());
        definitions
            .queues
            .insert(queue.config.name.clone(), queue.clone());
        definitions.unsaved |= durable;
        self.persist(&mut definitions);
        Ok(Self::declared(queue))
    }

    fn declared(queue: Arc<Queue>) -> DeclaredQueue {
        DeclaredQueue {
            name: queue.config.name.clone(),
            message_count: queue.message_count(),
            consumer_count: queue.consumer_count(),
        }
    }

    /// Looks a queue up, or fails with RabbitMQ's 404.
    pub fn queue(&self, name: &str) -> AmqpResult<Arc<Queue>> {
        self.definitions
            .read()
            .queues
            .get(name)
            .cloned()
            .ok_or_else(|| self.queue_not_found(name))
    }

    /// Looks a queue up and checks the connection may use it.
    pub fn queue_for(&self, name: &str, connection: ConnectionId) -> AmqpResult<Arc<Queue>> {
        let queue = self.queue(name)?;
        queue.check_access(connection)?;
        Ok(queue)
    }

    /// `queue.delete`: returns the number of messages deleted.
    pub fn delete_queue(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
        connection: ConnectionId,
    ) -> AmqpResult<u32> {
        let Ok(queue) = self.queue(name) else {
            return Ok(0);
        };
        queue.check_access(connection)?;
        if if_unused && queue.in_use() {
            return Err(AmqpError::precondition_failed(format!(
                "{} in use",
                self.describe("queue", name)
            )));
        }
        if if_empty && queue.message_count() > 0 {
            return Err(AmqpError::precondition_failed(format!(
                "{} not empty",
                self.describe("queue", name)
            )));
        }
        Ok(self.remove_queue(&queue))
    }

    /// Removes a queue with its bindings; returns its ready count.
    pub fn remove_queue(&self, queue: &Arc<Queue>) -> u32 {
        let mut definitions = self.definitions.write();
        match definitions.queues.get(queue.name()) {
            Some(current) if Arc::ptr_eq(current, queue) => {}
            _ => return 0,
        }
        definitions.queues.remove(queue.name());
        definitions.unsaved |= queue.config.durable;
        definitions.remove_bindings_to(Destination::Queue(queue.config.name.clone()));
        self.persist(&mut definitions);
        *self.retired.lock() += queue.stats().counters;
        queue.delete()
    }

    /// Deletes the exclusive queues of a closing connection.
    pub fn drop_exclusive_queues(&self, connection: ConnectionId) {
        let owned: Vec<Arc<Queue>> = self
            .definitions
            .read()
            .queues
            .values()
            .filter(|q| q.config.exclusive_owner == Some(connection))
            .cloned()
            .collect();
        for queue in owned {
            self.remove_queue(&queue);
        }
    }

    /// `queue.bind` and `exchange.bind`: binds `destination` to the exchange `source`.
    pub fn bind(
        &self,
        source: &str,
        destination: Destination,
        routing_key: &str,
        arguments: FieldTable,
        connection: ConnectionId,
    ) -> AmqpResult<()> {
        let mut definitions = self.definitions.write();
        let durable = definitions.binding_is_durable(source, &destination);
        let exchange = self.binding_source(&mut definitions, source, &destination, connection)?;
        exchange.bind(Binding {
            destination,
            routing_key: Arc::from(routing_key),
            arguments,
        })?;
        definitions.unsaved |= durable;
        self.persist(&mut definitions);
        Ok(())
    }

    /// `queue.unbind` and `exchange.unbind`. As in RabbitMQ, removing what is
    /// not bound succeeds, even when either end does not exist.
    pub fn unbind(
        &self,
        source: &str,
        destination: Destination,
        routing_key: &str,
        arguments: FieldTable,
        connection: ConnectionId,
    ) -> AmqpResult<()> {
        let mut definitions = self.definitions.write();
        let durable = definitions.binding_is_durable(source, &destination);
        let exchange = match self.binding_source(&mut definitions, source, &destination, connection)
        {
            Err(e) if e.code == ReplyCode::NotFound => return Ok(()),
            found => found?,
        };
        let binding = Binding {
            destination,
            routing_key: Arc::from(routing_key),
            arguments,
        };
        let removed = exchange.unbind(&binding);
        if removed && exchange.config.auto_delete && !exchange.has_bindings() {
            let name = exchange.config.name.clone();
            definitions.remove_exchange(&name);
        }
        definitions.unsaved |= removed && durable;
        self.persist(&mut definitions);
        Ok(())
    }

    /// Checks both ends of a binding, in RabbitMQ's order, and returns the source exchange.
    fn binding_source<'d>(
        &self,
        definitions: &'d mut Definitions,
        source: &str,
        destination: &Destination,
        connection: ConnectionId,
    ) -> AmqpResult<&'d mut Exchange> {
        if let Destination::Exchange(name) = destination {
            Self::check_not_default_exchange(name)?;
        }
        Self::check_not_default_exchange(source)?;
        if !definitions.exchanges.contains_key(source) {
            return Err(self.exchange_not_found(source));
        }
        match destination {
            Destination::Queue(name) => match definitions.queues.get(name) {
                Some(queue) => queue.check_access(connection)?,
                None => return Err(self.queue_not_found(name)),
            },
            Destination::Exchange(name) => {
                if !definitions.exchanges.contains_key(name) {
                    return Err(self.exchange_not_found(name));
                }
            }
        }
        Ok(definitions
            .exchanges
            .get_mut(source)
            .expect("checked above"))
    }

    /// Hands a routed message to its queues, storing it first if it is
    /// persistent and reaches durable queues.
    pub fn enqueue(&self, mut message: Message, queues: &[Arc<Queue>]) -> Enqueueing {
        let durable: Vec<QueueId> = queues
            .iter()
            .filter_map(|q| q.config.persistence.as_ref().map(|p| p.id))
            .collect();
        let mut outcome = Enqueueing::default();
        if !durable.is_empty() && message.is_persistent() {
            let parts = MessageParts {
                exchange: &message.exchange,
                routing_key: &message.routing_key,
                properties: &message.properties,
                body: &message.body,
                expires_at_ms: message.expires_at_unix_ms(),
            };
            let (location, written) = self.store().publish(&durable, &parts);
            message.stored = Some(location);
            outcome.ticket = Some(written);
        }
        let message = Arc::new(message);
        for queue in queues {
            match queue.publish(message.clone()) {
                Enqueued::Accepted => {}
                Enqueued::Crowded => outcome.crowded = Some(queue.clone()),
                Enqueued::Rejected => outcome.rejected = true,
            }
        }
        outcome
    }

    /// Republishes a message that died in `queue` to its dead-letter exchange.
    /// A missing exchange drops it, and so does a queue it would reach by
    /// going round a cycle of automatic deaths, as in RabbitMQ.
    pub fn dead_letter(
        &self,
        queue: &str,
        target: &DeadLetterTarget,
        message: &Message,
        reason: Reason,
    ) {
        let dead = dead_letter::dead_lettered(message, reason, queue, target);
        let mut queues = Vec::new();
        // Without a dead-letter routing key the copy goes by all its original keys.
        let sender_keys = match target.routing_key {
            Some(_) => Vec::new(),
            None => dead.all_routing_keys().split_off(1),
        };
        if self
            .resolve(&target.exchange, &dead, &sender_keys, &mut queues, false)
            .is_err()
        {
            return;
        }
        queues.retain(|q| {
            let cycle = dead_letter::is_cycle(&dead, q.name());
            if cycle {
                tracing::warn!(
                    from = queue,
                    to = q.name(),
                    "dead-letter cycle; message dropped"
                );
            }
            !cycle
        });
        if !queues.is_empty() {
            self.enqueue(dead, &queues);
        }
    }

    /// Resolves the queues a message a client publishes to `exchange` reaches,
    /// by its routing key and the `CC`/`BCC` keys in `sender_keys`.
    pub fn route(
        &self,
        exchange: &str,
        message: &Message,
        sender_keys: &[String],
        out: &mut Vec<Arc<Queue>>,
    ) -> AmqpResult<()> {
        self.resolve(exchange, message, sender_keys, out, true)
    }

    /// Resolves the queues a message reaches; only clients are kept off internal exchanges.
    fn resolve(
        &self,
        exchange: &str,
        message: &Message,
        sender_keys: &[String],
        out: &mut Vec<Arc<Queue>>,
        from_client: bool,
    ) -> AmqpResult<()> {
        let definitions = self.definitions.read();
        let keys =
            || std::iter::once(&*message.routing_key).chain(sender_keys.iter().map(String::as_str));
        if exchange.is_empty() {
            for key in keys() {
                match definitions.queues.get(key) {
                    Some(queue) => out.push(queue.clone()),
                    None if key.starts_with(DIRECT_REPLY_TO) => {
                        out.extend(self.reply_queues.lock().get(key).cloned());
                    }
                    None => {}
                }
            }
            if !sender_keys.is_empty() {
                dedup_queues(out);
            }
            return Ok(());
        }
        let Some(exchange) = definitions.exchanges.get(exchange) else {
            return Err(self.exchange_not_found(exchange));
        };
        if from_client && exchange.config.internal {
            return Err(AmqpError::access_refused(format!(
                "cannot publish to internal {}",
                self.describe("exchange", &exchange.config.name)
            )));
        }
        // Follow exchange-to-exchange bindings breadth-first, visiting each exchange once.
        let mut visited = vec![exchange.config.name.clone()];
        let mut next = 0;
        let mut destinations = Vec::new();
        let mut queues = Vec::new();
        while let Some(name) = visited.get(next) {
            next += 1;
            let Some(exchange) = definitions.exchanges.get(name) else {
                continue;
            };
            for key in keys() {
                exchange.route(message, key, &mut destinations);
            }
            if destinations.is_empty()
                && let Some(alternate) = exchange.alternate_exchange()
            {
                destinations.push(Destination::Exchange(alternate));
            }
            for destination in destinations.drain(..) {
                match destination {
                    Destination::Queue(queue) => queues.push(queue),
                    Destination::Exchange(exchange) => {
                        if !visited.contains(&exchange) {
                            visited.push(exchange);
                        }
                    }
                }
            }
        }
        queues.sort_unstable();
        queues.dedup();
        out.extend(
            queues
                .iter()
                .filter_map(|name| definitions.queues.get(name).cloned()),
        );
        Ok(())
    }
}

/// Removes repeated queues, keeping the first of each.
fn dedup_queues(queues: &mut Vec<Arc<Queue>>) {
    let mut seen = std::collections::HashSet::new();
    queues.retain(|q| seen.insert(Arc::as_ptr(q)));
}
