"""Dead lettering: x-dead-letter-exchange and x-dead-letter-routing-key.

A message rejected or nacked without requeue, or expired, is republished to its
queue's dead-letter exchange (test_length_limits covers overflow, test_quorum
the delivery limit). It is routed with x-dead-letter-routing-key if the queue
has one, else with its own routing keys, CC and BCC ones included. The broker
records each death in the x-death header: a list of tables, most recent first,
one per (queue, reason) pair, counted; and the first death in the
x-first-death-* headers (the most recent in x-last-death-*, since RabbitMQ
3.13). A per-message expiration is removed and kept in the death record as
original-expiration. A message that would go round a cycle of queues with no
rejection in it is dropped instead.
"""

import time

import pika
import pytest

import support
from support import assert_death, assert_death_summary, channel_error, receive, wait_until

TTL_MS = 20


def own_queue(channel, arguments=None, name="") -> str:
    return channel.queue_declare(name, exclusive=True, arguments=arguments).method.queue


def dead_letter_to(queue, exchange="") -> dict:
    return {"x-dead-letter-exchange": exchange, "x-dead-letter-routing-key": queue}


@pytest.mark.parametrize(
    "settle",
    [
        lambda ch, tag: ch.basic_reject(tag, requeue=False),
        lambda ch, tag: ch.basic_nack(tag, requeue=False),
        lambda ch, tag: ch.basic_nack(tag, multiple=True, requeue=False),
    ],
    ids=["reject", "nack", "nack-multiple"],
)
def test_message_settled_without_requeue_is_dead_lettered(connection, channel, settle):
    dead_letters = own_queue(channel)
    queue = own_queue(channel, dead_letter_to(dead_letters))
    channel.confirm_delivery()
    channel.basic_publish("", queue, b"m", pika.BasicProperties(headers={"app": "kept"}))
    method, _, _ = channel.basic_get(queue)
    since = time.time()
    settle(channel, method.delivery_tag)
    [(method, properties, body)] = receive(connection, connection.channel(), dead_letters, 1)
    assert (method.exchange, method.routing_key, method.redelivered, body) == ("", dead_letters, False, b"m")
    headers = properties.headers
    [death] = headers["x-death"]
    assert_death(death, since, time.time(), count=1, reason="rejected", queue=queue, exchange="", routing_keys=[queue])
    assert_death_summary(connection, headers, first=("rejected", queue, ""), last=("rejected", queue, ""))
    assert headers["app"] == "kept"
    assert channel.basic_get(queue) == (None, None, None)


def test_nack_multiple_dead_letters_in_order(connection, channel):
    dead_letters = own_queue(channel)
    queue = own_queue(channel, dead_letter_to(dead_letters))
    channel.confirm_delivery()
    for body in (b"n0", b"n1", b"n2"):
        channel.basic_publish("", queue, body)
    last = [channel.basic_get(queue)[0] for _ in range(3)][-1]
    channel.basic_nack(last.delivery_tag, multiple=True, requeue=False)
    received = receive(connection, connection.channel(), dead_letters, 3)
    assert [body for _, _, body in received] == [b"n0", b"n1", b"n2"]


ALL_BUT_EXPIRATION = dict(
    content_type="text/plain",
    content_encoding="utf-8",
    delivery_mode=2,
    priority=3,
    correlation_id="corr",
    reply_to="replies",
    message_id="id-1",
    timestamp=1700000000,
    type="kind",
    app_id="app",
)


@pytest.mark.parametrize(
    "queue_ttl, expiration",
    [(None, str(TTL_MS)), (TTL_MS, None)],
    ids=["message-expiration", "queue-ttl"],
)
def test_expired_message_is_dead_lettered(connection, channel, queue_ttl, expiration):
    dead_letters = own_queue(channel)
    arguments = dead_letter_to(dead_letters) | ({"x-message-ttl": queue_ttl} if queue_ttl else {})
    queue = own_queue(channel, arguments)
    since = time.time()
    sent = pika.BasicProperties(expiration=expiration, headers={"app": "kept"}, **ALL_BUT_EXPIRATION)
    channel.basic_publish("", queue, b"too late", sent)
    # Nobody fetches it: the broker expires it on its own.
    [(_, properties, body)] = receive(connection, connection.channel(), dead_letters, 1)
    assert body == b"too late"
    [death] = properties.headers["x-death"]
    # The expiration property is taken off (the copy must not expire again for the same
    # reason) and recorded in the death instead.
    recorded = {"original_expiration": expiration} if expiration else {}
    assert_death(
        death, since, time.time(), count=1, reason="expired", queue=queue, exchange="", routing_keys=[queue], **recorded
    )
    assert properties.expiration is None
    assert {key: getattr(properties, key) for key in ALL_BUT_EXPIRATION} == ALL_BUT_EXPIRATION


