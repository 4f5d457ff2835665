"""Acknowledgements, requeueing, redelivery and prefetch limits."""

import pytest

from support import channel_error, connection_error, drain, ready_count, wait_until


@pytest.fixture
def queue(channel):
    """An exclusive queue holding m0..m4, published with confirms so they are all enqueued."""
    name = channel.queue_declare("", exclusive=True).method.queue
    channel.confirm_delivery()
    for i in range(5):
        channel.basic_publish("", name, b"m%d" % i)
    return name


def get(channel, queue, count):
    return [channel.basic_get(queue) for _ in range(count)]


def summary(deliveries):
    return [(method.delivery_tag, body, method.redelivered) for method, _, body in deliveries]


def test_ack_removes_messages(connection, channel, queue):
    (m0,) = get(channel, queue, 1)
    channel.basic_ack(m0[0].delivery_tag)
    channel.close()
    # Closing the channel requeues only what is still unacknowledged.
    assert drain(connection.channel(), queue) == [b"m1", b"m2", b"m3", b"m4"]


def test_ack_multiple(connection, channel, queue):
    get(channel, queue, 3)
    channel.basic_ack(2, multiple=True)
    channel.close()
    assert drain(connection.channel(), queue) == [b"m2", b"m3", b"m4"]


def test_ack_tag_zero_with_multiple_acks_everything_outstanding(connection, channel, queue):
    get(channel, queue, 3)
    channel.basic_ack(0, multiple=True)
    channel.close()
    assert drain(connection.channel(), queue) == [b"m3", b"m4"]


def test_requeued_messages_return_to_their_original_position(channel, queue):
    assert summary(get(channel, queue, 3)) == [(1, b"m0", False), (2, b"m1", False), (3, b"m2", False)]
    # Requeue out of order: the queue still restores publication order.
    channel.basic_reject(3, requeue=True)
    channel.basic_nack(1, requeue=True)
    again = get(channel, queue, 4)
    assert summary(again) == [(4, b"m0", True), (5, b"m2", True), (6, b"m3", False), (7, b"m4", False)]
    assert [method.message_count for method, _, _ in again] == [3, 2, 1, 0]


def test_nack_multiple_requeues_everything_up_to_the_tag(channel, queue):
    get(channel, queue, 4)
    channel.basic_nack(3, multiple=True, requeue=True)
    assert [(body, method.redelivered) for method, _, body in get(channel, queue, 4)] == [
        (b"m0", True),
        (b"m1", True),
        (b"m2", True),
        (b"m4", False),
    ]


@pytest.mark.parametrize(
    "discard",
    [
        lambda ch, tag: ch.basic_reject(tag, requeue=False),
        lambda ch, tag: ch.basic_nack(tag, requeue=False),
        lambda ch, tag: ch.basic_nack(tag, multiple=True, requeue=False),
    ],
    ids=["reject", "nack", "nack-multiple"],
)
def test_reject_without_requeue_discards(connection, channel, queue, discard):
    get(channel, queue, 2)
    discard(channel, 2)
    channel.close()
    remaining = drain(connection.channel(), queue)
    assert remaining[-3:] == [b"m2", b"m3", b"m4"] and b"m1" not in remaining


def test_consumer_sees_redelivered_flag(connection, channel, queue):
    deliveries = []
    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue, lambda _ch, method, _p, body: deliveries.append((body, method.redelivered)))
    wait_until(connection, lambda: len(deliveries) == 1, "first delivery")
    channel.basic_nack(1, requeue=True)
    wait_until(connection, lambda: len(deliveries) == 2, "redelivery")
    assert deliveries == [(b"m0", False), (b"m0", True)]


@pytest.mark.parametrize(
    "settle",
    [
        lambda ch: ch.basic_ack(42),
        lambda ch: ch.basic_ack(42, multiple=True),
        lambda ch: ch.basic_nack(42),
        lambda ch: ch.basic_reject(42),
    ],
    ids=["ack", "ack-multiple", "nack", "reject"],
)
def test_unknown_delivery_tag_is_406(channel, settle):
    settle(channel)
    with channel_error(406, "PRECONDITION_FAILED - unknown delivery tag 42"):
        # Acks have no reply; the next synchronous method sees the channel close.
        channel.queue_declare("", exclusive=True)


