//! Exchanges and their bindings.
//!
//! An exchange keeps every binding (for listing, unbinding and equivalence)
//! and a routing index shaped for its type: a hash map for direct, a list for
//! fanout, a trie for topic, parsed matchers for headers.

use std::collections::HashMap;
use std::sync::Arc;

use crate::broker::headers::HeadersBinding;
use crate::broker::message::Message;
use crate::broker::topic::TopicIndex;
use crate::error::{AmqpError, AmqpResult};
use crate::protocol::{AMQPValue, FieldTable};

/// The routing algorithm of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    /// Routing key equals binding key.
    Direct,
    /// Every binding.
    Fanout,
    /// Dot-separated patterns with `*` and `#`.
    Topic,
    /// Matching on message headers.
    Headers,
}

impl ExchangeKind {
    /// Parses a type name as `exchange.declare` carries it.
    pub fn parse(name: &str) -> AmqpResult<ExchangeKind> {
        match name {
            "direct" => Ok(ExchangeKind::Direct),
            "fanout" => Ok(ExchangeKind::Fanout),
            "topic" => Ok(ExchangeKind::Topic),
            "headers" => Ok(ExchangeKind::Headers),
            other => Err(AmqpError::precondition_failed(format!(
                "unknown exchange type '{other}'"
            ))),
        }
    }

    /// The type name.
    pub fn name(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }
}

/// Declared properties of an exchange.
#[derive(Debug, Clone)]
pub struct ExchangeConfig {
    /// Exchange name.
    pub name: Arc<str>,
    /// Routing algorithm.
    pub kind: ExchangeKind,
    /// Survives a broker restart.
    pub durable: bool,
    /// Deleted when its last binding goes.
    pub auto_delete: bool,
    /// Not publishable by clients.
    pub internal: bool,
    /// Declared arguments.
    pub arguments: FieldTable,
}

/// Where a binding leads: a queue, or another exchange (RabbitMQ's exchange-to-exchange bindings).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    /// A queue, by name.
    Queue(Arc<str>),
    /// An exchange, by name.
    Exchange(Arc<str>),
}

/// A binding from an exchange to a destination.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// Where matching messages go.
    pub destination: Destination,
    /// Binding key.
    pub routing_key: Arc<str>,
    /// Binding arguments.
    pub arguments: FieldTable,
}

/// An exchange with its bindings.
#[derive(Debug)]
pub struct Exchange {
    /// The exchange's declared properties.
    pub config: ExchangeConfig,
    bindings: Vec<Binding>,
    index: RoutingIndex,
}

#[derive(Debug)]
enum RoutingIndex {
    Direct(HashMap<Arc<str>, Vec<Destination>>),
    Fanout(Vec<Destination>),
    Topic(TopicIndex<Destination>),
    Headers(Vec<(HeadersBinding, Destination)>),
}

impl Exchange {
    /// A new exchange without bindings.
    pub fn new(config: ExchangeConfig) -> Exchange {
        let index = match config.kind {
            ExchangeKind::Direct => RoutingIndex::Direct(HashMap::new()),
            ExchangeKind::Fanout => RoutingIndex::Fanout(Vec::new()),
            ExchangeKind::Topic => RoutingIndex::Topic(TopicIndex::new()),
            ExchangeKind::Headers => RoutingIndex::Headers(Vec::new()),
        };
        Exchange {
            config,
            bindings: Vec::new(),
            index,
        }
    }

    /// The `alternate-exchange` argument: where messages go that route nowhere.
    pub fn alternate_exchange(&self) -> Option<Arc<str>> {
        match self.config.arguments.inner().get("alternate-exchange")? {
            AMQPValue::LongString(name) => {
                Some(Arc::from(String::from_utf8_lossy(name.as_bytes())))
            }
            AMQPValue::ShortString(name) => Some(Arc::from(name.as_str())),
            _ => None,
        }
    }

