"""Queue length limits: x-max-length (messages), x-max-length-bytes (body bytes only),
and x-overflow, which says what happens to a publish that would exceed them:
drop-head (the default) drops the oldest ready messages, reject-publish refuses
the new one (basic.nack under confirms, silence otherwise), reject-publish-dlx
also dead-letters it. Only ready messages count, not unacknowledged ones.
"""

import decimal
import time

import pika
import pytest

import support
from support import channel_error, drain


@pytest.fixture
def confirmed(channel):
    channel.confirm_delivery()
    return channel


def limited_queue(channel, **arguments) -> str:
    """An exclusive queue with the given x- arguments ('_' standing for '-')."""
    arguments = {"x-" + key.replace("_", "-"): value for key, value in arguments.items()}
    return channel.queue_declare("", exclusive=True, arguments=arguments).method.queue


def publish_outcomes(channel, queue, *bodies, exchange="", **options) -> list[str]:
    """Publishes each body under confirms and tells, per body, whether the broker acked or nacked it."""
    outcomes = []
    for body in bodies:
        try:
            channel.basic_publish(exchange, queue, body, **options)
            outcomes.append("ack")
        except pika.exceptions.NackError:
            outcomes.append("nack")
    return outcomes


def test_drop_head_is_the_default(confirmed):
    queue = limited_queue(confirmed, max_length=2)
    assert publish_outcomes(confirmed, queue, b"m0", b"m1", b"m2", b"m3") == ["ack"] * 4
    assert drain(confirmed, queue) == [b"m2", b"m3"]


def test_max_length_zero_keeps_nothing(confirmed):
    queue = limited_queue(confirmed, max_length=0)
    assert publish_outcomes(confirmed, queue, b"dropped at once") == ["ack"]
    assert drain(confirmed, queue) == []


def test_max_length_bytes_counts_body_bytes_only(confirmed):
    queue = limited_queue(confirmed, max_length_bytes=10)
    big_headers = pika.BasicProperties(headers={"padding": "x" * 1000})
    # Exactly at the limit is within it; properties and headers do not count.
    confirmed.basic_publish("", queue, b"aaaaa", big_headers)
    confirmed.basic_publish("", queue, b"bbbbb", big_headers)
    confirmed.basic_publish("", queue, b"")
    confirmed.basic_publish("", queue, b"c")
    assert drain(confirmed, queue) == [b"bbbbb", b"", b"c"]


def test_body_larger_than_the_byte_limit_drops_everything_up_to_itself(confirmed):
    queue = limited_queue(confirmed, max_length_bytes=10)
    assert publish_outcomes(confirmed, queue, b"aaaa", b"bbbb", b"x" * 11) == ["ack"] * 3
    assert drain(confirmed, queue) == []


def test_only_ready_messages_count(confirmed):
    queue = limited_queue(confirmed, max_length=1, overflow="reject-publish")
    confirmed.basic_publish("", queue, b"m0")
    unacked, _, _ = confirmed.basic_get(queue)
    assert publish_outcomes(confirmed, queue, b"m1", b"m2") == ["ack", "nack"]
    confirmed.basic_ack(unacked.delivery_tag)
    assert drain(confirmed, queue) == [b"m1"]


def test_requeue_onto_a_full_drop_head_queue_drops_the_requeued_head(confirmed):
    queue = limited_queue(confirmed, max_length=1)
    confirmed.basic_publish("", queue, b"m0")
    unacked, _, _ = confirmed.basic_get(queue)
    confirmed.basic_publish("", queue, b"m1")
    confirmed.basic_publish("", queue, b"m2")
    # m0 goes back to the head, which makes the queue too long, so m0 is dropped.
    confirmed.basic_nack(unacked.delivery_tag, requeue=True)
    assert drain(confirmed, queue) == [b"m2"]


@pytest.mark.parametrize("limit", [dict(max_length=2), dict(max_length_bytes=4)], ids=["length", "bytes"])
def test_reject_publish_nacks_what_does_not_fit(confirmed, limit):
    queue = limited_queue(confirmed, overflow="reject-publish", **limit)
    assert publish_outcomes(confirmed, queue, b"m0", b"m1", b"m2", b"m3") == ["ack", "ack", "nack", "nack"]
    assert drain(confirmed, queue) == [b"m0", b"m1"]


