//! Connection mode: open many connections with a few channels each, hold
//! them, close them; measures open/close rates and broker memory per connection.
//!
//! Handshakes run a bounded number at a time, like a fleet of clients
//! reconnecting, and so a broker's accept backlog never overflows (a dropped
//! SYN costs a one-second retransmit that would swamp the measurement).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::Result;
use crate::conn::Conn;
use crate::procfs::Process;
use crate::report::ConnectionSummary;
use crate::sampler::Sampler;
use crate::uri::Uri;

/// Handshakes in flight at once.
const PARALLEL: usize = 32;
/// How long one connection may take to open.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

/// Opens `count` connections of `channels` channels, holds them `hold`, closes them.
pub async fn run(
    uri: &Uri,
    count: usize,
    channels: u16,
    hold: Duration,
    broker: Option<Process>,
) -> Result<ConnectionSummary> {
    let sampler = Sampler::start(broker);
    let rss_before = broker.and_then(Process::rss_kib);
    let gate = Arc::new(Semaphore::new(PARALLEL));
    let started = Instant::now();
    let mut opening = JoinSet::new();
    for _ in 0..count {
        let (uri, gate) = (uri.clone(), gate.clone());
        opening.spawn(async move {
            let _permit = gate.acquire().await;
            tokio::time::timeout(OPEN_TIMEOUT, open(&uri, channels))
                .await
                .unwrap_or_else(|_| Err("timed out opening".into()))
        });
    }
    let mut open_conns = Vec::with_capacity(count);
    let mut failures = Vec::new();
    while let Some(joined) = opening.join_next().await {
        match joined? {
            Ok(conn) => open_conns.push(conn),
            Err(e) => failures.push(e.to_string()),
        }
    }
    let open_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(hold).await;
    let rss_held = broker.and_then(Process::rss_kib);
    let opened = open_conns.len();
    let started = Instant::now();
    let mut closing = JoinSet::new();
    for conn in open_conns {
        let gate = gate.clone();
        closing.spawn(async move {
            let _permit = gate.acquire().await;
            conn.close().await
        });
    }
    let mut close_failures = 0;
    while let Some(joined) = closing.join_next().await {
        if joined?.is_err() {
            close_failures += 1;
        }
    }
    let close_secs = started.elapsed().as_secs_f64();
    if let Some(first) = failures.first() {
        eprintln!(
            "warren-perf: {} connections failed to open, first: {first}",
            failures.len()
        );
    }
    Ok(ConnectionSummary {
        requested: count,
        opened,
        channels_per_connection: channels,
        open_secs,
        close_secs,
        close_failures,
        rss_before_kib: rss_before,
        rss_held_kib: rss_held,
        usage: sampler.usage(),
    })
}

/// One connection with its channels open.
async fn open(uri: &Uri, channels: u16) -> Result<Conn> {
    let mut conn = Conn::open(uri).await?;
    for channel in 1..=channels {
        conn.open_channel(channel).await?;
    }
    Ok(conn)
}
