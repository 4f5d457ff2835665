//! The byte streams a connection is served over: plain TCP (amqp) and TLS over
//! TCP (amqps). The connection code is generic over [`Transport`], so both run
//! the same handshake and session loop, each compiled for its own stream type.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::server::TlsStream;

/// A client byte stream that splits into halves the session loop can read and
/// write at the same time.
pub trait Transport: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// The half the session loop reads frames from.
    type Reader: AsyncRead + Send + Unpin;
    /// The half the session loop writes its outbound buffer to.
    type Writer: AsyncWrite + Send + Unpin;
    /// Whether bytes a write accepted may wait in the stream's own buffer
    /// until flushed. TLS keeps plaintext it could not yet encrypt and send
    /// when the socket is full; a plain socket hands everything to the kernel.
    const BUFFERS_WRITES: bool;

    /// Splits the stream into its reading and writing halves.
    fn into_halves(self) -> (Self::Reader, Self::Writer);

    /// The local end's address (part of the connection's name).
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

impl Transport for TcpStream {
    type Reader = OwnedReadHalf;
    type Writer = OwnedWriteHalf;
    const BUFFERS_WRITES: bool = false;

    /// The socket's own halves: no lock between reading and writing.
    fn into_halves(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        self.into_split()
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpStream::local_addr(self)
    }
}

impl Transport for TlsStream<TcpStream> {
    type Reader = ReadHalf<Self>;
    type Writer = WriteHalf<Self>;
    const BUFFERS_WRITES: bool = true;

    /// One TLS session serves both directions, so the halves share it behind
    /// tokio's lock (uncontended: one task drives both).
    fn into_halves(self) -> (ReadHalf<Self>, WriteHalf<Self>) {
        tokio::io::split(self)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.get_ref().0.local_addr()
    }
}
