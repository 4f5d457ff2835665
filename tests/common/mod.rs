//! Shared harness for the end-to-end tests: a broker started in-process on an
//! ephemeral port, or an external broker named by `WARREN_TEST_URL` (so the
//! same suite can be pointed at RabbitMQ to check that its expectations hold).
#![allow(dead_code)]

pub mod lapin;
pub mod raw;
pub mod x_death;

use std::net::SocketAddr;

use ::lapin::{Connection, ConnectionProperties};

/// A broker for one test: in-process unless `WARREN_TEST_URL` names another.
pub struct TestBroker {
    url: String,
    addr: SocketAddr,
    _server: Option<warren::testing::InProcessServer>,
}

impl TestBroker {
    /// Starts a fresh in-process broker (or adopts `WARREN_TEST_URL`).
    pub fn start() -> TestBroker {
        if let Ok(url) = std::env::var("WARREN_TEST_URL") {
            let addr = addr_of(&url);
            return TestBroker {
                url,
                addr,
                _server: None,
            };
        }
        let server = warren::testing::InProcessServer::start();
        let addr = server.addr();
        TestBroker {
            url: format!("amqp://guest:guest@{addr}/%2f"),
            addr,
            _server: Some(server),
        }
    }

    /// The AMQP URL of this broker, with guest credentials and vhost `/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The broker's socket address, for raw-socket tests.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Opens a lapin connection to this broker.
    pub async fn connect(&self) -> Connection {
        Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .expect("connect to broker")
    }
}

fn addr_of(url: &str) -> SocketAddr {
    let rest = url.split("://").nth(1).expect("url has a scheme");
    let host_port = rest.rsplit('@').next().unwrap().split('/').next().unwrap();
    let host_port = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:5672")
    };
    use std::net::ToSocketAddrs;
    host_port.to_socket_addrs().unwrap().next().unwrap()
}

/// A name unique to this process and call, so tests never collide on a shared broker.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// Polls `check` every 20 ms until it holds or `wait` passes, for state no event announces.
pub async fn eventually(wait: std::time::Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
