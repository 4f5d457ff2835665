"""Message TTL: the x-message-ttl queue argument and the per-message expiration property.

An expired message is never delivered. RabbitMQ only expires messages at the
head of a queue: on a timer for the head's expiry, and whenever the head is
fetched. A message that expired behind a longer-lived one stays counted until
it reaches the head. Expiry needs time to pass, so these tests sleep past a
TTL where no broker event could be awaited instead.
"""

import decimal
import time

import pika
import pytest

import support
from support import channel_error, drain, ready_count, wait_until

# Long enough for a publish and a basic.get to happen well within it.
TTL_MS = 300
# Short TTLs, for messages that should be gone by the time the test looks.
SHORT_MS = 50
PAST_SHORT = 0.2
# A TTL no test outlives.
LONG_MS = 60000
# RabbitMQ's upper bound for x-message-ttl, x-expires and expiration: ten years in milliseconds.
MAX_TTL_MS = 315_360_000_000


def ttl_queue(channel, ttl_ms):
    channel.confirm_delivery()
    return channel.queue_declare("", exclusive=True, arguments={"x-message-ttl": ttl_ms}).method.queue


def expiring(ms):
    return pika.BasicProperties(expiration=str(ms))


def test_queue_ttl_drops_messages_nobody_fetches(channel):
    queue = ttl_queue(channel, TTL_MS)
    published_before = time.monotonic()
    channel.basic_publish("", queue, b"fetched in time")
    channel.basic_publish("", queue, b"left to expire")
    assert channel.basic_get(queue, auto_ack=True)[2] == b"fetched in time"
    # No consumer and no basic.get: the broker drops the message once its TTL is up.
    support.poll_until(lambda: ready_count(channel, queue) == 0, "the second message to expire")
    assert time.monotonic() - published_before >= TTL_MS / 1000


def test_basic_get_never_returns_an_expired_message(channel):
    queue = ttl_queue(channel, SHORT_MS)
    channel.basic_publish("", queue, b"stale")
    time.sleep(PAST_SHORT)
    channel.basic_publish("", queue, b"fresh")
    method, _, body = channel.basic_get(queue, auto_ack=True)
    assert (body, method.message_count) == (b"fresh", 0)


@pytest.mark.parametrize(
    "queue_ttl, expiration, survives",
    [(LONG_MS, SHORT_MS, False), (SHORT_MS, LONG_MS, False), (LONG_MS, LONG_MS, True)],
    ids=["message-ttl-lower", "queue-ttl-lower", "both-long"],
)
def test_the_lower_of_queue_and_message_ttl_applies(channel, queue_ttl, expiration, survives):
    queue = ttl_queue(channel, queue_ttl)
    channel.basic_publish("", queue, b"m", expiring(expiration))
    time.sleep(PAST_SHORT)
    assert drain(channel, queue) == ([b"m"] if survives else [])


def test_messages_expire_only_at_the_head(channel):
    channel.confirm_delivery()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", queue, b"long-lived", expiring(LONG_MS))
    channel.basic_publish("", queue, b"short-lived", expiring(SHORT_MS))
    time.sleep(PAST_SHORT)
    # The expired message is behind a live one, so it is still counted...
    assert ready_count(channel, queue) == 2
    method, properties, body = channel.basic_get(queue, auto_ack=True)
    # ...until fetching the head exposes it, and it is dropped before basic.get-ok counts what is left.
    assert (body, method.message_count, properties.expiration) == (b"long-lived", 0, str(LONG_MS))
    assert channel.basic_get(queue, auto_ack=True) == (None, None, None)


def test_requeued_message_past_its_ttl_is_dropped(channel):
    queue = ttl_queue(channel, SHORT_MS)
    channel.basic_publish("", queue, b"held too long")
    method, _, _ = channel.basic_get(queue)
    time.sleep(PAST_SHORT)
    # The TTL counts from the original enqueue, not from the requeue.
    channel.basic_nack(method.delivery_tag, requeue=True)
    assert channel.basic_get(queue, auto_ack=True) == (None, None, None)


def test_ttl_zero_delivers_only_to_a_consumer_ready_at_once(connection, channel):
    queue = ttl_queue(channel, 0)
    received = []

    def on_message(_channel, _method, properties, body):
        received.append((body, properties.expiration))

    tag = channel.basic_consume(queue, on_message, auto_ack=True)
    channel.basic_publish("", queue, b"taken at once")
    wait_until(connection, lambda: received, "the delivery")
    # The queue's TTL is not written into the message as an expiration property.
    assert received == [(b"taken at once", None)]
    channel.basic_cancel(tag)
    channel.basic_publish("", queue, b"nobody waiting")
    assert channel.basic_get(queue) == (None, None, None)


def test_ttl_zero_drops_what_a_consumer_at_its_prefetch_limit_cannot_take(connection, channel):
    queue = ttl_queue(channel, 0)
    received = []
    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue, lambda _ch, method, _p, body: received.append((method.delivery_tag, body)))
    channel.basic_publish("", queue, b"first")
    channel.basic_publish("", queue, b"second")
    wait_until(connection, lambda: received, "the first delivery")
    channel.basic_ack(received[0][0])
    connection.process_data_events(time_limit=support.QUIET_PERIOD)
    assert [body for _, body in received] == [b"first"]
    assert ready_count(channel, queue) == 0


def test_expiration_property_survives_delivery(channel):
    queue = ttl_queue(channel, LONG_MS)
    channel.basic_publish("", queue, b"own ttl", expiring(LONG_MS - 1))
    channel.basic_publish("", queue, b"queue ttl only")
    assert channel.basic_get(queue, auto_ack=True)[1].expiration == str(LONG_MS - 1)
    assert channel.basic_get(queue, auto_ack=True)[1].expiration is None


@pytest.mark.parametrize("ttl", [0, MAX_TTL_MS])
def test_x_message_ttl_bounds_are_accepted(channel, ttl):
    assert channel.queue_declare("", exclusive=True, arguments={"x-message-ttl": ttl}).method.queue


@pytest.mark.parametrize(
    "value, reason",
    [
        (-1, "{value_negative,-1}"),
        (MAX_TTL_MS + 1, f"{{value_too_large,{MAX_TTL_MS + 1}}}"),
        ("1000", '"expected integer, got longstr"'),
        (decimal.Decimal("1.5"), '"expected integer, got decimal"'),
        (True, '"expected integer, got bool"'),
    ],
    ids=["negative", "too-large", "string", "decimal", "bool"],
)
def test_invalid_x_message_ttl_is_406(channel, names, value, reason):
    queue = names.queue()
    with channel_error(406, support.invalid_arg("x-message-ttl", queue, reason)):
        channel.queue_declare(queue, arguments={"x-message-ttl": value})
