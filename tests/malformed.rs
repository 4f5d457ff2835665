//! Raw-socket malformed-input tests: protocol violations are answered as RabbitMQ 3.x answers them.
//!
//! Covered: bad protocol headers, garbage, broken frames and out-of-order content.
//! Every case speaks AMQP 0-9-1 by hand over a plain `TcpStream`, so the broker sees
//! exactly the bytes under test. After each violation the test checks the
//! `connection.close` the broker sends (reply code, reply-text prefix and the
//! class/method ids it blames), that the broker drops the socket once the close is
//! acknowledged, and that a well-behaved lapin client connected beforehand can still
//! publish and get a message. Every read is bounded by a timeout, so a broker that
//! stays silent fails the test instead of hanging it.

mod common;

use common::raw::*;

// ---------------------------------------------------------------------------
// Tests.

/// Opens a client with a channel, sends `bytes`, and expects the broker to close
/// the connection with `code`, a text starting with `text`, blaming `ids` — while
/// a bystander client on the same broker keeps working.
async fn expect_violation(bytes: &[u8], code: u16, text: &str, ids: (u16, u16)) {
    bounded(async {
        let broker = common::TestBroker::start();
        let bystander = Bystander::start(&broker).await;
        let mut client = RawClient::open_with_channel(&broker).await;
        client.violate(bytes, code, text, ids).await;
        bystander.finish().await;
    })
    .await;
}

/// Headers of protocols the broker does not speak are answered with the 0-9-1
/// header, after which the broker closes the socket.
#[tokio::test]
async fn wrong_protocol_header_gets_0_9_1_header_and_close() {
    bounded(async {
        let broker = common::TestBroker::start();
        let bystander = Bystander::start(&broker).await;
        let headers: [&[u8; 8]; 3] = [
            b"AMQP\x01\x01\x00\x0a", // AMQP 0-10
            b"AMQP\x00\x00\x09\x00", // 0-9-0 written the 0-9-1 way
            b"AMQP\x00\x01\x00\x00", // AMQP 1.0
        ];
        for header in headers {
            let mut client = RawClient::connect(&broker).await;
            client.send(header).await;
            let reply = client
                .read_exact_bytes(8, READ_TIMEOUT)
                .await
                .unwrap_or_else(|end| panic!("no header back for {header:?}: {end:?}"));
            assert_eq!(&reply, PROTOCOL_HEADER, "reply to {header:?}");
            client.expect_closed(CLOSE_TIMEOUT).await;
        }
        bystander.finish().await;
    })
    .await;
}

