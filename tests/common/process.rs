//! The real `warren` binary as a child process, for the durability tests.
//!
//! Restart, crash and corruption tests need a broker whose process can be
//! stopped cleanly (SIGTERM), killed outright (SIGKILL) and started again on
//! the same data directory, which the in-process server cannot give. This
//! module runs `env!("CARGO_BIN_EXE_warren")` on a free port and a temporary
//! data directory, captures everything the child writes (tests assert on its
//! log), and cleans up on drop: the child is killed and reaped, the data
//! directory removed (kept when `WARREN_KEEP_DATA` is set, to inspect a
//! failure).
//!
//! Every wait is bounded and waits on an event: a log line, the child's
//! output pipes closing (it exited), or its exit status.
//!
//! It also holds the small lapin helpers (bounded `ok`, confirmed publishes,
//! draining queues, existence checks) that `tests/restart.rs`,
//! `tests/crash.rs` and `tests/corruption.rs` share.
//!
//! It only uses absolute paths, so it works both as `common::process` and
//! included on its own with `#[path = "common/process.rs"] mod process;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lapin::{Connection, ConnectionProperties};

/// How long the broker may take to start listening (recovery of a large data
/// directory included).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a clean shutdown may take: the broker gives connections 5 s to
/// close, then flushes the store.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for one client operation (connect, declare, publish, get...).
pub const OP_TIMEOUT: Duration = Duration::from_secs(15);

/// A temporary data directory, removed on drop.
pub struct DataDir {
    path: PathBuf,
}

impl DataDir {
    /// Creates a fresh, empty directory whose name carries `label`.
    pub fn new(label: &str) -> DataDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "warren-{label}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create data directory");
        DataDir { path }
    }

    /// The directory passed as `--data-dir`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the message store keeps its segments and ack files.
    pub fn messages(&self) -> PathBuf {
        self.path.join("messages")
    }

    /// The durable definitions file.
    pub fn definitions(&self) -> PathBuf {
        self.path.join("definitions.json")
    }

    /// Segment files (`NNNNNNNNNN.seg`), in ascending order.
    pub fn segments(&self) -> Vec<PathBuf> {
        self.files_with_extension("seg")
    }

    /// Ack files (`NNNNNNNNNN.ack`), in ascending order.
    pub fn ack_files(&self) -> Vec<PathBuf> {
        self.files_with_extension("ack")
    }

    fn files_with_extension(&self, extension: &str) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.messages()) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == extension))
            .collect();
        files.sort();
        files
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if std::env::var_os("WARREN_KEEP_DATA").is_some() {
            eprintln!("keeping data directory {}", self.path.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Everything the child wrote, line by line, and how many of its pipes closed.
#[derive(Default)]
struct Output {
    state: Mutex<OutputState>,
    changed: Condvar,
}

#[derive(Default)]
struct OutputState {
    lines: Vec<String>,
    closed_pipes: usize,
}

impl Output {
    /// Waits until `done` holds for the output, or `timeout` passes; returns whether it held.
    fn wait_until(&self, timeout: Duration, mut done: impl FnMut(&OutputState) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().expect("output lock");
        loop {
            if done(&state) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .expect("output lock")
                .0;
        }
    }

    fn text(&self) -> String {
        self.state.lock().expect("output lock").lines.join("\n")
    }
}

/// Strips ANSI colour sequences, in case the log is coloured despite `NO_COLOR`.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI sequences end with a letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn spawn_reader(pipe: impl Read + Send + 'static, output: Arc<Output>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = strip_ansi(String::from_utf8_lossy(&line).trim_end());
                    if std::env::var_os("WARREN_SHOW_LOG").is_some() {
                        eprintln!("[warren] {text}");
                    }
                    output.state.lock().expect("output lock").lines.push(text);
                    output.changed.notify_all();
                }
            }
        }
        output.state.lock().expect("output lock").closed_pipes += 1;
        output.changed.notify_all();
    })
}

