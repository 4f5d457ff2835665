//! A lean client connection: handshake, synchronous setup calls, then split
//! halves for the hot loops.
//!
//! Setup methods are encoded and decoded with warren's protocol helpers (they
//! are rare); everything is buffered and sent with one write per call. After
//! setup, producers and consumers take the socket halves and the leftover read
//! buffer and drive the frames themselves.

use amq_protocol::protocol::{AMQPClass, channel, connection};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream, lookup_host};
use warren::protocol::frame::{FRAME_METHOD, decode_method};
use warren::protocol::{AMQPValue, FieldTable, LongString, Method, PROTOCOL_HEADER, encode};

use crate::Result;
use crate::uri::Uri;
use crate::wire;

/// Frame size asked for when the broker sets no limit.
const DEFAULT_FRAME_MAX: u32 = 131_072;
/// Read buffer headroom kept free before each read: big reads mean few syscalls.
const READ_CHUNK: usize = 256 * 1024;
/// Socket send buffer (the kernel doubles it). Autotuned loopback buffers grow
/// to 4 MiB, so a producer outrunning the broker would park tens of thousands
/// of messages in the kernel: counted as published, and still fed to the
/// broker after the run. A few 64 KiB writes' worth keeps full speed. (The
/// broker's own receive buffer still absorbs a burst; see benches/README.md.)
const SEND_BUFFER: u32 = 128 * 1024;

/// An open connection before it is split.
pub struct Conn {
    stream: TcpStream,
    inbuf: BytesMut,
    out: BytesMut,
    frame_max: u32,
}

/// Reads more bytes from the socket into `buf`; a closed socket is an error.
pub async fn fill<R: AsyncReadExt + Unpin>(stream: &mut R, buf: &mut BytesMut) -> Result<()> {
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
    match stream.read_buf(buf).await? {
        0 => Err("the broker closed the socket".into()),
        _ => Ok(()),
    }
}

/// The read half of a split connection with its buffer.
pub struct Reader {
    /// Socket read half.
    pub half: OwnedReadHalf,
    /// Bytes read and not yet consumed.
    pub buf: BytesMut,
}

