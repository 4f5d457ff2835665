"""Queue TTL: x-expires deletes a queue left unused for that long.

Using a queue means having a consumer, being declared again (passively too) or
being read with basic.get; each such use restarts the period. Publishing to a
queue is not a use, so these tests check that a queue still exists by
publishing to it with mandatory set, which leaves the period running.
"""

import decimal
import time

import pika
import pytest

import support
from support import channel_error

EXPIRES_MS = 1000
# When to use the queue in the keep-alive tests: well inside the first period.
HALFWAY = EXPIRES_MS / 2000
# RabbitMQ's upper bound for x-expires, as for message TTLs: ten years in milliseconds.
MAX_EXPIRES_MS = 315_360_000_000


def still_exists(channel, queue) -> bool:
    """Whether queue exists, found out without using it. channel must be in confirm mode."""
    try:
        channel.basic_publish("", queue, b"probe", mandatory=True)
        return True
    except pika.exceptions.UnroutableError:
        return False


def seconds_until_gone(channel, queue, since: float) -> float:
    """Waits for the broker to delete queue; returns how long after since (monotonic) it was gone."""
    support.poll_until(lambda: not still_exists(channel, queue), f"queue {queue} to expire", interval=0.05)
    return time.monotonic() - since


@pytest.fixture
def confirmed(channel):
    channel.confirm_delivery()
    return channel


def declare_expiring(channel, queue):
    channel.queue_declare(queue, arguments={"x-expires": EXPIRES_MS})


def test_unused_queue_is_deleted_with_its_messages(confirmed, names):
    queue = names.queue()
    declared_before = time.monotonic()
    declare_expiring(confirmed, queue)
    confirmed.basic_publish("", queue, b"messages do not keep a queue alive")
    assert seconds_until_gone(confirmed, queue, declared_before) >= EXPIRES_MS / 1000


@pytest.mark.parametrize(
    "use",
    [
        lambda ch, q: declare_expiring(ch, q),
        lambda ch, q: ch.queue_declare(q, passive=True),
        lambda ch, q: ch.basic_get(q),
    ],
    ids=["redeclare", "passive-declare", "basic-get"],
)
def test_use_restarts_the_period(connection, confirmed, names, use):
    queue = names.queue()
    declare_expiring(confirmed, queue)
    time.sleep(HALFWAY)
    used_before = time.monotonic()
    use(connection.channel(), queue)
    assert seconds_until_gone(confirmed, queue, used_before) >= EXPIRES_MS / 1000


def test_consumer_keeps_the_queue_until_it_goes(connection, confirmed, names):
    queue = names.queue()
    declare_expiring(confirmed, queue)
    consumer = connection.channel()
    tag = consumer.basic_consume(queue, lambda *_: None)
    time.sleep(1.5 * EXPIRES_MS / 1000)
    assert still_exists(confirmed, queue)
    cancelled_before = time.monotonic()
    consumer.basic_cancel(tag)
    # The period starts over when the last consumer goes.
    assert seconds_until_gone(confirmed, queue, cancelled_before) >= EXPIRES_MS / 1000


@pytest.mark.parametrize("expires", [1, MAX_EXPIRES_MS])
def test_x_expires_bounds_are_accepted(channel, names, expires):
    queue = names.queue()
    assert channel.queue_declare(queue, arguments={"x-expires": expires}).method.queue == queue


@pytest.mark.parametrize(
    "value, reason",
    [
        (0, "{value_zero,0}"),
        (-1, "{value_negative,-1}"),
        (MAX_EXPIRES_MS + 1, f"{{value_too_large,{MAX_EXPIRES_MS + 1}}}"),
        ("1000", '"expected integer, got longstr"'),
        (decimal.Decimal("1.5"), '"expected integer, got decimal"'),
        (True, '"expected integer, got bool"'),
    ],
    ids=["zero", "negative", "too-large", "string", "decimal", "bool"],
)
def test_invalid_x_expires_is_406(channel, names, value, reason):
    queue = names.queue()
    with channel_error(406, support.invalid_arg("x-expires", queue, reason)):
        channel.queue_declare(queue, arguments={"x-expires": value})