/// Runs a blocking wait without stalling a multi-threaded tokio runtime's
/// worker (and the lapin connections it drives).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// A free port on 127.0.0.1, as the kernel hands it out. Another process may
/// take it before the broker binds it; [`Broker::start`] retries then.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// A `warren` child process serving one data directory.
pub struct Broker {
    child: Option<Child>,
    addr: SocketAddr,
    output: Arc<Output>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Broker {
    /// Starts the broker on `dir`; panics with its output if it does not start.
    pub fn start(dir: &DataDir) -> Broker {
        Broker::start_with_env(dir, &[])
    }

    /// Starts the broker on `dir` with extra environment variables (e.g. `WARREN_*` settings).
    pub fn start_with_env(dir: &DataDir, env: &[(&str, &str)]) -> Broker {
        Broker::start_with_limits(dir, env, None)
    }

    /// Like [`Broker::start_with_env`], with the child's open-file limit
    /// lowered to `fd_limit` (`ulimit -n` in a shell that then execs warren),
    /// to test behaviour under descriptor exhaustion.
    pub fn start_with_limits(dir: &DataDir, env: &[(&str, &str)], fd_limit: Option<u32>) -> Broker {
        blocking(|| {
            for _ in 0..5 {
                match Broker::try_start(dir.path(), env, fd_limit) {
                    Ok(broker) => return broker,
                    Err(broker) if broker.lost_port_race() => continue,
                    Err(broker) => panic!(
                        "warren did not start on {} (status {:?}); output:\n{}",
                        dir.path().display(),
                        broker.status,
                        broker.output()
                    ),
                }
            }
            panic!("warren could not bind a free port after 5 attempts");
        })
    }

    /// Starts the broker and waits for its "listening on" line; `Err` with the
    /// exited (or killed, on timeout) broker when it does not get there.
    fn try_start(
        dir: &Path,
        env: &[(&str, &str)],
        fd_limit: Option<u32>,
    ) -> Result<Broker, Broker> {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let binary = env!("CARGO_BIN_EXE_warren");
        let mut command = match fd_limit {
            None => Command::new(binary),
            Some(limit) => {
                // exec keeps the pid, so signals and kill() still reach warren itself.
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(binary);
                shell
            }
        };
        command
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(dir)
            .arg("--log")
            .arg("info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("NO_COLOR", "1");
        // The test's own WARREN_* variables (WARREN_CRASH_SEED, WARREN_TEST_URL...)
        // would otherwise reach the broker's configuration loader.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("WARREN_") {
                command.env_remove(key);
            }
        }
        // Concurrent brokers cannot all take the HTTP listeners' default ports.
        command.env("WARREN_MANAGEMENT_LISTEN", "127.0.0.1:0");
        command.env("WARREN_PROMETHEUS_LISTEN", "127.0.0.1:0");
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn warren");
        let output = Arc::new(Output::default());
        let readers = vec![
            spawn_reader(child.stdout.take().expect("piped stdout"), output.clone()),
            spawn_reader(child.stderr.take().expect("piped stderr"), output.clone()),
        ];
        let mut broker = Broker {
            child: Some(child),
            addr,
            output,
            readers,
            status: None,
        };
        let ready = broker.output.wait_until(START_TIMEOUT, |state| {
            state.closed_pipes == 2 || state.lines.iter().any(|l| l.contains("listening on"))
        });
        let listening = broker
            .output
            .state
            .lock()
            .expect("output lock")
            .lines
            .iter()
            .any(|l| l.contains("listening on"));
        if ready && listening {
            return Ok(broker);
        }
        broker.kill();
        Err(broker)
    }

    /// Whether a failed start was another process taking the port first.
    fn lost_port_race(&self) -> bool {
        let text = self.output();
        text.contains("Address already in use") || text.contains("AddrInUse")
    }

