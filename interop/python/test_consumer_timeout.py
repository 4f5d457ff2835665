"""Consumer timeout: a delivery left unacknowledged past the queue's
x-consumer-timeout closes its channel with 406, and the message is requeued.

RabbitMQ cannot confirm these within a test: 3.10 ignores x-consumer-timeout,
3.12 to 4.2 check it only on a 60-second channel tick, and 4.3+ no longer time
out classic queues. The expected text is RabbitMQ's, from its channel code
(3.12-4.2). So the tests run against Warren and skip against RabbitMQ.
"""

import pika
import pytest

import support

TIMEOUT_MS = 300


@pytest.fixture
def warren_only(connection):
    if support.rabbitmq_version(connection) is not None:
        pytest.skip("RabbitMQ checks consumer timeouts on a 60 s channel tick, or not at all before 3.12")


def timed_out_text(channel_number: int) -> str:
    return (
        f"PRECONDITION_FAILED - delivery acknowledgement on channel {channel_number} timed out. "
        f"Timeout value used: {TIMEOUT_MS} ms. "
        "This timeout value can be configured, see consumers doc guide to learn more"
    )


def expect_timed_out(connection, channel):
    """Waits for the broker to close channel for the ack timeout."""
    reasons = []
    # BlockingChannel has no close callback of its own; its underlying channel does.
    channel._impl.add_on_close_callback(lambda _channel, reason: reasons.append(reason))
    support.wait_until(connection, lambda: reasons, "the channel to time out")
    [reason] = reasons
    assert isinstance(reason, pika.exceptions.ChannelClosedByBroker)
    assert (reason.reply_code, reason.reply_text) == (406, timed_out_text(channel.channel_number))


def declare_impatient_queue(channel, names) -> str:
    queue = names.queue()
    channel.queue_declare(queue, arguments={"x-consumer-timeout": TIMEOUT_MS})
    return queue


def test_unacknowledged_delivery_closes_the_channel(warren_only, connection, names):
    channel = connection.channel()
    queue = declare_impatient_queue(channel, names)
    channel.basic_publish("", queue, b"slow work")
    channel.basic_consume(queue, lambda *delivery: None)
    expect_timed_out(connection, channel)
    # The unacknowledged message is back in the queue, marked redelivered.
    other = connection.channel()
    method, _, body = other.basic_get(queue, auto_ack=True)
    assert (body, method.redelivered) == (b"slow work", True)


def test_basic_get_deliveries_time_out_too(warren_only, connection, names):
    channel = connection.channel()
    queue = declare_impatient_queue(channel, names)
    channel.basic_publish("", queue, b"fetched")
    method, _, _ = channel.basic_get(queue)
    assert method is not None
    expect_timed_out(connection, channel)


def test_acknowledged_deliveries_keep_the_channel_open(warren_only, connection, names):
    channel = connection.channel()
    queue = declare_impatient_queue(channel, names)
    for n in range(3):
        channel.basic_publish("", queue, f"m{n}".encode())
        method, _, _ = channel.basic_get(queue)
        channel.basic_ack(method.delivery_tag)
        connection.sleep(TIMEOUT_MS / 1000 * 0.7)
    # Well past the timeout since the first delivery, the channel still works.
    assert channel.queue_declare(queue, passive=True).method.message_count == 0
