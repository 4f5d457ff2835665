//! The AMQP listeners: plain TCP (amqp) and, when configured, TLS (amqps).
//! Each accepted socket gets one connection task.
//!
//! Shutdown is a watch channel: when it flips, the listener stops accepting
//! and every connection closes with 320 CONNECTION_FORCED; the server then
//! waits (bounded) for the connection tasks to finish.

mod channel;
pub mod connection;
pub mod handshake;
// Public so that the fuzz targets can drive a session without a socket.
pub mod session;
pub(crate) mod tls;
mod transport;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::broker::Broker;
use crate::server::connection::ConnectionSettings;

/// Bound listeners with the broker they serve.
pub struct Server {
    listener: TcpListener,
    tls: Option<TlsListener>,
    broker: Arc<Broker>,
    settings: ConnectionSettings,
}

/// The amqps listener and the TLS configuration it serves with.
struct TlsListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
}

impl Server {
    /// Binds the listener.
    pub async fn bind(
        addr: SocketAddr,
        broker: Arc<Broker>,
        settings: ConnectionSettings,
    ) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Server {
            listener,
            tls: None,
            broker,
            settings,
        })
    }

    /// Adds an amqps listener on `addr`, serving TLS with `acceptor`.
    pub async fn bind_tls(
        &mut self,
        addr: SocketAddr,
        acceptor: TlsAcceptor,
    ) -> std::io::Result<()> {
        let listener = TcpListener::bind(addr).await?;
        self.tls = Some(TlsListener { listener, acceptor });
        Ok(())
    }

    /// The broker this server serves (for a clean shutdown after [`Server::run`]).
    pub fn broker(&self) -> Arc<Broker> {
        self.broker.clone()
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address the amqps listener actually bound, if there is one.
    pub fn tls_local_addr(&self) -> std::io::Result<Option<SocketAddr>> {
        self.tls
            .as_ref()
            .map(|tls| tls.listener.local_addr())
            .transpose()
    }

    /// Accepts connections until `shutdown` becomes true, then closes them all.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let broker = self.broker.clone();
                        let shutdown = shutdown.clone();
                        connections.spawn(connection::serve(stream, peer, broker, self.settings, shutdown));
                    }
                    Err(e) => accept_failed(e).await,
                },
                accepted = accept_tls(&self.tls) => match accepted {
                    Ok((stream, peer, acceptor)) => {
                        let _ = stream.set_nodelay(true);
                        let broker = self.broker.clone();
                        let shutdown = shutdown.clone();
                        connections.spawn(tls::serve(acceptor.clone(), stream, peer, broker, self.settings, shutdown));
                    }
                    Err(e) => accept_failed(e).await,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
            }
        }
        drop(self.listener);
        drop(self.tls);
        let drained = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), drained)
            .await
            .is_err()
        {
            tracing::warn!("connections did not close in time; aborting them");
        }
    }
}

/// Accepts on the amqps listener; never resolves when there is none.
async fn accept_tls(
    tls: &Option<TlsListener>,
) -> std::io::Result<(TcpStream, SocketAddr, &TlsAcceptor)> {
    match tls {
        Some(tls) => {
            let (stream, peer) = tls.listener.accept().await?;
            Ok((stream, peer, &tls.acceptor))
        }
        None => std::future::pending().await,
    }
}

/// Typically EMFILE: back off instead of spinning.
async fn accept_failed(error: std::io::Error) {
    tracing::warn!(%error, "accept failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