def test_reject_publish_without_confirms_drops_silently(connection, confirmed):
    queue = limited_queue(confirmed, max_length=1, overflow="reject-publish")
    unconfirmed = connection.channel()
    unconfirmed.basic_publish("", queue, b"kept")
    unconfirmed.basic_publish("", queue, b"dropped")
    # Publishes and basic.get on one channel reach the queue in order.
    assert drain(unconfirmed, queue) == [b"kept"]
    assert unconfirmed.is_open


def test_reject_publish_nacks_mandatory_messages_without_returning_them(connection, confirmed):
    queue = limited_queue(confirmed, max_length=1, overflow="reject-publish")
    returned = []
    confirmed.add_on_return_callback(lambda *message: returned.append(message))
    # pika raises UnroutableError instead of NackError if a basic.return came first.
    assert publish_outcomes(confirmed, queue, b"kept", b"refused", mandatory=True) == ["ack", "nack"]
    connection.process_data_events(time_limit=0)
    assert returned == []


def test_reject_publish_nacks_even_when_another_queue_took_the_message(confirmed, names):
    x = names.exchange()
    confirmed.exchange_declare(x, "fanout")
    full = limited_queue(confirmed, max_length=1, overflow="reject-publish")
    roomy = limited_queue(confirmed)
    for queue in (full, roomy):
        confirmed.queue_bind(queue, x)
    assert publish_outcomes(confirmed, "", b"f0", b"f1", exchange=x) == ["ack", "nack"]
    assert drain(confirmed, full) == [b"f0"]
    assert drain(confirmed, roomy) == [b"f0", b"f1"]


def test_reject_publish_fails_a_transaction_commit(connection, confirmed):
    queue = limited_queue(confirmed, max_length=1, overflow="reject-publish")
    transactional = connection.channel()
    transactional.tx_select()
    transactional.basic_publish("", queue, b"t0")
    transactional.basic_publish("", queue, b"t1")
    with channel_error(406, "PRECONDITION_FAILED - partial tx completion"):
        transactional.tx_commit()
    assert drain(confirmed, queue) == [b"t0"]


@pytest.mark.parametrize(
    "overflow, outcomes, kept, dead",
    [
        ("drop-head", ["ack", "ack"], [b"d1"], [b"d0"]),
        ("reject-publish", ["ack", "nack"], [b"d0"], []),
        ("reject-publish-dlx", ["ack", "nack"], [b"d0"], [b"d1"]),
    ],
    ids=["drop-head", "reject-publish", "reject-publish-dlx"],
)
def test_overflow_dead_letters_with_reason_maxlen(connection, confirmed, overflow, outcomes, kept, dead):
    dead_letters = confirmed.queue_declare("", exclusive=True).method.queue
    queue = limited_queue(
        confirmed, max_length=1, overflow=overflow, dead_letter_exchange="", dead_letter_routing_key=dead_letters
    )
    since = time.time()
    assert publish_outcomes(confirmed, queue, b"d0", b"d1") == outcomes
    received = support.receive(connection, connection.channel(), dead_letters, len(dead))
    assert drain(confirmed, queue) == kept
    assert [body for _, _, body in received] == dead
    for _, properties, _ in received:
        [death] = properties.headers["x-death"]
        support.assert_death(
            death, since, time.time(), count=1, reason="maxlen", queue=queue, exchange="", routing_keys=[queue]
        )


@pytest.mark.parametrize(
    "arg, value, reason",
    [
        ("x-overflow", "drop-tail", "invalid_overflow"),
        ("x-overflow", "", "invalid_overflow"),
        ("x-overflow", 1, "{unacceptable_type,signedint}"),
        ("x-max-length", -1, "{value_negative,-1}"),
        ("x-max-length", "10", '"expected integer, got longstr"'),
        ("x-max-length", True, '"expected integer, got bool"'),
        ("x-max-length-bytes", -1, "{value_negative,-1}"),
        ("x-max-length-bytes", decimal.Decimal("1.5"), '"expected integer, got decimal"'),
    ],
    ids=[
        "overflow-unknown",
        "overflow-empty",
        "overflow-int",
        "length-negative",
        "length-string",
        "length-bool",
        "bytes-negative",
        "bytes-decimal",
    ],
)
def test_invalid_limit_arguments_are_406(channel, names, arg, value, reason):
    queue = names.queue()
    with channel_error(406, support.invalid_arg(arg, queue, reason)):
        channel.queue_declare(queue, arguments={arg: value})
