//! Typed settings: defaults, then a TOML file, then `WARREN_*` environment
//! variables, then command-line flags — each layer overriding the one before.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// Everything the broker can be configured with.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// AMQP listen address (`WARREN_LISTEN`).
    pub listen: SocketAddr,
    /// Management HTTP API listen address (`WARREN_MANAGEMENT_LISTEN`); empty disables it.
    pub management_listen: String,
    /// Prometheus metrics listen address (`WARREN_PROMETHEUS_LISTEN`); empty disables it.
    pub prometheus_listen: String,
    /// Directory for persistent data (`WARREN_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Log filter, e.g. `info` or `warren=debug` (`WARREN_LOG`).
    pub log: String,
    /// The user created, with full permissions on `/`, when the broker
    /// first starts on an empty data directory (`WARREN_DEFAULT_USER`).
    pub default_user: String,
    /// Its password (`WARREN_DEFAULT_PASS`).
    pub default_pass: String,
    /// Most client connections open at once; unlimited when unset
    /// (`WARREN_CONNECTION_MAX`, RabbitMQ's `connection_max`).
    pub connection_max: Option<u32>,
    /// Heartbeat interval offered to clients, seconds (`WARREN_HEARTBEAT`).
    pub heartbeat: u16,
    /// Largest frame offered to clients (`WARREN_FRAME_MAX`).
    pub frame_max: u32,
    /// Highest channel number offered to clients (`WARREN_CHANNEL_MAX`).
    pub channel_max: u16,
    /// Largest message body accepted, bytes (`WARREN_MAX_MESSAGE_SIZE`).
    pub max_message_size: u64,
    /// Store sync policy (`WARREN_SYNC_INTERVAL_MS`): 0 fsyncs every batch of
    /// writes before confirming it (the default, no confirmed message is ever
    /// lost); N > 0 fsyncs at most every N ms — fewer syncs under light load,
    /// confirms delayed by up to N ms, same guarantee for what is confirmed.
    pub sync_interval_ms: u64,
    /// Ready messages per durable queue kept in memory
    /// (`WARREN_QUEUE_IN_MEMORY_LIMIT`); past it, persistent messages' bodies
    /// live only on disk and are read back when delivered.
    pub queue_in_memory_limit: usize,
    /// Free disk space, in bytes, below which publishers are blocked
    /// (`WARREN_DISK_FREE_LIMIT`; RabbitMQ's default, 50 MB).
    pub disk_free_limit: u64,
    /// How long a delivery may stay unacknowledged before its channel is
    /// closed with 406 (`WARREN_CONSUMER_TIMEOUT_MS`; RabbitMQ's default, 30
    /// minutes; 0 disables). A queue's `x-consumer-timeout` argument overrides it.
    pub consumer_timeout_ms: u64,
    /// Fraction of the machine's memory above which publishers are blocked
    /// (`WARREN_MEMORY_HIGH_WATERMARK`; RabbitMQ's default, 0.4).
    pub memory_high_watermark: f64,
    /// The same limit in bytes, overriding the fraction when not 0
    /// (`WARREN_MEMORY_HIGH_WATERMARK_BYTES`).
    pub memory_high_watermark_bytes: u64,
}

impl Config {
    /// The management API's address, `None` when disabled (an empty setting).
    pub fn management_addr(&self) -> Result<Option<SocketAddr>, std::net::AddrParseError> {
        optional_addr(&self.management_listen)
    }

    /// The Prometheus metrics address, `None` when disabled (an empty setting).
    pub fn prometheus_addr(&self) -> Result<Option<SocketAddr>, std::net::AddrParseError> {
        optional_addr(&self.prometheus_listen)
    }

    /// The memory use, in bytes, above which publishers are blocked.
    pub fn memory_limit(&self) -> u64 {
        match self.memory_high_watermark_bytes {
            0 => crate::broker::alarms::memory_limit_of_total(self.memory_high_watermark),
            bytes => bytes,
        }
    }
}

/// An address setting that may be empty to turn its listener off.
fn optional_addr(setting: &str) -> Result<Option<SocketAddr>, std::net::AddrParseError> {
    match setting.trim() {
        "" => Ok(None),
        addr => addr.parse().map(Some),
    }
}

/// Values given on the command line; `None` leaves the lower layers' value.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config`.
    pub file: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<String>,
    /// `--log`.
    pub log: Option<String>,
    /// `--default-user`.
    pub default_user: Option<String>,
    /// `--default-pass`.
    pub default_pass: Option<String>,
}

impl Config {
    /// Loads the layered configuration.
    pub fn load(overrides: Overrides) -> Result<Config, config::ConfigError> {
        let mut builder = config::Config::builder()
            .set_default("listen", "127.0.0.1:5672")?
            .set_default("management_listen", "127.0.0.1:15672")?
            .set_default("prometheus_listen", "127.0.0.1:15692")?
            .set_default("data_dir", "data")?
            .set_default("log", "info")?
            .set_default("default_user", "guest")?
            .set_default("default_pass", "guest")?
            .set_default("heartbeat", 60)?
            .set_default("frame_max", 131_072)?
            .set_default("channel_max", 2047)?
            .set_default("max_message_size", 134_217_728u64)?
            .set_default("sync_interval_ms", 0)?
            .set_default("queue_in_memory_limit", 4096)?
            .set_default("disk_free_limit", 50_000_000u64)?
            .set_default("consumer_timeout_ms", 1_800_000u64)?
            .set_default("memory_high_watermark", 0.4)?
            .set_default("memory_high_watermark_bytes", 0u64)?;
        if let Some(file) = &overrides.file {
            builder = builder
                .add_source(config::File::from(file.as_path()).format(config::FileFormat::Toml));
        }
        builder = builder.add_source(config::Environment::with_prefix("WARREN"));
        for (key, value) in [
            ("listen", overrides.listen),
            ("data_dir", overrides.data_dir),
            ("log", overrides.log),
            ("default_user", overrides.default_user),
            ("default_pass", overrides.default_pass),
        ] {
            builder = builder.set_override_option(key, value)?;
        }
        builder.build()?.try_deserialize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_defaults() {
        let config = Config::load(Overrides {
            listen: Some("127.0.0.1:5999".into()),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(config.listen.port(), 5999);
        assert_eq!(config.default_user, "guest");
        assert_eq!(config.frame_max, 131_072);
    }

    #[test]
    fn http_listeners_default_to_rabbitmqs_ports_and_turn_off_when_empty() {
        let mut config = Config::load(Overrides::default()).unwrap();
        assert_eq!(config.management_addr().unwrap().unwrap().port(), 15672);
        assert_eq!(config.prometheus_addr().unwrap().unwrap().port(), 15692);
        config.management_listen = String::new();
        config.prometheus_listen = " ".into();
        assert_eq!(config.management_addr(), Ok(None));
        assert_eq!(config.prometheus_addr(), Ok(None));
        config.management_listen = "not an address".into();
        assert!(config.management_addr().is_err());
    }
}
