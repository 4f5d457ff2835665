"""Redeclaring a queue with different extension arguments (x-message-ttl, x-max-length,
x-dead-letter-exchange, x-single-active-consumer ...).

RabbitMQ compares the arguments it knows for the queue's type. Integer values
compare by value, whatever their wire width. When both declarations carry the
argument, the 406 text quotes just the two values; when one of them lacks it,
it says none and quotes the other with its field type (signedint for 'I',
long for 'l', longstr, bool).
"""

import pytest
from pika.compat import long  # pika encodes this int subclass as 'l' instead of 'I'

import support
from support import channel_error


def inequivalent(arg, queue, received, current):
    return (
        f"PRECONDITION_FAILED - inequivalent arg '{arg}' for {support.queue_in_vhost(queue)}: "
        f"received {received} but current is {current}"
    )


@pytest.mark.parametrize(
    "arg, first, second, received, current",
    [
        ("x-max-length", 10, 20, "'20'", "'10'"),
        ("x-max-priority", 5, long(6), "'6'", "'5'"),
        # Not the same type, yet only the values are quoted.
        ("x-message-ttl", 10, "10", "'10'", "'10'"),
        ("x-dead-letter-exchange", "a", "b", "'b'", "'a'"),
        ("x-overflow", "drop-head", "reject-publish", "'reject-publish'", "'drop-head'"),
        ("x-single-active-consumer", True, False, "'false'", "'true'"),
    ],
    ids=["max-length", "max-priority", "message-ttl-type", "dead-letter-exchange", "overflow", "single-active-consumer"],
)
def test_changed_argument_is_406(connection, names, arg, first, second, received, current):
    queue = names.queue()
    connection.channel().queue_declare(queue, arguments={arg: first})
    with channel_error(406, inequivalent(arg, queue, received, current)):
        connection.channel().queue_declare(queue, arguments={arg: second})


@pytest.mark.parametrize(
    "first, second, arg, received, current",
    [
        ({"x-message-ttl": long(10)}, {}, "x-message-ttl", "none", "the value '10' of type 'long'"),
        ({}, {"x-expires": long(1000)}, "x-expires", "the value '1000' of type 'long'", "none"),
        ({"x-single-active-consumer": True}, {}, "x-single-active-consumer", "none", "the value 'true' of type 'bool'"),
        ({}, {"x-dead-letter-exchange": "a"}, "x-dead-letter-exchange", "the value 'a' of type 'longstr'", "none"),
        ({}, {"x-max-priority": 0}, "x-max-priority", "the value '0' of type 'signedint'", "none"),
    ],
    ids=["dropped-long", "added-long", "dropped-bool", "added-string", "added-signedint"],
)
def test_added_or_dropped_argument_is_406(connection, names, first, second, arg, received, current):
    queue = names.queue()
    connection.channel().queue_declare(queue, arguments=first)
    with channel_error(406, inequivalent(arg, queue, received, current)):
        connection.channel().queue_declare(queue, arguments=second)


def test_integer_width_does_not_matter(channel, names):
    queue = names.queue()
    channel.queue_declare(queue, arguments={"x-max-length": 10, "x-message-ttl": long(60000)})
    channel.queue_declare(queue, arguments={"x-max-length": long(10), "x-message-ttl": 60000})
