//! amqps: AMQP 0-9-1 over TLS on its own listener, beside plain AMQP.
//!
//! The broker runs in-process with the test certificate of `tests/fixtures/tls`
//! (see its README); clients are tokio-rustls streams that trust the test CA,
//! driven by the raw AMQP client of `common::raw`. Handshake failures (plain
//! AMQP on the TLS port, a client that rejects the certificate, a client that
//! never starts TLS) must end only that connection. These tests need the
//! broker's own TLS settings, so they always run in-process, even when
//! `WARREN_TEST_URL` names another broker.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::raw::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use warren::config::{Config, Overrides};
use warren::testing::InProcessServer;

/// A file of `tests/fixtures/tls`.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// A broker with plain AMQP and amqps both on ephemeral ports.
fn start_broker() -> (InProcessServer, SocketAddr) {
    let server = InProcessServer::start_with(|config| {
        config.tls_listen = Some("127.0.0.1:0".parse().expect("literal address"));
        config.tls_cert_file = Some(fixture("server.pem"));
        config.tls_key_file = Some(fixture("server-key.pem"));
    });
    let tls_addr = server.tls_addr().expect("the broker has an amqps listener");
    (server, tls_addr)
}

/// A TLS client configuration trusting exactly `roots`.
fn client_config(roots: RootCertStore) -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Trusts the test CA only.
fn trusting_test_ca() -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(fixture("ca.pem")).expect("read ca.pem") {
        roots
            .add(cert.expect("parse ca.pem"))
            .expect("add the test CA");
    }
    client_config(roots)
}

/// Connects over TCP and completes the TLS handshake as `localhost`.
async fn tls_connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    tls_over(TcpStream::connect(addr).await?, config).await
}

/// Completes the TLS handshake as `localhost` on a connected socket.
async fn tls_over(
    tcp: TcpStream,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from("localhost").expect("valid DNS name");
    timeout(READ_TIMEOUT, TlsConnector::from(config).connect(name, tcp))
        .await
        .expect("TLS handshake timed out")
}

/// An AMQP connection over TLS, open, with channel 1 open.
async fn open_tls_client(addr: SocketAddr) -> RawClient {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    open_tls_client_over(tcp).await
}

/// [`open_tls_client`] on a socket the caller connected.
async fn open_tls_client_over(tcp: TcpStream) -> RawClient {
    let stream = tls_over(tcp, trusting_test_ca())
        .await
        .expect("TLS handshake with the test CA");
    let mut client = RawClient::over(stream, READ_TIMEOUT);
    client
        .handshake(&login_of("amqp://guest:guest@localhost/%2f"))
        .await;
    client.open_channel(1).await;
    client
}

/// An AMQP connection over plain TCP, open, with channel 1 open.
async fn open_plain_client(addr: SocketAddr) -> RawClient {
    let mut client = RawClient::connect_to(addr).await;
    client
        .handshake(&login_of("amqp://guest:guest@localhost/%2f"))
        .await;
    client.open_channel(1).await;
    client
}

/// queue.declare of an exclusive queue (gone with its connection), waiting for declare-ok.
async fn declare_exclusive_queue(client: &mut RawClient, queue: &str) {
    let mut args = 0u16.to_be_bytes().to_vec(); // reserved-1
    put_short_str(&mut args, queue);
    args.push(0b0000_0100); // exclusive
    args.extend_from_slice(&encode_table(&[]));
    client.send(&method_frame(1, 50, 10, &args)).await;
    client.expect_method(1, 50, 11).await;
}

/// basic.consume with no-ack on channel 1, waiting for consume-ok.
async fn consume_no_ack(client: &mut RawClient, queue: &str) {
    let mut args = 0u16.to_be_bytes().to_vec(); // reserved-1
    put_short_str(&mut args, queue);
    put_short_str(&mut args, ""); // consumer tag chosen by the broker
    args.push(0b0000_0010); // no-ack
    args.extend_from_slice(&encode_table(&[]));
    client.send(&method_frame(1, 60, 20, &args)).await;
    client.expect_method(1, 60, 21).await;
}

/// Proves a connection still works: a fresh channel opens and closes.
async fn still_served(client: &mut RawClient, channel: u16) {
    client.open_channel(channel).await;
    let mut args = 200u16.to_be_bytes().to_vec();
    put_short_str(&mut args, "done");
    args.extend_from_slice(&[0, 0, 0, 0]); // class-id, method-id
    client.send(&method_frame(channel, 20, 40, &args)).await;
    client.expect_method(channel, 20, 41).await; // channel.close-ok
}

