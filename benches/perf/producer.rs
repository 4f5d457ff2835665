//! A producer: one connection, one channel, batched publishes.
//!
//! The writer stamps as many messages as fit in one write (bounded by the
//! confirm window and the rate limit), so a producer costs one syscall per
//! ~64 KiB. A reader task on the other socket half settles confirms and
//! notices the broker closing the connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use amq_protocol::protocol::{AMQPClass, confirm};
use bytes::{Buf, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Notify, watch};
use warren::protocol::encode;
use warren::protocol::frame::{FRAME_METHOD, decode_method};

use crate::Result;
use crate::confirm::ConfirmWindow;
use crate::conn::{self, Conn, Reader, close_method, closed_by_broker, is_close_ok, unexpected};
use crate::pace::Pacer;
use crate::stats::Counters;
use crate::uri::Uri;
use crate::wire::{self, BASIC_ACK, BASIC_NACK, PublishTemplate};
use crate::{clock, topology::Topology};

/// Bytes of messages encoded per write.
const WRITE_BATCH: usize = 64 * 1024;
/// How long a write in progress at stop time may take to finish.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The channel producers publish on.
const CHANNEL: u16 = 1;

/// What a producer does.
#[derive(Clone, Copy)]
pub struct Settings {
    /// Message body size.
    pub size: u32,
    /// Persistent delivery mode.
    pub persistent: bool,
    /// Maximum unconfirmed messages, with confirms on.
    pub confirm: Option<u64>,
    /// Messages per second.
    pub rate: Option<u32>,
    /// Messages to publish before stopping.
    pub count: Option<u64>,
}

/// A connected producer, ready to publish.
pub struct Producer {
    reader: Reader,
    writer: OwnedWriteHalf,
    template: PublishTemplate,
    settings: Settings,
}

/// Confirm progress shared by the reader task and the writer.
#[derive(Default)]
struct Settled {
    count: AtomicU64,
    reader_done: AtomicBool,
    notify: Notify,
}

impl Producer {
    /// Connects producer `i` and puts its channel in confirm mode if asked.
    pub async fn connect(
        uri: &Uri,
        topology: &Topology,
        i: usize,
        settings: Settings,
    ) -> Result<Self> {
        let mut conn = Conn::open(uri).await?;
        conn.open_channel(CHANNEL).await?;
        if settings.confirm.is_some() {
            let select = AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                nowait: false,
            }));
            match conn.call(CHANNEL, select).await? {
                AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)) => {}
                other => return Err(unexpected(&other, "confirm.select-ok")),
            }
        }
        let template = PublishTemplate::new(
            CHANNEL,
            &topology.publish_for(i),
            settings.persistent,
            settings.size as usize,
            conn.frame_max(),
        );
        let (reader, writer) = conn.split();
        Ok(Producer {
            reader,
            writer,
            template,
            settings,
        })
    }

    /// Publishes until `stop` or the message count; returns when publishing
    /// ended (after the last confirm, with confirms on).
    pub async fn run(
        self,
        counters: Arc<Counters>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<Instant> {
        let Producer {
            reader,
            mut writer,
            template,
            settings,
        } = self;
        let settled = Arc::new(Settled::default());
        let replies = tokio::spawn(read_replies(reader, settled.clone(), counters.clone()));
        let outcome = publish(
            &mut writer,
            &template,
            settings,
            &settled,
            &counters,
            &mut stop,
        )
        .await;
        counters.producer_done();
        let finished = Instant::now();
        match outcome {
            Ok(true) => {
                // A broker still busy with earlier frames may neither read nor
                // answer in time; the run is over either way.
                let mut replies = replies;
                let close = async {
                    let mut out = BytesMut::new();
                    encode::method(&mut out, 0, &close_method());
                    writer.write_all(&out).await?;
                    (&mut replies).await?
                };
                let closed = tokio::time::timeout(STOP_GRACE, close).await;
                replies.abort();
                match closed {
                    Ok(closed) => closed?,
                    Err(_) => discard_unsent(&writer),
                }
                Ok(finished)
            }
            // Abandoned mid-write at stop: the socket cannot be closed politely.
            Ok(false) => {
                replies.abort();
                discard_unsent(&writer);
                Ok(finished)
            }
            Err(e) => {
                replies.abort();
                Err(e)
            }
        }
    }
}

/// Makes closing the socket reset the connection, dropping what the kernel
/// still holds for the broker, so a finished run stops loading it.
fn discard_unsent(writer: &OwnedWriteHalf) {
    let _ = writer.as_ref().set_zero_linger();
}

