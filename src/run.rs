//! Wiring: from a [`Config`] to the bound listeners.

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
use crate::store::SyncPolicy;

/// The broker's listeners: AMQP, and the management API and Prometheus
/// metrics unless disabled.
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

    /// The management API's address, if it listens.
    pub fn management_addr(&self) -> Option<SocketAddr> {
        self.http.local_addr(management::Kind::Management)
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
pub async fn bind(config: &Config) -> std::io::Result<Listeners> {
    let invalid = |e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let management_addr = config.management_addr().map_err(invalid)?;
    let prometheus_addr = config.prometheus_addr().map_err(invalid)?;
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
    let amqp = Server::bind(config.listen, broker.clone(), settings).await?;
    let wanted = [
        (management::Kind::Management, management_addr),
        (management::Kind::Prometheus, prometheus_addr),
    ];
    let http = management::HttpListeners::bind(broker, amqp.local_addr()?, &wanted).await?;
    Ok(Listeners { amqp, http })
}
