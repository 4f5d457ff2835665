//! The connection handshake: protocol header, start/start-ok, tune/tune-ok, open/open-ok.
//!
//! Written as straight-line async code because nothing else can happen on a
//! connection before it is open. Any deviation ends the connection the way
//! RabbitMQ ends it.

use std::net::SocketAddr;
use std::sync::Arc;

use amq_protocol::protocol::{AMQPClass, connection};
use amq_protocol::types::parsing::parse_field_table;
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::auth::Access;
use crate::broker::Broker;
use crate::broker::connections::{ConnectionDetails, Registration};
use crate::broker::vhost::VHost;
use crate::error::{AmqpError, AmqpResult};
use crate::protocol::frame::{FRAME_HEARTBEAT, FRAME_METHOD, split_frame};
use crate::protocol::{AMQPValue, FieldTable, LongString, Method, PROTOCOL_HEADER, encode, frame};
use crate::server::session::Tuning;
use crate::server::transport::Transport;

/// Server limits offered in connection.tune.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Highest channel number offered.
    pub channel_max: u16,
    /// Largest frame offered.
    pub frame_max: u32,
    /// Heartbeat interval offered, in seconds.
    pub heartbeat: u16,
}

/// The smallest frame_max a client may ask for (spec 4.2.3).
const FRAME_MIN_SIZE: u32 = 4096;

/// An opened connection, ready for channels.
pub struct Opened {
    /// The authenticated user acting in the vhost.
    pub access: Access,
    /// The vhost the client opened.
    pub vhost: Arc<VHost>,
    /// The connection's place among the open ones (counted against limits).
    pub registration: Registration,
    /// Negotiated limits.
    pub tuning: Tuning,
    /// The client asked to be told when the server cancels its consumers.
    pub consumer_cancel_notify: bool,
    /// The client understands connection.blocked / connection.unblocked.
    pub blocked_notify: bool,
}

/// How a handshake ended without opening.
pub enum Refused {
    /// The socket failed or the peer went away.
    Io(std::io::Error),
    /// The peer spoke something else: our header was sent back.
    BadHeader,
    /// A protocol error to report with connection.close (if `send_close`) before closing.
    Error {
        /// The error.
        error: AmqpError,
        /// Whether the client is told with connection.close or the socket just closes.
        send_close: bool,
    },
}

impl From<std::io::Error> for Refused {
    fn from(e: std::io::Error) -> Refused {
        Refused::Io(e)
    }
}

impl From<AmqpError> for Refused {
    fn from(error: AmqpError) -> Refused {
        Refused::Error {
            error,
            send_close: true,
        }
    }
}

/// Runs the handshake on a fresh client stream (TCP, or TLS once its own handshake is done).
pub async fn handshake<S: Transport>(
    stream: &mut S,
    buf: &mut BytesMut,
    broker: &Broker,
    limits: Limits,
    peer: SocketAddr,
) -> Result<Opened, Refused> {
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).await?;
    if &header != PROTOCOL_HEADER {
        stream.write_all(PROTOCOL_HEADER).await?;
        stream.flush().await?;
        return Err(Refused::BadHeader);
    }
    send(
        stream,
        AMQPClass::Connection(connection::AMQPMethod::Start(start())),
    )
    .await?;

    // Until tune-ok, frames are limited to the spec's minimum frame size.
    let start_ok = match read_method(stream, buf, FRAME_MIN_SIZE).await? {
        AMQPClass::Connection(connection::AMQPMethod::StartOk(start_ok)) => start_ok,
        other => return Err(unexpected(&other, "connection.start-ok").into()),
    };
    let capabilities = client_capabilities(&start_ok.client_properties);
    let mechanism = start_ok.mechanism.as_str().to_string();
    // Like RabbitMQ, a response that cannot even be read gets no close frame: the socket just closes.
    let (user, password) =
        credentials(&mechanism, start_ok.response.as_bytes()).map_err(|error| Refused::Error {
            error,
            send_close: false,
        })?;
    if let Err(reason) = broker
        .access_control()
        .authenticate(&user, &password, peer.ip())
    {
        tracing::warn!(%peer, user, ?reason, "login refused");
        let error = AmqpError::access_refused(format!(
            "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
        ))
        .on_connection();
        return Err(Refused::Error {
            error,
            send_close: capabilities.authentication_failure_close,
        });
    }

    let tune = connection::Tune {
        channel_max: limits.channel_max,
        frame_max: limits.frame_max,
        heartbeat: limits.heartbeat,
    };
    send(
        stream,
        AMQPClass::Connection(connection::AMQPMethod::Tune(tune)),
    )
    .await?;
    let tune_ok = match read_method(stream, buf, FRAME_MIN_SIZE).await? {
        AMQPClass::Connection(connection::AMQPMethod::TuneOk(tune_ok)) => tune_ok,
        other => return Err(unexpected(&other, "connection.tune-ok").into()),
    };
    let tuning = negotiate(&tune_ok, limits)?;

    let open = match read_method(stream, buf, tuning.frame_max).await? {
        AMQPClass::Connection(connection::AMQPMethod::Open(open)) => open,
        other => return Err(unexpected(&other, "connection.open").into()),
    };
    let details = ConnectionDetails {
        peer,
        local: stream.local_addr()?,
        client_properties: start_ok.client_properties.clone(),
        auth_mechanism: mechanism,
        frame_max: tuning.frame_max,
        channel_max: tuning.channel_max,
        heartbeat: tuning.heartbeat,
    };
    let (vhost, access, registration) = broker
        .open_connection(&user, open.virtual_host.as_str(), details)
        .map_err(|e| e.in_method(10, 40))?;
    send(
        stream,
        AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
    )
    .await?;
    Ok(Opened {
        access,
        vhost,
        registration,
        tuning,
        consumer_cancel_notify: capabilities.consumer_cancel_notify,
        blocked_notify: capabilities.connection_blocked,
    })
}

