//! Command-line flags, named after RabbitMQ PerfTest's where they overlap.

use clap::{Parser, ValueEnum};

use crate::uri::Uri;

/// warren-perf: a load generator for AMQP 0-9-1 brokers (Warren, RabbitMQ, ...).
///
/// Producers and consumers each get their own connection with one channel.
/// Progress goes to stderr once a second; the summary goes to stdout.
#[derive(Debug, Parser)]
#[command(name = "warren-perf", version)]
pub struct Flags {
    /// Broker to load.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2F")]
    pub uri: Uri,
    /// Number of producers.
    #[arg(short = 'x', long, default_value_t = 1)]
    pub producers: usize,
    /// Number of consumers.
    #[arg(short = 'y', long, default_value_t = 1)]
    pub consumers: usize,
    /// Number of queues; with more than one, producer i and consumer i use queue i mod N.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub queues: u32,
    /// Queue name prefix; queues are <prefix>0, <prefix>1, ...
    #[arg(long, default_value = "warren-perf-")]
    pub queue_prefix: String,
    /// Message body size in bytes; the first 8 carry the send timestamp.
    #[arg(short = 's', long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(8..))]
    pub size: u32,
    /// Publish persistent messages to durable queues.
    #[arg(long)]
    pub persistent: bool,
    /// Use publisher confirms with at most N unconfirmed messages per producer.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub confirm: Option<u64>,
    /// Consumer prefetch (basic.qos); 0 = unlimited.
    #[arg(short = 'q', long, default_value_t = 0)]
    pub prefetch: u16,
    /// Consume with no-ack instead of acknowledging.
    #[arg(short = 'a', long)]
    pub auto_ack: bool,
    /// Acknowledge with multiple=true once this many are pending (and every
    /// 10 ms regardless) [default: half the prefetch, at most 500; 100 without prefetch].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub multi_ack_every: Option<u64>,
    /// Exchange type.
    #[arg(long, value_enum, default_value_t = ExchangeKind::Direct)]
    pub exchange_type: ExchangeKind,
    /// Exchange name [default: warren-perf-<type>].
    #[arg(short = 'e', long)]
    pub exchange: Option<String>,
    /// Routing key stem: direct binds <key>.<queue#>, topic binds <key>.<queue#>.#
    /// and publishes <key>.<queue#>.msg, fanout ignores it.
    #[arg(short = 'k', long, default_value = "perf")]
    pub routing_key: String,
    /// Publishing rate limit per producer, messages per second.
    #[arg(short = 'r', long, value_name = "MSGS")]
    pub rate: Option<u32>,
    /// Run for this many seconds [default: until Ctrl-C, or until done with --pmessages/--drain].
    #[arg(short = 'z', long, value_name = "SECONDS")]
    pub time: Option<f64>,
    /// Each producer publishes this many messages, then stops; the run ends once
    /// consumers got them all (or, without consumers, once the queues hold them).
    #[arg(short = 'C', long, value_name = "N")]
    pub pmessages: Option<u64>,
    /// Consumer-only drain: consume the messages already queued, then stop (needs -x 0).
    #[arg(long)]
    pub drain: bool,
    /// Broker process to measure: CPU per delivered message and peak RSS.
    #[arg(long, value_name = "PID")]
    pub broker_pid: Option<u32>,
    /// Connection mode: open N connections, hold them for -z seconds (default 5), close them.
    #[arg(long, value_name = "N")]
    pub connections: Option<usize>,
    /// Channels opened on each connection in connection mode.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub channels_per_connection: u16,
    /// Print the final summary as one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// Exchange types the tool can route through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExchangeKind {
    /// Exact routing-key match.
    Direct,
    /// Every bound queue.
    Fanout,
    /// Routing-key patterns.
    Topic,
}

impl ExchangeKind {
    /// The name AMQP uses for the type.
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
        }
    }
}

impl Flags {
    /// Rejects flag combinations that cannot run.
    pub fn check(&self) -> Result<(), String> {
        if self.drain && self.producers > 0 {
            return Err("--drain is consumer-only: add -x 0".into());
        }
        if self.connections.is_none() && self.producers == 0 && self.consumers == 0 {
            return Err("nothing to do: -x 0 and -y 0".into());
        }
        if self.pmessages.is_some() && self.producers == 0 {
            return Err("--pmessages needs producers".into());
        }
        if let Some(every) = self.multi_ack_every
            && !self.auto_ack
            && self.prefetch > 0
            && every > u64::from(self.prefetch)
        {
            return Err(format!(
                "--multi-ack-every {every} exceeds prefetch {}: every ack would wait for the 10 ms timer",
                self.prefetch
            ));
        }
        Ok(())
    }

    /// Messages a consumer leaves unacknowledged before acking them all at once.
    pub fn ack_every(&self) -> u64 {
        self.multi_ack_every.unwrap_or(match self.prefetch {
            0 => 100,
            p => u64::from(p).div_ceil(2).min(500),
        })
    }
}
