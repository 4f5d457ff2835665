//! An open AMQP connection's state machine: frames in, replies and deliveries out.
//!
//! The session owns the channel table and the outbound buffer. It never
//! touches the socket: the connection task feeds it frames and mailbox events
//! and writes whatever it leaves in [`Session::out`]. Every error becomes a
//! close here, in one place: channel errors close their channel, the rest the
//! connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amq_protocol::protocol::{AMQPClass, basic, channel, connection};
use bytes::BytesMut;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::auth::Access;
use crate::broker::mailbox::{Event, LazyMailbox};
use crate::broker::queue::ConnectionId;
use crate::broker::queue::Queue;
use crate::broker::vhost::VHost;
use crate::error::{AmqpError, AmqpResult, Scope};
use crate::protocol::frame::{
    FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD, Frame, decode_content_header,
    decode_method, describe_octets,
};
use crate::protocol::{Method, encode};
use crate::server::channel::{Channel, Context};
use crate::server::connection::ConnectionSettings;
use crate::store::Ticket;

/// Limits agreed in connection.tune / tune-ok.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// Highest channel number the client may use.
    pub channel_max: u16,
    /// Largest frame, framing included (0 = no limit).
    pub frame_max: u32,
    /// Heartbeat interval in seconds (0 = none).
    pub heartbeat: u16,
}

/// Where the connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Serving methods.
    Open,
    /// The server sent connection.close and waits for close-ok.
    Closing,
    /// Done: flush what is buffered and drop the socket.
    Closed,
}

/// The state of one open connection.
pub struct Session {
    id: ConnectionId,
    access: Access,
    vhost: Arc<VHost>,
    mailbox: LazyMailbox,
    /// Bytes waiting to be written to the socket.
    pub out: BytesMut,
    channels: HashMap<u16, Channel>,
    tuning: Tuning,
    consumer_cancel_notify: bool,
    max_message_size: u64,
    consumer_timeout: Option<Duration>,
    /// When the batch of frames or events being handled arrived.
    now: Instant,
    phase: Phase,
    /// The client sent connection.close (and was answered with close-ok).
    closed_by_client: bool,
    synced: Ticket,
    published: bool,
    crowded: Option<Arc<Queue>>,
    /// Messages published since [`Session::take_received`] last ran.
    received: u64,
    /// Channels opened or closed since [`Session::take_changed_channels`] last ran.
    channels_changed: bool,
}

impl Session {
    /// A session on `vhost`. Its mailbox is created by its first consumer
    /// (see [`Session::take_events`]).
    pub fn new(
        id: ConnectionId,
        access: Access,
        vhost: Arc<VHost>,
        tuning: Tuning,
        consumer_cancel_notify: bool,
        settings: ConnectionSettings,
    ) -> Session {
        Session {
            id,
            access,
            vhost,
            mailbox: LazyMailbox::default(),
            // Grows with what there is to send; an idle connection holds none.
            out: BytesMut::new(),
            channels: HashMap::new(),
            tuning,
            consumer_cancel_notify,
            max_message_size: settings.max_message_size,
            consumer_timeout: settings.consumer_timeout,
            now: Instant::now(),
            phase: Phase::Open,
            closed_by_client: false,
            synced: 0,
            published: false,
            crowded: None,
            received: 0,
            channels_changed: false,
        }
    }

    /// Starts handling a batch of frames or events that arrived at `now`.
    pub fn begin_batch(&mut self, now: Instant) {
        self.now = now;
    }

    /// How often unacknowledged deliveries are checked against their timeout.
    pub fn ack_check_interval(&self) -> Duration {
        let second = Duration::from_secs(1);
        self.consumer_timeout
            .map_or(second, |t| (t / 2).clamp(Duration::from_millis(10), second))
    }

