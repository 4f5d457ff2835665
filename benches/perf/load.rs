//! A producer/consumer run: topology, connections, the timed loop with
//! per-second progress, then totals.
//!
//! Everyone connects before the clock starts, so connection setup never
//! counts against the rates; consumers subscribe only once it has started.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::Result;
use crate::cli::Flags;
use crate::conn::Conn;
use crate::consumer::{self, Consumer};
use crate::histogram::Histogram;
use crate::procfs::Process;
use crate::producer::{self, Producer};
use crate::report::{LoadSummary, format_kib};
use crate::sampler::Sampler;
use crate::stats::{Counters, Snapshot};
use crate::topology::{self, Topology};

/// How long a producer-only run waits for the broker to enqueue what was sent.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Queue depth unchanged this long counts as settled.
const SETTLE_QUIET: Duration = Duration::from_secs(2);

/// Runs the load the flags describe.
pub async fn run(flags: &Flags) -> Result<LoadSummary> {
    let topology = Arc::new(Topology::new(flags));
    let mut ctl = Conn::open(&flags.uri).await?;
    topology::control(&mut ctl).await?;
    topology.declare(&mut ctl, flags.producers > 0).await?;
    let target = if flags.drain {
        Some(topology.depth(&mut ctl).await?)
    } else {
        flags
            .pmessages
            .map(|n| n * flags.producers as u64 * topology.fan_out())
    };
    if flags.drain {
        eprintln!("draining {} queued messages", target.unwrap_or(0));
    }
    let (producers, consumers) = connect_all(flags, &topology).await?;

    let counters = Arc::new(Counters::new(flags.producers, target));
    let (stop_tx, stop) = watch::channel(false);
    let broker = flags.broker_pid.map(Process::Pid);
    let sampler = Sampler::start(broker);
    let started = Instant::now();
    let mut producing = JoinSet::new();
    for p in producers {
        let (counters, stop) = (counters.clone(), stop.clone());
        producing.spawn(async move {
            let result = p.run(counters.clone(), stop).await;
            if result.is_err() {
                counters.fail();
            }
            result
        });
    }
    let settings = consumer::Settings {
        auto_ack: flags.auto_ack,
        ack_every: flags.ack_every(),
        stamped_here: flags.producers > 0,
    };
    let mut consuming = JoinSet::new();
    for (i, c) in consumers.into_iter().enumerate() {
        let (counters, stop, topology) = (counters.clone(), stop.clone(), topology.clone());
        consuming.spawn(async move {
            let tag = format!("warren-perf-{i}");
            let result = c
                .run(
                    topology.queue_for(i),
                    &tag,
                    settings,
                    counters.clone(),
                    stop,
                )
                .await;
            if result.is_err() {
                counters.fail();
            }
            result
        });
    }

    watch_progress(flags, &counters, &sampler, started, topology.fan_out()).await;
    let stopped_secs = started.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    // CPU per delivered message is measured over the deliveries' window; a
    // producer-only run includes the broker's enqueueing of what was sent.
    let usage_at_stop = (flags.consumers > 0).then(|| sampler.usage());

    let mut errors = Vec::new();
    let mut publish_secs: f64 = 0.0;
    for joined in producing.join_all().await {
        match joined {
            Ok(finished) => publish_secs = publish_secs.max((finished - started).as_secs_f64()),
            Err(e) => errors.push(format!("producer: {e}")),
        }
    }
    // A write finishing after the stop counts, its extra time does not.
    let publish_secs = publish_secs.min(stopped_secs);
    let mut latency = Histogram::new();
    for joined in consuming.join_all().await {
        match joined {
            Ok(h) => latency.merge(&h),
            Err(e) => errors.push(format!("consumer: {e}")),
        }
    }
    let totals = counters.snapshot();
    let backlog = if flags.consumers == 0 {
        Some(settle(&mut ctl, &topology, totals.published * topology.fan_out()).await?)
    } else {
        None
    };
    let usage = usage_at_stop.unwrap_or_else(|| sampler.usage());
    if flags.consumers > 0 {
        topology.delete_all(&mut ctl).await?;
    }
    ctl.close().await?;
    if !errors.is_empty() {
        return Err(errors.join("; ").into());
    }
    Ok(LoadSummary {
        published: totals.published,
        confirmed: totals.confirmed,
        nacked: totals.nacked,
        consumed: totals.consumed,
        publish_secs,
        consume_secs: if flags.consumers > 0 {
            stopped_secs
        } else {
            0.0
        },
        latency,
        backlog,
        usage,
    })
}