def test_dead_letter_routing_key_replaces_the_routing_keys(connection, channel, names):
    x, dead_x = names.exchange(), names.exchange()
    channel.exchange_declare(x, "direct")
    channel.exchange_declare(dead_x, "direct")
    dead_letters = own_queue(channel)
    channel.queue_bind(dead_letters, dead_x, routing_key="dead")
    queue = own_queue(channel, dead_letter_to("dead", exchange=dead_x))
    channel.queue_bind(queue, x, routing_key="k1")
    channel.confirm_delivery()
    channel.basic_publish(x, "k1", b"m", pika.BasicProperties(headers={"CC": ["k2"]}))
    method, _, _ = channel.basic_get(queue)
    since = time.time()
    channel.basic_reject(method.delivery_tag, requeue=False)
    [(method, properties, _)] = receive(connection, connection.channel(), dead_letters, 1)
    assert (method.exchange, method.routing_key) == (dead_x, "dead")
    # The death records where the message came from: its exchange and all its routing keys.
    [death] = properties.headers["x-death"]
    assert_death(
        death, since, time.time(), count=1, reason="rejected", queue=queue, exchange=x, routing_keys=["k1", "k2"]
    )
    assert_death_summary(connection, properties.headers, first=("rejected", queue, x), last=("rejected", queue, x))


def test_without_dead_letter_routing_key_every_routing_key_routes_it(connection, channel, names):
    x, dead_x = names.exchange(), names.exchange()
    channel.exchange_declare(x, "fanout")
    channel.exchange_declare(dead_x, "direct")
    by_key = {}
    for key in ("main", "cc", "bcc", "unrelated"):
        by_key[key] = own_queue(channel)
        channel.queue_bind(by_key[key], dead_x, routing_key=key)
    queue = own_queue(channel, {"x-dead-letter-exchange": dead_x})
    channel.queue_bind(queue, x)
    channel.confirm_delivery()
    channel.basic_publish(x, "main", b"m", pika.BasicProperties(headers={"CC": ["cc"], "BCC": ["bcc"]}))
    method, properties, _ = channel.basic_get(queue)
    # The broker strips BCC on publish; CC stays visible to consumers.
    assert properties.headers == {"CC": ["cc"]}
    since = time.time()
    channel.basic_reject(method.delivery_tag, requeue=False)
    consumer = connection.channel()
    for key in ("main", "cc", "bcc"):
        [(method, properties, _)] = receive(connection, consumer, by_key[key], 1)
        # One copy per queue, each carrying the first routing key; the death lists CC keys but not BCC ones.
        assert (method.exchange, method.routing_key, properties.headers.get("CC")) == (dead_x, "main", ["cc"])
        assert "BCC" not in properties.headers
        [death] = properties.headers["x-death"]
        assert_death(
            death, since, time.time(), count=1, reason="rejected", queue=queue, exchange=x, routing_keys=["main", "cc"]
        )
    assert receive(connection, consumer, by_key["unrelated"], 0) == []


def test_missing_dead_letter_exchange_drops_the_message(channel):
    queue = own_queue(channel, {"x-dead-letter-exchange": support.unique("missing")})
    channel.confirm_delivery()
    channel.basic_publish("", queue, b"nowhere to go")
    method, _, _ = channel.basic_get(queue)
    channel.basic_reject(method.delivery_tag, requeue=False)
    # Neither an error nor a requeue.
    assert channel.basic_get(queue) == (None, None, None)
    assert channel.is_open


def test_count_grows_for_the_same_queue_and_reason(connection, channel, names):
    # The queue dead-letters to itself; each rejection is one more death of the same kind.
    queue = names.queue()
    own_queue(channel, dead_letter_to(queue), name=queue)
    deliveries = []

    def on_message(_channel, method, properties, _body):
        deliveries.append(properties)
        if len(deliveries) < 4:
            channel.basic_reject(method.delivery_tag, requeue=False)
        else:
            channel.basic_ack(method.delivery_tag)

    since = time.time()
    channel.basic_publish("", queue, b"again", pika.BasicProperties(expiration="60000"))
    channel.basic_consume(queue, on_message)
    wait_until(connection, lambda: len(deliveries) == 4, "four deliveries")
    counts = [p.headers and [death["count"] for death in p.headers["x-death"]] for p in deliveries]
    assert counts == [None, [1], [2], [3]]
    assert [p.expiration for p in deliveries] == ["60000", None, None, None]
    [death] = deliveries[-1].headers["x-death"]
    # The record keeps what the first death saw, the original expiration included.
    assert_death(
        death,
        since,
        time.time(),
        count=3,
        reason="rejected",
        queue=queue,
        exchange="",
        routing_keys=[queue],
        original_expiration="60000",
    )


