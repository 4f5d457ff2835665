"""Routing through direct, fanout, topic, headers and default exchanges.

Each test publishes with publisher confirms, so that once basic_publish returns
the message has reached every queue it routes to and basic.get sees it.
"""

import pika
import pytest

import support
from support import channel_error, drain


@pytest.fixture
def confirmed(channel):
    channel.confirm_delivery()
    return channel


def bound_queue(channel, exchange, routing_key="", arguments=None):
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, exchange, routing_key=routing_key, arguments=arguments)
    return queue


def test_direct_routes_on_exact_key(confirmed, names):
    x = names.exchange()
    confirmed.exchange_declare(x, "direct")
    errors = bound_queue(confirmed, x, "error")
    both = bound_queue(confirmed, x, "error")
    confirmed.queue_bind(both, x, routing_key="info")
    for key in ("error", "info", "warning", "Error", "error.x"):
        confirmed.basic_publish(x, key, key.encode())
    assert drain(confirmed, errors) == [b"error"]
    # One copy per queue, however many of its bindings match.
    assert drain(confirmed, both) == [b"error", b"info"]


def test_same_binding_twice_delivers_once(confirmed, names):
    x = names.exchange()
    confirmed.exchange_declare(x, "direct")
    queue = bound_queue(confirmed, x, "k")
    confirmed.queue_bind(queue, x, routing_key="k")
    confirmed.basic_publish(x, "k", b"once")
    assert drain(confirmed, queue) == [b"once"]


def test_fanout_ignores_routing_key(confirmed, names):
    x = names.exchange()
    confirmed.exchange_declare(x, "fanout")
    queues = [bound_queue(confirmed, x, key) for key in ("a", "b", "")]
    confirmed.basic_publish(x, "anything", b"everyone")
    for queue in queues:
        assert drain(confirmed, queue) == [b"everyone"]


TOPIC_CASES = [
    ("a.b.c", ["a.b.c"], ["a.b", "a.b.c.d", "a.b.x", "A.b.c"]),
    ("*.orange.*", ["quick.orange.rabbit", "a.orange.b"], ["orange", "quick.orange", "a.b.orange.c"]),
    ("*.*.rabbit", ["quick.orange.rabbit"], ["rabbit", "orange.rabbit", "a.b.c.rabbit"]),
    ("lazy.#", ["lazy", "lazy.brown.fox", "lazy.pink.rabbit"], ["lazier", "quick.lazy"]),
    ("#", ["", "x", "a.b.c"], []),
    ("#.end", ["end", "x.end", "a.b.end"], ["end.x", "endx"]),
    ("a.#.z", ["a.z", "a.b.z", "a.b.c.z"], ["a", "a.b", "b.z"]),
    # "" is zero words, not one empty word; between dots, empty words do count.
    ("*", ["x"], ["", "x.y"]),
    ("a.*.b", ["a..b", "a.x.b"], ["a.b"]),
    ("*.*", [".", "a.b"], ["a", ""]),
    ("a.*.#", ["a.b", "a.b.c"], ["a"]),
]


@pytest.mark.parametrize("pattern, matching, other", TOPIC_CASES, ids=[case[0] or "empty" for case in TOPIC_CASES])
def test_topic_patterns(confirmed, names, pattern, matching, other):
    x = names.exchange()
    confirmed.exchange_declare(x, "topic")
    queue = bound_queue(confirmed, x, pattern)
    for key in matching + other:
        confirmed.basic_publish(x, key, key.encode())
    assert drain(confirmed, queue) == [key.encode() for key in matching]


HEADERS_BINDINGS = {
    "all": {"x-match": "all", "a": 1, "b": "two"},
    "any": {"x-match": "any", "a": 1, "b": "two"},
    "all-by-default": {"a": 1, "b": "two"},
    # Binding arguments starting with "x-" never take part in matching.
    "x-args-ignored": {"a": 1, "x-other": "ignored"},
    # A void binding value matches the header's presence, whatever its value.
    "presence": {"a": None},
    # Values compare with their type: the string "1" is not the integer 1.
    "string-value": {"a": "1"},
    # all-with-x / any-with-x (RabbitMQ 3.10+) do match on x- headers.
    "all-with-x": {"x-match": "all-with-x", "x-other": "yes"},
}

HEADERS_MESSAGES = {
    "a1-btwo": {"a": 1, "b": "two"},
    "a1": {"a": 1},
    "a2-btwo": {"a": 2, "b": "two"},
    "a1-xother": {"a": 1, "x-other": "yes"},
    "xother": {"x-other": "yes"},
    "a-string": {"a": "1"},
    "none": None,
    "extra": {"a": 1, "b": "two", "c": 3},
}

