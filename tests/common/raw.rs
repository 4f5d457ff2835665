//! A hand-driven AMQP 0-9-1 client over a socket (plain TCP, or TLS), for tests that must
//! control every byte the broker sees: frame encoders, a frame reader that never
//! waits longer than it is told, field-table encoding and decoding, and a
//! well-behaved lapin "bystander" that checks the broker still serves others.
//!
//! Every read is bounded by a timeout, so a broker that stays silent fails the
//! test instead of hanging it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

use super::TestBroker;

/// The protocol header of AMQP 0-9-1, which a broker also sends back to refuse a client.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
pub const FRAME_END: u8 = 0xCE;

/// How long a single read may wait for the broker's next frame.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the broker may take to drop the socket after a close handshake
/// (RabbitMQ lingers 3 s after fatal frame errors before closing).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for a whole test, so nothing can hang the suite.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs a test body under [`TEST_TIMEOUT`].
pub async fn bounded<F: std::future::Future<Output = ()>>(body: F) {
    timeout(TEST_TIMEOUT, body)
        .await
        .expect("test exceeded its overall time limit");
}

// ---------------------------------------------------------------------------
// Hand-rolled frame encoding.

pub fn put_short_str(out: &mut Vec<u8>, s: &str) {
    let len = u8::try_from(s.len()).expect("short string longer than 255 bytes");
    out.push(len);
    out.extend_from_slice(s.as_bytes());
}

pub fn put_long_str(out: &mut Vec<u8>, s: &[u8]) {
    let len = u32::try_from(s.len()).expect("long string too long");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s);
}

/// One frame with an explicit end octet (normally [`FRAME_END`]).
pub fn frame_with_end(kind: u8, channel: u16, payload: &[u8], end: u8) -> Vec<u8> {
    let size = u32::try_from(payload.len()).expect("payload too long");
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.push(kind);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(payload);
    out.push(end);
    out
}

pub fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    frame_with_end(kind, channel, payload, FRAME_END)
}

/// A heartbeat frame (always on channel 0, empty payload).
pub fn heartbeat() -> Vec<u8> {
    frame(FRAME_HEARTBEAT, 0, &[])
}

pub fn method_payload(class: u16, method: u16, args: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(args.len() + 4);
    payload.extend_from_slice(&class.to_be_bytes());
    payload.extend_from_slice(&method.to_be_bytes());
    payload.extend_from_slice(args);
    payload
}

pub fn method_frame(channel: u16, class: u16, method: u16, args: &[u8]) -> Vec<u8> {
    frame(FRAME_METHOD, channel, &method_payload(class, method, args))
}

/// A content header frame for `class` announcing `body_size` bytes and no properties.
pub fn content_header(channel: u16, class: u16, body_size: u64) -> Vec<u8> {
    let mut payload = Vec::with_capacity(14);
    payload.extend_from_slice(&class.to_be_bytes());
    payload.extend_from_slice(&0u16.to_be_bytes()); // weight
    payload.extend_from_slice(&body_size.to_be_bytes());
    payload.extend_from_slice(&0u16.to_be_bytes()); // property flags
    frame(FRAME_HEADER, channel, &payload)
}

pub fn content_body(channel: u16, body: &[u8]) -> Vec<u8> {
    frame(FRAME_BODY, channel, body)
}

/// The PLAIN SASL response: `\0user\0password`.
pub fn plain_response(user: &str, password: &str) -> Vec<u8> {
    let mut response = vec![0];
    response.extend_from_slice(user.as_bytes());
    response.push(0);
    response.extend_from_slice(password.as_bytes());
    response
}

/// The AMQPLAIN response: a field table with `LOGIN` and `PASSWORD`, without
/// the table's 4-byte length prefix.
pub fn amqplain_response(user: &str, password: &str) -> Vec<u8> {
    let mut body = Vec::new();
    put_table_entries(
        &mut body,
        &[
            ("LOGIN", Value::LongStr(user.as_bytes().to_vec())),
            ("PASSWORD", Value::LongStr(password.as_bytes().to_vec())),
        ],
    );
    body
}

