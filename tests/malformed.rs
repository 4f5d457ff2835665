//! Raw-socket malformed-input tests: protocol violations are answered as RabbitMQ 3.x answers them.
//!
//! Covered: bad protocol headers, garbage, broken frames and out-of-order content.
//! Every case speaks AMQP 0-9-1 by hand over a plain `TcpStream`, so the broker sees
//! exactly the bytes under test. After each violation the test checks the
//! `connection.close` the broker sends (reply code, reply-text prefix and the
//! class/method ids it blames), that the broker drops the socket once the close is
//! acknowledged, and that a well-behaved lapin client connected beforehand can still
//! publish and get a message. Every read is bounded by a timeout, so a broker that
//! stays silent fails the test instead of hanging it.

mod common;

use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

/// The protocol header of AMQP 0-9-1, which a broker also sends back to refuse a client.
const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

const FRAME_METHOD: u8 = 1;
const FRAME_HEADER: u8 = 2;
const FRAME_BODY: u8 = 3;
const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xCE;

/// How long a single read may wait for the broker's next frame.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the broker may take to drop the socket after a close handshake
/// (RabbitMQ lingers 3 s after fatal frame errors before closing).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for a whole test, so nothing can hang the suite.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs a test body under [`TEST_TIMEOUT`].
async fn bounded<F: std::future::Future<Output = ()>>(body: F) {
    timeout(TEST_TIMEOUT, body)
        .await
        .expect("test exceeded its overall time limit");
}

// ---------------------------------------------------------------------------
// Hand-rolled frame encoding.

fn put_short_str(out: &mut Vec<u8>, s: &str) {
    let len = u8::try_from(s.len()).expect("short string longer than 255 bytes");
    out.push(len);
    out.extend_from_slice(s.as_bytes());
}

fn put_long_str(out: &mut Vec<u8>, s: &[u8]) {
    let len = u32::try_from(s.len()).expect("long string too long");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s);
}

/// One frame with an explicit end octet (normally [`FRAME_END`]).
fn frame_with_end(kind: u8, channel: u16, payload: &[u8], end: u8) -> Vec<u8> {
    let size = u32::try_from(payload.len()).expect("payload too long");
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.push(kind);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(payload);
    out.push(end);
    out
}

fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    frame_with_end(kind, channel, payload, FRAME_END)
}

fn method_payload(class: u16, method: u16, args: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(args.len() + 4);
    payload.extend_from_slice(&class.to_be_bytes());
    payload.extend_from_slice(&method.to_be_bytes());
    payload.extend_from_slice(args);
    payload
}

fn method_frame(channel: u16, class: u16, method: u16, args: &[u8]) -> Vec<u8> {
    frame(FRAME_METHOD, channel, &method_payload(class, method, args))
}

/// A content header frame for `class` announcing `body_size` bytes and no properties.
fn content_header(channel: u16, class: u16, body_size: u64) -> Vec<u8> {
    let mut payload = Vec::with_capacity(14);
    payload.extend_from_slice(&class.to_be_bytes());
    payload.extend_from_slice(&0u16.to_be_bytes()); // weight
    payload.extend_from_slice(&body_size.to_be_bytes());
    payload.extend_from_slice(&0u16.to_be_bytes()); // property flags
    frame(FRAME_HEADER, channel, &payload)
}

fn content_body(channel: u16, body: &[u8]) -> Vec<u8> {
    frame(FRAME_BODY, channel, body)
}

fn connection_start_ok(user: &str, password: &str) -> Vec<u8> {
    let mut args = Vec::new();
    args.extend_from_slice(&0u32.to_be_bytes()); // client-properties: empty table
    put_short_str(&mut args, "PLAIN");
    let mut response = vec![0];
    response.extend_from_slice(user.as_bytes());
    response.push(0);
    response.extend_from_slice(password.as_bytes());
    put_long_str(&mut args, &response);
    put_short_str(&mut args, "en_US");
    method_frame(0, 10, 11, &args)
}

fn connection_tune_ok(channel_max: u16, frame_max: u32, heartbeat: u16) -> Vec<u8> {
    let mut args = Vec::new();
    args.extend_from_slice(&channel_max.to_be_bytes());
    args.extend_from_slice(&frame_max.to_be_bytes());
    args.extend_from_slice(&heartbeat.to_be_bytes());
    method_frame(0, 10, 31, &args)
}

fn connection_open(vhost: &str) -> Vec<u8> {
    let mut args = Vec::new();
    put_short_str(&mut args, vhost);
    put_short_str(&mut args, ""); // reserved-1 (capabilities)
    args.push(0); // reserved-2 (insist)
    method_frame(0, 10, 40, &args)
}

