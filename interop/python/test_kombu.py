"""kombu on its pyamqp transport (py-amqp), the messaging layer under Celery:
declarations with queue arguments, confirmed and retried publishing, consumers
that ack, requeue and reject, SimpleQueue, and priority queues.
"""

import socket
import time

import amqp.exceptions
import kombu
import pytest

import support
from support import TIMEOUT, VHOST


@pytest.fixture
def connection(names):
    """A kombu connection to AMQP_URL whose channels wait for publisher confirms.

    Depends on names so that it closes before the test's queues are deleted.
    """
    with kombu.Connection(
        support.amqp_url(), transport_options={"confirm_publish": True}, connect_timeout=TIMEOUT
    ) as connection:
        connection.ensure_connection(max_retries=1)
        yield connection


def queue_on(connection, queue: kombu.Queue) -> kombu.Queue:
    """queue bound to the connection's default channel, so its methods talk to the broker."""
    return queue(connection.default_channel)


def ready_count(connection, queue_name: str) -> int:
    _, count, _ = connection.default_channel.queue_declare(queue_name, passive=True)
    return count


def take_all(connection, queue: kombu.Queue) -> list:
    """Payloads of every ready message in queue, removed with basic.get and no-ack."""
    payloads = []
    while (message := queue_on(connection, queue).get(no_ack=True)) is not None:
        payloads.append(message.payload)
    return payloads


def retry_policy(max_retries: int, errors: list) -> dict:
    """Retries at once (no back-off), recording in errors each failure that led to a retry."""
    return {
        "max_retries": max_retries,
        "interval_start": 0,
        "interval_step": 0,
        "errback": lambda error, _interval: errors.append(error),
    }


