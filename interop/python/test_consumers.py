"""Consumers: delivery fields, dispatch, cancellation (by client and broker) and exclusivity."""

import pytest

import support
from support import VHOST, channel_error, ready_count, wait_until


def fill(channel, queue, count):
    channel.confirm_delivery()
    for i in range(count):
        channel.basic_publish("", queue, b"m%d" % i)


def test_delivery_carries_tag_exchange_and_key(connection, channel):
    queue = channel.queue_declare("", exclusive=True).method.queue
    prefix = support.unique("topic")
    channel.queue_bind(queue, "amq.topic", routing_key=prefix + ".*")
    deliveries = []
    tag = channel.basic_consume(queue, lambda _ch, method, _p, body: deliveries.append((method, body)), auto_ack=True)
    channel.basic_publish("amq.topic", prefix + ".b", b"hello")
    wait_until(connection, lambda: deliveries, "delivery")
    [(method, body)] = deliveries
    assert (method.consumer_tag, method.delivery_tag, method.redelivered, method.exchange, method.routing_key, body) == (
        tag,
        1,
        False,
        "amq.topic",
        prefix + ".b",
        b"hello",
    )


def test_consume_missing_queue_is_404(channel, names):
    queue = names.queue()
    with channel_error(404, f"NOT_FOUND - no queue '{queue}' in vhost '{VHOST}'"):
        channel.basic_consume(queue, lambda *_: None)


def test_consumers_on_one_queue_take_turns(connection, channel):
    queue = channel.queue_declare("", exclusive=True).method.queue
    received = []
    for name in ("first", "second"):
        channel.basic_consume(queue, lambda _ch, _m, _p, body, name=name: received.append((name, body)), auto_ack=True)
    fill(channel, queue, 4)
    wait_until(connection, lambda: len(received) == 4, "four deliveries")
    assert received == [("first", b"m0"), ("second", b"m1"), ("first", b"m2"), ("second", b"m3")]


def test_basic_cancel_stops_deliveries(connection, channel):
    queue = channel.queue_declare("", exclusive=True).method.queue
    received = []
    tag = channel.basic_consume(queue, lambda _ch, _m, _p, body: received.append(body), auto_ack=True)
    channel.basic_cancel(tag)
    fill(channel, queue, 2)
    assert channel.queue_declare(queue, passive=True).method.consumer_count == 0
    assert ready_count(channel, queue) == 2
    connection.process_data_events(time_limit=0)
    assert received == []


def test_deleting_the_queue_notifies_its_consumers(connect, names):
    consumer_connection = connect()
    channel = consumer_connection.channel()
    queue = names.queue()
    channel.queue_declare(queue)
    cancels = []
    channel.add_on_cancel_callback(lambda frame: cancels.append(frame.method))
    tag = channel.basic_consume(queue, lambda *_: None)
    connect().channel().queue_delete(queue)
    wait_until(consumer_connection, lambda: cancels, "basic.cancel from the broker")
    [cancel] = cancels
    assert cancel.consumer_tag == tag
    # Only the consumer is cancelled; the channel stays open and usable.
    assert channel.is_open and channel.queue_declare("", exclusive=True).method.queue


@pytest.mark.parametrize("close", ["channel", "connection"])
def test_unacked_messages_return_in_order_when_consumer_goes(connect, names, close):
    owner = connect()
    queue = names.queue()
    owner.channel().queue_declare(queue)
    fill(owner.channel(), queue, 5)
    consumer_connection = owner if close == "channel" else connect()
    consumer = consumer_connection.channel()
    delivered = []
    consumer.basic_qos(prefetch_count=3)
    consumer.basic_consume(queue, lambda _ch, _m, _p, body: delivered.append(body))
    wait_until(consumer_connection, lambda: len(delivered) == 3, "three unacked deliveries")
    (consumer if close == "channel" else consumer_connection).close()
    checker = owner.channel()
    messages = [checker.basic_get(queue, auto_ack=True) for _ in range(5)]
    assert [(body, method.redelivered) for method, _, body in messages] == [
        (b"m0", True),
        (b"m1", True),
        (b"m2", True),
        (b"m3", False),
        (b"m4", False),
    ]


def test_exclusive_consumer_blocks_others(connection):
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_consume(queue, lambda *_: None, exclusive=True)
    with channel_error(403, f"ACCESS_REFUSED - queue '{queue}' in vhost '{VHOST}' in exclusive use"):
        connection.channel().basic_consume(queue, lambda *_: None)


def test_exclusive_consume_needs_no_other_consumer(connection):
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_consume(queue, lambda *_: None)
    with channel_error(403, f"ACCESS_REFUSED - queue '{queue}' in vhost '{VHOST}' in exclusive use"):
        connection.channel().basic_consume(queue, lambda *_: None, exclusive=True)


def test_exclusive_consumer_still_allows_basic_get(connection):
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_consume(queue, lambda *_: None, exclusive=True)
    # basic.get is not a consumer, so exclusivity does not apply to it.
    assert connection.channel().basic_get(queue) == (None, None, None)