    /// Every binding of the exchange.
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// Whether the exchange is bound to anything.
    pub fn has_bindings(&self) -> bool {
        !self.bindings.is_empty()
    }

    /// Adds a binding (a no-op if it exists). Headers bindings may be refused.
    pub fn bind(&mut self, binding: Binding) -> AmqpResult<()> {
        if self.bindings.contains(&binding) {
            return Ok(());
        }
        let destination = binding.destination.clone();
        match &mut self.index {
            RoutingIndex::Direct(map) => map
                .entry(binding.routing_key.clone())
                .or_default()
                .push(destination),
            RoutingIndex::Fanout(queues) => queues.push(destination),
            RoutingIndex::Topic(trie) => {
                trie.bind(&binding.routing_key, destination);
            }
            RoutingIndex::Headers(matchers) => {
                let matcher = HeadersBinding::parse(&binding.arguments)
                    .map_err(AmqpError::precondition_failed)?;
                matchers.push((matcher, destination));
            }
        }
        self.bindings.push(binding);
        Ok(())
    }

    /// Removes a binding; false if there was none.
    pub fn unbind(&mut self, binding: &Binding) -> bool {
        let Some(at) = self.bindings.iter().position(|b| b == binding) else {
            return false;
        };
        self.bindings.swap_remove(at);
        self.rebuild_entry(binding);
        true
    }

    /// Removes every binding to `destination`; true if there were any.
    pub fn remove_destination(&mut self, destination: &Destination) -> bool {
        let removed: Vec<Binding> = self
            .bindings
            .iter()
            .filter(|b| b.destination == *destination)
            .cloned()
            .collect();
        self.bindings.retain(|b| b.destination != *destination);
        for binding in &removed {
            self.rebuild_entry(binding);
        }
        !removed.is_empty()
    }

    /// Updates the index after `removed` left the binding list.
    fn rebuild_entry(&mut self, removed: &Binding) {
        let still_bound = |key: &str, bindings: &[Binding]| {
            bindings
                .iter()
                .any(|b| b.destination == removed.destination && &*b.routing_key == key)
        };
        match &mut self.index {
            RoutingIndex::Direct(map) => {
                if !still_bound(&removed.routing_key, &self.bindings)
                    && let Some(queues) = map.get_mut(&removed.routing_key)
                {
                    queues.retain(|d| *d != removed.destination);
                    if queues.is_empty() {
                        map.remove(&removed.routing_key);
                    }
                }
            }
            RoutingIndex::Fanout(destinations) => {
                if let Some(at) = destinations.iter().position(|d| *d == removed.destination) {
                    destinations.swap_remove(at);
                }
            }
            RoutingIndex::Topic(trie) => {
                if !still_bound(&removed.routing_key, &self.bindings) {
                    trie.unbind(&removed.routing_key, &removed.destination);
                }
            }
            RoutingIndex::Headers(matchers) => {
                // Headers exchanges carry few bindings; rebuilding is simplest.
                *matchers = self
                    .bindings
                    .iter()
                    .filter_map(|b| {
                        Some((
                            HeadersBinding::parse(&b.arguments).ok()?,
                            b.destination.clone(),
                        ))
                    })
                    .collect();
            }
        }
    }

    /// Appends the destinations `message` routes to (possibly repeated).
    pub fn route(&self, message: &Message, out: &mut Vec<Destination>) {
        match &self.index {
            RoutingIndex::Direct(map) => {
                if let Some(queues) = map.get(&*message.routing_key) {
                    out.extend(queues.iter().cloned());
                }
            }
            RoutingIndex::Fanout(destinations) => out.extend(destinations.iter().cloned()),
            RoutingIndex::Topic(trie) => trie.route(&message.routing_key, out),
            RoutingIndex::Headers(matchers) => {
                if matchers.is_empty() {
                    return;
                }
                let headers = message.headers();
                for (matcher, destination) in matchers {
                    if matcher.matches(headers.as_ref()) {
                        out.push(destination.clone());
                    }
                }
            }
        }
    }
}