HEADERS_EXPECTED = {
    "all": ["a1-btwo", "extra"],
    "any": ["a1-btwo", "a1", "a2-btwo", "a1-xother", "extra"],
    "all-by-default": ["a1-btwo", "extra"],
    "x-args-ignored": ["a1-btwo", "a1", "a1-xother", "extra"],
    "presence": ["a1-btwo", "a1", "a2-btwo", "a1-xother", "a-string", "extra"],
    "string-value": ["a-string"],
    "all-with-x": ["a1-xother", "xother"],
}


def test_headers_matching(confirmed, names):
    x = names.exchange()
    confirmed.exchange_declare(x, "headers")
    queues = {name: bound_queue(confirmed, x, "ignored", arguments) for name, arguments in HEADERS_BINDINGS.items()}
    for label, headers in HEADERS_MESSAGES.items():
        confirmed.basic_publish(x, "", label.encode(), pika.BasicProperties(headers=headers))
    received = {name: [body.decode() for body in drain(confirmed, queue)] for name, queue in queues.items()}
    assert received == HEADERS_EXPECTED


@pytest.mark.parametrize(
    "x_match, detail",
    [
        ("bogus", 'Invalid x-match field value <<"bogus">>; expected all, any, all-with-x, or any-with-x'),
        (1, "Invalid x-match field type signedint (value 1); expected longstr"),
    ],
)
def test_headers_binding_rejects_invalid_x_match(channel, x_match, detail):
    # The value appears as Erlang prints it.
    queue = channel.queue_declare("", exclusive=True).method.queue
    with channel_error(406, "PRECONDITION_FAILED - " + detail):
        channel.queue_bind(queue, "amq.headers", arguments={"x-match": x_match})


def test_default_exchange_routes_by_queue_name(confirmed, names):
    queue = names.queue()
    confirmed.queue_declare(queue)
    confirmed.basic_publish("", queue, b"direct to queue")
    confirmed.basic_publish("", names.queue(), b"no such queue: dropped")
    method, _, body = confirmed.basic_get(queue, auto_ack=True)
    assert (method.exchange, method.routing_key, body) == ("", queue, b"direct to queue")


def test_amq_default_is_not_the_default_exchange(confirmed):
    # Over AMQP 0-9-1 the default exchange is named "". RabbitMQ uses "amq.default"
    # only in permission checks and AMQP 1.0 addresses.
    with channel_error(404, f"NOT_FOUND - no exchange 'amq.default' in vhost '{support.VHOST}'"):
        confirmed.exchange_declare("amq.default", passive=True)


@pytest.mark.parametrize(
    "operation",
    [
        lambda ch, q: ch.queue_bind(q, "", routing_key="other"),
        lambda ch, q: ch.queue_unbind(q, "", routing_key=q),
    ],
    ids=["bind", "unbind"],
)
def test_default_exchange_bindings_cannot_change(channel, operation):
    queue = channel.queue_declare("", exclusive=True).method.queue
    with channel_error(403, "ACCESS_REFUSED - operation not permitted on the default exchange"):
        operation(channel, queue)


def test_standard_exchanges_route(confirmed):
    # A unique key keeps other users of these shared exchanges out of the test's queues.
    key = support.unique("key")
    for exchange, binding_key, arguments in [
        ("amq.direct", key, None),
        ("amq.fanout", "", None),
        ("amq.topic", key + ".#", None),
        ("amq.headers", "", {"key": key}),
        ("amq.match", "", {"key": key}),
    ]:
        queue = bound_queue(confirmed, exchange, binding_key, arguments)
        confirmed.basic_publish(exchange, key, b"m", pika.BasicProperties(headers={"key": key}))
        assert drain(confirmed, queue) == [b"m"], exchange


def test_alternate_exchange_takes_unroutable_messages(confirmed, names):
    main, alternate = names.exchange(), names.exchange()
    confirmed.exchange_declare(alternate, "fanout")
    confirmed.exchange_declare(main, "direct", arguments={"alternate-exchange": alternate})
    routed = bound_queue(confirmed, main, "known")
    fallback = bound_queue(confirmed, alternate)
    confirmed.basic_publish(main, "known", b"routed")
    # Mandatory is satisfied by the alternate exchange: no basic.return.
    confirmed.basic_publish(main, "unknown", b"fallback", mandatory=True)
    assert drain(confirmed, routed) == [b"routed"]
    method, _, body = confirmed.basic_get(fallback, auto_ack=True)
    # The message keeps the exchange and routing key it was published with.
    assert (method.exchange, method.routing_key, body) == (main, "unknown", b"fallback")
