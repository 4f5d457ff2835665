//! The amqps side of the listener: a rustls server configuration built from the
//! PEM certificate chain and key named in the configuration, and the TLS
//! handshake that precedes AMQP's own on every amqps connection.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::broker::Broker;
use crate::server::connection::{self, ConnectionSettings};

/// How long a client may take over the TLS handshake (RabbitMQ's
/// `ssl_handshake_timeout`); the AMQP handshake then has its own limit.
pub(crate) const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Loads the certificate chain (leaf first) and its private key, both PEM, into
/// an acceptor. Every failure names the file at fault, for the start-up error.
pub fn acceptor(cert_file: &Path, key_file: &Path) -> io::Result<TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid(format!("TLS certificate file {}: {e}", cert_file.display())))?;
    if certs.is_empty() {
        return Err(invalid(format!(
            "TLS certificate file {}: no PEM certificate in it",
            cert_file.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| match e {
        pem::Error::NoItemsFound => invalid(format!(
            "TLS key file {}: no PEM private key in it",
            key_file.display()
        )),
        e => invalid(format!("TLS key file {}: {e}", key_file.display())),
    })?;
    // ring, named explicitly rather than left to rustls's process-wide default,
    // which is ambiguous as soon as another crate enables a second provider.
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            invalid(format!(
                "TLS certificate {} with key {}: {e}",
                cert_file.display(),
                key_file.display()
            ))
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Completes the TLS handshake on an accepted amqps socket, then serves AMQP
/// over it. A failed handshake only ends this connection.
pub async fn serve(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    settings: ConnectionSettings,
    shutdown: watch::Receiver<bool>,
) {
    let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
            // Port probes (health checks, readiness loops) look like this.
            tracing::debug!(%peer, "connection ended before the TLS handshake");
            return;
        }
        Ok(Err(e)) => {
            tracing::warn!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, "TLS handshake timed out");
            return;
        }
    };
    connection::serve(stream, peer, broker, settings, shutdown).await;
}
