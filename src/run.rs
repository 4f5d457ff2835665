//! Wiring: from a [`Config`] to the bound listeners.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use crate::auth::DefaultUser;
use crate::broker::Broker;
use crate::config::Config;
use crate::management;
use crate::server::Server;
use crate::server::connection::ConnectionSettings;
use crate::server::handshake::Limits;
use crate::server::tls;
use crate::store::SyncPolicy;

/// The broker's listeners: AMQP, amqps when configured, and the management
/// API and Prometheus metrics unless disabled.
pub struct Listeners {
    amqp: Server,
    http: management::HttpListeners,
}

impl Listeners {
    /// The broker they serve.
    pub fn broker(&self) -> Arc<Broker> {
        self.amqp.broker()
    }

    /// The AMQP address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.amqp.local_addr()
    }

    /// The amqps address actually bound, if there is one.
    pub fn tls_local_addr(&self) -> io::Result<Option<SocketAddr>> {
        self.amqp.tls_local_addr()
    }

    /// The management API's address, if it listens.
    pub fn management_addr(&self) -> Option<SocketAddr> {
        self.http.local_addr(management::Kind::Management)
    }

    /// The HTTPS management API's address, if it listens.
    pub fn management_tls_addr(&self) -> Option<SocketAddr> {
        self.http.local_addr(management::Kind::ManagementTls)
    }

    /// The Prometheus metrics address, if it listens.
    pub fn prometheus_addr(&self) -> Option<SocketAddr> {
        self.http.local_addr(management::Kind::Prometheus)
    }

    /// Serves until `shutdown` becomes true; returns once the AMQP
    /// connections are closed.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        tokio::spawn(self.http.run(shutdown.clone()));
        self.amqp.run(shutdown).await;
    }
}

/// Builds the broker described by `config` and binds its listeners.
pub async fn bind(config: &Config) -> io::Result<Listeners> {
    let management_addr = config.management_addr().map_err(invalid_input)?;
    let prometheus_addr = config.prometheus_addr().map_err(invalid_input)?;
    // TLS files are read first, so that a bad one stops start-up before
    // anything touches the data directory.
    let tls = match config.tls().map_err(invalid_input)? {
        Some(listener) => Some((
            listener.listen,
            tls::acceptor(&listener.cert_file, &listener.key_file)?,
        )),
        None => None,
    };
    let policy = match config.sync_interval_ms {
        0 => SyncPolicy::EveryBatch,
        ms => SyncPolicy::Interval(std::time::Duration::from_millis(ms)),
    };
    let default_user = DefaultUser {
        name: config.default_user.clone(),
        password: config.default_pass.clone(),
    };
    let broker = Broker::open(
        &config.data_dir,
        &default_user,
        policy,
        config.queue_in_memory_limit,
        config.disk_free_limit,
        config.memory_limit(),
    )?;
    broker.alarms().monitor(&config.data_dir);
    broker.connections().set_max(config.connection_max);
    let settings = ConnectionSettings {
        limits: Limits {
            channel_max: config.channel_max,
            frame_max: config.frame_max,
            heartbeat: config.heartbeat,
        },
        max_message_size: config.max_message_size,
        consumer_timeout: (config.consumer_timeout_ms > 0)
            .then(|| std::time::Duration::from_millis(config.consumer_timeout_ms)),
    };
    let mut amqp = Server::bind(config.listen, broker.clone(), settings)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("listen on {}: {e}", config.listen)))?;
    // The HTTPS management listener serves the amqps certificate (the
    // configuration refuses it without one).
    let acceptor = tls.as_ref().map(|(_, acceptor)| acceptor.clone());
    if let Some((addr, acceptor)) = tls {
        amqp.bind_tls(addr, acceptor)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("TLS listen on {addr}: {e}")))?;
    }
    let wanted = vec![
        (management::Kind::Management, management_addr, None),
        (
            management::Kind::ManagementTls,
            config.management_tls_listen,
            acceptor,
        ),
        (management::Kind::Prometheus, prometheus_addr, None),
    ];
    let http = management::HttpListeners::bind(broker, amqp.local_addr()?, wanted).await?;
    Ok(Listeners { amqp, http })
}

fn invalid_input(e: impl ToString) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}