/// connection.start-ok with the given client properties (an encoded table),
/// mechanism and response, locale en_US.
pub fn connection_start_ok_with(properties: &[u8], mechanism: &str, response: &[u8]) -> Vec<u8> {
    let mut args = Vec::new();
    args.extend_from_slice(properties);
    put_short_str(&mut args, mechanism);
    put_long_str(&mut args, response);
    put_short_str(&mut args, "en_US");
    method_frame(0, 10, 11, &args)
}

/// connection.start-ok logging in with PLAIN and empty client properties.
pub fn connection_start_ok(user: &str, password: &str) -> Vec<u8> {
    let empty_table = 0u32.to_be_bytes(); // client-properties: empty table
    connection_start_ok_with(&empty_table, "PLAIN", &plain_response(user, password))
}

pub fn connection_tune_ok(channel_max: u16, frame_max: u32, heartbeat: u16) -> Vec<u8> {
    let mut args = Vec::new();
    args.extend_from_slice(&channel_max.to_be_bytes());
    args.extend_from_slice(&frame_max.to_be_bytes());
    args.extend_from_slice(&heartbeat.to_be_bytes());
    method_frame(0, 10, 31, &args)
}

pub fn connection_open(vhost: &str) -> Vec<u8> {
    let mut args = Vec::new();
    put_short_str(&mut args, vhost);
    put_short_str(&mut args, ""); // reserved-1 (capabilities)
    args.push(0); // reserved-2 (insist)
    method_frame(0, 10, 40, &args)
}

/// connection.close as sent by a client: reply code and text, no failing method.
pub fn connection_close(code: u16, text: &str) -> Vec<u8> {
    let mut args = Vec::new();
    args.extend_from_slice(&code.to_be_bytes());
    put_short_str(&mut args, text);
    args.extend_from_slice(&0u16.to_be_bytes()); // class-id
    args.extend_from_slice(&0u16.to_be_bytes()); // method-id
    method_frame(0, 10, 50, &args)
}

pub fn connection_close_ok() -> Vec<u8> {
    method_frame(0, 10, 51, &[])
}

pub fn channel_open(channel: u16) -> Vec<u8> {
    method_frame(channel, 20, 10, &[0]) // reserved-1: empty short string
}

pub fn channel_flow(channel: u16, active: bool) -> Vec<u8> {
    method_frame(channel, 20, 20, &[u8::from(active)])
}

pub fn basic_qos(channel: u16, prefetch_count: u16) -> Vec<u8> {
    let mut args = Vec::new();
    args.extend_from_slice(&0u32.to_be_bytes()); // prefetch-size
    args.extend_from_slice(&prefetch_count.to_be_bytes());
    args.push(0); // global
    method_frame(channel, 60, 10, &args)
}

pub fn basic_publish(channel: u16, exchange: &str, routing_key: &str) -> Vec<u8> {
    let mut args = Vec::new();
    args.extend_from_slice(&0u16.to_be_bytes()); // reserved-1 (ticket)
    put_short_str(&mut args, exchange);
    put_short_str(&mut args, routing_key);
    args.push(0); // mandatory, immediate
    method_frame(channel, 60, 40, &args)
}

// ---------------------------------------------------------------------------
// Field tables (RabbitMQ's type letters).

/// A field value. Integers of every width are widened; strings stay bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Decimal(u8, u32),
    /// `S` long string.
    LongStr(Vec<u8>),
    /// `x` byte array.
    Bytes(Vec<u8>),
    Timestamp(u64),
    Table(Table),
    Array(Vec<Value>),
    Void,
}

/// A decoded field table, entries in wire order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table(pub Vec<(String, Value)>);