/// Connects every producer and consumer concurrently.
async fn connect_all(
    flags: &Flags,
    topology: &Arc<Topology>,
) -> Result<(Vec<Producer>, Vec<Consumer>)> {
    let settings = producer::Settings {
        size: flags.size,
        persistent: flags.persistent,
        confirm: flags.confirm,
        rate: flags.rate,
        count: flags.pmessages,
    };
    let mut producers = JoinSet::new();
    for i in 0..flags.producers {
        let (uri, topology) = (flags.uri.clone(), topology.clone());
        producers.spawn(async move { Producer::connect(&uri, &topology, i, settings).await });
    }
    let mut consumers = JoinSet::new();
    for _ in 0..flags.consumers {
        let (uri, prefetch) = (flags.uri.clone(), flags.prefetch);
        consumers.spawn(async move { Consumer::connect(&uri, prefetch).await });
    }
    let producers = producers
        .join_all()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    let consumers = consumers
        .join_all()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    Ok((producers, consumers))
}

/// Prints progress every second until the run is complete, fails, times out or is interrupted.
async fn watch_progress(
    flags: &Flags,
    counters: &Counters,
    sampler: &Sampler,
    started: Instant,
    fan_out: u64,
) {
    let deadline = flags
        .time
        .map(|t| tokio::time::Instant::from(started + Duration::from_secs_f64(t)));
    let second = Duration::from_secs(1);
    let mut tick = tokio::time::interval_at((started + second).into(), second);
    let mut last = Snapshot::default();
    let mut last_at = started;
    while !counters.complete(flags.consumers > 0) && !counters.failed() {
        tokio::select! {
            _ = counters.changed.notified() => {}
            _ = tick.tick() => {
                let now = Instant::now();
                let totals = counters.snapshot();
                eprintln!("{}", progress_line(flags, now - started, &totals, &last, now - last_at, fan_out, sampler.broker_rss_kib()));
                (last, last_at) = (totals, now);
            }
            _ = sleep_until(deadline) => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
}

/// One line of progress: rates over the last interval.
fn progress_line(
    flags: &Flags,
    at: Duration,
    now: &Snapshot,
    last: &Snapshot,
    interval: Duration,
    fan_out: u64,
    rss: Option<u64>,
) -> String {
    let per_sec = |a: u64, b: u64| (a - b) as f64 / interval.as_secs_f64();
    let mut line = format!("[{:6.1}s]", at.as_secs_f64());
    if flags.producers > 0 {
        line += &format!(
            "  published {:>9.0}/s",
            per_sec(now.published, last.published)
        );
    }
    if flags.confirm.is_some() {
        line += &format!(
            "  confirmed {:>9.0}/s",
            per_sec(now.confirmed, last.confirmed)
        );
    }
    if flags.consumers > 0 {
        line += &format!("  consumed {:>9.0}/s", per_sec(now.consumed, last.consumed));
    }
    if flags.producers > 0 && flags.consumers > 0 {
        let backlog = (now.published * fan_out).saturating_sub(now.consumed);
        line += &format!("  in flight {backlog:>9}");
    }
    if let Some(rss) = rss {
        line += &format!("  broker rss {}", format_kib(rss));
    }
    line
}

/// Waits until the queues hold everything a producer-only run sent; returns their depth.
async fn settle(ctl: &mut Conn, topology: &Topology, expected: u64) -> Result<u64> {
    let started = Instant::now();
    let (mut depth, mut since) = (topology.depth(ctl).await?, Instant::now());
    while depth < expected && since.elapsed() < SETTLE_QUIET && started.elapsed() < SETTLE_TIMEOUT {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = topology.depth(ctl).await?;
        if now != depth {
            (depth, since) = (now, Instant::now());
        }
    }
    Ok(depth)
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
