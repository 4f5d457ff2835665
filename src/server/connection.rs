//! One client connection: a single task that reads frames, drains the
//! mailbox, and writes the outbound buffer, all in one `select!` loop.
//!
//! Keeping the whole connection in one task means channel state needs no
//! locks and many deliveries leave in one write. Backpressure falls out of the
//! loop: while the outbound buffer is over its limit the task stops reading
//! the socket and stops draining its mailbox, so a client that does not read
//! stops being served, and its queues keep their messages.
//!
//! The same code serves plain TCP and TLS: it is generic over [`Transport`].
//!
//! An idle connection holds little memory: its read buffer starts small and
//! moves to large chunks only once a read fills it, its outbound buffer grows
//! with what there is to send, its mailbox appears with its first consumer,
//! and buffers left empty for a whole heartbeat interval are released.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::Instrument;

use crate::broker::alarms::AlarmState;

use crate::broker::Broker;
use crate::broker::connections::Registration;
use crate::broker::mailbox::Event;
use crate::broker::queue::Queue;
use crate::error::{AmqpError, ReplyCode};
use crate::protocol::encode;
use crate::protocol::frame::split_frame;
use crate::server::handshake::{self, Limits, Refused};
use crate::server::session::{Phase, Session};
use crate::server::transport::Transport;
use crate::store::Ticket;

/// Outbound bytes above which the connection stops reading and delivering.
const OUTBOUND_HIGH_WATER: usize = 1 << 20;
/// Read buffer of a client that sends little at a time: a method or two, a
/// heartbeat, a few acks. A read that fills it shows the client is busy.
const QUIET_READ: usize = 1024;
/// Read buffer growth for a busy client: one read takes up to this much.
const BUSY_READ: usize = 64 * 1024;
/// Room below which a busy client's read buffer grows by another chunk.
/// Message bodies are slices of the read buffer and keep its allocation alive
/// while they are queued, so the room left unused at the end of each chunk is
/// held too: a small threshold keeps that waste small.
const BUSY_MIN_ROOM: usize = 2 * 1024;
/// Events taken from the mailbox per turn of the loop.
const EVENT_BATCH: usize = 256;
/// Longest a publisher to a crowded queue pauses; bounded so that a connection
/// that also consumes (and whose acks drain the queue) always makes progress.
const FLOW_PAUSE: Duration = Duration::from_millis(100);
/// How long the broker waits for close-ok after sending connection.close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a shutting-down broker waits for close-ok: the close is a courtesy
/// then, and some clients never answer it.
const SHUTDOWN_CLOSE_TIMEOUT: Duration = Duration::from_millis(200);
/// Longest a closed connection waits for the client to hang up.
const LINGER: Duration = Duration::from_secs(1);
/// RabbitMQ's handshake timeout.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-connection settings from the broker configuration.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionSettings {
    /// Limits offered in connection.tune.
    pub limits: Limits,
    /// Largest message body accepted.
    pub max_message_size: u64,
    /// How long a delivery may stay unacknowledged, unless its queue says otherwise.
    pub consumer_timeout: Option<Duration>,
}

/// Serves one client stream until it closes or the broker shuts down.
pub async fn serve<S: Transport>(
    mut stream: S,
    peer: SocketAddr,
    broker: Arc<Broker>,
    settings: ConnectionSettings,
    shutdown: watch::Receiver<bool>,
) {
    let mut inbuf = BytesMut::with_capacity(QUIET_READ);
    let handshake = handshake::handshake(&mut stream, &mut inbuf, &broker, settings.limits, peer);
    let opened = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(opened)) => opened,
        Ok(Err(Refused::Error { error, send_close })) => {
            tracing::warn!(%peer, error = %error, "connection refused during handshake");
            if send_close {
                let _ = handshake::refuse(&mut stream, &mut inbuf, &error).await;
            }
            return;
        }
        Ok(Err(Refused::BadHeader)) => {
            tracing::warn!(%peer, "bad protocol header; sent ours and closed");
            return;
        }
        Ok(Err(Refused::Io(e))) => {
            tracing::debug!(%peer, error = %e, "connection ended during handshake");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, "handshake timed out");
            return;
        }
    };
    let span = tracing::info_span!("connection", %peer, user = opened.access.user(), vhost = opened.vhost.name());
    let synced = opened.vhost.store().synced();
    let session = Session::new(
        opened.registration.id(),
        opened.access,
        opened.vhost,
        opened.tuning,
        opened.consumer_cancel_notify,
        settings,
    );
    let frame_max = opened.tuning.frame_max;
    let heartbeat = Duration::from_secs(opened.tuning.heartbeat.into());
    let watches = Watches {
        shutdown,
        synced,
        alarms: broker.alarms().state(),
        blocked_notify: opened.blocked_notify,
        registration: opened.registration,
    };
    run_session(stream, inbuf, session, frame_max, heartbeat, watches)
        .instrument(span)
        .await;
}

