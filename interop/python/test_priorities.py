"""Priority queues: x-max-priority makes a queue deliver higher-priority messages first.

A message without a priority counts as priority 0; one above the queue's maximum
counts as the maximum but keeps its own priority property. Messages of equal
(effective) priority keep publication order, and a requeued message goes back
to its place among them.
"""

import pika
import pytest

import support
from support import channel_error, drain, wait_until


def priority_queue(channel, max_priority) -> str:
    channel.confirm_delivery()
    return channel.queue_declare("", exclusive=True, arguments={"x-max-priority": max_priority}).method.queue


def publish(channel, queue, *messages):
    """Publishes (body, priority) pairs; a priority of None leaves the property out."""
    for body, priority in messages:
        channel.basic_publish("", queue, body, pika.BasicProperties(priority=priority))


def test_higher_priorities_are_delivered_first(channel):
    queue = priority_queue(channel, 10)
    publish(channel, queue, (b"p1", 1), (b"p5", 5), (b"p10", 10), (b"p5-again", 5), (b"p3", 3))
    assert support.ready_count(channel, queue) == 5
    assert drain(channel, queue) == [b"p10", b"p5", b"p5-again", b"p3", b"p1"]


def test_no_priority_counts_as_zero(channel):
    queue = priority_queue(channel, 5)
    publish(channel, queue, (b"none", None), (b"p0", 0), (b"p1", 1), (b"none-again", None))
    assert drain(channel, queue) == [b"p1", b"none", b"p0", b"none-again"]


def test_priority_above_the_maximum_counts_as_the_maximum(channel):
    queue = priority_queue(channel, 5)
    # Capped to 5, p9 queues behind the earlier p5 instead of overtaking it.
    publish(channel, queue, (b"p4", 4), (b"p5", 5), (b"p9", 9))
    got = [channel.basic_get(queue, auto_ack=True) for _ in range(3)]
    assert [(body, properties.priority) for _, properties, body in got] == [(b"p5", 5), (b"p9", 9), (b"p4", 4)]


def test_basic_get_counts_messages_of_every_priority(channel):
    queue = priority_queue(channel, 3)
    publish(channel, queue, (b"a", 0), (b"b", 3), (b"c", 1))
    assert [channel.basic_get(queue, auto_ack=True)[0].message_count for _ in range(3)] == [2, 1, 0]


def test_requeued_messages_keep_their_priority_place(channel):
    queue = priority_queue(channel, 5)
    publish(channel, queue, (b"low", 1), (b"high", 4))
    assert [channel.basic_get(queue)[2] for _ in range(2)] == [b"high", b"low"]
    publish(channel, queue, (b"mid", 2), (b"high-later", 4))
    channel.basic_nack(0, multiple=True, requeue=True)
    got = [channel.basic_get(queue, auto_ack=True) for _ in range(4)]
    assert [(body, method.redelivered) for method, _, body in got] == [
        (b"high", True),
        (b"high-later", False),
        (b"mid", False),
        (b"low", True),
    ]


def test_consumer_gets_the_backlog_in_priority_order(connection, channel):
    queue = priority_queue(channel, 5)
    publish(channel, queue, (b"p1", 1), (b"p3", 3), (b"p2", 2))
    received = []
    channel.basic_qos(prefetch_count=1)

    def on_message(_channel, method, _properties, body):
        received.append(body)
        channel.basic_ack(method.delivery_tag)

    channel.basic_consume(queue, on_message)
    wait_until(connection, lambda: len(received) == 3, "three deliveries")
    assert received == [b"p3", b"p2", b"p1"]


def test_queue_without_max_priority_ignores_priorities(channel):
    channel.confirm_delivery()
    queue = channel.queue_declare("", exclusive=True).method.queue
    publish(channel, queue, (b"p1", 1), (b"p9", 9), (b"none", None))
    assert drain(channel, queue) == [b"p1", b"p9", b"none"]


def test_max_priority_zero_is_accepted_and_keeps_publication_order(channel):
    queue = priority_queue(channel, 0)
    publish(channel, queue, (b"p3", 3), (b"none", None), (b"p9", 9))
    assert drain(channel, queue) == [b"p3", b"none", b"p9"]


@pytest.mark.parametrize(
    "value, reason",
    [
        (256, "{max_value_exceeded,256}"),
        (-1, "{value_negative,-1}"),
        ("5", '"expected integer, got longstr"'),
        (True, '"expected integer, got bool"'),
    ],
    ids=["above-255", "negative", "string", "bool"],
)
def test_invalid_x_max_priority_is_406(channel, names, value, reason):
    queue = names.queue()
    with channel_error(406, support.invalid_arg("x-max-priority", queue, reason)):
        channel.queue_declare(queue, arguments={"x-max-priority": value})


def test_x_max_priority_255_is_accepted(channel):
    assert priority_queue(channel, 255)