def drain_until(connection, predicate, what: str):
    """Dispatches deliveries to consumer callbacks until predicate() holds, failing after TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"timed out after {TIMEOUT}s waiting for {what}")
        try:
            connection.drain_events(timeout=remaining)
        except socket.timeout:
            pass


def test_connection_uses_py_amqp_and_the_url_vhost(connection):
    assert (connection.transport.driver_name, connection.virtual_host) == ("py-amqp", VHOST)
    capabilities = connection.connection.server_properties["capabilities"]
    # py-amqp relies on these for confirm_publish and for consumers cancelled by the broker.
    for capability in ("publisher_confirms", "basic.nack", "consumer_cancel_notify"):
        assert capabilities.get(capability) is True, capability


def test_queue_arguments_are_checked_on_redeclare(connection, names):
    arguments = {"x-message-ttl": 60000, "x-max-priority": 5}
    queue = queue_on(connection, kombu.Queue(names.queue(), queue_arguments=arguments))
    queue.declare()
    # The same arguments redeclare fine: py-amqp encodes them with the types the broker stored.
    queue.declare()
    changed = queue_on(connection, kombu.Queue(queue.name, queue_arguments={**arguments, "x-message-ttl": 1000}))
    with pytest.raises(amqp.exceptions.PreconditionFailed) as info:
        changed.declare()
    # RabbitMQ names the types ("the value '1000' of type 'signedint'") only when they differ.
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '{queue.name}' in vhost '{VHOST}': "
        "received '1000' but current is '60000'"
    )


def test_expired_messages_are_dead_lettered(connection, names):
    dead_exchange = kombu.Exchange(names.exchange(), "fanout")
    dead = kombu.Queue(names.queue(), dead_exchange)
    exchange = kombu.Exchange(names.exchange(), "direct")
    arguments = {"x-dead-letter-exchange": dead_exchange.name, "x-message-ttl": 50}
    queue = kombu.Queue(names.queue(), exchange, routing_key="work", queue_arguments=arguments)
    connection.Producer().publish(
        {"job": 1}, exchange=exchange, routing_key="work", declare=[queue, dead], timeout=TIMEOUT
    )
    received = []
    with kombu.Consumer(connection, [dead], callbacks=[lambda body, message: received.append((body, message))]):
        drain_until(connection, lambda: received, "the dead-lettered message")
    [(body, message)] = received
    message.ack()
    [death] = message.headers["x-death"]
    assert body == {"job": 1}
    assert (death["reason"], death["queue"], death["exchange"], death["routing-keys"]) == (
        "expired",
        queue.name,
        exchange.name,
        ["work"],
    )


def test_confirmed_publish_returns_once_the_message_is_enqueued(connection, names):
    queue = kombu.Queue(names.queue())
    producer = connection.Producer()
    for n in range(3):
        producer.publish({"n": n}, routing_key=queue.name, declare=[queue], timeout=TIMEOUT)
    # Each publish waited for its basic.ack, so the count needs no waiting.
    assert ready_count(connection, queue.name) == 3


def test_nacked_publish_is_retried_then_raised(connection, names):
    # py-amqp raises MessageNacked on basic.nack, and kombu retries it as a connection error.
    arguments = {"x-max-length": 1, "x-overflow": "reject-publish"}
    queue = kombu.Queue(names.queue(), queue_arguments=arguments)
    producer = connection.Producer()
    producer.publish("fits", routing_key=queue.name, declare=[queue], timeout=TIMEOUT)
    retries = []
    with pytest.raises(kombu.exceptions.OperationalError) as info:
        producer.publish(
            "overflows", routing_key=queue.name, retry=True, retry_policy=retry_policy(2, retries), timeout=TIMEOUT
        )
    assert isinstance(info.value.__cause__, amqp.exceptions.MessageNacked)
    assert [type(error) for error in retries] == [amqp.exceptions.MessageNacked] * 2
    assert queue_on(connection, queue).get(no_ack=True).payload == "fits"


def test_publish_with_retry_survives_a_lost_connection(connection, names):
    queue = kombu.Queue(names.queue())
    producer = connection.Producer()
    producer.publish("before", routing_key=queue.name, declare=[queue], timeout=TIMEOUT)
    # Cut the socket under kombu, as a network failure would.
    connection.connection.transport.sock.shutdown(socket.SHUT_RDWR)
    retries = []
    producer.publish(
        "after",
        routing_key=queue.name,
        declare=[queue],
        retry=True,
        retry_policy=retry_policy(3, retries),
        timeout=TIMEOUT,
    )
    assert retries, "the publish should have needed a new connection"
    assert take_all(connection, queue) == ["before", "after"]


def test_consumer_acks_requeues_and_rejects(connection, names):
    queue = kombu.Queue(names.queue())
    producer = connection.Producer()
    for name in ("ack", "requeue", "reject"):
        producer.publish({"action": name}, routing_key=queue.name, declare=[queue], timeout=TIMEOUT)
    seen = []

    def handle(body, message):
        seen.append((body["action"], message.delivery_info["redelivered"], message.content_type))
        if body["action"] == "reject":
            message.reject()
        elif body["action"] == "requeue" and not message.delivery_info["redelivered"]:
            message.requeue()
        else:
            message.ack()

    with kombu.Consumer(connection, [queue], callbacks=[handle], accept=["json"]):
        drain_until(connection, lambda: len(seen) == 4, "four deliveries")
    # The requeued message went back to the queue and came again after those already sent.
    assert seen == [
        ("ack", False, "application/json"),
        ("requeue", False, "application/json"),
        ("reject", False, "application/json"),
        ("requeue", True, "application/json"),
    ]
    assert take_all(connection, queue) == []


def test_simple_queue_put_and_get(connection, names):
    queue = kombu.Queue(names.queue(), kombu.Exchange(names.exchange()), routing_key="simple")
    with connection.SimpleQueue(queue) as simple:
        simple.put({"n": 1})
        simple.put({"n": 2})
        assert simple.qsize() == 2
        # get() consumes (basic.consume) and takes from what has been delivered.
        first = simple.get(timeout=TIMEOUT)
        first.ack()
        second = simple.get(timeout=TIMEOUT)
        second.ack()
        assert [first.payload, second.payload] == [{"n": 1}, {"n": 2}]
        # get_nowait() is a basic.get.
        with pytest.raises(simple.Empty):
            simple.get_nowait()


def test_priority_queue_delivers_highest_priority_first(connection, names):
    queue = kombu.Queue(names.queue(), max_priority=10)
    producer = connection.Producer()
    # Priorities above x-max-priority count as the maximum.
    for priority in (1, 9, 5, 0, 12):
        producer.publish(f"p{priority}", routing_key=queue.name, declare=[queue], priority=priority, timeout=TIMEOUT)
    assert take_all(connection, queue) == ["p12", "p9", "p5", "p1", "p0"]
