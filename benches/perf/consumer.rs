//! A consumer: one connection, one channel, deliveries parsed in bulk.
//!
//! Every read (up to 256 KiB) is walked frame by frame in place; a message
//! costs a few comparisons and one histogram increment. The receive time is
//! read once per read, which is when those messages reached the client.
//! Manual acks are coalesced into one `basic.ack multiple=true` per batch
//! once enough are pending, and on a 10 ms timer so none linger.

use std::sync::Arc;
use std::time::Duration;

use amq_protocol::protocol::{AMQPClass, basic};
use bytes::{Buf, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use warren::protocol::encode;
use warren::protocol::frame::{FRAME_BODY, FRAME_HEADER, FRAME_METHOD, decode_method};

use crate::Result;
use crate::clock;
use crate::conn::{self, Conn, Reader, close_method, closed_by_broker, is_close_ok, unexpected};
use crate::histogram::Histogram;
use crate::stats::Counters;
use crate::uri::Uri;
use crate::wire::{self, BASIC_DELIVER};

/// The channel consumers read on.
const CHANNEL: u16 = 1;
/// Longest time a manual ack waits for more to coalesce with.
const ACK_FLUSH: Duration = Duration::from_millis(10);
/// How long the close handshake may take at the end.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// How a consumer acknowledges.
#[derive(Clone, Copy)]
pub struct Settings {
    /// No-ack consume.
    pub auto_ack: bool,
    /// Pending deliveries that trigger a multiple ack.
    pub ack_every: u64,
    /// Whether this process published the messages, so their timestamps
    /// share its clock (not so when draining another run's backlog).
    pub stamped_here: bool,
}

/// A connected consumer with its prefetch set, not yet consuming.
pub struct Consumer {
    conn: Conn,
}

/// The message being received.
#[derive(Default)]
struct Incoming {
    tag: u64,
    remaining: u64,
    /// Whether its first body frame (the one with the timestamp) was seen.
    body_started: bool,
}

/// What ended a batch of frames.
enum Batch {
    /// All whole frames were handled.
    More,
    /// The broker cancelled the consumer.
    Cancelled,
}

impl Consumer {
    /// Connects and sets the prefetch.
    pub async fn connect(uri: &Uri, prefetch: u16) -> Result<Self> {
        let mut conn = Conn::open(uri).await?;
        conn.open_channel(CHANNEL).await?;
        if prefetch > 0 {
            let qos = basic::Qos {
                prefetch_count: prefetch,
                global: false,
            };
            match conn
                .call(CHANNEL, AMQPClass::Basic(basic::AMQPMethod::Qos(qos)))
                .await?
            {
                AMQPClass::Basic(basic::AMQPMethod::QosOk(_)) => {}
                other => return Err(unexpected(&other, "basic.qos-ok")),
            }
        }
        Ok(Consumer { conn })
    }

    /// Consumes `queue` until `stop` (or a broker cancel); returns the latencies seen.
    pub async fn run(
        self,
        queue: &str,
        tag: &str,
        settings: Settings,
        counters: Arc<Counters>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<Histogram> {
        let mut conn = self.conn;
        let consume = basic::Consume {
            queue: queue.into(),
            consumer_tag: tag.into(),
            no_ack: settings.auto_ack,
            ..Default::default()
        };
        conn.send(
            CHANNEL,
            &AMQPClass::Basic(basic::AMQPMethod::Consume(consume)),
        );
        conn.flush().await?;
        let (mut reader, mut writer) = conn.split();
        let mut receiving = Receiving {
            incoming: Incoming::default(),
            latencies: Histogram::new(),
            stamped_here: settings.stamped_here,
            acks: Acks::new(settings),
        };
        let mut tick = tokio::time::interval(ACK_FLUSH);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let (count, at, batch) = receiving.frames(&reader.buf, clock::now_ns())?;
            reader.buf.advance(at);
            counters.add_consumed(count);
            if let Batch::Cancelled = batch {
                break;
            }
            let acks = &mut receiving.acks;
            if acks.due() {
                acks.send(&mut writer).await?;
            }
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                filled = conn::fill(&mut reader.half, &mut reader.buf) => filled?,
                _ = tick.tick(), if acks.pending > 0 => acks.send(&mut writer).await?,
            }
        }
        // A broker still busy with earlier frames may not answer in time; the
        // run is over either way, so a late close-ok is not an error.
        let _ = close(&mut reader, &mut writer).await;
        Ok(receiving.latencies)
    }
}

