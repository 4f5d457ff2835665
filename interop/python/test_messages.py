"""Message content end to end: properties, headers tables, bodies, basic.get and basic.return."""

import datetime
import decimal
import os
import struct

import pika
import pytest

import support
from support import channel_error, wait_until

USER = support.parameters().credentials.username

HEADERS = {
    "string": "text ü",
    "int": -42,
    "long": 2**40,
    "true": True,
    "false": False,
    "decimal": decimal.Decimal("3.14"),
    "timestamp": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
    "void": None,
    "bytes": b"\x00\xff",
    "table": {"nested": {"deeper": [1, "two", {"three": 3}]}, "empty": {}},
    "array": [1, "a", [2, [3]], {"k": "v"}, True, None, b"\x01"],
    "empty-array": [],
}

ALL_PROPERTIES = dict(
    content_type="application/json",
    content_encoding="utf-8",
    headers=HEADERS,
    delivery_mode=2,
    priority=7,
    correlation_id="corr-1",
    reply_to="replies",
    expiration="60000",
    message_id="msg-1",
    timestamp=1700000000,
    type="order.created",
    user_id=USER,  # RabbitMQ rejects a user_id other than the authenticated user
    app_id="interop",
    cluster_id="cluster-a",
)


def own_queue(channel):
    return channel.queue_declare("", exclusive=True).method.queue


def receive_one(connection, channel, queue):
    """One message delivered through basic.consume (not basic.get), acknowledged."""
    received = []
    tag = channel.basic_consume(queue, lambda _ch, *message: received.append(message))
    wait_until(connection, lambda: received, "a delivery")
    channel.basic_cancel(tag)
    method, properties, body = received[0]
    channel.basic_ack(method.delivery_tag)
    return method, properties, body


def test_all_properties_survive_get_and_consume(connection, channel):
    queue = own_queue(channel)
    channel.confirm_delivery()
    sent = pika.BasicProperties(**ALL_PROPERTIES)
    channel.basic_publish("", queue, b"by get", sent)
    channel.basic_publish("", queue, b"by consume", sent)
    _, by_get, body = channel.basic_get(queue, auto_ack=True)
    assert body == b"by get" and vars(by_get) == vars(sent)
    _, by_consume, body = receive_one(connection, channel, queue)
    assert body == b"by consume" and vars(by_consume) == vars(sent)


def test_absent_properties_stay_absent(channel):
    queue = own_queue(channel)
    channel.confirm_delivery()
    channel.basic_publish("", queue, b"bare")
    _, properties, _ = channel.basic_get(queue, auto_ack=True)
    assert all(value is None for value in vars(properties).values())


# Hand-encoded content-header payload, so that field types pika cannot produce
# (b, B, s, u, i, f, d ...) are covered and compared byte for byte.
def shortstr(value: bytes) -> bytes:
    return struct.pack(">B", len(value)) + value