    /// The address the broker listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The AMQP URL of the broker (guest, vhost `/`).
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    /// Opens a lapin connection, bounded by [`OP_TIMEOUT`].
    pub async fn connect(&self) -> Connection {
        tokio::time::timeout(
            OP_TIMEOUT,
            Connection::connect(&self.url(), ConnectionProperties::default()),
        )
        .await
        .unwrap_or_else(|_| panic!("connecting to {} timed out", self.addr))
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.addr))
    }

    /// The child's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the broker wrote so far (stdout and stderr, interleaved by line).
    pub fn output(&self) -> String {
        self.output.text()
    }

    /// Waits until some output line contains `needle`; false after `timeout`.
    pub fn wait_for_output(&self, needle: &str, timeout: Duration) -> bool {
        blocking(|| {
            self.output
                .wait_until(timeout, |s| s.lines.iter().any(|l| l.contains(needle)))
        })
    }

    /// Clean shutdown: SIGTERM, then waits for the exit. Panics (after killing
    /// the broker) if it does not exit within [`STOP_TIMEOUT`].
    pub fn stop(&mut self) -> ExitStatus {
        blocking(|| {
            let pid = self.pid().expect("broker is running");
            let sent = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .expect("run kill");
            assert!(sent.success(), "kill -TERM {pid} failed");
            // The pipes close when the process exits, so that is the event to wait for.
            let exited = self
                .output
                .wait_until(STOP_TIMEOUT, |state| state.closed_pipes == 2);
            if !exited {
                self.kill();
                panic!(
                    "warren did not exit within {STOP_TIMEOUT:?} of SIGTERM; output:\n{}",
                    self.output()
                );
            }
            self.reap()
        })
    }

    /// Clean shutdown that must succeed (exit status 0).
    pub fn stop_cleanly(&mut self) {
        let status = self.stop();
        assert!(
            status.success(),
            "warren exited with {status} after SIGTERM; output:\n{}",
            self.output()
        );
    }

    /// Unclean stop: SIGKILL, then reaps the child.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        blocking(|| {
            if let Some(child) = self.child.as_mut() {
                let _ = child.kill();
            }
            self.child.as_ref()?;
            Some(self.reap())
        })
    }

    /// Waits for the exited child and its output readers.
    fn reap(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("child not reaped yet");
        let pid = child.id();
        // The process has exited or is exiting (pipes closed, or SIGKILL sent);
        // `wait` on a helper thread keeps even a stuck exit bounded.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = match rx.recv_timeout(STOP_TIMEOUT) {
            Ok(status) => status.expect("wait for warren"),
            Err(_) => {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status();
                rx.recv_timeout(STOP_TIMEOUT)
                    .expect("warren did not exit even after SIGKILL")
                    .expect("wait for warren")
            }
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        self.status = Some(status);
        status
    }

    /// Whether the child is still running (it may have crashed by itself).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.kill();
        }
    }
}

// ---------------------------------------------------------------------------
// Client helpers shared by the durability tests (lapin, every call bounded).