/// The open connection's loop, until the client or the broker ends it.
async fn run_session<S: Transport>(
    stream: S,
    mut inbuf: BytesMut,
    mut session: Session,
    frame_max: u32,
    heartbeat: Duration,
    watches: Watches,
) {
    let Watches {
        mut shutdown,
        mut synced,
        mut alarms,
        blocked_notify,
        mut registration,
    } = watches;
    let mut holding = false;
    // A crowded queue this connection publishes to, and until when to wait for it.
    let mut paused: Option<(Arc<Queue>, Instant)> = None;
    tracing::info!(
        heartbeat = heartbeat.as_secs(),
        frame_max,
        "connection opened"
    );
    let (mut reader, mut writer) = stream.into_halves();
    // Like RabbitMQ, send at half the interval; a peer silent for two whole
    // intervals is gone.
    let tick_every = if heartbeat.is_zero() {
        Duration::from_secs(3600)
    } else {
        heartbeat / 2
    };
    let mut heartbeat_tick = tokio::time::interval_at(Instant::now() + tick_every, tick_every);
    heartbeat_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_read = Instant::now();
    let mut wrote_since_tick = false;
    let mut close_deadline: Option<Instant> = None;
    // Written bytes a buffering transport (TLS) may still hold; never set for TCP.
    let mut unflushed = false;
    // The mailbox's receiving end, once a consumer has created the mailbox.
    let mut events = None;
    // Allocated by the first `recv_many`: a connection that never consumes has none.
    let mut batch = Vec::new();
    // A read has filled the buffer: the client sends more than a little at a time.
    let mut busy = false;
    let mut read_since_tick = false;
    // Unacknowledged deliveries are checked against their consumer timeout this often.
    let ack_check_every = session.ack_check_interval();
    let mut ack_check = tokio::time::interval_at(Instant::now() + ack_check_every, ack_check_every);
    ack_check.set_missed_tick_behavior(MissedTickBehavior::Delay);

    loop {
        if session.phase() == Phase::Closed && session.out.is_empty() && !unflushed {
            if session.closed_by_client() {
                // Closed for the client: it no longer counts against connection limits.
                drop(registration);
                linger(&mut reader, &mut inbuf).await;
            }
            break;
        }
        if session.phase() == Phase::Closing && close_deadline.is_none() {
            close_deadline = Some(Instant::now() + CLOSE_TIMEOUT);
        }
        if events.is_none() {
            events = session.take_events();
        }
        let room = session.out.len() < OUTBOUND_HIGH_WATER;
        // A resource alarm stops reading from connections that publish.
        let alarm = *alarms.borrow();
        let hold = alarm.is_set() && session.has_published();
        if hold != holding {
            holding = hold;
            tracing::info!(
                blocked = hold,
                "publishing connection blocked by a resource alarm"
            );
            if blocked_notify {
                session.notify_blocked(hold.then(|| alarm.reason()));
            }
        }
        let reading = room && session.phase() != Phase::Closed && !holding && paused.is_none();
        let spare = inbuf.capacity() - inbuf.len();
        if busy && spare < BUSY_MIN_ROOM {
            inbuf.reserve(BUSY_READ);
        } else if spare == 0 {
            inbuf.reserve(QUIET_READ);
        }
        let read_room = inbuf.capacity() - inbuf.len();
        tokio::select! {
            read = reader.read_buf(&mut inbuf), if reading => {
                match read {
                    Ok(0) | Err(_) => {
                        if session.phase() == Phase::Open {
                            tracing::info!("client closed the socket without connection.close");
                        }
                        break;
                    }
                    Ok(n) => {
                        busy |= n == read_room;
                        read_since_tick = true;
                        last_read = Instant::now();
                        session.begin_batch(last_read.into_std());
                        loop {
                            match split_frame(&mut inbuf, frame_max) {
                                Ok(Some(frame)) => session.handle_frame(frame),
                                Ok(None) => break,
                                Err(error) => {
                                    session.close(error);
                                    inbuf.clear();
                                    break;
                                }
                            }
                        }
                        session.end_of_batch();
                        registration.count_received(session.take_received());
                        if let Some(channels) = session.take_changed_channels() {
                            registration.set_channels(channels);
                        }
                        wrote_since_tick |= !session.out.is_empty();
                        if let Some(queue) = session.take_crowded_queue() {
                            paused = Some((queue, Instant::now() + FLOW_PAUSE));
                        }
                    }
                }
            }
            taken = recv_events(&mut events, &mut batch), if room => {
                session.begin_batch(std::time::Instant::now());
                for event in batch.drain(..) {
                    session.handle_event(event);
                }
                session.events_taken(taken);
                wrote_since_tick |= !session.out.is_empty();
            }
            written = write_or_flush(&mut writer, &session.out), if !session.out.is_empty() || unflushed => {
                match written {
                    Ok(_) if session.out.is_empty() => unflushed = false,
                    Ok(n) => {
                        session.out.advance(n);
                        unflushed = S::BUFFERS_WRITES;
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "socket write failed");
                        break;
                    }
                }
            }
            _ = heartbeat_tick.tick(), if !heartbeat.is_zero() => {
                if holding {
                    // A blocked connection is not read, so its silence proves
                    // nothing; RabbitMQ pauses the heartbeat monitor likewise.
                    last_read = Instant::now();
                }
                if last_read.elapsed() > heartbeat * 2 {
                    tracing::warn!(timeout = ?heartbeat, "missed heartbeats from client, closing");
                    break;
                }
                if !read_since_tick && !wrote_since_tick {
                    // Quiet for a whole interval: give the buffers back. A read
                    // buffer some queued bodies still share is freed with them.
                    release_if_empty(&mut inbuf);
                    release_if_empty(&mut session.out);
                    busy = false;
                }
                if !wrote_since_tick {
                    encode::heartbeat(&mut session.out);
                }
                wrote_since_tick = false;
                read_since_tick = false;
            }
            _ = ack_check.tick(), if session.phase() == Phase::Open => {
                session.close_timed_out_channels(std::time::Instant::now());
                wrote_since_tick |= !session.out.is_empty();
            }
            changed = synced.changed(), if session.awaits_disk() => {
                if changed.is_ok() {
                    session.disk_synced(*synced.borrow_and_update());
                    session.end_of_batch();
                }
            }
            Ok(()) = alarms.changed() => {}
            () = flow_resumed(&paused), if paused.is_some() => paused = None,
            _ = sleep_until(close_deadline) => {
                tracing::info!("no close-ok from client; closing socket");
                break;
            }
            reason = registration.closed_by_broker(), if session.phase() == Phase::Open => {
                session.close(AmqpError::new(ReplyCode::ConnectionForced, reason));
            }
            changed = shutdown.changed(), if session.phase() == Phase::Open => {
                if changed.is_err() || *shutdown.borrow() {
                    session.close(AmqpError::new(
                        ReplyCode::ConnectionForced,
                        "broker forced connection closure with reason 'shutdown'",
                    ));
                    close_deadline = Some(Instant::now() + SHUTDOWN_CLOSE_TIMEOUT);
                }
            }
        }
    }
    session.release_channels();
    let _ = tokio::time::timeout(Duration::from_secs(1), writer.write_all(&session.out)).await;
    // Shutting down sends what a buffering transport still holds (and TLS's
    // close_notify), which a client that stopped reading could stall.
    let _ = tokio::time::timeout(Duration::from_secs(1), writer.shutdown()).await;
    tracing::info!("connection closed");
}

