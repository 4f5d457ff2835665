//! warren-perf: a PerfTest-style load generator for any AMQP 0-9-1 broker.
//!
//! Its own lean client batches many frames per write and parses deliveries
//! in bulk, so the generator is not what caps a run (lapin, writing once per
//! frame, tops out near 40k msg/s on a small machine).

mod cli;
mod clock;
mod confirm;
mod conn;
mod connections;
mod consumer;
mod histogram;
mod json;
mod load;
mod pace;
mod procfs;
mod producer;
mod report;
mod sampler;
mod stats;
mod topology;
mod uri;
mod wire;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::procfs::Process;

/// Errors are reported, never matched on, so any error will do.
type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T> = std::result::Result<T, Error>;

/// Hold time of connection mode when -z is not given.
const DEFAULT_HOLD: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> ExitCode {
    let flags = cli::Flags::parse();
    if let Err(e) = flags.check() {
        eprintln!("warren-perf: {e}");
        return ExitCode::from(2);
    }
    let broker = flags.broker_pid.map(Process::Pid);
    if let Some(pid) = flags.broker_pid
        && broker.and_then(Process::cpu_seconds).is_none()
    {
        eprintln!("warren-perf: cannot read /proc/{pid}/stat");
        return ExitCode::from(2);
    }
    let (text, json) = match flags.connections {
        Some(count) => {
            let hold = flags.time.map_or(DEFAULT_HOLD, Duration::from_secs_f64);
            match connections::run(
                &flags.uri,
                count,
                flags.channels_per_connection,
                hold,
                broker,
            )
            .await
            {
                Ok(s) => (s.text(), s.json()),
                Err(e) => return fail(e),
            }
        }
        None => match load::run(&flags).await {
            Ok(s) => (s.text(), s.json()),
            Err(e) => return fail(e),
        },
    };
    if flags.json {
        println!("{json}");
    } else {
        print!("{text}");
    }
    ExitCode::SUCCESS
}

fn fail(e: Error) -> ExitCode {
    eprintln!("warren-perf: {e}");
    ExitCode::FAILURE
}
