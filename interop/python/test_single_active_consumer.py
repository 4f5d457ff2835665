"""Single active consumer: with x-single-active-consumer=true, only one consumer of the
queue receives messages while the others wait, in the order they registered.

The next consumer takes over when the active one is cancelled or its channel
closes. basic.cancel does not requeue the messages the cancelled consumer has
not acknowledged: its channel can still ack, reject or nack them (requeued ones
go to the new active consumer). Closing the channel requeues them.
"""

import pytest

import support
from support import Consumers, channel_error, publish_numbered


@pytest.fixture
def queue(channel):
    arguments = {"x-single-active-consumer": True}
    return channel.queue_declare("", exclusive=True, arguments=arguments).method.queue


def test_only_the_first_consumer_receives(connection, channel, queue):
    consumers = Consumers(connection, queue)
    consumers.add("first")
    consumers.add("second")
    # Waiting consumers are consumers all the same.
    assert channel.queue_declare(queue, passive=True).method.consumer_count == 2
    publish_numbered(channel, queue, 3)
    assert consumers.wait_for(3) == {"first": [b"m0", b"m1", b"m2"], "second": []}


def test_cancel_hands_over_to_the_next_in_registration_order(connection, channel, queue):
    consumers = Consumers(connection, queue)
    consumers.add("first", prefetch=10)
    consumers.add("second")
    consumers.add("third")
    publish_numbered(channel, queue, 1)
    consumers.wait_for(1)
    first = consumers.channels["first"]
    first.basic_cancel(consumers.tags["first"])
    channel.basic_publish("", queue, b"after the cancel")
    assert consumers.wait_for(2) == {"first": [b"m0"], "second": [b"after the cancel"], "third": []}
    # m0 is still the cancelled consumer's to settle; requeued, it goes to the new active consumer.
    first.basic_nack(0, multiple=True, requeue=True)
    consumers.wait_for(3)
    assert [(body, method.redelivered) for method, _, body in consumers.deliveries["second"]] == [
        (b"after the cancel", False),
        (b"m0", True),
    ]
    assert consumers.bodies()["third"] == []


def test_closing_the_active_channel_requeues_its_messages_to_the_next(connection, channel, queue):
    consumers = Consumers(connection, queue)
    consumers.add("first", prefetch=2)
    consumers.add("second", prefetch=10)
    publish_numbered(channel, queue, 3)
    # The first consumer is full; m2 waits rather than going to the second.
    assert consumers.wait_for(2) == {"first": [b"m0", b"m1"], "second": []}
    consumers.channels["first"].close()
    consumers.wait_for(5)
    assert [(body, method.redelivered) for method, _, body in consumers.deliveries["second"]] == [
        (b"m0", True),
        (b"m1", True),
        (b"m2", False),
    ]


@pytest.mark.parametrize("others", [0, 1], ids=["alone", "with-another-consumer"])
def test_exclusive_consume_is_refused(connection, channel, queue, others):
    consumers = Consumers(connection, queue)
    for i in range(others):
        consumers.add(f"other-{i}")
    with channel_error(403, f"ACCESS_REFUSED - {support.queue_in_vhost(queue)} in exclusive use"):
        connection.channel().basic_consume(queue, lambda *_: None, exclusive=True)


def test_false_keeps_round_robin(connection, channel):
    queue = channel.queue_declare("", exclusive=True, arguments={"x-single-active-consumer": False}).method.queue
    consumers = Consumers(connection, queue)
    consumers.add("first")
    consumers.add("second")
    publish_numbered(channel, queue, 4)
    assert consumers.wait_for(4) == {"first": [b"m0", b"m2"], "second": [b"m1", b"m3"]}


@pytest.mark.parametrize(
    "value, reason",
    [("true", "{unacceptable_type,longstr}"), (1, "{unacceptable_type,signedint}")],
    ids=["string", "int"],
)
def test_non_boolean_x_single_active_consumer_is_406(channel, names, value, reason):
    queue = names.queue()
    with channel_error(406, support.invalid_arg("x-single-active-consumer", queue, reason)):
        channel.queue_declare(queue, arguments={"x-single-active-consumer": value})
