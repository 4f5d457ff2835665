"""Queue types (x-queue-type) and quorum queues as AMQP 0-9-1 clients see them.

A quorum queue must be durable, not exclusive and not auto-delete, and must be
named by the client. It counts failed deliveries: redeliveries carry that
count in the x-delivery-count header, and with a delivery limit a message
whose count exceeds the limit is dead-lettered with reason delivery_limit.

basic.reject with requeue is the failure that counts everywhere: up to RabbitMQ
4.2 every requeue counted, while 4.3 counts basic.reject but not basic.nack.
Since 4.0 a quorum queue without x-delivery-limit has a limit of 20; before,
it had none. Warren follows current RabbitMQ.
"""

import time

import pika
import pytest

import support
from support import assert_death, channel_error, wait_until

QUORUM = {"x-queue-type": "quorum"}
# RabbitMQ 4.0 and later give every quorum queue this delivery limit unless told otherwise.
DEFAULT_DELIVERY_LIMIT = 20


def declare_quorum(channel, queue, arguments=None):
    return channel.queue_declare(queue, durable=True, arguments=QUORUM | (arguments or {})).method


def dead_letter_to(queue) -> dict:
    return {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue}


def test_classic_type_is_accepted_and_the_same_as_none(connection, names):
    explicit, implicit = names.queue(), names.queue()
    channel = connection.channel()
    channel.queue_declare(explicit, arguments={"x-queue-type": "classic"})
    channel.queue_declare(explicit)
    channel.queue_declare(implicit)
    channel.queue_declare(implicit, arguments={"x-queue-type": "classic"})


@pytest.mark.parametrize(
    "flags, property_name",
    [
        (dict(durable=False), "non-durable"),
        (dict(durable=True, exclusive=True), "exclusive-owner"),
        (dict(durable=True, auto_delete=True), "auto-delete"),
        # Checked in this order: auto-delete, then exclusive, then durable.
        (dict(durable=False, exclusive=True), "exclusive-owner"),
        (dict(durable=False, exclusive=True, auto_delete=True), "auto-delete"),
    ],
    ids=["non-durable", "exclusive", "auto-delete", "non-durable-exclusive", "all-three"],
)
def test_quorum_queue_property_constraints(channel, names, flags, property_name):
    queue = names.queue()
    text = f"PRECONDITION_FAILED - invalid property '{property_name}' for {support.queue_in_vhost(queue)}"
    with channel_error(406, text):
        channel.queue_declare(queue, arguments=QUORUM, **flags)


def test_server_named_quorum_queue_is_refused(channel):
    with channel_error(406, "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_quorum_queue"):
        channel.queue_declare("", durable=True, arguments=QUORUM)


@pytest.mark.parametrize(
    "value, reason",
    [("lazy", "\"unsupported queue type 'lazy'\""), (1, "{unacceptable_type,signedint}")],
    ids=["unknown", "not-a-string"],
)
def test_invalid_queue_type_is_406(channel, names, value, reason):
    queue = names.queue()
    with channel_error(406, support.invalid_arg("x-queue-type", queue, reason)):
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": value})


def test_delivery_limit_is_refused_on_classic_queues(channel, names):
    queue = names.queue()
    with channel_error(
        406,
        f"PRECONDITION_FAILED - invalid arg 'x-delivery-limit' for {support.queue_in_vhost(queue)} "
        "of queue type rabbit_classic_queue",
    ):
        channel.queue_declare(queue, arguments={"x-delivery-limit": 1})


def test_redeclare_with_another_type_is_406(connection, names):
    queue = names.queue()
    declare_quorum(connection.channel(), queue)
    declare_quorum(connection.channel(), queue)
    with channel_error(
        406,
        f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for {support.queue_in_vhost(queue)}: "
        "received 'classic' but current is 'quorum'",
    ):
        connection.channel().queue_declare(queue, durable=True, arguments={"x-queue-type": "classic"})


