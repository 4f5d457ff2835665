"""queue.declare / purge / delete / bind: counts, exclusivity, auto-delete and exact errors.

Most named queues here are transient and non-exclusive, like those of the seed
example and tutorials. RabbitMQ 4.3 denies such queues by default (the
deprecated feature transient_nonexcl_queues, 541 INTERNAL_ERROR); Warren keeps
accepting them, as RabbitMQ 3.x-4.2 do and 4.3 does when the feature is permitted.
"""

import pika
import pytest

import support
from support import VHOST, channel_error, ready_count, wait_for_queue_deletion

LOCKED = (
    "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{}' in vhost '" + VHOST + "'. "
    "It could be originally declared on another connection or the exclusive property value does not "
    "match that of the original declaration."
)


def publish(channel, queue, *bodies):
    for body in bodies:
        channel.basic_publish("", queue, body)


def test_declare_reports_name_and_counts(channel, names):
    queue = names.queue()
    ok = channel.queue_declare(queue).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (queue, 0, 0)
    channel.confirm_delivery()
    publish(channel, queue, b"1", b"2", b"3")
    ok = channel.queue_declare(queue).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (queue, 3, 0)


def test_declare_ok_counts_consumers(connection, names):
    queue = names.queue()
    channel = connection.channel()
    channel.queue_declare(queue)
    channel.basic_consume(queue, lambda *_: None)
    connection.channel().basic_consume(queue, lambda *_: None)
    assert channel.queue_declare(queue, passive=True).method.consumer_count == 2


def test_server_named_queue(channel):
    ok = channel.queue_declare("", exclusive=True).method
    assert ok.queue.startswith("amq.gen-") and ok.queue != "amq.gen-"
    assert channel.queue_declare("", exclusive=True).method.queue != ok.queue


def test_passive_declare_of_missing_queue_is_404(channel, names):
    queue = names.queue()
    with channel_error(404, f"NOT_FOUND - no queue '{queue}' in vhost '{VHOST}'"):
        channel.queue_declare(queue, passive=True)