impl Table {
    /// The value stored under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The keys, in wire order.
    pub fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// Encodes a field table with its 4-byte length prefix.
pub fn encode_table(entries: &[(&str, Value)]) -> Vec<u8> {
    let mut body = Vec::new();
    put_table_entries(&mut body, entries);
    let mut out = Vec::with_capacity(body.len() + 4);
    put_long_str(&mut out, &body);
    out
}

fn put_table_entries(out: &mut Vec<u8>, entries: &[(&str, Value)]) {
    for (key, value) in entries {
        put_short_str(out, key);
        put_value(out, value);
    }
}

fn put_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Bool(b) => {
            out.push(b't');
            out.push(u8::from(*b));
        }
        Value::Int(i) => {
            out.push(b'l');
            out.extend_from_slice(&i.to_be_bytes());
        }
        Value::Float(f) => {
            out.push(b'd');
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Decimal(scale, v) => {
            out.push(b'D');
            out.push(*scale);
            out.extend_from_slice(&v.to_be_bytes());
        }
        Value::LongStr(s) => {
            out.push(b'S');
            put_long_str(out, s);
        }
        Value::Bytes(s) => {
            out.push(b'x');
            put_long_str(out, s);
        }
        Value::Timestamp(t) => {
            out.push(b'T');
            out.extend_from_slice(&t.to_be_bytes());
        }
        Value::Table(table) => {
            out.push(b'F');
            let mut body = Vec::new();
            for (key, value) in &table.0 {
                put_short_str(&mut body, key);
                put_value(&mut body, value);
            }
            put_long_str(out, &body);
        }
        Value::Array(values) => {
            out.push(b'A');
            let mut body = Vec::new();
            for value in values {
                put_value(&mut body, value);
            }
            put_long_str(out, &body);
        }
        Value::Void => out.push(b'V'),
    }
}

/// A cursor over bytes received from the broker; running short is a test failure.
pub struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `bytes`; `what` names the method in failure messages.
    pub fn new(bytes: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { bytes, what }
    }

    pub fn take(&mut self, n: usize) -> &'a [u8] {
        assert!(
            self.bytes.len() >= n,
            "{} truncated: wanted {n} more bytes, {} left",
            self.what,
            self.bytes.len()
        );
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        head
    }

    pub fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take(2).try_into().unwrap())
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take(4).try_into().unwrap())
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take(8).try_into().unwrap())
    }

    pub fn short_str(&mut self) -> String {
        let len = usize::from(self.u8());
        String::from_utf8_lossy(self.take(len)).into_owned()
    }

    pub fn long_str(&mut self) -> Vec<u8> {
        let len = usize::try_from(self.u32()).expect("length fits usize");
        self.take(len).to_vec()
    }

    pub fn table(&mut self) -> Table {
        let body = self.long_str();
        let mut inner = Reader::new(&body, self.what);
        let mut entries = Vec::new();
        while !inner.is_empty() {
            let key = inner.short_str();
            let value = inner.value();
            entries.push((key, value));
        }
        Table(entries)
    }

    fn value(&mut self) -> Value {
        let kind = self.u8();
        match kind {
            b't' => Value::Bool(self.u8() != 0),
            b'b' => Value::Int(i64::from(self.u8() as i8)),
            b'B' => Value::Int(i64::from(self.u8())),
            b's' => Value::Int(i64::from(self.u16() as i16)),
            b'u' => Value::Int(i64::from(self.u16())),
            b'I' => Value::Int(i64::from(self.u32() as i32)),
            b'i' => Value::Int(i64::from(self.u32())),
            b'l' | b'L' => Value::Int(self.u64() as i64),
            b'f' => Value::Float(f64::from(f32::from_bits(self.u32()))),
            b'd' => Value::Float(f64::from_bits(self.u64())),
            b'D' => {
                let scale = self.u8();
                Value::Decimal(scale, self.u32())
            }
            b'S' => Value::LongStr(self.long_str()),
            b'x' => Value::Bytes(self.long_str()),
            b'T' => Value::Timestamp(self.u64()),
            b'F' => Value::Table(self.table()),
            b'A' => {
                let body = self.long_str();
                let mut inner = Reader::new(&body, self.what);
                let mut values = Vec::new();
                while !inner.is_empty() {
                    values.push(inner.value());
                }
                Value::Array(values)
            }
            b'V' => Value::Void,
            other => panic!("{}: unknown field type {:?}", self.what, char::from(other)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// A decoded `connection.start`.
#[derive(Debug)]
pub struct Start {
    pub version_major: u8,
    pub version_minor: u8,
    pub server_properties: Table,
    pub mechanisms: String,
    pub locales: String,
}

/// Parses `connection.start` arguments.
pub fn parse_start(args: &[u8]) -> Start {
    let mut r = Reader::new(args, "connection.start");
    let start = Start {
        version_major: r.u8(),
        version_minor: r.u8(),
        server_properties: r.table(),
        mechanisms: String::from_utf8_lossy(&r.long_str()).into_owned(),
        locales: String::from_utf8_lossy(&r.long_str()).into_owned(),
    };
    assert!(r.is_empty(), "connection.start has trailing bytes");
    start
}

/// The limits of a `connection.tune` (or tune-ok).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tune {
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat: u16,
}

/// Parses `connection.tune` arguments.
pub fn parse_tune(args: &[u8]) -> Tune {
    let mut r = Reader::new(args, "connection.tune");
    Tune {
        channel_max: r.u16(),
        frame_max: r.u32(),
        heartbeat: r.u16(),
    }
}

// ---------------------------------------------------------------------------
// Reading frames back.

pub enum Frame {
    Method {
        channel: u16,
        class: u16,
        method: u16,
        args: Vec<u8>,
    },
    Other {
        kind: u8,
        channel: u16,
    },
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Frame::Method {
                channel,
                class,
                method,
                args,
            } => write!(
                f,
                "method {class}.{method} on channel {channel} ({} argument bytes)",
                args.len()
            ),
            Frame::Other { kind, channel } => write!(f, "frame type {kind} on channel {channel}"),
        }
    }
}

