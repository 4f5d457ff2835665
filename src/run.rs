//! Wiring: from a [`Config`] to a bound server.

use std::io;

use crate::auth::DefaultUser;
use crate::broker::Broker;
use crate::config::Config;
use crate::server::Server;
use crate::server::connection::ConnectionSettings;
use crate::server::handshake::Limits;
use crate::server::tls;
use crate::store::SyncPolicy;

/// Builds the broker described by `config` and binds its listeners.
pub async fn bind(config: &Config) -> io::Result<Server> {
    // TLS files are read first, so that a bad one stops start-up before
    // anything touches the data directory.
    let tls = match config
        .tls()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
    {
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
    let mut server = Server::bind(config.listen, broker, settings)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("listen on {}: {e}", config.listen)))?;
    if let Some((addr, acceptor)) = tls {
        server
            .bind_tls(addr, acceptor)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("TLS listen on {addr}: {e}")))?;
    }
    Ok(server)
}
