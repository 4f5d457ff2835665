"""Consumer priorities: the x-priority argument of basic.consume (default 0, may be negative).

Messages go to the highest-priority consumers that can take them, round-robin
among equals; a consumer blocked by its prefetch limit lets lower-priority
ones have the messages meanwhile.
"""

import pytest

import support
from support import Consumers, channel_error, publish_numbered


@pytest.fixture
def queue(channel):
    return channel.queue_declare("", exclusive=True).method.queue


def test_highest_priority_consumer_gets_everything(connection, channel, queue):
    consumers = Consumers(connection, queue)
    consumers.add("low", priority=1)
    consumers.add("high", priority=10)
    consumers.add("default")
    publish_numbered(channel, queue, 4)
    assert consumers.wait_for(4) == {"low": [], "high": [b"m0", b"m1", b"m2", b"m3"], "default": []}


def test_equal_top_priorities_take_turns(connection, channel, queue):
    consumers = Consumers(connection, queue)
    consumers.add("first", priority=5)
    consumers.add("low", priority=1)
    consumers.add("second", priority=5)
    publish_numbered(channel, queue, 4)
    assert consumers.wait_for(4) == {"first": [b"m0", b"m2"], "low": [], "second": [b"m1", b"m3"]}


def test_blocked_consumer_lets_the_next_priority_have_messages(connection, channel, queue):
    consumers = Consumers(connection, queue)
    consumers.add("high", priority=10, prefetch=2)
    consumers.add("low", priority=1)
    consumers.add("default")
    publish_numbered(channel, queue, 5)
    assert consumers.wait_for(5) == {"high": [b"m0", b"m1"], "low": [b"m2", b"m3", b"m4"], "default": []}


def test_consumer_with_room_again_takes_over_again(connection, channel, queue):
    consumers = Consumers(connection, queue)
    consumers.add("high", priority=10, prefetch=1)
    consumers.add("low")
    publish_numbered(channel, queue, 1)
    consumers.wait_for(1)
    channel.basic_publish("", queue, b"while high is full")
    consumers.wait_for(2)
    high = consumers.channels["high"]
    high.basic_ack(1)
    # Published on the acking channel, so that the queue sees the ack first.
    high.basic_publish("", queue, b"after the ack")
    assert consumers.wait_for(3) == {"high": [b"m0", b"after the ack"], "low": [b"while high is full"]}


def test_negative_priority_ranks_below_the_default(connection, channel, queue):
    consumers = Consumers(connection, queue)
    consumers.add("negative", priority=-5)
    consumers.add("default")
    publish_numbered(channel, queue, 3)
    assert consumers.wait_for(3) == {"negative": [], "default": [b"m0", b"m1", b"m2"]}


def test_non_integer_x_priority_is_406(channel, queue):
    with channel_error(406, support.invalid_arg("x-priority", queue, '"expected integer, got longstr"')):
        channel.basic_consume(queue, lambda *_: None, arguments={"x-priority": "high"})