fn connection_close_ok() -> Vec<u8> {
    method_frame(0, 10, 51, &[])
}

fn channel_open(channel: u16) -> Vec<u8> {
    method_frame(channel, 20, 10, &[0]) // reserved-1: empty short string
}

fn basic_qos(channel: u16, prefetch_count: u16) -> Vec<u8> {
    let mut args = Vec::new();
    args.extend_from_slice(&0u32.to_be_bytes()); // prefetch-size
    args.extend_from_slice(&prefetch_count.to_be_bytes());
    args.push(0); // global
    method_frame(channel, 60, 10, &args)
}

fn basic_publish(channel: u16, exchange: &str, routing_key: &str) -> Vec<u8> {
    let mut args = Vec::new();
    args.extend_from_slice(&0u16.to_be_bytes()); // reserved-1 (ticket)
    put_short_str(&mut args, exchange);
    put_short_str(&mut args, routing_key);
    args.push(0); // mandatory, immediate
    method_frame(channel, 60, 40, &args)
}

// ---------------------------------------------------------------------------
// Reading frames back.

enum Frame {
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

/// Why a read produced no frame.
#[derive(Debug, PartialEq)]
enum ReadEnd {
    /// The broker closed (or reset) the connection.
    Closed,
    /// Nothing arrived within the allowed time.
    TimedOut,
}

/// A `connection.close` as received from the broker.
#[derive(Debug)]
struct Close {
    code: u16,
    text: String,
    class: u16,
    method: u16,
}

/// Parses `connection.close` arguments: reply-code, reply-text, class-id, method-id.
fn parse_close(args: &[u8]) -> Close {
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
struct Login {
    user: String,
    password: String,
    vhost: String,
}

fn login_of(url: &str) -> Login {
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

fn percent_decode(s: &str) -> String {
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

/// A hand-driven AMQP 0-9-1 client over a raw socket.
struct RawClient {
    stream: TcpStream,
    buf: Vec<u8>,
    frame_max: u32,
}

impl RawClient {
    async fn connect(broker: &common::TestBroker) -> RawClient {
        let stream = timeout(READ_TIMEOUT, TcpStream::connect(broker.addr()))
            .await
            .expect("connect timed out")
            .expect("connect to broker");
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        RawClient {
            stream,
            buf: Vec::new(),
            frame_max: 4096,
        }
    }

    /// Connects and completes the handshake up to an open connection.
    async fn open(broker: &common::TestBroker) -> RawClient {
        let mut client = RawClient::connect(broker).await;
        client.handshake(&login_of(broker.url())).await;
        client
    }

    /// Connects, completes the handshake and opens channel 1.
    async fn open_with_channel(broker: &common::TestBroker) -> RawClient {
        let mut client = RawClient::open(broker).await;
        client.open_channel(1).await;
        client
    }

    async fn send(&mut self, bytes: &[u8]) {
        timeout(READ_TIMEOUT, self.stream.write_all(bytes))
            .await
            .expect("write timed out")
            .expect("write to broker");
    }

    /// Sends bytes the broker may refuse to read; write errors and stalls are ignored.
    async fn send_best_effort(&mut self, bytes: &[u8]) {
        let _ = timeout(Duration::from_secs(2), self.stream.write_all(bytes)).await;
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
    async fn read_exact_bytes(&mut self, n: usize, wait: Duration) -> Result<Vec<u8>, ReadEnd> {
        let deadline = Instant::now() + wait;
        while self.buf.len() < n {
            self.fill(deadline).await?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Reads the next frame, skipping heartbeats.
    async fn read_frame(&mut self, wait: Duration) -> Result<Frame, ReadEnd> {
        let deadline = Instant::now() + wait;
        loop {
            if self.buf.len() >= 7 {
                let size = u32::from_be_bytes([self.buf[3], self.buf[4], self.buf[5], self.buf[6]]);
                let size = usize::try_from(size).expect("frame size fits usize");
                if self.buf.len() >= size + 8 {
                    let raw: Vec<u8> = self.buf.drain(..size + 8).collect();
                    assert_eq!(raw[size + 7], FRAME_END, "broker sent a bad frame end");
                    let kind = raw[0];
                    let channel = u16::from_be_bytes([raw[1], raw[2]]);
                    let payload = &raw[7..size + 7];
                    match kind {
                        FRAME_HEARTBEAT => continue,
                        FRAME_METHOD => {
                            assert!(payload.len() >= 4, "method frame too short");
                            return Ok(Frame::Method {
                                channel,
                                class: u16::from_be_bytes([payload[0], payload[1]]),
                                method: u16::from_be_bytes([payload[2], payload[3]]),
                                args: payload[4..].to_vec(),
                            });
                        }
                        _ => return Ok(Frame::Other { kind, channel }),
                    }
                }
            }
            self.fill(deadline).await?;
        }
    }

    /// Reads the next frame and requires it to be method `class.method` on `channel`.
    async fn expect_method(&mut self, channel: u16, class: u16, method: u16) -> Vec<u8> {
        match self.read_frame(READ_TIMEOUT).await {
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

    async fn handshake(&mut self, login: &Login) {
        self.send(PROTOCOL_HEADER).await;
        self.expect_method(0, 10, 10).await; // connection.start
        self.send(&connection_start_ok(&login.user, &login.password))
            .await;
        let tune = self.expect_method(0, 10, 30).await; // connection.tune
        assert!(tune.len() >= 8, "connection.tune too short: {tune:?}");
        let channel_max = u16::from_be_bytes([tune[0], tune[1]]);
        let frame_max = u32::from_be_bytes([tune[2], tune[3], tune[4], tune[5]]);
        // Accept the broker's limits unchanged; no heartbeats for these short tests.
        self.send(&connection_tune_ok(channel_max, frame_max, 0))
            .await;
        self.frame_max = if frame_max == 0 { 131_072 } else { frame_max };
        self.send(&connection_open(&login.vhost)).await;
        self.expect_method(0, 10, 41).await; // connection.open-ok
    }

    async fn open_channel(&mut self, channel: u16) {
        self.send(&channel_open(channel)).await;
        self.expect_method(channel, 20, 11).await; // channel.open-ok
    }

    /// Waits for the broker's `connection.close` and checks code, text prefix and
    /// the class/method ids it reports.
    async fn expect_connection_close(
        &mut self,
        code: u16,
        text_prefix: &str,
        class_method: (u16, u16),
    ) -> Close {
        let close = match self.read_frame(READ_TIMEOUT).await {
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
    async fn finish_close(&mut self) {
        self.send_best_effort(&connection_close_ok()).await;
        self.expect_closed(CLOSE_TIMEOUT).await;
    }

    /// Requires the broker to close the socket within `wait` without sending
    /// anything further (heartbeats aside).
    async fn expect_closed(&mut self, wait: Duration) {
        match self.read_frame(wait).await {
            Err(ReadEnd::Closed) => {}
            Err(ReadEnd::TimedOut) => panic!("broker kept the socket open for {wait:?}"),
            Ok(frame) => panic!("expected the socket to close, got {frame}"),
        }
    }

    /// Requires the broker to answer `bytes` with a connection.close, then to drop the socket.
    async fn violate(&mut self, bytes: &[u8], code: u16, text_prefix: &str, ids: (u16, u16)) {
        self.send(bytes).await;
        self.expect_connection_close(code, text_prefix, ids).await;
        self.finish_close().await;
    }
}

// ---------------------------------------------------------------------------
// The well-behaved bystander.

/// A lapin client connected before the misbehaving one, with its own queue.
struct Bystander {
    connection: Connection,
    channel: Channel,
    queue: String,
}

impl Bystander {
    async fn start(broker: &common::TestBroker) -> Bystander {
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
        let queue = common::unique("malformed-bystander");
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
    async fn round_trip(&self, label: &str) {
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
    async fn finish(self) {
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

// ---------------------------------------------------------------------------
// Tests.

/// Headers of protocols the broker does not speak are answered with the 0-9-1
/// header, after which the broker closes the socket.
#[tokio::test]
async fn wrong_protocol_header_gets_0_9_1_header_and_close() {
    bounded(async {
        let broker = common::TestBroker::start();
        let bystander = Bystander::start(&broker).await;
        let headers: [&[u8; 8]; 3] = [
            b"AMQP\x01\x01\x00\x0a", // AMQP 0-10
            b"AMQP\x00\x00\x09\x00", // 0-9-0 written the 0-9-1 way
            b"AMQP\x00\x01\x00\x00", // AMQP 1.0
        ];
        for header in headers {
            let mut client = RawClient::connect(&broker).await;
            client.send(header).await;
            let reply = client
                .read_exact_bytes(8, READ_TIMEOUT)
                .await
                .unwrap_or_else(|end| panic!("no header back for {header:?}: {end:?}"));
            assert_eq!(&reply, PROTOCOL_HEADER, "reply to {header:?}");
            client.expect_closed(CLOSE_TIMEOUT).await;
        }
        bystander.finish().await;
    })
    .await;
}

/// Non-AMQP bytes instead of a protocol header are refused the same way.
#[tokio::test]
async fn garbage_instead_of_header_gets_0_9_1_header_and_close() {
    bounded(async {
        let broker = common::TestBroker::start();
        let bystander = Bystander::start(&broker).await;
        let mut client = RawClient::connect(&broker).await;
        client
            .send_best_effort(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await;
        let reply = client
            .read_exact_bytes(8, READ_TIMEOUT)
            .await
            .expect("protocol header back");
        assert_eq!(&reply, PROTOCOL_HEADER);
        client.expect_closed(CLOSE_TIMEOUT).await;
        bystander.finish().await;
    })
    .await;
}

/// Garbage after the handshake parses as a frame whose size exceeds frame_max.
#[tokio::test]
async fn garbage_after_handshake_is_frame_error() {
    bounded(async {
        let broker = common::TestBroker::start();
        let bystander = Bystander::start(&broker).await;
        let mut client = RawClient::open_with_channel(&broker).await;
        client
            .send_best_effort(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await;
        client
            .expect_connection_close(501, "FRAME_ERROR", (0, 0))
            .await;
        client.finish_close().await;
        bystander.finish().await;
    })
    .await;
}

/// A frame whose end octet is not 0xCE is a fatal frame error.
#[tokio::test]
async fn bad_frame_end_is_frame_error() {
    bounded(async {
        let broker = common::TestBroker::start();
        let bystander = Bystander::start(&broker).await;
        let mut client = RawClient::open_with_channel(&broker).await;
        let bad = frame_with_end(FRAME_METHOD, 1, &method_payload(60, 10, &[0; 7]), 0x00);
        client.violate(&bad, 501, "FRAME_ERROR", (0, 0)).await;
        bystander.finish().await;
    })
    .await;
}

/// A frame larger than the negotiated frame_max is a fatal frame error.
#[tokio::test]
async fn oversized_frame_is_frame_error() {
    bounded(async {
        let broker = common::TestBroker::start();
        let bystander = Bystander::start(&broker).await;
        let mut client = RawClient::open_with_channel(&broker).await;
        let size = usize::try_from(client.frame_max).expect("frame_max fits usize") + 1;
        let big = content_body(1, &vec![b'x'; size]);
        client.send_best_effort(&big).await;
        client
            .expect_connection_close(501, "FRAME_ERROR", (0, 0))
            .await;
        client.finish_close().await;
        bystander.finish().await;
    })
    .await;
}

/// A frame type outside 1/2/3/8 is a frame error (RabbitMQ: 501, not 505).
#[tokio::test]
async fn unknown_frame_type_is_frame_error() {
    bounded(async {
        let broker = common::TestBroker::start();
        let bystander = Bystander::start(&broker).await;
        let mut client = RawClient::open_with_channel(&broker).await;
        client
            .violate(&frame(9, 1, b"abc"), 501, "FRAME_ERROR", (0, 0))
            .await;
        bystander.finish().await;
    })
    .await;
}

/// A method on a channel that was never opened is a channel error blaming that method.
#[tokio::test]
async fn method_on_unopened_channel_is_channel_error() {
    bounded(async {
        let broker = common::TestBroker::start();
        let bystander = Bystander::start(&broker).await;
        let mut client = RawClient::open_with_channel(&broker).await;
        client
            .violate(
                &basic_qos(2, 1),
                504,
                "CHANNEL_ERROR - expected 'channel.open'",
                (60, 10),
            )
            .await;
        bystander.finish().await;
    })
    .await;
}

/// Opening an already open channel is a channel error blaming channel.open.
#[tokio::test]
async fn channel_open_twice_is_channel_error() {
    bounded(async {
        let broker = common::TestBroker::start();
        let bystander = Bystander::start(&broker).await;
        let mut client = RawClient::open_with_channel(&broker).await;
        client
            .violate(
                &channel_open(1),
                504,
                "CHANNEL_ERROR - second 'channel.open' seen",
                (20, 10),
            )
            .await;
        bystander.finish().await;
    })
    .await;
}

/// A content header that no basic.publish announced is an unexpected frame.
#[tokio::test]
async fn content_header_without_publish_is_unexpected_frame() {
    bounded(async {
        let broker = common::TestBroker::start();
        let bystander = Bystander::start(&broker).await;
        let mut client = RawClient::open_with_channel(&broker).await;
        client
            .violate(
                &content_header(1, 60, 5),
                505,
                "UNEXPECTED_FRAME - expected method frame, got non method frame instead",
                (0, 0),
            )
            .await;
        bystander.finish().await;
    })
    .await;
}

/// A body frame with no publish and no header is an unexpected frame.
#[tokio::test]
async fn body_without_publish_is_unexpected_frame() {
    bounded(async {
        let broker = common::TestBroker::start();
        let bystander = Bystander::start(&broker).await;
        let mut client = RawClient::open_with_channel(&broker).await;
        client
            .violate(
                &content_body(1, b"hello"),
                505,
                "UNEXPECTED_FRAME - expected method frame, got non method frame instead",
                (0, 0),
            )
            .await;
        bystander.finish().await;
    })
    .await;
}

/// A body frame straight after basic.publish (no content header) is an unexpected frame.
#[tokio::test]
async fn body_without_header_is_unexpected_frame() {
    bounded(async {
        let broker = common::TestBroker::start();
        let bystander = Bystander::start(&broker).await;
        let mut client = RawClient::open_with_channel(&broker).await;
        let mut bytes = basic_publish(1, "", "malformed-nowhere");
        bytes.extend(content_body(1, b"hello"));
        client
            .violate(
                &bytes,
                505,
                "UNEXPECTED_FRAME - expected content header for class 60, \
                 got non content header frame instead",
                (60, 40),
            )
            .await;
        bystander.finish().await;
    })
    .await;
}

/// A method frame where the content header should be is an unexpected frame.
#[tokio::test]
async fn method_instead_of_content_header_is_unexpected_frame() {
    bounded(async {
        let broker = common::TestBroker::start();
        let bystander = Bystander::start(&broker).await;
        let mut client = RawClient::open_with_channel(&broker).await;
        let mut bytes = basic_publish(1, "", "malformed-nowhere");
        bytes.extend(basic_qos(1, 1));
        client
            .violate(
                &bytes,
                505,
                "UNEXPECTED_FRAME - expected content header for class 60, \
                 got non content header frame instead",
                (60, 40),
            )
            .await;
        bystander.finish().await;
    })
    .await;
}

/// A method frame while body bytes are still owed is an unexpected frame.
#[tokio::test]
async fn method_in_middle_of_content_is_unexpected_frame() {
    bounded(async {
        let broker = common::TestBroker::start();
        let bystander = Bystander::start(&broker).await;
        let mut client = RawClient::open_with_channel(&broker).await;
        let mut bytes = basic_publish(1, "", "malformed-nowhere");
        bytes.extend(content_header(1, 60, 10));
        bytes.extend(content_body(1, b"hello"));
        bytes.extend(basic_qos(1, 1));
        client
            .violate(
                &bytes,
                505,
                "UNEXPECTED_FRAME - expected content body, got non content body frame instead",
                (60, 40),
            )
            .await;
        bystander.finish().await;
    })
    .await;
}

/// A content header for another class than the publish's is an unexpected frame.
#[tokio::test]
async fn content_header_class_mismatch_is_unexpected_frame() {
    bounded(async {
        let broker = common::TestBroker::start();
        let bystander = Bystander::start(&broker).await;
        let mut client = RawClient::open_with_channel(&broker).await;
        let mut bytes = basic_publish(1, "", "malformed-nowhere");
        bytes.extend(content_header(1, 50, 3));
        client
            .violate(
                &bytes,
                505,
                "UNEXPECTED_FRAME - expected content header for class 60, \
                 got one for class 50 instead",
                (60, 40),
            )
            .await;
        bystander.finish().await;
    })
    .await;
}

/// A frame cut short by the client closing its socket harms nobody: the broker
/// survives, the bystander keeps working and new clients can still connect.
#[tokio::test]
async fn truncated_frame_then_disconnect_leaves_broker_working() {
    bounded(async {
        let broker = common::TestBroker::start();
        let bystander = Bystander::start(&broker).await;

        let mut client = RawClient::open_with_channel(&broker).await;
        let full = basic_publish(1, "", "malformed-nowhere");
        client.send(&full[..10]).await;
        drop(client);

        // Also a client that dies half-way through the protocol header.
        let mut client = RawClient::connect(&broker).await;
        client.send(&PROTOCOL_HEADER[..5]).await;
        drop(client);

        let mut fresh = RawClient::open_with_channel(&broker).await;
        fresh.send(&basic_qos(1, 1)).await;
        fresh.expect_method(1, 60, 11).await; // basic.qos-ok
        bystander.finish().await;
    })
    .await;
}
