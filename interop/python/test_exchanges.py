"""exchange.declare / delete / bind: equivalence checks, reserved names and their exact errors."""

import pika
import pytest

import support
from support import VHOST, channel_error, connection_error

STANDARD_EXCHANGES = [
    ("amq.direct", "direct"),
    ("amq.fanout", "fanout"),
    ("amq.topic", "topic"),
    ("amq.headers", "headers"),
    ("amq.match", "headers"),
]


def test_declare_is_idempotent_and_passive_finds_it(channel, names):
    x = names.exchange()
    channel.exchange_declare(x, "topic", durable=True)
    channel.exchange_declare(x, "topic", durable=True)
    assert isinstance(channel.exchange_declare(x, passive=True).method, pika.spec.Exchange.DeclareOk)


def test_passive_declare_of_missing_exchange_is_404(channel, names):
    x = names.exchange()
    with channel_error(404, f"NOT_FOUND - no exchange '{x}' in vhost '{VHOST}'"):
        channel.exchange_declare(x, passive=True)


def test_passive_declare_ignores_type_and_flags(channel, names):
    x = names.exchange()
    channel.exchange_declare(x, "direct")
    channel.exchange_declare(x, "fanout", passive=True, durable=True, auto_delete=True)


@pytest.mark.parametrize(
    "redeclare, arg, received, current",
    [
        (dict(exchange_type="direct", durable=True), "durable", "true", "false"),
        (dict(exchange_type="fanout"), "type", "fanout", "direct"),
        (dict(exchange_type="direct", auto_delete=True), "auto_delete", "true", "false"),
        (dict(exchange_type="direct", internal=True), "internal", "true", "false"),
    ],
)
def test_inequivalent_redeclare_is_406(connection, names, redeclare, arg, received, current):
    x = names.exchange()
    connection.channel().exchange_declare(x, "direct")
    with channel_error(
        406,
        f"PRECONDITION_FAILED - inequivalent arg '{arg}' for exchange '{x}' in vhost '{VHOST}': "
        f"received '{received}' but current is '{current}'",
    ):
        connection.channel().exchange_declare(x, **redeclare)


def test_inequivalent_alternate_exchange_is_406(connection, names):
    x = names.exchange()
    connection.channel().exchange_declare(x, "direct")
    with channel_error(
        406,
        f"PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange '{x}' in vhost '{VHOST}': "
        "received the value 'ae' of type 'longstr' but current is none",
    ):
        connection.channel().exchange_declare(x, "direct", arguments={"alternate-exchange": "ae"})


def test_unknown_arguments_are_not_compared(channel, names):
    # alternate-exchange is the only exchange argument RabbitMQ checks for equivalence.
    x = names.exchange()
    channel.exchange_declare(x, "direct", arguments={"colour": "red"})
    channel.exchange_declare(x, "direct", arguments={"colour": "blue"})
    channel.exchange_declare(x, "direct")


@pytest.mark.parametrize("name, kind", STANDARD_EXCHANGES)
def test_standard_exchanges_exist_and_are_durable(channel, name, kind):
    channel.exchange_declare(name, passive=True)
    channel.exchange_declare(name, kind, durable=True)


def test_redeclaring_standard_exchange_as_transient_is_406(channel):
    with channel_error(
        406,
        f"PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'amq.direct' in vhost '{VHOST}': "
        "received 'false' but current is 'true'",
    ):
        channel.exchange_declare("amq.direct", "direct")


def test_amq_prefix_is_reserved(channel):
    name = "amq." + support.unique("x")
    with channel_error(403, f"ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'"):
        channel.exchange_declare(name, "direct")


def test_standard_exchange_cannot_be_deleted(channel):
    with channel_error(403, f"ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '{VHOST}' not allowed"):
        channel.exchange_delete("amq.direct")


@pytest.mark.parametrize(
    "operation",
    [
        lambda ch: ch.exchange_declare("", "direct"),
        lambda ch: ch.exchange_declare("", passive=True),
        lambda ch: ch.exchange_delete(""),
    ],
    ids=["declare", "passive-declare", "delete"],
)
def test_default_exchange_is_off_limits(channel, operation):
    with channel_error(403, "ACCESS_REFUSED - operation not permitted on the default exchange"):
        operation(channel)