    /// Closes, with RabbitMQ's 406, every channel holding a delivery
    /// unacknowledged for longer than its consumer timeout.
    pub fn close_timed_out_channels(&mut self, now: Instant) {
        let overdue: Vec<(u16, Duration)> = self
            .channels
            .iter()
            .filter_map(|(&id, channel)| {
                Some((id, channel.overdue_ack(now, self.consumer_timeout)?))
            })
            .collect();
        for (id, timeout) in overdue {
            tracing::warn!(channel = id, ?timeout, "delivery acknowledgement timed out");
            self.fail(
                id,
                AmqpError::precondition_failed(format!(
                    "delivery acknowledgement on channel {id} timed out. Timeout value used: {} ms. \
                     This timeout value can be configured, see consumers doc guide to learn more",
                    timeout.as_millis()
                )),
            );
        }
    }

    /// Whether the client closed the connection (rather than the broker).
    pub fn closed_by_client(&self) -> bool {
        self.closed_by_client
    }

    /// Where the connection is in its life.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Tells the client it is blocked by a resource alarm, or no longer.
    pub fn notify_blocked(&mut self, reason: Option<&str>) {
        let method = if let Some(reason) = reason {
            connection::AMQPMethod::Blocked(connection::Blocked {
                reason: reason.into(),
            })
        } else {
            connection::AMQPMethod::Unblocked(connection::Unblocked {})
        };
        self.send(0, AMQPClass::Connection(method));
    }

    /// A queue this connection published to that asks publishers to pause, if any.
    pub fn take_crowded_queue(&mut self) -> Option<Arc<Queue>> {
        self.crowded.take()
    }

    /// Whether the client has published (only publishers are blocked by alarms).
    pub fn has_published(&self) -> bool {
        self.published
    }

    /// How many messages were published since the last call (for statistics).
    pub fn take_received(&mut self) -> u64 {
        std::mem::take(&mut self.received)
    }

    /// The open channel numbers, if they changed since the last call.
    pub fn take_changed_channels(&mut self) -> Option<Vec<u16>> {
        std::mem::take(&mut self.channels_changed).then(|| self.channels.keys().copied().collect())
    }

    /// The receiving end of the mailbox, once the first consumer has created
    /// it (for the connection task to drain; handed out once).
    pub fn take_events(&mut self) -> Option<UnboundedReceiver<Event>> {
        self.mailbox.take_receiver()
    }

    /// Acknowledges `n` events the connection task drained from the mailbox.
    pub fn events_taken(&self, n: usize) {
        self.mailbox.taken(n);
    }

    fn parts(&mut self) -> (&mut HashMap<u16, Channel>, Context<'_>) {
        let ctx = Context {
            connection: self.id,
            vhost: &self.vhost,
            mailbox: &mut self.mailbox,
            out: &mut self.out,
            frame_max: self.tuning.frame_max,
            max_message_size: self.max_message_size,
            access: &self.access,
            synced: self.synced,
            crowded: &mut self.crowded,
            now: self.now,
            received: &mut self.received,
        };
        (&mut self.channels, ctx)
    }

    /// Handles one frame from the client.
    pub fn handle_frame(&mut self, frame: Frame) {
        let channel = frame.channel;
        let result = match self.phase {
            Phase::Open => self.dispatch(frame),
            Phase::Closing => {
                self.while_closing(frame);
                Ok(())
            }
            Phase::Closed => Ok(()),
        };
        if let Err(error) = result {
            self.fail(channel, error);
        }
    }