def test_rejection_inside_a_cycle_lets_the_message_go_round(connection, channel, names):
    # a expires messages into b; b dead-letters rejected ones back into a.
    a, b = names.queue(), names.queue()
    own_queue(channel, dead_letter_to(b) | {"x-message-ttl": TTL_MS}, name=a)
    own_queue(channel, dead_letter_to(a), name=b)
    deliveries = []

    def on_message(_channel, method, properties, _body):
        deliveries.append(properties.headers)
        if len(deliveries) == 1:
            channel.basic_reject(method.delivery_tag, requeue=False)
        else:
            channel.basic_ack(method.delivery_tag)

    since = time.time()
    channel.basic_publish("", a, b"round and round")
    channel.basic_consume(b, on_message)
    wait_until(connection, lambda: len(deliveries) == 2, "the message back in b after a rejection there")
    until = time.time()
    expired_in_a, rejected_in_b = deliveries[1]["x-death"]
    assert_death(expired_in_a, since, until, count=2, reason="expired", queue=a, exchange="", routing_keys=[a])
    assert_death(rejected_in_b, since, until, count=1, reason="rejected", queue=b, exchange="", routing_keys=[b])
    assert_death_summary(connection, deliveries[1], first=("expired", a, ""), last=("expired", a, ""))


def test_cycle_without_rejection_drops_the_message(connection, channel, names):
    # a and b expire messages into each other through fanout exchanges, each also
    # feeding an observer queue, which shows how far the message went.
    a, b = names.queue(), names.queue()
    into_b, into_a = names.exchange(), names.exchange()
    for x in (into_b, into_a):
        channel.exchange_declare(x, "fanout")
    own_queue(channel, {"x-message-ttl": TTL_MS, "x-dead-letter-exchange": into_b}, name=a)
    own_queue(channel, {"x-message-ttl": TTL_MS, "x-dead-letter-exchange": into_a}, name=b)
    saw_a_death, saw_b_death = own_queue(channel), own_queue(channel)
    channel.queue_bind(b, into_b)
    channel.queue_bind(saw_a_death, into_b)
    channel.queue_bind(a, into_a)
    channel.queue_bind(saw_b_death, into_a)
    since = time.time()
    channel.basic_publish("", a, b"once round")
    # Back to a would close the cycle a -> b -> a with only expiries in it: the copy for a is
    # dropped, the observer's copy is not. Were it not dropped, more copies would follow.
    [(_, properties, _)] = receive(connection, channel, saw_b_death, 1)
    until = time.time()
    expired_in_b, expired_in_a = properties.headers["x-death"]
    assert_death(expired_in_b, since, until, count=1, reason="expired", queue=b, exchange=into_b, routing_keys=[a])
    assert_death(expired_in_a, since, until, count=1, reason="expired", queue=a, exchange="", routing_keys=[a])
    assert_death_summary(connection, properties.headers, first=("expired", a, ""), last=("expired", b, into_b))
    assert len(receive(connection, channel, saw_a_death, 1)) == 1
    assert [channel.basic_get(queue) for queue in (a, b)] == [(None, None, None)] * 2


@pytest.mark.parametrize(
    "arguments, text",
    [
        (
            {"x-dead-letter-routing-key": "k"},
            "PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for {q}: routing_key_but_no_dlx_defined",
        ),
        (
            {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": 5},
            "PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for {q}: {{unacceptable_type,signedint}}",
        ),
        # This check happens before the generic argument validation, with its own wording.
        (
            {"x-dead-letter-exchange": 5},
            "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in {q}",
        ),
    ],
    ids=["routing-key-without-exchange", "routing-key-not-a-string", "exchange-not-a-string"],
)
def test_invalid_dead_letter_arguments_are_406(channel, names, arguments, text):
    queue = names.queue()
    with channel_error(406, text.format(q=support.queue_in_vhost(queue))):
        channel.queue_declare(queue, arguments=arguments)
