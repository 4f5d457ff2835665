//! Graceful shutdown: every open connection is told
//! `320 CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'`
//! (as RabbitMQ tells its clients when it stops), may answer close-ok, and the
//! listener stops accepting connections.
//!
//! This drives `warren::testing::InProcessServer` directly (dropping it is the
//! shutdown), so it cannot run against an external broker: with
//! `WARREN_TEST_URL` set it returns early.
//!
//! lapin does not hand the close's reply code and text to its caller (only an
//! events stream this crate cannot poll without a `Stream` trait), so the lapin
//! client connects through a small recording proxy: the test reads the
//! connection.close lapin received off the wire.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::raw::*;
use lapin::{Connection, ConnectionProperties};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout};

/// What RabbitMQ's reply text starts with when the broker shuts down.
const SHUTDOWN_TEXT: &str =
    "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'";
/// How long the broker may take to close every connection and stop.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);

/// What the broker sent to the client through the proxy.
type Recording = Mutex<Vec<u8>>;

/// Starts a proxy for one connection to `broker`, recording what the broker sends.
async fn recording_proxy(broker: SocketAddr) -> (SocketAddr, Arc<Recording>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    let recording = Arc::new(Recording::default());
    let rec = recording.clone();
    tokio::spawn(async move {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let Ok(server) = TcpStream::connect(broker).await else {
            return;
        };
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        let down = pump(server_read, client_write, Some(rec));
        let up = pump(client_read, server_write, None);
        tokio::join!(down, up);
    });
    (addr, recording)
}

/// Copies bytes one way until either side ends, recording them in `rec` if given.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, rec: Option<Arc<Recording>>) {
    let mut chunk = [0u8; 8192];
    loop {
        match from.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(rec) = &rec {
                    rec.lock().unwrap().extend_from_slice(&chunk[..n]);
                }
                if to.write_all(&chunk[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// The complete frames in `bytes`.
fn frames_of(mut bytes: Vec<u8>) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some(frame) = take_frame(&mut bytes) {
        frames.push(frame);
    }
    frames
}

/// The connection.close the broker sent through the proxy, if any yet.
fn close_sent_down(rec: &Recording) -> Option<Close> {
    let bytes = rec.lock().unwrap().clone();
    frames_of(bytes).into_iter().find_map(|frame| match frame {
        Frame::Method {
            channel: 0,
            class: 10,
            method: 50,
            args,
        } => Some(parse_close(&args)),
        _ => None,
    })
}

/// Dropping the server closes a raw and a lapin client with 320 and stops the listener.
#[tokio::test]
async fn shutdown_closes_connections_with_320_and_stops_listening() {
    if std::env::var_os("WARREN_TEST_URL").is_some() {
        eprintln!("skipped: graceful shutdown needs the in-process broker, not WARREN_TEST_URL");
        return;
    }
    bounded(async {
        let server = warren::testing::InProcessServer::start();
        let addr = server.addr();

        // A raw client with channel 1 open.
        let mut raw = RawClient::connect_to(addr).await;
        raw.handshake(&login_of(&format!("amqp://guest:guest@{addr}/%2f")))
            .await;
        raw.open_channel(1).await;

        // A lapin client, through the recording proxy, with a channel open.
        let (proxy, recording) = recording_proxy(addr).await;
        let lapin = timeout(
            READ_TIMEOUT,
            Connection::connect(
                &format!("amqp://guest:guest@{proxy}/%2f"),
                ConnectionProperties::default(),
            ),
        )
        .await
        .expect("lapin connect timed out")
        .expect("lapin connect");
        let channel = timeout(READ_TIMEOUT, lapin.create_channel())
            .await
            .expect("lapin channel timed out")
            .expect("lapin channel");
        assert!(channel.status().connected(), "lapin channel is open");

        // Shut the broker down from another thread: dropping it waits for the end.
        let (stopped_tx, stopped) = oneshot::channel();
        let started = Instant::now();
        std::thread::spawn(move || {
            drop(server);
            let _ = stopped_tx.send(());
        });

        // The raw client is told, answers close-ok, and the socket is dropped.
        let close = raw
            .expect_connection_close(320, SHUTDOWN_TEXT, (0, 0))
            .await;
        assert_eq!(close.text, SHUTDOWN_TEXT, "raw client's close text");
        raw.send(&connection_close_ok()).await;
        raw.expect_closed(CLOSE_TIMEOUT).await;

        // lapin received the same close and ended in the error state. (lapin
        // 4.12 never gets its close-ok onto the wire after a server-initiated
        // close, against RabbitMQ too, so that is not checked here.)
        assert!(
            common::eventually(READ_TIMEOUT, || close_sent_down(&recording).is_some()).await,
            "lapin's connection got no connection.close"
        );
        let close = close_sent_down(&recording).expect("close recorded");
        assert_eq!(
            (close.code, close.text.as_str(), close.class, close.method),
            (320, SHUTDOWN_TEXT, 0, 0),
            "lapin's connection.close"
        );
        assert!(
            common::eventually(READ_TIMEOUT, || lapin.status().errored()).await,
            "lapin's connection is not in the error state: {:?}",
            lapin.status()
        );

        timeout(SHUTDOWN_TIMEOUT, stopped)
            .await
            .expect("broker did not finish shutting down")
            .expect("shutdown thread panicked");
        eprintln!(
            "broker stopped {:?} after shutdown began",
            started.elapsed()
        );

        match timeout(READ_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Err(_)) => {}
            Ok(Ok(_)) => panic!("listener at {addr} still accepts connections after shutdown"),
            Err(_) => panic!("connecting to {addr} after shutdown neither failed nor succeeded"),
        }
    })
    .await;
}