/// Non-AMQP bytes instead of a protocol header are refused the same way.
#[tokio::test]
async fn garbage_instead_of_header_gets_0_9_1_header_and_close() {
    bounded(async {
        let broker = common::TestBroker::start();
        let bystander = Bystander::start(&broker).await;
        let mut client = RawClient::connect(&broker).await;
        client
            .send_best_effort(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await;
        let reply = client
            .read_exact_bytes(8, READ_TIMEOUT)
            .await
            .expect("protocol header back");
        assert_eq!(&reply, PROTOCOL_HEADER);
        client.expect_closed(CLOSE_TIMEOUT).await;
        bystander.finish().await;
    })
    .await;
}

/// Garbage after the handshake parses as a frame whose size exceeds frame_max.
#[tokio::test]
async fn garbage_after_handshake_is_frame_error() {
    bounded(async {
        let broker = common::TestBroker::start();
        let bystander = Bystander::start(&broker).await;
        let mut client = RawClient::open_with_channel(&broker).await;
        client
            .send_best_effort(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await;
        client
            .expect_connection_close(501, "FRAME_ERROR", (0, 0))
            .await;
        client.finish_close().await;
        bystander.finish().await;
    })
    .await;
}

/// A frame whose end octet is not 0xCE is a fatal frame error.
#[tokio::test]
async fn bad_frame_end_is_frame_error() {
    let bad = frame_with_end(FRAME_METHOD, 1, &method_payload(60, 10, &[0; 7]), 0x00);
    expect_violation(&bad, 501, "FRAME_ERROR", (0, 0)).await;
}

/// A frame larger than the negotiated frame_max is a fatal frame error.
#[tokio::test]
async fn oversized_frame_is_frame_error() {
    bounded(async {
        let broker = common::TestBroker::start();
        let bystander = Bystander::start(&broker).await;
        let mut client = RawClient::open_with_channel(&broker).await;
        let size = usize::try_from(client.frame_max).expect("frame_max fits usize") + 1;
        let big = content_body(1, &vec![b'x'; size]);
        client.send_best_effort(&big).await;
        client
            .expect_connection_close(501, "FRAME_ERROR", (0, 0))
            .await;
        client.finish_close().await;
        bystander.finish().await;
    })
    .await;
}

/// A frame type outside 1/2/3/8 is a frame error (RabbitMQ: 501, not 505).
#[tokio::test]
async fn unknown_frame_type_is_frame_error() {
    expect_violation(&frame(9, 1, b"abc"), 501, "FRAME_ERROR", (0, 0)).await;
}

/// A method on a channel that was never opened is a channel error blaming that method.
#[tokio::test]
async fn method_on_unopened_channel_is_channel_error() {
    expect_violation(
        &basic_qos(2, 1),
        504,
        "CHANNEL_ERROR - expected 'channel.open'",
        (60, 10),
    )
    .await;
}

/// Opening an already open channel is a channel error blaming channel.open.
#[tokio::test]
async fn channel_open_twice_is_channel_error() {
    expect_violation(
        &channel_open(1),
        504,
        "CHANNEL_ERROR - second 'channel.open' seen",
        (20, 10),
    )
    .await;
}

/// A content header that no basic.publish announced is an unexpected frame.
#[tokio::test]
async fn content_header_without_publish_is_unexpected_frame() {
    expect_violation(
        &content_header(1, 60, 5),
        505,
        "UNEXPECTED_FRAME - expected method frame, got non method frame instead",
        (0, 0),
    )
    .await;
}

/// A body frame with no publish and no header is an unexpected frame.
#[tokio::test]
async fn body_without_publish_is_unexpected_frame() {
    expect_violation(
        &content_body(1, b"hello"),
        505,
        "UNEXPECTED_FRAME - expected method frame, got non method frame instead",
        (0, 0),
    )
    .await;
}

/// A body frame straight after basic.publish (no content header) is an unexpected frame.
#[tokio::test]
async fn body_without_header_is_unexpected_frame() {
    let mut bytes = basic_publish(1, "", "malformed-nowhere");
    bytes.extend(content_body(1, b"hello"));
    expect_violation(
        &bytes,
        505,
        "UNEXPECTED_FRAME - expected content header for class 60, \
         got non content header frame instead",
        (60, 40),
    )
    .await;
}

/// A method frame where the content header should be is an unexpected frame.
#[tokio::test]
async fn method_instead_of_content_header_is_unexpected_frame() {
    let mut bytes = basic_publish(1, "", "malformed-nowhere");
    bytes.extend(basic_qos(1, 1));
    expect_violation(
        &bytes,
        505,
        "UNEXPECTED_FRAME - expected content header for class 60, \
         got non content header frame instead",
        (60, 40),
    )
    .await;
}

/// A method frame while body bytes are still owed is an unexpected frame.
#[tokio::test]
async fn method_in_middle_of_content_is_unexpected_frame() {
    let mut bytes = basic_publish(1, "", "malformed-nowhere");
    bytes.extend(content_header(1, 60, 10));
    bytes.extend(content_body(1, b"hello"));
    bytes.extend(basic_qos(1, 1));
    expect_violation(
        &bytes,
        505,
        "UNEXPECTED_FRAME - expected content body, got non content body frame instead",
        (60, 40),
    )
    .await;
}

/// A content header for another class than the publish's is an unexpected frame.
#[tokio::test]
async fn content_header_class_mismatch_is_unexpected_frame() {
    let mut bytes = basic_publish(1, "", "malformed-nowhere");
    bytes.extend(content_header(1, 50, 3));
    expect_violation(
        &bytes,
        505,
        "UNEXPECTED_FRAME - expected content header for class 60, \
                 got one for class 50 instead",
        (60, 40),
    )
    .await;
}

/// A frame cut short by the client closing its socket harms nobody: the broker
/// survives, the bystander keeps working and new clients can still connect.
#[tokio::test]
async fn truncated_frame_then_disconnect_leaves_broker_working() {
    bounded(async {
        let broker = common::TestBroker::start();
        let bystander = Bystander::start(&broker).await;

        let mut client = RawClient::open_with_channel(&broker).await;
        let full = basic_publish(1, "", "malformed-nowhere");
        client.send(&full[..10]).await;
        drop(client);

        // Also a client that dies half-way through the protocol header.
        let mut client = RawClient::connect(&broker).await;
        client.send(&PROTOCOL_HEADER[..5]).await;
        drop(client);

        let mut fresh = RawClient::open_with_channel(&broker).await;
        fresh.send(&basic_qos(1, 1)).await;
        fresh.expect_method(1, 60, 11).await; // basic.qos-ok
        bystander.finish().await;
    })
    .await;
}