def test_passive_declare_ignores_flags(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    assert channel.queue_declare(queue, passive=True, durable=True, auto_delete=True).method.queue == queue


@pytest.mark.parametrize(
    "redeclare, arg, received, current",
    [
        (dict(durable=True), "durable", "'true'", "'false'"),
        (dict(auto_delete=True), "auto_delete", "'true'", "'false'"),
        (dict(arguments={"x-max-length": 10}), "x-max-length", "the value '10' of type 'signedint'", "none"),
    ],
    ids=["durable", "auto_delete", "x-max-length"],
)
def test_inequivalent_redeclare_is_406(connection, names, redeclare, arg, received, current):
    queue = names.queue()
    connection.channel().queue_declare(queue)
    with channel_error(
        406,
        f"PRECONDITION_FAILED - inequivalent arg '{arg}' for queue '{queue}' in vhost '{VHOST}': "
        f"received {received} but current is {current}",
    ):
        connection.channel().queue_declare(queue, **redeclare)


def test_arguments_rabbitmq_does_not_know_are_not_compared(channel, names):
    queue = names.queue()
    channel.queue_declare(queue, arguments={"colour": "red"})
    channel.queue_declare(queue, arguments={"colour": "blue"})
    channel.queue_declare(queue)


def test_exclusive_flag_mismatch_is_405_even_on_the_owning_connection(connection, names):
    plain, exclusive = names.queue(), names.queue()
    connection.channel().queue_declare(plain)
    connection.channel().queue_declare(exclusive, exclusive=True)
    with channel_error(405, LOCKED.format(plain)):
        connection.channel().queue_declare(plain, exclusive=True)
    with channel_error(405, LOCKED.format(exclusive)):
        connection.channel().queue_declare(exclusive)


def test_amq_prefix_is_reserved(channel):
    queue = "amq." + support.unique("q")
    with channel_error(403, f"ACCESS_REFUSED - queue name '{queue}' contains reserved prefix 'amq.*'"):
        channel.queue_declare(queue)


def test_passive_declare_may_name_amq_queues(channel):
    # The reserved-prefix check only applies to creation, so a passive declare just finds nothing.
    queue = "amq." + support.unique("q")
    with channel_error(404, f"NOT_FOUND - no queue '{queue}' in vhost '{VHOST}'"):
        channel.queue_declare(queue, passive=True)


@pytest.mark.parametrize(
    "operation",
    [
        lambda ch, q: ch.queue_declare(q),
        lambda ch, q: ch.queue_declare(q, exclusive=True),
        lambda ch, q: ch.queue_declare(q, passive=True),
        lambda ch, q: ch.basic_consume(q, lambda *_: None),
        lambda ch, q: ch.basic_get(q),
        lambda ch, q: ch.queue_purge(q),
        lambda ch, q: ch.queue_delete(q),
        lambda ch, q: ch.queue_bind(q, "amq.fanout"),
    ],
    ids=["declare", "declare-exclusive", "passive-declare", "consume", "get", "purge", "delete", "bind"],
)
def test_exclusive_queue_is_locked_to_its_connection(connect, names, operation):
    owner, other = connect(), connect()
    queue = names.queue()
    owner.channel().queue_declare(queue, exclusive=True)
    with channel_error(405, LOCKED.format(queue)):
        operation(other.channel(), queue)


def test_exclusive_queue_is_shared_by_channels_of_its_connection(connection, names):
    queue = names.queue()
    connection.channel().queue_declare(queue, exclusive=True)
    other_channel = connection.channel()
    other_channel.confirm_delivery()
    other_channel.basic_publish("", queue, b"mine")
    assert support.drain(other_channel, queue) == [b"mine"]


def test_exclusive_queue_is_deleted_with_its_connection(connect, names):
    owner, other = connect(), connect()
    queue = names.queue()
    owner.channel().queue_declare(queue, exclusive=True)
    owner.close()
    wait_for_queue_deletion(other, queue)


def test_auto_delete_queue_goes_with_its_last_consumer(connection, names):
    queue = names.queue()
    channel = connection.channel()
    channel.queue_declare(queue, auto_delete=True)
    # Having never had a consumer, it stays.
    assert channel.queue_declare(queue, passive=True).method.queue == queue
    first = channel.basic_consume(queue, lambda *_: None)
    second = channel.basic_consume(queue, lambda *_: None)
    channel.basic_cancel(first)
    assert channel.queue_declare(queue, passive=True).method.consumer_count == 1
    channel.basic_cancel(second)
    wait_for_queue_deletion(connection, queue)


def test_auto_delete_queue_goes_when_consumer_channel_closes(connection, names):
    queue = names.queue()
    consumer_channel = connection.channel()
    consumer_channel.queue_declare(queue, auto_delete=True)
    consumer_channel.basic_consume(queue, lambda *_: None)
    consumer_channel.close()
    wait_for_queue_deletion(connection, queue)


def test_purge_reports_count(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    channel.confirm_delivery()
    publish(channel, queue, b"a", b"b", b"c")
    assert channel.queue_purge(queue).method.message_count == 3
    assert channel.queue_purge(queue).method.message_count == 0
    assert ready_count(channel, queue) == 0


def test_purge_leaves_unacked_messages(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    channel.confirm_delivery()
    publish(channel, queue, b"held", b"ready")
    held = channel.basic_get(queue)[0]
    assert channel.queue_purge(queue).method.message_count == 1
    channel.basic_nack(held.delivery_tag, requeue=True)
    assert support.drain(channel, queue) == [b"held"]


def test_purge_missing_queue_is_404(channel, names):
    queue = names.queue()
    with channel_error(404, f"NOT_FOUND - no queue '{queue}' in vhost '{VHOST}'"):
        channel.queue_purge(queue)


def test_delete_reports_count(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    channel.confirm_delivery()
    publish(channel, queue, b"a", b"b")
    assert channel.queue_delete(queue).method.message_count == 2
    with channel_error(404, f"NOT_FOUND - no queue '{queue}' in vhost '{VHOST}'"):
        channel.queue_declare(queue, passive=True)


def test_delete_missing_queue_succeeds_with_zero(channel, names):
    assert channel.queue_delete(names.queue()).method.message_count == 0


def test_delete_if_empty(connection, names):
    queue = names.queue()
    channel = connection.channel()
    channel.queue_declare(queue)
    channel.confirm_delivery()
    publish(channel, queue, b"a")
    with channel_error(406, f"PRECONDITION_FAILED - queue '{queue}' in vhost '{VHOST}' not empty"):
        channel.queue_delete(queue, if_empty=True)
    channel = connection.channel()
    channel.queue_purge(queue)
    assert channel.queue_delete(queue, if_empty=True).method.message_count == 0


def test_delete_if_unused(connection, names):
    queue = names.queue()
    channel = connection.channel()
    channel.queue_declare(queue)
    channel.confirm_delivery()
    publish(channel, queue, b"a")
    tag = channel.basic_consume(queue, lambda *_: None, auto_ack=True)
    with channel_error(406, f"PRECONDITION_FAILED - queue '{queue}' in vhost '{VHOST}' in use"):
        connection.channel().queue_delete(queue, if_unused=True)
    channel.basic_cancel(tag)
    # "Unused" means no consumers: a queue with messages but no consumer can be deleted.
    channel.basic_publish("", queue, b"b")
    assert channel.queue_delete(queue, if_unused=True).method.message_count == 1


def test_bind_and_unbind(channel, names):
    queue, x = names.queue(), names.exchange()
    channel.exchange_declare(x, "direct")
    channel.queue_declare(queue)
    channel.confirm_delivery()
    channel.queue_bind(queue, x, routing_key="k")
    channel.basic_publish(x, "k", b"bound")
    channel.queue_unbind(queue, x, routing_key="k")
    channel.basic_publish(x, "k", b"unbound")
    assert support.drain(channel, queue) == [b"bound"]


def test_unbind_of_missing_binding_succeeds(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    assert isinstance(channel.queue_unbind(queue, "amq.direct", routing_key="never-bound").method, pika.spec.Queue.UnbindOk)


def test_bind_missing_queue_is_404(channel, names):
    queue = names.queue()
    with channel_error(404, f"NOT_FOUND - no queue '{queue}' in vhost '{VHOST}'"):
        channel.queue_bind(queue, "amq.direct", routing_key="k")


def test_empty_queue_name_means_last_declared_queue(channel):
    # AMQP 0-9-1 lets "" stand for the channel's most recently declared queue,
    # both as queue name and (in queue.bind) as routing key.
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind("", "amq.direct")
    channel.confirm_delivery()
    channel.basic_publish("amq.direct", queue, b"via shortcut")
    method, _, body = channel.basic_get("", auto_ack=True)
    assert (method.routing_key, body) == (queue, b"via shortcut")


def test_empty_queue_name_without_declared_queue_is_404(channel):
    with channel_error(404, "NOT_FOUND - no previously declared queue"):
        channel.basic_get("")
