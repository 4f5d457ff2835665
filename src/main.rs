//! The `warren` binary: flags → configuration → broker, until SIGINT or SIGTERM.

use std::path::PathBuf;

use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use warren::config::{Config, Overrides};

/// Warren: an AMQP 0-9-1 message broker for RabbitMQ clients.
///
/// Settings come from defaults, then the TOML file given by --config, then
/// WARREN_* environment variables (WARREN_LISTEN, WARREN_TLS_LISTEN,
/// WARREN_TLS_CERT_FILE, WARREN_TLS_KEY_FILE, WARREN_DATA_DIR, WARREN_LOG,
/// WARREN_DEFAULT_USER, WARREN_DEFAULT_PASS, WARREN_HEARTBEAT, WARREN_FRAME_MAX,
/// WARREN_CHANNEL_MAX, WARREN_MAX_MESSAGE_SIZE, WARREN_SYNC_INTERVAL_MS,
/// WARREN_QUEUE_IN_MEMORY_LIMIT, WARREN_CONNECTION_MAX), then these flags.
#[derive(Debug, Parser)]
#[command(name = "warren", version)]
struct Flags {
    /// TOML configuration file.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// AMQP listen address [default: 127.0.0.1:5672].
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<String>,
    /// amqps (AMQP over TLS) listen address [default: 127.0.0.1:5671 when a certificate and key are set].
    #[arg(long, value_name = "ADDR:PORT")]
    tls_listen: Option<String>,
    /// PEM certificate chain for amqps, leaf first; needs --tls-key-file.
    #[arg(long, value_name = "PATH")]
    tls_cert_file: Option<String>,
    /// PEM private key of that certificate.
    #[arg(long, value_name = "PATH")]
    tls_key_file: Option<String>,
    /// Data directory [default: ./data].
    #[arg(long, value_name = "PATH")]
    data_dir: Option<String>,
    /// Log filter: error, warn, info, debug, trace, or a tracing directive [default: info].
    #[arg(long, value_name = "LEVEL")]
    log: Option<String>,
    /// Name of the user created on the first start [default: guest].
    #[arg(long, value_name = "NAME")]
    default_user: Option<String>,
    /// Password of that user [default: guest].
    #[arg(long, value_name = "PASSWORD")]
    default_pass: Option<String>,
    #[command(subcommand)]
    command: Option<Subcommand>,
}

#[derive(Debug, clap::Subcommand)]
enum Subcommand {
    /// Operates a running Warren through its management API.
    Ctl(warren::ctl::Ctl),
}

fn main() -> std::process::ExitCode {
    let flags = Flags::parse();
    if let Some(Subcommand::Ctl(ctl)) = &flags.command {
        return match warren::ctl::run(ctl, &mut std::io::stdout().lock()) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("warren ctl: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let config = match Config::load(Overrides {
        file: flags.config,
        listen: flags.listen,
        tls_listen: flags.tls_listen,
        tls_cert_file: flags.tls_cert_file,
        tls_key_file: flags.tls_key_file,
        data_dir: flags.data_dir,
        log: flags.log,
        default_user: flags.default_user,
        default_pass: flags.default_pass,
    }) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("warren: invalid configuration: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: Config) -> std::process::ExitCode {
    let server = match warren::run::bind(&config).await {
        Ok(server) => server,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return std::process::ExitCode::FAILURE;
        }
    };
    match server.local_addr() {
        Ok(addr) => tracing::info!(data_dir = %config.data_dir.display(), "listening on {addr}"),
        Err(e) => tracing::warn!(error = %e, "listening on an unknown address"),
    }
    match server.tls_local_addr() {
        Ok(Some(addr)) => tracing::info!("amqps (TLS) listening on {addr}"),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "amqps listening on an unknown address"),
    }
    if let Some(addr) = server.management_addr() {
        tracing::info!("management API on http://{addr}/");
    }
    let (shutdown, shutdown_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = shutdown.send(true);
    });
    let broker = server.broker();
    server.run(shutdown_rx).await;
    broker.shutdown();
    tracing::info!("stopped");
    std::process::ExitCode::SUCCESS
}

async fn wait_for_signal() {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