/// Removes the first complete frame from `buf`, if there is one (heartbeats
/// come back as [`Frame::Other`] of kind [`FRAME_HEARTBEAT`]).
pub fn take_frame(buf: &mut Vec<u8>) -> Option<Frame> {
    if buf.len() < 7 {
        return None;
    }
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]);
    let size = usize::try_from(size).expect("frame size fits usize");
    if buf.len() < size + 8 {
        return None;
    }
    let raw: Vec<u8> = buf.drain(..size + 8).collect();
    assert_eq!(raw[size + 7], FRAME_END, "broker sent a bad frame end");
    let kind = raw[0];
    let channel = u16::from_be_bytes([raw[1], raw[2]]);
    let payload = &raw[7..size + 7];
    if kind != FRAME_METHOD {
        return Some(Frame::Other { kind, channel });
    }
    assert!(payload.len() >= 4, "method frame too short");
    Some(Frame::Method {
        channel,
        class: u16::from_be_bytes([payload[0], payload[1]]),
        method: u16::from_be_bytes([payload[2], payload[3]]),
        args: payload[4..].to_vec(),
    })
}

/// Why a read produced no frame.
#[derive(Debug, PartialEq)]
pub enum ReadEnd {
    /// The broker closed (or reset) the connection.
    Closed,
    /// Nothing arrived within the allowed time.
    TimedOut,
}

/// A `connection.close` (or `channel.close`) as received from the broker.
#[derive(Debug)]
pub struct Close {
    pub code: u16,
    pub text: String,
    pub class: u16,
    pub method: u16,
}

/// Parses `connection.close` arguments: reply-code, reply-text, class-id, method-id.
pub fn parse_close(args: &[u8]) -> Close {
    assert!(args.len() >= 3, "connection.close too short: {args:?}");
    let code = u16::from_be_bytes([args[0], args[1]]);
    let len = usize::from(args[2]);
    assert!(
        args.len() >= 3 + len + 4,
        "connection.close truncated: {args:?}"
    );
    let text = String::from_utf8_lossy(&args[3..3 + len]).into_owned();
    let rest = &args[3 + len..];
    Close {
        code,
        text,
        class: u16::from_be_bytes([rest[0], rest[1]]),
        method: u16::from_be_bytes([rest[2], rest[3]]),
    }
}

/// Credentials and vhost taken from the harness's AMQP URL.
pub struct Login {
    pub user: String,
    pub password: String,
    pub vhost: String,
}

pub fn login_of(url: &str) -> Login {
    let rest = url.split("://").nth(1).expect("url has a scheme");
    let (userinfo, host_path) = rest.rsplit_once('@').unwrap_or(("guest:guest", rest));
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let vhost = match host_path.split_once('/') {
        Some((_, "")) | None => "/".to_string(),
        Some((_, path)) => percent_decode(path),
    };
    Login {
        user: percent_decode(user),
        password: percent_decode(password),
        vhost,
    }
}

pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("url component is UTF-8")
}

/// A byte stream a [`RawClient`] speaks over: a `TcpStream`, or a TLS stream on one.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

/// A hand-driven AMQP 0-9-1 client over a raw socket.
pub struct RawClient {
    pub stream: Box<dyn Stream>,
    pub buf: Vec<u8>,
    pub frame_max: u32,
    /// How long one write, or one expected method, may take ([`READ_TIMEOUT`] unless connected `_within` another).
    pub wait: Duration,
}

impl RawClient {
    pub async fn connect(broker: &TestBroker) -> RawClient {
        RawClient::connect_to(broker.addr()).await
    }

    /// Connects to a broker at `addr` (no handshake yet).
    pub async fn connect_to(addr: SocketAddr) -> RawClient {
        RawClient::connect_within(addr, READ_TIMEOUT).await
    }

    /// Connects to a broker at `addr`, bounding the connect, writes and expected methods by `wait`.
    pub async fn connect_within(addr: SocketAddr, wait: Duration) -> RawClient {
        let stream = timeout(wait, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect to broker");
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        RawClient::over(stream, wait)
    }

    /// A client over an already connected `stream` (no AMQP handshake yet).
    pub fn over(stream: impl Stream + 'static, wait: Duration) -> RawClient {
        RawClient {
            stream: Box::new(stream),
            buf: Vec::new(),
            frame_max: 4096,
            wait,
        }
    }

    /// Connects and completes the handshake up to an open connection.
    pub async fn open(broker: &TestBroker) -> RawClient {
        let mut client = RawClient::connect(broker).await;
        client.handshake(&login_of(broker.url())).await;
        client
    }

    /// Connects, completes the handshake and opens channel 1.
    pub async fn open_with_channel(broker: &TestBroker) -> RawClient {
        let mut client = RawClient::open(broker).await;
        client.open_channel(1).await;
        client
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        timeout(self.wait, write_flushed(&mut self.stream, bytes))
            .await
            .expect("write timed out")
            .expect("write to broker");
    }

    /// Sends bytes the broker may refuse to read; write errors and stalls are ignored.
    pub async fn send_best_effort(&mut self, bytes: &[u8]) {
        let _ = timeout(
            Duration::from_secs(2),
            write_flushed(&mut self.stream, bytes),
        )
        .await;
    }

    /// Reads more bytes into the buffer, waiting at most until `deadline`.
    async fn fill(&mut self, deadline: Instant) -> Result<(), ReadEnd> {
        let mut chunk = [0u8; 8192];
        let wait = deadline.saturating_duration_since(Instant::now());
        match timeout(wait, self.stream.read(&mut chunk)).await {
            Err(_) => Err(ReadEnd::TimedOut),
            Ok(Ok(0)) | Ok(Err(_)) => Err(ReadEnd::Closed),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }

    /// Reads exactly `n` raw bytes (used for a protocol header sent back).
    pub async fn read_exact_bytes(&mut self, n: usize, wait: Duration) -> Result<Vec<u8>, ReadEnd> {
        let deadline = Instant::now() + wait;
        while self.buf.len() < n {
            self.fill(deadline).await?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Reads the next frame, skipping heartbeats.
    pub async fn read_frame(&mut self, wait: Duration) -> Result<Frame, ReadEnd> {
        self.next_frame(wait, true).await
    }

    /// Reads the next frame, heartbeats included (as [`Frame::Other`] of kind 8).
    pub async fn read_any_frame(&mut self, wait: Duration) -> Result<Frame, ReadEnd> {
        self.next_frame(wait, false).await
    }

    async fn next_frame(
        &mut self,
        wait: Duration,
        skip_heartbeats: bool,
    ) -> Result<Frame, ReadEnd> {
        let deadline = Instant::now() + wait;
        loop {
            while let Some(frame) = take_frame(&mut self.buf) {
                match frame {
                    Frame::Other {
                        kind: FRAME_HEARTBEAT,
                        ..
                    } if skip_heartbeats => continue,
                    frame => return Ok(frame),
                }
            }
            self.fill(deadline).await?;
        }
    }

    /// Reads the next frame and requires it to be method `class.method` on `channel`.
    pub async fn expect_method(&mut self, channel: u16, class: u16, method: u16) -> Vec<u8> {
        match self.read_frame(self.wait).await {
            Ok(Frame::Method {
                channel: c,
                class: k,
                method: m,
                args,
            }) if c == channel && k == class && m == method => args,
            Ok(other) => {
                panic!("expected method {class}.{method} on channel {channel}, got {other}")
            }
            Err(end) => {
                panic!("expected method {class}.{method} on channel {channel}, got {end:?}")
            }
        }
    }

    /// Sends the protocol header and returns the broker's `connection.start`.
    pub async fn expect_start(&mut self) -> Start {
        self.send(PROTOCOL_HEADER).await;
        parse_start(&self.expect_method(0, 10, 10).await)
    }

    /// Reads the broker's `connection.tune`.
    pub async fn expect_tune(&mut self) -> Tune {
        let args = self.expect_method(0, 10, 30).await;
        assert!(args.len() >= 8, "connection.tune too short: {args:?}");
        parse_tune(&args)
    }

    /// Sends tune-ok with `tune_ok`, opens `vhost` and waits for open-ok.
    pub async fn finish_handshake(&mut self, tune_ok: Tune, vhost: &str) {
        self.send(&connection_tune_ok(
            tune_ok.channel_max,
            tune_ok.frame_max,
            tune_ok.heartbeat,
        ))
        .await;
        self.frame_max = if tune_ok.frame_max == 0 {
            131_072
        } else {
            tune_ok.frame_max
        };
        self.send(&connection_open(vhost)).await;
        self.expect_method(0, 10, 41).await; // connection.open-ok
    }

    /// A PLAIN handshake whose tune-ok is `choose` applied to the broker's tune.
    pub async fn handshake_with(&mut self, login: &Login, choose: impl FnOnce(Tune) -> Tune) {
        self.expect_start().await;
        self.send(&connection_start_ok(&login.user, &login.password))
            .await;
        let tune = self.expect_tune().await;
        self.finish_handshake(choose(tune), &login.vhost).await;
    }

    pub async fn handshake(&mut self, login: &Login) {
        // Accept the broker's limits unchanged; no heartbeats for these short tests.
        self.handshake_with(login, |tune| Tune {
            heartbeat: 0,
            ..tune
        })
        .await;
    }

    /// Closes the connection from the client side and waits for close-ok.
    pub async fn close(&mut self) {
        self.send(&connection_close(200, "bye")).await;
        self.expect_method(0, 10, 51).await; // connection.close-ok
    }

    pub async fn open_channel(&mut self, channel: u16) {
        self.send(&channel_open(channel)).await;
        self.expect_method(channel, 20, 11).await; // channel.open-ok
    }

    /// Waits for the broker's `connection.close` and checks code, text prefix and
    /// the class/method ids it reports.
    pub async fn expect_connection_close(
        &mut self,
        code: u16,
        text_prefix: &str,
        class_method: (u16, u16),
    ) -> Close {
        let close = match self.read_frame(self.wait).await {
            Ok(Frame::Method {
                channel: 0,
                class: 10,
                method: 50,
                args,
            }) => parse_close(&args),
            Ok(Frame::Method {
                channel,
                class: 20,
                method: 40,
                args,
            }) => panic!(
                "expected connection.close {code}, got channel.close on channel {channel}: {:?}",
                parse_close(&args)
            ),
            Ok(other) => panic!("expected connection.close {code}, got {other}"),
            Err(end) => panic!("expected connection.close {code}, got {end:?}"),
        };
        assert_eq!(close.code, code, "reply code of {close:?}");
        assert!(
            close.text.starts_with(text_prefix),
            "reply text {:?} does not start with {text_prefix:?}",
            close.text
        );
        assert_eq!(
            (close.class, close.method),
            class_method,
            "class/method ids of {close:?}"
        );
        close
    }

    /// Acknowledges the broker's close and requires the socket to be dropped soon after.
    pub async fn finish_close(&mut self) {
        self.send_best_effort(&connection_close_ok()).await;
        self.expect_closed(CLOSE_TIMEOUT).await;
    }

    /// Requires the broker to close the socket within `wait` without sending
    /// anything further (heartbeats aside).
    pub async fn expect_closed(&mut self, wait: Duration) {
        self.expect_closed_skipping(wait, true).await;
    }

    /// Requires the socket to close within `wait` without a single frame (not even a heartbeat).
    pub async fn expect_closed_silently(&mut self, wait: Duration) {
        self.expect_closed_skipping(wait, false).await;
    }

    async fn expect_closed_skipping(&mut self, wait: Duration, skip_heartbeats: bool) {
        match self.next_frame(wait, skip_heartbeats).await {
            Err(ReadEnd::Closed) => {}
            Err(ReadEnd::TimedOut) => panic!("broker kept the socket open for {wait:?}"),
            Ok(frame) => panic!("expected the socket to close, got {frame}"),
        }
    }

    /// Requires the broker to answer `bytes` with a connection.close, then to drop the socket.
    pub async fn violate(&mut self, bytes: &[u8], code: u16, text_prefix: &str, ids: (u16, u16)) {
        self.send(bytes).await;
        self.expect_connection_close(code, text_prefix, ids).await;
        self.finish_close().await;
    }
}

/// Writes all of `bytes` and flushes them: TLS holds written bytes until then.
async fn write_flushed(stream: &mut Box<dyn Stream>, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

// ---------------------------------------------------------------------------
// The well-behaved bystander.

/// A lapin client connected before the misbehaving one, with its own queue.
pub struct Bystander {
    pub connection: Connection,
    pub channel: Channel,
    pub queue: String,
}

impl Bystander {
    pub async fn start(broker: &TestBroker) -> Bystander {
        let connection = timeout(READ_TIMEOUT, broker.connect())
            .await
            .expect("bystander connect timed out");
        let channel = timeout(READ_TIMEOUT, connection.create_channel())
            .await
            .expect("bystander channel timed out")
            .expect("bystander channel");
        timeout(
            READ_TIMEOUT,
            channel.confirm_select(ConfirmSelectOptions::default()),
        )
        .await
        .expect("confirm.select timed out")
        .expect("confirm.select");
        let queue = super::unique("malformed-bystander");
        let options = QueueDeclareOptions {
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        timeout(
            READ_TIMEOUT,
            channel.queue_declare(queue.as_str().into(), options, FieldTable::default()),
        )
        .await
        .expect("queue.declare timed out")
        .expect("queue.declare");
        let bystander = Bystander {
            connection,
            channel,
            queue,
        };
        bystander.round_trip("before").await;
        bystander
    }

    /// Publishes one message to its queue and gets it back.
    pub async fn round_trip(&self, label: &str) {
        let body = format!("{label}-{}", self.queue);
        let confirm = timeout(
            READ_TIMEOUT,
            self.channel.basic_publish(
                "".into(),
                self.queue.as_str().into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default(),
            ),
        )
        .await
        .expect("bystander publish timed out")
        .expect("bystander publish");
        let confirmation = timeout(READ_TIMEOUT, confirm)
            .await
            .expect("bystander confirm timed out")
            .expect("bystander confirm");
        assert!(confirmation.is_ack(), "publish not acked: {confirmation:?}");

        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            let got = timeout(
                READ_TIMEOUT,
                self.channel
                    .basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: true }),
            )
            .await
            .expect("bystander get timed out")
            .expect("bystander get");
            if let Some(message) = got {
                assert_eq!(message.delivery.data, body.as_bytes(), "bystander payload");
                return;
            }
            assert!(Instant::now() < deadline, "bystander message never arrived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Checks the bystander still works, then cleans up.
    pub async fn finish(self) {
        self.round_trip("after").await;
        let _ = timeout(
            READ_TIMEOUT,
            self.channel
                .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default()),
        )
        .await;
        let _ = timeout(READ_TIMEOUT, self.connection.close(200, "bye".into())).await;
    }
}