    /// After close was sent only close (answered) and close-ok (awaited) matter.
    fn while_closing(&mut self, frame: Frame) {
        if frame.kind != FRAME_METHOD || frame.channel != 0 {
            return;
        }
        match decode_method(&frame.payload) {
            Ok(AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) => {
                self.phase = Phase::Closed
            }
            Ok(AMQPClass::Connection(connection::AMQPMethod::Close(_))) => {
                self.send(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
                );
                self.phase = Phase::Closed;
                self.closed_by_client = true;
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, frame: Frame) -> AmqpResult<()> {
        match frame.kind {
            FRAME_HEARTBEAT if frame.channel == 0 => Ok(()),
            FRAME_HEARTBEAT => Err(AmqpError::unexpected_frame("type 8, all octets = <<>>")),
            FRAME_METHOD => {
                let method = decode_method(&frame.payload)?;
                let (class_id, method_id) =
                    (method.get_amqp_class_id(), method.get_amqp_method_id());
                self.published |= matches!(method, AMQPClass::Basic(basic::AMQPMethod::Publish(_)));
                if let Some(size) = qos_prefetch_size(&method, &frame.payload) {
                    return Err(
                        AmqpError::not_implemented(format!("prefetch_size!=0 ({size})"))
                            .in_method(class_id, method_id),
                    );
                }
                let result = if frame.channel == 0 {
                    self.connection_method(method)
                } else {
                    self.channel_method(frame.channel, method)
                };
                result.map_err(|e| e.in_method(class_id, method_id))
            }
            FRAME_HEADER | FRAME_BODY if frame.channel == 0 => Err(AmqpError::unexpected_frame(
                format!("type {}, {}", frame.kind, describe_octets(&frame.payload)),
            )),
            _ => self.content(frame),
        }
    }

    fn connection_method(&mut self, method: Method) -> AmqpResult<()> {
        match method {
            AMQPClass::Connection(connection::AMQPMethod::Close(close)) => {
                tracing::debug!(code = close.reply_code, text = %close.reply_text, "client closed connection");
                self.send(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
                );
                self.release_channels();
                self.phase = Phase::Closed;
                self.closed_by_client = true;
                Ok(())
            }
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => Ok(()),
            _ => Err(AmqpError::channel_error(
                "unexpected method in connection state running",
            )),
        }
    }

    fn channel_method(&mut self, id: u16, method: Method) -> AmqpResult<()> {
        match method {
            AMQPClass::Channel(channel::AMQPMethod::Open(_))
                if !self.channels.contains_key(&id) =>
            {
                // RabbitMQ limits how many channels are open, not their numbers.
                let open = self.channels.len();
                if open >= usize::from(self.tuning.channel_max) {
                    return Err(AmqpError::not_allowed(format!(
                        "number of channels opened ({open}) has reached the negotiated channel_max ({})",
                        self.tuning.channel_max
                    ))
                    .in_method(0, 0));
                }
                self.channels.insert(id, Channel::new(id));
                self.channels_changed = true;
                self.send(
                    id,
                    AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
                );
                Ok(())
            }
            AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                let (channels, mut ctx) = self.parts();
                if let Some(mut channel) = channels.remove(&id) {
                    channel.release(&mut ctx);
                    self.channels_changed = true;
                }
                self.send(
                    id,
                    AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                );
                Ok(())
            }
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => {
                if self.channels.get(&id).is_some_and(Channel::is_closing) {
                    self.channels.remove(&id);
                    self.channels_changed = true;
                }
                Ok(())
            }
            AMQPClass::Connection(_) => Err(AmqpError::command_invalid("unimplemented method")),
            method => {
                let (channels, mut ctx) = self.parts();
                match channels.get_mut(&id) {
                    None => Err(AmqpError::channel_error("expected 'channel.open'")),
                    Some(channel) if channel.is_closing() => Ok(()),
                    Some(channel) => channel.handle_method(&mut ctx, method),
                }
            }
        }
    }

    fn content(&mut self, frame: Frame) -> AmqpResult<()> {
        let (channels, mut ctx) = self.parts();
        let no_publish =
            || AmqpError::unexpected_frame("expected method frame, got non method frame instead");
        let Some(channel) = channels.get_mut(&frame.channel) else {
            return Err(no_publish());
        };
        if channel.is_closing() {
            return Ok(());
        }
        if !channel.is_publishing() {
            return Err(no_publish());
        }
        let result = if frame.kind == FRAME_HEADER {
            decode_content_header(&frame.payload)
                .and_then(|header| channel.handle_header(&mut ctx, header, frame.payload))
        } else {
            channel.handle_body(&mut ctx, frame.payload)
        };
        // Content belongs to the pending basic.publish; RabbitMQ reports its errors against it.
        result.map_err(|e| e.in_method(60, 40))
    }

    /// Handles an event from the mailbox.
    pub fn handle_event(&mut self, event: Event) {
        let notify = self.consumer_cancel_notify;
        let (channels, mut ctx) = self.parts();
        match event {
            Event::Deliver {
                channel,
                consumer_tag,
                queue,
                message,
                credit,
            } => match channels.get_mut(&channel) {
                Some(ch) => ch.deliver(&mut ctx, &consumer_tag, queue, message, credit),
                None => {
                    if let Some(credit) = credit {
                        credit.release(1);
                    }
                    queue.requeue([message]);
                }
            },
            Event::ConsumerCancelled {
                channel,
                consumer_tag,
            } => {
                if let Some(ch) = channels.get_mut(&channel) {
                    ch.consumer_cancelled(&mut ctx, &consumer_tag, notify);
                }
            }
        }
    }

    /// Whether some reply waits for the store to sync (then the connection watches it).
    pub fn awaits_disk(&self) -> bool {
        self.channels.values().any(Channel::awaits_disk)
    }

    /// Records how far the store has synced; replies waiting for it go out at the batch end.
    pub fn disk_synced(&mut self, ticket: Ticket) {
        self.synced = ticket;
    }

    /// Called after each batch of frames: flushes coalesced confirms and re-dispatches.
    pub fn end_of_batch(&mut self) {
        let (channels, mut ctx) = self.parts();
        for channel in channels.values_mut() {
            channel.end_of_batch(&mut ctx);
        }
    }

    /// Closes the connection from the server side with `error`.
    pub fn close(&mut self, error: AmqpError) {
        if self.phase != Phase::Open {
            return;
        }
        let close = connection::Close {
            reply_code: error.code as u16,
            reply_text: error.reply_text(),
            class_id: error.ids().0,
            method_id: error.ids().1,
        };
        self.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Close(close)),
        );
        self.release_channels();
        self.phase = Phase::Closing;
    }

    fn fail(&mut self, channel_id: u16, error: AmqpError) {
        if error.scope == Scope::Connection || channel_id == 0 {
            tracing::warn!(error = %error, "closing connection");
            self.close(error);
            return;
        }
        tracing::debug!(channel = channel_id, error = %error, "closing channel");
        let close = channel::Close {
            reply_code: error.code as u16,
            reply_text: error.reply_text(),
            class_id: error.ids().0,
            method_id: error.ids().1,
        };
        self.send(
            channel_id,
            AMQPClass::Channel(channel::AMQPMethod::Close(close)),
        );
        let (channels, mut ctx) = self.parts();
        if let Some(channel) = channels.get_mut(&channel_id) {
            channel.close_by_server(&mut ctx);
        }
    }

    /// Releases every channel's consumers and unacknowledged messages, and exclusive queues.
    pub fn release_channels(&mut self) {
        let (channels, mut ctx) = self.parts();
        for (_, mut channel) in channels.drain() {
            channel.release(&mut ctx);
        }
        self.vhost.drop_exclusive_queues(self.id);
    }

    fn send(&mut self, channel: u16, method: Method) {
        encode::method(&mut self.out, channel, &method);
    }
}

/// A non-zero `prefetch_size` of a `basic.qos` (amq-protocol drops the field; RabbitMQ refuses it).
fn qos_prefetch_size(method: &Method, payload: &[u8]) -> Option<u32> {
    if !matches!(method, AMQPClass::Basic(basic::AMQPMethod::Qos(_))) {
        return None;
    }
    let size = u32::from_be_bytes(payload.get(4..8)?.try_into().ok()?);
    (size != 0).then_some(size)
}
