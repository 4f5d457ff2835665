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
    /// Every binding, by destination and key; RabbitMQ tells bindings that
    /// differ only in their arguments apart, so each key holds a list of them.
    bindings: HashMap<(Destination, Arc<str>), Vec<FieldTable>>,
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
            bindings: HashMap::new(),
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
    pub fn bindings(&self) -> impl Iterator<Item = Binding> + '_ {
        self.bindings
            .iter()
            .flat_map(|((destination, key), variants)| {
                variants.iter().map(|arguments| Binding {
                    destination: destination.clone(),
                    routing_key: key.clone(),
                    arguments: arguments.clone(),
                })
            })
    }

    /// Whether the exchange is bound to anything.
    pub fn has_bindings(&self) -> bool {
        !self.bindings.is_empty()
    }

    /// Adds a binding (a no-op if it exists). Headers bindings may be refused.
    pub fn bind(&mut self, binding: Binding) -> AmqpResult<()> {
        let key = (binding.destination.clone(), binding.routing_key.clone());
        let variants = self.bindings.get(&key);
        if variants.is_some_and(|v| v.contains(&binding.arguments)) {
            return Ok(());
        }
        let first_for_key = variants.is_none();
        let destination = binding.destination;
        match &mut self.index {
            RoutingIndex::Direct(map) if first_for_key => map
                .entry(binding.routing_key)
                .or_default()
                .push(destination),
            RoutingIndex::Fanout(destinations) if first_for_key => destinations.push(destination),
            RoutingIndex::Topic(trie) if first_for_key => {
                trie.bind(&binding.routing_key, destination);
            }
            RoutingIndex::Headers(matchers) => {
                let matcher = HeadersBinding::parse(&binding.arguments)
                    .map_err(AmqpError::precondition_failed)?;
                matchers.push((matcher, destination));
            }
            _ => {}
        }
        self.bindings
            .entry(key)
            .or_default()
            .push(binding.arguments);
        Ok(())
    }

    /// Removes a binding; false if there was none.
    pub fn unbind(&mut self, binding: &Binding) -> bool {
        let key = (binding.destination.clone(), binding.routing_key.clone());
        let Some(variants) = self.bindings.get_mut(&key) else {
            return false;
        };
        let Some(at) = variants.iter().position(|a| *a == binding.arguments) else {
            return false;
        };
        variants.swap_remove(at);
        if variants.is_empty() {
            self.bindings.remove(&key);
            self.unindex(&key);
        }
        if let RoutingIndex::Headers(_) = self.index {
            self.rebuild_headers();
        }
        true
    }

    /// Removes every binding to `destination`; true if there were any.
    pub fn remove_destination(&mut self, destination: &Destination) -> bool {
        let keys: Vec<(Destination, Arc<str>)> = self
            .bindings
            .keys()
            .filter(|(d, _)| d == destination)
            .cloned()
            .collect();
        for key in &keys {
            self.bindings.remove(key);
            self.unindex(key);
        }
        if let RoutingIndex::Headers(_) = self.index {
            self.rebuild_headers();
        }
        !keys.is_empty()
    }

    /// Takes a (destination, key) pair with no bindings left out of the routing index.
    fn unindex(&mut self, (destination, key): &(Destination, Arc<str>)) {
        match &mut self.index {
            RoutingIndex::Direct(map) => {
                if let Some(destinations) = map.get_mut(key) {
                    destinations.retain(|d| d != destination);
                    if destinations.is_empty() {
                        map.remove(key);
                    }
                }
            }
            RoutingIndex::Fanout(destinations) => {
                if let Some(at) = destinations.iter().position(|d| d == destination) {
                    destinations.swap_remove(at);
                }
            }
            RoutingIndex::Topic(trie) => {
                trie.unbind(key, destination);
            }
            RoutingIndex::Headers(_) => {}
        }
    }

    /// Headers exchanges carry few bindings; rebuilding their matchers is simplest.
    fn rebuild_headers(&mut self) {
        let matchers = self
            .bindings()
            .filter_map(|b| Some((HeadersBinding::parse(&b.arguments).ok()?, b.destination)))
            .collect();
        self.index = RoutingIndex::Headers(matchers);
    }

    /// Appends the destinations `message` routes to by `routing_key` (possibly repeated).
    pub fn route(&self, message: &Message, routing_key: &str, out: &mut Vec<Destination>) {
        match &self.index {
            RoutingIndex::Direct(map) => {
                if let Some(queues) = map.get(routing_key) {
                    out.extend(queues.iter().cloned());
                }
            }
            RoutingIndex::Fanout(destinations) => out.extend(destinations.iter().cloned()),
            RoutingIndex::Topic(trie) => trie.route(routing_key, out),
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