def test_redeclare_without_type_is_406(connection, names):
    queue = names.queue()
    declare_quorum(connection.channel(), queue)
    if support.is_legacy_rabbitmq(connection):
        # RabbitMQ 3.x compares the missing argument with the stored one.
        received = "received none but current is the value 'quorum' of type 'longstr'"
    else:
        # Current RabbitMQ fills in the default type, classic, before comparing.
        received = "received 'classic' but current is 'quorum'"
    with channel_error(
        406, f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for {support.queue_in_vhost(queue)}: {received}"
    ):
        connection.channel().queue_declare(queue, durable=True)


def test_publish_get_and_consume(connection, channel, names):
    queue = names.queue()
    ok = declare_quorum(channel, queue)
    assert (ok.queue, ok.message_count, ok.consumer_count) == (queue, 0, 0)
    support.publish_numbered(channel, queue, 3)
    assert support.ready_count(channel, queue) == 3
    method, _, body = channel.basic_get(queue, auto_ack=True)
    assert (body, method.message_count, method.redelivered) == (b"m0", 2, False)
    received = support.receive(connection, channel, queue, 2)
    assert [(body, method.redelivered) for method, _, body in received] == [(b"m1", False), (b"m2", False)]


def reject_until_gone(connection, channel, queue, dead_letters, limit_reached):
    """Consumes queue, rejecting (with requeue) every delivery, until a copy turns up in
    dead_letters or limit_reached(deliveries) holds. Returns (deliveries, dead letters)
    as lists of (method, properties, body)."""
    deliveries, dead = [], []

    def on_message(_channel, method, properties, body):
        deliveries.append((method, properties, body))
        channel.basic_reject(method.delivery_tag, requeue=True)

    channel.basic_consume(queue, on_message)
    channel.basic_consume(dead_letters, lambda _ch, *message: dead.append(message), auto_ack=True)
    wait_until(connection, lambda: dead or limit_reached(deliveries), "a dead letter or enough deliveries")
    return deliveries, dead


def test_delivery_limit_dead_letters_with_reason_delivery_limit(connection, channel, names):
    queue = names.queue()
    dead_letters = channel.queue_declare("", exclusive=True).method.queue
    declare_quorum(channel, queue, {"x-delivery-limit": 2} | dead_letter_to(dead_letters))
    since = time.time()
    channel.basic_publish("", queue, b"poison", pika.BasicProperties(headers={"app": "kept"}))
    deliveries, dead = reject_until_gone(connection, channel, queue, dead_letters, lambda _: False)
    # The limit allows two failed deliveries after the first one: the third rejection is one too many.
    counts = [(method.redelivered, properties.headers.get("x-delivery-count")) for method, properties, _ in deliveries]
    assert counts == [(False, None), (True, 1), (True, 2)]
    assert all(type(count) is pika.compat.long for _, count in counts[1:])
    [(method, properties, body)] = dead
    assert (method.routing_key, body, properties.headers["app"]) == (dead_letters, b"poison", "kept")
    [death] = properties.headers["x-death"]
    assert_death(
        death, since, time.time(), count=1, reason="delivery_limit", queue=queue, exchange="", routing_keys=[queue]
    )


def test_default_delivery_limit(connection, channel, names):
    queue = names.queue()
    dead_letters = channel.queue_declare("", exclusive=True).method.queue
    declare_quorum(channel, queue, dead_letter_to(dead_letters))
    channel.basic_publish("", queue, b"poison")
    legacy = support.is_legacy_rabbitmq(connection)

    def enough(deliveries):
        # Against RabbitMQ 3.x, one delivery more than current RabbitMQ allows shows there is no limit.
        return legacy and len(deliveries) > DEFAULT_DELIVERY_LIMIT + 1

    deliveries, dead = reject_until_gone(connection, channel, queue, dead_letters, enough)
    if legacy:
        # RabbitMQ 3.x has no default limit: the message keeps coming back.
        assert dead == []
    else:
        assert len(deliveries) == DEFAULT_DELIVERY_LIMIT + 1
        assert [body for _, _, body in dead] == [b"poison"]