/// 16 MB each way through a client with a small receive window, so that the
/// broker's socket fills mid-burst and TLS holds back bytes it has accepted
/// between writes: every body frame must still arrive, in frames that parse.
#[tokio::test]
async fn amqps_carries_a_burst_larger_than_the_tls_and_socket_buffers() {
    bounded(async {
        let (_server, tls_addr) = start_broker();
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .set_recv_buffer_size(8 * 1024)
            .expect("set SO_RCVBUF");
        let tcp = socket.connect(tls_addr).await.expect("connect");
        let mut client = open_tls_client_over(tcp).await;
        let queue = common::unique("tls-burst");
        declare_exclusive_queue(&mut client, &queue).await;

        const MESSAGES: usize = 128;
        const BODY: usize = 128_000; // one body frame each at the default frame_max
        let body = vec![0xA5; BODY];
        let mut publishes = Vec::new();
        for _ in 0..MESSAGES {
            publishes.extend(basic_publish(1, "", &queue));
            publishes.extend(content_header(1, 60, BODY as u64));
            publishes.extend(content_body(1, &body));
        }
        client.send(&publishes).await;
        consume_no_ack(&mut client, &queue).await;

        let mut bodies = 0;
        while bodies < MESSAGES {
            match client.read_frame(Duration::from_secs(20)).await {
                Ok(Frame::Other {
                    kind: FRAME_BODY,
                    channel: 1,
                }) => bodies += 1,
                Ok(_) => {} // basic.deliver and content headers
                Err(end) => panic!("after {bodies} of {MESSAGES} bodies: {end:?}"),
            }
        }
        client.close().await;
    })
    .await;
}

/// Plain AMQP bytes on the TLS port get no AMQP answer, only a closed socket,
/// while TLS and plain clients connected before keep being served and new
/// ones get in.
#[tokio::test]
async fn plain_amqp_on_the_tls_port_is_dropped_and_others_are_served() {
    bounded(async {
        let (server, tls_addr) = start_broker();
        let mut tls_before = open_tls_client(tls_addr).await;
        let mut plain_before = open_plain_client(server.addr()).await;

        let mut confused = TcpStream::connect(tls_addr).await.expect("connect");
        tokio::io::AsyncWriteExt::write_all(&mut confused, PROTOCOL_HEADER)
            .await
            .expect("send the AMQP header");
        let mut answer = Vec::new();
        timeout(CLOSE_TIMEOUT, confused.read_to_end(&mut answer))
            .await
            .expect("the broker closes the socket")
            .ok(); // a reset is as good as a close here
        assert!(
            !answer.starts_with(b"AMQP"),
            "the TLS port answered in plain AMQP: {answer:?}"
        );

        still_served(&mut tls_before, 2).await;
        still_served(&mut plain_before, 2).await;
        let mut tls_after = open_tls_client(tls_addr).await;
        still_served(&mut tls_after, 2).await;
        for mut client in [tls_before, plain_before, tls_after] {
            client.close().await;
        }
    })
    .await;
}

/// A client that does not trust the broker's certificate fails its handshake;
/// the broker drops that socket and goes on serving the next client.
#[tokio::test]
async fn a_client_rejecting_the_certificate_fails_alone() {
    bounded(async {
        let (_server, tls_addr) = start_broker();
        let error = tls_connect(tls_addr, client_config(RootCertStore::empty()))
            .await
            .expect_err("a client without the test CA must refuse the certificate");
        assert!(
            error.to_string().contains("UnknownIssuer"),
            "unexpected handshake error: {error}"
        );

        let mut client = open_tls_client(tls_addr).await;
        still_served(&mut client, 2).await;
        client.close().await;
    })
    .await;
}