def test_unknown_exchange_type(connection, names):
    x = names.exchange()
    if support.is_legacy_rabbitmq(connection):
        # RabbitMQ 3.x treats this as a hard error and closes the whole connection.
        with connection_error(503, "COMMAND_INVALID - unknown exchange type 'no-such-type'"):
            connection.channel().exchange_declare(x, "no-such-type")
    else:
        # Current RabbitMQ (4.0+) only closes the channel, with a precondition failure.
        with channel_error(406, "PRECONDITION_FAILED - unknown exchange type 'no-such-type'"):
            connection.channel().exchange_declare(x, "no-such-type")


def test_delete_missing_exchange_succeeds(channel, names):
    assert isinstance(channel.exchange_delete(names.exchange()).method, pika.spec.Exchange.DeleteOk)


def test_delete_if_unused(connection, names):
    x = names.exchange()
    channel = connection.channel()
    channel.exchange_declare(x, "fanout")
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, x)
    with channel_error(406, f"PRECONDITION_FAILED - exchange '{x}' in vhost '{VHOST}' in use"):
        channel.exchange_delete(x, if_unused=True)
    channel = connection.channel()
    channel.queue_unbind(queue, x)
    channel.exchange_delete(x, if_unused=True)
    with channel_error(404, f"NOT_FOUND - no exchange '{x}' in vhost '{VHOST}'"):
        channel.exchange_declare(x, passive=True)


def test_being_a_binding_destination_does_not_count_as_used(channel, names):
    source, destination = names.exchange(), names.exchange()
    channel.exchange_declare(source, "fanout")
    channel.exchange_declare(destination, "fanout")
    channel.exchange_bind(destination, source)
    channel.exchange_delete(destination, if_unused=True)


def test_auto_delete_exchange_goes_when_its_last_binding_does(channel, names):
    x = names.exchange()
    channel.exchange_declare(x, "fanout", auto_delete=True)
    # Never having had a binding does not trigger auto-delete.
    channel.exchange_declare(x, passive=True)
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, x)
    channel.queue_unbind(queue, x)
    with channel_error(404, f"NOT_FOUND - no exchange '{x}' in vhost '{VHOST}'"):
        channel.exchange_declare(x, passive=True)


def test_publish_to_missing_exchange_is_404(channel, names):
    x = names.exchange()
    channel.basic_publish(x, "key", b"lost")
    with channel_error(404, f"NOT_FOUND - no exchange '{x}' in vhost '{VHOST}'"):
        # The publish has no reply; the next synchronous method observes the channel close.
        channel.queue_declare("", exclusive=True)


def test_publish_to_internal_exchange_is_403(channel, names):
    x = names.exchange()
    channel.exchange_declare(x, "fanout", internal=True)
    channel.basic_publish(x, "", b"nope")
    with channel_error(403, f"ACCESS_REFUSED - cannot publish to internal exchange '{x}' in vhost '{VHOST}'"):
        channel.queue_declare("", exclusive=True)


def test_bind_to_missing_exchange_is_404(channel, names):
    x = names.exchange()
    queue = channel.queue_declare("", exclusive=True).method.queue
    with channel_error(404, f"NOT_FOUND - no exchange '{x}' in vhost '{VHOST}'"):
        channel.queue_bind(queue, x)


def test_exchange_to_exchange_binding_routes(channel, names):
    source, destination = names.exchange(), names.exchange()
    channel.exchange_declare(source, "topic")
    channel.exchange_declare(destination, "direct")
    channel.exchange_bind(destination, source, routing_key="logs.*")
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, destination, routing_key="logs.error")
    channel.confirm_delivery()
    channel.basic_publish(source, "logs.error", b"routed")
    channel.basic_publish(source, "logs.info", b"dropped by destination")
    channel.basic_publish(source, "other", b"dropped by source")
    assert support.drain(channel, queue) == [b"routed"]
    channel.exchange_unbind(destination, source, routing_key="logs.*")
    channel.basic_publish(source, "logs.error", b"after unbind")
    assert support.drain(channel, queue) == []
