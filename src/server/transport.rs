//! The byte streams a connection is served over. The connection code is
//! generic over [`Transport`], so every kind of stream runs the same handshake
//! and session loop, each compiled for its own stream type.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// A client byte stream that splits into halves the session loop can read and
/// write at the same time.
pub trait Transport: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// The half the session loop reads frames from.
    type Reader: AsyncRead + Send + Unpin;
    /// The half the session loop writes its outbound buffer to.
    type Writer: AsyncWrite + Send + Unpin;

    /// Splits the stream into its reading and writing halves.
    fn into_halves(self) -> (Self::Reader, Self::Writer);
}

impl Transport for TcpStream {
    type Reader = OwnedReadHalf;
    type Writer = OwnedWriteHalf;

    /// The socket's own halves: no lock between reading and writing.
    fn into_halves(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        self.into_split()
    }
}
