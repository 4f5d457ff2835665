"""Durability across a broker restart, seen from pika.

A durable queue keeps its persistent messages (bodies, properties, order) and
its bindings through a clean restart; transient messages and non-durable
queues do not survive; a message that was delivered but not acked when the
broker stopped comes back with redelivered=True, the others with False.

Restarting needs INTEROP_RESTART_BROKER, a script that interop/run exports
only when it started Warren itself (SIGTERM, then the same command line on
the same port and data directory). Against any other broker, e.g. the shared
RabbitMQ on 127.0.0.1:5672, which must not be restarted from a test suite,
these tests skip. RabbitMQ behaves the same way across its own restarts.
"""

import datetime
import decimal
import os
import subprocess

import pika
import pytest

import support

RESTART = os.environ.get("INTEROP_RESTART_BROKER")

pytestmark = pytest.mark.skipif(
    not RESTART,
    reason="needs INTEROP_RESTART_BROKER, set by interop/run when it starts Warren itself; "
    "a broker the runner did not start (e.g. the shared RabbitMQ) is never restarted",
)

USER = support.parameters().credentials.username

HEADERS = {
    "string": "text ü",
    "int": -42,
    "long": 2**40,
    "true": True,
    "decimal": decimal.Decimal("3.14"),
    "timestamp": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
    "void": None,
    "bytes": b"\x00\xff",
    "table": {"nested": {"deeper": [1, "two", {"three": 3}]}},
    "array": [1, "a", [2, [3]], True],
}


def properties(index: int) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type="application/octet-stream",
        content_encoding="identity",
        headers={**HEADERS, "index": index},
        delivery_mode=pika.DeliveryMode.Persistent,
        priority=index % 10,
        correlation_id=f"corr-{index}",
        reply_to="replies",
        expiration="3600000",
        message_id=f"msg-{index}",
        timestamp=1_700_000_000 + index,
        type="durability.test",
        user_id=USER,
        app_id="interop",
        cluster_id="cluster-a",
    )


def restart_broker():
    """Stops the broker cleanly and starts it again; returns when it accepts connections."""
    # Bounded below pytest's own 30 s limit, so a hung restart fails with its output.
    result = subprocess.run(
        [RESTART], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=25
    )
    assert result.returncode == 0, f"restart failed: {result.stdout}{result.stderr}"


def get_all(channel, queue):
    """(method, properties, body) of every ready message of queue, taken with auto-ack."""
    messages = []
    while True:
        method, props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return messages
        messages.append((method, props, body))


def test_durable_queue_keeps_persistent_messages_across_restart(connect, names):
    queue, transient_queue, exchange = names.queue(), names.queue(), names.exchange()
    bodies = [b"", bytes(range(256)), b"x" * 300_000, "ünïcode body".encode()]
    connection = connect()
    channel = connection.channel()
    channel.confirm_delivery()
    channel.exchange_declare(exchange, "direct", durable=True)
    channel.queue_declare(queue, durable=True)
    channel.queue_declare(transient_queue, durable=False)
    channel.queue_bind(queue, exchange, "key")
    channel.queue_bind(transient_queue, exchange, "key")
    for index, body in enumerate(bodies):
        channel.basic_publish(exchange, "key", body, properties(index))
    # A transient message in the durable queue does not survive the restart.
    channel.basic_publish(
        exchange, "key", b"transient", pika.BasicProperties(delivery_mode=pika.DeliveryMode.Transient)
    )
    connection.close()

    restart_broker()

    connection = connect()
    channel = connection.channel()
    messages = get_all(channel, queue)
    assert [body for _, _, body in messages] == bodies
    for index, (method, props, _) in enumerate(messages):
        assert (method.exchange, method.routing_key, method.redelivered) == (exchange, "key", False)
        assert props.__dict__ == properties(index).__dict__, f"properties of message {index}"
    # The non-durable queue is gone (its binding with it); the durable binding still routes.
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        connection.channel().queue_declare(transient_queue, passive=True)
    assert info.value.reply_code == 404
    channel.confirm_delivery()
    channel.basic_publish(exchange, "key", b"after", pika.BasicProperties(delivery_mode=2))
    assert [body for _, _, body in get_all(channel, queue)] == [b"after"]


def test_unacked_message_comes_back_redelivered(connect, names):
    queue = names.queue()
    connection = connect()
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare(queue, durable=True)
    for body in (b"delivered", b"waiting"):
        channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))
    method, _, body = channel.basic_get(queue, auto_ack=False)
    assert (body, method.redelivered) == (b"delivered", False)

    # The connection holding the unacked delivery is still open at shutdown.
    restart_broker()

    # The broker closed it on its way down, as RabbitMQ does.
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        connection.process_data_events(time_limit=support.TIMEOUT)
    assert info.value.reply_code == 320
    connection = connect()
    channel = connection.channel()
    got = [(body, method.redelivered) for method, _, body in get_all(channel, queue)]
    assert got == [(b"delivered", True), (b"waiting", False)]
