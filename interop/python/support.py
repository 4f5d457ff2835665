"""Helpers shared by the interop tests.

Everything waits on broker events with a bounded deadline, so a broker that
never answers makes a test fail instead of hang.
"""

import contextlib
import datetime
import os
import re
import time
import urllib.parse
import uuid

import pika
import pytest

# Upper bound, in seconds, for any single broker event a test waits for.
TIMEOUT = 5.0


def amqp_url() -> str:
    url = os.environ.get("AMQP_URL")
    if not url:
        pytest.exit("AMQP_URL is not set; run the suite through interop/run", returncode=4)
    return url


def parameters(url: str | None = None) -> pika.URLParameters:
    params = pika.URLParameters(url or amqp_url())
    # Fail fast on a broker that stops answering rather than waiting for pika's defaults.
    params.connection_attempts = 1
    params.socket_timeout = TIMEOUT
    params.stack_timeout = TIMEOUT
    params.blocked_connection_timeout = TIMEOUT
    return params


VHOST = parameters().virtual_host


def with_netloc(url: str, user: str | None = None, password: str | None = None) -> str:
    """url with its credentials replaced."""
    parts = urllib.parse.urlsplit(url)
    user = user or urllib.parse.unquote(parts.username or "guest")
    password = password or urllib.parse.unquote(parts.password or "guest")
    return parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port or 5672}").geturl()


def with_vhost(url: str, vhost: str) -> str:
    """url naming another virtual host."""
    return urllib.parse.urlsplit(url)._replace(path="/" + urllib.parse.quote(vhost, safe="")).geturl()


def queue_in_vhost(queue: str) -> str:
    """How RabbitMQ names a queue in error texts."""
    return f"queue '{queue}' in vhost '{VHOST}'"


def invalid_arg(arg: str, queue: str, reason: str) -> str:
    """RabbitMQ's 406 text for a queue.declare argument its validator refused. The
    reason is the Erlang term the validator returned, printed as Erlang prints it
    (so a string reason keeps its double quotes)."""
    return f"PRECONDITION_FAILED - invalid arg '{arg}' for {queue_in_vhost(queue)}: {reason}"