def longstr(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def field(name: bytes, kind: bytes, payload: bytes) -> bytes:
    return shortstr(name) + kind + payload


def raw_properties_blob() -> bytes:
    array = b"b" + struct.pack(">b", -1) + b"S" + longstr(b"in array") + b"V" + b"F" + longstr(b"")
    table = b"".join(
        [
            field(b"bool", b"t", b"\x01"),
            field(b"int8", b"b", struct.pack(">b", -128)),
            field(b"uint8", b"B", struct.pack(">B", 255)),
            field(b"int16", b"s", struct.pack(">h", -2)),
            field(b"uint16", b"u", struct.pack(">H", 65535)),
            field(b"int32", b"I", struct.pack(">i", -3)),
            field(b"uint32", b"i", struct.pack(">I", 2**32 - 1)),
            field(b"int64", b"l", struct.pack(">q", -(2**62))),
            field(b"float", b"f", struct.pack(">f", 1.5)),
            field(b"double", b"d", struct.pack(">d", 2.25)),
            field(b"decimal", b"D", struct.pack(">BI", 2, 314)),
            field(b"longstr", b"S", longstr("ü".encode())),
            field(b"bytes", b"x", longstr(b"\x00\xff")),
            field(b"timestamp", b"T", struct.pack(">Q", 1700000000)),
            field(b"void", b"V", b""),
            field(b"array", b"A", longstr(array)),
            field(b"table", b"F", longstr(field(b"inner", b"u", struct.pack(">H", 7)))),
        ]
    )
    all_fourteen_flags = 0xFFFC
    return b"".join(
        [
            struct.pack(">H", all_fourteen_flags),
            shortstr(b"text/plain"),
            shortstr(b"gzip"),
            longstr(table),
            struct.pack(">BB", 1, 9),  # delivery-mode, priority
            shortstr(b"corr"),
            shortstr(b"reply"),
            shortstr(b"5000"),
            shortstr(b"id"),
            struct.pack(">Q", 1),
            shortstr(b"type"),
            shortstr(USER.encode()),
            shortstr(b"app"),
            shortstr(b"cluster"),
        ]
    )


class RawProperties(pika.BasicProperties):
    """Properties whose wire encoding is given verbatim."""

    def __init__(self, blob: bytes):
        super().__init__()
        self.blob = blob

    def encode(self):
        return [self.blob]


def test_every_field_type_is_delivered_byte_for_byte(connection, channel, monkeypatch):
    received_blobs = []
    decode = pika.spec.BasicProperties.decode

    def recording_decode(self, encoded, offset=0):
        received_blobs.append(bytes(encoded[offset:]))
        return decode(self, encoded, offset)

    monkeypatch.setattr(pika.spec.BasicProperties, "decode", recording_decode)
    queue = own_queue(channel)
    channel.confirm_delivery()
    blob = raw_properties_blob()
    channel.basic_publish("", queue, b"raw", RawProperties(blob))
    channel.basic_publish("", queue, b"raw", RawProperties(blob))
    channel.basic_get(queue, auto_ack=True)
    receive_one(connection, channel, queue)
    assert received_blobs == [blob, blob]


@pytest.mark.parametrize("size", [0, 1, 131072 - 8, 131072 - 7, 3 * 131072 + 5, 4 * 1024 * 1024])
def test_bodies_of_any_size_arrive_intact(connection, channel, size):
    # Sizes straddle the 131072-byte frame limit: a body frame carries at most frame_max - 8 bytes.
    queue = own_queue(channel)
    channel.confirm_delivery()
    body = os.urandom(size)
    channel.basic_publish("", queue, body)
    channel.basic_publish("", queue, body)
    assert channel.basic_get(queue, auto_ack=True)[2] == body
    assert receive_one(connection, channel, queue)[2] == body


def test_basic_get_fields_and_counts(connection, channel):
    x, key = "amq.direct", support.unique("key")
    queue = own_queue(channel)
    channel.queue_bind(queue, x, routing_key=key)
    channel.confirm_delivery()
    for body in (b"m1", b"m2", b"m3", b"m4"):
        channel.basic_publish(x, key, body)
    got = [channel.basic_get(queue) for _ in range(3)]
    # message_count is what is left in the queue after this message.
    assert [(m.delivery_tag, m.message_count, m.redelivered, m.exchange, m.routing_key, body) for m, _, body in got] == [
        (1, 3, False, x, key, b"m1"),
        (2, 2, False, x, key, b"m2"),
        (3, 1, False, x, key, b"m3"),
    ]
    # Delivery tags count per channel, from 1.
    method, _, body = connection.channel().basic_get(queue)
    assert (method.delivery_tag, method.message_count, body) == (1, 0, b"m4")
    assert channel.basic_get(queue) == (None, None, None)


def test_mandatory_unroutable_message_is_returned(connection, channel):
    returned = []
    channel.add_on_return_callback(lambda _ch, *message: returned.append(message))
    queue = support.unique("nowhere")
    properties = pika.BasicProperties(message_id="back", headers={"h": 1})
    channel.basic_publish("", queue, b"bounce", properties, mandatory=True)
    wait_until(connection, lambda: returned, "basic.return")
    [(method, back_properties, body)] = returned
    assert (method.reply_code, method.reply_text, method.exchange, method.routing_key) == (312, "NO_ROUTE", "", queue)
    assert (vars(back_properties), body) == (vars(properties), b"bounce")


def test_mandatory_with_confirms_returns_then_acks(channel, names):
    x = names.exchange()
    channel.exchange_declare(x, "direct")
    channel.confirm_delivery()
    # pika raises UnroutableError when the basic.return precedes the basic.ack for a publish.
    with pytest.raises(pika.exceptions.UnroutableError) as info:
        channel.basic_publish(x, "unbound", b"bounce", mandatory=True)
    [returned] = info.value.messages
    assert (returned.method.reply_code, returned.method.reply_text, returned.method.exchange, returned.method.routing_key) == (
        312,
        "NO_ROUTE",
        x,
        "unbound",
    )
    assert returned.body == b"bounce"


def test_unroutable_without_mandatory_is_silently_dropped(channel, names):
    x = names.exchange()
    channel.exchange_declare(x, "fanout")
    channel.confirm_delivery()
    channel.basic_publish(x, "", b"dropped")
    channel.basic_publish("", support.unique("nowhere"), b"dropped")


def test_user_id_must_match_the_authenticated_user(channel):
    channel.basic_publish("", support.unique("q"), b"", pika.BasicProperties(user_id="mallory"))
    with channel_error(406, f"PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was '{USER}'"):
        channel.queue_declare("", exclusive=True)


@pytest.mark.parametrize(
    "expiration, reason",
    [("soon", "no_integer"), ("-1", "{value_negative,-1}")],
)
def test_expiration_must_be_a_non_negative_integer(channel, expiration, reason):
    # The reason is Erlang's term for the parse error, as RabbitMQ prints it.
    channel.basic_publish("", support.unique("q"), b"", pika.BasicProperties(expiration=expiration))
    with channel_error(406, f"PRECONDITION_FAILED - invalid expiration '{expiration}': {reason}"):
        channel.queue_declare("", exclusive=True)


def test_expiration_zero_drops_a_message_nobody_is_waiting_for(channel):
    queue = own_queue(channel)
    channel.confirm_delivery()
    channel.basic_publish("", queue, b"expired", pika.BasicProperties(expiration="0"))
    channel.basic_publish("", queue, b"kept", pika.BasicProperties(expiration="60000"))
    assert support.drain(channel, queue) == [b"kept"]