impl Conn {
    /// Connects, authenticates with PLAIN, disables heartbeats and opens the vhost.
    pub async fn open(uri: &Uri) -> Result<Conn> {
        let addr = lookup_host((uri.host.as_str(), uri.port))
            .await?
            .next()
            .ok_or_else(|| format!("{} has no address", uri.host))?;
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_send_buffer_size(SEND_BUFFER)?;
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            stream,
            inbuf: BytesMut::new(),
            out: BytesMut::with_capacity(4096),
            frame_max: DEFAULT_FRAME_MAX,
        };
        conn.stream.write_all(PROTOCOL_HEADER).await?;
        match conn.recv(0).await? {
            AMQPClass::Connection(connection::AMQPMethod::Start(_)) => {}
            other => return Err(unexpected(&other, "connection.start")),
        }
        let response = format!("\0{}\0{}", uri.user, uri.password);
        conn.send(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: client_properties(),
                mechanism: "PLAIN".into(),
                response: LongString::from(response.into_bytes()),
                locale: "en_US".into(),
            })),
        );
        conn.flush().await?;
        let tune = match conn.recv(0).await? {
            AMQPClass::Connection(connection::AMQPMethod::Tune(tune)) => tune,
            other => return Err(unexpected(&other, "connection.tune")),
        };
        if tune.frame_max != 0 {
            conn.frame_max = tune.frame_max.min(DEFAULT_FRAME_MAX);
        }
        conn.send(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: if tune.channel_max == 0 {
                    2047
                } else {
                    tune.channel_max
                },
                frame_max: conn.frame_max,
                // The load loops never idle long enough to need heartbeats.
                heartbeat: 0,
            })),
        );
        let open = connection::Open {
            virtual_host: uri.vhost.as_str().into(),
        };
        match conn
            .call(0, AMQPClass::Connection(connection::AMQPMethod::Open(open)))
            .await?
        {
            AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)) => Ok(conn),
            other => Err(unexpected(&other, "connection.open-ok")),
        }
    }

    /// Negotiated maximum frame size.
    pub fn frame_max(&self) -> u32 {
        self.frame_max
    }

    /// Queues a method to be written by the next flush.
    pub fn send(&mut self, channel: u16, method: &Method) {
        encode::method(&mut self.out, channel, method);
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<()> {
        self.stream.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    /// Sends a method and returns the next method the broker sends on that channel.
    pub async fn call(&mut self, channel: u16, method: Method) -> Result<Method> {
        self.send(channel, &method);
        self.flush().await?;
        self.recv(channel).await
    }

    /// Opens a channel.
    pub async fn open_channel(&mut self, channel: u16) -> Result<()> {
        let open = AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {}));
        match self.call(channel, open).await? {
            AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)) => Ok(()),
            other => Err(unexpected(&other, "channel.open-ok")),
        }
    }

    /// Waits for the next method on `channel`, skipping anything else.
    ///
    /// A close from the broker is answered and returned as an error carrying its reason.
    pub async fn recv(&mut self, channel: u16) -> Result<Method> {
        loop {
            while let Some((frame, len)) = wire::scan(&self.inbuf)? {
                let method = (frame.kind == FRAME_METHOD)
                    .then(|| (frame.channel, decode_method(frame.payload)));
                self.inbuf.advance(len);
                let Some((on, method)) = method else { continue };
                let method = method.map_err(|e| format!("undecodable method: {e:?}"))?;
                if let Some(reason) = closed_by_broker(&method) {
                    let reply = close_ok_for(&method);
                    self.send(on, &reply);
                    let _ = self.flush().await;
                    return Err(reason.into());
                }
                if on == channel {
                    return Ok(method);
                }
            }
            fill(&mut self.stream, &mut self.inbuf).await?;
        }
    }

    /// Closes the connection politely and waits for the broker's close-ok.
    pub async fn close(mut self) -> Result<()> {
        match self.call(0, close_method()).await? {
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => Ok(()),
            other => Err(unexpected(&other, "connection.close-ok")),
        }
    }

    /// Hands over the socket halves and the bytes already read.
    pub fn split(self) -> (Reader, OwnedWriteHalf) {
        let (half, writer) = self.stream.into_split();
        (
            Reader {
                half,
                buf: self.inbuf,
            },
            writer,
        )
    }
}

/// Properties announced in start-ok; RabbitMQ shows them in its management UI.
fn client_properties() -> FieldTable {
    let mut props = FieldTable::default();
    props.insert(
        "product".into(),
        AMQPValue::LongString(LongString::from(b"warren-perf".to_vec())),
    );
    props
}

/// The `connection.close` this client ends with.
pub fn close_method() -> Method {
    AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
        reply_code: 200,
        reply_text: "bye".into(),
        class_id: 0,
        method_id: 0,
    }))
}

/// Whether a method is the reply to our `connection.close`.
pub fn is_close_ok(method: &Method) -> bool {
    matches!(
        method,
        AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))
    )
}

/// The reason given when the broker closes the connection or a channel.
pub fn closed_by_broker(method: &Method) -> Option<String> {
    match method {
        AMQPClass::Connection(connection::AMQPMethod::Close(c)) => Some(format!(
            "broker closed the connection: {} {}",
            c.reply_code, c.reply_text
        )),
        AMQPClass::Channel(channel::AMQPMethod::Close(c)) => Some(format!(
            "broker closed the channel: {} {}",
            c.reply_code, c.reply_text
        )),
        _ => None,
    }
}

/// The answer owed to a close from the broker.
fn close_ok_for(method: &Method) -> Method {
    match method {
        AMQPClass::Channel(_) => {
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {}))
        }
        _ => AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
    }
}

/// An error for a reply other than the one expected.
pub fn unexpected(got: &Method, wanted: &str) -> crate::Error {
    format!("expected {wanted}, got {got:?}").into()
}
