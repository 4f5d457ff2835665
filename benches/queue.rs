//! Queue microbenchmarks: push, pop and ack through `Queue`'s public API.
//!
//! - `push_get_ack`: one message published to a queue without consumers,
//!   fetched (`basic.get` with manual ack) and settled.
//! - `backlog`: 10,000 messages published, then all fetched and settled, so
//!   the ready list grows and shrinks as with a backlog.
//! - `push_deliver_ack`: one message published to a queue with a consumer
//!   (prefetch 1000), dispatched into the consumer's mailbox, taken out of it
//!   as the connection task would, and settled with its credit released, as
//!   `basic.ack` does.
//!
//! Queues are transient and messages are 16-byte transient messages, as in
//! scenario 1 of the load generator.

use std::hint::black_box;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use warren::broker::mailbox::{ChannelCredit, Credit, Event, Mailbox};
use warren::broker::message::Message;
use warren::broker::queue::{Consumer, Queue, QueueConfig};
use warren::broker::queue_settings::QueueSettings;
use warren::protocol::FieldTable;

const BACKLOG: usize = 10_000;

fn queue() -> Arc<Queue> {
    Queue::new(
        QueueConfig {
            name: Arc::from("bench-queue"),
            vhost: Arc::from("/"),
            durable: false,
            exclusive_owner: None,
            auto_delete: false,
            arguments: FieldTable::default(),
            settings: QueueSettings::default(),
            persistence: None,
        },
        // A queue outside any vhost: nothing here dead-letters.
        Weak::new(),
    )
}

fn message() -> Arc<Message> {
    Arc::new(Message::new(
        Arc::from(""),
        Arc::from("bench-queue"),
        Bytes::from_static(&[0, 0]),
        Bytes::from_static(b"0123456789abcdef"),
    ))
}

fn queue_ops(c: &mut Criterion) {
    let message = message();
    let mut group = c.benchmark_group("queue");

    group.throughput(Throughput::Elements(1));
    group.bench_function("push_get_ack", |b| {
        let queue = queue();
        b.iter(|| {
            queue.publish(message.clone());
            let (taken, _) = queue.get(false).expect("just published");
            queue.settle(std::slice::from_ref(&taken), false);
            black_box(taken);
        });
    });

    group.throughput(Throughput::Elements(BACKLOG as u64));
    group.bench_function("backlog", |b| {
        let queue = queue();
        let mut taken = Vec::with_capacity(BACKLOG);
        b.iter(|| {
            for _ in 0..BACKLOG {
                queue.publish(message.clone());
            }
            while let Some((message, _)) = queue.get(false) {
                taken.push(message);
            }
            queue.settle(&taken, false);
            taken.clear();
        });
    });

    group.throughput(Throughput::Elements(1));
    group.bench_function("push_deliver_ack", |b| {
        let queue = queue();
        let (mailbox, mut events) = Mailbox::new();
        let credit = Arc::new(Credit::new(1000, Arc::new(ChannelCredit::default())));
        queue
            .add_consumer(Consumer {
                tag: Arc::from("bench-consumer"),
                channel: 1,
                connection: 1,
                mailbox: mailbox.clone(),
                credit: credit.clone(),
                no_ack: false,
                exclusive: false,
                priority: 0,
            })
            .expect("the only consumer");
        b.iter(|| {
            queue.publish(message.clone());
            let Ok(Event::Deliver { message, .. }) = events.try_recv() else {
                panic!("the consumer has credit, so the message is delivered at once");
            };
            mailbox.taken(1);
            queue.settle(std::slice::from_ref(&message), false);
            credit.release(1);
            black_box(message);
        });
    });

    group.finish();
}

criterion_group!(benches, queue_ops);
criterion_main!(benches);
