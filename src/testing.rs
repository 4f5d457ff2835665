//! An in-process broker for end-to-end tests: real sockets, ephemeral port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use tokio::sync::watch;

use crate::broker::Broker;
use crate::config::{Config, Overrides};

/// A broker running on its own thread and runtime until dropped.
pub struct InProcessServer {
    addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    management: Option<SocketAddr>,
    management_tls: Option<SocketAddr>,
    prometheus: Option<SocketAddr>,
    broker: Arc<Broker>,
    config: Config,
    data_dir: PathBuf,
    /// Keep the data directory when stopped (to start again on it).
    keep_data: bool,
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl InProcessServer {
    /// Starts a broker on 127.0.0.1 with an ephemeral port and a fresh data directory.
    pub fn start() -> InProcessServer {
        InProcessServer::start_with(|_| {})
    }

    /// Like [`InProcessServer::start`], with settings adjusted by `configure`.
    pub fn start_with(configure: impl FnOnce(&mut Config)) -> InProcessServer {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let data_dir = std::env::temp_dir().join(format!(
            "warren-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let mut config = Config::load(Overrides::default()).expect("default configuration");
        config.listen = "127.0.0.1:0".parse().expect("literal address");
        config.management_listen = "127.0.0.1:0".into();
        config.prometheus_listen = "127.0.0.1:0".into();
        config.data_dir = data_dir;
        configure(&mut config);
        InProcessServer::start_on(config)
    }

    /// Stops the broker cleanly and starts it again on the same data
    /// directory and settings (on a new port).
    pub fn restart(self) -> InProcessServer {
        self.restart_with(|| {})
    }

    /// Like [`InProcessServer::restart`], running `while_stopped` between
    /// the stop and the start (to change files in the data directory).
    pub fn restart_with(mut self, while_stopped: impl FnOnce()) -> InProcessServer {
        self.keep_data = true;
        let config = self.config.clone();
        drop(self);
        while_stopped();
        InProcessServer::start_on(config)
    }

    /// The broker's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    fn start_on(config: Config) -> InProcessServer {
        let data_dir = config.data_dir.clone();
        let thread_config = config.clone();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let server = crate::run::bind(&thread_config)
                    .await
                    .expect("bind test broker");
                let broker = server.broker();
                let bound = server.local_addr().expect("bound address");
                let tls_bound = server.tls_local_addr().expect("bound TLS address");
                let http = (
                    server.management_addr(),
                    server.management_tls_addr(),
                    server.prometheus_addr(),
                );
                addr_tx
                    .send((bound, tls_bound, http, broker.clone()))
                    .expect("test waits");
                server.run(shutdown_rx).await;
                broker.shutdown();
            });
        });
        let (addr, tls_addr, (management, management_tls, prometheus), broker) =
            addr_rx.recv().expect("test broker started");
        InProcessServer {
            addr,
            tls_addr,
            management,
            management_tls,
            prometheus,
            broker,
            config,
            data_dir,
            keep_data: false,
            shutdown,
            thread: Some(thread),
        }
    }

    /// The broker itself (to reach its alarms or store from a test).
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// The management API's address (tests start it on an ephemeral port).
    pub fn management_addr(&self) -> SocketAddr {
        self.management.expect("management API enabled")
    }

    /// The HTTPS management API's address, if configured.
    pub fn management_tls_addr(&self) -> Option<SocketAddr> {
        self.management_tls
    }

    /// The Prometheus metrics address (tests start it on an ephemeral port).
    pub fn prometheus_addr(&self) -> SocketAddr {
        self.prometheus.expect("Prometheus metrics enabled")
    }

    /// The address the broker listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the amqps listener, when the test configured one.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if !self.keep_data {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}