def unique(kind: str) -> str:
    """A name no other test (or earlier run on a shared broker) uses."""
    return f"interop.{kind}.{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def channel_error(code: int, text: str):
    """Expects the broker to close the channel with exactly this code and text."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        yield info
    assert (info.value.reply_code, info.value.reply_text) == (code, text)


@contextlib.contextmanager
def connection_error(code: int, text: str):
    """Expects the broker to close the whole connection with exactly this code and text."""
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        yield info
    assert (info.value.reply_code, info.value.reply_text) == (code, text)


def wait_until(connection: pika.BlockingConnection, predicate, what: str, timeout: float = TIMEOUT):
    """Dispatches broker events until predicate() holds, failing after timeout."""
    deadline = time.monotonic() + timeout
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        connection.process_data_events(time_limit=remaining)


def wait_for_queue_deletion(connection: pika.BlockingConnection, queue: str, timeout: float = TIMEOUT):
    """Polls with passive declares until queue is gone (404), failing after timeout.

    RabbitMQ deletes exclusive and auto-delete queues asynchronously, just after
    answering the close or cancel that triggered the deletion.
    """
    deadline = time.monotonic() + timeout
    while True:
        channel = connection.channel()
        try:
            channel.queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as error:
            assert (error.reply_code, error.reply_text) == (404, f"NOT_FOUND - no queue '{queue}' in vhost '{VHOST}'")
            return
        channel.close()
        if time.monotonic() > deadline:
            pytest.fail(f"queue {queue} still exists after {timeout}s")


def publish_numbered(channel, queue: str, count: int):
    """Publishes m0, m1, ... to queue with confirms, so that all are enqueued on return."""
    channel.confirm_delivery()
    for i in range(count):
        channel.basic_publish("", queue, b"m%d" % i)


def drain(channel, queue: str) -> list[bytes]:
    """Bodies of all ready messages in queue, removed with basic.get and auto-ack."""
    bodies = []
    while True:
        method, _, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body)


def ready_count(channel, queue: str) -> int:
    """Messages ready for delivery (RabbitMQ's count excludes unacked ones).

    RabbitMQ answers this (queue.declare-ok) ahead of acks, rejects and nacks
    still waiting in the queue's mailbox, so only use it once those have taken
    effect; a basic.get's message_count has no such shortcut.
    """
    return channel.queue_declare(queue, passive=True).method.message_count


def is_legacy_rabbitmq(connection) -> bool:
    """True for RabbitMQ before 4.0, whose behaviour differs from current RabbitMQ in places.

    Warren follows current RabbitMQ; a few tests check the 3.x variant only so
    that the suite still proves its expectations against the 3.x reference.
    """
    props = connection._impl.server_properties  # pika only exposes it on the impl
    return props.get("product") == "RabbitMQ" and not props.get("version", "").startswith(("4.", "5."))


def rabbitmq_version(connection) -> tuple[int, ...] | None:
    """RabbitMQ's version as announced in connection.start, or None for another broker."""
    props = connection._impl.server_properties  # pika only exposes it on the impl
    if props.get("product") != "RabbitMQ":
        return None
    return tuple(int(part) for part in re.findall(r"\d+", props.get("version", ""))[:3])


def is_rabbitmq_before(connection, version: tuple[int, ...]) -> bool:
    """True for RabbitMQ older than version; never for Warren, which follows current RabbitMQ."""
    found = rabbitmq_version(connection)
    return found is not None and found < version


def poll_until(predicate, what: str, timeout: float = TIMEOUT, interval: float = 0.02):
    """Re-evaluates predicate until it holds, for states no broker event announces
    (a message expiring, a queue expiring). Fails after timeout."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# How long receive() keeps listening after the expected deliveries, to catch extra ones.
QUIET_PERIOD = 0.2


def receive(connection, channel, queue: str, count: int, timeout: float = TIMEOUT) -> list:
    """(method, properties, body) of the next count deliveries from queue to an auto-ack
    consumer, plus any that arrive within QUIET_PERIOD after them, so that a caller
    comparing the result with an exact list also catches surplus messages."""
    received = []
    tag = channel.basic_consume(queue, lambda _ch, *message: received.append(message), auto_ack=True)
    wait_until(connection, lambda: len(received) >= count, f"{count} deliveries from {queue}", timeout)
    connection.process_data_events(time_limit=QUIET_PERIOD)
    channel.basic_cancel(tag)
    return received


class Consumers:
    """Named consumers of one queue, each on a channel of its own, recording what they receive.

    A consumer given a prefetch limit acknowledges manually (through its channel in
    self.channels), so that the limit can block it; the others use auto-ack.
    """

    def __init__(self, connection, queue: str):
        self.connection, self.queue = connection, queue
        self.deliveries: dict[str, list] = {}
        self.channels: dict = {}
        self.tags: dict[str, str] = {}

    def add(self, name: str, priority: int | None = None, prefetch: int = 0):
        channel = self.connection.channel()
        if prefetch:
            channel.basic_qos(prefetch_count=prefetch)
        self.deliveries[name] = []
        self.channels[name] = channel
        arguments = None if priority is None else {"x-priority": priority}
        self.tags[name] = channel.basic_consume(
            self.queue,
            lambda _ch, *message: self.deliveries[name].append(message),
            auto_ack=not prefetch,
            arguments=arguments,
        )

    def bodies(self) -> dict[str, list[bytes]]:
        return {name: [body for _, _, body in messages] for name, messages in self.deliveries.items()}

    def total(self) -> int:
        return sum(map(len, self.deliveries.values()))

    def wait_for(self, count: int) -> dict[str, list[bytes]]:
        """The bodies each consumer received, once count deliveries arrived in all and a quiet period passed."""
        wait_until(self.connection, lambda: self.total() >= count, f"{count} deliveries to {self.queue}")
        self.connection.process_data_events(time_limit=QUIET_PERIOD)
        return self.bodies()


def assert_death(death: dict, since: float, until: float, **expected):
    """Checks one x-death entry as RabbitMQ writes it: exactly the fields count,
    reason, queue, exchange, routing-keys (plus original-expiration when the message
    had its own expiration), given here with '_' for '-', and a time in seconds
    taken between the epoch times since and until. count travels as a 64-bit
    signed integer ('l'), which pika marks by decoding it as pika.compat.long."""
    expected = {key.replace("_", "-"): value for key, value in expected.items()}
    assert {key: value for key, value in death.items() if key != "time"} == expected
    assert type(death["count"]) is pika.compat.long
    assert isinstance(death["time"], datetime.datetime)
    assert int(since) <= death["time"].timestamp() <= until


def assert_death_summary(connection, headers: dict, first: tuple, last: tuple):
    """Checks the (reason, queue, exchange) of the first and of the most recent death
    in the top-level x-first-death-* and x-last-death-* headers.

    RabbitMQ 3.13 added the x-last-death-* headers; older versions only have
    x-first-death-*. Warren follows current RabbitMQ.
    """

    def summary(prefix):
        return tuple(headers.get(f"{prefix}-{field}") for field in ("reason", "queue", "exchange"))

    assert summary("x-first-death") == first
    if is_rabbitmq_before(connection, (3, 13)):
        assert summary("x-last-death") == (None, None, None)
    else:
        assert summary("x-last-death") == last


class AsyncScenario:
    """Runs one SelectConnection callback-style scenario to its end.

    on_channel(scenario, channel) starts the scenario; its callbacks record what
    they see in scenario.events and call scenario.finish() when done. The
    scenario fails if the connection closes before finish() or if it has not
    finished after timeout seconds.
    """

    def __init__(self, on_channel, url: str | None = None, timeout: float = TIMEOUT):
        self.events: list = []
        self.open_error: BaseException | None = None
        self._failure: str | None = None
        self._finished = False
        self._on_channel = on_channel
        self._timeout = timeout
        self.connection = pika.SelectConnection(
            parameters(url),
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_close,
        )

    def run(self, expect_open_error: bool = False):
        ioloop = self.connection.ioloop
        ioloop.call_later(self._timeout, self._on_timeout)
        try:
            ioloop.start()
        finally:
            # An exception escaping the ioloop leaves the connection open: close it cleanly.
            if not self.connection.is_closed:
                if not self.connection.is_closing:
                    self.connection.close()
                ioloop.start()
        if self.open_error and not expect_open_error:
            pytest.fail(f"connection failed to open: {self.open_error!r}")
        if self._failure:
            pytest.fail(self._failure)
        return self

    def finish(self):
        self._finished = True
        if self.connection.is_open:
            self.connection.close()

    def _on_open(self, connection):
        connection.channel(on_open_callback=lambda channel: self._on_channel(self, channel))

    def _on_open_error(self, connection, error):
        self.open_error = error
        connection.ioloop.stop()

    def _on_close(self, connection, reason):
        # pika turns an exception raised in a callback into a closed connection, so this also reports those.
        if not self._finished and self._failure is None:
            self._failure = f"connection closed before the scenario finished: {reason!r}; events: {self.events}"
        connection.ioloop.stop()

    def _on_timeout(self):
        if self._finished:
            return
        self._failure = f"scenario did not finish within {self._timeout}s; events so far: {self.events}"
        if self.connection.is_open:
            self.connection.close()
        else:
            self.connection.ioloop.stop()
