//! Frame codec microbenchmarks: `basic.publish` and `basic.deliver` with their
//! content, encoded and decoded through `warren::protocol`.
//!
//! The broker decodes publishes and encodes deliveries; the other two
//! directions are what a client does, measured with the same helpers for
//! comparison. Decoding starts by copying the wire bytes into the read buffer,
//! which stands in for the socket read that fills it in the broker.

use std::hint::black_box;

use amq_protocol::protocol::{AMQPClass, basic};
use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use warren::protocol::encode;
use warren::protocol::frame::{decode_content_header, decode_method, split_frame};

/// Frame size limit offered by Warren (and RabbitMQ) by default.
const FRAME_MAX: u32 = 131_072;
/// Body sizes measured: scenario 1's 16 B and scenario 2's 1 KiB.
const BODY_SIZES: [usize; 2] = [16, 1024];

/// Encoded properties as a typical client sends them: content-type
/// `application/octet-stream` and delivery-mode 1.
fn properties() -> Vec<u8> {
    let content_type = b"application/octet-stream";
    let mut p = vec![0x90, 0x00, content_type.len() as u8];
    p.extend_from_slice(content_type);
    p.push(1);
    p
}

fn publish_method() -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: "warren-perf-direct".into(),
        routing_key: "perf.0".into(),
        mandatory: false,
        immediate: false,
    }))
}

fn encode_publish(out: &mut BytesMut, properties: &[u8], body: &[u8]) {
    encode::method(out, 1, &publish_method());
    encode::content(out, 1, properties, body, FRAME_MAX);
}

fn encode_deliver(out: &mut BytesMut, tag: u64, properties: &[u8], body: &[u8]) {
    encode::deliver(
        out,
        1,
        "amq.ctag-4Jx2kX0oWcD9nqAf7c3z2w",
        tag,
        false,
        "warren-perf-direct",
        "perf.0",
    );
    encode::content(out, 1, properties, body, FRAME_MAX);
}

/// Splits one message (method, header, body frames) off `buf` and decodes
/// the method and the header, as the broker's read loop does.
fn decode_message(buf: &mut BytesMut) {
    let method = split_frame(buf, FRAME_MAX).unwrap().unwrap();
    black_box(decode_method(&method.payload).unwrap());
    let header = split_frame(buf, FRAME_MAX).unwrap().unwrap();
    black_box(decode_content_header(&header.payload).unwrap());
    let body = split_frame(buf, FRAME_MAX).unwrap().unwrap();
    black_box(body.payload);
}

fn frames(c: &mut Criterion) {
    let properties = properties();
    let mut group = c.benchmark_group("frames");
    group.throughput(Throughput::Elements(1));
    for size in BODY_SIZES {
        let body = vec![0x5a; size];
        group.bench_with_input(
            BenchmarkId::new("encode_publish", size),
            &body,
            |b, body| {
                let mut out = BytesMut::with_capacity(64 * 1024);
                b.iter(|| {
                    out.clear();
                    encode_publish(&mut out, &properties, black_box(body));
                    black_box(&out);
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("decode_publish", size),
            &body,
            |b, body| {
                let mut wire = BytesMut::new();
                encode_publish(&mut wire, &properties, body);
                let mut buf = BytesMut::with_capacity(64 * 1024);
                b.iter(|| {
                    buf.extend_from_slice(black_box(&wire));
                    decode_message(&mut buf);
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("encode_deliver", size),
            &body,
            |b, body| {
                let mut out = BytesMut::with_capacity(64 * 1024);
                let mut tag = 0;
                b.iter(|| {
                    out.clear();
                    tag += 1;
                    encode_deliver(&mut out, tag, &properties, black_box(body));
                    black_box(&out);
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("decode_deliver", size),
            &body,
            |b, body| {
                let mut wire = BytesMut::new();
                encode_deliver(&mut wire, 1, &properties, body);
                let mut buf = BytesMut::with_capacity(64 * 1024);
                b.iter(|| {
                    buf.extend_from_slice(black_box(&wire));
                    decode_message(&mut buf);
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, frames);
criterion_main!(benches);