/// Per-consumer receive state across reads.
struct Receiving {
    incoming: Incoming,
    latencies: Histogram,
    /// Whether the send timestamps come from this process's clock.
    stamped_here: bool,
    acks: Acks,
}

impl Receiving {
    /// Handles every whole frame in `buf`, received at `now`: returns messages
    /// completed, bytes used, and whether the consumer was cancelled.
    fn frames(&mut self, buf: &[u8], now: u64) -> Result<(u64, usize, Batch)> {
        let (mut count, mut at) = (0, 0);
        while let Some((frame, len)) = wire::scan(&buf[at..])? {
            at += len;
            let done = match frame.kind {
                FRAME_METHOD if wire::method_id(frame.payload) == BASIC_DELIVER => {
                    self.incoming.tag =
                        wire::deliver_tag(frame.payload).ok_or("short basic.deliver")?;
                    false
                }
                FRAME_METHOD => {
                    let method = decode_method(frame.payload).map_err(|e| format!("{e:?}"))?;
                    if let Some(reason) = closed_by_broker(&method) {
                        return Err(reason.into());
                    }
                    if let AMQPClass::Basic(basic::AMQPMethod::Cancel(_)) = method {
                        return Ok((count, at, Batch::Cancelled));
                    }
                    false
                }
                FRAME_HEADER => {
                    self.incoming.remaining =
                        wire::body_size(frame.payload).ok_or("short content header")?;
                    self.incoming.body_started = false;
                    self.incoming.remaining == 0
                }
                FRAME_BODY => {
                    if !self.incoming.body_started {
                        self.incoming.body_started = true;
                        if let Some(sent) = wire::stamp(frame.payload).filter(|_| self.stamped_here)
                        {
                            self.latencies.record(now.saturating_sub(sent));
                        }
                    }
                    let remaining = self.incoming.remaining;
                    self.incoming.remaining = remaining.saturating_sub(frame.payload.len() as u64);
                    self.incoming.remaining == 0
                }
                _ => false,
            };
            if done {
                count += 1;
                self.acks.received(self.incoming.tag);
            }
        }
        Ok((count, at, Batch::More))
    }
}

/// Manual acks waiting to be coalesced.
struct Acks {
    manual: bool,
    every: u64,
    pending: u64,
    last_tag: u64,
    out: BytesMut,
}

impl Acks {
    fn new(settings: Settings) -> Self {
        Acks {
            manual: !settings.auto_ack,
            every: settings.ack_every,
            pending: 0,
            last_tag: 0,
            out: BytesMut::with_capacity(64),
        }
    }

    /// Notes a whole message received.
    fn received(&mut self, tag: u64) {
        if self.manual {
            self.pending += 1;
            self.last_tag = tag;
        }
    }

    /// Whether enough are pending to ack now.
    fn due(&self) -> bool {
        self.pending >= self.every
    }

    /// Acks everything received so far with one `multiple=true`.
    async fn send(&mut self, writer: &mut OwnedWriteHalf) -> Result<()> {
        encode::basic_ack(&mut self.out, CHANNEL, self.last_tag, true);
        writer.write_all(&self.out).await?;
        self.out.clear();
        self.pending = 0;
        Ok(())
    }
}

/// Closes the connection, discarding deliveries still in flight until close-ok.
async fn close(reader: &mut Reader, writer: &mut OwnedWriteHalf) -> Result<()> {
    let handshake = async {
        let mut out = BytesMut::new();
        encode::method(&mut out, 0, &close_method());
        writer.write_all(&out).await?;
        loop {
            let mut at = 0;
            while let Some((frame, len)) = wire::scan(&reader.buf[at..])? {
                at += len;
                if frame.kind == FRAME_METHOD
                    && wire::method_id(frame.payload) != BASIC_DELIVER
                    && decode_method(frame.payload).is_ok_and(|m| is_close_ok(&m))
                {
                    return Ok(());
                }
            }
            reader.buf.advance(at);
            conn::fill(&mut reader.half, &mut reader.buf).await?;
        }
    };
    match tokio::time::timeout(CLOSE_GRACE, handshake).await {
        Ok(result) => result,
        Err(_) => Err(format!("no connection.close-ok within {CLOSE_GRACE:?}").into()),
    }
}
