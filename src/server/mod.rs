//! The AMQP listener: accepts sockets and runs one connection task each.
//!
//! Shutdown is a watch channel: when it flips, the listener stops accepting
//! and every connection closes with 320 CONNECTION_FORCED; the server then
//! waits (bounded) for the connection tasks to finish.

mod channel;
pub mod connection;
pub mod handshake;
mod session;
mod transport;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::server::connection::ConnectionSettings;

/// A bound listener with the broker it serves.
pub struct Server {
    listener: TcpListener,
    broker: Arc<Broker>,
    settings: ConnectionSettings,
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
            broker,
            settings,
        })
    }

    /// The broker this server serves (for a clean shutdown after [`Server::run`]).
    pub fn broker(&self) -> Arc<Broker> {
        self.broker.clone()
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
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
                    Err(e) => {
                        // Typically EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
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
        let drained = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), drained)
            .await
            .is_err()
        {
            tracing::warn!("connections did not close in time; aborting them");
        }
    }
}