/// A client that connects to the TLS port and never says anything neither
/// holds up the accept loop nor keeps its socket: the broker ends it after
/// its TLS handshake timeout (5 s, as RabbitMQ).
#[tokio::test]
async fn a_silent_client_on_the_tls_port_blocks_nobody_and_is_dropped() {
    bounded(async {
        let (_server, tls_addr) = start_broker();
        let mut silent = TcpStream::connect(tls_addr).await.expect("connect");

        let mut client = open_tls_client(tls_addr).await;
        // Served while the silent socket is still waiting for its handshake:
        // had the broker waited on it first, its timeout would have closed it.
        let mut probe = [0u8; 1];
        assert!(
            matches!(silent.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "the silent socket was already closed or answered"
        );
        still_served(&mut client, 2).await;

        let mut leftover = Vec::new();
        let ended = timeout(Duration::from_secs(10), silent.read_to_end(&mut leftover)).await;
        assert!(
            ended.is_ok(),
            "the broker kept a silent TLS socket open for 10 s"
        );
        assert!(leftover.is_empty(), "the broker sent {leftover:?} unprompted");
        client.close().await;
    })
    .await;
}

/// Configuration with TLS files, on ephemeral ports and a data directory
/// that must never be created when the files are bad.
fn config_with_tls(cert: PathBuf, key: PathBuf, data_dir: &Path) -> Config {
    let mut config = Config::load(Overrides::default()).expect("default configuration");
    config.listen = "127.0.0.1:0".parse().expect("literal address");
    config.tls_listen = Some("127.0.0.1:0".parse().expect("literal address"));
    config.tls_cert_file = Some(cert);
    config.tls_key_file = Some(key);
    config.data_dir = data_dir.to_path_buf();
    config
}

/// Bad certificate or key files stop start-up with an error naming the file
/// and what is wrong with it, before the data directory is touched.
#[tokio::test]
async fn bad_tls_files_stop_start_up_with_a_clear_error() {
    let data_dir = std::env::temp_dir().join(common::unique("warren-tls-never-created"));
    let missing = fixture("missing.pem");
    let cases = [
        (
            config_with_tls(missing.clone(), fixture("server-key.pem"), &data_dir),
            format!("TLS certificate file {}: I/O error", missing.display()),
        ),
        (
            config_with_tls(fixture("server.pem"), missing.clone(), &data_dir),
            format!("TLS key file {}: I/O error", missing.display()),
        ),
        (
            config_with_tls(fixture("server.pem"), fixture("ca.pem"), &data_dir),
            format!(
                "TLS key file {}: no PEM private key in it",
                fixture("ca.pem").display()
            ),
        ),
        (
            config_with_tls(
                fixture("server-key.pem"),
                fixture("server-key.pem"),
                &data_dir,
            ),
            format!(
                "TLS certificate file {}: no PEM certificate in it",
                fixture("server-key.pem").display()
            ),
        ),
        (
            // The CA's certificate with the server's key: they do not belong together.
            config_with_tls(fixture("ca.pem"), fixture("server-key.pem"), &data_dir),
            format!(
                "TLS certificate {} with key {}:",
                fixture("ca.pem").display(),
                fixture("server-key.pem").display()
            ),
        ),
    ];
    for (config, expected) in cases {
        let error = match warren::run::bind(&config).await {
            Ok(_) => panic!("started despite bad TLS files; expected {expected:?}"),
            Err(error) => error.to_string(),
        };
        assert!(
            error.starts_with(&expected),
            "error {error:?} does not start with {expected:?}"
        );
        assert!(!data_dir.exists(), "start-up touched the data directory");
    }
}

/// The binary reports a bad TLS file and exits with failure instead of
/// running without its amqps listener.
#[tokio::test]
async fn the_broker_exits_when_its_tls_key_cannot_be_read() {
    let data_dir = std::env::temp_dir().join(common::unique("warren-tls-exit"));
    let missing = fixture("missing-key.pem");
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0"])
        .arg("--tls-cert-file")
        .arg(fixture("server.pem"))
        .arg("--tls-key-file")
        .arg(&missing)
        .arg("--data-dir")
        .arg(&data_dir)
        .env("WARREN_LOG", "info")
        .kill_on_drop(true)
        .output();
    let output = timeout(Duration::from_secs(30), run)
        .await
        .expect("the broker kept running with an unreadable TLS key")
        .expect("run the warren binary");
    assert!(!output.status.success(), "exit status {}", output.status);
    let log = String::from_utf8_lossy(&output.stdout);
    let expected = format!("TLS key file {}: I/O error", missing.display());
    assert!(log.contains(&expected), "log lacks {expected:?}:\n{log}");
}

/// Sends one HTTP/1.1 request for `path` as guest and reads the whole response.
async fn http_get(
    stream: &mut (impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin),
    path: &str,
) -> String {
    // "guest:guest", base64-encoded.
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut response = Vec::new();
    timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("the response arrives")
        .expect("read the response");
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn the_management_api_is_served_over_tls_with_the_amqps_certificate() {
    let server = InProcessServer::start_with(|config| {
        config.tls_listen = Some("127.0.0.1:0".parse().expect("literal address"));
        config.tls_cert_file = Some(fixture("server.pem"));
        config.tls_key_file = Some(fixture("server-key.pem"));
        config.management_tls_listen = Some("127.0.0.1:0".parse().expect("literal address"));
    });
    let https = server
        .management_tls_addr()
        .expect("the broker has an HTTPS management listener");

    let mut stream = tls_connect(https, trusting_test_ca())
        .await
        .expect("TLS handshake with the test CA's certificate");
    let response = http_get(&mut stream, "/api/whoami").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""name":"guest""#), "{response}");

    // The overview lists the HTTPS listener under RabbitMQ's protocol name.
    let mut stream = tls_connect(https, trusting_test_ca()).await.expect("TLS");
    let overview = http_get(&mut stream, "/api/overview").await;
    let port = format!(r#""port":{}"#, https.port());
    assert!(overview.contains(r#""protocol":"https""#), "{overview}");
    assert!(overview.contains(&port), "{overview}");

    // Plain HTTP on the HTTPS port gets no HTTP answer.
    let mut plain = TcpStream::connect(https).await.expect("connect");
    let answer = http_get(&mut plain, "/api/whoami").await;
    assert!(!answer.contains("HTTP/1.1"), "{answer}");
}

#[test]
fn an_https_management_listener_needs_the_tls_certificate_and_key() {
    let mut config = Config::load(Overrides::default()).expect("defaults");
    config.management_tls_listen = Some("127.0.0.1:15671".parse().expect("literal address"));
    assert_eq!(
        config.tls().expect_err("refused"),
        "management_tls_listen is set but tls_cert_file and tls_key_file are not"
    );
}