/// Sends connection.close for a refused handshake and waits briefly for close-ok.
pub async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    error: &AmqpError,
) -> std::io::Result<()> {
    let close = connection::Close {
        reply_code: error.code as u16,
        reply_text: error.reply_text(),
        class_id: error.ids().0,
        method_id: error.ids().1,
    };
    send(
        stream,
        AMQPClass::Connection(connection::AMQPMethod::Close(close)),
    )
    .await?;
    let wait = async {
        loop {
            match read_method(stream, buf, 0).await {
                Ok(AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), wait).await;
    Ok(())
}

fn start() -> connection::Start {
    let mut capabilities = FieldTable::default();
    for name in [
        "publisher_confirms",
        "basic.nack",
        "consumer_cancel_notify",
        "per_consumer_qos",
        "authentication_failure_close",
        "exchange_exchange_bindings",
        "connection.blocked",
        "consumer_priorities",
        "direct_reply_to",
    ] {
        capabilities.insert(name.into(), AMQPValue::Boolean(true));
    }
    let mut properties = FieldTable::default();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()));
    properties.insert("capabilities".into(), AMQPValue::FieldTable(capabilities));
    properties.insert("product".into(), text("Warren"));
    properties.insert("version".into(), text(env!("CARGO_PKG_VERSION")));
    properties.insert("platform".into(), text("Rust"));
    properties.insert("cluster_name".into(), text("warren"));
    properties.insert("copyright".into(), text("Copyright (c) the Warren authors"));
    properties.insert("information".into(), text("Warren, an AMQP 0-9-1 broker"));
    connection::Start {
        version_major: 0,
        version_minor: 9,
        server_properties: properties,
        mechanisms: "PLAIN AMQPLAIN".into(),
        locales: "en_US".into(),
    }
}

#[derive(Default)]
struct ClientCapabilities {
    authentication_failure_close: bool,
    consumer_cancel_notify: bool,
    connection_blocked: bool,
}

fn client_capabilities(properties: &FieldTable) -> ClientCapabilities {
    let Some(AMQPValue::FieldTable(capabilities)) = properties.inner().get("capabilities") else {
        return ClientCapabilities::default();
    };
    let flag = |name: &str| {
        matches!(
            capabilities.inner().get(name),
            Some(AMQPValue::Boolean(true))
        )
    };
    ClientCapabilities {
        authentication_failure_close: flag("authentication_failure_close"),
        consumer_cancel_notify: flag("consumer_cancel_notify"),
        connection_blocked: flag("connection.blocked"),
    }
}