/// Awaits a lapin operation within [`OP_TIMEOUT`] and unwraps it, naming `what` on failure.
pub async fn ok<T>(what: &str, op: impl std::future::Future<Output = lapin::Result<T>>) -> T {
    tokio::time::timeout(OP_TIMEOUT, op)
        .await
        .unwrap_or_else(|_| panic!("{what}: timed out after {OP_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// The AMQP reply code of a failed operation (e.g. 404 for a passive declare of nothing).
pub fn reply_code(error: &lapin::Error) -> Option<u16> {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(e) => Some(e.get_id()),
        _ => None,
    }
}

/// A channel in confirm mode.
pub async fn confirm_channel(connection: &Connection) -> lapin::Channel {
    let channel = ok("channel.open", connection.create_channel()).await;
    ok(
        "confirm.select",
        channel.confirm_select(lapin::options::ConfirmSelectOptions::default()),
    )
    .await;
    channel
}

/// Properties of a persistent message (delivery mode 2) and nothing else.
pub fn persistent() -> lapin::BasicProperties {
    lapin::BasicProperties::default().with_delivery_mode(2)
}

/// Declares a durable queue (no arguments).
pub async fn declare_durable_queue(channel: &lapin::Channel, name: &str) {
    ok(
        &format!("declare durable queue {name}"),
        channel.queue_declare(
            name.into(),
            lapin::options::QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        ),
    )
    .await;
}

/// Declares an exchange of `kind`, durable or not, so tests can see which kinds survive a restart.
pub async fn declare_exchange(
    channel: &lapin::Channel,
    name: &str,
    kind: lapin::ExchangeKind,
    durable: bool,
) {
    ok(
        &format!("declare exchange {name}"),
        channel.exchange_declare(
            name.into(),
            kind,
            lapin::options::ExchangeDeclareOptions {
                durable,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        ),
    )
    .await;
}

/// Binds `queue` to `exchange` with `key` (no arguments), for the topologies that must survive.
pub async fn bind(channel: &lapin::Channel, queue: &str, exchange: &str, key: &str) {
    ok(
        &format!("bind {queue} to {exchange} with {key}"),
        channel.queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            lapin::options::QueueBindOptions::default(),
            lapin::types::FieldTable::default(),
        ),
    )
    .await;
}

/// Publishes on a confirm-mode channel and waits for the broker's ack.
pub async fn publish_confirmed(
    channel: &lapin::Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: lapin::BasicProperties,
) {
    let confirm = ok(
        "basic.publish",
        channel.basic_publish(
            exchange.into(),
            routing_key.into(),
            lapin::options::BasicPublishOptions::default(),
            body,
            properties,
        ),
    )
    .await;
    let confirmation = ok("publisher confirm", confirm).await;
    assert!(
        confirmation.is_ack(),
        "publish to {exchange:?}/{routing_key:?} not acked: {confirmation:?}"
    );
}

/// Takes every ready message of `queue` with basic.get, in queue order.
/// Without `no_ack` they stay unacknowledged on `channel`.
pub async fn get_all(
    channel: &lapin::Channel,
    queue: &str,
    no_ack: bool,
) -> Vec<lapin::message::Delivery> {
    let mut out = Vec::new();
    while let Some(got) = ok(
        &format!("basic.get from {queue}"),
        channel.basic_get(queue.into(), lapin::options::BasicGetOptions { no_ack }),
    )
    .await
    {
        out.push(got.delivery);
    }
    out
}

/// Bodies of every ready message of `queue`, removed with auto-ack.
pub async fn drain_bodies(channel: &lapin::Channel, queue: &str) -> Vec<Vec<u8>> {
    get_all(channel, queue, true)
        .await
        .into_iter()
        .map(|d| d.data)
        .collect()
}

/// Whether the queue exists (passive declare on a throw-away channel: a
/// missing queue closes the channel with 404).
pub async fn queue_exists(connection: &Connection, name: &str) -> bool {
    let channel = ok("channel.open", connection.create_channel()).await;
    let declared = tokio::time::timeout(
        OP_TIMEOUT,
        channel.queue_declare(
            name.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("passive declare of queue {name} timed out"));
    match declared {
        Ok(_) => {
            let _ = channel.close(200, "done".into()).await;
            true
        }
        Err(e) if reply_code(&e) == Some(404) => false,
        Err(e) => panic!("passive declare of queue {name}: {e}"),
    }
}

/// Whether the exchange exists (passive declare on a throw-away channel).
pub async fn exchange_exists(connection: &Connection, name: &str) -> bool {
    let channel = ok("channel.open", connection.create_channel()).await;
    let declared = tokio::time::timeout(
        OP_TIMEOUT,
        channel.exchange_declare(
            name.into(),
            lapin::ExchangeKind::Direct,
            lapin::options::ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("passive declare of exchange {name} timed out"));
    match declared {
        Ok(()) => {
            let _ = channel.close(200, "done".into()).await;
            true
        }
        Err(e) if reply_code(&e) == Some(404) => false,
        Err(e) => panic!("passive declare of exchange {name}: {e}"),
    }
}

/// Whether `needle` occurs in any file under `dir` (recursively): proof that
/// something was, or was not, written to disk.
pub fn bytes_on_disk(dir: &Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.filter_map(Result::ok).any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            bytes_on_disk(&path, needle)
        } else {
            std::fs::read(&path).is_ok_and(|data| data.windows(needle.len()).any(|w| w == needle))
        }
    })
}

/// Short, comparable descriptions of message bodies for assertions: the text
/// up to the first `|` (or 24 bytes), the length and a CRC of the whole body,
/// so a failure shows which messages differ without dumping kilobytes.
pub fn summaries<B: AsRef<[u8]>>(bodies: &[B]) -> Vec<String> {
    bodies
        .iter()
        .map(|body| {
            let body = body.as_ref();
            let head = body
                .iter()
                .position(|&b| b == b'|')
                .unwrap_or(body.len().min(24));
            format!(
                "{} ({} bytes, crc {:08x})",
                String::from_utf8_lossy(&body[..head]),
                body.len(),
                crc32fast::hash(body)
            )
        })
        .collect()
}