/// The publishing loop; `Ok(false)` when stopped in the middle of a write.
async fn publish(
    writer: &mut OwnedWriteHalf,
    template: &PublishTemplate,
    settings: Settings,
    settled: &Settled,
    counters: &Counters,
    stop: &mut watch::Receiver<bool>,
) -> Result<bool> {
    let per_write = (WRITE_BATCH / template.len()).max(1) as u64;
    let limit = settings.count.unwrap_or(u64::MAX);
    let mut pacer = settings.rate.map(Pacer::new);
    let mut out = BytesMut::with_capacity(per_write as usize * template.len());
    let mut sent = 0u64;
    while sent < limit && !*stop.borrow() {
        if settled.reader_done.load(Relaxed) {
            return Err("the connection closed while publishing".into());
        }
        let mut n = per_write.min(limit - sent);
        if let Some(max) = settings.confirm {
            let outstanding = sent - settled.count.load(Relaxed);
            if outstanding >= max {
                tokio::select! {
                    _ = settled.notify.notified() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            n = n.min(max - outstanding);
        }
        if let Some(pacer) = &mut pacer {
            let allowed = pacer.allowed(sent, Instant::now());
            if allowed == 0 {
                tokio::select! {
                    _ = tokio::time::sleep_until(pacer.next_due(sent).into()) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            n = n.min(allowed);
        }
        let stamp = clock::now_ns();
        for _ in 0..n {
            template.append(&mut out, stamp);
        }
        if !write_or_stop(writer, &out, stop).await? {
            return Ok(false);
        }
        out.clear();
        sent += n;
        counters.published.fetch_add(n, Relaxed);
    }
    if settings.confirm.is_some() && sent == limit {
        while settled.count.load(Relaxed) < sent && !*stop.borrow() {
            if settled.reader_done.load(Relaxed) {
                return Err("the connection closed while awaiting confirms".into());
            }
            tokio::select! {
                _ = settled.notify.notified() => {}
                _ = stop.changed() => {}
            }
        }
    }
    Ok(true)
}

/// Writes `out`; a write still blocked `STOP_GRACE` after `stop` is
/// abandoned (`Ok(false)`), since the broker has stopped reading.
async fn write_or_stop(
    writer: &mut OwnedWriteHalf,
    out: &[u8],
    stop: &mut watch::Receiver<bool>,
) -> Result<bool> {
    let write = writer.write_all(out);
    tokio::pin!(write);
    tokio::select! {
        written = &mut write => written?,
        _ = stop.changed() => match tokio::time::timeout(STOP_GRACE, write).await {
            Ok(written) => written?,
            Err(_) => return Ok(false),
        },
    }
    Ok(true)
}

/// Reads confirms and close handshakes until the connection ends.
async fn read_replies(
    mut reader: Reader,
    settled: Arc<Settled>,
    counters: Arc<Counters>,
) -> Result<()> {
    let result = settle_loop(&mut reader, &settled, &counters).await;
    settled.reader_done.store(true, Relaxed);
    settled.notify.notify_one();
    result
}

async fn settle_loop(reader: &mut Reader, settled: &Settled, counters: &Counters) -> Result<()> {
    let mut window = ConfirmWindow::new();
    loop {
        let (mut acked, mut nacked, mut at) = (0, 0, 0);
        while let Some((frame, len)) = wire::scan(&reader.buf[at..])? {
            at += len;
            if frame.kind != FRAME_METHOD {
                continue;
            }
            let id = wire::method_id(frame.payload);
            if id == BASIC_ACK || id == BASIC_NACK {
                let (tag, multiple) = wire::ack_fields(frame.payload).ok_or("short basic.ack")?;
                let newly = window.settle(tag, multiple);
                if id == BASIC_ACK {
                    acked += newly
                } else {
                    nacked += newly
                }
                continue;
            }
            let method = decode_method(frame.payload).map_err(|e| format!("{e:?}"))?;
            if is_close_ok(&method) {
                return Ok(());
            }
            if let Some(reason) = closed_by_broker(&method) {
                return Err(reason.into());
            }
        }
        reader.buf.advance(at);
        if acked + nacked > 0 {
            counters.confirmed.fetch_add(acked, Relaxed);
            counters.nacked.fetch_add(nacked, Relaxed);
            settled.count.store(window.count(), Relaxed);
            settled.notify.notify_one();
        }
        conn::fill(&mut reader.half, &mut reader.buf).await?;
    }
}