/// What a connection watches besides its socket and mailbox.
struct Watches {
    /// Flips to true when the broker shuts down.
    shutdown: watch::Receiver<bool>,
    /// The highest store ticket on disk (for confirms of persistent messages).
    synced: watch::Receiver<Ticket>,
    /// Which resource alarms are set; publishers are blocked while any is.
    alarms: watch::Receiver<AlarmState>,
    /// The client asked for connection.blocked / connection.unblocked.
    blocked_notify: bool,
    /// The connection's place among the open ones; the broker closes it through this.
    registration: Registration,
}

/// Writes what it can of `out`, or, with `out` empty, flushes what the
/// transport still holds (a write sends held bytes first, so a flush is only
/// needed once everything is written).
async fn write_or_flush(writer: &mut (impl AsyncWrite + Unpin), out: &[u8]) -> io::Result<usize> {
    if out.is_empty() {
        writer.flush().await?;
        Ok(0)
    } else {
        writer.write(out).await
    }
}

/// Takes the next batch of mailbox events; pending while there is no mailbox.
async fn recv_events(
    events: &mut Option<UnboundedReceiver<Event>>,
    batch: &mut Vec<Event>,
) -> usize {
    match events {
        Some(events) => events.recv_many(batch, EVENT_BATCH).await,
        None => std::future::pending().await,
    }
}

/// Frees a buffer with nothing in it.
fn release_if_empty(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > 0 {
        *buf = BytesMut::new();
    }
}

/// Resolves when a paused publisher may read again: its queue drained, or the pause ran out.
async fn flow_resumed(paused: &Option<(Arc<Queue>, Instant)>) {
    if let Some((queue, until)) = paused {
        tokio::select! {
            () = queue.drained() => {}
            () = tokio::time::sleep_until(*until) => {}
        }
    }
}

/// After the close handshake, reads and discards until the client hangs up
/// (at most [`LINGER`]), as RabbitMQ does: frames the client sent before it
/// saw close-ok (acks, typically) then meet an open socket, not a reset one.
async fn linger(reader: &mut (impl AsyncReadExt + Unpin), inbuf: &mut BytesMut) {
    let _ = tokio::time::timeout(LINGER, async {
        loop {
            inbuf.clear();
            if !matches!(reader.read_buf(inbuf).await, Ok(n) if n > 0) {
                return;
            }
        }
    })
    .await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