def test_double_ack_is_406(channel, queue):
    get(channel, queue, 1)
    channel.basic_ack(1)
    channel.basic_ack(1)
    with channel_error(406, "PRECONDITION_FAILED - unknown delivery tag 1"):
        channel.queue_declare("", exclusive=True)


def test_ack_tag_zero_without_multiple_is_406(channel, queue):
    get(channel, queue, 1)
    channel.basic_ack(0)
    with channel_error(406, "PRECONDITION_FAILED - unknown delivery tag 0"):
        channel.queue_declare("", exclusive=True)


def test_auto_acked_delivery_cannot_be_acked(channel, queue):
    method, _, _ = channel.basic_get(queue, auto_ack=True)
    channel.basic_ack(method.delivery_tag)
    with channel_error(406, f"PRECONDITION_FAILED - unknown delivery tag {method.delivery_tag}"):
        channel.queue_declare("", exclusive=True)


def test_delivery_tags_belong_to_their_channel(connection, channel, queue):
    get(channel, queue, 1)
    other = connection.channel()
    other.basic_ack(1)
    with channel_error(406, "PRECONDITION_FAILED - unknown delivery tag 1"):
        other.queue_declare("", exclusive=True)


def test_recover_with_requeue_redelivers(channel, queue):
    get(channel, queue, 2)
    channel.basic_recover(requeue=True)
    assert [(body, method.redelivered) for method, _, body in get(channel, queue, 2)] == [(b"m0", True), (b"m1", True)]


def test_recover_without_requeue_is_not_implemented(connection, channel):
    with connection_error(540, "NOT_IMPLEMENTED - requeue=false"):
        channel.basic_recover(requeue=False)


def test_prefetch_limits_unacked_deliveries(connection, channel, queue):
    delivered = []
    channel.basic_qos(prefetch_count=2)
    channel.basic_consume(queue, lambda _ch, method, _p, body: delivered.append(method.delivery_tag))
    wait_until(connection, lambda: len(delivered) == 2, "two deliveries")
    # The queue's ready count shows nothing more was sent, without waiting for an absence.
    assert ready_count(channel, queue) == 3
    channel.basic_ack(delivered[0])
    wait_until(connection, lambda: len(delivered) == 3, "a third delivery after one ack")
    assert ready_count(channel, queue) == 2
    channel.basic_ack(0, multiple=True)
    wait_until(connection, lambda: len(delivered) == 5, "the rest")
    assert ready_count(channel, queue) == 0


def test_prefetch_is_per_consumer(connection, channel, queue):
    second = channel.queue_declare("", exclusive=True).method.queue
    for i in range(5):
        channel.basic_publish("", second, b"n%d" % i)
    delivered = {queue: [], second: []}
    channel.basic_qos(prefetch_count=2)
    for name in delivered:
        channel.basic_consume(name, lambda _ch, method, _p, body, name=name: delivered[name].append(body))
    wait_until(connection, lambda: all(len(bodies) == 2 for bodies in delivered.values()), "two deliveries per consumer")
    assert (ready_count(channel, queue), ready_count(channel, second)) == (3, 3)


def test_consumer_keeps_the_prefetch_it_started_with(connection, channel, queue):
    delivered = []
    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue, lambda _ch, method, _p, body: delivered.append(method.delivery_tag))
    wait_until(connection, lambda: len(delivered) == 1, "first delivery")
    # basic.qos (global=false) only applies to consumers started after it.
    channel.basic_qos(prefetch_count=3)
    channel.basic_ack(delivered[0])
    wait_until(connection, lambda: len(delivered) == 2, "second delivery")
    assert ready_count(channel, queue) == 3


def test_prefetch_zero_means_unlimited(connection, channel, queue):
    delivered = []
    channel.basic_qos(prefetch_count=0)
    channel.basic_consume(queue, lambda _ch, method, _p, body: delivered.append(body))
    wait_until(connection, lambda: len(delivered) == 5, "all five deliveries")
    assert delivered == [b"m0", b"m1", b"m2", b"m3", b"m4"]