/// Extracts user and password from a PLAIN or AMQPLAIN response.
fn credentials(mechanism: &str, response: &[u8]) -> AmqpResult<(String, String)> {
    let malformed = || {
        AmqpError::access_refused(format!("{mechanism} login refused: malformed response"))
            .on_connection()
    };
    match mechanism {
        "PLAIN" => {
            let mut parts = response.split(|&b| b == 0);
            let (_authzid, user, password) = (parts.next(), parts.next(), parts.next());
            match (user, password, parts.next()) {
                (Some(user), Some(password), None) => Ok((
                    String::from_utf8_lossy(user).into_owned(),
                    String::from_utf8_lossy(password).into_owned(),
                )),
                _ => Err(malformed()),
            }
        }
        "AMQPLAIN" => {
            // The response is a field table without its length prefix.
            let mut table = (response.len() as u32).to_be_bytes().to_vec();
            table.extend_from_slice(response);
            let (_, fields) = parse_field_table(&table[..]).map_err(|_| malformed())?;
            let text = |key: &str| match fields.inner().get(key) {
                Some(AMQPValue::LongString(s)) => {
                    Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                Some(AMQPValue::ShortString(s)) => Some(s.to_string()),
                _ => None,
            };
            text("LOGIN").zip(text("PASSWORD")).ok_or_else(malformed)
        }
        other => Err(AmqpError::access_refused(format!(
            "unsupported authentication mechanism '{other}'"
        ))
        .on_connection()),
    }
}

/// Applies RabbitMQ's rules to the client's tune-ok.
fn negotiate(tune_ok: &connection::TuneOk, limits: Limits) -> AmqpResult<Tuning> {
    let fail = |field: &str, value: u64, detail: &str, direction: &str, bound: &str, limit: u64| {
        AmqpError::not_allowed(format!(
            "negotiated {field} = {value}{detail} is {direction} than the {bound} allowed value ({limit})"
        ))
        .in_method(10, 31)
    };
    let frame_max = tune_ok.frame_max;
    if frame_max != 0 && frame_max < FRAME_MIN_SIZE {
        return Err(fail(
            "frame_max",
            frame_max.into(),
            "",
            "lower",
            "minimum",
            FRAME_MIN_SIZE.into(),
        ));
    }
    if frame_max == 0 || frame_max > limits.frame_max {
        let detail = if frame_max == 0 { " (no limit)" } else { "" };
        return Err(fail(
            "frame_max",
            frame_max.into(),
            detail,
            "higher",
            "maximum",
            limits.frame_max.into(),
        ));
    }
    let channel_max = tune_ok.channel_max;
    if channel_max == 0 || channel_max > limits.channel_max {
        let detail = if channel_max == 0 { " (no limit)" } else { "" };
        return Err(fail(
            "channel_max",
            channel_max.into(),
            detail,
            "higher",
            "maximum",
            limits.channel_max.into(),
        ));
    }
    Ok(Tuning {
        channel_max,
        frame_max,
        heartbeat: tune_ok.heartbeat,
    })
}

fn unexpected(method: &Method, expected: &str) -> AmqpError {
    AmqpError::command_invalid(format!(
        "expected {expected}, got {}.{}",
        method.get_amqp_class_id(),
        method.get_amqp_method_id()
    ))
}

/// Sends one method on channel 0 and flushes it: TLS may hold written bytes until then.
async fn send<S: AsyncWrite + Unpin>(stream: &mut S, method: Method) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    encode::method(&mut out, 0, &method);
    stream.write_all(&out).await?;
    stream.flush().await
}

/// Reads the next method frame on channel 0, skipping heartbeats.
async fn read_method<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    frame_max: u32,
) -> Result<Method, Refused> {
    loop {
        while let Some(frame) = split_frame(buf, frame_max)? {
            match frame.kind {
                FRAME_HEARTBEAT => continue,
                FRAME_METHOD if frame.channel == 0 => {
                    return Ok(frame::decode_method(&frame.payload)?);
                }
                _ => {
                    return Err(AmqpError::unexpected_frame(format!(
                        "expected a method frame on channel 0, got frame type {} on channel {}",
                        frame.kind, frame.channel
                    ))
                    .into());
                }
            }
        }
        // Handshake methods are small; a larger one grows the buffer in turn.
        buf.reserve(1024);
        if stream.read_buf(buf).await? == 0 {
            return Err(Refused::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
}
