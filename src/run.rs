//! Wiring: from a [`Config`] to a bound server.

use crate::auth::Users;
use crate::broker::Broker;
use crate::config::Config;
use crate::server::Server;
use crate::server::connection::ConnectionSettings;
use crate::server::handshake::Limits;

/// Builds the broker described by `config` and binds its listener.
pub async fn bind(config: &Config) -> std::io::Result<Server> {
    std::fs::create_dir_all(&config.data_dir)?;
    let broker = Broker::new(Users::with_user(&config.default_user, &config.default_pass));
    let settings = ConnectionSettings {
        limits: Limits {
            channel_max: config.channel_max,
            frame_max: config.frame_max,
            heartbeat: config.heartbeat,
        },
        max_message_size: config.max_message_size,
    };
    Server::bind(config.listen, broker, settings).await
}
