//! Topic routing microbenchmarks with 10,000 and 1,000,000 bindings.
//!
//! Two levels are measured: the exchange's routing index alone
//! (`Exchange::route`), and the whole publish-time resolution in a vhost
//! (`VHost::route`: the definitions read lock, the index walk, deduplication
//! and the lookup of the bound queues), which is what one `basic.publish` costs
//! before its message reaches the queues.
//!
//! Binding `i` has the words `r<i mod 100>`, `s<i/100 mod 100>` and
//! `t<i/10,000>`, which together are unique, and leads to queue
//! `q<i mod 10,007>`. Regions ending in 9 bind with `*` as their middle word,
//! and regions 4, 24, 44, … with `#` as their last: 80 % of the bindings are
//! literal, 10 % use `*`, 10 % `#`. With a prime number of queues, bindings
//! that share a wildcard pattern never share a queue, so a wildcard pattern
//! with 1,000,000 bindings leads to 100 queues.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use warren::auth::{Authorize, DefaultUser, Permission, ResourceKind};
use warren::broker::Broker;
use warren::broker::exchange::{Binding, Destination, Exchange, ExchangeConfig, ExchangeKind};
use warren::broker::message::Message;
use warren::broker::vhost::{ExchangeDeclare, QueueDeclare, VHost};
use warren::error::AmqpResult;
use warren::protocol::FieldTable;
use warren::store::SyncPolicy;

const BINDING_COUNTS: [usize; 2] = [10_000, 1_000_000];
const QUEUES: usize = 10_007;
const EXCHANGE: &str = "bench-topic";
/// An arbitrary connection id: nothing in these benchmarks is exclusive.
const CONNECTION: u64 = 1;

/// The pattern of binding `i` (see the module comment).
fn pattern(i: usize) -> String {
    let (region, sector, leaf) = (i % 100, i / 100 % 100, i / 10_000);
    if region % 10 == 9 {
        format!("r{region}.*.t{leaf}")
    } else if region % 20 == 4 {
        format!("r{region}.s{sector}.#")
    } else {
        format!("r{region}.s{sector}.t{leaf}")
    }
}

/// Routing keys measured, with the destinations each reaches.
fn keys(bindings: usize) -> [(&'static str, String, usize); 3] {
    let leaf = (bindings - 1) / 10_000;
    [
        // One literal binding.
        ("one", format!("r1.s2.t{leaf}"), 1),
        // The 100 bindings of `r9.*.t<leaf>`.
        ("hundred", format!("r9.s2.t{leaf}"), 100),
        ("none", "unbound.key.t1".to_string(), 0),
    ]
}

fn queue_name(i: usize) -> String {
    format!("q{}", i % QUEUES)
}

fn message(routing_key: &str) -> Message {
    Message::new(
        Arc::from(EXCHANGE),
        Arc::from(routing_key),
        bytes::Bytes::from_static(&[0, 0]),
        bytes::Bytes::from_static(b"0123456789abcdef"),
    )
}

/// The benchmark declares as a user with every permission.
struct Unrestricted;

impl Authorize for Unrestricted {
    fn authorize(&mut self, _: ResourceKind, _: &str, _: Permission) -> AmqpResult<()> {
        Ok(())
    }
}

fn exchange_with(bindings: usize) -> Exchange {
    let mut exchange = Exchange::new(ExchangeConfig {
        name: Arc::from(EXCHANGE),
        kind: ExchangeKind::Topic,
        durable: false,
        auto_delete: false,
        internal: false,
        arguments: FieldTable::default(),
    });
    for i in 0..bindings {
        exchange
            .bind(Binding {
                destination: Destination::Queue(Arc::from(queue_name(i))),
                routing_key: Arc::from(pattern(i)),
                arguments: FieldTable::default(),
            })
            .expect("topic bindings are never refused");
    }
    exchange
}

fn vhost_with(broker: &Broker, bindings: usize) -> Arc<VHost> {
    let vhost = broker.vhost("/").expect("the default vhost");
    vhost
        .declare_exchange(
            ExchangeDeclare {
                name: EXCHANGE.to_string(),
                kind: "topic".to_string(),
                passive: false,
                durable: false,
                auto_delete: false,
                internal: false,
                arguments: FieldTable::default(),
            },
            &mut Unrestricted,
        )
        .expect("declare the exchange");
    for i in 0..QUEUES.min(bindings) {
        let declare = QueueDeclare {
            name: queue_name(i),
            passive: false,
            durable: false,
            exclusive: false,
            auto_delete: false,
            arguments: FieldTable::default(),
        };
        vhost
            .declare_queue(declare, CONNECTION, &mut Unrestricted)
            .expect("declare");
    }
    for i in 0..bindings {
        let queue = Destination::Queue(Arc::from(queue_name(i)));
        vhost
            .bind(
                EXCHANGE,
                queue,
                &pattern(i),
                FieldTable::default(),
                CONNECTION,
            )
            .expect("bind");
    }
    vhost
}

fn routing(c: &mut Criterion) {
    let data_dir = std::env::temp_dir().join(format!("warren-bench-{}", std::process::id()));
    let mut group = c.benchmark_group("topic");
    for bindings in BINDING_COUNTS {
        let keys = keys(bindings).map(|(name, key, reaches)| (name, message(&key), reaches));

        let exchange = exchange_with(bindings);
        let mut out = Vec::new();
        for (name, message, reaches) in &keys {
            out.clear();
            exchange.route(message, message.routing_key.as_ref(), &mut out);
            assert_eq!(out.len(), *reaches, "key '{name}'");
            group.bench_function(
                BenchmarkId::new(format!("exchange/{name}"), bindings),
                |b| {
                    b.iter(|| {
                        out.clear();
                        exchange.route(black_box(message), message.routing_key.as_ref(), &mut out);
                        black_box(&out);
                    });
                },
            );
        }
        drop(exchange);

        // A fresh broker per size, so the smaller run's queues do not linger.
        let broker = Broker::open(
            &data_dir.join(bindings.to_string()),
            &DefaultUser {
                name: "guest".to_string(),
                password: "guest".to_string(),
            },
            SyncPolicy::EveryBatch,
            usize::MAX,
            0,
            u64::MAX,
        )
        .expect("open a broker in a temp dir");
        let vhost = vhost_with(&broker, bindings);
        let mut queues = Vec::new();
        for (name, message, reaches) in keys.iter().filter(|(_, _, reaches)| *reaches > 0) {
            queues.clear();
            vhost.route(EXCHANGE, message, &[], &mut queues).unwrap();
            assert_eq!(queues.len(), *reaches, "key '{name}'");
            group.bench_function(BenchmarkId::new(format!("vhost/{name}"), bindings), |b| {
                b.iter(|| {
                    queues.clear();
                    vhost
                        .route(EXCHANGE, black_box(message), &[], &mut queues)
                        .unwrap();
                    black_box(&queues);
                });
            });
        }
        drop(vhost);
        broker.shutdown();
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&data_dir);
}

criterion_group!(benches, routing);
criterion_main!(benches);
