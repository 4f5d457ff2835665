//! Typed settings: defaults, then a TOML file, then `WARREN_*` environment
//! variables, then command-line flags — each layer overriding the one before.

use std::net::{Ipv4Addr, SocketAddr};
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
    /// The management API over TLS (`WARREN_MANAGEMENT_TLS_LISTEN`, RabbitMQ's
    /// `management.ssl.port`, usually 15671), with the amqps certificate and
    /// key; unset: no HTTPS listener.
    pub management_tls_listen: Option<SocketAddr>,
    /// amqps (AMQP over TLS) listen address (`WARREN_TLS_LISTEN`); when unset
    /// but a certificate and key are, [`DEFAULT_TLS_LISTEN`].
    pub tls_listen: Option<SocketAddr>,
    /// PEM file with the server's certificate chain, leaf first (`WARREN_TLS_CERT_FILE`).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM file with that certificate's private key (`WARREN_TLS_KEY_FILE`).
    pub tls_key_file: Option<PathBuf>,
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

/// Where the amqps listener goes when only its certificate and key are given:
/// loopback, like the plain listener, on RabbitMQ's amqps port.
pub const DEFAULT_TLS_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 5671);

/// The amqps listener's settings, once complete.
#[derive(Debug, Clone)]
pub struct TlsListener {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The PEM certificate chain.
    pub cert_file: PathBuf,
    /// The PEM private key.
    pub key_file: PathBuf,
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

    /// The amqps listener, if configured: it needs both a certificate and a
    /// key; a TLS address without them, or one without the other, is an error.
    pub fn tls(&self) -> Result<Option<TlsListener>, String> {
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert_file), Some(key_file)) => Ok(Some(TlsListener {
                listen: self.tls_listen.unwrap_or(DEFAULT_TLS_LISTEN),
                cert_file: cert_file.clone(),
                key_file: key_file.clone(),
            })),
            (None, None) if self.management_tls_listen.is_some() => Err(
                "management_tls_listen is set but tls_cert_file and tls_key_file are not".into(),
            ),
            (None, None) if self.tls_listen.is_none() => Ok(None),
            (None, None) => {
                Err("tls_listen is set but tls_cert_file and tls_key_file are not".into())
            }
            (Some(_), None) => Err("tls_cert_file is set but tls_key_file is not".into()),
            (None, Some(_)) => Err("tls_key_file is set but tls_cert_file is not".into()),
        }
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
    /// `--tls-listen`.
    pub tls_listen: Option<String>,
    /// `--tls-cert-file`.
    pub tls_cert_file: Option<String>,
    /// `--tls-key-file`.
    pub tls_key_file: Option<String>,
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
            ("tls_listen", overrides.tls_listen),
            ("tls_cert_file", overrides.tls_cert_file),
            ("tls_key_file", overrides.tls_key_file),
            ("data_dir", overrides.data_dir),
            ("log", overrides.log),
            ("default_user", overrides.default_user),
            ("default_pass", overrides.default_pass),
        ] {
            builder = builder.set_override_option(key, value)?;
        }
        let config: Config = builder.build()?.try_deserialize()?;
        config.tls().map_err(config::ConfigError::Message)?;
        Ok(config)
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
        assert!(config.tls().unwrap().is_none(), "TLS is off by default");
    }

    #[test]
    fn tls_listens_on_5671_once_certificate_and_key_are_given() {
        let config = Config::load(Overrides {
            tls_cert_file: Some("cert.pem".into()),
            tls_key_file: Some("key.pem".into()),
            ..Overrides::default()
        })
        .unwrap();
        let tls = config.tls().unwrap().expect("TLS configured");
        assert_eq!(tls.listen, "127.0.0.1:5671".parse().unwrap());
        assert_eq!(tls.cert_file, PathBuf::from("cert.pem"));
        assert_eq!(tls.key_file, PathBuf::from("key.pem"));
        assert_eq!(config.listen.port(), 5672, "plain AMQP keeps its port");
    }

    #[test]
    fn tls_listen_overrides_the_default_port() {
        let config = Config::load(Overrides {
            tls_listen: Some("0.0.0.0:5999".into()),
            tls_cert_file: Some("cert.pem".into()),
            tls_key_file: Some("key.pem".into()),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(
            config.tls().unwrap().unwrap().listen,
            "0.0.0.0:5999".parse().unwrap()
        );
    }

    #[test]
    fn incomplete_tls_settings_are_refused() {
        for (overrides, complaint) in [
            (
                Overrides {
                    tls_cert_file: Some("cert.pem".into()),
                    ..Overrides::default()
                },
                "tls_cert_file is set but tls_key_file is not",
            ),
            (
                Overrides {
                    tls_key_file: Some("key.pem".into()),
                    ..Overrides::default()
                },
                "tls_key_file is set but tls_cert_file is not",
            ),
            (
                Overrides {
                    tls_listen: Some("127.0.0.1:5671".into()),
                    ..Overrides::default()
                },
                "tls_listen is set but tls_cert_file and tls_key_file are not",
            ),
        ] {
            let error = Config::load(overrides).unwrap_err();
            assert_eq!(error.to_string(), complaint);
        }
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
